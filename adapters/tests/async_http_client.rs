//! Bring your own HTTP client: a closure is an `HttpClient`. A whole login runs through
//! one, and the adapter holds a client that ignores the body cap to it anyway.
#![cfg(feature = "async-std")]

mod common;
use common::*;
use mcp_oauth_client::async_std::{McpClient, OAuthClient};
use mcp_oauth_client::core::http::{HttpResponse, TransportFailure, TransportFailureKind};
use mcp_oauth_client::transport::Ureq;
use mcp_oauth_client::{Error, MemoryStore, SystemClock};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn a_closure_is_an_http_client() {
    let s = server(|_| {});
    let (i, _) = following_browser();
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, http) = (calls.clone(), Ureq::default());
    let client = move |req: http::Request<Vec<u8>>, max: usize| {
        c.fetch_add(1, Ordering::SeqCst);
        let http = http.clone();
        async move { async_std::task::spawn_blocking(move || http.send(req, max)).await }
    };
    async_std::task::block_on(async {
        let oauth =
            OAuthClient::with_parts(config(&s), Arc::new(MemoryStore::new()), i, Arc::new(client), Arc::new(SystemClock)).await.unwrap();
        let mut mcp = McpClient::new(config(&s).server_url, Some(oauth));
        let r = mcp.call_tool("echo", serde_json::json!({"text": "closure"})).await.unwrap();
        assert_eq!(r["content"][0]["text"], "closure");
    });
    // Every request of the flow and of MCP went through the closure (the rest is the browser's).
    let ours = s.lock().log.iter().filter(|r| !r.target.starts_with("/authorize")).count();
    assert_eq!(calls.load(Ordering::SeqCst), ours);
}

#[test]
fn the_body_cap_holds_whatever_the_client_does() {
    let s = server(|o| o.open = true);
    // A client that ignores max_body and answers 17 MB (MCP bodies are capped at 16 MB).
    let client = |_: http::Request<Vec<u8>>, _: usize| async {
        Ok::<HttpResponse, TransportFailure>(http::Response::builder().status(200).body(vec![b' '; 17 << 20]).unwrap())
    };
    let e = async_std::task::block_on(async {
        let oauth = OAuthClient::with_parts(
            config(&s),
            Arc::new(MemoryStore::new()),
            mcp_oauth_client::Interaction::non_interactive(),
            Arc::new(client),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        McpClient::new(config(&s).server_url, Some(oauth)).list_tools().await.unwrap_err()
    });
    assert!(matches!(&e, Error::Transport { failure: f, .. } if f.kind == TransportFailureKind::BodyTooLarge), "{e:?}");
}
