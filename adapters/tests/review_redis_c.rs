//! Review of the Redis token store (issue #16), third pass: attacks, the spec, and months of
//! running. Each test starts its own `redis-server` on a free 127.0.0.1 port. Tests named
//! `sound_*` check what held (regression tests); the others reproduce findings.

mod common;
mod redis_support;
mod store_contract;
use common::*;
use mcp_oauth_client::{EncryptionKeys, Persist, RedisStore, StoreError, TokenStore};
use redis_support::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lease renewer threads of this process (named `mcp-oauth-lease`).
fn lease_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "mcp-oauth-lease"))
                .count()
        })
        .unwrap_or(0)
}

const KEY: &str = "https://mcp.example.com/mcp#user";

fn sealed_keys() -> EncryptionKeys {
    EncryptionKeys::new("k1", [1u8; 32]).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

/// With encryption on, nothing an operator would call secret should be readable in Redis. The
/// crate itself treats a server URL's query as secret (`safe_url` hides it: "a configured URL
/// may carry an API key"), and entries seal the server URL; but the `:servers` listing set
/// holds every store key in the clear: URL, query and principal.
#[test]
fn encrypted_store_keeps_server_urls_and_their_queries_readable_in_the_servers_set() {
    let r = Redis::start("servers-set");
    let store = r.store().with_encryption(sealed_keys()).with_subject("tenant-a");
    let key = "https://mcp.example.com/mcp?api_key=SECRET-IN-QUERY#user:alice@example.org";
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();
    assert_eq!(store.servers().unwrap(), vec![key.to_owned()], "listing still works");
    let raw = everything_in(&r);
    for secret in ["SECRET-IN-QUERY", "alice@example.org", "mcp.example.com"] {
        assert!(!raw.contains(secret), "{secret} readable in Redis although the store encrypts:\n{raw}");
    }
}

/// Taking the lease on a connection that is not a pooled one (the first call of a process, or
/// every connection in use by other threads): Redis applies the `ACQUIRE` script but the reply
/// is lost. The store does not retry (it only retries on reused connections), so `lock`
/// fails, and the lease it did take is left behind with no renewer and nobody to release it:
/// every worker of the fleet waits out the full lease for that server.
#[test]
fn lost_reply_to_taking_the_lease_on_a_fresh_connection_fails_and_orphans_the_lease() {
    let r = Redis::start("lost-fresh");
    // Load the scripts into Redis (as any earlier worker would have), so the proxied EVALSHA
    // is applied rather than answered NOSCRIPT.
    drop(r.store().lock(KEY).unwrap());
    let armed = Arc::new(AtomicBool::new(true));
    let proxy = reply_losing_proxy(r.port, b":lease", armed);
    let s = RedisStore::open(&format!("redis://127.0.0.1:{proxy}/"))
        .unwrap()
        .with_lease(Duration::from_secs(6))
        .with_lock_wait(Duration::from_secs(20));
    let started = Instant::now();
    let got = s.lock(KEY).map(|_| ());
    let took = started.elapsed();
    // Whatever `lock` answered, the lease must not be left behind for the others.
    let other = r.store().with_lock_wait(Duration::from_secs(10));
    let started = Instant::now();
    drop(other.lock(KEY).unwrap());
    let other_waited = started.elapsed();
    eprintln!("lock: {got:?} after {took:?}; another worker then waited {other_waited:?}");
    assert!(
        got.is_ok(),
        "a lost reply on a fresh connection: lock failed ({got:?}) after {took:?}; another worker then waited {other_waited:?}"
    );
    assert!(other_waited < Duration::from_secs(2), "the lease was orphaned: another worker waited {other_waited:?}");
}

/// A Sentinel URL whose password holds an unencoded `/` (the part after it parsed as the
/// master name) is accepted, and `Debug` then shows the password's text.
#[test]
fn a_sentinel_url_with_a_slash_in_its_password_shows_the_password_in_debug() {
    let url = "redis+sentinel://user:1234/PASSWORD-TAIL@127.0.0.1:26379/0";
    match RedisStore::open(url) {
        Err(e) => assert!(!format!("{e} {e:?}").contains("PASSWORD-TAIL"), "{e}"),
        Ok(store) => {
            let shown = format!("{store:?}");
            assert!(!shown.contains("PASSWORD-TAIL"), "a password fragment in Debug: {shown}");
            let e = store.with_timeout(Duration::from_millis(200)).load(KEY).map(|_| ()).expect_err("nothing listens");
            assert!(!format!("{e} {e:?}").contains("PASSWORD-TAIL"), "{e}");
        }
    }
}

fn all_commands(r: &Redis) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut r.raw()).unwrap();
    info.lines()
        .filter(|l| !l.contains("resetstat"))
        .filter_map(|l| l.split_once("calls=").and_then(|(_, rest)| rest.split(',').next()).and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

/// A holder lets go without writing (its refresh failed for a moment, or it was a start-up
/// `load_for` that found nothing): every waiter that was parked in `wait_unlocked` then finds
/// the store unchanged and queues on the lease. One of them refreshes; the other 11 take the
/// lease one after another only to reload, each release waking all the rest (O(n^2) Redis
/// commands). The fast path ("one refresh and a reload by all at once") applies once per call,
/// not to waiters that reach `lock`.
#[test]
fn waiters_of_a_holder_that_wrote_nothing_queue_through_the_lease_one_by_one() {
    let r = Redis::start("herd");
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(r.store());
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t)).unwrap();

    let n = 12;
    let holder = store.lock(&key).unwrap();
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let (store, url) = (store.clone(), s.mcp_url());
            std::thread::spawn(move || {
                let mut mcp = Adapter::Blocking
                    .with_oauth(
                        mcp_oauth_client::Config::new(url.parse().unwrap()),
                        store,
                        mcp_oauth_client::Interaction::non_interactive(),
                    )
                    .unwrap();
                mcp.call_tool("echo", serde_json::json!({"text": "w"})).expect("a worker failed");
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut r.raw()).unwrap();
    drop(holder);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(refreshes(&s), 1, "one refresh");
    // Amended (was: `SET`s counted as leases; the fenced write now sets the revision too):
    // releases, less the holder's own.
    let (leases, commands) = (leases_released(&r) - 1, all_commands(&r));
    assert!(leases <= 2, "{n} waiters took {leases} leases one after another after the holder let go ({commands} Redis commands)");
}

