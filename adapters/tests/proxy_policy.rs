//! The network policy holds through a proxy from the environment (`ALL_PROXY`, `HTTPS_PROXY`,
//! `HTTP_PROXY`): a forbidden target is refused before anything is sent, so the proxy never
//! hears of it; an allowed target still goes through the proxy, which is told the address that
//! was checked (not a name it would resolve again); the proxy's own address is exempt, as the
//! MCP server's host is; and loopback targets never go through the proxy at all.
//!
//! Every byte goes to a recording proxy on 127.0.0.1. `169.254.169.254` and `10.0.0.7` appear
//! only as URLs handed to the client, and no request is made without that proxy set, so even a
//! regression cannot send a packet to a real private or metadata address.
//!
//! This file is its own test binary with one test, because it sets environment variables.

use mcp_oauth_client::core::http::TransportFailureKind;
use mcp_oauth_client::transport::Ureq;
use mcp_oauth_core::config::NetworkPolicy;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP CONNECT proxy on 127.0.0.1 that records every request line and answers every
/// tunnelled plain-HTTP request itself with `200 proxied`, without connecting anywhere.
struct RecordingProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start() -> RecordingProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let s = s.clone();
                std::thread::spawn(move || tunnel(c, &s));
            }
        });
        RecordingProxy { url, seen }
    }

    /// The request lines received so far (and forgets them).
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn tunnel(mut c: TcpStream, seen: &Mutex<Vec<String>>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let first = head(&mut c);
    seen.lock().unwrap().push(first.clone());
    if first.starts_with("CONNECT ") {
        let _ = c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let inner = head(&mut c);
        seen.lock().unwrap().push(format!("  tunnelled: {inner}"));
    }
    let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nproxied");
}

/// The first line of a request head (empty if the peer sent no head, e.g. a TLS hello).
fn head(c: &mut TcpStream) -> String {
    let mut h = Vec::new();
    let mut b = [0u8; 1];
    while !h.ends_with(b"\r\n\r\n") && h.len() < 8192 && c.read(&mut b).unwrap_or(0) == 1 {
        h.push(b[0]);
    }
    let text = String::from_utf8_lossy(&h).into_owned();
    if text.ends_with("\r\n\r\n") {
        text.lines().next().unwrap_or("").to_owned()
    } else {
        String::new()
    }
}

const PROXY_VARS: [&str; 8] = ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"];

fn get(url: &str) -> http::Request<Vec<u8>> {
    http::Request::get(url).body(Vec::new()).unwrap()
}

/// What the proxy was asked to reach: the target of a `CONNECT` line, or the authority of an
/// absolute-form request (`GET http://host/path`, how reqwest sends plain HTTP through a
/// proxy), with the port made explicit.
fn connect_target(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix("CONNECT ") {
        return rest.split(' ').next().map(str::to_owned);
    }
    let target = line.split(' ').nth(1)?;
    let url = url::Url::parse(target).ok()?;
    Some(format!("{}:{}", url.host_str()?, url.port_or_known_default()?))
}

/// What one kind of client (blocking, or async on its pool) does with a request.
type Send<'a> = &'a dyn Fn(NetworkPolicy, &str, &str) -> Result<(u16, String), (TransportFailureKind, String)>;

fn blocking_send(policy: NetworkPolicy, exempt: &str, url: &str) -> Result<(u16, String), (TransportFailureKind, String)> {
    let http = Ureq::new(Duration::from_secs(3)).with_policy(policy, exempt);
    http.send(get(url), 1024)
        .map(|r| (r.status().as_u16(), String::from_utf8_lossy(r.body()).into_owned()))
        .map_err(|e| (e.kind, e.to_string()))
}

#[cfg(feature = "async-std")]
fn async_send(policy: NetworkPolicy, exempt: &str, url: &str) -> Result<(u16, String), (TransportFailureKind, String)> {
    use mcp_oauth_client::async_std::{HttpClient, UreqClient};
    let http = UreqClient::new(Duration::from_secs(3)).with_policy(policy, exempt);
    async_std::task::block_on(http.send(get(url), 1024))
        .map(|r| (r.status().as_u16(), String::from_utf8_lossy(r.body()).into_owned()))
        .map_err(|e| (e.kind, e.to_string()))
}

