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
fn auto_uses_the_code_flow_when_the_server_offers_it() {
    let mut o = cc_options(&["client_secret_basic"], secret_client());
    o.grant_types = vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()];
    let c = secret_config(&o);
    let mut h = Harness::with(o.clone(), c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.authorization_requests().len(), 1);
    // Forcing the flow overrides auto.
    let mut c = secret_config(&o);
    c.flow = Flow::ClientCredentials;
    let mut h = Harness::with(o, c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert!(h.server.authorization_requests().is_empty());
}

#[test]
fn wrong_secret_is_a_token_error() {
    let o = cc_options(&["client_secret_basic"], secret_client());
    let mut c = secret_config(&o);
    c.client_secret = Some(ClientSecret::new("wrong"));
    let mut h = Harness::with(o, c, Restored::default());
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(&e, Error::Token(crate::error::TokenError::Rejected(r)) if r.error == "invalid_client"), "{e}");
    assert!(!e.to_string().contains("wrong"));
}
