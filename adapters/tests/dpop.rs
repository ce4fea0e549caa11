//! DPoP over real sockets: bound tokens, fresh proofs per request, both servers' nonces.

mod common;
use common::*;
use mcp_oauth_client::MemoryStore;
use std::sync::Arc;

fn dpop_bound_tokens_with_both_nonces(a: Adapter) {
    let s = server(|o| {
        o.dpop = true;
        o.dpop_as_nonce = Some("as-n".into());
        o.dpop_rs_nonce = Some("rs-n".into());
    });
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    for _ in 0..3 {
        mcp.call_tool("echo", serde_json::json!({"text": "bound"})).unwrap();
    }
    let server = s.lock();
    assert!(server.log.iter().filter(|r| r.target == "/mcp" && r.status == 200).all(|r| r
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("DPoP ")));
    let tokens: Vec<u16> = server.token_requests().iter().map(|r| r.status).collect();
    assert_eq!(tokens, [400, 200]);
    assert_eq!(server.authorization_requests().len(), 1);
}

on_every_adapter!(dpop_bound_tokens_with_both_nonces);
