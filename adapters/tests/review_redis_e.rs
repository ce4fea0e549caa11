//! Review of the Redis token store (issue #16), fifth pass: the driver's try-lock-or-wait loop,
//! Cluster slot moves, Sentinel with least-privilege users, and Redis contents written without
//! the key. Each test starts its own `redis-server`s on free 127.0.0.1 ports. Tests named
//! `sound_*` check what held; the others reproduce findings.

mod common;
mod redis_support;
mod store_contract;
use common::*;
use mcp_oauth_client::core::Restored;
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{Persist, RedisStore, StoreError, TokenStore};
use redis_support::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "https://mcp.example.com/mcp#user";

fn lease_keys(r: &Redis) -> Vec<String> {
    redis::cmd("KEYS").arg("*:lease").query(&mut r.raw()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. A holder fenced out (LeaseLost) writes its stale tokens back at its next call, over what
//    the next holder wrote.
// ---------------------------------------------------------------------------------------------

type Hook = Box<dyn FnOnce() + Send>;

/// A `RedisStore` (every method delegated) that runs a hook once, just before the first fenced
/// write of tokens: the moment a holder pauses (GC, VM migration, SIGSTOP) past its lease.
struct PausingBeforeWrite {
    inner: RedisStore,
    hook: Mutex<Option<Hook>>,
}

impl TokenStore for PausingBeforeWrite {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.inner.load(server)
    }
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.inner.persist(server, p)
    }
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.inner.lock(server)
    }
    fn persist_locked(&self, server: &str, p: &Persist, lock: &StoreLock) -> Result<(), StoreError> {
        if matches!(p, Persist::Tokens(_)) {
            let hook = self.hook.lock().unwrap().take();
            if let Some(h) = hook {
                h();
            }
        }
        self.inner.persist_locked(server, p, lock)
    }
    fn try_lock(&self, server: &str) -> Result<Option<StoreLock>, StoreError> {
        self.inner.try_lock(server)
    }
    fn wait_unlocked(&self, server: &str) -> Result<bool, StoreError> {
        self.inner.wait_unlocked(server)
    }
    fn servers(&self) -> Result<Vec<String>, StoreError> {
        self.inner.servers()
    }
}

/// Worker A refreshes (R1 -> R2) and pauses past its lease before saving. Worker B takes the
/// lease, finds R1, presents it (reuse: the AS revokes the grant), and logs in: its tokens are
/// the only good ones. A's save is refused (LeaseLost), as the issue demands, but A remembers
/// it as unsaved and at its next call writes its revoked tokens back over B's login, under a
/// lease of its own: fencing undone one call later. The fleet then loads revoked tokens.
#[test]
fn a_fenced_out_holder_writes_its_stale_tokens_back_over_the_next_holders_login() {
    let r = Arc::new(Redis::start("stale-writeback"));
    let s = Arc::new(server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
        o.refresh_reuse_revokes_grant = true;
    }));
    let inner = r.store();
    let (browser, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), Arc::new(inner.clone()), browser.clone()).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let mut t = inner.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    inner.persist(&key, &Persist::Tokens(t)).unwrap();

    let b_token: Arc<Mutex<Option<String>>> = Arc::default();
    let hook: Hook = {
        let (r, s, inner, key, b_token, browser) = (r.clone(), s.clone(), inner.clone(), key.clone(), b_token.clone(), browser.clone());
        Box::new(move || {
            // A's lease runs out while it is paused.
            for l in lease_keys(&r) {
                let _: () = redis::cmd("DEL").arg(l).query(&mut r.raw()).unwrap();
            }
            // Worker B, meanwhile, on another machine.
            let b = {
                let (s, inner) = (s.clone(), inner.clone());
                std::thread::spawn(move || {
                    Adapter::Blocking
                        .with_oauth(config(&s), Arc::new(inner), browser)
                        .unwrap()
                        .call_tool("echo", serde_json::json!({"text": "b"}))
                        .map(|_| ())
                })
            };
            b.join().unwrap().expect("worker B");
            *b_token.lock().unwrap() = inner.load(&key).unwrap().tokens.map(|t| t.access_token.secret().to_owned());
        })
    };
    let store = Arc::new(PausingBeforeWrite { inner: inner.clone(), hook: Mutex::new(Some(hook)) });
    let mut a = Adapter::Blocking.with_oauth(config(&s), store, mcp_oauth_client::Interaction::non_interactive()).unwrap();
    let first = a.call_tool("echo", serde_json::json!({"text": "a1"}));
    eprintln!("A's first call (its save fenced out): {:?}", first.as_ref().map(|_| ()));
    let b_token = b_token.lock().unwrap().clone().expect("B logged in and saved");
    assert_eq!(inner.load(&key).unwrap().tokens.unwrap().access_token.secret(), b_token, "B's login is in the store");
    let logins = s.lock().authorization_requests().len();

    let second = a.call_tool("echo", serde_json::json!({"text": "a2"}));
    let now = inner.load(&key).unwrap().tokens.map(|t| t.access_token.secret().to_owned());
    assert_eq!(
        now.as_deref(),
        Some(b_token.as_str()),
        "the stale holder overwrote the next holder's login at its next call (A's second call: {:?})",
        second.as_ref().map(|_| ())
    );
    second.expect("A goes on with B's tokens");
    assert_eq!(s.lock().authorization_requests().len(), logins, "no new login");
}

