//! Scenario tests: the [`Authorizer`] driven against the independent `mcp-oauth-tests` server in
//! memory, on a simulated clock. One file per behaviour (str0m).

use crate::authorizer::*;
use crate::config::Config;
use crate::entropy::Entropy;
use crate::error::Error;
use crate::http::{HttpResponse, OutgoingRequest, TransportFailure};
use crate::time::Timestamp;
use crate::token::Authorization;
use mcp_oauth_tests::{Options, PreClient, TestServer};
use std::time::Duration;
use url::Url;

mod client_credentials;
mod device;
mod discovery_order;
mod dpop;
mod enterprise_managed;
mod legacy;
mod lifecycle;
mod logout;
mod metadata_checks;
mod paste_fallback;
mod redirect_checks;
mod refresh;
mod registration;
mod restored;
mod review2_lifecycle;
mod review3_lifecycle;
mod review6;
mod review_device;
mod review_lifecycle;
mod review_logout;
mod review_spec;
mod safety;
mod step_up;
mod usage;

pub(crate) const ORIGIN: &str = "https://mcp.example.com";

/// What the simulated browser does with an authorization URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Browser {
    /// Follows it to the server and delivers the redirect to the loopback listener.
    Follow,
    /// Cannot open: the adapter reports `CallbackUnavailable`; the user pastes the redirect.
    FailsThenPaste,
    /// Opens, but the redirect never reaches the listener: time passes until the timeout, then
    /// the user pastes.
    NeverReturnsThenPaste,
    /// Opens, and nobody ever answers (not even a paste).
    Silent,
}

pub(crate) struct Harness {
    pub(crate) auth: Authorizer,
    pub(crate) server: TestServer,
    pub(crate) now: Timestamp,
    pub(crate) browser: Browser,
    /// Whether the adapter can bind the loopback port.
    pub(crate) can_bind: bool,
    /// Every `Persist` output, in order.
    pub(crate) persisted: Vec<Persist>,
    /// Every request the machine sent.
    pub(crate) sent: Vec<OutgoingRequest>,
    /// Names of outputs in order, for asserting sequences.
    pub(crate) trace: Vec<String>,
    pub(crate) callback_pages: Vec<crate::callback::Outcome>,
    entropy_counter: u8,
    /// The loopback port the simulated adapter binds for port 0.
    pub(crate) bound_port: u16,
    /// Redirects produced by the browser for a later paste.
    pending_paste: Option<String>,
    /// Answers a request instead of the server when it returns `Some` (outages, hostile hosts).
    pub(crate) intercept: Option<Intercept>,
    /// Edits the server's answer before the machine sees it.
    pub(crate) rewrite: Option<Rewrite>,
    /// Answers an MCP request instead of the resource server when it returns `Some`.
    pub(crate) rs_intercept: Option<RsIntercept>,
    /// MCP requests sent by [`mcp_call`](Self::mcp_call), retries included.
    pub(crate) mcp_requests: usize,
    /// When each request in `sent` was sent.
    pub(crate) sent_at: Vec<Timestamp>,
    /// Device codes shown to the person (RFC 8628).
    pub(crate) device_codes: Vec<crate::device::DeviceCode>,
    /// What the person does with a shown device code, after this many polls: approve (`true`),
    /// deny (`false`), or nothing (`None`).
    pub(crate) device_person: Option<(usize, bool)>,
    device_polls: usize,
    /// What the store held when the harness started.
    initial: Restored,
}

/// A stand-in for the network in front of the server: `Some` answers the request instead.
pub(crate) type Intercept = Box<dyn FnMut(&OutgoingRequest) -> Option<Result<HttpResponse, TransportFailure>>>;

/// Edits the server's answer before the machine sees it.
pub(crate) type Rewrite = Box<dyn FnMut(&OutgoingRequest, &mut HttpResponse)>;

