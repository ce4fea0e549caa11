//! Logout (issue 15): RFC 7009 revocation of the refresh token, then the access token, at the
//! issuer's `revocation_endpoint`; then everything is forgotten, whatever the server answered.

use super::*;
use crate::config::Flow;
use crate::http::{TransportFailure, TransportFailureKind};
use crate::revocation::Revocation;
use crate::secret::PrivateKeyPem;

fn revoking() -> Scenario {
    Scenario::new().server(|o| o.revocation = true)
}

fn restored(h: &Harness) -> Restored {
    h.stored()
}

fn revocations(h: &Harness) -> Vec<Vec<(String, String)>> {
    h.server.log.iter().filter(|s| s.target == "/revoke").map(|s| s.params.clone()).collect()
}

/// The MCP server's answer to a request with this access token.
fn status_with(h: &mut Harness, authorization: &str) -> u16 {
    let req = http::Request::post(format!("{ORIGIN}/mcp"))
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_vec())
        .unwrap();
    h.server.handle(&req).status().as_u16()
}

#[test]
fn logout_revokes_the_refresh_token_then_the_access_token_and_forgets_everything() {
    let mut h = revoking().start();
    h.lazy_call("tools/list").unwrap();
    let held = h.auth.token_set().cloned().unwrap();
    let rt = held.refresh_token.as_ref().unwrap().secret().to_owned();
    let header = held.authorization().secret().to_owned();
    h.persisted.clear();

    let report = h.logout().unwrap();
    assert_eq!(report.refresh_token, Revocation::Revoked);
    assert_eq!(report.access_token, Revocation::Revoked);
    assert!(report.all_revoked());
    assert_eq!(report.issuer.as_deref(), Some(ORIGIN));
    let sent = revocations(&h);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(param(&sent[0], "token"), Some(rt.as_str()), "the refresh token first");
    assert_eq!(param(&sent[0], "token_type_hint"), Some("refresh_token"));
    assert_eq!(param(&sent[1], "token"), Some(held.access_token.secret()));
    assert_eq!(param(&sent[1], "token_type_hint"), Some("access_token"));
    assert!(param(&sent[0], "client_id").is_some(), "a public client names itself");
    // The server no longer takes the access token, and the store is empty.
    assert_eq!(status_with(&mut h, &header), 401);
    assert!(h.persisted.iter().any(|p| matches!(p, Persist::ForgetTokens { .. })));
    assert!(h.persisted.iter().any(|p| matches!(p, Persist::ForgetClient { .. })), "the registration is forgotten");
    assert!(h.auth.token_set().is_none() && h.auth.clients().is_empty());
    assert_eq!(h.auth.state(), StateName::Idle);
    // The next request logs in again, registering anew.
    let registrations = h.server.count("/register");
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.server.count("/register"), registrations + 1);
    assert_eq!(h.server.authorization_requests().len(), 2);
}

#[test]
fn after_a_restart_logout_discovers_the_revocation_endpoint_first() {
    let mut h = revoking().start();
    h.lazy_call("tools/list").unwrap();
    let mut h2 = Scenario::new().restored(restored(&h)).on(h.server).start();
    let report = h2.logout().unwrap();
    assert!(report.all_revoked(), "{report:?}");
    let targets = h2.targets();
    let first_revoke = targets.iter().position(|t| t == "/revoke").unwrap();
    assert!(targets[..first_revoke].iter().any(|t| t.starts_with("/.well-known/oauth-authorization-server")), "{targets:?}");
    assert!(!targets.iter().any(|t| t == "/token" || t.starts_with("/authorize")), "a logout never asks for a token: {targets:?}");
}

#[test]
fn without_a_revocation_endpoint_the_tokens_are_forgotten_and_the_report_says_so() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    let report = h.logout().unwrap();
    assert_eq!(report.refresh_token, Revocation::NoEndpoint);
    assert_eq!(report.access_token, Revocation::NoEndpoint);
    assert!(!report.all_revoked());
    assert!(revocations(&h).is_empty());
    assert!(h.auth.token_set().is_none());
    assert!(h.persisted.iter().any(|p| matches!(p, Persist::ForgetTokens { .. })));
}

#[test]
fn an_unavailable_authorization_server_keeps_the_tokens_for_a_later_logout_unless_told_to_forget() {
    let mut h = revoking().server(|o| o.revocation_status = Some(503)).start();
    h.lazy_call("tools/list").unwrap();
    let held = h.auth.token_set().cloned().unwrap();
    h.persisted.clear();
    let report = h.logout().unwrap();
    assert!(matches!(&report.refresh_token, Revocation::Unavailable(why) if why.contains("503")), "{report:?}");
    assert!(matches!(&report.access_token, Revocation::Unavailable(_)), "the access token is still tried");
    assert!(!report.forgotten && report.unreachable());
    assert_eq!(revocations(&h).len(), 2);
    assert!(h.persisted.is_empty(), "nothing forgotten: {:?}", h.persisted);
    assert_eq!(h.auth.token_set().map(|t| t.access_token.secret().to_owned()), Some(held.access_token.secret().to_owned()));
    // The server is back: the same logout revokes both.
    h.server.options.revocation_status = None;
    let report = h.logout().unwrap();
    assert!(report.all_revoked() && report.forgotten, "{report:?}");
    assert!(h.auth.token_set().is_none());

    // Told to forget: forgotten unrevoked.
    let mut h = revoking().server(|o| o.revocation_status = Some(503)).start();
    h.lazy_call("tools/list").unwrap();
    let report = h.logout_with(crate::IfUnreachable::Forget).unwrap();
    assert!(report.forgotten && !report.all_revoked());
    assert!(h.auth.token_set().is_none());
    assert!(h.persisted.iter().any(|p| matches!(p, Persist::ForgetTokens { .. })));
}

