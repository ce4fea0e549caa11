//! Independent review: plain HTTP is allowed only to loopback hosts, because (core's
//! `is_loopback_host`) such traffic "never leaves the machine". With a proxy in the environment
//! (`HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`, common on corporate machines and CI runners)
//! and no `NO_PROXY` for loopback, ureq sends requests for `http://127.0.0.1:…` and
//! `http://localhost:…` through that proxy: a CONNECT tunnel carrying *plain* HTTP, so the proxy
//! (usually another machine) reads the bearer token, the authorization code, the PKCE
//! verifier and the refresh token, and the request reaches whatever listens on the *proxy's*
//! loopback port. Loopback targets should bypass environment proxies.
//!
//! The proxy stand-in runs on 127.0.0.1 and forwards to the local test server; every packet
//! stays on this machine. Its own test binary, because it sets environment variables.

mod common;
use common::*;
use mcp_oauth_client::MemoryStore;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A forwarding CONNECT proxy that records the bytes the client sends through its tunnels.
fn forwarding_proxy() -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
                s.lock().unwrap().extend_from_slice(format!("[{line}]\n").as_bytes());
                let Some(target) = line.strip_prefix("CONNECT ").and_then(|r| r.split(' ').next()) else { return };
                // Only ever forward to this machine's loopback.
                let addr: std::net::SocketAddr = match target.parse() {
                    Ok(a) => a,
                    Err(_) => format!("127.0.0.1:{}", target.rsplit(':').next().unwrap()).parse().unwrap(),
                };
                assert!(addr.ip().is_loopback());
                let Ok(mut up) = TcpStream::connect(addr) else { return };
                let _ = c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up2, &mut c2);
                });
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            s.lock().unwrap().extend_from_slice(&buf[..n]);
                            if up.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = up.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (url, seen)
}

#[test]
fn loopback_oauth_traffic_does_not_go_through_an_environment_proxy() {
    for v in ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] {
        std::env::remove_var(v);
    }
    let (proxy, seen) = forwarding_proxy();
    std::env::set_var("HTTPS_PROXY", &proxy);
    let s = server(|_| {});
    let (i, _) = following_browser();
    let mut mcp = Adapter::Blocking
        .with_parts(config(&s), Arc::new(MemoryStore::new()), i, Some(Duration::from_secs(5)), Arc::new(mcp_oauth_client::SystemClock))
        .unwrap();
    let r = mcp.list_tools().map(|t| t.len());
    std::env::remove_var("HTTPS_PROXY");
    let wire = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let exposed: Vec<&str> =
        ["authorization: Bearer", "code_verifier=", "grant_type=authorization_code"].into_iter().filter(|k| wire.contains(k)).collect();
    assert!(
        exposed.is_empty(),
        "the environment proxy read, in plain text: {exposed:?} (result {r:?}); first lines: {:?}",
        wire.lines().filter(|l| l.starts_with('[')).take(4).collect::<Vec<_>>()
    );
}
