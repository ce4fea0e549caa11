//! SPEC §2.G: pre-registered, Client ID Metadata Document, DCR; per-issuer binding.

use super::*;
use crate::error::RegistrationError;
use crate::registration::{ClientInfo, ClientKind};

/// A Client ID Metadata Document URL as the client id.
fn cimd(c: &mut Config) {
    c.client_metadata_url = Some(Url::parse("https://app.example.com/oauth/client.json").unwrap());
}

fn clients(h: &Harness) -> Vec<ClientInfo> {
    h.persisted.iter().filter_map(|p| if let Persist::Client(c) = p { Some(c.clone()) } else { None }).collect()
}

#[test]
fn dcr_registers_a_native_client_with_the_bound_port() {
    let mut h = Scenario::new().start();
    h.bound_port = 41234;
    h.lazy_call("tools/list").unwrap();
    let reg = h.sent.iter().find(|r| r.request.uri().path() == "/register").unwrap();
    let body: serde_json::Value = serde_json::from_slice(reg.request.body()).unwrap();
    assert_eq!(body["application_type"], "native");
    assert_eq!(body["redirect_uris"], serde_json::json!(["http://127.0.0.1:41234/callback"]));
    assert_eq!(body["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    let c = clients(&h);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].issuer, ORIGIN);
    assert_eq!(c[0].kind, ClientKind::Dynamic);
}

#[test]
fn a_registration_is_reused_when_the_port_still_fits() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.revoke_access_tokens();
    h.server.options.refresh_tokens = false;
    h.auth.tokens.as_mut().unwrap().refresh_token = None;
    h.lazy_call("tools/list").unwrap();
    assert_eq!(h.server.count("/register"), 1);
    assert_eq!(h.server.authorization_requests().len(), 2);
}

#[test]
fn a_registration_for_another_port_is_replaced() {
    let mut h = Scenario::new().server(|o| o.strict_redirect_port = true).start();
    h.lazy_call("tools/list").unwrap();
    let first = clients(&h)[0].client_id.clone();
    // Restart: the registered port is taken, any port is allowed, so a new one is bound.
    let restored = Restored { clients: clients(&h), tokens: None };
    let mut h2 = Scenario::new().on(h.server).restored(restored).start();
    h2.bound_port = 50999;
    // The plan asks for the registered port first; simulate it being in use by binding another.
    let now = h2.now;
    h2.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let mut plan_port = None;
    loop {
        match h2.auth.poll_output() {
            Output::Send(req) => {
                let resp = h2.server.handle(&req.request);
                h2.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap();
            }
            Output::PrepareAttempt(plan) => {
                let r = plan.redirect.unwrap();
                plan_port = Some(r.port);
                assert!(r.any_port_fallback);
                let uri = r.redirect_uri(50999);
                let entropy = Entropy::from_bytes([9; 96]);
                h2.auth.handle_input(Input::AttemptPrepared { now, entropy, callback: CallbackSetup::Listening(uri) }).unwrap();
            }
            // The new registration replaces the old one once the login it was made for
            // succeeded (until then the old one, and its grant, stay on file).
            Output::OpenAuthorizationUrl { url, .. } => {
                assert!(!h2.persisted.iter().any(|p| matches!(p, Persist::Client(_))));
                let loc = h2.visit(&url).unwrap();
                h2.auth.handle_input(Input::Redirect { now, url: loc, source: RedirectSource::Loopback }).unwrap();
            }
            Output::AnswerCallback(_) => {}
            Output::Persist(Persist::Client(c)) => {
                assert_ne!(c.client_id, first);
                assert_eq!(c.redirect_uris, ["http://127.0.0.1:50999/callback"]);
                break;
            }
            Output::Persist(p) => h2.persisted.push(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(plan_port, Some(50123), "the registered port is preferred");
    assert_eq!(h2.server.count("/register"), 2);
}

#[test]
fn client_id_metadata_document_is_used_when_supported() {
    let mut h = Scenario::new().server(|o| o.cimd = true).config(cimd).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.count("/register"), 0);
    assert_eq!(param(&h.server.authorization_requests()[0], "client_id"), Some("https://app.example.com/oauth/client.json"));
    assert_eq!(param(&h.last_form("/token"), "client_id"), Some("https://app.example.com/oauth/client.json"));
}

#[test]
fn cimd_falls_back_to_dcr_when_not_supported() {
    let mut h = Scenario::new().config(cimd).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.count("/register"), 1);
}

#[test]
fn pre_registered_confidential_client_uses_basic() {
    let mut h = Scenario::new()
        .server(|o| {
            o.dcr = false;
            o.clients = vec![PreClient { id: "pre-1".into(), secret: Some("pre-secret".into()), jwt_key: None }];
            o.auth_methods = vec!["client_secret_basic".into()];
        })
        .config(|c| {
            c.client_id = Some("pre-1".into());
            c.client_secret = Some(crate::secret::ClientSecret::new("pre-secret"));
        })
        .start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let tok = h.sent.iter().find(|r| r.request.uri().path() == "/token").unwrap();
    assert_eq!(tok.request.headers()["authorization"], crate::token::basic_authorization("pre-1", "pre-secret").as_str());
    assert!(!String::from_utf8_lossy(tok.request.body()).contains("pre-secret"));
    // The binding to this issuer is kept (item 13); the configured secret never is.
    assert!(clients(&h).iter().all(|c| c.client_secret.is_none() && c.kind == ClientKind::PreRegistered && c.issuer == ORIGIN));
}

#[test]
fn credentials_bound_to_another_issuer_are_not_presented() {
    let mut h = Scenario::new()
        .config(|c| {
            c.client_id = Some("pre-1".into());
            c.authorization_server = Some("https://other-as.example.com".into());
        })
        .start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Registration(RegistrationError::BoundToOtherIssuer { .. })), "{e}");
    assert!(h.server.authorization_requests().is_empty());
}

