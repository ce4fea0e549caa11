//! HTTP as plain data: what core asks the adapter to send, and what comes back.
//!
//! Core builds [`http::Request`]s and reads [`http::Response`]s; the adapter moves the bytes.
//! Each request carries the largest response body core will accept, so the adapter can stop
//! reading early; core checks the limit again, so an adapter that forgets cannot make core accept
//! more.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use url::{Host, Url};

/// An HTTP request core wants sent. The body is already encoded.
pub type HttpRequest = http::Request<Vec<u8>>;
/// An HTTP response as the adapter received it (body read up to the limit).
pub type HttpResponse = http::Response<Vec<u8>>;

/// Identifies one [`Output::Send`](crate::Output::Send); the answer must carry the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why core sends a request. Useful for logging and for tests; adapters treat all alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Purpose {
    /// `GET` of RFC 9728 protected resource metadata.
    ResourceMetadata,
    /// `GET` of RFC 8414 / OpenID Connect authorization server metadata.
    ServerMetadata,
    /// `POST` to the RFC 7591 registration endpoint.
    Registration,
    /// `POST` to the token endpoint with an authorization code.
    CodeExchange,
    /// `POST` to the token endpoint with a refresh token.
    Refresh,
    /// `POST` to the token endpoint with the client credentials grant.
    ClientCredentials,
    /// `POST` to an identity provider's token endpoint: RFC 8693 token exchange for an ID-JAG.
    TokenExchange,
    /// `POST` to the token endpoint with the RFC 7523 JWT bearer grant (the ID-JAG).
    JwtBearer,
}

impl Purpose {
    /// The largest response body core accepts for this purpose, in bytes.
    pub const fn max_response_bytes(self) -> usize {
        match self {
            Purpose::ResourceMetadata | Purpose::ServerMetadata => 256 * 1024,
            Purpose::Registration => 64 * 1024,
            Purpose::CodeExchange | Purpose::Refresh | Purpose::ClientCredentials | Purpose::TokenExchange | Purpose::JwtBearer => {
                64 * 1024
            }
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::ResourceMetadata => "protected resource metadata",
            Purpose::ServerMetadata => "authorization server metadata",
            Purpose::Registration => "client registration",
            Purpose::CodeExchange => "authorization code exchange",
            Purpose::Refresh => "token refresh",
            Purpose::ClientCredentials => "client credentials grant",
            Purpose::TokenExchange => "identity provider token exchange",
            Purpose::JwtBearer => "jwt bearer grant",
        })
    }
}

/// A request for the adapter to send, exactly as built. The adapter MUST NOT follow redirects.
#[derive(Clone)]
pub struct OutgoingRequest {
    /// Echo this in [`Input::Response`](crate::Input::Response).
    pub id: RequestId,
    /// Why the request is made.
    pub purpose: Purpose,
    /// The request. Headers may contain credentials (`Authorization: Basic`); never log them.
    pub request: HttpRequest,
    /// Stop reading the response body after this many bytes plus one.
    pub max_response_bytes: usize,
}

impl fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies and headers of token requests carry secrets: print only what is safe.
        f.debug_struct("OutgoingRequest")
            .field("id", &self.id)
            .field("purpose", &self.purpose)
            .field("method", self.request.method())
            .field("uri", &redact_query(&self.request.uri().to_string()))
            .field("body_len", &self.request.body().len())
            .finish()
    }
}

/// Drops the query of a URL for display (it may carry codes or state).
pub(crate) fn redact_query(s: &str) -> String {
    match s.split_once('?') {
        Some((base, _)) => format!("{base}?[redacted]"),
        None => s.to_owned(),
    }
}

/// Why a request got no HTTP response. Plain data, so it can be generated, compared and
/// serialized; the adapter maps its own error type onto it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportFailure {
    /// The broad category.
    pub kind: TransportFailureKind,
    /// A human-readable message from the adapter. Must not contain secrets.
    pub message: String,
}

