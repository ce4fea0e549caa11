//! `KeyringStore` on the Linux kernel's keyutils (no daemon: it works headless, over SSH, in
//! containers and in CI), against the loopback test server: the store contract `MemoryStore`
//! and `FileStore` pass, single flight across processes, entries split into items no larger than
//! a Windows credential, nothing secret in the index files, items the keyring lost (a reboot),
//! a Secret Service that does not answer (a D-Bus peer that never replies: a timeout, nothing
//! lost), and `store::auto`.
#![cfg(target_os = "linux")]

mod common;
mod store_contract;
use common::*;
use mcp_oauth_client::{FileStore, Interaction, KeyringBackend, KeyringFailure, KeyringStore, Persist, StoreError, TokenStore};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh private scratch directory.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-keyring-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A keyutils store with its own service name (tests never see each other's items).
fn keyutils(dir: &Path, tag: &str) -> KeyringStore {
    KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(format!("mcp-oauth-test-{}-{tag}", std::process::id()))
}

fn hex16(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The index files under `dir`, parsed.
fn index_files(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|x| x == "json") {
                let v = serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
                out.push((f.path(), v));
            }
        }
    }
    out
}

/// The keyring items an index file names, read straight from keyutils.
fn items(service: &str, index: &serde_json::Value) -> Vec<Result<Vec<u8>, keyring_core::Error>> {
    join_session_keyring();
    let store: Arc<keyring_core::CredentialStore> = linux_keyutils_keyring_store::Store::new().unwrap();
    let (server, issuer, item) = (index["server"].as_str().unwrap(), index["issuer"].as_str().unwrap(), index["item"].as_str().unwrap());
    (0..index["chunks"].as_u64().unwrap())
        .map(|i| {
            let user = format!("{}.{}.{item}.{i}", hex16(server), hex16(issuer));
            keyring_core::Entry::new_in_store(&store, service, &user).unwrap().get_secret()
        })
        .collect()
}

/// What every thread reading keyutils outside a login session needs (see the store's docs).
fn join_session_keyring() {
    linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true).unwrap();
}

fn oauth_requests(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().log.iter().filter(|r| r.target != "/mcp").count()
}

fn service(tag: &str) -> String {
    format!("mcp-oauth-test-{}-{tag}", std::process::id())
}

