//! Ninth review (of 003f126, efd4b8a, 7fa423e): the store revision, end to end through the
//! driver. Tests named `sound_*` record what held; the others fail against the reviewed code.
//!
//! Finding 4 (a wrapper of the application's own that keeps the default `revision` judges by
//! the tokens alone, so the ABA case is open through it) is documented on
//! `TokenStore::revision` and in the README, not fixed (a wrapper's method cannot be guessed);
//! its test is not kept. Two tests are amended where they say why.

mod common;
mod store_contract;
#[allow(unused_imports)]
use common::*;
use mcp_oauth_client::core::Restored;
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{Clock, FileStore, MemoryStore, Persist, StoreError, Timestamp, TokenStore};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-m-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Every `*.json` file under `dir` (one level of server directories), with its bytes.
fn entry_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let p = f.path();
            if p.extension().is_some_and(|x| x == "json") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// A `FileStore` whose next save of tokens fails the way `FileStore::persist` can fail since
/// 7fa423e: the revision file is written first (it moves), then the entry's write fails (a
/// full disk or quota: the revision is 20 bytes, the entry a kilobyte; a rename refused). The
/// entry files are left as they were; the revision is not. KeyringStore does the same when the
/// keyring refuses or times out after `move_revision` (`write_items`).
struct EntryWriteFails {
    inner: FileStore,
    dir: PathBuf,
    armed: AtomicBool,
}

impl EntryWriteFails {
    // Amended (was: the whole save run, then the entry files put back and an error returned,
    // which left the revision moved by a write that "failed"): the entry's write now fails for
    // real, in `FileStore::persist` itself (a non-empty directory where the entry is renamed
    // to, as a refused rename), after the revision moved; the entry file is put back as it was
    // after. What the store then holds is exactly what a real failure leaves, revision included.
    fn fail(&self, p: &Persist, write: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
        if matches!(p, Persist::Tokens(_)) && self.armed.swap(false, Ordering::SeqCst) {
            let before = entry_files(&self.dir);
            for (path, _) in &before {
                std::fs::remove_file(path).unwrap();
                std::fs::create_dir(path).unwrap();
                std::fs::write(path.join("in-the-way"), b"x").unwrap();
            }
            let result = write();
            for (path, bytes) in before {
                std::fs::remove_dir_all(&path).unwrap();
                std::fs::write(&path, bytes).unwrap();
            }
            assert!(result.is_err(), "the entry's write failed");
            return result;
        }
        write()
    }
}

impl TokenStore for EntryWriteFails {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.inner.load(server)
    }
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.fail(p, || self.inner.persist(server, p))
    }
    fn persist_locked(&self, server: &str, p: &Persist, lock: &StoreLock) -> Result<(), StoreError> {
        self.fail(p, || self.inner.persist_locked(server, p, lock))
    }
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.inner.lock(server)
    }
    fn try_lock(&self, server: &str) -> Result<Option<StoreLock>, StoreError> {
        self.inner.try_lock(server)
    }
    fn wait_unlocked(&self, server: &str) -> Result<bool, StoreError> {
        self.inner.wait_unlocked(server)
    }
    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        self.inner.revision(server)
    }
}

/// One login, a refresh (rotating) whose save fails once, then the next refresh: how many
/// browser logins it took, and the refresh tokens presented.
fn refresh_after_one_failed_save(store: Arc<dyn TokenStore>, arm: impl Fn()) -> (usize, Vec<String>, String) {
    let s = server(|o| {
        o.token_lifetime = Some(120);
        o.refresh_tokens = true;
        o.rotate_refresh = true;
    });
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let (i, log) = following_browser();
    let mut mcp = Adapter::Blocking.with_parts(config(&s), store, i, None, clock.clone()).unwrap();
    mcp.list_tools().unwrap();
    arm();
    clock.0.fetch_add(100_000, Ordering::SeqCst);
    let failed = mcp.list_tools().map(|t| t.len());
    clock.0.fetch_add(100_000, Ordering::SeqCst);
    let next = mcp.list_tools().map(|t| t.len());
    let presented: Vec<String> = s
        .lock()
        .token_requests()
        .iter()
        .filter_map(|t| t.params.iter().find(|(k, _)| k == "refresh_token").map(|(_, v)| v.clone()))
        .collect();
    let logins = log.lock().unwrap().opened.len();
    (logins, presented, format!("the failed call: {failed:?}; the next: {next:?}"))
}

