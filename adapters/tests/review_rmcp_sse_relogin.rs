//! Review: rmcp's SSE reconnect loop (`StreamableHttpClientReconnect::classify_reconnect_error`)
//! terminates on `AuthRequired`/`InsufficientScope` ("repeating GET cannot ... repair the
//! credentials") and retries everything else, forever by default (`ExponentialBackoff::default()`
//! has `max_times: None`). `OAuthHttpClient::get_stream` turns a 401 it could not answer (the
//! login failed: denied, timed out, no browser) into `StreamableHttpError::Client(OAuth(..))`,
//! which rmcp retries: every reconnection of the background GET stream starts a new
//! interactive login (a browser window), for as long as the process lives.
//!
//! Reproduced with two `get_stream` calls (what two turns of rmcp's reconnect loop do) against
//! the test server that denies every authorization.
#![cfg(feature = "rmcp")]

mod common;
use common::*;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::tokio::OAuthClient;
use mcp_oauth_client::MemoryStore;
use rmcp::transport::streamable_http_client::{StreamableHttpClient, StreamableHttpError};
use std::collections::HashMap;
use std::sync::Arc;

#[test]
fn a_failed_login_on_a_get_stream_is_reported_as_terminal_to_rmcp() {
    let s = server(|o| o.deny = true);
    let (i, log) = following_browser();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let kinds = rt.block_on(async {
        let oauth = OAuthClient::new(config(&s), Arc::new(MemoryStore::new()), i).await.unwrap();
        let client = OAuthHttpClient::new(oauth);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let r = client.get_stream(s.mcp_url().into(), Some("sess".into()), Some("ev-1".into()), None, HashMap::new()).await;
            kinds.push(match r {
                Ok(_) => "ok".to_owned(),
                Err(StreamableHttpError::AuthRequired(_)) => "AuthRequired (rmcp: terminate)".to_owned(),
                Err(StreamableHttpError::InsufficientScope(_)) => "InsufficientScope (rmcp: terminate)".to_owned(),
                Err(e) => format!("other (rmcp: retry): {e}"),
            });
        }
        kinds
    });
    let opened = log.lock().unwrap().opened.len();
    assert!(
        kinds.iter().all(|k| k.contains("terminate")),
        "{opened} browser windows opened by two GET-stream reconnections; rmcp sees: {kinds:#?}"
    );
}
