//! A small MCP client: `initialize`, `tools/list`, `tools/call`, over Streamable HTTP (JSON or
//! SSE-framed replies, `Mcp-Session-Id`, `MCP-Protocol-Version`) or the legacy HTTP+SSE
//! transport (an event stream that announces where to POST, and carries the replies). With OAuth, every
//! request carries the token, and a 401 (or 403 `insufficient_scope`) runs the flow and
//! retries; without OAuth, requests go out exactly as they would without this crate.

use super::{challenge_of, HttpClient, OAuthClient, Stream};
use crate::error::Error;
use crate::interaction::Interaction;
use crate::store::TokenStore;
use mcp_oauth_core::{Config, ConfigError, ServerConfig, Transport};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// Largest MCP response body (and legacy event) read.
pub const MAX_MCP_BODY: usize = 16 * 1024 * 1024;
/// How long to wait for a reply on the legacy event stream.
pub const LEGACY_REPLY_TIMEOUT: Duration = Duration::from_secs(60);
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

/// Assembles events from lines (the `text/event-stream` format).
#[derive(Debug, Default)]
struct SseAssembler {
    event: Option<String>,
    data: Vec<String>,
}

impl SseAssembler {
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if self.data.is_empty() {
                self.event = None;
                return None;
            }
            let ev = SseEvent { event: self.event.take().unwrap_or_else(|| "message".into()), data: self.data.join("\n") };
            self.data.clear();
            return Some(ev);
        }
        let (field, value) = line.split_once(':').map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v))).unwrap_or((line, ""));
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// The legacy transport's open event stream.
struct Legacy {
    endpoint: Url,
    events: Receiver<SseEvent>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Legacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Legacy").field("endpoint", &self.endpoint.as_str()).finish_non_exhaustive()
    }
}

impl Drop for Legacy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An MCP client for one server.
#[derive(Debug)]
pub struct McpClient {
    url: Url,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    http: HttpClient,
    oauth: Option<OAuthClient>,
    mode: ConnectMode,
    session_id: Option<String>,
    protocol_version: Option<String>,
    next_id: u64,
    connected: bool,
    legacy_sse: bool,
    legacy: Option<Legacy>,
    /// The stateless 2026-07-28 wire was negotiated.
    stateless: bool,
}

impl McpClient {
    /// A client for `url`, with OAuth if `oauth` is given.
    pub fn new(url: Url, oauth: Option<OAuthClient>) -> Self {
        let http = oauth.as_ref().map(|o| o.http().clone()).unwrap_or_default();
        McpClient {
            url,
            headers: Vec::new(),
            http,
            oauth,
            mode: ConnectMode::Lazy,
            session_id: None,
            protocol_version: None,
            next_id: 0,
            connected: false,
            legacy_sse: false,
            legacy: None,
            stateless: false,
        }
    }

    /// A client for a server on the legacy HTTP+SSE transport (`url` is the event stream).
    pub fn legacy_sse(url: Url, oauth: Option<OAuthClient>) -> Self {
        McpClient { legacy_sse: true, ..McpClient::new(url, oauth) }
    }

    /// From plain configuration. OAuth on a stdio server is refused; a stdio server without
    /// OAuth is not an HTTP server, so this client does not serve it either.
    pub fn from_config(
        server: &ServerConfig,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        server.validate()?;
        let (url, headers, legacy) = match &server.transport {
            Transport::StreamableHttp { url, headers } => (url, headers, false),
            Transport::Sse { url, headers } => (url, headers, true),
            Transport::Stdio { command, .. } => {
                return Err(Error::Config(ConfigError::Inconsistent(format!("{command:?} is a stdio server; this client speaks HTTP"))))
            }
        };
        let url = Url::parse(url).map_err(|e| ConfigError::InvalidUrl { field: "url", reason: e.to_string() })?;
        let oauth = match server.oauth_config(env)? {
            Some(config) => Some(OAuthClient::new(config, store, interaction)?),
            None => None,
        };
        let mut c = if legacy { McpClient::legacy_sse(url, oauth) } else { McpClient::new(url, oauth) };
        for (k, v) in headers {
            let name = http::HeaderName::try_from(k.as_str()).map_err(|e| ConfigError::Inconsistent(format!("header {k:?}: {e}")))?;
            let value = http::HeaderValue::try_from(v.as_str()).map_err(|e| ConfigError::Inconsistent(format!("header {k:?}: {e}")))?;
            c.headers.push((name, value));
        }
        Ok(c)
    }

    /// A client with OAuth for `config.server_url`.
    pub fn with_oauth(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
        let url = config.server_url.clone();
        Ok(McpClient::new(url, Some(OAuthClient::new(config, store, interaction)?)))
    }

    /// Sets eager or lazy authorization.
    pub fn mode(mut self, mode: ConnectMode) -> Self {
        self.mode = mode;
        self
    }

    /// The OAuth client, if any.
    pub fn oauth(&self) -> Option<&OAuthClient> {
        self.oauth.as_ref()
    }

