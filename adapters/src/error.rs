//! The adapter's error: core errors plus what can go wrong with real I/O. Errors about a request
//! to the MCP server name it ([`McpRequest`]: the step, the method and the URL, its query left
//! out), and their `Display` says what to do next.

use crate::store::StoreError;
use mcp_oauth_core::http::{TransportFailure, TransportFailureKind};
use mcp_oauth_core::{Blame, ConfigError, Error as CoreError};
use std::fmt;

/// Everything the adapters report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OAuth flow failed (see the core error's stage and blame).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Saving or loading tokens failed.
    #[error("token store: {inner}{hint}", inner = .0, hint = store_hint(.0))]
    Store(#[from] StoreError),
    /// The operating system had no randomness to give.
    #[error("no randomness available: {0}: the operating system's random source must be readable")]
    Entropy(String),
    /// A request to the MCP server got no HTTP response (refused, unresolvable, TLS, timeout).
    #[error("{request}: no response: {failure}{}", transport_hint(failure, request))]
    Transport {
        /// The request.
        request: McpRequest,
        /// Why there is no response.
        failure: TransportFailure,
    },
    /// The MCP server answered an error status (not an OAuth challenge this client could act on).
    #[error("{request}: the server answered {status}{}", status_hint(*status))]
    Status {
        /// The request.
        request: McpRequest,
        /// The HTTP status.
        status: u16,
    },
    /// The MCP server asks for OAuth (401 with a `Bearer` challenge), and this server is
    /// configured without it.
    #[error(
        "{request}: the server requires OAuth (401 with a Bearer challenge): add an \"oauth\" section to this server's \
         configuration (an empty one, {{}}, logs in through the browser), or give the client an OAuthClient"
    )]
    OAuthRequired {
        /// The request.
        request: McpRequest,
    },
    /// The MCP server's answer does not follow the MCP protocol.
    #[error("{request}: {problem}: is this URL an MCP server's endpoint?")]
    Protocol {
        /// The request.
        request: McpRequest,
        /// What is wrong with the answer.
        problem: ProtocolError,
    },
    /// A request could not be built from the configuration (a header name or value that HTTP
    /// does not allow).
    #[error("cannot build the request to {url}: {reason}: check the server's \"headers\" in the configuration")]
    BadRequest {
        /// The URL, without its query.
        url: String,
        /// Why.
        reason: String,
    },
    /// The legacy transport's event stream failed: an event over the size cap, or the stream
    /// ended. The next call opens a new stream.
    #[error("mcp event stream: {0}: the next call opens a new stream; try again")]
    EventStream(crate::mcp::EventStreamError),
    /// A JSON-RPC error from the MCP server.
    #[error("mcp server error {code}: {message}: the mcp server refused the call; see its message")]
    JsonRpc {
        /// The JSON-RPC error code.
        code: i64,
        /// The message (server-controlled text).
        message: String,
    },
    /// The flow waited for an event that can never come (a bug in a custom driver).
    #[error("the authorization flow stalled waiting without a deadline: this is a bug in the driver, please report it")]
    Stalled,
    /// A request for another origin than the MCP server's was handed to the OAuth client: its
    /// token is never attached there.
    #[error("refusing to send the token for {server} to {url}: not the MCP server's origin; send only the MCP server's requests through this client")]
    ForeignOrigin {
        /// The request's URL, without its query.
        url: String,
        /// The MCP server's origin.
        server: String,
    },
    /// This build cannot do what was asked (a feature left out).
    #[error("not available in this build: {0}: build with the feature that provides it")]
    Unsupported(&'static str),
}

