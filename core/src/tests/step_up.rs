//! SPEC §2.N: 403 insufficient_scope, the scope union, and the attempt limit.

use super::*;
use crate::error::ResourceError;

#[test]
fn step_up_requests_the_union_and_retries() {
    let mut h = Harness::new(options());
    h.lazy_call("tools/list").unwrap();
    let resp = h.mcp_call("tools/call", serde_json::json!({"name": "admin-tool"})).unwrap();
    assert_eq!(resp.status(), 200);
    let reqs = h.server.authorization_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(param(&reqs[1], "scope"), Some("mcp:read mcp:write mcp:admin"));
    // A step-up is a new authorization, never a refresh (a refresh cannot widen scope).
    assert!(!h.server.token_requests().iter().any(|r| param(&r.params, "grant_type") == Some("refresh_token")));
}

#[test]
fn at_most_three_authorizations_per_request() {
    let mut o = options();
    o.grant_scope_override = Some("mcp:read".into());
    let mut h = Harness::new(o);
    h.lazy_call("tools/list").unwrap();
    let before = h.server.authorization_requests().len();
    let e = h.mcp_call("tools/call", serde_json::json!({"name": "admin-tool"})).unwrap_err();
    assert!(matches!(&e, Error::Resource(ResourceError::InsufficientScope { attempts: 3, scope: Some(s), .. }) if s == "mcp:admin"), "{e}");
    assert_eq!(h.server.authorization_requests().len() - before, 3);
    // The next request starts with a fresh budget.
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
}

#[test]
fn forbidden_without_insufficient_scope_is_not_an_oauth_matter() {
    let mut h = Harness::new(options());
    h.lazy_call("tools/list").unwrap();
    let n = h.sent.len();
    let now = h.now;
    let e = h.drive(Input::Challenged { now, status: 403, www_authenticate: vec![], dpop_nonce: None }).unwrap_err();
    assert!(matches!(e, Error::Resource(ResourceError::Forbidden { .. })));
    assert_eq!(h.sent.len(), n);
}

#[test]
fn a_second_401_with_a_fresh_token_is_final() {
    let mut h = Harness::new(options());
    h.lazy_call("tools/list").unwrap();
    let n = h.server.authorization_requests().len();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let _ = h.auth.poll_output();
    let www = vec![http::HeaderValue::from_static(r#"Bearer error="invalid_token""#)];
    h.drive(Input::Challenged { now, status: 401, www_authenticate: www.clone(), dpop_nonce: None }).unwrap();
    let e = h.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None }).unwrap_err();
    assert_eq!(e, Error::Resource(ResourceError::RejectedFreshToken { status: 401 }));
    assert!(h.server.authorization_requests().len() <= n + 1);
}
