//! HTTP through reqwest on tokio (feature `tokio`): the tokio adapter's default client, and
//! the client rmcp's transport runs on in the `rmcp` integration.
//!
//! The same rules as [`Ureq`](super::Ureq): rustls with ring and the webpki roots (the stack
//! ureq already brings, handed to reqwest preconfigured), redirects never followed, every
//! status returned as a response, a deadline on every phase (connect, the response head, the
//! body; for event streams, each silence), bodies read only up to the cap, and the
//! [`NetworkPolicy`] checked on the addresses actually connected to (reqwest's resolver hook,
//! so a name that re-resolves elsewhere gets no second lookup).
//!
//! The proxy comes from the environment as for every ureq client here (the first of
//! `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`, for every target, with `NO_PROXY`), and loopback
//! never goes through it. Under a policy other than
//! `open`, a proxied target is resolved and checked here before anything is sent (a forbidden
//! one fails before the proxy is contacted); reqwest then asks the proxy for the name, and
//! the proxy resolves it again. [`Ureq`](super::Ureq) goes one step further and asks the
//! proxy for the checked address; reqwest's connector offers no hook for that. Where a DNS
//! answer that changes between the check and the proxy's own lookup matters, use
//! [`UreqClient`](crate::tokio::UreqClient) behind proxies.

use super::{BlockedAddress, BoxFuture, ByteStream, HttpClient, HttpStream};
use crate::mcp::STREAM_IDLE_TIMEOUT;
use ::tokio::time::Sleep;
use mcp_oauth_core::config::NetworkPolicy;
use mcp_oauth_core::http::{address_blocked, is_loopback_url, HttpResponse, TransportFailure, TransportFailureKind};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The most of a non-2xx event-stream answer that is read (it is a diagnostic).
const MAX_STREAM_ERROR_BODY: usize = 64 * 1024;

/// The reqwest client: async, on the tokio runtime the calls run in.
///
/// Build it with [`new`](Self::new) (no policy: every address allowed) and
/// [`with_policy`](Self::with_policy); [`OAuthClient::new`](crate::tokio::OAuthClient::new)
/// does both for the configuration.
#[derive(Clone)]
pub struct ReqwestClient {
    client: Result<reqwest::Client, String>,
    timeout: Duration,
    stream_idle: Duration,
    guard: Guard,
    proxy: Option<Arc<EnvProxy>>,
}

impl std::fmt::Debug for ReqwestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestClient")
            .field("timeout", &self.timeout)
            .field("policy", &self.guard.policy)
            .field("proxy", &self.proxy.as_ref().map(|p| p.described()))
            .finish()
    }
}

impl Default for ReqwestClient {
    fn default() -> Self {
        ReqwestClient::new(Duration::from_secs(30))
    }
}

/// The policy and the hosts it does not apply to (both from the operator, not from metadata).
#[derive(Clone, Debug)]
struct Guard {
    policy: NetworkPolicy,
    /// The configured MCP server's host.
    exempt: String,
    /// The environment's proxies, by host and port.
    proxies: Vec<(String, u16)>,
}

impl Guard {
    /// Whether a connection to `host` (on `port`, when known) is exempt: the MCP server's host
    /// on any port, a proxy's only on its own port. reqwest's resolver hook is not told the
    /// port; it exempts a proxy's name on any port, and [`ReqwestClient::precheck`] checks
    /// other ports of that name before any request.
    fn exempt(&self, host: &str, port: Option<u16>) -> bool {
        self.policy == NetworkPolicy::Open
            || self.exempt.eq_ignore_ascii_case(host)
            || self.proxies.iter().any(|(h, p)| h.eq_ignore_ascii_case(host) && port.is_none_or(|port| port == *p))
    }

    fn is_proxy_name(&self, host: &str) -> bool {
        self.proxies.iter().any(|(h, _)| h.eq_ignore_ascii_case(host))
    }

