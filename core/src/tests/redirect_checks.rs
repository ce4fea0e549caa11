//! SPEC §2.I/§2.J: the authorization request, and the checks on the redirect.

use super::*;
use crate::callback::Outcome;
use crate::error::AuthorizationError;
use mcp_oauth_tests::IssBehaviour;

#[test]
fn wrong_state_is_rejected_and_nothing_is_exchanged() {
    let mut h = Scenario::new().server(|o| o.wrong_state = true).start();
    // At the listener a wrong state is refused and the wait goes on (item 11) until the
    // deadline; no paste comes, so the flow times out.
    let e = h.lazy_call("tools/list").unwrap_err();
    assert_eq!(e, Error::TimedOut { waiting_for: crate::error::Stage::Authorization });
    assert!(h.server.token_requests().is_empty(), "a code was exchanged after a state mismatch");
    assert!(matches!(&h.callback_pages[..], [Outcome::Failure { .. }]));
    // Pasted, the same redirect is refused at once.
    let mut h = Scenario::new().server(|o| o.wrong_state = true).browser(Browser::FailsThenPaste).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert_eq!(e, Error::Authorization(AuthorizationError::StateMismatch));
    assert!(h.server.token_requests().is_empty());
}

#[test]
fn denied_consent_is_a_typed_error_with_a_page() {
    let mut h = Scenario::new().server(|o| o.deny = true).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(&e, Error::Authorization(AuthorizationError::Denied(r)) if r.error == crate::error::ErrorCode::AccessDenied), "{e}");
    assert!(!e.is_retryable());
    assert!(matches!(&h.callback_pages[..], [Outcome::Failure { title, .. }] if title.contains("denied")));
    assert!(h.server.token_requests().is_empty());
}

#[test]
fn iss_is_checked_per_rfc_9207() {
    let cases = [
        (true, IssBehaviour::Correct, None),
        (true, IssBehaviour::Missing, Some(AuthorizationError::MissingIssuer)),
        (
            true,
            IssBehaviour::Wrong("https://evil.example.com".into()),
            Some(AuthorizationError::IssuerMismatch { expected: ORIGIN.into(), found: "https://evil.example.com".into() }),
        ),
        (
            true,
            IssBehaviour::Wrong(format!("{ORIGIN}/")),
            Some(AuthorizationError::IssuerMismatch { expected: ORIGIN.into(), found: format!("{ORIGIN}/") }),
        ),
        (false, IssBehaviour::Missing, None),
        (
            false,
            IssBehaviour::Wrong("https://evil.example.com".into()),
            Some(AuthorizationError::IssuerMismatch { expected: ORIGIN.into(), found: "https://evil.example.com".into() }),
        ),
    ];
    for (supported, iss, want) in cases {
        let mut h = Scenario::new()
            .server(|o| {
                o.iss_supported = supported;
                o.iss = iss.clone();
            })
            .start();
        match (h.lazy_call("tools/list"), want) {
            (Ok(r), None) => assert_eq!(r.status(), 200),
            (Err(Error::Authorization(e)), Some(w)) => {
                assert_eq!(e, w, "supported={supported} iss={iss:?}");
                assert!(h.server.token_requests().is_empty(), "code sent despite iss failure");
            }
            (got, want) => panic!("supported={supported} iss={iss:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn pkce_s256_and_one_resource_value_everywhere() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    let a = &h.server.authorization_requests()[0];
    assert_eq!(param(a, "code_challenge_method"), Some("S256"));
    assert_eq!(param(a, "response_type"), Some("code"));
    let t = h.last_form("/token");
    let verifier = param(&t, "code_verifier").unwrap();
    assert_eq!(verifier.len(), 43);
    assert_eq!(param(a, "code_challenge").unwrap(), crate::pkce::PkceChallenge::s256(&crate::secret::PkceVerifier::new(verifier)).as_str());
    assert_eq!(param(a, "resource"), Some("https://mcp.example.com/mcp"));
    assert_eq!(param(&t, "resource"), param(a, "resource"));
    assert_eq!(param(&t, "redirect_uri"), param(a, "redirect_uri"));
}

#[test]
fn resource_can_be_switched_off() {
    let mut h = Scenario::new().server(|o| o.require_resource = false).config(|c| c.send_resource = false).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(param(&h.server.authorization_requests()[0], "resource"), None);
    assert_eq!(param(&h.last_form("/token"), "resource"), None);
}

#[test]
fn scope_comes_from_the_challenge_first() {
    let mut h = Scenario::new().server(|o| o.challenge_scope = Some("mcp:read".into())).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(param(&h.server.authorization_requests()[0], "scope"), Some("mcp:read"));
}

#[test]
fn scope_falls_back_to_all_prm_scopes_then_to_none() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(param(&h.server.authorization_requests()[0], "scope"), Some("mcp:read mcp:write"));
    let mut h = Scenario::new().server(|o| o.prm_scopes = None).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(param(&h.server.authorization_requests()[0], "scope"), None);
}

#[test]
fn offline_access_only_when_the_server_lists_it() {
    let mut h = Scenario::new().server(|o| o.as_scopes = Some(vec!["mcp:read".into(), "offline_access".into()])).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(param(&h.server.authorization_requests()[0], "scope"), Some("mcp:read mcp:write offline_access"));
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    assert!(!param(&h.server.authorization_requests()[0], "scope").unwrap().contains("offline_access"));
}

#[test]
fn success_page_is_answered_on_loopback() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(h.callback_pages, [Outcome::Success]);
}

/// Plays the flow up to the browser: returns the authorization URL and the redirect the real
/// browser would deliver.
fn until_browser(h: &mut Harness) -> (Url, String) {
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    loop {
        let next = match h.auth.poll_output() {
            Output::Send(req) => Input::Response { now, id: req.id, result: Ok(h.server.handle(&req.request)) },
            Output::PrepareAttempt(plan) => {
                let r = plan.redirect.unwrap();
                Input::AttemptPrepared {
                    now,
                    entropy: Entropy::from_bytes([7; 96]),
                    callback: CallbackSetup::Listening(r.redirect_uri(h.bound_port)),
                }
            }
            Output::OpenAuthorizationUrl { url, .. } => {
                let loc = h.visit(&url).unwrap();
                return (url, loc);
            }
            Output::Persist(_) => continue,
            other => panic!("unexpected {other:?}"),
        };
        h.auth.handle_input(next).unwrap();
    }
}

fn outputs(h: &mut Harness) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match h.auth.poll_output() {
            Output::Wait { .. } => return out,
            o => out.push(format!("{o:?}")),
        }
    }
}

