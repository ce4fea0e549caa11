//! Generated scripts of server and adapter behaviour, checked against the invariants of
//! STYLE.md: no panic; no request to a non-HTTPS non-loopback URL; every Send has a fresh id;
//! stale ids are refused; no code exchange after a state mismatch; `Ready` only after a
//! successful token response (or with a token already held); no secret in any output's
//! `Debug`; a deadline never moves later because the clock jumped backwards; at most the
//! configured number of authorizations per request.

use mcp_oauth_core::http::{is_secure_endpoint, Purpose, RequestId, TransportFailure, TransportFailureKind};
use mcp_oauth_core::{Authorizer, CallbackSetup, Config, Entropy, Input, Output, RedirectSource, Restored, Timestamp};
use mcp_oauth_tests::{Options, TestServer};
use proptest::prelude::*;
use std::collections::HashSet;

#[derive(Debug, Clone)]
enum Reply {
    Honest,
    Status(u16),
    Junk(Vec<u8>),
    Huge,
    Transport,
    StaleFirst,
}

#[derive(Debug, Clone)]
enum Browser {
    Follow,
    WrongState,
    Fails,
    Nothing,
}

#[derive(Debug, Clone)]
struct Step {
    reply: Reply,
    browser: Browser,
    bind: bool,
    /// Clock change in seconds before the next input (negative: the clock jumps backwards).
    clock: i64,
    challenge: bool,
}

fn step() -> impl Strategy<Value = Step> {
    let reply = prop_oneof![
        8 => Just(Reply::Honest),
        1 => prop::sample::select(vec![200u16, 201, 302, 400, 401, 403, 404, 500, 503]).prop_map(Reply::Status),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Reply::Junk),
        1 => Just(Reply::Huge),
        1 => Just(Reply::Transport),
        1 => Just(Reply::StaleFirst),
    ];
    let browser =
        prop_oneof![4 => Just(Browser::Follow), 1 => Just(Browser::WrongState), 1 => Just(Browser::Fails), 1 => Just(Browser::Nothing)];
    (reply, browser, any::<bool>(), -400i64..400, prop::bool::weighted(0.2)).prop_map(|(reply, browser, bind, clock, challenge)| Step {
        reply,
        browser,
        bind,
        clock,
        challenge,
    })
}

fn server_options(variant: u8) -> Options {
    let mut o = Options::new("https://mcp.example.com");
    match variant % 4 {
        0 => {}
        1 => o.issuer_path = "/tenant".into(),
        2 => o.prm = mcp_oauth_tests::PrmLocation::None,
        _ => o.token_lifetime = Some(30),
    }
    o
}

fn is_token_purpose(p: Purpose) -> bool {
    matches!(p, Purpose::CodeExchange | Purpose::Refresh | Purpose::ClientCredentials)
}

