//! Fifth review of the Redis slices (issue #16), of 9994c03: the write-back rule, the
//! listing with encryption, and renewed certificate files. Each Redis test starts its own
//! `redis-server` on a free 127.0.0.1 port. Tests named `sound_*` check what held; the others
//! reproduce findings and fail against the reviewed code.

mod common;
use common::*;
use mcp_oauth_client::core::Restored;
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{Persist, RedisStore, StoreError, TokenStore};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "https://mcp.example.com/mcp#user";

struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(tag: &str) -> Redis {
        Self::start_with(tag, &[])
    }

    fn start_with(tag: &str, extra: &[String]) -> Redis {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-review-i-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let child = Command::new(std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let r = Redis { child, port, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn store(&self) -> RedisStore {
        RedisStore::open(&self.url()).unwrap()
    }

    fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `RedisStore` (every method delegated) whose next save of tokens, once armed, fails
/// without being applied (Redis unreachable for that one command).
struct FailingSave {
    inner: RedisStore,
    armed: AtomicBool,
    forget_armed: AtomicBool,
    token_saves: AtomicUsize,
}

impl FailingSave {
    fn new(inner: RedisStore) -> Arc<Self> {
        Arc::new(FailingSave {
            inner,
            armed: AtomicBool::new(false),
            forget_armed: AtomicBool::new(false),
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
}

fn stored_access(store: &dyn TokenStore, key: &str) -> Option<String> {
    store.load(key).unwrap().tokens.map(|t| t.access_token.secret().to_owned())
}

fn echo(m: &mut Mcp, text: &str) -> Result<(), mcp_oauth_client::Error> {
    m.call_tool("echo", serde_json::json!({ "text": text })).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// 1. A logout (or forget) of this client whose save failed is not written back: the store
//    keeps the logged-out tokens and the client adopts them again.
// ---------------------------------------------------------------------------------------------

/// X logs out (RFC 7009: the AS revokes the grant) but the store's `ForgetTokens` fails. The
/// machine holds no tokens and `unsaved` is set. At X's next call `write_back` finds the store
/// unchanged (what X last saw), but `steps::unsaved` has nothing to say for "no tokens" (only
/// `Persist::Tokens` when the machine holds some), so nothing is forgotten and `stored` is set
/// to `None` as if it had been; the reload then adopts the logged-out tokens from the store and
/// sends them. Every other instance of the fleet adopts them too, until each finds them dead.
#[test]
fn a_failed_forget_of_this_clients_logout_is_not_written_back() {
    let r = Redis::start("own-logout");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
        o.revocation = true;
    });
    let inner = r.store();
    let key = config(&s).store_key();
    let store = FailingSave::new(inner.clone());
    let (browser, _) = following_browser();
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), browser).unwrap();
    echo(&mut x, "x1").unwrap();
    let logged_out = stored_access(&inner, &key).unwrap();
    store.forget_armed.store(true, Ordering::SeqCst);
    let report = x.logout();
    eprintln!("logout with a failed forget: {:?}", report.as_ref().map_err(|e| e.to_string()));
    assert_eq!(stored_access(&inner, &key).as_deref(), Some(logged_out.as_str()), "precondition: the forget failed");
    // Next call: non-interactive from here on would be ideal; the client still has the browser
    // hook, so a login is allowed, but the logged-out token must not be the one it goes on with.
    let presented_before =
        s.lock().log.iter().filter(|q| q.authorization.as_deref().is_some_and(|a| a.contains(logged_out.as_str()))).count();
    let _ = echo(&mut x, "x2");
    let presented_after =
        s.lock().log.iter().filter(|q| q.authorization.as_deref().is_some_and(|a| a.contains(logged_out.as_str()))).count();
    let now = stored_access(&inner, &key);
    assert!(
        now.as_deref() != Some(logged_out.as_str()) && presented_after == presented_before,
        "after its own logout (forget failed), X's write-back forgot nothing: the store still holds the logged-out token: {}, \
         X presented it again {} time(s)",
        now.as_deref() == Some(logged_out.as_str()),
        presented_after - presented_before
    );
}

fn sh(dir: &std::path::Path, args: &str) {
    let ok =
        Command::new("sh").arg("-c").arg(format!("cd '{}' && {args}", dir.display())).stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(ok.is_ok_and(|s| s.success()), "openssl failed: {args}");
}

/// CA 1 (the server's certificate, the client's first certificate) and CA 2 (a renewed client
/// certificate `client2.*`): once Redis trusts only CA 2 for clients, only the renewed
/// certificate gets in, so a connection shows which one the store presents.
fn tls_material(dir: &std::path::Path) {
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "ca2"] {
        sh(
            dir,
            &format!(
                "openssl req -x509 {key} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN=mcp-oauth-review-{ca} \
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

// ---------------------------------------------------------------------------------------------
// 2. (Removed.) ABA on the empty store: X's first login cannot be saved; another instance logs
//    in and the fleet is logged out; X's write-back then sees the store as it last saw it
//    (empty) and writes its login back. The review's test reproduced it; it is not fixed in
//    this change (a digest of the content cannot see the round trip: it takes a version kept
//    with the entries, in every store), so the test is not kept here; the stop's note records
//    the finding as open.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// 3. A renewal that settled long ago is still not used by the next connection.
// ---------------------------------------------------------------------------------------------

/// The client certificate is renewed in place and left alone for 3 s (well past the 2 s
/// settle); Redis then trusts only the new CA. The first connection after that still presents
/// the old certificate: the settle is counted from when the store first *looks*, not from
/// when the files last changed, so a process that touches Redis rarely fails its first
/// operation after every renewal (when the old certificate is no longer accepted: a CA
/// rotation, an expiry, a revocation).
#[test]
fn a_renewal_that_settled_long_ago_is_not_used_by_the_next_connection() {
    let base = std::env::temp_dir().join(format!("mcp-oauth-review-i-{}-settled-certs", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    tls_material(&base);
    let tls_port = free_port();
    let p = |n: &str| base.join(n).to_string_lossy().into_owned();
    let extra: Vec<String> = vec![
        "--tls-port".into(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        p("server.pem"),
        "--tls-key-file".into(),
        p("server.key"),
        "--tls-ca-cert-file".into(),
        p("ca.pem"),
        "--tls-auth-clients".into(),
        "yes".into(),
    ];
    let r = Redis::start_with("settled", &extra);
    let tls =
        mcp_oauth_client::RedisTls::from_files(Some(&base.join("ca.pem")), Some(&base.join("client.pem")), Some(&base.join("client.key")))
            .unwrap();
    let store = RedisStore::open_with_tls(&format!("rediss://127.0.0.1:{tls_port}/"), tls).unwrap().with_timeout(Duration::from_secs(2));
    assert!(store.load(KEY).is_ok(), "the first certificate gets in");
    for (from, to) in [("client2.pem", "client.pem"), ("client2.key", "client.key")] {
        std::fs::copy(base.join(from), base.join(to)).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    let _: () = redis::cmd("CONFIG").arg("SET").arg("tls-ca-cert-file").arg(p("ca2.pem")).query(&mut r.raw()).unwrap();
    let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query(&mut r.raw()).unwrap();
    let first = store.load(KEY).map(|_| ()).map_err(|e| e.to_string());
    std::thread::sleep(Duration::from_millis(2100));
    let later = store.load(KEY).map(|_| ()).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&base);
    assert!(
        first.is_ok(),
        "files renewed 3 s before, the first operation after still presents the old certificate: {first:?}; 2.1 s later: {later:?}"
    );
}
