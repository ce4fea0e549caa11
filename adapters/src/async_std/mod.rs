//! The async-std adapter (feature `async-std`): the same capabilities as
//! the blocking adapter, for async programs. It drives the same core machine with the same
//! adapter choices (one shared flow driver) and the same MCP wire code ([`crate::mcp`]); only
//! the I/O differs.
//!
//! * [`AsyncOAuthClient`]: cheap to clone and shared by tasks. Tasks that want a token at once
//!   for the same server cause one authorization or refresh; the others wait for its result
//!   (an async mutex per client, and the store's lock across clients and processes, taken on
//!   the blocking pool so the executor never blocks).
//! * [`McpClient`]: connect (eager or lazy), list and call tools, 401 retry, step-up, over
//!   Streamable HTTP, the stateless 2026-07-28 wire, or legacy HTTP+SSE.
//! * [`AsyncHttpClient`]: bring your own HTTP client (a closure will do); the default is
//!   [`UreqOnPool`].
//! * [`AsyncListener`]: the loopback callback on `async_std::net`.
//!
//! The runtime surface is small on purpose (async-std is deprecated in favour of smol): tasks
//! (`spawn`, `spawn_blocking`), `net`, `future::timeout`, plus the runtime-neutral crates
//! async-std re-exports (`async-channel`, `async-lock`, the futures-io and futures-core traits).
//! Spawning, the blocking pool and timeouts go through one private module and `async_std::net`
//! appears only in the listener, so a smol port is a matter of renames. The futures run on any
//! executor: the test suite drives them with `smol::block_on` too.
//!
//! ```no_run
//! use mcp_oauth_client::async_std::McpClient;
//! use mcp_oauth_client::{Config, FileStore, Interaction};
//! use std::sync::Arc;
//!
//! # async_std::task::block_on(async {
//! let config = Config::new("https://mcp.example.com/mcp".parse()?);
//! let store = Arc::new(FileStore::in_default_dir()?);
//! let mut mcp = McpClient::with_oauth(config, store, Interaction::default()).await?;
//! for tool in mcp.list_tools().await? {
//!     println!("{}", tool.name);
//! }
//! let result = mcp.call_tool("echo", serde_json::json!({"text": "hi"})).await?;
//! # let _ = result;
//! # Ok::<(), Box<dyn std::error::Error>>(()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod http;
mod loopback;
mod mcp;

pub use self::http::{AsyncHttpClient, AsyncStream, BoxFuture, ByteStream, UreqOnPool};
pub use self::loopback::{AsyncListener, Event};
pub use self::mcp::McpClient;
pub use crate::mcp::{challenge_of, Challenge, ConnectMode, SseEvent, Tool};

use crate::error::Error;
use crate::flow::{self, Flow, PromptSwitch, Step};
use crate::interaction::Interaction;
use crate::store::{StoreError, StoreLock, TokenStore};
use crate::{os_entropy, Clock, SystemClock};
use async_std::channel::{self, Receiver, Sender};
use async_std::sync::{Mutex, MutexGuard};
use mcp_oauth_core::{Authorization, Authorizer, CallbackSetup, Config, Input, Persist, Restored};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything this adapter asks of its runtime. Porting to smol means rewriting this module.
mod rt {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use async_std::task::spawn;

    /// Runs blocking work (ureq, file locks, fsync, the browser, stdin) off the executor.
    pub(crate) async fn spawn_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        async_std::task::spawn_blocking(f).await
    }

    /// `f`, or `Err(())` after `d`.
    pub(crate) async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Result<T, ()> {
        async_std::future::timeout(d, f).await.map_err(|_| ())
    }

    pub(crate) async fn sleep(d: Duration) {
        async_std::task::sleep(d).await
    }
}

/// The OAuth client for one MCP server, driving core with async I/O. Clones share one machine,
/// so tasks share one token and one flow at a time.
#[derive(Clone)]
pub struct AsyncOAuthClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    key: String,
    auth: Mutex<Authorizer>,
    http: Arc<dyn AsyncHttpClient>,
    store: Arc<dyn TokenStore>,
    interaction: Interaction,
    clock: Arc<dyn Clock>,
    /// A save failed: the store may hold older tokens than the machine (a rotated refresh token).
    unsaved: AtomicBool,
}

impl std::fmt::Debug for AsyncOAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncOAuthClient").field("server", &self.inner.key).finish_non_exhaustive()
    }
}

/// The I/O of one flow.
struct FlowIo {
    events: (Sender<Event>, Receiver<Event>),
    listener: Option<AsyncListener>,
    reply: Option<Sender<Vec<u8>>>,
    prompt: PromptSwitch,
}

