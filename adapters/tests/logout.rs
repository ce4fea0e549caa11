//! Logout over real sockets on every adapter (issue 15): RFC 7009 revocation at the test
//! server's `revocation_endpoint` (the refresh token first, then the access token), then the
//! store forgets the tokens and the registration; a second client of the same store (another
//! process) logs in again, and the revoked tokens no longer work at the server.

mod common;
use common::*;
use mcp_oauth_client::core::Revocation;
use mcp_oauth_client::{FileStore, MemoryStore, TokenStore};
use std::sync::Arc;

fn revocations(s: &mcp_oauth_tests::tcp::TcpTestServer) -> Vec<Vec<(String, String)>> {
    s.lock().log.iter().filter(|r| r.target == "/revoke").map(|r| r.params.clone()).collect()
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn logout_revokes_and_forgets(a: Adapter, store: Arc<dyn TokenStore>) {
    let s = server(|o| o.revocation = true);
    let (i, log) = following_browser();
    let key = config(&s).store_key();
    let mcp = {
        let mut mcp = a.with_oauth(config(&s), store.clone(), i.clone()).unwrap();
        mcp.list_tools().unwrap();
        mcp
    };
    let held = store.load(&key).unwrap().tokens.unwrap();
    let report = mcp.logout().unwrap();
    assert!(report.all_revoked(), "{report:?}");
    assert_eq!(report.refresh_token, Revocation::Revoked);
    let sent = revocations(&s);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(param(&sent[0], "token"), held.refresh_token.as_ref().map(|t| t.secret()));
    assert_eq!(param(&sent[1], "token"), Some(held.access_token.secret()));
    // The store is empty, and the server refuses the old access token.
    assert!(store.describe(&key).unwrap().is_empty(), "{:?}", store.describe(&key));
    let (status, _) = post_with(&s.mcp_url(), &format!("Bearer {}", held.access_token.secret()));
    assert_eq!(status, 401);
    // A new client of the same store logs in again, registering anew.
    let registrations = s.lock().count("/register");
    a.with_oauth(config(&s), store.clone(), i).unwrap().list_tools().unwrap();
    assert_eq!(s.lock().count("/register"), registrations + 1);
    assert_eq!(log.lock().unwrap().opened.len(), 2, "a second browser login");
}

/// A POST of `tools/list` with this `Authorization`: the status and body.
fn post_with(url: &str, authorization: &str) -> (u16, String) {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let resp = ureq::post(url)
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .config()
        .http_status_as_error(false)
        .build()
        .send(body);
    match resp {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}

fn memory_store_logout(a: Adapter) {
    logout_revokes_and_forgets(a, Arc::new(MemoryStore::new()));
}

fn file_store_logout(a: Adapter) {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-logout-{}-{}", std::process::id(), a.name()));
    let _ = std::fs::remove_dir_all(&dir);
    logout_revokes_and_forgets(a, Arc::new(FileStore::new(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A logout in one client while another client of the same store holds the tokens in memory:
/// the other one's next request finds the store empty and its revoked token refused, and logs in
/// again instead of failing.
fn another_client_logs_in_again_after_a_logout(a: Adapter) {
    let s = server(|o| o.revocation = true);
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (i, log) = following_browser();
    let mut first = a.with_oauth(config(&s), store.clone(), i.clone()).unwrap();
    first.list_tools().unwrap();
    let other = a.with_oauth(config(&s), store.clone(), i).unwrap();
    assert!(other.logout().unwrap().all_revoked());
    assert!(!first.list_tools().unwrap().is_empty());
    assert_eq!(log.lock().unwrap().opened.len(), 2, "the revoked token was replaced by a new login");
}

/// An authorization server without revocation: nothing is sent, everything is forgotten, and the
/// report says the tokens could not be revoked.
fn without_revocation_the_report_says_so(a: Adapter) {
    let s = server(|_| {});
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), store.clone(), i).unwrap();
    mcp.list_tools().unwrap();
    let report = mcp.logout().unwrap();
    assert_eq!(report.access_token, Revocation::NoEndpoint);
    assert!(!report.all_revoked());
    assert!(revocations(&s).is_empty());
    assert!(store.describe(&config(&s).store_key()).unwrap().is_empty());
}

on_every_adapter!(
    memory_store_logout,
    file_store_logout,
    another_client_logs_in_again_after_a_logout,
    without_revocation_the_report_says_so
);
