//! Review of the KeyringStore change (5aa12d8): behaviour found sound, kept as tests. Kernel
//! keyutils, one service name per test, everything created removed.
#![cfg(target_os = "linux")]

mod common;
mod store_contract;
use mcp_oauth_client::{KeyringBackend, KeyringStore, Persist, StoreError, TokenStore};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-krb-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn service(tag: &str) -> String {
    format!("mcp-oauth-review-b-{}-{tag}", std::process::id())
}

fn keyutils(dir: &Path, tag: &str) -> KeyringStore {
    KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(service(tag))
}

fn join_session_keyring() {
    linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true).unwrap();
}

fn hex16(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn items_of(service: &str) -> Vec<(String, Vec<u8>)> {
    join_session_keyring();
    let p = linux_keyutils::KeyRing::get_persistent(linux_keyutils::KeyRingIdentifier::Session).unwrap();
    let suffix = format!("@{service}");
    let mut out = Vec::new();
    for node in p.get_links(65536).unwrap().iter() {
        if let Some(k) = node.as_key() {
            if let Ok(m) = k.metadata() {
                if m.get_description().ends_with(&suffix) {
                    out.push((m.get_description().to_owned(), k.read_to_vec().unwrap_or_default()));
                }
            }
        }
    }
    out
}

fn purge(service: &str) {
    join_session_keyring();
    let p = linux_keyutils::KeyRing::get_persistent(linux_keyutils::KeyRingIdentifier::Session).unwrap();
    let suffix = format!("@{service}");
    for node in p.get_links(65536).unwrap().iter() {
        if let Some(k) = node.as_key() {
            if k.metadata().is_ok_and(|m| m.get_description().ends_with(&suffix)) {
                let _ = k.invalidate();
            }
        }
    }
}

fn index_files(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|x| x == "json") {
                out.push((f.path(), serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap()));
            }
        }
    }
    out
}

fn plant(path: &Path, v: &serde_json::Value) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, v.to_string()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

const A: &str = "https://a.example.com/mcp#user";
const B: &str = "https://b.example.com/mcp#user";

