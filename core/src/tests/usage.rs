//! The contract: usage errors change nothing; ids are fresh; time never runs backwards.

use super::*;
use crate::error::UsageError;
use crate::http::RequestId;

fn ok_resp() -> http::Response<Vec<u8>> {
    http::Response::builder().status(404).body(Vec::new()).unwrap()
}

#[test]
fn unknown_or_stale_response_ids_change_nothing() {
    let mut h = Scenario::new().start();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let Output::Send(req) = h.auth.poll_output() else { panic!() };
    let e = h.auth.handle_input(Input::Response { now, id: RequestId(999), result: Ok(ok_resp()) }).unwrap_err();
    assert_eq!(e, Error::Usage(UsageError::UnknownRequest(RequestId(999))));
    assert_eq!(h.auth.state(), StateName::ResourceMetadata);
    assert!(matches!(h.auth.poll_output(), Output::Wait { until: None }));
    // The real answer still works, and answering it twice is a usage error.
    let resp = h.server.handle(&req.request);
    h.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp.clone()) }).unwrap();
    let e = h.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap_err();
    assert_eq!(e, Error::Usage(UsageError::UnknownRequest(req.id)));
}

#[test]
fn inputs_in_the_wrong_state_are_usage_errors() {
    let mut h = Scenario::new().start();
    let now = h.now;
    let e = h
        .auth
        .handle_input(Input::Redirect { now, url: "http://127.0.0.1/cb?code=x&state=y".into(), source: RedirectSource::Paste })
        .unwrap_err();
    assert!(matches!(e, Error::Usage(UsageError::UnexpectedInput { input: "Redirect", state: StateName::Idle })));
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let e = h.auth.handle_input(Input::TokenWanted { now }).unwrap_err();
    assert!(matches!(e, Error::Usage(UsageError::UnexpectedInput { input: "TokenWanted", .. })));
    assert!(matches!(h.auth.handle_input(Input::Cancel { now, reason: CancelReason::User }), Ok(())));
    assert!(matches!(h.auth.poll_output(), Output::Send(_)), "outputs queued before the cancel are still drained");
    assert!(matches!(h.auth.poll_output(), Output::Failed(Error::Authorization(crate::error::AuthorizationError::Cancelled))));
    // After Failed, a new flow may start.
    h.token_wanted().unwrap();
}

#[test]
fn every_send_has_a_fresh_id() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.revoke_access_tokens();
    h.mcp_call("tools/list", serde_json::json!({})).unwrap();
    let mut ids: Vec<u64> = h.sent.iter().map(|r| r.id.0).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[test]
