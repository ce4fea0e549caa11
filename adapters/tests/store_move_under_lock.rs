//! Second independent review: the one-time move from the legacy key (`store::load_for`).
//!
//! `load_for` reads the legacy entry *before* it takes the legacy key's lock, and then moves
//! what it read. A process of the previous version (7c48282) that is running next to the
//! upgraded one holds that lock across a whole flow, a refresh included, and saves the rotated
//! refresh token under the legacy key before it lets go. The upgraded process then copies the
//! refresh token it read earlier (spent by that rotation) to its own key and deletes the
//! legacy tokens: the live refresh token is gone from the store, and the next refresh presents
//! the spent one (an authorization server with reuse detection then revokes the whole grant,
//! RFC 9700 §4.14.2). What should happen: read the legacy entry under its lock (or re-read it
//! once the lock is held), so that what is moved is what the store holds.
//!
//! The old process is represented by what it does to the store and the server, as its code at
//! 7c48282 does it (`OAuthClient::authorization`: lock the bare server URL, reload, refresh,
//! persist the rotated tokens under the bare URL, unlock): when the upgraded process asks for
//! the legacy lock, the old process has just finished such a refresh.

mod common;
use common::*;
use mcp_oauth_client::blocking::OAuthClient;
use mcp_oauth_client::core::{Persist, Restored, Timestamp};
use mcp_oauth_client::store::StoreLock;
use mcp_oauth_client::{Interaction, MemoryStore, StoreError, TokenStore};
use mcp_oauth_tests::PreClient;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A store shared with an old-version process that holds the legacy lock while it refreshes.
struct WithOldProcess {
    inner: MemoryStore,
    legacy: String,
    token_endpoint: String,
    /// The old process is mid-refresh (it holds the legacy lock) until someone asks for it.
    busy: AtomicBool,
}

impl WithOldProcess {
    /// What the old process does under its lock: refresh the stored grant, save the rotation.
    fn old_process_finishes_its_refresh(&self) {
        let mut t = self.inner.load(&self.legacy).unwrap().tokens.expect("the old process's grant");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", t.refresh_token.as_ref().unwrap().secret())
            .append_pair("client_id", t.client_id.as_deref().unwrap())
            .append_pair("resource", &t.resource)
            .finish();
        let body = ureq::post(&self.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(form.as_str())
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        t.access_token = serde_json::from_value(v["access_token"].clone()).unwrap();
        t.refresh_token = Some(serde_json::from_value(v["refresh_token"].clone()).unwrap());
        t.expires_at = Some(Timestamp::from_secs(4_000_000_000));
        self.inner.persist(&self.legacy, &Persist::Tokens(t)).unwrap();
    }
}

impl TokenStore for WithOldProcess {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.inner.load(server)
    }

    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.inner.persist(server, p)
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        if server == self.legacy && self.busy.swap(false, Ordering::SeqCst) {
            // We waited for the old process: it saved its rotation and let go.
            self.old_process_finishes_its_refresh();
        }
        self.inner.lock(server)
    }
}

#[test]
fn the_move_from_the_legacy_key_takes_what_the_store_holds_under_the_lock() {
    let s = server(|o| {
        o.dcr = false;
        o.clients = vec![PreClient { id: "app".into(), secret: None, jwt_key: None }];
        o.refresh_reuse_revokes_grant = true;
    });
    let mut c = config(&s);
    c.client_id = Some("app".into());
    // The old version's grant under the bare server URL (as store_upgrade.rs writes it), its
    // access token expired (the old process is refreshing it right now).
    let (i, _) = following_browser();
    let fresh = OAuthClient::new(c.clone(), Arc::new(MemoryStore::new()), i).unwrap();
    fresh.authorization().unwrap();
    let mut t = fresh.with_authorizer(|a| a.token_set().unwrap().clone());
    (t.grant, t.resource_metadata, t.expires_at) = (None, None, Some(Timestamp::from_secs(1)));
    let legacy = c.server_url.to_string();
    let store = Arc::new(WithOldProcess {
        inner: MemoryStore::new(),
        legacy: legacy.clone(),
        token_endpoint: format!("{}/token", s.origin()),
        busy: AtomicBool::new(true),
    });
    store.inner.persist(&legacy, &Persist::Tokens(t)).unwrap();
    let logins = s.lock().authorization_requests().len();

    // The upgraded program starts next to the running old one, with nobody at a browser.
    let upgraded = OAuthClient::new(c.clone(), store.clone(), Interaction::non_interactive()).unwrap();
    let moved = store.inner.load(&c.store_key()).unwrap().tokens.and_then(|t| t.refresh_token).map(|r| r.secret().to_owned());
    let spent = moved.as_deref().and_then(|rt| s.lock().ledger().token(rt).map(|t| t.spent_at.is_some())).unwrap_or(false);
    let left = store.inner.load(&legacy).unwrap().tokens.is_some();
    let r = upgraded.authorization().map(|_| ());
    let refused: Vec<String> =
        s.lock().ledger().presentations.iter().filter(|p| p.refused.is_some()).map(|p| format!("{:?} {:?}", p.what, p.refused)).collect();
    assert!(
        r.is_ok() && !spent && s.lock().authorization_requests().len() == logins,
        "the move took a refresh token the old process had just rotated (spent: {spent}; the legacy tokens were {}), then \
         presented it: {r:?}; refused presentations {refused:?}",
        if left { "kept" } else { "deleted, the live refresh token with them" }
    );
}
