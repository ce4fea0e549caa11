//! Scaffolding shared by the Redis tests (`redis_store.rs`, `review_redis_*.rs`): a
//! `redis-server` of the test's own on a 127.0.0.1 port that no other test of this process is
//! handed, and helpers around the store.
//!
//! Every port a test binds goes through [`free_port`]. Tests run in parallel threads, and a
//! port the kernel hands out once (`bind` to port 0, then dropped) is free again at once: a
//! Cluster bus port picked by one test, not yet bound, could be handed to another test's
//! server, whose start then found the Cluster node listening there and failed with "connection
//! reset by peer" at its first command. [`Redis::start_in`] also waits until the server it
//! started says it is ready, not merely until something answers on the port.
#![allow(dead_code)]

use crate::common::*;
use mcp_oauth_client::core::Restored;
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{EncryptionKeys, Persist, RedisStore, StoreError, TokenStore};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A free 127.0.0.1 port that this process has not handed out before.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if given.insert(port) {
            return port;
        }
    }
}

/// The `redis-server` to run: `REDIS_SERVER`, or the one on the PATH, installed from Debian's
/// packages first when it is missing and this is a Debian machine where we may (as `.ci/run`
/// installs Chromium), so the README's test command works on a fresh machine.
pub fn redis_server() -> String {
    static FOUND: OnceLock<String> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Ok(path) = std::env::var("REDIS_SERVER") {
                return path;
            }
            let present = || Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
            if !present() && Path::new("/usr/bin/apt-get").exists() {
                eprintln!("redis-server is missing: installing Debian's redis-server for these tests");
                let _ = Command::new("sh")
                    .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server"])
                    .stdout(Stdio::null())
                    .status();
            }
            "redis-server".into()
        })
        .clone()
}

/// A scratch directory for one test's server, emptied first. The process id keeps test
/// binaries (and runs) apart; `tag` keeps the tests of one binary apart.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-redis-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Options that make a server keep what it was told across a restart (append-only file,
/// synced on every write).
pub const DURABLE: [&str; 4] = ["--appendonly", "yes", "--appendfsync", "always"];

/// [`DURABLE`] followed by `extra`.
pub fn durable(extra: &[String]) -> Vec<String> {
    DURABLE.iter().map(|s| s.to_string()).chain(extra.iter().cloned()).collect()
}

/// A `redis-server` of this test's own, with its data in a scratch directory. Killed (and its
/// directory removed) when dropped.
pub struct Redis {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Redis {
    /// A server on a fresh port, keeping nothing on disk.
    pub fn start(tag: &str) -> Redis {
        Self::start_with(tag, &[] as &[&str])
    }

    /// A server on a fresh port that keeps its data across a restart ([`DURABLE`]).
    pub fn durable(tag: &str) -> Redis {
        Self::start_with(tag, &DURABLE)
    }

