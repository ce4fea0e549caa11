//! DPoP (RFC 9449): tokens bound to a key made from injected entropy, proofs on token and
//! resource requests, nonces from either server, and the key kept with the tokens.

use super::*;
use crate::http::OutgoingRequest;

/// A server that binds tokens with DPoP.
fn dpop() -> Scenario {
    Scenario::new().server(|o| o.dpop = true)
}

fn token_proofs(h: &Harness) -> usize {
    h.sent.iter().filter(|r| r.request.uri().path() == "/token" && r.request.headers().contains_key("dpop")).count()
}

#[test]
fn tokens_are_bound_and_every_request_carries_a_proof() {
    let mut h = dpop().start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.auth.token_set().unwrap().clone();
    assert_eq!(t.token_type, "DPoP");
    assert!(t.dpop_key.is_some(), "the key is kept with the tokens");
    assert_eq!(token_proofs(&h), 1);
    // The server verified a fresh proof (jti never reused) on each of these.
    for _ in 0..3 {
        assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    }
    let a = h.token_wanted().unwrap();
    assert!(a.is_dpop() && a.secret().starts_with("DPoP "));
    assert!(!format!("{:?} {:?}", a, h.auth.token_set()).contains(t.dpop_key.as_ref().unwrap().secret()));
}

#[test]
fn an_authorization_server_nonce_is_honoured_once() {
    let mut h = dpop().server(|o| o.dpop_as_nonce = Some("as-nonce-1".into())).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let exchanges: Vec<u16> = h.server.token_requests().iter().map(|r| r.status).collect();
    assert_eq!(exchanges, [400, 200], "one use_dpop_nonce, one retry with the nonce");
    assert_eq!(h.server.authorization_requests().len(), 1, "the code was not spent twice");
}

#[test]
fn a_resource_server_nonce_is_honoured_without_a_new_login() {
    let mut h = dpop().server(|o| o.dpop_rs_nonce = Some("rs-nonce-1".into())).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.authorization_requests().len(), 1);
    let mcp: Vec<u16> = h.server.log.iter().filter(|r| r.target == "/mcp").map(|r| r.status).collect();
    assert_eq!(mcp, [401, 401, 200], "bare request, nonce demanded, retried with it");
}

#[test]
fn refresh_uses_the_same_key() {
    let mut h = dpop().server(|o| o.token_lifetime = Some(100)).start();
    h.lazy_call("tools/list").unwrap();
    let key = h.auth.token_set().unwrap().dpop_key.clone().unwrap();
    h.advance(Duration::from_secs(80));
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    assert!(h.server.token_requests().iter().any(|r| param(&r.params, "grant_type") == Some("refresh_token")));
    assert_eq!(token_proofs(&h), 2);
    assert_eq!(h.auth.token_set().unwrap().dpop_key.as_ref().unwrap().secret(), key.secret());
}

#[test]
fn a_restored_key_keeps_working() {
    let mut h = dpop().start();
    h.lazy_call("tools/list").unwrap();
    let tokens = h.auth.token_set().cloned();
    let clients = h.persisted.iter().filter_map(|p| if let Persist::Client(c) = p { Some(c.clone()) } else { None }).collect();
    let mut h2 = Scenario::new().on(h.server).restored(Restored { clients, tokens }).start();
    assert_eq!(h2.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    assert!(h2.sent.is_empty(), "no OAuth request: the restored bound token and key were used");
}

#[test]
fn never_means_bearer() {
    let mut h = dpop().config(|c| c.dpop = crate::config::DpopMode::Never).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.auth.token_set().unwrap().token_type, "Bearer");
    assert_eq!(token_proofs(&h), 0);
}

/// A `use_dpop_nonce` answer with a `DPoP-Nonce` header from a host that is not the token
/// endpoint (here a metadata host named by a challenge).
fn nonce_demand() -> HttpResponse {
    http::Response::builder()
        .status(400)
        .header("content-type", "application/json")
        .header("dpop-nonce", "evil-nonce")
        .body(br#"{"error":"use_dpop_nonce"}"#.to_vec())
        .unwrap()
}

fn challenge_to(url: &'static str) -> Vec<http::HeaderValue> {
    vec![http::HeaderValue::from_str(&format!(r#"Bearer error="invalid_token", resource_metadata="{url}""#)).unwrap()]
}

/// Item 7: a nonce demand on a response to anything but the outstanding token request never
/// replays a token request (the spent code, or a rotated refresh token).
#[test]
fn item7_a_nonce_demand_from_another_host_replays_nothing() {
    for refresh_first in [false, true] {
        let mut h = dpop().server(|o| o.token_lifetime = Some(100)).start();
        assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
        if refresh_first {
            h.advance(Duration::from_secs(90));
            h.token_wanted().unwrap();
        }
        // A later request: the token is held; the server rejects it and names metadata on a
        // host that answers with a nonce demand.
        let now = h.now;
        h.auth.handle_input(Input::TokenWanted { now }).unwrap();
        assert!(matches!(h.auth.poll_output(), Output::Ready(_)));
        h.intercept = Some(Box::new(|r: &OutgoingRequest| (r.request.uri().host() == Some("evil.example")).then(|| Ok(nonce_demand()))));
        let _ =
            h.drive(Input::Challenged { now, status: 401, www_authenticate: challenge_to("https://evil.example/prm"), dpop_nonce: None });
        // No code was presented twice.
        let mut codes = std::collections::HashSet::new();
        for r in h.server.token_requests() {
            if let Some(code) = param(&r.params, "code") {
                assert!(codes.insert(code.to_owned()), "a spent code was sent again: {:?}", h.targets());
            }
        }
        assert_eq!(h.server.authorization_requests().len(), 1, "the grant survived: {:?}", h.targets());
        // Nothing at the AS saw a refresh token twice.
        let mut seen = std::collections::HashSet::new();
        for r in h.server.token_requests() {
            if let Some(rt) = param(&r.params, "refresh_token") {
                assert!(seen.insert(rt.to_owned()), "refresh token presented twice");
            }
        }
    }
}

/// Item 7: the nonce is honoured on the token endpoint's own answer, once, and the request is
/// forgotten when answered.
#[test]
fn item7_the_token_endpoint_nonce_is_still_honoured() {
    let mut h = dpop()
        .server(|o| {
            o.dpop_as_nonce = Some("as-nonce-1".into());
            o.token_lifetime = Some(100);
        })
        .start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    h.advance(Duration::from_secs(90));
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    let statuses: Vec<u16> = h.server.token_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200, 200], "one nonce demand; the refresh carries the remembered nonce");
}

/// Item 8: a resource server that demands a new nonce on every request gets one retry, which
/// counts toward the attempt limit; the request ends with a typed error.
#[test]
fn item8_endless_resource_nonce_demands_end() {
    let mut h = dpop().start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let mut n = 0u32;
    h.rs_intercept = Some(Box::new(move |_req| {
        n += 1;
        Some(
            http::Response::builder()
                .status(401)
                .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .header("dpop-nonce", format!("n{n}"))
                .body(Vec::new())
                .unwrap(),
        )
    }));
    let before = h.mcp_requests;
    let e = h.mcp_call("tools/list", serde_json::json!({})).unwrap_err();
    let sent = h.mcp_requests - before;
    assert!(sent <= 1 + h.auth.config().max_authorization_attempts as usize, "{sent} requests");
    assert!(matches!(e, Error::Resource(_)), "{e}");
}
