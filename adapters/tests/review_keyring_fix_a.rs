//! Re-review of 20225fb (KeyringStore review fixes), on the kernel keyutils store.
//! Each test states what a sound store does; a failing assertion is a finding.
#![cfg(target_os = "linux")]

mod common;
mod store_contract;
use mcp_oauth_client::core::secret::{AccessToken, RefreshToken};
use mcp_oauth_client::{FileStore, KeyringBackend, KeyringStore, Persist, StoreError, TokenStore};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-rrkf-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn service(tag: &str) -> String {
    format!("mcp-oauth-rrkf-{}-{tag}", std::process::id())
}

fn join_session_keyring() {
    linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true).unwrap();
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

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn tokens(issuer: &str, at: &str, rt: &str, n: u64) -> mcp_oauth_client::TokenSet {
    let mut t = store_contract::tokens(issuer, at, n);
    t.access_token = AccessToken::new(at);
    t.refresh_token = Some(RefreshToken::new(rt));
    t
}

fn quota_line() -> String {
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    std::fs::read_to_string("/proc/key-users")
        .unwrap_or_default()
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{uid}:")))
        .unwrap_or("")
        .trim()
        .to_owned()
}

// ---- children --------------------------------------------------------------------------------

/// Fills the quota with `size`-byte logins; returns how many were stored.
fn fill(store: &KeyringStore, size: usize) -> usize {
    let mut stored = 0;
    for n in 0..40 {
        let key = format!("https://mcp{n}.example.com/mcp#user");
        let iss = format!("https://as{n}.example.com");
        let t = tokens(&iss, &format!("AT{n}-{}", "A".repeat(size)), &format!("RT{n}-OLD-{}", "R".repeat(300)), 1);
        match store.persist(&key, &Persist::Tokens(t)) {
            Ok(()) => stored += 1,
            Err(_) => {
                let _ = store.forget(&key);
                break;
            }
        }
    }
    stored
}

fn forget_all(store: &KeyringStore) {
    for k in store.servers().unwrap_or_default() {
        let _ = store.forget(&k);
    }
}

#[test]
fn review_krf_child() {
    let Ok(spec) = std::env::var("REVIEW_KRF_QUOTA") else { return };
    let mut parts = spec.split('|');
    let (dir, svc, mode) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let store = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(svc);
    let key0 = "https://mcp0.example.com/mcp#user";
    let iss0 = "https://as0.example.com";
    match mode {
        // A refresh at the quota whose token set is larger than before (a longer access token,
        // an ID token added): it cannot fit, but the login stored before must survive.
        "grow" => {
            let stored = fill(&store, 1500);
            let q = quota_line();
            let bigger = tokens(iss0, &format!("AT0-NEW-{}", "B".repeat(4500)), &format!("RT0-NEW-{}", "R".repeat(300)), 2);
            let r = store.persist(key0, &Persist::Tokens(bigger));
            let fresh = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(svc);
            let now = fresh.load(key0).map(|r| r.tokens.map(|t| t.refresh_token.map(|r| r.secret()[..8].to_owned())));
            println!("RESULT stored={stored} quota=[{q}] persist={r:?} login0_after={now:?}");
            forget_all(&store);
        }
        // A refresh at the quota (same size: it fits in place) whose in-place write the caller
        // gave up on while it ran. The login as committed before must survive.
        "late" => {
            // Two items: a size the in-place write handles (see diag_same_size_refresh_at_quota).
            let t = tokens(iss0, &format!("AT0-{}", "A".repeat(1500)), &format!("RT0-{}", "R".repeat(300)), 1);
            store.persist(key0, &Persist::Tokens(t)).unwrap();
            let stored = 1 + fill(&store, 1500);
            let q = quota_line();
            let mut lost = None;
            let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
            'outer: for rep in 0..40u64 {
                for us in (10..400).step_by(10) {
                    let slow = store.clone().with_timeout(Duration::from_micros(us));
                    let t = tokens(iss0, &format!("AT0-{}", "C".repeat(1500)), &format!("RT0-{rep:02}-{us:03}-{}", "R".repeat(300 - 9)), 2);
                    let r = slow.persist(key0, &Persist::Tokens(t));
                    let k = match &r {
                        Ok(()) => "ok".to_owned(),
                        Err(e) => e.to_string().chars().take(40).collect(),
                    };
                    *outcomes.entry(k).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(30));
                    let fresh = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(svc);
                    // Amended after b5aa809 (CI): at the quota a load may fail with a typed
                    // error (keyutils charges the links a read makes to the quota); that is not a
                    // lost login. Lost is: no error, and no tokens; or an error that persists
                    // once the quota is relieved (checked after the loop).
                    match fresh.load(key0) {
                        Ok(r) if r.tokens.is_none() => {
                            lost = Some(format!("after a persist with a {us} µs timeout that returned {r:?}"));
                            break 'outer;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            *outcomes.entry(format!("load: {}", e.to_string().chars().take(40).collect::<String>())).or_default() += 1
                        }
                    }
                }
            }
            if lost.is_none() {
                // The quota relieved (the other logins forgotten, the kernel's collector given
                // time): the login committed last must load.
                for k in store.servers().unwrap_or_default() {
                    if k != key0 {
                        let _ = store.forget(&k);
                    }
                }
                std::thread::sleep(Duration::from_millis(1500));
                let fresh = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(svc);
                match fresh.load(key0) {
                    Ok(r) if r.tokens.is_some() => {}
                    other => lost = Some(format!("after relieving the quota: {other:?}")),
                }
            }
            println!("RESULT stored={stored} quota=[{q}] lost={lost:?} outcomes={outcomes:?}");
            forget_all(&store);
        }
        // Diagnostic: the same refresh as "late", without a short timeout.
        "same" | "same2" => {
            let size0 = if mode == "same2" { 1500 } else { 7000 };
            let t = tokens(iss0, &format!("AT0-{}", "A".repeat(size0)), &format!("RT0-{}", "R".repeat(300)), 1);
            store.persist(key0, &Persist::Tokens(t)).unwrap();
            let stored = 1 + fill(&store, 1500);
            let q = quota_line();
            let mut res = Vec::new();
            for rep in 0..3 {
                let t = tokens(iss0, &format!("AT0-{}", "C".repeat(size0)), &format!("RT0-{rep}-10-{}", "R".repeat(300 - 8)), 2);
                let r = store.persist(key0, &Persist::Tokens(t));
                let fresh = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(svc);
                let ok = fresh.load(key0).map(|r| r.tokens.is_some());
                res.push(format!("{r:?} then loads={ok:?} [{}]", quota_line()));
            }
            println!("RESULT stored={stored} quota=[{q}] {res:?}");
            forget_all(&store);
        }
        _ => {}
    }
    purge(svc);
}