impl Error {
    /// Who is to blame ([`Blame`]). Core errors say it themselves; the
    /// adapter's own:
    ///
    /// | variant | blame |
    /// |---|---|
    /// | `Config`, `BadRequest`, `OAuthRequired`, `Unsupported` | configuration |
    /// | `Store`, `Entropy` | configuration: the machine this client runs on (the store's directory, its permissions, the OS's randomness) is part of its setup |
    /// | `Transport` | network; configuration when the network policy blocked it; the server when its answer was too large |
    /// | `Status` 404, 405, 400, 406, 415, 422 | configuration: nothing, or no MCP endpoint, is at the configured URL |
    /// | `Status` 401 | configuration: the configured credentials (headers) were refused, without an OAuth challenge |
    /// | `Status`, other | the server |
    /// | `Protocol`, `EventStream`, `JsonRpc` | the server |
    /// | `Stalled`, `ForeignOrigin` | bug: a custom driver, or an application handing the client another origin's request |
    pub fn blame(&self) -> Blame {
        match self {
            Error::Core(e) => e.blame(),
            Error::Config(e) => e.blame(),
            Error::Store(_) | Error::Entropy(_) => Blame::Configuration,
            Error::Transport { failure, .. } => match failure.kind {
                TransportFailureKind::Blocked => Blame::Configuration,
                TransportFailureKind::BodyTooLarge => Blame::Server,
                _ => Blame::Network,
            },
            Error::Status { status: 400 | 401 | 404 | 405 | 406 | 415 | 422, .. } => Blame::Configuration,
            Error::Status { .. } => Blame::Server,
            Error::OAuthRequired { .. } | Error::BadRequest { .. } | Error::Unsupported(_) => Blame::Configuration,
            Error::Protocol { .. } | Error::EventStream(_) | Error::JsonRpc { .. } => Blame::Server,
            Error::Stalled | Error::ForeignOrigin { .. } => Blame::Bug,
        }
    }

    /// The core error, if this is one.
    pub fn core(&self) -> Option<&CoreError> {
        match self {
            Error::Core(e) => Some(e),
            _ => None,
        }
    }
}

/// A request to the MCP server, as errors name it: `initialize: POST https://mcp.example.com/mcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpRequest {
    /// What the request was for: the JSON-RPC method (`initialize`, `tools/call`), `event
    /// stream` (the legacy transport's GET), or `request` (one sent through
    /// `OAuthClient::send`).
    pub step: String,
    /// The HTTP method.
    pub method: String,
    /// The URL, without its userinfo or query (either may carry credentials) or fragment.
    pub url: String,
}

/// A URL as errors show it: no userinfo, query or fragment (any may carry a credential).
pub(crate) fn shown_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        // Not a URL: what comes before anything that could be a query, and no userinfo.
        Err(_) => {
            let s = s.split(['?', '#']).next().unwrap_or("");
            match (s.find("://"), s.rfind('@')) {
                (Some(i), Some(at)) if at > i => format!("{}{}", &s[..i + 3], &s[at + 1..]),
                _ => s.to_owned(),
            }
        }
    }
}

// Used by the adapters' drivers; a build without any adapter feature has none.
#[cfg_attr(not(any(feature = "blocking", feature = "async-std", feature = "tokio")), allow(dead_code))]
impl McpRequest {
    /// Names `req`, sent for `step`.
    pub(crate) fn of(step: &str, req: &http::Request<Vec<u8>>) -> Self {
        Self::named(step, req.method(), req.uri())
    }

    /// Names a request to `uri` with `method`, sent for `step`.
    pub(crate) fn named(step: &str, method: &http::Method, uri: &http::Uri) -> Self {
        McpRequest { step: step.to_owned(), method: method.to_string(), url: shown_url(&uri.to_string()) }
    }
}

impl fmt::Display for McpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.step, self.method, self.url)
    }
}

/// How an MCP server's answer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The body is not JSON.
    #[error("the response is not JSON ({0})")]
    NotJson(String),
    /// No JSON-RPC response with the request's id (in a JSON body or an SSE-framed one).
    #[error("no JSON-RPC response with id {0}")]
    NoResponse(u64),
    /// A JSON-RPC response with neither `result` nor `error`.
    #[error("the JSON-RPC response has neither result nor error")]
    NoResult,
    /// A `tools/list` result without a `tools` array.
    #[error("the tools/list result has no tools array")]
    NoTools,
    /// The legacy event stream's first event was missing, or not `endpoint`.
    #[error("the event stream did not start with an endpoint event{}", .0.as_deref().map(|e| format!(" (got {e:?})")).unwrap_or_default())]
    NoEndpointEvent(Option<String>),
    /// The `endpoint` event names no usable URL.
    #[error("the endpoint event names no URL ({0})")]
    BadEndpoint(String),
    /// The `endpoint` event names another origin: no request (or token) is sent there.
    #[error("the endpoint event names another origin; refusing to send requests (and tokens) there")]
    ForeignEndpoint,
    /// The event stream carried no reply to the request in time.
    #[error("no reply to request {0} on the event stream")]
    NoReplyOnStream(u64),
}

