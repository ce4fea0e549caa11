//! rmcp integration (feature `rmcp`): an HTTP client for the official Rust MCP SDK's Streamable
//! HTTP client transport that authorizes every request through this crate.
//!
//! [`OAuthHttpClient`] implements rmcp's `StreamableHttpClient` over reqwest (rmcp's own
//! implementation, on a client built the way [`ReqwestClient`] is:
//! rustls, no redirects, the network policy). Each POST, the SSE GET stream (and each of its
//! reconnections) and the session DELETE get the token from a [`OAuthClient`]: the held
//! one, a refreshed one, or one from a login (eager, or lazy on the first 401). On a 401 or a
//! 403 `insufficient_scope` the client re-authorizes (refresh, a new login, or a step-up with
//! the union of the scopes) and sends the request again, within the request's retry budget.
//! The store, its lock and single flight are the same as for every other client of the store,
//! so rmcp clients, this crate's own clients and other processes share one login.
//!
//! ```no_run
//! use mcp_oauth_client::rmcp::OAuthHttpClient;
//! use mcp_oauth_client::tokio::OAuthClient;
//! use mcp_oauth_client::{Config, FileStore, Interaction};
//! use rmcp::transport::StreamableHttpClientTransport;
//! use rmcp::ServiceExt;
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "https://mcp.example.com/mcp";
//! let store = Arc::new(FileStore::in_default_dir()?);
//! let oauth = OAuthClient::new(Config::new(url.parse()?), store, Interaction::default()).await?;
//! let (client, config) = OAuthHttpClient::new(oauth).with_transport_config();
//! let service = ().serve(StreamableHttpClientTransport::with_client(client, config)).await?;
//! println!("{:?}", service.list_all_tools().await?);
//! # Ok(()) }
//! ```
//!
//! What rmcp's trait does not allow, and what is done instead:
//!
//! * **DPoP nonces from the MCP server** (RFC 9449 §9): rmcp reports a 401 with its
//!   `WWW-Authenticate` line only, not the `DPoP-Nonce` header, so a resource server that
//!   demands a nonce cannot be given one: the request fails (after its retry budget) with the
//!   server's challenge. Nonces from the authorization server work as everywhere else, since
//!   that traffic is this crate's own. DPoP proofs themselves are attached to every request.
//! * **rmcp's `auth_header`**: the transport configuration's `auth_header` is ignored; the
//!   token comes from the [`OAuthClient`].
//! * **A 401 or 403 without an OAuth challenge**: returned to rmcp as it is (nothing to answer).
//! * **rmcp's deadline on control POSTs**: rmcp drops a cancellation or a reply to the server
//!   after its `control_request_timeout` (5 s by default), and with it whatever this client was
//!   doing for that POST. A refresh fits in that time; a browser login does not, so if such a
//!   POST is the first to meet an expired grant, its login is abandoned (the listener closed,
//!   nothing stored) and the next request starts it again. Ordinary requests have no such
//!   deadline in rmcp, so in practice they are the ones that log in.

use crate::driver::Attempts;
use crate::error::Error;
use crate::interaction::Interaction;
use crate::mcp::{Challenge, ConnectMode};
use crate::store::TokenStore;
use crate::tokio::{OAuthClient, ReqwestClient, Tokio};
use crate::ServerConfig;
use futures_lite::Stream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use rmcp::transport::StreamableHttpClientTransport;
use sse_stream::Sse;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// An SSE stream as rmcp takes it.
type SseStream = Pin<Box<dyn Stream<Item = Result<Sse, SseError>> + Send + 'static>>;

/// What went wrong in an [`OAuthHttpClient`] call, as rmcp's `StreamableHttpError::Client`
/// carries it.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The HTTP client failed (connect, TLS, a read, a silence past the idle timeout). Held
    /// without its URL.
    Http(reqwest::Error),
    /// Authorization failed: the login, the refresh, the store, or the request's retry budget.
    /// The error says who is to blame and what to do ([`Error::blame`]).
    OAuth(Error),
    /// An rmcp error this crate does not know (rmcp added a kind), as text.
    Other(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Http(e) => write!(f, "{e}"),
            HttpError::OAuth(e) => write!(f, "authorization failed: {e}"),
            HttpError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Http(e) => Some(e),
            HttpError::OAuth(e) => Some(e),
            HttpError::Other(_) => None,
        }
    }
}

/// rmcp's Streamable HTTP client, authorized by this crate. Clones share the client (and so
/// the token, and any login in progress).
#[derive(Clone)]
pub struct OAuthHttpClient {
    http: Result<reqwest::Client, String>,
    oauth: Option<OAuthClient>,
    mode: ConnectMode,
    url: url::Url,
    headers: HashMap<HeaderName, HeaderValue>,
}

