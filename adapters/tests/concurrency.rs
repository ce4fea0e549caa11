//! Single flight inside one process: many threads (blocking) or tasks (async) that want a token
//! for the same server at the same moment cause exactly one refresh, or one login, and all of
//! them get the result.

mod common;
use common::*;
use mcp_oauth_client::{MemoryStore, TokenStore};
use mcp_oauth_core::{Persist, Timestamp};
use std::sync::Arc;

fn grants(s: &mcp_oauth_tests::tcp::TcpTestServer, g: &str) -> usize {
    s.lock().token_requests().iter().filter(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == g)).count()
}

/// Logs in once through `store`, then expires the stored token.
fn expired_store(a: Adapter, s: &mcp_oauth_tests::tcp::TcpTestServer) -> MemoryStore {
    let store = MemoryStore::new();
    let (i, _) = following_browser();
    a.with_oauth(config(s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    let key = config(s).store_key();
    let mut t = store.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(Timestamp::from_secs(1));
    store.persist(&key, &Persist::Tokens(t)).unwrap();
    store
}

/// 64 threads, each with its own client over one store holding an expired token.
fn sixty_four_clients_refresh_once(a: Adapter) {
    let s = server(|_| {});
    let store = expired_store(a, &s);
    let url = s.mcp_url();
    let threads: Vec<_> = (0..64)
        .map(|n| {
            let (store, url) = (store.clone(), url.clone());
            std::thread::spawn(move || {
                let config = mcp_oauth_client::Config::new(url.parse().unwrap());
                let mut mcp = a.with_oauth(config, Arc::new(store), mcp_oauth_client::Interaction::non_interactive()).unwrap();
                let r = mcp.call_tool("echo", serde_json::json!({ "text": format!("t{n}") })).unwrap();
                assert_eq!(r["content"][0]["text"], format!("t{n}"));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a thread failed");
    }
    assert_eq!(grants(&s, "refresh_token"), 1, "exactly one refresh for 64 clients");
    assert_eq!(s.lock().authorization_requests().len(), 1, "nobody logged in again");
}

/// 16 threads, each with its own lazy client over one store and no token: they all get 401 on
/// their bare first request, and one of them logs in; the others use its token.
fn threads_with_no_token_log_in_once(a: Adapter) {
    let s = server(|_| {});
    let store = MemoryStore::new();
    let (i, log) = following_browser();
    let threads: Vec<_> = (0..16)
        .map(|n| {
            let (store, config, i) = (store.clone(), config(&s), i.clone());
            std::thread::spawn(move || {
                let mut mcp = a.with_oauth(config, Arc::new(store), i).unwrap();
                let r = mcp.call_tool("echo", serde_json::json!({ "text": format!("t{n}") })).unwrap();
                assert_eq!(r["content"][0]["text"], format!("t{n}"));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a thread failed");
    }
    assert_eq!(log.lock().unwrap().opened.len(), 1, "one browser for 16 clients");
    assert_eq!(s.lock().authorization_requests().len(), 1);
}

on_every_adapter!(sixty_four_clients_refresh_once, threads_with_no_token_log_in_once);

#[cfg(feature = "async-std")]
mod tasks {
    use super::*;
    use mcp_oauth_client::async_std::{ConnectMode, McpClient, OAuthClient};
    use std::future::Future;
    use std::pin::Pin;

    type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    /// Spawns on the adapter's executor (smol's own, for the smol driver).
    fn spawn<T: Send + 'static>(a: Adapter, f: impl Future<Output = T> + Send + 'static) -> Task<T> {
        match a {
            Adapter::Smol => Box::pin(::smol::spawn(f)),
            _ => Box::pin(::async_std::task::spawn(f)),
        }
    }

    /// 100 tasks share one client whose token expired: one refresh, everyone gets the new token.
    fn tasks_sharing_a_client_refresh_once(a: Adapter) {
        let s = server(|_| {});
        let store = expired_store(a, &s);
        a.block_on(async {
            let oauth =
                OAuthClient::new(config(&s), Arc::new(store.clone()), mcp_oauth_client::Interaction::non_interactive()).await.unwrap();
            let handles: Vec<_> = (0..100)
                .map(|_| {
                    let o = oauth.clone();
                    spawn(a, async move { o.authorization().await.map(|h| h.secret().to_owned()) })
                })
                .collect();
            let mut headers = Vec::new();
            for h in handles {
                headers.push(h.await.unwrap());
            }
            headers.dedup();
            assert_eq!(headers.len(), 1, "every task got the same, new token");
        });
        assert_eq!(grants(&s, "refresh_token"), 1);
    }

    /// 16 tasks with MCP clients sharing one OAuth client and no token yet: one login, whether
    /// they ask for a token first (eager) or send bare requests and all get 401 (lazy).
    fn tasks_with_no_token_log_in_once(a: Adapter) {
        for mode in [ConnectMode::Eager, ConnectMode::Lazy] {
            let s = server(|_| {});
            let (i, log) = following_browser();
            a.block_on(async {
                let oauth = OAuthClient::new(config(&s), Arc::new(MemoryStore::new()), i).await.unwrap();
                let url = config(&s).server_url;
                let handles: Vec<_> = (0..16)
                    .map(|n| {
                        let mut mcp = McpClient::new(url.clone(), Some(oauth.clone())).mode(mode);
                        spawn(a, async move { mcp.call_tool("echo", serde_json::json!({ "text": format!("t{n}") })).await })
                    })
                    .collect();
                for (n, h) in handles.into_iter().enumerate() {
                    assert_eq!(h.await.unwrap()["content"][0]["text"], format!("t{n}"));
                }
            });
            assert_eq!(log.lock().unwrap().opened.len(), 1, "one browser ({mode:?})");
            assert_eq!(s.lock().authorization_requests().len(), 1, "one login ({mode:?})");
            assert_eq!(grants(&s, "authorization_code"), 1);
        }
    }

    /// Tasks whose token the server revoked: one refresh answers all their 401s.
    fn tasks_challenged_together_refresh_once(a: Adapter) {
        let s = server(|_| {});
        let (i, _) = following_browser();
        a.block_on(async {
            let oauth = OAuthClient::new(config(&s), Arc::new(MemoryStore::new()), i).await.unwrap();
            let url = config(&s).server_url;
            let mut clients = Vec::new();
            for _ in 0..12 {
                let mut mcp = McpClient::new(url.clone(), Some(oauth.clone()));
                mcp.connect().await.unwrap();
                clients.push(mcp);
            }
            s.lock().revoke_access_tokens();
            let handles: Vec<_> =
                clients.into_iter().map(|mut mcp| spawn(a, async move { mcp.list_tools().await.map(|t| t.len()) })).collect();
            for h in handles {
                assert!(h.await.unwrap() > 0);
            }
        });
        assert_eq!(grants(&s, "refresh_token"), 1, "one refresh for twelve rejected requests");
    }

    /// Another process holds the file store's lock while a token is needed: the executor
    /// thread keeps running other futures (the lock is waited for on the blocking pool).
    fn a_held_store_lock_never_blocks_the_executor(a: Adapter) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::time::Duration;
        let s = server(|_| {});
        let dir = std::env::temp_dir().join(format!("mcp-oauth-exec-{}-{}", std::process::id(), a.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = mcp_oauth_client::FileStore::new(&dir);
        let (i, _) = following_browser();
        a.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
        let key = config(&s).store_key();
        let mut t = store.load(&key).unwrap().tokens.unwrap();
        t.expires_at = Some(Timestamp::from_secs(1));
        store.persist(&key, &Persist::Tokens(t)).unwrap();

        let held = store.lock(&key).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            drop(held);
        });
        let (ticks, done) = (AtomicUsize::new(0), AtomicBool::new(false));
        a.block_on(async {
            let oauth =
                OAuthClient::new(config(&s), Arc::new(store.clone()), mcp_oauth_client::Interaction::non_interactive()).await.unwrap();
            let wanted = async {
                let r = oauth.authorization().await;
                done.store(true, Ordering::SeqCst);
                r
            };
            let ticker = async {
                while !done.load(Ordering::SeqCst) {
                    ::smol::Timer::after(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            };
            let (r, ()) = ::smol::future::zip(wanted, ticker).await;
            r.unwrap();
        });
        release.join().unwrap();
        let n = ticks.load(Ordering::SeqCst);
        assert!(n >= 15, "the executor thread was blocked while the lock was held ({n} ticks in 400 ms)");
        assert_eq!(grants(&s, "refresh_token"), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    on_async_adapters!(
        a_held_store_lock_never_blocks_the_executor,
        tasks_sharing_a_client_refresh_once,
        tasks_with_no_token_log_in_once,
        tasks_challenged_together_refresh_once
    );
}
