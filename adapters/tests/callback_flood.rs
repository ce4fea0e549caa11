//! The callback port flooded: a hundred silent connections (half-open, slowloris) and junk
//! senders arrive before the browser's callback. The listener closes the oldest pending
//! connections to admit new ones, so the callback gets through at once; afterwards no thread
//! and no socket is left behind. (Its own test binary, one adapter at a time, so the process's
//! thread and descriptor counts mean something.)

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::MemoryStore;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Threads and open descriptors of this process (Linux), or zeros elsewhere.
fn resources() -> (usize, usize) {
    let count = |d: &str| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    (count("/proc/self/task"), count("/proc/self/fd"))
}

struct Seen {
    callback: Option<(u16, Duration)>,
}

fn flooding_browser(silent: usize, junk: usize) -> (Interaction, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen { callback: None }));
    let s = seen.clone();
    let mut i = Interaction::with_hook(move |url: &url::Url| {
        let (url, s) = (url.clone(), s.clone());
        std::thread::spawn(move || {
            let location = approve(&url);
            let port = url::Url::parse(&location).unwrap().port().unwrap();
            let addr = format!("127.0.0.1:{port}");
            // Half-open clients that never finish a request, held open through the callback.
            let held: Vec<TcpStream> = (0..silent).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
            for _ in 0..junk {
                if let Ok(mut c) = TcpStream::connect(&addr) {
                    let _ = c.write_all(b"\x16\x03\x01\x02\x00junk that is not http\r\n\r\n");
                }
            }
            let t = Instant::now();
            let (status, _) = get(&location);
            s.lock().unwrap().callback = Some((status, t.elapsed()));
            drop(held);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    (i, seen)
}

fn a_flooded_callback_port_still_gets_the_callback(a: Adapter) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = server(|_| {});
    // Warm up: the runtime's own threads and the HTTP pool exist before the baseline.
    let (i, _) = following_browser();
    a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap().list_tools().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (threads, fds) = resources();

    let (i, seen) = flooding_browser(100, 40);
    let t = Instant::now();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    mcp.list_tools().expect("the login completed despite the flood");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(100));
    let (status, took) = seen.lock().unwrap().callback.expect("the browser got an answer");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "the callback waited behind the flood: {took:?}");
    drop(mcp);

    // Everything the flood made goes away (pending heads time out within 5 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (t_now, f_now) = resources();
        if t_now <= threads + 8 && f_now <= fds + 8 {
            break;
        }
        assert!(Instant::now() < deadline, "leak: threads {threads} -> {t_now}, descriptors {fds} -> {f_now}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

on_every_adapter!(a_flooded_callback_port_still_gets_the_callback);
