//! SPEC §2.N: 403 insufficient_scope, the scope union, and the attempt limit.

use super::*;
use crate::error::ResourceError;

#[test]
fn step_up_requests_the_union_and_retries() {
    let mut h = Scenario::new().start();
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
    let mut h = Scenario::new().server(|o| o.grant_scope_override = Some("mcp:read".into())).start();
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
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    let n = h.sent.len();
    let now = h.now;
    let e = h.drive(Input::Challenged { now, status: 403, www_authenticate: vec![], dpop_nonce: None }).unwrap_err();
    assert!(matches!(e, Error::Resource(ResourceError::Forbidden { .. })));
    assert_eq!(h.sent.len(), n);
}

#[test]
fn a_401_on_a_fresh_token_is_final() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    let n = h.server.authorization_requests().len();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let _ = h.auth.poll_output();
    let www = vec![http::HeaderValue::from_static(r#"Bearer error="invalid_token""#)];
    let challenge = |now| Input::Challenged { now, status: 401, www_authenticate: www.clone(), dpop_nonce: None };
    // Rejected: refresh. The refreshed token rejected too, and discovery finds the same server:
    // final, without a login (it would only give the server one more such token).
    h.drive(challenge(now)).unwrap();
    let e = h.drive(challenge(now)).unwrap_err();
    assert_eq!(e, Error::Resource(ResourceError::RejectedFreshToken { status: 401 }));
    assert_eq!(h.server.authorization_requests().len(), n);
    // Without a refresh token: a new authorization, and a 401 on its token is final.
    let mut h = Scenario::new().server(|o| o.refresh_tokens = false).start();
    h.lazy_call("tools/list").unwrap();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let _ = h.auth.poll_output();
    h.drive(challenge(now)).unwrap();
    let e = h.drive(challenge(now)).unwrap_err();
    assert_eq!(e, Error::Resource(ResourceError::RejectedFreshToken { status: 401 }));
    assert_eq!(h.server.authorization_requests().len(), 2);
}

/// Item 16 (SPEC 97): with step-up off, a 403 `insufficient_scope` is a typed error carrying
/// the challenge's scope and `resource_metadata`, and no authorization starts.
#[test]
fn item16_no_step_up_mode_reports_the_challenge() {
    let mut h = Scenario::new().config(|c| c.step_up = false).start();
    h.lazy_call("tools/list").unwrap();
    let before = h.sent.len();
    let e = h.mcp_call("tools/call", serde_json::json!({"name": "admin-tool"})).unwrap_err();
    match &e {
        Error::Resource(ResourceError::InsufficientScope { scope, resource_metadata, .. }) => {
            assert_eq!(scope.as_deref(), Some("mcp:admin"));
            assert_eq!(resource_metadata.as_deref(), Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"));
        }
        other => panic!("{other}"),
    }
    assert_eq!(h.sent.len(), before, "nothing sent");
    assert_eq!(h.server.authorization_requests().len(), 1);
}

/// SPEC 82: when the token response omits `scope`, the requested scope is recorded as granted
/// (and the step-up union builds on it).
#[test]
fn spec82_requested_scope_is_recorded_when_the_response_omits_it() {
    let mut h = Scenario::new().start();
    h.rewrite = Some(Box::new(|r: &OutgoingRequest, resp: &mut HttpResponse| {
        if r.request.uri().path().ends_with("/token") {
            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(resp.body()) {
                v.as_object_mut().map(|m| m.remove("scope"));
                *resp.body_mut() = v.to_string().into_bytes();
            }
        }
    }));
    h.lazy_call("tools/list").unwrap();
    assert_eq!(h.auth.token_set().unwrap().scope.as_deref(), Some("mcp:read mcp:write"));
    // The step-up union starts from the recorded scope.
    assert_eq!(h.mcp_call("tools/call", serde_json::json!({"name": "admin-tool"})).unwrap().status(), 200);
    let reqs = h.server.authorization_requests();
    assert_eq!(param(&reqs[1], "scope"), Some("mcp:read mcp:write mcp:admin"));
}