    /// [`start`](Self::start) with more options (later ones override earlier ones). A port
    /// taken meanwhile (by a listener bound to port 0 outside [`free_port`]: the test servers,
    /// another process) makes it try another.
    pub fn start_with<S: AsRef<OsStr>>(tag: &str, extra: &[S]) -> Redis {
        let dir = scratch(tag);
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start_in(dir.clone(), free_port(), extra) {
                Ok(r) => return r,
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("{last}")
    }

    /// A server on `port` with its data in `dir` (a restart passes the old ones). `port` 0 with
    /// `--tls-port` in `extra` gives a server that speaks only TLS. Returns once the server has
    /// logged that it is ready; panics, with its log, if it exits first (its port taken).
    pub fn start_in<S: AsRef<OsStr>>(dir: PathBuf, port: u16, extra: &[S]) -> Redis {
        Self::try_start_in(dir, port, extra).unwrap_or_else(|log| panic!("{log}"))
    }

    fn try_start_in<S: AsRef<OsStr>>(dir: PathBuf, port: u16, extra: &[S]) -> Result<Redis, String> {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let log = dir.join(format!("redis-{port}-{}.log", STARTS.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_file(&log);
        let mut child = Command::new(redis_server())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server; or set REDIS_SERVER)");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server on port {port} exited ({status}) before it was ready:\n{text}"));
            }
            if text.contains("Ready to accept connections") {
                return Ok(Redis { child, port, dir });
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on port {port} was not ready within 20 s:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn store(&self) -> RedisStore {
        RedisStore::open(&self.url()).unwrap()
    }

    /// A raw connection, for what a test does behind the store's back.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    /// Stops the server (and waits for it), keeping its data directory.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, `-KILL`) to a process.
pub fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// How many refresh-token grants the test server has been asked for.
pub fn refreshes(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().token_requests().iter().filter(|r| r.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")).count()
}

/// Leases let go of since the server's statistics were last reset: each release publishes once
/// on the server's channel (a count of `SET`s would count revisions too, which the fenced
/// write sets).
pub fn leases_released(r: &Redis) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut r.raw()).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// An encryption key set of one key, `k1`.
pub fn keys() -> EncryptionKeys {
    EncryptionKeys::new("k1", [7u8; 32]).unwrap()
}

/// The access token a load of `key` shows, if any.
pub fn stored_access(store: &dyn TokenStore, key: &str) -> Option<String> {
    store.load(key).unwrap().tokens.map(|t| t.access_token.secret().to_owned())
}

/// Calls the test server's `echo` tool.
pub fn echo(m: &mut Mcp, text: &str) -> Result<(), mcp_oauth_client::Error> {
    m.call_tool("echo", serde_json::json!({ "text": text })).map(|_| ())
}

/// Logs in once through `store`, then marks the stored access token expired: the next
/// client to start from the store refreshes.
pub fn logged_in_and_expired(s: &mcp_oauth_tests::tcp::TcpTestServer, store: &RedisStore) -> mcp_oauth_client::core::TokenSet {
    let (browser, _) = following_browser();
    Adapter::Blocking.with_oauth(config(s), Arc::new(store.clone()), browser).unwrap().list_tools().unwrap();
    let key = config(s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t.clone())).unwrap();
    t
}

/// How a failing save fails.
#[derive(Clone, Copy, PartialEq)]
pub enum Fail {
    /// Not applied (Redis unreachable for that one command).
    NotApplied,
    /// Applied, but the reply was lost.
    AppliedReplyLost,
}

/// A `RedisStore` (every method delegated) whose next save of tokens fails once `armed` is
/// set, and whose next forget fails once `forget_armed` is set (never applied).
pub struct FailingSave {
    pub inner: RedisStore,
    pub armed: AtomicBool,
    pub forget_armed: AtomicBool,
    pub how: Fail,
    pub token_saves: AtomicUsize,
}

impl FailingSave {
    /// Saves that fail are not applied.
    pub fn new(inner: RedisStore) -> Arc<Self> {
        Self::failing(inner, Fail::NotApplied)
    }

    pub fn failing(inner: RedisStore, how: Fail) -> Arc<Self> {
        Arc::new(FailingSave {
            inner,
            armed: AtomicBool::new(false),
            forget_armed: AtomicBool::new(false),
            how,
            token_saves: AtomicUsize::new(0),
        })
    }

    fn fail(&self, p: &Persist, write: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
        if matches!(p, Persist::ForgetTokens { .. }) && self.forget_armed.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Redis { message: "injected: connection reset (forget)".into() });
        }
        if matches!(p, Persist::Tokens(_)) {
            self.token_saves.fetch_add(1, Ordering::SeqCst);
            if self.armed.swap(false, Ordering::SeqCst) {
                if self.how == Fail::AppliedReplyLost {
                    write()?;
                }
                return Err(StoreError::Redis { message: "injected: connection reset".into() });
            }
        }
        write()
    }
}

impl TokenStore for FailingSave {
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
    fn servers(&self) -> Result<Vec<String>, StoreError> {
        self.inner.servers()
    }
    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        self.inner.revision(server)
    }
}

/// Runs a shell command in `dir`, and asserts that it succeeded.
pub fn sh(dir: &Path, cmd: &str) {
    let ok = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(ok.is_ok_and(|s| s.success()), "{cmd}");
}

/// Certificates made by `openssl` in `dir`: CAs `ca` and `ca2`; `server` (for 127.0.0.1) and
/// `client` signed by `ca`; `client2` signed by `ca2`. Each as `NAME.pem` and `NAME.key`.
pub fn tls_material(dir: &Path) {
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "ca2"] {
        sh(
            dir,
            &format!(
                "openssl req -x509 {key} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN=mcp-oauth-test-{ca} \
                 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
            ),
        );
    }
    for (name, usage, cn, ca) in [
        ("server", "serverAuth", "127.0.0.1", "ca"),
        ("client", "clientAuth", "fleet-worker", "ca"),
        ("client2", "clientAuth", "fleet-worker", "ca2"),
    ] {
        sh(dir, &format!("openssl req {key} -keyout {name}.key -out {name}.csr -subj /CN={cn}"));
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        sh(
            dir,
            &format!(
                "openssl x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -out {name}.pem -days 2 -extfile {name}.ext"
            ),
        );
    }
}

