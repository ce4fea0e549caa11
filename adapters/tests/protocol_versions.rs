//! Version negotiation: the stateless 2026-07-28 wire when the server speaks it, the
//! `initialize` handshake when it does not.

mod common;
use common::*;
use mcp_oauth_client::MemoryStore;
use std::sync::Arc;

fn a_2026_server_gets_the_stateless_wire(a: Adapter) {
    let s = server(|o| o.stateless_2026 = true);
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    let r = mcp.call_tool("echo", serde_json::json!({"text": "stateless"})).unwrap();
    assert_eq!(r["content"][0]["text"], "stateless");
    assert_eq!(mcp.protocol_version().as_deref(), Some("2026-07-28"));
    let server = s.lock();
    let mcp_calls: Vec<_> = server.log.iter().filter(|r| r.target == "/mcp").map(|r| r.status).collect();
    // 401 on the bare discover, then discover and tools/call: never initialize (which this
    // server refuses with 400), and every request passed its version and header checks.
    assert_eq!(mcp_calls, [401, 200, 200]);
}

fn an_older_server_gets_initialize(a: Adapter) {
    let s = server(|_| {});
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    mcp.connect().unwrap();
    assert_eq!(mcp.protocol_version().as_deref(), Some("2025-11-25"));
    mcp.list_tools().unwrap();
}

on_every_adapter!(a_2026_server_gets_the_stateless_wire, an_older_server_gets_initialize);
