//! The legacy HTTP+SSE transport (MCP 2024-11-05 servers): the event stream is opened with a
//! token (a 401 on it runs the flow), requests go to the announced endpoint, replies come back
//! on the stream.

mod common;
use common::*;
use mcp_oauth_client::{MemoryStore, ServerConfig};
use std::sync::Arc;

fn legacy_sse_with_oauth_from_config(a: Adapter) {
    let s = server(|o| {
        o.legacy_sse = true;
        o.mcp_path = "/sse".into();
    });
    let (i, log) = following_browser();
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({"type": "sse", "url": s.mcp_url(), "oauth": {}})).unwrap();
    let mut mcp = a.configured(&cfg, Arc::new(MemoryStore::new()), i, &|_| None).unwrap();
    let tools = mcp.list_tools().unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"));
    let r = mcp.call_tool("echo", serde_json::json!({"text": "legacy"})).unwrap();
    assert_eq!(r["content"][0]["text"], "legacy");
    assert_eq!(log.lock().unwrap().opened.len(), 1, "one login");
    let server = s.lock();
    // The stream was first refused (401), then opened with the token; every POST carried it.
    let opens: Vec<_> =
        server.log.iter().filter(|r| r.method == "GET" && r.target == "/sse").map(|r| (r.status, r.authorization.is_some())).collect();
    assert_eq!(opens, [(401, false), (200, true)]);
    let posts: Vec<_> = server.log.iter().filter(|r| r.method == "POST" && r.target == "/sse").collect();
    assert!(
        posts.len() >= 3
            && posts
                .iter()
                .all(|r| r.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer ")) && (r.status == 200 || r.status == 202))
    );
}

fn legacy_sse_without_oauth(a: Adapter) {
    let s = server(|o| {
        o.legacy_sse = true;
        o.open = true;
        o.mcp_path = "/sse".into();
    });
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({"type": "sse", "url": s.mcp_url()})).unwrap();
    let mut mcp = a.configured(&cfg, Arc::new(MemoryStore::new()), mcp_oauth_client::Interaction::non_interactive(), &|_| None).unwrap();
    let r = mcp.call_tool("echo", serde_json::json!({"text": "plain legacy"})).unwrap();
    assert_eq!(r["content"][0]["text"], "plain legacy");
    assert!(s.lock().log.iter().all(|r| !r.target.contains(".well-known")));
}

on_every_adapter!(legacy_sse_with_oauth_from_config, legacy_sse_without_oauth);
