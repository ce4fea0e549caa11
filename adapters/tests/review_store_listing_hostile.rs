//! Review of 7de3df0: `servers`/`describe`/`forget` against a hostile disk and for secrets.
//! (Unix; the process runs as root here, so "another user" is made with chown.)
#![cfg(unix)]

mod common;
use common::*;
use mcp_oauth_client::{FileStore, MemoryStore, TokenStore};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-hostile-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A FileStore in `dir` holding one real login; returns the store, the server and its key.
fn logged_in(
    dir: &Path,
    configure: impl FnOnce(&mut mcp_oauth_tests::Options),
) -> (FileStore, mcp_oauth_tests::tcp::TcpTestServer, String) {
    let s = server(configure);
    let store = FileStore::new(dir);
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    (store, s, key)
}

fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("did not finish (hang?)")
}

/// No secret of a confidential, DPoP-bound login reaches describe's Debug, nor forget's.
#[test]
fn describe_hides_every_secret_of_a_dpop_bound_confidential_login() {
    for store in [Arc::new(MemoryStore::new()) as Arc<dyn TokenStore>, Arc::new(FileStore::new(temp_dir("secrets")))] {
        let s = server(|o| {
            o.dpop = true;
            o.dcr_confidential = true;
            o.refresh_tokens = true;
        });
        let (i, _) = following_browser();
        Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap().list_tools().unwrap();
        let key = config(&s).store_key();
        let r = store.load(&key).unwrap();
        let t = r.tokens.clone().unwrap();
        let mut secrets = vec![t.access_token.secret().to_owned(), t.refresh_token.as_ref().unwrap().secret().to_owned()];
        secrets.push(t.dpop_key.as_ref().expect("DPoP-bound").secret().to_owned());
        secrets.push(r.clients[0].client_secret.as_ref().expect("confidential").secret().to_owned());
        let held = store.describe(&key).unwrap();
        let tk = held.tokens.clone().unwrap();
        assert!(tk.dpop_bound && tk.refresh_token && held.clients[0].has_secret, "{held:?}");
        let shown = format!("{held:?} {:?} {:?}", store.servers().unwrap(), store.forget(&key).unwrap());
        for secret in &secrets {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
        assert!(store.describe(&key).unwrap().is_empty());
    }
    let _ = std::fs::remove_dir_all(temp_dir("secrets"));
}

/// A server directory that is a link to another store's (valid, private) directory is not
/// listed, and forget through it refuses and leaves the target alone.
#[test]
fn a_symlinked_server_directory_is_neither_listed_nor_forgotten_through() {
    let (outside, mine) = (temp_dir("outside"), temp_dir("linked"));
    let (other, _s, key) = logged_in(&outside, |_| {});
    let target_entry = other.entry_path(&key, &config(&_s).server_url.origin().ascii_serialization());
    assert!(target_entry.exists());
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = FileStore::new(&mine);
    symlink(other.server_dir(&key), store.server_dir(&key)).unwrap();
    assert_eq!(store.servers().unwrap(), Vec::<String>::new());
    assert!(store.describe(&key).map_or(true, |h| h.is_empty()));
    assert!(store.forget(&key).is_err(), "forget through a linked server directory");
    assert!(target_entry.exists(), "the linked-to entry survived");
    assert!(other.load(&key).unwrap().tokens.is_some());
    let _ = std::fs::remove_dir_all(&outside);
    let _ = std::fs::remove_dir_all(&mine);
}

/// Entries that `load` would not trust are not listed: a link to a real entry elsewhere, a
/// group-writable entry, an entry owned by another user, a FIFO, a directory named `.json`,
/// a server directory owned by another user. Nothing hangs or panics; forget leaves the link
/// target alone.
#[test]
fn untrusted_entries_are_not_listed_and_nothing_hangs() {
    let (outside, mine) = (temp_dir("outside2"), temp_dir("planted"));
    let (other, s_out, key_out) = logged_in(&outside, |_| {});
    let out_entry = other.entry_path(&key_out, &s_out.origin());
    let (store, s, key) = logged_in(&mine, |_| {});
    let entry = store.entry_path(&key, &s.origin());
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::remove_file(&entry).unwrap();
    assert_eq!(store.servers().unwrap(), Vec::<String>::new());

    // In the server's own directory: a link to a real entry (of the same server, elsewhere).
    let out_same = other.entry_path(&key, &s.origin());
    std::fs::create_dir_all(out_same.parent().unwrap()).unwrap();
    std::fs::write(&out_same, &bytes).unwrap();
    std::fs::set_permissions(&out_same, std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&out_same, &entry).unwrap();
    // Group-writable copy, other-user copy, FIFO, directory named .json.
    let dir = store.server_dir(&key);
    let gw = dir.join("gw.json");
    std::fs::write(&gw, &bytes).unwrap();
    std::fs::set_permissions(&gw, std::fs::Permissions::from_mode(0o620)).unwrap();
    let ou = dir.join("ou.json");
    std::fs::write(&ou, &bytes).unwrap();
    std::fs::set_permissions(&ou, std::fs::Permissions::from_mode(0o600)).unwrap();
    if !to_other_user(&ou) {
        std::fs::remove_file(&ou).unwrap();
    }
    assert!(std::process::Command::new("mkfifo").arg("-m").arg("600").arg(dir.join("fifo.json")).status().unwrap().success());
    std::fs::create_dir(dir.join("d.json")).unwrap();
    // A server directory owned by another user, holding a valid entry of its own server.
    let foreign_key = "https://foreign.example/mcp#app:x";
    let foreign_dir = store.server_dir(foreign_key);
    std::fs::create_dir(&foreign_dir).unwrap();
    std::fs::set_permissions(&foreign_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let foreign_entry = String::from_utf8(bytes.clone()).unwrap().replace(&key, foreign_key);
    std::fs::write(foreign_dir.join("e.json"), foreign_entry).unwrap();
    std::fs::set_permissions(foreign_dir.join("e.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
    if !to_other_user(&foreign_dir) {
        std::fs::remove_dir_all(&foreign_dir).unwrap();
    }
    // Junk at the top level.
    std::fs::write(mine.join("junk.json"), b"{").unwrap();

    let st = store.clone();
    let listed = within(10, move || st.servers().unwrap());
    assert_eq!(listed, Vec::<String>::new(), "none of them is trusted by load()");
    assert!(store.load(&key).unwrap().tokens.is_none());
    let st = store.clone();
    let k = key.clone();
    let forgotten = within(10, move || st.forget(&k).map(|h| h.is_empty()));
    assert!(matches!(forgotten, Ok(true)), "{forgotten:?}");
    assert!(out_same.exists() && out_entry.exists(), "link targets untouched");
    let _ = std::fs::remove_dir_all(&outside);
    let _ = std::fs::remove_dir_all(&mine);
}

/// A store directory that is group-writable or another user's: listing refuses, as load does.
#[test]
fn an_untrusted_store_directory_refuses_to_list() {
    let mine = temp_dir("untrusted-root");
    let (store, _s, _key) = logged_in(&mine, |_| {});
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o770)).unwrap();
    assert!(matches!(store.servers(), Err(mcp_oauth_client::StoreError::Untrusted { .. })));
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).unwrap();
    if to_other_user(&mine) {
        assert!(matches!(store.servers(), Err(mcp_oauth_client::StoreError::Untrusted { .. })));
    }
    let _ = std::fs::remove_dir_all(&mine);
}

/// The store directory itself may be a link (the user's choice): listed through it.
#[test]
fn a_linked_store_directory_is_listed() {
    let (real, link) = (temp_dir("real-root"), temp_dir("link-root"));
    let (_store, _s, key) = logged_in(&real, |_| {});
    symlink(&real, &link).unwrap();
    assert_eq!(FileStore::new(&link).servers().unwrap(), vec![key]);
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_dir_all(&real);
}

/// Forgetting an unknown key changes nothing outside the store and creates nothing but its
/// lock (a directory named by a hash) inside it.
#[test]
fn forget_of_unknown_keys_stays_inside_the_store() {
    let mine = temp_dir("unknown");
    let store = FileStore::new(&mine);
    for key in ["../../etc/passwd", "/tmp/x", "", "https://a.example/mcp#app:../../.."] {
        assert!(store.forget(key).unwrap().is_empty());
        assert!(store.server_dir(key).starts_with(&mine));
    }
    assert_eq!(store.servers().unwrap(), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&mine);
}

/// Gives `p` to another user (uid 65534): only root can, as CI runs; elsewhere the cases that
/// need a second user are left out (as `store_trust.rs` does).
fn to_other_user(p: &std::path::Path) -> bool {
    std::os::unix::fs::chown(p, Some(65534), Some(65534)).is_ok()
}
