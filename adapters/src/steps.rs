//! The adapter's side of one flow, shared by every runtime: [`Steps`] turns core's outputs
//! into the I/O steps one flow needs ([`Step`]), and decides how the user is reached.
//!
//! Core decides everything about OAuth; what is left for an adapter is how to reach the user:
//! when a prompt starts, whether a failed browser means "paste now" or "nobody can log in", what
//! a closed prompt means while the listener still runs. Those choices live here, once, and the
//! blocking and async loops only do the I/O each [`Step`] names and report back.
//!
//! It also writes the flow's log, so both adapters log the same steps in the same words:
//! records of target `mcp_oauth_client::flow`, each step at DEBUG (the checks that need no I/O
//! at TRACE), prefixed with the MCP server. They carry no secret: no token, code, verifier or
//! client secret, and no URL's query string (authorization URLs carry the state, redirects the
//! code), userinfo or fragment.

use crate::error::Error;
use crate::interaction::{Interaction, UrlHandled};
use log::{debug, trace};

/// The log target of every flow record (documented at the crate root; stable across renames).
const TARGET: &str = "mcp_oauth_client::flow";
use mcp_oauth_core::callback::response_page;
use mcp_oauth_core::device::DeviceCode;
use mcp_oauth_core::http::{HttpResponse, OutgoingRequest, Purpose, TransportFailure};
use mcp_oauth_core::{Authorization, Authorizer, CallbackSetup, CancelReason, Config, Entropy, Input, Output, Persist, RedirectPlan};
use mcp_oauth_core::{LogoutReport, RedirectSource, Restored, StateName, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use url::Url;

/// The I/O one loop iteration must do.
pub(crate) enum Step {
    /// Send it; feed the answer as [`Input::Response`].
    Send(OutgoingRequest),
    /// Gather entropy and, for `Some`, bind the listener; then [`Steps::prepared`].
    Prepare(Option<RedirectPlan>),
    /// Give the URL to the interaction ([`Interaction::handle_url`]); then [`Steps::url_handled`].
    OpenUrl(Url),
    /// Start the paste prompt for this authorization URL; its answer is an [`Event`].
    StartPrompt(Url),
    /// Write this page to the connection that delivered the callback; stop the listener and
    /// cancel the prompt.
    Answer(Vec<u8>),
    /// Write this page to the connection that delivered the callback (a forged one); keep
    /// listening and prompting.
    Reject(Vec<u8>),
    /// Save it before going on.
    Persist(Persist),
    /// Wait for an [`Event`] until this time, then report [`Event::Timeout`].
    Wait(Timestamp),
    /// The flow's result.
    Ready(Authorization),
    /// The logout's result (the tokens and registrations were persisted away before it).
    LoggedOut(LogoutReport),
    /// Show the person this device login code ([`Interaction::show_device_code`]), then go on.
    ShowDeviceCode(DeviceCode),
}

/// What happened while waiting.
pub(crate) enum Event {
    /// The listener received the redirect.
    Callback(String),
    /// The user pasted a redirect URL.
    Paste(String),
    /// The prompt ended without an answer.
    PromptClosed,
    /// The wait's deadline passed.
    Timeout(Timestamp),
}

/// One flow's interaction state: listening, prompting, and what to log.
pub(crate) struct Steps {
    /// The MCP server, as the log names it.
    server: String,
    listening: Option<Url>,
    prompting: bool,
    pending_prompt: Option<Url>,
    /// True once the flow did any I/O (then its outcome is worth a DEBUG record).
    active: bool,
}

impl Steps {
    /// A flow for the MCP server `server`, started by `first`.
    /// Starts a flow for the MCP server `server` (as [`safe_url`] shows it).
    pub(crate) fn start(server: &str, auth: &mut Authorizer, first: Input) -> Result<Steps, Error> {
        let server = server.to_owned();
        match &first {
            Input::Challenged { status, .. } => debug!(target: TARGET, "{server}: the MCP server answered {status}: authorizing"),
            _ => trace!(target: TARGET, "{server}: token wanted"),
        }
        auth.handle_input(first)?;
        Ok(Steps { server, listening: None, prompting: false, pending_prompt: None, active: false })
    }

    /// The next I/O to do, after handling everything that needs none.
    pub(crate) fn next(&mut self, auth: &mut Authorizer, interaction: &Interaction, now: Timestamp) -> Result<Step, Error> {
        let step = self.next_step(auth, interaction, now)?;
        self.log_step(auth, &step, now);
        Ok(step)
    }

    fn next_step(&mut self, auth: &mut Authorizer, interaction: &Interaction, now: Timestamp) -> Result<Step, Error> {
        if let Some(url) = self.pending_prompt.take() {
            return Ok(Step::StartPrompt(url));
        }
        loop {
            let input = match auth.poll_output() {
                Output::Send(req) => return Ok(Step::Send(req)),
                Output::PrepareAttempt(plan) if plan.device_login && !interaction.interactive => {
                    debug!(target: TARGET, "{}: authorization: a device login is needed, but nobody can interact", self.server);
                    Input::Cancel { now, reason: CancelReason::NoInteraction }
                }
                Output::PrepareAttempt(plan) => match plan.redirect {
                    Some(_) if !interaction.can_interact() => {
                        debug!(target: TARGET, "{}: authorization: a login is needed, but nobody can interact", self.server);
                        Input::Cancel { now, reason: CancelReason::NoInteraction }
                    }
                    redirect => return Ok(Step::Prepare(redirect)),
                },
                Output::OpenAuthorizationUrl { url, .. } => return Ok(Step::OpenUrl(url)),
                Output::PromptForRedirect { url } => {
                    if !self.prompting && interaction.prompt.available() {
                        self.prompting = true;
                        return Ok(Step::StartPrompt(url));
                    } else if !self.prompting && self.listening.is_none() {
                        // Nobody can paste and nothing listens: no login can finish.
                        debug!(target: TARGET, "{}: authorization: nobody can paste the redirect and nothing listens", self.server);
                        Input::Cancel { now, reason: CancelReason::NoInteraction }
                    } else {
                        continue;
                    }
                }
                Output::AnswerCallback(outcome) => {
                    self.listening = None;
                    self.prompting = false;
                    return Ok(Step::Answer(response_page(&outcome)));
                }
                Output::RejectCallback(outcome) => return Ok(Step::Reject(response_page(&outcome))),
                Output::Persist(p) => return Ok(Step::Persist(p)),
                Output::Wait { until: Some(t) } => return Ok(Step::Wait(t)),
                Output::Wait { until: None } => return Err(Error::Stalled),
                Output::Ready(a) => return Ok(Step::Ready(a)),
                Output::LoggedOut(r) => return Ok(Step::LoggedOut(r)),
                Output::ShowDeviceCode(_) if !interaction.interactive => {
                    debug!(target: TARGET, "{}: authorization: a device login is needed, but nobody can interact", self.server);
                    Input::Cancel { now, reason: CancelReason::NoInteraction }
                }
                Output::ShowDeviceCode(code) => return Ok(Step::ShowDeviceCode(code)),
                Output::Failed(e) => return Err(e.into()),
                _ => continue,
            };
            auth.handle_input(input)?;
        }
    }

    /// Reports a [`Step::Send`]: the response, or why there is none.
    pub(crate) fn responded(
        &mut self,
        auth: &mut Authorizer,
        now: Timestamp,
        req: &OutgoingRequest,
        result: Result<HttpResponse, TransportFailure>,
    ) -> Result<(), Error> {
        let (server, purpose, url) = (&self.server, req.purpose, safe_url(&req.request.uri().to_string()));
        match &result {
            Ok(resp) => debug!(target: TARGET, "{server}: {purpose}: {} from {url} ({} bytes)", resp.status(), resp.body().len()),
            Err(e) => debug!(target: TARGET, "{server}: {purpose}: no response from {url}: {:?}: {}", e.kind, safe_text(&e.message)),
        }
        auth.handle_input(Input::Response { now, id: req.id, result })?;
        Ok(())
    }

    /// Reports a [`Step::Prepare`]: the entropy and what came of binding.
    pub(crate) fn prepared(
        &mut self,
        auth: &mut Authorizer,
        now: Timestamp,
        entropy: Entropy,
        callback: CallbackSetup,
    ) -> Result<(), Error> {
        let server = &self.server;
        match &callback {
            CallbackSetup::Listening(uri) => {
                debug!(target: TARGET, "{server}: authorization: listening for the callback on {}", safe_url(uri.as_str()))
            }
            CallbackSetup::Unavailable(why) => {
                debug!(target: TARGET, "{server}: authorization: no callback listener ({}): paste instead", safe_text(why))
            }
            CallbackSetup::NotRequested => debug!(target: TARGET, "{server}: authorization: prepared, no callback listener"),
        }
        self.listening = match &callback {
            CallbackSetup::Listening(uri) => Some(uri.clone()),
            _ => None,
        };
        auth.handle_input(Input::AttemptPrepared { now, entropy, callback })?;
        Ok(())
    }

    /// Reports a [`Step::OpenUrl`].
    pub(crate) fn url_handled(
        &mut self,
        auth: &mut Authorizer,
        interaction: &Interaction,
        now: Timestamp,
        url: Url,
        handled: UrlHandled,
    ) -> Result<(), Error> {
        match &handled {
            UrlHandled::Opened => debug!(target: TARGET, "{}: authorization: URL handed to the browser or hook", self.server),
            UrlHandled::NotOpened(why) => debug!(target: TARGET, "{}: authorization: URL not opened ({})", self.server, safe_text(why)),
        }
        match handled {
            UrlHandled::Opened => {
                if interaction.paste_while_listening && !self.prompting && interaction.prompt.available() {
                    self.prompting = true;
                    self.pending_prompt = Some(url);
                }
            }
            // With a listener, core falls back to a paste; without one it already asked.
            UrlHandled::NotOpened(reason) if self.listening.is_some() => auth.handle_input(Input::CallbackUnavailable { now, reason })?,
            UrlHandled::NotOpened(_) => {}
        }
        Ok(())
    }

    /// Reports what ended a [`Step::Wait`].
    pub(crate) fn event(&mut self, auth: &mut Authorizer, now: Timestamp, event: Event) -> Result<(), Error> {
        let server = &self.server;
        let input = match event {
            Event::Callback(url) => {
                debug!(target: TARGET, "{server}: authorization: callback received");
                Input::Redirect { now, url, source: RedirectSource::Loopback }
            }
            Event::Paste(url) => {
                debug!(target: TARGET, "{server}: authorization: redirect URL pasted");
                Input::Redirect { now, url, source: RedirectSource::Paste }
            }
            Event::PromptClosed => {
                debug!(target: TARGET, "{server}: authorization: the paste prompt closed");
                self.prompting = false;
                if self.listening.is_some() {
                    return Ok(());
                }
                Input::Cancel { now, reason: CancelReason::NoInteraction }
            }
            Event::Timeout(until) => {
                debug!(target: TARGET, "{server}: the wait timed out");
                Input::Timeout { now: now.max(until) }
            }
        };
        auth.handle_input(input)?;
        Ok(())
    }
}

impl Steps {
    fn log_step(&mut self, auth: &Authorizer, step: &Step, now: Timestamp) {
        let server = &self.server;
        let issuer = auth.issuer().map(safe_url).unwrap_or_else(|| "the authorization server".into());
        if !matches!(step, Step::Ready(_) | Step::LoggedOut(_)) {
            self.active = true;
        }
        match step {
            Step::Send(req) => {
                let (method, url) = (req.request.method(), safe_url(&req.request.uri().to_string()));
                match req.purpose {
                    Purpose::ResourceMetadata | Purpose::ServerMetadata => {
                        debug!(target: TARGET, "{server}: discovery: {method} {url} ({})", req.purpose)
                    }
                    Purpose::Registration => debug!(target: TARGET, "{server}: registration: {method} {url}"),
                    Purpose::CodeExchange => debug!(target: TARGET, "{server}: token: code exchange at {url} for {issuer}"),
                    Purpose::Refresh => debug!(target: TARGET, "{server}: token: refresh at {url} for {issuer}"),
                    Purpose::ClientCredentials => debug!(target: TARGET, "{server}: token: client credentials grant at {url} for {issuer}"),
                    Purpose::TokenExchange => debug!(target: TARGET, "{server}: token: exchanging the identity assertion at {url}"),
                    Purpose::JwtBearer => debug!(target: TARGET, "{server}: token: JWT bearer grant at {url} for {issuer}"),
                    Purpose::Revocation => debug!(target: TARGET, "{server}: logout: revoking a token at {url} for {issuer}"),
                    Purpose::DeviceAuthorization => debug!(target: TARGET, "{server}: authorization: asking {url} for a device code"),
                    Purpose::DeviceToken => trace!(target: TARGET, "{server}: token: polling {url} for the device login"),
                    other => debug!(target: TARGET, "{server}: {other}: {method} {url}"),
                }
            }
            Step::Prepare(Some(plan)) => {
                debug!(target: TARGET, "{server}: authorization: binding {}:{} for the callback", plan.host, plan.port)
            }
            Step::Prepare(None) => {}
            Step::OpenUrl(url) => debug!(target: TARGET, "{server}: authorization: opening {} (browser or hook)", safe_url(url.as_str())),
            Step::StartPrompt(_) => debug!(target: TARGET, "{server}: authorization: asking for the redirect URL to be pasted"),
            Step::Answer(_) => debug!(target: TARGET, "{server}: authorization: answering the callback"),
            Step::Reject(_) => {
                debug!(target: TARGET, "{server}: authorization: refused a callback without this login's state; still waiting")
            }
            Step::Persist(p) => match p {
                Persist::Tokens(t) => debug!(target: TARGET,
                    "{server}: persist: tokens for {} from {} ({})",
                    safe_url(&t.resource),
                    safe_url(&t.issuer),
                    expiry(t.expires_at, now)
                ),
                Persist::Client(c) => debug!(target: TARGET, "{server}: persist: client {} for {}", c.client_id, safe_url(&c.issuer)),
                Persist::ForgetClient { issuer } => debug!(target: TARGET, "{server}: persist: forget the client for {}", safe_url(issuer)),
                Persist::ForgetTokens { issuer } => {
                    debug!(target: TARGET, "{server}: persist: forget the tokens from {}", safe_url(issuer))
                }
                _ => debug!(target: TARGET, "{server}: persist"),
            },
            Step::Wait(until) => {
                let secs = until.as_millis().saturating_sub(now.as_millis()).div_ceil(1000);
                match (&self.listening, self.prompting) {
                    (Some(uri), prompting) => debug!(target: TARGET,
                        "{server}: authorization: waiting up to {secs} s for the callback on {}{}",
                        uri.host_str().zip(uri.port()).map(|(h, p)| format!("{h}:{p}")).unwrap_or_default(),
                        if prompting { " or a pasted redirect" } else { "" }
                    ),
                    (None, true) => debug!(target: TARGET, "{server}: authorization: waiting up to {secs} s for a pasted redirect"),
                    (None, false) => debug!(target: TARGET, "{server}: waiting up to {secs} s"),
                }
            }
            Step::Ready(a) => {
                let scheme = if a.is_dpop() { "DPoP" } else { "Bearer" };
                let expires = expiry(auth.token_set().and_then(|t| t.expires_at), now);
                if self.active {
                    debug!(target: TARGET, "{server}: ready: {scheme} token ({expires})");
                } else {
                    trace!(target: TARGET, "{server}: ready: {scheme} token held ({expires})");
                }
            }
            Step::ShowDeviceCode(code) => debug!(target: TARGET,
                "{server}: authorization: device login: the person enters a code at {}",
                safe_url(code.verification_uri.as_str())
            ),
            Step::LoggedOut(r) => debug!(target: TARGET,
                "{server}: logged out: refresh token {}, access token {}; tokens and registrations forgotten",
                r.refresh_token,
                r.access_token
            ),
        }
    }
}

/// How a flow ended, for the log (success was logged as [`Step::Ready`]); `server` as [`safe_url`] shows it.
pub(crate) fn finished<T>(server: &str, result: &Result<T, Error>) {
    if let Err(e) = result {
        debug!(target: TARGET, "{server}: failed: {}", safe_text(&e.to_string()));
    }
}

fn expiry(expires_at: Option<Timestamp>, now: Timestamp) -> String {
    match expires_at {
        // Rounded up, as the waits are: a token of 3600 s logged a millisecond later still reads 3600.
        Some(t) => format!("expires in {} s", t.as_millis().saturating_sub(now.as_millis()).div_ceil(1000)),
        None => "no expiry given".into(),
    }
}

pub(crate) use crate::safe_url;

/// Free text (a reason, an error) fit for the log: any URL in it as [`safe_url`] shows it.
fn safe_text(s: &str) -> String {
    s.split(' ').map(|w| if w.contains("://") { safe_url(w) } else { w.to_owned() }).collect::<Vec<_>>().join(" ")
}

/// Ends a flow the adapter could not finish (a store or entropy failure, a future dropped
/// mid-flow, a panicking hook): core is told the user gave up and is drained, so the next
/// request starts a new flow instead of meeting a usage error. A no-op between flows.
pub(crate) fn abandon(auth: &mut Authorizer, now: Timestamp) {
    // Between flows there may still be outputs queued after the step that failed (a `Ready`
    // behind a `Persist` the store refused): they belong to the failed call, not the next.
    if !matches!(auth.state(), StateName::Idle | StateName::Failed)
        && auth.handle_input(Input::Cancel { now, reason: CancelReason::User }).is_err()
    {
        return;
    }
    for _ in 0..64 {
        if matches!(auth.poll_output(), Output::Wait { .. }) {
            break;
        }
    }
}

/// The text for a failed bind, as core's [`CallbackSetup::Unavailable`] wants it.
pub(crate) fn bind_failed(plan: &RedirectPlan, e: &std::io::Error) -> CallbackSetup {
    CallbackSetup::Unavailable(format!("cannot listen on {}:{}: {e}", plan.host, plan.port))
}

/// Logs (at debug) why stored tokens are not used by this configuration, if they are not.
pub(crate) fn note_foreign_tokens(config: &Config, restored: &Restored) {
    if let Some(t) = &restored.tokens {
        if let Err(why) = config.accepts_tokens(t, &restored.clients) {
            debug!(target: TARGET, "mcp-oauth: stored tokens for {} are not used: {why}", config.server_url);
        }
    }
}

/// True if the store holds other tokens than the machine (another instance refreshed or logged
/// in meanwhile): the machine must be rebuilt from the store.
pub(crate) fn store_changed(auth: &Authorizer, restored: &Restored) -> bool {
    // Not "newer by `obtained_at`": processes' clocks differ. A save of ours that failed is
    // written back before the store is read (the adapters' `write_back`), so what differs here
    // is another instance's doing.
    let held = auth.token_set().map(|t| t.access_token.secret());
    let stored = restored.tokens.as_ref().map(|t| t.access_token.secret());
    held != stored
}

/// What to write back before anything else when a save failed: the machine's tokens and
/// registrations (the store may hold a refresh token that was already rotated away).
pub(crate) fn unsaved(auth: &Authorizer) -> Vec<Persist> {
    let mut out: Vec<Persist> = auth.clients().iter().cloned().map(Persist::Client).collect();
    if let Some(t) = auth.token_set() {
        out.push(Persist::Tokens(t.clone()));
    }
    out
}

/// True if `restored` holds a token of this configuration other than the one the server
/// rejected (`None`: the request carried no token): someone already replaced it or logged in,
/// so try that (refreshing it if it is due) instead of acting on a challenge to another token.
/// Not judged by freshness: processes' clocks differ.
pub(crate) fn replaced_since(config: &Config, rejected: Option<&str>, restored: &Restored) -> bool {
    match &restored.tokens {
        Some(t) => rejected != Some(t.access_token.secret()) && config.accepts_tokens(t, &restored.clients).is_ok(),
        None => false,
    }
}

/// One request's retries, counted by the caller that makes the request. The machine counts per
/// request too, but its count starts over with every `TokenWanted` it gets, and another task
/// sharing the client, or a token another instance stored (which the adapter tries with a
/// `TokenWanted`), can give it one in the middle of this request. So the request itself ends
/// after twice `max_authorization_attempts` and two more challenges, or once it saw that many
/// new authorizations (logins, machine grants), whatever happens around it.
pub(crate) struct Retries {
    /// Challenges the machine acted on.
    challenges: u8,
    /// Challenges answered with a token another instance or task had stored meanwhile.
    replaced: u8,
    authorizations: u64,
    limit: u8,
}

impl Retries {
    /// The budget of a request with OAuth configured by `config` (`None`: without OAuth,
    /// where nothing is retried).
    pub(crate) fn new(config: Option<&Config>) -> Self {
        let limit = config.map_or(0, |c| c.max_authorization_attempts);
        Retries { challenges: 0, replaced: 0, authorizations: 0, limit }
    }

    /// Counts the new authorizations one call of the machine made for this request.
    pub(crate) fn authorized(&mut self, new: u64) {
        self.authorizations = self.authorizations.saturating_add(new);
    }

    /// Counts one challenge answered: by the machine, or with a token another instance stored
    /// (`replaced`; counted apart, so that other instances' churn does not use up this
    /// request's share, and bounded the same way).
    pub(crate) fn answered(&mut self, replaced: bool) {
        let n = if replaced { &mut self.replaced } else { &mut self.challenges };
        *n = n.saturating_add(1);
    }

    /// Before acting on `challenge`: an error once this request has had its share.
    pub(crate) fn challenge(&mut self, challenge: &crate::mcp::Challenge) -> Result<(), Error> {
        let cap = self.limit.saturating_mul(2).saturating_add(2);
        let spent = self.authorizations >= u64::from(self.limit);
        if self.challenges < cap && self.replaced < cap && !spent {
            return Ok(());
        }
        let c = mcp_oauth_core::discovery::oauth_challenge(challenge.www_authenticate.iter().map(|v| v.as_bytes())).ok().flatten();
        let c = c.unwrap_or_default();
        let e = if c.error == Some(mcp_oauth_core::error::ErrorCode::InsufficientScope) {
            mcp_oauth_core::ResourceError::InsufficientScope {
                scope: c.scope,
                description: c.error_description,
                resource_metadata: c.resource_metadata,
                attempts: u8::try_from(self.authorizations).unwrap_or(u8::MAX),
            }
        } else {
            mcp_oauth_core::ResourceError::RejectedFreshToken { status: challenge.status }
        };
        Err(mcp_oauth_core::Error::from(e).into())
    }
}

/// Item 14: the token of one MCP server goes only to that server's origin.
pub(crate) fn check_origin(config: &Config, req: &::http::Request<Vec<u8>>) -> Result<(), Error> {
    // The common case without parsing: the request's scheme and authority spelled exactly as
    // the (normalised) server URL spells them (the host, then `:` and the port in digits if it
    // has one) name the same origin. Anything else is parsed: userinfo, other spellings, and
    // ports `http::Uri` holds but cannot read (`:evil.example`, `:65536`), which `url` refuses.
    let (uri, server) = (req.uri(), &config.server_url);
    let same_authority =
        uri.authority().zip(server.host_str()).is_some_and(|(a, host)| match (a.as_str().strip_prefix(host), server.port()) {
            (Some(""), None) => true,
            (Some(rest), Some(port)) => rest
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>() == Ok(port)),
            _ => false,
        });
    if same_authority && uri.scheme_str() == Some(server.scheme()) {
        return Ok(());
    }
    let url = Url::parse(&uri.to_string()).ok();
    if url.as_ref().is_some_and(|u| u.origin() == config.server_url.origin()) {
        return Ok(());
    }
    Err(Error::ForeignOrigin {
        url: crate::error::shown_url(&req.uri().to_string()),
        server: config.server_url.origin().ascii_serialization(),
    })
}