/// Categories of [`TransportFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TransportFailureKind {
    /// Name resolution or connection failed.
    Connect,
    /// TLS failed (certificate, handshake).
    Tls,
    /// The request or response timed out.
    Timeout,
    /// The response body was larger than the request's `max_response_bytes`.
    BodyTooLarge,
    /// The host resolved to an address the [`NetworkPolicy`](crate::config::NetworkPolicy)
    /// forbids; nothing was sent.
    Blocked,
    /// Anything else.
    Other,
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            TransportFailureKind::Connect => "connection failed",
            TransportFailureKind::Tls => "tls failed",
            TransportFailureKind::Timeout => "timed out",
            TransportFailureKind::BodyTooLarge => "body too large",
            TransportFailureKind::Blocked => "blocked by the network policy",
            TransportFailureKind::Other => "transport error",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

/// True for `localhost` (and its subdomains), `127.0.0.0/8` and `::1`.
pub fn is_loopback_host(host: Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
    }
}

/// True if the URL is `http(s)` on a loopback host.
pub fn is_loopback_url(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.host().is_some_and(is_loopback_host)
}

/// The transport rule for every endpoint core talks to: `https`, or `http` on loopback.
/// No credentials in the URL, and the URL must have a host.
pub fn is_secure_endpoint(url: &Url) -> bool {
    if !url.username().is_empty() || url.password().is_some() || url.host().is_none() {
        return false;
    }
    match url.scheme() {
        "https" => true,
        "http" => is_loopback_url(url),
        _ => false,
    }
}

/// Why `ip` may not be contacted under `policy`, or `None` if it may. Covers RFC 6890's special
/// ranges that lead inside a network: private (RFC 1918, fc00::/7), link-local (169.254/16 with
/// the cloud metadata endpoints, fe80::/10), shared (100.64/10), unspecified, multicast,
/// broadcast and reserved, and loopback under [`NetworkPolicy::Public`](crate::config::NetworkPolicy::Public). IPv4 addresses inside
/// IPv6 (mapped, NAT64) are judged as IPv4.
///
/// ```
/// use mcp_oauth_core::config::NetworkPolicy;
/// use mcp_oauth_core::http::address_blocked;
///
/// assert_eq!(address_blocked("169.254.169.254".parse().unwrap(), NetworkPolicy::Public), Some("link-local"));
/// assert_eq!(address_blocked("127.0.0.1".parse().unwrap(), NetworkPolicy::PublicOrLoopback), None);
/// assert_eq!(address_blocked("93.184.215.14".parse().unwrap(), NetworkPolicy::Public), None);
/// ```
pub fn address_blocked(ip: std::net::IpAddr, policy: crate::config::NetworkPolicy) -> Option<&'static str> {
    use crate::config::NetworkPolicy;
    use std::net::IpAddr;
    if policy == NetworkPolicy::Open {
        return None;
    }
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                v4
            } else if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                std::net::Ipv4Addr::from((u32::from(seg[6]) << 16) | u32::from(seg[7]))
            } else {
                return if v6.is_loopback() {
                    (policy == NetworkPolicy::Public).then_some("loopback")
                } else if v6.is_unspecified() {
                    Some("unspecified")
                } else if seg[0] & 0xfe00 == 0xfc00 {
                    Some("private")
                } else if seg[0] & 0xffc0 == 0xfe80 {
                    Some("link-local")
                } else if v6.is_multicast() {
                    Some("multicast")
                } else {
                    None
                };
            }
        }
    };
    let o = v4.octets();
    if v4.is_loopback() {
        (policy == NetworkPolicy::Public).then_some("loopback")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        Some("shared")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("reserved")
    } else if v4.is_multicast() {
        Some("multicast")
    } else if o[0] >= 240 {
        Some("reserved")
    } else {
        None
    }
}