fn clock_going_backwards_is_clamped_and_never_extends_a_deadline() {
    let mut h = Scenario::new().browser(Browser::Silent).start();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let mut deadline = None;
    loop {
        match h.auth.poll_output() {
            Output::Send(req) => {
                let resp = h.server.handle(&req.request);
                h.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap();
            }
            Output::PrepareAttempt(plan) => {
                let uri = plan.redirect.unwrap().redirect_uri(40000);
                h.auth
                    .handle_input(Input::AttemptPrepared {
                        now,
                        entropy: Entropy::from_bytes([3; 96]),
                        callback: CallbackSetup::Listening(uri),
                    })
                    .unwrap();
            }
            Output::OpenAuthorizationUrl { deadline: d, .. } => deadline = Some(d),
            Output::Persist(_) => {}
            Output::Wait { until } => {
                assert_eq!(until, deadline);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let d = deadline.unwrap();
    // An hour in the past: time is clamped, the deadline stays, nothing times out early.
    let past = now.saturating_sub(Duration::from_secs(3600));
    h.auth.handle_input(Input::Timeout { now: past }).unwrap();
    assert!(matches!(h.auth.poll_output(), Output::Wait { until: Some(u) } if u == d));
    assert_eq!(h.auth.state(), StateName::AwaitingRedirect);
}

#[test]
fn bad_redirect_uri_from_the_adapter_is_a_usage_error() {
    let mut h = Scenario::new().start();
    let _plan = h.until_prepare();
    let now = h.now;
    let bad = Url::parse("http://example.com:80/callback").unwrap();
    let e =
        h.auth.handle_input(Input::AttemptPrepared { now, entropy: Entropy::from_bytes([1; 96]), callback: CallbackSetup::Listening(bad) });
    assert!(matches!(e, Err(Error::Usage(UsageError::BadRedirectUri { .. }))));
    assert_eq!(h.auth.state(), StateName::AwaitingPreparation);
}

#[test]
fn bad_redirect_uri_changes_neither_the_clock_nor_the_dpop_key() {
    // A usage error changes nothing: not the machine's clock (an input an hour ahead), and not
    // the DPoP key the entropy of a refused `AttemptPrepared` would have made.
    let mut h = Scenario::new().server(|o| o.dpop = true).start();
    let _plan = h.until_prepare();
    let (before, later) = (h.auth.now(), h.now.saturating_add(Duration::from_secs(3600)));
    assert!(h.auth.dpop.key.is_none(), "no key before the attempt is prepared");
    let bad = Url::parse("http://example.com:80/callback").unwrap();
    let e = h.auth.handle_input(Input::AttemptPrepared {
        now: later,
        entropy: Entropy::from_bytes([1; 96]),
        callback: CallbackSetup::Listening(bad),
    });
    assert!(matches!(e, Err(Error::Usage(UsageError::BadRedirectUri { .. }))));
    assert_eq!(h.auth.state(), StateName::AwaitingPreparation);
    assert_eq!(h.auth.now(), before, "the refused input moved the clock");
    assert!(h.auth.dpop.key.is_none(), "the refused input made a DPoP key");
    assert!(matches!(h.auth.poll_output(), Output::Wait { until: None }), "the refused input queued an output");
}

#[test]
fn a_redirect_that_beats_the_drain_withdraws_the_prompt() {
    // Paste mode queues OpenAuthorizationUrl and PromptForRedirect; a concurrent callback may
    // be fed before the adapter drains them. Nobody must then be asked to paste.
    let mut h = Scenario::new().cannot_bind().start();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let url = loop {
        match h.auth.poll_output() {
            Output::Send(req) => {
                let resp = h.server.handle(&req.request);
                h.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap();
            }
            Output::PrepareAttempt(_) => {
                let cb = CallbackSetup::Unavailable("busy".into());
                h.auth.handle_input(Input::AttemptPrepared { now, entropy: Entropy::from_bytes([4; 96]), callback: cb }).unwrap();
            }
            Output::Persist(_) => {}
            Output::OpenAuthorizationUrl { url, .. } => break url,
            other => panic!("unexpected {other:?}"),
        }
    };
    let loc =
        h.server.handle(&http::Request::get(url.as_str()).body(Vec::new()).unwrap()).headers()["location"].to_str().unwrap().to_owned();
    h.auth.handle_input(Input::Redirect { now, url: loc, source: RedirectSource::Paste }).unwrap();
    match h.auth.poll_output() {
        Output::Send(req) => assert_eq!(req.purpose, crate::http::Purpose::CodeExchange),
        other => panic!("expected the code exchange, got {other:?}"),
    }
}

/// A broken internal invariant is `Error::Bug`, blamed on core, never on a server: here the
/// configuration is changed behind `validate()`'s back to a flow that lacks what it needs.
#[test]
fn a_broken_invariant_is_a_bug_not_a_server_failure() {
    for flow in [crate::config::Flow::WorkloadIdentity, crate::config::Flow::EnterpriseManaged, crate::config::Flow::ClientCredentials] {
        let mut h = Scenario::new().start();
        h.auth.config.flow = flow;
        let e = h.token_wanted().unwrap_err();
        assert!(matches!(e, Error::Bug(_)), "{flow}: {e}");
        assert_eq!(e.stage(), crate::error::Stage::Internal);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("bug in mcp-oauth"), "{e}");
    }
}
