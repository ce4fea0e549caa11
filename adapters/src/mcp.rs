//! The MCP protocol pieces both MCP clients share: request building (Streamable HTTP headers,
//! sessions, the stateless 2026-07-28 `_meta` and `Mcp-Method` / `Mcp-Name`), reply parsing (JSON
//! or SSE-framed), version negotiation and the legacy `endpoint` event. The runtime-specific
//! clients ([`blocking::McpClient`](crate::blocking::McpClient), and the async one) only move bytes.

#![cfg_attr(not(any(feature = "blocking", feature = "async-std")), allow(dead_code))] // the clients are behind features

use crate::config::{ServerConfig, Transport};
use crate::error::{Error, McpRequest, ProtocolError};
use mcp_oauth_core::ConfigError;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;
use url::Url;

/// Largest MCP response body read, and largest event on an event stream ([`SseAssembler`]).
pub const MAX_MCP_BODY: usize = 16 * 1024 * 1024;
/// How long to wait for a reply on the legacy event stream.
pub const LEGACY_REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an open event stream may stay silent before the client gives it up: each read of
/// the stream fails after this long without a byte, so a peer that vanished (no FIN, no reset)
/// cannot hold a reader thread and a socket for the life of the process.
///
/// Why five minutes: a live stream is never silent that long. Servers send keep-alive
/// comments (the Python SDK's legacy transport every 15 s), and proxies and load balancers
/// commonly drop connections idle for 60 s, so servers that work behind them send something
/// more often than that. It is also far longer than a call ever waits
/// ([`LEGACY_REPLY_TIMEOUT`]), so it never cuts a reply short. A quiet server that does go
/// silent for longer only costs a reconnect: the next call opens a new stream (and session).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait for the legacy stream's `endpoint` event.
pub const LEGACY_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);
/// The newest protocol version: stateless, no `initialize`, version and capabilities in every
/// request's `_meta`, `Mcp-Method` / `Mcp-Name` headers.
pub const PROTOCOL_VERSION_STATELESS: &str = "2026-07-28";
/// The version asked for in `initialize` when a server does not speak the stateless wire.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// When to authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectMode {
    /// Get a token before the first request (log in while connecting).
    Eager,
    /// Send the first request without a token; authorize on the 401.
    #[default]
    Lazy,
}

/// A tool the server offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its JSON schema.
    pub input_schema: Value,
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Why an event stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventStreamError {
    /// An event grew past `limit` bytes before the blank line that ends it (the server
    /// misbehaved, or is hostile). The stream is closed: it cannot be resynchronised.
    #[error("an event exceeded {limit} bytes")]
    EventTooLarge {
        /// The cap, in bytes ([`MAX_MCP_BODY`] for the MCP clients).
        limit: usize,
    },
    /// The stream ended: the server closed it, the connection broke, or nothing (not even a
    /// keep-alive comment) arrived for [`STREAM_IDLE_TIMEOUT`].
    #[error("the stream ended (closed by the server, broken, or silent past the idle deadline)")]
    Closed,
}

/// Assembles events from a `text/event-stream` body, holding at most a fixed number of bytes
/// for one event: its `event:` name, its `data:` values, and the line still arriving (as
/// received). A server that never ends an event, or a line, gets
/// [`EventStreamError::EventTooLarge`] instead of the client's memory. After that error every
/// call returns it again.
#[derive(Debug)]
pub struct SseAssembler {
    event: Option<String>,
    data: Option<String>,
    line: Vec<u8>,
    limit: usize,
    failed: bool,
}

impl Default for SseAssembler {
    /// An assembler capped at [`MAX_MCP_BODY`] per event.
    fn default() -> Self {
        SseAssembler::new(MAX_MCP_BODY)
    }
}

impl SseAssembler {
    /// An assembler that holds at most `limit` bytes of one event.
    pub fn new(limit: usize) -> Self {
        SseAssembler { event: None, data: None, line: Vec::new(), limit, failed: false }
    }

