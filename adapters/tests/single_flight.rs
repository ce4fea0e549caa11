//! Single flight across processes: several processes share one FileStore holding an expired
//! token; exactly one refresh reaches the server, every process ends up with the new token, and
//! the rotated refresh token is never lost.

mod common;
use common::*;
use mcp_oauth_client::{FileStore, Interaction, TokenStore};
use mcp_oauth_core::{Persist, Timestamp};
use std::sync::Arc;

/// Run as a child (MCP_OAUTH_SF_CHILD=dir|url): one MCP call, non-interactively, through the
/// shared store. Run directly: a store lock can be taken and released.
#[test]
fn single_flight_child_entry() {
    match std::env::var("MCP_OAUTH_SF_CHILD") {
        Ok(spec) => {
            let (dir, url) = spec.split_once('|').unwrap();
            let a = Adapter::from_name(&std::env::var("MCP_OAUTH_ADAPTER").unwrap_or_default());
            let config = mcp_oauth_client::Config::new(url.parse().unwrap());
            let mut mcp = a.with_oauth(config, Arc::new(FileStore::new(dir)), Interaction::non_interactive()).unwrap();
            mcp.call_tool("echo", serde_json::json!({"text": "child"})).expect("the child got a token");
        }
        Err(_) => {
            let dir = std::env::temp_dir().join(format!("mcp-oauth-sf-lock-{}", std::process::id()));
            let store = FileStore::new(&dir);
            drop(store.lock("https://x.example.com/mcp").unwrap());
            drop(store.lock("https://x.example.com/mcp").unwrap());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn expire(store: &FileStore, key: &str) {
    let mut t = store.load(key).unwrap().tokens.unwrap();
    t.expires_at = Some(Timestamp::from_secs(1));
    store.persist(key, &Persist::Tokens(t)).unwrap();
}

fn run_children(a: Adapter, n: usize, dir: &std::path::Path, url: &str) {
    let children: Vec<_> = (0..n)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "single_flight_child_entry", "--test-threads=1"])
                .env("MCP_OAUTH_ADAPTER", a.name())
                .env("MCP_OAUTH_SF_CHILD", format!("{}|{}", dir.display(), url))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child failed");
    }
}

/// Two to eight processes: one refresh each time, and the rotated refresh token that is stored
/// is the one the server still honours (the next round refreshes with it, without a login).
fn processes_sharing_an_expired_token_refresh_once(a: Adapter) {
    let s = server(|_| {});
    let dir = std::env::temp_dir().join(format!("mcp-oauth-sf-{}-{}", std::process::id(), a.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::new(&dir);
    let (i, _) = following_browser();
    a.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    for (round, n) in [2, 5, 8].into_iter().enumerate() {
        expire(&store, &key);
        run_children(a, n, &dir, &s.mcp_url());
        let server = s.lock();
        let refreshes =
            server.token_requests().iter().filter(|r| r.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")).count();
        assert_eq!(refreshes, round + 1, "exactly one refresh for {n} processes");
        assert_eq!(server.authorization_requests().len(), 1, "nobody logged in again");
        assert!(server.token_requests().iter().all(|r| r.status == 200), "a refresh was refused (a stale refresh token was used)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

on_every_adapter!(processes_sharing_an_expired_token_refresh_once);
