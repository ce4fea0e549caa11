//! The blocking adapter (feature `blocking`, default): ureq for HTTP, a `std::net` listener
//! thread for the callback, the system browser, a stdin paste prompt, and a token store.
//!
//! [`OAuthClient`] drives one core [`Authorizer`] per MCP server. It makes no OAuth decision:
//! it sends what core asks, binds and waits, opens and prompts, saves, and feeds the results
//! back. [`McpClient`] is a small MCP client on top (Streamable HTTP).

mod http;
mod loopback;
mod mcp;

pub use self::http::{HttpClient, Stream};
pub use self::loopback::{Event, Listener};
pub use self::mcp::{ConnectMode, McpClient, SseEvent, Tool};

use crate::error::Error;
use crate::interaction::{Interaction, UrlHandled};
use crate::store::TokenStore;
use crate::{os_entropy, Clock, SystemClock};
use mcp_oauth_core::callback::response_page;
use mcp_oauth_core::{Authorization, Authorizer, CallbackSetup, CancelReason, Config, Input, Output, RedirectSource, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// The OAuth client for one MCP server, driving core with blocking I/O.
pub struct OAuthClient {
    config: Config,
    key: String,
    auth: Authorizer,
    http: HttpClient,
    store: Arc<dyn TokenStore>,
    interaction: Interaction,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient").field("server", &self.key).field("auth", &self.auth).finish_non_exhaustive()
    }
}

/// The I/O of one flow; dropping it stops the listener and the prompt.
struct FlowIo {
    events: (Sender<Event>, Receiver<Event>),
    listener: Option<Listener>,
    reply: Option<Sender<Vec<u8>>>,
    prompt_cancel: Option<Arc<AtomicBool>>,
}

impl Drop for FlowIo {
    fn drop(&mut self) {
        if let Some(c) = self.prompt_cancel.take() {
            c.store(true, Ordering::Relaxed);
        }
        self.listener.take();
    }
}

impl OAuthClient {
    /// A client for `config.server_url`, restoring what `store` holds for it.
    pub fn new(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
        Self::with_parts(config, store, interaction, HttpClient::default(), Arc::new(SystemClock))
    }

    /// Like [`new`](Self::new) with a specific HTTP client and clock (tests replace the clock).
    pub fn with_parts(
        config: Config,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let key = config.server_url.to_string();
        let restored = store.load(&key)?;
        let auth = Authorizer::new(config.clone(), restored, clock.now())?;
        Ok(OAuthClient { config, key, auth, http, store, interaction, clock })
    }

    /// The core machine (getters: state, tokens, metadata).
    pub fn authorizer(&self) -> &Authorizer {
        &self.auth
    }

    /// The HTTP client, for sending MCP requests the same way.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The `Authorization` header for the next request: the held token, a refreshed one, or
    /// one from a full authorization.
    pub fn authorization(&mut self) -> Result<Authorization, Error> {
        let now = self.clock.now();
        if self.auth.has_usable_token(now) {
            return self.run(Input::TokenWanted { now });
        }
        // Single flight: another thread or process may be refreshing; wait, then reload.
        let _lock = self.store.lock(&self.key)?;
        self.reload()?;
        self.run(Input::TokenWanted { now: self.clock.now() })
    }

    /// The server challenged (see [`challenge_of`]): re-authorize (or refresh, step up, or
    /// take a DPoP nonce) and return what to attach to the retry.
    pub fn challenged(&mut self, challenge: Challenge) -> Result<Authorization, Error> {
        let Challenge { status, www_authenticate, dpop_nonce } = challenge;
        let _lock = self.store.lock(&self.key)?;
        let rejected = self.auth.token_set().map(|t| t.access_token.secret().to_owned());
        let stored = self.store.load(&self.key)?;
        if let (Some(r), Some(t)) = (&rejected, &stored.tokens) {
            if t.access_token.secret() != r && t.is_fresh(self.clock.now(), self.config.refresh_skew) {
                // Another instance already replaced the rejected token: use that.
                self.auth = Authorizer::new(self.config.clone(), stored, self.clock.now())?;
                return self.run(Input::TokenWanted { now: self.clock.now() });
            }
        }
        self.run(Input::Challenged { now: self.clock.now(), status, www_authenticate, dpop_nonce })
    }

    /// Sends `req` with the token attached; on 401, or 403 `insufficient_scope`, authorizes
    /// and retries (core bounds the attempts). For people who bring their own MCP client.
    pub fn send(&mut self, req: ::http::Request<Vec<u8>>, max_body: usize) -> Result<::http::Response<Vec<u8>>, Error> {
        let mut header = self.authorization()?;
        loop {
            let mut r = req.clone();
            self.attach(&mut r, &header);
            let resp = self.http.send(r, max_body).map_err(Error::Transport)?;
            match challenge_of(&resp) {
                Some(c) => header = self.challenged(c)?,
                None => return Ok(resp),
            }
        }
    }

    /// Sets `Authorization` (and, for DPoP-bound tokens, a fresh `DPoP` proof) on a request.
    pub fn attach(&self, req: &mut ::http::Request<Vec<u8>>, authorization: &Authorization) {
        req.headers_mut().insert(::http::header::AUTHORIZATION, authorization.header_value());
        if let Ok(url) = url::Url::parse(&req.uri().to_string()) {
            let mut salt = [0u8; 16];
            let _ = getrandom::fill(&mut salt);
            if let Some(proof) = authorization.dpop_proof(req.method().as_str(), &url, self.clock.now(), &salt) {
                req.headers_mut().insert("DPoP", proof);
            }
        }
    }