/// Finding 1 (high): FileStore moves the revision before it writes the entry (7fa423e), so a
/// save that fails at the entry leaves the revision moved by the client's own failed write. At
/// the next call the driver takes that for another instance's change, drops the write-back,
/// adopts the store's tokens, whose refresh token the failed save's refresh rotated away, and
/// the user logs in again (on a server that revokes on reuse, the grant is gone). The comment
/// in `persist` says this "only makes a client careful"; it costs the grant.
#[test]
fn a_save_that_fails_after_the_file_revision_moved_costs_the_grant() {
    let dir = scratch("entry-fails");
    let store = Arc::new(EntryWriteFails { inner: FileStore::new(&dir), dir: dir.clone(), armed: AtomicBool::new(false) });
    let s2 = store.clone();
    let (logins, presented, calls) = refresh_after_one_failed_save(store, move || s2.armed.store(true, Ordering::SeqCst));
    println!("logins {logins}, refresh tokens presented {presented:?}; {calls}");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        logins, 1,
        "one failed entry write (the revision had moved) cost the grant: {logins} browser logins; refresh tokens \
         presented in order {presented:?}; {calls}"
    );
}

/// What held: the same failed refresh save on FileStore when nothing at all was written (the
/// failure before the revision) keeps the grant.
#[test]
fn sound_a_refresh_save_that_fails_before_the_revision_keeps_the_grant() {
    let dir = scratch("nothing-written");
    let store = Arc::new(store_contract::FailingFirstSave { inner: Arc::new(FileStore::new(&dir)), armed: AtomicBool::new(false) });
    let s2 = store.clone();
    let (logins, presented, calls) = refresh_after_one_failed_save(store, move || s2.armed.store(true, Ordering::SeqCst));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(logins, 1, "{presented:?}; {calls}");
}

/// Finding 3 (low): a revision file that does not read makes FileStore answer `Ok(None)`
/// (7fa423e), which the driver takes for `Revision::NotKept`, a store that keeps no revision,
/// and `(NotKept, NotKept)` compares as unchanged, empty store or not. The trait's doc says a
/// client "takes an emptied store for changed" when the revision cannot be read. X looked while
/// the file did not read; its login's save failed; Y logged in and out (the revision file is
/// written again); the file does not read again when X writes back: X undoes the logout.
#[test]
fn a_revision_file_that_does_not_read_is_taken_for_a_store_that_keeps_none() {
    let s = server(|o| {
        o.refresh_tokens = true;
        o.revocation = true;
    });
    let key = config(&s).store_key();
    let dir = scratch("unreadable");
    let files = FileStore::new(&dir);
    // Some earlier login and logout: the server's directory and revision file exist.
    files.persist(&key, &Persist::Tokens(store_contract::tokens("https://as.earlier", "earlier", 1))).unwrap();
    files.persist(&key, &Persist::ForgetTokens { issuer: "https://as.earlier".into() }).unwrap();
    let rev = files.server_dir(&key).join("revision");
    // Amended twice. Was `assert_eq!(…, None)`, the finding's own precondition; then (round 9's
    // fix) an error. Since round 10, content that is not a number stands for itself (a digest
    // of it): the same damage read twice is no change, so that a first login whose save failed
    // while the file was damaged is still written back (round 10's finding 2). What this test
    // damages twice is therefore two different damages, as two independent ones are; the same
    // bytes written twice, with the store's own writes between, is not told from no change.
    let damaged = std::cell::Cell::new(0u8);
    let damage = || {
        damaged.set(damaged.get() + 1);
        std::fs::write(&rev, format!("\0\0\0 not a number {}", damaged.get())).unwrap()
    };
    damage();
    assert!(files.revision(&key).unwrap().is_some_and(|r| r != 0), "a digest of the damage");

    let failing = Arc::new(store_contract::FailingFirstSave { inner: Arc::new(FileStore::new(&dir)), armed: AtomicBool::new(true) });
    let (browser, _) = following_browser();
    let mut x = Adapter::Blocking.with_oauth(config(&s), failing.clone(), browser.clone()).unwrap();
    assert!(x.list_tools().is_err(), "X's save failed");
    // Y logs in, then the fleet logs out.
    Adapter::Blocking.with_oauth(config(&s), Arc::new(FileStore::new(&dir)), browser.clone()).unwrap().list_tools().unwrap();
    let report = Adapter::Blocking.with_oauth(config(&s), Arc::new(FileStore::new(&dir)), browser).unwrap().logout().unwrap();
    assert!(report.forgotten);
    let after_logout = files.revision(&key).unwrap();
    damage();
    let next = x.list_tools().map(|t| t.len());
    let after = files.load(&key).unwrap().tokens.map(|t| t.access_token.secret().to_owned());
    let logins = s.lock().authorization_requests().len();
    println!("revision after the logout {after_logout:?}; X's call {next:?}; stored after it {after:?}; logins {logins}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        after.is_none() || logins >= 3,
        "X wrote its login back over the logout: the unreadable revision compared as 'keeps none' both times (X's call \
         {next:?}, logins {logins})"
    );
}

