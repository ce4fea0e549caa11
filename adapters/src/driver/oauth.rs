//! The OAuth client of one MCP server, on any [`Runtime`]: the store under its lock, the flow
//! loop, and one request's authorize-and-retry loop ([`Attempts`]).

use super::http::{send_capped, HttpClient};
use super::listener::Listener;
use super::{timeout, Runtime};
use crate::error::{Error, McpRequest};
use crate::interaction::Interaction;
use crate::listen::Event;
use crate::mcp::{challenge_of, Challenge};
use crate::steps::{self, PromptSwitch, Retries, Step, Steps};
use crate::store::{StoreError, StoreLock, TokenStore};
use crate::{os_entropy, Clock};
use async_channel::{Receiver, Sender};
use async_lock::{Mutex, MutexGuard};
use mcp_oauth_core::{Authorization, Authorizer, CallbackSetup, Config, IfUnreachable, Input, LogoutReport, Persist, Restored};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The OAuth client for one MCP server. Clones share one machine, so tasks (or threads) share
/// one token and one flow at a time: concurrent callers wait for the flow under way and take
/// its result.
pub(crate) struct Client<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client { inner: self.inner.clone() }
    }
}

struct Inner<R> {
    rt: R,
    config: Config,
    key: String,
    /// The server as the log shows it (`steps::safe_url` of `key`).
    shown: String,
    auth: Mutex<Authorizer>,
    http: Arc<dyn HttpClient>,
    store: Arc<dyn TokenStore>,
    interaction: Interaction,
    clock: Arc<dyn Clock>,
    /// A save failed: the store may hold older tokens than the machine (a rotated refresh token).
    unsaved: AtomicBool,
    /// What the store held when this client last read or wrote it: a failed save is written
    /// back only over that, never over what another instance stored since (a Redis holder
    /// fenced out while the next holder logged in; a login and a logout elsewhere).
    stored: std::sync::Mutex<Seen>,
}

/// What a store held at one time, as far as writing back goes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Seen {
    /// The access token (a digest: no other copy of a secret).
    tokens: Option<[u8; 32]>,
    revision: Revision,
}

/// A store's [`TokenStore::revision`] as this client read it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Revision {
    At(u64),
    /// The store keeps none.
    NotKept,
    /// It could not be read (the store failed right after a save of ours).
    Unknown,
}

impl Revision {
    fn of(read: Result<Option<u64>, StoreError>) -> Self {
        match read {
            Ok(Some(r)) => Revision::At(r),
            Ok(None) => Revision::NotKept,
            Err(_) => Revision::Unknown,
        }
    }
}

impl Seen {
    fn of(tokens: Option<&mcp_oauth_core::TokenSet>, revision: Revision) -> Self {
        Seen { tokens: digest(tokens), revision }
    }

    /// Whether the store holds what it held at `earlier`: the same tokens, and no save or
    /// forget that changed them since. Tokens are new with every login and refresh, so the
    /// same tokens cannot come back; an empty store can (a login and a logout elsewhere), which
    /// only the revision shows: where it is unknown, an empty store counts as changed (a
    /// logout is never undone). A store that keeps no revision is judged by its tokens alone.
    fn unchanged_since(&self, earlier: &Seen) -> bool {
        self.tokens == earlier.tokens
            && match (self.revision, earlier.revision) {
                (Revision::At(now), Revision::At(then)) => now == then,
                (Revision::NotKept, Revision::NotKept) => true,
                _ => self.tokens.is_some(),
            }
    }
}

/// What identifies the tokens a store holds, without keeping another copy of a secret.
fn digest(tokens: Option<&mcp_oauth_core::TokenSet>) -> Option<[u8; 32]> {
    use sha2::Digest;
    tokens.map(|t| sha2::Sha256::digest(t.access_token.secret().as_bytes()).into())
}

impl<R: Runtime> Inner<R> {
    fn saw(&self, seen: Seen) {
        *self.stored.lock().unwrap_or_else(|e| e.into_inner()) = seen;
    }

