//! Hostile servers over real sockets: a 20 MB body fails fast and typed, an HTML 500 is a typed
//! error, a slow server times out.

mod common;
use common::*;
use mcp_oauth_client::blocking::{HttpClient, McpClient, OAuthClient};
use mcp_oauth_client::{Error, MemoryStore, SystemClock};
use mcp_oauth_core::{Error as CoreError, HttpError};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_twenty_megabyte_metadata_body_fails_fast() {
    let s = server(|o| o.huge_body = Some(("/.well-known/oauth-protected-resource/mcp".into(), 20 * 1024 * 1024)));
    let (i, _) = following_browser();
    let t = Instant::now();
    let e = McpClient::with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap().list_tools().unwrap_err();
    assert!(matches!(e, Error::Core(CoreError::Http { error: HttpError::BodyTooLarge { limit: 262144 }, .. })), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn an_html_500_from_the_token_endpoint_is_typed() {
    let s = server(|o| o.token_html_500 = true);
    let (i, _) = following_browser();
    let e = McpClient::with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap().list_tools().unwrap_err();
    assert!(matches!(e, Error::Core(CoreError::Http { error: HttpError::UnexpectedStatus { status: 500, .. }, .. })), "{e}");
}

#[test]
fn a_slow_server_times_out() {
    let s = server(|_| {});
    *s.slow.lock().unwrap() = Some(("/.well-known/oauth-protected-resource/mcp".into(), Duration::from_secs(3)));
    let (i, _) = following_browser();
    let oauth = OAuthClient::with_parts(
        config(&s),
        Arc::new(MemoryStore::new()),
        i,
        HttpClient::new(Duration::from_millis(500)),
        Arc::new(SystemClock),
    )
    .unwrap();
    let t = Instant::now();
    let e = McpClient::new(config(&s).server_url, Some(oauth)).list_tools().unwrap_err();
    assert!(
        matches!(&e, Error::Core(CoreError::Http { error: HttpError::Transport(f), .. }) if f.kind == mcp_oauth_core::http::TransportFailureKind::Timeout),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}
