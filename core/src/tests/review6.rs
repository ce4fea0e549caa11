//! Review 6 (issue 13, parts 2 to 5): reproductions by an independent reviewer. Each test states
//! what a spec or an attacker expects; a failing test is a finding.

use super::*;
use crate::error::{ErrorCode, TokenError};
use crate::http::Purpose;
use crate::secret::PrivateKeyPem;
use crate::token::TokenResponse;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The `jti` claim of a client assertion (a compact JWS).
fn jti_of(assertion: &str) -> String {
    let claims = assertion.split('.').nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    v["jti"].as_str().unwrap().to_owned()
}

/// RFC 7523 §3 (item 7) and the MCP client credentials extension: a client assertion's `jti`
/// is unique, the server may refuse a replayed one. RFC 9449 §8: after `use_dpop_nonce` the
/// client sends the token request again with a new proof. The retry must not replay the
/// client assertion of the refused request (a server that checks client authentication before
/// the DPoP nonce has recorded its jti already).
#[test]
fn review6_dpop_nonce_retry_does_not_replay_the_client_assertion() {
    let mut h = service()
        .server(|o| {
            o.auth_methods = vec!["private_key_jwt".into()];
            o.clients = vec![key_client("svc")];
            o.dpop = true;
            o.dpop_as_nonce = Some("as-nonce-1".into());
        })
        .config(|c| {
            c.client_id = Some("svc".into());
            c.private_key = Some(PrivateKeyPem::new(crate::jwt::TEST_KEY));
        })
        .start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let statuses: Vec<u16> = h.server.token_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200], "one use_dpop_nonce, one retry");
    let jtis: Vec<String> = h
        .sent
        .iter()
        .filter(|r| r.request.uri().path() == "/token")
        .map(|r| {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(r.request.body()).into_owned().collect();
            jti_of(param(&form, "client_assertion").expect("a client assertion"))
        })
        .collect();
    assert_eq!(jtis.len(), 2);
    assert_ne!(jtis[0], jtis[1], "the nonce retry replays the refused request's client assertion (same jti)");
}

/// A hostile token endpoint answers with an `error` code of 60 000 characters (within the
/// 64 KiB token response limit). The
/// `error_description` is cut to 200 characters in `Display`; the code, equally
/// server-controlled, is printed whole, so one refusal puts 60 kB into every log line.
#[test]
fn review6_a_huge_error_code_is_bounded_in_display() {
    let code = "x".repeat(60_000);
    let body = format!(r#"{{"error":"{code}","error_description":"short"}}"#);
    let resp = json(400, &body);
    let e = TokenResponse::from_http(&resp, Purpose::Refresh).unwrap_err();
    assert!(matches!(&e, Error::Token(TokenError::Rejected(r)) if r.error == ErrorCode::Other(code.clone())));
    let shown = e.to_string();
    assert!(shown.len() < 2_000, "Display is {} bytes long", shown.len());
}

/// The same, through the redirect: an `iss` of 8 000 characters (the redirect limit) is
/// printed whole by `AuthorizationError::IssuerMismatch`, where the other server-controlled
/// values (`resource`, `issued_token_type`, descriptions) are cut to 100 or 200 characters.
#[test]
fn review6_a_huge_iss_is_bounded_in_display() {
    let redirect = Url::parse("http://127.0.0.1:5000/cb").unwrap();
    let iss = "https://evil.example/".to_owned() + &"a".repeat(7_900);
    let url = format!("http://127.0.0.1:5000/cb?code=c&state=good&iss={iss}");
    let p = crate::authorize::parse_redirect(&url, &redirect).unwrap();
    let state = crate::secret::CsrfState::new("good");
    let expect = crate::authorize::RedirectExpectations { state: &state, issuer: Some("https://as.example"), iss_supported: true };
    let e = crate::authorize::check_redirect(p, &expect).unwrap_err();
    assert!(matches!(e, crate::error::AuthorizationError::IssuerMismatch { .. }), "{e:?}");
    let shown = Error::from(e).to_string();
    assert!(shown.len() < 2_000, "Display is {} bytes long", shown.len());
}

/// Workload identity (SEP-1933) has no person: the platform's JWT is the grant. When the
/// authorization server refuses it (`invalid_grant`), `blame()` says `User` ("the person ...
/// logging in again fixes it") and `Display` says "log in again": a headless service that
/// maps `Blame::User` to "ask the user to log in" asks nobody, and an operator is told to do
/// something impossible. The workload's federation trust or its token is the setup's
/// (`Configuration`).
#[test]
fn review6_a_refused_workload_jwt_is_not_blamed_on_a_user() {
    let mut h = Scenario::new()
        .server(|o| {
            o.grant_types = vec!["urn:ietf:params:oauth:grant-type:jwt-bearer".into()];
            o.dcr = false;
            o.clients = vec![PreClient { id: "workload".into(), secret: None, jwt_key: None }];
        })
        .config(|c| {
            c.client_id = Some("workload".into());
            c.workload_token = Some(crate::secret::SubjectToken::new("platform.jwt.value"));
        })
        .start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(
        matches!(&e, Error::Token(TokenError::MachineGrantRefused { grant: crate::token::GrantKind::JwtBearer, error: r }) if r.error == ErrorCode::InvalidGrant),
        "{e}"
    );
    assert!(h.server.authorization_requests().is_empty(), "nobody logs in");
    assert_ne!(e.blame(), crate::error::Blame::User, "{e}");
    assert!(!e.to_string().contains("log in again"), "{e}");
}