fn run_quota_child(mode: &str) -> String {
    let uid = 40000 + ((std::process::id() + mode.len() as u32 * 7) % 20000);
    let dir = scratch(&format!("quota-{mode}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "review_krf_child", "--test-threads=1", "--nocapture"])
        .env("REVIEW_KRF_QUOTA", format!("{}/idx|{}|{mode}", dir.display(), service(mode)))
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        .find_map(|l| l.find("RESULT").map(|at| l[at..].to_owned()))
        .unwrap_or_else(|| panic!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
}

// ---- 1. The in-place write at the quota --------------------------------------------------------

/// Non-root user at the keyutils quota; login 0's refresh returns a larger token set, which
/// does not fit. The persist fails (Full): fine. The login stored before must still load.
#[test]
fn a_refresh_that_does_not_fit_at_the_quota_keeps_the_stored_login() {
    let line = run_quota_child("grow");
    assert!(line.contains("persist=Err"), "{line}");
    assert!(line.contains("login0_after=Ok(Some(Some(\"RT0-OLD-\")))"), "{line}");
}

/// Non-root user at the quota; a refresh written in place whose caller gave up waiting (the
/// timeout) while the write ran. The committed login must survive.
#[test]
fn an_in_place_write_after_its_timeout_does_not_delete_the_committed_login() {
    let line = run_quota_child("late");
    assert!(line.contains("lost=None"), "{line}");
}

/// Non-root user at the quota; a login of four items (7 KB: an ID token or DPoP key makes one
/// this size) refreshes with a token set of the same size (3 bytes shorter). It must succeed,
/// as the same refresh of a two-item login does ("same2"), or at least keep the login.
#[test]
fn a_same_size_refresh_of_a_four_item_login_at_the_quota_keeps_it() {
    let line = run_quota_child("same");
    let line2 = run_quota_child("same2");
    assert!(!line.contains("loads=Ok(false)") && !line2.contains("loads=Ok(false)"), "{line}\n{line2}");
}

/// Many keyring calls time out (a keyring that answers late); once it answers again, the store
/// works again (no stuck-counter drift).
#[test]
fn timeouts_do_not_leave_the_store_failing_fast() {
    let dir = scratch("drift");
    let store = KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(service("drift"));
    let key = "https://drift.example.com/mcp#user";
    store.persist(key, &Persist::Tokens(tokens("https://as.drift", "AT-1", "RT-1", 1))).unwrap();
    let fast = store.clone().with_timeout(Duration::from_micros(1));
    let mut timeouts = 0;
    for n in 0..200u64 {
        if fast.persist(key, &Persist::Tokens(tokens("https://as.drift", &format!("AT-{n}"), &format!("RT-{n}"), n))).is_err() {
            timeouts += 1;
        }
        let _ = fast.load(key);
    }
    std::thread::sleep(Duration::from_millis(500));
    let r = store.persist(key, &Persist::Tokens(tokens("https://as.drift", "AT-LAST", "RT-LAST", 999)));
    let back = store.load(key).map(|r| r.tokens.map(|t| t.access_token.secret().to_owned()));
    let _ = store.forget(key);
    let left = items_of(&service("drift")).len();
    purge(&service("drift"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(timeouts > 0);
    assert!(r.is_ok() && back.as_ref().is_ok_and(|b| b.as_deref() == Some("AT-LAST")), "{r:?} {back:?}");
    assert_eq!(left, 0, "items left after forget");
}

/// A planted `.pending` record naming the committed items: the next write must not delete them.
#[test]
fn a_pending_record_naming_the_committed_items_does_not_delete_them() {
    let dir = scratch("pend");
    let store = KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(service("pend"));
    let key = "https://pend.example.com/mcp#user";
    let iss = "https://as.pend";
    store.persist(key, &Persist::Tokens(tokens(iss, "AT-P", "RT-P", 1))).unwrap();
    let idx_path = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let idx: serde_json::Value = serde_json::from_slice(&std::fs::read(&idx_path).unwrap()).unwrap();
    let pending = idx_path.with_extension("pending");
    let v = serde_json::json!({"server": key, "issuer": iss, "items": {idx["item"].as_str().unwrap(): idx["chunks"]}});
    std::fs::write(&pending, v.to_string()).unwrap();
    std::fs::set_permissions(&pending, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    store.persist(key, &Persist::Client(store_contract::client(iss))).unwrap();
    let fresh = KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(service("pend"));
    let back = fresh.load(key).map(|r| (r.tokens.is_some(), r.clients.len()));
    let _ = store.forget(key);
    purge(&service("pend"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(back.ok(), Some((true, 1)));
}

// ---- 2. Orphaned secrets -------------------------------------------------------------------------

/// Child: logs in to server after server (each a first login), until killed.
#[test]
fn review_krf_writer() {
    let Ok(spec) = std::env::var("REVIEW_KRF_WRITER") else { return };
    let (dir, svc) = spec.split_once('|').unwrap();
    let store = KeyringStore::new(dir, KeyringBackend::KeyUtils).with_service(svc);
    for n in 0u64.. {
        let key = format!("https://orphan{n}.example.com/mcp#user");
        let _l = store.lock(&key).unwrap();
        let t = store_contract::tokens("https://as.example", &format!("AT-ORPHAN-{n}-{}", "x".repeat(40_000)), n + 1);
        store.persist(&key, &Persist::Tokens(t)).unwrap();
    }
}

/// A process killed during a first login (no index yet). The user then logs out of
/// everything (`mcp-oauth logout`: `servers()`, then forget each). No item holding a token may
/// stay in the keyring.
#[test]
fn a_first_login_killed_mid_write_is_cleared_by_logout_of_everything() {
    let dir = scratch("first");
    let svc = service("first");
    let mut orphans = Vec::new();
    for round in 0..10u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "review_krf_writer", "--test-threads=1"])
            .env("REVIEW_KRF_WRITER", format!("{}|{svc}", dir.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200 + 29 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let store = KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(&svc);
        for k in store.servers().unwrap() {
            store.forget(&k).unwrap();
        }
        let left: Vec<String> = items_of(&svc).into_iter().filter(|(_, v)| contains(v, "AT-ORPHAN-")).map(|(d, _)| d).collect();
        orphans.extend(left);
        purge(&svc);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        orphans.is_empty(),
        "after logging out of everything, {} item(s) holding a token stayed: {:?}",
        orphans.len(),
        &orphans[..orphans.len().min(4)]
    );
}

// ---- 3. auto's per-server routing ----------------------------------------------------------------

/// A long-running client on `store::auto` whose login for S is in the files (so S is routed
/// to files for the life of its store). The user runs `mcp-oauth logout S` then
/// `mcp-oauth login S` (each a fresh `auto`). The running client must see the new login (and
/// take the same lock as the CLI).
#[test]
fn a_running_client_on_auto_sees_a_login_made_after_logout() {
    let dir = scratch("route");
    let key = "https://route.example.com/mcp#user";
    let iss = "https://as.route.example";
    FileStore::new(&dir).persist(key, &Persist::Tokens(tokens(iss, "AT-FILE", "RT-FILE", 1))).unwrap();
    let app = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
    assert!(app.keyring.is_some());
    assert!(app.store.load(key).unwrap().tokens.is_some());

    // `mcp-oauth logout S`, then `mcp-oauth login S`: each its own auto.
    let cli = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
    cli.store.forget(key).unwrap();
    let cli = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
    {
        let _l = cli.store.lock(key).unwrap();
        cli.store.persist(key, &Persist::Tokens(tokens(iss, "AT-NEW", "RT-NEW", 2))).unwrap();
    }
    let seen = app.store.load(key).unwrap().tokens.map(|t| t.access_token.secret().to_owned());
    // Single flight: while the app holds its lock, can the CLI take its own?
    let held = app.store.lock(key).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let cli_store = cli.store.clone();
    std::thread::spawn(move || {
        let l = cli_store.lock("https://route.example.com/mcp#user");
        let _ = tx.send(l.is_ok());
        drop(l);
    });
    let both = rx.recv_timeout(Duration::from_secs(2)).is_ok();
    drop(held);
    let _ = cli.store.forget(key);
    let _ = app.store.forget(key);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        seen.as_deref() == Some("AT-NEW") && !both,
        "the running client sees {seen:?} (the CLI stored AT-NEW in the keyring); both took the server's lock at once: {both}"
    );
}

#[allow(dead_code)]
fn _unused(_: &Path, _: StoreError) {}
