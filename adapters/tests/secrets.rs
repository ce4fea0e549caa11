//! No secret in any log line, error message or `Debug` output: full flows (login with a
//! confidential DCR client, refresh after revocation, step-up, DPoP, client credentials, the
//! legacy SSE transport) and failing ones (wrong state, denial, a 500, a bad client secret) run
//! on each adapter while a logger records every record of every crate at TRACE; then every
//! access token, refresh token, client secret, code, verifier, state and DPoP key the server
//! saw or the store holds is searched for in all of it, including the bytes the HTTP stack
//! dumps (ureq-proto writes them 16 to a record, so they are put back together first).
//!
//! The library's own debug records of each flow step must be there too, so the scan also
//! fails if the logging disappears.

mod common;
use common::*;
use mcp_oauth_client::{Error, MemoryStore, ServerConfig, TokenStore};
use mcp_oauth_tests::PreClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

/// One log record of this test binary.
#[derive(Clone)]
struct Logged {
    level: log::Level,
    target: String,
    thread: ThreadId,
    text: String,
}

/// Every log record of this test binary, of every crate, at every level.
static LOGS: Mutex<Vec<Logged>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        let entry =
            Logged { level: r.level(), target: r.target().to_owned(), thread: std::thread::current().id(), text: r.args().to_string() };
        LOGS.lock().unwrap().push(entry);
    }
    fn flush(&self) {}
}

fn install_logger() {
    if log::set_logger(&Recorder).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    // No `max_level_*` feature of `log` anywhere in the build may compile TRACE records out.
    assert_eq!(log::STATIC_MAX_LEVEL, log::LevelFilter::Trace, "a log feature caps the static level");
    assert_eq!(log::max_level(), log::LevelFilter::Trace);
}

/// The bytes of one row of ureq-proto's wire dump (`util::log_data`: 16 bytes a record, as 8
/// groups of 4 hex digits, `--` past the end, then the printable characters), or `None`.
fn dump_row(text: &str) -> Option<Vec<u8>> {
    let (hex, ascii) = (text.get(..40)?, text.get(40..)?);
    if ascii.len() != 17 || !ascii.starts_with(' ') {
        return None;
    }
    let groups: Vec<&str> = hex.split_terminator(' ').collect();
    if groups.len() != 8 || groups.iter().any(|g| g.len() != 4) {
        return None;
    }
    let mut bytes = Vec::new();
    for pair in groups.concat().as_bytes().chunks(2) {
        match pair {
            b"--" => break,
            p => bytes.push(u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()?),
        }
    }
    Some(bytes)
}

/// The wire dumps in `logs`, put back together: one byte stream per thread.
fn wire_dumps(logs: &[Logged]) -> Vec<String> {
    let mut by_thread: HashMap<ThreadId, Vec<u8>> = HashMap::new();
    for l in logs.iter().filter(|l| l.level == log::Level::Trace) {
        if let Some(bytes) = dump_row(&l.text) {
            by_thread.entry(l.thread).or_default().extend(bytes);
        }
    }
    by_thread.into_values().map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
}

/// The secrets a server saw: tokens it accepted, codes, verifiers, states, client secrets,
/// assertions.
fn secrets_seen(s: &mcp_oauth_tests::tcp::TcpTestServer) -> Vec<String> {
    let server = s.lock();
    let mut out = Vec::new();
    for r in &server.log {
        for (k, v) in &r.params {
            if ["code", "code_verifier", "refresh_token", "client_secret", "client_assertion", "subject_token", "assertion"]
                .contains(&k.as_str())
            {
                out.push(v.clone());
            }
        }
        if let Some(a) = &r.authorization {
            let (scheme, value) = a.split_once(' ').unwrap_or(("", a));
            out.push(value.to_owned());
            if scheme == "Basic" {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD.decode(value).unwrap_or_default();
                let text = String::from_utf8_lossy(&decoded).to_string();
                if let Some((_, secret)) = text.split_once(':') {
                    out.push(secret.to_owned());
                }
            }
        }
    }
    for params in server.authorization_requests() {
        out.extend(params.into_iter().filter(|(k, _)| k == "state").map(|(_, v)| v));
    }
    out
}

