//! Review: `OAuthHttpClient::from_config` promises "the configured headers on every request" and,
//! for a server without OAuth, "a plain client (nothing attached, nothing retried)". A server
//! that is protected by a static API key in `Authorization` (the common non-OAuth setup) must
//! get that header. The `authorized` loop removes `Authorization` (and `DPoP`) from the headers
//! whenever it has no token to attach, so it is stripped on every request.
#![cfg(feature = "rmcp")]

mod common;
use common::*;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::{Interaction, MemoryStore, ServerConfig, Transport};
use rmcp::ServiceExt;
use std::collections::BTreeMap;
use std::sync::Arc;

#[test]
fn a_configured_authorization_header_reaches_a_server_without_oauth() {
    let s = server(|o| o.open = true);
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    headers.insert("Authorization".into(), "Bearer static-api-key".into());
    let cfg =
        ServerConfig { transport: Transport::StreamableHttp { url: s.mcp_url(), headers: headers.into_iter().collect() }, oauth: None };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client =
            OAuthHttpClient::from_config(&cfg, Arc::new(MemoryStore::new()), Interaction::non_interactive(), &|_| None).await.unwrap();
        let service = ().serve(client.into_transport()).await.expect("initialize");
        let _ = service.list_all_tools().await;
        service.cancel().await.unwrap();
    });
    let server = s.lock();
    let mcp: Vec<_> = server.log.iter().filter(|r| r.target.starts_with("/mcp")).collect();
    assert!(!mcp.is_empty());
    assert!(
        mcp.iter().all(|r| r.authorization.as_deref() == Some("Bearer static-api-key")),
        "the configured Authorization header was not sent: {mcp:?}"
    );
}
