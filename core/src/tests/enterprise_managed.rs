//! Enterprise-managed authorization (SEP-990): the ID token is exchanged at the IdP for an
//! ID-JAG (RFC 8693), which the authorization server takes as a JWT bearer grant (RFC 7523).

use super::*;
use crate::config::IdpConfig;
use crate::secret::{ClientSecret, SubjectToken};

/// A server that takes JWT bearer grants and registers no clients.
fn jwt_bearer() -> Scenario {
    Scenario::new().server(|o| {
        o.grant_types = vec!["urn:ietf:params:oauth:grant-type:jwt-bearer".into()];
        o.dcr = false;
    })
}

/// The confidential client `app`, with an IdP (the test server's) that accepts only
/// `the-users-id-token`; the client presents `id_token`.
fn enterprise(id_token: &'static str) -> Scenario {
    jwt_bearer()
        .server(|o| {
            o.idp_id_token = Some("the-users-id-token".into());
            o.auth_methods = vec!["client_secret_basic".into()];
            o.clients = vec![PreClient { id: "app".into(), secret: Some("app-secret".into()), jwt_key: None }];
        })
        .config(move |c| {
            c.client_id = Some("app".into());
            c.client_secret = Some(ClientSecret::new("app-secret"));
            c.idp = Some(IdpConfig {
                token_endpoint: Url::parse(&format!("{ORIGIN}/idp/token")).unwrap(),
                client_id: Some("idp-client".into()),
                client_secret: None,
                subject_token: SubjectToken::new(id_token),
            });
        })
}

#[test]
fn exchange_then_jwt_bearer() {
    let mut h = enterprise("the-users-id-token").start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert!(h.server.authorization_requests().is_empty(), "no browser");
    let x = h.last_form("/idp/token");
    assert_eq!(param(&x, "grant_type"), Some(crate::token::TOKEN_EXCHANGE_GRANT));
    assert_eq!(param(&x, "requested_token_type"), Some(crate::token::ID_JAG_TOKEN_TYPE));
    assert_eq!(param(&x, "subject_token_type"), Some(crate::token::ID_TOKEN_TYPE));
    assert_eq!(param(&x, "audience"), Some(ORIGIN), "audience is the authorization server's issuer");
    assert_eq!(param(&x, "resource"), Some("https://mcp.example.com/mcp"));
    assert_eq!(param(&x, "client_id"), Some("idp-client"));
    let t = h.last_form("/token");
    assert_eq!(param(&t, "grant_type"), Some(crate::token::JWT_BEARER_GRANT));
    assert!(param(&t, "assertion").unwrap().starts_with("jag-"));
    let tok = h.sent.iter().rev().find(|r| r.request.uri().path() == "/token").unwrap();
    assert_eq!(tok.request.headers()["authorization"], crate::token::basic_authorization("app", "app-secret").as_str());
    let trace = format!("{:?}", h.sent);
    assert!(!trace.contains("the-users-id-token") && !trace.contains("jag-"), "subject token or id-jag in Debug");
}

#[test]
fn a_refused_id_token_is_a_typed_error() {
    let mut h = enterprise("someone-elses-token").start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(
        matches!(&e, Error::Token(crate::error::TokenError::MachineGrantRefused { grant: crate::token::GrantKind::JwtBearer, error: r }) if r.error == crate::error::ErrorCode::InvalidGrant),
        "{e}"
    );
    assert!(!h.targets().iter().any(|t| t == "/token"), "nothing presented to the authorization server");
}

/// Workload identity federation (SEP-1933): the platform's JWT as a JWT bearer grant; a
/// refusal is surfaced once, never retried or answered with another grant.
#[test]
fn workload_identity_presents_the_platform_jwt_once() {
    let mut h = jwt_bearer()
        .server(|o| o.clients = vec![PreClient { id: "workload".into(), secret: None, jwt_key: None }])
        .config(|c| {
            c.client_id = Some("workload".into());
            c.workload_token = Some(SubjectToken::new("platform.jwt.value"));
        })
        .start();
    // The test server knows no such assertion: the grant is refused.
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(
        matches!(&e, Error::Token(crate::error::TokenError::MachineGrantRefused { grant: crate::token::GrantKind::JwtBearer, error: r }) if r.error == crate::error::ErrorCode::InvalidGrant),
        "{e}"
    );
    let tokens = h.server.token_requests();
    assert_eq!(tokens.len(), 1, "no retry");
    assert_eq!(param(&tokens[0].params, "grant_type"), Some(crate::token::JWT_BEARER_GRANT));
    assert_eq!(param(&tokens[0].params, "assertion"), Some("platform.jwt.value"));
    assert_eq!(param(&tokens[0].params, "client_id"), Some("workload"));
    assert!(h.server.authorization_requests().is_empty(), "no fallback to a browser grant");
}

#[test]
fn workload_identity_success() {
    let mut h = jwt_bearer()
        .server(|o| o.workload_assertion = Some("platform.jwt.value".into()))
        .config(|c| c.workload_token = Some(SubjectToken::new("platform.jwt.value")))
        .start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.last_form("/token");
    assert_eq!(param(&t, "grant_type"), Some(crate::token::JWT_BEARER_GRANT));
    assert_eq!(param(&t, "client_id"), None, "no client id configured, none sent");
    assert_eq!(param(&t, "resource"), Some("https://mcp.example.com/mcp"));
}

/// A workload that also authenticates itself with `private_key_jwt`: the JWT bearer grant
/// carries a client assertion with a fresh `jti` (its entropy is asked for first).
#[test]
fn workload_identity_with_a_private_key_jwt_client() {
    let mut h = jwt_bearer()
        .server(|o| {
            o.auth_methods = vec!["private_key_jwt".into()];
            o.workload_assertion = Some("platform.jwt.value".into());
            o.clients = vec![key_client("workload")];
        })
        .config(|c| {
            c.client_id = Some("workload".into());
            c.private_key = Some(crate::secret::PrivateKeyPem::new(crate::jwt::TEST_KEY));
            c.workload_token = Some(SubjectToken::new("platform.jwt.value"));
        })
        .start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.last_form("/token");
    assert_eq!(param(&t, "grant_type"), Some(crate::token::JWT_BEARER_GRANT));
    assert_eq!(param(&t, "client_assertion_type"), Some(crate::jwt::ASSERTION_TYPE));
}
