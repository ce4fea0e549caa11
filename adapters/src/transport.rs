//! HTTP through ureq 3, for both adapters (the async one runs it on its blocking pool):
//! redirects never followed, status codes returned as responses, a
//! timeout on every phase of every call, TLS verified (rustls with webpki roots), and bodies read only up to
//! the cap core asks for. A 20 MB body fails after the cap, not after 20 MB.
//!
//! Credentials never pass through ureq in plain text, because ureq logs every byte it writes and
//! reads at TRACE (see [`HttpClient::send`] for what is covered, and the private `scrub` module
//! for how).

mod scrub;

use mcp_oauth_core::config::NetworkPolicy;
use mcp_oauth_core::http::{address_blocked, HttpResponse, OutgoingRequest, Purpose, TransportFailure, TransportFailureKind};
use std::time::Duration;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, DefaultConnector, NextTimeout};

/// The HTTP client (blocking calls; the async adapter runs them off the executor).
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    /// For event streams: no global timeout (the stream lives as long as the session).
    streaming: ureq::Agent,
    timeout: Duration,
    guard: Option<Guard>,
}

/// The resolver that enforces a [`NetworkPolicy`]: every address a host resolves to is checked
/// before ureq connects to exactly those addresses (no second lookup a rebinding DNS server
/// could answer differently). The configured MCP server's host is exempt.
///
/// ureq's resolver interface is outside its semver promise; the version is pinned in Cargo.lock.
#[derive(Debug, Clone)]
struct Guard {
    policy: NetworkPolicy,
    exempt_host: String,
}

/// The error a [`Guard`] raises (recognised by [`failure`]).
#[derive(Debug)]
struct BlockedAddress(String);

impl std::fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BlockedAddress {}

impl Resolver for Guard {
    fn resolve(&self, uri: &http::Uri, config: &ureq::config::Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case(&self.exempt_host) {
            return Ok(addrs);
        }
        for a in addrs.iter() {
            if let Some(why) = address_blocked(a.ip(), self.policy) {
                let msg = format!("{host} resolves to {}, a {why} address, which the network policy forbids", a.ip());
                return Err(ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, BlockedAddress(msg))));
            }
        }
        Ok(addrs)
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let policy = self.guard.as_ref().map(|g| g.policy).unwrap_or_default();
        f.debug_struct("HttpClient").field("timeout", &self.timeout).field("network", &policy).finish()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl HttpClient {
    /// A client whose calls time out after `timeout` in any phase: connecting (at most 10 s),
    /// sending the request, waiting for the response head, and reading the body. A server that
    /// stalls or drips a body forever is cut off; a slow but steady one gets `timeout` per phase.
    ///
    /// (Per-phase rather than one overall deadline: ureq's overall deadline cost about 95 µs per
    /// request on the async adapter's pool threads, measured, and nothing per phase.)
    pub fn new(timeout: Duration) -> Self {
        Self::build(timeout, None)
    }

    /// This client with `policy` enforced on every host except `exempt_host` (the configured
    /// MCP server's), for the OAuth requests of a flow whose URLs come from metadata.
    /// [`NetworkPolicy::Open`] leaves it as it is.
    pub fn with_policy(self, policy: NetworkPolicy, exempt_host: &str) -> Self {
        if policy == NetworkPolicy::Open {
            return self;
        }
        Self::build(self.timeout, Some(Guard { policy, exempt_host: exempt_host.trim_start_matches('[').trim_end_matches(']').into() }))
    }

    fn build(timeout: Duration, guard: Option<Guard>) -> Self {
        let base = || {
            ureq::Agent::config_builder()
                .max_redirects(0)
                .max_redirects_will_error(false)
                .http_status_as_error(false)
                .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
                .user_agent(concat!("mcp-oauth/", env!("CARGO_PKG_VERSION")))
        };
        let connector = || DefaultConnector::default().chain(scrub::ScrubConnector);
        let agent_of = |config: ureq::config::Config| match &guard {
            Some(g) => ureq::Agent::with_parts(config, connector(), g.clone()),
            None => ureq::Agent::with_parts(config, connector(), DefaultResolver::default()),
        };
        let t = Some(timeout);
        let agent = agent_of(base().timeout_send_request(t).timeout_send_body(t).timeout_recv_response(t).timeout_recv_body(t).build());
        let streaming = agent_of(base().timeout_recv_response(Some(timeout)).build());
        HttpClient { agent, streaming, timeout, guard }
    }

    /// Opens a long-lived response (an event stream): the head within the timeout, then a
    /// reader of the unbounded body. Non-2xx responses are read (capped) and returned whole.
    pub fn open_stream(&self, mut req: http::Request<Vec<u8>>) -> Result<Stream, TransportFailure> {
        let _scrubbed = scrub::scrub(&mut req, false)?;
        let resp = self.streaming.run(req).map_err(failure)?;
        let (parts, mut body) = resp.into_parts();
        if !parts.status.is_success() {
            let bytes = body.with_config().limit(64 * 1024).read_to_vec().map_err(failure)?;
            return Ok(Stream::Done(http::Response::from_parts(parts, bytes)));
        }
        Ok(Stream::Open(parts, Box::new(body.into_reader())))
    }

    /// Sends a request core asked for.
    pub fn call(&self, req: &OutgoingRequest) -> Result<HttpResponse, TransportFailure> {
        self.send(request_of(req), req.max_response_bytes)
    }

    /// Sends any request, reading at most `max_body` bytes of the response.
    ///
    /// The values of `Authorization`, `Proxy-Authorization` and `DPoP` never reach ureq (nor its
    /// TRACE log); for the OAuth exchanges the adapters send (requests core asks for, other than
    /// metadata) neither do the request body and the response body.
    pub fn send(&self, mut req: http::Request<Vec<u8>>, max_body: usize) -> Result<HttpResponse, TransportFailure> {
        let exchange = req.extensions().get::<OAuthExchange>().is_some();
        let method = req.method().clone();
        let scrubbed = scrub::scrub(&mut req, exchange)?;
        let resp = self.agent.run(req).map_err(failure)?;
        let (parts, mut body) = resp.into_parts();
        scrubbed.arm(&method, &parts)?;
        let mut bytes = body.with_config().limit(max_body as u64).read_to_vec().map_err(failure)?;
        scrubbed.unmask(&mut bytes);
        Ok(http::Response::from_parts(parts, bytes))
    }
}