// ---------------------------------------------------------------------------------------------
// 2. A user's store that implements try_lock but not wait_unlocked: the driver spins.
// ---------------------------------------------------------------------------------------------

/// A user's wrapper of a `RedisStore` (metrics, logging) that forwards the lock calls it
/// knows, `try_lock` among them, and leaves `wait_unlocked` at its default.
struct TryLockOnly {
    inner: RedisStore,
    tries: AtomicUsize,
    loads: AtomicUsize,
}

impl TokenStore for TryLockOnly {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(server)
    }
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.inner.persist(server, p)
    }
    fn persist_locked(&self, server: &str, p: &Persist, lock: &StoreLock) -> Result<(), StoreError> {
        self.inner.persist_locked(server, p, lock)
    }
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.inner.lock(server)
    }
    fn try_lock(&self, server: &str) -> Result<Option<StoreLock>, StoreError> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        self.inner.try_lock(server)
    }
}

/// `wait_unlocked`'s default "waits for nothing: the lock itself is then the wait", but the
/// driver does not take the lock after it: it tries again at once, 31 times, each a
/// `try_lock` and a `load` (two Redis round trips), before it blocks in `lock`.
#[test]
fn a_store_with_try_lock_but_default_wait_unlocked_makes_the_driver_spin() {
    let r = Redis::start("spin");
    let s = server(|o| o.refresh_tokens = true);
    let store = Arc::new(TryLockOnly { inner: r.store(), tries: AtomicUsize::new(0), loads: AtomicUsize::new(0) });
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), store.clone(), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t)).unwrap();

    let holder = store.inner.lock(&key).unwrap();
    let (tries0, loads0) = (store.tries.load(Ordering::SeqCst), store.loads.load(Ordering::SeqCst));
    let worker = {
        let (store, s_url) = (store.clone(), s.mcp_url());
        std::thread::spawn(move || {
            Adapter::Blocking
                .with_oauth(mcp_oauth_client::Config::new(s_url.parse().unwrap()), store, mcp_oauth_client::Interaction::non_interactive())
                .unwrap()
                .call_tool("echo", serde_json::json!({"text": "w"}))
                .map(|_| ())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (tries, loads) = (store.tries.load(Ordering::SeqCst) - tries0, store.loads.load(Ordering::SeqCst) - loads0);
    drop(holder);
    worker.join().unwrap().expect("the worker");
    assert!(tries <= 2 && loads <= 3, "while the lock was held for 500 ms the driver made {tries} try_lock calls and {loads} loads");
}

// ---------------------------------------------------------------------------------------------
// 3. Sentinel and a least-privilege ACL user.
// ---------------------------------------------------------------------------------------------

struct Sentinel {
    master: Redis,
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sentinel {
    fn start(tag: &str) -> Sentinel {
        let master = Redis::start(&format!("{tag}-m"));
        let dir = std::env::temp_dir().join(format!("mcp-oauth-review-e-{}-{tag}-s", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 3000\n",
                dir.display(),
                master.port
            ),
        )
        .unwrap();
        let child = Command::new(std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()))
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        loop {
            let known = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection())
                .and_then(|mut c| {
                    redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg("mymaster").query::<Option<(String, u16)>>(&mut c)
                })
                .is_ok_and(|a| a.is_some());
            if known {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the Sentinel did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Sentinel { master, child, port, dir }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fleet given its own ACL user without `@dangerous` (the usual least-privilege setup, which
/// works with `redis://`) cannot use the store through Sentinel: the master check sends `ROLE`
/// (`@admin @dangerous`), whose NOPERM fails every connection (and stops at the first Sentinel).
#[test]
fn through_sentinel_a_user_without_dangerous_commands_cannot_connect() {
    let set = Sentinel::start("acl");
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "fleet", "on", ">fleet-pw", "~*", "&*", "+@all", "-@dangerous"][..])
        .query(&mut set.master.raw())
        .unwrap();
    let t = store_contract::tokens("https://as.example", "AT-1", 1);
    let direct = RedisStore::open(&format!("redis://fleet:fleet-pw@127.0.0.1:{}/", set.master.port)).unwrap();
    direct.persist(KEY, &Persist::Tokens(t.clone())).expect("the user can use the store on redis://");
    drop(direct.lock(KEY).expect("and take its lease"));

    let via = RedisStore::open(&format!("redis+sentinel://fleet:fleet-pw@127.0.0.1:{}/mymaster", set.port))
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let got = via.load(KEY);
    assert!(got.is_ok(), "the same user through Sentinel: {:?}", got.map(|_| ()));
}

// ---------------------------------------------------------------------------------------------
// 4. Redis Cluster slot moves.
// ---------------------------------------------------------------------------------------------

impl Cluster {
    fn slot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut self.nodes[0].raw()).unwrap()
    }

    fn node_of_slot(slot: u16) -> usize {
        usize::from(slot) * 3 / 16384
    }

    fn id(&self, i: usize) -> String {
        redis::cmd("CLUSTER").arg("MYID").query(&mut self.nodes[i].raw()).unwrap()
    }

    fn entries_key(&self) -> String {
        self.nodes
            .iter()
            .flat_map(|n| redis::cmd("KEYS").arg("*:entries").query::<Vec<String>>(&mut n.raw()).unwrap())
            .next()
            .expect("an entries key")
    }

    /// Starts moving `slot` from its node to the next one (IMPORTING / MIGRATING), as
    /// `redis-cli --cluster reshard` does before it moves any key.
    fn begin_move(&self, slot: u16) -> (usize, usize) {
        let from = Self::node_of_slot(slot);
        let to = (from + 1) % 3;
        let _: () =
            redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("IMPORTING").arg(self.id(from)).query(&mut self.nodes[to].raw()).unwrap();
        let _: () =
            redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("MIGRATING").arg(self.id(to)).query(&mut self.nodes[from].raw()).unwrap();
        (from, to)
    }

    /// Moves the slot's keys and gives the slot to `to` on every node.
    fn finish_move(&self, slot: u16, from: usize, to: usize) {
        let keys: Vec<String> = redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100).query(&mut self.nodes[from].raw()).unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut self.nodes[from].raw())
                .unwrap();
        }
        let target = self.id(to);
        for i in [to, from, 3 - to - from] {
            let _: () = redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("NODE").arg(&target).query(&mut self.nodes[i].raw()).unwrap();
        }
    }
}

