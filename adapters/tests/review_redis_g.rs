//! Review of the Redis slices' third round of fixes (issue #16): the driver's write-back rule
//! after a failed save (a digest of what the store last held), writes under the store's own
//! lock, the scripts that name only existing keys, and the sealed listing's migration. Each
//! Redis test starts its own `redis-server` on a free 127.0.0.1 port. Tests named `sound_*`
//! check what held; the others reproduce findings.

mod common;
mod redis_support;
use common::*;
use mcp_oauth_client::{Interaction, Persist, RedisStore, StoreError, TokenStore};
use redis_support::*;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "https://mcp.example.com/mcp#user";

// ---------------------------------------------------------------------------------------------
// 1. A headless worker that found the rotated-away refresh token forgot it; write_back then
//    adopts "nothing" and throws away the only live refresh token.
// ---------------------------------------------------------------------------------------------

/// Worker X refreshes (R1 -> R2: an AS that rotates but, like most, does not revoke the grant
/// on reuse); its save fails (Redis unreachable for that command). Before X's next call a
/// headless worker Y (the fleet of issue #16 is headless) loads R1, presents it, gets
/// `invalid_grant`, forgets the tokens and cannot log in: the store is empty. X's next call
/// runs write_back: the store holds neither what X last saw (R1's set) nor X's, so X "adopts
/// the store's": nothing. R2, live at the AS and held only by X, is dropped, and X (and the
/// whole fleet) now needs a person to log in. Before 7315b80 X wrote R2 back and the fleet
/// recovered. An empty store is not "newer tokens of another instance".
#[test]
fn write_back_drops_the_only_live_refresh_token_when_a_headless_worker_forgot_the_stale_one() {
    let r = Redis::start("forgot");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
    });
    let inner = r.store();
    logged_in_and_expired(&s, &inner);
    let key = config(&s).store_key();

    let store = FailingSave::failing(inner.clone(), Fail::NotApplied);
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    let first = echo(&mut x, "x1");
    assert!(first.is_err(), "X's refresh could not be saved");
    let refreshes = s.lock().token_requests().len();

    // Worker Y, headless, on another machine.
    let y = Adapter::Blocking.with_oauth(config(&s), Arc::new(inner.clone()), Interaction::non_interactive());
    let y_call = y.and_then(|mut y| echo(&mut y, "y"));
    eprintln!("headless worker Y: {:?}", y_call.as_ref().map_err(|e| e.to_string()));
    assert!(y_call.is_err(), "Y could not log in");
    assert_eq!(stored_access(&inner, &key), None, "Y forgot the tokens it found dead");

    // Amended after the fourth review (review_redis_h.rs,
    // `write_back_undoes_a_logout_made_by_another_instance`): the store cannot tell this
    // forget from a logout made on another instance, and writing X's tokens back over an
    // emptied store undid such a logout. A logout must never be undone; and with an
    // authorization server that revokes the grant on reuse (RFC 9700 §4.14.2), Y's
    // presentation of R1 revoked R2 anyway. So X respects the emptied store: its next call
    // asks for a login (a typed error, here headless), and nothing is written back.
    let _ = refreshes;
    let refreshes = s.lock().token_requests().len();
    let second = echo(&mut x, "x2");
    assert!(second.is_err(), "X wrote its tokens back over an emptied store: {:?}", second.as_ref().map(|_| ()));
    assert!(
        second.as_ref().err().is_some_and(|e| e.to_string().contains("interactive login required")),
        "{:?}",
        second.as_ref().map_err(|e| e.to_string())
    );
    assert_eq!(stored_access(&inner, &key), None, "the emptied store stays empty");
    assert_eq!(s.lock().token_requests().len(), refreshes, "X presented nothing more");
}

// ---------------------------------------------------------------------------------------------
// 2. The digest goes stale after a successful ForgetTokens: `saw(None)`, while `load` shows
//    another issuer's (older) tokens.
// ---------------------------------------------------------------------------------------------

