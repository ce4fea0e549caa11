//! Independent review: one failed write to the token store (disk full for a moment, a backup
//! tool holding the file, an NFS hiccup) after a refresh with rotation. Core has the new
//! tokens in memory; the store still has the old, now rotated-out refresh token; the failure is
//! reported, as SPEC 83 asks. But the next time the process needs a refresh, the adapter sees
//! "the store differs from memory" (`store_changed`), concludes another process refreshed, and
//! rebuilds the machine from the store: the live refresh token in memory is thrown away, the
//! dead one is presented (a replay of a rotated refresh token, which many servers answer by
//! revoking the whole grant), and the user is sent to a browser login.
//!
//! Also: the failed flow leaves core's `Ready` output queued (core was `Idle`, so
//! `flow::abandon` drained nothing): the next flow on the same machine first returns that stale
//! output instead of its own.

mod common;
use common::*;
use mcp_oauth_client::core::{Persist, Restored};
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{Clock, MemoryStore, StoreError, Timestamp, TokenStore};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// A memory store whose next token write fails once when `fail` is set.
struct FlakyStore {
    inner: MemoryStore,
    fail: AtomicBool,
}

impl TokenStore for FlakyStore {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.inner.load(server)
    }
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        if matches!(p, Persist::Tokens(_)) && self.fail.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Io { path: "/store/entry.json".into(), source: std::io::Error::other("no space left on device") });
        }
        self.inner.persist(server, p)
    }
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.inner.lock(server)
    }
}

fn one_failed_write_does_not_cost_the_grant(a: Adapter) {
    let s = server(|o| o.token_lifetime = Some(120));
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let store = Arc::new(FlakyStore { inner: MemoryStore::new(), fail: AtomicBool::new(false) });
    let (i, log) = following_browser();
    let mut mcp = a.with_parts(config(&s), store.clone(), i, None, clock.clone()).unwrap();
    mcp.list_tools().unwrap();
    // Refresh time; the write of the rotated tokens fails once.
    store.fail.store(true, Ordering::SeqCst);
    clock.0.fetch_add(100_000, Ordering::SeqCst);
    let e = mcp.list_tools().unwrap_err();
    assert!(e.to_string().contains("no space left"), "{e}");
    // The disk is fine again. The process goes on; a while later it needs the next refresh.
    clock.0.fetch_add(100_000, Ordering::SeqCst);
    let r = mcp.list_tools().map(|t| t.len());
    let presented: Vec<String> = s
        .lock()
        .token_requests()
        .iter()
        .filter_map(|t| t.params.iter().find(|(k, _)| k == "refresh_token").map(|(_, v)| v.clone()))
        .collect();
    let logins = log.lock().unwrap().opened.len();
    assert!(
        logins == 1,
        "after one failed store write: {logins} browser logins; refresh tokens presented in order {presented:?}; last call {r:?}"
    );
}

on_every_adapter!(one_failed_write_does_not_cost_the_grant);
