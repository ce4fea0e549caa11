//! The blocking adapter (feature `blocking`, default): ureq for HTTP, a `std::net` listener
//! thread for the callback, the system browser, a stdin paste prompt, and a token store.
//!
//! [`OAuthClient`] drives one core [`Authorizer`] per MCP server. It makes no OAuth decision:
//! it sends what core asks, binds and waits, opens and prompts, saves, and feeds the results
//! back. [`McpClient`] is a small MCP client on top (Streamable HTTP).

mod loopback;
mod mcp;

pub use self::loopback::{Event, Listener};
pub use self::mcp::McpClient;
pub use crate::mcp::{challenge_of, Challenge, ConnectMode, SseEvent, Tool};
pub use crate::transport::{HttpClient, Stream, StreamBody, StreamCloser};

use crate::error::Error;
use crate::flow::{self, Flow, PromptSwitch, Step};
use crate::interaction::Interaction;
use crate::store::TokenStore;
use crate::{os_entropy, Clock, SystemClock};
use mcp_oauth_core::{Authorization, Authorizer, CallbackSetup, Config, Input, Timestamp};
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
    /// A save failed: the store may hold older tokens than the machine (a rotated refresh token).
    unsaved: bool,
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
    prompt: PromptSwitch,
}

impl OAuthClient {
    /// A client for `config.server_url`, restoring what `store` holds for it.
    pub fn new(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
        Self::with_parts(config, store, interaction, HttpClient::default(), Arc::new(SystemClock))
    }

    /// Like [`new`](Self::new) with a specific HTTP client and clock (tests replace the clock).
    /// The configuration's [`NetworkPolicy`](mcp_oauth_core::NetworkPolicy) is applied to `http`.
    pub fn with_parts(
        config: Config,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let key = config.store_key();
        let restored = crate::store::load_for(&config, &*store)?;
        flow::note_foreign_tokens(&config, &restored);
        let auth = Authorizer::new(config.clone(), restored, clock.now())?;
        let http = http.with_policy(config.network, config.server_url.host_str().unwrap_or(""));
        Ok(OAuthClient { config, key, auth, http, store, interaction, clock, unsaved: false })
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
        if self.auth.has_usable_token(now) && !self.unsaved {
            return self.run(Input::TokenWanted { now });
        }
        // Single flight: another thread or process may be refreshing; wait, then reload.
        let _lock = self.store.lock(&self.key)?;
        self.reload()?;
        let now = self.clock.now();
        self.run(Input::TokenWanted { now })
    }

    /// The server challenged (see [`challenge_of`]): re-authorize (or refresh, step up, or
    /// take a DPoP nonce) and return what to attach to the retry.
    pub fn challenged(&mut self, challenge: Challenge) -> Result<Authorization, Error> {
        self.challenge(challenge).map(|(a, _)| a)
    }

    /// Runs `f` and also returns how many new authorizations the machine started meanwhile.
    fn counted(&mut self, f: impl FnOnce(&mut Self) -> Result<Authorization, Error>) -> Result<(Authorization, u64), Error> {
        let before = self.auth.authorizations();
        let a = f(self)?;
        Ok((a, self.auth.authorizations().saturating_sub(before)))
    }

    /// [`challenged`](Self::challenged), counted against one request's `retries`.
    pub(crate) fn retry(&mut self, challenge: Challenge, retries: &mut flow::Retries) -> Result<Authorization, Error> {
        retries.challenge(&challenge)?;
        let before = self.auth.authorizations();
        let (a, replaced) = self.challenge(challenge)?;
        retries.authorized(self.auth.authorizations().saturating_sub(before));
        retries.answered(replaced);
        Ok(a)
    }

    /// [`authorization`](Self::authorization), counted against one request's `retries`.
    pub(crate) fn first(&mut self, retries: &mut flow::Retries) -> Result<Authorization, Error> {
        let (a, new) = self.counted(|c| c.authorization())?;
        retries.authorized(new);
        Ok(a)
    }

    /// The answer to a challenge, and whether it is a token another instance stored meanwhile.
    fn challenge(&mut self, challenge: Challenge) -> Result<(Authorization, bool), Error> {
        let Challenge { status, www_authenticate, dpop_nonce } = challenge;
        let _lock = self.store.lock(&self.key)?;
        self.write_back()?;
        let rejected = self.auth.token_set().map(|t| t.access_token.secret().to_owned());
        let stored = self.store.load(&self.key)?;
        let replaced = flow::replaced_since(&self.config, rejected.as_deref(), &stored);
        if replaced || flow::store_changed(&self.auth, &stored) {
            // Another instance refreshed or logged in meanwhile: its tokens (and refresh token,
            // the only one still valid after a rotation) are the ones to go on with.
            flow::abandon(&mut self.auth, self.clock.now());
            self.auth.restore(stored)?;
        }
        if replaced {
            // The rejected token was already replaced by a fresh one: use that.
            return self.run(Input::TokenWanted { now: self.clock.now() }).map(|a| (a, true));
        }
        self.run(Input::Challenged { now: self.clock.now(), status, www_authenticate, dpop_nonce }).map(|a| (a, false))
    }