/// The store holds, besides this server's issuer's tokens, an older entry of another issuer
/// (an AS migration: a worker with the old metadata still wrote there; `load` shows only the
/// newest). X's refresh gets `invalid_grant`, X forgets its issuer's tokens (saved: `saw(None)`
/// though `load` now shows the other issuer's), logs in, and that save fails. At X's next call
/// the store shows the other issuer's tokens, which are neither `None` nor X's: write_back
/// adopts them, X's fresh login is thrown away, and X logs in a second time.
#[test]
fn write_back_throws_away_a_fresh_login_when_the_store_shows_another_issuers_older_tokens() {
    let r = Redis::start("issuer");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
    });
    let inner = r.store();
    let mut t = logged_in_and_expired(&s, &inner);
    let key = config(&s).store_key();
    // The refresh token dies (revoked at the AS).
    t.refresh_token = Some(mcp_oauth_client::core::secret::RefreshToken::new("revoked-at-the-as"));
    inner.persist(&key, &Persist::Tokens(t.clone())).unwrap();
    // An older entry of the AS this server used before.
    let mut old = t.clone();
    old.issuer = "http://127.0.0.1:1/old-as".into();
    old.access_token = mcp_oauth_client::core::secret::AccessToken::new("old-as-access");
    old.obtained_at = mcp_oauth_client::Timestamp::from_secs(t.obtained_at.as_secs() - 86_400);
    inner.persist(&key, &Persist::Tokens(old)).unwrap();
    assert_eq!(stored_access(&inner, &key).as_deref(), Some(t.access_token.secret()), "load shows the newest");

    let store = FailingSave::failing(inner.clone(), Fail::NotApplied);
    let (browser, _) = following_browser();
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), browser).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    let first = echo(&mut x, "x1");
    eprintln!("X's first call (refresh refused, login saved: failed): {:?}", first.as_ref().map_err(|e| e.to_string()));
    assert!(first.is_err());
    let logins = s.lock().authorization_requests().len();
    assert!(logins >= 2, "X logged in after invalid_grant");

    let second = echo(&mut x, "x2");
    assert!(second.is_ok(), "{:?}", second.as_ref().map_err(|e| e.to_string()));
    assert_eq!(
        s.lock().authorization_requests().len(),
        logins,
        "X's unsaved login was thrown away for another issuer's older tokens, and X logged in again"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The write-back rule where it held.
// ---------------------------------------------------------------------------------------------

/// A save that failed while no one else wrote is written back at the next call: no new
/// refresh, no login, and the store then holds the machine's tokens.
#[test]
fn sound_a_failed_save_with_no_other_writer_is_written_back() {
    let r = Redis::start("alone");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
        o.refresh_reuse_revokes_grant = true;
    });
    let inner = r.store();
    let t1 = logged_in_and_expired(&s, &inner);
    let key = config(&s).store_key();
    let store = FailingSave::failing(inner.clone(), Fail::NotApplied);
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(echo(&mut x, "x1").is_err());
    assert_eq!(stored_access(&inner, &key).as_deref(), Some(t1.access_token.secret()));
    let (tokens, logins) = {
        let g = s.lock();
        (g.token_requests().len(), g.authorization_requests().len())
    };
    echo(&mut x, "x2").expect("X goes on with its unsaved tokens");
    assert_ne!(stored_access(&inner, &key).as_deref(), Some(t1.access_token.secret()), "written back");
    assert_eq!(s.lock().token_requests().len(), tokens, "no refresh");
    assert_eq!(s.lock().authorization_requests().len(), logins, "no login");
    // A second worker goes on from what was written back (R2), with no login.
    let mut y = Adapter::Blocking.with_oauth(config(&s), Arc::new(inner.clone()), Interaction::non_interactive()).unwrap();
    echo(&mut y, "y").expect("Y from the written-back tokens");
}