/// Sets `Authorization` (and, for DPoP-bound tokens, a fresh `DPoP` proof) on a request.
pub(crate) fn attach(req: &mut ::http::Request<Vec<u8>>, authorization: &Authorization, now: Timestamp) {
    req.headers_mut().insert(::http::header::AUTHORIZATION, authorization.header_value());
    if !authorization.is_dpop() {
        return;
    }
    if let Ok(url) = Url::parse(&req.uri().to_string()) {
        let mut salt = [0u8; 16];
        let _ = getrandom::fill(&mut salt);
        if let Some(proof) = authorization.dpop_proof(req.method().as_str(), &url, now, &salt) {
            req.headers_mut().insert("DPoP", proof);
        }
    }
}

/// The cancel flag of the running paste prompt, raised when the flow no longer needs it (and
/// when the flow ends: on drop).
#[derive(Default)]
pub(crate) struct PromptSwitch(Option<Arc<AtomicBool>>);

impl PromptSwitch {
    /// A fresh flag for a prompt about to start.
    pub(crate) fn arm(&mut self) -> Arc<AtomicBool> {
        self.stop();
        let flag = Arc::new(AtomicBool::new(false));
        self.0 = Some(flag.clone());
        flag
    }

    /// Cancels the running prompt, if any.
    pub(crate) fn stop(&mut self) {
        if let Some(c) = self.0.take() {
            c.store(true, Ordering::Relaxed);
        }
    }