    /// Sends `req` with the token attached; on 401, or 403 `insufficient_scope`, authorizes
    /// and retries (core bounds the attempts). For people who bring their own MCP client.
    /// A request for another origin than the MCP server's is refused
    /// ([`Error::ForeignOrigin`]) before anything is sent.
    pub fn send(&mut self, req: ::http::Request<Vec<u8>>, max_body: usize) -> Result<::http::Response<Vec<u8>>, Error> {
        flow::check_origin(&self.config, &req)?;
        let mut retries = flow::Retries::new(&self.config);
        let mut header = self.first(&mut retries)?;
        loop {
            let mut r = req.clone();
            self.attach(&mut r, &header)?;
            let resp = self.http.send(r, max_body).map_err(Error::Transport)?;
            match challenge_of(&resp) {
                Some(c) => header = self.retry(c, &mut retries)?,
                None => return Ok(resp),
            }
        }
    }

    /// Sets `Authorization` (and, for DPoP-bound tokens, a fresh `DPoP` proof) on a request to
    /// the MCP server; a request for another origin is refused ([`Error::ForeignOrigin`]) and
    /// left unchanged.
    pub fn attach(&self, req: &mut ::http::Request<Vec<u8>>, authorization: &Authorization) -> Result<(), Error> {
        flow::check_origin(&self.config, req)?;
        flow::attach(req, authorization, self.clock.now());
        Ok(())
    }

    /// Rebuilds the machine from the store if another instance changed the tokens meanwhile.
    fn reload(&mut self) -> Result<(), Error> {
        self.write_back()?;
        let restored = self.store.load(&self.key)?;
        if flow::store_changed(&self.auth, &restored) {
            flow::abandon(&mut self.auth, self.clock.now());
            self.auth.restore(restored)?;
        }
        Ok(())
    }

    /// After a failed save, saves what the machine holds before anything reads the store (which
    /// may hold a refresh token that was rotated away). Callers hold the store lock.
    fn write_back(&mut self) -> Result<(), Error> {
        if self.unsaved {
            for p in flow::unsaved(&self.auth) {
                self.store.persist(&self.key, &p)?;
            }
            self.unsaved = false;
        }
        Ok(())
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn run(&mut self, first: Input) -> Result<Authorization, Error> {
        flow::abandon(&mut self.auth, self.clock.now());
        let result = self.drive(first);
        flow::finished(&self.key, &result);
        if result.is_err() {
            flow::abandon(&mut self.auth, self.clock.now());
        }
        result
    }

    fn drive(&mut self, first: Input) -> Result<Authorization, Error> {
        let mut flow = Flow::start(&self.key, &mut self.auth, first)?;
        let mut io = FlowIo { events: mpsc::channel(), listener: None, reply: None, prompt: PromptSwitch::default() };
        loop {
            let now = self.now();
            match flow.next(&mut self.auth, &self.interaction, now)? {
                Step::Send(req) => {
                    let result = self.http.call(&req);
                    flow.responded(&mut self.auth, self.clock.now(), &req, result)?;
                }
                Step::Prepare(redirect) => {
                    let entropy = os_entropy()?;
                    let callback = match redirect {
                        None => CallbackSetup::NotRequested,
                        Some(plan) => match Listener::bind(&plan, io.events.0.clone()) {
                            Ok(l) => {
                                let uri = l.redirect_uri().clone();
                                io.listener = Some(l);
                                CallbackSetup::Listening(uri)
                            }
                            Err(e) => flow::bind_failed(&plan, &e),
                        },
                    };
                    flow.prepared(&mut self.auth, now, entropy, callback)?;
                }
                Step::OpenUrl(url) => {
                    let handled = self.interaction.handle_url(&url);
                    flow.url_handled(&mut self.auth, &self.interaction, self.clock.now(), url, handled)?;
                }
                Step::StartPrompt(url) => self.start_prompt(&mut io, &url),
                Step::Answer(page) => {
                    if let Some(reply) = io.reply.take() {
                        let _ = reply.send(page);
                    }
                    io.listener.take();
                    io.prompt.stop();
                }
                Step::Reject(page) => {
                    if let Some(reply) = io.reply.take() {
                        let _ = reply.send(page);
                    }
                }
                Step::Persist(p) => {
                    if let Err(e) = self.store.persist(&self.key, &p) {
                        self.unsaved = true;
                        return Err(e.into());
                    }
                }
                Step::Wait(until) => {
                    // From the machine's time: a clock stepped back does not stretch the wait.
                    let wait = Duration::from_millis(until.as_millis().saturating_sub(now.max(self.auth.now()).as_millis()));
                    let event = match io.events.1.recv_timeout(wait) {
                        Ok(Event::Callback { url, reply }) => {
                            io.reply = Some(reply);
                            flow::Event::Callback(url)
                        }
                        Ok(Event::Paste(url)) => flow::Event::Paste(url),
                        Ok(Event::PromptClosed) => {
                            io.prompt.ended();
                            flow::Event::PromptClosed
                        }
                        Err(RecvTimeoutError::Timeout) => flow::Event::Timeout(until),
                        Err(RecvTimeoutError::Disconnected) => return Err(Error::Stalled),
                    };
                    flow.event(&mut self.auth, self.clock.now(), event)?;
                }
                Step::Ready(a) => return Ok(a),
            }
        }
    }

    fn start_prompt(&self, io: &mut FlowIo, url: &url::Url) {
        let cancel = io.prompt.arm();
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
