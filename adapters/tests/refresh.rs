//! Refresh over real sockets on a controlled clock: proactive refresh before expiry with the
//! rotated refresh token persisted, and invalid_grant leading to one new login.

mod common;
use common::*;
use mcp_oauth_client::{Clock, MemoryStore, Timestamp, TokenStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

fn grants(s: &mcp_oauth_tests::tcp::TcpTestServer, g: &str) -> usize {
    s.lock().token_requests().iter().filter(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == g)).count()
}

fn refreshes_before_expiry_and_persists_the_rotated_token(a: Adapter) {
    let s = server(|o| o.token_lifetime = Some(120));
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let store = Arc::new(MemoryStore::new());
    let (i, _) = following_browser();
    let mut mcp = a.with_parts(config(&s), store.clone(), i, None, clock.clone()).unwrap();
    mcp.list_tools().unwrap();
    let key = config(&s).server_url.to_string();
    let first = store.load(&key).unwrap().tokens.unwrap();
    clock.0.fetch_add(95_000, Ordering::SeqCst); // in the last quarter of its 120 s life
    mcp.list_tools().unwrap();
    assert_eq!(grants(&s, "refresh_token"), 1);
    let second = store.load(&key).unwrap().tokens.unwrap();
    assert_ne!(second.refresh_token.unwrap().secret(), first.refresh_token.unwrap().secret(), "rotation persisted");
    assert_eq!(s.lock().authorization_requests().len(), 1);
}

fn invalid_grant_on_refresh_leads_to_a_new_login(a: Adapter) {
    let s = server(|o| o.token_lifetime = Some(120));
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let (i, log) = following_browser();
    let mut mcp = a.with_parts(config(&s), Arc::new(MemoryStore::new()), i, None, clock.clone()).unwrap();
    mcp.list_tools().unwrap();
    s.lock().options.refresh_invalid_grant = true;
    clock.0.fetch_add(200_000, Ordering::SeqCst);
    mcp.list_tools().unwrap();
    assert_eq!(grants(&s, "refresh_token"), 1, "one refresh attempt, no loop");
    assert_eq!(log.lock().unwrap().opened.len(), 2);
}

on_every_adapter!(refreshes_before_expiry_and_persists_the_rotated_token, invalid_grant_on_refresh_leads_to_a_new_login);
