//! Entry points for fuzz targets and the corpus replay test (feature `fuzzing`).
//!
//! Each function takes arbitrary bytes and must return without panicking; any error is a typed
//! value. The fuzz crate's targets are one line each, calling these.

use crate::http::HttpResponse;

fn response(status: u16, body: &[u8]) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .unwrap_or_else(|_| http::Response::new(body.to_vec()))
}

/// `WWW-Authenticate`: the bytes are split at `\n` into field lines.
pub fn www_authenticate(data: &[u8]) {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if let Ok(challenges) = crate::discovery::parse_www_authenticate(lines.iter().copied()) {
        // What the parser accepted must survive a render and a second parse unchanged.
        let rendered = crate::discovery::render_www_authenticate(&challenges);
        if rendered.len() <= crate::discovery::MAX_WWW_AUTHENTICATE_BYTES {
            let again = crate::discovery::parse_www_authenticate([rendered.as_bytes()]);
            assert_eq!(again.as_ref().ok(), Some(&challenges), "render/parse round trip");
        }
    }
    let _ = crate::discovery::bearer_challenge(lines.iter().copied());
}

/// Protected resource and authorization server metadata documents.
pub fn metadata(data: &[u8]) {
    let _ = crate::metadata::ProtectedResourceMetadata::from_json(data);
    let _ = crate::metadata::AuthorizationServerMetadata::from_json(data, "https://as.example.com", false);
    let _ = crate::metadata::AuthorizationServerMetadata::from_json(data, "https://as.example.com", true);
}

/// Token responses and error bodies, under several statuses.
pub fn token_response(data: &[u8]) {
    for status in [200, 400, 401, 500] {
        let _ = crate::token::TokenResponse::from_http(&response(status, data), crate::http::Purpose::CodeExchange);
    }
}

/// Registration responses.
pub fn registration_response(data: &[u8]) {
    let redirect = url::Url::parse("http://127.0.0.1:8976/callback").unwrap_or_else(|_| unreachable!());
    let md = crate::registration::ClientMetadata::native(&redirect, "fuzz", None);
    for status in [200, 201, 400] {
        let _ = crate::registration::parse_registration_response(&response(status, data), "https://as.example.com", &md);
    }
}

/// The loopback request head, whole and cut at every length.
pub fn callback_head(data: &[u8]) {
    let whole = crate::callback::parse_request_head(data);
    if let Ok(req) = &whole {
        let _ = req.path();
    }
    for cut in 0..data.len().min(512) {
        let _ = crate::callback::parse_request_head(&data[..cut]);
    }
}

/// A pasted or delivered redirect URL, checked against a fixed attempt.
pub fn redirect_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let redirect = url::Url::parse("http://127.0.0.1:8976/callback").unwrap_or_else(|_| unreachable!());
    let state = crate::secret::CsrfState::new("fuzz-state");
    if let Ok(p) = crate::authorize::parse_redirect(&text, &redirect) {
        let _ = crate::authorize::check_redirect(
            p,
            &crate::authorize::RedirectExpectations { state: &state, issuer: Some("https://as.example.com"), iss_supported: true },
        );
    }
}

