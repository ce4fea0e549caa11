//! Independent review: the async adapter's `authorization()` reads the clock twice: once for
//! "is the held token usable?" (if so: no store lock, no reload), and again for the
//! `TokenWanted` it feeds core. When the token's refresh time falls between the two reads,
//! core refreshes *without* the store lock and without reloading what another process may have
//! stored meanwhile: it presents a refresh token that another process already rotated
//! (rotation-reuse detection revokes whole grants at many servers), gets `invalid_grant`, and
//! then deletes from the shared store the fresh tokens the other process saved. The window
//! is small, but a long-running service crosses it eventually; the blocking adapter reads the
//! clock once and is not affected. The clock here makes the window deterministic.

#![cfg(feature = "async-std")]

mod common;
use common::*;
use mcp_oauth_client::async_std::OAuthClient;
use mcp_oauth_client::{Clock, MemoryStore, Timestamp, TokenStore};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A settable clock; when `step` is armed, the read after the next one jumps by `by` ms.
struct StepClock {
    now: AtomicU64,
    step: AtomicBool,
    by: u64,
}

impl Clock for StepClock {
    fn now(&self) -> Timestamp {
        let t = self.now.load(Ordering::SeqCst);
        if self.step.swap(false, Ordering::SeqCst) {
            self.now.fetch_add(self.by, Ordering::SeqCst);
        }
        Timestamp(t)
    }
}

#[test]
fn a_refresh_is_never_sent_without_the_store_lock_and_a_reload() {
    let s = server(|o| o.token_lifetime = Some(120));
    let t0 = 1_700_000_000_000;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    async_std::task::block_on(async {
        // Process A logs in.
        let clock_a = Arc::new(StepClock { now: AtomicU64::new(t0), step: AtomicBool::new(false), by: 0 });
        let (i, _) = following_browser();
        let a = OAuthClient::with_parts(
            config(&s),
            store.clone(),
            i,
            Arc::new(mcp_oauth_client::async_std::UreqClient::default()),
            clock_a.clone(),
        )
        .await
        .unwrap();
        a.authorization().await.unwrap();
        // Process B starts from the store (same tokens).
        let clock_b = Arc::new(StepClock { now: AtomicU64::new(t0 + 10_000), step: AtomicBool::new(false), by: 90_000 });
        let (i, _) = following_browser();
        let b = OAuthClient::with_parts(
            config(&s),
            store.clone(),
            i,
            Arc::new(mcp_oauth_client::async_std::UreqClient::default()),
            clock_b.clone(),
        )
        .await
        .unwrap();
        // A refreshes near expiry (rotation); the store has the new tokens.
        clock_a.now.store(t0 + 100_000, Ordering::SeqCst);
        a.authorization().await.unwrap();
        let logins = s.lock().authorization_requests().len();
        // B asks for a token just as its old one reaches its refresh time.
        clock_b.step.store(true, Ordering::SeqCst);
        let r = b.authorization().await.map(|_| ());
        let refreshes: Vec<String> = s
            .lock()
            .token_requests()
            .iter()
            .filter(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token"))
            .map(|t| t.params.iter().find(|(k, _)| k == "refresh_token").map(|(_, v)| v.clone()).unwrap_or_default())
            .collect();
        let b_logins = s.lock().authorization_requests().len() - logins;
        assert!(
            refreshes.len() == 1 && b_logins == 0,
            "refresh tokens presented, in order: {refreshes:?}; B then logged in again {b_logins} time(s) ({r:?}) though A's fresh tokens were in the store"
        );
    });
}
