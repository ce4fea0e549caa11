//! The MCP client, on any [`Runtime`]: `server/discover` or `initialize`, `tools/list`,
//! `tools/call`, over Streamable HTTP (JSON or SSE-framed replies, `Mcp-Session-Id`,
//! `MCP-Protocol-Version`), the stateless 2026-07-28 wire, or the legacy HTTP+SSE transport (an
//! event stream that announces where to POST, and carries the replies). With OAuth, every
//! request carries the token, and a 401 (or 403 `insufficient_scope`) runs the flow and
//! retries ([`Attempts`]); without OAuth, requests go out exactly as they would without this
//! crate. The wire itself (messages, sessions, replies) is [`crate::mcp`]'s.

use super::http::{send_capped, ByteStream, HttpClient, HttpStream};
use super::{timeout, Attempts, Client, Runtime};
use crate::config::ServerConfig;
use crate::error::{Error, McpRequest, ProtocolError};
use crate::interaction::Interaction;
use crate::mcp::{self as proto, challenge_of, ConnectMode, Discovered, EventStreamError, LegacyEvents, Session, SseEvent, Tool};
use crate::mcp::{LEGACY_ENDPOINT_TIMEOUT, LEGACY_REPLY_TIMEOUT, MAX_MCP_BODY};
use crate::store::TokenStore;
use crate::transport::STREAM_CHUNKS;
use futures_lite::StreamExt;
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
    async fn next_event<R: Runtime>(&mut self, rt: &R, within: Duration) -> Result<Option<SseEvent>, EventStreamError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(next) = self.events.next() {
                return next.map(Some);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match timeout(rt, left, self.body.next()).await {
                Some(chunk) => self.events.take(chunk),
                None => return Ok(None),
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

/// An MCP client for one server.
pub(crate) struct Mcp<R: Runtime> {
    rt: R,
    session: Session,
    http: Arc<dyn HttpClient>,
    oauth: Option<Client<R>>,
    legacy: Option<Legacy>,
}

impl<R: Runtime> std::fmt::Debug for Mcp<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient").field("session", &self.session).field("oauth", &self.oauth).finish_non_exhaustive()
    }
}

impl<R: Runtime> Mcp<R> {
    pub(crate) fn new(url: Url, oauth: Option<Client<R>>) -> Self {
        let http = oauth.as_ref().map(|o| o.http()).unwrap_or_else(|| Arc::new(super::UreqOn::<R>::default()));
        let mut session = Session::new(url, false);
        if let Some(o) = &oauth {
            session.declare_extensions(o.config());
        }
        Mcp { rt: R::default(), session, http, oauth, legacy: None }
    }

    pub(crate) fn legacy_sse(url: Url, oauth: Option<Client<R>>) -> Self {
        let mut c = Mcp::new(url, oauth);
        c.session.legacy_sse = true;
        c
    }

    /// From plain configuration, with the OAuth client it made (if the server has `oauth`).
    pub(crate) async fn from_config(
        server: &ServerConfig,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, Error> {
        let endpoint = proto::endpoint(server)?;
        let oauth = match server.oauth_config(env)? {
            Some(config) => Some(Client::new(config, store, interaction).await?),
            None => None,
        };
        let mut c = if endpoint.legacy_sse { Mcp::legacy_sse(endpoint.url, oauth) } else { Mcp::new(endpoint.url, oauth) };
        c.session.headers = endpoint.headers;
        Ok(c)
    }

    pub(crate) fn mode(mut self, mode: ConnectMode) -> Self {
        self.session.mode = mode;
        self
    }

    pub(crate) fn oauth(&self) -> Option<&Client<R>> {
        self.oauth.as_ref()
    }

    pub(crate) fn session_id(&self) -> Option<&str> {
        self.session.session_id.as_deref()
    }

    pub(crate) fn protocol_version(&self) -> Option<&str> {
        self.session.protocol_version.as_deref()
    }

    pub(crate) async fn warm_up(&mut self) -> Result<(), Error> {
        if let Some(o) = &self.oauth {
            o.authorization().await?;
        }
        Ok(())
    }

    pub(crate) async fn connect(&mut self) -> Result<Value, Error> {
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
            let discover = self.rpc("server/discover", json!({})).await.map(|(_, result)| result);
            if let Discovered::Stateless(result) = self.session.discovered(discover)? {
                return Ok(result);
            }
        }
        let (_, result) = self.rpc("initialize", self.session.initialize_params()).await?;
        self.session.initialized(&result);
        self.post("notifications/initialized", Session::initialized_notification()).await?;
        Ok(result)
    }

