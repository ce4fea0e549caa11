//! The legacy event stream (HTTP+SSE) against hostile and vanishing peers, on every adapter:
//! an event that never ends is cut at the cap with a typed error, events nobody reads cannot
//! pile up in memory, an error body on the stream is read within the client's timeout, and the
//! connection is shut as soon as the client is dropped or its connect fails (a blocked read is
//! interrupted; the peer sees the close within 2 s).
//!
//! The peer is a small legacy MCP server on 127.0.0.1 written here, so each test can script the
//! stream and watch its own end of the connection.

mod common;
use common::*;
use mcp_oauth_client::mcp::{EventStreamError, MAX_MCP_BODY};
use mcp_oauth_client::{Error, Interaction, MemoryStore, ServerConfig};
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the peer does on its event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    /// A well-behaved legacy server: the endpoint event, replies on the stream, then silence.
    Serve,
    /// Opens the stream, then answers `initialize` with a 500.
    FailInitialize,
    /// One event whose `data:` lines never end (up to [`BUDGET`] bytes), no endpoint event.
    EndlessEvent,
    /// After the handshake, notifications as fast as the client takes them (up to [`BUDGET`]).
    Flood,
    /// Ends the first event stream right after the handshake; serves later ones.
    EndsOnce,
}

/// The most the peer writes on one event stream.
const BUDGET: u64 = 128 << 20;
/// What a bounded client may have taken in when the peer stops: the 16 MiB event cap plus
/// what the kernel buffers on loopback (the receive buffer autotunes up to 32 MiB here).
const BOUNDED: u64 = 64 << 20;

/// The peer's side of the test: bytes written on the event stream, and when it saw it closed.
#[derive(Default)]
struct Observed {
    sent: AtomicU64,
    closed: Mutex<Option<Instant>>,
    flood: AtomicBool,
    end: AtomicBool,
    streams: AtomicU64,
}

struct LegacyPeer {
    origin: String,
    seen: Arc<Observed>,
}

impl LegacyPeer {
    fn start(script: Script) -> LegacyPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let seen = Arc::new(Observed::default());
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let rx = Arc::new(Mutex::new(rx));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, tx, rx) = (s.clone(), tx.clone(), rx.clone());
                std::thread::spawn(move || serve(conn, script, &s, &tx, &rx));
            }
        });
        LegacyPeer { origin, seen }
    }

    fn config(&self) -> ServerConfig {
        serde_json::from_value(json!({"type": "sse", "url": format!("{}/sse", self.origin)})).unwrap()
    }

    fn sent(&self) -> u64 {
        self.seen.sent.load(Ordering::Relaxed)
    }

    /// Whether the peer sees its event stream closed within `d`.
    fn closed_within(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.seen.closed.lock().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.seen.closed.lock().unwrap().is_some()
    }
}

fn serve(mut conn: TcpStream, script: Script, seen: &Observed, tx: &Sender<Vec<u8>>, rx: &Mutex<Receiver<Vec<u8>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    if head.starts_with("GET ") {
        let first = seen.streams.fetch_add(1, Ordering::Relaxed) == 0;
        return event_stream(conn, script, seen, rx, first);
    }
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if conn.read_exact(&mut body).is_err() {
        return;
    }
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("");
    if script == Script::FailInitialize && method == "initialize" {
        let _ = conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    }
    let _ = conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    if !msg["id"].is_null() {
        let result = match method {
            "initialize" => json!({"protocolVersion": "2024-11-05", "capabilities": {}, "serverInfo": {"name": "peer", "version": "0"}}),
            "tools/list" => json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
            _ => json!({}),
        };
        let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
        let _ = tx.send(format!("event: message\ndata: {reply}\n\n").into_bytes());
    }
    if method == "notifications/initialized" && script == Script::Flood {
        seen.flood.store(true, Ordering::Relaxed);
    }
    if method == "notifications/initialized" && script == Script::EndsOnce {
        seen.end.store(true, Ordering::Relaxed);
    }
}