#[test]
fn no_way_to_register_is_a_typed_error() {
    let mut h = Scenario::new().server(|o| o.dcr = false).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Registration(RegistrationError::NoMethod { .. })), "{e}");
}

#[test]
fn authorization_server_migration_reregisters_and_drops_old_tokens() {
    // SEP-2352: tokens and a registration from AS1; the resource now points at AS2.
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    let old_client = clients(&h)[0].client_id.clone();
    h.server.options.issuer_path = "/as2".into();
    h.server.revoke_access_tokens();
    h.persisted.clear();
    let resp = h.mcp_call("tools/list", serde_json::json!({})).unwrap();
    assert_eq!(resp.status(), 200);
    assert!(h.persisted.iter().any(|p| matches!(p, Persist::ForgetTokens { issuer } if issuer == ORIGIN)));
    let new = clients(&h);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].issuer, format!("{ORIGIN}/as2"));
    assert_ne!(new[0].client_id, old_client);
    // The old AS's client id was never presented to the new AS.
    let last = h.server.authorization_requests().pop().unwrap();
    assert_eq!(param(&last, "client_id"), Some(new[0].client_id.as_str()));
    // And the old refresh token was not replayed at the new AS.
    assert!(!h.server.token_requests().iter().any(|r| r.target == "/as2/token" && param(&r.params, "grant_type") == Some("refresh_token")));
}