/// The secrets a store holds for `server`: tokens (also those issued but never presented),
/// the DPoP key, client secrets.
fn secrets_stored(store: &MemoryStore, server: &str) -> Vec<String> {
    let restored = store.load(server).unwrap();
    let mut out = Vec::new();
    if let Some(t) = &restored.tokens {
        out.push(t.access_token.secret().to_owned());
        out.extend(t.refresh_token.as_ref().map(|r| r.secret().to_owned()));
        out.extend(t.dpop_key.as_ref().map(|k| k.secret().to_owned()));
    }
    out.extend(restored.clients.iter().filter_map(|c| c.client_secret.as_ref().map(|s| s.secret().to_owned())));
    out
}

fn assert_no_secret(haystack: &[String], secrets: &[String]) {
    assert!(!secrets.is_empty(), "no secrets collected: the scan would prove nothing");
    for text in haystack {
        for secret in secrets {
            if let Some(at) = text.find(secret.as_str()) {
                let mut from = at.saturating_sub(80);
                while !text.is_char_boundary(from) {
                    from -= 1;
                }
                panic!("a secret of {} bytes leaked into: …{}{}…", secret.len(), &text[from..at], &secret[..8]);
            }
        }
    }
}

fn everything_shows_no_secret(a: Adapter) {
    install_logger();
    let mut shown = Vec::new();
    let show_err = |e: Error, shown: &mut Vec<String>| {
        shown.push(e.to_string());
        shown.push(format!("{e:?}"));
    };

    // A confidential DCR client (its secret goes out in Basic auth), login, step-up, refresh.
    let s = server(|o| o.dcr_confidential = true);
    let store = MemoryStore::new();
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(store.clone()), i.clone()).unwrap();
    mcp.call_tool("echo", serde_json::json!({"text": "x"})).unwrap();
    mcp.call_tool("admin-tool", serde_json::json!({})).unwrap();
    s.lock().revoke_access_tokens();
    mcp.list_tools().unwrap();
    shown.push(format!("{mcp:?}"));
    let restored = store.load(config(&s).server_url.as_str()).unwrap();
    shown.push(format!("{restored:?}"));
    shown.push(format!("{:?} {:?} {:?}", config(&s), i, store));
    // The tokens are there, only not shown.
    assert!(restored.tokens.is_some() && restored.clients[0].client_secret.is_some());
    let mut secrets = secrets_seen(&s);
    secrets.extend(secrets_stored(&store, config(&s).server_url.as_str()));

    // DPoP-bound tokens.
    let d = server(|o| o.dpop = true);
    let (i, _) = following_browser();
    let store = MemoryStore::new();
    let mut mcp = a.with_oauth(config(&d), Arc::new(store.clone()), i).unwrap();
    mcp.list_tools().unwrap();
    shown.push(format!("{mcp:?}"));
    secrets.extend(secrets_seen(&d));
    secrets.extend(secrets_stored(&store, config(&d).server_url.as_str()));

    // The legacy HTTP+SSE transport: the event stream is opened with the token.
    let sse = server(|o| {
        o.legacy_sse = true;
        o.mcp_path = "/sse".into();
    });
    let (i, _) = following_browser();
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({"type": "sse", "url": sse.mcp_url(), "oauth": {}})).unwrap();
    let store = MemoryStore::new();
    let mut mcp = a.configured(&cfg, Arc::new(store.clone()), i, &|_| None).unwrap();
    mcp.call_tool("echo", serde_json::json!({"text": "legacy"})).unwrap();
    shown.push(format!("{mcp:?}"));
    drop(mcp);
    assert!(sse.lock().log.iter().any(|r| r.method == "GET" && r.status == 200 && r.authorization.is_some()), "stream opened with a token");
    secrets.extend(secrets_seen(&sse));
    secrets.extend(secrets_stored(&store, config(&sse).server_url.as_str()));

    // Failures: each error's Display and Debug.
    for configure in [
        (|o: &mut mcp_oauth_tests::Options| o.wrong_state = true) as fn(&mut mcp_oauth_tests::Options),
        |o| o.deny = true,
        |o| o.token_html_500 = true,
    ] {
        let f = server(configure);
        let (i, _) = following_browser();
        let mut c = config(&f);
        c.callback_timeout = std::time::Duration::from_secs(1); // a refused callback waits on until then
        show_err(a.with_oauth(c, Arc::new(MemoryStore::new()), i).unwrap().list_tools().unwrap_err(), &mut shown);
        secrets.extend(secrets_seen(&f));
    }
    let r = server(|o| o.token_lifetime = Some(1));
    let (i, _) = following_browser();
    let store = MemoryStore::new();
    a.with_oauth(config(&r), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    secrets.extend(secrets_stored(&store, config(&r).server_url.as_str()));
    r.lock().options.refresh_invalid_grant = true;
    std::thread::sleep(std::time::Duration::from_millis(1100)); // the 1 s token is due
    show_err(
        a.with_oauth(config(&r), Arc::new(store), mcp_oauth_client::Interaction::non_interactive()).unwrap().list_tools().unwrap_err(),
        &mut shown,
    );
    secrets.extend(secrets_seen(&r));

    // Client credentials with the right secret, then a wrong one.
    let cc = server(|o| {
        o.grant_types = vec!["client_credentials".into()];
        o.dcr = false;
        o.clients = vec![PreClient { id: "svc".into(), secret: Some("the-real-client-secret".into()), jwt_key: None }];
    });
    for secret in ["the-real-client-secret", "a-wrong-client-secret"] {
        let cfg: ServerConfig = serde_json::from_value(serde_json::json!({
            "type": "streamable_http", "url": cc.mcp_url(), "oauth": {"client_id": "svc", "client_secret": secret}
        }))
        .unwrap();
        shown.push(format!("{cfg:?}"));
        shown.push(serde_json::to_string(&cfg).unwrap()); // written back redacted
        let store = MemoryStore::new();
        let mut mcp = a.configured(&cfg, Arc::new(store.clone()), mcp_oauth_client::Interaction::non_interactive(), &|_| None).unwrap();
        match mcp.list_tools() {
            Ok(_) => shown.push(format!("{mcp:?}")),
            Err(e) => show_err(e, &mut shown),
        }
        secrets.extend(secrets_stored(&store, config(&cc).server_url.as_str()));
    }
    secrets.extend(secrets_seen(&cc));
    secrets.push("a-wrong-client-secret".into());
    secrets.retain(|v| v.len() >= 8);
    secrets.sort();
    secrets.dedup();

    let logs = LOGS.lock().unwrap().clone();
    // The library logs each step of its flows at DEBUG (the scan below shows none carries a
    // secret): here the login, refresh and failure of this adapter's servers.
    let ours = |origin: String, step: &str| {
        let prefix = format!("{origin}/mcp: {step}");
        logs.iter().any(|l| l.level == log::Level::Debug && l.target == "mcp_oauth_client::flow" && l.text.starts_with(&prefix))
    };
    let o = s.origin();
    for step in [
        format!("discovery: GET {o}/.well-known/oauth-protected-resource/mcp"),
        format!("registration: POST {o}/register"),
        format!("authorization: opening {o}/authorize?… (browser or hook)"),
        "authorization: waiting up to 20 s for the callback on 127.0.0.1:".into(),
        "authorization: callback received".into(),
        format!("token: code exchange at {o}/token for {o}/"),
        format!("token: refresh at {o}/token for {o}/"),
        "token refresh: 200 OK".into(),
        format!("persist: tokens for {o}/mcp from {o}/ (expires in 3600 s)"),
        "ready: Bearer token (expires in 3600 s)".into(),
    ] {
        assert!(ours(o.clone(), &step), "no DEBUG record \"{step}\" from {o}/mcp");
    }
    assert!(ours(r.origin(), "token refresh: 400 Bad Request"), "no DEBUG record of the refused refresh");
    assert!(ours(r.origin(), "failed: authorization: interactive login required"), "no DEBUG record of the failure");
    assert!(ours(d.origin(), "ready: DPoP token"), "no DEBUG record of the DPoP flow");
    let wire = wire_dumps(&logs);
    // The scan sees what the HTTP stack puts on the wire, or it proves nothing about it.
    assert!(wire.iter().any(|w| w.contains("HTTP/1.1 200")), "no wire dump of the HTTP stack was recorded");
    shown.extend(logs.into_iter().map(|l| format!("{} {} {}", l.level, l.target, l.text)));
    shown.extend(wire);
    assert_no_secret(&shown, &secrets);
}

on_every_adapter!(everything_shows_no_secret);