// ---------------------------------------------------------------------------------------------
// Sound
// ---------------------------------------------------------------------------------------------

/// Months of running: many leases taken and released, many waits, on one store: connections
/// (pool, subscribers) and threads (renewers) stay bounded, and nothing stays behind in Redis.
#[test]
fn sound_leases_and_waits_leak_no_connection_thread_or_key() {
    let r = Redis::start("leaks");
    // Amended (was 90 ms, renewed every 30 ms, with 70 ms holds: a 60 ms stall of the renewer on
    // a loaded machine lost the lease and failed the write): 600 ms, held 250 ms.
    let store = r.store().with_lease(Duration::from_millis(600));
    for i in 0..150 {
        let key = format!("https://mcp{}.example.com/mcp#user", i % 7);
        let held = store.lock(&key).unwrap();
        let waiter = {
            let (s, key) = (store.clone(), key.clone());
            std::thread::spawn(move || s.wait_unlocked(&key).unwrap())
        };
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(250)); // renewals too
        }
        store.persist_locked(&key, &Persist::Tokens(store_contract::tokens("https://as.example", &format!("AT-{i}"), i)), &held).unwrap();
        drop(held);
        waiter.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let n = clients(&r);
    assert!(n <= 8 + 2, "{n} connections left open");
    // Amended (was: all threads of the process <= the count before + 2, which other tests of
    // this binary running in parallel broke): the renewer threads, of which a leak leaves one
    // per lease (150), while the other tests here hold a handful at a time.
    assert!(lease_threads() < 40, "renewer threads left: {}", lease_threads());
    let leases: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(&mut r.raw()).unwrap();
    assert!(leases.is_empty(), "{leases:?}");
    assert_eq!(store.servers().unwrap().len(), 7);
}

