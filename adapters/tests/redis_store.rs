//! `RedisStore` against a real `redis-server` each test starts on a free loopback port: the
//! store contract `MemoryStore`, `FileStore` and `KeyringStore` pass; fencing (a holder whose
//! lease was taken over cannot overwrite the new holder's write); processes × threads sharing
//! an expired token refresh once and a missing one logs in once; Redis down is a typed,
//! retryable error that starts no login, and the client recovers when Redis is back.

mod common;
mod redis_support;
mod store_contract;
use common::*;
use mcp_oauth_client::{Interaction, Persist, RedisStore, StoreError, TokenStore};
use redis_support::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn the_redis_store_passes_the_store_contract() {
    let r = Redis::durable("contract");
    store_contract::round_trips(&r.store());
    store_contract::lock_excludes(Arc::new(r.store()));
    store_contract::lists_describes_and_forgets(Arc::new(r.store()));
    store_contract::revisions_move(&r.store(), &r.store());
}

#[test]
fn subjects_and_prefixes_keep_entries_apart_and_one_servers_keys_share_a_hash_tag() {
    let r = Redis::durable("subjects");
    let key = "https://mcp.example.com/mcp#user";
    let (alice, bob) = (r.store().with_subject("alice"), r.store().with_subject("bob"));
    alice.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-ALICE", 1))).unwrap();
    assert!(bob.load(key).unwrap().tokens.is_none(), "another subject sees nothing");
    assert!(r.store().with_prefix("other").with_subject("alice").load(key).unwrap().tokens.is_none());
    assert_eq!(alice.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-ALICE");
    let _held = alice.lock(key).unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut r.raw()).unwrap();
    let tagged: Vec<&String> = keys.iter().filter(|k| k.contains(":{")).collect();
    assert_eq!(tagged.len(), 3, "the entries, the revision and the lease: {keys:?}");
    let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
    assert!(tagged.iter().all(|k| tag(k) == tag(tagged[0])), "one hash tag: one Cluster slot: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("mcp-oauth:alice:")), "{keys:?}");
    // Nothing secret in a key name.
    assert!(keys.iter().all(|k| !k.contains("AT-ALICE") && !k.contains("mcp.example.com")), "{keys:?}");
}

/// A holder paused past its lease (here: its lease deleted behind its back, which is what an
/// expiry looks like to Redis) whose lease another worker then took cannot overwrite what the
/// new holder wrote.
#[test]
fn a_stale_holders_write_is_refused() {
    let r = Redis::durable("fencing");
    let key = "https://mcp.example.com/mcp#user";
    let (a, b) = (r.store(), r.store());
    let stale = a.lock(key).unwrap();
    let leases: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(&mut r.raw()).unwrap();
    assert_eq!(leases.len(), 1);
    let _: () = redis::cmd("DEL").arg(&leases[0]).query(&mut r.raw()).unwrap();

    let fresh = b.lock(key).unwrap();
    b.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-NEW", 20))).unwrap();
    match a.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-STALE", 10)), &stale) {
        Err(StoreError::LeaseLost) => {}
        other => panic!("the stale write was not refused: {other:?}"),
    }
    assert_eq!(b.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-NEW");
    // The stale holder letting go does not release the new holder's lease.
    drop(stale);
    let c = r.store().with_lock_wait(Duration::from_millis(300));
    assert!(matches!(c.lock(key), Err(StoreError::Redis { .. })), "the new holder's lease still holds");
    drop(fresh);
    drop(c.lock(key).unwrap());
}

/// A lease outlives a holder that works longer than the lease (it is renewed), and a waiter is
/// woken by the release rather than a poll.
#[test]
fn the_lease_is_renewed_while_held_and_waiters_wake_on_release() {
    let r = Redis::durable("renew");
    let key = "https://mcp.example.com/mcp#user";
    // A lease of 900 ms (renewed every 300 ms) held for 2.5 s: a renewer stalled for a while on
    // a loaded machine still keeps it.
    let a = r.store().with_lease(Duration::from_millis(900));
    let held = a.lock(key).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    a.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT", 1)), &held).expect("still the holder");
    let b = r.store();
    let waiter = std::thread::spawn(move || {
        drop(b.lock(key).unwrap());
        Instant::now()
    });
    // Released halfway between the waiter's 1 s polls (which count from its own start, never
    // earlier than this thread's spawn): a wake by the poll comes at least 500 ms after it.
    std::thread::sleep(Duration::from_millis(1500));
    let released = Instant::now();
    drop(held);
    let got = waiter.join().unwrap();
    assert!(got >= released, "the waiter took the lock while it was held");
    assert!(got - released < Duration::from_millis(400), "woken by the release, not the 1 s poll: {:?} after it", got - released);
}

/// Run as a child (MCP_OAUTH_REDIS_CHILD=redis-url|mcp-url|threads): `threads` clients in
/// this process, each its own `OAuthClient` on one shared `RedisStore`, each one MCP call.
#[test]
fn redis_child_entry() {
    let Ok(spec) = std::env::var("MCP_OAUTH_REDIS_CHILD") else { return };
    let mut parts = spec.split('|');
    let (redis_url, mcp_url, threads) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap().parse::<usize>().unwrap());
    let store = Arc::new(RedisStore::open(redis_url).unwrap());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (store, url) = (store.clone(), mcp_url.to_owned());
            std::thread::spawn(move || {
                let config = mcp_oauth_client::Config::new(url.parse().unwrap());
                let (i, _) = following_browser();
                let interaction = if std::env::var("MCP_OAUTH_REDIS_LOGIN").is_ok() { i } else { Interaction::non_interactive() };
                let mut mcp = Adapter::Blocking.with_oauth(config, store, interaction).unwrap();
                mcp.call_tool("echo", serde_json::json!({"text": "worker"})).expect("the worker got a token");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker failed");
    }
}

fn run_fleet(r: &Redis, s: &mcp_oauth_tests::tcp::TcpTestServer, processes: usize, threads: usize, login: bool) {
    run_fleet_on(&r.url(), s, processes, threads, login)
}

fn run_fleet_on(redis_url: &str, s: &mcp_oauth_tests::tcp::TcpTestServer, processes: usize, threads: usize, login: bool) {
    let children: Vec<_> = (0..processes)
        .map(|_| {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args(["--exact", "redis_child_entry", "--test-threads=1"])
                .env("MCP_OAUTH_REDIS_CHILD", format!("{redis_url}|{}|{threads}", s.mcp_url()))
                .stdout(Stdio::null());
            if login {
                c.env("MCP_OAUTH_REDIS_LOGIN", "1");
            }
            c.spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a worker process failed");
    }
}

/// 4 processes × 16 threads, each thread its own client, one Redis: a missing token gives
/// exactly one login, an expired one exactly one refresh, and no refresh token is presented
/// twice.
#[test]
fn a_fleet_logs_in_once_and_refreshes_once() {
    let r = Redis::durable("fleet");
    let s = server(|o| o.refresh_tokens = true);
    run_fleet(&r, &s, 4, 16, true);
    assert_eq!(s.lock().authorization_requests().len(), 1, "one login for the fleet");
    let store = r.store();
    let key = config(&s).store_key();
    for round in 1..=2 {
        let mut t = store.load(&key).unwrap().tokens.unwrap();
        t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
        store.persist(&key, &Persist::Tokens(t)).unwrap();
        run_fleet(&r, &s, 4, 16, false);
        assert_eq!(refreshes(&s), round, "exactly one refresh for 64 workers");
        assert!(s.lock().token_requests().iter().all(|t| t.status == 200), "a refresh token was presented twice");
    }
    assert_eq!(s.lock().authorization_requests().len(), 1, "nobody logged in again");
}

/// Redis down: a typed, retryable error, in bounded time, and no login starts; when Redis is
/// back (with its data), the same client works with no new login.
#[test]
fn redis_down_is_a_retryable_error_and_the_client_recovers_without_a_login() {
    let mut r = Redis::durable("down");
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(r.store().with_timeout(Duration::from_millis(500)));
    let (i, _) = following_browser();
    let mut mcp = Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).unwrap();
    mcp.list_tools().unwrap();
    let key = config(&s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t)).unwrap();

    r.stop();
    let started = Instant::now();
    match store.load(&key) {
        Err(StoreError::Redis { .. }) => {}
        other => panic!("expected a Redis error, got {other:?}"),
    }
    // A client that holds a fresh token needs no store round trip: it keeps working.
    mcp.list_tools().expect("a warm client does not need Redis");
    // A new client cannot read the store: a typed error, and no login is started.
    match Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).map(|_| ()) {
        Err(mcp_oauth_client::Error::Store(StoreError::Redis { .. })) => {}
        other => panic!("expected a Redis error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(s.lock().authorization_requests().len(), 1, "no login started because the store was down");

    let back = Redis::start_in(r.dir.clone(), r.port, &DURABLE);
    let mut fresh = Adapter::Blocking.with_oauth(config(&s), store.clone(), i).expect("recovered once Redis is back");
    fresh.list_tools().unwrap();
    assert_eq!(s.lock().authorization_requests().len(), 1, "still one login");
    assert_eq!(refreshes(&s), 1, "the expired token (kept by Redis across the restart) was refreshed, once");
    drop(back);
}

fn key_of(byte: u8) -> [u8; 32] {
    [byte; 32]
}

/// All values in the server's entries hash, raw.
fn raw_values(r: &Redis) -> Vec<(String, String, String)> {
    let mut conn = r.raw();
    let hashes: Vec<String> = redis::cmd("KEYS").arg("*:entries").query(&mut conn).unwrap();
    let mut out = Vec::new();
    for h in hashes {
        let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL").arg(&h).query(&mut conn).unwrap();
        out.extend(fields.into_iter().map(|(f, v)| (h.clone(), f, v)));
    }
    out
}

#[test]
fn encrypted_entries_pass_the_contract_and_hold_no_readable_secret() {
    let r = Redis::durable("sealed");
    let keys = mcp_oauth_client::EncryptionKeys::new("k1", key_of(1)).unwrap();
    let store = r.store().with_encryption(keys.clone());
    store_contract::round_trips(&store);
    store_contract::lists_describes_and_forgets(Arc::new(r.store().with_encryption(keys.clone())));

    let key = "https://mcp.example.com/mcp#user";
    let store = store.with_subject("raw");
    store.persist(key, &Persist::Client(store_contract::client("https://as.example"))).unwrap();
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-SEALED", 1))).unwrap();
    let raw: Vec<_> = raw_values(&r).into_iter().filter(|(h, _, _)| h.starts_with("mcp-oauth:raw:")).collect();
    assert_eq!(raw.len(), 1);
    assert!(raw[0].2.starts_with("mcpoauth:enc1:k1:"), "{}", raw[0].2);
    for secret in ["AT-SEALED", "RT-AT-SEALED", "CS-SECRET", "as.example", "mcp.example.com"] {
        assert!(!raw[0].2.contains(secret), "{secret} readable in Redis");
    }
    assert!(!format!("{keys:?}").contains("1, 1, 1"), "Debug shows no key: {keys:?}");
}

#[test]
fn keys_rotate_by_id_and_a_value_that_does_not_decrypt_is_reported_never_overwritten() {
    let r = Redis::durable("rotate");
    let key = "https://mcp.example.com/mcp#user";
    let old = r.store().with_encryption(mcp_oauth_client::EncryptionKeys::new("k1", key_of(1)).unwrap());
    old.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();

    // Rotation: k2 current, k1 still read; the next write re-seals with k2.
    let rotated = mcp_oauth_client::EncryptionKeys::parse(&format!(
        "k2:{}, k1:{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key_of(2)),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, key_of(1)),
    ))
    .unwrap();
    let new = r.store().with_encryption(rotated);
    assert_eq!(new.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-1");
    new.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-2", 2))).unwrap();
    assert!(raw_values(&r)[0].2.starts_with("mcpoauth:enc1:k2:"));

    // Only k1 now: the k2 value is reported, and neither read as empty nor overwritten.
    let before = raw_values(&r);
    let stale = r.store().with_encryption(mcp_oauth_client::EncryptionKeys::new("k1", key_of(1)).unwrap());
    let wrong = r.store().with_encryption(mcp_oauth_client::EncryptionKeys::new("k2", key_of(9)).unwrap());
    let unkeyed = r.store();
    for (name, s) in [("missing key id", &stale), ("wrong key", &wrong), ("no key", &unkeyed)] {
        match s.load(key) {
            Err(StoreError::Undecryptable { reason, .. }) => assert!(!reason.is_empty(), "{name}"),
            other => panic!("{name}: expected Undecryptable, got {other:?}"),
        }
        let _l = s.lock(key).unwrap();
        assert!(
            matches!(
                s.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-X", 3))),
                Err(StoreError::Undecryptable { .. })
            ),
            "{name}"
        );
    }
    assert_eq!(raw_values(&r), before, "nothing was overwritten");
    // An unencrypted value planted where encryption is required is refused.
    let (h, f, _) = before[0].clone();
    let plain = serde_json::json!({"version": 1, "server": key, "issuer": "https://as.example",
        "tokens": serde_json::to_value(store_contract::tokens("https://as.example", "AT-PLANTED", 9)).unwrap()});
    let _: () = redis::cmd("HSET").arg(&h).arg(&f).arg(plain.to_string()).query(&mut r.raw()).unwrap();
    assert!(matches!(new.load(key), Err(StoreError::Undecryptable { .. })));
    // A sealed value moved to another subject does not decrypt there.
    let _: () = redis::cmd("HSET").arg(&h).arg(&f).arg(&before[0].2).query(&mut r.raw()).unwrap();
    let tenant = r.store().with_subject("t2").with_encryption(mcp_oauth_client::EncryptionKeys::new("k2", key_of(2)).unwrap());
    let moved_to = h.replacen("mcp-oauth:", "mcp-oauth:t2:", 1);
    let _: () = redis::cmd("HSET").arg(&moved_to).arg(&f).arg(&before[0].2).query(&mut r.raw()).unwrap();
    assert!(matches!(tenant.load(key), Err(StoreError::Undecryptable { .. })), "a value moved to another subject");
    // Forgetting removes what cannot be read.
    new.forget(key).unwrap();
    tenant.forget(key).unwrap();
    assert!(raw_values(&r).is_empty());
}

#[test]
fn malformed_keys_are_refused_without_echoing_them() {
    for spec in [
        "",
        "k1",
        "k1:not-base64!",
        "k1:AAAA",
        "bad id:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        let e = mcp_oauth_client::EncryptionKeys::parse(spec).expect_err(spec);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("AAAA"), "{shown}");
    }
}

/// Run as a child (MCP_OAUTH_REDIS_HOLDER=redis-url|store-key): takes the server's lease the way
/// a worker does before it refreshes (short, renewed), says so, and waits to be killed.
#[test]
fn redis_holder_entry() {
    let Ok(spec) = std::env::var("MCP_OAUTH_REDIS_HOLDER") else { return };
    let (url, key) = spec.split_once('|').unwrap();
    let store = RedisStore::open(url).unwrap().with_lease(Duration::from_millis(1500));
    let _held = store.lock(key).unwrap();
    println!("holding");
    std::thread::sleep(Duration::from_secs(120));
}

/// The lease holder is SIGKILLed mid-refresh (holding the lease, its renewals stopping with
/// it): the fleet proceeds once the lease runs out, refreshes exactly once, never presents a
/// refresh token twice, and loses nothing.
#[test]
fn a_killed_lease_holder_delays_the_fleet_by_its_lease_and_nothing_is_lost() {
    let r = Redis::durable("killed");
    let s = server(|o| o.refresh_tokens = true);
    let store = r.store();
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), Arc::new(r.store()), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t)).unwrap();

    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "redis_holder_entry", "--test-threads=1", "--nocapture"])
        .env("MCP_OAUTH_REDIS_HOLDER", format!("{}|{key}", r.url()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(holder.stdout.take().unwrap());
    while !line.contains("holding") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "the holder ended");
    }
    // Let it renew at least once, then kill it where it stands.
    std::thread::sleep(Duration::from_millis(700));
    signal(holder.id(), "-KILL");
    let _ = holder.wait();
    let killed = Instant::now();
    let leases: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(&mut r.raw()).unwrap();
    let left: i64 = redis::cmd("PTTL").arg(&leases[0]).query(&mut r.raw()).unwrap();
    assert!(left > 0, "the dead holder's lease is still there ({left} ms)");

    run_fleet(&r, &s, 2, 8, false);
    let waited = killed.elapsed();
    let left = Duration::from_millis(left as u64);
    assert!(waited >= left, "the fleet did not wait out the dead holder's lease ({left:?} left): {waited:?}");
    assert!(waited < Duration::from_secs(10), "the fleet waited far past the lease: {waited:?}");
    assert_eq!(refreshes(&s), 1, "exactly one refresh");
    assert!(s.lock().token_requests().iter().all(|t| t.status == 200), "a refresh token was presented twice");
    assert_eq!(s.lock().authorization_requests().len(), 1, "nothing lost: no new login");
}

