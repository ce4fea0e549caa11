//! HTTP through ureq 3, for both adapters (the async one runs it on its blocking pool):
//! redirects never followed, status codes returned as responses, a
//! timeout on every phase of every call, TLS verified (rustls with webpki roots), and bodies read only up to
//! the cap core asks for. A 20 MB body fails after the cap, not after 20 MB.
//!
//! Event streams ([`Ureq::open_stream`]) get a connection of their own that their owner
//! can shut from another thread, a deadline on every read, and an error body read within the
//! client's timeout.
//!
//! Credentials never pass through ureq in plain text, because ureq logs every byte it writes and
//! reads at TRACE (see [`Ureq::send`] for what is covered, and the private `scrub` module
//! for how).

#[cfg(feature = "tokio")]
mod reqwest;
mod scrub;

#[cfg(feature = "tokio")]
pub use self::reqwest::ReqwestClient;
pub use crate::driver::{BoxFuture, ByteStream, HttpClient, HttpStream, UreqOn};

use crate::mcp::STREAM_IDLE_TIMEOUT;
use mcp_oauth_core::config::NetworkPolicy;
use mcp_oauth_core::http::{address_blocked, HttpResponse, OutgoingRequest, Purpose, TransportFailure, TransportFailureKind};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either};
use ureq::unversioned::transport::{NextTimeout, RustlsConnector, TcpConnector, Transport};
use ureq::ProxyProtocol;

/// The ureq client (blocking calls): what every adapter's default [`HttpClient`]
/// ([`UreqOn`]) runs on its runtime's blocking pool.
///
/// Proxies: like every ureq client it uses the proxy named by `ALL_PROXY`, `HTTPS_PROXY` or
/// `HTTP_PROXY` (and honours `NO_PROXY`). Under a [`NetworkPolicy`] other than `open` (see
/// [`with_policy`](Self::with_policy)) the policy still holds through the proxy: the target is
/// resolved and checked here, and the proxy is asked (`CONNECT`) for the checked address, not
/// the name, so neither a metadata URL nor a name that re-resolves elsewhere gets past it.
#[derive(Clone)]
pub struct Ureq {
    agent: ureq::Agent,
    timeout: Duration,
    guard: Guard,
    stream_idle: Duration,
}

/// The resolver that enforces a [`NetworkPolicy`]: every address a host resolves to is checked
/// before ureq connects to exactly those addresses (no second lookup a rebinding DNS server
/// could answer differently). The configured MCP server's host is exempt, and so is the proxy
/// the environment names (both come from the operator, not from metadata). With
/// [`NetworkPolicy::Open`] it is ureq's own resolver.
///
/// ureq's resolver and transport interfaces are outside its semver promise; the version is
/// pinned in Cargo.lock.
#[derive(Debug, Clone)]
struct Guard {
    policy: NetworkPolicy,
    exempt_host: String,
}

impl Guard {
    const OPEN: Guard = Guard { policy: NetworkPolicy::Open, exempt_host: String::new() };

    fn exempt(&self, uri: &http::Uri) -> bool {
        self.policy == NetworkPolicy::Open || host_of(uri).eq_ignore_ascii_case(&self.exempt_host)
    }

    /// An agent with this policy, for `config`; with `deadline`, its reads and writes also end
    /// at the deadline its owner sets.
    fn agent(&self, config: ureq::config::Config, deadline: Option<Arc<Deadline>>) -> ureq::Agent {
        // ureq's own chain (proxy, TCP, TLS), after our choice of how to reach the target.
        let connector = || {
            ().chain(ProxiedTarget(self.clone()))
                .chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(RustlsConnector::default())
        };
        // The scrubbing transport is the last link (above TLS): it sees what ureq writes and
        // reads, and keeps credentials out of ureq's TRACE dump.
        let scrubbed = scrub::ScrubConnector;
        match (self.policy, deadline) {
            (NetworkPolicy::Open, None) => ureq::Agent::with_parts(config, connector().chain(scrubbed), DefaultResolver::default()),
            (NetworkPolicy::Open, Some(d)) => {
                ureq::Agent::with_parts(config, connector().chain(Bounded(d)).chain(scrubbed), DefaultResolver::default())
            }
            (_, None) => ureq::Agent::with_parts(config, connector().chain(scrubbed), self.clone()),
            (_, Some(d)) => ureq::Agent::with_parts(config, connector().chain(Bounded(d)).chain(scrubbed), self.clone()),
        }
    }
}

/// A URI's host, without the brackets of an IPv6 literal.
fn host_of(uri: &http::Uri) -> &str {
    uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']')
}

/// The error a policy check raises, here and in the reqwest client (recognised by their
/// `failure`).
#[derive(Debug)]
pub(crate) struct BlockedAddress(pub(crate) String);