fn transport_hint(failure: &TransportFailure, request: &McpRequest) -> String {
    let host = url::Url::parse(&request.url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    match failure.kind {
        TransportFailureKind::Connect => format!(": is an MCP server running at {host}, and are the URL's host name and port right?"),
        TransportFailureKind::Tls => ": the server's certificate is not trusted for this name".into(),
        TransportFailureKind::Timeout => ": the server did not answer in time; try again, or check the network".into(),
        TransportFailureKind::BodyTooLarge => ": the answer is larger than an MCP client accepts".into(),
        TransportFailureKind::Blocked => ": the network policy forbids this address".into(),
        _ => String::new(),
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 => ": nothing is at this URL; check the MCP endpoint's path (often /mcp)",
        405 => ": this URL does not take this method; check that it is the MCP endpoint (often /mcp)",
        401 => ": the server refused the credentials without an OAuth challenge this client can answer",
        403 => ": the server refused this request",
        400 | 406 | 415 | 422 => ": the server did not accept the request; is this URL an MCP endpoint of a supported version?",
        408 | 429 => ": the server is busy; try again later",
        500..=599 => ": the server failed; try again later",
        _ => ": check the MCP server's URL, and the server's logs",
    }
}

/// What to check after a store error, where there is something to check.
fn store_hint(e: &StoreError) -> &'static str {
    match e {
        StoreError::Io { .. } | StoreError::NoDirectory | StoreError::Untrusted { .. } => {
            ": check the store's directory and its permissions"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::EventStreamError;

    fn req() -> McpRequest {
        McpRequest { step: "initialize".into(), method: "POST".into(), url: "https://mcp.example.com/mcp".into() }
    }

    fn transport(kind: TransportFailureKind) -> Error {
        Error::Transport { request: req(), failure: TransportFailure { kind, message: "m".into() } }
    }

    /// Every variant of the adapter's error with its blame; the match is exhaustive, so a new
    /// variant does not compile until it has a row.
    #[test]
    fn every_adapter_error_has_its_blame() {
        let status = |status| Error::Status { request: req(), status };
        let table = [
            (Error::Core(CoreError::Bug("x")), Blame::Bug),
            (Error::Core(mcp_oauth_core::AuthorizationError::Cancelled.into()), Blame::User),
            (Error::Config(ConfigError::RedirectUriHasQuery), Blame::Configuration),
            (Error::Store(StoreError::NoDirectory), Blame::Configuration),
            (Error::Entropy("e".into()), Blame::Configuration),
            (transport(TransportFailureKind::Connect), Blame::Network),
            (transport(TransportFailureKind::Tls), Blame::Network),
            (transport(TransportFailureKind::Timeout), Blame::Network),
            (transport(TransportFailureKind::Other), Blame::Network),
            (transport(TransportFailureKind::Blocked), Blame::Configuration),
            (transport(TransportFailureKind::BodyTooLarge), Blame::Server),
            (status(404), Blame::Configuration),
            (status(405), Blame::Configuration),
            (status(401), Blame::Configuration),
            (status(415), Blame::Configuration),
            (status(403), Blame::Server),
            (status(429), Blame::Server),
            (status(503), Blame::Server),
            (status(410), Blame::Server),
            (Error::OAuthRequired { request: req() }, Blame::Configuration),
            (Error::Protocol { request: req(), problem: ProtocolError::NoResult }, Blame::Server),
            (Error::BadRequest { url: "u".into(), reason: "r".into() }, Blame::Configuration),
            (Error::EventStream(EventStreamError::Closed), Blame::Server),
            (Error::JsonRpc { code: -32601, message: "m".into() }, Blame::Server),
            (Error::Stalled, Blame::Bug),
            (Error::ForeignOrigin { url: "u".into(), server: "s".into() }, Blame::Bug),
            (Error::Unsupported("sse"), Blame::Configuration),
        ];
        for (e, blame) in &table {
            match e {
                Error::Core(_)
                | Error::Config(_)
                | Error::Store(_)
                | Error::Entropy(_)
                | Error::Transport { .. }
                | Error::Status { .. }
                | Error::OAuthRequired { .. }
                | Error::Protocol { .. }
                | Error::BadRequest { .. }
                | Error::EventStream(_)
                | Error::JsonRpc { .. }
                | Error::Stalled
                | Error::ForeignOrigin { .. }
                | Error::Unsupported(_) => {}
            }
            assert_eq!(e.blame(), *blame, "{e}");
            let text = e.to_string();
            assert!(!text.ends_with('.'), "{text}");
        }
    }
}