    /// The session id the server assigned, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Authorizes now, before any MCP request (lazy clients call this to warm up).
    pub fn warm_up(&mut self) -> Result<(), Error> {
        if let Some(o) = &mut self.oauth {
            o.authorization()?;
        }
        Ok(())
    }

    /// The negotiated protocol version, once connected.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// Connects: `server/discover` on the stateless 2026-07-28 wire; servers that do not speak
    /// it get the `initialize` handshake (2025-11-25 and older; the legacy SSE transport always).
    /// Returns the server's discover or initialize result.
    pub fn connect(&mut self) -> Result<Value, Error> {
        if self.mode == ConnectMode::Eager {
            self.warm_up()?;
        }
        if self.legacy_sse && self.legacy.is_none() {
            self.open_legacy_stream()?;
        }
        if !self.legacy_sse {
            self.stateless = true;
            match self.rpc("server/discover", json!({})) {
                Ok(result) => {
                    let versions = result.get("supportedVersions").and_then(Value::as_array);
                    if versions.is_none_or(|v| v.iter().any(|x| x == PROTOCOL_VERSION_STATELESS)) {
                        self.protocol_version = Some(PROTOCOL_VERSION_STATELESS.into());
                        self.connected = true;
                        return Ok(result);
                    }
                }
                // Not a 2026-07-28 server (unknown method, unsupported version, 4xx): negotiate down.
                Err(Error::JsonRpc { .. } | Error::Mcp(_)) => {}
                Err(e) => {
                    self.stateless = false;
                    return Err(e);
                }
            }
            self.stateless = false;
        }
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-oauth-client", "version": env!("CARGO_PKG_VERSION")},
        });
        let result = self.rpc("initialize", params)?;
        self.protocol_version = result.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
        self.connected = true;
        self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(result)
    }

    /// `tools/list`.
    pub fn list_tools(&mut self) -> Result<Vec<Tool>, Error> {
        self.ensure_connected()?;
        let result = self.rpc("tools/list", json!({}))?;
        let tools =
            result.get("tools").and_then(Value::as_array).ok_or_else(|| Error::Mcp("tools/list result has no tools array".into()))?;
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

    /// `tools/call`. Returns the result (`content`, `isError`).
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, Error> {
        self.ensure_connected()?;
        self.rpc("tools/call", json!({"name": name, "arguments": arguments}))
    }

    fn ensure_connected(&mut self) -> Result<(), Error> {
        if !self.connected {
            self.connect()?;
        }
        Ok(())
    }

    /// Opens the legacy event stream (authorizing on a 401) and waits for the `endpoint` event,
    /// which must name a URL on the stream's own origin.
    fn open_legacy_stream(&mut self) -> Result<(), Error> {
        let mut header = match &mut self.oauth {
            Some(o) if self.mode == ConnectMode::Eager || o.authorizer().token_set().is_some() => Some(o.authorization()?),
            _ => None,
        };
        let reader = loop {
            let mut b = http::Request::get(self.url.as_str()).header(http::header::ACCEPT, "text/event-stream");
            for (k, v) in &self.headers {
                b = b.header(k, v);
            }
            let mut req = b.body(Vec::new()).map_err(|e| Error::Mcp(e.to_string()))?;
            if let (Some(h), Some(o)) = (&header, &self.oauth) {
                o.attach(&mut req, h);
            }
            match self.http.open_stream(req).map_err(Error::Transport)? {
                Stream::Open(_, reader) => break reader,
                Stream::Done(resp) => match (challenge_of(&resp), &mut self.oauth) {
                    (Some(c), Some(o)) => header = Some(o.challenged(c)?),
                    _ => return Err(Error::Mcp(format!("event stream: http status {}", resp.status().as_u16()))),
                },
            }
        };
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::Builder::new()
            .name("mcp-legacy-sse".into())
            .spawn(move || {
                let mut lines = BufReader::new(reader.take(u64::MAX));
                let mut asm = SseAssembler::default();
                let mut line = Vec::new();
                while !st.load(Ordering::Relaxed) {
                    line.clear();
                    match (&mut lines).take(MAX_MCP_BODY as u64).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if let Some(ev) = asm.line(&String::from_utf8_lossy(&line)) {
                                if tx.send(ev).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }
            })
            .map_err(|e| Error::Mcp(format!("cannot start the event stream reader: {e}")))?;
        let first = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| Error::Mcp("no endpoint event on the event stream".into()))?;
        if first.event != "endpoint" {
            return Err(Error::Mcp(format!("expected an endpoint event, got {:?}", first.event)));
        }
        let endpoint = self.url.join(first.data.trim()).map_err(|e| Error::Mcp(format!("endpoint event: {e}")))?;
        if endpoint.origin() != self.url.origin() {
            return Err(Error::Mcp("the endpoint event names another origin; refusing to send requests (and tokens) there".into()));
        }
        self.legacy = Some(Legacy { endpoint, events: rx, stop });
        Ok(())
    }

    fn rpc(&mut self, method: &str, mut params: Value) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        if self.stateless {
            if let Some(p) = params.as_object_mut() {
                let meta = p.entry("_meta").or_insert_with(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.insert("io.modelcontextprotocol/protocolVersion".into(), json!(PROTOCOL_VERSION_STATELESS));
                    m.insert("io.modelcontextprotocol/clientCapabilities".into(), json!({}));
                    m.insert(
                        "io.modelcontextprotocol/clientInfo".into(),
                        json!({"name": "mcp-oauth-client", "version": env!("CARGO_PKG_VERSION")}),
                    );
                }
            }
        }
        let resp = self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let msg = match &self.legacy {
            Some(l) => wait_for_reply(l, id)?,
            None => find_response(&resp, id)?,
        };
        if let Some(e) = msg.get("error") {
            return Err(Error::JsonRpc {
                code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: e.get("message").and_then(Value::as_str).unwrap_or("").chars().take(500).collect(),
            });
        }
        msg.get("result").cloned().ok_or_else(|| Error::Mcp("response has neither result nor error".into()))
    }

    fn post(&mut self, body: Value) -> Result<http::Response<Vec<u8>>, Error> {
        let mut header = match &mut self.oauth {
            Some(o) if self.mode == ConnectMode::Eager || o.authorizer().token_set().is_some() => Some(o.authorization()?),
            _ => None,
        };
        let body_json = body;
        let body = body_json.to_string().into_bytes();
        loop {
            let target = self.legacy.as_ref().map(|l| l.endpoint.as_str()).unwrap_or(self.url.as_str());
            let mut b = http::Request::post(target)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json, text/event-stream");
            for (k, v) in &self.headers {
                b = b.header(k, v);
            }
            if self.stateless {
                b = b.header("MCP-Protocol-Version", PROTOCOL_VERSION_STATELESS);
                if let Some(m) = body_json.get("method").and_then(Value::as_str) {
                    b = b.header("Mcp-Method", m);
                }
                if let Some(n) = mcp_name(&body_json) {
                    b = b.header("Mcp-Name", n);
                }
            } else if let Some(v) = &self.protocol_version {
                b = b.header("MCP-Protocol-Version", v.as_str());
            }
            if let Some(s) = &self.session_id {
                b = b.header("Mcp-Session-Id", s.as_str());
            }
            let mut req = b.body(body.clone()).map_err(|e| Error::Mcp(e.to_string()))?;
            if let (Some(h), Some(o)) = (&header, &self.oauth) {
                o.attach(&mut req, h);
            }
            let resp = self.http.send(req, MAX_MCP_BODY).map_err(Error::Transport)?;
            if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                self.session_id = Some(s.to_owned());
            }
            match (challenge_of(&resp), &mut self.oauth) {
                (Some(c), Some(o)) => header = Some(o.challenged(c)?),
                _ if resp.status().is_success() => return Ok(resp),
                _ => return Err(Error::Mcp(format!("http status {}", resp.status().as_u16()))),
            }
        }
    }
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
fn find_response(resp: &http::Response<Vec<u8>>, id: u64) -> Result<Value, Error> {
    let ct = resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let matches = |v: &Value| v.get("id").and_then(Value::as_u64) == Some(id);
    if ct.starts_with("text/event-stream") {
        let text = String::from_utf8_lossy(resp.body());
        let mut asm = SseAssembler::default();
        for line in text.split_inclusive('\n').chain(std::iter::once("\n")) {
            if let Some(ev) = asm.line(line) {
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    if matches(&v) {
                        return Ok(v);
                    }
                }
            }
        }
        return Err(Error::Mcp(format!("no response with id {id} in the event stream")));
    }
    let v: Value = serde_json::from_slice(resp.body()).map_err(|e| Error::Mcp(format!("invalid json response: {e}")))?;
    if matches(&v) {
        Ok(v)
    } else {
        Err(Error::Mcp(format!("response id does not match request id {id}")))
    }
}

/// The reply with `id` from the legacy event stream.
fn wait_for_reply(legacy: &Legacy, id: u64) -> Result<Value, Error> {
    let deadline = Instant::now() + LEGACY_REPLY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match legacy.events.recv_timeout(left) {
            Ok(ev) if ev.event == "message" => {
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    if v.get("id").and_then(Value::as_u64) == Some(id) {
                        return Ok(v);
                    }
                }
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => return Err(Error::Mcp(format!("no reply to request {id} on the event stream"))),
            Err(RecvTimeoutError::Disconnected) => return Err(Error::Mcp("the event stream closed".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_assembly() {
        let mut a = SseAssembler::default();
        let mut out = Vec::new();
        for l in ["event: endpoint\n", "data: /messages?x=1\r\n", "\n", ": comment\n", "data: {\"a\":\n", "data: 1}\n", "\n"] {
            out.extend(a.line(l));
        }
        assert_eq!(
            out,
            [
                SseEvent { event: "endpoint".into(), data: "/messages?x=1".into() },
                SseEvent { event: "message".into(), data: "{\"a\":\n1}".into() }
            ]
        );
    }
}