impl BlockedAddress {
    /// `host` resolved to `ip`, which the policy forbids as a `why` address.
    pub(crate) fn new(host: &str, ip: std::net::IpAddr, why: &str) -> Self {
        BlockedAddress(format!("{host} resolves to {ip}, a {why} address, which the network policy forbids"))
    }
}

impl std::fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BlockedAddress {}

impl Resolver for Guard {
    fn resolve(&self, uri: &http::Uri, config: &ureq::config::Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        let host = host_of(uri);
        let port = uri.port_u16().or_else(|| (uri.scheme() == Some(&http::uri::Scheme::HTTPS)).then_some(443)).unwrap_or(80);
        let is_proxy = config.proxy().is_some_and(|p| host_of(p.uri()).eq_ignore_ascii_case(host) && p.port() == port);
        if self.exempt(uri) || is_proxy {
            return Ok(addrs);
        }
        for a in addrs.iter() {
            if let Some(why) = address_blocked(a.ip(), self.policy) {
                let blocked = BlockedAddress::new(host, a.ip(), why);
                return Err(ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, blocked)));
            }
        }
        Ok(addrs)
    }
}

/// `details` for another URI and its resolved addresses (ureq's connectors connect to `addrs`).
fn retarget<'a>(details: &ConnectionDetails<'a>, uri: &'a http::Uri, addrs: ResolvedSocketAddrs) -> ConnectionDetails<'a> {
    ConnectionDetails {
        uri,
        addrs,
        config: details.config,
        request_level: details.request_level,
        resolver: details.resolver,
        now: details.now,
        timeout: details.timeout,
        current_time: details.current_time.clone(),
        run_connector: details.run_connector.clone(),
        register_shutdown: details.register_shutdown.clone(),
    }
}

/// How a target is reached when a proxy is configured (from the environment).
///
/// * Loopback targets never go through a proxy: plain HTTP to loopback is allowed only because
///   it never leaves the machine, and a proxy would read it (tokens, codes, verifiers).
/// * Under a policy, requests through a CONNECT proxy: without this, ureq hands the proxy the
///   target's name and the resolver only ever sees the proxy's address, so the policy would not
///   apply at all. Here the target is resolved through the [`Guard`] (a forbidden one fails
///   before any connection is made) and the proxy is asked for the checked address.
///
/// Everything else (no proxy, `NO_PROXY` hosts, the exempt MCP server, `open`) goes ureq's
/// usual way.
#[derive(Debug)]
struct ProxiedTarget(Guard);

impl Connector<()> for ProxiedTarget {
    type Out = Box<dyn Transport>;

    fn connect(&self, details: &ConnectionDetails, _: Option<()>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(proxy) = details.config.proxy() else { return Ok(None) };
        let target = details.uri;
        // Core's judgement of loopback, the one plain HTTP is allowed by.
        if url::Url::parse(&target.to_string()).is_ok_and(|u| mcp_oauth_core::http::is_loopback_url(&u)) {
            let addrs = details.resolver.resolve(target, details.config, details.timeout)?;
            let direct = retarget(details, target, addrs);
            return Ok(match Connector::<()>::connect(&TcpConnector::default(), &direct, None)? {
                Some(Either::B(tcp)) => Some(Box::new(tcp)),
                _ => None,
            });
        }
        if self.0.policy == NetworkPolicy::Open {
            return Ok(None);
        }
        let connect = matches!(proxy.protocol(), ProxyProtocol::Http | ProxyProtocol::Https);
        if !connect || proxy.is_no_proxy(target) || self.0.exempt(target) {
            // SOCKS (not compiled into ureq here) falls back to a direct connection, which the
            // resolver checked; `NO_PROXY` hosts are direct and checked too.
            return Ok(None);
        }
        let addrs = details.resolver.resolve(target, details.config, details.timeout)?;
        let addr = *addrs.first().ok_or(ureq::Error::HostNotFound)?;
        let scheme = target.scheme_str().unwrap_or("http");
        let by_address: http::Uri = format!("{scheme}://{addr}/").parse().map_err(|_| ureq::Error::BadUri(target.to_string()))?;
        let checked = retarget(details, &by_address, addrs);
        match Connector::<()>::connect(&ConnectProxyConnector::default(), &checked, None)? {
            Some(Either::B(tunnel)) => Ok(Some(tunnel)),
            // `NO_PROXY` names the address itself: connect to it directly (it was checked).
            _ => Ok(match Connector::<()>::connect(&TcpConnector::default(), &checked, None)? {
                Some(Either::B(tcp)) => Some(Box::new(tcp)),
                _ => None,
            }),
        }
    }
}

/// A deadline an event stream's owner sets once the response head is in (ureq fixes its own
/// timeouts when the request starts, before anyone knows whether a body is an event stream or
/// an error page).
#[derive(Debug, Default)]
struct Deadline(Mutex<Option<Instant>>);

