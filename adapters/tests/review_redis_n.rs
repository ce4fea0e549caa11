//! Tenth review (of 4c3b434): `RevisionMove`, the auto store's mixed revision, and a revision
//! that does not read as an error. Tests named `sound_*` record what held; the others fail
//! against the reviewed code.

mod common;
mod redis_support;
mod store_contract;
#[allow(unused_imports)]
use common::*;
use mcp_oauth_client::{Clock, FileStore, Persist, Timestamp, TokenStore};
use redis_support::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

fn hex16(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One login, a refresh (rotating) whose save fails once, `between` (another party's doing),
/// then the next refresh: the browser logins it took, the refresh tokens presented, the calls.
fn refresh_after_one_failed_save(store: Arc<dyn TokenStore>, arm: impl Fn(), between: impl FnOnce(&str)) -> (usize, Vec<String>, String) {
    let s = server(|o| {
        o.token_lifetime = Some(120);
        o.refresh_tokens = true;
        o.rotate_refresh = true;
    });
    let key = config(&s).store_key();
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let (i, log) = following_browser();
    let mut mcp = Adapter::Blocking.with_parts(config(&s), store, i, None, clock.clone()).unwrap();
    mcp.list_tools().unwrap();
    arm();
    clock.0.fetch_add(100_000, Ordering::SeqCst);
    let failed = mcp.list_tools().map(|t| t.len());
    between(&key);
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

/// A first login on an empty store whose save fails once, then the next call: the browser
/// logins it took, and whether the store then holds tokens.
fn first_login_whose_save_failed(store: Arc<dyn TokenStore>, prepare: impl FnOnce(&str)) -> (usize, bool, String) {
    let s = server(|o| o.refresh_tokens = true);
    let key = config(&s).store_key();
    prepare(&key);
    let failing = Arc::new(store_contract::FailingFirstSave { inner: store.clone(), armed: AtomicBool::new(true) });
    let (browser, log) = following_browser();
    let mut x = Adapter::Blocking.with_oauth(config(&s), failing, browser).unwrap();
    let first = x.list_tools().map(|t| t.len());
    let next = x.list_tools().map(|t| t.len());
    let logins = log.lock().unwrap().opened.len();
    let holds = store.load(&key).unwrap().tokens.is_some();
    (logins, holds, format!("the failed call: {first:?}; the next: {next:?}"))
}

/// Finding 2 (medium/low): a Redis revision that does not read is an error now, which the
/// driver takes as `Unknown`, and `(empty, Unknown)` against `(empty, Unknown)` counts as a
/// change. The store's own writes always SET a number, so a revision that still does not read
/// proves nothing moved it; yet a first login whose save failed once is thrown away at the
/// next call (the warning says another instance replaced it) and the user logs in again. The
/// same value, unreadable, stays so until some save succeeds: every client on the server pays.
#[test]
fn an_unreadable_redis_revision_costs_a_first_login_whose_save_failed() {
    let r = Redis::start("n-garbage-rev");
    let store = r.store();
    let mut raw = r.raw();
    let check = store.clone();
    let (logins, holds, calls) = first_login_whose_save_failed(Arc::new(store), |key| {
        // A value the store did not write (another tool, an operator, a key-name collision).
        let revision = format!("mcp-oauth:{{{}}}:revision", hex16(key));
        let _: () = redis::cmd("SET").arg(&revision).arg("not-a-number").query(&mut raw).unwrap();
        // Amended (was `is_err()`, this finding's precondition): a value that is not a number
        // now reads as a digest of itself, the same each time.
        assert!(check.revision(key).unwrap().is_some_and(|r| r != 0), "precondition: a value the store did not write");
    });
    println!("logins {logins}; the store holds tokens after: {holds}; {calls}");
    assert_eq!(logins, 1, "a transient save failure cost the first login ({logins} browser logins); {calls}");
}

/// What held: the same first login on a revision that reads keeps the grant.
#[test]
fn sound_a_first_login_whose_save_failed_is_written_back_when_the_revision_reads() {
    let r = Redis::start("n-good-rev");
    let (logins, holds, calls) = first_login_whose_save_failed(Arc::new(r.store()), |_| {});
    assert_eq!((logins, holds), (1, true), "{calls}");
}

#[cfg(all(target_os = "linux", feature = "keyring"))]
mod auto_store {
    use super::*;
    use mcp_oauth_client::KeyringBackend;
    use std::time::Duration;

    fn session() {
        linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true).unwrap();
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-review-n-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Runs the failed-refresh-save sequence on the auto store (the login in the keyring), with
    /// `between` done to the file store alone.
    fn on_auto(tag: &str, between: impl FnOnce(&FileStore, &str)) -> (usize, Vec<String>, String) {
        session();
        let dir = scratch(tag);
        let chosen = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
        assert_eq!(chosen.keyring, Some(KeyringBackend::KeyUtils), "{chosen:?}");
        let failing = Arc::new(store_contract::FailingFirstSave { inner: chosen.store.clone(), armed: AtomicBool::new(false) });
        let f2 = failing.clone();
        let files = FileStore::new(&dir);
        let mut key_seen = String::new();
        let out = refresh_after_one_failed_save(
            failing,
            move || f2.armed.store(true, Ordering::SeqCst),
            |key| {
                key_seen = key.to_owned();
                assert!(files.load(key).unwrap().tokens.is_none(), "precondition: the login is in the keyring, not the files");
                between(&files, key);
            },
        );
        let _ = chosen.store.forget(&key_seen);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    /// Finding 1 (medium): the auto store's revision mixes the file store's into the keyring's
    /// (4c3b434), so a write to the file store alone (an application on
    /// `FileStore::in_default_dir()`, or `auto` on a day the keyring did not answer, which falls
    /// back to those files) shows as a change to a client whose login is in the keyring and
    /// which reads only the keyring. X refreshes (the refresh token rotates), its save to the
    /// keyring fails once; meanwhile the files see a login and a logout for the same server
    /// (nothing in what X reads changes). X's write-back takes the store for changed, throws
    /// its rotated tokens away and goes on with the keyring's, whose refresh token the server
    /// rotated away: a new browser login (on a server that revokes on reuse, the grant is gone).
    #[test]
    fn a_login_and_logout_in_the_files_cost_a_keyring_client_its_grant() {
        let (logins, presented, calls) = on_auto("mix-false-change", |files, key| {
            files.persist(key, &Persist::Tokens(store_contract::tokens("https://as.other", "other", 1))).unwrap();
            files.persist(key, &Persist::ForgetTokens { issuer: "https://as.other".into() }).unwrap();
        });
        println!("logins {logins}; refresh tokens presented {presented:?}; {calls}");
        assert_eq!(
            logins, 1,
            "a write to the file store, which the keyring-routed client does not read, cost it its grant: {logins} browser \
             logins; refresh tokens presented in order {presented:?}; {calls}"
        );
    }

    /// What held: the same sequence on the auto store with nothing done to the files keeps the
    /// grant (`FailingFirstSave` fails before anything is written).
    #[test]
    fn sound_a_failed_keyring_save_is_written_back_through_the_auto_store() {
        let (logins, presented, calls) = on_auto("mix-control", |_, _| {});
        assert_eq!(logins, 1, "{presented:?}; {calls}");
    }

    /// Finding 2, in the auto store, for good: the file half of the mixed revision is never
    /// written by a client routed to the keyring, so once the file store's revision for a server
    /// does not read (a damaged file, left after an earlier login and logout in files), the auto
    /// store's revision is an error for that server for as long as the login stays in the
    /// keyring, successful saves included; and a first login whose save failed once is lost.
    #[test]
    fn a_damaged_file_revision_makes_the_auto_revision_unknown_for_good() {
        session();
        let dir = scratch("damaged-half");
        let s = server(|o| o.refresh_tokens = true);
        let key = config(&s).store_key();
        let files = FileStore::new(&dir);
        files.persist(&key, &Persist::Tokens(store_contract::tokens("https://as.earlier", "earlier", 1))).unwrap();
        files.persist(&key, &Persist::ForgetTokens { issuer: "https://as.earlier".into() }).unwrap();
        std::fs::write(files.server_dir(&key).join("revision"), b"\0 damaged").unwrap();
        let chosen = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
        assert_eq!(chosen.keyring, Some(KeyringBackend::KeyUtils), "{chosen:?}");
        let failing = Arc::new(store_contract::FailingFirstSave { inner: chosen.store.clone(), armed: AtomicBool::new(true) });
        let (browser, log) = following_browser();
        let mut x = Adapter::Blocking.with_oauth(config(&s), failing, browser).unwrap();
        let first = x.list_tools().map(|t| t.len());
        let next = x.list_tools().map(|t| t.len());
        let logins = log.lock().unwrap().opened.len();
        let after_save = chosen.store.revision(&key).map_err(|e| e.to_string());
        println!(
            "logins {logins}; the auto revision after a successful save into the keyring: {after_save:?}; first {first:?}, next {next:?}"
        );
        let _ = chosen.store.forget(&key);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(logins, 1, "the first login was lost (first call {first:?}, next {next:?}); revision after: {after_save:?}");
    }

    /// Read-only review of a55dc09, finding 1: a write-back that half succeeds, on the auto
    /// store, for a server the files were used for before. The keyring does not answer for a
    /// while: the registration's save fails once and the login's token save twice. A write-back
    /// then saves the registration (the keyring now holds an entry, so the auto store's revision
    /// becomes the keyring's alone) and fails on the tokens; it did not note what its
    /// registration save left, so the next call took the store for changed and threw the login
    /// away (a second browser login). Each save that lands is now noted as it lands.
    #[test]
    fn a_write_back_that_half_succeeds_keeps_the_login() {
        use mcp_oauth_client::StoreError;
        struct Fails {
            inner: Arc<dyn TokenStore>,
            clients: std::sync::atomic::AtomicUsize,
            tokens: std::sync::atomic::AtomicUsize,
        }
        impl Fails {
            fn fail(&self, p: &Persist, write: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
                let counter = match p {
                    Persist::Client(_) => &self.clients,
                    Persist::Tokens(_) => &self.tokens,
                    _ => return write(),
                };
                if counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                    return Err(StoreError::Redis { message: "injected: the keyring did not answer".into() });
                }
                write()
            }
        }
        impl TokenStore for Fails {
            fn load(&self, server: &str) -> Result<mcp_oauth_client::core::Restored, StoreError> {
                self.inner.load(server)
            }
            fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
                self.fail(p, || self.inner.persist(server, p))
            }
            fn persist_locked(&self, server: &str, p: &Persist, lock: &mcp_oauth_client::store::StoreLock) -> Result<(), StoreError> {
                self.fail(p, || self.inner.persist_locked(server, p, lock))
            }
            fn lock(&self, server: &str) -> Result<mcp_oauth_client::store::StoreLock, StoreError> {
                self.inner.lock(server)
            }
            fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
                self.inner.revision(server)
            }
        }
        session();
        let dir = scratch("half-write-back");
        let s = server(|o| o.refresh_tokens = true);
        let key = config(&s).store_key();
        // Files used for this server before (its revision there is not 0), as in the tests above.
        let files = FileStore::new(&dir);
        files.persist(&key, &Persist::Tokens(store_contract::tokens("https://as.earlier", "earlier", 1))).unwrap();
        files.persist(&key, &Persist::ForgetTokens { issuer: "https://as.earlier".into() }).unwrap();
        let chosen = mcp_oauth_client::store::auto(&dir, KeyringBackend::KeyUtils, Duration::from_secs(10));
        assert_eq!(chosen.keyring, Some(KeyringBackend::KeyUtils), "{chosen:?}");
        let failing = Arc::new(Fails {
            inner: chosen.store.clone(),
            clients: std::sync::atomic::AtomicUsize::new(1),
            tokens: std::sync::atomic::AtomicUsize::new(2),
        });
        let (browser, log) = following_browser();
        let mut x = Adapter::Blocking.with_oauth(config(&s), failing.clone(), browser).unwrap();
        let calls: Vec<_> = (0..4).map(|_| x.list_tools().map(|t| t.len()).map_err(|e| e.to_string())).collect();
        let logins = log.lock().unwrap().opened.len();
        let held = chosen.store.load(&key).unwrap().tokens.is_some();
        let _ = chosen.store.forget(&key);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(failing.tokens.load(Ordering::SeqCst), 0, "both token saves failed");
        assert_eq!(logins, 1, "the login was thrown away after a write-back that half succeeded: {calls:?}");
        assert!(held, "the login was written back at last: {calls:?}");
    }
}

/// Read-only review of dfd2f51: the registration saved by a first login lands, but the store
/// fails to answer the revision read right after it (a Redis failover at that moment) and the
/// token save fails too. The client noted an unknown revision, and at its next call took the
/// store for changed and threw the login away (a second browser login). A revision read that
/// fails after a registration save now leaves the one noted before.
#[test]
fn a_failed_revision_read_after_a_registration_keeps_the_first_login() {
    use mcp_oauth_client::core::Restored;
    use mcp_oauth_client::store::StoreLock;
    use mcp_oauth_client::StoreError;
    use std::sync::atomic::AtomicUsize;
    struct Flaky {
        inner: mcp_oauth_client::MemoryStore,
        revision_fails: AtomicUsize,
        token_fails: AtomicUsize,
    }
    impl TokenStore for Flaky {
        fn load(&self, server: &str) -> Result<Restored, StoreError> {
            self.inner.load(server)
        }
        fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
            let counter = match p {
                Persist::Tokens(_) => &self.token_fails,
                _ => {
                    self.inner.persist(server, p)?;
                    if matches!(p, Persist::Client(_)) {
                        self.revision_fails.store(1, Ordering::SeqCst);
                    }
                    return Ok(());
                }
            };
            if counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(StoreError::Redis { message: "injected: the save failed".into() });
            }
            self.inner.persist(server, p)
        }
        fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
            self.inner.lock(server)
        }
        fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
            if self.revision_fails.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(StoreError::Redis { message: "injected: no answer".into() });
            }
            self.inner.revision(server)
        }
    }
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(Flaky {
        inner: mcp_oauth_client::MemoryStore::new(),
        revision_fails: AtomicUsize::new(0),
        token_fails: AtomicUsize::new(1),
    });
    let (browser, log) = following_browser();
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), browser).unwrap();
    let calls: Vec<_> = (0..2).map(|_| x.list_tools().map(|t| t.len()).map_err(|e| e.to_string())).collect();
    let logins = log.lock().unwrap().opened.len();
    assert_eq!(store.token_fails.load(Ordering::SeqCst), 0, "the first token save failed");
    assert_eq!(logins, 1, "the first login was thrown away: {calls:?}");
    assert!(store.inner.load(&config(&s).store_key()).unwrap().tokens.is_some(), "written back: {calls:?}");
}