/// The event stream: writes what the script says, and records when the client closes it.
fn event_stream(mut conn: TcpStream, script: Script, seen: &Observed, replies: &Mutex<Receiver<Vec<u8>>>, first: bool) {
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n");
    let mut conn = Watched { conn, seen };
    let open = match script {
        Script::EndlessEvent => {
            let mut line = b"data: ".to_vec();
            line.extend(std::iter::repeat_n(b'A', 64 * 1024));
            line.push(b'\n');
            conn.flood(&line)
        }
        _ => conn.send(b"event: endpoint\ndata: /messages\n\n"),
    };
    let mut open = open;
    while open {
        let reply = replies.lock().unwrap().recv_timeout(Duration::from_millis(10));
        if let Ok(bytes) = reply {
            open = conn.send(&bytes);
        } else if first && seen.end.swap(false, Ordering::Relaxed) {
            return; // the server ends the stream (FIN)
        } else if seen.flood.swap(false, Ordering::Relaxed) {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "B".repeat(64 * 1024)}});
            open = conn.flood(format!("event: message\ndata: {note}\n\n").as_bytes());
        } else {
            open = !conn.closed_by_client(Duration::from_millis(10));
        }
    }
    *seen.closed.lock().unwrap() = Some(Instant::now());
}

struct Watched<'a> {
    conn: TcpStream,
    seen: &'a Observed,
}

impl Watched<'_> {
    /// Writes `bytes`; false once the client has closed the connection.
    fn send(&mut self, mut bytes: &[u8]) -> bool {
        let _ = self.conn.set_write_timeout(Some(Duration::from_millis(50)));
        while !bytes.is_empty() {
            match self.conn.write(bytes) {
                Ok(0) => return false,
                Ok(n) => {
                    self.seen.sent.fetch_add(n as u64, Ordering::Relaxed);
                    bytes = &bytes[n..];
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    if self.closed_by_client(Duration::from_millis(1)) {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Writes `unit` again and again up to [`BUDGET`]; false once the client has closed.
    fn flood(&mut self, unit: &[u8]) -> bool {
        while self.seen.sent.load(Ordering::Relaxed) < BUDGET {
            if !self.send(unit) {
                return false;
            }
        }
        true
    }

    /// Whether the client has closed (EOF or reset), waiting at most `d` to find out.
    fn closed_by_client(&mut self, d: Duration) -> bool {
        let _ = self.conn.set_read_timeout(Some(d));
        let mut b = [0u8; 1024];
        match self.conn.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted),
        }
    }
}

fn client(a: Adapter, peer: &LegacyPeer) -> Mcp {
    a.configured(&peer.config(), Arc::new(MemoryStore::new()), Interaction::non_interactive(), &|_| None).unwrap()
}

fn an_event_that_never_ends_is_cut_at_the_cap(a: Adapter) {
    let peer = LegacyPeer::start(Script::EndlessEvent);
    let mut mcp = client(a, &peer);
    let t = Instant::now();
    let e = mcp.connect().unwrap_err();
    let took = t.elapsed();
    println!("{}: connect failed after {took:?} with {e}; the peer had sent {} MiB", a.name(), peer.sent() >> 20);
    assert!(matches!(e, Error::EventStream(EventStreamError::EventTooLarge { limit: MAX_MCP_BODY })), "not the cap error: {e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(peer.sent() < BOUNDED, "the client took in {} MiB", peer.sent() >> 20);
    // The failed connect shut the connection, with the client still alive.
    assert!(peer.closed_within(Duration::from_secs(2)), "the stream is still open");
    drop(mcp);
}

fn events_nobody_reads_do_not_pile_up(a: Adapter) {
    let peer = LegacyPeer::start(Script::Flood);
    let mut mcp = client(a, &peer);
    mcp.connect().unwrap();
    // The client is connected and idle; the peer pushes notifications for as long as it can.
    std::thread::sleep(Duration::from_millis(1500));
    let sent = peer.sent();
    println!("{}: an idle client let the peer write {} MiB", a.name(), sent >> 20);
    assert!(sent < BOUNDED, "the client buffered {} MiB of events nobody read", sent >> 20);
    drop(mcp);
    assert!(peer.closed_within(Duration::from_secs(2)), "dropping the client left the stream open");
}

fn dropping_the_client_closes_the_stream(a: Adapter) {
    let peer = LegacyPeer::start(Script::Serve);
    let mut mcp = client(a, &peer);
    assert_eq!(mcp.list_tools().unwrap()[0].name, "echo");
    assert!(!peer.closed_within(Duration::from_millis(200)), "closed while the client lives");
    let t = Instant::now();
    drop(mcp);
    assert!(peer.closed_within(Duration::from_secs(2)), "the stream outlived the client (its reader is blocked in a read)");
    println!("{}: the peer saw the close {:?} after the drop", a.name(), t.elapsed());
}

fn a_failed_connect_closes_the_stream(a: Adapter) {
    let peer = LegacyPeer::start(Script::FailInitialize);
    let mut mcp = client(a, &peer);
    let e = mcp.connect().unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    // The client is still alive; the stream it opened must not be.
    assert!(peer.closed_within(Duration::from_secs(2)), "the stream outlived the failed connect");
    drop(mcp);
}

/// A stream that ended (here the server closed it; the idle deadline and the cap end streams
/// too) costs one reconnect on the next call, not the session for good.
fn a_stream_that_ended_is_reopened_on_the_next_call(a: Adapter) {
    let peer = LegacyPeer::start(Script::EndsOnce);
    let mut mcp = client(a, &peer);
    mcp.connect().unwrap();
    std::thread::sleep(Duration::from_millis(300)); // the server ends the stream meanwhile
    assert_eq!(mcp.list_tools().unwrap()[0].name, "echo");
    assert_eq!(peer.seen.streams.load(Ordering::Relaxed), 2, "one new stream");
}

on_every_adapter!(
    an_event_that_never_ends_is_cut_at_the_cap,
    events_nobody_reads_do_not_pile_up,
    dropping_the_client_closes_the_stream,
    a_failed_connect_closes_the_stream,
    a_stream_that_ended_is_reopened_on_the_next_call
);

/// A 401 whose 60 kB body drips at 10 bytes a second, to a client with a 1 s timeout.
fn dripping_error_body() -> (mcp_oauth_tests::hostile::HostilePeer, String) {
    use mcp_oauth_tests::hostile::{Behaviour, HostilePeer};
    let peer = HostilePeer::start(|_, _| Behaviour::Drip {
        head: b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 60000\r\n\r\n".to_vec(),
        every: Duration::from_millis(100),
    })
    .unwrap();
    let url = format!("{}/sse", peer.origin());
    (peer, url)
}

/// Runs `open` on a thread; its result, or `None` if it has not returned after 6 s.
fn within_6s<T: Send + 'static>(open: impl FnOnce() -> T + Send + 'static) -> Option<(T, Duration)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = open();
        let _ = tx.send((r, t.elapsed()));
    });
    rx.recv_timeout(Duration::from_secs(6)).ok()
}

