//! What the loopback listener decides, without its sockets (those are the driver's
//! `listener`): which addresses may be bound, how much of a request
//! head is read and for how long, which request is the callback and which page every other
//! request gets, and the events delivered to the flow.

use mcp_oauth_core::callback::{parse_request_head, response_page, CallbackError, Outcome, MAX_HEAD_BYTES};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// How long a connection may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections still sending their request head at once. When more arrive, the oldest is
/// closed: a flood of silent or junk connections cannot keep the browser's callback out.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a callback connection waits for the flow's answer page.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the listener (or the paste prompt) delivers to the flow.
#[derive(Debug)]
pub(crate) enum Event {
    /// A request on the callback path: the full redirect URL, and where to send the complete
    /// HTTP response for the browser.
    Callback { url: String, reply: async_channel::Sender<Vec<u8>> },
    /// A pasted redirect URL.
    Paste(String),
    /// The prompt ended without an answer.
    PromptClosed,
}

/// The address for a redirect host: loopback only.
pub(crate) fn loopback_ip(host: &str) -> io::Result<IpAddr> {
    match host {
        "127.0.0.1" | "localhost" => Ok(Ipv4Addr::LOCALHOST.into()),
        "::1" | "[::1]" => Ok(Ipv6Addr::LOCALHOST.into()),
        other => match other.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => Ok(ip),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{other} is not a loopback host"))),
        },
    }
}

/// How many more bytes to read into a head of `have` bytes.
pub(crate) fn read_size(have: usize, chunk: usize) -> usize {
    (MAX_HEAD_BYTES + 4 - have.min(MAX_HEAD_BYTES + 4)).clamp(1, chunk)
}

/// What to do with the bytes of a request head read so far.
pub(crate) enum Head {
    /// Read more.
    Incomplete,
    /// Write this page and close.
    Respond(Vec<u8>),
    /// The callback: deliver this redirect URL, then write the page the flow answers.
    Deliver(String),
}

/// Judges a (partial) head: junk gets 400, other paths 404, a `Host` that is not the redirect
/// URI's (a web page rebinding its name to this port) 400. Every request on the callback path
/// with the right `Host` is delivered: the flow answers it, and only the redirect that carries
/// the flow's `state` ends the wait (a forged one gets an error page and the wait goes on).
pub(crate) fn judge(buf: &[u8], path: &str, base: &Url) -> Head {
    let request = match parse_request_head(buf) {
        Err(CallbackError::Incomplete) => return Head::Incomplete,
        Ok(r) => r,
        Err(_) => {
            return Head::Respond(response_page(&Outcome::Failure {
                title: "Bad request".into(),
                detail: "This address only receives the login response.".into(),
            }))
        }
    };
    if request.method != "GET" || request.path() != path {
        return Head::Respond(response_page(&Outcome::NotFound));
    }
    if !request.host_matches(base) {
        return Head::Respond(response_page(&Outcome::Failure {
            title: "Wrong address".into(),
            detail: "This address only receives the login response, sent by your browser to the address the application gave it.".into(),
        }));
    }
    Head::Deliver(request.redirect_url(base))
}

/// The page when the flow never answered.
pub(crate) fn no_answer_page() -> Vec<u8> {
    response_page(&Outcome::Failure {
        title: "No answer".into(),
        detail: "The application stopped waiting. Return to it to see what happened.".into(),
    })
}

/// The connections still reading their head, oldest first (`S` is the runtime's stream).
pub(crate) struct Heads<S> {
    inner: Mutex<(u64, VecDeque<(u64, S)>)>,
}

impl<S> Default for Heads<S> {
    fn default() -> Self {
        Heads { inner: Mutex::new((0, VecDeque::new())) }
    }
}

impl<S> Heads<S> {
    /// Registers a new connection (a handle to it), first closing the oldest one with `close`
    /// if [`MAX_CONNECTIONS`] are pending. Returns its id for [`done`](Self::done).
    pub(crate) fn admit(&self, conn: S, close: impl Fn(&S)) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while g.1.len() >= MAX_CONNECTIONS {
            if let Some((_, oldest)) = g.1.pop_front() {
                close(&oldest);
            }
        }
        g.0 += 1;
        let id = g.0;
        g.1.push_back((id, conn));
        id
    }

    /// The connection's head is read (or it is gone): it can no longer be evicted.
    pub(crate) fn done(&self, id: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.retain(|(i, _)| *i != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_literals_and_localhost_are_bound() {
        assert_eq!(loopback_ip("localhost").unwrap(), IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_eq!(loopback_ip("127.0.0.1").unwrap(), IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_eq!(loopback_ip("127.3.2.1").unwrap(), IpAddr::from(Ipv4Addr::new(127, 3, 2, 1)));
        assert_eq!(loopback_ip("::1").unwrap(), IpAddr::from(Ipv6Addr::LOCALHOST));
        assert_eq!(loopback_ip("[::1]").unwrap(), IpAddr::from(Ipv6Addr::LOCALHOST));
        for host in ["app.localhost", "localhost.", "0.0.0.0", "::", "10.0.0.1", "::ffff:127.0.0.1", "example.com", ""] {
            let e = loopback_ip(host).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{host}");
        }
    }
}
