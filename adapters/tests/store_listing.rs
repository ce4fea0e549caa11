//! What a store holds, listed and forgotten through the public API (`servers`, `describe`,
//! `forget`), on `MemoryStore` and `FileStore` alike, after real logins against the test
//! server: the keys map back to servers, nothing secret shows, and a forgotten server logs in
//! again.

mod common;
mod store_contract;
use common::*;
use mcp_oauth_client::{FileStore, MemoryStore, StoreError, TokenStore};
use std::sync::Arc;
use store_contract::lists_describes_and_forgets;

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-listing-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn memory_store_round_trips_and_locks() {
    store_contract::round_trips(&MemoryStore::new());
    store_contract::lock_excludes(Arc::new(MemoryStore::new()));
}

#[test]
fn file_store_round_trips_and_locks() {
    let dir = temp_dir("round-trips");
    store_contract::round_trips(&FileStore::new(&dir));
    store_contract::lock_excludes(Arc::new(FileStore::new(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
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

#[test]
fn memory_and_file_stores_keep_a_revision() {
    let memory = MemoryStore::new();
    store_contract::revisions_move(&memory, &memory.clone());
    let dir = temp_dir("revision");
    store_contract::revisions_move(&FileStore::new(&dir), &FileStore::new(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn memory_store_keeps_a_logout_elsewhere_after_a_failed_first_save() {
    store_contract::a_logout_elsewhere_after_a_failed_first_save_is_kept(Arc::new(MemoryStore::new()));
}

#[test]
fn file_store_keeps_a_logout_elsewhere_after_a_failed_first_save() {
    let dir = temp_dir("aba");
    store_contract::a_logout_elsewhere_after_a_failed_first_save_is_kept(Arc::new(FileStore::new(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
}
