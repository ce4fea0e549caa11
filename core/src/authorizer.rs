//! The public face of the state machine: [`Authorizer`], [`Input`], [`Output`].
//! The transitions themselves live in `state.rs`, the protocol's choices in `policy.rs`.

use crate::callback::Outcome;
use crate::config::Config;
use crate::context::{RequestContext, ServerContext};
use crate::device::DeviceCode;
use crate::dpop::DpopContext;
use crate::entropy::Entropy;
use crate::error::{ConfigError, Error};
use crate::http::{redact_query, HttpResponse, OutgoingRequest, RequestId, TransportFailure};
use crate::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use crate::registration::ClientInfo;
use crate::revocation::{IfUnreachable, LogoutReport};
use crate::state::State;
use crate::time::Timestamp;
use crate::token::{Authorization, TokenSet};
use std::collections::VecDeque;
use std::fmt;
use url::Url;

/// Everything that happens to the machine. Every variant carries `now`.
#[derive(Clone)]
#[non_exhaustive]
pub enum Input {
    /// The application is about to send a request to the MCP server and wants the
    /// `Authorization` header (on connect, or before every request). Starts a new request:
    /// the per-request attempt counter is reset.
    TokenWanted {
        /// The current time.
        now: Timestamp,
    },
    /// The MCP server answered `401`, or `403` with `WWW-Authenticate`.
    Challenged {
        /// The current time.
        now: Timestamp,
        /// The HTTP status (401 or 403).
        status: u16,
        /// Every `WWW-Authenticate` field line, in order.
        www_authenticate: Vec<http::HeaderValue>,
        /// The `DPoP-Nonce` response header, if any (RFC 9449 §9).
        dpop_nonce: Option<String>,
    },
    /// The answer to [`Output::Send`].
    Response {
        /// The current time.
        now: Timestamp,
        /// The id from the [`OutgoingRequest`].
        id: RequestId,
        /// The response (body read up to the limit), or why there is none.
        result: Result<HttpResponse, TransportFailure>,
    },
    /// The answer to [`Output::PrepareAttempt`].
    AttemptPrepared {
        /// The current time.
        now: Timestamp,
        /// Fresh random bytes from the operating system.
        entropy: Entropy,
        /// What became of the loopback listener the plan asked for.
        callback: CallbackSetup,
    },
    /// The browser could not be opened, or the session is headless: core falls back to a
    /// pasted redirect.
    CallbackUnavailable {
        /// The current time.
        now: Timestamp,
        /// Why, for the error message and logs.
        reason: String,
    },
    /// A redirect arrived at the loopback listener, or the user pasted one.
    Redirect {
        /// The current time.
        now: Timestamp,
        /// The full redirect URL.
        url: String,
        /// Where it came from.
        source: RedirectSource,
    },
    /// The deadline of [`Output::Wait`] passed.
    Timeout {
        /// The current time.
        now: Timestamp,
    },
    /// Log out: revoke the held tokens at the authorization server (RFC 7009; the refresh token
    /// first, then the access token), then forget them and every registration. The issuer's
    /// metadata is read first if the authorization server is not known yet. Ends with
    /// [`Output::LoggedOut`] whatever the authorization server answers: the report says what
    /// was revoked, and whether anything was kept (`if_unreachable`).
    LogoutWanted {
        /// The current time.
        now: Timestamp,
        /// What to do with tokens the authorization server could not be reached to revoke.
        if_unreachable: IfUnreachable,
    },
    /// Stop the flow in progress.
    Cancel {
        /// The current time.
        now: Timestamp,
        /// Why.
        reason: CancelReason,
    },
}

impl Input {
    /// The `now` the input carries.
    pub fn now(&self) -> Timestamp {
        match self {
            Input::TokenWanted { now }
            | Input::Challenged { now, .. }
            | Input::Response { now, .. }
            | Input::AttemptPrepared { now, .. }
            | Input::CallbackUnavailable { now, .. }
            | Input::Redirect { now, .. }
            | Input::Timeout { now }
            | Input::LogoutWanted { now, .. }
            | Input::Cancel { now, .. } => *now,
        }
    }

