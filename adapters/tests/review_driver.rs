//! Independent review of the one-driver change (`adapters/src/driver/`): reproductions of
//! what an attacker, a spec auditor and a long-running user can break. Each test states the
//! expected behaviour; a failing test is a finding.

mod common;
use common::*;
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{MemoryStore, StoreError, TokenStore};
use mcp_oauth_core::{Persist, Restored};
use std::sync::Arc;
use std::time::Duration;

/// Errors about an MCP request name its URL "without its query (which may carry credentials)".
/// A URL's userinfo (`https://user:password@host/mcp`) carries credentials too, and it is kept:
/// the password lands in `Display` (and `Debug`) of `Error::Transport` / `Error::Status`.
fn mcp_errors_do_not_show_the_urls_password(a: Adapter) {
    // Nothing listens on this port: a transport error naming the request.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url: url::Url = format!("http://alice:hunter2-s3cret@127.0.0.1:{port}/mcp").parse().unwrap();
    let e = match a {
        Adapter::Blocking => mcp_oauth_client::blocking::McpClient::new(url, None).list_tools().unwrap_err(),
        #[cfg(feature = "async-std")]
        a => a.block_on(async { mcp_oauth_client::async_std::McpClient::new(url, None).list_tools().await.unwrap_err() }),
    };
    let (shown, debug) = (e.to_string(), format!("{e:?}"));
    assert!(!shown.contains("hunter2-s3cret"), "Display leaks the URL's password: {shown}");
    assert!(!debug.contains("hunter2-s3cret"), "Debug leaks the URL's password: {debug}");
}

/// The same for an error status from a real (test) server, with a query-free URL.
fn mcp_status_errors_do_not_show_the_urls_password(a: Adapter) {
    let s = server(|o| o.open = true);
    let mut url: url::Url = s.mcp_url().parse().unwrap();
    url.set_path("/nothing-here");
    url.set_username("alice").unwrap();
    url.set_password(Some("hunter2-s3cret")).unwrap();
    let e = match a {
        Adapter::Blocking => mcp_oauth_client::blocking::McpClient::new(url, None).list_tools().unwrap_err(),
        #[cfg(feature = "async-std")]
        a => a.block_on(async { mcp_oauth_client::async_std::McpClient::new(url, None).list_tools().await.unwrap_err() }),
    };
    let shown = e.to_string();
    assert!(!shown.contains("hunter2-s3cret"), "Display leaks the URL's password: {shown}");
}

/// `McpClient`'s `Debug` prints the session, whose configured headers (an API key) are not
/// marked sensitive until a request is built: the secret is in `{:?}`.
fn mcp_client_debug_hides_configured_header_secrets(a: Adapter) {
    let cfg: mcp_oauth_client::ServerConfig = serde_json::from_value(serde_json::json!({
        "type": "streamable_http",
        "url": "https://mcp.example.com/mcp",
        "headers": { "X-Api-Key": "sk-live-hunter2" }
    }))
    .unwrap();
    let env = |_: &str| None;
    let shown = match a {
        Adapter::Blocking => format!(
            "{:?}",
            mcp_oauth_client::blocking::McpClient::from_config(&cfg, Arc::new(MemoryStore::new()), Default::default(), &env).unwrap()
        ),
        #[cfg(feature = "async-std")]
        a => a.block_on(async {
            let c = mcp_oauth_client::async_std::McpClient::from_config(&cfg, Arc::new(MemoryStore::new()), Default::default(), &env)
                .await
                .unwrap();
            format!("{c:?}")
        }),
    };
    assert!(!shown.contains("sk-live-hunter2"), "Debug shows the configured API key: {shown}");
}

on_every_adapter!(
    mcp_errors_do_not_show_the_urls_password,
    mcp_status_errors_do_not_show_the_urls_password,
    mcp_client_debug_hides_configured_header_secrets
);

/// A store whose `persist` is slow (an fsync on a busy disk), and which counts the loads made
/// while a save is still under way (a reader under the store lock must never see that).
#[derive(Clone)]
struct SlowStore {
    inner: MemoryStore,
    saving: Arc<std::sync::atomic::AtomicUsize>,
    loads_during_a_save: Arc<std::sync::atomic::AtomicUsize>,
}

impl TokenStore for SlowStore {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        if self.saving.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            self.loads_during_a_save.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.load(server)
    }
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.saving.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(800));
        let r = self.inner.persist(server, p);
        self.saving.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        r
    }
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.inner.lock(server)
    }
}