/// A stand-in for the resource server: `Some` answers the MCP request instead.
pub(crate) type RsIntercept = Box<dyn FnMut(&http::Request<Vec<u8>>) -> Option<HttpResponse>>;

/// A JSON response with this status and body.
pub(crate) fn json(status: u16, body: &str) -> HttpResponse {
    http::Response::builder().status(status).header("content-type", "application/json").body(body.as_bytes().to_vec()).unwrap()
}

/// True for a token request with this grant type.
pub(crate) fn is_grant(req: &OutgoingRequest, grant: &str) -> bool {
    req.request.uri().path().ends_with("/token")
        && url::form_urlencoded::parse(req.request.body()).any(|(k, v)| k == "grant_type" && v == grant)
}

pub(crate) fn options() -> Options {
    Options::new(ORIGIN)
}

pub(crate) fn config(o: &Options) -> Config {
    Config::new(Url::parse(&o.mcp_url()).unwrap())
}

/// The service `svc`, registered in advance with the secret `svc-secret`.
pub(crate) fn svc_client() -> PreClient {
    PreClient { id: "svc".into(), secret: Some("svc-secret".into()), jwt_key: None }
}

/// Configures the client as the service `svc` with its secret.
pub(crate) fn svc_secret(c: &mut Config) {
    c.client_id = Some("svc".into());
    c.client_secret = Some(crate::secret::ClientSecret::new("svc-secret"));
}

/// A client registered in advance with the public key of [`crate::jwt::TEST_KEY`]
/// (`private_key_jwt`).
pub(crate) fn key_client(id: &str) -> PreClient {
    use p256::pkcs8::DecodePrivateKey;
    let sk = p256::SecretKey::from_pkcs8_pem(crate::jwt::TEST_KEY).unwrap();
    PreClient { id: id.into(), secret: None, jwt_key: Some(sk.public_key().to_sec1_bytes().to_vec()) }
}

/// A server for machines: the client credentials grant only, no registration, [`svc_client`]
/// registered in advance (the client is configured with [`svc_secret`], or otherwise).
pub(crate) fn service() -> Scenario {
    Scenario::new().server(|o| {
        o.grant_types = vec!["client_credentials".into()];
        o.dcr = false;
        o.clients = vec![svc_client()];
    })
}

/// The setup of a scenario, as a builder (ureq-proto's habit): the server's options, the
/// client's configuration, what the store restores and how the simulated adapter behaves;
/// [`start`](Self::start) makes the [`Harness`]. Without edits: the default server
/// ([`options`]), the default configuration for it ([`config`]), an empty store, a browser that
/// follows the authorization URL and a loopback port that can be bound.
///
/// ```ignore
/// let mut h = Scenario::new().server(|o| o.dpop = true).config(|c| c.step_up = false).start();
/// ```
pub(crate) struct Scenario {
    options: Options,
    /// A server that already ran (see [`on`](Scenario::on)).
    server: Option<TestServer>,
    config: Vec<ConfigEdit>,
    restored: Restored,
    browser: Browser,
    can_bind: bool,
}

/// An edit of the configuration a [`Scenario`] applies at `start`.
type ConfigEdit = Box<dyn FnOnce(&mut Config)>;

impl Scenario {
    pub(crate) fn new() -> Self {
        Scenario {
            options: options(),
            server: None,
            config: Vec::new(),
            restored: Restored::default(),
            browser: Browser::Follow,
            can_bind: true,
        }
    }

    /// Runs against this server as it is (its options, registrations and grants): the next run
    /// of a client, or another client of the same server.
    pub(crate) fn on(mut self, server: TestServer) -> Self {
        self.options = server.options.clone();
        self.server = Some(server);
        self
    }

    /// Edits the server's options (those of the server given to [`on`](Self::on), if any).
    pub(crate) fn server(mut self, edit: impl FnOnce(&mut Options)) -> Self {
        edit(&mut self.options);
        self
    }