/// Reads a header as a `str`, if present and visible ASCII.
pub(crate) fn header_str(resp: &HttpResponse, name: http::header::HeaderName) -> Option<&str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// True if the response's `Content-Type` is JSON (`application/json` or `application/*+json`),
/// or absent (many servers omit it; the body is still parsed strictly).
pub(crate) fn is_json_or_absent(resp: &HttpResponse) -> bool {
    match header_str(resp, http::header::CONTENT_TYPE) {
        None => true,
        Some(ct) => {
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        }
    }
}

/// What an error may quote of a response body. Discovery responses answer requests that carry
/// nothing secret, so a short escaped excerpt helps; a token or registration endpoint could
/// echo our request (code, verifier, secret) back, so only the size is reported.
pub(crate) fn body_summary(purpose: Purpose, body: &[u8]) -> String {
    match purpose {
        Purpose::ResourceMetadata | Purpose::ServerMetadata => excerpt(body),
        _ => format!("[{} bytes not shown]", body.len()),
    }
}

/// A serde_json error without the offending value (it can be a secret of the wrong type): the
/// category and the position only.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value or missing field",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// A short, printable excerpt of an untrusted body for error messages: at most 120 characters,
/// control characters escaped.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(240)]);
    let mut out: String = text.chars().take(120).flat_map(char::escape_default).collect();
    if body.len() > 120 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_policy() {
        use crate::config::NetworkPolicy::{Open, Public, PublicOrLoopback};
        let blocked = |a: &str, p| address_blocked(a.parse().unwrap(), p);
        for (addr, reason) in [
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared"),
            ("100.127.255.255", "shared"),
            ("0.0.0.0", "unspecified"),
            ("192.0.0.192", "reserved"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ] {
            assert_eq!(blocked(addr, PublicOrLoopback), Some(reason), "{addr}");
            assert_eq!(blocked(addr, Public), Some(reason), "{addr}");
            assert_eq!(blocked(addr, Open), None, "{addr}");
        }
        for addr in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(blocked(addr, PublicOrLoopback), None, "{addr}");
            assert_eq!(blocked(addr, Public), Some("loopback"), "{addr}");
        }
        for addr in ["93.184.215.14", "172.32.0.1", "100.128.0.1", "8.8.8.8", "2606:4700::1111", "172.15.255.255"] {
            assert_eq!(blocked(addr, Public), None, "{addr}");
        }
    }

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn secure_endpoint_rules() {
        assert!(is_secure_endpoint(&u("https://as.example.com/token")));
        assert!(is_secure_endpoint(&u("http://127.0.0.1:8080/token")));
        assert!(is_secure_endpoint(&u("http://127.9.9.9/token")));
        assert!(is_secure_endpoint(&u("http://localhost:3000/x")));
        assert!(is_secure_endpoint(&u("http://[::1]:3000/x")));
        assert!(!is_secure_endpoint(&u("http://as.example.com/token")));
        assert!(!is_secure_endpoint(&u("http://localhost.evil.com/token")));
        assert!(!is_secure_endpoint(&u("http://10.0.0.1/token")));
        assert!(!is_secure_endpoint(&u("ftp://as.example.com/token")));
        assert!(!is_secure_endpoint(&u("javascript:alert(1)")));
        assert!(!is_secure_endpoint(&u("https://user:pw@as.example.com/")));
        assert!(!is_secure_endpoint(&u("file:///etc/passwd")));
    }

    #[test]
    fn excerpt_is_bounded_and_escaped() {
        let body = vec![b'a'; 10_000];
        assert!(excerpt(&body).chars().count() <= 121);
        assert_eq!(excerpt(b"a\nb"), "a\\nb");
    }

    #[test]
    fn redacts_query() {
        assert_eq!(redact_query("https://x/cb?code=1"), "https://x/cb?[redacted]");
        assert_eq!(redact_query("https://x/cb"), "https://x/cb");
    }
}