#[test]
fn a_refusing_authorization_server_does_not_keep_the_tokens() {
    let mut h = revoking().server(|o| o.revocation_status = Some(400)).start();
    h.lazy_call("tools/list").unwrap();
    let report = h.logout().unwrap();
    assert!(matches!(&report.refresh_token, Revocation::Failed(why) if why.contains("400 invalid_request")), "{report:?}");
    assert!(report.forgotten, "a refusal is final: trying again would not help");
    assert!(h.auth.token_set().is_none());
}

#[test]
fn an_unreachable_authorization_server_keeps_or_forgets_as_asked() {
    let mut h = revoking().start();
    h.lazy_call("tools/list").unwrap();
    let r = restored(&h);
    let server = h.server;
    let down = || -> Intercept {
        Box::new(|_req: &OutgoingRequest| {
            Some(Err(TransportFailure { kind: TransportFailureKind::Connect, message: "connection refused".into() }))
        })
    };
    let mut h2 = Scenario::new().restored(r.clone()).on(server).start();
    h2.intercept = Some(down());
    let report = h2.logout().unwrap();
    assert!(matches!(&report.refresh_token, Revocation::Unavailable(_)), "{report:?}");
    assert!(!report.forgotten && h2.auth.token_set().is_some() && h2.persisted.is_empty());
    assert_eq!(h2.auth.state(), StateName::Idle);

    let mut h3 = Scenario::new().restored(r).on(h2.server).start();
    h3.intercept = Some(down());
    let report = h3.logout_with(crate::IfUnreachable::Forget).unwrap();
    assert!(matches!(&report.access_token, Revocation::Unavailable(_)));
    assert!(report.forgotten && h3.auth.token_set().is_none());
    assert!(h3.persisted.iter().any(|p| matches!(p, Persist::ForgetTokens { .. })));
}

#[test]
fn tokens_of_another_authorization_server_are_never_sent_to_the_new_one() {
    let mut h = revoking().start();
    h.lazy_call("tools/list").unwrap();
    let mut r = restored(&h);
    let t = r.tokens.as_mut().unwrap();
    t.issuer = "https://old-as.example".into();
    for c in &mut r.clients {
        c.issuer = "https://old-as.example".into();
    }
    let mut h2 = Scenario::new().restored(r).on(h.server).start();
    let report = h2.logout().unwrap();
    assert!(matches!(&report.refresh_token, Revocation::NotSent(_)), "{report:?}");
    assert!(revocations(&h2).is_empty(), "nothing goes to an authorization server that did not issue the tokens");
    // Only the tokens' own issuer was asked (its metadata), and nothing else.
    assert!(!h2.sent.is_empty());
    assert!(h2.sent.iter().all(|r| r.request.uri().host() == Some("old-as.example")), "{:?}", h2.targets());
    assert!(h2.auth.token_set().is_none());
}

#[test]
fn logout_without_tokens_forgets_registrations_and_sends_nothing() {
    let mut h = revoking().start();
    h.lazy_call("tools/list").unwrap();
    let mut r = restored(&h);
    r.tokens = None;
    let mut h2 = Scenario::new().restored(r).on(h.server).start();
    let report = h2.logout().unwrap();
    assert_eq!(
        (report.refresh_token.clone(), report.access_token.clone(), report.issuer.clone()),
        (Revocation::NotHeld, Revocation::NotHeld, None)
    );
    assert!(report.all_revoked());
    assert!(h2.sent.is_empty());
    assert!(h2.persisted.iter().any(|p| matches!(p, Persist::ForgetClient { .. })));
}

#[test]
fn a_private_key_client_signs_each_revocation_with_its_own_jti() {
    let mut h = revoking()
        .server(|o| {
            o.clients = vec![key_client("app")];
            o.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
        })
        .config(|c| {
            c.flow = Flow::AuthorizationCode;
            c.client_id = Some("app".into());
            c.private_key = Some(PrivateKeyPem::new(crate::jwt::TEST_KEY));
        })
        .start();
    h.lazy_call("tools/list").unwrap();
    h.trace.clear();
    let report = h.logout().unwrap();
    assert!(report.all_revoked(), "the server verified both assertions (it refuses a replayed jti): {report:?}");
    assert!(h.trace.iter().any(|t| t == "PrepareAttempt"), "the jtis need entropy");
    let sent = revocations(&h);
    let a0 = param(&sent[0], "client_assertion").unwrap();
    let a1 = param(&sent[1], "client_assertion").unwrap();
    assert_ne!(a0, a1);
}

#[test]
fn logout_is_refused_mid_flow_and_a_cancelled_logout_keeps_the_tokens() {
    let mut h = revoking().start();
    h.lazy_call("tools/list").unwrap();
    // Mid-logout (waiting for the revocation answer): another logout or a token is refused.
    let now = h.now;
    h.auth.handle_input(Input::LogoutWanted { now, if_unreachable: crate::IfUnreachable::Keep }).unwrap();
    let Output::Send(_) = h.auth.poll_output() else { panic!("a revocation request") };
    assert!(h.auth.handle_input(Input::LogoutWanted { now, if_unreachable: crate::IfUnreachable::Keep }).is_err());
    assert!(h.auth.handle_input(Input::TokenWanted { now }).is_err());
    // Cancelled (the application gave up): nothing is forgotten.
    h.auth.handle_input(Input::Cancel { now, reason: CancelReason::User }).unwrap();
    assert!(matches!(h.auth.poll_output(), Output::Failed(_)));
    assert!(h.auth.token_set().is_some());
}
