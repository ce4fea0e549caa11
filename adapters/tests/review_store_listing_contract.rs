//! Review of 7de3df0 (servers/describe/forget): does `forget` leave nothing, and does
//! `describe` tell the truth? Real logins against the loopback test server.

mod common;
use common::*;
use mcp_oauth_client::{FileStore, MemoryStore, Persist, StoreError, TokenStore};
use std::sync::Arc;

fn authorizations(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().log.iter().filter(|r| r.target.starts_with("/authorize")).count()
}

fn token_requests(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().log.iter().filter(|r| r.target.starts_with("/token")).count()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-contract-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Moves what is stored under `from` to `to` (raw persists: how an older version's layout looks).
fn relocate(store: &dyn TokenStore, from: &str, to: &str) {
    let r = store.load(from).unwrap();
    for c in &r.clients {
        store.persist(to, &Persist::Client(c.clone())).unwrap();
        store.persist(from, &Persist::ForgetClient { issuer: c.issuer.clone() }).unwrap();
    }
    if let Some(t) = &r.tokens {
        store.persist(to, &Persist::Tokens(t.clone())).unwrap();
        store.persist(from, &Persist::ForgetTokens { issuer: t.issuer.clone() }).unwrap();
    }
}

/// A user who logged in with a version that stored under the bare server URL
/// (`Config::legacy_store_key`) upgrades, opens the status screen and logs out of the
/// configuration: `describe(store_key)` says nothing is held and `forget(store_key)` forgot
/// nothing, so the next run was silently logged in again from the legacy key (which `load_for`
/// migrates). `forget_config` forgets what this configuration will use.
fn legacy_grant_survives_forget(store: Arc<dyn TokenStore>) {
    let s = server(|o| o.refresh_tokens = true);
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    let (key, legacy) = (config(&s).store_key(), config(&s).legacy_store_key());
    relocate(&*store, &key, &legacy);
    assert_eq!(store.servers().unwrap(), vec![legacy.clone()], "the layout of an older version");

    let held = store.describe(&key).unwrap();
    let forgotten = mcp_oauth_client::store::forget_config(&*store, &config(&s)).unwrap();
    assert!(forgotten.tokens.is_some(), "what the configuration would have used is reported: {forgotten:?}");
    let (auth_before, token_before) = (authorizations(&s), token_requests(&s));
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap().list_tools().unwrap();
    let logged_in_again = authorizations(&s) > auth_before || token_requests(&s) > token_before;
    assert!(
        logged_in_again,
        "forget(store_key) returned {forgotten:?} (describe said {held:?}), yet the next run used the legacy grant without \
         any authorization; the store still holds: {:?}",
        store.servers().unwrap()
    );
}

#[test]
fn memory_forget_also_forgets_the_legacy_key() {
    legacy_grant_survives_forget(Arc::new(MemoryStore::new()));
}

#[test]
fn file_forget_also_forgets_the_legacy_key() {
    let dir = temp_dir("legacy");
    legacy_grant_survives_forget(Arc::new(FileStore::new(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `server_url` is "the key without its #principal", cut at the LAST `#`. The principal is
/// `app:<client_name>` (free text), `user:<client_id>`, `cimd:<url>`: a `#` there gives a wrong
/// server URL.
#[test]
fn describe_server_url_with_hash_in_principal() {
    let s = server(|_| {});
    let mut c = config(&s);
    c.client_name = "Acme agent #2".into();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(c.clone(), store.clone(), i).unwrap().list_tools().unwrap();
    let key = c.store_key();
    assert_eq!(store.servers().unwrap(), vec![key.clone()]);
    let held = store.describe(&key).unwrap();
    assert!(held.tokens.is_some());
    assert_eq!(held.server_url, s.mcp_url(), "key {key:?}");
}

/// A second copy of an entry in the server's directory under another `.json` name (a sync
/// tool's "conflicted copy", a user's backup): `load` trusts it and `servers` lists it, but
/// `forget` removes only the file named by the issuer's hash, reloads the copy 64 times and
/// gives up with `NotForgotten`; the server stays logged in.
#[test]
fn file_forget_with_a_second_copy_of_an_entry() {
    let dir = temp_dir("copy");
    let s = server(|_| {});
    let store = FileStore::new(&dir);
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let entry = store.entry_path(&key, &s.origin());
    let copy = entry.with_file_name(format!("{} (conflicted copy).json", entry.file_stem().unwrap().to_string_lossy()));
    std::fs::copy(&entry, &copy).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(store.load(&key).unwrap().tokens.is_some());
    let t = std::time::Instant::now();
    let r = store.forget(&key);
    let took = t.elapsed();
    let left = store.describe(&key).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(r.is_ok() && left.is_empty(), "forget: {:?} after {took:?}; still held: {left:?}", r.map_err(|e: StoreError| e.to_string()));
}

/// The project treats a credential in the server URL's query (`?api_key=…`) as a secret
/// (`safe_url`, trace_configured_secrets.rs). `describe` is "without any secret (for a status
/// screen)", yet its Debug shows the key and server_url verbatim.
#[test]
fn describe_shows_a_url_credential() {
    let s = server(|_| {});
    let url = format!("{}?api_key=url-key-SECRET-1", s.mcp_url());
    let c = mcp_oauth_client::Config::new(url.parse().unwrap());
    let store = MemoryStore::new();
    // What a login would persist under this key (any entry will do: describe shows the key).
    let (i, _) = following_browser();
    let shared: Arc<dyn TokenStore> = Arc::new(store.clone());
    Adapter::Blocking.with_oauth(c.clone(), shared, i).unwrap().list_tools().unwrap();
    let key = c.store_key();
    assert_eq!(store.servers().unwrap(), vec![key.clone()]);
    let shown = format!("{:?}", store.describe(&key).unwrap());
    assert!(!shown.contains("url-key-SECRET-1"), "{shown}");
}
