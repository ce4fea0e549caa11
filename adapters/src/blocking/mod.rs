//! The blocking adapter (feature `blocking`, default): ureq for HTTP, a `std::net` listener
//! thread for the callback, the system browser, a stdin paste prompt, and a token store.
//!
//! [`OAuthClient`] and [`McpClient`] are the one driver (the same code as every other
//! adapter's) run on the calling thread: each method blocks until its work is done. What this
//! module adds is only the runtime: [`Blocking`] (threads, `std::net` sockets, blocking reads
//! with timeouts) and [`block_on`].
//!
//! ```no_run
//! use mcp_oauth_client::blocking::McpClient;
//! use mcp_oauth_client::{Config, FileStore, Interaction};
//! use std::sync::Arc;
//!
//! let config = Config::new("https://mcp.example.com/mcp".parse()?);
//! let store = Arc::new(FileStore::in_default_dir()?);
//! let mut mcp = McpClient::with_oauth(config, store, Interaction::default())?;
//! for tool in mcp.list_tools()? {
//!     println!("{}", tool.name);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::driver::{BoxFuture, ByteStream, HttpClient, HttpStream};
pub use crate::mcp::{challenge_of, Challenge, ConnectMode, SseEvent, Tool};

use crate::driver::Runtime;
use std::cell::Cell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

crate::driver::api::clients!(runtime: Blocking, mode: blocking, keyword: []);

/// The default HTTP client: ureq, called on the calling thread. For the blocking adapter only:
/// given to an async one, it would block the executor (use that adapter's `UreqClient`).
pub type UreqClient = crate::driver::UreqOn<Blocking>;

/// The blocking runtime: a thread per task, `std::net` sockets, and work done where it is
/// asked for (every future it returns is complete the first time it is polled, except
/// its sleep, which [`block_on`] waits out).
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocking;

impl Runtime for Blocking {
    type Listener = TcpListener;
    type Conn = TcpStream;
    type Task = JoinHandle<()>;

    fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) -> io::Result<JoinHandle<()>> {
        thread::Builder::new().name(name.into()).spawn(move || block_on(task))
    }

    fn join(&self, task: JoinHandle<()>) -> BoxFuture<'static, ()> {
        let _ = task.join();
        Box::pin(std::future::ready(()))
    }

    fn spawn_blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> BoxFuture<'static, T> {
        Box::pin(std::future::ready(f()))
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(Sleep { until: Instant::now() + d })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpListener>> {
        // Non-blocking, so that accepting can be raced with the listener's stop signal.
        let bound = TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l));
        Box::pin(std::future::ready(bound))
    }

    fn local_addr(&self, listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept<'a>(&self, listener: &'a TcpListener) -> BoxFuture<'a, io::Result<TcpStream>> {
        Box::pin(Accept { listener })
    }

    fn closer(&self, conn: &TcpStream) -> io::Result<Box<dyn Fn() + Send + Sync>> {
        let handle = conn.try_clone()?;
        Ok(Box::new(move || {
            let _ = handle.shutdown(Shutdown::Both);
        }))
    }

    fn read<'a>(&self, conn: &'a mut TcpStream, buf: &'a mut [u8], within: Duration) -> BoxFuture<'a, io::Result<usize>> {
        let read = conn.set_read_timeout(Some(within.max(Duration::from_millis(1)))).and_then(|()| conn.read(buf));
        Box::pin(std::future::ready(read.map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(io::ErrorKind::TimedOut, e),
            _ => e,
        })))
    }

    fn write_all<'a>(&self, conn: &'a mut TcpStream, buf: &'a [u8], within: Duration) -> BoxFuture<'a, io::Result<()>> {
        let written = conn.set_write_timeout(Some(within.max(Duration::from_millis(1)))).and_then(|()| conn.write_all(buf));
        Box::pin(std::future::ready(written.and_then(|()| conn.flush())))
    }
}

thread_local! {
    /// The earliest deadline of a [`Sleep`] polled by this thread's [`block_on`] since its last
    /// poll: when to wake up if nothing else does.
    static WAKE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Wakes the thread that runs [`block_on`]. The flag keeps a wake-up that a nested
/// `block_on` on the same thread consumed (its park took the unpark) from being lost.
struct Unpark {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs a future to completion on this thread: the blocking adapter's executor. It parks the
/// thread while the future waits (for a channel, a lock, a sleep) and wakes when it is woken
/// or when the earliest sleep it polled is due. Blocking I/O simply blocks inside `poll`.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let unpark = Arc::new(Unpark { thread: thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    // A nested call (a blocking callback that blocks on a future) keeps the outer deadline.
    let outer = WAKE_AT.take();
    let output = loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            break output;
        }
        if unpark.woken.swap(false, Ordering::SeqCst) {
            WAKE_AT.set(None);
            continue; // woken meanwhile (perhaps while a nested call was parked): poll again
        }
        match WAKE_AT.take() {
            Some(at) => thread::park_timeout(at.saturating_duration_since(Instant::now())),
            None => thread::park(),
        }
    };
    WAKE_AT.set(outer);
    output
}

/// How often a waiting accept looks for a connection (it is raced with the listener's stop
/// signal, so it must not block).
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// An accept for [`block_on`] on a non-blocking listener: a connection, or a look again soon.
struct Accept<'a> {
    listener: &'a TcpListener,
}

impl Future for Accept<'_> {
    type Output = io::Result<TcpStream>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        match self.listener.accept() {
            Ok((conn, _)) => Poll::Ready(conn.set_nonblocking(false).map(|()| conn)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let at = Instant::now() + ACCEPT_POLL;
                WAKE_AT.set(Some(WAKE_AT.get().map_or(at, |w| w.min(at))));
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A sleep for [`block_on`]: it asks the thread to wake at its deadline.
struct Sleep {
    until: Instant,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.until {
            return Poll::Ready(());
        }
        WAKE_AT.set(Some(WAKE_AT.get().map_or(self.until, |at| at.min(self.until))));
        Poll::Pending
    }
}