/// A tenant cannot reach another tenant's keys through its subject: `:` tricks, brace tricks and
/// percent tricks all land on keys of their own, and with one shared key a value copied from
/// another subject does not decrypt.
#[test]
fn sound_subjects_cannot_alias_each_other() {
    let r = Redis::start("alias");
    let victim = r.store().with_encryption(sealed_keys()).with_subject("bob");
    victim.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-BOB", 1))).unwrap();
    let victim_keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut r.raw()).unwrap();
    for subject in ["bob:", "bob}", "{bob}", "bob%7D", "%62ob", "bo", "bob\n", "bob:servers", ""] {
        let attacker = r.store().with_encryption(sealed_keys()).with_subject(subject);
        assert!(attacker.load(KEY).unwrap().tokens.is_none(), "{subject:?} sees bob's tokens");
        assert!(attacker.servers().unwrap().is_empty(), "{subject:?} lists bob's servers");
        attacker.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-EVIL", 99))).unwrap();
        assert_eq!(victim.load(KEY).unwrap().tokens.unwrap().access_token.secret(), "AT-BOB", "{subject:?} overwrote bob");
        let _held = attacker.lock(KEY).unwrap();
        let held = victim.clone().with_lock_wait(Duration::from_millis(300)).lock(KEY);
        assert!(held.is_ok(), "{subject:?}'s lease blocks bob");
    }
    // Copying bob's sealed value into the attacker's hash gives nothing readable.
    let mut conn = r.raw();
    let (h, f) = victim_keys
        .iter()
        .find(|k| k.ends_with(":entries"))
        .map(|h| {
            let fields: Vec<String> = redis::cmd("HKEYS").arg(h).query(&mut conn).unwrap();
            (h.clone(), fields[0].clone())
        })
        .unwrap();
    let value: String = redis::cmd("HGET").arg(&h).arg(&f).query(&mut conn).unwrap();
    let attacker = r.store().with_encryption(sealed_keys()).with_subject("mallory");
    attacker.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-M", 1))).unwrap();
    let mh = h.replacen("mcp-oauth:bob:", "mcp-oauth:mallory:", 1);
    let _: () = redis::cmd("HSET").arg(&mh).arg(&f).arg(&value).query(&mut conn).unwrap();
    assert!(matches!(attacker.load(KEY), Err(StoreError::Undecryptable { .. })));
}

