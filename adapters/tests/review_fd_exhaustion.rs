//! Independent review of the one-driver change: the listener is stopped by a connection of its
//! own (`listener::wake`), and `Listener::close` then joins the accept loop. When that wake
//! connection cannot be made (the process is out of file descriptors for a moment: a long-lived
//! client's bad minute), the accept loop never sees the stop flag and `close` waits for ever:
//! the flow never returns, holding the machine and the store lock. Before the change the
//! async-std listener was cancelled outright. (Its own test binary: it exhausts the process's
//! descriptors for two seconds.)
//!
//! The library's listener was fixed; this test then hung about one run in four on a fast
//! flow: the flow returned while the descriptors were still hogged, and the *test server's* own
//! `Drop` (in `tests/src/tcp.rs`) made a wake connection that failed and joined its accept thread
//! for ever. That `Drop` now retries the wake connection until its accept loop has stopped.

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::MemoryStore;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn a_flow_returns_after_a_moment_without_descriptors(a: Adapter) {
    // The test driver makes its tokio runtime on first use, and a runtime needs descriptors of
    // its own (epoll, an eventfd): make it before any case of this binary hogs them all.
    #[cfg(feature = "tokio")]
    let _ = common::driver::tokio_runtime();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = server(|_| {});
    // Each case waits for its own descriptors to come back before the next case starts (else the
    // next one starts out of descriptors and hogs none itself).
    let (released_tx, released) = std::sync::mpsc::channel::<()>();
    let mut i = Interaction::with_hook(move |url: &url::Url| {
        let url = url.clone();
        let released_tx = released_tx.clone();
        std::thread::spawn(move || {
            let location = url::Url::parse(&approve(&url)).unwrap();
            let mut cb = std::net::TcpStream::connect(("127.0.0.1", location.port().unwrap())).unwrap();
            let target = format!("{}?{}", location.path(), location.query().unwrap_or(""));
            let host = format!("127.0.0.1:{}", location.port().unwrap());
            // Out of descriptors from now on, for two seconds (the code exchange and the
            // listener's wake connection both need a socket).
            let mut hogs = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hogs.push(f);
            }
            let wrote = cb.write_all(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            eprintln!(
                "hogged {} descriptors; callback written: {wrote:?}; a socket now: {:?}",
                hogs.len(),
                std::net::TcpStream::connect(&host).map(|_| ())
            );
            std::thread::sleep(Duration::from_secs(2));
            drop(hogs);
            let _ = released_tx.send(());
            std::thread::sleep(Duration::from_secs(30));
            drop(cb);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    let (tx, rx) = std::sync::mpsc::channel();
    let c = config(&s);
    std::thread::spawn(move || {
        let mut mcp = a.with_oauth(c, Arc::new(MemoryStore::new()), i).unwrap();
        let r = mcp.list_tools().map(|t| t.len()).map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    let started = std::time::Instant::now();
    let r = rx.recv_timeout(Duration::from_secs(45));
    eprintln!("flow result after {:?}: {r:?}", started.elapsed());
    let _ = released.recv_timeout(Duration::from_secs(10));
    assert!(r.is_ok(), "the flow never returned after the descriptors came back (listener close hangs)");
}

on_every_adapter!(a_flow_returns_after_a_moment_without_descriptors);
