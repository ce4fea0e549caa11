//! The store contract: what every `TokenStore` of this crate does, run on `MemoryStore`,
//! `FileStore` (`store_listing.rs`) and `KeyringStore` (`keyring_store.rs`) alike.
#![allow(dead_code)]

use super::common::*;
use mcp_oauth_client::core::secret::{AccessToken, RefreshToken};
use mcp_oauth_client::core::ClientInfo;
use mcp_oauth_client::{ClientKind, Persist, TokenSet, TokenStore};
use mcp_oauth_core::Timestamp;
use std::sync::Arc;

fn oauth_requests(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().log.iter().filter(|r| r.target != "/mcp").count()
}

/// The contract, on any store that can list.
pub fn lists_describes_and_forgets(store: Arc<dyn TokenStore>) {
    let (a, b) = (server(|o| o.refresh_tokens = true), server(|_| {}));
    assert_eq!(store.servers().unwrap(), Vec::<String>::new(), "a new store holds nothing");
    let (i, _) = following_browser();
    for s in [&a, &b] {
        Adapter::Blocking.with_oauth(config(s), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    }
    let (key_a, key_b) = (config(&a).store_key(), config(&b).store_key());
    let mut want = vec![key_a.clone(), key_b.clone()];
    want.sort();
    assert_eq!(store.servers().unwrap(), want, "both servers are listed by the keys `load` takes");

    let held = store.describe(&key_a).unwrap();
    assert_eq!(held.key, key_a);
    assert_eq!(held.server_url, a.mcp_url());
    assert_eq!(held.clients.len(), 1, "{held:?}");
    assert_eq!(held.clients[0].issuer, a.origin());
    assert_eq!(held.clients[0].kind, ClientKind::Dynamic);
    let tokens = held.tokens.clone().expect("tokens are held");
    assert_eq!(tokens.issuer, a.origin());
    assert_eq!(tokens.client_id.as_deref(), Some(held.clients[0].client_id.as_str()));
    assert!(tokens.refresh_token, "{tokens:?}");
    assert!(!tokens.dpop_bound);
    assert!(!tokens.scopes.is_empty(), "{tokens:?}");
    assert!(tokens.expires_at.is_some_and(|t| t > tokens.obtained_at), "{tokens:?}");
    // Nothing secret in what is shown: the stored token and refresh token appear nowhere.
    let stored = store.load(&key_a).unwrap().tokens.unwrap();
    let shown = format!("{held:?}");
    assert!(!shown.contains(stored.access_token.secret()), "{shown}");
    assert!(!shown.contains(stored.refresh_token.as_ref().unwrap().secret()), "{shown}");

    // Forgetting one server leaves the other, and returns what was held.
    let forgotten = store.forget(&key_a).unwrap();
    assert_eq!(forgotten, held);
    assert!(store.describe(&key_a).unwrap().is_empty());
    assert_eq!(store.servers().unwrap(), vec![key_b.clone()]);
    assert!(store.forget(&key_a).unwrap().is_empty(), "forgetting again is a no-op");

    // The forgotten server logs in again (a new registration and tokens); the other does not.
    let (before_a, before_b) = (oauth_requests(&a), oauth_requests(&b));
    Adapter::Blocking.with_oauth(config(&a), store.clone(), i.clone()).unwrap().list_tools().unwrap();
    Adapter::Blocking.with_oauth(config(&b), store.clone(), i).unwrap().list_tools().unwrap();
    assert!(a.lock().log[..].iter().filter(|r| r.target == "/register").count() >= 2, "registered again");
    assert!(oauth_requests(&a) > before_a, "the forgotten server logged in again");
    assert_eq!(oauth_requests(&b), before_b, "the other server kept its tokens");
}

pub fn tokens(issuer: &str, access: &str, obtained: u64) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(access),
        token_type: "Bearer".into(),
        refresh_token: Some(RefreshToken::new(format!("RT-{access}"))),
        expires_at: Some(Timestamp::from_secs(obtained + 3600)),
        scope: Some("read write".into()),
        issuer: issuer.into(),
        resource: "https://mcp.example.com/mcp".into(),
        token_endpoint: Some(format!("{issuer}/token")),
        client_id: Some(format!("client-of-{issuer}")),
        obtained_at: Timestamp::from_secs(obtained),
        dpop_key: None,
        resource_metadata: None,
        grant: None,
    }
}

pub fn client(issuer: &str) -> ClientInfo {
    serde_json::from_value(serde_json::json!({
        "issuer": issuer,
        "client_id": format!("client-of-{issuer}"),
        "client_secret": format!("CS-SECRET-{issuer}"),
        "redirect_uris": ["http://127.0.0.1/callback"],
        "kind": "dynamic",
    }))
    .unwrap()
}

/// Everything a token set holds, for comparing what went in with what came out.
fn dump(t: &TokenSet) -> serde_json::Value {
    serde_json::to_value(t).unwrap()
}