    /// Feeds bytes as they arrive (split anywhere, even inside a line or a UTF-8 character);
    /// returns the events they complete.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<SseEvent>, EventStreamError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'\n').map(|i| i + 1);
            let (part, rest) = bytes.split_at(end.unwrap_or(bytes.len()));
            self.hold(part.len())?;
            self.line.extend_from_slice(part);
            bytes = rest;
            if end.is_some() {
                let mut line = std::mem::take(&mut self.line);
                let ev = self.line(&String::from_utf8_lossy(&line))?;
                out.extend(ev);
                line.clear();
                self.line = line;
            }
        }
        Ok(out)
    }

    /// Feeds one whole line (with or without its line ending); returns an event when a blank
    /// line completes one.
    pub fn line(&mut self, line: &str) -> Result<Option<SseEvent>, EventStreamError> {
        self.hold(0)?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            let Some(data) = self.data.take() else {
                self.event = None;
                return Ok(None);
            };
            return Ok(Some(SseEvent { event: self.event.take().unwrap_or_else(|| "message".into()), data }));
        }
        let (field, value) = line.split_once(':').map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v))).unwrap_or((line, ""));
        match field {
            "event" => {
                self.event = None;
                self.hold(value.len())?;
                self.event = Some(value.to_owned());
            }
            "data" => {
                self.hold(value.len() + usize::from(self.data.is_some()))?;
                match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// Checks that `more` bytes fit beside what is held.
    fn hold(&mut self, more: usize) -> Result<(), EventStreamError> {
        let held = self.event.as_ref().map_or(0, String::len) + self.data.as_ref().map_or(0, String::len) + self.line.len();
        if self.failed || held.saturating_add(more) > self.limit {
            self.failed = true;
            self.event = None;
            self.data = None;
            self.line = Vec::new();
            return Err(EventStreamError::EventTooLarge { limit: self.limit });
        }
        Ok(())
    }
}

/// The receiving side of a legacy event stream, the same for every runtime: chunks in as the
/// adapter reads them, events out, and the stream's end (and why) remembered.
#[derive(Debug, Default)]
pub(crate) struct LegacyEvents {
    asm: SseAssembler,
    ready: VecDeque<SseEvent>,
    ended: Option<EventStreamError>,
}

impl LegacyEvents {
    /// Takes a chunk of the stream, or its end (`None`).
    pub(crate) fn take(&mut self, chunk: Option<Vec<u8>>) {
        if self.ended.is_some() {
            return;
        }
        match chunk.map(|c| self.asm.feed(&c)) {
            Some(Ok(events)) => self.ready.extend(events),
            Some(Err(e)) => self.ended = Some(e),
            None => self.ended = Some(EventStreamError::Closed),
        }
    }

    /// The next event; once they are all out, the error the stream ended with; `None` while
    /// more bytes are needed.
    pub(crate) fn next(&mut self) -> Option<Result<SseEvent, EventStreamError>> {
        match self.ready.pop_front() {
            Some(ev) => Some(Ok(ev)),
            None => self.ended.clone().map(Err),
        }
    }

    /// Forgets the events nobody waited for; true if the stream has ended.
    pub(crate) fn settle(&mut self) -> bool {
        self.ready.clear();
        self.ended.is_some()
    }
}

/// An OAuth challenge from the MCP server, as core's `Input::Challenged` wants it.
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
pub fn challenge_of<B>(resp: &::http::Response<B>) -> Option<Challenge> {
    let status = resp.status().as_u16();
    let www: Vec<_> = resp.headers().get_all(::http::header::WWW_AUTHENTICATE).iter().cloned().collect();
    let dpop_nonce = resp.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()).map(str::to_owned);
    mcp_oauth_core::discovery::is_challenge(status, &www).then_some(Challenge { status, www_authenticate: www, dpop_nonce })
}

/// Where and how a configured server is reached.
pub(crate) struct Endpoint {
    pub(crate) url: Url,
    pub(crate) headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub(crate) legacy_sse: bool,
}

/// Checks a server configuration for an HTTP MCP client: OAuth on stdio is refused, and a stdio
/// server without OAuth is not an HTTP server either.
pub(crate) fn endpoint(server: &ServerConfig) -> Result<Endpoint, Error> {
    server.validate()?;
    let (url, headers, legacy_sse) = match &server.transport {
        Transport::StreamableHttp { url, headers } => (url, headers, false),
        Transport::Sse { url, headers } => (url, headers, true),
        Transport::Stdio { command, .. } => return Err(Error::Config(ConfigError::StdioServer { command: command.clone() })),
    };
    let url = Url::parse(url).map_err(|e| ConfigError::UnparsableUrl { field: "url", error: e })?;
    let mut out = Vec::new();
    for (k, v) in headers {
        let name = http::HeaderName::try_from(k.as_str()).map_err(|_| ConfigError::InvalidHeader { name: k.clone() })?;
        let mut value = http::HeaderValue::try_from(v.as_str()).map_err(|_| ConfigError::InvalidHeader { name: k.clone() })?;
        // An API key, as likely as not: kept out of every Debug and the HTTP stack's logs.
        value.set_sensitive(true);
        out.push((name, value));
    }
    Ok(Endpoint { url, headers: out, legacy_sse })
}

