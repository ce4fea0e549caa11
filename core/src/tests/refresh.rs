//! SPEC §2.M: proactive refresh, rotation, and what happens when refresh fails.

use super::*;
use crate::token::TokenSet;

fn tokens(h: &Harness) -> Vec<TokenSet> {
    h.persisted.iter().filter_map(|p| if let Persist::Tokens(t) = p { Some(t.clone()) } else { None }).collect()
}

fn refreshes(h: &Harness) -> usize {
    h.server.token_requests().iter().filter(|r| param(&r.params, "grant_type") == Some("refresh_token")).count()
}

#[test]
fn refreshes_before_expiry_and_rotates() {
    let mut h = Scenario::new().server(|o| o.token_lifetime = Some(100)).start();
    h.lazy_call("tools/list").unwrap();
    let first = h.auth.token_set().unwrap().clone();
    assert_eq!(first.expires_at, Some(h.now.saturating_add(Duration::from_secs(100))));
    // Three quarters into its life (the skew of a 100 s token is 25 s): refresh before using it.
    h.advance(Duration::from_secs(75));
    let auth = h.token_wanted().unwrap();
    assert_eq!(refreshes(&h), 1);
    let form = h.last_form("/token");
    assert_eq!(param(&form, "resource"), Some("https://mcp.example.com/mcp"));
    assert_eq!(param(&form, "refresh_token"), Some(first.refresh_token.as_ref().unwrap().secret()));
    let second = h.auth.token_set().unwrap().clone();
    assert_ne!(second.access_token.secret(), first.access_token.secret());
    assert_ne!(second.refresh_token.as_ref().unwrap().secret(), first.refresh_token.as_ref().unwrap().secret(), "rotated");
    assert_eq!(auth.secret(), format!("Bearer {}", second.access_token.secret()));
    // Persisted before it was handed out.
    assert_eq!(tokens(&h).last().unwrap().access_token.secret(), second.access_token.secret());
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
}

#[test]
fn without_rotation_the_old_refresh_token_is_kept() {
    let mut h = Scenario::new()
        .server(|o| {
            o.token_lifetime = Some(100);
            o.rotate_refresh = false;
        })
        .start();
    h.lazy_call("tools/list").unwrap();
    let rt = h.auth.token_set().unwrap().refresh_token.clone().unwrap();
    h.advance(Duration::from_secs(80));
    h.token_wanted().unwrap();
    assert_eq!(refreshes(&h), 1);
    assert_eq!(h.auth.token_set().unwrap().refresh_token.as_ref().unwrap().secret(), rt.secret());
}

#[test]
fn invalid_grant_leads_to_one_new_authorization() {
    let mut h = Scenario::new().server(|o| o.token_lifetime = Some(100)).start();
    h.lazy_call("tools/list").unwrap();
    h.server.options.refresh_invalid_grant = true;
    h.persisted.clear();
    h.advance(Duration::from_secs(200));
    h.token_wanted().unwrap();
    assert_eq!(refreshes(&h), 1, "refresh is tried once, never in a loop");
    assert!(matches!(h.persisted.first(), Some(Persist::ForgetTokens { .. })));
    assert_eq!(h.server.authorization_requests().len(), 2);
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
}

#[test]
fn no_refresh_token_means_authorization() {
    let mut h = Scenario::new()
        .server(|o| {
            o.token_lifetime = Some(100);
            o.refresh_tokens = false;
        })
        .start();
    h.lazy_call("tools/list").unwrap();
    assert!(h.auth.token_set().unwrap().refresh_token.is_none());
    h.advance(Duration::from_secs(200));
    h.token_wanted().unwrap();
    assert_eq!(refreshes(&h), 0);
    assert_eq!(h.server.authorization_requests().len(), 2);
}

#[test]
fn invalid_token_challenge_refreshes_with_the_metadata_in_use() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.revoke_access_tokens();
    let before = h.sent.len();
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    let t: Vec<String> = h.targets()[before..].to_vec();
    assert_eq!(t, ["/token"]);
    assert_eq!(refreshes(&h), 1);
    assert_eq!(h.server.authorization_requests().len(), 1);
}

#[test]
fn unknown_lifetime_is_used_until_rejected() {
    let mut h = Scenario::new().server(|o| o.token_lifetime = None).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(h.auth.token_set().unwrap().expires_at, None);
    h.advance(Duration::from_secs(100_000));
    let n = h.sent.len();
    h.token_wanted().unwrap();
    assert_eq!(h.sent.len(), n, "no request for a token without known expiry");
}