#[cfg(feature = "async-std")]
mod dropped {
    use super::*;
    use mcp_oauth_client::async_std::OAuthClient;
    use mcp_oauth_client::interaction::{Interaction, UrlHandled};
    use mcp_oauth_core::Timestamp;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A refresh whose caller gives up (a timeout) while the rotated tokens are being saved:
    /// the save goes on, on the blocking pool, but the store lock is released at once. A second
    /// client of the same store (another task, or another process) takes the lock, reads the
    /// old, already spent refresh token, and presents it: with reuse detection (RFC 9700
    /// §4.14.2) the server revokes the whole grant and the user must log in again.
    fn a_dropped_refresh_does_not_save_outside_the_store_lock(a: Adapter) {
        let s = server(|o| o.refresh_reuse_revokes_grant = true);
        let base = MemoryStore::new();
        let (i, _) = following_browser();
        a.with_oauth(config(&s), Arc::new(base.clone()), i).unwrap().list_tools().unwrap();
        let key = config(&s).store_key();
        let mut t = base.load(&key).unwrap().tokens.unwrap();
        t.expires_at = Some(Timestamp::from_secs(1));
        base.persist(&key, &Persist::Tokens(t)).unwrap();

        let store = SlowStore { inner: base, saving: Arc::default(), loads_during_a_save: Arc::default() };
        let (first, second) = a.block_on(async {
            let one = OAuthClient::new(config(&s), Arc::new(store.clone()), Interaction::non_interactive()).await.unwrap();
            let two = OAuthClient::new(config(&s), Arc::new(store.clone()), Interaction::non_interactive()).await.unwrap();
            // The refresh itself takes milliseconds; the caller gives up during the save.
            let first = ::async_std::future::timeout(Duration::from_millis(300), one.authorization()).await;
            let second = two.authorization().await;
            (first, second)
        });
        assert!(first.is_err(), "the first caller gave up");
        std::thread::sleep(Duration::from_secs(2));
        let stale = store.loads_during_a_save.load(Ordering::SeqCst);
        assert!(
            second.is_ok() && stale == 0,
            "second client: {second:?}; loads under the lock while a save was under way: {stale}; refresh grants: {}",
            s.lock().token_requests().iter().filter(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")).count()
        );
    }

    /// A fixed redirect port (`redirect_uri` with a port: no fallback to any port). The caller
    /// gives up on a login and retries at once; the retry must be able to bind the port.
    fn a_retry_after_a_dropped_login_binds_the_fixed_port(a: Adapter) {
        let s = server(|_| {});
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let mut c = config(&s);
        c.redirect_uri = format!("http://127.0.0.1:{port}/callback").parse().unwrap();
        let follow = Arc::new(AtomicBool::new(false));
        let f = follow.clone();
        let mut i = Interaction::with_hook(move |url: &url::Url| {
            if f.load(Ordering::SeqCst) {
                let url = url.clone();
                std::thread::spawn(move || get(&approve(&url)));
            }
            UrlHandled::Opened
        });
        i.print_url = false;
        i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
        let r = a.block_on(async {
            let oauth = OAuthClient::new(c, Arc::new(MemoryStore::new()), i).await.unwrap();
            let gave_up = ::async_std::future::timeout(Duration::from_millis(300), oauth.authorization()).await;
            assert!(gave_up.is_err());
            follow.store(true, Ordering::SeqCst);
            oauth.authorization().await
        });
        r.expect("the retry binds the fixed port and logs in");
    }

    on_async_adapters!(a_dropped_refresh_does_not_save_outside_the_store_lock, a_retry_after_a_dropped_login_binds_the_fixed_port);
}

/// `blocking::block_on` is public, and documented to handle a nested call ("a blocking
/// callback that blocks on a future"). The inner call parks the same thread, so it swallows
/// the unpark meant for the outer future: a wake that arrives while the inner call runs is
/// lost, and the outer `block_on` parks for ever although its future is ready to go on.
#[test]
fn a_nested_block_on_does_not_swallow_the_outer_wakeup() {
    use mcp_oauth_client::blocking::block_on;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (outer_tx, outer_rx) = async_channel::bounded::<()>(1);
        let (inner_tx, inner_rx) = async_channel::bounded::<()>(1);
        // The outer future's event comes while the inner call is still waiting for its own.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            outer_tx.send_blocking(()).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            inner_tx.send_blocking(()).unwrap();
        });
        block_on(futures_lite::future::zip(async { outer_rx.recv().await.unwrap() }, async {
            // A blocking callback inside the outer future (a store, a hook) that blocks on a future.
            block_on(async { inner_rx.recv().await.unwrap() })
        }));
        let _ = done_tx.send(());
    });
    assert!(done_rx.recv_timeout(Duration::from_secs(5)).is_ok(), "the outer block_on never woke up although its channel had a message");
}

/// One blocking `OAuthClient` shared by threads (it is `Clone`, and clones share the machine)
/// while none holds a token: one login, every thread gets its token.
#[test]
fn threads_sharing_one_blocking_client_log_in_once() {
    let s = server(|_| {});
    let (i, _) = following_browser();
    let oauth = mcp_oauth_client::blocking::OAuthClient::new(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let o = oauth.clone();
            std::thread::spawn(move || o.authorization().map(|a| a.access_token().secret().to_owned()))
        })
        .collect();
    let tokens: Vec<_> = threads.into_iter().map(|t| t.join().unwrap().expect("a token")).collect();
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "one token for all");
    assert_eq!(s.lock().authorization_requests().len(), 1, "one login");
}