/// Item 11: a forged request on the callback path (no state, a wrong state, an error without
/// state) is answered with an error page, and the flow keeps waiting for the real redirect.
#[test]
fn item11_a_forged_loopback_callback_does_not_end_the_login() {
    let mut h = Scenario::new().start();
    let (_, real) = until_browser(&mut h);
    let base = format!("http://127.0.0.1:{}/callback", h.bound_port);
    for forged in [
        format!("{base}?code=attacker"),
        format!("{base}?code=attacker&state=guess"),
        format!("{base}?error=access_denied"),
        format!("{base}?error=access_denied&state=guess"),
        base.clone(),
    ] {
        let now = h.now;
        h.auth.handle_input(Input::Redirect { now, url: forged.clone(), source: RedirectSource::Loopback }).unwrap();
        let out = outputs(&mut h);
        assert_eq!(h.auth.state(), StateName::AwaitingRedirect, "{forged} ended the login: {out:?}");
        assert!(out.iter().any(|o| o.contains("Failure")), "{forged}: the browser gets an error page: {out:?}");
        assert!(!out.iter().any(|o| o.starts_with("Send")), "{forged}: nothing is sent: {out:?}");
    }
    // The real redirect still completes the login.
    let now = h.now;
    let a = h.drive(Input::Redirect { now, url: real, source: RedirectSource::Loopback });
    assert!(a.is_ok(), "{a:?}");
    assert_eq!(h.server.token_requests().len(), 1);
}

/// Item 11: a pasted URL with the wrong state still ends the flow (the user pasted something
/// else; they are told so), and so does a wrong state after the deadline.
#[test]
fn item11_a_pasted_wrong_state_is_final() {
    let mut h = Scenario::new().start();
    let (_, real) = until_browser(&mut h);
    let forged = real.replace("state=", "state=x");
    let now = h.now;
    h.auth.handle_input(Input::Redirect { now, url: forged, source: RedirectSource::Paste }).unwrap();
    let out = outputs(&mut h);
    assert!(out.iter().any(|o| o.contains("StateMismatch")), "{out:?}");
    assert_eq!(h.auth.state(), StateName::Failed);
}
