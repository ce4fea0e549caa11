//! The core decides when to fall back to a pasted redirect: no bind, no browser, or timeout.

use super::*;

fn prompts(h: &Harness) -> usize {
    h.trace.iter().filter(|t| *t == "PromptForRedirect").count()
}

#[test]
fn port_in_use_means_paste() {
    let mut h = Scenario::new().cannot_bind().start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(prompts(&h), 1);
    assert!(h.callback_pages.is_empty(), "no browser connection to answer in paste mode");
    // Port 0 in paste mode still registers a concrete port.
    let redirect = param(&h.server.authorization_requests()[0], "redirect_uri").unwrap().to_owned();
    let port = Url::parse(&redirect).unwrap().port().unwrap();
    assert!(port >= 49152, "{redirect}");
}

#[test]
fn browser_failure_means_paste() {
    let mut h = Scenario::new().browser(Browser::FailsThenPaste).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(prompts(&h), 1);
}

#[test]
fn callback_timeout_means_paste_after_the_configured_time() {
    let mut h = Scenario::new().config(|c| c.callback_timeout = Duration::from_secs(120)).browser(Browser::NeverReturnsThenPaste).start();
    let start = h.now;
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(prompts(&h), 1);
    assert_eq!(h.now, start.saturating_add(Duration::from_secs(120)));
}

#[test]
fn default_timeout_is_five_minutes_then_paste_then_fail() {
    let mut h = Scenario::new().browser(Browser::Silent).start();
    let start = h.now;
    let e = h.lazy_call("tools/list").unwrap_err();
    assert_eq!(e, Error::TimedOut { waiting_for: crate::error::Stage::Authorization });
    assert_eq!(prompts(&h), 1);
    assert_eq!(h.now, start.saturating_add(Duration::from_secs(600)));
    assert!(h.server.token_requests().is_empty());
}

#[test]
fn nobody_to_log_in_is_a_typed_error() {
    let mut h = Scenario::new().start();
    let _plan = h.until_prepare();
    // The adapter knows nobody can log in: no browser, no terminal, no hook.
    let now = h.now;
    h.auth.handle_input(Input::Cancel { now, reason: CancelReason::NoInteraction }).unwrap();
    let Output::Failed(e) = h.auth.poll_output() else { panic!("expected Failed") };
    assert_eq!(e, Error::Authorization(crate::error::AuthorizationError::InteractionRequired));
    assert!(h.server.authorization_requests().is_empty());
}
