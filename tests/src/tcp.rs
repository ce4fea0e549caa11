//! The [`TestServer`] served over real sockets on 127.0.0.1: one thread per connection, one
//! request per connection (`Connection: close`), bounded heads and bodies.

use crate::{Options, TestServer};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// Open legacy SSE streams by session id.
#[derive(Default)]
struct Streams {
    open: Mutex<HashMap<String, TcpStream>>,
    next: AtomicU64,
}

/// A running server. Dropping it stops the accept loop.
pub struct TcpTestServer {
    addr: SocketAddr,
    server: Arc<Mutex<TestServer>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Delay every response to this path (slow-server tests).
    pub slow: Arc<Mutex<Option<(String, Duration)>>>,
    streams: Arc<Streams>,
}

impl TcpTestServer {
    /// Binds 127.0.0.1 on a free port, builds the options for that origin, and serves.
    pub fn start(configure: impl FnOnce(&str) -> Options) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let origin = format!("http://127.0.0.1:{}", addr.port());
        let server = Arc::new(Mutex::new(TestServer::new(configure(&origin))));
        let stop = Arc::new(AtomicBool::new(false));
        let slow: Arc<Mutex<Option<(String, Duration)>>> = Arc::new(Mutex::new(None));
        let (s, st, sl) = (server.clone(), stop.clone(), slow.clone());
        let streams = Arc::new(Streams::default());
        let open_streams = streams.clone();
        // Blocking accept; Drop wakes it with a connection of its own.
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, sl, sr) = (s.clone(), sl.clone(), streams.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &sl, &sr);
                });
            }
        });
        Ok(TcpTestServer { addr, server, stop, thread: Some(thread), slow, streams: open_streams })
    }

    /// `http://127.0.0.1:port`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// The MCP endpoint URL.
    pub fn mcp_url(&self) -> String {
        self.lock().options.mcp_url()
    }

    /// The server's state, for assertions and to change options.
    pub fn lock(&self) -> MutexGuard<'_, TestServer> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TcpTestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept with a connection of our own. That connection can fail for
        // a moment (a test that exhausts the process's descriptors drops its server while it
        // still holds them): keep trying until the accept loop has seen the flag, and never
        // join a thread that cannot be woken.
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_err() {
                    std::thread::sleep(Duration::from_millis(10));
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        for (_, s) in self.streams.open.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn serve(mut conn: TcpStream, server: &Mutex<TestServer>, slow: &Mutex<Option<(String, Duration)>>, streams: &Streams) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return write_simple(&mut conn, 431, "header too large");
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or("GET").to_owned(), parts.next().unwrap_or("/").to_owned());
    let mut builder = http::Request::builder().method(method.as_str()).uri(format!("http://127.0.0.1{target}"));
    let mut length = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().unwrap_or(0);
            }
            builder = builder.header(k, v);
        }
    }
    if length > MAX_BODY {
        return write_simple(&mut conn, 413, "body too large");
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let Ok(req) = builder.body(body) else { return write_simple(&mut conn, 400, "bad request") };
    let delay = slow.lock().ok().and_then(|s| s.clone()).filter(|(p, _)| target.split('?').next() == Some(p.as_str()));
    if let Some((_, d)) = delay {
        std::thread::sleep(d);
    }
    let (legacy, mcp_path) = {
        let s = server.lock().unwrap_or_else(|e| e.into_inner());
        (s.options.legacy_sse, s.options.mcp_path.clone())
    };
    let path = target.split('?').next().unwrap_or("").to_owned();
    if legacy && method == "GET" && path == mcp_path {
        return open_stream(conn, server, streams, &req);
    }
    if legacy && method == "POST" && path == "/messages" {
        let sid = target.split("sessionId=").nth(1).unwrap_or("").to_owned();
        let (mut parts, body) = req.into_parts();
        parts.uri = format!("http://127.0.0.1{mcp_path}").parse().unwrap_or_default();
        let resp = server.lock().unwrap_or_else(|e| e.into_inner()).handle(&http::Request::from_parts(parts, body));
        if resp.status() == 200 {
            let mut open = streams.open.lock().unwrap_or_else(|e| e.into_inner());
            let Some(stream) = open.get_mut(&sid) else { return write_simple(&mut conn, 404, "unknown session") };
            let event = format!("event: message\ndata: {}\n\n", String::from_utf8_lossy(resp.body()));
            stream.write_all(event.as_bytes())?;
            stream.flush()?;
            return write_simple(&mut conn, 202, "accepted");
        }
        return write_response(&mut conn, &resp);
    }
    let resp = server.lock().unwrap_or_else(|e| e.into_inner()).handle(&req);
    write_response(&mut conn, &resp)
}

/// The legacy transport's event stream: authorize, announce the message endpoint, then hold
/// the connection open (POST replies are written to it) until the client goes away.
fn open_stream(mut conn: TcpStream, server: &Mutex<TestServer>, streams: &Streams, req: &http::Request<Vec<u8>>) -> io::Result<()> {
    let authz = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let target = req.uri().path().to_owned();
    let checked = server.lock().unwrap_or_else(|e| e.into_inner()).open_event_stream(&target, authz);
    if let Some(challenge) = checked {
        return write_response(&mut conn, &challenge);
    }
    let sid = format!("s{}", streams.next.fetch_add(1, Ordering::Relaxed));
    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n")?;
    conn.write_all(format!("event: endpoint\ndata: /messages?sessionId={sid}\n\n").as_bytes())?;
    conn.flush()?;
    streams.open.lock().unwrap_or_else(|e| e.into_inner()).insert(sid.clone(), conn.try_clone()?);
    conn.set_read_timeout(None)?;
    let mut sink = [0u8; 256];
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
    streams.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&sid);
    Ok(())
}

fn write_response(conn: &mut TcpStream, resp: &http::Response<Vec<u8>>) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status().as_u16(), resp.status().canonical_reason().unwrap_or("")).into_bytes();
    for (k, v) in resp.headers() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", resp.body().len()).as_bytes());
    conn.write_all(&out)?;
    conn.write_all(resp.body())?;
    conn.flush()
}

fn write_simple(conn: &mut TcpStream, status: u16, text: &str) -> io::Result<()> {
    write!(conn, "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len())
}