/// Marks a request as an OAuth exchange (token, registration): its body and its response's
/// body carry credentials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OAuthExchange;

/// The HTTP request of a request core asked for, marked if it is an [`OAuthExchange`]. Only
/// metadata is public; any other purpose (and any added later) may carry credentials.
pub(crate) fn request_of(req: &OutgoingRequest) -> http::Request<Vec<u8>> {
    let mut r = req.request.clone();
    if !matches!(req.purpose, Purpose::ResourceMetadata | Purpose::ServerMetadata) {
        r.extensions_mut().insert(OAuthExchange);
    }
    r
}

/// What [`HttpClient::open_stream`] got.
pub enum Stream {
    /// A 2xx head and the body to read as it arrives.
    Open(http::response::Parts, Box<dyn std::io::Read + Send>),
    /// Any other response, read whole (for challenges).
    Done(http::Response<Vec<u8>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Open(p, _) => f.debug_tuple("Open").field(&p.status).finish(),
            Stream::Done(r) => f.debug_tuple("Done").field(&r.status()).finish(),
        }
    }
}

fn failure(e: ureq::Error) -> TransportFailure {
    let kind = match &e {
        ureq::Error::Timeout(_) => TransportFailureKind::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => TransportFailureKind::Connect,
        ureq::Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset) => {
            TransportFailureKind::Connect
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => TransportFailureKind::Timeout,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => TransportFailureKind::Tls,
        ureq::Error::Io(io) if io.get_ref().is_some_and(|e| e.is::<BlockedAddress>()) => TransportFailureKind::Blocked,
        ureq::Error::BodyExceedsLimit(_) => TransportFailureKind::BodyTooLarge,
        _ => TransportFailureKind::Other,
    };
    TransportFailure { kind, message: e.to_string() }
}
