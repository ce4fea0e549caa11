//! The tokio adapter on both of tokio's runtimes. On a current-thread runtime there is one
//! worker: anything blocking it (a slow browser launch, the store's file lock held by another
//! process) would stop every other task. The browser hook and the store run on the blocking
//! pool, so a ticker task keeps ticking through a login whose browser takes half a second to
//! start and whose store is locked by another process for half a second.
#![cfg(feature = "tokio")]

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::store::{FileStore, TokenStore};
use mcp_oauth_client::tokio::McpClient;
use mcp_oauth_tests::tcp::TcpTestServer;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A browser that takes `delay` to start (synchronously, as `open` and `xdg-open` do), then
/// follows the URL.
fn slow_browser(delay: Duration) -> Interaction {
    let mut i = Interaction::with_hook(move |url: &url::Url| {
        std::thread::sleep(delay);
        let url = url.clone();
        std::thread::spawn(move || {
            let loc = approve(&url);
            let _ = get(&loc);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    i
}

/// Logs in and lists tools on `rt` while a ticker task runs on the same runtime; returns how
/// often it ticked during the call, and how long the call took.
fn login_while_ticking(rt: &tokio::runtime::Runtime, s: &TcpTestServer, store: Arc<dyn TokenStore>) -> (u32, Duration) {
    let c = config(s);
    let ticks = Arc::new(AtomicU32::new(0));
    rt.block_on(async {
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        // A task of its own, so that on the multi-thread runtime it runs on the one worker too
        // (`block_on`'s own future runs on the calling thread).
        let login = tokio::spawn(async move {
            let started = Instant::now();
            let mut mcp = McpClient::with_oauth(c, store, slow_browser(Duration::from_millis(500))).await.expect("client");
            let tools = mcp.list_tools().await.expect("list_tools after the login");
            assert!(!tools.is_empty());
            started.elapsed()
        });
        let took = login.await.expect("the login task");
        ticker.abort();
        (ticks.load(Ordering::Relaxed), took)
    })
}

#[test]
fn a_slow_browser_does_not_block_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (ticks, took) = login_while_ticking(&rt, &server(|_| {}), Arc::new(mcp_oauth_client::MemoryStore::new()));
    assert!(took >= Duration::from_millis(500), "the browser's delay is part of the login ({took:?})");
    // 500 ms of browser start alone leaves room for ~50 ticks; a blocked worker gives ~0.
    assert!(ticks >= 25, "the only worker was blocked during the login: {ticks} ticks in {took:?}");
}

#[test]
fn a_slow_browser_does_not_block_a_multi_thread_runtime_with_one_worker() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (ticks, took) = login_while_ticking(&rt, &server(|_| {}), Arc::new(mcp_oauth_client::MemoryStore::new()));
    assert!(ticks >= 25, "the only worker was blocked during the login: {ticks} ticks in {took:?}");
}

/// The file store's lock for this server held by another process (here: another `FileStore` on
/// the same directory, on a plain thread; the lock is a file lock) for 600 ms: the wait happens
/// on the blocking pool.
#[cfg(unix)]
#[test]
fn a_store_lock_held_elsewhere_does_not_block_a_current_thread_runtime() {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-tokio-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn TokenStore> = Arc::new(FileStore::new(&dir));
    let other = FileStore::new(&dir);
    let s = server(|_| {});
    let key = s.mcp_url();
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let guard = other.lock(&key).unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        drop(guard);
    });
    locked.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (ticks, took) = login_while_ticking(&rt, &s, store);
    holder.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ticks >= 25, "the only worker was blocked during the login: {ticks} ticks in {took:?}");
}