/// A save that was applied but whose reply was lost; another worker then refreshed from it
/// (R2 -> R3). X's write-back sees neither what it last saw nor its own: it adopts R3 and
/// does not write R2 over it.
#[test]
fn sound_a_lost_reply_then_another_workers_refresh_is_not_overwritten() {
    let r = Redis::start("lostreply");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
        o.refresh_reuse_revokes_grant = true;
    });
    let inner = r.store();
    logged_in_and_expired(&s, &inner);
    let key = config(&s).store_key();
    let store = FailingSave::failing(inner.clone(), Fail::AppliedReplyLost);
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(echo(&mut x, "x1").is_err());
    // Worker Y finds R2 (applied) expired and refreshes it.
    let mut t = inner.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    inner.persist(&key, &Persist::Tokens(t)).unwrap();
    let mut y = Adapter::Blocking.with_oauth(config(&s), Arc::new(inner.clone()), Interaction::non_interactive()).unwrap();
    echo(&mut y, "y").expect("Y refreshes R2");
    let y_access = stored_access(&inner, &key).unwrap();
    echo(&mut x, "x2").expect("X goes on");
    assert_eq!(stored_access(&inner, &key).as_deref(), Some(y_access.as_str()), "Y's refresh stays");
    echo(&mut y, "y2").expect("Y still works: its grant was not revoked");
}

/// The applied-but-lost save, with no one else writing: the store holds the machine's own
/// tokens, which write_back accepts (`now == mine`).
#[test]
fn sound_a_lost_reply_alone_goes_on_without_a_refresh() {
    let r = Redis::start("lostalone");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
        o.refresh_reuse_revokes_grant = true;
    });
    let inner = r.store();
    logged_in_and_expired(&s, &inner);
    let store = FailingSave::failing(inner.clone(), Fail::AppliedReplyLost);
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(echo(&mut x, "x1").is_err());
    let tokens = s.lock().token_requests().len();
    echo(&mut x, "x2").expect("X goes on");
    assert_eq!(s.lock().token_requests().len(), tokens);
}

// ---------------------------------------------------------------------------------------------
// 4. Scripts: fencing after the key lists changed.
// ---------------------------------------------------------------------------------------------