/// Redis paused (SIGSTOP) for longer than the timeouts: a new client fails with the typed,
/// retryable error within bounded time, a warm one keeps working, and after SIGCONT everything
/// works with no new login.
#[test]
fn a_paused_redis_gives_bounded_typed_errors_and_recovery_without_a_login() {
    let r = Redis::durable("paused");
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(r.store().with_timeout(Duration::from_millis(400)));
    let (i, _) = following_browser();
    let mut warm = Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).unwrap();
    warm.list_tools().unwrap();

    signal(r.child.id(), "-STOP");
    let started = Instant::now();
    let first = Adapter::Blocking.with_oauth(config(&s), store.clone(), i.clone()).map(|_| ());
    let second = store.load(&config(&s).store_key()).map(|_| ());
    let elapsed = started.elapsed();
    warm.list_tools().expect("a warm client does not need Redis");
    signal(r.child.id(), "-CONT");
    assert!(matches!(first, Err(mcp_oauth_client::Error::Store(StoreError::Redis { .. }))), "{first:?}");
    assert!(matches!(second, Err(StoreError::Redis { .. })), "{second:?}");
    assert!(elapsed < Duration::from_secs(5), "bounded: {elapsed:?}");

    let mut again = Adapter::Blocking.with_oauth(config(&s), store.clone(), i).expect("recovered after SIGCONT");
    again.list_tools().unwrap();
    assert_eq!(s.lock().authorization_requests().len(), 1, "no new login");
}

