//! DPoP (RFC 9449): tokens bound to a key made from injected entropy, proofs on token and
//! resource requests, nonces from either server, and the key kept with the tokens.

use super::*;

fn dpop_options() -> Options {
    let mut o = options();
    o.dpop = true;
    o
}

fn token_proofs(h: &Harness) -> usize {
    h.sent.iter().filter(|r| r.request.uri().path() == "/token" && r.request.headers().contains_key("dpop")).count()
}

#[test]
fn tokens_are_bound_and_every_request_carries_a_proof() {
    let mut h = Harness::new(dpop_options());
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
    let mut o = dpop_options();
    o.dpop_as_nonce = Some("as-nonce-1".into());
    let mut h = Harness::new(o);
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let exchanges: Vec<u16> = h.server.token_requests().iter().map(|r| r.status).collect();
    assert_eq!(exchanges, [400, 200], "one use_dpop_nonce, one retry with the nonce");
    assert_eq!(h.server.authorization_requests().len(), 1, "the code was not spent twice");
}

#[test]
fn a_resource_server_nonce_is_honoured_without_a_new_login() {
    let mut o = dpop_options();
    o.dpop_rs_nonce = Some("rs-nonce-1".into());
    let mut h = Harness::new(o);
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.authorization_requests().len(), 1);
    let mcp: Vec<u16> = h.server.log.iter().filter(|r| r.target == "/mcp").map(|r| r.status).collect();
    assert_eq!(mcp, [401, 401, 200], "bare request, nonce demanded, retried with it");
}

#[test]
fn refresh_uses_the_same_key() {
    let mut o = dpop_options();
    o.token_lifetime = Some(100);
    let mut h = Harness::new(o);
    h.lazy_call("tools/list").unwrap();
    let key = h.auth.token_set().unwrap().dpop_key.clone().unwrap();
    h.advance(Duration::from_secs(50));
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    assert!(h.server.token_requests().iter().any(|r| param(&r.params, "grant_type") == Some("refresh_token")));
    assert_eq!(token_proofs(&h), 2);
    assert_eq!(h.auth.token_set().unwrap().dpop_key.as_ref().unwrap().secret(), key.secret());
}

#[test]
fn a_restored_key_keeps_working() {
    let mut h = Harness::new(dpop_options());
    h.lazy_call("tools/list").unwrap();
    let tokens = h.auth.token_set().cloned();
    let o = h.server.options.clone();
    let mut h2 = Harness::with(o.clone(), config(&o), Restored { clients: vec![], tokens });
    h2.server = h.server;
    assert_eq!(h2.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    assert!(h2.sent.is_empty(), "no OAuth request: the restored bound token and key were used");
}

#[test]
fn never_means_bearer() {
    let o = dpop_options();
    let mut c = config(&o);
    c.dpop = crate::config::DpopMode::Never;
    let mut h = Harness::with(o, c, Restored::default());
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.auth.token_set().unwrap().token_type, "Bearer");
    assert_eq!(token_proofs(&h), 0);
}
