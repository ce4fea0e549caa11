//! Independent review of item 19 (TRACE logs of the HTTP stack): credentials the user
//! configures for a server other than OAuth ones still reach ureq in plain text and its TRACE
//! wire dump. The README says "Credentials never pass through ureq in plain text"; the scrubbing
//! transport only covers `Authorization`, `Proxy-Authorization`, `DPoP` and OAuth bodies.
//!
//! Common in practice: MCP servers that take an API key in a header (`X-Api-Key`,
//! `X-Goog-Api-Key`, `Cookie`) configured through `Transport::headers`, or in the URL query
//! (`https://host/mcp?api_key=…`). With OAuth configured too, they travel on every request.

mod common;
use common::*;
use mcp_oauth_client::{Interaction, MemoryStore, ServerConfig};
use std::sync::{Arc, Mutex};

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        LOGS.lock().unwrap().push(r.args().to_string());
    }
    fn flush(&self) {}
}

/// ureq-proto's rows (16 bytes each: 8 hex groups, then text) put back into bytes.
fn wire() -> String {
    let mut bytes = Vec::new();
    for text in LOGS.lock().unwrap().iter() {
        let Some(hex) = text.get(..40) else { continue };
        let groups: Vec<&str> = hex.split_terminator(' ').collect();
        if groups.len() != 8 || groups.iter().any(|g| g.len() != 4) {
            continue;
        }
        for pair in groups.concat().as_bytes().chunks(2) {
            match std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()) {
                Some(b) => bytes.push(b),
                None => break,
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Every test sets the level, not only the one that installed the logger.
fn install_logger() {
    let _ = log::set_logger(&Recorder);
    log::set_max_level(log::LevelFilter::Trace);
}

/// Lists the `secrets` found in the TRACE log (the rows and the bytes they dump).
fn leaked(secrets: &[&'static str]) -> Vec<&'static str> {
    let dump = wire();
    let all = LOGS.lock().unwrap().join("\n");
    secrets.iter().copied().filter(|k| dump.contains(k) || all.contains(k)).collect()
}

#[test]
fn configured_header_and_url_credentials_stay_out_of_the_trace_dump() {
    install_logger();
    let s = server(|o| o.open = true);
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({
        "type": "streamable_http",
        "url": format!("{}?api_key=url-key-SECRET-1", s.mcp_url()),
        "headers": {"X-Api-Key": "header-key-SECRET-2"}
    }))
    .unwrap();
    let env = |_: &str| None;
    let mut mcp =
        mcp_oauth_client::blocking::McpClient::from_config(&cfg, Arc::new(MemoryStore::new()), Interaction::non_interactive(), &env)
            .unwrap();
    mcp.list_tools().unwrap();
    let leaked = leaked(&["header-key-SECRET-2", "url-key-SECRET-1"]);
    assert!(leaked.is_empty(), "in the TRACE log: {leaked:?}");
}

/// Second review: a short query (`?key=Zk3f9QpX2a`, 14 bytes) is swapped out too.
#[test]
fn a_short_url_credential_stays_out_of_the_trace_dump() {
    install_logger();
    let s = server(|o| o.open = true);
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({
        "type": "streamable_http",
        "url": format!("{}?key=Zk3f9QpX2a", s.mcp_url())
    }))
    .unwrap();
    let env = |_: &str| None;
    let mut mcp =
        mcp_oauth_client::blocking::McpClient::from_config(&cfg, Arc::new(MemoryStore::new()), Interaction::non_interactive(), &env)
            .unwrap();
    mcp.list_tools().unwrap();
    let leaked = leaked(&["Zk3f9QpX2a"]);
    assert!(leaked.is_empty(), "in the TRACE log: {leaked:?}");
}