    /// Refuses `addrs` of `host` if any of them is forbidden.
    fn check(&self, host: &str, port: Option<u16>, addrs: &[SocketAddr]) -> Result<(), BlockedAddress> {
        if self.exempt(host, port) {
            return Ok(());
        }
        for a in addrs {
            if let Some(why) = address_blocked(a.ip(), self.policy) {
                return Err(BlockedAddress::new(host, a.ip(), why));
            }
        }
        Ok(())
    }
}

/// reqwest's resolver hook: the system resolver, then the [`Guard`]; reqwest connects to
/// exactly the addresses returned.
struct PolicyResolver(Guard);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = ::tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            guard.check(&host, None, &addrs)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The proxy the environment names, read the way ureq reads it: the first of `ALL_PROXY`,
/// `HTTPS_PROXY` and `HTTP_PROXY` (each also in lower case) that holds an `http` or `https`
/// proxy, for every target, with `NO_PROXY`'s exceptions.
#[derive(Debug)]
struct EnvProxy {
    proxy: url::Url,
    no_proxy: Vec<String>,
}

impl EnvProxy {
    fn from_env() -> Option<Self> {
        let parse = |v: String| {
            let v = if v.contains("://") { v } else { format!("http://{v}") };
            url::Url::parse(&v).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        };
        let proxy = ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()).and_then(parse))?;
        let no_proxy = ["NO_PROXY", "no_proxy"]
            .iter()
            .find_map(|n| std::env::var(n).ok())
            .map(|v| v.split(',').map(|s| s.trim().trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase()).collect())
            .unwrap_or_default();
        Some(EnvProxy { proxy, no_proxy })
    }

    /// The proxy for `target`, if it is to go through one: never for loopback, nor for hosts
    /// `NO_PROXY` names (a domain covers its subdomains; `*` covers all).
    fn for_target(&self, target: &url::Url) -> Option<url::Url> {
        // Loopback (as core judges it, and an IPv4-mapped loopback address, which the policy
        // also treats as loopback) never goes through the proxy.
        let mapped_loopback = matches!(target.host(), Some(url::Host::Ipv6(v6)) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
        if is_loopback_url(target) || mapped_loopback {
            return None;
        }
        let host = target.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let excluded = self
            .no_proxy
            .iter()
            .any(|n| !n.is_empty() && (n == "*" || host == *n || host.strip_suffix(n.as_str()).is_some_and(|rest| rest.ends_with('.'))));
        (!excluded).then(|| self.proxy.clone())
    }

    fn hosts(&self) -> Vec<(String, u16)> {
        let host = self.proxy.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_owned();
        self.proxy.port_or_known_default().map(|port| (host, port)).into_iter().collect()
    }

    /// Where the proxy is, without any credentials in its URL.
    fn described(&self) -> String {
        format!("{}://{}", self.proxy.scheme(), self.proxy.host_str().unwrap_or(""))
    }
}

/// rustls with ring and the webpki roots, offering HTTP/1.1 only.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

impl ReqwestClient {
    /// A client whose connects, response heads and bodies each time out after `timeout`
    /// (connects after 10 s at most), with every address allowed.
    pub fn new(timeout: Duration) -> Self {
        Self::build(timeout, Guard { policy: NetworkPolicy::Open, exempt: String::new(), proxies: Vec::new() }, STREAM_IDLE_TIMEOUT)
    }

    /// With `policy` enforced on every host but `exempt_host` (the configured MCP server's)
    /// and the environment's proxies.
    pub fn with_policy(self, policy: NetworkPolicy, exempt_host: &str) -> Self {
        let host = exempt_host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Self::build(self.timeout, Guard { policy, exempt: host, proxies: Vec::new() }, self.stream_idle)
    }

