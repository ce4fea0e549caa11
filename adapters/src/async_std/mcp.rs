//! The async MCP client: the blocking [`McpClient`](crate::blocking::McpClient)'s behaviour
//! (Streamable HTTP, the stateless 2026-07-28 wire, legacy HTTP+SSE; eager or lazy
//! authorization; 401 retry and step-up) with async I/O, on the shared protocol module.

use super::http::{send_capped, AsyncHttpClient, AsyncStream, ByteStream, UreqOnPool};
use super::{rt, AsyncOAuthClient};
use crate::error::Error;
use crate::interaction::Interaction;
use crate::mcp::{self as proto, challenge_of, ConnectMode, Discovered, EventStreamError, LegacyEvents, Session, SseEvent, Tool};
use crate::mcp::{LEGACY_ENDPOINT_TIMEOUT, LEGACY_REPLY_TIMEOUT, MAX_MCP_BODY};
use crate::store::TokenStore;
use crate::transport::STREAM_CHUNKS;
use async_std::stream::StreamExt;
use mcp_oauth_core::{Authorization, Config, ServerConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use url::Url;

/// The legacy transport's open event stream, its events assembled (capped) as replies are
/// awaited. Dropping it drops the body, which closes the connection.
struct Legacy {
    body: ByteStream,
    events: LegacyEvents,
}

impl Legacy {
    /// The next event; `Ok(None)` if none came `within`.
    async fn next_event(&mut self, within: Duration) -> Result<Option<SseEvent>, EventStreamError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(next) = self.events.next() {
                return next.map(Some);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match rt::timeout(left, self.body.next()).await {
                Ok(chunk) => self.events.take(chunk),
                Err(()) => return Ok(None),
            }
        }
    }

    /// Takes in what has arrived since the last call (without waiting), forgetting events
    /// nobody waited for; true if the stream has ended.
    fn ended(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..STREAM_CHUNKS {
            match self.body.as_mut().poll_next(&mut cx) {
                Poll::Ready(Some(chunk)) => self.events.take(Some(chunk)),
                Poll::Ready(None) => {
                    self.events.take(None);
                    break;
                }
                Poll::Pending => break,
            }
        }
        self.events.settle()
    }
}

/// An async MCP client for one server.
pub struct McpClient {
    session: Session,
    http: Arc<dyn AsyncHttpClient>,
    oauth: Option<AsyncOAuthClient>,
    legacy: Option<Legacy>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient").field("session", &self.session).field("oauth", &self.oauth).finish_non_exhaustive()
    }
}

impl McpClient {
    /// A client for `url`, with OAuth if `oauth` is given (its HTTP client is used for MCP too).
    pub fn new(url: Url, oauth: Option<AsyncOAuthClient>) -> Self {
        let http = oauth.as_ref().map(|o| o.http()).unwrap_or_else(|| Arc::new(UreqOnPool::default()));
        let mut session = Session::new(url, false);
        if let Some(o) = &oauth {
            session.declare_extensions(o.config());
        }
        McpClient { session, http, oauth, legacy: None }
    }

    /// A client for a server on the legacy HTTP+SSE transport (`url` is the event stream).
    pub fn legacy_sse(url: Url, oauth: Option<AsyncOAuthClient>) -> Self {
        let mut c = McpClient::new(url, oauth);
        c.session.legacy_sse = true;
        c
    }

    /// From plain configuration. OAuth on a stdio server is refused; a stdio server without
    /// OAuth is not an HTTP server, so this client does not serve it either.
    pub async fn from_config(
        server: &ServerConfig,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, Error> {
        let endpoint = proto::endpoint(server)?;
        let oauth = match server.oauth_config(env)? {
            Some(config) => Some(AsyncOAuthClient::new(config, store, interaction).await?),
            None => None,
        };
        let mut c = if endpoint.legacy_sse { McpClient::legacy_sse(endpoint.url, oauth) } else { McpClient::new(endpoint.url, oauth) };
        c.session.headers = endpoint.headers;
        Ok(c)
    }

    /// A client with OAuth for `config.server_url`.
    pub async fn with_oauth(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
        let url = config.server_url.clone();
        Ok(McpClient::new(url, Some(AsyncOAuthClient::new(config, store, interaction).await?)))
    }

    /// Sets eager or lazy authorization.
    pub fn mode(mut self, mode: ConnectMode) -> Self {
        self.session.mode = mode;
        self
    }

    /// The OAuth client, if any (clone it to share the token with other clients and tasks).
    pub fn oauth(&self) -> Option<&AsyncOAuthClient> {
        self.oauth.as_ref()
    }

    /// The session id the server assigned, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session.session_id.as_deref()
    }

    /// The negotiated protocol version, once connected.
    pub fn protocol_version(&self) -> Option<&str> {
        self.session.protocol_version.as_deref()
    }

    /// Authorizes now, before any MCP request (lazy clients call this to warm up).
    pub async fn warm_up(&mut self) -> Result<(), Error> {
        if let Some(o) = &self.oauth {
            o.authorization().await?;
        }
        Ok(())
    }

    /// Connects: `server/discover` on the stateless 2026-07-28 wire; servers that do not speak
    /// it get the `initialize` handshake (2025-11-25 and older; the legacy SSE transport always).
    /// Returns the server's discover or initialize result.
    ///
    /// On the legacy transport a failed connect leaves no stream open: its connection is shut
    /// before this returns.
    pub async fn connect(&mut self) -> Result<Value, Error> {
        let connected = self.connect_once().await;
        if connected.is_err() && self.legacy.take().is_some() {
            self.session.legacy_closed();
        }
        connected
    }