/// While a server's slot is being resharded (MIGRATING on its node, IMPORTING on the next,
/// no key moved yet: every key still on the source), every write of that server fails, and
/// so does letting go of its lease: the scripts name a key that is absent by design (the
/// lease when nobody holds it, the `done` channel, never a key), and Redis answers a script
/// over a migrating slot with some of its keys absent with TRYAGAIN. A reshard that stalls
/// (redis-cli killed, a slot left MIGRATING until `--cluster fix`) stops every refresh of the
/// servers in that slot, and each release then costs the waiters the whole lease.
#[test]
fn a_slot_being_resharded_fails_every_write_and_release_of_its_servers() {
    let c = Cluster::start("migrating");
    let store = RedisStore::open(&c.url()).unwrap().with_lease(Duration::from_secs(4));
    store.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();
    let slot = c.slot(&c.entries_key());
    c.begin_move(slot);

    assert_eq!(store.load(KEY).unwrap().tokens.unwrap().access_token.secret(), "AT-1", "reads still work");
    let write = store.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-2", 2)));
    let held = store.lock(KEY);
    let released = held.map(drop).map(|()| {
        let started = Instant::now();
        let again = RedisStore::open(&c.url()).unwrap().lock(KEY).map(drop);
        (again, started.elapsed())
    });
    let (again, waited) = released.expect("the lease");
    assert!(
        write.is_ok() && again.is_ok() && waited < Duration::from_secs(1),
        "while the slot is MIGRATING (all its keys still on its node): the write: {write:?}; \
         the next lock after a release: {again:?} after {waited:?}"
    );
}

