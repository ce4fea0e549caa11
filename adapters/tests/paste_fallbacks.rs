//! The paste fallback: port in use, headless session, browser failure, timeout; paste while
//! listening; and nobody able to log in.

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{Error, MemoryStore};
use mcp_oauth_core::AuthorizationError;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn run(a: Adapter, s: &mcp_oauth_tests::tcp::TcpTestServer, c: mcp_oauth_client::Config, i: Interaction) -> Result<(), Error> {
    let mut mcp = a.with_oauth(c, Arc::new(MemoryStore::new()), i)?;
    let r = mcp.call_tool("echo", serde_json::json!({"text": "pasted"}))?;
    assert_eq!(r["content"][0]["text"], "pasted");
    assert_eq!(s.lock().authorization_requests().len(), 1);
    Ok(())
}

fn port_in_use_means_paste(a: Adapter) {
    let s = server(|_| {});
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut c = config(&s);
    c.redirect_uri = format!("http://127.0.0.1:{port}/callback").parse().unwrap();
    let (i, used) = pasting(None);
    run(a, &s, c, i).unwrap();
    assert_eq!(*used.lock().unwrap(), 1);
}

fn headless_session_means_paste(a: Adapter) {
    let s = server(|_| {});
    let (i, used) = pasting(None); // env says CI=true, no hook: no browser
    run(a, &s, config(&s), i).unwrap();
    assert_eq!(*used.lock().unwrap(), 1);
}

fn browser_failure_means_paste(a: Adapter) {
    let s = server(|_| {});
    let (mut i, used) = pasting(Some(Arc::new(|_: &url::Url| UrlHandled::NotOpened("no browser installed".into()))));
    i.env = Arc::new(|k: &str| (k == "DISPLAY").then(|| ":0".to_owned()));
    run(a, &s, config(&s), i).unwrap();
    assert_eq!(*used.lock().unwrap(), 1);
}

fn callback_timeout_means_paste(a: Adapter) {
    let s = server(|_| {});
    let mut c = config(&s);
    c.callback_timeout = Duration::from_millis(800);
    // The "browser" opens but never comes back to the listener.
    let (i, used) = pasting(Some(Arc::new(|_: &url::Url| UrlHandled::Opened)));
    let t = Instant::now();
    run(a, &s, c, i).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(800), "{:?}", t.elapsed());
    assert_eq!(*used.lock().unwrap(), 1);
}

fn paste_while_listening_wins_without_waiting(a: Adapter) {
    let s = server(|_| {});
    let mut c = config(&s);
    c.callback_timeout = Duration::from_secs(60);
    let (mut i, used) = pasting(Some(Arc::new(|_: &url::Url| UrlHandled::Opened)));
    i.paste_while_listening = true;
    let t = Instant::now();
    run(a, &s, c, i).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(*used.lock().unwrap(), 1);
}

fn nobody_can_log_in_is_a_typed_error(a: Adapter) {
    let s = server(|_| {});
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), Interaction::non_interactive()).unwrap();
    let e = mcp.list_tools().unwrap_err();
    assert!(matches!(e, Error::Core(mcp_oauth_core::Error::Authorization(AuthorizationError::InteractionRequired))), "{e}");
    assert!(s.lock().authorization_requests().is_empty());
}

on_every_adapter!(
    port_in_use_means_paste,
    headless_session_means_paste,
    browser_failure_means_paste,
    callback_timeout_means_paste,
    paste_while_listening_wins_without_waiting,
    nobody_can_log_in_is_a_typed_error
);
