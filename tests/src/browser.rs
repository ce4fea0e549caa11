//! A stand-in for the user's browser, for tests, benchmarks and demos: plain HTTP/1.1 GETs over
//! `std::net` that never follow redirects. [`approve`] visits an authorization URL (the test
//! server, and the conformance suite's, approve at once) and returns where it redirects;
//! [`get`] then visits that redirect, which lands on the client's loopback listener.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use url::Url;

/// What a GET returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl Page {
    /// The text of the page's first `<h1>`, if any.
    pub fn title(&self) -> &str {
        self.body.split("<h1").nth(1).and_then(|h| h.split('>').nth(1)).and_then(|h| h.split('<').next()).unwrap_or("")
    }
}

/// GETs `url` (http only) with `Connection: close` and reads the whole response.
pub fn get(url: &str) -> io::Result<Page> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{m}: {url}"));
    let u = Url::parse(url).map_err(|_| bad("not a url"))?;
    if u.scheme() != "http" {
        return Err(bad("only http urls"));
    }
    let host = u.host_str().ok_or_else(|| bad("no host"))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let mut last = bad("host not found");
    let mut conn = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut conn = conn.ok_or(last)?;
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    let target = &url[u.origin().ascii_serialization().len()..];
    let target = if target.is_empty() { "/" } else { target };
    write!(conn, "GET {target} HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\nConnection: close\r\n\r\n", u.authority())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status line"))?;
    let location =
        lines.filter_map(|l| l.split_once(':')).find(|(k, _)| k.trim().eq_ignore_ascii_case("location")).map(|(_, v)| v.trim().to_owned());
    Ok(Page { status, location, body: body.to_owned() })
}

/// Visits an authorization URL and returns the redirect it answers with.
pub fn approve(authorization_url: &str) -> io::Result<String> {
    let page = get(authorization_url)?;
    page.location.ok_or_else(|| io::Error::other(format!("the authorization endpoint answered {} without a redirect", page.status)))
}

/// The whole browser round trip: approve, then follow the redirect to the loopback listener.
/// Returns the callback page.
pub fn log_in(authorization_url: &str) -> io::Result<Page> {
    get(&approve(authorization_url)?)
}
