//! A small MCP client: `initialize`, `tools/list`, `tools/call`, over Streamable HTTP (JSON or
//! SSE-framed replies, `Mcp-Session-Id`, `MCP-Protocol-Version`) or the legacy HTTP+SSE
//! transport (an event stream that announces where to POST, and carries the replies). With OAuth,
//! every request carries the token, and a 401 (or 403 `insufficient_scope`) runs the flow and
//! retries; without OAuth, requests go out exactly as they would without this crate.

use super::{HttpClient, OAuthClient, Stream};
use crate::error::Error;
use crate::interaction::Interaction;
use crate::mcp::{self as proto, challenge_of, ConnectMode, Discovered, EventStreamError, LegacyEvents, Session, SseEvent, Tool};
use crate::mcp::{LEGACY_ENDPOINT_TIMEOUT, LEGACY_REPLY_TIMEOUT, MAX_MCP_BODY};
use crate::store::TokenStore;
use crate::transport::{pump, StreamCloser, STREAM_CHUNKS};
use mcp_oauth_core::{Config, ServerConfig};
use serde_json::{json, Value};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// The legacy transport's open event stream: a reader thread pumps its bytes into a bounded
/// channel, and events are assembled (capped) as replies are awaited. Dropping it shuts the
/// connection, which ends the reader's blocked read at once.
struct Legacy {
    chunks: Receiver<Vec<u8>>,
    events: LegacyEvents,
    _closer: StreamCloser,
}

impl Legacy {
    /// The next event; `Ok(None)` if none came `within`.
    fn next_event(&mut self, within: Duration) -> Result<Option<SseEvent>, EventStreamError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(next) = self.events.next() {
                return next.map(Some);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.events.take(Some(chunk)),
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => self.events.take(None),
            }
        }
    }

    /// Takes in what has arrived since the last call, forgetting events nobody waited for;
    /// true if the stream has ended.
    fn ended(&mut self) -> bool {
        for _ in 0..STREAM_CHUNKS {
            match self.chunks.try_recv() {
                Ok(chunk) => self.events.take(Some(chunk)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.events.take(None);
                    break;
                }
            }
        }
        self.events.settle()
    }
}

/// An MCP client for one server.
pub struct McpClient {
    session: Session,
    http: HttpClient,
    oauth: Option<OAuthClient>,
    legacy: Option<Legacy>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient").field("session", &self.session).field("oauth", &self.oauth).finish_non_exhaustive()
    }
}

impl McpClient {
    /// A client for `url`, with OAuth if `oauth` is given.
    pub fn new(url: Url, oauth: Option<OAuthClient>) -> Self {
        let http = oauth.as_ref().map(|o| o.http().clone()).unwrap_or_default();
        let mut session = Session::new(url, false);
        if let Some(o) = &oauth {
            session.declare_extensions(o.authorizer().config());
        }
        McpClient { session, http, oauth, legacy: None }
    }

    /// A client for a server on the legacy HTTP+SSE transport (`url` is the event stream).
    pub fn legacy_sse(url: Url, oauth: Option<OAuthClient>) -> Self {
        let mut c = McpClient::new(url, oauth);
        c.session.legacy_sse = true;
        c
    }

    /// From plain configuration. OAuth on a stdio server is refused; a stdio server without
    /// OAuth is not an HTTP server, so this client does not serve it either.
    pub fn from_config(
        server: &ServerConfig,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let endpoint = proto::endpoint(server)?;
        let oauth = match server.oauth_config(env)? {
            Some(config) => Some(OAuthClient::new(config, store, interaction)?),
            None => None,
        };
        let mut c = if endpoint.legacy_sse { McpClient::legacy_sse(endpoint.url, oauth) } else { McpClient::new(endpoint.url, oauth) };
        c.session.headers = endpoint.headers;
        Ok(c)
    }

    /// A client with OAuth for `config.server_url`.
    pub fn with_oauth(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
        let url = config.server_url.clone();
        Ok(McpClient::new(url, Some(OAuthClient::new(config, store, interaction)?)))
    }

    /// Sets eager or lazy authorization.
    pub fn mode(mut self, mode: ConnectMode) -> Self {
        self.session.mode = mode;
        self
    }