/// The options for a server that speaks only TLS on `tls_port`, with the certificates of
/// [`tls_material`] in `certs`, asking clients for certificates if `client_certificates`.
pub fn tls_options(certs: &Path, tls_port: u16, client_certificates: bool) -> Vec<String> {
    let f = |n: &str| certs.join(n).to_string_lossy().into_owned();
    [
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &f("server.pem"),
        "--tls-key-file",
        &f("server.key"),
        "--tls-ca-cert-file",
        &f("ca.pem"),
        "--tls-auth-clients",
        if client_certificates { "yes" } else { "no" },
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Every key, and every string, set member and hash field/value in Redis, as one text.
pub fn everything_in(r: &Redis) -> String {
    let mut conn = r.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut out = String::new();
    for k in keys {
        out.push_str(&k);
        out.push('\n');
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut conn).unwrap();
        match kind.as_str() {
            "string" => out.push_str(&redis::cmd("GET").arg(&k).query::<String>(&mut conn).unwrap()),
            "set" => out.push_str(&redis::cmd("SMEMBERS").arg(&k).query::<Vec<String>>(&mut conn).unwrap().join("\n")),
            "hash" => {
                let h: Vec<String> = redis::cmd("HGETALL").arg(&k).query(&mut conn).unwrap();
                out.push_str(&h.join("\n"));
            }
            other => out.push_str(other),
        }
        out.push('\n');
    }
    out
}

/// Connected clients, as Redis counts them (this query's own included).
pub fn clients(r: &Redis) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut r.raw()).unwrap();
    list.lines().count()
}

/// A proxy on 127.0.0.1 in front of Redis. The first command (after `armed` is set) that names
/// `needle` is applied by Redis on a side connection of the proxy's own, and the client's
/// connection is cut before any reply: a reply lost on the way back.
pub fn reply_losing_proxy(redis_port: u16, needle: &'static [u8], armed: Arc<AtomicBool>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut upstream) = std::net::TcpStream::connect(("127.0.0.1", redis_port)) else { return };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
            let armed = armed.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let names = buf[..n].windows(needle.len()).any(|w| w == needle);
                    if names && armed.swap(false, Ordering::SeqCst) {
                        let mut side = std::net::TcpStream::connect(("127.0.0.1", redis_port)).unwrap();
                        side.write_all(&buf[..n]).unwrap();
                        let _ = side.read(&mut [0u8; 512]);
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        let _ = upstream.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A proxy that passes everything, except that a client→Redis packet naming `needle` is held
/// for `delay` before it is passed on (a slow Redis, a network stall, for that command only).
pub fn stalling_proxy(redis_port: u16, needle: &'static [u8], delay: Duration, armed: Arc<AtomicBool>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut upstream) = std::net::TcpStream::connect(("127.0.0.1", redis_port)) else { return };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
            let armed = armed.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if armed.load(Ordering::SeqCst) && buf[..n].windows(needle.len()).any(|w| w == needle) {
                        std::thread::sleep(delay);
                    }
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = upstream.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

/// A Cluster of three masters on 127.0.0.1, its slots split in three (`ADDSLOTSRANGE`,
/// `MEET`; Redis 7). Killed when dropped.
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    pub fn start(tag: &str) -> Cluster {
        let mut nodes = Vec::new();
        let mut bus = Vec::new();
        for i in 0..3 {
            let dir = std::env::temp_dir().join(format!("mcp-oauth-redis-{}-{tag}-{i}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let cport = free_port();
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
            nodes.push(Redis::start_in(dir, free_port(), &extra));
            bus.push(cport);
        }
        for (i, n) in nodes.iter().enumerate() {
            let (from, to) = (i * 16384 / 3, (i + 1) * 16384 / 3 - 1);
            let _: () = redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(from).arg(to).query(&mut n.raw()).unwrap();
        }
        for (n, cport) in nodes.iter().zip(&bus).skip(1) {
            let _: () = redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(n.port).arg(cport).query(&mut nodes[0].raw()).unwrap();
        }
        let c = Cluster { nodes };
        let started = Instant::now();
        loop {
            let ok = c.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut n.raw()).unwrap_or_default();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            });
            if ok {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the cluster did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// A `redis+cluster://` URL with two of the nodes as seeds.
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{},127.0.0.1:{}", self.nodes[0].port, self.nodes[1].port)
    }
}
