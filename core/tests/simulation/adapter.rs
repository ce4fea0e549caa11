//! One client process, driven exactly as the adapters drive core: the same decisions as
//! `adapters/src/steps.rs` (`Steps::next`, `url_handled`, `event`, `abandon`, `store_changed`,
//! `replaced_since`), the same single flight as the driver's `Client::{authorization,
//! challenged}` (`adapters/src/driver/oauth.rs`, one for every runtime), and the same MCP retry
//! as its `Attempts` in `driver/mcp.rs`'s `post` (lazy: a token up front only when the machine
//! holds one). Only the I/O is simulated: HTTP goes through
//! [`Env::exchange`], the listener, browser and prompt are the user model below, time is the
//! process's own clock (true time plus its offset).
//!
//! When an adapter changes, change the mirror here; the functions keep the adapters' names.

use crate::env::{AppKind, Caller, Env, MachineInfo};
use crate::store::store_key;
use crate::truth::Identity;
use mcp_oauth_core::http::{OutgoingRequest, TransportFailure};
use mcp_oauth_core::{
    Authorization, Authorizer, CallbackSetup, CancelReason, Config, Error, Input, Output, Persist, RedirectPlan, RedirectSource, Restored,
    StateName, Timestamp,
};
use url::Url;

/// Most outputs one flow may produce before the simulation calls it a livelock.
const OUTPUT_BOUND: u32 = 4096;

/// The adapters' error, as far as the simulation needs it.
#[derive(Debug)]
pub enum AdapterError {
    Core(Error),
    Config(String),
    Transport(TransportFailure),
    Mcp(String),
    Stalled,
    Runaway,
}

impl From<Error> for AdapterError {
    fn from(e: Error) -> Self {
        AdapterError::Core(e)
    }
}

/// How the person (or the lack of one) behind a process behaves.
#[derive(Debug, Clone)]
pub struct UserModel {
    /// `Interaction::interactive` (false for services).
    pub interactive: bool,
    /// A browser opens (not headless).
    pub browser: bool,
    /// A paste prompt is available (a terminal).
    pub prompt: bool,
    /// `Interaction::paste_while_listening`.
    pub paste_while_listening: bool,
    /// The loopback listener can bind.
    pub can_bind: bool,
    /// Chance that a login gets forged callbacks before the real one.
    pub forged_rate: f64,
    /// Chance that nobody answers a login.
    pub absent_rate: f64,
}

impl UserModel {
    /// `Interaction::can_interact` (no hook in the simulation).
    fn can_interact(&self) -> bool {
        self.interactive && (self.browser || self.prompt)
    }

    /// True if this person can finish a login at all.
    pub fn can_log_in(&self) -> bool {
        self.can_interact() && ((self.browser && self.can_bind) || self.prompt)
    }
}

pub struct Process {
    pub id: usize,
    pub identity: Identity,
    /// `ConnectMode::Eager`: a token before the first request; lazy (the default) sends the
    /// first request bare when the machine holds no token.
    pub eager: bool,
    pub config: Config,
    pub key: String,
    pub auth: Authorizer,
    pub offset: i64,
    pub user: UserModel,
    pub machine: MachineInfo,
}

/// `flow::store_changed`: the store holds other tokens than the machine.
fn store_changed(auth: &Authorizer, restored: &Restored) -> bool {
    let held = auth.token_set().map(|t| t.access_token.secret());
    let stored = restored.tokens.as_ref().map(|t| t.access_token.secret());
    held != stored
}

/// `flow::replaced_since`: the store holds a token of this configuration other than the
/// rejected one.
fn replaced_since(config: &Config, rejected: Option<&str>, restored: &Restored) -> bool {
    match &restored.tokens {
        Some(t) => rejected != Some(t.access_token.secret()) && config.accepts_tokens(t, &restored.clients).is_ok(),
        None => false,
    }
}