    /// How long a connection may stay silent before it is given up (default
    /// [`STREAM_IDLE_TIMEOUT`]): an open event stream here, and every read of the client
    /// rmcp's transport uses (a response head, body bytes, an SSE event or keep-alive).
    pub fn stream_idle(self, idle: Duration) -> Self {
        let guard = Guard { proxies: Vec::new(), ..self.guard };
        Self::build(self.timeout, guard, idle)
    }

    fn build(timeout: Duration, mut guard: Guard, stream_idle: Duration) -> Self {
        let proxy = EnvProxy::from_env().map(Arc::new);
        if let Some(p) = &proxy {
            guard.proxies = p.hosts();
        }
        let mut built = ReqwestClient { client: Err(String::new()), timeout, stream_idle, guard, proxy };
        // The calls made here bound every phase with one deadline of their own (see `send`),
        // so this client has no timers: each one costs a wake-up of the runtime's timer.
        built.client = built.build_reqwest(None);
        built
    }

    /// A reqwest client with TLS, no redirects, the proxy and the resolver hook; with `reads`,
    /// connects time out (as `new` says) and so does every read that waits longer than `reads`.
    fn build_reqwest(&self, reads: Option<Duration>) -> Result<reqwest::Client, String> {
        let tls = tls_config()?;
        let mut b = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-oauth/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        if let Some(reads) = reads {
            b = b.connect_timeout(self.timeout.min(Duration::from_secs(10))).read_timeout(reads);
        }
        if let Some(p) = self.proxy.clone() {
            b = b.proxy(reqwest::Proxy::custom(move |target| p.for_target(target)));
        }
        if self.guard.policy != NetworkPolicy::Open {
            b = b.dns_resolver(PolicyResolver(self.guard.clone()));
        }
        b.build().map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))
    }

    /// A reqwest client for rmcp's transport (TLS, no redirects, the resolver hook, the
    /// proxy), whose connects and reads time out, since rmcp's requests do not go through
    /// `send` and its deadlines: a read after [`stream_idle`](Self::stream_idle). Only the
    /// configured MCP server (exempt from the policy) is reached through it, so the checks of
    /// [`precheck`](Self::precheck) are not needed there.
    #[cfg(feature = "rmcp")]
    pub(crate) fn reqwest(&self) -> Result<reqwest::Client, String> {
        self.build_reqwest(Some(self.stream_idle))
    }

    /// The policy checks reqwest's resolver cannot make: an IP literal is never resolved, and
    /// a proxied target is resolved by the proxy.
    async fn precheck(&self, uri: &http::Uri) -> Result<(), TransportFailure> {
        if self.guard.policy == NetworkPolicy::Open {
            return Ok(());
        }
        // The host as reqwest will use it: `url` normalises the legacy IPv4 spellings
        // (`0x7f000001`, `127.1`, `0177.0.0.1`) to the address they name, which is never
        // resolved (so never seen by the resolver hook).
        let Ok(url) = url::Url::parse(&uri.to_string()) else {
            return Err(TransportFailure { kind: TransportFailureKind::Other, message: "not a valid URL".into() });
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).to_string(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).to_string(),
            Some(url::Host::Domain(d)) => d.to_owned(),
            None => String::new(),
        };
        let host = host.as_str();
        if self.guard.exempt(host, Some(port)) {
            return Ok(());
        }
        let blocked = |e: BlockedAddress| TransportFailure { kind: TransportFailureKind::Blocked, message: e.0 };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.guard.check(host, Some(port), &[SocketAddr::new(ip, port)]).map_err(blocked);
        }
        let proxied = self.proxy.as_ref().is_some_and(|p| p.for_target(&url).is_some());
        if proxied || self.guard.is_proxy_name(host) {
            let addrs: Vec<SocketAddr> = ::tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| TransportFailure { kind: TransportFailureKind::Connect, message: format!("cannot resolve {host}: {e}") })?
                .collect();
            self.guard.check(host, Some(port), &addrs).map_err(blocked)?;
        }
        Ok(())
    }

    /// Sends `req` and waits for the response head until `deadline`.
    async fn head(&self, req: http::Request<Vec<u8>>, deadline: Pin<&mut Sleep>) -> Result<reqwest::Response, TransportFailure> {
        let client = self.client.as_ref().map_err(|e| TransportFailure { kind: TransportFailureKind::Other, message: e.clone() })?;
        self.precheck(req.uri()).await?;
        let req = reqwest::Request::try_from(req).map_err(failure)?;
        within(deadline, client.execute(req)).await.ok_or_else(|| timed_out("no response head"))?.map_err(failure)
    }

    /// The deadline of a request's connect and response head: up to 10 s to connect, then
    /// `timeout` for the head. Reset for the body (see `send`): one timer per request.
    fn head_deadline(&self) -> Sleep {
        ::tokio::time::sleep(self.timeout.min(Duration::from_secs(10)) + self.timeout)
    }
}