impl Deadline {
    fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// `timeout`, shortened to the deadline if one is set and nearer.
    fn cap(&self, timeout: NextTimeout) -> Result<NextTimeout, ureq::Error> {
        let Some(at) = *self.0.lock().unwrap_or_else(|e| e.into_inner()) else { return Ok(timeout) };
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ureq::Error::Timeout(ureq::Timeout::RecvBody));
        }
        let left = left.into();
        Ok(if left < timeout.after { NextTimeout { after: left, reason: ureq::Timeout::RecvBody, ..timeout } } else { timeout })
    }
}

/// Wraps each connection so that every wait on it also ends at the [`Deadline`].
#[derive(Debug)]
struct Bounded(Arc<Deadline>);

impl<In: Transport> Connector<In> for Bounded {
    type Out = BoundedTransport<In>;

    fn connect(&self, _: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| BoundedTransport { inner, deadline: self.0.clone() }))
    }
}

#[derive(Debug)]
struct BoundedTransport<T> {
    inner: T,
    deadline: Arc<Deadline>,
}

impl<T: Transport> Transport for BoundedTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, self.deadline.cap(timeout)?)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(self.deadline.cap(timeout)?)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

impl std::fmt::Debug for Ureq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ureq").field("timeout", &self.timeout).field("network", &self.guard.policy).finish()
    }
}

impl Default for Ureq {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl Ureq {
    /// A client whose calls time out after `timeout` in any phase: connecting (at most 10 s),
    /// sending the request, waiting for the response head, and reading the body. A server that
    /// stalls or drips a body forever is cut off; a slow but steady one gets `timeout` per phase.
    ///
    /// (Per-phase rather than one overall deadline: ureq's overall deadline cost about 95 µs per
    /// request on the async adapter's pool threads, measured, and nothing per phase.)
    pub fn new(timeout: Duration) -> Self {
        Self::build(timeout, Guard::OPEN, STREAM_IDLE_TIMEOUT)
    }

    /// This client with `policy` enforced on every host except `exempt_host` (the configured
    /// MCP server's), for the OAuth requests of a flow whose URLs come from metadata.
    /// [`NetworkPolicy::Open`] leaves it as it is.
    ///
    /// The policy holds through a proxy from the environment too: the target is resolved and
    /// checked before anything is sent, and the proxy is asked to connect to that checked
    /// address (`CONNECT 203.0.113.5:443`, not the name, which the proxy would resolve again,
    /// perhaps to an internal address). The proxy's own address is exempt, like the MCP
    /// server's host: it comes from the operator. So a proxy that only accepts names in
    /// `CONNECT`, or a network where only the proxy can resolve public names, needs
    /// `NO_PROXY` for the hosts concerned, or `open`.
    pub fn with_policy(self, policy: NetworkPolicy, exempt_host: &str) -> Self {
        if policy == NetworkPolicy::Open {
            return self;
        }
        let guard = Guard { policy, exempt_host: exempt_host.trim_start_matches('[').trim_end_matches(']').into() };
        Self::build(self.timeout, guard, self.stream_idle)
    }

    fn config(timeout: Duration) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
        let t = Some(timeout);
        ureq::Agent::config_builder()
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .timeout_send_request(t)
            .timeout_send_body(t)
            .timeout_recv_response(t)
            .user_agent(concat!("mcp-oauth/", env!("CARGO_PKG_VERSION")))
    }

    fn build(timeout: Duration, guard: Guard, stream_idle: Duration) -> Self {
        let agent = guard.agent(Self::config(timeout).timeout_recv_body(Some(timeout)).build(), None);
        Ureq { agent, timeout, guard, stream_idle }
    }

    /// The same client with another idle deadline for event streams (tests use a short one).
    #[cfg(test)]
    pub(crate) fn stream_idle(mut self, idle: Duration) -> Self {
        self.stream_idle = idle;
        self
    }

