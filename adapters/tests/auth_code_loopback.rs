//! The interactive flow over real sockets: loopback listener on a random port, browser,
//! callback page, token, tool call; the listener is gone afterwards.

mod common;
use common::*;
use mcp_oauth_client::MemoryStore;
use std::sync::Arc;

fn full_flow_on_a_random_port(a: Adapter) {
    let s = server(|_| {});
    let (interaction, log) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), interaction).unwrap();
    let tools = mcp.list_tools().unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"));
    let r = mcp.call_tool("echo", serde_json::json!({"text": "over tcp"})).unwrap();
    assert_eq!(r["content"][0]["text"], "over tcp");

    let log = log.lock().unwrap().clone();
    assert_eq!(log.opened.len(), 1);
    let (status, page) = &log.pages[0];
    assert_eq!(*status, 200);
    assert!(page.contains("You are signed in"), "{page}");
    // Port 0 became a real port, registered and used consistently.
    let server = s.lock();
    let a = &server.authorization_requests()[0];
    let redirect = a.iter().find(|(k, _)| k == "redirect_uri").unwrap().1.clone();
    let port = url::Url::parse(&redirect).unwrap().port().unwrap();
    assert_ne!(port, 0);
    // The listener freed its port.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port is free again");
}

fn a_fixed_port_is_honoured(a: Adapter) {
    let s = server(|_| {});
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = config(&s);
    c.redirect_uri = format!("http://127.0.0.1:{port}/cb").parse().unwrap();
    let (interaction, log) = following_browser();
    let mut mcp = a.with_oauth(c, Arc::new(MemoryStore::new()), interaction).unwrap();
    mcp.list_tools().unwrap();
    let opened = log.lock().unwrap().opened[0].clone();
    assert!(opened.contains(&format!("127.0.0.1%3A{port}%2Fcb")), "{opened}");
}

fn eager_connect_authorizes_before_the_first_request(a: Adapter) {
    let s = server(|_| {});
    let (interaction, _) = following_browser();
    let mut mcp =
        a.with_oauth(config(&s), Arc::new(MemoryStore::new()), interaction).unwrap().mode(mcp_oauth_client::blocking::ConnectMode::Eager);
    mcp.connect().unwrap();
    let server = s.lock();
    // No unauthenticated MCP request was ever made: the first /mcp call carried a token.
    let first_mcp = server.log.iter().find(|r| r.target == "/mcp").unwrap();
    assert!(first_mcp.authorization.as_deref().unwrap_or("").starts_with("Bearer "));
    assert_eq!(first_mcp.status, 200);
}

fn lazy_connect_sends_bare_then_authorizes_on_401(a: Adapter) {
    let s = server(|_| {});
    let (interaction, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), interaction).unwrap();
    mcp.connect().unwrap();
    let server = s.lock();
    let first_mcp = server.log.iter().find(|r| r.target == "/mcp").unwrap();
    assert!(first_mcp.authorization.is_none());
    assert_eq!(first_mcp.status, 401);
}

fn sse_framed_replies_and_sessions(a: Adapter) {
    let s = server(|o| {
        o.sse_responses = true;
        o.sessions = true;
    });
    let (interaction, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), interaction).unwrap();
    let r = mcp.call_tool("echo", serde_json::json!({"text": "sse"})).unwrap();
    assert_eq!(r["content"][0]["text"], "sse");
    assert!(mcp.session_id().unwrap().starts_with("sess-"));
}

on_every_adapter!(
    full_flow_on_a_random_port,
    a_fixed_port_is_honoured,
    eager_connect_authorizes_before_the_first_request,
    lazy_connect_sends_bare_then_authorizes_on_401,
    sse_framed_replies_and_sessions
);
