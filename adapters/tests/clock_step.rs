//! Independent review: a wall clock stepped back (NTP correcting a clock that ran ahead, a VM
//! resumed from a snapshot) while a client runs. Core never lets its time go backwards (it
//! keeps the latest `now` it saw), and computes the callback deadline from that time; the
//! adapter then waits `deadline - clock.now()`, on the corrected clock. So the configured
//! callback timeout (here 1 s, default 5 min) becomes the size of the step plus the timeout:
//! a login nobody finishes holds the caller (and the store lock) for an hour here, for years
//! after a clock that had jumped to a wrong year.

mod common;
use common::*;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{Clock, MemoryStore, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct SettableClock(AtomicU64);

impl Clock for SettableClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[test]
fn the_callback_timeout_holds_after_the_clock_is_stepped_back() {
    let s = server(|_| {});
    let mut c = config(&s);
    c.callback_timeout = Duration::from_secs(1);
    let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    // The machine's clock ran an hour ahead when the program started.
    let clock = Arc::new(SettableClock(AtomicU64::new(real + 3_600_000)));
    let mut i = Interaction::with_hook(|_: &url::Url| UrlHandled::Opened); // the user never comes back
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    let oauth = mcp_oauth_client::blocking::OAuthClient::with_parts(
        c,
        Arc::new(MemoryStore::new()),
        i,
        Arc::new(mcp_oauth_client::blocking::UreqClient::default()),
        clock.clone(),
    )
    .unwrap();
    // NTP steps it back; then the application needs a token.
    clock.0.store(real, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let r = oauth.authorization().map(|_| ());
        let _ = tx.send((r, started.elapsed()));
    });
    // Keep the settable clock moving with real time.
    for _ in 0..100 {
        if let Ok((r, took)) = rx.try_recv() {
            assert!(took < Duration::from_secs(10), "{r:?} after {took:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        clock.0.fetch_add(100, Ordering::SeqCst);
    }
    panic!("a login with a 1 s callback timeout is still waiting after 10 s (the clock was stepped back by an hour)");
}