fn run(variant: u8, script: Vec<Step>) -> Result<(), TestCaseError> {
    let mut server = TestServer::new(server_options(variant));
    let mut now = Timestamp::from_secs(1_700_000_000);
    let config = Config::new(server.options.mcp_url().parse().unwrap());
    let max_attempts = usize::from(config.max_authorization_attempts);
    let mut auth = Authorizer::new(config, Restored::default(), now).unwrap();
    let mut ids = HashSet::new();
    let mut pending: Option<Input> = None;
    // Per-request bookkeeping.
    // The token held, still valid, when the request started: a refresh ahead of expiry that
    // fails for a transient reason hands it out (the grant is kept), without a token response.
    let mut held: Option<String> = None;
    let mut token_response_ok = false;
    let mut mismatch_delivered = false;
    let mut authz_at_start = 0;
    let mut deadline: Option<Timestamp> = None;

    for s in script.iter().cycle().take(150) {
        let input = match pending.take() {
            Some(i) => i,
            None => {
                held = auth.token_set().filter(|t| t.expires_at.is_none_or(|e| e > now)).map(|t| t.access_token.secret().to_owned());
                token_response_ok = false;
                mismatch_delivered = false;
                authz_at_start = server.authorization_requests().len();
                deadline = None;
                if s.challenge {
                    held = None;
                    let www = vec![http::HeaderValue::from_static("Bearer error=\"invalid_token\"")];
                    Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None }
                } else {
                    Input::TokenWanted { now }
                }
            }
        };
        // A usage error is allowed (e.g. a late input); it must change nothing, checked below.
        let _ = auth.handle_input(input);
        now = Timestamp(now.0.saturating_add_signed(s.clock * 1000));

        loop {
            let out = auth.poll_output();
            let debug = format!("{out:?}");
            for marker in ["at-", "rt-", "code-", "Bearer a"] {
                prop_assert!(!debug.contains(marker), "secret in Debug: {}", debug);
            }
            match out {
                Output::Send(req) => {
                    let url: url::Url = req.request.uri().to_string().parse().unwrap();
                    prop_assert!(is_secure_endpoint(&url), "request to {}", url);
                    prop_assert!(ids.insert(req.id), "id {} reused", req.id);
                    prop_assert!(!(mismatch_delivered && req.purpose == Purpose::CodeExchange), "code exchanged after a state mismatch");
                    let result = match &s.reply {
                        Reply::Honest => Ok(server.handle(&req.request)),
                        Reply::Status(st) => Ok(http::Response::builder().status(*st).body(b"{}".to_vec()).unwrap()),
                        Reply::Junk(b) => Ok(http::Response::builder().status(200).body(b.clone()).unwrap()),
                        Reply::Huge => Ok(http::Response::builder().status(200).body(vec![b' '; req.max_response_bytes + 1]).unwrap()),
                        Reply::Transport => Err(TransportFailure { kind: TransportFailureKind::Timeout, message: "t".into() }),
                        Reply::StaleFirst => {
                            let state = auth.state();
                            let stale = RequestId(req.id.0 + 1000);
                            let e = auth.handle_input(Input::Response { now, id: stale, result: Ok(http::Response::new(Vec::new())) });
                            prop_assert!(e.is_err(), "unknown id accepted");
                            prop_assert_eq!(auth.state(), state, "a usage error changed the state");
                            Ok(server.handle(&req.request))
                        }
                    };
                    if is_token_purpose(req.purpose) {
                        token_response_ok = result.as_ref().is_ok_and(|r| r.status().is_success());
                    }
                    pending = Some(Input::Response { now, id: req.id, result });
                    break;
                }
                Output::PrepareAttempt(plan) => {
                    let callback = match (&plan.redirect, s.bind) {
                        (None, _) => CallbackSetup::NotRequested,
                        (Some(r), true) => CallbackSetup::Listening(r.redirect_uri(if r.port == 0 { 41000 } else { r.port })),
                        (Some(_), false) => CallbackSetup::Unavailable("in use".into()),
                    };
                    let mut b = [7u8; 96];
                    b[..8].copy_from_slice(&(ids.len() as u64).to_le_bytes());
                    pending = Some(Input::AttemptPrepared { now, entropy: Entropy::from_bytes(b), callback });
                    break;
                }
                Output::OpenAuthorizationUrl { url, deadline: d } => {
                    deadline = Some(d);
                    match s.browser {
                        Browser::Follow | Browser::WrongState => {
                            let resp = server.handle(&http::Request::get(url.as_str()).body(Vec::new()).unwrap());
                            if let Some(loc) = resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                                let mut loc = loc.to_owned();
                                if matches!(s.browser, Browser::WrongState) && loc.contains("state=") {
                                    loc = loc.replace("state=", "state=X");
                                    mismatch_delivered = true;
                                }
                                let source = if s.bind { RedirectSource::Loopback } else { RedirectSource::Paste };
                                pending = Some(Input::Redirect { now, url: loc, source });
                            }
                        }
                        Browser::Fails => pending = Some(Input::CallbackUnavailable { now, reason: "no display".into() }),
                        Browser::Nothing => {}
                    }
                }
                Output::PromptForRedirect { .. } | Output::AnswerCallback(_) | Output::Persist(_) => {}
                Output::Wait { until } => {
                    if let (Some(u), Some(d)) = (until, deadline) {
                        // Only a fallback to paste may set a new deadline, and it starts from
                        // the (clamped) present; a backwards clock never pushes it later.
                        prop_assert!(u >= d, "deadline moved earlier: {:?} < {:?}", u, d);
                    }
                    if let Some(u) = until {
                        deadline = Some(u);
                        if pending.is_none() {
                            pending = Some(Input::Timeout { now: now.max(u) });
                        }
                    }
                    break;
                }
                Output::Ready(a) => {
                    let held_one = held.as_deref() == Some(a.access_token().secret());
                    prop_assert!(token_response_ok || held_one, "Ready without a token response, and not with the valid token held");
                    let n = server.authorization_requests().len() - authz_at_start;
                    prop_assert!(n <= max_attempts, "{} authorizations in one request", n);
                    pending = None;
                    break;
                }
                Output::Failed(_) => {
                    pending = None;
                    break;
                }
                _ => break,
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn flows_keep_their_invariants(variant in 0u8..4, script in prop::collection::vec(step(), 1..24)) {
        run(variant, script)?;
    }
}