/// `flow::abandon`.
fn abandon(auth: &mut Authorizer, now: Timestamp) {
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

/// `flow::Retries`: one request's own budget, whatever resets the machine's per-request count.
pub struct Retries {
    challenges: u8,
    replaced: u8,
    authorizations: u64,
    limit: u8,
}

impl Retries {
    pub fn new(config: &Config) -> Self {
        Retries { challenges: 0, replaced: 0, authorizations: 0, limit: config.max_authorization_attempts }
    }

    fn challenge(&mut self) -> Result<(), AdapterError> {
        let cap = self.limit.saturating_mul(2).saturating_add(2);
        if self.challenges >= cap || self.replaced >= cap || self.authorizations >= u64::from(self.limit) {
            return Err(AdapterError::Core(mcp_oauth_core::ResourceError::RejectedFreshToken { status: 401 }.into()));
        }
        Ok(())
    }

    fn answered(&mut self, replaced: bool) {
        let n = if replaced { &mut self.replaced } else { &mut self.challenges };
        *n = n.saturating_add(1);
    }
}

/// `flow::Step`.
enum Step {
    Send(OutgoingRequest),
    Prepare(Option<RedirectPlan>),
    OpenUrl(Url),
    StartPrompt(Url),
    Answer,
    /// `Step::Reject`: answer that (forged) connection, keep listening and prompting.
    Reject,
    Persist(Persist),
    Wait(Timestamp),
    Ready(Authorization),
}

/// `flow::Event`.
enum Event {
    Callback(String),
    Paste(String),
    Timeout(Timestamp),
}

/// `flow::Flow`.
#[derive(Default)]
struct Flow {
    listening: Option<Url>,
    prompting: bool,
    pending_prompt: Option<Url>,
}

impl Flow {
    fn next(&mut self, auth: &mut Authorizer, user: &UserModel, now: Timestamp) -> Result<Step, AdapterError> {
        if let Some(url) = self.pending_prompt.take() {
            return Ok(Step::StartPrompt(url));
        }
        loop {
            let input = match auth.poll_output() {
                Output::Send(req) => return Ok(Step::Send(req)),
                Output::PrepareAttempt(plan) => match plan.redirect {
                    Some(_) if !user.can_interact() => Input::Cancel { now, reason: CancelReason::NoInteraction },
                    redirect => return Ok(Step::Prepare(redirect)),
                },
                Output::OpenAuthorizationUrl { url, .. } => return Ok(Step::OpenUrl(url)),
                Output::PromptForRedirect { url } => {
                    if !self.prompting && user.prompt {
                        self.prompting = true;
                        return Ok(Step::StartPrompt(url));
                    } else if !self.prompting && self.listening.is_none() {
                        Input::Cancel { now, reason: CancelReason::NoInteraction }
                    } else {
                        continue;
                    }
                }
                Output::AnswerCallback(_) => {
                    self.listening = None;
                    self.prompting = false;
                    return Ok(Step::Answer);
                }
                Output::RejectCallback(_) => return Ok(Step::Reject),
                Output::Persist(p) => return Ok(Step::Persist(p)),
                Output::Wait { until: Some(t) } => return Ok(Step::Wait(t)),
                Output::Wait { until: None } => return Err(AdapterError::Stalled),
                Output::Ready(a) => return Ok(Step::Ready(a)),
                Output::Failed(e) => return Err(e.into()),
                _ => continue,
            };
            auth.handle_input(input)?;
        }
    }

    fn prepared(
        &mut self,
        auth: &mut Authorizer,
        now: Timestamp,
        entropy: mcp_oauth_core::Entropy,
        callback: CallbackSetup,
    ) -> Result<(), AdapterError> {
        self.listening = match &callback {
            CallbackSetup::Listening(uri) => Some(uri.clone()),
            _ => None,
        };
        auth.handle_input(Input::AttemptPrepared { now, entropy, callback })?;
        Ok(())
    }

    fn url_handled(&mut self, auth: &mut Authorizer, user: &UserModel, now: Timestamp, url: Url, opened: bool) -> Result<(), AdapterError> {
        if opened {
            if user.paste_while_listening && !self.prompting && user.prompt {
                self.prompting = true;
                self.pending_prompt = Some(url);
            }
        } else if self.listening.is_some() {
            auth.handle_input(Input::CallbackUnavailable { now, reason: "no display".into() })?;
        }
        Ok(())
    }

    fn event(&mut self, auth: &mut Authorizer, now: Timestamp, event: Event) -> Result<(), AdapterError> {
        let input = match event {
            Event::Callback(url) => Input::Redirect { now, url, source: RedirectSource::Loopback },
            Event::Paste(url) => Input::Redirect { now, url, source: RedirectSource::Paste },
            Event::Timeout(until) => Input::Timeout { now: now.max(until) },
        };
        auth.handle_input(input)?;
        Ok(())
    }
}

/// The simulated loopback listener: every request on its path with its `Host` reaches the flow
/// (`listen::judge`), until the flow answers the real one and stops it.
struct Listener {
    uri: Url,
}

/// The I/O of one flow (`FlowIo`): the listener, the prompt, and what the person will do.
#[derive(Default)]
struct Io {
    listener: Option<Listener>,
    prompt_armed: bool,
    /// The browser opened this URL; the person will approve.
    browser: Option<Url>,
    /// The person will open this URL by hand and paste where it lands.
    manual: Option<Url>,
    /// A redirect URL the person can paste.
    paste: Option<String>,
    /// Forged callbacks still to reach the listener first.
    forged: u32,
    absent: bool,
}

fn same_endpoint(a: &str, b: &Url) -> bool {
    Url::parse(a).is_ok_and(|a| a.host() == b.host() && a.port() == b.port() && a.path() == b.path())
}

impl Process {
    pub fn new(id: usize, identity: Identity, config: Config, offset: i64, user: UserModel, env: &mut Env) -> Result<Self, AdapterError> {
        let key = store_key(&config);
        let now = Self::clock(env, offset);
        let auth = Authorizer::new(config.clone(), env.store.load(&key), now).map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(Process { id, identity, eager: false, config, key, auth, offset, user, machine: MachineInfo::default() })
    }

    fn clock(env: &Env, offset: i64) -> Timestamp {
        Timestamp(env.net.now.saturating_add_signed(offset))
    }

    /// This process's clock.
    pub fn now(&self, env: &Env) -> Timestamp {
        Self::clock(env, self.offset)
    }

    /// A restart: the store is the only memory.
    pub fn restart(&mut self, env: &mut Env, offset: i64) -> Result<(), AdapterError> {
        self.offset = offset;
        env.truth.offsets[self.id] = offset;
        let restored = env.store.load(&self.key);
        self.rebuild(restored, self.now(env))
    }

    fn rebuild(&mut self, restored: Restored, now: Timestamp) -> Result<(), AdapterError> {
        self.auth = Authorizer::new(self.config.clone(), restored, now).map_err(|e| AdapterError::Config(e.to_string()))?;
        self.machine = MachineInfo::default();
        Ok(())
    }

    /// `Authorizer::restore` after `flow::abandon`, as the adapters reload: the store's tokens,
    /// the machine's metadata.
    fn reload(&mut self, restored: Restored, now: Timestamp) -> Result<(), AdapterError> {
        abandon(&mut self.auth, now);
        self.auth.restore(restored)?;
        Ok(())
    }

    /// `OAuthClient::first`: `authorization`, counted against the request's `retries`.
    pub fn first(&mut self, env: &mut Env, retries: &mut Retries) -> Result<Authorization, AdapterError> {
        let before = self.auth.authorizations();
        let a = self.authorization(env);
        retries.authorizations += self.auth.authorizations().saturating_sub(before);
        a
    }

    /// `OAuthClient::retry`: `challenged`, counted against the request's `retries`.
    pub fn retry(
        &mut self,
        env: &mut Env,
        resp: &http::Response<Vec<u8>>,
        rejected: Option<&Authorization>,
        retries: &mut Retries,
    ) -> Result<Authorization, AdapterError> {
        retries.challenge()?;
        let before = self.auth.authorizations();
        let (a, replaced) = self.challenged(env, resp, rejected)?;
        retries.authorizations += self.auth.authorizations().saturating_sub(before);
        retries.answered(replaced);
        Ok(a)
    }

    /// `OAuthClient::authorization`.
    pub fn authorization(&mut self, env: &mut Env) -> Result<Authorization, AdapterError> {
        let now = self.now(env);
        if self.auth.has_usable_token(now) {
            return self.run(env, Input::TokenWanted { now });
        }
        // Single flight: the store's lock is held for the whole flow (flows are atomic here).
        let restored = env.store.load(&self.key);
        if store_changed(&self.auth, &restored) {
            self.reload(restored, now)?;
        }
        let now = self.now(env);
        self.run(env, Input::TokenWanted { now })
    }

    /// `OAuthClient::challenged` (the async adapter's form: `rejected` is what the request
    /// carried).
    pub fn challenged(
        &mut self,
        env: &mut Env,
        resp: &http::Response<Vec<u8>>,
        rejected: Option<&Authorization>,
    ) -> Result<(Authorization, bool), AdapterError> {
        let status = resp.status().as_u16();
        let www_authenticate: Vec<_> = resp.headers().get_all("www-authenticate").iter().cloned().collect();
        let dpop_nonce = resp.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let stored = env.store.load(&self.key);
        let rejected = rejected.map(|a| a.access_token().secret());
        let now = self.now(env);
        let replaced = replaced_since(&self.config, rejected, &stored);
        if replaced || store_changed(&self.auth, &stored) {
            self.reload(stored, now)?;
        }
        if replaced {
            return self.run(env, Input::TokenWanted { now }).map(|a| (a, true));
        }
        self.run(env, Input::Challenged { now, status, www_authenticate, dpop_nonce }).map(|a| (a, false))
    }

    fn run(&mut self, env: &mut Env, first: Input) -> Result<Authorization, AdapterError> {
        let now = self.now(env);
        abandon(&mut self.auth, now);
        let result = self.drive(env, first);
        if result.is_err() {
            let now = self.now(env);
            abandon(&mut self.auth, now);
        }
        result
    }

    fn drive(&mut self, env: &mut Env, first: Input) -> Result<Authorization, AdapterError> {
        self.auth.handle_input(first)?;
        let mut io = Io::default();
        let mut flow = Flow::default();
        let mut prm_judged = false;
        for _ in 0..OUTPUT_BOUND {
            let now = self.now(env);
            match flow.next(&mut self.auth, &self.user, now)? {
                Step::Send(req) => {
                    let holds_refresh = self.auth.token_set().is_some_and(|t| t.refresh_token.is_some());
                    let mut who = Caller {
                        process: self.id,
                        identity: self.identity,
                        holds_refresh,
                        machine: &mut self.machine,
                        prm_judged: &mut prm_judged,
                    };
                    let mut result = env.exchange(&mut who, &req.request);
                    if let Ok(r) = &mut result {
                        if r.body().len() > req.max_response_bytes {
                            r.body_mut().truncate(req.max_response_bytes + 1);
                        }
                    }
                    let now = self.now(env);
                    self.auth.handle_input(Input::Response { now, id: req.id, result })?;
                }
                Step::Prepare(redirect) => {
                    let entropy = env.entropy(self.id);
                    let callback = match redirect {
                        None => CallbackSetup::NotRequested,
                        Some(plan) => self.bind(env, &plan, &mut io),
                    };
                    flow.prepared(&mut self.auth, now, entropy, callback)?;
                }
                Step::OpenUrl(url) => {
                    let opened = self.handle_url(env, &url, &mut io);
                    let now = self.now(env);
                    flow.url_handled(&mut self.auth, &self.user, now, url, opened)?;
                }
                Step::StartPrompt(url) => {
                    io.prompt_armed = true;
                    if io.browser.is_none() && io.paste.is_none() {
                        io.manual = Some(url);
                    }
                }
                Step::Answer => {
                    io.listener = None;
                    io.prompt_armed = false;
                }
                Step::Reject => {}
                Step::Persist(p) => self.persist(env, &p),
                Step::Wait(until) => {
                    let event = self.wait(env, until, &mut io);
                    let now = self.now(env);
                    flow.event(&mut self.auth, now, event)?;
                }
                Step::Ready(a) => return Ok(a),
            }
        }
        env.truth.violate(
            crate::truth::Invariant::Bounded,
            format!("process {}: a flow produced {OUTPUT_BOUND} outputs without ending", self.id),
        );
        Err(AdapterError::Runaway)
    }

    fn persist(&mut self, env: &mut Env, p: &Persist) {
        env.store.persist(&self.key, p);
        let what = match p {
            Persist::Tokens(t) => {
                if let Some(k) = &t.dpop_key {
                    env.truth.add_secret(k.secret(), "dpop private key", None);
                }
                if let Some(i) = env.net.server_of_issuer(&t.issuer) {
                    let ledger = env.net.servers[i].ledger();
                    if let Some(issued) = ledger.token(t.access_token.secret()) {
                        if let Some(id) = env.truth.identity_of(i, &issued.client_id) {
                            env.truth.held.insert((self.key.clone(), t.issuer.clone(), id), (i, issued.grant));
                        }
                    }
                }
                "tokens"
            }
            Persist::Client(_) => "client",
            Persist::ForgetTokens { .. } => "forget tokens",
            Persist::ForgetClient { .. } => "forget client",
            _ => "other",
        };
        env.note(|| format!("P{} persist {what}", self.id));
    }

    fn bind(&self, env: &mut Env, plan: &RedirectPlan, io: &mut Io) -> CallbackSetup {
        if !self.user.can_bind {
            return CallbackSetup::Unavailable(format!("cannot listen on {}:{}: address in use", plan.host, plan.port));
        }
        let port =
            if plan.port == 0 || (plan.any_port_fallback && env.rng.chance(0.1)) { env.rng.range(49152, 65535) as u16 } else { plan.port };
        let uri = plan.redirect_uri(port);
        io.listener = Some(Listener { uri: uri.clone() });
        CallbackSetup::Listening(uri)
    }

    /// `Interaction::handle_url`: the browser opens (the person will approve), or cannot.
    fn handle_url(&self, env: &mut Env, url: &Url, io: &mut Io) -> bool {
        env.truth.attempt_opened(&env.net, self.id, url);
        io.absent = env.rng.chance(self.user.absent_rate);
        if let Some(r) = &mut env.req {
            r.user_absent |= io.absent;
        }
        if io.listener.is_some() && env.rng.chance(self.user.forged_rate) {
            io.forged = env.rng.range(1, 2) as u32;
        }
        if self.user.browser {
            io.browser = Some(url.clone());
        }
        env.note(|| format!("P{} open authorization url (browser {})", self.id, if self.user.browser { "opens" } else { "cannot open" }));
        self.user.browser
    }

    /// One wait of the drive loop: the next thing the listener or the prompt delivers, or the
    /// deadline.
    fn wait(&self, env: &mut Env, until: Timestamp, io: &mut Io) -> Event {
        let deadline = until.as_millis().saturating_add_signed(-self.offset);
        // A forged request reaches the listener before the browser does.
        if let Some(l) = io.listener.as_ref().filter(|_| io.forged > 0) {
            io.forged -= 1;
            env.net.now += env.rng.range(100, 3000);
            let mut u = l.uri.clone();
            u.query_pairs_mut().append_pair("code", "forged-code");
            if env.rng.chance(0.5) {
                u.query_pairs_mut().append_pair("state", "forged-state");
            }
            if let Some(r) = &mut env.req {
                r.forged += 1;
            }
            env.note(|| format!("P{} forged callback reaches the listener", self.id));
            return Event::Callback(u.to_string());
        }
        if !io.absent {
            if let Some(url) = io.browser.take() {
                let think = if env.rng.chance(0.03) { env.rng.range(200_000, 600_000) } else { env.rng.range(2_000, 60_000) };
                if env.net.now + think >= deadline {
                    // Slower than the deadline: the login may still finish, or time out.
                    if let Some(r) = &mut env.req {
                        r.user_absent = true;
                    }
                    io.browser = Some(url);
                } else {
                    env.net.now += think;
                    if let Some(loc) = env.visit(self.id, self.identity, &self.key, self.config.step_up, &url) {
                        match io.listener.as_ref().filter(|l| same_endpoint(&loc, &l.uri)) {
                            Some(_) => return Event::Callback(loc),
                            None => io.paste = Some(loc),
                        }
                    }
                }
            }
            if io.prompt_armed {
                if let Some(url) = io.manual.take() {
                    let think = env.rng.range(5_000, 90_000);
                    if env.net.now + think < deadline {
                        env.net.now += think;
                        io.paste = env.visit(self.id, self.identity, &self.key, self.config.step_up, &url);
                    } else {
                        if let Some(r) = &mut env.req {
                            r.user_absent = true;
                        }
                        io.manual = Some(url);
                    }
                }
                if let Some(p) = io.paste.take() {
                    env.net.now += env.rng.range(1_000, 10_000);
                    return Event::Paste(p);
                }
            }
        }
        env.net.now = env.net.now.max(deadline);
        Event::Timeout(until)
    }

    /// One application request, as `McpClient::post` makes it.
    pub fn mcp_request(
        &mut self,
        env: &mut Env,
        header: Option<&Authorization>,
        kind: AppKind,
        id: u64,
    ) -> Result<http::Response<Vec<u8>>, TransportFailure> {
        let (method, params) = match kind {
            AppKind::List => ("tools/list", serde_json::json!({})),
            AppKind::Echo => ("tools/call", serde_json::json!({"name": "echo", "arguments": {"text": "hi"}})),
            AppKind::Admin => ("tools/call", serde_json::json!({"name": "admin-tool", "arguments": {}})),
        };
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let url = env.net.mcp_url();
        let mut req = http::Request::post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.into_bytes())
            .unwrap_or_default();
        if let Some(h) = header {
            req.headers_mut().insert(http::header::AUTHORIZATION, h.header_value());
            let mut salt = [0u8; 16];
            env.rng.fill(&mut salt);
            if let (Ok(u), now) = (Url::parse(&url), self.now(env)) {
                if let Some(proof) = h.dpop_proof("POST", &u, now, &salt) {
                    req.headers_mut().insert("dpop", proof);
                }
            }
        }
        let mut prm_judged = true;
        let mut who = Caller {
            process: self.id,
            identity: self.identity,
            holds_refresh: false,
            machine: &mut self.machine,
            prm_judged: &mut prm_judged,
        };
        env.exchange(&mut who, &req)
    }

    /// `Session::wants_token_up_front`: eager clients always ask for a header first, lazy ones
    /// only when the machine holds tokens.
    pub fn wants_token_up_front(&self) -> bool {
        self.eager || self.auth.token_set().is_some()
    }
}