    /// The variant's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Input::TokenWanted { .. } => "TokenWanted",
            Input::Challenged { .. } => "Challenged",
            Input::Response { .. } => "Response",
            Input::AttemptPrepared { .. } => "AttemptPrepared",
            Input::CallbackUnavailable { .. } => "CallbackUnavailable",
            Input::Redirect { .. } => "Redirect",
            Input::Timeout { .. } => "Timeout",
            Input::LogoutWanted { .. } => "LogoutWanted",
            Input::Cancel { .. } => "Cancel",
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::TokenWanted { now } => f.debug_struct("TokenWanted").field("now", now).finish(),
            Input::Challenged { now, status, www_authenticate, .. } => {
                f.debug_struct("Challenged").field("now", now).field("status", status).field("www_authenticate", www_authenticate).finish()
            }
            Input::Response { now, id, result } => f
                .debug_struct("Response")
                .field("now", now)
                .field("id", id)
                .field("result", &result.as_ref().map(|r| (r.status(), r.body().len())))
                .finish(),
            Input::AttemptPrepared { now, entropy, callback } => {
                f.debug_struct("AttemptPrepared").field("now", now).field("entropy", entropy).field("callback", callback).finish()
            }
            Input::CallbackUnavailable { now, reason } => {
                f.debug_struct("CallbackUnavailable").field("now", now).field("reason", reason).finish()
            }
            Input::Redirect { now, url, source } => {
                f.debug_struct("Redirect").field("now", now).field("url", &redact_query(url)).field("source", source).finish()
            }
            Input::Timeout { now } => f.debug_struct("Timeout").field("now", now).finish(),
            Input::LogoutWanted { now, if_unreachable } => {
                f.debug_struct("LogoutWanted").field("now", now).field("if_unreachable", if_unreachable).finish()
            }
            Input::Cancel { now, reason } => f.debug_struct("Cancel").field("now", now).field("reason", reason).finish(),
        }
    }
}

/// What became of the loopback listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackSetup {
    /// Listening; this is the exact redirect URI, with the real port.
    Listening(Url),
    /// Could not listen (port in use, permissions); core falls back to a pasted redirect.
    Unavailable(String),
    /// The plan asked for no listener.
    NotRequested,
}

/// Where a redirect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectSource {
    /// The loopback listener: core answers with [`Output::AnswerCallback`].
    Loopback,
    /// Pasted by the user.
    Paste,
}

/// Why a flow was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The application or user gave up.
    User,
    /// A login is needed but nobody can do it: no browser, no terminal, no hook.
    NoInteraction,
}

/// What the adapter must prepare before an authorization attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptPlan {
    /// The loopback listener to start, if the attempt needs a browser redirect.
    pub redirect: Option<RedirectPlan>,
    /// The attempt is a device login (RFC 8628): a person will be shown a code
    /// ([`Output::ShowDeviceCode`]). An adapter that cannot reach anybody cancels here
    /// ([`CancelReason::NoInteraction`]), before a code is asked for.
    pub device_login: bool,
}

/// Where to listen for the redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectPlan {
    /// `127.0.0.1`, `localhost` or `::1`.
    pub host: String,
    /// The port; 0 means any free port.
    pub port: u16,
    /// The callback path, such as `/callback`.
    pub path: String,
    /// If `port` is taken, binding port 0 instead is acceptable.
    pub any_port_fallback: bool,
}

impl RedirectPlan {
    /// True if `uri` is a redirect URI a listener bound for this plan can have: `http`, a
    /// loopback host, an explicit port and the planned path.
    pub(crate) fn accepts(&self, uri: &Url) -> bool {
        uri.scheme() == "http" && crate::http::is_loopback_url(uri) && uri.path() == self.path && uri.port().is_some()
    }

    /// The redirect URI for a bound port.
    pub fn redirect_uri(&self, port: u16) -> Url {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        Url::parse(&format!("http://{host}:{port}{}", self.path))
            .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable!()))
    }
}