#[test]
fn the_keyutils_store_passes_the_store_contract() {
    let dir = scratch("contract");
    store_contract::round_trips(&keyutils(&dir, "contract"));
    store_contract::lock_excludes(Arc::new(keyutils(&dir, "contract")));
    store_contract::lists_describes_and_forgets(Arc::new(keyutils(&dir, "contract")));
    store_contract::revisions_move(&keyutils(&dir, "contract"), &keyutils(&dir, "contract"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_large_entry_is_split_into_items_smaller_than_a_windows_credential_and_the_index_holds_no_secret() {
    let dir = scratch("split");
    let store = keyutils(&dir, "split");
    let key = "https://mcp.example.com/mcp#user";
    let mut t = store_contract::tokens("https://as.example", &format!("AT-SECRET-{}", "x".repeat(6000)), 10);
    t.refresh_token = Some(mcp_oauth_client::core::secret::RefreshToken::new("RT-SECRET-REFRESH"));
    store.persist(key, &Persist::Client(store_contract::client("https://as.example"))).unwrap();
    store.persist(key, &Persist::Tokens(t)).unwrap();

    let files = index_files(&dir);
    assert_eq!(files.len(), 1, "one index file per (server, issuer)");
    let (path, index) = &files[0];
    let on_disk = std::fs::read_to_string(path).unwrap();
    for secret in ["AT-SECRET", "RT-SECRET-REFRESH", "CS-SECRET"] {
        assert!(!on_disk.contains(secret), "{secret} in the index file:\n{on_disk}");
    }
    assert!(index["chunks"].as_u64().unwrap() >= 4, "{index}");
    let mut joined = Vec::new();
    for item in items(&service("split"), index) {
        let item = item.expect("every item named by the index is in the keyring");
        assert!(item.len() <= 2000, "an item of {} bytes", item.len());
        joined.extend(item);
    }
    let joined = String::from_utf8(joined).unwrap();
    assert!(joined.contains("AT-SECRET-xxx") && joined.contains("RT-SECRET-REFRESH") && joined.contains("CS-SECRET"));
    let _ = std::fs::metadata(path).map(|m| {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(m.mode() & 0o077, 0, "the index file is private");
    });

    // A replaced entry leaves no items behind: the old version's items are deleted.
    let old = index.clone();
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-SHORT", 20))).unwrap();
    assert!(items(&service("split"), &old).iter().all(|i| matches!(i, Err(keyring_core::Error::NoEntry))), "old items deleted");
    store.forget(key).unwrap();
    assert!(index_files(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_the_keyring_lost_is_ignored_then_a_login_replaces_it() {
    let s = server(|o| o.refresh_tokens = true);
    let dir = scratch("lost");
    let store = Arc::new(keyutils(&dir, "lost"));
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    assert!(store.load(&key).unwrap().tokens.is_some());

    // The keyring drops the items (keyutils after a reboot): deleted behind the store's back.
    join_session_keyring();
    let kr: Arc<keyring_core::CredentialStore> = linux_keyutils_keyring_store::Store::new().unwrap();
    for (_, index) in index_files(&dir) {
        for n in 0..index["chunks"].as_u64().unwrap() {
            let user = format!(
                "{}.{}.{}.{n}",
                hex16(index["server"].as_str().unwrap()),
                hex16(index["issuer"].as_str().unwrap()),
                index["item"].as_str().unwrap()
            );
            keyring_core::Entry::new_in_store(&kr, &service("lost"), &user).unwrap().delete_credential().unwrap();
        }
    }
    let r = store.load(&key).expect("missing items are not an error");
    assert!(r.tokens.is_none() && r.clients.is_empty(), "nothing is made up");
    assert!(store.describe(&key).unwrap().is_empty());

    // The next client logs in again (registering anew) and its tokens are stored and used.
    let before = s.lock().authorization_requests().len();
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    assert_eq!(s.lock().authorization_requests().len(), before + 1, "one new login");
    let requests = oauth_requests(&s);
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap().list_tools().unwrap();
    assert_eq!(oauth_requests(&s), requests, "a restarted client uses the new tokens: no OAuth request");
    store.forget(&key).unwrap();
    assert!(index_files(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run as a child (MCP_OAUTH_KR_CHILD=dir|service|url): one MCP call through the keyring store.
#[test]
fn keyring_child_entry() {
    if let Ok(spec) = std::env::var("MCP_OAUTH_KR_CHILD") {
        let mut parts = spec.splitn(3, '|');
        let (dir, service, url) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let store = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(service);
        let config = mcp_oauth_client::Config::new(url.parse().unwrap());
        let mut mcp = Adapter::Blocking.with_oauth(config, Arc::new(store), Interaction::non_interactive()).unwrap();
        mcp.call_tool("echo", serde_json::json!({"text": "child"})).expect("the child got a token");
    }
    if let Ok(spec) = std::env::var("MCP_OAUTH_KR_SILENT_BUS") {
        silent_bus_child(&spec);
    }
}

#[test]
fn processes_sharing_an_expired_token_in_the_keyring_refresh_once() {
    let s = server(|o| o.refresh_tokens = true);
    let dir = scratch("single-flight");
    let store = keyutils(&dir, "single-flight");
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    for (round, n) in [3, 6].into_iter().enumerate() {
        let mut t = store.load(&key).unwrap().tokens.unwrap();
        t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
        store.persist(&key, &Persist::Tokens(t)).unwrap();
        let children: Vec<_> = (0..n)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", "keyring_child_entry", "--test-threads=1"])
                    .env("MCP_OAUTH_KR_CHILD", format!("{}|{}|{}", dir.display(), service("single-flight"), s.mcp_url()))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success(), "a child failed");
        }
        let server = s.lock();
        let refreshes =
            server.token_requests().iter().filter(|r| r.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")).count();
        assert_eq!(refreshes, round + 1, "exactly one refresh for {n} processes");
        assert_eq!(server.authorization_requests().len(), 1, "nobody logged in again");
        assert!(server.token_requests().iter().all(|r| r.status == 200), "a stale refresh token was presented");
    }
    store.forget(&key).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `auto` with a keyring that answers: a server whose login is in the file store stays there
/// (an application on `FileStore::in_default_dir()` keeps sharing it, nothing is moved or
/// copied); a new server goes to the keyring; forgetting clears both stores.
#[test]
fn auto_takes_the_keyring_for_new_logins_and_leaves_file_logins_where_they_are() {
    let (a, b) = (server(|o| o.refresh_tokens = true), server(|o| o.refresh_tokens = true));
    let dir = scratch("auto");
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&a), Arc::new(FileStore::new(&dir)), i.clone()).unwrap().list_tools().unwrap();
    let (key_a, key_b) = (config(&a).store_key(), config(&b).store_key());

    let chosen = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
    assert_eq!(chosen.keyring, Some(KeyringBackend::KeyUtils), "{chosen:?}");
    assert!(chosen.fallback.is_none());
    assert!(chosen.description.contains("kernel keyutils") && chosen.description.contains("stay in"), "{}", chosen.description);
    // Server a: used from the files, by the application and through auto alike.
    let requests = oauth_requests(&a);
    Adapter::Blocking.with_oauth(config(&a), chosen.store.clone(), i.clone()).unwrap().list_tools().unwrap();
    Adapter::Blocking.with_oauth(config(&a), Arc::new(FileStore::new(&dir)), i.clone()).unwrap().list_tools().unwrap();
    assert_eq!(oauth_requests(&a), requests, "no OAuth request: the one login is shared");
    assert!(FileStore::new(&dir).load(&key_a).unwrap().tokens.is_some());
    assert!(KeyringStore::new(dir.join("keyring-index"), KeyringBackend::KeyUtils).servers().unwrap().is_empty(), "nothing copied");
    // Server b: a new login goes to the keyring.
    Adapter::Blocking.with_oauth(config(&b), chosen.store.clone(), i).unwrap().list_tools().unwrap();
    assert!(FileStore::new(&dir).load(&key_b).unwrap().tokens.is_none(), "not in the files");
    assert_eq!(KeyringStore::new(dir.join("keyring-index"), KeyringBackend::KeyUtils).servers().unwrap(), vec![key_b.clone()]);
    let mut both = vec![key_a.clone(), key_b.clone()];
    both.sort();
    assert_eq!(chosen.store.servers().unwrap(), both, "auto lists both");
    // Forgetting through auto clears whichever store holds it.
    chosen.store.forget(&key_a).unwrap();
    chosen.store.forget(&key_b).unwrap();
    assert!(FileStore::new(&dir).servers().unwrap().is_empty());
    assert!(chosen.store.servers().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A D-Bus "session bus" on a Unix socket that accepts connections and never says a word, as a
/// hung daemon or a keyring waiting on a prompt looks to a client.
fn silent_bus(path: &Path) -> std::thread::JoinHandle<()> {
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            match c {
                Ok(c) => held.push(c),
                Err(_) => return,
            }
        }
    })
}

/// In a child with DBUS_SESSION_BUS_ADDRESS on the silent bus: every call ends in the timeout,
/// typed; what the keyring's index names is not forgotten; `auto` falls back to files and says
/// how many logins are out of reach.
fn silent_bus_child(dir: &str) {
    let dir = Path::new(dir);
    let store = KeyringStore::new(dir.join("keyring-index"), KeyringBackend::SecretService).with_timeout(Duration::from_millis(800));
    let key = "https://mcp.example.com/mcp#user";
    let timed_out = |r: Result<(), StoreError>| match r {
        Err(StoreError::Keyring { backend: "Secret Service", reason: KeyringFailure::Timeout { after } }) => {
            assert_eq!(after, Duration::from_millis(800))
        }
        other => panic!("expected a timeout, got {other:?}"),
    };
    let t = Instant::now();
    timed_out(store.probe());
    assert!(t.elapsed() < Duration::from_secs(5), "the probe took {:?}", t.elapsed());
    let indexes_before = index_files(&dir.join("keyring-index")).len();
    assert_eq!(indexes_before, 1, "the parent left one index file");
    timed_out(store.load(key).map(|_| ()));
    timed_out(store.persist(key, &Persist::ForgetTokens { issuer: "https://as.example".into() }));
    timed_out(store.forget(key).map(|_| ()));
    assert_eq!(index_files(&dir.join("keyring-index")).len(), 1, "nothing was forgotten");
    // The calls that timed out are still hanging: further calls fail at once instead of
    // leaving one more thread behind each.
    let t = Instant::now();
    timed_out(store.load(key).map(|_| ()));
    assert!(t.elapsed() < Duration::from_millis(200), "took {:?}", t.elapsed());
    assert_eq!(store.servers().unwrap(), vec![key.to_owned()], "listing needs no keyring");

    let t = Instant::now();
    let chosen = mcp_oauth_client::store::auto(dir, KeyringBackend::SecretService, Duration::from_millis(800));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(chosen.keyring, None);
    assert!(matches!(chosen.fallback, Some(StoreError::Keyring { reason: KeyringFailure::Timeout { .. }, .. })), "{chosen:?}");
    assert!(chosen.description.contains("1 login(s) that are out of reach"), "{}", chosen.description);
    assert!(chosen.store.load(key).unwrap().tokens.is_none(), "the file store is empty");
}

#[test]
fn a_secret_service_that_never_answers_times_out_and_nothing_is_lost() {
    let dir = scratch("silent");
    // One login's index file, as a Secret Service store would have left it.
    let store = keyutils(&dir.join("keyring-index"), "silent");
    store.persist("https://mcp.example.com/mcp#user", &Persist::Tokens(store_contract::tokens("https://as.example", "AT", 1))).unwrap();
    let bus = dir.join("bus");
    let _listener = silent_bus(&bus);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "keyring_child_entry", "--test-threads=1", "--nocapture"])
        .env("MCP_OAUTH_KR_SILENT_BUS", &dir)
        .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", bus.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    store.forget("https://mcp.example.com/mcp#user").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Index files this store did not write (a huge item count, an item name that is not its own
/// random hex, another server's name) are ignored: no hang, no panic, no item of anything else
/// read or deleted.
#[test]
fn a_hostile_index_file_is_ignored() {
    let dir = scratch("hostile");
    let store = keyutils(&dir, "hostile");
    let key = "https://mcp.example.com/mcp#user";
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-GOOD", 1))).unwrap();
    let (path, good) = index_files(&dir).pop().unwrap();
    let server_dir = path.parent().unwrap().to_owned();
    let planted = |name: &str, v: serde_json::Value| {
        std::fs::write(server_dir.join(name), v.to_string()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(server_dir.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    };
    let mut huge = good.clone();
    huge["issuer"] = "https://other.example".into();
    huge["chunks"] = u32::MAX.into();
    planted("huge.json", huge);
    let mut odd = good.clone();
    odd["issuer"] = "https://odd.example".into();
    odd["item"] = "../../x".into();
    planted("odd.json", odd);
    let mut zero = good.clone();
    zero["issuer"] = "https://zero.example".into();
    zero["chunks"] = 0.into();
    planted("zero.json", zero);

    let t = Instant::now();
    let r = store.load(key).unwrap();
    assert_eq!(r.tokens.unwrap().access_token.secret(), "AT-GOOD");
    assert_eq!(store.servers().unwrap(), vec![key.to_owned()]);
    store.forget(key).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    assert!(store.load(key).unwrap().tokens.is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
