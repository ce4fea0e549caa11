//! SPEC items 17, 18, 28, 30, 31: metadata that must not be used.

use super::*;
use crate::error::DiscoveryError;

fn no_authorization_made(h: &Harness) {
    assert!(h.server.authorization_requests().is_empty(), "an authorization request was made");
    assert!(!h.targets().iter().any(|t| t == "/register" || t == "/token"), "{:?}", h.targets());
}

#[test]
fn resource_mismatch_stops_before_any_authorization() {
    let mut h = Scenario::new().server(|o| o.prm_resource = Some("https://evil.example.com/mcp".into())).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Discovery(DiscoveryError::ResourceMismatch { .. })), "{e}");
    no_authorization_made(&h);
}

#[test]
fn strict_resource_match_refuses_a_prefix() {
    let mut h = Scenario::new()
        .server(|o| o.prm_resource = Some(ORIGIN.into()))
        .config(|c| c.resource_match = crate::discovery::ResourceMatch::Strict)
        .start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Discovery(DiscoveryError::ResourceMismatch { .. })));
}

#[test]
fn issuer_mismatch_means_no_request_to_its_endpoints() {
    let mut h = Scenario::new().server(|o| o.issuer_override = Some("https://attacker.example.com".into())).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Discovery(DiscoveryError::IssuerMismatch { .. })), "{e}");
    no_authorization_made(&h);
}

#[test]
fn missing_pkce_metadata_is_refused_unless_allowed() {
    let no_pkce = |o: &mut Options| o.pkce_methods = None;
    let mut h = Scenario::new().server(no_pkce).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Discovery(DiscoveryError::PkceNotSupported { .. })), "{e}");
    no_authorization_made(&h);
    let mut h = Scenario::new().server(no_pkce).config(|c| c.allow_missing_pkce_metadata = true).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(param(&h.server.authorization_requests()[0], "code_challenge_method"), Some("S256"));
}

#[test]
fn pkce_without_s256_is_refused() {
    let mut h = Scenario::new().server(|o| o.pkce_methods = Some(vec!["plain".into()])).start();
    assert!(matches!(h.lazy_call("tools/list").unwrap_err(), Error::Discovery(DiscoveryError::PkceNotSupported { .. })));
    no_authorization_made(&h);
}

#[test]
fn insecure_authorization_server_is_refused() {
    let mut h = Scenario::new().server(|o| o.auth_origin = "http://as.example.com".into()).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Discovery(DiscoveryError::InsecureUrl { .. })), "{e}");
    for r in &h.sent {
        let u = Url::parse(&r.request.uri().to_string()).unwrap();
        assert!(crate::http::is_secure_endpoint(&u), "sent to {u}");
    }
}

#[test]
fn prm_without_authorization_servers_is_not_used() {
    let mut h = Scenario::new().start();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let Output::Send(req) = h.auth.poll_output() else { panic!() };
    let body = br#"{"resource":"https://mcp.example.com/mcp","authorization_servers":[]}"#.to_vec();
    let resp = http::Response::builder().status(200).body(body).unwrap();
    h.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap();
    // The path-aware document is unusable, so the root one is tried next.
    let Output::Send(next) = h.auth.poll_output() else { panic!() };
    assert_eq!(next.request.uri().path(), "/.well-known/oauth-protected-resource");
    let body = br#"{"resource":"https://mcp.example.com"}"#.to_vec();
    let resp = http::Response::builder().status(200).body(body).unwrap();
    h.auth.handle_input(Input::Response { now, id: next.id, result: Ok(resp) }).unwrap();
    let Output::Failed(e) = h.auth.poll_output() else { panic!() };
    assert_eq!(e, Error::Discovery(DiscoveryError::ResourceMetadataMissingField { field: "authorization_servers" }));
}

#[test]
fn javascript_authorization_endpoint_is_never_opened() {
    let mut h = Scenario::new()
        .config(|c| {
            c.endpoints = Some(crate::config::ManualEndpoints {
                issuer: None,
                authorization_endpoint: Some("https://as.example.com/authorize".into()),
                token_endpoint: format!("{ORIGIN}/token"),
                registration_endpoint: None,
                revocation_endpoint: None,
            });
            c.client_id = Some("c".into());
        })
        .start();
    // Swap in a hostile endpoint after validation, as metadata could deliver one.
    h.auth.config.endpoints.as_mut().unwrap().authorization_endpoint = Some("javascript:alert(1)".into());
    let e = h.token_wanted().unwrap_err();
    assert!(matches!(e, Error::Discovery(DiscoveryError::InsecureUrl { field: "authorization_endpoint", .. })), "{e}");
    assert!(!h.trace.iter().any(|t| t == "OpenAuthorizationUrl"));
}