/// The tokio adapter's default client, reqwest.
#[cfg(feature = "tokio")]
fn tokio_send(policy: NetworkPolicy, exempt: &str, url: &str) -> Result<(u16, String), (TransportFailureKind, String)> {
    use mcp_oauth_client::tokio::{HttpClient, ReqwestClient};
    let http = ReqwestClient::new(Duration::from_secs(3)).with_policy(policy, exempt);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(http.send(get(url), 1024))
        .map(|r| (r.status().as_u16(), String::from_utf8_lossy(r.body()).into_owned()))
        .map_err(|e| (e.kind, e.to_string()))
}

fn check(var: &str, proxy: &RecordingProxy, name: &str, send: Send<'_>) {
    let ctx = format!("{name} client, proxy in {var}");
    // Forbidden targets: refused by the policy; the proxy hears nothing of them.
    for (policy, url) in [
        (NetworkPolicy::PublicOrLoopback, "http://169.254.169.254/latest/meta-data/"),
        (NetworkPolicy::Public, "http://169.254.169.254/latest/meta-data/"),
        (NetworkPolicy::PublicOrLoopback, "https://10.0.0.7/token"),
        (NetworkPolicy::Public, "http://127.0.0.1:9/token"),
    ] {
        let r = send(policy, "mcp.example.com", url);
        println!("{ctx}: {policy:?} {url}: {r:?}");
        assert!(matches!(&r, Err((TransportFailureKind::Blocked, _))), "{ctx}: {policy:?} {url}: {r:?}");
    }
    let seen = proxy.take();
    assert!(seen.is_empty(), "{ctx}: the proxy was asked for forbidden targets: {seen:?}");

    // Allowed targets go through the proxy, which is given the checked address.
    let r = send(NetworkPolicy::Public, "mcp.example.com", "http://93.184.215.14/ok");
    assert_eq!(r, Ok((200, "proxied".to_owned())), "{ctx}: a public address under public");
    let seen = proxy.take();
    assert_eq!(seen.first().and_then(|l| connect_target(l)).as_deref(), Some("93.184.215.14:80"), "{ctx}: {seen:?}");
    assert!(seen.iter().any(|l| l.contains("/ok")), "{ctx}: {seen:?}");

    // The MCP server's own host is exempt from the policy: the proxy gets its name as usual.
    let r = send(NetworkPolicy::Public, "mcp.example.com", "http://mcp.example.com/ok");
    assert_eq!(r, Ok((200, "proxied".to_owned())), "{ctx}: exempt host");
    let seen = proxy.take();
    assert_eq!(seen.first().and_then(|l| connect_target(l)).as_deref(), Some("mcp.example.com:80"), "{ctx}: {seen:?}");

    // Loopback targets never go through the proxy, under any policy: plain HTTP to loopback is
    // allowed only because it does not leave the machine, and a proxy would read it.
    let direct = Direct::start();
    for policy in [NetworkPolicy::Open, NetworkPolicy::PublicOrLoopback] {
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("http://{host}:{}/ok", direct.port);
            let r = send(policy, "mcp.example.com", &url);
            assert_eq!(r, Ok((200, "direct".to_owned())), "{ctx}: {policy:?} {url}");
            let seen = proxy.take();
            assert!(seen.is_empty(), "{ctx}: {policy:?} {url}: the proxy saw a loopback request: {seen:?}");
        }
    }
    let seen = proxy.take();
    assert!(seen.iter().all(|l| !l.contains("169.254") && !l.contains("10.0.0.7")));
}

/// A plain HTTP server on 127.0.0.1 answering `200 direct`.
struct Direct {
    port: u16,
}

impl Direct {
    fn start() -> Direct {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let _ = head(&mut c);
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\ndirect");
            }
        });
        Direct { port }
    }
}

#[test]
fn proxies_from_the_environment_do_not_bypass_the_network_policy() {
    let proxy = RecordingProxy::start();
    for var in ["ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"] {
        for v in PROXY_VARS {
            std::env::remove_var(v);
        }
        std::env::set_var(var, &proxy.url);
        check(var, &proxy, "blocking", &blocking_send);
        #[cfg(feature = "async-std")]
        check(var, &proxy, "async", &async_send);
        #[cfg(feature = "tokio")]
        check(var, &proxy, "tokio (reqwest)", &tokio_send);
    }
    for v in PROXY_VARS {
        std::env::remove_var(v);
    }
}