/// State the adapter's store must save (or delete), in order, before acting on later outputs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Persist {
    /// Save this registration, keyed by its issuer (replacing any for that issuer).
    Client(ClientInfo),
    /// Delete the registration for this issuer.
    ForgetClient {
        /// The issuer.
        issuer: String,
    },
    /// Save these tokens (replacing any for this server).
    Tokens(TokenSet),
    /// Delete the tokens of this server.
    ForgetTokens {
        /// The issuer that minted them.
        issuer: String,
    },
}

/// What the adapter previously persisted for this MCP server.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Registrations, one per issuer.
    pub clients: Vec<ClientInfo>,
    /// The last tokens.
    pub tokens: Option<TokenSet>,
}

/// What the adapter must do next. Drain with [`Authorizer::poll_output`] after every input until
/// `Wait`, `Ready` or `Failed`.
#[must_use]
#[non_exhaustive]
pub enum Output {
    /// Send this request (never following redirects, reading at most `max_response_bytes + 1`
    /// of the body), then feed the answer back as [`Input::Response`] with the same id.
    Send(OutgoingRequest),
    /// Gather fresh [`Entropy`]; if `plan.redirect` is set, first bind the loopback listener
    /// (before any browser opens). Answer with [`Input::AttemptPrepared`].
    PrepareAttempt(AttemptPlan),
    /// Hand the URL to the `on_authorization_url` hook / system browser, and print it. If that
    /// fails or the session is headless, feed [`Input::CallbackUnavailable`]. Keep listening
    /// until `deadline`.
    OpenAuthorizationUrl {
        /// The authorization URL (contains `state`; show it to the user, do not log it).
        url: Url,
        /// When core gives up on the listener and asks for a paste.
        deadline: Timestamp,
    },
    /// Ask the user to paste the URL the browser was redirected to (print `url` so they can
    /// open it), and feed it as [`Input::Redirect`] with [`RedirectSource::Paste`]. A listener
    /// that is still running may answer first; either is fine.
    PromptForRedirect {
        /// The authorization URL to open.
        url: Url,
    },
    /// Answer the browser connection that delivered the last loopback redirect with
    /// [`callback::response_page`](crate::callback::response_page) of this outcome, then
    /// close it and stop the listener.
    AnswerCallback(Outcome),
    /// The last loopback redirect was not the one this flow waits for (no `state`, or another
    /// one: a forged request from a local process or a web page). Answer that connection with
    /// the page of this outcome, close it, and keep listening: the wait goes on until the real
    /// redirect or the deadline.
    RejectCallback(Outcome),
    /// Save or delete state in the store before continuing. A failure to save must be reported
    /// to the caller (the old refresh token may already be invalid).
    Persist(Persist),
    /// Nothing to do until the next external event, or [`Input::Timeout`] at `until`.
    Wait {
        /// The deadline, if any.
        until: Option<Timestamp>,
    },
    /// Attach this header to the MCP request (and retry it, after a challenge). Ends the flow.
    Ready(Authorization),
    /// The flow failed. Ends the flow; a later `TokenWanted` or `Challenged` may start anew.
    Failed(Error),
    /// Show the person this code and where to enter it (RFC 8628 device login), on any device;
    /// then keep going: the machine polls on its own ([`Output::Wait`] until each poll).
    ShowDeviceCode(DeviceCode),
    /// The logout ([`Input::LogoutWanted`]) is done: the report says what each revocation came
    /// to, and whether the tokens and registrations were forgotten (the [`Output::Persist`]s
    /// before this). Ends the flow.
    LoggedOut(LogoutReport),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Send(r) => f.debug_tuple("Send").field(r).finish(),
            Output::PrepareAttempt(p) => f.debug_tuple("PrepareAttempt").field(p).finish(),
            Output::OpenAuthorizationUrl { url, deadline } => {
                f.debug_struct("OpenAuthorizationUrl").field("url", &redact_query(url.as_str())).field("deadline", deadline).finish()
            }
            Output::PromptForRedirect { url } => f.debug_struct("PromptForRedirect").field("url", &redact_query(url.as_str())).finish(),
            Output::AnswerCallback(o) => f.debug_tuple("AnswerCallback").field(o).finish(),
            Output::RejectCallback(o) => f.debug_tuple("RejectCallback").field(o).finish(),
            Output::Persist(p) => f.debug_tuple("Persist").field(p).finish(),
            Output::Wait { until } => f.debug_struct("Wait").field("until", until).finish(),
            Output::Ready(a) => f.debug_tuple("Ready").field(a).finish(),
            Output::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            Output::LoggedOut(r) => f.debug_tuple("LoggedOut").field(r).finish(),
            Output::ShowDeviceCode(c) => f.debug_tuple("ShowDeviceCode").field(c).finish(),
        }
    }
}

