//! Review of 33ff822's deadlines: ReqwestClient's own reqwest client has no connect or read
//! timers any more; one `Sleep` bounds connect + head (min(timeout,10s)+timeout) and is reset
//! to `timeout` for the body. rmcp's client (from `reqwest()`) keeps connect/read timeouts.
//! Hostile loopback servers only.
#![cfg(feature = "rmcp")]

use mcp_oauth_client::tokio::{HttpClient, HttpStream, ReqwestClient};
use mcp_oauth_core::http::TransportFailureKind;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A server that runs `answer` on each connection (after reading the request head).
fn serve(answer: impl Fn(TcpStream) + Send + Sync + 'static) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let c2 = conns.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            c2.fetch_add(1, Ordering::SeqCst);
            let a = answer.clone();
            std::thread::spawn(move || a(c));
        }
    });
    (port, conns)
}

fn read_head(c: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match c.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => return false,
        }
    }
    // Bodies here are tiny and carry content-length; read it.
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    if let Some(n) = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))) {
        let mut body = vec![0u8; n];
        let _ = c.read_exact(&mut body);
    }
    true
}

fn drip(c: &mut TcpStream, bytes: &[u8], every: Duration) {
    for b in bytes.iter().cycle() {
        if c.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(every);
    }
}

fn post(port: u16, scheme: &str) -> http::Request<Vec<u8>> {
    http::Request::post(format!("{scheme}://127.0.0.1:{port}/mcp")).body(b"{}".to_vec()).unwrap()
}

/// timeout 1 s: connect+head deadline 2 s, body 1 s.
fn client() -> ReqwestClient {
    ReqwestClient::new(Duration::from_secs(1)).stream_idle(Duration::from_secs(1))
}

#[test]
fn slow_drip_headers_time_out() {
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\n");
        drip(&mut c, b"x-a: b\r\n", Duration::from_millis(50));
    });
    let t = Instant::now();
    let r = rt().block_on(client().send(post(port, "http"), 1 << 20));
    let e = r.map(|_| ()).unwrap_err();
    assert_eq!(e.kind, TransportFailureKind::Timeout, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn slow_drip_body_times_out() {
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n");
        drip(&mut c, b"x", Duration::from_millis(50));
    });
    let t = Instant::now();
    let e = rt().block_on(client().send(post(port, "http"), 1 << 20)).map(|_| ()).unwrap_err();
    assert_eq!(e.kind, TransportFailureKind::Timeout, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn a_chunked_body_dripping_forever_times_out() {
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        drip(&mut c, b"1\r\nx\r\n", Duration::from_millis(20));
    });
    let t = Instant::now();
    let e = rt().block_on(client().send(post(port, "http"), 1 << 20)).map(|_| ()).unwrap_err();
    assert_eq!(e.kind, TransportFailureKind::Timeout, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn a_tls_handshake_that_stalls_times_out() {
    // Accepts TCP, reads the ClientHello, never answers.
    let (port, _) = serve(|mut c| {
        let mut b = [0u8; 4096];
        while c.read(&mut b).map(|n| n > 0).unwrap_or(false) {}
    });
    let t = Instant::now();
    let e = rt().block_on(client().send(post(port, "https"), 1 << 20)).map(|_| ()).unwrap_err();
    assert_eq!(e.kind, TransportFailureKind::Timeout, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn a_tls_handshake_dripping_bytes_times_out() {
    // A TLS record header, then one byte at a time: never a complete ServerHello.
    let (port, _) = serve(|mut c| {
        let mut b = [0u8; 512];
        let _ = c.read(&mut b);
        let _ = c.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
        drip(&mut c, &[0x02], Duration::from_millis(20));
    });
    let t = Instant::now();
    let e = rt().block_on(client().send(post(port, "https"), 1 << 20)).map(|_| ()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?} {e:?}", t.elapsed());
}

#[test]
fn open_stream_with_a_dripping_head_times_out() {
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\n");
        drip(&mut c, b"x-a: b\r\n", Duration::from_millis(50));
    });
    let t = Instant::now();
    let r = rt().block_on(client().open_stream(http::Request::get(format!("http://127.0.0.1:{port}/mcp")).body(Vec::new()).unwrap()));
    assert!(r.is_err(), "opened");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn open_stream_error_body_dripping_times_out() {
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        let _ = c.write_all(b"HTTP/1.1 500 Oops\r\ncontent-length: 100000\r\n\r\n");
        drip(&mut c, b"x", Duration::from_millis(50));
    });
    let t = Instant::now();
    let r = rt().block_on(client().open_stream(http::Request::get(format!("http://127.0.0.1:{port}/mcp")).body(Vec::new()).unwrap()));
    assert!(r.is_err(), "{:?}", r.map(|_| ()));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn an_open_stream_ends_at_a_silence() {
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
        let _ = c.write_all(b"6\r\n: hi\n\n\r\n");
        std::thread::sleep(Duration::from_secs(60));
    });
    let rt = rt();
    let t = Instant::now();
    rt.block_on(async {
        let opened =
            client().open_stream(http::Request::get(format!("http://127.0.0.1:{port}/mcp")).body(Vec::new()).unwrap()).await.unwrap();
        let HttpStream::Open(_, mut body) = opened else { panic!("not open") };
        use futures_lite::StreamExt;
        while body.next().await.is_some() {}
    });
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

