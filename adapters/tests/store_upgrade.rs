//! Independent review: stores written by the previous version (7c48282) after the upgrade.
//!
//! The old version keyed a server's entries by `config.server_url.to_string()`; the new one by
//! `Config::store_key()`, which appends `#user:<id>` / `#machine:<id>` when a client id is
//! configured. The entry format itself is unchanged (the new `TokenSet` fields are optional), so
//! an old entry is written here with the new `FileStore` at the old key, exactly as the old code
//! wrote it (the reviewer also checked the same with the real old binary).

mod common;
use common::*;
use mcp_oauth_client::blocking::OAuthClient;
use mcp_oauth_client::core::secret::ClientSecret;
use mcp_oauth_client::core::{Flow, Persist};
use mcp_oauth_client::{FileStore, Interaction, MemoryStore, TokenStore};
use mcp_oauth_tests::PreClient;
use std::sync::Arc;

fn store_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mcp-oauth-review-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A user's live grant as the old version left it: obtained through the pre-registered client
/// `app`, stored under the bare server URL, without the fields added since.
fn old_grant(s: &mcp_oauth_tests::tcp::TcpTestServer, config: &mcp_oauth_client::Config, dir: &std::path::Path) {
    let (i, _) = following_browser();
    let fresh = OAuthClient::new(config.clone(), Arc::new(MemoryStore::new()), i).unwrap();
    fresh.authorization().unwrap();
    let mut t = fresh.with_authorizer(|a| a.token_set().unwrap().clone());
    t.grant = None;
    t.resource_metadata = None;
    assert!(t.token_endpoint.is_some() && t.client_id.as_deref() == Some("app"));
    FileStore::new(dir).persist(config.server_url.as_str(), &Persist::Tokens(t)).unwrap();
    let _ = s;
}

/// U1. A person who logs in through a pre-registered public client (`client_id` only). After
/// the upgrade the stored grant is not found (another key): the next start asks for a browser
/// login although the refresh token is alive, and the old entry (with its live refresh token)
/// stays on disk for ever. Expected: the grant keeps working (read the old key, or migrate it).
#[test]
fn u1_a_pre_registered_users_grant_survives_the_upgrade() {
    let s = server(|o| {
        o.dcr = false;
        o.clients = vec![PreClient { id: "app".into(), secret: None, jwt_key: None }];
    });
    let mut c = config(&s);
    c.client_id = Some("app".into());
    let dir = store_dir("u1");
    old_grant(&s, &c, &dir);
    let logins_before = s.lock().authorization_requests().len();
    // The upgraded program: same configuration, same store, no one at a browser this time.
    let upgraded = OAuthClient::new(c.clone(), Arc::new(FileStore::new(&dir)), Interaction::non_interactive()).unwrap();
    let r = upgraded.authorization();
    assert!(
        r.is_ok() && s.lock().authorization_requests().len() == logins_before,
        "the stored grant was not used after the upgrade: {:?} (store key now {:?}, was {:?})",
        r.map(|_| ()),
        c.store_key(),
        c.server_url.to_string()
    );
}

/// U2. A confidential client (`client_id` + `client_secret`, flow `auto`) through which a
/// person logged in with the old version (the old `auto` chose the code flow whenever the
/// server offered it). After the upgrade `auto` means client credentials (item 18) and the key
/// changed: the program silently switches from acting as the user to acting as the client
/// itself, with whatever the client may do, and the user's live grant is abandoned on disk.
/// Expected: the user's grant keeps being used, or a clear error (an identity change is not
/// something to do silently).
#[test]
fn u2_an_upgrade_does_not_silently_switch_from_the_user_to_the_machine() {
    let s = server(|o| {
        o.dcr = false;
        o.clients = vec![PreClient { id: "app".into(), secret: Some("app-secret".into()), jwt_key: None }];
    });
    let mut old_config = config(&s);
    old_config.client_id = Some("app".into());
    old_config.client_secret = Some(ClientSecret::new("app-secret"));
    old_config.flow = Flow::AuthorizationCode; // what the old `auto` did for this server
    let dir = store_dir("u2");
    old_grant(&s, &old_config, &dir);
    let mut c = old_config.clone();
    c.flow = Flow::Auto; // the configuration the user actually has
    let upgraded = OAuthClient::new(c, Arc::new(FileStore::new(&dir)), Interaction::non_interactive()).unwrap();
    let r = upgraded.authorization().map(|_| ());
    let grant = upgraded.with_authorizer(|a| a.token_set().and_then(|t| t.grant));
    let cc = s.lock().token_requests().iter().any(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == "client_credentials"));
    assert!(!cc, "after the upgrade the program acts as the client, not the user: {r:?}, grant {grant:?}");
}
