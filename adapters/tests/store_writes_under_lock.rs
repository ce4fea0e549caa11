//! Writes a store makes while it holds its own lock go through `persist_locked`, so a store
//! whose locks can be lost (a Redis lease) fences them: `TokenStore::forget`'s default, and the
//! one-time move from the legacy key when a client starts (`store::load_for`).

mod common;
use common::*;
use mcp_oauth_client::blocking::OAuthClient;
use mcp_oauth_client::core::{Persist, Restored, Timestamp};
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{Interaction, MemoryStore, StoreError, TokenStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A store that counts unfenced and fenced writes, and implements only what it must (so
/// `forget` is the trait's default).
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    plain: AtomicUsize,
    fenced: AtomicUsize,
}

impl TokenStore for Counting {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.inner.load(server)
    }

    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.plain.fetch_add(1, Ordering::SeqCst);
        self.inner.persist(server, p)
    }

    fn persist_locked(&self, server: &str, p: &Persist, _lock: &StoreLock) -> Result<(), StoreError> {
        self.fenced.fetch_add(1, Ordering::SeqCst);
        self.inner.persist(server, p)
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.inner.lock(server)
    }
}

#[test]
fn forget_and_the_legacy_move_write_under_their_lock() {
    let s = server(|_| {});
    let c = config(&s);
    let (i, _) = following_browser();
    let fresh = OAuthClient::new(c.clone(), Arc::new(MemoryStore::new()), i).unwrap();
    fresh.authorization().unwrap();
    let mut t = fresh.with_authorizer(|a| a.token_set().unwrap().clone());
    let client = fresh.with_authorizer(|a| a.clients().to_vec());
    (t.grant, t.resource_metadata, t.expires_at) = (None, None, Some(Timestamp::from_secs(4_000_000_000)));

    // An older version's grant under the bare server URL: moved on start, under the locks.
    let store = Arc::new(Counting::default());
    let legacy = c.server_url.to_string();
    store.inner.persist(&legacy, &Persist::Tokens(t)).unwrap();
    for cl in client {
        store.inner.persist(&legacy, &Persist::Client(cl)).unwrap();
    }
    let _upgraded = OAuthClient::new(c.clone(), store.clone(), Interaction::non_interactive()).unwrap();
    assert!(store.inner.load(&c.store_key()).unwrap().tokens.is_some(), "the grant was moved");
    assert_eq!(store.plain.load(Ordering::SeqCst), 0, "the move wrote without its lock");
    assert!(store.fenced.load(Ordering::SeqCst) >= 2);

    let before = store.fenced.load(Ordering::SeqCst);
    store.forget(&c.store_key()).unwrap();
    assert!(store.inner.load(&c.store_key()).unwrap().tokens.is_none());
    assert_eq!(store.plain.load(Ordering::SeqCst), 0, "forget wrote without its lock");
    assert!(store.fenced.load(Ordering::SeqCst) > before);
}
