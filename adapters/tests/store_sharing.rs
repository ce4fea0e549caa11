//! Independent review of item 17 (stored tokens and who obtained them): the store key is the
//! server URL plus the *configured* identity, but a client identified by a Client ID Metadata
//! Document URL, or registered on the fly, has no principal: every such configuration of one
//! server shares one entry per issuer. Two applications on one machine that both use the
//! default `FileStore` directory (as the README suggests) and their own CIMD URL (the
//! registration the spec prefers) overwrite each other's grant at every login: each start of
//! one asks the user to log in again in the other, although its refresh token is alive at the
//! authorization server.

mod common;
use common::*;
use mcp_oauth_client::blocking::McpClient;
use mcp_oauth_client::{FileStore, Interaction};
use std::sync::Arc;

fn app(s: &mcp_oauth_tests::tcp::TcpTestServer, cimd: Option<&str>, dir: &std::path::Path, i: Interaction) -> McpClient {
    let mut c = config(s);
    c.client_metadata_url = cimd.map(|u| u.parse().unwrap());
    McpClient::with_oauth(c, Arc::new(FileStore::new(dir)), i).unwrap()
}

/// Application `first` logs in, then application `second` on the same store and server; then
/// `first` starts again with nobody at a browser. It must get on with its own grant, and only
/// with tokens issued to its own client.
fn two_applications_keep_their_own_grants(first: Option<&str>, second: Option<&str>) {
    let s = server(|o| o.cimd = true);
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-share-{}-{}-{}", first.is_some(), second.is_some(), std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (i, _) = following_browser();
    let mut a = app(&s, first, &dir, i);
    a.list_tools().unwrap();
    let a_client = a.oauth().unwrap().with_authorizer(|x| x.token_set().unwrap().client_id.clone());
    let (i, _) = following_browser();
    app(&s, second, &dir, i).list_tools().unwrap();
    let logins = s.lock().authorization_requests().len();
    let name = |x: Option<&str>| x.unwrap_or("(dynamic registration)").to_owned();
    assert_eq!(logins, 2, "application {} did not log in: it took the tokens of application {}", name(second), name(first));
    let mut again = app(&s, first, &dir, Interaction::non_interactive());
    let r = again.list_tools();
    assert!(
        r.is_ok() && s.lock().authorization_requests().len() == logins,
        "application {} lost its grant to application {}: {:?}",
        name(first),
        name(second),
        r.map(|_| ())
    );
    let used = again.oauth().unwrap().with_authorizer(|x| x.token_set().unwrap().client_id.clone());
    assert_eq!(used, a_client, "application {} now uses tokens issued to another client", name(first));
}

#[test]
fn two_cimd_applications_keep_their_own_grants() {
    two_applications_keep_their_own_grants(Some("https://app-a.example/client.json"), Some("https://app-b.example/client.json"));
}

#[test]
fn a_dcr_application_keeps_its_grant_next_to_a_cimd_one() {
    two_applications_keep_their_own_grants(None, Some("https://app-b.example/client.json"));
}

/// Item 17 says restored tokens of another client are never used: a CIMD application takes
/// the tokens (and the registration) of a dynamic-registration application it finds in the
/// store, and refreshes them as that client.
#[test]
fn a_cimd_application_does_not_take_over_a_dcr_applications_tokens() {
    two_applications_keep_their_own_grants(Some("https://app-a.example/client.json"), None);
}