    /// The prompt ended by itself.
    pub(crate) fn ended(&mut self) {
        self.0 = None;
    }
}

impl Drop for PromptSwitch {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_to_the_servers_origin_pass_the_origin_check() {
        let check = |server: &str, url: &str| {
            let config = Config::new(server.parse().unwrap());
            let req = ::http::Request::post(url).body(Vec::new()).unwrap();
            check_origin(&config, &req).is_ok()
        };
        // Spelled as the server URL is (the quick path) and spelled otherwise (parsed).
        assert!(check("https://mcp.example.com/mcp", "https://mcp.example.com/other?x=1"));
        assert!(check("https://mcp.example.com/mcp", "https://MCP.Example.com:443/mcp"));
        assert!(check("http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/mcp"));
        assert!(check("http://[::1]:8080/mcp", "http://[::1]:8080/mcp"));
        for foreign in [
            "http://mcp.example.com/mcp",
            "https://mcp.example.com:8443/mcp",
            "https://mcp.example.com.evil.example/mcp",
            "https://evil.example/mcp",
            "https://mcp.example.com@evil.example/mcp",
        ] {
            assert!(!check("https://mcp.example.com/mcp", foreign), "{foreign}");
        }
        // Ports `http::Uri` holds but cannot read (nor can `url`): refused, not taken as none.
        for unreadable in
            ["https://mcp.example.com:evil.example/mcp", "https://mcp.example.com:65536/mcp", "https://mcp.example.com:+443/mcp"]
        {
            assert!(!check("https://mcp.example.com/mcp", unreadable), "{unreadable}");
        }
        assert!(!check("http://127.0.0.1:8080/mcp", "http://127.0.0.1:8081/mcp"));
        assert!(!check("http://127.0.0.1:8080/mcp", "http://127.0.0.2:8080/mcp"));
    }

    #[test]
    fn logged_urls_lose_userinfo_query_and_fragment() {
        assert_eq!(safe_url("https://u:p@as.example.com/authorize?state=s3cr3t&code=c0de#frag"), "https://as.example.com/authorize?…");
        assert_eq!(safe_url("http://127.0.0.1:8080/callback"), "http://127.0.0.1:8080/callback");
        assert_eq!(safe_url("not a url?code=c0de"), "not a url?…");
        assert_eq!(safe_text("cannot open http://x/cb?code=c0de: refused"), "cannot open http://x/cb?… refused");
    }
}