/// What held: the same ABA sequence on a wrapper that forwards `revision`.
#[test]
fn sound_a_forwarding_wrapper_keeps_the_logout() {
    store_contract::a_logout_elsewhere_after_a_failed_first_save_is_kept(Arc::new(store_contract::FailingFirstSave {
        inner: Arc::new(MemoryStore::new()),
        armed: AtomicBool::new(false),
    }));
}

#[cfg(all(target_os = "linux", feature = "keyring"))]
mod auto_store {
    use super::*;
    use mcp_oauth_client::KeyringBackend;
    use std::time::Duration;

    /// Finding 2 (medium; reversed, see the end): the auto store (`Routed`) reads the revision of whichever store the
    /// server is routed to now: the keyring index's while the file store holds nothing, the
    /// file store's while it holds the login. A login and a logout in the file store (an
    /// application on `FileStore::in_default_dir()`, which `auto` documents as sharing it, or
    /// the CLI on a day the keyring did not answer) move only the file store's revision; X,
    /// routed to the keyring before and after, sees its revision unchanged and writes its login
    /// back over the logout (into the keyring).
    #[test]
    fn a_login_and_logout_in_the_file_store_are_undone_through_the_auto_store() {
        linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true).unwrap();
        let s = server(|o| {
            o.refresh_tokens = true;
            o.revocation = true;
        });
        let key = config(&s).store_key();
        let dir = scratch("auto");
        let chosen = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
        assert_eq!(chosen.keyring, Some(KeyringBackend::KeyUtils), "{chosen:?}");
        let failing = Arc::new(store_contract::FailingFirstSave { inner: chosen.store.clone(), armed: AtomicBool::new(true) });
        let (browser, _) = following_browser();
        let mut x = Adapter::Blocking.with_oauth(config(&s), failing.clone(), browser.clone()).unwrap();
        assert!(x.list_tools().is_err(), "X's save failed");
        assert!(chosen.store.load(&key).unwrap().tokens.is_none());

        // The application sharing the file store logs in, then out.
        Adapter::Blocking.with_oauth(config(&s), Arc::new(FileStore::new(&dir)), browser.clone()).unwrap().list_tools().unwrap();
        assert!(FileStore::new(&dir).load(&key).unwrap().tokens.is_some());
        let report = Adapter::Blocking.with_oauth(config(&s), Arc::new(FileStore::new(&dir)), browser).unwrap().logout().unwrap();
        assert!(report.forgotten, "{report:?}");
        assert!(chosen.store.load(&key).unwrap().tokens.is_none(), "logged out");

        let next = x.list_tools().map(|t| t.len());
        let after = chosen.store.load(&key).unwrap().tokens.map(|t| t.access_token.secret().to_owned());
        let logins = s.lock().authorization_requests().len();
        println!("X's call {next:?}; stored after it {after:?}; logins at the AS {logins}");
        let _ = chosen.store.forget(&key);
        let _ = std::fs::remove_dir_all(&dir);
        // Amended (reversed by round 10, `review_redis_n.rs`): was "X must not write back". X
        // reads the keyring (its registration is there) before and after; the login and logout
        // were made in the files, which X never reads and which never held X's tokens, so they
        // do not concern X's write-back: mixing the file store's revision in made a keyring
        // client throw away its rotated grant for them. X's login is written back into the
        // keyring, as its save would have put it there, and no new login is needed.
        assert_eq!(logins, 2, "X's call {next:?}");
        assert!(after.is_some(), "X's login was written back into the keyring (X's call {next:?})");
    }
}
