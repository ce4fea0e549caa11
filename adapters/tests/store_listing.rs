//! What a store holds, listed and forgotten through the public API (`servers`, `describe`,
//! `forget`), on `MemoryStore` and `FileStore` alike, after real logins against the test
//! server: the keys map back to servers, nothing secret shows, and a forgotten server logs in
//! again.

mod common;
use common::*;
use mcp_oauth_client::{ClientKind, FileStore, MemoryStore, StoreError, TokenStore};
use std::sync::Arc;

fn oauth_requests(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().log.iter().filter(|r| r.target != "/mcp").count()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-listing-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The contract, on any store that can list.
fn lists_describes_and_forgets(store: Arc<dyn TokenStore>) {
    let (a, b) = (server(|o| o.refresh_tokens = true), server(|_| {}));
    assert_eq!(store.servers().unwrap(), Vec::<String>::new(), "a new store holds nothing");
    let (i, _) = following_browser();
    for s in [&a, &b] {
        Adapter::Blocking.with_oauth(config(s), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    }
    let (key_a, key_b) = (config(&a).store_key(), config(&b).store_key());
    let mut want = vec![key_a.clone(), key_b.clone()];
    want.sort();
    assert_eq!(store.servers().unwrap(), want, "both servers are listed by the keys `load` takes");

    let held = store.describe(&key_a).unwrap();
    assert_eq!(held.key, key_a);
    assert_eq!(held.server_url, a.mcp_url());
    assert_eq!(held.clients.len(), 1, "{held:?}");
    assert_eq!(held.clients[0].issuer, a.origin());
    assert_eq!(held.clients[0].kind, ClientKind::Dynamic);
    let tokens = held.tokens.clone().expect("tokens are held");
    assert_eq!(tokens.issuer, a.origin());
    assert_eq!(tokens.client_id.as_deref(), Some(held.clients[0].client_id.as_str()));
    assert!(tokens.refresh_token, "{tokens:?}");
    assert!(!tokens.dpop_bound);
    assert!(!tokens.scopes.is_empty(), "{tokens:?}");
    assert!(tokens.expires_at.is_some_and(|t| t > tokens.obtained_at), "{tokens:?}");
    // Nothing secret in what is shown: the stored token and refresh token appear nowhere.
    let stored = store.load(&key_a).unwrap().tokens.unwrap();
    let shown = format!("{held:?}");
    assert!(!shown.contains(stored.access_token.secret()), "{shown}");
    assert!(!shown.contains(stored.refresh_token.as_ref().unwrap().secret()), "{shown}");

    // Forgetting one server leaves the other, and returns what was held.
    let forgotten = store.forget(&key_a).unwrap();
    assert_eq!(forgotten, held);
    assert!(store.describe(&key_a).unwrap().is_empty());
    assert_eq!(store.servers().unwrap(), vec![key_b.clone()]);
    assert!(store.forget(&key_a).unwrap().is_empty(), "forgetting again is a no-op");

    // The forgotten server logs in again (a new registration and tokens); the other does not.
    let (before_a, before_b) = (oauth_requests(&a), oauth_requests(&b));
    Adapter::Blocking.with_oauth(config(&a), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    Adapter::Blocking.with_oauth(config(&b), store.clone(), i).unwrap().list_tools().unwrap();
    assert!(a.lock().log[..].iter().filter(|r| r.target == "/register").count() >= 2, "registered again");
    assert!(oauth_requests(&a) > before_a, "the forgotten server logged in again");
    assert_eq!(oauth_requests(&b), before_b, "the other server kept its tokens");
}

#[test]
fn memory_store_lists_describes_and_forgets() {
    lists_describes_and_forgets(Arc::new(MemoryStore::new()));
}

#[test]
fn file_store_lists_describes_and_forgets() {
    let dir = temp_dir("contract");
    lists_describes_and_forgets(Arc::new(FileStore::new(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_store_lists_only_entries_that_belong_where_they_are() {
    let dir = temp_dir("misplaced");
    let s = server(|_| {});
    let store = FileStore::new(&dir);
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let entry = store.entry_path(&key, &s.origin());
    // An entry naming another server, planted in this server's directory (where that server's
    // hash does not lead), and a half-written file: neither is listed, neither breaks the list.
    let text = std::fs::read(&entry).unwrap();
    let planted = String::from_utf8(text.clone()).unwrap().replace(&key, "https://planted.example/mcp#p");
    assert!(planted.contains("https://planted.example/mcp#p"), "the entry names its server");
    std::fs::write(store.server_dir(&key).join("planted.json"), planted).unwrap();
    std::fs::write(store.server_dir(&key).join("half.json"), &text[..text.len() / 2]).unwrap();
    assert_eq!(store.servers().unwrap(), vec![key]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_store_directory_lists_nothing() {
    let store = FileStore::new(temp_dir("missing"));
    assert_eq!(store.servers().unwrap(), Vec::<String>::new());
}

#[test]
fn a_store_that_cannot_list_says_so() {
    /// A store written before listing existed: the three required calls only.
    struct Minimal(MemoryStore);
    impl TokenStore for Minimal {
        fn load(&self, server: &str) -> Result<mcp_oauth_client::Restored, StoreError> {
            self.0.load(server)
        }
        fn persist(&self, server: &str, p: &mcp_oauth_client::Persist) -> Result<(), StoreError> {
            self.0.persist(server, p)
        }
        fn lock(&self, server: &str) -> Result<mcp_oauth_client::store::StoreLock, StoreError> {
            self.0.lock(server)
        }
    }
    let store = Minimal(MemoryStore::new());
    assert!(matches!(store.servers(), Err(StoreError::CannotList)));
    // `describe` and `forget` still work on it: they need only the three.
    let s = server(|_| {});
    let (i, _) = following_browser();
    let shared: Arc<dyn TokenStore> = Arc::new(Minimal(store.0.clone()));
    Adapter::Blocking.with_oauth(config(&s), shared, i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    assert!(store.describe(&key).unwrap().tokens.is_some());
    assert!(store.forget(&key).unwrap().tokens.is_some());
    assert!(store.describe(&key).unwrap().is_empty());
}