    async fn connect_once(&mut self) -> Result<Value, Error> {
        if self.session.mode == ConnectMode::Eager {
            self.warm_up().await?;
        }
        if self.session.legacy_sse && self.legacy.is_none() {
            self.open_legacy_stream().await?;
        }
        if !self.session.legacy_sse {
            self.session.stateless = true;
            let discover = self.rpc("server/discover", json!({})).await;
            if let Discovered::Stateless(result) = self.session.discovered(discover)? {
                return Ok(result);
            }
        }
        let result = self.rpc("initialize", self.session.initialize_params()).await?;
        self.session.initialized(&result);
        self.post(Session::initialized_notification()).await?;
        Ok(result)
    }

    /// `tools/list`.
    pub async fn list_tools(&mut self) -> Result<Vec<Tool>, Error> {
        self.ensure_connected().await?;
        proto::tools_of(&self.rpc("tools/list", json!({})).await?)
    }

    /// `tools/call`. Returns the result (`content`, `isError`).
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, Error> {
        self.ensure_connected().await?;
        self.rpc("tools/call", proto::call_params(name, arguments)).await
    }

    async fn ensure_connected(&mut self) -> Result<(), Error> {
        if self.legacy.as_mut().is_some_and(Legacy::ended) {
            // The stream ended (closed, silent past the idle deadline, or an event over the
            // cap), and its session with it: open a new one.
            self.legacy = None;
            self.session.legacy_closed();
        }
        if !self.session.connected {
            self.connect().await?;
        }
        Ok(())
    }

    /// The token to send before any challenge, if one is wanted. (Not `&self`: the client is
    /// not `Sync`, because a user's event stream need not be, and the future must be `Send`.)
    async fn up_front(
        session: &Session,
        oauth: Option<&AsyncOAuthClient>,
        retries: &mut crate::flow::Retries,
    ) -> Result<Option<Authorization>, Error> {
        match oauth {
            Some(o) if session.wants_token_up_front(o.holds_token().await) => Ok(Some(o.first(retries).await?)),
            _ => Ok(None),
        }
    }

    /// The retry budget of one request.
    fn retries(&self) -> crate::flow::Retries {
        match &self.oauth {
            Some(o) => crate::flow::Retries::new(o.config()),
            None => crate::flow::Retries::new(&mcp_oauth_core::Config::new(self.session.url.clone())),
        }
    }

    /// Opens the legacy event stream (authorizing on a 401) and waits for the `endpoint` event,
    /// which must name a URL on the stream's own origin.
    async fn open_legacy_stream(&mut self) -> Result<(), Error> {
        let mut retries = self.retries();
        let mut header = Self::up_front(&self.session, self.oauth.as_ref(), &mut retries).await?;
        let body = loop {
            let mut req = self.session.open_stream()?;
            if let (Some(h), Some(o)) = (&header, &self.oauth) {
                o.attach(&mut req, h)?;
            }
            match self.http.open_stream(req).await.map_err(Error::Transport)? {
                AsyncStream::Open(_, body) => break body,
                AsyncStream::Done(resp) => match (challenge_of(&resp), &self.oauth) {
                    (Some(c), Some(o)) => header = Some(o.retry(c, header.as_ref(), &mut retries).await?),
                    _ => return Err(Error::Mcp(format!("event stream: http status {}", resp.status().as_u16()))),
                },
            }
        };
        let mut legacy = Legacy { body, events: LegacyEvents::default() };
        let first = legacy.next_event(LEGACY_ENDPOINT_TIMEOUT).await.map_err(Error::EventStream)?;
        self.session.legacy_opened(first)?;
        self.legacy = Some(legacy);
        Ok(())
    }

    async fn rpc(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let (id, message) = self.session.request(method, params);
        let resp = self.post(message).await?;
        let msg = match &mut self.legacy {
            Some(l) => wait_for_reply(l, id).await?,
            None => proto::find_response(&resp, id)?,
        };
        proto::result_of(msg)
    }

    async fn post(&mut self, message: Value) -> Result<http::Response<Vec<u8>>, Error> {
        let mut retries = self.retries();
        let mut header = Self::up_front(&self.session, self.oauth.as_ref(), &mut retries).await?;
        loop {
            let mut req = self.session.post(&message)?;
            if let (Some(h), Some(o)) = (&header, &self.oauth) {
                o.attach(&mut req, h)?;
            }
            let resp = send_capped(&*self.http, req, MAX_MCP_BODY).await.map_err(Error::Transport)?;
            self.session.observe(&resp);
            match (challenge_of(&resp), &self.oauth) {
                (Some(c), Some(o)) => header = Some(o.retry(c, header.as_ref(), &mut retries).await?),
                _ => return proto::unchallenged(resp),
            }
        }
    }
}

/// The reply with `id` from the legacy event stream.
async fn wait_for_reply(legacy: &mut Legacy, id: u64) -> Result<Value, Error> {
    let deadline = Instant::now() + LEGACY_REPLY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match legacy.next_event(left).await.map_err(Error::EventStream)? {
            Some(ev) => {
                if let Some(v) = proto::reply_to(&ev, id) {
                    return Ok(v);
                }
            }
            None => return Err(Error::Mcp(format!("no reply to request {id} on the event stream"))),
        }
    }
}