/// Someone who can write Redis but has no key: plants, swaps between issuers and servers,
/// truncates, flips bits, changes the key id: every one is reported, none read, none
/// overwritten by the next write, and none blocks `forget`.
#[test]
fn sound_tampered_sealed_values_are_reported_and_kept() {
    let r = Redis::start("tamper");
    let store = r.store().with_encryption(sealed_keys());
    let other = "https://other.example.com/mcp#user";
    store.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();
    store.persist(KEY, &Persist::Client(store_contract::client("https://as2.example"))).unwrap();
    store.persist(other, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-O", 1))).unwrap();
    let mut conn = r.raw();
    let hashes: Vec<String> = redis::cmd("KEYS").arg("*:entries").query(&mut conn).unwrap();
    let mine = store_hash(&mut conn, &hashes, KEY, &store);
    let theirs = hashes.iter().find(|h| **h != mine).unwrap().clone();
    let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL").arg(&mine).query(&mut conn).unwrap();
    let their_fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL").arg(&theirs).query(&mut conn).unwrap();
    let (tok_field, tok_value) = fields.iter().find(|(f, _)| their_fields.contains_key(*f)).map(|(a, b)| (a.clone(), b.clone())).unwrap();
    let (cl_field, cl_value) = fields.iter().find(|(f, _)| **f != tok_field).map(|(a, b)| (a.clone(), b.clone())).unwrap();
    let b = tok_value.as_bytes();
    let flipped = {
        let mut v = tok_value.clone().into_bytes();
        let i = v.len() - 5;
        v[i] = if v[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(v).unwrap()
    };
    let tampered = [
        ("client value in the token field", cl_value.clone()),
        ("other server's value", their_fields[&tok_field].clone()),
        ("truncated", String::from_utf8(b[..b.len() - 4].to_vec()).unwrap()),
        ("bit flipped", flipped),
        ("key id changed", tok_value.replacen("enc1:k1:", "enc1:k2:", 1)),
        ("plain JSON", "{\"version\":1}".to_owned()),
        ("empty", String::new()),
    ];
    let _ = cl_field;
    for (what, value) in tampered {
        let _: () = redis::cmd("HSET").arg(&mine).arg(&tok_field).arg(&value).query(&mut conn).unwrap();
        assert!(matches!(store.load(KEY), Err(StoreError::Undecryptable { .. })), "{what}: {:?}", store.load(KEY).map(|_| ()));
        let held = store.lock(KEY).unwrap();
        let w = store.persist_locked(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-2", 2)), &held);
        assert!(matches!(w, Err(StoreError::Undecryptable { .. })), "{what}: written over: {w:?}");
        drop(held);
        let now: String = redis::cmd("HGET").arg(&mine).arg(&tok_field).query(&mut conn).unwrap();
        assert_eq!(now, value, "{what}: overwritten");
    }
    store.forget(KEY).unwrap();
    assert!(store.load(KEY).unwrap().tokens.is_none());
    assert_eq!(store.load(other).unwrap().tokens.unwrap().access_token.secret(), "AT-O");
}

fn store_hash(conn: &mut redis::Connection, hashes: &[String], key: &str, store: &RedisStore) -> String {
    let _held = store.lock(key).unwrap();
    let leases: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(conn).unwrap();
    let tag = &leases[0][..leases[0].len() - ":lease".len()];
    hashes.iter().find(|h| h.starts_with(tag)).unwrap().clone()
}

/// A stale holder whose lease simply ran out (nobody took it since) is refused too, and its
/// release does nothing to a lease taken later; a holder paused (SIGSTOP-like: its renewer
/// cannot run, here by a lease shorter than one renewal) is fenced by Redis time, not its own.
#[test]
fn sound_a_lease_that_ran_out_fences_its_holder() {
    let r = Redis::start("ran-out");
    let store = r.store().with_lease(Duration::from_millis(300));
    let held = store.lock(KEY).unwrap();
    // Stop the renewer from reaching Redis: pause Redis past the lease, then let it go on.
    signal(r.child.id(), "-STOP");
    std::thread::sleep(Duration::from_millis(700));
    signal(r.child.id(), "-CONT");
    // Redis keeps expiring by its own clock; make sure the lease is gone.
    let started = Instant::now();
    loop {
        let exists: bool = redis::cmd("EXISTS").arg(lease_key(&r)).query(&mut r.raw()).unwrap_or(false);
        if !exists {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "the lease did not run out");
        std::thread::sleep(Duration::from_millis(50));
    }
    let w = store.persist_locked(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-STALE", 1)), &held);
    assert!(matches!(w, Err(StoreError::LeaseLost)), "{w:?}");
    let fresh = r.store().lock(KEY).unwrap();
    drop(held);
    assert!(r.store().with_lock_wait(Duration::from_millis(200)).lock(KEY).is_err(), "the stale release freed the new lease");
    drop(fresh);
}

fn lease_key(r: &Redis) -> String {
    let leases: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(&mut r.raw()).unwrap();
    leases.into_iter().next().unwrap_or_else(|| "none:lease".into())
}

/// Waiters whose holder lets go without writing (its refresh failed, or it logged nothing in)
/// do not spin and do not all refresh: they fall back to the lease, and exactly one refresh
/// happens; none presents a refresh token twice.
#[test]
fn sound_waiters_of_a_holder_that_wrote_nothing_refresh_once() {
    let r = Redis::start("holder-nothing");
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(r.store());
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t)).unwrap();

    let holder = store.lock(&key).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..12)
        .map(|_| {
            let (store, url, done) = (store.clone(), s.mcp_url(), done.clone());
            std::thread::spawn(move || {
                let mut mcp = Adapter::Blocking
                    .with_oauth(
                        mcp_oauth_client::Config::new(url.parse().unwrap()),
                        store,
                        mcp_oauth_client::Interaction::non_interactive(),
                    )
                    .unwrap();
                mcp.call_tool("echo", serde_json::json!({"text": "w"})).expect("a waiter failed");
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(done.load(Ordering::SeqCst), 0, "a waiter went on while the holder held the lease");
    drop(holder);
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(refreshes(&s), 1, "exactly one refresh");
    assert!(s.lock().token_requests().iter().all(|t| t.status == 200), "a refresh token was presented twice");
}

/// A token from the store that this configuration does not accept (another client's, another
/// grant) is not taken up by the waiters' fast path, even when it is fresh.
#[test]
fn sound_the_fast_path_takes_no_token_of_another_client() {
    let r = Redis::start("foreign");
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(r.store());
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let mine = store.load(&key).unwrap().tokens.unwrap();
    let mut expired = mine.clone();
    expired.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(expired)).unwrap();
    let logins = s.lock().authorization_requests().len();

    let holder = store.lock(&key).unwrap();
    let waiter = {
        let (store, url) = (store.clone(), s.mcp_url());
        std::thread::spawn(move || {
            let mut mcp = Adapter::Blocking
                .with_oauth(mcp_oauth_client::Config::new(url.parse().unwrap()), store, mcp_oauth_client::Interaction::non_interactive())
                .unwrap();
            mcp.call_tool("echo", serde_json::json!({"text": "w"})).map(|_| ())
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    // The holder writes a fresh token issued to some other client.
    let mut foreign = mine.clone();
    foreign.access_token = mcp_oauth_client::core::secret::AccessToken::new("AT-OF-ANOTHER-CLIENT");
    foreign.client_id = Some("another-client".into());
    foreign.obtained_at = mcp_oauth_client::Timestamp::from_secs(mine.obtained_at.as_secs() + 10);
    store.persist_locked(&key, &Persist::Tokens(foreign), &holder).unwrap();
    drop(holder);
    let _ = waiter.join().unwrap();
    let sent: Vec<String> = s.lock().log.iter().filter_map(|r| r.authorization.clone()).collect();
    assert!(!sent.iter().any(|v| v.contains("AT-OF-ANOTHER-CLIENT")), "the waiter sent another client's token");
    assert_eq!(s.lock().authorization_requests().len(), logins, "non-interactive: no login");
}

/// With a password: errors of a wrong password and a Redis that went away, the store's
/// `Debug`, and a log of everything at trace level show no password.
#[test]
fn sound_no_password_in_errors_or_debug() {
    let r = Redis::start_with("auth", &["--requirepass", "s3cr3t-PW"]);
    let good = RedisStore::open(&format!("redis://:s3cr3t-PW@127.0.0.1:{}/", r.port)).unwrap();
    good.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();
    assert!(!format!("{good:?}").contains("s3cr3t"), "{good:?}");
    let bad = RedisStore::open(&format!("redis://:s3cr3t-PW-wrong@127.0.0.1:{}/", r.port)).unwrap();
    let e = bad.load(KEY).map(|_| ()).expect_err("wrong password");
    assert!(matches!(e, StoreError::Redis { .. }), "{e:?}");
    assert!(!format!("{e} {e:?} {bad:?}").contains("s3cr3t"), "{e} {e:?} {bad:?}");
    let e = bad.lock(KEY).map(|_| ()).expect_err("wrong password");
    assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e}");
    let gone = RedisStore::open("redis://:s3cr3t-PW@127.0.0.1:1/").unwrap().with_timeout(Duration::from_millis(200));
    let e = gone.lock(KEY).map(|_| ()).expect_err("nothing listens");
    assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e}");
    let keys =
        EncryptionKeys::parse("current:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=,old:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=")
            .unwrap();
    let shown = format!("{keys:?} {:?}", good.clone().with_encryption(keys.clone()));
    assert!(!shown.contains("AQEB") && !shown.contains("[1, 1"), "{shown}");
}