/// Item 13: configured credentials are bound to the first issuer they were used with (kept in
/// the store); when the server later names another, nothing is sent there.
#[test]
fn item13_configured_credentials_stay_with_their_issuer() {
    let mut h = service().config(svc_secret).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let binding: Vec<ClientInfo> = clients(&h);
    assert!(binding.iter().all(|c| c.client_secret.is_none()), "the configured secret is never persisted");
    // A restart; meanwhile the resource's metadata names an authorization server elsewhere.
    let elsewhere = |o: &mut Options| o.auth_origin = "https://evil-as.example".into();
    let mut h2 = service().server(elsewhere).config(svc_secret).restored(Restored { clients: binding, tokens: None }).start();
    let e = h2.lazy_call("tools/list").unwrap_err();
    assert!(
        matches!(&e, Error::Registration(RegistrationError::BoundToOtherIssuer { configured, discovered })
        if configured == ORIGIN && discovered == "https://evil-as.example"),
        "{e}"
    );
    assert!(!h2.sent.iter().any(|r| r.request.uri().path() == "/token"), "a token request went to the other server");
    // The same with private_key_jwt: no assertion for the real server is handed to the other one.
    let mut h3 = service()
        .server(elsewhere)
        .config(|c| {
            c.client_id = Some("svc".into());
            c.private_key = Some(crate::secret::PrivateKeyPem::new(crate::jwt::TEST_KEY));
            c.jwt_audience = Some(ORIGIN.into());
        })
        .restored(Restored { clients: clients(&h), tokens: None })
        .start();
    assert!(h3.lazy_call("tools/list").is_err());
    assert!(!h3.sent.iter().any(|r| r.request.uri().path() == "/token"));
}

/// Item 13: within one machine's life too, once used with one issuer.
#[test]
fn item13_binding_holds_within_one_run() {
    let mut h = service().config(svc_secret).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    h.server.options.issuer_path = "/elsewhere".into();
    h.server.revoke_access_tokens();
    let e = h.mcp_call("tools/list", serde_json::json!({})).unwrap_err();
    assert!(matches!(e, Error::Registration(RegistrationError::BoundToOtherIssuer { .. })), "{e}");
    assert!(!h.sent.iter().any(|r| r.request.uri().path() == "/elsewhere/token"));
}

/// SPEC 51: `invalid_client` at the token endpoint drops a dynamic registration and the
/// client registers again (at the code exchange, and at a refresh).
#[test]
fn spec51_invalid_client_reregisters() {
    // At a refresh: the registration was deleted at the server.
    let mut h = Scenario::new().server(|o| o.token_lifetime = Some(100)).start();
    h.lazy_call("tools/list").unwrap();
    let first = clients(&h)[0].client_id.clone();
    h.intercept =
        Some(Box::new(|r: &OutgoingRequest| is_grant(r, "refresh_token").then(|| Ok(json(401, r#"{"error":"invalid_client"}"#)))));
    h.advance(Duration::from_secs(200));
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    assert!(h.persisted.iter().any(|p| matches!(p, Persist::ForgetClient { .. })));
    assert_eq!(h.server.count("/register"), 2, "registered again");
    assert_ne!(clients(&h).last().unwrap().client_id, first);
    // An expired client secret is registered again before use.
    let mut h = Scenario::new().server(|o| o.dcr_confidential = true).start();
    h.lazy_call("tools/list").unwrap();
    let mut c = clients(&h).pop().unwrap();
    c.client_secret_expires_at = Some(h.now.as_secs() - 1);
    let mut h2 = Scenario::new().on(h.server).restored(Restored { clients: vec![c], tokens: None }).start();
    h2.lazy_call("tools/list").unwrap();
    assert_eq!(h2.server.count("/register"), 2);
}

/// Item 12 (core side): configured credentials never go to a token endpoint that came only from
/// the store (a planted entry naming the attacker's endpoint): the refresh waits for discovery.
#[test]
fn item12_configured_credentials_never_follow_a_stored_token_endpoint() {
    let mut h = service().config(svc_secret).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let mut planted = h.auth.token_set().cloned().unwrap();
    planted.refresh_token = Some(crate::secret::RefreshToken::new("planted-rt"));
    planted.token_endpoint = Some("https://evil.example/token".into());
    planted.expires_at = Some(h.now);
    let mut h2 = Scenario::new().on(h.server).config(svc_secret).restored(Restored { clients: vec![], tokens: Some(planted) }).start();
    let _ = h2.token_wanted();
    assert!(h2.sent.iter().all(|r| r.request.uri().host() != Some("evil.example")), "{:?}", h2.targets());
    assert!(h2.sent.iter().any(|r| r.request.uri().path().starts_with("/.well-known/")), "discovery first");
}
