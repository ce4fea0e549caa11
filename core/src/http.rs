//! HTTP as plain data: what core asks the adapter to send, and what comes back.
//!
//! Core builds [`http::Request`]s and reads [`http::Response`]s; the adapter moves the bytes.
//! Each request carries the largest response body core will accept, so the adapter can stop
//! reading early; core checks the limit again, so an adapter that forgets cannot make core accept
//! more.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// `POST` to the RFC 7009 revocation endpoint (logout).
    Revocation,
    /// `POST` to the RFC 8628 device authorization endpoint.
    DeviceAuthorization,
    /// `POST` to the token endpoint with the RFC 8628 device code (polling).
    DeviceToken,
}

impl Purpose {
    /// The largest response body core accepts for this purpose, in bytes.
    pub const fn max_response_bytes(self) -> usize {
        match self {
            Purpose::ResourceMetadata | Purpose::ServerMetadata => 256 * 1024,
            Purpose::Registration => 64 * 1024,
            Purpose::CodeExchange
            | Purpose::Refresh
            | Purpose::ClientCredentials
            | Purpose::TokenExchange
            | Purpose::JwtBearer
            | Purpose::Revocation
            | Purpose::DeviceAuthorization
            | Purpose::DeviceToken => 64 * 1024,
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
            Purpose::Revocation => "token revocation",
            Purpose::DeviceAuthorization => "device authorization",
            Purpose::DeviceToken => "device code token request",
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

/// True for the exact name `localhost` and the loopback IP literals `127.0.0.0/8` and `::1`.
///
/// Only names that never leave the machine count, because plain HTTP is allowed to them:
/// * `localhost` is matched ASCII case-insensitively (DNS names are; the URL parser lowercases
///   them anyway), and resolved from the hosts file by every common resolver;
/// * subdomains (`app.localhost`) are not: RFC 6761 lets resolvers answer them with loopback,
///   but many forward them to the network's DNS, which can answer anything;
/// * nor is the absolute name `localhost.`: a hosts-file lookup compares names as written, so
///   the trailing dot can send it to DNS too;
/// * IPv4-mapped loopback (`::ffff:127.0.0.1`) is not a loopback literal either.
pub fn is_loopback_host(host: Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
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

/// Why `ip` may not be contacted under `policy`, or `None` if it may.
///
/// The rule follows the "Globally Reachable" column of IANA's IPv4 and IPv6 Special-Purpose
/// Address Registries (RFC 6890 and its updates): what is not globally reachable could lead
/// inside a network, so [`Public`](crate::config::NetworkPolicy::Public) and
/// [`PublicOrLoopback`](crate::config::NetworkPolicy::PublicOrLoopback) block it, except that
/// `PublicOrLoopback` lets loopback through. [`Open`](crate::config::NetworkPolicy::Open)
/// blocks nothing.
///
/// IPv4: `0.0.0.0/8` (unspecified), private (RFC 1918), `127/8` (loopback), link-local
/// (`169.254/16`, with the cloud metadata endpoints), shared (`100.64/10`), `192.0.0/24`, the
/// deprecated 6to4 relay anycast `192.88.99/24` and `240/4` with the broadcast address
/// (reserved), documentation (`192.0.2/24`, `198.51.100/24`, `203.0.113/24`), benchmarking
/// (`198.18/15`) and multicast.
///
/// IPv6: only global unicast (`2000::/3`) can pass, less its special blocks: documentation
/// (`2001:db8::/32`, `3fff::/20`) and the IETF protocol assignments `2001::/23` (benchmarking,
/// ORCHID and the like: identifiers and anycast services, never an authorization server), which
/// are blocked as reserved. Outside `2000::/3`: `::1` is loopback, `::` unspecified, `fc00::/7`
/// private, `fe80::/10` link-local, `fec0::/10` (deprecated) site-local, `ff00::/8` multicast,
/// local-use NAT64 `64:ff9b:1::/48` (RFC 8215: it leads into the local network, and where its
/// IPv4 address sits depends on a prefix length only that network knows), discard-only
/// `100::/64`, and everything else (unassigned, SRv6 SIDs `5f00::/16`) reserved.
///
/// IPv4 inside IPv6 is judged as that IPv4 address, wherever the packets would go to it:
/// IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, IPv4-compatible `::/96` (deprecated;
/// `::1` and `::` excepted), 6to4 `2002::/16` (bits 16–47), and Teredo `2001::/32`, whose
/// server (bits 32–63) and client (the last 32 bits, inverted) both receive traffic: it is
/// blocked if either is (under `PublicOrLoopback`, loopback at one end excuses nothing at the
/// other). (ISATAP interface identifiers are not
/// judged: the prefix in front of them decides where packets go.)
///
/// ```
/// use mcp_oauth_core::config::NetworkPolicy;
/// use mcp_oauth_core::http::address_blocked;
///
/// assert_eq!(address_blocked("169.254.169.254".parse().unwrap(), NetworkPolicy::Public), Some("link-local"));
/// assert_eq!(address_blocked("2002:a9fe:a9fe::1".parse().unwrap(), NetworkPolicy::Public), Some("link-local"));
/// assert_eq!(address_blocked("127.0.0.1".parse().unwrap(), NetworkPolicy::PublicOrLoopback), None);
/// assert_eq!(address_blocked("93.184.215.14".parse().unwrap(), NetworkPolicy::Public), None);
/// ```
pub fn address_blocked(ip: IpAddr, policy: crate::config::NetworkPolicy) -> Option<&'static str> {
    use crate::config::NetworkPolicy;
    let reason = match ip {
        _ if policy == NetworkPolicy::Open => return None,
        IpAddr::V4(v4) => ipv4_class(v4),
        IpAddr::V6(v6) => ipv6_class(v6),
    }?;
    (reason != "loopback" || policy == NetworkPolicy::Public).then_some(reason)
}

/// The special range `v4` is in, if it is not globally reachable.
fn ipv4_class(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    Some(if v4.is_loopback() {
        "loopback"
    } else if o[0] == 0 {
        "unspecified"
    } else if v4.is_private() {
        "private"
    } else if v4.is_link_local() {
        "link-local"
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        "shared"
    } else if v4.is_documentation() {
        "documentation"
    } else if o[0] == 198 && o[1] & 0xfe == 18 {
        "benchmarking"
    } else if (o[0] == 192 && o[1] == 0 && o[2] == 0) || (o[0] == 192 && o[1] == 88 && o[2] == 99) || o[0] >= 240 {
        "reserved"
    } else if v4.is_multicast() {
        "multicast"
    } else {
        return None;
    })
}

/// The special range `v6` is in, if it is not globally reachable; IPv4 inside it is judged as
/// IPv4 (see [`address_blocked`]).
fn ipv6_class(v6: Ipv6Addr) -> Option<&'static str> {
    let seg = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if v6.is_loopback() {
        return Some("loopback");
    }
    if v6.is_unspecified() {
        return Some("unspecified");
    }
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return ipv4_class(mapped);
    }
    match seg {
        // IPv4-compatible (deprecated), and NAT64's well-known prefix.
        [0, 0, 0, 0, 0, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return ipv4_class(v4(hi, lo)),
        [0x64, 0xff9b, 1, ..] => return Some("local-use NAT64"),
        // 6to4: the IPv4 address of the site's 6to4 router.
        [0x2002, hi, lo, ..] => return ipv4_class(v4(hi, lo)),
        // Teredo: the server, and the client behind its obfuscated (inverted) address.
        [0x2001, 0, s_hi, s_lo, _, _, c_hi, c_lo] => {
            let (client, server) = (ipv4_class(v4(!c_hi, !c_lo)), ipv4_class(v4(s_hi, s_lo)));
            // Loopback is the one reason a policy may forgive: any other reason wins.
            return [client, server].into_iter().flatten().find(|r| *r != "loopback").or(client).or(server);
        }
        _ => {}
    }
    let s0 = seg[0];
    Some(if s0 & 0xe000 == 0x2000 {
        // Global unicast, less its special blocks.
        if (s0 == 0x2001 && seg[1] == 0x0db8) || (s0 == 0x3fff && seg[1] & 0xf000 == 0) {
            "documentation"
        } else if s0 == 0x2001 && seg[1] < 0x0200 {
            "reserved"
        } else {
            return None;
        }
    } else if s0 & 0xfe00 == 0xfc00 {
        "private"
    } else if s0 & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s0 & 0xffc0 == 0xfec0 {
        "site-local"
    } else if v6.is_multicast() {
        "multicast"
    } else if seg[..4] == [0x100, 0, 0, 0] {
        "discard-only"
    } else {
        "reserved"
    })
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
            // IPv4 special ranges beyond RFC 1918 (IANA: not globally reachable).
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.255", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.88.99.1", "reserved"),
            // IPv4 inside IPv6, judged as the IPv4 address: IPv4-compatible (::/96, deprecated),
            // 6to4 (2002::/16) and Teredo (2001::/32: server, and client XOR ffff:ffff).
            ("::a9fe:a9fe", "link-local"),
            ("::10.1.2.3", "private"),
            ("::0.0.0.2", "unspecified"),
            ("2002:a9fe:a9fe::1", "link-local"),
            ("2002:c0a8:101:5::1", "private"),
            ("2001:0:4136:e378:8000:63bf:5601:5601", "link-local"),
            ("2001:0:a9fe:a9fe:0:0:f7f7:f7f7", "link-local"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "documentation"),
            ("2001:0:a00:1:0:0:80ff:fffe", "private"),
            ("2001:0:7f00:1:0:0:f5ff:fffe", "private"),
            // IPv6 ranges that are not globally reachable.
            ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
            ("64:ff9b:1:ffff::1", "local-use NAT64"),
            ("fec0::1", "site-local"),
            ("feff:ffff::1", "site-local"),
            ("100::1", "discard-only"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("3fff:fff:ffff::1", "documentation"),
            ("2001:2::1", "reserved"),
            ("2001:10::1", "reserved"),
            ("2001:20::1", "reserved"),
            ("2001:1ff::1", "reserved"),
            ("5f00::1", "reserved"),
            ("4000::1", "reserved"),
            ("::ffff:0:a9fe:a9fe", "reserved"),
            ("64:ff9b:0:0:1::1", "reserved"),
            ("e000::1", "reserved"),
        ] {
            assert_eq!(blocked(addr, PublicOrLoopback), Some(reason), "{addr}");
            assert_eq!(blocked(addr, Public), Some(reason), "{addr}");
            assert_eq!(blocked(addr, Open), None, "{addr}");
        }
        for addr in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "::ffff:127.0.0.1",
            "::7f00:1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert_eq!(blocked(addr, PublicOrLoopback), None, "{addr}");
            assert_eq!(blocked(addr, Public), Some("loopback"), "{addr}");
        }
        for addr in [
            "93.184.215.14",
            "172.32.0.1",
            "100.128.0.1",
            "8.8.8.8",
            "2606:4700::1111",
            "172.15.255.255",
            "2a00:1450:4001:80b::200e",
            "2002:5db8:d70e::1",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
            "2001:0:4136:e378:0:0:f7f7:f7f7",
            "2001:200::1",
            "2001:db7:ffff::1",
            "2001:db9::1",
            "3fff:1000::1",
            "2c0f:f248::1",
            "198.17.255.255",
            "198.20.0.0",
            "192.0.3.0",
        ] {
            assert_eq!(blocked(addr, Public), None, "{addr}");
            assert_eq!(blocked(addr, PublicOrLoopback), None, "{addr}");
        }
    }

    #[test]
    fn loopback_names() {
        use std::net::{Ipv4Addr, Ipv6Addr};
        assert!(is_loopback_host(Host::Domain("localhost")));
        assert!(is_loopback_host(Host::Domain("LocalHost")), "DNS names are case-insensitive");
        for name in ["app.localhost", "localhost.", "app.localhost.", "localhost.localdomain", "localhost.example.com", "localhos", ""] {
            assert!(!is_loopback_host(Host::Domain(name)), "{name:?} is a name a resolver may send to DNS");
        }
        assert!(is_loopback_host(Host::Ipv4(Ipv4Addr::new(127, 0, 0, 1))));
        assert!(is_loopback_host(Host::Ipv4(Ipv4Addr::new(127, 255, 0, 9))));
        assert!(is_loopback_host(Host::Ipv6(Ipv6Addr::LOCALHOST)));
        assert!(!is_loopback_host(Host::Ipv6("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!is_loopback_host(Host::Ipv4(Ipv4Addr::new(10, 0, 0, 1))));
        assert!(is_loopback_url(&u("http://LOCALHOST:8080/cb")), "the URL parser lowercases the host");
        for url in ["http://app.localhost:8080/cb", "http://localhost.:8080/cb", "http://a.b.localhost/cb"] {
            assert!(!is_loopback_url(&u(url)), "{url}");
            assert!(!is_secure_endpoint(&u(url)), "{url}");
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