/// Raw persists and loads: registrations per issuer, the newest tokens win, each forget
/// removes its part, an entry far larger than one keyring item round-trips byte for byte, and
/// another server is never touched.
pub fn round_trips(store: &dyn TokenStore) {
    let (key, other) = ("https://mcp.example.com/mcp#user", "https://other.example.com/mcp#user");
    assert!(store.load(key).unwrap().tokens.is_none());
    store.persist(other, &Persist::Tokens(tokens("https://as.other", "AT-OTHER", 5))).unwrap();

    store.persist(key, &Persist::Client(client("https://as.a"))).unwrap();
    store.persist(key, &Persist::Tokens(tokens("https://as.a", "AT-A", 10))).unwrap();
    store.persist(key, &Persist::Client(client("https://as.b"))).unwrap();
    let newest = tokens("https://as.b", "AT-B", 20);
    store.persist(key, &Persist::Tokens(newest.clone())).unwrap();
    let r = store.load(key).unwrap();
    let mut issuers: Vec<&str> = r.clients.iter().map(|c| c.issuer.as_str()).collect();
    issuers.sort();
    assert_eq!(issuers, ["https://as.a", "https://as.b"]);
    assert!(r.clients.iter().all(|c| c.client_secret.as_ref().is_some_and(|s| s.secret() == format!("CS-SECRET-{}", c.issuer))));
    assert_eq!(dump(r.tokens.as_ref().unwrap()), dump(&newest), "the newest tokens, every field");

    // Larger than a Windows credential (2,560 bytes) many times over, with a multi-byte
    // character straddling where items split.
    let mut big = tokens("https://as.b", &format!("AT-{}", "é".repeat(4000)), 30);
    big.refresh_token = Some(RefreshToken::new("R".repeat(9000)));
    store.persist(key, &Persist::Tokens(big.clone())).unwrap();
    assert_eq!(dump(store.load(key).unwrap().tokens.as_ref().unwrap()), dump(&big), "a large entry comes back whole");

    store.persist(key, &Persist::ForgetTokens { issuer: "https://as.b".into() }).unwrap();
    assert_eq!(store.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-A", "the other issuer's tokens remain");
    store.persist(key, &Persist::ForgetClient { issuer: "https://as.a".into() }).unwrap();
    let r = store.load(key).unwrap();
    assert_eq!(r.clients.iter().map(|c| c.issuer.as_str()).collect::<Vec<_>>(), ["https://as.b"]);

    assert_eq!(store.servers().unwrap(), vec![key.to_owned(), other.to_owned()]);
    let held = store.forget(key).unwrap();
    assert_eq!(held.clients.len(), 1);
    assert!(store.load(key).unwrap().clients.is_empty() && store.load(key).unwrap().tokens.is_none());
    assert_eq!(store.servers().unwrap(), vec![other.to_owned()]);
    assert_eq!(store.load(other).unwrap().tokens.unwrap().access_token.secret(), "AT-OTHER", "the other server is untouched");
    store.forget(other).unwrap();
    assert_eq!(store.servers().unwrap(), Vec::<String>::new());
}

/// The lock excludes another holder until it is dropped (threads of one process).
pub fn lock_excludes(store: Arc<dyn TokenStore>) {
    let key = "https://lock.example.com/mcp#user";
    let held = store.lock(key).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let s = store.clone();
    let t = std::thread::spawn(move || {
        let _l = s.lock(key).unwrap();
        tx.send(()).unwrap();
    });
    assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(), "a second holder got the lock");
    drop(held);
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the lock was handed on");
    t.join().unwrap();
    let _ = ClientKind::Dynamic;
}

/// The revision ([`TokenStore::revision`]): moved by every save and forget of tokens, through
/// any instance (`same` is another handle on the same storage), by nothing else, and never back
/// to a value it had, even when the store is as empty as it was.
pub fn revisions_move(store: &dyn TokenStore, same: &dyn TokenStore) {
    let (key, other) = ("https://rev.example.com/mcp#user", "https://rev-other.example.com/mcp#user");
    let rev = |s: &dyn TokenStore| s.revision(key).unwrap().expect("this store keeps a revision");
    let r0 = rev(store);
    store.persist(key, &Persist::Client(client("https://as.a"))).unwrap();
    assert_eq!(rev(store), r0, "a registration does not move it");
    store.persist(key, &Persist::Tokens(tokens("https://as.a", "AT-1", 10))).unwrap();
    let r1 = rev(store);
    assert_ne!(r1, r0, "a save of tokens moves it");
    assert_eq!(rev(same), r1, "another instance reads the same revision");
    store.persist(other, &Persist::Tokens(tokens("https://as.a", "AT-OTHER", 10))).unwrap();
    assert_eq!(rev(store), r1, "another server's save does not move it");
    assert_eq!(same.load(key).unwrap().tokens.unwrap().access_token.secret(), "AT-1");

    same.persist(key, &Persist::ForgetTokens { issuer: "https://as.a".into() }).unwrap();
    let r2 = rev(store);
    assert!(![r0, r1].contains(&r2), "a forget through another instance moves it to a new value");
    // Logged in and forgotten again: as empty as after the first forget, at a new revision.
    store.persist(key, &Persist::Tokens(tokens("https://as.a", "AT-2", 20))).unwrap();
    let r3 = rev(store);
    same.forget(key).unwrap();
    let r4 = rev(store);
    assert!(store.load(key).unwrap().tokens.is_none() && store.load(key).unwrap().clients.is_empty());
    assert!(![r0, r1, r2, r3].contains(&r4), "the revision came back to an earlier value: {r0} {r1} {r2} {r3} then {r4}");
    assert!(![r0, r1, r2].contains(&r3));
    store.forget(other).unwrap();
}

