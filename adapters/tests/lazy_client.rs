//! Independent review: a lazy MCP client (the default `ConnectMode`) without a token after
//! failed logins. See core `review_lifecycle::r1` for the cause: `Challenged` without a prior
//! `TokenWanted` keeps the previous requests' attempt counter.

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{MemoryStore, SystemClock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A browser hook that ignores the URL (the user closed the tab) until `back` is set, then
/// follows it like `following_browser`.
fn flaky_browser(back: Arc<AtomicBool>) -> Interaction {
    let mut i = Interaction::with_hook(move |url: &url::Url| {
        if back.load(Ordering::SeqCst) {
            let url = url.clone();
            std::thread::spawn(move || {
                let loc = approve(&url);
                let _ = get(&loc);
            });
        }
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    i
}

/// Three abandoned logins, then the user is back: the fourth `tools/list` must log in and
/// succeed. It fails at once with `RejectedFreshToken` without contacting the authorization
/// server, and so does every later request of this client.
fn a_lazy_client_recovers_after_abandoned_logins(a: Adapter) {
    let s = server(|_| {});
    let mut c = config(&s);
    c.callback_timeout = Duration::from_millis(300);
    let back = Arc::new(AtomicBool::new(false));
    let mut mcp = a.with_parts(c, Arc::new(MemoryStore::new()), flaky_browser(back.clone()), None, Arc::new(SystemClock)).unwrap();
    for n in 1..=3 {
        let e = mcp.list_tools().unwrap_err();
        assert!(e.to_string().contains("timed out"), "attempt {n}: {e}");
    }
    back.store(true, Ordering::SeqCst);
    let logins = s.lock().authorization_requests().len();
    let r = mcp.list_tools().map(|t| t.len());
    let r2 = mcp.list_tools().map(|t| t.len());
    assert!(
        r.is_ok() && s.lock().authorization_requests().len() == logins + 1,
        "4th request: {r:?}; 5th: {r2:?}; logins tried after the user came back: {}",
        s.lock().authorization_requests().len() - logins
    );
}

on_every_adapter!(a_lazy_client_recovers_after_abandoned_logins);