    /// The OAuth client, if any.
    pub fn oauth(&self) -> Option<&OAuthClient> {
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
    pub fn warm_up(&mut self) -> Result<(), Error> {
        if let Some(o) = &mut self.oauth {
            o.authorization()?;
        }
        Ok(())
    }

    /// Connects: `server/discover` on the stateless 2026-07-28 wire; servers that do not speak
    /// it get the `initialize` handshake (2025-11-25 and older; the legacy SSE transport always).
    /// Returns the server's discover or initialize result.
    ///
    /// On the legacy transport a failed connect leaves no stream open: its connection is shut
    /// before this returns.
    pub fn connect(&mut self) -> Result<Value, Error> {
        let connected = self.connect_once();
        if connected.is_err() && self.legacy.take().is_some() {
            self.session.legacy_closed();
        }
        connected
    }

    fn connect_once(&mut self) -> Result<Value, Error> {
        if self.session.mode == ConnectMode::Eager {
            self.warm_up()?;
        }
        if self.session.legacy_sse && self.legacy.is_none() {
            self.open_legacy_stream()?;
        }
        if !self.session.legacy_sse {
            self.session.stateless = true;
            let discover = self.rpc("server/discover", json!({}));
            if let Discovered::Stateless(result) = self.session.discovered(discover)? {
                return Ok(result);
            }
        }
        let result = self.rpc("initialize", self.session.initialize_params())?;
        self.session.initialized(&result);
        self.post(Session::initialized_notification())?;
        Ok(result)
    }

    /// `tools/list`.
    pub fn list_tools(&mut self) -> Result<Vec<Tool>, Error> {
        self.ensure_connected()?;
        proto::tools_of(&self.rpc("tools/list", json!({}))?)
    }

    /// `tools/call`. Returns the result (`content`, `isError`).
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, Error> {
        self.ensure_connected()?;
        self.rpc("tools/call", proto::call_params(name, arguments))
    }

    fn ensure_connected(&mut self) -> Result<(), Error> {
        if self.legacy.as_mut().is_some_and(Legacy::ended) {
            // The stream ended (closed, silent past the idle deadline, or an event over the
            // cap), and its session with it: open a new one.
            self.legacy = None;
            self.session.legacy_closed();
        }
        if !self.session.connected {
            self.connect()?;
        }
        Ok(())
    }

    /// The token to send before any challenge, if one is wanted.
    fn up_front(&mut self, retries: &mut crate::flow::Retries) -> Result<Option<mcp_oauth_core::Authorization>, Error> {
        match &mut self.oauth {
            Some(o) if self.session.wants_token_up_front(o.authorizer().token_set().is_some()) => Ok(Some(o.first(retries)?)),
            _ => Ok(None),
        }
    }

    /// The retry budget of one request.
    fn retries(&self) -> crate::flow::Retries {
        match &self.oauth {
            Some(o) => crate::flow::Retries::new(o.authorizer().config()),
            None => crate::flow::Retries::new(&mcp_oauth_core::Config::new(self.session.url.clone())),
        }
    }

    /// Opens the legacy event stream (authorizing on a 401) and waits for the `endpoint` event,
    /// which must name a URL on the stream's own origin.
    fn open_legacy_stream(&mut self) -> Result<(), Error> {
        let mut retries = self.retries();
        let mut header = self.up_front(&mut retries)?;
        let body = loop {
            let mut req = self.session.open_stream()?;
            if let (Some(h), Some(o)) = (&header, &self.oauth) {
                o.attach(&mut req, h)?;
            }
            match self.http.open_stream(req).map_err(Error::Transport)? {
                Stream::Open(_, body) => break body,
                Stream::Done(resp) => match (challenge_of(&resp), &mut self.oauth) {
                    (Some(c), Some(o)) => header = Some(o.retry(c, &mut retries)?),
                    _ => return Err(Error::Mcp(format!("event stream: http status {}", resp.status().as_u16()))),
                },
            }
        };
        let (reader, closer) = body.into_parts();
        let (tx, rx) = mpsc::sync_channel(STREAM_CHUNKS);
        pump("mcp-legacy-sse", reader, move |chunk| tx.send(chunk).is_ok())
            .map_err(|e| Error::Mcp(format!("cannot start the event stream reader: {e}")))?;
        let mut legacy = Legacy { chunks: rx, events: LegacyEvents::default(), _closer: closer };
        let first = legacy.next_event(LEGACY_ENDPOINT_TIMEOUT).map_err(Error::EventStream)?;
        self.session.legacy_opened(first)?;
        self.legacy = Some(legacy);
        Ok(())
    }

    fn rpc(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let (id, message) = self.session.request(method, params);
        let resp = self.post(message)?;
        let msg = match &mut self.legacy {
            Some(l) => wait_for_reply(l, id)?,
            None => proto::find_response(&resp, id)?,
        };
        proto::result_of(msg)
    }

    fn post(&mut self, message: Value) -> Result<http::Response<Vec<u8>>, Error> {
        let mut retries = self.retries();
        let mut header = self.up_front(&mut retries)?;
        loop {
            let mut req = self.session.post(&message)?;
            if let (Some(h), Some(o)) = (&header, &self.oauth) {
                o.attach(&mut req, h)?;
            }
            let resp = self.http.send(req, MAX_MCP_BODY).map_err(Error::Transport)?;
            self.session.observe(&resp);
            match (challenge_of(&resp), &mut self.oauth) {
                (Some(c), Some(o)) => header = Some(o.retry(c, &mut retries)?),
                _ => return proto::unchallenged(resp),
            }
        }
    }
}

/// The reply with `id` from the legacy event stream.
fn wait_for_reply(legacy: &mut Legacy, id: u64) -> Result<Value, Error> {
    let deadline = Instant::now() + LEGACY_REPLY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match legacy.next_event(left).map_err(Error::EventStream)? {
            Some(ev) => {
                if let Some(v) = proto::reply_to(&ev, id) {
                    return Ok(v);
                }
            }
            None => return Err(Error::Mcp(format!("no reply to request {id} on the event stream"))),
        }
    }
}