/// The protocol state of one MCP connection: ids, session, negotiated version, where to POST.
pub(crate) struct Session {
    pub(crate) url: Url,
    pub(crate) headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub(crate) mode: ConnectMode,
    pub(crate) session_id: Option<String>,
    pub(crate) protocol_version: Option<String>,
    next_id: u64,
    pub(crate) connected: bool,
    pub(crate) legacy_sse: bool,
    /// Where the legacy transport said to POST, once its stream is open.
    pub(crate) legacy_endpoint: Option<Url>,
    /// The stateless 2026-07-28 wire is being tried or was negotiated.
    pub(crate) stateless: bool,
    /// What the client declares: the client credentials extension when it may use that grant.
    pub(crate) capabilities: Value,
}

impl std::fmt::Debug for Session {
    /// No credential: the URL without userinfo or query, the configured headers by name only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &crate::error::shown_url(self.url.as_str()))
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("mode", &self.mode)
            .field("connected", &self.connected)
            .field("legacy_sse", &self.legacy_sse)
            .field("stateless", &self.stateless)
            .field("protocol_version", &self.protocol_version)
            .finish_non_exhaustive()
    }
}

/// The MCP extension a client using the client credentials grant declares (SPEC 104).
pub const CLIENT_CREDENTIALS_EXTENSION: &str = "io.modelcontextprotocol/oauth-client-credentials";

/// What a `server/discover` attempt means for the connection.
pub(crate) enum Discovered {
    /// The server speaks 2026-07-28: connected.
    Stateless(Value),
    /// Not a 2026-07-28 server: fall back to `initialize`.
    Initialize,
}

impl Session {
    pub(crate) fn new(url: Url, legacy_sse: bool) -> Self {
        Session {
            url,
            headers: Vec::new(),
            mode: ConnectMode::Lazy,
            session_id: None,
            protocol_version: None,
            next_id: 0,
            connected: false,
            legacy_sse,
            legacy_endpoint: None,
            stateless: false,
            capabilities: json!({}),
        }
    }

    /// Declares the client credentials extension in `initialize` capabilities and in every
    /// stateless request's `clientCapabilities`, when `config` may use that grant.
    pub(crate) fn declare_extensions(&mut self, config: &mcp_oauth_core::Config) {
        if config.uses_client_credentials() {
            self.capabilities = json!({"extensions": {CLIENT_CREDENTIALS_EXTENSION: {}}});
        }
    }

    /// Whether a request goes out with a token before any challenge.
    pub(crate) fn wants_token_up_front(&self, holds_token: bool) -> bool {
        self.mode == ConnectMode::Eager || holds_token
    }

    /// Judges the result of `server/discover` (sent with `stateless` set).
    pub(crate) fn discovered(&mut self, result: Result<Value, Error>) -> Result<Discovered, Error> {
        self.stateless = false;
        match result {
            Ok(result) => {
                let versions = result.get("supportedVersions").and_then(Value::as_array);
                if versions.is_none_or(|v| v.iter().any(|x| x == PROTOCOL_VERSION_STATELESS)) {
                    self.stateless = true;
                    self.protocol_version = Some(PROTOCOL_VERSION_STATELESS.into());
                    self.connected = true;
                    return Ok(Discovered::Stateless(result));
                }
                Ok(Discovered::Initialize)
            }
            // Not a 2026-07-28 server (unknown method, unsupported version, 4xx): negotiate down.
            Err(Error::JsonRpc { .. } | Error::Protocol { .. } | Error::Status { .. }) => Ok(Discovered::Initialize),
            Err(e) => Err(e),
        }
    }