    fn last_seen(&self) -> Seen {
        *self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the store, and notes what it held.
    fn look(&self) -> Result<Restored, StoreError> {
        // The revision first: a save between the two reads shows as a change.
        let revision = Revision::of(self.store.revision(&self.key));
        let r = self.store.load(&self.key)?;
        self.saw(Seen::of(r.tokens.as_ref(), revision));
        Ok(r)
    }

    /// Notes what the store holds after a save of ours of `p` succeeded.
    fn after_save(&self, p: &Persist) {
        match p {
            Persist::Tokens(t) => self.saved(Some(t)),
            // What the store shows now: another issuer's older entry, perhaps.
            Persist::ForgetTokens { .. } if self.look().is_err() => self.saved(None),
            // A registration changes no tokens, but a store may give it a revision of its own
            // (the auto store's moves from both stores' to the keyring's once the keyring holds
            // an entry): what the store holds after our own write is what we saw.
            // Only a revision that reads replaces the one noted: a registration moves no tokens,
            // and a failed read here would make a later write-back of a first login take the
            // store for changed.
            Persist::Client(_) | Persist::ForgetClient { .. } => {
                if let Ok(r) = self.store.revision(&self.key) {
                    self.stored.lock().unwrap_or_else(|e| e.into_inner()).revision = Revision::of(Ok(r));
                }
            }
            _ => {}
        }
    }

    /// Notes `tokens` as the store's after a save of ours, with the revision that save left (or
    /// an unknown one, if it cannot be read).
    fn saved(&self, tokens: Option<&mcp_oauth_core::TokenSet>) {
        self.saw(Seen::of(tokens, Revision::of(self.store.revision(&self.key))));
    }
}

impl<R: Runtime> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient").field("server", &self.inner.key).field("runtime", &self.inner.rt).finish_non_exhaustive()
    }
}

/// The store's lock, shared with the blocking work done under it: a save that is under way
/// when the caller drops the flow's future (a timeout) keeps the lock until it is done, so no
/// other instance reads the store half-written or acts on a refresh token it is replacing.
type Held = Arc<std::sync::Mutex<StoreLock>>;

/// How a flow ended.
enum Ended {
    Ready(Authorization),
    LoggedOut(LogoutReport),
}

/// The I/O of one flow.
struct FlowIo<R: Runtime> {
    events: (Sender<Event>, Receiver<Event>),
    listener: Option<Listener<R>>,
    reply: Option<Sender<Vec<u8>>>,
    prompt: PromptSwitch,
}

impl<R: Runtime> FlowIo<R> {
    async fn close(mut self) {
        self.prompt.stop();
        if let Some(l) = self.listener.take() {
            l.close().await;
        }
    }
}

impl<R: Runtime> Client<R> {
    /// A client for `config.server_url` with the default HTTP client (the configuration's
    /// network policy applied to it), restoring what `store` holds.
    pub(crate) async fn new(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
        let http = R::default().default_http(config.network, config.server_url.host_str().unwrap_or(""));
        Self::with_parts(config, store, interaction, http, Arc::new(crate::SystemClock)).await
    }

