//! No secret in any log line, error message or `Debug` output: full flows (login with a
//! confidential DCR client, refresh after revocation, step-up, DPoP, client credentials) and
//! failing ones (wrong state, denial, a 500, a bad client secret) run on each adapter while a
//! logger records everything; then every access token, refresh token, client secret, code and
//! verifier the server saw is searched for in all of it.

mod common;
use common::*;
use mcp_oauth_client::{Error, MemoryStore, ServerConfig, TokenStore};
use mcp_oauth_tests::PreClient;
use std::sync::{Arc, Mutex};

/// Every log record of this test binary, at every level.
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        LOGS.lock().unwrap().push(format!("{} {} {}", r.level(), r.target(), r.args()));
    }
    fn flush(&self) {}
}

fn install_logger() {
    if log::set_logger(&Recorder).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// The secrets a server saw: tokens it accepted, codes, verifiers, client secrets, assertions.
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
    out.retain(|v| v.len() >= 8);
    out.sort();
    out.dedup();
    out
}

fn assert_no_secret(haystack: &[String], secrets: &[String]) {
    assert!(!secrets.is_empty(), "no secrets collected: the scan would prove nothing");
    for text in haystack {
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "a secret leaked into: {text}");
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

    // DPoP-bound tokens.
    let d = server(|o| o.dpop = true);
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&d), Arc::new(MemoryStore::new()), i).unwrap();
    mcp.list_tools().unwrap();
    shown.push(format!("{mcp:?}"));
    secrets.extend(secrets_seen(&d));

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
        let mut mcp =
            a.configured(&cfg, Arc::new(MemoryStore::new()), mcp_oauth_client::Interaction::non_interactive(), &|_| None).unwrap();
        match mcp.list_tools() {
            Ok(_) => shown.push(format!("{mcp:?}")),
            Err(e) => show_err(e, &mut shown),
        }
    }
    secrets.extend(secrets_seen(&cc));
    secrets.push("a-wrong-client-secret".into());

    let logs = LOGS.lock().unwrap().clone();
    shown.extend(logs);
    assert_no_secret(&shown, &secrets);
}

on_every_adapter!(everything_shows_no_secret);
