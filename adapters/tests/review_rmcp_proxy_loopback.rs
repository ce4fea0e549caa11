//! Review: under `public_or_loopback`, loopback is allowed because it does not leave the
//! machine, and "loopback never goes through [the proxy]". `ReqwestClient` decides "loopback"
//! for the proxy by the URL's spelling (`is_loopback_url`: `localhost`, `127/8`, `::1`), but the
//! policy by the resolved address. A target that is loopback only after resolution
//! (`localhost.` with its trailing dot) or an IPv4-mapped loopback literal (`::ffff:127.0.0.1`)
//! passes the policy as loopback and is then handed to the proxy, which resolves it to *its
//! own* loopback: the policy's "loopback" becomes another host's loopback services.
//! Both URLs are `https`, which `is_secure_endpoint` accepts for metadata endpoints.
//!
//! Every byte goes to a recording proxy on 127.0.0.1. Own test binary: it sets env variables.
#![cfg(feature = "tokio")]

use mcp_oauth_client::tokio::{HttpClient, ReqwestClient};
use mcp_oauth_core::config::NetworkPolicy;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn recording_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut h = Vec::new();
            let mut b = [0u8; 1];
            while !h.ends_with(b"\r\n\r\n") && h.len() < 8192 && c.read(&mut b).unwrap_or(0) == 1 {
                h.push(b[0]);
            }
            s.lock().unwrap().push(String::from_utf8_lossy(&h).lines().next().unwrap_or("").to_owned());
            let _ = c.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

#[test]
fn names_and_literals_that_are_loopback_after_resolution_do_not_go_through_the_proxy() {
    for v in ["ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] {
        std::env::remove_var(v);
    }
    let (proxy, seen) = recording_proxy();
    std::env::set_var("HTTPS_PROXY", &proxy);
    let client = ReqwestClient::new(Duration::from_secs(3)).with_policy(NetworkPolicy::PublicOrLoopback, "mcp.example.com");
    std::env::remove_var("HTTPS_PROXY");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut proxied = Vec::new();
    for target in ["https://localhost.:9/token", "https://[::ffff:127.0.0.1]:9/token", "https://localhost:9/token"] {
        let r = rt.block_on(client.send(http::Request::post(target).body(b"grant_type=x".to_vec()).unwrap(), 1024));
        std::thread::sleep(Duration::from_millis(50));
        let lines = std::mem::take(&mut *seen.lock().unwrap());
        if !lines.is_empty() {
            proxied.push(format!("{target}: the proxy was asked {lines:?} (result {:?})", r.map(|r| r.status()).map_err(|e| e.kind)));
        }
    }
    assert!(proxied.is_empty(), "loopback went through the proxy:\n{}", proxied.join("\n"));
}