    /// The `initialize` parameters.
    pub(crate) fn initialize_params(&self) -> Value {
        json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": self.capabilities,
            "clientInfo": {"name": "mcp-oauth-client", "version": env!("CARGO_PKG_VERSION")},
        })
    }

    /// Records the `initialize` result.
    pub(crate) fn initialized(&mut self, result: &Value) {
        self.protocol_version = result.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
        self.connected = true;
    }

    /// The `notifications/initialized` message.
    pub(crate) fn initialized_notification() -> Value {
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    }

    /// A JSON-RPC request with a fresh id (and, on the stateless wire, the `_meta` it needs).
    pub(crate) fn request(&mut self, method: &str, mut params: Value) -> (u64, Value) {
        self.next_id += 1;
        let id = self.next_id;
        if self.stateless {
            if let Some(p) = params.as_object_mut() {
                let meta = p.entry("_meta").or_insert_with(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.insert("io.modelcontextprotocol/protocolVersion".into(), json!(PROTOCOL_VERSION_STATELESS));
                    m.insert("io.modelcontextprotocol/clientCapabilities".into(), self.capabilities.clone());
                    m.insert(
                        "io.modelcontextprotocol/clientInfo".into(),
                        json!({"name": "mcp-oauth-client", "version": env!("CARGO_PKG_VERSION")}),
                    );
                }
            }
        }
        (id, json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    /// The HTTP POST carrying `message`, without authorization.
    pub(crate) fn post(&self, message: &Value) -> Result<http::Request<Vec<u8>>, Error> {
        let target = self.legacy_endpoint.as_ref().unwrap_or(&self.url);
        let mut b = http::Request::post(target.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream");
        for (k, v) in &self.headers {
            // Headers from the configuration (an API key) are kept out of the HTTP stack's logs.
            let mut v = v.clone();
            v.set_sensitive(true);
            b = b.header(k, v);
        }
        if self.stateless {
            b = b.header("MCP-Protocol-Version", PROTOCOL_VERSION_STATELESS);
            if let Some(m) = message.get("method").and_then(Value::as_str) {
                b = b.header("Mcp-Method", m);
            }
            if let Some(n) = mcp_name(message) {
                b = b.header("Mcp-Name", n);
            }
        } else if let Some(v) = &self.protocol_version {
            b = b.header("MCP-Protocol-Version", v.as_str());
        }
        if let Some(s) = &self.session_id {
            b = b.header("Mcp-Session-Id", s.as_str());
        }
        b.body(message.to_string().into_bytes()).map_err(|e| bad_request(target, e))
    }

    /// The GET that opens the legacy event stream, without authorization.
    pub(crate) fn open_stream(&self) -> Result<http::Request<Vec<u8>>, Error> {
        let mut b = http::Request::get(self.url.as_str()).header(http::header::ACCEPT, "text/event-stream");
        for (k, v) in &self.headers {
            // Headers from the configuration (an API key) are kept out of the HTTP stack's logs.
            let mut v = v.clone();
            v.set_sensitive(true);
            b = b.header(k, v);
        }
        b.body(Vec::new()).map_err(|e| bad_request(&self.url, e))
    }

    /// Takes the session id a response assigns.
    pub(crate) fn observe(&mut self, resp: &http::Response<Vec<u8>>) {
        if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            self.session_id = Some(s.to_owned());
        }
    }

    /// Checks the legacy stream's first event: an `endpoint` on the stream's own origin.
    pub(crate) fn legacy_opened(&mut self, first: Option<SseEvent>) -> Result<(), ProtocolError> {
        let first = first.ok_or(ProtocolError::NoEndpointEvent(None))?;
        if first.event != "endpoint" {
            return Err(ProtocolError::NoEndpointEvent(Some(first.event)));
        }
        let endpoint = self.url.join(first.data.trim()).map_err(|e| ProtocolError::BadEndpoint(e.to_string()))?;
        if endpoint.origin() != self.url.origin() {
            return Err(ProtocolError::ForeignEndpoint);
        }
        self.legacy_endpoint = Some(endpoint);
        Ok(())
    }

    /// The legacy stream is gone (ended, or the connect failed), and its session with it: the
    /// next call connects anew.
    pub(crate) fn legacy_closed(&mut self) {
        self.legacy_endpoint = None;
        self.connected = false;
        self.protocol_version = None;
        self.session_id = None;
    }
}

/// A response no OAuth client acted on: itself if 2xx, else the error that says what to do: a
/// server that wants OAuth from a client without it gets [`Error::OAuthRequired`].
pub(crate) fn unchallenged(request: McpRequest, resp: http::Response<Vec<u8>>, oauth: bool) -> Result<http::Response<Vec<u8>>, Error> {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        Ok(resp)
    } else if status == 401 && !oauth && challenge_of(&resp).is_some() {
        Err(Error::OAuthRequired { request })
    } else {
        Err(Error::Status { request, status })
    }
}

/// The error for a request the configuration makes unbuildable.
fn bad_request(url: &Url, e: http::Error) -> Error {
    Error::BadRequest { url: crate::error::shown_url(url.as_str()), reason: e.to_string() }
}