/// A lease lost (deleted, as on expiry) still refuses the holder's write; an unfenced write
/// goes through with no lease key at all; the release script still wakes a waiter.
#[test]
fn sound_fencing_and_release_after_the_script_changes() {
    let r = Redis::start("fence");
    let store = r.store();
    let t = {
        let s = server(|o| o.refresh_tokens = true);
        logged_in_and_expired(&s, &store)
    };
    let lock = store.lock(KEY).unwrap();
    let lease: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(&mut r.raw()).unwrap();
    assert_eq!(lease.len(), 1);
    let _: () = redis::cmd("DEL").arg(&lease[0]).query(&mut r.raw()).unwrap();
    let refused = store.persist_locked(KEY, &Persist::Tokens(t.clone()), &lock);
    assert!(matches!(refused, Err(StoreError::LeaseLost)), "{refused:?}");
    // Someone else's lease now: still refused.
    let _: () = redis::cmd("SET").arg(&lease[0]).arg("someone-else").query(&mut r.raw()).unwrap();
    assert!(store.persist_locked(KEY, &Persist::Tokens(t.clone()), &lock).is_err());
    let _: () = redis::cmd("DEL").arg(&lease[0]).query(&mut r.raw()).unwrap();
    drop(lock);
    store.persist(KEY, &Persist::Tokens(t.clone())).expect("unfenced write without a lease");
    assert!(store.load(KEY).unwrap().tokens.is_some());

    // A waiter is woken by the release (not the 1 s poll).
    let held = store.lock(KEY).unwrap();
    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            assert!(store.wait_unlocked(KEY).unwrap());
            start.elapsed()
        })
    };
    // Amended (released 300 ms in, with a 700 ms bound: a loaded machine's delays in either
    // thread made it fail or pass on a poll): released halfway between the 1 s polls, so a wake
    // by the poll comes at least 500 ms after the release.
    std::thread::sleep(Duration::from_millis(1500));
    let released = Instant::now();
    drop(held);
    let waited = waiter.join().unwrap();
    assert!(released.elapsed() < Duration::from_millis(400), "woken at once: waited {waited:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. The sealed listing's migration.
// ---------------------------------------------------------------------------------------------

/// Tokens stored before encryption was turned on are plaintext at rest. The issue: "a value
/// that fails to decrypt is reported, never silently dropped". Before 1eb484d `servers()`
/// listed such a server (and `forget` removes what does not decrypt: "forgetting is how to be
/// rid of it"); now it is left out, with only a log line, so `mcp-oauth list` / forget-all
/// never show or remove the plaintext tokens, and the URL stays readable in the clear set.
#[test]
fn servers_hides_a_server_whose_entries_predate_encryption() {
    let r = Redis::start("plainlisting");
    let s = server(|o| o.refresh_tokens = true);
    let plain = r.store();
    logged_in_and_expired(&s, &plain);
    let key = config(&s).store_key();
    let sealed = r.store().with_encryption(keys());
    assert!(matches!(sealed.load(&key), Err(StoreError::Undecryptable { .. })), "plaintext at rest, reported on load");
    // Amended after the fourth review (review_redis_h.rs,
    // `servers_lists_a_server_planted_by_a_writer_without_the_key`): listing clear-set members
    // whose entries do not decrypt let anyone who can write to Redis plant servers in an
    // encrypted store's listing (and made describing the listing fail). They are not listed
    // (a warning says so); nothing is deleted; a store opened without the key lists them, and
    // its `forget` removes them.
    let listed = sealed.servers().unwrap();
    assert!(!listed.contains(&key), "servers() = {listed:?}: an entry that does not decrypt was listed");
    assert!(matches!(sealed.load(&key), Err(StoreError::Undecryptable { .. })), "still there, still reported");
    assert!(plain.servers().unwrap().contains(&key), "a store without the key lists it");
    plain.forget(&key).unwrap();
    assert!(plain.load(&key).unwrap().tokens.is_none(), "and forgets it");
}

/// `servers()` writes (it moves clear members to the sealed hash, unfenced): a listing made
/// with a read-only Redis user (an operator's `mcp-oauth list`, a monitoring job) fails as a
/// whole as soon as one clear member's entries decrypt.
#[test]
fn servers_needs_write_access_to_list() {
    let r = Redis::start("readonly");
    let sealed = r.store().with_encryption(keys());
    let s = server(|o| o.refresh_tokens = true);
    logged_in_and_expired(&s, &sealed);
    let key = config(&s).store_key();
    // The server also in the clear set (listed by a writer without encryption, or before).
    let _: () = redis::cmd("SADD").arg("mcp-oauth:servers").arg(&key).query(&mut r.raw()).unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "reader", "on", ">reader-pw", "~*", "&*", "+@read", "+@connection"][..])
        .query(&mut r.raw())
        .unwrap();
    let reader = RedisStore::open(&format!("redis://reader:reader-pw@127.0.0.1:{}/", r.port)).unwrap().with_encryption(keys());
    assert!(reader.load(&key).is_ok(), "the reader can read");
    let listed = reader.servers();
    assert!(listed.is_ok(), "a read-only listing fails: {listed:?}");
}