#[test]
fn an_error_body_on_the_stream_is_read_within_the_timeout_blocking() {
    let (_peer, url) = dripping_error_body();
    let http = mcp_oauth_client::transport::Ureq::new(Duration::from_secs(1));
    let got = within_6s(move || http.open_stream(http::Request::get(url).body(Vec::new()).unwrap()).map(|s| format!("{s:?}")));
    let (r, took) = got.expect("open_stream still reading the error body after 6 s, with a 1 s timeout");
    println!("blocking: open_stream returned {r:?} after {took:?}");
    let e = r.unwrap_err();
    assert_eq!(e.kind, mcp_oauth_client::core::http::TransportFailureKind::Timeout, "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[cfg(feature = "async-std")]
#[test]
fn an_error_body_on_the_stream_is_read_within_the_timeout_async() {
    use mcp_oauth_client::async_std::{HttpClient, UreqClient};
    let (_peer, url) = dripping_error_body();
    let http = UreqClient::new(Duration::from_secs(1));
    let got = within_6s(move || {
        ::async_std::task::block_on(http.open_stream(http::Request::get(url).body(Vec::new()).unwrap())).map(|s| format!("{s:?}"))
    });
    let (r, took) = got.expect("open_stream still reading the error body after 6 s, with a 1 s timeout");
    println!("async: open_stream returned {r:?} after {took:?}");
    let e = r.unwrap_err();
    assert_eq!(e.kind, mcp_oauth_client::core::http::TransportFailureKind::Timeout, "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
