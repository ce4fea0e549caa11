//! 401 retry on connect and on call_tool, step-up on 403, the plain authorize-and-retry
//! wrapper, stdio refused, and servers without OAuth unchanged.

mod common;
use common::*;
use mcp_oauth_client::{Error, Interaction, MemoryStore, ServerConfig};
use std::sync::Arc;

fn a_revoked_token_is_refreshed_and_the_call_retried(a: Adapter) {
    let s = server(|_| {});
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    mcp.connect().unwrap();
    s.lock().revoke_access_tokens();
    let r = mcp.call_tool("echo", serde_json::json!({"text": "again"})).unwrap();
    assert_eq!(r["content"][0]["text"], "again");
    let server = s.lock();
    assert!(server.token_requests().iter().any(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")));
    assert_eq!(server.authorization_requests().len(), 1, "refresh, not a new login");
}

fn step_up_on_insufficient_scope(a: Adapter) {
    let s = server(|_| {});
    let (i, log) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    mcp.call_tool("admin-tool", serde_json::json!({})).unwrap();
    assert_eq!(log.lock().unwrap().opened.len(), 2);
    let server = s.lock();
    let second = &server.authorization_requests()[1];
    let scope = &second.iter().find(|(k, _)| k == "scope").unwrap().1;
    assert_eq!(scope, "mcp:read mcp:write mcp:admin");
}

fn oauth_client_send_wraps_any_request(a: Adapter) {
    let s = server(|_| {});
    let (i, _) = following_browser();
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).to_string();
    let req = http::Request::post(s.mcp_url()).header("content-type", "application/json").body(body.into_bytes()).unwrap();
    let resp = a.send(config(&s), Arc::new(MemoryStore::new()), i, req).unwrap();
    assert_eq!(resp.status(), 200);
}

/// Item 14: `send` puts the token only on requests to the MCP server's origin; another origin
/// (another port on the same host here) is refused before anything is sent anywhere.
fn oauth_client_send_refuses_other_origins(a: Adapter) {
    let s = server(|_| {});
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let foreign = format!("http://127.0.0.1:{}/mcp?x=1", other.local_addr().unwrap().port());
    let (i, _) = following_browser();
    let req = http::Request::post(&foreign).body(b"{}".to_vec()).unwrap();
    let e = a.send(config(&s), Arc::new(MemoryStore::new()), i, req).unwrap_err();
    assert!(matches!(&e, Error::ForeignOrigin { url, .. } if !url.contains('?')), "{e}");
    assert!(other.accept().is_err(), "a connection reached the other origin");
    assert!(s.lock().log.is_empty(), "not even the OAuth flow started");
}

fn stdio_with_oauth_is_refused(a: Adapter) {
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({"type": "stdio", "command": "my-server", "oauth": {}})).unwrap();
    let e = a.configured(&cfg, Arc::new(MemoryStore::new()), Interaction::default(), &|_| None).unwrap_err();
    assert!(matches!(e, Error::Config(mcp_oauth_core::ConfigError::OAuthOnStdio(_))), "{e}");
    assert!(e.to_string().contains("stdio"));
}

fn servers_without_oauth_work_unchanged(a: Adapter) {
    let s = server(|o| o.open = true);
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({"type": "streamable_http", "url": s.mcp_url()})).unwrap();
    let mut mcp = a.configured(&cfg, Arc::new(MemoryStore::new()), Interaction::default(), &|_| None).unwrap();
    assert!(!mcp.has_oauth());
    mcp.call_tool("echo", serde_json::json!({"text": "plain"})).unwrap();
    let server = s.lock();
    assert!(server.log.iter().all(|r| r.target == "/mcp"), "no OAuth request for a server without OAuth");
    assert!(server.log.iter().all(|r| r.authorization.is_none()));
}

on_every_adapter!(
    a_revoked_token_is_refreshed_and_the_call_retried,
    step_up_on_insufficient_scope,
    oauth_client_send_wraps_any_request,
    oauth_client_send_refuses_other_origins,
    stdio_with_oauth_is_refused,
    servers_without_oauth_work_unchanged
);