/// The clear-set member whose entries decrypt is moved: listed once, gone from the clear set.
#[test]
fn sound_a_clear_member_whose_entries_decrypt_is_moved() {
    let r = Redis::start("move");
    let sealed = r.store().with_encryption(keys());
    let s = server(|o| o.refresh_tokens = true);
    logged_in_and_expired(&s, &sealed);
    let key = config(&s).store_key();
    let _: () = redis::cmd("SADD").arg("mcp-oauth:servers").arg(&key).query(&mut r.raw()).unwrap();
    let _: () = redis::cmd("SADD").arg("mcp-oauth:servers").arg("https://planted.example/mcp").query(&mut r.raw()).unwrap();
    assert_eq!(sealed.servers().unwrap(), vec![key.clone()]);
    let clear: Vec<String> = redis::cmd("SMEMBERS").arg("mcp-oauth:servers").query(&mut r.raw()).unwrap();
    assert!(!clear.contains(&key), "moved out of the clear set");
}

// ---------------------------------------------------------------------------------------------
// 6. TLS files renewed in place: a half-written key.
// ---------------------------------------------------------------------------------------------

/// 4518ec6: "files that do not read or parse yet (half written) keep the old ones": a key file
/// caught half written is refused when the target is built, and the old key serves.
#[test]
fn sound_a_half_written_key_file_keeps_the_old_one() {
    let base = std::env::temp_dir().join(format!("mcp-oauth-review-g-{}-halfkey-certs", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    tls_material(&base);
    let tls_port = free_port();
    let extra = tls_options(&base, tls_port, true);
    let r = Redis::start_with("halfkey", &extra);
    let tls =
        mcp_oauth_client::RedisTls::from_files(Some(&base.join("ca.pem")), Some(&base.join("client.pem")), Some(&base.join("client.key")))
            .unwrap();
    let store = RedisStore::open_with_tls(&format!("rediss://127.0.0.1:{tls_port}/"), tls).unwrap();
    assert!(store.load(KEY).is_ok());

    // The renewal is writing the key: half of it is there.
    let full = std::fs::read(base.join("client.key")).unwrap();
    std::fs::write(base.join("client.key"), &full[..full.len() / 2]).unwrap();
    let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query(&mut r.raw()).unwrap();
    let during = store.load(KEY);
    std::fs::write(base.join("client.key"), &full).unwrap();
    let after = store.load(KEY);
    let _ = std::fs::remove_dir_all(&base);
    assert!(after.is_ok(), "once the key is whole again: {after:?}");
    assert!(during.is_ok(), "with the key file half written, the old key was not kept: {during:?}");
}

/// A renewal that writes the certificate, then the key (spiffe-helper, scripts, `cp` of two
/// files): caught between the two, the new certificate and the old key are each whole and
/// parse, and the pair is installed though they do not match. New connections fail until the
/// key is written (the stamp then changes again, so it heals).
#[test]
fn a_new_certificate_with_the_old_key_is_installed_between_the_two_writes() {
    let base = std::env::temp_dir().join(format!("mcp-oauth-review-g-{}-pair-certs", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    tls_material(&base);
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout client2.key -out client2.csr \
             -subj /CN=fleet-worker && openssl x509 -req -in client2.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client2.pem \
             -days 2 -extfile client.ext",
            base.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
    let tls_port = free_port();
    let extra = tls_options(&base, tls_port, true);
    let r = Redis::start_with("pair", &extra);
    let tls =
        mcp_oauth_client::RedisTls::from_files(Some(&base.join("ca.pem")), Some(&base.join("client.pem")), Some(&base.join("client.key")))
            .unwrap();
    let store = RedisStore::open_with_tls(&format!("rediss://127.0.0.1:{tls_port}/"), tls).unwrap();
    assert!(store.load(KEY).is_ok());
    std::fs::copy(base.join("client2.pem"), base.join("client.pem")).unwrap();
    let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query(&mut r.raw()).unwrap();
    let between = store.load(KEY);
    std::fs::copy(base.join("client2.key"), base.join("client.key")).unwrap();
    let after = store.load(KEY);
    let _ = std::fs::remove_dir_all(&base);
    assert!(after.is_ok(), "once both are written: {after:?}");
    assert!(between.is_ok(), "between the certificate's write and the key's, a mismatched pair was installed: {between:?}");
}
