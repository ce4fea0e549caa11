//! Review: `OAuthHttpClient` is "built the way ReqwestClient is", and ReqwestClient's rule is a
//! deadline on every phase (connect, the response head within `min(timeout, 10 s) + timeout`,
//! the body, each silence of an event stream). But `ReqwestClient::reqwest()` hands rmcp the bare
//! `reqwest::Client`, which has only a connect timeout: the head/body deadlines live in
//! `ReqwestClient::head`/`send`, which rmcp never calls. A server (or a half-open connection)
//! that accepts and then says nothing hangs an rmcp POST forever (rmcp itself has no request
//! deadline for ordinary requests); the same holds for the SSE GET stream's silences.
//!
//! Only loopback: a listener on 127.0.0.1 that accepts, reads, and never answers.
#![cfg(feature = "rmcp")]

mod common;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::tokio::{HttpClient, OAuthClient, ReqwestClient};
use mcp_oauth_client::{Config, Interaction, MemoryStore};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::StreamableHttpClient;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts connections and reads from them without ever answering.
fn silent_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while c.read(&mut b).map(|n| n > 0).unwrap_or(false) {}
                std::thread::sleep(Duration::from_secs(600));
            });
        }
    });
    port
}

#[test]
fn an_rmcp_post_to_a_silent_server_gives_up_like_reqwest_client_does() {
    let port = silent_server();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The crate's own client with the same default (30 s): gives up after at most 40 s.
    let oauth = rt.block_on(async {
        OAuthClient::new(Config::new(url.parse().unwrap()), Arc::new(MemoryStore::new()), Interaction::non_interactive()).await.unwrap()
    });
    // (ReqwestClient, for reference, with a short timeout so this test stays quick.)
    let short = ReqwestClient::new(Duration::from_secs(1));
    let t = Instant::now();
    let r = rt.block_on(short.send(http::Request::post(&url).body(b"{}".to_vec()).unwrap(), 1024));
    assert!(r.is_err() && t.elapsed() < Duration::from_secs(5), "ReqwestClient gives up: {:?}", r.map(|_| ()));

    // Fixed: every read of rmcp's client has a deadline, the idle timeout (5 minutes by
    // default, as a tool may take long to answer); 2 s here.
    let client = OAuthHttpClient::new(oauth).idle_timeout(Duration::from_secs(2));
    let own_limit = Duration::from_secs(5);
    let msg: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).unwrap();
    let t = Instant::now();
    let outcome = rt.block_on(async {
        tokio::time::timeout(own_limit + Duration::from_secs(5), client.post_message(url.as_str().into(), msg, None, None, HashMap::new()))
            .await
    });
    assert!(outcome.is_ok(), "the rmcp POST was still waiting for a response head after {:?} (its idle timeout is 2 s)", t.elapsed());
}
