//! Machine-to-machine: the client credentials extension with every authentication method.

use super::*;
use crate::config::Flow;
use crate::secret::{ClientSecret, PrivateKeyPem};

/// A [`service`] whose token endpoint takes these authentication methods.
fn cc(methods: &[&str]) -> Scenario {
    service().server(|o| o.auth_methods = methods.iter().map(|m| m.to_string()).collect())
}

/// The client `id` with the private key of [`key_client`].
fn with_key(id: &'static str) -> impl FnOnce(&mut Config) {
    move |c| {
        c.client_id = Some(id.into());
        c.private_key = Some(PrivateKeyPem::new(crate::jwt::TEST_KEY));
    }
}

#[test]
fn basic_is_preferred_and_auto_selects_the_flow() {
    let mut h = cc(&["client_secret_basic", "client_secret_post"]).config(svc_secret).start();
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
    let mut h = cc(&["client_secret_post"]).config(svc_secret).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let form = h.last_form("/token");
    assert_eq!(param(&form, "client_secret"), Some("svc-secret"));
    assert_eq!(param(&form, "client_id"), Some("svc"));
}

#[test]
fn private_key_jwt_with_issuer_audience() {
    let mut h = cc(&["private_key_jwt"]).server(|o| o.clients = vec![key_client("svc")]).config(with_key("svc")).start();
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
    let mut h = cc(&["client_secret_basic"]).config(svc_secret).config(|c| c.client_secret = Some(ClientSecret::new("wrong"))).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(
        matches!(&e, Error::Token(crate::error::TokenError::MachineGrantRefused { grant: crate::token::GrantKind::ClientCredentials, error: r }) if r.error == crate::error::ErrorCode::InvalidClient),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong"));
}

/// Item 18: `auto` with a configured secret (or key) uses client credentials whenever the
/// server offers the grant, also when it offers the code flow too; `flow` overrides.
#[test]
fn item18_auto_with_a_secret_is_machine_to_machine() {
    let all_grants =
        |o: &mut Options| o.grant_types = vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()];
    let basic = || cc(&["client_secret_basic"]).config(svc_secret);
    let mut h = basic().server(all_grants).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert!(h.server.authorization_requests().is_empty(), "no browser login for a service");
    assert_eq!(param(&h.last_form("/token"), "grant_type"), Some("client_credentials"));
    // A confidential interactive client says so.
    let mut h = basic().server(all_grants).config(|c| c.flow = Flow::AuthorizationCode).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.authorization_requests().len(), 1);
    // A server without the grant: the code flow, and the error a service gets names `flow`.
    let mut h = basic().server(|o| o.grant_types = vec!["authorization_code".into()]).start();
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
    let with_svc = |o: &mut Options| o.clients = vec![svc_client()];
    let mut user = Scenario::new().server(with_svc).start();
    assert_eq!(user.lazy_call("tools/list").unwrap().status(), 200);
    let user_tokens = user.auth.token_set().cloned().unwrap();
    // A service on the same server and (wrongly) the same store entry.
    let o = user.server.options.clone();
    let mut svc = config(&o);
    svc_secret(&mut svc);
    assert_ne!(svc.store_key(), config(&o).store_key(), "a service and a user keep their tokens apart");
    let mut h = Scenario::new()
        .on(user.server)
        .config(svc_secret)
        .restored(Restored { clients: vec![], tokens: Some(user_tokens.clone()) })
        .start();
    let a = h.token_wanted().unwrap();
    assert_ne!(a.access_token().secret(), user_tokens.access_token.secret(), "the service acted as the user");
    assert_eq!(param(&h.last_form("/token"), "grant_type"), Some("client_credentials"));
    // A wrong secret does not succeed on someone else's tokens either.
    let mut h = Scenario::new() // a new server: it knows no tokens
        .server(with_svc)
        .config(svc_secret)
        .config(|c| c.client_secret = Some(ClientSecret::new("wrong")))
        .restored(Restored { clients: vec![], tokens: Some(user_tokens) })
        .start();
    assert!(h.lazy_call("tools/list").is_err());
}

/// A confidential client that a person logs in through, authenticating with `private_key_jwt`
/// (`"flow": "authorization_code"` with a `private_key`): the code exchange carries a client
/// assertion with a fresh `jti`. Found while naming errors (issue 13): the exchange was built
/// without entropy, so every such login failed at the token endpoint's door.
#[test]
fn private_key_jwt_on_the_code_flow() {
    let mut h = cc(&["private_key_jwt"])
        .server(|o| {
            o.clients = vec![key_client("app")];
            o.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
        })
        .config(|c| c.flow = Flow::AuthorizationCode)
        .config(with_key("app"))
        .start();
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