/// The store chosen by plain serde data: Redis by URL from the environment, with encryption
/// keys from the environment too.
#[test]
fn a_store_config_selects_redis_with_encryption() {
    use mcp_oauth_client::config::StoreConfig;
    let r = Redis::durable("config");
    let cfg: StoreConfig = serde_json::from_value(serde_json::json!({
        "type": "redis", "url": {"env": "FLEET_REDIS"}, "prefix": "agents", "subject": "t1",
        "encryption_keys": {"env": "FLEET_KEYS"}
    }))
    .unwrap();
    let keys = format!("k1:{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key_of(5)));
    let (url, k) = (r.url(), keys.clone());
    let env = move |name: &str| match name {
        "FLEET_REDIS" => Some(url.clone()),
        "FLEET_KEYS" => Some(k.clone()),
        _ => None,
    };
    let store = cfg.open(&env).unwrap();
    let key = "https://mcp.example.com/mcp#user";
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-CFG", 1))).unwrap();
    assert_eq!(store.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-CFG");
    let raw = raw_values(&r);
    assert!(raw[0].0.starts_with("agents:t1:{"), "{raw:?}");
    assert!(raw[0].2.starts_with("mcpoauth:enc1:k1:"));
    // A missing variable is a configuration error naming it, not a store without encryption.
    let no_keys = move |name: &str| (name == "FLEET_REDIS").then(|| r.url());
    let e = cfg.open(&no_keys).map(|_| ()).expect_err("the keys are required once configured");
    assert!(e.to_string().contains("FLEET_KEYS"), "{e}");
    // File and memory from the same shape.
    let dir = std::env::temp_dir().join(format!("mcp-oauth-storecfg-{}", std::process::id()));
    let file: StoreConfig = serde_json::from_value(serde_json::json!({"type": "file", "dir": dir})).unwrap();
    file.open(&|_| None).unwrap().persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-F", 1))).unwrap();
    assert!(mcp_oauth_client::FileStore::new(&dir).load(key).unwrap().tokens.is_some());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        serde_json::from_value::<StoreConfig>(serde_json::json!({"type": "file", "dri": "/x"})).is_err(),
        "a misspelt field is refused"
    );
}

/// Redis restarted while the store's connections sat idle: the next call reconnects and
/// succeeds (no spurious error for the restart it did not see).
#[test]
fn a_restart_between_calls_costs_no_error() {
    let mut r = Redis::durable("restart-idle");
    let store = r.store();
    let key = "https://mcp.example.com/mcp#user";
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-KEPT", 1))).unwrap();
    assert!(store.load(key).unwrap().tokens.is_some());
    r.stop();
    let back = Redis::start_in(r.dir.clone(), r.port, &DURABLE);
    assert_eq!(store.load(key).expect("reconnected").tokens.unwrap().access_token.secret(), "AT-KEPT", "kept across the restart");
    drop(back);
}

/// Two clients of one process share a store (as the fleet's threads do): the one whose lease
/// was taken over is refused by its own lease, not let through by the other's. And one tenant's
/// lease neither blocks another tenant's writes nor unfences them.
#[test]
fn fencing_is_per_holder_within_a_process_and_per_tenant() {
    let r = Redis::durable("fence-holder");
    let key = "https://mcp.example.com/mcp#user";
    let shared = r.store();
    let stale = shared.lock(key).unwrap();
    let leases: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(&mut r.raw()).unwrap();
    let _: () = redis::cmd("DEL").arg(&leases[0]).query(&mut r.raw()).unwrap();
    let fresh = shared.clone().lock(key).unwrap();
    shared.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-NEW", 20)), &fresh).unwrap();
    assert!(
        matches!(
            shared.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-STALE", 10)), &stale),
            Err(StoreError::LeaseLost)
        ),
        "the stale holder in the same process was let through"
    );
    assert_eq!(shared.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-NEW");
    drop(stale);
    drop(fresh);

    let (alice, bob) = (r.store().with_subject("alice"), r.store().with_subject("bob"));
    let a_lock = alice.lock(key).unwrap();
    let b_lock = bob.lock(key).unwrap();
    bob.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-BOB", 1)), &b_lock)
        .expect("bob holds his own lease");
    drop(b_lock);
    alice
        .persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-ALICE", 1)), &a_lock)
        .expect("alice still holds hers");
    drop(a_lock);
}

/// Configuration errors are typed as such (not retryable Redis failures) and never repeat a
/// password or a key: a URL the parser refuses, a key and its id swapped.
#[test]
fn configuration_errors_are_typed_and_repeat_no_secret() {
    let e = RedisStore::open("redis://:hunter2@127.0.0.1:99999/").map(|_| ()).expect_err("not a URL");
    assert!(matches!(e, StoreError::Misconfigured { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
    for url in [
        "redis+cluster://:hunter2@127.0.0.1:1/0",
        "redis+cluster://:hunter2@127.0.0.1:1,,127.0.0.1:2",
        "redis+sentinel://:hunter2@127.0.0.1:1",
        "redis+sentinel://:hunter2@127.0.0.1:1/master/db",
        "rediss+sentinel://:hunter2@/master",
    ] {
        let e = RedisStore::open(url).map(|_| ()).expect_err(url);
        assert!(matches!(e, StoreError::Misconfigured { .. }), "{url}: {e:?}");
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
    }
    // Nothing listens there: a typed Redis error, with no password in it or in Debug.
    for url in ["redis+sentinel://:hunter2@127.0.0.1:1,127.0.0.1:2/mymaster/3", "redis+cluster://user:hunter2@127.0.0.1:1,127.0.0.1:2"] {
        let store = RedisStore::open(url).unwrap().with_timeout(Duration::from_millis(200));
        let e = store.load("https://mcp.example.com/mcp#user").map(|_| ()).expect_err(url);
        assert!(matches!(e, StoreError::Redis { .. }), "{url}: {e:?}");
        let shown = format!("{e} {e:?} {store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let key = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 31]);
    for spec in [format!("{key}:main"), format!("main:{key}"), format!("k1:{key}x")] {
        let e = mcp_oauth_client::EncryptionKeys::parse(&spec).expect_err(&spec);
        assert!(matches!(e, StoreError::Misconfigured { .. }), "{e:?}");
        assert!(!format!("{e} {e:?}").contains(&key[..20]), "{e}");
    }
}

/// Taking the lease, the reply is lost after Redis applied it; the store retries on a fresh
/// connection with the same token. It must see the lease is its own, not wait it out.
#[test]
fn a_lost_reply_to_taking_the_lease_does_not_make_the_taker_wait_out_its_own_lease() {
    let r = Redis::durable("lost-reply");
    let key = "https://mcp.example.com/mcp#user";
    let proxy = reply_losing_proxy(r.port, b":lease", Arc::new(std::sync::atomic::AtomicBool::new(true)));
    let s = RedisStore::open(&format!("redis://127.0.0.1:{proxy}/"))
        .unwrap()
        .with_lease(Duration::from_secs(8))
        .with_lock_wait(Duration::from_secs(20));
    // The scripts cached in Redis (as in any running fleet), so the command whose reply is
    // lost is applied, not answered NOSCRIPT.
    drop(r.store().lock("https://preload.example/mcp#user").unwrap());
    // A pooled connection, so the lost reply is retried once on a fresh one.
    assert!(s.load(key).unwrap().tokens.is_none());
    let started = Instant::now();
    let held = s.lock(key).expect("the lease");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "waited {took:?} for a lease it already held");
    s.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1)), &held)
        .expect("fenced by its own lease");
    drop(held);
    // Released: another store takes it at once.
    let other = r.store().with_lock_wait(Duration::from_millis(500));
    drop(other.lock(key).expect("released"));
}

/// Braces in a prefix or subject would change Redis Cluster's hash tag (the first `{…}` of a
/// key): `{}` would spread one server's keys over slots (CROSSSLOT in its scripts), `{x}` put
/// every server in one slot. They are escaped, so each server's keys share the server's tag.
#[test]
fn braces_in_a_prefix_or_subject_do_not_change_the_hash_tag() {
    let r = Redis::durable("braces");
    let key = "https://mcp.example.com/mcp#user";
    let s = r.store().with_prefix("app{}").with_subject("{tenant}");
    let t = r.store().with_prefix("app{").with_subject("x}");
    for store in [&s, &t] {
        let held = store.lock(key).unwrap();
        store.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1)), &held).unwrap();
        drop(held);
        assert_eq!(store.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-1");
    }
    assert!(r.store().with_prefix("app").with_subject("tenant").load(key).unwrap().tokens.is_none());
    let _held = s.lock(key).unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut r.raw()).unwrap();
    let tag = |k: &str| -> Option<String> {
        let open = k.find('{')?;
        let close = open + k[open..].find('}')?;
        Some(k[open + 1..close].to_owned())
    };
    let server_tag = |k: &str| tag(k).filter(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    for k in keys.iter().filter(|k| !k.ends_with(":servers")) {
        assert!(server_tag(k).is_some(), "{k}: hash tag {:?}, not the server's", tag(k));
    }
}

/// A Redis Cluster of three masters (no replicas) of this test's own, each with its own
/// scratch directory, slots split evenly, formed with `CLUSTER ADDSLOTSRANGE` and `MEET`.
struct Cluster {
    nodes: Vec<Redis>,
    bus: Vec<u16>,
}

impl Cluster {
    fn start(tag: &str) -> Cluster {
        let mut nodes = Vec::new();
        let mut bus = Vec::new();
        for i in 0..3 {
            let dir = std::env::temp_dir().join(format!("mcp-oauth-redis-{}-{tag}-{i}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let cport = free_port();
            nodes.push(Self::node(dir, free_port(), cport));
            bus.push(cport);
        }
        let c = Cluster { nodes, bus };
        for (i, n) in c.nodes.iter().enumerate() {
            let (from, to) = (i * 16384 / 3, (i + 1) * 16384 / 3 - 1);
            let _: () = redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(from).arg(to).query(&mut n.raw()).unwrap();
        }
        for (n, cport) in c.nodes.iter().zip(&c.bus).skip(1) {
            let _: () = redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(n.port).arg(cport).query(&mut c.nodes[0].raw()).unwrap();
        }
        c.wait_ok();
        c
    }

    fn node(dir: PathBuf, port: u16, cport: u16) -> Redis {
        let conf = dir.join("nodes.conf");
        let extra = [
            "--cluster-enabled".to_owned(),
            "yes".into(),
            "--cluster-config-file".into(),
            conf.to_string_lossy().into_owned(),
            "--cluster-node-timeout".into(),
            "2000".into(),
            "--cluster-port".into(),
            cport.to_string(),
        ];
        Redis::start_in(dir, port, &durable(&extra))
    }

    /// Until every node says the cluster is up and knows all three.
    fn wait_ok(&self) {
        let started = Instant::now();
        loop {
            let ok = self.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut n.raw()).unwrap_or_default();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            });
            if ok {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the cluster did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The seeds: two of the three nodes (the client finds the third itself).
    fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{},127.0.0.1:{}", self.nodes[0].port, self.nodes[1].port)
    }

    /// The node serving `key`'s slot.
    fn node_of(&self, key: &str) -> usize {
        let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut self.nodes[0].raw()).unwrap();
        usize::from(slot) * 3 / 16384
    }

    /// Every key on every node.
    fn keys(&self) -> Vec<Vec<String>> {
        self.nodes.iter().map(|n| redis::cmd("KEYS").arg("*").query(&mut n.raw()).unwrap()).collect()
    }
}

/// On a Redis Cluster: the store contract, servers spread over the nodes with each server's
/// keys on one node (one hash tag), fencing, waiters woken across nodes (a Cluster delivers
/// `PUBLISH` everywhere), and a fleet of 4 processes × 16 clients: one login, one refresh.
#[test]
fn the_redis_store_works_on_a_redis_cluster() {
    let c = Cluster::start("cluster");
    let open = || RedisStore::open(&c.url()).unwrap().with_lock_wait(Duration::from_secs(30));
    store_contract::round_trips(&open());
    store_contract::lock_excludes(Arc::new(open()));
    store_contract::lists_describes_and_forgets(Arc::new(open()));

    let store = open().with_prefix("spread");
    let servers: Vec<String> = (0..24).map(|i| format!("https://mcp{i}.example.com/mcp#user")).collect();
    for (i, key) in servers.iter().enumerate() {
        let held = store.lock(key).unwrap();
        store.persist_locked(key, &Persist::Tokens(store_contract::tokens("https://as.example", &format!("AT-{i}"), 1)), &held).unwrap();
    }
    let mut listed = store.servers().unwrap();
    listed.sort();
    let mut want = servers.clone();
    want.sort();
    assert_eq!(listed, want);
    for (i, key) in servers.iter().enumerate() {
        assert_eq!(store.load(key).unwrap().tokens.unwrap().access_token.secret(), format!("AT-{i}"));
    }
    let keys = c.keys();
    let holding = keys.iter().filter(|k| k.iter().any(|k| k.ends_with(":entries"))).count();
    assert!(holding >= 2, "24 servers on one node: {keys:?}");

    // Fencing: the lease deleted behind the holder's back (an expiry, to Redis), on whichever
    // node holds it.
    let key = servers[0].clone();
    let stale = store.lock(&key).unwrap();
    let lease = c.keys().into_iter().flatten().find(|k| k.ends_with(":lease")).expect("the lease key");
    let _: () = redis::cmd("DEL").arg(&lease).query(&mut c.nodes[c.node_of(&lease)].raw()).unwrap();
    let fresh = open().with_prefix("spread").lock(&key).unwrap();
    store.persist_locked(&key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-NEW", 20)), &fresh).unwrap();
    assert!(
        matches!(
            store.persist_locked(&key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-STALE", 10)), &stale),
            Err(StoreError::LeaseLost)
        ),
        "a stale holder's write on a Cluster was not refused"
    );
    drop(stale);
    drop(fresh);

    // A waiter, subscribed on a seed, is woken when the holder on another node lets go.
    let other = servers.iter().find(|k| {
        let held = store.lock(k).unwrap();
        let lease = c.keys().into_iter().flatten().find(|l| l.ends_with(":lease") && c.node_of(l) == 2);
        drop(held);
        lease.is_some()
    });
    let other = other.expect("a server whose slot is on the third node").clone();
    let held = store.lock(&other).unwrap();
    let waiter = {
        let s = open().with_prefix("spread");
        let other = other.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            drop(s.lock(&other).unwrap());
            started.elapsed()
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    drop(held);
    let waited = waiter.join().unwrap();
    assert!(waited >= Duration::from_millis(350), "the waiter did not wait: {waited:?}");
    assert!(waited < Duration::from_millis(900), "woken across nodes by the release, not the 1 s poll: {waited:?}");

    let s = server(|o| o.refresh_tokens = true);
    run_fleet_on(&c.url(), &s, 4, 16, true);
    assert_eq!(s.lock().authorization_requests().len(), 1, "one login for the fleet");
    let store = open();
    let key = config(&s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t)).unwrap();
    run_fleet_on(&c.url(), &s, 4, 16, false);
    assert_eq!(refreshes(&s), 1, "exactly one refresh for 64 workers on a Cluster");
    assert!(s.lock().token_requests().iter().all(|t| t.status == 200), "a refresh token was presented twice");
}

/// A Cluster node down (no replica to take over): a server on it gets a typed, retryable error
/// in bounded time, and once the node is back (with its data) the same store reads it again.
#[test]
fn a_cluster_node_down_is_a_bounded_typed_error_and_comes_back_with_its_data() {
    let mut c = Cluster::start("cluster-down");
    let store = RedisStore::open(&c.url()).unwrap().with_timeout(Duration::from_millis(500));
    let key = (0..64)
        .map(|i| format!("https://mcp{i}.example.com/mcp#user"))
        .find(|k| {
            store.persist(k, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();
            c.keys()[2].iter().any(|n| n.ends_with(":entries"))
        })
        .expect("a server on the third node");
    let (port, cport) = (c.nodes[2].port, c.bus[2]);
    let dir = c.nodes[2].dir.clone();
    c.nodes[2].stop();
    let started = Instant::now();
    match store.load(&key) {
        Err(StoreError::Redis { .. }) => {}
        other => panic!("a node down: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let old = std::mem::replace(&mut c.nodes[2], Cluster::node(dir, port, cport));
    std::mem::forget(old); // Stopped already; its directory is the new node's.
    c.wait_ok();
    let started = Instant::now();
    loop {
        match store.load(&key) {
            Ok(r) => {
                assert_eq!(r.tokens.expect("the data came back").access_token.secret(), "AT-1");
                break;
            }
            Err(StoreError::Redis { .. }) if started.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no recovery: {e:?}"),
        }
    }
}

/// A master, a replica and a Sentinel of this test's own.
struct SentinelSet {
    master: Redis,
    replica: Redis,
    sentinel: Child,
    sentinel_port: u16,
    dir: PathBuf,
}

impl SentinelSet {
    fn start(tag: &str) -> SentinelSet {
        Self::start_with(tag, None)
    }

    /// With `requirepass` in the Sentinel's configuration when `password` is given.
    fn start_with(tag: &str, password: Option<&str>) -> SentinelSet {
        let master = Redis::durable(&format!("{tag}-m"));
        let rdir = std::env::temp_dir().join(format!("mcp-oauth-redis-{}-{tag}-r", std::process::id()));
        let _ = std::fs::remove_dir_all(&rdir);
        std::fs::create_dir_all(&rdir).unwrap();
        let replica = Redis::start_in(rdir, free_port(), &["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
        let dir = std::env::temp_dir().join(format!("mcp-oauth-redis-{}-{tag}-s", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sentinel_port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 3000\nsentinel failover-timeout mymaster 10000\n{}",
                dir.display(),
                master.port,
                password.map(|p| format!("requirepass {p}\n")).unwrap_or_default()
            ),
        )
        .unwrap();
        let sentinel =
            Command::new(redis_server()).arg(&conf).arg("--sentinel").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let set = SentinelSet { master, replica, sentinel, sentinel_port, dir };
        // Until the replica is in sync and the Sentinel knows it.
        let started = Instant::now();
        loop {
            let synced = redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut set.replica.raw())
                .is_ok_and(|i| i.contains("master_link_status:up"));
            let encoded = |p: &str| {
                p.bytes()
                    .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
                    .collect::<String>()
            };
            let auth = password.map(|p| format!(":{}@", encoded(p))).unwrap_or_default();
            let known = redis::Client::open(format!("redis://{auth}127.0.0.1:{sentinel_port}/"))
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("SENTINEL").arg("REPLICAS").arg("mymaster").query::<Vec<redis::Value>>(&mut c))
                .is_ok_and(|r| !r.is_empty());
            if synced && known {
                return set;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the Sentinel set did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/mymaster", self.sentinel_port)
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Through Sentinel: the store contract, then a client that logged in keeps working through
/// a failover (the master killed, the replica promoted) with no new login; meanwhile its
/// errors are typed and retryable, and the store writes to the new master.
#[test]
fn through_sentinel_the_store_follows_a_failover_without_a_new_login() {
    let mut set = SentinelSet::start("sentinel");
    let open = || RedisStore::open(&set.url()).unwrap().with_timeout(Duration::from_millis(500));
    store_contract::round_trips(&open());
    store_contract::lists_describes_and_forgets(Arc::new(open()));

    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(open());
    let (i, _) = following_browser();
    let mut mcp = Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap();
    mcp.call_tool("echo", serde_json::json!({"text": "before"})).unwrap();
    assert_eq!(s.lock().authorization_requests().len(), 1);
    // Replication is asynchronous: the replica must hold the login before the master dies
    // (else the failover loses it, as it would any Redis write).
    let key = config(&s).store_key();
    let started = Instant::now();
    while set.replica.store().load(&key).unwrap().tokens.is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "the replica never got the login");
        let _: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut set.master.raw()).unwrap();
    }

    let before = store.load(&key).unwrap().tokens.unwrap();
    // (A master too slow to answer the Sentinel for 3 s would have been failed over already,
    // and its writes lost when it rejoined as a replica: not the failover this test is about.)
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut set.master.raw()).unwrap();
    assert_eq!(redis::from_redis_value_ref::<String>(&role[0]).unwrap(), "master", "a failover came early");
    set.master.stop();
    let started = Instant::now();
    let mut errors = 0;
    loop {
        match store.load(&key) {
            Ok(r) => {
                assert!(r.tokens.is_some(), "the tokens were lost in the failover");
                break;
            }
            Err(StoreError::Redis { .. }) if started.elapsed() < Duration::from_secs(40) => {
                errors += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no failover: {e:?}"),
        }
    }
    eprintln!("failover: {:?}, {errors} typed errors meanwhile", started.elapsed());
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut set.replica.raw()).unwrap();
    assert_eq!(redis::from_redis_value_ref::<String>(&role[0]).unwrap(), "master", "the replica was promoted");
    // The access token revoked: the next call refreshes, under a lease on the new master.
    s.lock().revoke_access_tokens();
    mcp.call_tool("echo", serde_json::json!({"text": "after"})).expect("works after the failover");
    assert_eq!(refreshes(&s), 1, "refreshed through the new master");
    assert_eq!(s.lock().authorization_requests().len(), 1, "no new login");
    let now = set.replica.store().load(&key).unwrap().tokens.expect("the new master holds the tokens");
    assert_ne!(now.access_token.secret(), before.access_token.secret(), "the refreshed tokens were written to the new master");
}

/// Clients whose token ran out while another holder works wait for the holder's release and
/// go on with its tokens: no refresh of their own, and none of them takes the lease (before,
/// each took it in turn to reload under it: 16 leases, one after another).
#[test]
fn waiters_go_on_with_the_holders_tokens_without_taking_the_lease() {
    let r = Redis::durable("waiters");
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(r.store());
    let key = config(&s).store_key();
    let login = || {
        let (i, _) = following_browser();
        let mut mcp = Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap();
        mcp.call_tool("echo", serde_json::json!({"text": "login"})).unwrap();
        store.load(&key).unwrap().tokens.unwrap()
    };
    let first = login();
    store.forget(&key).unwrap();
    let second = login();
    assert_ne!(first.access_token.secret(), second.access_token.secret());
    // What the waiters start from: the first token, run out.
    let mut stale = first.clone();
    stale.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(stale)).unwrap();

    let holder = store.lock(&key).unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut r.raw()).unwrap();
    let waiters: Vec<_> = (0..16)
        .map(|_| {
            let (store, url) = (store.clone(), s.mcp_url());
            std::thread::spawn(move || {
                let mut mcp = Adapter::Blocking
                    .with_oauth(mcp_oauth_client::Config::new(url.parse().unwrap()), store, Interaction::non_interactive())
                    .unwrap();
                mcp.call_tool("echo", serde_json::json!({"text": "waiter"})).expect("the waiter got the holder's token");
            })
        })
        .collect();
    // Until all 16 wait on the release (subscribed), not a fixed time: a waiter still starting
    // after the release would find the lease free and take it, as it should.
    let started = Instant::now();
    loop {
        let channels: Vec<String> = redis::cmd("PUBSUB").arg("CHANNELS").arg("*:done").query(&mut r.raw()).unwrap();
        let subscribed: Vec<(String, usize)> = match channels.first() {
            Some(c) => redis::cmd("PUBSUB").arg("NUMSUB").arg(c).query(&mut r.raw()).unwrap(),
            None => Vec::new(),
        };
        if subscribed.first().is_some_and(|(_, n)| *n == 16) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the 16 waiters did not all wait: {subscribed:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    store.persist_locked(&key, &Persist::Tokens(second), &holder).unwrap();
    drop(holder);
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(refreshes(&s), 0, "the waiters used the holder's token");
    assert_eq!(leases_released(&r), 1, "waiters took the lease to reload (the one release is the holder's)");
    assert_eq!(s.lock().authorization_requests().len(), 2);
}

/// A `redis-server` speaking only TLS, with the certificates of [`tls_material`].
fn tls_redis(tag: &str, client_certificates: bool) -> (Redis, PathBuf) {
    let dir = scratch(tag);
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    tls_material(&certs);
    let port = free_port();
    let mut extra = vec!["--port".to_owned(), "0".into()];
    extra.extend(tls_options(&certs, port, client_certificates));
    (Redis::start_in(dir, port, &extra), certs)
}

/// `rediss://` against a real TLS Redis with a private CA: the store contract passes when the
/// CA is given; the system's roots refuse the server (a typed error); certificates for a URL
/// without TLS are refused up front; a key never shows in `Debug`.
#[test]
fn rediss_with_a_private_ca_passes_the_contract_and_an_untrusted_server_is_refused() {
    let (r, certs) = tls_redis("tls", false);
    let url = format!("rediss://127.0.0.1:{}/", r.port);
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();
    let store = RedisStore::open_with_tls(&url, mcp_oauth_client::RedisTls::default().with_roots_pem(ca.clone())).unwrap();
    store_contract::round_trips(&store);
    store_contract::lock_excludes(Arc::new(store.clone()));

    let untrusting = RedisStore::open(&url).unwrap().with_timeout(Duration::from_secs(2));
    match untrusting.load("https://mcp.example.com/mcp#user") {
        Err(StoreError::Redis { .. }) => {}
        other => panic!("a server signed by an unknown CA was trusted: {other:?}"),
    }
    let plain = RedisStore::open(&format!("redis://127.0.0.1:{}/", r.port)).unwrap().with_timeout(Duration::from_secs(2));
    assert!(matches!(plain.load("https://mcp.example.com/mcp#user"), Err(StoreError::Redis { .. })));
    let e = RedisStore::open_with_tls(&format!("redis://127.0.0.1:{}/", r.port), mcp_oauth_client::RedisTls::default().with_roots_pem(ca))
        .map(|_| ())
        .expect_err("certificates for a URL without TLS");
    assert!(matches!(e, StoreError::Misconfigured { .. }), "{e:?}");
    let e = RedisStore::open_with_tls(&url, mcp_oauth_client::RedisTls::default().with_roots_pem(b"not a certificate".to_vec()))
        .map(|_| ())
        .expect_err("a CA that does not parse");
    assert!(matches!(e, StoreError::Misconfigured { .. }), "{e:?}");
}

/// Mutual TLS, selected through `StoreConfig` (`tls_ca_file`, `tls_cert_file`,
/// `tls_key_file`): a client without its certificate is refused, one with it works, and
/// neither the key nor its file's contents appear in `Debug`.
#[test]
fn mutual_tls_through_the_store_config() {
    let (r, certs) = tls_redis("mtls", true);
    let url = format!("rediss://127.0.0.1:{}/", r.port);
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();
    let without = RedisStore::open_with_tls(&url, mcp_oauth_client::RedisTls::default().with_roots_pem(ca))
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert!(matches!(without.load("https://mcp.example.com/mcp#user"), Err(StoreError::Redis { .. })), "no client certificate, yet let in");

    let json = serde_json::json!({
        "type": "redis",
        "url": url,
        "tls_ca_file": certs.join("ca.pem"),
        "tls_cert_file": certs.join("client.pem"),
        "tls_key_file": certs.join("client.key"),
    });
    let config: mcp_oauth_client::config::StoreConfig = serde_json::from_value(json).unwrap();
    let store = config.open(&|_| None).unwrap();
    store_contract::round_trips(&*store);
    let key = std::fs::read_to_string(certs.join("client.key")).unwrap();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let tls = mcp_oauth_client::RedisTls::from_files(
        Some(&certs.join("ca.pem")),
        Some(&certs.join("client.pem")),
        Some(&certs.join("client.key")),
    )
    .unwrap();
    let shown = format!("{tls:?} {config:?}");
    assert!(!shown.contains(&body[..24]), "{shown}");
    let e = mcp_oauth_client::RedisTls::from_files(None, Some(&certs.join("client.pem")), None)
        .map(|_| ())
        .expect_err("a certificate without its key");
    assert!(matches!(e, StoreError::Misconfigured { .. }), "{e:?}");
    let cert = std::fs::read(certs.join("client.pem")).unwrap();
    let e = RedisStore::open_with_tls(&url, mcp_oauth_client::RedisTls::default().with_client_pem(cert, b"not a key".to_vec()))
        .map(|_| ())
        .expect_err("a key that is no key");
    assert!(matches!(e, StoreError::Misconfigured { .. }), "{e:?}");
}

/// Sentinels that ask for a password (`requirepass`, as common Helm charts set it): without
/// it a typed error, with it (`with_sentinel_auth`, or `sentinel_password` in `StoreConfig`,
/// here with characters a URL must escape) the store works; and Sentinel credentials for a URL
/// that is not a Sentinel one are refused.
#[test]
fn sentinels_that_ask_for_a_password_get_it() {
    let password = "s3nt/p@ss:w%rd";
    let set = SentinelSet::start_with("sentinel-auth", Some(password));
    let key = "https://mcp.example.com/mcp#user";
    let bare = RedisStore::open(&set.url()).unwrap().with_timeout(Duration::from_millis(500));
    match bare.load(key) {
        Err(StoreError::Redis { message }) => assert!(!message.contains(password), "{message}"),
        other => panic!("a Sentinel that asks for a password answered without one: {other:?}"),
    }
    let store = RedisStore::open(&set.url()).unwrap().with_sentinel_auth(None, password).unwrap();
    store_contract::round_trips(&store);
    assert!(!format!("{store:?}").contains("s3nt"), "{store:?}");

    let json = serde_json::json!({"type": "redis", "url": set.url(), "prefix": "via-config", "sentinel_password": {"env": "SENTINEL_PW"}});
    let config: mcp_oauth_client::config::StoreConfig = serde_json::from_value(json).unwrap();
    let via_config = config.open(&|v| (v == "SENTINEL_PW").then(|| password.to_owned())).unwrap();
    store_contract::round_trips(&*via_config);

    let e = RedisStore::open(&set.master.url()).unwrap().with_sentinel_auth(None, password).map(|_| ()).expect_err("not a Sentinel URL");
    assert!(matches!(e, StoreError::Misconfigured { .. }), "{e:?}");
}

/// The tests' own scaffolding: a server whose port is already taken (in CI, by another test's
/// Cluster bus port) is reported when it starts, not found later as "connection reset by peer"
/// at the store's first command; and no port is handed out twice in one process.
#[test]
fn a_test_server_whose_port_is_taken_is_reported_at_its_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = scratch("taken");
    let started = std::panic::catch_unwind(|| Redis::start_in(dir.clone(), port, &DURABLE));
    let _ = std::fs::remove_dir_all(&dir);
    let message = match started {
        Ok(r) => panic!("a server that could not listen on {} was taken as started", r.port),
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(message.contains("exited"), "{message}");
    drop(taken);
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
}

/// Round 5's open finding, closed by the revision: X's first login cannot be saved, another
/// instance logs in, the fleet is logged out; X does not write its login back.
#[test]
fn a_logout_elsewhere_after_a_failed_first_save_is_kept() {
    let r = Redis::start("aba");
    store_contract::a_logout_elsewhere_after_a_failed_first_save_is_kept(Arc::new(r.store()));
    let encrypted = Redis::start("aba-sealed");
    store_contract::a_logout_elsewhere_after_a_failed_first_save_is_kept(Arc::new(encrypted.store().with_encryption(keys())));
}

/// A Redis that may evict keys under memory pressure is refused, with the reason, before the
/// store reads or writes anything: it could drop a held lease (`volatile-*`: two workers
/// refresh at once) or the tokens themselves (`allkeys-*`). `noeviction` (Redis's default) is
/// used as always.
#[test]
fn a_redis_that_may_evict_keys_is_refused_with_the_reason() {
    for policy in ["allkeys-lru", "volatile-ttl"] {
        let r = Redis::start_with(&format!("evict-{policy}"), &["--maxmemory-policy", policy]);
        let store = r.store();
        for attempt in
            [store.load("https://mcp.example.com/mcp#user").map(|_| ()), store.lock("https://mcp.example.com/mcp#user").map(|_| ())]
        {
            match attempt {
                Err(StoreError::Misconfigured { message }) => {
                    assert!(message.contains(policy) && message.contains("noeviction"), "{message}")
                }
                other => panic!("maxmemory-policy {policy}: {other:?}"),
            }
        }
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut r.raw()).unwrap();
        assert!(keys.is_empty(), "nothing was written: {keys:?}");
        // Put right, a new store (a restart of the worker) is served.
        let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("noeviction").query(&mut r.raw()).unwrap();
        r.store()
            .persist("https://mcp.example.com/mcp#user", &Persist::Tokens(store_contract::tokens("https://as.example", "AT", 1)))
            .unwrap();
    }
}

/// A client certificate with another certificate's key is refused when the store is opened,
/// before any connection fails on it.
#[test]
fn a_client_certificate_with_another_key_is_refused_up_front() {
    let dir = scratch("mismatched-pair");
    tls_material(&dir);
    let e =
        mcp_oauth_client::RedisTls::from_files(Some(&dir.join("ca.pem")), Some(&dir.join("client.pem")), Some(&dir.join("client2.key")))
            .and_then(|tls| RedisStore::open_with_tls("rediss://127.0.0.1:6379/", tls))
            .map(|_| ())
            .expect_err("a mismatched pair");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(&e, StoreError::Misconfigured { message } if message.contains("do not belong together")), "{e:?}");
}

/// A revision key that holds no number (written behind the store's back) does not make the
/// store unusable: its revision is a digest of what is there (the same value read twice is no
/// change), entries still load, and the next save of tokens sets a number again.
#[test]
fn a_revision_key_that_is_not_a_number_is_not_trusted_nor_fatal() {
    let r = Redis::start("revision-junk");
    let store = r.store();
    let key = "https://mcp.example.com/mcp#user";
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*:revision").query(&mut r.raw()).unwrap();
    let _: () = redis::cmd("SET").arg(&keys[0]).arg("not a number").query(&mut r.raw()).unwrap();
    let junk = store.revision(key).unwrap();
    assert!(junk.is_some_and(|r| r != 0) && store.revision(key).unwrap() == junk, "a digest, the same each time: {junk:?}");
    assert_eq!(store.load(key).unwrap().tokens.map(|t| t.access_token.secret().to_owned()).as_deref(), Some("AT-1"));
    store.persist(key, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-2", 2))).unwrap();
    assert!(store.revision(key).unwrap().is_some_and(|r| r != 0));
}