/// The name of the machine's state, for getters, errors and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateName {
    /// No flow in progress.
    Idle,
    /// Fetching protected resource metadata.
    ResourceMetadata,
    /// Fetching authorization server metadata.
    ServerMetadata,
    /// Waiting for `AttemptPrepared`.
    AwaitingPreparation,
    /// Registering the client.
    Registration,
    /// Waiting for the redirect (loopback or paste).
    AwaitingRedirect,
    /// Exchanging the authorization code.
    ExchangingCode,
    /// Requesting a client credentials token.
    ClientCredentials,
    /// Refreshing the token.
    Refreshing,
    /// Exchanging the user's ID token at the identity provider (enterprise-managed).
    TokenExchange,
    /// Presenting the ID-JAG to the authorization server (enterprise-managed).
    JwtBearer,
    /// Asking for a device code (RFC 8628).
    DeviceAuthorization,
    /// The person was shown a device code: polling the token endpoint until they finish.
    AwaitingDevice,
    /// Revoking tokens at logout (RFC 7009).
    Revoking,
    /// The last flow failed.
    Failed,
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The Sans-IO OAuth client for one MCP server. See the [crate docs](crate) for the run loop.
pub struct Authorizer {
    pub(crate) config: Config,
    pub(crate) signing_key: Option<crate::jwt::SigningKey>,
    pub(crate) now: Timestamp,
    pub(crate) next_id: u64,
    pub(crate) state: State,
    pub(crate) queue: VecDeque<Output>,
    pub(crate) tokens: Option<TokenSet>,
    pub(crate) clients: Vec<ClientInfo>,
    pub(crate) prm: Option<ProtectedResourceMetadata>,
    /// Where `prm` came from.
    pub(crate) prm_url: Option<String>,
    pub(crate) server: Option<ServerContext>,
    pub(crate) request: RequestContext,
    /// When the resource server last rejected a token from a login moments old, and the
    /// authorization server that login was at.
    pub(crate) login_rejected_at: Option<(Timestamp, String)>,
    /// New authorizations (logins, machine grants) started over the machine's life.
    pub(crate) authorizations: u64,
    /// The registration an unfinished login made (not on file until a login succeeds with it).
    pub(crate) pending_client: Option<ClientInfo>,
    pub(crate) dpop: DpopContext,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("server_url", &self.config.server_url.as_str())
            .field("state", &self.state.name())
            .field("now", &self.now)
            .field("has_tokens", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Builds the machine for one MCP server from its configuration and whatever the adapter's
    /// store restored. A restored, unexpired token means the first `TokenWanted` sends nothing.
    /// Restored tokens that do not belong to this configuration (another client, another kind of
    /// grant: [`Config::accepts_tokens`]) are never used.
    pub fn new(config: Config, mut restored: Restored, now: Timestamp) -> Result<Self, ConfigError> {
        config.validate()?;
        if restored.tokens.as_ref().is_some_and(|t| config.accepts_tokens(t, &restored.clients).is_err()) {
            restored.tokens = None;
        }
        let signing_key = match &config.private_key {
            Some(pem) => Some(crate::jwt::SigningKey::from_pem(pem).map_err(|_| ConfigError::InvalidPrivateKey)?),
            None => None,
        };
        Ok(Authorizer {
            config,
            signing_key,
            now,
            next_id: 0,
            state: State::new(),
            queue: VecDeque::new(),
            tokens: restored.tokens,
            clients: restored.clients,
            prm: None,
            prm_url: None,
            server: None,
            request: Default::default(),
            login_rejected_at: None,
            authorizations: 0,
            pending_client: None,
            dpop: Default::default(),
        })
        .map(|mut a| {
            a.dpop.key = a.tokens.as_ref().and_then(|t| t.dpop_key.as_ref()).and_then(crate::dpop::DpopKey::restore);
            a
        })
    }

    /// Takes what the store holds now, between flows: another instance refreshed, logged in or
    /// logged out meanwhile. Tokens (unless they belong to another configuration, as in
    /// [`new`](Self::new)) and registrations are replaced; discovered metadata and the per-request
    /// memory are kept. A flow in progress is a usage error, and nothing changes.
    pub fn restore(&mut self, mut restored: Restored) -> Result<(), Error> {
        if !matches!(self.state.name(), StateName::Idle | StateName::Failed) {
            return Err(crate::error::UsageError::UnexpectedInput { input: "restore", state: self.state.name() }.into());
        }
        if restored.tokens.as_ref().is_some_and(|t| self.config.accepts_tokens(t, &restored.clients).is_err()) {
            restored.tokens = None;
        }
        if let Some(k) = restored.tokens.as_ref().and_then(|t| t.dpop_key.as_ref()) {
            if self.tokens.as_ref().and_then(|t| t.dpop_key.as_ref()).map(|x| x.secret()) != Some(k.secret()) {
                self.dpop.key = crate::dpop::DpopKey::restore(k);
            }
        }
        // Metadata of another authorization server than the tokens' (a migration another
        // instance followed), or naming another resource identifier than theirs (the server
        // renamed itself and another instance followed), is of no use any more.
        let stale = restored.tokens.as_ref().is_some_and(|t| {
            self.server.as_ref().is_some_and(|s| s.issuer != t.issuer)
                || self.config.send_resource && self.prm.as_ref().is_some_and(|p| p.resource != t.resource)
        });
        if stale {
            self.server = None;
            self.prm = None;
            self.prm_url = None;
        }
        self.tokens = restored.tokens;
        self.clients = restored.clients;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many new authorizations (logins, machine grants) the machine has started over its
    /// life: an adapter that serves several requests with one machine counts each request's by
    /// the difference (the machine's own per-request count starts over with each `TokenWanted`).
    pub fn authorizations(&self) -> u64 {
        self.authorizations
    }

    /// The latest time the machine has seen (inputs that go back in time are clamped to it).
    /// An adapter waiting for [`Output::Wait`]'s `until` measures from here, so that a clock
    /// stepped back does not stretch the wait.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The current state.
    pub fn state(&self) -> StateName {
        self.state.name()
    }

    /// The tokens held, if any.
    pub fn token_set(&self) -> Option<&TokenSet> {
        self.tokens.as_ref()
    }

    /// The registrations held (dynamic ones, and the issuer binding of configured credentials).
    pub fn clients(&self) -> &[ClientInfo] {
        &self.clients
    }

    /// True if a token is held that is not about to expire at `now`: `TokenWanted` would
    /// answer `Ready` without sending anything.
    pub fn has_usable_token(&self, now: Timestamp) -> bool {
        self.tokens.as_ref().is_some_and(|t| t.is_fresh(now.max(self.now), self.config.refresh_skew))
    }

    /// The protected resource metadata found by the last discovery.
    pub fn resource_metadata(&self) -> Option<&ProtectedResourceMetadata> {
        self.prm.as_ref()
    }

    /// The authorization server metadata in use, if discovered.
    pub fn server_metadata(&self) -> Option<&AuthorizationServerMetadata> {
        self.server.as_ref().and_then(|s| s.metadata.as_ref())
    }

    /// The issuer in use, if known.
    pub fn issuer(&self) -> Option<&str> {
        self.server.as_ref().map(|s| s.issuer.as_str()).or_else(|| self.tokens.as_ref().map(|t| t.issuer.as_str()))
    }

    /// Feeds one input. On a [`UsageError`](crate::UsageError) nothing changes. After `Ok`,
    /// drain [`poll_output`](Self::poll_output).
    pub fn handle_input(&mut self, input: Input) -> Result<(), Error> {
        self.handle(input)
    }

    /// The next thing to do. Returns [`Output::Wait`] when nothing is queued.
    pub fn poll_output(&mut self) -> Output {
        match self.queue.pop_front() {
            Some(o) => o,
            None => Output::Wait { until: self.state.deadline() },
        }
    }
}