    pub(crate) async fn list_tools(&mut self) -> Result<Vec<Tool>, Error> {
        self.ensure_connected().await?;
        let (request, result) = self.rpc("tools/list", json!({})).await?;
        proto::tools_of(&request, &result)
    }

    pub(crate) async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, Error> {
        self.ensure_connected().await?;
        self.rpc("tools/call", proto::call_params(name, arguments)).await.map(|(_, result)| result)
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

    /// One request's attempts, with the token up front if the session wants one. (Not
    /// `&self`: the client is not `Sync`, because a user's event stream need not be, and the
    /// future must be `Send`.)
    async fn attempts<'a>(session: &Session, oauth: Option<&'a Client<R>>) -> Result<Attempts<'a, R>, Error> {
        let up_front = match oauth {
            Some(o) => session.wants_token_up_front(o.holds_token().await),
            None => false,
        };
        Attempts::start(oauth, up_front).await
    }

    /// Opens the legacy event stream (authorizing on a 401) and waits for the `endpoint` event,
    /// which must name a URL on the stream's own origin.
    async fn open_legacy_stream(&mut self) -> Result<(), Error> {
        let mut attempts = Self::attempts(&self.session, self.oauth.as_ref()).await?;
        let body = loop {
            let mut req = self.session.open_stream()?;
            attempts.attach(&mut req)?;
            let request = McpRequest::of("event stream", &req);
            let opened = self.http.open_stream(req).await.map_err(|failure| Error::Transport { request: request.clone(), failure })?;
            match opened {
                HttpStream::Open(_, body) => break (request, body),
                HttpStream::Done(resp) => {
                    if !attempts.challenged(challenge_of(&resp)).await? {
                        let status = resp.status().as_u16();
                        return Err(proto::unchallenged(request.clone(), resp, self.oauth.is_some())
                            .err()
                            .unwrap_or(Error::Status { request, status }));
                    }
                }
            }
        };
        let (request, body) = body;
        let mut legacy = Legacy { body, events: LegacyEvents::default() };
        let first = legacy.next_event(&self.rt, LEGACY_ENDPOINT_TIMEOUT).await.map_err(Error::EventStream)?;
        self.session.legacy_opened(first).map_err(|problem| Error::Protocol { request, problem })?;
        self.legacy = Some(legacy);
        Ok(())
    }

    /// A JSON-RPC call: the result, and the request that carried it (for errors about it).
    async fn rpc(&mut self, method: &str, params: Value) -> Result<(McpRequest, Value), Error> {
        let (id, message) = self.session.request(method, params);
        let (request, resp) = self.post(method, message).await?;
        let msg = match &mut self.legacy {
            Some(l) => wait_for_reply(&self.rt, &request, l, id).await?,
            None => proto::find_response(&request, &resp, id)?,
        };
        proto::result_of(&request, msg).map(|result| (request, result))
    }

    async fn post(&mut self, step: &str, message: Value) -> Result<(McpRequest, http::Response<Vec<u8>>), Error> {
        let mut attempts = Self::attempts(&self.session, self.oauth.as_ref()).await?;
        loop {
            let mut req = self.session.post(&message)?;
            attempts.attach(&mut req)?;
            let request = McpRequest::of(step, &req);
            let sent = send_capped(&*self.http, req, MAX_MCP_BODY).await;
            let resp = sent.map_err(|failure| Error::Transport { request: request.clone(), failure })?;
            self.session.observe(&resp);
            if !attempts.challenged(challenge_of(&resp)).await? {
                return proto::unchallenged(request.clone(), resp, self.oauth.is_some()).map(|resp| (request, resp));
            }
        }
    }
}

/// The reply with `id` from the legacy event stream.
async fn wait_for_reply<R: Runtime>(rt: &R, request: &McpRequest, legacy: &mut Legacy, id: u64) -> Result<Value, Error> {
    let deadline = Instant::now() + LEGACY_REPLY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match legacy.next_event(rt, left).await.map_err(Error::EventStream)? {
            Some(ev) => {
                if let Some(v) = proto::reply_to(&ev, id) {
                    return Ok(v);
                }
            }
            None => return Err(Error::Protocol { request: request.clone(), problem: ProtocolError::NoReplyOnStream(id) }),
        }
    }
}
