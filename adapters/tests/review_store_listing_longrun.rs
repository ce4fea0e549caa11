//! Review of 7de3df0 for a client that runs for months: forget during a flow, forget racing
//! a refresh, listing while another writer works, and hundreds of servers.

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{Clock, FileStore, MemoryStore, Persist, Timestamp, TokenStore, Url};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-longrun-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn grants(s: &mcp_oauth_tests::tcp::TcpTestServer, g: &str) -> usize {
    s.lock().token_requests().iter().filter(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == g)).count()
}

/// A browser that tells when it was opened, then approves after `delay`.
fn slow_browser(delay: Duration) -> (Interaction, mpsc::Receiver<()>, Arc<Mutex<usize>>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let opened = Arc::new(Mutex::new(0));
    let o = opened.clone();
    let mut i = Interaction::with_hook(move |url: &Url| {
        *o.lock().unwrap() += 1;
        let _ = tx.lock().unwrap().send(());
        let url = url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let loc = approve(&url);
            let _ = get(&loc);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    (i, rx, opened)
}

/// `forget` while another thread is logging in (holding the lock): forget waits for the flow,
/// then forgets what it stored; the running client, at its next token need, logs in anew and
/// does not refresh the forgotten grant.
fn forget_during_a_login_then_the_running_client_needs_a_token(store: Arc<dyn TokenStore>) {
    let s = server(|o| {
        o.token_lifetime = Some(120);
        o.refresh_tokens = true;
    });
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let (i, opened_rx, opened) = slow_browser(Duration::from_millis(400));
    let key = config(&s).store_key();
    let (st, c, cl) = (store.clone(), config(&s), clock.clone());
    let (done_tx, done_rx) = mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut mcp = Adapter::Blocking.with_parts(c, st, i, None, cl).unwrap();
        mcp.list_tools().unwrap();
        let _ = done_tx.send(());
        mcp
    });
    opened_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let t = Instant::now();
    let held = store.forget(&key).unwrap();
    let waited = t.elapsed();
    assert!(done_rx.try_recv().is_ok() || held.tokens.is_some(), "forget waited for the flow ({waited:?}): {held:?}");
    assert!(held.tokens.is_some(), "forget returned what the finished flow stored: {held:?}");
    assert!(store.describe(&key).unwrap().is_empty());
    let mut mcp = client.join().unwrap();
    // Past its life: the running client must not refresh the forgotten grant.
    clock.0.fetch_add(200_000, Ordering::SeqCst);
    mcp.list_tools().unwrap();
    assert_eq!(grants(&s, "refresh_token"), 0, "the forgotten refresh token was used");
    assert_eq!(*opened.lock().unwrap(), 2, "a new login");
}

#[test]
fn memory_forget_during_a_login() {
    forget_during_a_login_then_the_running_client_needs_a_token(Arc::new(MemoryStore::new()));
}

#[test]
fn file_forget_during_a_login() {
    let dir = temp_dir("during");
    forget_during_a_login_then_the_running_client_needs_a_token(Arc::new(FileStore::new(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `forget` racing a proactive refresh in another thread, many times: afterwards the store
/// never holds the old grant (a refreshed token of it): either nothing, or a new login's.
#[test]
fn forget_racing_a_refresh_never_leaves_the_old_grant() {
    for round in 0..6 {
        let dir = temp_dir(&format!("race{round}"));
        let store: Arc<dyn TokenStore> = Arc::new(FileStore::new(&dir));
        let s = server(|o| {
            o.token_lifetime = Some(120);
            o.refresh_tokens = true;
            o.rotate_refresh = true;
        });
        let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
        let (i, log) = following_browser();
        let key = config(&s).store_key();
        let mut mcp = Adapter::Blocking.with_parts(config(&s), store.clone(), i, None, clock.clone()).unwrap();
        mcp.list_tools().unwrap();
        clock.0.fetch_add(95_000, Ordering::SeqCst);
        let st = store.clone();
        let k = key.clone();
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let forgetter = std::thread::spawn(move || {
            while !g.load(Ordering::SeqCst) {}
            std::thread::sleep(Duration::from_micros(200 * round));
            st.forget(&k).unwrap()
        });
        go.store(true, Ordering::SeqCst);
        mcp.list_tools().unwrap();
        forgetter.join().unwrap();
        let left = store.load(&key).unwrap();
        let logins = log.lock().unwrap().opened.len();
        assert!(left.tokens.is_none() || logins == 2, "round {round}: the old grant is still stored after forget ({logins} logins)");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// What one login persists, to copy under many keys.
fn one_login() -> (Vec<Persist>, String) {
    let s = server(|_| {});
    let store = MemoryStore::new();
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    let r = store.load(&config(&s).store_key()).unwrap();
    let mut p: Vec<Persist> = r.clients.into_iter().map(Persist::Client).collect();
    p.push(Persist::Tokens(r.tokens.unwrap()));
    (p, s.origin())
}

/// Listing while another writer adds and forgets servers: never an error, never a key that
/// was not written, and every key written (and not forgotten) stays listed.
#[test]
fn listing_while_another_writer_works() {
    let dir = temp_dir("concurrent");
    let store = FileStore::new(&dir);
    let (payload, _) = one_login();
    let keys: Vec<String> = (0..150).map(|n| format!("https://mcp{n}.example/mcp#app:mcp-oauth")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (w, ks, pl, st) = (store.clone(), keys.clone(), payload.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        for (n, k) in ks.iter().enumerate() {
            let _l = w.lock(k).unwrap();
            for p in &pl {
                w.persist(k, p).unwrap();
            }
            drop(_l);
            if n % 3 == 0 {
                w.forget(k).unwrap();
            }
        }
        st.store(true, Ordering::SeqCst);
    });
    let mut lists = 0;
    while !stop.load(Ordering::SeqCst) {
        let listed = store.servers().unwrap();
        assert!(listed.iter().all(|k| keys.contains(k)), "{listed:?}");
        lists += 1;
    }
    writer.join().unwrap();
    let want: Vec<String> = {
        let mut v: Vec<String> = keys.iter().enumerate().filter(|(n, _)| n % 3 != 0).map(|(_, k)| k.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(store.servers().unwrap(), want, "after {lists} listings");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hundreds of servers: listing, describing and forgetting all of them stays quick.
#[test]
fn hundreds_of_servers() {
    let (payload, issuer) = one_login();
    let dir = temp_dir("hundreds");
    for store in [Arc::new(MemoryStore::new()) as Arc<dyn TokenStore>, Arc::new(FileStore::new(&dir))] {
        let keys: Vec<String> = (0..400).map(|n| format!("https://mcp{n:03}.example/mcp#app:mcp-oauth")).collect();
        for k in &keys {
            for p in &payload {
                store.persist(k, p).unwrap();
            }
        }
        let t = Instant::now();
        let listed = store.servers().unwrap();
        let list_took = t.elapsed();
        assert_eq!(listed, keys);
        let t = Instant::now();
        for k in &keys {
            assert_eq!(store.describe(k).unwrap().tokens.unwrap().issuer, issuer);
        }
        let describe_took = t.elapsed();
        let t = Instant::now();
        for k in &keys {
            assert!(!store.forget(k).unwrap().is_empty());
        }
        let forget_took = t.elapsed();
        assert_eq!(store.servers().unwrap(), Vec::<String>::new());
        eprintln!("400 servers: list {list_took:?}, describe all {describe_took:?}, forget all {forget_took:?}");
        assert!(list_took < Duration::from_secs(5) && forget_took < Duration::from_secs(60));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
