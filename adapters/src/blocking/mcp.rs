//! A small MCP client over Streamable HTTP: `initialize`, `tools/list`, `tools/call`, with
//! JSON or SSE-framed replies, `Mcp-Session-Id` and `MCP-Protocol-Version`. With OAuth, every
//! request carries the token, and a 401 (or 403 `insufficient_scope`) runs the flow and
//! retries; without OAuth, requests go out exactly as they would without this crate.

use super::{challenge_of, HttpClient, OAuthClient};
use crate::error::Error;
use crate::interaction::Interaction;
use crate::store::TokenStore;
use mcp_oauth_core::{Config, ConfigError, ServerConfig, Transport};
use serde_json::{json, Value};
use std::sync::Arc;
use url::Url;

/// Largest MCP response body read.
pub const MAX_MCP_BODY: usize = 16 * 1024 * 1024;
/// The protocol version this client asks for.
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
        }
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
        let (url, headers) = match &server.transport {
            Transport::StreamableHttp { url, headers } => (url, headers),
            Transport::Sse { .. } => return Err(Error::Mcp("the legacy HTTP+SSE transport is not supported by this client yet".into())),
            Transport::Stdio { command, .. } => {
                return Err(Error::Config(ConfigError::Inconsistent(format!("{command:?} is a stdio server; this client speaks HTTP"))))
            }
        };
        let url = Url::parse(url).map_err(|e| ConfigError::InvalidUrl { field: "url", reason: e.to_string() })?;
        let oauth = match server.oauth_config(env)? {
            Some(config) => Some(OAuthClient::new(config, store, interaction)?),
            None => None,
        };
        let mut c = McpClient::new(url, oauth);
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

    /// `initialize` and `notifications/initialized`. Returns the server's result.
    pub fn connect(&mut self) -> Result<Value, Error> {
        if self.mode == ConnectMode::Eager {
            self.warm_up()?;
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

    fn rpc(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let resp = self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let msg = find_response(&resp, id)?;
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
        let body = body.to_string().into_bytes();
        loop {
            let mut b = http::Request::post(self.url.as_str())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json, text/event-stream");
            for (k, v) in &self.headers {
                b = b.header(k, v);
            }
            if let Some(v) = &self.protocol_version {
                b = b.header("MCP-Protocol-Version", v.as_str());
            }
            if let Some(s) = &self.session_id {
                b = b.header("Mcp-Session-Id", s.as_str());
            }
            if let Some(h) = &header {
                b = b.header(http::header::AUTHORIZATION, h.header_value());
            }
            let req = b.body(body.clone()).map_err(|e| Error::Mcp(e.to_string()))?;
            let resp = self.http.send(req, MAX_MCP_BODY).map_err(Error::Transport)?;
            if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                self.session_id = Some(s.to_owned());
            }
            match (challenge_of(&resp), &mut self.oauth) {
                (Some((status, www)), Some(o)) => header = Some(o.challenged(status, www)?),
                _ if resp.status().is_success() => return Ok(resp),
                _ => return Err(Error::Mcp(format!("http status {}", resp.status().as_u16()))),
            }
        }
    }
}

/// The JSON-RPC response with `id`, from a JSON body or an SSE stream.
fn find_response(resp: &http::Response<Vec<u8>>, id: u64) -> Result<Value, Error> {
    let ct = resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let matches = |v: &Value| v.get("id").and_then(Value::as_u64) == Some(id);
    if ct.starts_with("text/event-stream") {
        let text = String::from_utf8_lossy(resp.body());
        for event in text.split("\n\n").flat_map(|e| e.split("\r\n\r\n")) {
            let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
            if data.is_empty() {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(&data.join("\n")) {
                if matches(&v) {
                    return Ok(v);
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