/// Once the slot has moved (keys migrated, the slot given to another node), a store with
/// pooled connections follows the MOVED redirects: reads, fenced writes, leases and their
/// release, and waiters.
#[test]
fn sound_a_finished_slot_move_is_followed() {
    let c = Cluster::start("moved");
    let store = RedisStore::open(&c.url()).unwrap().with_lease(Duration::from_secs(4));
    let held = store.lock(KEY).unwrap();
    store.persist_locked(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1)), &held).unwrap();
    drop(held);
    let slot = c.slot(&c.entries_key());
    let (from, to) = c.begin_move(slot);
    c.finish_move(slot, from, to);
    let on_to: Vec<String> = redis::cmd("KEYS").arg("*:entries").query(&mut c.nodes[to].raw()).unwrap();
    assert!(!on_to.is_empty(), "the entries moved");

    assert_eq!(store.load(KEY).unwrap().tokens.unwrap().access_token.secret(), "AT-1");
    let held = store.lock(KEY).unwrap();
    store.persist_locked(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-2", 2)), &held).unwrap();
    let waiter = {
        let s = RedisStore::open(&c.url()).unwrap();
        std::thread::spawn(move || {
            let started = Instant::now();
            drop(s.lock(KEY).unwrap());
            started.elapsed()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let waited = waiter.join().unwrap();
    assert!(waited < Duration::from_secs(2), "the release after the move woke the waiter: {waited:?}");
    assert_eq!(store.load(KEY).unwrap().tokens.unwrap().access_token.secret(), "AT-2");
}

// ---------------------------------------------------------------------------------------------
// 5. Contents written by someone without the key.
// ---------------------------------------------------------------------------------------------

/// With encryption on, the sealed listing is checked (a value that does not open is not
/// listed), but the clear `servers` set is still read and trusted: anyone who can write to
/// Redis, without the key, adds servers to what `servers()` (and `mcp-oauth status`,
/// `logout --all`) reports, and a server listed in clear before encryption was turned on
/// stays readable until its next write.
#[test]
fn an_encrypted_store_lists_servers_added_in_clear_by_someone_without_the_key() {
    let r = Redis::start("inject");
    let store = r.store().with_encryption(keys());
    store.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();
    assert_eq!(store.servers().unwrap(), vec![KEY.to_owned()]);
    let _: () = redis::cmd("SADD").arg("mcp-oauth:servers").arg("https://attacker.example/mcp#admin").query(&mut r.raw()).unwrap();
    let listed = store.servers().unwrap();
    assert_eq!(listed, vec![KEY.to_owned()], "listed from the clear set, unsealed, with encryption on");
}

/// Sealed values copied between tenants, servers or issuers do not open; a forged sealed
/// listing entry is not listed.
#[test]
fn sound_sealed_values_and_listing_do_not_move_between_tenants() {
    let r = Redis::start("move");
    let a = r.store().with_encryption(keys()).with_subject("tenant-a");
    let b = r.store().with_encryption(keys()).with_subject("tenant-b");
    a.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-A", 1))).unwrap();
    b.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-B", 1))).unwrap();
    let mut conn = r.raw();
    let ka: Vec<String> = redis::cmd("KEYS").arg("mcp-oauth:tenant-a:*:entries").query(&mut conn).unwrap();
    let kb: Vec<String> = redis::cmd("KEYS").arg("mcp-oauth:tenant-b:*:entries").query(&mut conn).unwrap();
    let va: Vec<(String, String)> = redis::cmd("HGETALL").arg(&ka[0]).query(&mut conn).unwrap();
    let _: () = redis::cmd("HSET").arg(&kb[0]).arg(&va[0].0).arg(&va[0].1).query(&mut conn).unwrap();
    assert!(matches!(b.load(KEY), Err(StoreError::Undecryptable { .. })), "tenant A's value opened as tenant B's");
    let la: Vec<(String, String)> = redis::cmd("HGETALL").arg("mcp-oauth:tenant-a:servers:sealed").query(&mut conn).unwrap();
    let _: () = redis::cmd("HSET").arg("mcp-oauth:tenant-b:servers:sealed").arg("0000000000000000").arg(&la[0].1).query(&mut conn).unwrap();
    assert_eq!(b.servers().unwrap(), vec![KEY.to_owned()]);
}

// ---------------------------------------------------------------------------------------------
// 6. TLS certificate rotation.
// ---------------------------------------------------------------------------------------------

/// Mutual TLS through `StoreConfig` files, as an orchestrator mounts them (cert-manager,
/// SPIFFE: short-lived client certificates renewed in place). The client certificate is
/// rotated: new files, the server now trusting only the new issuer, connections cut (a node
/// restart, a proxy's idle timeout). The store read the files once at open and presents the
/// old certificate on every new connection until the process restarts; a store opened anew
/// from the same configuration works.
#[test]
fn a_rotated_client_certificate_is_never_picked_up() {
    let base = std::env::temp_dir().join(format!("mcp-oauth-review-e-{}-rotate-certs", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (old, new, live) = (base.join("old"), base.join("new"), base.join("live"));
    for d in [&old, &new, &live] {
        std::fs::create_dir_all(d).unwrap();
    }
    tls_material(&old);
    tls_material(&new);
    for f in ["client.pem", "client.key"] {
        std::fs::copy(old.join(f), live.join(f)).unwrap();
    }
    std::fs::copy(old.join("ca.pem"), live.join("ca.pem")).unwrap();
    let tls_port = free_port();
    let extra = tls_options(&old, tls_port, true);
    let r = Redis::start_with("rotate", &extra); // its plain port: the operator's
    let json = serde_json::json!({
        "type": "redis",
        "url": format!("rediss://127.0.0.1:{tls_port}/"),
        "tls_ca_file": live.join("ca.pem"),
        "tls_cert_file": live.join("client.pem"),
        "tls_key_file": live.join("client.key"),
    });
    let config: mcp_oauth_client::config::StoreConfig = serde_json::from_value(json).unwrap();
    let store = config.open(&|_| None).unwrap();
    store.persist(KEY, &Persist::Tokens(store_contract::tokens("https://as.example", "AT-1", 1))).unwrap();

    // Rotation: new client certificate files; the server trusts only their issuer now.
    for f in ["client.pem", "client.key"] {
        std::fs::copy(new.join(f), live.join(f)).unwrap();
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-ca-cert-file")
        .arg(new.join("ca.pem").to_string_lossy().as_ref())
        .query(&mut r.raw())
        .unwrap();
    let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query(&mut r.raw()).unwrap();

    let reopened = config.open(&|_| None).unwrap();
    assert_eq!(reopened.load(KEY).expect("a store opened now").tokens.unwrap().access_token.secret(), "AT-1");
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(3) {
        match store.load(KEY) {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&base);
    assert!(last.is_none(), "3 s after the rotation the running store still fails: {last:?}");
}
