//! Fifth review of the Redis slices (issue #16), of 9994c03: the write-back rule, the
//! listing with encryption, and renewed certificate files. Each Redis test starts its own
//! `redis-server` on a free 127.0.0.1 port. Tests named `sound_*` check what held; the others
//! reproduce findings and fail against the reviewed code.

mod common;
mod redis_support;
use common::*;
use mcp_oauth_client::{RedisStore, TokenStore};
use redis_support::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

const KEY: &str = "https://mcp.example.com/mcp#user";

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
    let extra = tls_options(&base, tls_port, true);
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
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-ca-cert-file")
        .arg(base.join("ca2.pem").to_string_lossy().as_ref())
        .query(&mut r.raw())
        .unwrap();
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
