//! Third independent review (after 527a252): reproductions. Each test states what should
//! happen; a failing test is a finding.

use super::*;
use crate::error::TokenError;
use std::cell::Cell;
use std::rc::Rc;

fn logins(h: &Harness) -> usize {
    h.server.authorization_requests().len()
}

fn forgot_tokens(h: &Harness) -> bool {
    h.persisted.iter().any(|p| matches!(p, Persist::ForgetTokens { .. }))
}

fn challenge(h: &mut Harness, status: u16, www: &str) -> Result<Authorization, Error> {
    let now = h.now;
    let www = vec![http::HeaderValue::from_str(www).unwrap()];
    h.drive(Input::Challenged { now, status, www_authenticate: www, dpop_nonce: None })
}

/// The origin's root protected resource metadata, naming the origin as the resource (RFC 9728
/// allows one per location; the Prefix rule accepts it for `…/mcp`). Hosts that serve several
/// resources often have one.
fn root_prm(req: &OutgoingRequest) -> Option<Result<HttpResponse, TransportFailure>> {
    (req.request.uri().path() == "/.well-known/oauth-protected-resource")
        .then(|| Ok(json(200, &format!(r#"{{"resource":"{ORIGIN}","authorization_servers":["{ORIGIN}"]}}"#))))
}

/// 527a252 keeps the registration of an unfinished login (`pending_client`) for the next
/// attempt. Authorization servers purge registrations that were never used (a day, an hour:
/// RFC 7591 §3 leaves it to them), and then answer `invalid_client` at the code exchange. That
/// error drops a registration only when `!attempt.registered`, and `pending_client` is never
/// cleared except by a successful login: every later attempt opens the browser with the purged
/// client, the person logs in, and the exchange fails again, for the life of the machine (an
/// editor that runs for weeks). Before 527a252 each attempt registered afresh. What should
/// happen: `invalid_client` for the pending registration drops it, and the next attempt (or this
/// one) registers again.
#[test]
fn review3_a_purged_pending_registration_is_not_reused_for_ever() {
    let mut h = Scenario::new().browser(Browser::Silent).start(); // the first login is not finished (tab closed, person away)
    assert!(h.token_wanted().is_err());
    let pending = h.auth.pending_client.as_ref().expect("the unfinished login's registration").client_id.clone();
    // The authorization server purges that unused registration.
    let purged = pending.clone();
    h.intercept = Some(Box::new(move |req: &OutgoingRequest| {
        let body: Vec<(String, String)> = url::form_urlencoded::parse(req.request.body()).into_owned().collect();
        (is_grant(req, "authorization_code") && param(&body, "client_id") == Some(purged.as_str()))
            .then(|| Ok(json(401, r#"{"error":"invalid_client","error_description":"unknown client"}"#)))
    }));
    h.browser = Browser::Follow;
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(h.token_wanted().map(|_| ()).map_err(|e| matches!(e, Error::Token(TokenError::Rejected(_)))));
        h.advance(Duration::from_secs(600));
    }
    let with_purged = h.server.authorization_requests().iter().filter(|r| param(r, "client_id") == Some(pending.as_str())).count();
    assert!(
        results.iter().any(|r| r.is_ok()),
        "three logins with the person at the browser all failed (rejected: {results:?}); {with_purged} of {} authorization \
         requests used the purged client, {} registrations in all",
        logins(&h),
        h.server.ledger().registrations.len()
    );
}

/// 527a252: discovery that ends at metadata naming another resource identifier than the grant's
/// forgets the grant (memory and store, `ForgetTokens`) at once, before any replacement exists.
/// One 401 whose challenge names other metadata is enough (it is followed before any refresh,
/// SPEC 95); here the origin's root metadata, which names the origin. The refresh token is
/// alive, nobody is at the browser (a non-interactive client, a person away): the request fails,
/// and so does every later one, for every instance sharing the store; the resource still
/// accepts the old grant's tokens. Before 527a252 the grant was kept. What should happen: the
/// grant is kept until a new authorization for the new identifier succeeds (or at least until
/// its own refresh is refused), so that a response of the resource server (or of a metadata
/// host it names; the URL need not be on its origin) cannot log the client out.
#[test]
fn review3_one_challenge_naming_other_metadata_does_not_forget_a_live_grant() {
    let mut h = Scenario::new().start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    h.persisted.clear();
    h.intercept = Some(Box::new(root_prm));
    h.browser = Browser::Silent;
    let www = format!(r#"Bearer error="invalid_token", resource_metadata="{ORIGIN}/.well-known/oauth-protected-resource""#);
    let r = challenge(&mut h, 401, &www);
    let gone = forgot_tokens(&h) || h.auth.token_set().is_none();
    // The next ordinary request (the resource accepts the old grant's token, or its refresh).
    h.intercept = None;
    let next = h.mcp_call("tools/list", serde_json::json!({})).map(|r| r.status().as_u16());
    assert!(
        !gone && next.as_ref().is_ok_and(|s| *s == 200),
        "one challenge forgot the live grant (forgotten: {gone}; that request: {:?}); the next request: {next:?}",
        r.map(|_| ())
    );
}

/// The same without any hostility: a restart (metadata not yet discovered), a step-up the person
/// declines (403 `insufficient_scope` for one admin tool), and one 429 from the path-aware
/// metadata URL while discovery runs (rate limited; any 4xx moves on, SPEC 19). Discovery falls
/// to the root metadata, which names the origin: the grant is forgotten, so declining the step-up
/// logs the person out of every other tool as well. What should happen: a declined (or failed)
/// step-up leaves the grant as it was.
#[test]
fn review3_a_declined_step_up_after_one_429_does_not_log_the_person_out() {
    let mut first = Scenario::new().start();
    assert_eq!(first.lazy_call("tools/list").unwrap().status(), 200);
    let restored = Restored { clients: first.auth.clients().to_vec(), tokens: first.auth.token_set().cloned() };
    let mut h = Scenario::new().restored(restored).on(first.server).start();
    let once = Rc::new(Cell::new(true));
    h.intercept = Some(Box::new(move |req: &OutgoingRequest| {
        if req.request.uri().path() == "/.well-known/oauth-protected-resource/mcp" && once.replace(false) {
            return Some(Ok(json(429, r#"{"error":"slow down"}"#)));
        }
        root_prm(req)
    }));
    h.browser = Browser::Silent; // the person does not approve the admin scope
    let www = r#"Bearer error="insufficient_scope", scope="mcp:admin""#;
    assert!(challenge(&mut h, 403, www).is_err());
    h.intercept = None;
    let next = h.mcp_call("tools/list", serde_json::json!({})).map(|r| r.status().as_u16());
    assert!(
        !forgot_tokens(&h) && next.as_ref().is_ok_and(|s| *s == 200),
        "declining a step-up forgot the grant ({}); the next ordinary request: {next:?}",
        forgot_tokens(&h)
    );
}

/// `Authorizer::authorizations()` is what the adapters' per-request budget counts (527a252). A
/// machine grant refused at kept metadata looks again once; core takes that attempt back from
/// its own count (`request.authorizations - 1`), but not from the lifetime count: one token
/// counts twice against the adapter's budget (the request gets fewer step-ups than
/// `max_authorization_attempts` says; with 1, none).
#[test]
fn review3_a_rediscovered_machine_grant_counts_once() {
    let mut h = service().config(svc_secret).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    h.advance(Duration::from_secs(7200)); // the token expired; no refresh token (RFC 6749 §4.4.3)
    let once = Rc::new(Cell::new(true));
    h.intercept = Some(Box::new(move |req: &OutgoingRequest| {
        (is_grant(req, "client_credentials") && once.replace(false)).then(|| Ok(json(400, r#"{"error":"unauthorized_client"}"#)))
    }));
    let before = h.auth.authorizations();
    h.token_wanted().unwrap();
    let grants = h.sent.iter().filter(|r| is_grant(r, "client_credentials")).count();
    assert_eq!(
        h.auth.authorizations() - before,
        1,
        "one new token (after a look at the metadata; {grants} client credentials requests in all) counted as {}",
        h.auth.authorizations() - before
    );
}

/// 527a252 keeps the access token when a refresh ahead of expiry is answered
/// `unauthorized_client` (SPEC 98), through `store_tokens(t, false)`, which marks it as
/// "refreshed in this request" although no refresh happened. When the resource then rejects it
/// (the authorization server revoked the client's tokens along with its refresh grant), that
/// mark (`refreshed_rejected`) ends the request with `RejectedFreshToken` ("the grant is fine,
/// the server is not") instead of the login the dead grant needs; the next request logs in. What
/// should happen: a kept, unrefreshed token that the resource rejects leads to a new
/// authorization in the same request (it has no refresh token left).
#[test]
fn review3_a_kept_token_rejected_after_unauthorized_client_logs_in() {
    let mut h = Scenario::new().server(|o| o.token_lifetime = Some(100)).start();
    h.lazy_call("tools/list").unwrap();
    h.advance(Duration::from_secs(80)); // a refresh is due, the token has 20 s left
    h.intercept =
        Some(Box::new(|req: &OutgoingRequest| is_grant(req, "refresh_token").then(|| Ok(json(400, r#"{"error":"unauthorized_client"}"#)))));
    h.server.revoke_access_tokens();
    let before = logins(&h);
    let r = h.mcp_call("tools/list", serde_json::json!({})).map(|r| r.status().as_u16());
    assert!(r.as_ref().is_ok_and(|s| *s == 200), "{r:?} ({} logins)", logins(&h) - before);
}