    /// Edits the client's configuration. Edits apply in order, at [`start`](Self::start), to
    /// [`config`] of the final options.
    pub(crate) fn config(mut self, edit: impl FnOnce(&mut Config) + 'static) -> Self {
        self.config.push(Box::new(edit));
        self
    }

    /// What the adapter's store gives the authorizer.
    pub(crate) fn restored(mut self, restored: Restored) -> Self {
        self.restored = restored;
        self
    }

    /// What the simulated browser does with the authorization URL.
    pub(crate) fn browser(mut self, browser: Browser) -> Self {
        self.browser = browser;
        self
    }

    /// The adapter cannot bind the loopback port (it is in use).
    pub(crate) fn cannot_bind(mut self) -> Self {
        self.can_bind = false;
        self
    }

    /// The harness: the server (a new one with these options unless [`on`](Self::on) gave one),
    /// an authorizer with this configuration and store.
    pub(crate) fn start(self) -> Harness {
        let mut c = config(&self.options);
        for edit in self.config {
            edit(&mut c);
        }
        let server = match self.server {
            Some(mut server) => {
                server.options = self.options;
                server
            }
            None => TestServer::new(self.options),
        };
        let now = Timestamp::from_secs(1_700_000_000);
        Harness {
            auth: Authorizer::new(c, self.restored.clone(), now).expect("config"),
            server,
            now,
            browser: self.browser,
            can_bind: self.can_bind,
            persisted: Vec::new(),
            sent: Vec::new(),
            trace: Vec::new(),
            callback_pages: Vec::new(),
            entropy_counter: 0,
            bound_port: 50123,
            pending_paste: None,
            intercept: None,
            rewrite: None,
            rs_intercept: None,
            mcp_requests: 0,
            sent_at: Vec::new(),
            device_codes: Vec::new(),
            device_person: Some((0, true)),
            device_polls: 0,
            initial: self.restored.clone(),
        }
    }
}

/// What the store would give a new process: what it held at the start, with everything
/// persisted since (the last registration per issuer and the last tokens).
impl Harness {
    pub(crate) fn stored(&self) -> Restored {
        let mut r = self.initial.clone();
        for p in &self.persisted {
            match p {
                Persist::Client(c) => {
                    r.clients.retain(|x| x.issuer != c.issuer);
                    r.clients.push(c.clone());
                }
                Persist::ForgetClient { issuer } => r.clients.retain(|x| &x.issuer != issuer),
                Persist::Tokens(t) => r.tokens = Some(t.clone()),
                Persist::ForgetTokens { .. } => r.tokens = None,
            }
        }
        r
    }
}

/// How a flow the harness ran ended.
enum Ended {
    Ready(Authorization),
    LoggedOut(crate::LogoutReport),
}

