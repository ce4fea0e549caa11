//! The life of a credential after the first login: restarts, expiry, short lifetimes, transient
//! failures at the authorization server, revocation. Each test names the review item it guards.

use super::*;
use crate::http::{TransportFailure, TransportFailureKind};
use crate::token::TokenSet;

fn refreshes(h: &Harness) -> usize {
    h.server.token_requests().iter().filter(|r| param(&r.params, "grant_type") == Some("refresh_token")).count()
}

fn logins(h: &Harness) -> usize {
    h.server.authorization_requests().len()
}

fn forgot_tokens(h: &Harness) -> bool {
    h.persisted.iter().any(|p| matches!(p, Persist::ForgetTokens { .. }))
}

fn restored(h: &Harness) -> Restored {
    h.stored()
}

/// A new process on the same store and the same server.
fn restart(h: Harness) -> Harness {
    let mut h2 = Scenario::new().restored(restored(&h)).on(h.server).start();
    h2.now = h.now;
    h2
}

fn call(h: &mut Harness) -> Result<u16, Error> {
    h.mcp_call("tools/list", serde_json::json!({})).map(|r| r.status().as_u16())
}

/// Item 1: after a restart the refresh sends the `resource` the grant was obtained with, even
/// when the protected resource metadata names another value than the canonical server URL.
#[test]
fn item1_refresh_after_restart_sends_the_resource_of_the_grant() {
    for resource in [ORIGIN.to_owned(), format!("{ORIGIN}/mcp/")] {
        let mut h = Scenario::new()
            .server(|o| {
                o.prm_in_header = false;
                o.prm = mcp_oauth_tests::PrmLocation::Root;
                o.prm_resource = Some(resource.clone());
            })
            .start();
        h.lazy_call("tools/list").unwrap();
        let mut h2 = restart(h);
        h2.advance(Duration::from_secs(4000));
        assert_eq!(call(&mut h2).unwrap(), 200);
        let form = h2.last_form("/token");
        assert_eq!(param(&form, "grant_type"), Some("refresh_token"));
        assert_eq!(param(&form, "resource"), Some(resource.as_str()), "the refresh names the grant's resource");
        assert_eq!(logins(&h2), 1, "no second login after a restart ({resource})");
        assert!(!forgot_tokens(&h2));
    }
}

/// Item 2: a token that lives 60 s or less is used for most of its life, not refreshed on every
/// request; and a token just obtained is used for the request that asked for it.
#[test]
fn item2_short_lived_tokens_are_used_until_close_to_expiry() {
    for lifetime in [2u64, 30, 60, 100] {
        let mut h = Scenario::new().server(|o| o.token_lifetime = Some(lifetime)).start();
        h.lazy_call("tools/list").unwrap();
        let obtained = h.now;
        // Ten requests spread over the first half of the lifetime: no refresh.
        for _ in 0..10 {
            h.advance(Duration::from_millis(lifetime * 1000 / 20));
            assert_eq!(call(&mut h).unwrap(), 200);
        }
        assert_eq!(refreshes(&h), 0, "{lifetime} s tokens refreshed in their first half");
        // Close to expiry: one refresh, and the new token serves the request that asked for it.
        h.now = obtained.saturating_add(Duration::from_millis(lifetime * 1000 - lifetime * 1000 / 10));
        let a = h.token_wanted().unwrap();
        assert_eq!(refreshes(&h), 1, "{lifetime} s");
        assert_eq!(a.access_token().secret(), h.auth.token_set().unwrap().access_token.secret());
        assert_eq!(call(&mut h).unwrap(), 200);
        assert_eq!(refreshes(&h), 1, "the refreshed token is fresh ({lifetime} s)");
    }
}

/// Item 2: the skew is the smaller of the configured one and a quarter of the lifetime.
#[test]
fn item2_the_refresh_skew_scales_with_the_lifetime() {
    let t = |lifetime: u64| TokenSet {
        access_token: crate::secret::AccessToken::new("a"),
        token_type: "Bearer".into(),
        refresh_token: None,
        expires_at: Some(Timestamp::from_secs(1000 + lifetime)),
        scope: None,
        issuer: "https://as".into(),
        resource: "https://rs".into(),
        token_endpoint: None,
        client_id: None,
        obtained_at: Timestamp::from_secs(1000),
        dpop_key: None,
        resource_metadata: None,
        grant: None,
    };
    let skew = Duration::from_secs(60);
    // 2 s: fresh for 1.5 s.
    assert!(t(2).is_fresh(Timestamp(1_001_499), skew));
    assert!(!t(2).is_fresh(Timestamp(1_001_500), skew));
    // 3600 s: the configured 60 s.
    assert!(t(3600).is_fresh(Timestamp::from_secs(1000 + 3539), skew));
    assert!(!t(3600).is_fresh(Timestamp::from_secs(1000 + 3540), skew));
    // A token that expires on arrival is never fresh (but is still handed out once).
    assert!(!t(0).is_fresh(Timestamp::from_secs(1000), skew));
}

