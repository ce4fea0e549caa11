//! Review: an `OAuthHttpClient` transport error must not carry the MCP server URL's query
//! (an API key, as the crate treats it everywhere else: `shown_url`) into Debug or into the
//! `source()` chain. `HttpError`'s Display strips it; its derived Debug and its `source()`
//! (the raw `reqwest::Error`, whose Display says "for url (...)") do not.
//!
//! Only loopback: the server URL names a port on 127.0.0.1 that nothing listens on.
#![cfg(feature = "rmcp")]

mod common;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::tokio::OAuthClient;
use mcp_oauth_client::{Config, Interaction, MemoryStore};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{StreamableHttpClient, StreamableHttpError};
use std::collections::HashMap;
use std::sync::Arc;

const SECRET: &str = "sk_live_SECRET123";

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_transport_error_keeps_the_url_query_out_of_debug_and_the_source_chain() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/mcp?api_key={SECRET}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(async {
        let oauth = OAuthClient::new(Config::new(url.parse().unwrap()), Arc::new(MemoryStore::new()), Interaction::non_interactive())
            .await
            .unwrap();
        let client = OAuthHttpClient::new(oauth);
        let msg: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).unwrap();
        client.post_message(url.as_str().into(), msg, None, None, HashMap::new()).await.expect_err("nothing listens")
    });
    let StreamableHttpError::Client(inner) = &err else { panic!("not a client error: {err}") };
    let display = err.to_string();
    assert!(!display.contains(SECRET), "Display leaks: {display}");
    let mut leaks = Vec::new();
    let debug = format!("{err:?}");
    if debug.contains(SECRET) {
        leaks.push(format!("Debug of the rmcp error: {debug}"));
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(inner);
    while let Some(s) = cur {
        if s.to_string().contains(SECRET) {
            leaks.push(format!("source() Display: {s}"));
        }
        cur = s.source();
    }
    assert!(leaks.is_empty(), "the URL's query leaks:\n{}", leaks.join("\n"));
}