impl FlowIo {
    async fn close(mut self) {
        self.prompt.stop();
        if let Some(l) = self.listener.take() {
            l.close().await;
        }
    }
}

impl AsyncOAuthClient {
    /// A client for `config.server_url`, restoring what `store` holds for it.
    pub async fn new(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
        let http = UreqOnPool::default().with_policy(config.network, config.server_url.host_str().unwrap_or(""));
        Self::with_parts(config, store, interaction, Arc::new(http), Arc::new(SystemClock)).await
    }

    /// Like [`new`](Self::new) with a specific HTTP client and clock (tests replace the clock).
    /// `http` must apply the configuration's [`NetworkPolicy`](mcp_oauth_core::NetworkPolicy)
    /// itself: [`UreqOnPool::with_policy`] does, and other clients can use
    /// [`address_blocked`](mcp_oauth_core::http::address_blocked) in their resolver.
    pub async fn with_parts(
        config: Config,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        http: Arc<dyn AsyncHttpClient>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let key = config.store_key();
        let restored = {
            let (store, config) = (store.clone(), config.clone());
            rt::spawn_blocking(move || crate::store::load_for(&config, &*store)).await?
        };
        flow::note_foreign_tokens(&config, &restored);
        let auth = Authorizer::new(config.clone(), restored, clock.now())?;
        Ok(AsyncOAuthClient {
            inner: Arc::new(Inner {
                config,
                key,
                auth: Mutex::new(auth),
                http,
                store,
                interaction,
                clock,
                unsaved: AtomicBool::new(false),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The HTTP client, for sending MCP requests the same way.
    pub fn http(&self) -> Arc<dyn AsyncHttpClient> {
        self.inner.http.clone()
    }

    /// Runs `f` on the core machine (getters: state, tokens, metadata). Waits while a flow runs.
    pub async fn with_authorizer<T>(&self, f: impl FnOnce(&Authorizer) -> T) -> T {
        f(&*self.inner.auth.lock().await)
    }

    /// The `Authorization` header for the next request: the held token, a refreshed one, or
    /// one from a full authorization. Concurrent callers share one flow.
    pub async fn authorization(&self) -> Result<Authorization, Error> {
        let mut auth = self.inner.auth.lock().await;
        self.authorize(&mut auth).await
    }

    /// [`authorization`](Self::authorization), counted against one request's `retries` (the
    /// new authorizations are counted while the machine is held: other tasks' do not count).
    pub(crate) async fn first(&self, retries: &mut flow::Retries) -> Result<Authorization, Error> {
        let mut auth = self.inner.auth.lock().await;
        let before = auth.authorizations();
        let a = self.authorize(&mut auth).await;
        retries.authorized(auth.authorizations().saturating_sub(before));
        a
    }

    /// [`challenged`](Self::challenged), counted against one request's `retries`.
    pub(crate) async fn retry(
        &self,
        challenge: Challenge,
        rejected: Option<&Authorization>,
        retries: &mut flow::Retries,
    ) -> Result<Authorization, Error> {
        retries.challenge(&challenge)?;
        let mut auth = self.inner.auth.lock().await;
        let before = auth.authorizations();
        let (a, replaced) = self.challenge(&mut auth, challenge, rejected).await?;
        retries.authorized(auth.authorizations().saturating_sub(before));
        retries.answered(replaced);
        Ok(a)
    }

    async fn authorize(&self, auth: &mut MutexGuard<'_, Authorizer>) -> Result<Authorization, Error> {
        // One reading of the clock: the machine must not judge at a later time than this check.
        let now = self.inner.clock.now();
        if auth.has_usable_token(now) && !self.inner.unsaved.load(Ordering::SeqCst) {
            return self.run(auth, Input::TokenWanted { now }).await;
        }
        // Single flight across clients and processes: wait for the store, then reload.
        let _lock = self.store_lock().await?;
        self.write_back(auth).await?;
        let restored = load(&self.inner.store, &self.inner.key).await?;
        if flow::store_changed(auth, &restored) {
            flow::abandon(auth, self.inner.clock.now());
            auth.restore(restored)?;
        }
        self.run(auth, Input::TokenWanted { now: self.inner.clock.now() }).await
    }

    /// The server challenged the request that carried `rejected` (see [`challenge_of`]):
    /// re-authorize (or refresh, step up, or take a DPoP nonce) and return what to attach to
    /// the retry. If another task or process already replaced the rejected token, that one is
    /// returned without asking the server.
    pub async fn challenged(&self, challenge: Challenge, rejected: Option<&Authorization>) -> Result<Authorization, Error> {
        let mut auth = self.inner.auth.lock().await;
        self.challenge(&mut auth, challenge, rejected).await.map(|(a, _)| a)
    }

    async fn challenge(
        &self,
        auth: &mut MutexGuard<'_, Authorizer>,
        challenge: Challenge,
        rejected: Option<&Authorization>,
    ) -> Result<(Authorization, bool), Error> {
        let Challenge { status, www_authenticate, dpop_nonce } = challenge;
        let _lock = self.store_lock().await?;
        self.write_back(auth).await?;
        let stored = load(&self.inner.store, &self.inner.key).await?;
        let rejected = rejected.map(|a| a.access_token().secret());
        let now = self.inner.clock.now();
        let replaced = flow::replaced_since(&self.inner.config, rejected, &stored);
        if replaced || flow::store_changed(auth, &stored) {
            // Another instance refreshed or logged in meanwhile: its tokens (and refresh token,
            // the only one still valid after a rotation) are the ones to go on with.
            flow::abandon(auth, now);
            auth.restore(stored)?;
        }
        if replaced {
            // The rejected token was already replaced by a fresh one: use that.
            return self.run(auth, Input::TokenWanted { now }).await.map(|a| (a, true));
        }
        self.run(auth, Input::Challenged { now, status, www_authenticate, dpop_nonce }).await.map(|a| (a, false))
    }

    /// Sends `req` with the token attached; on 401, or 403 `insufficient_scope`, authorizes
    /// and retries (core bounds the attempts). For people who bring their own MCP client.
    /// A request for another origin than the MCP server's is refused
    /// ([`Error::ForeignOrigin`]) before anything is sent.
    pub async fn send(&self, req: ::http::Request<Vec<u8>>, max_body: usize) -> Result<::http::Response<Vec<u8>>, Error> {
        flow::check_origin(&self.inner.config, &req)?;
        let mut retries = flow::Retries::new(&self.inner.config);
        let mut header = self.first(&mut retries).await?;
        loop {
            let mut r = req.clone();
            self.attach(&mut r, &header)?;
            let resp = http::send_capped(&*self.inner.http, r, max_body).await.map_err(Error::Transport)?;
            match challenge_of(&resp) {
                Some(c) => header = self.retry(c, Some(&header), &mut retries).await?,
                None => return Ok(resp),
            }
        }
    }

    /// Sets `Authorization` (and, for DPoP-bound tokens, a fresh `DPoP` proof) on a request to
    /// the MCP server; a request for another origin is refused ([`Error::ForeignOrigin`]) and
    /// left unchanged.
    pub fn attach(&self, req: &mut ::http::Request<Vec<u8>>, authorization: &Authorization) -> Result<(), Error> {
        flow::check_origin(&self.inner.config, req)?;
        flow::attach(req, authorization, self.inner.clock.now());
        Ok(())
    }

    /// True if the machine holds tokens (usable or refreshable).
    pub async fn holds_token(&self) -> bool {
        self.inner.auth.lock().await.token_set().is_some()
    }

    async fn store_lock(&self) -> Result<StoreLock, StoreError> {
        let (store, key) = (self.inner.store.clone(), self.inner.key.clone());
        rt::spawn_blocking(move || store.lock(&key)).await
    }

    async fn persist(&self, p: Persist) -> Result<(), StoreError> {
        let (store, key) = (self.inner.store.clone(), self.inner.key.clone());
        let result = rt::spawn_blocking(move || store.persist(&key, &p)).await;
        if result.is_err() {
            self.inner.unsaved.store(true, Ordering::SeqCst);
        }
        result
    }

    /// After a failed save, saves what the machine holds before anything reads the store (which
    /// may hold a refresh token that was rotated away). Callers hold the machine and the store lock.
    async fn write_back(&self, auth: &Authorizer) -> Result<(), StoreError> {
        if self.inner.unsaved.load(Ordering::SeqCst) {
            let (store, key, all) = (self.inner.store.clone(), self.inner.key.clone(), flow::unsaved(auth));
            rt::spawn_blocking(move || all.iter().try_for_each(|p| store.persist(&key, p))).await?;
            self.inner.unsaved.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn run(&self, auth: &mut MutexGuard<'_, Authorizer>, first: Input) -> Result<Authorization, Error> {
        // A flow whose future was dropped (a caller's timeout) left the machine mid-flow.
        flow::abandon(auth, self.inner.clock.now());
        let mut io = FlowIo { events: channel::unbounded(), listener: None, reply: None, prompt: PromptSwitch::default() };
        let result = self.drive(auth, &mut io, first).await;
        flow::finished(&self.inner.key, &result);
        io.close().await;
        if result.is_err() {
            flow::abandon(auth, self.inner.clock.now());
        }
        result
    }

    async fn drive(&self, auth: &mut Authorizer, io: &mut FlowIo, first: Input) -> Result<Authorization, Error> {
        let (clock, interaction) = (&self.inner.clock, &self.inner.interaction);
        let mut flow = Flow::start(&self.inner.key, auth, first)?;
        loop {
            let now = clock.now();
            match flow.next(auth, interaction, now)? {
                Step::Send(req) => {
                    let result = http::send_capped(&*self.inner.http, crate::transport::request_of(&req), req.max_response_bytes).await;
                    flow.responded(auth, clock.now(), &req, result)?;
                }
                Step::Prepare(redirect) => {
                    let entropy = os_entropy()?;
                    let callback = match redirect {
                        None => CallbackSetup::NotRequested,
                        Some(plan) => match AsyncListener::bind(&plan, io.events.0.clone()).await {
                            Ok(l) => {
                                let uri = l.redirect_uri().clone();
                                io.listener = Some(l);
                                CallbackSetup::Listening(uri)
                            }
                            Err(e) => flow::bind_failed(&plan, &e),
                        },
                    };
                    flow.prepared(auth, now, entropy, callback)?;
                }
                Step::OpenUrl(url) => {
                    let (i, u) = (interaction.clone(), url.clone());
                    let handled = rt::spawn_blocking(move || i.handle_url(&u)).await;
                    flow.url_handled(auth, interaction, clock.now(), url, handled)?;
                }
                Step::StartPrompt(url) => {
                    let cancel = io.prompt.arm();
                    let (prompt, tx) = (interaction.prompt.clone(), io.events.0.clone());
                    rt::spawn(async move {
                        let pasted = rt::spawn_blocking(move || prompt.read_redirect(&url, &cancel)).await;
                        let _ = tx.send(pasted.map(Event::Paste).unwrap_or(Event::PromptClosed)).await;
                    });
                }
                Step::Reject(page) => {
                    if let Some(reply) = io.reply.take() {
                        let _ = reply.try_send(page);
                    }
                }
                Step::Answer(page) => {
                    if let Some(reply) = io.reply.take() {
                        let _ = reply.try_send(page);
                    }
                    if let Some(l) = io.listener.take() {
                        l.close().await;
                    }
                    io.prompt.stop();
                }
                Step::Persist(p) => self.persist(p).await?,
                Step::Wait(until) => {
                    // From the machine's time: a clock stepped back does not stretch the wait.
                    let wait = Duration::from_millis(until.as_millis().saturating_sub(now.max(auth.now()).as_millis()));
                    let event = match rt::timeout(wait, io.events.1.recv()).await {
                        Ok(Ok(Event::Callback { url, reply })) => {
                            io.reply = Some(reply);
                            flow::Event::Callback(url)
                        }
                        Ok(Ok(Event::Paste(url))) => flow::Event::Paste(url),
                        Ok(Ok(Event::PromptClosed)) => {
                            io.prompt.ended();
                            flow::Event::PromptClosed
                        }
                        Ok(Err(_)) => return Err(Error::Stalled),
                        Err(()) => flow::Event::Timeout(until),
                    };
                    flow.event(auth, clock.now(), event)?;
                }
                Step::Ready(a) => return Ok(a),
            }
        }
    }
}

async fn load(store: &Arc<dyn TokenStore>, key: &str) -> Result<Restored, StoreError> {
    let (store, key) = (store.clone(), key.to_owned());
    rt::spawn_blocking(move || store.load(&key)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send_so_tasks_can_be_spawned() {
        let store: Arc<dyn TokenStore> = Arc::new(crate::MemoryStore::new());
        let config = Config::new("https://mcp.example.com/mcp".parse().unwrap());
        let client =
            async_std::task::block_on(AsyncOAuthClient::new(config.clone(), store.clone(), Interaction::non_interactive())).unwrap();
        assert_send(&client.authorization());
        let req = ::http::Request::get("https://mcp.example.com/mcp").body(Vec::new()).unwrap();
        assert_send(&client.send(req, 10));
        let mut mcp = McpClient::new(config.server_url.clone(), Some(client));
        assert_send(&mcp.list_tools());
        assert_send(&mcp.call_tool("echo", serde_json::json!({})));
        assert_send(&McpClient::with_oauth(config, store, Interaction::non_interactive()));
    }
}
