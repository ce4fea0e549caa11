//! A flow the adapter cannot finish leaves the client usable: a store that fails to save is
//! reported as a typed error and the next call starts over; an async flow whose future is
//! dropped (a caller's timeout) does not wedge the client either.

mod common;
use common::*;
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{Error, MemoryStore, StoreError, TokenStore};
use mcp_oauth_core::{Persist, Restored};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A memory store whose saves fail while `failing` is set.
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl TokenStore for FlakyStore {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.inner.load(server)
    }
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Io { path: "/full/disk".into(), source: std::io::Error::other("no space left on device") });
        }
        self.inner.persist(server, p)
    }
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.inner.lock(server)
    }
}

fn a_failed_save_is_reported_and_the_next_call_recovers(a: Adapter) {
    let s = server(|_| {});
    let store = Arc::new(FlakyStore { inner: MemoryStore::new(), failing: AtomicBool::new(true) });
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), store.clone(), i).unwrap();
    let e = mcp.list_tools().unwrap_err();
    assert!(matches!(e, Error::Store(_)), "{e:?}");
    assert!(e.to_string().contains("no space left"), "{e}");
    store.failing.store(false, Ordering::SeqCst);
    let tools = mcp.list_tools().expect("the next call starts a new flow");
    assert!(!tools.is_empty());
    assert!(store.load(&config(&s).store_key()).unwrap().tokens.is_some());
}

on_every_adapter!(a_failed_save_is_reported_and_the_next_call_recovers);

#[cfg(feature = "async-std")]
mod dropped {
    use super::*;
    use mcp_oauth_client::async_std::OAuthClient;
    use mcp_oauth_client::interaction::{Interaction, UrlHandled};
    use std::time::Duration;

    /// The first login's browser never comes back and the caller gives up after 300 ms; the
    /// second login works, and the first listener's port is freed.
    fn a_dropped_flow_future_leaves_a_usable_client(a: Adapter) {
        let s = server(|_| {});
        let follow = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (f, o) = (follow.clone(), opened.clone());
        let mut i = Interaction::with_hook(move |url: &url::Url| {
            o.lock().unwrap().push(url.clone());
            if f.load(Ordering::SeqCst) {
                let url = url.clone();
                std::thread::spawn(move || get(&approve(&url)));
            }
            UrlHandled::Opened
        });
        i.print_url = false;
        i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
        a.block_on(async {
            let oauth = OAuthClient::new(config(&s), Arc::new(MemoryStore::new()), i).await.unwrap();
            let gave_up = ::async_std::future::timeout(Duration::from_millis(300), oauth.authorization()).await;
            assert!(gave_up.is_err(), "the first login cannot have finished");
            follow.store(true, Ordering::SeqCst);
            oauth.authorization().await.expect("a new flow after the dropped one");
        });
        let first = opened.lock().unwrap()[0].clone();
        let redirect = first.query_pairs().find(|(k, _)| k == "redirect_uri").unwrap().1.to_string();
        let port = url::Url::parse(&redirect).unwrap().port().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the abandoned listener still holds port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(s.lock().authorization_requests().len(), 1, "only the second login reached the server");
    }

    on_async_adapters!(a_dropped_flow_future_leaves_a_usable_client);
}