/// `f`'s output, or `None` once `deadline` passes.
async fn within<T>(deadline: Pin<&mut Sleep>, f: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        deadline.await;
        None
    })
    .await
}

fn timed_out(what: &str) -> TransportFailure {
    TransportFailure { kind: TransportFailureKind::Timeout, message: format!("timed out: {what}") }
}

/// Reads the whole body of `resp`, failing once it passes `max` bytes.
async fn read_capped(resp: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, TransportFailure> {
    let too_large = || TransportFailure { kind: TransportFailureKind::BodyTooLarge, message: format!("body larger than {max} bytes") };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failure)? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The head of `resp` as `http` parts.
fn parts(resp: &reqwest::Response) -> http::response::Parts {
    let mut out = http::Response::new(());
    *out.status_mut() = resp.status();
    *out.version_mut() = resp.version();
    *out.headers_mut() = resp.headers().clone();
    out.into_parts().0
}

/// An error and its causes, `: `-separated, without any URL (queries can hold secrets).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

fn failure(e: reqwest::Error) -> TransportFailure {
    let e = e.without_url();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let (mut blocked, mut tls, mut io_timeout) = (None, false, false);
    while let Some(s) = cur {
        if let Some(b) = s.downcast_ref::<BlockedAddress>() {
            blocked = Some(b.0.clone());
        }
        tls |= s.is::<rustls::Error>();
        io_timeout |= s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        cur = s.source();
    }
    if let Some(message) = blocked {
        return TransportFailure { kind: TransportFailureKind::Blocked, message };
    }
    let kind = if e.is_timeout() || io_timeout {
        TransportFailureKind::Timeout
    } else if tls {
        TransportFailureKind::Tls
    } else if e.is_connect() {
        TransportFailureKind::Connect
    } else {
        TransportFailureKind::Other
    };
    TransportFailure { kind, message: chain(&e) }
}

impl HttpClient for ReqwestClient {
    fn send(&self, req: http::Request<Vec<u8>>, max_body: usize) -> BoxFuture<'_, Result<HttpResponse, TransportFailure>> {
        Box::pin(async move {
            let mut deadline = std::pin::pin!(self.head_deadline());
            let mut resp = self.head(req, deadline.as_mut()).await?;
            let head = parts(&resp);
            deadline.as_mut().reset(::tokio::time::Instant::now() + self.timeout);
            let body = within(deadline, read_capped(&mut resp, max_body)).await;
            let body = body.ok_or_else(|| timed_out("the body did not arrive in time"))??;
            Ok(http::Response::from_parts(head, body))
        })
    }

    fn open_stream(&self, req: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<HttpStream, TransportFailure>> {
        Box::pin(async move {
            let mut deadline = std::pin::pin!(self.head_deadline());
            let mut resp = self.head(req, deadline.as_mut()).await?;
            let head = parts(&resp);
            if !resp.status().is_success() {
                deadline.as_mut().reset(::tokio::time::Instant::now() + self.timeout);
                let body = within(deadline, read_capped(&mut resp, MAX_STREAM_ERROR_BODY)).await;
                let body = body.ok_or_else(|| timed_out("the body did not arrive in time"))??;
                return Ok(HttpStream::Done(http::Response::from_parts(head, body)));
            }
            // Each chunk must come within the idle deadline; the stream ends at the first
            // silence, error or end. Dropping it drops the response, which closes the
            // connection.
            let idle = self.stream_idle;
            let chunks = futures_lite::stream::unfold(Some(resp), move |resp| async move {
                let mut resp = resp?;
                match ::tokio::time::timeout(idle, resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => Some((chunk.to_vec(), Some(resp))),
                    _ => None,
                }
            });
            let stream: ByteStream = Box::pin(chunks);
            Ok(HttpStream::Open(head, stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_no_proxy_hosts_bypass_the_proxy() {
        let p = EnvProxy {
            proxy: url::Url::parse("http://proxy.example:3128").unwrap(),
            no_proxy: ["internal.example", "10.1.2.3"].iter().map(|s| s.to_string()).collect(),
        };
        let go = |u: &str| p.for_target(&url::Url::parse(u).unwrap()).map(|u| u.to_string());
        assert_eq!(go("https://as.example.com/token").as_deref(), Some("http://proxy.example:3128/"));
        assert_eq!(go("http://as.example.com/token").as_deref(), Some("http://proxy.example:3128/"), "one proxy for every scheme");
        assert_eq!(go("https://127.0.0.1:8443/x"), None);
        assert_eq!(go("https://[::1]/x"), None);
        assert_eq!(go("https://localhost/x"), None);
        assert_eq!(go("https://internal.example/x"), None);
        assert_eq!(go("https://a.internal.example/x"), None);
        assert_eq!(go("https://notinternal.example/x").as_deref(), Some("http://proxy.example:3128/"));
        assert_eq!(go("https://10.1.2.3/x"), None);
        assert_eq!(p.hosts(), vec![("proxy.example".to_owned(), 3128)]);
    }

    /// Under `public`, loopback is forbidden too: a loopback listener stands in for a
    /// forbidden address, and never sees a connection.
    fn refused_without_a_connection(target: impl Fn(u16) -> String) {
        let rt = ::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = ReqwestClient::new(Duration::from_secs(5)).with_policy(NetworkPolicy::Public, "mcp.example.com");
        let req = http::Request::get(target(port)).body(Vec::new()).unwrap();
        let err = rt.block_on(client.send(req, 1024)).unwrap_err();
        assert_eq!(err.kind, TransportFailureKind::Blocked, "{err:?}");
        assert!(err.message.contains("127.0.0.1") && err.message.contains("forbids"), "{}", err.message);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(listener.accept().map(|_| ()).unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "a connection was made");
    }

    #[test]
    fn a_forbidden_ip_literal_is_refused_before_any_connection() {
        refused_without_a_connection(|port| format!("http://127.0.0.1:{port}/latest/meta-data/"));
    }

    #[test]
    fn a_name_resolving_to_a_forbidden_address_is_refused_before_any_connection() {
        refused_without_a_connection(|port| format!("http://localhost:{port}/latest/meta-data/"));
    }

    #[test]
    fn the_exempt_host_is_reached_under_any_policy() {
        let rt = ::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let s = mcp_oauth_tests::tcp::TcpTestServer::start(mcp_oauth_tests::Options::new).unwrap();
        let client = ReqwestClient::new(Duration::from_secs(5)).with_policy(NetworkPolicy::Public, "127.0.0.1");
        let url = format!("{}/.well-known/oauth-protected-resource/mcp", s.origin());
        let resp = rt.block_on(client.send(http::Request::get(url).body(Vec::new()).unwrap(), 1 << 20)).unwrap();
        assert_eq!(resp.status(), 200, "{:?}", String::from_utf8_lossy(resp.body()));
    }
}