    /// Opens a long-lived response (an event stream), on a connection of its own: the head
    /// within the timeout, then a [`StreamBody`] to read as events arrive. Each read of it
    /// fails once the stream has been silent for [`STREAM_IDLE_TIMEOUT`] (a dead peer cannot
    /// hold a reader forever), and dropping its [`StreamCloser`] shuts the connection down,
    /// which ends a read blocked on another thread at once.
    ///
    /// Non-2xx responses (challenges) are returned whole, their body capped at 64 KiB and read
    /// within the timeout (a body that drips is cut off, not waited for).
    pub fn open_stream(&self, mut req: http::Request<Vec<u8>>) -> Result<Stream, TransportFailure> {
        let _scrubbed = scrub::scrub(&mut req, false)?;
        let deadline = Arc::new(Deadline::default());
        let config = Self::config(self.timeout).timeout_per_read(Some(self.stream_idle)).build();
        let agent = self.guard.agent(config, Some(deadline.clone()));
        let resp = agent.run(req).map_err(failure)?;
        let (parts, mut body) = resp.into_parts();
        if !parts.status.is_success() {
            deadline.set(Instant::now() + self.timeout);
            let bytes = body.with_config().limit(64 * 1024).read_to_vec().map_err(failure)?;
            return Ok(Stream::Done(http::Response::from_parts(parts, bytes)));
        }
        Ok(Stream::Open(parts, StreamBody { reader: Box::new(body.into_reader()), closer: StreamCloser { agent: Some(agent) } }))
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

/// The body of an open event stream ([`Stream::Open`]): read it as bytes arrive. A read fails
/// once the stream has been silent for [`STREAM_IDLE_TIMEOUT`]. Dropping the body closes the
/// connection; to read on one thread and close from another, split it with
/// [`into_parts`](Self::into_parts).
pub struct StreamBody {
    reader: Box<dyn Read + Send>,
    closer: StreamCloser,
}

impl StreamBody {
    /// The reader, and the closer of its connection: dropping the closer shuts the connection
    /// down, so that a read blocked on another thread returns at once (with an error or the
    /// end of the body) and the peer sees the connection closed.
    pub fn into_parts(self) -> (Box<dyn Read + Send>, StreamCloser) {
        (self.reader, self.closer)
    }
}

impl Read for StreamBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl std::fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBody").finish_non_exhaustive()
    }
}

/// Shuts an event stream's connection down when dropped (see [`StreamBody::into_parts`]).
pub struct StreamCloser {
    /// The stream's own agent: shutting it down closes exactly this stream's socket.
    agent: Option<ureq::Agent>,
}

impl Drop for StreamCloser {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.shutdown();
        }
    }
}

impl std::fmt::Debug for StreamCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCloser").finish_non_exhaustive()
    }
}

/// How many chunks of an event stream wait, read but not yet taken, before its reader stops
/// reading (and the peer's writes stall): with [`STREAM_CHUNK`] bytes each, at most 128 KiB.
pub(crate) const STREAM_CHUNKS: usize = 16;
/// The most bytes one read of an event stream takes.
pub(crate) const STREAM_CHUNK: usize = 8 * 1024;

/// Reads `reader` on a thread of its own, in chunks of at most [`STREAM_CHUNK`] bytes, handing
/// each to `deliver` (which blocks while its bounded channel is full). The thread ends when the
/// body ends, a read fails (the idle deadline, or the connection shut by its closer) or
/// `deliver` returns false (the receiver is gone); it then drops the reader, closing the
/// connection.
pub(crate) fn pump(
    name: &str,
    mut reader: Box<dyn Read + Send>,
    mut deliver: impl FnMut(Vec<u8>) -> bool + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let mut buf = vec![0u8; STREAM_CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if !deliver(buf[..n].to_vec()) {
                        break;
                    }
                }
                Err(e) => {
                    log::debug!("event stream read ended: {e}");
                    break;
                }
            }
        }
    })?;
    Ok(())
}

/// What [`Ureq::open_stream`] got.
pub enum Stream {
    /// A 2xx head and the body to read as it arrives.
    Open(http::response::Parts, StreamBody),
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

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_tests::hostile::{Behaviour, HostilePeer};

    /// A stream that sends one byte and then nothing: the next read fails at the idle
    /// deadline instead of blocking for as long as the peer keeps the connection.
    #[test]
    fn a_silent_event_stream_fails_its_read_at_the_idle_deadline() {
        let peer = HostilePeer::start(|_, _| Behaviour::Drip {
            head: b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n".to_vec(),
            every: Duration::from_secs(30),
        })
        .unwrap();
        let http = Ureq::new(Duration::from_secs(5)).stream_idle(Duration::from_millis(300));
        let Stream::Open(_, mut body) = http.open_stream(http::Request::get(peer.origin()).body(Vec::new()).unwrap()).unwrap() else {
            panic!("not a stream")
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 16];
            let first = body.read(&mut b).map(|n| b[..n].to_vec());
            let t = Instant::now();
            let per_read = |e: std::io::Error| {
                let e = e.get_ref().and_then(|x| x.downcast_ref::<ureq::Error>()).map(ToString::to_string);
                e.unwrap_or_default()
            };
            let _ = tx.send((first, body.read(&mut b).map_err(per_read), t.elapsed()));
        });
        let (first, second, took) = rx.recv_timeout(Duration::from_secs(5)).expect("the read is still blocked after 5 s");
        assert_eq!(first.unwrap(), b"x");
        assert_eq!(second, Err(ureq::Error::Timeout(ureq::Timeout::PerRead).to_string()));
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "{took:?}");
    }
}
