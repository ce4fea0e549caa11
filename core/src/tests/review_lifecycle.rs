//! Independent review (after 7c48282..): reproductions of defects found while attacking the
//! lifecycle fixes. Each test states what should happen; a failing test is a finding.

use super::*;
use crate::error::ResourceError;

fn logins(h: &Harness) -> usize {
    h.server.authorization_requests().len()
}

/// The 401 an MCP server sends to a request without a token.
fn bare_401(h: &mut Harness) -> Vec<http::HeaderValue> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).to_string();
    let req = http::Request::post(h.server.options.mcp_url()).body(body.into_bytes()).unwrap();
    let resp = h.server.handle(&req);
    assert_eq!(resp.status(), 401);
    resp.headers().get_all("www-authenticate").iter().cloned().collect()
}

/// R1. A lazy client (the default `ConnectMode::Lazy` of both MCP clients) that holds no token
/// sends its request bare and feeds only `Challenged`, never `TokenWanted`. The per-request
/// context (challenge counter, "authorized in this request") is reset only by `TokenWanted`,
/// so failed logins accumulate across requests: after `max_authorization_attempts` of them
/// every later request fails at once with `RejectedFreshToken` ("the server rejected a token
/// obtained moments ago") although no token exists, and no login is ever tried again, even
/// once the user is back at the browser.
#[test]
fn r1_failed_logins_of_a_lazy_client_do_not_poison_later_requests() {
    let mut h = Scenario::new().browser(Browser::Silent).start(); // the user does not finish the login (closed tab, away)
    for attempt in 1..=3 {
        let www = bare_401(&mut h);
        let now = h.now;
        let e = h.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None }).unwrap_err();
        assert!(matches!(e, Error::TimedOut { .. }), "attempt {attempt}: {e}");
    }
    // The user is back and would log in now.
    h.browser = Browser::Follow;
    let before = logins(&h);
    let www = bare_401(&mut h);
    let now = h.now;
    let r = h.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None });
    assert!(
        !matches!(r, Err(Error::Resource(ResourceError::RejectedFreshToken { .. }))),
        "a new request without any token fails with RejectedFreshToken and no login is tried: {r:?}"
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(logins(&h), before + 1);
}

fn call(h: &mut Harness) -> Result<u16, Error> {
    h.mcp_call("tools/list", serde_json::json!({})).map(|r| r.status().as_u16())
}

/// R2. Authorization server migration (SEP-2352) where the old server is gone for good (its
/// host no longer answers). The resource server now names the new issuer in its metadata and
/// rejects the old tokens. The held refresh token points at the old token endpoint; the refresh
/// fails with a *transport* error, which core treats as transient: it keeps the grant and fails
/// the request as retryable, without looking at the metadata again. Every later request does
/// the same, forever: the client never notices the migration and never logs in at the new
/// server (SPEC 90: on a network failure "fall back to full authorization or retry later";
/// item 6 of the fix: "a rejected token that cannot be refreshed" re-discovers).
#[test]
fn r2_a_decommissioned_old_authorization_server_does_not_wedge_the_client() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    // Migration: the resource now trusts only {origin}/as2; the old issuer's host is gone.
    h.server.options.issuer_path = "/as2".into();
    h.server.revoke_access_tokens();
    h.intercept = Some(Box::new(|req: &OutgoingRequest| {
        (req.request.uri().path() == "/token").then(|| {
            Err(crate::http::TransportFailure { kind: crate::http::TransportFailureKind::Connect, message: "connection refused".into() })
        })
    }));
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(call(&mut h).map_err(|e| e.to_string()));
        h.advance(Duration::from_secs(600));
    }
    assert!(
        results.iter().any(|r| r == &Ok(200)),
        "five requests over 50 minutes, all failed; the client keeps refreshing at the dead server: {results:?} (sent {:?})",
        h.targets()
    );
}

