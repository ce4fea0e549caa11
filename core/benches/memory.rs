//! Memory of core, measured with a counting allocator (its own bench binary, so the timed
//! benchmarks run on the plain allocator): allocations and bytes of one cold
//! authorization-code flow, core alone (the test server's work is not counted), the heap a
//! machine holding tokens keeps, and the allocations of the warm path.
//! Run: `cargo bench -p mcp-oauth-core --bench memory`.

use criterion::black_box;
use mcp_oauth_core::{Authorizer, CallbackSetup, Config, Entropy, Input, Output, RedirectSource, Restored, Timestamp};
use mcp_oauth_tests::{Options, TestServer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

/// Counts allocations while `COUNTING` is set (the flow is single-threaded; the test server's
/// work is excluded by switching it off around `server.handle`).
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// Bytes live on the heap, tracked while `TRACKING` is set.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static TRACKING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            if COUNTING.load(Ordering::Relaxed) {
                ALLOCS.fetch_add(1, Ordering::Relaxed);
                BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            }
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if TRACKING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<T>(f: impl FnOnce() -> T) -> T {
    COUNTING.store(true, Ordering::Relaxed);
    let out = f();
    COUNTING.store(false, Ordering::Relaxed);
    out
}

/// Runs `f` with the test server's allocations not counted.
fn server_side<T>(f: impl FnOnce() -> T) -> T {
    let counting = COUNTING.swap(false, Ordering::Relaxed);
    let out = f();
    COUNTING.store(counting, Ordering::Relaxed);
    out
}

/// One cold flow; returns the machine at the end (holding its tokens).
fn cold_flow() -> Authorizer {
    let mut server = server_side(|| TestServer::new(Options::new("https://mcp.example.com")));
    let now = Timestamp::from_secs(1_700_000_000);
    let config = Config::new(server.options.mcp_url().parse().unwrap());
    let mut auth = Authorizer::new(config, Restored::default(), now).unwrap();
    auth.handle_input(Input::TokenWanted { now }).unwrap();
    loop {
        let next = match auth.poll_output() {
            Output::Send(req) => Input::Response { now, id: req.id, result: Ok(server_side(|| server.handle(&req.request))) },
            Output::PrepareAttempt(plan) => Input::AttemptPrepared {
                now,
                entropy: Entropy::from_bytes([5; 96]),
                callback: CallbackSetup::Listening(plan.redirect.unwrap().redirect_uri(40000)),
            },
            Output::OpenAuthorizationUrl { url, .. } => {
                let loc = server_side(|| {
                    let resp = server.handle(&http::Request::get(url.as_str()).body(Vec::new()).unwrap());
                    resp.headers()["location"].to_str().unwrap().to_owned()
                });
                Input::Redirect { now, url: loc, source: RedirectSource::Loopback }
            }
            Output::Ready(a) => {
                black_box(a);
                server_side(|| drop(server));
                return auth;
            }
            Output::Failed(e) => panic!("{e}"),
            _ => continue,
        };
        auth.handle_input(next).unwrap();
    }
}

/// Allocations of core alone during one cold flow, what a machine holding tokens keeps on the
/// heap, and the per-request cost of the warm path.
fn memory_report() {
    TRACKING.store(true, Ordering::Relaxed);
    let (a0, b0) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    let mut kept: Box<Authorizer> = Box::new(
        Authorizer::new(Config::new("https://mcp.example.com/mcp".parse().unwrap()), Restored::default(), Timestamp::from_secs(0)).unwrap(),
    );
    let live0 = LIVE.load(Ordering::Relaxed);
    counted(|| *kept = cold_flow());
    let (allocs, bytes) = (ALLOCS.load(Ordering::Relaxed) - a0, BYTES.load(Ordering::Relaxed) - b0);
    // The test server is gone; what grew is what the machine holds now.
    let retained = LIVE.load(Ordering::Relaxed) - live0;
    let mut auth = kept;
    let now = Timestamp::from_secs(1_700_000_000);
    let a1 = ALLOCS.load(Ordering::Relaxed);
    counted(|| {
        auth.handle_input(Input::TokenWanted { now }).unwrap();
        assert!(matches!(black_box(auth.poll_output()), Output::Ready(_)));
    });
    let warm = ALLOCS.load(Ordering::Relaxed) - a1;
    TRACKING.store(false, Ordering::Relaxed);
    eprintln!(
        "memory: cold flow in core: {allocs} allocations, {bytes} bytes allocated in all; \
         a machine holding tokens keeps {retained} more bytes on the heap than a new one ({} inline); \
         TokenWanted with a held token: {warm} allocations",
        std::mem::size_of::<Authorizer>()
    );
}

fn main() {
    // `cargo bench` passes --bench; `-- --test` (CI's smoke run) works the same.
    memory_report();
}