/// The deadline is reset for the body: a head that takes most of its deadline and a body that
/// takes most of `timeout` still succeed (total beyond the head deadline).
#[test]
fn the_body_gets_its_own_timeout_after_a_slow_head() {
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        std::thread::sleep(Duration::from_millis(1500));
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n");
        let _ = c.flush();
        std::thread::sleep(Duration::from_millis(700));
        let _ = c.write_all(b"{}");
        std::thread::sleep(Duration::from_secs(2));
    });
    let r = rt().block_on(client().send(post(port, "http"), 1 << 20));
    assert_eq!(r.unwrap().body(), b"{}");
}

/// A client used for long: many requests on one runtime, one kept-alive connection, gaps
/// longer than the timeout between requests, and a timed-out request in the middle.
#[test]
fn many_requests_reuse_one_connection_and_deadlines_do_not_carry_over() {
    let slow = Arc::new(AtomicUsize::new(0));
    let s2 = slow.clone();
    let (port, conns) = serve(move |mut c| {
        while read_head(&mut c) {
            if s2.swap(0, Ordering::SeqCst) == 1 {
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
            if c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").is_err() {
                return;
            }
        }
    });
    let rt = rt();
    let client = client();
    rt.block_on(async {
        for _ in 0..300 {
            client.send(post(port, "http"), 1024).await.unwrap();
        }
    });
    assert_eq!(conns.load(Ordering::SeqCst), 1, "connections for 300 sequential requests");
    std::thread::sleep(Duration::from_millis(2500)); // longer than the head deadline
    rt.block_on(async {
        client.send(post(port, "http"), 1024).await.unwrap();
        slow.store(1, Ordering::SeqCst);
        let e = client.send(post(port, "http"), 1024).await.map(|_| ()).unwrap_err();
        assert_eq!(e.kind, TransportFailureKind::Timeout);
        for _ in 0..20 {
            client.send(post(port, "http"), 1024).await.unwrap();
        }
    });
}

/// rmcp's client: per-read timeouts only. A server that drips the response head one byte at a
/// time (each within the idle timeout) holds an rmcp POST for as long as it likes. (Not new in
/// 33ff822: the shared client had the same per-read timeout; reported as a residual risk.)
#[test]
fn an_rmcp_post_with_a_dripping_head_is_bounded() {
    use mcp_oauth_client::rmcp::OAuthHttpClient;
    use mcp_oauth_client::tokio::OAuthClient;
    use mcp_oauth_client::{Config, Interaction, MemoryStore};
    use rmcp::model::ClientJsonRpcMessage;
    use rmcp::transport::streamable_http_client::StreamableHttpClient;
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\n");
        drip(&mut c, b"x-a: b\r\n", Duration::from_millis(200));
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    let rt = rt();
    let oauth = rt
        .block_on(OAuthClient::new(Config::new(url.parse().unwrap()), Arc::new(MemoryStore::new()), Interaction::non_interactive()))
        .unwrap();
    let client = OAuthHttpClient::new(oauth).idle_timeout(Duration::from_secs(1));
    let msg: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).unwrap();
    let t = Instant::now();
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), client.post_message(url.as_str().into(), msg, None, None, Default::default())).await
    });
    assert!(outcome.is_ok(), "the rmcp POST was still reading a dripping head after {:?} (idle timeout 1 s)", t.elapsed());
}

/// Sound: rmcp's client still gives up on a silent server (its read timeout).
#[test]
fn an_rmcp_post_to_a_silent_server_gives_up() {
    use mcp_oauth_client::rmcp::OAuthHttpClient;
    use mcp_oauth_client::tokio::OAuthClient;
    use mcp_oauth_client::{Config, Interaction, MemoryStore};
    use rmcp::model::ClientJsonRpcMessage;
    use rmcp::transport::streamable_http_client::StreamableHttpClient;
    let (port, _) = serve(|mut c| {
        read_head(&mut c);
        std::thread::sleep(Duration::from_secs(60));
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    let rt = rt();
    let oauth = rt
        .block_on(OAuthClient::new(Config::new(url.parse().unwrap()), Arc::new(MemoryStore::new()), Interaction::non_interactive()))
        .unwrap();
    let client = OAuthHttpClient::new(oauth).idle_timeout(Duration::from_secs(1));
    let msg: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).unwrap();
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(6), client.post_message(url.as_str().into(), msg, None, None, Default::default())).await
    });
    assert!(matches!(outcome, Ok(Err(_))), "{:?}", outcome.map(|r| r.map(|_| ())));
}