/// The `Mcp-Name` header of a request (SEP-2243): the tool or prompt name, or the resource URI.
fn mcp_name(body: &Value) -> Option<&str> {
    let params = body.get("params")?;
    match body.get("method")?.as_str()? {
        "tools/call" | "prompts/get" => params.get("name")?.as_str(),
        "resources/read" => params.get("uri")?.as_str(),
        _ => None,
    }
}

/// The JSON-RPC response with `id`, from a JSON body or an SSE stream.
pub(crate) fn find_response(request: &McpRequest, resp: &http::Response<Vec<u8>>, id: u64) -> Result<Value, Error> {
    let protocol = |problem| Error::Protocol { request: request.clone(), problem };
    let ct = resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("text/event-stream") {
        let text = String::from_utf8_lossy(resp.body());
        let mut asm = SseAssembler::default();
        for line in text.split_inclusive('\n').chain(std::iter::once("\n")) {
            if let Some(v) = asm.line(line).map_err(Error::EventStream)?.and_then(|ev| reply_to(&ev, id)) {
                return Ok(v);
            }
        }
        return Err(protocol(ProtocolError::NoResponse(id)));
    }
    let v: Value = serde_json::from_slice(resp.body()).map_err(|e| protocol(ProtocolError::NotJson(e.to_string())))?;
    if v.get("id").and_then(Value::as_u64) == Some(id) {
        Ok(v)
    } else {
        Err(protocol(ProtocolError::NoResponse(id)))
    }
}

/// The event, if it is the JSON-RPC reply to `id`.
pub(crate) fn reply_to(ev: &SseEvent, id: u64) -> Option<Value> {
    if ev.event != "message" {
        return None;
    }
    let v = serde_json::from_str::<Value>(&ev.data).ok()?;
    (v.get("id").and_then(Value::as_u64) == Some(id)).then_some(v)
}

/// The `result` of a JSON-RPC response, or its error.
pub(crate) fn result_of(request: &McpRequest, msg: Value) -> Result<Value, Error> {
    if let Some(e) = msg.get("error") {
        return Err(Error::JsonRpc {
            code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: e.get("message").and_then(Value::as_str).unwrap_or("").chars().take(500).collect(),
        });
    }
    msg.get("result").cloned().ok_or_else(|| Error::Protocol { request: request.clone(), problem: ProtocolError::NoResult })
}

/// The tools of a `tools/list` result.
pub(crate) fn tools_of(request: &McpRequest, result: &Value) -> Result<Vec<Tool>, Error> {
    let no_tools = || Error::Protocol { request: request.clone(), problem: ProtocolError::NoTools };
    let tools = result.get("tools").and_then(Value::as_array).ok_or_else(no_tools)?;
    Ok(tools
        .iter()
        .filter_map(|t| {
            Some(Tool {
                name: t.get("name")?.as_str()?.to_owned(),
                description: t.get("description").and_then(Value::as_str).map(str::to_owned),
                input_schema: t.get("inputSchema").cloned().unwrap_or(Value::Null),
            })
        })
        .collect())
}

