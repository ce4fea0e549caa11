//! Review of the KeyringStore change (5aa12d8): nothing secret reaches the log, whatever the
//! keyring or the index holds (items changed behind the store's back, items that are not JSON,
//! items the keyring lost, index files that are not JSON). Its own test binary: it installs
//! the process's logger.
#![cfg(target_os = "linux")]

mod common;
mod store_contract;
use mcp_oauth_client::{KeyringBackend, KeyringStore, Persist, TokenStore};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

struct Capture(Arc<Mutex<Vec<String>>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        self.0.lock().unwrap().push(format!("{} {}", r.level(), r.args()));
    }
    fn flush(&self) {}
}

fn hex16(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
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

fn item(service: &str, idx: &serde_json::Value, i: u64) -> keyring_core::Entry {
    linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true).unwrap();
    let store: Arc<keyring_core::CredentialStore> = linux_keyutils_keyring_store::Store::new().unwrap();
    let user = format!(
        "{}.{}.{}.{i}",
        hex16(idx["server"].as_str().unwrap()),
        hex16(idx["issuer"].as_str().unwrap()),
        idx["item"].as_str().unwrap()
    );
    keyring_core::Entry::new_in_store(&store, service, &user).unwrap()
}

fn rewrite_index(path: &Path, v: &serde_json::Value) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, v.to_string()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn no_secret_reaches_the_log() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    log::set_logger(Box::leak(Box::new(Capture(lines.clone())))).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-krlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let svc = format!("mcp-oauth-review-log-{}", std::process::id());
    let store = KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(&svc);
    let key = "https://mcp.example.com/mcp#user";
    let secret_tokens = |n: u64| store_contract::tokens("https://as.example", &format!("AT-LOG-SECRET-{n}"), n);
    store.persist(key, &Persist::Client(store_contract::client("https://as.example"))).unwrap();
    store.persist(key, &Persist::Tokens(secret_tokens(1))).unwrap();
    store.load(key).unwrap();

    // 1. An item changed behind the store's back (its digest no longer matches).
    let (path, idx) = index_files(&dir).pop().unwrap();
    item(&svc, &idx, 0).set_secret(br#"{"tokens":{"access_token":"AT-LOG-SECRET-TAMPERED"}}"#).unwrap();
    store.load(key).unwrap();
    // 2. Items that match their digest but are not an entry (JSON carrying a secret, cut).
    let bytes = br#"{"server":"AT-LOG-SECRET-IN-BAD-JSON","issuer":"#.to_vec();
    let mut bad = idx.clone();
    bad["chunks"] = 1.into();
    bad["sha256"] = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>().into();
    rewrite_index(&path, &bad);
    item(&svc, &bad, 0).set_secret(&bytes).unwrap();
    store.load(key).unwrap();
    // 3. An index file that is not JSON and quotes a secret.
    std::fs::write(&path, br#"{"server": "AT-LOG-SECRET-IN-INDEX" ,,"#).unwrap();
    store.load(key).unwrap();
    // 4. A fresh write, then the keyring loses the items (reboot).
    store.persist(key, &Persist::Tokens(secret_tokens(2))).unwrap();
    let (_, idx) = index_files(&dir).pop().unwrap();
    for i in 0..idx["chunks"].as_u64().unwrap() {
        item(&svc, &idx, i).delete_credential().unwrap();
    }
    store.load(key).unwrap();
    store.persist(key, &Persist::Tokens(secret_tokens(3))).unwrap();
    store.forget(key).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // Items the test itself orphaned (the tampered ones).
    let p = linux_keyutils::KeyRing::get_persistent(linux_keyutils::KeyRingIdentifier::Session).unwrap();
    for node in p.get_links(65536).unwrap().iter() {
        if let Some(k) = node.as_key() {
            if k.metadata().is_ok_and(|m| m.get_description().ends_with(&format!("@{svc}"))) {
                let _ = k.invalidate();
            }
        }
    }

    let lines = lines.lock().unwrap();
    assert!(lines.iter().any(|l| l.contains("do not match")), "the tampered item was reported: {lines:#?}");
    for l in lines.iter() {
        for secret in ["AT-LOG-SECRET", "CS-SECRET", "RT-AT-LOG"] {
            assert!(!l.contains(secret), "{secret} in the log: {l}");
        }
    }
}
