//! Hostile servers over real sockets: a 20 MB body fails fast and typed, an HTML 500 is a typed
//! error, a slow server times out.

mod common;
use common::*;
use mcp_oauth_client::{Error, MemoryStore, SystemClock};
use mcp_oauth_core::{Error as CoreError, HttpError};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn a_twenty_megabyte_metadata_body_fails_fast(a: Adapter) {
    let s = server(|o| o.huge_body = Some(("/.well-known/oauth-protected-resource/mcp".into(), 20 * 1024 * 1024)));
    let (i, _) = following_browser();
    let t = Instant::now();
    let e = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap().list_tools().unwrap_err();
    assert!(matches!(e, Error::Core(CoreError::Http { error: HttpError::BodyTooLarge { limit: 262144 }, .. })), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

fn an_html_500_from_the_token_endpoint_is_typed(a: Adapter) {
    let s = server(|o| o.token_html_500 = true);
    let (i, _) = following_browser();
    let e = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap().list_tools().unwrap_err();
    assert!(matches!(e, Error::Core(CoreError::Http { error: HttpError::UnexpectedStatus { status: 500, .. }, .. })), "{e}");
}

fn a_slow_server_times_out(a: Adapter) {
    let s = server(|_| {});
    *s.slow.lock().unwrap() = Some(("/.well-known/oauth-protected-resource/mcp".into(), Duration::from_secs(3)));
    let (i, _) = following_browser();
    let mut mcp =
        a.with_parts(config(&s), Arc::new(MemoryStore::new()), i, Some(Duration::from_millis(500)), Arc::new(SystemClock)).unwrap();
    let t = Instant::now();
    let e = mcp.list_tools().unwrap_err();
    assert!(
        matches!(&e, Error::Core(CoreError::Http { error: HttpError::Transport(f), .. }) if f.kind == mcp_oauth_core::http::TransportFailureKind::Timeout),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

on_every_adapter!(a_twenty_megabyte_metadata_body_fails_fast, an_html_500_from_the_token_endpoint_is_typed, a_slow_server_times_out);
