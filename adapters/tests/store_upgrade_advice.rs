//! Second independent review: following the upgrade warning costs the grant it is about.
//!
//! A person logged in with the previous version (7c48282) through a confidential client
//! (`client_id` + `client_secret`, flow `auto`). On the first start of the new version
//! `store::load_for` moves that grant from the bare server URL to this configuration's key,
//! `…#machine:app` (flow `auto` with credentials is a machine principal), and warns:
//! "Set "flow": "authorization_code" to keep logging in as a user." Doing so changes the
//! principal to `user:app`, hence the store key: the user's live grant stays behind under
//! `#machine:app`, the legacy key is empty now, and the next start needs a browser login. What
//! should happen: the configuration the warning recommends finds the grant it warns about
//! (move it to where that configuration looks, or look for it there).

mod common;
use common::*;
use mcp_oauth_client::blocking::OAuthClient;
use mcp_oauth_client::core::secret::ClientSecret;
use mcp_oauth_client::core::{Flow, Persist};
use mcp_oauth_client::{FileStore, Interaction, MemoryStore, TokenStore};
use mcp_oauth_tests::PreClient;
use std::sync::Arc;

#[test]
fn following_the_upgrade_warning_keeps_the_users_grant() {
    let s = server(|o| {
        o.dcr = false;
        o.clients = vec![PreClient { id: "app".into(), secret: Some("app-secret".into()), jwt_key: None }];
    });
    let mut c = config(&s);
    c.client_id = Some("app".into());
    c.client_secret = Some(ClientSecret::new("app-secret"));
    c.flow = Flow::AuthorizationCode; // what the old `auto` did for this server: a user login
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review2-advice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The old version's entry under the bare server URL (as store_upgrade.rs writes it).
    let (i, _) = following_browser();
    let fresh = OAuthClient::new(c.clone(), Arc::new(MemoryStore::new()), i).unwrap();
    fresh.authorization().unwrap();
    let mut t = fresh.with_authorizer(|a| a.token_set().unwrap().clone());
    (t.grant, t.resource_metadata) = (None, None);
    FileStore::new(&dir).persist(c.server_url.as_str(), &Persist::Tokens(t)).unwrap();
    let logins = s.lock().authorization_requests().len();

    // First start of the new version with the configuration the user has (flow auto): the
    // grant is moved to `#machine:app`, with the warning.
    let mut auto = c.clone();
    auto.flow = Flow::Auto;
    drop(OAuthClient::new(auto.clone(), Arc::new(FileStore::new(&dir)), Interaction::non_interactive()).unwrap());
    // The user follows the warning.
    let upgraded = OAuthClient::new(c.clone(), Arc::new(FileStore::new(&dir)), Interaction::non_interactive()).unwrap();
    let r = upgraded.authorization().map(|_| ());
    let left = FileStore::new(&dir).load(&auto.store_key()).unwrap().tokens.is_some();
    assert!(
        r.is_ok() && s.lock().authorization_requests().len() == logins,
        "with the flow the warning recommends, the user's grant is not found ({r:?}); it stays under {:?}: {left}",
        auto.store_key()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
