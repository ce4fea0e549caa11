//! Fourth review of the Redis slices (issue #16): write_back over an emptied store (94019bf,
//! 7315b80), Sentinel passwords (cc32b04), the listing of undecryptable servers, the 2 s
//! settle before certificate files are read again, and `store_hint`. Each Redis test starts
//! its own `redis-server` on a free 127.0.0.1 port. Tests named `sound_*` check what held; the
//! others reproduce findings and fail against the reviewed code.

mod common;
mod redis_support;
use common::*;
use mcp_oauth_client::{EncryptionKeys, Interaction, Persist, RedisStore, StoreError, TokenStore};
use redis_support::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const KEY: &str = "https://mcp.example.com/mcp#user";

// ---------------------------------------------------------------------------------------------
// 1. write_back over an emptied store: a logout made elsewhere is undone.
// ---------------------------------------------------------------------------------------------

/// Worker X refreshes (R1 -> R2); its save fails. The operator then logs the fleet out from
/// another process Y (`OAuthClient::logout`: it revokes what the store holds, R1's set, and
/// forgets). R1 was already rotated away, so the revocation leaves R2's grant alive (an AS
/// answers 200 for a token it no longer knows, RFC 7009 §2.2). At X's next call write_back
/// finds the store empty and, since 94019bf, writes R2's set (and its registration) back: the
/// logout is undone for the whole fleet, with tokens the logout never saw. Before 94019bf
/// (7315b80 alone) X adopted the empty store.
#[test]
fn write_back_undoes_a_logout_made_by_another_instance() {
    let r = Redis::start("logout");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
        o.revocation = true;
    });
    let inner = r.store();
    logged_in_and_expired(&s, &inner);
    let key = config(&s).store_key();

    let store = FailingSave::new(inner.clone());
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(echo(&mut x, "x1").is_err(), "X's refresh could not be saved");

    // The operator logs out from another process.
    let y = Adapter::Blocking.with_oauth(config(&s), Arc::new(inner.clone()), Interaction::non_interactive()).unwrap();
    let report = y.logout().expect("logout");
    eprintln!("logout elsewhere: {report:?}");
    assert!(report.forgotten);
    assert!(inner.describe(&key).unwrap().is_empty(), "the logout emptied the store");

    let second = echo(&mut x, "x2");
    let after = inner.describe(&key).unwrap();
    assert!(
        after.is_empty(),
        "a logout made on another instance was undone by X's write-back: X's call {:?}, the store holds tokens again: {}, registrations: {}",
        second.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        after.tokens.is_some(),
        after.clients.len()
    );
}

/// The case 94019bf was for still holds: a headless worker that found R1 spent and forgot it
/// does not make X drop R2 (checked here so a fix for the logout keeps it).
#[test]
fn sound_write_back_after_a_headless_worker_forgot_the_spent_token() {
    let r = Redis::start("forgot");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
    });
    let inner = r.store();
    logged_in_and_expired(&s, &inner);
    let key = config(&s).store_key();
    let store = FailingSave::new(inner.clone());
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(echo(&mut x, "x1").is_err());
    let y = Adapter::Blocking.with_oauth(config(&s), Arc::new(inner.clone()), Interaction::non_interactive());
    assert!(y.and_then(|mut y| echo(&mut y, "y")).is_err());
    assert_eq!(stored_access(&inner, &key), None);
    // Amended with the fix for `write_back_undoes_a_logout_made_by_another_instance`: the
    // store cannot tell this forget from a logout, and a logout must never be undone, so X
    // respects the emptied store (the trade-off is written in review_redis_g.rs, test 1): its
    // next call asks for a login, and R2 is not written back.
    let e = echo(&mut x, "x2").map(|_| ()).expect_err("X respects the emptied store");
    assert!(e.to_string().contains("interactive login required"), "{e}");
    assert_eq!(stored_access(&inner, &key), None, "nothing written back over the emptied store");
}

/// Another instance's login made while X's save could not be saved is not overwritten, and a
/// second failed save later is still written back when no one else wrote.
#[test]
fn sound_write_back_keeps_another_instances_login_then_writes_back_again() {
    let r = Redis::start("login");
    let s = server(|o| {
        o.refresh_tokens = true;
        o.rotate_refresh = true;
    });
    let inner = r.store();
    logged_in_and_expired(&s, &inner);
    let key = config(&s).store_key();
    let store = FailingSave::new(inner.clone());
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(echo(&mut x, "x1").is_err());
    // Y logs in afresh (a person, with a browser).
    inner.forget(&key).unwrap();
    let (browser, _) = following_browser();
    let mut y = Adapter::Blocking.with_oauth(config(&s), Arc::new(inner.clone()), browser).unwrap();
    echo(&mut y, "y").unwrap();
    let ys = stored_access(&inner, &key).unwrap();
    echo(&mut x, "x2").expect("X adopts Y's login");
    assert_eq!(stored_access(&inner, &key).as_deref(), Some(ys.as_str()), "Y's login kept");
    // Expire it; X refreshes and that save fails again; with no one else writing, written back.
    let mut t = inner.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    inner.persist(&key, &Persist::Tokens(t)).unwrap();
    let mut x = Adapter::Blocking.with_oauth(config(&s), store.clone(), Interaction::non_interactive()).unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(echo(&mut x, "x3").is_err());
    let logins = s.lock().authorization_requests().len();
    echo(&mut x, "x4").expect("written back");
    assert_ne!(stored_access(&inner, &key).as_deref(), Some(ys.as_str()));
    assert_eq!(s.lock().authorization_requests().len(), logins);
}

