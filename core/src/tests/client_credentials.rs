//! Machine-to-machine: the client credentials extension with every authentication method.

use super::*;
use crate::config::Flow;
use crate::secret::{ClientSecret, PrivateKeyPem};
use mcp_oauth_tests::PreClient;

fn cc_options(methods: &[&str], client: PreClient) -> Options {
    let mut o = options();
    o.grant_types = vec!["client_credentials".into()];
    o.auth_methods = methods.iter().map(|m| m.to_string()).collect();
    o.dcr = false;
    o.clients = vec![client];
    o
}

fn secret_client() -> PreClient {
    PreClient { id: "svc".into(), secret: Some("svc-secret".into()), jwt_key: None }
}

fn secret_config(o: &Options) -> Config {
    let mut c = config(o);
    c.client_id = Some("svc".into());
    c.client_secret = Some(ClientSecret::new("svc-secret"));
    c
}

#[test]
fn basic_is_preferred_and_auto_selects_the_flow() {
    let o = cc_options(&["client_secret_basic", "client_secret_post"], secret_client());
    let c = secret_config(&o);
    let mut h = Harness::with(o, c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert!(h.server.authorization_requests().is_empty(), "no browser for machine-to-machine");
    let tok = h.sent.iter().find(|r| r.request.uri().path() == "/token").unwrap();
    assert_eq!(tok.request.headers()["authorization"], crate::token::basic_authorization("svc", "svc-secret").as_str());
    let form = h.last_form("/token");
    assert_eq!(param(&form, "grant_type"), Some("client_credentials"));
    assert_eq!(param(&form, "resource"), Some("https://mcp.example.com/mcp"));
    assert_eq!(param(&form, "client_secret"), None);
    assert!(!h.trace.iter().any(|t| t == "PrepareAttempt"), "no entropy needed for secrets");
}

#[test]
fn post_when_it_is_the_only_method() {
    let o = cc_options(&["client_secret_post"], secret_client());
    let c = secret_config(&o);
    let mut h = Harness::with(o, c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let form = h.last_form("/token");
    assert_eq!(param(&form, "client_secret"), Some("svc-secret"));
    assert_eq!(param(&form, "client_id"), Some("svc"));
}

#[test]
fn private_key_jwt_with_issuer_audience() {
    use p256::pkcs8::DecodePrivateKey;
    let sk = p256::SecretKey::from_pkcs8_pem(crate::jwt::TEST_KEY).unwrap();
    let public = sk.public_key().to_sec1_bytes().to_vec();
    let o = cc_options(&["private_key_jwt"], PreClient { id: "svc".into(), secret: None, jwt_key: Some(public) });
    let mut c = config(&o);
    c.client_id = Some("svc".into());
    c.private_key = Some(PrivateKeyPem::new(crate::jwt::TEST_KEY));
    let mut h = Harness::with(o, c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let form = h.last_form("/token");
    assert_eq!(param(&form, "client_assertion_type"), Some(crate::jwt::ASSERTION_TYPE));
    assert_eq!(param(&form, "client_id"), None, "the extension omits client_id with a JWT");
    assert!(h.trace.iter().any(|t| t == "PrepareAttempt"), "the jti needs entropy");
    // A second token uses a fresh jti (the server rejects replays).
    h.server.revoke_access_tokens();
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
}

#[test]
fn wrong_secret_is_a_token_error() {
    let o = cc_options(&["client_secret_basic"], secret_client());
    let mut c = secret_config(&o);
    c.client_secret = Some(ClientSecret::new("wrong"));
    let mut h = Harness::with(o, c, Restored::default());
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(&e, Error::Token(crate::error::TokenError::Rejected(r)) if r.error == crate::error::ErrorCode::InvalidClient), "{e}");
    assert!(!e.to_string().contains("wrong"));
}

/// Item 18: `auto` with a configured secret (or key) uses client credentials whenever the
/// server offers the grant, also when it offers the code flow too; `flow` overrides.
#[test]
fn item18_auto_with_a_secret_is_machine_to_machine() {
    let mut o = cc_options(&["client_secret_basic"], secret_client());
    o.grant_types = vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()];
    let mut h = Harness::with(o.clone(), secret_config(&o), Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert!(h.server.authorization_requests().is_empty(), "no browser login for a service");
    assert_eq!(param(&h.last_form("/token"), "grant_type"), Some("client_credentials"));
    // A confidential interactive client says so.
    let mut c = secret_config(&o);
    c.flow = Flow::AuthorizationCode;
    let mut h = Harness::with(o.clone(), c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.authorization_requests().len(), 1);
    // A server without the grant: the code flow, and the error a service gets names `flow`.
    let mut o2 = o;
    o2.grant_types = vec!["authorization_code".into()];
    let mut h = Harness::with(o2.clone(), secret_config(&o2), Restored::default());
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let e = loop {
        match h.auth.poll_output() {
            Output::Send(req) => {
                let resp = h.server.handle(&req.request);
                h.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap();
            }
            Output::PrepareAttempt(_) => {
                h.auth.handle_input(Input::Cancel { now, reason: CancelReason::NoInteraction }).unwrap();
            }
            Output::Failed(e) => break e,
            Output::Persist(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(e.to_string().contains("\"flow\""), "{e}");
}

/// Item 17: tokens stored for another client identity (an interactive user's login) are never
/// used by a service configured with its own client id, and the store keys differ.
#[test]
fn item17_stored_tokens_of_another_client_are_not_used() {
    // An interactive user logs in (a dynamic client) on a server that also offers client
    // credentials.
    let mut o = options();
    o.clients = vec![secret_client()];
    let mut user = Harness::new(o.clone());
    assert_eq!(user.lazy_call("tools/list").unwrap().status(), 200);
    let user_tokens = user.auth.token_set().cloned().unwrap();
    // A service on the same server and (wrongly) the same store entry.
    let svc = secret_config(&o);
    assert_ne!(svc.store_key(), config(&o).store_key(), "a service and a user keep their tokens apart");
    let mut h = Harness::with(o.clone(), svc, Restored { clients: vec![], tokens: Some(user_tokens.clone()) });
    h.server = user.server;
    let a = h.token_wanted().unwrap();
    assert_ne!(a.access_token().secret(), user_tokens.access_token.secret(), "the service acted as the user");
    assert_eq!(param(&h.last_form("/token"), "grant_type"), Some("client_credentials"));
    // A wrong secret does not succeed on someone else's tokens either.
    let mut bad = secret_config(&o);
    bad.client_secret = Some(ClientSecret::new("wrong"));
    let mut h = Harness::with(o, bad, Restored { clients: vec![], tokens: Some(user_tokens) });
    h.server = TestServer::new(h.server.options.clone());
    assert!(h.lazy_call("tools/list").is_err());
}

/// A confidential client that a person logs in through, authenticating with `private_key_jwt`
/// (`"flow": "authorization_code"` with a `private_key`): the code exchange carries a client
/// assertion with a fresh `jti`. Found while naming errors (issue 13): the exchange was built
/// without entropy, so every such login failed at the token endpoint's door.
#[test]
fn private_key_jwt_on_the_code_flow() {
    use p256::pkcs8::DecodePrivateKey;
    let sk = p256::SecretKey::from_pkcs8_pem(crate::jwt::TEST_KEY).unwrap();
    let public = sk.public_key().to_sec1_bytes().to_vec();
    let mut o = cc_options(&["private_key_jwt"], PreClient { id: "app".into(), secret: None, jwt_key: Some(public) });
    o.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
    let mut c = config(&o);
    c.flow = Flow::AuthorizationCode;
    c.client_id = Some("app".into());
    c.private_key = Some(PrivateKeyPem::new(crate::jwt::TEST_KEY));
    let mut h = Harness::with(o, c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.authorization_requests().len(), 1, "a person logged in");
    let form = h.last_form("/token");
    assert_eq!(param(&form, "grant_type"), Some("authorization_code"));
    assert_eq!(param(&form, "client_assertion_type"), Some(crate::jwt::ASSERTION_TYPE));
    let first_jwt = param(&form, "client_assertion").unwrap().to_owned();
    // The refresh after a revocation signs a new assertion (the server refuses a replayed jti).
    h.server.revoke_access_tokens();
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    let refresh = h.last_form("/token");
    assert_eq!(param(&refresh, "grant_type"), Some("refresh_token"));
    assert_ne!(param(&refresh, "client_assertion").unwrap(), first_jwt);
    assert_eq!(h.server.authorization_requests().len(), 1, "a refresh, not a login");
}