/// The `tools/call` parameters.
pub(crate) fn call_params(name: &str, arguments: Value) -> Value {
    json!({"name": name, "arguments": arguments})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_assembly() {
        let mut a = SseAssembler::default();
        let mut out = Vec::new();
        for l in ["event: endpoint\n", "data: /messages?x=1\r\n", "\n", ": comment\n", "data: {\"a\":\n", "data: 1}\n", "\n"] {
            out.extend(a.line(l).unwrap());
        }
        assert_eq!(
            out,
            [
                SseEvent { event: "endpoint".into(), data: "/messages?x=1".into() },
                SseEvent { event: "message".into(), data: "{\"a\":\n1}".into() }
            ]
        );
    }

    /// A stream with CRLF and LF endings, a comment, an unknown field, a multi-line event and
    /// multi-byte characters.
    const STREAM: &str =
        "event: endpoint\r\ndata: /messages?x=1\r\n\r\n: keep-alive\nid: 7\ndata: {\"a\":\ndata: \"été 日本\"}\n\n\ndata: last\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent { event: "endpoint".into(), data: "/messages?x=1".into() },
            SseEvent { event: "message".into(), data: "{\"a\":\n\"été 日本\"}".into() },
            SseEvent { event: "message".into(), data: "last".into() },
        ]
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_events() {
        let bytes = STREAM.as_bytes();
        assert_eq!(SseAssembler::default().feed(bytes).unwrap(), expected());
        for cut in 0..=bytes.len() {
            let mut a = SseAssembler::default();
            let mut got = a.feed(&bytes[..cut]).unwrap();
            got.extend(a.feed(&bytes[cut..]).unwrap());
            assert_eq!(got, expected(), "cut at {cut}");
        }
        let mut a = SseAssembler::default();
        let one_by_one: Vec<_> = bytes.iter().flat_map(|b| a.feed(std::slice::from_ref(b)).unwrap()).collect();
        assert_eq!(one_by_one, expected());
    }

    #[test]
    fn an_event_is_capped_as_it_arrives() {
        // The line in flight counts as received: "data: 0123456789\n" is 17 bytes.
        let line = b"data: 0123456789\n";
        let mut fits = SseAssembler::new(17);
        assert_eq!(fits.feed(line).unwrap(), []);
        assert_eq!(fits.feed(b"\n").unwrap(), [SseEvent { event: "message".into(), data: "0123456789".into() }]);
        assert_eq!(fits.feed(line).unwrap(), [], "the cap is per event, not per stream");
        let too_large = Err(EventStreamError::EventTooLarge { limit: 16 });
        assert_eq!(SseAssembler::new(16).feed(line), too_large);
        // A line that never ends fails once it passes the cap, before its newline.
        let mut a = SseAssembler::new(16);
        assert_eq!(a.feed(b"data: 0123456789").unwrap(), []);
        assert_eq!(a.feed(b"x"), too_large);
        assert_eq!(a.feed(b"\n\n"), too_large, "and the assembler stays failed");
        // Many small data lines of one event add up.
        let mut a = SseAssembler::new(1000);
        let held = (0..1000).map(|_| a.feed(b"data: x\n")).position(|r| r.is_err()).unwrap();
        assert!(held * 2 <= 1000 && held * 2 > 990, "failed after {held} lines");
        // `line` (whole lines) counts values: ten bytes fit ten, not nine.
        let mut a = SseAssembler::new(10);
        assert_eq!(a.line("data: 0123456789"), Ok(None));
        assert_eq!(a.line("data: "), Err(EventStreamError::EventTooLarge { limit: 10 }), "the joining newline is one more byte");
    }

    #[test]
    fn legacy_events_come_out_before_the_end() {
        let mut q = LegacyEvents::default();
        q.take(Some(b"data: a\n\ndata: b".to_vec()));
        assert!(!q.settle(), "not ended; `a`, which nobody waited for, is forgotten");
        assert_eq!(q.next(), None, "`b` is not complete yet");
        q.take(Some(b"\n\n".to_vec()));
        q.take(None);
        q.take(Some(b"data: after the end\n\n".to_vec()));
        assert_eq!(q.next(), Some(Ok(SseEvent { event: "message".into(), data: "b".into() })));
        assert_eq!(q.next(), Some(Err(EventStreamError::Closed)));
        assert_eq!(q.next(), Some(Err(EventStreamError::Closed)), "the end stays");
        assert!(q.settle());
    }

    #[test]
    fn the_legacy_endpoint_must_stay_on_the_stream_origin() {
        let mut s = Session::new(Url::parse("https://mcp.example.com/sse").unwrap(), true);
        let ev = |d: &str| Some(SseEvent { event: "endpoint".into(), data: d.into() });
        assert!(s.legacy_opened(ev("https://evil.example.net/messages")).is_err());
        assert!(s.legacy_opened(Some(SseEvent { event: "message".into(), data: "/m".into() })).is_err());
        assert!(s.legacy_opened(None).is_err());
        s.legacy_opened(ev("/messages?session=1")).unwrap();
        assert_eq!(s.legacy_endpoint.unwrap().as_str(), "https://mcp.example.com/messages?session=1");
    }

    #[test]
    fn stateless_requests_carry_meta_and_headers() {
        let mut s = Session::new(Url::parse("https://mcp.example.com/mcp").unwrap(), false);
        s.stateless = true;
        let (id, msg) = s.request("tools/call", call_params("echo", json!({})));
        assert_eq!(id, 1);
        assert_eq!(msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], PROTOCOL_VERSION_STATELESS);
        let req = s.post(&msg).unwrap();
        assert_eq!(req.headers()["mcp-method"], "tools/call");
        assert_eq!(req.headers()["mcp-name"], "echo");
        assert_eq!(s.request("tools/list", json!({})).0, 2, "ids are fresh");
    }
}
