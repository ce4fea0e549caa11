//! Hostile responses get typed errors; secrets never reach Debug or Display.

use super::*;
use crate::error::HttpError;

#[test]
fn oversized_metadata_is_refused() {
    let mut h =
        Scenario::new().server(|o| o.huge_body = Some(("/.well-known/oauth-protected-resource/mcp".into(), 20 * 1024 * 1024))).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Http { error: HttpError::BodyTooLarge { limit: 262144 }, .. }), "{e}");
}

#[test]
fn html_500_from_the_token_endpoint_is_retryable() {
    let mut h = Scenario::new().server(|o| o.token_html_500 = true).start();
    let e = h.lazy_call("tools/list").unwrap_err();
    assert!(matches!(e, Error::Http { error: HttpError::UnexpectedStatus { status: 500, .. }, .. }), "{e}");
    assert!(e.is_retryable());
    assert_eq!(e.stage(), crate::error::Stage::Token);
}

#[test]
fn transport_failures_are_typed() {
    let mut h = Scenario::new().start();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let Output::Send(req) = h.auth.poll_output() else { panic!() };
    let failure = crate::http::TransportFailure { kind: crate::http::TransportFailureKind::Connect, message: "refused".into() };
    h.auth.handle_input(Input::Response { now, id: req.id, result: Err(failure) }).unwrap();
    let Output::Failed(e) = h.auth.poll_output() else { panic!() };
    assert!(matches!(e, Error::Http { error: HttpError::Transport(_), .. }));
    assert!(e.is_retryable());
}

#[test]
fn no_secret_in_any_debug_or_display() {
    let mut h = Scenario::new().server(|o| o.dcr_confidential = true).start();
    h.lazy_call("tools/list").unwrap();
    h.advance(Duration::from_secs(3590));
    h.token_wanted().unwrap();
    let t = h.auth.token_set().unwrap().clone();
    let mut secrets = vec![t.access_token.secret().to_owned(), t.refresh_token.clone().unwrap().secret().to_owned()];
    for r in h.server.token_requests() {
        for k in ["code", "code_verifier", "refresh_token"] {
            if let Some(v) = param(&r.params, k) {
                secrets.push(v.to_owned());
            }
        }
    }
    for a in h.server.authorization_requests() {
        secrets.push(param(&a, "state").unwrap().to_owned());
    }
    for p in &h.persisted {
        if let Persist::Client(c) = p {
            secrets.push(c.client_secret.as_ref().unwrap().secret().to_owned());
        }
    }
    assert!(secrets.len() >= 7, "{}", secrets.len());
    let mut seen = String::new();
    seen.push_str(&format!("{:?}", h.persisted));
    seen.push_str(&format!("{:?}", h.sent));
    seen.push_str(&format!("{:?}", h.auth));
    seen.push_str(&format!("{:?}", h.auth.token_set()));
    seen.push_str(&format!("{:?}", h.auth.config()));
    seen.push_str(&format!("{:?}", h.trace));
    for s in &secrets {
        assert!(!seen.contains(s.as_str()), "secret {s:.6}… leaked into Debug");
    }
}

#[test]
fn every_request_goes_to_https_or_loopback() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    for r in &h.sent {
        assert_eq!(r.request.uri().scheme_str(), Some("https"), "{:?}", r);
    }
}

#[test]
fn an_adapter_that_stops_at_the_cap_gets_the_same_typed_error() {
    let mut h = Scenario::new().start();
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    let Output::Send(req) = h.auth.poll_output() else { panic!() };
    let failure = crate::http::TransportFailure { kind: crate::http::TransportFailureKind::BodyTooLarge, message: "cap".into() };
    h.auth.handle_input(Input::Response { now, id: req.id, result: Err(failure) }).unwrap();
    let Output::Failed(e) = h.auth.poll_output() else { panic!() };
    assert_eq!(e, Error::Http { purpose: crate::http::Purpose::ResourceMetadata, error: HttpError::BodyTooLarge { limit: 262144 } });
    assert!(!e.is_retryable());
}