/// A reader of fuzz bytes (str0m's `Rng` idea): every decision comes from the input.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.u8()) % items.len()]
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// A plausible answer for a request, so the fuzzer reaches deep states.
fn canned(purpose: crate::http::Purpose, issuer: &str) -> String {
    use crate::http::Purpose::*;
    match purpose {
        ResourceMetadata => {
            format!(r#"{{"resource":"https://mcp.example.com/mcp","authorization_servers":["{issuer}"],"scopes_supported":["a","b"]}}"#)
        }
        ServerMetadata => format!(
            r#"{{"issuer":"{issuer}","authorization_endpoint":"{issuer}/authorize","token_endpoint":"{issuer}/token","registration_endpoint":"{issuer}/register","code_challenge_methods_supported":["S256"],"response_types_supported":["code"],"authorization_response_iss_parameter_supported":true,"dpop_signing_alg_values_supported":["ES256"],"revocation_endpoint":"{issuer}/revoke","device_authorization_endpoint":"{issuer}/device_authorization"}}"#
        ),
        Registration => r#"{"client_id":"fuzz-client","token_endpoint_auth_method":"none"}"#.into(),
        DeviceAuthorization => {
            format!(
                r#"{{"device_code":"dc-fuzz","user_code":"ABCD-EFGH","verification_uri":"{issuer}/device","expires_in":60,"interval":1}}"#
            )
        }
        _ => r#"{"access_token":"at-fuzz","token_type":"Bearer","expires_in":60,"refresh_token":"rt-fuzz"}"#.into(),
    }
}

/// The whole machine, with the fuzzer playing the servers and the adapter. Invariants: no
/// panic, only secure URLs, fresh request ids, the code of a redirect with a mismatched `state` never exchanged,
/// no secret in the `Debug` of any output.
pub fn authorizer(data: &[u8]) {
    use crate::authorizer::*;
    use crate::http::{Purpose, TransportFailure, TransportFailureKind};
    let mut r = Bytes(data);
    let issuer = "https://as.example.com";
    let mut config = crate::Config::new(url::Url::parse("https://mcp.example.com/mcp").unwrap_or_else(|_| unreachable!()));
    config.dpop = r.pick(&[crate::config::DpopMode::Auto, crate::config::DpopMode::Never]);
    config.login = r.pick(&[crate::config::LoginMethod::Auto, crate::config::LoginMethod::Device]);
    let mut now = crate::Timestamp::from_secs(1_700_000_000);
    let Ok(mut auth) = crate::Authorizer::new(config, Restored::default(), now) else { return };
    let mut ids = std::collections::HashSet::new();
    let mut pending: Option<Input> = None;
    for _ in 0..64 {
        if r.done() {
            break;
        }
        let input = pending.take().unwrap_or_else(|| {
            let pick = r.u8();
            if pick % 7 == 1 {
                Input::LogoutWanted { now, if_unreachable: r.pick(&[crate::IfUnreachable::Keep, crate::IfUnreachable::Forget]) }
            } else if pick % 3 == 0 {
                let www = r.take(usize::from(r.0.first().copied().unwrap_or(0) % 64));
                let www = http::HeaderValue::from_bytes(&www).map(|v| vec![v]).unwrap_or_default();
                Input::Challenged { now, status: r.pick(&[401, 403, 500]), www_authenticate: www, dpop_nonce: None }
            } else {
                Input::TokenWanted { now }
            }
        });
        let _ = auth.handle_input(input);
        // Time moves, sometimes backwards.
        now = crate::Timestamp(now.0.saturating_add_signed(i64::from(r.u16() as i16) * 1000));
        loop {
            let out = auth.poll_output();
            let debug = format!("{out:?}");
            assert!(
                !debug.contains("at-fuzz") && !debug.contains("rt-fuzz") && !debug.contains("code-fuzz") && !debug.contains("dc-fuzz"),
                "secret in Debug: {debug}"
            );
            match out {
                Output::Send(req) => {
                    let url = url::Url::parse(&req.request.uri().to_string()).unwrap_or_else(|_| unreachable!());
                    assert!(crate::http::is_secure_endpoint(&url), "request to {url}");
                    assert!(ids.insert(req.id), "id reused");
                    // A redirect without our state is refused and the wait goes on (a later one
                    // with it may finish the login): its code is never exchanged.
                    let forged = url::form_urlencoded::parse(req.request.body()).any(|(k, v)| k == "code" && v == "code-forged");
                    assert!(!(req.purpose == Purpose::CodeExchange && forged), "a code from a redirect with the wrong state was exchanged");
                    let result = match r.u8() % 8 {
                        0 => Err(TransportFailure {
                            kind: r.pick(&[TransportFailureKind::Timeout, TransportFailureKind::BodyTooLarge]),
                            message: String::new(),
                        }),
                        1 => {
                            // Random bodies never contain the markers; only what the machine
                            // learned from canned answers counts as a leak.
                            let body = String::from_utf8_lossy(&r.take(64)).replace("fuzz", "f_zz").into_bytes();
                            Ok(http::Response::builder().status(r.pick(&[200u16, 400, 404, 500])).body(body).unwrap_or_default())
                        }
                        2 => Ok(http::Response::builder().status(200).body(vec![b' '; req.max_response_bytes + 1]).unwrap_or_default()),
                        _ => {
                            let status = if matches!(req.purpose, Purpose::Registration) { 201 } else { 200 };
                            Ok(http::Response::builder().status(status).body(canned(req.purpose, issuer).into_bytes()).unwrap_or_default())
                        }
                    };
                    pending = Some(Input::Response { now, id: req.id, result });
                    break;
                }
                Output::PrepareAttempt(plan) => {
                    let mut e = [0u8; crate::Entropy::LEN];
                    e.iter_mut().for_each(|b| *b = r.u8());
                    let callback = match (&plan.redirect, r.u8() % 2) {
                        (None, _) => CallbackSetup::NotRequested,
                        (Some(p), 0) => CallbackSetup::Listening(p.redirect_uri(40000)),
                        (Some(_), _) => CallbackSetup::Unavailable("busy".into()),
                    };
                    pending = Some(Input::AttemptPrepared { now, entropy: crate::Entropy::from_bytes(e), callback });
                    break;
                }
                Output::OpenAuthorizationUrl { url, .. } | Output::PromptForRedirect { url } => {
                    let state = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).unwrap_or_default();
                    let redirect = url.query_pairs().find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned()).unwrap_or_default();
                    pending = Some(match r.u8() % 5 {
                        0 => Input::CallbackUnavailable { now, reason: String::new() },
                        1 => Input::Timeout { now },
                        2 => Input::Redirect {
                            now,
                            url: format!("{redirect}?code=code-forged&state=x{state}&iss={issuer}"),
                            source: r.pick(&[RedirectSource::Loopback, RedirectSource::Paste]),
                        },
                        3 => Input::Redirect { now, url: String::from_utf8_lossy(&r.take(80)).into_owned(), source: RedirectSource::Paste },
                        _ => Input::Redirect {
                            now,
                            url: format!("{redirect}?code=code-fuzz&state={state}&iss={issuer}"),
                            source: RedirectSource::Loopback,
                        },
                    });
                    break;
                }
                Output::Wait { until: Some(t) } => {
                    pending = Some(Input::Timeout { now: now.max(t) });
                    break;
                }
                Output::LoggedOut(report) => {
                    assert!(!report.forgotten || auth.token_set().is_none() && auth.clients().is_empty(), "a logout kept credentials");
                    break;
                }
                Output::Wait { until: None } | Output::Ready(_) | Output::Failed(_) => break,
                _ => {}
            }
        }
    }
}