impl Harness {
    pub(crate) fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }

    fn entropy(&mut self) -> Entropy {
        self.entropy_counter = self.entropy_counter.wrapping_add(1);
        let mut b = [0u8; 96];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31).wrapping_add(self.entropy_counter);
        }
        Entropy::from_bytes(b)
    }

    /// Follows an authorization URL at the server: returns the redirect `Location`.
    pub(crate) fn visit(&mut self, url: &Url) -> Option<String> {
        let req = http::Request::get(url.as_str()).body(Vec::new()).unwrap();
        let resp = self.server.handle(&req);
        resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned())
    }

    /// Feeds `first`, then plays adapter until `Ready` or `Failed` (at most 100 steps).
    pub(crate) fn drive(&mut self, first: Input) -> Result<Authorization, Error> {
        match self.run(first)? {
            Ended::Ready(a) => Ok(a),
            Ended::LoggedOut(r) => panic!("a token flow logged out: {r:?}"),
        }
    }

    /// Logs out, keeping tokens an unreachable server could not revoke (the default).
    pub(crate) fn logout(&mut self) -> Result<crate::LogoutReport, Error> {
        self.logout_with(crate::IfUnreachable::Keep)
    }

    /// Logs out: plays adapter until `LoggedOut` (or `Failed`).
    pub(crate) fn logout_with(&mut self, if_unreachable: crate::IfUnreachable) -> Result<crate::LogoutReport, Error> {
        let now = self.now;
        match self.run(Input::LogoutWanted { now, if_unreachable })? {
            Ended::LoggedOut(r) => Ok(r),
            Ended::Ready(_) => panic!("a logout ended Ready"),
        }
    }

    fn run(&mut self, first: Input) -> Result<Ended, Error> {
        self.auth.handle_input(first)?;
        for _ in 0..100 {
            let out = self.auth.poll_output();
            self.trace.push(format!("{out:?}").split(['(', ' ', '{']).next().unwrap_or("").to_owned());
            let next = match out {
                Output::Send(req) => {
                    self.sent.push(req.clone());
                    self.sent_at.push(self.now);
                    if req.purpose == crate::http::Purpose::DeviceToken {
                        self.device_polls += 1;
                        if let Some((after, approve)) = self.device_person {
                            if self.device_polls > after {
                                for code in self.server.pending_user_codes() {
                                    self.server.approve_device(&code, approve);
                                }
                            }
                        }
                    }
                    if let Some(result) = self.intercept.as_mut().and_then(|f| f(&req)) {
                        Input::Response { now: self.now, id: req.id, result }
                    } else {
                        let mut resp = self.server.handle(&req.request);
                        if let Some(f) = self.rewrite.as_mut() {
                            f(&req, &mut resp);
                        }
                        if resp.body().len() > req.max_response_bytes {
                            resp.body_mut().truncate(req.max_response_bytes + 1);
                        }
                        Input::Response { now: self.now, id: req.id, result: Ok(resp) }
                    }
                }
                Output::PrepareAttempt(plan) => {
                    let callback = match &plan.redirect {
                        None => CallbackSetup::NotRequested,
                        Some(_) if !self.can_bind => CallbackSetup::Unavailable("address in use".into()),
                        Some(r) => CallbackSetup::Listening(r.redirect_uri(if r.port == 0 { self.bound_port } else { r.port })),
                    };
                    let entropy = self.entropy();
                    Input::AttemptPrepared { now: self.now, entropy, callback }
                }
                Output::OpenAuthorizationUrl { url, .. } => match self.browser {
                    Browser::Follow => match self.visit(&url) {
                        Some(loc) if self.can_bind => Input::Redirect { now: self.now, url: loc, source: RedirectSource::Loopback },
                        Some(loc) => {
                            self.pending_paste = Some(loc);
                            continue;
                        }
                        None => continue,
                    },
                    Browser::FailsThenPaste => {
                        self.pending_paste = self.visit(&url);
                        Input::CallbackUnavailable { now: self.now, reason: "no display".into() }
                    }
                    Browser::NeverReturnsThenPaste => {
                        self.pending_paste = self.visit(&url);
                        continue;
                    }
                    Browser::Silent => continue,
                },
                Output::PromptForRedirect { .. } => match self.pending_paste.take() {
                    Some(url) => Input::Redirect { now: self.now, url, source: RedirectSource::Paste },
                    None => continue,
                },
                Output::AnswerCallback(o) | Output::RejectCallback(o) => {
                    self.callback_pages.push(o);
                    continue;
                }
                Output::Persist(p) => {
                    self.persisted.push(p);
                    continue;
                }
                Output::Wait { until: Some(t) } => {
                    self.now = self.now.max(t);
                    Input::Timeout { now: self.now }
                }
                Output::Wait { until: None } => panic!("stalled: Wait without deadline in {:?}", self.auth.state()),
                Output::ShowDeviceCode(code) => {
                    self.device_codes.push(code);
                    continue;
                }
                Output::Ready(a) => return Ok(Ended::Ready(a)),
                Output::LoggedOut(r) => return Ok(Ended::LoggedOut(r)),
                Output::Failed(e) => return Err(e),
            };
            self.auth.handle_input(next)?;
        }
        panic!("no Ready or Failed within 100 steps; trace {:?}", self.trace)
    }

    pub(crate) fn token_wanted(&mut self) -> Result<Authorization, Error> {
        let now = self.now;
        self.drive(Input::TokenWanted { now })
    }

    /// One MCP request as an application makes it: token, send, on a challenge re-authorize and
    /// retry, as often as the machine allows. Returns the final HTTP status.
    pub(crate) fn mcp_call(&mut self, method: &str, params: serde_json::Value) -> Result<http::Response<Vec<u8>>, Error> {
        let mut auth = self.token_wanted()?;
        loop {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
            let url = self.server.options.mcp_url();
            let mut req = http::Request::post(&url)
                .header("content-type", "application/json")
                .header("authorization", auth.header_value())
                .body(body.into_bytes())
                .unwrap();
            self.entropy_counter = self.entropy_counter.wrapping_add(1);
            if let Some(proof) = auth.dpop_proof("POST", &Url::parse(&url).unwrap(), self.now, &[self.entropy_counter]) {
                req.headers_mut().insert("dpop", proof);
            }
            self.mcp_requests += 1;
            assert!(self.mcp_requests < 1000, "the client keeps retrying one request");
            let resp = match self.rs_intercept.as_mut().and_then(|f| f(&req)) {
                Some(r) => r,
                None => self.server.handle(&req),
            };
            let status = resp.status().as_u16();
            if status != 401 && status != 403 {
                return Ok(resp);
            }
            let www: Vec<_> = resp.headers().get_all("www-authenticate").iter().cloned().collect();
            let dpop_nonce = resp.headers().get("dpop-nonce").map(|v| v.to_str().unwrap().to_owned());
            let now = self.now;
            auth = self.drive(Input::Challenged { now, status, www_authenticate: www, dpop_nonce })?;
        }
    }

    /// Like [`mcp_call`](Self::mcp_call) but starts without a token (lazy connect): the first
    /// request goes out bare and the 401 starts the flow.
    pub(crate) fn lazy_call(&mut self, method: &str) -> Result<http::Response<Vec<u8>>, Error> {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}).to_string();
        let req = http::Request::post(self.server.options.mcp_url()).body(body.into_bytes()).unwrap();
        let resp = self.server.handle(&req);
        assert_eq!(resp.status(), 401, "an unauthenticated request must be challenged");
        let www: Vec<_> = resp.headers().get_all("www-authenticate").iter().cloned().collect();
        let now = self.now;
        self.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None })?;
        self.mcp_call(method, serde_json::json!({}))
    }

    /// Feeds `TokenWanted` and answers requests honestly until the machine asks to prepare an
    /// attempt; returns the plan without answering it.
    pub(crate) fn until_prepare(&mut self) -> AttemptPlan {
        let now = self.now;
        self.auth.handle_input(Input::TokenWanted { now }).unwrap();
        loop {
            match self.auth.poll_output() {
                Output::Send(req) => {
                    let resp = self.server.handle(&req.request);
                    self.auth.handle_input(Input::Response { now, id: req.id, result: Ok(resp) }).unwrap();
                }
                Output::Persist(p) => self.persisted.push(p),
                Output::PrepareAttempt(plan) => return plan,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The targets (path and query) the machine sent, in order.
    pub(crate) fn targets(&self) -> Vec<String> {
        self.sent.iter().map(|r| r.request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default()).collect()
    }

    /// Decoded form parameters of the last request to a path.
    pub(crate) fn last_form(&self, path: &str) -> Vec<(String, String)> {
        let r = self.sent.iter().rev().find(|r| r.request.uri().path() == path).expect("no such request");
        url::form_urlencoded::parse(r.request.body()).into_owned().collect()
    }
}

pub(crate) fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}