/// R3. A pre-registered (confidential) client whose refresh is answered `invalid_client`
/// (its secret was rotated at the authorization server and not yet in the configuration, or
/// the server is misconfigured for a moment). SPEC 98: for pre-registered or CIMD clients,
/// surface a configuration error. Core instead forgets the user's grant (the refresh token is
/// gone from the store) and starts a browser login, whose code exchange cannot succeed with
/// the same rejected credentials: a login for nothing, and a grant lost that would have worked
/// again once the configuration was fixed.
#[test]
fn r3_invalid_client_for_a_pre_registered_client_keeps_the_grant_and_asks_for_no_login() {
    let mut h = Scenario::new()
        .server(|o| {
            o.dcr = false;
            o.clients = vec![PreClient { id: "app".into(), secret: Some("app-secret".into()), jwt_key: None }];
        })
        .config(|c| {
            c.client_id = Some("app".into());
            c.client_secret = Some(crate::secret::ClientSecret::new("app-secret"));
            c.flow = crate::config::Flow::AuthorizationCode;
        })
        .start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(logins(&h), 1);
    h.intercept = Some(Box::new(|req: &OutgoingRequest| {
        is_grant(req, "refresh_token").then(|| Ok(json(401, r#"{"error":"invalid_client","error_description":"bad secret"}"#)))
    }));
    h.advance(Duration::from_secs(4000)); // the access token expired: refresh
    let before = h.persisted.len();
    let r = call(&mut h);
    let forgot = h.persisted[before..].iter().any(|p| matches!(p, Persist::ForgetTokens { .. }));
    assert!(
        !forgot && logins(&h) == 1,
        "invalid_client for a pre-registered client: tokens forgotten = {forgot}, browser logins = {} (result {r:?})",
        logins(&h)
    );
}

/// R4. The "no step-up" mode (item 16, `step_up: false`): the application asked never to
/// widen the grant on its own. A resource server that signals `insufficient_scope` with a 401
/// (RFC 6750 §3.1 says SHOULD 403; deployed servers do send 401) still gets a new
/// authorization with the union of scopes: the mode is bypassed, the 403 check only looks at
/// the status.
#[test]
fn r4_no_step_up_mode_also_holds_for_a_401_insufficient_scope() {
    let mut h = Scenario::new().config(|c| c.step_up = false).start();
    h.lazy_call("tools/list").unwrap();
    let before = logins(&h);
    let www = vec![http::HeaderValue::from_static(r#"Bearer error="insufficient_scope", scope="mcp:admin""#)];
    let now = h.now;
    let r = h.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None });
    let reqs = h.server.authorization_requests();
    assert_eq!(
        reqs.len(),
        before,
        "step_up=false, yet a new authorization asked for {:?} (result {r:?})",
        reqs.last().and_then(|p| param(p, "scope").map(str::to_owned))
    );
}

/// R5. A resource server that rejects every token for a while (its clock runs behind and every
/// new token is "not yet valid", its key cache is stale, an audience misconfiguration) answers
/// 401 `invalid_token` to everything. Each MCP request then costs a refresh (rotating the
/// refresh token) *and a browser login*, and the next request does it all again: a user gets a
/// login window per request, although the grant is alive and was just refreshed successfully.
/// A refreshed token being rejected says the resource server, not the grant, is the problem;
/// at the least, a login that just produced a rejected token should not be repeated by the
/// very next request (no memory across requests, no backoff).
#[test]
fn r5_a_resource_server_rejecting_everything_does_not_cause_a_login_per_request() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    let logins_before = logins(&h);
    h.rs_intercept = Some(Box::new(|_req| {
        let mut r = json(401, r#"{"error":"invalid_token"}"#);
        r.headers_mut().insert(
            "www-authenticate",
            http::HeaderValue::from_static(r#"Bearer error="invalid_token", error_description="token not yet valid""#),
        );
        Some(r)
    }));
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(call(&mut h).map_err(|e| e.to_string()));
        h.advance(Duration::from_secs(5));
    }
    let new_logins = logins(&h) - logins_before;
    assert!(new_logins <= 1, "{new_logins} browser logins for 3 requests to a resource server that rejects every token: {results:?}");
}