impl std::fmt::Debug for OAuthHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthHttpClient")
            .field("server", &crate::error::shown_url(self.url.as_str()))
            .field("oauth", &self.oauth.is_some())
            .field("mode", &self.mode)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OAuthHttpClient {
    /// A client for `oauth`'s MCP server (lazy: the first request goes out without a token
    /// unless one is held). HTTP goes through reqwest built like
    /// [`ReqwestClient`], with the configuration's network policy.
    pub fn new(oauth: OAuthClient) -> Self {
        let config = oauth.config();
        let http = ReqwestClient::default().with_policy(config.network, config.server_url.host_str().unwrap_or("")).reqwest();
        let url = config.server_url.clone();
        OAuthHttpClient { http, oauth: Some(oauth), mode: ConnectMode::Lazy, url, headers: HashMap::new() }
    }

    /// From plain configuration (the same `ServerConfig` the other adapters take): OAuth if the
    /// server has an `oauth` section, the configured headers on every request. A server without
    /// OAuth gets a plain client (nothing attached, nothing retried); OAuth on stdio is refused.
    /// Take the transport configuration with [`with_transport_config`](Self::with_transport_config).
    pub async fn from_config(
        server: &ServerConfig,
        store: Arc<dyn TokenStore>,
        interaction: Interaction,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, Error> {
        let endpoint = crate::mcp::endpoint(server)?;
        if endpoint.legacy_sse {
            return Err(Error::Unsupported("rmcp's Streamable HTTP transport cannot speak the legacy HTTP+SSE transport"));
        }
        let oauth = match server.oauth_config(env)? {
            Some(config) => Some(OAuthClient::new(config, store, interaction).await?),
            None => None,
        };
        let http = match &oauth {
            Some(o) => ReqwestClient::default().with_policy(o.config().network, endpoint.url.host_str().unwrap_or("")),
            None => ReqwestClient::default(),
        }
        .reqwest();
        let headers = endpoint.headers.into_iter().collect();
        Ok(OAuthHttpClient { http, oauth, mode: ConnectMode::Lazy, url: endpoint.url, headers })
    }

    /// How long a request may stay silent (no response head, no body bytes, no SSE event or
    /// keep-alive) before it fails; default 5 minutes
    /// ([`STREAM_IDLE_TIMEOUT`](crate::mcp::STREAM_IDLE_TIMEOUT)). rmcp sets no deadline of its
    /// own on ordinary requests, so this is what ends one a server never answers (and what makes
    /// rmcp reconnect a half-open event stream). A tool that runs longer than this before
    /// answering needs a longer one.
    pub fn idle_timeout(mut self, idle: std::time::Duration) -> Self {
        let network = self.oauth.as_ref().map(|o| o.config().network).unwrap_or_default();
        let http = ReqwestClient::default().with_policy(network, self.url.host_str().unwrap_or("")).stream_idle(idle);
        self.http = http.reqwest();
        self
    }

    /// Eager (log in before the first request) or lazy (on the first 401; the default).
    pub fn mode(mut self, mode: ConnectMode) -> Self {
        self.mode = mode;
        self
    }

    /// The OAuth client, if any (clone it to share the token with other clients).
    pub fn oauth(&self) -> Option<&OAuthClient> {
        self.oauth.as_ref()
    }

    /// This client and the transport configuration for its server (the URL, the configured
    /// headers), for `StreamableHttpClientTransport::with_client(client, config)`.
    pub fn with_transport_config(self) -> (Self, StreamableHttpClientTransportConfig) {
        let config = StreamableHttpClientTransportConfig::with_uri(self.url.as_str()).custom_headers(self.headers.clone());
        (self, config)
    }

    /// The transport, ready for `().serve(transport)`. Call it inside a tokio runtime (rmcp
    /// spawns the transport's worker at once).
    pub fn into_transport(self) -> StreamableHttpClientTransport<Self> {
        let (client, config) = self.with_transport_config();
        StreamableHttpClientTransport::with_client(client, config)
    }

    fn http(&self) -> Result<&reqwest::Client, StreamableHttpError<HttpError>> {
        self.http.as_ref().map_err(|e| StreamableHttpError::Client(HttpError::Other(e.clone())))
    }

    /// Sends through rmcp's reqwest client with the token attached, and answers challenges
    /// (within the request's retry budget).
    async fn authorized<T, F, Fut>(
        &self,
        method: http::Method,
        uri: &str,
        custom: HashMap<HeaderName, HeaderValue>,
        call: F,
    ) -> Result<T, StreamableHttpError<HttpError>>
    where
        F: Fn(HashMap<HeaderName, HeaderValue>) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<reqwest::Error>>>,
    {
        let oauth = self.oauth.as_ref().map(|o| o.driver());
        let up_front = match &self.oauth {
            Some(o) => self.mode == ConnectMode::Eager || o.holds_token().await,
            None => false,
        };
        let oauth_err = |e: Error| StreamableHttpError::Client(HttpError::OAuth(e));
        let mut attempts = Attempts::<Tokio>::start(oauth, up_front).await.map_err(oauth_err)?;
        loop {
            let mut probe = http::Request::builder()
                .method(method.clone())
                .uri(uri)
                .body(Vec::new())
                .map_err(|e| StreamableHttpError::Client(HttpError::Other(format!("the transport's URL is not a valid URI: {e}"))))?;
            attempts.attach(&mut probe).map_err(oauth_err)?;
            // The token (and proof) replace any configured `Authorization`; with none attached
            // (no OAuth, or a lazy client before its first challenge), the configured headers go
            // as they are.
            let mut headers = custom.clone();
            if probe.headers().contains_key(http::header::AUTHORIZATION) {
                for name in [http::header::AUTHORIZATION, HeaderName::from_static("dpop")] {
                    match probe.headers().get(&name) {
                        Some(v) => headers.insert(name, v.clone()),
                        None => headers.remove(&name),
                    };
                }
            }
            let result = call(headers).await;
            let challenge = match &result {
                Err(StreamableHttpError::AuthRequired(e)) => challenge(401, &e.www_authenticate_header),
                Err(StreamableHttpError::InsufficientScope(e)) => challenge(403, &e.www_authenticate_header),
                _ => None,
            };
            // No challenge, not an OAuth one, or no OAuth to answer it: as rmcp reported it.
            let Some(challenge) = challenge.filter(|_| oauth.is_some()) else { return result.map_err(from_rmcp) };
            if let Err(e) = attempts.challenged(Some(challenge)).await {
                if method == http::Method::GET {
                    // rmcp reconnects its event stream after any error but these two: a failed
                    // login or an exhausted budget must end the reconnections, not start a new
                    // login each time. The reason goes to the log.
                    log::debug!(target: "mcp_oauth_client::flow", "the event stream's challenge was not answered: {e}");
                    return result.map_err(from_rmcp);
                }
                return Err(oauth_err(e));
            }
        }
    }
}

/// A challenge from what rmcp kept of the response: the status and one `WWW-Authenticate` line.
fn challenge(status: u16, www_authenticate: &str) -> Option<Challenge> {
    let value = HeaderValue::from_str(www_authenticate).ok()?;
    let www = vec![value];
    mcp_oauth_core::discovery::is_challenge(status, &www).then_some(Challenge { status, www_authenticate: www, dpop_nonce: None })
}

/// rmcp's error for reqwest, as rmcp's error for this client (every kind rmcp's worker tells
/// apart keeps its kind).
fn from_rmcp(e: StreamableHttpError<reqwest::Error>) -> StreamableHttpError<HttpError> {
    use StreamableHttpError as E;
    match e {
        E::Sse(e) => E::Sse(e),
        E::Io(e) => E::Io(e),
        // Without the URL it carries: a query can hold a secret (Debug and `source()` show it).
        E::Client(e) => E::Client(HttpError::Http(e.without_url())),
        E::HttpStatus(e) => E::HttpStatus(e),
        E::UnexpectedEndOfStream => E::UnexpectedEndOfStream,
        E::UnexpectedServerResponse(e) => E::UnexpectedServerResponse(e),
        E::ResponseBodyTooLarge { max_size } => E::ResponseBodyTooLarge { max_size },
        E::UnexpectedContentType(e) => E::UnexpectedContentType(e),
        E::ServerDoesNotSupportSse => E::ServerDoesNotSupportSse,
        E::ServerDoesNotSupportDeleteSession => E::ServerDoesNotSupportDeleteSession,
        E::TokioJoinError(e) => E::TokioJoinError(e),
        E::Deserialize(e) => E::Deserialize(e),
        E::TransportChannelClosed => E::TransportChannelClosed,
        E::MissingSessionIdInResponse => E::MissingSessionIdInResponse,
        E::AuthRequired(e) => E::AuthRequired(e),
        E::InsufficientScope(e) => E::InsufficientScope(e),
        E::ReservedHeaderConflict(e) => E::ReservedHeaderConflict(e),
        E::SessionExpired => E::SessionExpired,
        E::SessionRecoveryTimeout => E::SessionRecoveryTimeout,
        E::ReinitializationFailed(e) => E::ReinitializationFailed(e),
        E::ControlRequestTimeout => E::ControlRequestTimeout,
        other => E::Client(HttpError::Other(other.to_string())),
    }
}

impl StreamableHttpClient for OAuthHttpClient {
    type Error = HttpError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let limits = StreamableHttpResponseLimits::default();
        self.post_message_with_response_limits(uri, message, session_id, None, custom_headers, limits).await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(uri, message, session_id, None, custom_headers, limits).await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let http = self.http()?;
        self.authorized(http::Method::POST, &uri, custom_headers, |headers| {
            http.post_message_with_response_limits(uri.clone(), message.clone(), session_id.clone(), None, headers, limits)
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let http = self.http()?;
        self.authorized(http::Method::DELETE, &uri, custom_headers, |headers| {
            http.delete_session(uri.clone(), session_id.clone(), None, headers)
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<SseStream, StreamableHttpError<Self::Error>> {
        let max = StreamableHttpResponseLimits::default().max_sse_event_size;
        self.get_stream_with_max_sse_event_size(uri, session_id, last_event_id, None, custom_headers, max).await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<SseStream, StreamableHttpError<Self::Error>> {
        let http = self.http()?;
        self.authorized(http::Method::GET, &uri, custom_headers, |headers| {
            http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                None,
                headers,
                max_sse_event_size,
            )
        })
        .await
    }
}