    /// Rebuilds the machine from the store if another instance changed the tokens meanwhile.
    fn reload(&mut self) -> Result<(), Error> {
        let restored = self.store.load(&self.key)?;
        let held = self.auth.token_set().map(|t| t.access_token.secret().to_owned());
        let stored = restored.tokens.as_ref().map(|t| t.access_token.secret().to_owned());
        if held != stored {
            self.auth = Authorizer::new(self.config.clone(), restored, self.clock.now())?;
        }
        Ok(())
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn run(&mut self, first: Input) -> Result<Authorization, Error> {
        self.auth.handle_input(first)?;
        let mut io = FlowIo { events: mpsc::channel(), listener: None, reply: None, prompt_cancel: None };
        loop {
            let now = self.now();
            let next = match self.auth.poll_output() {
                Output::Send(req) => Input::Response { now, id: req.id, result: self.http.call(&req) },
                Output::PrepareAttempt(plan) => match &plan.redirect {
                    Some(_) if !self.interaction.can_interact() => Input::Cancel { now, reason: CancelReason::NoInteraction },
                    redirect => {
                        let entropy = os_entropy()?;
                        let callback = match redirect {
                            None => CallbackSetup::NotRequested,
                            Some(r) => match Listener::bind(r, io.events.0.clone()) {
                                Ok(l) => {
                                    let uri = l.redirect_uri().clone();
                                    io.listener = Some(l);
                                    CallbackSetup::Listening(uri)
                                }
                                Err(e) => CallbackSetup::Unavailable(format!("cannot listen on {}:{}: {e}", r.host, r.port)),
                            },
                        };
                        Input::AttemptPrepared { now, entropy, callback }
                    }
                },
                Output::OpenAuthorizationUrl { url, .. } => match self.interaction.handle_url(&url) {
                    UrlHandled::Opened => {
                        if self.interaction.paste_while_listening {
                            self.start_prompt(&mut io, &url);
                        }
                        continue;
                    }
                    UrlHandled::NotOpened(reason) => {
                        if io.listener.is_some() {
                            Input::CallbackUnavailable { now, reason }
                        } else {
                            continue; // paste mode already; the prompt follows
                        }
                    }
                },
                Output::PromptForRedirect { url } => {
                    if io.prompt_cancel.is_none() && self.interaction.prompt.available() {
                        self.start_prompt(&mut io, &url);
                        continue;
                    } else if io.prompt_cancel.is_none() && io.listener.is_none() {
                        // Nobody can paste and nothing listens: no login can finish.
                        Input::Cancel { now, reason: CancelReason::NoInteraction }
                    } else {
                        continue;
                    }
                }
                Output::AnswerCallback(outcome) => {
                    if let Some(reply) = io.reply.take() {
                        let _ = reply.send(response_page(&outcome));
                    }
                    io.listener.take();
                    if let Some(c) = io.prompt_cancel.take() {
                        c.store(true, Ordering::Relaxed);
                    }
                    continue;
                }
                Output::Persist(p) => {
                    self.store.persist(&self.key, &p)?;
                    continue;
                }
                Output::Wait { until } => {
                    let Some(until) = until else { return Err(Error::Stalled) };
                    let wait = Duration::from_millis(until.as_millis().saturating_sub(now.as_millis()));
                    match io.events.1.recv_timeout(wait) {
                        Ok(Event::Callback { url, reply }) => {
                            io.reply = Some(reply);
                            Input::Redirect { now: self.now(), url, source: RedirectSource::Loopback }
                        }
                        Ok(Event::Paste(url)) => Input::Redirect { now: self.now(), url, source: RedirectSource::Paste },
                        Ok(Event::PromptClosed) => {
                            io.prompt_cancel = None;
                            if io.listener.is_some() {
                                continue;
                            }
                            Input::Cancel { now: self.now(), reason: CancelReason::NoInteraction }
                        }
                        Err(RecvTimeoutError::Timeout) => Input::Timeout { now: self.now().max(until) },
                        Err(RecvTimeoutError::Disconnected) => return Err(Error::Stalled),
                    }
                }
                Output::Ready(a) => return Ok(a),
                Output::Failed(e) => return Err(e.into()),
                _ => continue,
            };
            self.auth.handle_input(next)?;
        }
    }

    fn start_prompt(&self, io: &mut FlowIo, url: &url::Url) {
        if io.prompt_cancel.is_some() || !self.interaction.prompt.available() {
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        io.prompt_cancel = Some(cancel.clone());
        let (prompt, tx, url) = (self.interaction.prompt.clone(), io.events.0.clone(), url.clone());
        let _ = std::thread::Builder::new().name("mcp-oauth-paste".into()).spawn(move || {
            let event = match prompt.read_redirect(&url, &cancel) {
                Some(u) => Event::Paste(u),
                None => Event::PromptClosed,
            };
            let _ = tx.send(event);
        });
    }
}

/// An OAuth challenge from the MCP server, as core's [`Input::Challenged`] wants it.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// 401, or 403.
    pub status: u16,
    /// Every `WWW-Authenticate` line.
    pub www_authenticate: Vec<::http::HeaderValue>,
    /// The `DPoP-Nonce` header, if any.
    pub dpop_nonce: Option<String>,
}

/// If the response is an OAuth challenge (as core judges it), its parts.
pub fn challenge_of(resp: &::http::Response<Vec<u8>>) -> Option<Challenge> {
    let status = resp.status().as_u16();
    let www: Vec<_> = resp.headers().get_all(::http::header::WWW_AUTHENTICATE).iter().cloned().collect();
    let dpop_nonce = resp.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()).map(str::to_owned);
    mcp_oauth_core::discovery::is_challenge(status, &www).then_some(Challenge { status, www_authenticate: www, dpop_nonce })
}