    /// With a specific HTTP client (used as it is) and clock.
    pub(crate) async fn with_parts(
        config: Config,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        http: Arc<dyn HttpClient>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let rt = R::default();
        let mut config = config;
        // A remote session logs in on another device when the authorization server can.
        config.remote_session |= interaction.is_remote_session();
        let key = config.store_key();
        let shown = steps::safe_url(&key);
        let (restored, revision) = {
            let (store, config) = (store.clone(), config.clone());
            rt.spawn_blocking(move || {
                // The revision first: a save between the two reads shows as a change.
                let revision = Revision::of(store.revision(&config.store_key()));
                Ok::<_, StoreError>((crate::store::load_for(&config, &*store)?, revision))
            })
            .await?
        };
        steps::note_foreign_tokens(&config, &restored);
        let stored = std::sync::Mutex::new(Seen::of(restored.tokens.as_ref(), revision));
        let auth = Authorizer::new(config.clone(), restored, clock.now())?;
        let unsaved = AtomicBool::new(false);
        let inner = Inner { rt, config, key, shown, auth: Mutex::new(auth), http, store, interaction, clock, unsaved, stored };
        Ok(Client { inner: Arc::new(inner) })
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn http(&self) -> Arc<dyn HttpClient> {
        self.inner.http.clone()
    }

    pub(crate) async fn with_authorizer<T>(&self, f: impl FnOnce(&Authorizer) -> T) -> T {
        f(&*self.inner.auth.lock().await)
    }

    pub(crate) async fn holds_token(&self) -> bool {
        self.inner.auth.lock().await.token_set().is_some()
    }

    pub(crate) async fn authorization(&self) -> Result<Authorization, Error> {
        let mut auth = self.inner.auth.lock().await;
        self.authorize(&mut auth).await
    }

    pub(crate) async fn challenged(&self, challenge: Challenge, rejected: Option<&Authorization>) -> Result<Authorization, Error> {
        let mut auth = self.inner.auth.lock().await;
        self.challenge(&mut auth, challenge, rejected).await.map(|(a, _)| a)
    }

    pub(crate) async fn send(&self, req: http::Request<Vec<u8>>, max_body: usize) -> Result<http::Response<Vec<u8>>, Error> {
        steps::check_origin(&self.inner.config, &req)?;
        let mut attempts = Attempts::start(Some(self), true).await?;
        loop {
            let mut r = req.clone();
            attempts.attach(&mut r)?;
            // Named only if it fails: the name takes parsing and formatting.
            let (method, uri) = (r.method().clone(), r.uri().clone());
            let sent = send_capped(&*self.inner.http, r, max_body).await;
            let resp = sent.map_err(|failure| Error::Transport { request: McpRequest::named("request", &method, &uri), failure })?;
            if !attempts.challenged(challenge_of(&resp)).await? {
                return Ok(resp);
            }
        }
    }

    pub(crate) fn attach(&self, req: &mut http::Request<Vec<u8>>, authorization: &Authorization) -> Result<(), Error> {
        steps::check_origin(&self.inner.config, req)?;
        steps::attach(req, authorization, self.inner.clock.now());
        Ok(())
    }

    async fn authorize(&self, auth: &mut MutexGuard<'_, Authorizer>) -> Result<Authorization, Error> {
        // One reading of the clock: the machine must not judge at a later time than this check.
        let now = self.inner.clock.now();
        if auth.has_usable_token(now) && !self.inner.unsaved.load(Ordering::SeqCst) {
            return self.run(auth, None, Input::TokenWanted { now }).await;
        }
        // Single flight across clients and processes: the store's lock, then reload. While
        // another holder has it (most likely refreshing), wait for it and go on with its tokens.
        let mut round = 0;
        let lock = loop {
            round += 1;
            match self.lock_or_wait(round).await? {
                Some(lock) => break lock,
                // A save of ours failed meanwhile (a flow whose future was dropped): the lock
                // first, to write it back.
                None if self.inner.unsaved.load(Ordering::SeqCst) => {}
                None => {
                    let restored = self.load_unlocked().await?;
                    if steps::store_changed(auth, &restored) {
                        steps::abandon(auth, self.inner.clock.now());
                        auth.restore(restored)?;
                        let now = self.inner.clock.now();
                        if auth.has_usable_token(now) {
                            return self.run(auth, None, Input::TokenWanted { now }).await;
                        }
                    }
                }
            }
        };
        let result = self.authorize_locked(auth, &lock).await;
        self.release(lock).await;
        result
    }

    async fn authorize_locked(&self, auth: &mut MutexGuard<'_, Authorizer>, lock: &Held) -> Result<Authorization, Error> {
        self.write_back(auth, lock).await?;
        let restored = self.load(lock).await?;
        if steps::store_changed(auth, &restored) {
            steps::abandon(auth, self.inner.clock.now());
            auth.restore(restored)?;
        }
        self.run(auth, Some(lock), Input::TokenWanted { now: self.inner.clock.now() }).await
    }

    /// Lets go of the store's lock on the blocking pool, not on the executor: letting go of a
    /// Redis lease is a round trip (up to the store's timeout). Errors come here too; only a
    /// future dropped mid-flow lets go of its lock where it is dropped.
    async fn release(&self, lock: Held) {
        self.inner.rt.spawn_blocking(move || drop(lock)).await;
    }

    /// The answer to a challenge, and whether it is a token another instance stored meanwhile.
    async fn challenge(
        &self,
        auth: &mut MutexGuard<'_, Authorizer>,
        challenge: Challenge,
        rejected: Option<&Authorization>,
    ) -> Result<(Authorization, bool), Error> {
        let rejected = rejected.map(|a| a.access_token().secret());
        // While another holder has the lock (most likely replacing the rejected token), wait for
        // it, and go on with its token if it is one to use as it is.
        let mut round = 0;
        let lock = loop {
            round += 1;
            match self.lock_or_wait(round).await? {
                Some(lock) => break lock,
                None if self.inner.unsaved.load(Ordering::SeqCst) => {}
                None => {
                    let stored = self.load_unlocked().await?;
                    if steps::replaced_since(&self.inner.config, rejected, &stored) {
                        let now = self.inner.clock.now();
                        steps::abandon(auth, now);
                        auth.restore(stored)?;
                        if auth.has_usable_token(now) {
                            return self.run(auth, None, Input::TokenWanted { now }).await.map(|a| (a, true));
                        }
                    }
                }
            }
        };
        let result = self.challenge_locked(auth, challenge, rejected, &lock).await;
        self.release(lock).await;
        result
    }

    async fn challenge_locked(
        &self,
        auth: &mut MutexGuard<'_, Authorizer>,
        challenge: Challenge,
        rejected: Option<&str>,
        lock: &Held,
    ) -> Result<(Authorization, bool), Error> {
        let Challenge { status, www_authenticate, dpop_nonce } = challenge;
        self.write_back(auth, lock).await?;
        let stored = self.load(lock).await?;
        let now = self.inner.clock.now();
        let replaced = steps::replaced_since(&self.inner.config, rejected, &stored);
        if replaced || steps::store_changed(auth, &stored) {
            // Another instance refreshed or logged in meanwhile: its tokens (and refresh token,
            // the only one still valid after a rotation) are the ones to go on with.
            steps::abandon(auth, now);
            auth.restore(stored)?;
        }
        if replaced {
            // The rejected token was already replaced by a fresh one: use that.
            return self.run(auth, Some(lock), Input::TokenWanted { now }).await.map(|a| (a, true));
        }
        let challenged = Input::Challenged { now, status, www_authenticate, dpop_nonce };
        self.run(auth, Some(lock), challenged).await.map(|a| (a, false))
    }

    /// The store's lock if it is free ([`TokenStore::try_lock`]); else `None` once its holder
    /// let go ([`TokenStore::wait_unlocked`]), for the caller to reload and perhaps go on with
    /// the holder's tokens. After a failed save of ours, the lock, waiting: what we hold is
    /// written back before anything is read.
    /// From the 32nd round, the lock, waiting (it has a deadline; one client out of many is
    /// not left to lose the race for ever).
    async fn lock_or_wait(&self, round: u32) -> Result<Option<Held>, StoreError> {
        if self.inner.unsaved.load(Ordering::SeqCst) || round >= 32 {
            return self.store_lock().await.map(Some);
        }
        let (store, key) = (self.inner.store.clone(), self.inner.key.clone());
        let lock = self
            .inner
            .rt
            .spawn_blocking(move || match store.try_lock(&key)? {
                Some(lock) => Ok(Some(lock)),
                // Waited for the holder: reload. Did not (a store that cannot wait without the
                // lock, or a holder already gone): the lock, waiting, rather than spin.
                None if store.wait_unlocked(&key)? => Ok(None),
                None => store.lock(&key).map(Some),
            })
            .await?;
        Ok(lock.map(|l| Arc::new(std::sync::Mutex::new(l))))
    }

    /// What the store holds, read without its lock (its writes are whole).
    async fn load_unlocked(&self) -> Result<Restored, StoreError> {
        let inner = self.inner.clone();
        self.inner.rt.spawn_blocking(move || inner.look()).await
    }

    async fn store_lock(&self) -> Result<Held, StoreError> {
        let (store, key) = (self.inner.store.clone(), self.inner.key.clone());
        let lock = self.inner.rt.spawn_blocking(move || store.lock(&key)).await?;
        Ok(Arc::new(std::sync::Mutex::new(lock)))
    }

    async fn load(&self, lock: &Held) -> Result<Restored, StoreError> {
        let (inner, held) = (self.inner.clone(), lock.clone());
        self.inner
            .rt
            .spawn_blocking(move || {
                let _held = held;
                inner.look()
            })
            .await
    }

    /// Saves `p`; under `lock` (kept until the save is done, even if this future is dropped)
    /// when the flow holds the store's lock.
    async fn persist(&self, p: Persist, lock: Option<&Held>) -> Result<(), StoreError> {
        let (inner, held) = (self.inner.clone(), lock.cloned());
        // All of it on the pool, so a dropped future still finishes it: the save, its failure
        // noted for the next call's write-back, and only then the lock released.
        let saved = move || {
            // Under the lock, the write is the holder's: a store whose lock was lost meanwhile
            // (a Redis lease) refuses it.
            let result = match &held {
                Some(h) => inner.store.persist_locked(&inner.key, &p, &h.lock().unwrap_or_else(|e| e.into_inner())),
                None => inner.store.persist(&inner.key, &p),
            };
            match &result {
                Ok(()) => inner.after_save(&p),
                Err(_) => inner.unsaved.store(true, Ordering::SeqCst),
            }
            drop(held);
            result
        };
        self.inner.rt.spawn_blocking(saved).await
    }

    /// After a failed save, saves what the machine holds before anything acts on the store
    /// (which may hold a refresh token that was rotated away), if the store still holds what
    /// it held when the save failed. If another instance changed it since (it logged in or
    /// refreshed while ours could not be saved, a Redis lease lost mid-refresh; or it logged
    /// out), what it left stays, and the caller's reload adopts it. Callers hold the machine
    /// and the store lock.
    async fn write_back(&self, auth: &Authorizer, lock: &Held) -> Result<(), StoreError> {
        if self.inner.unsaved.load(Ordering::SeqCst) {
            let (inner, all, held) = (self.inner.clone(), steps::unsaved(auth), lock.clone());
            let mine = digest(auth.token_set());
            let saved = move || {
                let lock = held.lock().unwrap_or_else(|e| e.into_inner());
                let revision = Revision::of(inner.store.revision(&inner.key));
                let stored = inner.store.load(&inner.key)?;
                let now = Seen::of(stored.tokens.as_ref(), revision);
                // Changed since: another instance's tokens, which are newer, or an emptied
                // store, which is a logout (or a worker that found the stale refresh token
                // spent and forgot it: the store cannot tell the two apart, and a logout must
                // never be undone). The revision shows a login and a logout that left the store
                // as empty as it was. The store holding our own tokens (a save whose reply
                // was lost) is not a change; an emptied store is, even when we hold no tokens
                // either: whoever emptied it forgot registrations too, and ours stay gone.
                if !now.unchanged_since(&inner.last_seen()) && (mine.is_none() || now.tokens != mine) {
                    return Ok(false);
                }
                // Each save that succeeds is noted as it lands: a write-back that fails halfway
                // (its registration saved, its tokens not) is compared next time with what it
                // left, not with what was there before it.
                all.iter().try_for_each(|p| inner.store.persist_locked(&inner.key, p, &lock).map(|()| inner.after_save(p)))?;
                // The machine holds no tokens (a logout, or a refused refresh token, whose
                // forget could not be saved): the store's, which this client last saw, go too.
                if let (None, Some(t)) = (mine, &stored.tokens) {
                    let forget = Persist::ForgetTokens { issuer: t.issuer.clone() };
                    inner.store.persist_locked(&inner.key, &forget, &lock)?;
                    inner.after_save(&forget);
                }
                inner.saw(Seen { tokens: mine, revision: Revision::of(inner.store.revision(&inner.key)) });
                Ok::<_, StoreError>(true)
            };
            if !self.inner.rt.spawn_blocking(saved).await? {
                log::warn!(
                    "mcp-oauth: {}: tokens this client could not save were replaced in the store by another instance's; going on with those",
                    self.inner.shown
                );
            }
            self.inner.unsaved.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn run(&self, auth: &mut MutexGuard<'_, Authorizer>, lock: Option<&Held>, first: Input) -> Result<Authorization, Error> {
        match self.run_flow(auth, lock, first).await? {
            Ended::Ready(a) => Ok(a),
            Ended::LoggedOut(_) => Err(Error::Stalled),
        }
    }

    /// Logs out (see [`Input::LogoutWanted`]), under the store's lock, from what the store
    /// holds now (another process may have refreshed).
    pub(crate) async fn logout(&self, if_unreachable: IfUnreachable) -> Result<LogoutReport, Error> {
        let mut auth = self.inner.auth.lock().await;
        let lock = self.store_lock().await?;
        let result = self.logout_locked(&mut auth, if_unreachable, &lock).await;
        self.release(lock).await;
        result
    }

    async fn logout_locked(
        &self,
        auth: &mut MutexGuard<'_, Authorizer>,
        if_unreachable: IfUnreachable,
        lock: &Held,
    ) -> Result<LogoutReport, Error> {
        self.write_back(auth, lock).await?;
        let restored = self.load(lock).await?;
        steps::abandon(auth, self.inner.clock.now());
        auth.restore(restored)?;
        let first = Input::LogoutWanted { now: self.inner.clock.now(), if_unreachable };
        match self.run_flow(auth, Some(lock), first).await? {
            Ended::LoggedOut(report) => Ok(report),
            Ended::Ready(_) => Err(Error::Stalled),
        }
    }

    async fn run_flow(&self, auth: &mut MutexGuard<'_, Authorizer>, lock: Option<&Held>, first: Input) -> Result<Ended, Error> {
        // A flow whose future was dropped (a caller's timeout) left the machine mid-flow.
        steps::abandon(auth, self.inner.clock.now());
        let mut io = FlowIo { events: async_channel::unbounded(), listener: None, reply: None, prompt: PromptSwitch::default() };
        let result = self.drive(auth, &mut io, lock, first).await;
        steps::finished(&self.inner.shown, &result);
        io.close().await;
        if result.is_err() {
            steps::abandon(auth, self.inner.clock.now());
        }
        result
    }

    async fn drive(&self, auth: &mut Authorizer, io: &mut FlowIo<R>, lock: Option<&Held>, first: Input) -> Result<Ended, Error> {
        let Inner { rt, clock, interaction, .. } = &*self.inner;
        let mut steps = Steps::start(&self.inner.shown, auth, first)?;
        loop {
            let now = clock.now();
            match steps.next(auth, interaction, now)? {
                Step::Send(req) => {
                    let result = send_capped(&*self.inner.http, crate::transport::request_of(&req), req.max_response_bytes).await;
                    steps.responded(auth, clock.now(), &req, result)?;
                }
                Step::Prepare(redirect) => {
                    let entropy = os_entropy()?;
                    let callback = match redirect {
                        None => CallbackSetup::NotRequested,
                        Some(plan) => match Listener::bind(rt, &plan, io.events.0.clone()).await {
                            Ok(l) => {
                                let uri = l.redirect_uri().clone();
                                io.listener = Some(l);
                                CallbackSetup::Listening(uri)
                            }
                            Err(e) => steps::bind_failed(&plan, &e),
                        },
                    };
                    steps.prepared(auth, now, entropy, callback)?;
                }
                Step::OpenUrl(url) => {
                    let (i, u) = (interaction.clone(), url.clone());
                    let handled = rt.spawn_blocking(move || i.handle_url(&u)).await;
                    steps.url_handled(auth, interaction, clock.now(), url, handled)?;
                }
                Step::StartPrompt(url) => {
                    let cancel = io.prompt.arm();
                    let (prompt, tx, r) = (interaction.prompt.clone(), io.events.0.clone(), rt.clone());
                    // Without a task to run it, no paste can come: the listener still may.
                    let _ = rt.spawn("mcp-oauth-paste", async move {
                        let pasted = r.spawn_blocking(move || prompt.read_redirect(&url, &cancel)).await;
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
                Step::Persist(p) => self.persist(p, lock).await?,
                Step::Wait(until) => {
                    // From the machine's time: a clock stepped back does not stretch the wait.
                    let wait = Duration::from_millis(until.as_millis().saturating_sub(now.max(auth.now()).as_millis()));
                    let event = match timeout(rt, wait, io.events.1.recv()).await {
                        Some(Ok(Event::Callback { url, reply })) => {
                            io.reply = Some(reply);
                            steps::Event::Callback(url)
                        }
                        Some(Ok(Event::Paste(url))) => steps::Event::Paste(url),
                        Some(Ok(Event::PromptClosed)) => {
                            io.prompt.ended();
                            steps::Event::PromptClosed
                        }
                        Some(Err(_)) => return Err(Error::Stalled),
                        None => steps::Event::Timeout(until),
                    };
                    steps.event(auth, clock.now(), event)?;
                }
                Step::Ready(a) => return Ok(Ended::Ready(a)),
                Step::LoggedOut(r) => return Ok(Ended::LoggedOut(r)),
                Step::ShowDeviceCode(code) => {
                    let i = interaction.clone();
                    rt.spawn_blocking(move || i.show_device_code(&code)).await;
                }
            }
        }
    }
}

/// One request's authorize-and-retry loop, written once for every request the adapters send
/// with a token (MCP posts, the legacy event stream, [`Client::send`]):
///
/// ```text
/// let mut attempts = Attempts::start(oauth, wants_token_up_front).await?;
/// loop {
///     attempts.attach(&mut req)?;                      // the token, if there is one yet
///     let resp = send(req).await?;
///     if !attempts.challenged(challenge_of(&resp)).await? { return Ok(resp) }
/// }
/// ```
///
/// Its budget ([`Retries`]) is the request's own, so other tasks and instances sharing the
/// client or the store cannot make it loop. Without OAuth it attaches nothing and never retries.
pub(crate) struct Attempts<'a, R: Runtime> {
    oauth: Option<&'a Client<R>>,
    retries: Retries,
    header: Option<Authorization>,
}

impl<'a, R: Runtime> Attempts<'a, R> {
    /// Starts a request; with `up_front`, the token is fetched before the first send (counted).
    pub(crate) async fn start(oauth: Option<&'a Client<R>>, up_front: bool) -> Result<Self, Error> {
        let retries = Retries::new(oauth.map(|o| o.config()));
        let mut attempts = Attempts { oauth, retries, header: None };
        if let (Some(o), true) = (oauth, up_front) {
            let mut auth = o.inner.auth.lock().await;
            let before = auth.authorizations();
            let a = o.authorize(&mut auth).await;
            attempts.retries.authorized(auth.authorizations().saturating_sub(before));
            attempts.header = Some(a?);
        }
        Ok(attempts)
    }

    /// Puts the current token on `req` (nothing before the first challenge of a lazy client).
    pub(crate) fn attach(&self, req: &mut http::Request<Vec<u8>>) -> Result<(), Error> {
        match (&self.header, self.oauth) {
            (Some(h), Some(o)) => o.attach(req, h),
            _ => Ok(()),
        }
    }

    /// After a response: `Ok(true)` to send again with the new token, `Ok(false)` to take the
    /// response as it is (no challenge, or no OAuth to answer it), an error once the request's
    /// budget is spent or the flow failed.
    pub(crate) async fn challenged(&mut self, challenge: Option<Challenge>) -> Result<bool, Error> {
        let (Some(challenge), Some(o)) = (challenge, self.oauth) else { return Ok(false) };
        self.retries.challenge(&challenge)?;
        let mut auth = o.inner.auth.lock().await;
        let before = auth.authorizations();
        let answered = o.challenge(&mut auth, challenge, self.header.as_ref()).await;
        // Counted while the machine is held: other tasks' authorizations do not count.
        self.retries.authorized(auth.authorizations().saturating_sub(before));
        let (a, replaced) = answered?;
        self.retries.answered(replaced);
        self.header = Some(a);
        Ok(true)
    }
}
