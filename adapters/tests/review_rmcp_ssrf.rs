//! Review: `ReqwestClient::precheck` recognises an IP literal with `host.parse::<IpAddr>()` on
//! the `http::Uri`'s host, but reqwest turns the `http::Uri` into a `url::Url`, which (WHATWG)
//! normalises the legacy IPv4 forms `2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1` into
//! `127.0.0.1`. hyper never resolves an IP literal, so the resolver hook is not called either:
//! the address is never checked, and the connection is made.
//!
//! Loopback stands in for a forbidden address (forbidden under `public`); the listener must
//! see no connection.
#![cfg(feature = "tokio")]

use mcp_oauth_client::core::http::TransportFailureKind;
use mcp_oauth_client::tokio::{HttpClient, ReqwestClient};
use mcp_oauth_core::config::NetworkPolicy;
use std::time::Duration;

fn refused_without_a_connection(target: &dyn Fn(u16) -> String) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = target(port);
    let client = ReqwestClient::new(Duration::from_secs(2)).with_policy(NetworkPolicy::Public, "mcp.example.com");
    let req = http::Request::get(&url).body(Vec::new()).unwrap();
    let r = rt.block_on(client.send(req, 1024));
    std::thread::sleep(Duration::from_millis(50));
    let connected = listener.accept().is_ok();
    match r {
        Err(e) if e.kind == TransportFailureKind::Blocked && !connected => Ok(()),
        r => Err(format!("{url}: connected = {connected}, result = {:?}", r.map(|r| r.status()).map_err(|e| (e.kind, e.message)))),
    }
}

#[test]
fn legacy_ipv4_literals_are_checked_like_dotted_ones() {
    let forms: [&dyn Fn(u16) -> String; 5] = [
        &|p| format!("http://127.0.0.1:{p}/latest/meta-data/"), // control: refused today
        &|p| format!("http://2130706433:{p}/latest/meta-data/"),
        &|p| format!("http://0x7f000001:{p}/latest/meta-data/"),
        &|p| format!("http://127.1:{p}/latest/meta-data/"),
        &|p| format!("http://0177.0.0.1:{p}/latest/meta-data/"),
    ];
    let failures: Vec<String> = forms.iter().filter_map(|f| refused_without_a_connection(*f).err()).collect();
    assert!(failures.is_empty(), "reached a forbidden address:\n{}", failures.join("\n"));
}
