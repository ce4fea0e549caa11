//! The device authorization grant (RFC 8628, issue 15): asked for, or automatic in a remote
//! session; registration without redirect URIs; polling at the interval, `slow_down`,
//! `authorization_pending`, refusal, expiry, transient failures; the resource parameter; a
//! hostile verification URI.

use super::*;
use crate::config::LoginMethod;
use crate::error::{AuthorizationError, Blame};
use crate::http::{Purpose, TransportFailureKind};
use crate::token::GrantKind;

fn device_server() -> Scenario {
    Scenario::new().server(|o| o.device = true)
}

fn device() -> Scenario {
    device_server().config(|c| c.login = LoginMethod::Device)
}

fn polls(h: &Harness) -> Vec<(Timestamp, OutgoingRequest)> {
    h.sent.iter().zip(&h.sent_at).filter(|(r, _)| r.purpose == Purpose::DeviceToken).map(|(r, t)| (*t, r.clone())).collect()
}

fn form_of(req: &OutgoingRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.request.body()).into_owned().collect()
}

#[test]
fn a_device_login_registers_without_redirect_uris_shows_the_code_and_polls_for_the_token() {
    let mut h = device().start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert!(h.server.authorization_requests().is_empty(), "no browser");
    // Registration: the device grant, no redirect URI, no response type.
    let reg = h.server.log.iter().find(|s| s.target == "/register").expect("registered");
    assert_eq!(param(&reg.params, "grant_types"), Some(r#"["urn:ietf:params:oauth:grant-type:device_code","refresh_token"]"#));
    assert_eq!(param(&reg.params, "redirect_uris"), None);
    // The device authorization request names the resource and the scope.
    let da = h.server.log.iter().find(|s| s.target == "/device_authorization").expect("asked for a code");
    assert_eq!(param(&da.params, "resource"), Some(format!("{ORIGIN}/mcp").as_str()));
    assert!(param(&da.params, "scope").is_some_and(|s| s.contains("mcp:read")), "{:?}", da.params);
    assert!(param(&da.params, "client_id").is_some(), "a public client names itself");
    // The person saw the code and where to enter it (and the complete URI).
    let shown = &h.device_codes[0];
    assert!(shown.user_code.starts_with("WDJB-"));
    assert_eq!(shown.verification_uri.as_str(), format!("{ORIGIN}/device"));
    assert!(shown.verification_uri_complete.is_some());
    assert!(!format!("{shown:?}").contains(&shown.user_code), "Debug hides the code");
    // The poll: after the default 5 s interval, the device code grant with the resource.
    let p = polls(&h);
    assert_eq!(p.len(), 1);
    let first_sent = h.sent_at[h.sent.iter().position(|r| r.purpose == Purpose::DeviceAuthorization).unwrap()];
    assert!(p[0].0.as_millis() >= first_sent.as_millis() + 5000, "waited the interval");
    let f = form_of(&p[0].1);
    assert_eq!(param(&f, "grant_type"), Some(crate::device::DEVICE_CODE_GRANT));
    assert_eq!(param(&f, "resource"), Some(format!("{ORIGIN}/mcp").as_str()));
    assert!(param(&f, "code_verifier").is_none(), "no PKCE in this grant");
    // Tokens: a person's grant; the registration is filed.
    let t = h.auth.token_set().unwrap();
    assert_eq!(t.grant, Some(GrantKind::DeviceCode));
    assert!(t.refresh_token.is_some());
    assert!(h.persisted.iter().any(|p| matches!(p, Persist::Client(c) if c.allows_device_grant())));
}

#[test]
fn pending_then_slow_down_then_approval() {
    let mut h = device()
        .server(|o| {
            o.device_slow_downs = 2;
            o.device_interval = Some(5);
        })
        .start();
    h.device_person = Some((3, true));
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let p = polls(&h);
    let gaps: Vec<u64> = p.windows(2).map(|w| (w[1].0.as_millis() - w[0].0.as_millis()) / 1000).collect();
    // Two slow_down answers: 5 s → 10 s → 15 s; then pending at 15 s until the person approves.
    assert_eq!(gaps, vec![10, 15, 15], "{gaps:?}");
    assert_eq!(p.len(), 4);
}

#[test]
fn auto_uses_the_device_grant_only_in_a_remote_session() {
    let mut local = device_server().start();
    local.lazy_call("tools/list").unwrap();
    assert_eq!(local.server.authorization_requests().len(), 1, "a local session uses the browser");
    assert!(local.device_codes.is_empty());
    let mut remote = device_server().config(|c| c.remote_session = true).start();
    remote.lazy_call("tools/list").unwrap();
    assert!(remote.server.authorization_requests().is_empty());
    assert_eq!(remote.device_codes.len(), 1, "a remote session uses the device grant");
    // Remote, but the server offers no device grant: the browser (paste) flow as before.
    let mut plain = Scenario::new().config(|c| c.remote_session = true).start();
    plain.lazy_call("tools/list").unwrap();
    assert_eq!(plain.server.authorization_requests().len(), 1);
}

#[test]
fn device_asked_for_but_not_offered_is_a_configuration_error() {
    let mut h = Scenario::new().config(|c| c.login = LoginMethod::Device).start();
    let e = h.token_wanted().unwrap_err();
    assert!(matches!(e, Error::Authorization(AuthorizationError::DeviceUnsupported { .. })), "{e:?}");
    assert_eq!(e.blame(), Blame::Configuration);
}

#[test]
fn a_refusal_is_the_persons_and_an_expired_code_ends_the_login() {
    let mut h = device().start();
    h.device_person = Some((0, false));
    let e = h.token_wanted().unwrap_err();
    assert!(matches!(&e, Error::Authorization(AuthorizationError::Denied(r)) if r.error.as_str() == "access_denied"), "{e:?}");
    assert_eq!(e.blame(), Blame::User);

    let mut h = device().server(|o| o.device_expires_in = 30).start();
    h.device_person = None;
    let started = h.now;
    let e = h.token_wanted().unwrap_err();
    assert_eq!(e, Error::Authorization(AuthorizationError::DeviceCodeExpired));
    assert_eq!(e.blame(), Blame::User);
    let n = polls(&h).len();
    assert!((5..=6).contains(&n), "polled every 5 s for 30 s: {n}");
    assert!(h.now.as_millis() - started.as_millis() <= 31_000, "ended at expiry, not later");
}

#[test]
fn transient_failures_keep_polling() {
    let mut h = device().start();
    let mut failures = 0;
    h.intercept = Some(Box::new(move |req: &OutgoingRequest| {
        if req.purpose == Purpose::DeviceToken && failures < 2 {
            failures += 1;
            return Some(if failures == 1 {
                Err(TransportFailure { kind: TransportFailureKind::Timeout, message: "timed out".into() })
            } else {
                Ok(json(503, r#"{"error":"temporarily_unavailable"}"#))
            });
        }
        None
    }));
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(polls(&h).len(), 3);
}

#[test]
fn a_hostile_device_response_is_refused() {
    for (uri, why) in [("http://evil.example/device", "not HTTPS"), ("javascript:alert(1)", "not HTTPS")] {
        let mut h = device().server(|o| o.device_verification_uri = Some(uri.into())).start();
        let e = h.token_wanted().unwrap_err();
        assert!(matches!(&e, Error::Authorization(AuthorizationError::InvalidDeviceResponse(w)) if w.contains(why)), "{uri}: {e:?}");
        assert_eq!(e.blame(), Blame::AuthorizationServer);
        assert!(h.device_codes.is_empty(), "nothing shown");
    }
    // An interval of 0 is taken as 1 s: polling never spins.
    let mut h = device()
        .server(|o| {
            o.device_interval = Some(0);
            o.device_expires_in = 20;
        })
        .start();
    h.device_person = None;
    let _ = h.token_wanted().unwrap_err();
    assert!(polls(&h).len() <= 20, "{} polls in 20 s", polls(&h).len());
    // Missing fields, a control character in the code.
    for body in [
        r#"{"user_code":"A","verification_uri":"https://as.example/d","expires_in":60}"#,
        r#"{"device_code":"d","user_code":"A\u001b[2J","verification_uri":"https://as.example/d","expires_in":60}"#,
        r#"{"device_code":"d","user_code":"A","verification_uri":"https://as.example/d"}"#,
    ] {
        let mut h = device().start();
        h.intercept =
            Some(Box::new(move |req: &OutgoingRequest| (req.purpose == Purpose::DeviceAuthorization).then(|| Ok(json(200, body)))));
        let e = h.token_wanted().unwrap_err();
        assert!(matches!(e, Error::Authorization(AuthorizationError::InvalidDeviceResponse(_))), "{body}: {e:?}");
    }
}

#[test]
fn the_device_registration_is_reused_and_dpop_binds_the_tokens() {
    let mut h = device().server(|o| o.dpop = true).start();
    h.lazy_call("tools/list").unwrap();
    assert!(h.auth.token_set().unwrap().dpop_key.is_some(), "DPoP-bound");
    let p = polls(&h);
    assert!(p[0].1.request.headers().contains_key("dpop"), "the device token request carries a proof");
    // A second login (the grant was revoked) reuses the registration.
    let grant = h.server.ledger().unrevoked_grants().next().unwrap();
    h.server.revoke_grant(grant);
    h.server.options.refresh_invalid_grant = true;
    assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
    assert_eq!(h.server.count("/register"), 1, "registered once");
    assert_eq!(h.device_codes.len(), 2, "logged in twice on another device");
}

#[test]
fn a_cancelled_device_login_fails_and_keeps_nothing() {
    let mut h = device().start();
    h.device_person = None;
    let now = h.now;
    h.auth.handle_input(Input::TokenWanted { now }).unwrap();
    // Play until the code is shown.
    loop {
        match h.auth.poll_output() {
            Output::Send(req) => {
                let resp = h.server.handle(&req.request);
                h.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap();
            }
            Output::PrepareAttempt(_) => {
                let entropy = Entropy::from_bytes([7; 96]);
                h.auth.handle_input(Input::AttemptPrepared { now, entropy, callback: CallbackSetup::NotRequested }).unwrap();
            }
            Output::ShowDeviceCode(_) => break,
            Output::Persist(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(h.auth.state(), StateName::AwaitingDevice);
    assert!(matches!(h.auth.poll_output(), Output::Wait { until: Some(_) }));
    h.auth.handle_input(Input::Cancel { now, reason: CancelReason::User }).unwrap();
    assert!(matches!(h.auth.poll_output(), Output::Failed(Error::Authorization(AuthorizationError::Cancelled))));
    assert!(h.auth.token_set().is_none());
}