/// Item 3: after a proactive refresh, a 401 on the refreshed token leads to a new authorization
/// (after re-discovery), not to a hard failure.
#[test]
fn item3_a_401_after_a_proactive_refresh_authorizes_again() {
    let mut h = Scenario::new().server(|o| o.token_lifetime = Some(100)).start();
    h.lazy_call("tools/list").unwrap();
    h.advance(Duration::from_secs(80));
    h.token_wanted().unwrap(); // proactive refresh
    assert_eq!(refreshes(&h), 1);
    // The grant is revoked at the AS: access and refresh tokens die.
    h.server.revoke_access_tokens();
    h.server.options.refresh_invalid_grant = true;
    let www = vec![http::HeaderValue::from_static(r#"Bearer error="invalid_token""#)];
    let now = h.now;
    let a = h.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None });
    assert!(a.is_ok(), "{a:?}");
    assert_eq!(logins(&h), 2);
    assert_eq!(call(&mut h).unwrap(), 200);
}

fn outage(status: u16, body: &'static str) -> Intercept {
    Box::new(move |req: &OutgoingRequest| is_grant(req, "refresh_token").then(|| Ok(json(status, body))))
}

/// Item 4: a transient failure at the token endpoint during a refresh keeps the grant: no
/// tokens forgotten, no login; the request fails with a retryable error (or, while the access
/// token is still valid, uses it); the next request refreshes with the same refresh token.
#[test]
fn item4_a_transient_refresh_failure_keeps_the_grant() {
    let timeout = || Err(TransportFailure { kind: TransportFailureKind::Timeout, message: "timed out".into() });
    let faults: Vec<(&str, Intercept)> = vec![
        ("503 temporarily_unavailable", outage(503, r#"{"error":"temporarily_unavailable"}"#)),
        ("500 server_error", outage(500, r#"{"error":"server_error","error_description":"db down"}"#)),
        ("200 server_error", outage(200, r#"{"error":"server_error"}"#)),
        ("502 html", Box::new(|r: &OutgoingRequest| is_grant(r, "refresh_token").then(|| Ok(json(502, "<html>bad gateway</html>"))))),
        ("timeout", Box::new(move |r: &OutgoingRequest| is_grant(r, "refresh_token").then(timeout))),
    ];
    for (name, fault) in faults {
        let mut h = Scenario::new().server(|o| o.token_lifetime = Some(100)).start();
        h.lazy_call("tools/list").unwrap();
        let rt = h.auth.token_set().unwrap().refresh_token.clone().unwrap();
        h.intercept = Some(fault);
        // Proactive refresh while the access token is still valid: the old token serves.
        h.advance(Duration::from_secs(80));
        assert_eq!(call(&mut h).unwrap(), 200, "{name}: the still valid token is used");
        // Expired: the request fails with a retryable error.
        h.advance(Duration::from_secs(30));
        let e = call(&mut h).unwrap_err();
        assert!(e.is_retryable(), "{name}: {e}");
        assert!(!forgot_tokens(&h), "{name}: tokens forgotten");
        assert_eq!(logins(&h), 1, "{name}: a login after a transient failure");
        assert_eq!(h.auth.token_set().unwrap().refresh_token.as_ref().unwrap().secret(), rt.secret());
        // The AS is back: the same refresh token works.
        h.intercept = None;
        assert_eq!(call(&mut h).unwrap(), 200, "{name}");
        let form = h.last_form("/token");
        assert_eq!(param(&form, "refresh_token"), Some(rt.secret()), "{name}");
        assert_eq!(logins(&h), 1, "{name}");
    }
}

/// Item 4: a transient failure on the refresh a 401 triggered keeps the grant too.
#[test]
fn item4_a_transient_failure_after_a_401_keeps_the_grant() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.revoke_access_tokens();
    h.intercept = Some(outage(503, r#"{"error":"temporarily_unavailable"}"#));
    let e = call(&mut h).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(!forgot_tokens(&h));
    assert_eq!(logins(&h), 1);
    h.intercept = None;
    assert_eq!(call(&mut h).unwrap(), 200);
    assert_eq!(logins(&h), 1);
}

/// Item 4: only `invalid_grant` forgets the tokens (and starts one new login); other refusals
/// are reported and keep them.
#[test]
fn item4_only_invalid_grant_forgets_the_tokens() {
    let mut h = Scenario::new().server(|o| o.token_lifetime = Some(100)).start();
    h.lazy_call("tools/list").unwrap();
    h.intercept = Some(outage(400, r#"{"error":"invalid_scope"}"#));
    h.advance(Duration::from_secs(200));
    let e = call(&mut h).unwrap_err();
    assert!(matches!(&e, Error::Token(crate::error::TokenError::Rejected(r)) if r.error == crate::error::ErrorCode::InvalidScope), "{e}");
    assert!(!forgot_tokens(&h));
    assert_eq!(logins(&h), 1);
    h.intercept = Some(outage(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(call(&mut h).unwrap(), 200);
    assert!(forgot_tokens(&h));
    assert_eq!(logins(&h), 2);
}

/// Item 5: PRM `scopes_supported` wins over configured scopes; configured scopes are the last
/// fallback before omitting the parameter.
#[test]
fn item5_configured_scopes_are_the_last_fallback() {
    let custom = |c: &mut Config| c.scopes = Some(vec!["custom:scope".into()]);
    let mut h = Scenario::new().config(custom).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(param(&h.server.authorization_requests()[0], "scope"), Some("mcp:read mcp:write"));
    let mut h = Scenario::new().server(|o| o.prm_scopes = None).config(custom).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(param(&h.server.authorization_requests()[0], "scope"), Some("custom:scope"));
}

/// Item 6: a revoked token costs token + retry (no re-discovery) when the challenge names the
/// metadata already in use, after a restart too.
#[test]
fn item6_a_revoked_token_is_refreshed_without_rediscovery() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.revoke_access_tokens();
    let before = h.sent.len();
    assert_eq!(call(&mut h).unwrap(), 200);
    assert_eq!(h.targets()[before..], ["/token"]);
    // The same after a restart (the metadata URL is kept with the tokens).
    let mut h2 = restart(h);
    h2.server.revoke_access_tokens();
    assert_eq!(call(&mut h2).unwrap(), 200);
    assert_eq!(h2.targets(), ["/token"]);
    assert_eq!(logins(&h2), 1);
}

/// Item 6: a challenge naming another `resource_metadata` is followed.
#[test]
fn item6_a_challenge_naming_other_metadata_rediscovers() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.options.prm = mcp_oauth_tests::PrmLocation::Custom("/prm/v2".into());
    h.server.revoke_access_tokens();
    let before = h.sent.len();
    assert_eq!(call(&mut h).unwrap(), 200);
    assert_eq!(h.targets()[before..], ["/prm/v2", "/.well-known/oauth-authorization-server", "/token"]);
}

/// Item 6 (step-up likewise): a 403 `insufficient_scope` with the metadata in use goes straight
/// to the new authorization; SPEC 95: without `resource_metadata` too.
#[test]
fn item6_step_up_uses_the_metadata_in_use() {
    for in_header in [true, false] {
        let mut h = Scenario::new().server(|o| o.prm_in_header = in_header).start();
        h.lazy_call("tools/list").unwrap();
        let before = h.sent.len();
        let resp = h.mcp_call("tools/call", serde_json::json!({"name": "admin-tool"})).unwrap();
        assert_eq!(resp.status(), 200);
        assert!(h.targets()[before..].iter().all(|t| t == "/token"), "{:?}", &h.targets()[before..]);
        assert_eq!(logins(&h), 2);
    }
}

/// Items 3 and 6: an authorization server migration behind a 401 still ends at the new server
/// (re-discovery before a new authorization), and a refreshed token the server rejects is not a
/// hard failure.
#[test]
fn item6_migration_is_noticed_before_a_new_authorization() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.options.issuer_path = "/as2".into();
    h.server.revoke_access_tokens();
    assert_eq!(call(&mut h).unwrap(), 200);
    assert_eq!(h.auth.token_set().unwrap().issuer, format!("{ORIGIN}/as2"), "{:?}", h.targets());
    assert_eq!(logins(&h), 1, "one login at the new server");
}
