//! Wrong state and denied consent: typed errors, a clear page in the browser, nothing
//! exchanged. Junk and slow clients on the callback port do not block the real callback.

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{Error, MemoryStore};
use mcp_oauth_core::AuthorizationError;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn wrong_state_is_rejected_and_the_page_says_so(a: Adapter) {
    let s = server(|o| o.wrong_state = true);
    let (i, log) = following_browser();
    let mut c = config(&s);
    c.callback_timeout = Duration::from_secs(2);
    let mut mcp = a.with_oauth(c, Arc::new(MemoryStore::new()), i).unwrap();
    // The redirect with the wrong state is refused and the wait goes on (item 11) until the
    // deadline; nobody pastes, so the flow ends there.
    let e = mcp.list_tools().unwrap_err();
    assert!(matches!(e, Error::Core(mcp_oauth_core::Error::TimedOut { .. })), "{e}");
    std::thread::sleep(Duration::from_millis(200));
    let (status, page) = log.lock().unwrap().pages[0].clone();
    assert_eq!(status, 400);
    assert!(page.contains("does not belong to this session"), "{page}");
    assert!(s.lock().token_requests().is_empty(), "a code was exchanged after a state mismatch");
}

/// Item 11: forged requests on the callback port before the real redirect (a bare GET without
/// state from a local process or an `<img>` on a web page, and one with another `Host` from a
/// page rebinding its name to 127.0.0.1) get error pages; the real browser's redirect still ends
/// the login.
fn forged_callbacks_do_not_end_the_login(a: Adapter) {
    let s = server(|_| {});
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = log.clone();
    let mut i = Interaction::with_hook(move |url: &url::Url| {
        let (url, l) = (url.clone(), l.clone());
        let redirect = url.query_pairs().find(|(k, _)| k == "redirect_uri").unwrap().1.into_owned();
        let port = url::Url::parse(&redirect).unwrap().port().unwrap();
        std::thread::spawn(move || {
            let attack = |head: &str| {
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.write_all(head.as_bytes()).unwrap();
                let mut page = String::new();
                let _ = std::io::Read::read_to_string(&mut c, &mut page);
                let title = page.split("<h1").nth(1).and_then(|h| h.split('>').nth(1)).and_then(|h| h.split('<').next()).unwrap_or("");
                format!("{} / {title}", page.lines().next().unwrap_or(""))
            };
            let rebinding = attack("GET /callback?code=attacker HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n");
            let forged = attack(&format!("GET /callback?code=attacker HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"));
            let guessed = attack(&format!("GET /callback?code=attacker&state=guess HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"));
            let (status, _) = get(&approve(&url));
            l.lock().unwrap().extend([rebinding, forged, guessed, format!("real {status}")]);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    let tools = mcp.list_tools();
    std::thread::sleep(Duration::from_millis(300));
    let seen = log.lock().unwrap().clone();
    assert!(tools.is_ok(), "{tools:?} {seen:?}");
    assert_eq!(seen[0], "HTTP/1.1 400 Bad Request / Wrong address", "the listener checks Host: {seen:?}");
    let refused = "HTTP/1.1 400 Bad Request / This login link does not belong to this session";
    assert_eq!(seen[1..3], [refused; 2], "{seen:?}");
    assert_eq!(seen[3], "real 200");
    assert_eq!(s.lock().token_requests().len(), 1, "only the real code was exchanged");
}

fn denied_consent_shows_a_page_and_is_not_retried(a: Adapter) {
    let s = server(|o| o.deny = true);
    let (i, log) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    let e = mcp.list_tools().unwrap_err();
    assert!(
        matches!(&e, Error::Core(mcp_oauth_core::Error::Authorization(AuthorizationError::Denied(r))) if r.error == mcp_oauth_core::ErrorCode::AccessDenied)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(log.lock().unwrap().pages[0].1.contains("Access was denied"));
    assert_eq!(s.lock().authorization_requests().len(), 1);
}

fn junk_and_silent_clients_do_not_block_the_callback(a: Adapter) {
    let s = server(|_| {});
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let mut i = Interaction::with_hook(move |url: &url::Url| {
        let (url, l) = (url.clone(), l.clone());
        std::thread::spawn(move || {
            let loc = approve(&url);
            let origin = url::Url::parse(&loc).unwrap();
            let addr = format!("127.0.0.1:{}", origin.port().unwrap());
            // A client that connects and says nothing, one that sends junk, a favicon probe.
            let _silent = std::net::TcpStream::connect(&addr).unwrap();
            let mut junk = std::net::TcpStream::connect(&addr).unwrap();
            junk.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
            let favicon = get(&format!("http://{addr}/favicon.ico"));
            l.lock().unwrap().push(favicon);
            let page = get(&loc);
            l.lock().unwrap().push(page);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    mcp.list_tools().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pages = log.lock().unwrap().clone();
    assert_eq!(pages[0].0, 404, "other paths get 404 without ending the wait");
    assert_eq!(pages[1].0, 200);
}

on_every_adapter!(
    wrong_state_is_rejected_and_the_page_says_so,
    forged_callbacks_do_not_end_the_login,
    denied_consent_shows_a_page_and_is_not_retried,
    junk_and_silent_clients_do_not_block_the_callback
);