/// A's index copied into B's directory (as is, or with B's name written in): B's load never
/// returns A's tokens, B is not listed twice, and forgetting B leaves A's items alone.
#[test]
fn an_index_naming_another_servers_items_gets_nothing_and_deletes_nothing() {
    let dir = scratch("cross");
    let store = keyutils(&dir, "cross");
    store.persist(A, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-A", 1))).unwrap();
    store.persist(B, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-B", 1))).unwrap();
    let (a_path, a_idx) = index_files(&dir).into_iter().find(|(_, v)| v["server"] == A).unwrap();
    let b_dir = dir.join(hex16(B));
    // As is: names server A, in B's directory.
    plant(&b_dir.join("copy.json"), &a_idx);
    // Rewritten to name B (and another issuer), still pointing at A's item name.
    let mut forged = a_idx.clone();
    forged["server"] = B.into();
    forged["issuer"] = "https://evil.example".into();
    plant(&b_dir.join("forged.json"), &forged);
    // Same issuer as B's own, A's item name: the entry's digest and names do not match.
    let mut forged2 = a_idx.clone();
    forged2["server"] = B.into();
    plant(&b_dir.join("forged2.json"), &forged2);

    let r = store.load(B).unwrap();
    assert_eq!(r.tokens.unwrap().access_token.secret(), "AT-B");
    assert_eq!(store.servers().unwrap(), vec![A.to_owned(), B.to_owned()]);
    store.forget(B).unwrap();
    assert_eq!(store.load(A).unwrap().tokens.unwrap().access_token.secret(), "AT-A", "A's items survived B's forget");
    assert!(a_path.exists());
    store.forget(A).unwrap();
    purge(&service("cross"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A link planted where an index file goes is not followed: not read, and a write replaces the
/// link instead of writing through it. A linked server directory is refused.
#[test]
fn planted_links_are_not_followed() {
    let dir = scratch("links");
    let store = keyutils(&dir, "links");
    store.persist(A, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-A", 1))).unwrap();
    let (a_path, _) = index_files(&dir).pop().unwrap();
    let a_before = std::fs::read(&a_path).unwrap();
    // B's index path is a link to A's index file.
    std::fs::create_dir_all(dir.join(hex16(B))).unwrap();
    let b_path = dir.join(hex16(B)).join(format!("{}.json", hex16("https://as.example")));
    std::os::unix::fs::symlink(&a_path, &b_path).unwrap();
    assert!(store.load(B).unwrap().tokens.is_none());
    store.persist(B, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-B", 1))).unwrap();
    assert!(!std::fs::symlink_metadata(&b_path).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read(&a_path).unwrap(), a_before, "A's index was not written through the link");
    assert_eq!(store.load(A).unwrap().tokens.unwrap().access_token.secret(), "AT-A");
    store.forget(B).unwrap();

    // A server directory that is a link elsewhere is refused.
    let elsewhere = scratch("links-elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join(hex16("https://c.example.com/mcp#user"))).unwrap();
    let r = store.persist("https://c.example.com/mcp#user", &Persist::Tokens(store_contract::tokens("https://as.example", "AT-C", 1)));
    assert!(matches!(r, Err(StoreError::Untrusted { .. })), "{r:?}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    store.forget(A).unwrap();
    purge(&service("links"));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&elsewhere);
}

/// A load never walks a huge item count: the first missing item ends it.
#[test]
fn a_huge_item_count_does_not_slow_load() {
    let dir = scratch("huge-load");
    let store = keyutils(&dir, "huge-load").with_timeout(Duration::from_secs(3));
    store.persist(A, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-A", 1))).unwrap();
    let (path, mut idx) = index_files(&dir).pop().unwrap();
    idx["issuer"] = "https://other.example".into();
    idx["chunks"] = u32::MAX.into();
    plant(&path.parent().unwrap().join("huge.json"), &idx);
    let t = Instant::now();
    assert_eq!(store.load(A).unwrap().tokens.unwrap().access_token.secret(), "AT-A");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let _ = std::fs::remove_file(path.parent().unwrap().join("huge.json"));
    store.forget(A).unwrap();
    purge(&service("huge-load"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Items are immutable once named: a reader that holds the lock (as the client does before it
/// refreshes or logs in) always sees the whole newest entry while other processes keep writing.
#[test]
fn a_reader_holding_the_lock_always_sees_the_whole_entry() {
    let dir = scratch("locked-reader");
    let svc = service("locked-reader");
    let store = KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(&svc);
    store.persist(A, &Persist::Client(store_contract::client("https://as.example"))).unwrap();
    store.persist(A, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-0", 1))).unwrap();
    let writers: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "review_krb_child", "--test-threads=1"])
                .env("REVIEW_KRB_WRITER", format!("{}|{svc}", dir.display()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut loads, mut bad) = (0, 0);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        let _l = store.lock(A).unwrap();
        let r = store.load(A).unwrap();
        loads += 1;
        if r.tokens.is_none() || r.clients.is_empty() {
            bad += 1;
        }
    }
    for mut w in writers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let _ = store.forget(A);
    purge(&svc);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(loads > 20, "the writers never let go of the lock: {loads} loads");
    assert_eq!(bad, 0, "{bad} of {loads} locked loads missed the entry");
}

#[test]
fn review_krb_child() {
    if let Ok(spec) = std::env::var("REVIEW_KRB_WRITER") {
        let (dir, svc) = spec.split_once('|').unwrap();
        let store = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(svc);
        for n in 0u64.. {
            let _l = store.lock(A).unwrap();
            let t = store_contract::tokens("https://as.example", &format!("AT-W-{n}-{}", "x".repeat(5000)), n + 2);
            store.persist(A, &Persist::Tokens(t)).unwrap();
        }
    }
}

/// The probe leaves no item behind, and forgetting a server leaves none of its items.
#[test]
fn probe_and_forget_leave_no_items() {
    let dir = scratch("clean");
    let svc = service("clean");
    let store = keyutils(&dir, "clean");
    for _ in 0..3 {
        store.probe().unwrap();
    }
    store.persist(A, &Persist::Client(store_contract::client("https://as.example"))).unwrap();
    let mut big = store_contract::tokens("https://as.example", &format!("AT-{}", "y".repeat(9000)), 1);
    big.dpop_key = None;
    store.persist(A, &Persist::Tokens(big)).unwrap();
    store.persist(A, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-2", 2))).unwrap();
    assert_eq!(
        items_of(&svc).len(),
        1,
        "one item for the current, small entry: {:?}",
        items_of(&svc).iter().map(|i| &i.0).collect::<Vec<_>>()
    );
    store.forget(A).unwrap();
    assert!(items_of(&svc).is_empty());
    purge(&svc);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a user sees of the store (Debug of the store and of auto's choice, an error's
/// Display and Debug) holds no secret, whatever went wrong.
#[test]
fn descriptions_and_errors_hold_no_secret() {
    let dir = scratch("shown");
    let store = keyutils(&dir, "shown");
    store.persist(A, &Persist::Client(store_contract::client("https://as.example"))).unwrap();
    store.persist(A, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-SHOWN-SECRET", 1))).unwrap();
    let mut shown = vec![format!("{store:?}"), format!("{:?}", store.describe(A).unwrap())];
    // Failures: a timeout, a write the keyring refuses (an item description it rejects).
    let slow = keyutils(&dir, "shown").with_timeout(Duration::from_micros(1));
    if let Err(e) = slow.load(A) {
        shown.push(format!("{e} {e:?}"));
    }
    let err = keyutils(&dir, "shown")
        .with_service("bad\u{0}service")
        .persist(A, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-SHOWN-SECRET", 2)));
    shown.push(format!("{err:?}"));
    if let Err(e) = err {
        shown.push(e.to_string());
    }
    std::thread::sleep(Duration::from_millis(300));
    for s in &shown {
        for secret in ["AT-SHOWN-SECRET", "RT-AT-SHOWN", "CS-SECRET"] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
    }
    store.forget(A).unwrap();
    purge(&service("shown"));
    purge("bad\u{0}service");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = Arc::new(());
}
