//! Second independent review: the scrubbing transport swaps the URL query for a placeholder
//! only when it is at least 16 bytes long (`MIN_SWAPPED_BODY`, adapters/src/transport/scrub.rs,
//! `scrub`). A shorter query goes to ureq, and into its TRACE wire dump, as it is: an API key in
//! the server URL such as `?key=Zk3f9QpX2a` (14 bytes) is logged in plain text. (Header values
//! of any length are swapped; a 32-byte placeholder can stand for a short value because the
//! head has no length field, and a query can be padded likewise, or the whole request line
//! rebuilt.)

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

#[test]
fn a_short_url_credential_stays_out_of_the_trace_dump() {
    if log::set_logger(&Recorder).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
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
    let dump = wire();
    let all = LOGS.lock().unwrap().join("\n");
    let leaked: Vec<_> = ["Zk3f9QpX2a"].into_iter().filter(|k| dump.contains(k) || all.contains(k)).collect();
    assert!(leaked.is_empty(), "in the TRACE log: {leaked:?}");
}
