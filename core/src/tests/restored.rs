//! State from the adapter's store: a valid token costs nothing; registrations are reused.

use super::*;

fn first_run() -> Harness {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h
}

fn restored(h: &Harness) -> Restored {
    let mut r = Restored::default();
    for p in &h.persisted {
        match p {
            Persist::Client(c) => r.clients.push(c.clone()),
            Persist::Tokens(t) => r.tokens = Some(t.clone()),
            _ => {}
        }
    }
    r
}

#[test]
fn a_restored_valid_token_means_zero_requests() {
    let h = first_run();
    let mut h2 = Scenario::new().restored(restored(&h)).on(h.server).start();
    let a = h2.token_wanted().unwrap();
    assert!(h2.sent.is_empty());
    assert!(a.secret().starts_with("Bearer at-"));
    assert_eq!(h2.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    assert!(h2.sent.is_empty());
}

#[test]
fn a_restored_expired_token_is_refreshed_without_discovery() {
    let h = first_run();
    let mut h2 = Scenario::new().restored(restored(&h)).on(h.server).start();
    h2.advance(Duration::from_secs(4000));
    h2.token_wanted().unwrap();
    assert_eq!(h2.targets(), ["/token"]);
}

#[test]
fn a_restored_registration_is_reused() {
    let h = first_run();
    let mut r = restored(&h);
    r.tokens = None;
    let mut h2 = Scenario::new().restored(r).on(h.server).start();
    h2.lazy_call("tools/list").unwrap();
    assert_eq!(h2.server.count("/register"), 1, "registered once, in the first run");
}

#[test]
fn persisted_state_round_trips_through_json() {
    let h = first_run();
    let r = restored(&h);
    let t = r.tokens.unwrap();
    let json = serde_json::to_string(&t).unwrap();
    let back: crate::token::TokenSet = serde_json::from_str(&json).unwrap();
    assert_eq!(back.access_token.secret(), t.access_token.secret());
    assert_eq!(back.expires_at, t.expires_at);
    assert_eq!(back.issuer, ORIGIN);
    let c = serde_json::to_string(&r.clients[0]).unwrap();
    let back: crate::registration::ClientInfo = serde_json::from_str(&c).unwrap();
    assert_eq!(back.client_id, r.clients[0].client_id);
}