// ---------------------------------------------------------------------------------------------
// 2. The listing: undecryptable servers are listed, whoever wrote them.
// ---------------------------------------------------------------------------------------------

/// The sealed listing exists because "anyone who can write to Redis can add to" the clear
/// set. Since 94019bf a clear member whose entry does not decrypt is listed: a writer without
/// the key puts any server it likes in `servers()` (here through a store without encryption,
/// i.e. a plaintext entry plus a clear set member). The listed server then cannot be described,
/// so an application's "describe every listed server" (what `mcp-oauth status` does with
/// `servers()`) fails as a whole.
#[test]
fn servers_lists_a_server_planted_by_a_writer_without_the_key() {
    let r = Redis::start("planted");
    let sealed = r.store().with_encryption(keys());
    let s = server(|o| o.refresh_tokens = true);
    let t = logged_in_and_expired(&s, &sealed);
    let key = config(&s).store_key();
    let planted = "https://attacker.example/mcp#planted";
    r.store().persist(planted, &Persist::Tokens(t)).unwrap(); // no key: a plaintext entry
    let listed = sealed.servers().unwrap();
    let described: Result<Vec<_>, _> = listed.iter().map(|k| sealed.describe(k)).collect();
    assert!(listed.contains(&key));
    assert!(
        !listed.contains(&planted.to_owned()) && described.is_ok(),
        "servers() = {listed:?}: a server planted by a writer without the key is listed; describing the listing: {:?}",
        described.map(|d| d.len())
    );
}

/// What the planted entry cannot do: a client built for it fails at its first load, before
/// sending anything to the server its key names.
#[test]
fn sound_a_client_of_a_planted_server_sends_nothing() {
    let r = Redis::start("planted-client");
    let sealed = r.store().with_encryption(keys());
    let s = server(|o| o.refresh_tokens = true);
    let t = logged_in_and_expired(&s, &sealed);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}/mcp", listener.local_addr().unwrap().port());
    let cfg = mcp_oauth_client::Config::new(url.parse().unwrap());
    r.store().persist(&cfg.store_key(), &Persist::Tokens(t)).unwrap();
    // Amended with the fix for `servers_lists_a_server_planted_by_a_writer_without_the_key`:
    // the planted server is no longer listed (it was a precondition here, not the check).
    assert!(!sealed.servers().unwrap().contains(&cfg.store_key()));
    let c = Adapter::Blocking.with_oauth(cfg, Arc::new(sealed.clone()), Interaction::non_interactive());
    let e = c.and_then(|mut c| c.list_tools().map(|_| ())).expect_err("undecryptable");
    assert!(e.to_string().contains("cannot be read"), "{e}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(listener.accept().is_err(), "the client connected to the planted server");
}

// ---------------------------------------------------------------------------------------------
// 3. Certificate files renewed in place, and the 2 s settle.
// ---------------------------------------------------------------------------------------------