/// A store whose first save of tokens fails (Redis unreachable, a full disk), not applied.
pub struct FailingFirstSave {
    pub inner: Arc<dyn TokenStore>,
    pub armed: std::sync::atomic::AtomicBool,
}

impl FailingFirstSave {
    fn fail(
        &self,
        p: &Persist,
        write: impl FnOnce() -> Result<(), mcp_oauth_client::StoreError>,
    ) -> Result<(), mcp_oauth_client::StoreError> {
        if matches!(p, Persist::Tokens(_)) && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(mcp_oauth_client::StoreError::Redis { message: "injected: the save failed".into() });
        }
        write()
    }
}

impl TokenStore for FailingFirstSave {
    fn load(&self, server: &str) -> Result<mcp_oauth_client::core::Restored, mcp_oauth_client::StoreError> {
        self.inner.load(server)
    }
    fn persist(&self, server: &str, p: &Persist) -> Result<(), mcp_oauth_client::StoreError> {
        self.fail(p, || self.inner.persist(server, p))
    }
    fn persist_locked(
        &self,
        server: &str,
        p: &Persist,
        lock: &mcp_oauth_client::store::StoreLock,
    ) -> Result<(), mcp_oauth_client::StoreError> {
        self.fail(p, || self.inner.persist_locked(server, p, lock))
    }
    fn lock(&self, server: &str) -> Result<mcp_oauth_client::store::StoreLock, mcp_oauth_client::StoreError> {
        self.inner.lock(server)
    }
    fn try_lock(&self, server: &str) -> Result<Option<mcp_oauth_client::store::StoreLock>, mcp_oauth_client::StoreError> {
        self.inner.try_lock(server)
    }
    fn wait_unlocked(&self, server: &str) -> Result<bool, mcp_oauth_client::StoreError> {
        self.inner.wait_unlocked(server)
    }
    fn revision(&self, server: &str) -> Result<Option<u64>, mcp_oauth_client::StoreError> {
        self.inner.revision(server)
    }
}

/// A client X whose first login cannot be saved keeps it and writes it back at its next call
/// (a transient failure costs no grant), unless the store moved meanwhile: here another
/// instance logged in and the fleet was logged out, which leaves the store as empty as X last
/// saw it. X must not write its login back over that logout (round 5 of the Redis review, the
/// ABA case: comparing the tokens alone cannot see it).
pub fn a_logout_elsewhere_after_a_failed_first_save_is_kept(store: Arc<dyn TokenStore>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = server(|o| {
        o.refresh_tokens = true;
        o.revocation = true;
    });
    let key = config(&s).store_key();
    let failing = Arc::new(FailingFirstSave { inner: store.clone(), armed: AtomicBool::new(true) });
    let (browser, _) = following_browser();
    let mut x = Adapter::Blocking.with_oauth(config(&s), failing.clone(), browser.clone()).unwrap();
    // X logs in; its save fails (the call says so), and X keeps the tokens it holds, to write
    // them back at its next call.
    let first = x.list_tools();
    assert!(matches!(first, Err(mcp_oauth_client::Error::Store(_))), "{:?}", first.map(|_| ()));
    assert!(!failing.armed.load(Ordering::SeqCst), "X's save was attempted");
    assert!(store.load(&key).unwrap().tokens.is_none(), "X's login was not saved");

    // Y logs in (the store now holds Y's), then the fleet is logged out.
    Adapter::Blocking.with_oauth(config(&s), store.clone(), browser.clone()).unwrap().list_tools().expect("Y logged in");
    assert!(store.load(&key).unwrap().tokens.is_some());
    let report = Adapter::Blocking.with_oauth(config(&s), store.clone(), browser).unwrap().logout().expect("logout");
    assert!(report.forgotten, "{report:?}");
    assert!(store.load(&key).unwrap().tokens.is_none(), "the logout emptied the store");

    // X's next call: with a save of its own unsaved, it goes through the store first.
    let next = x.list_tools();
    let after = store.load(&key).unwrap().tokens.map(|t| t.access_token.secret().to_owned());
    let logins = s.lock().authorization_requests().len();
    assert!(
        after.is_none() || logins >= 3,
        "X wrote back its own login over the fleet's logout (X's call: {:?}; logins at the AS: {logins})",
        next.as_ref().map(|_| ())
    );
}