/// Renews the client certificate in place (CA 2's), with `mtime` as the files' modification
/// time if given, then makes Redis accept only CA 2's clients and drops every connection.
/// Returns whether the store got in within 8 s, and its last error.
fn renewal(tag: &str, mtime: Option<SystemTime>) -> (bool, String) {
    let base = std::env::temp_dir().join(format!("mcp-oauth-review-h-{}-{tag}-certs", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    tls_material(&base);
    let tls_port = free_port();
    let extra = tls_options(&base, tls_port, true);
    let r = Redis::start_with(tag, &extra);
    let tls =
        mcp_oauth_client::RedisTls::from_files(Some(&base.join("ca.pem")), Some(&base.join("client.pem")), Some(&base.join("client.key")))
            .unwrap();
    let store = RedisStore::open_with_tls(&format!("rediss://127.0.0.1:{tls_port}/"), tls).unwrap().with_timeout(Duration::from_secs(2));
    assert!(store.load(KEY).is_ok(), "the first certificate gets in");
    for (from, to) in [("client2.pem", "client.pem"), ("client2.key", "client.key")] {
        std::fs::copy(base.join(from), base.join(to)).unwrap();
        if let Some(t) = mtime {
            std::fs::File::options().write(true).open(base.join(to)).unwrap().set_modified(t).unwrap();
        }
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-ca-cert-file")
        .arg(base.join("ca2.pem").to_string_lossy().as_ref())
        .query(&mut r.raw())
        .unwrap();
    let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query(&mut r.raw()).unwrap();
    let started = Instant::now();
    let mut last = String::new();
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(8) {
        match store.load(KEY) {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = std::fs::remove_dir_all(&base);
    (ok, last)
}

/// A renewal written the ordinary way is taken once the files settle.
#[test]
fn sound_a_renewed_certificate_is_used_after_the_settle() {
    let (ok, last) = renewal("settle", None);
    assert!(ok, "the renewed certificate was never presented: {last}");
}

/// Files whose modification time is ahead of this machine's clock (written by a host or an
/// NFS server whose clock is ahead, copied with `cp -p`/`rsync -t`/`tar` from one, or this
/// machine's clock stepped back by NTP) never look "still for 2 s" until the clock passes
/// that time: the renewed certificate is not used, with nothing logged, and when the old one
/// expires every new connection fails. Here the files are stamped one hour ahead.
#[test]
fn a_renewed_certificate_stamped_in_the_future_is_not_used() {
    let (ok, last) = renewal("future", Some(SystemTime::now() + Duration::from_secs(3600)));
    assert!(ok, "8 s after the renewal (files stamped 1 h ahead), the store still presents the old certificate: {last}");
}

// ---------------------------------------------------------------------------------------------
// 4. Sentinel passwords.
// ---------------------------------------------------------------------------------------------

/// A master and a Sentinel with `requirepass` (no replica: `get-master-addr-by-name` needs
/// none).
struct Sentinel {
    _master: Redis,
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sentinel {
    fn start(tag: &str, password: &str) -> Sentinel {
        let master = Redis::start(&format!("{tag}-m"));
        let dir = std::env::temp_dir().join(format!("mcp-oauth-review-h-{}-{tag}-s", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let conf = dir.join("sentinel.conf");
        let quoted = password.replace('\\', "\\\\").replace('"', "\\\"");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\nrequirepass \"{quoted}\"\n",
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
        let set = Sentinel { _master: master, child, port, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "the Sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        set
    }

    fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/mymaster", self.port)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A password with non-ASCII, space, `#`, `?`, `+`, `&`, `=`, `/`, `@`, `:` and `%` reaches
/// the Sentinel intact (with the user `default` too); the wrong one is a typed error that
/// names neither; `Debug` of the store and of its `StoreConfig` shows neither the password
/// nor its encoded form.
#[test]
fn sound_sentinel_passwords_are_encoded_and_never_shown() {
    let password = "pä ss#?+&=/@:%25x";
    let set = Sentinel::start("sentinel", password);
    let encoded: String =
        password.bytes().map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }).collect();
    for user in [None, Some("default")] {
        let store = RedisStore::open(&set.url()).unwrap().with_sentinel_auth(user, password).unwrap();
        store.persist(KEY, &Persist::ForgetTokens { issuer: "https://as.example".into() }).unwrap();
        store.load(KEY).unwrap_or_else(|e| panic!("{user:?}: {e}"));
        let shown = format!("{store:?}");
        assert!(!shown.contains("ss#") && !shown.contains(&encoded) && !shown.contains("%C3%A4"), "{shown}");
    }
    let wrong =
        RedisStore::open(&set.url()).unwrap().with_sentinel_auth(None, "pä ss#?+&=/@:%25y").unwrap().with_timeout(Duration::from_secs(1));
    match wrong.load(KEY) {
        Err(e @ StoreError::Redis { .. }) => {
            let first = format!("{e} {e:?}");
            let text = format!("{first} {}", mcp_oauth_client::Error::from(e));
            assert!(!text.contains("ss#") && !text.contains("%C3%A4") && !text.contains("25y"), "{text}");
        }
        other => panic!("a wrong Sentinel password: {other:?}"),
    }
    let json = serde_json::json!({"type": "redis", "url": set.url(), "sentinel_username": "default", "sentinel_password": password});
    let config: mcp_oauth_client::config::StoreConfig = serde_json::from_value(json).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("ss#"), "{shown}");
    let opened = config.open(&|_| None).unwrap();
    opened.load(KEY).expect("through StoreConfig");
}

// ---------------------------------------------------------------------------------------------
// 5. store_hint.
// ---------------------------------------------------------------------------------------------

/// Redis errors no longer tell the user to check a directory; file errors still do.
#[test]
fn sound_store_hints_fit_the_store() {
    let redis = mcp_oauth_client::Error::from(StoreError::Redis { message: "connection refused".into() }).to_string();
    assert!(!redis.contains("directory"), "{redis}");
    let lease = mcp_oauth_client::Error::from(StoreError::LeaseLost).to_string();
    assert!(!lease.contains("directory"), "{lease}");
    let io = mcp_oauth_client::Error::from(StoreError::Io { path: "/x".into(), source: std::io::ErrorKind::PermissionDenied.into() });
    assert!(io.to_string().contains("directory"), "{io}");
}

/// The encryption key file (`EncryptionKeys::from_file`, StoreConfig `encryption_keys` from a
/// file) is not in the store's directory (a Redis store has none), yet a missing one is an
/// `Io` error, and the hint says to check the store's directory.
#[test]
fn a_missing_encryption_key_file_is_blamed_on_the_store_directory() {
    let e = EncryptionKeys::from_file(std::path::Path::new("/run/secrets/mcp-oauth-redis-key-missing")).map(|_| ()).unwrap_err();
    let text = mcp_oauth_client::Error::from(e).to_string();
    assert!(!text.contains("store's directory"), "{text}");
}
