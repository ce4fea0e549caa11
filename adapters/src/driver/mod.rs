//! The one driver: everything an adapter does around the core machine, written once for every
//! runtime.
//!
//! * [`Client`]: the OAuth client of one MCP server. It takes tokens from the store under its
//!   lock, runs the machine's flow (the [`Step`](crate::steps::Step)s: send, bind, open, prompt,
//!   answer the browser, save, wait) and the authorize-and-retry loop ([`Attempts`]).
//! * [`Mcp`]: the MCP client over it (Streamable HTTP, the stateless wire, legacy HTTP+SSE).
//! * [`listener`]: the loopback callback listener's accept loop and connection handling.
//!
//! A runtime supplies only its primitives, through [`Runtime`]: spawning, the blocking pool,
//! sleeping, and TCP listen/accept/read/write. HTTP goes through [`HttpClient`], which every
//! runtime gets from ureq on its blocking pool ([`UreqOn`]) or from the user.
//!
//! ## Why an `async fn` driver, run by a small `block_on` in the blocking adapter
//!
//! The alternative was a step function each runtime pumps (core's own shape, one level up).
//! That moves the loop out of the driver and into every runtime again: each would still match
//! on the steps, hold the listener and the prompt, wait on their events, and thread the
//! authorize-and-retry state through its own MCP client, which is the code this module exists
//! to write once. An `async fn` keeps the whole sequence in one readable place, and the
//! compiler builds the state machine. The blocking adapter runs it with its own `block_on`
//! (a parked thread and a deadline for sleeps: `blocking::block_on`), where every I/O
//! primitive simply blocks inside `poll`; the async adapters run it on their executor, where the
//! primitives are their sockets and tasks. So a new runtime (tokio is next) is an `impl
//! Runtime` and a one-line invocation of the public API macro (`clients!`, in `api`),
//! and the simulation, or any other driver of the future, can run the same code.
//!
//! The channels, the lock on the machine and the small future combinators come from the
//! runtime-neutral smol-rs crates (`async-channel`, `async-lock`, `futures-lite`), which every
//! executor can poll and `blocking::block_on` can too.

pub(crate) mod api;
mod http;
pub(crate) mod listener;
mod mcp;
mod oauth;

pub use self::http::{BoxFuture, ByteStream, HttpClient, HttpStream, UreqOn};
pub(crate) use self::mcp::Mcp;
pub(crate) use self::oauth::{Attempts, Client};

// The runtime's futures are boxed: an opaque `impl Future + Send` per method trips the
// compiler's proof that the driver's futures are `Send` ("implementation of `Send` is not
// general enough", rust-lang/rust#110338), and one allocation per primitive is nothing beside
// the I/O it stands for.

use mcp_oauth_core::NetworkPolicy;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What a runtime must supply for the driver to run on it: its primitives and nothing else.
///
/// Implemented by the zero-sized runtimes of the adapters (`blocking::Blocking`,
/// `async_std::AsyncStd`); the driver does the rest. Every future it returns must finish on
/// its own: the blocking runtime blocks inside `poll`, the async ones register with their
/// reactor. A future that borrows (`'a`) borrows only the arguments named so.
pub trait Runtime: Clone + Default + Send + Sync + std::fmt::Debug + 'static {
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;
    /// An accepted TCP connection.
    type Conn: Send + 'static;
    /// A spawned task (or thread), to be [`join`](Self::join)ed.
    type Task: Send + 'static;

    /// Starts `task` in the background (`name` names a thread, where there is one).
    fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) -> io::Result<Self::Task>;
    /// Waits for a spawned task to end.
    fn join(&self, task: Self::Task) -> BoxFuture<'static, ()>;
    /// Runs blocking work (ureq, file locks and fsync, the browser, stdin) off the executor.
    fn spawn_blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> BoxFuture<'static, T>;
    /// Completes after `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
    /// Binds a TCP listener.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Listener>>;
    /// The listener's bound address.
    fn local_addr(&self, listener: &Self::Listener) -> io::Result<SocketAddr>;
    /// The next connection.
    fn accept<'a>(&self, listener: &'a Self::Listener) -> BoxFuture<'a, io::Result<Self::Conn>>;
    /// Something that shuts `conn` down from elsewhere (evicting it while it reads).
    fn closer(&self, conn: &Self::Conn) -> io::Result<Box<dyn Fn() + Send + Sync>>;
    /// Reads into `buf`; an error of kind `TimedOut` if nothing came `within`.
    fn read<'a>(&self, conn: &'a mut Self::Conn, buf: &'a mut [u8], within: Duration) -> BoxFuture<'a, io::Result<usize>>;
    /// Writes all of `buf`, giving up after `within`.
    fn write_all<'a>(&self, conn: &'a mut Self::Conn, buf: &'a [u8], within: Duration) -> BoxFuture<'a, io::Result<()>>;

    /// The HTTP client `OAuthClient::new` uses, with `policy` enforced on every host but
    /// `exempt_host`: ureq on this runtime's blocking pool, unless the runtime has a better one.
    fn default_http(&self, policy: NetworkPolicy, exempt_host: &str) -> std::sync::Arc<dyn HttpClient> {
        std::sync::Arc::new(UreqOn::<Self>::default().with_policy(policy, exempt_host))
    }
}

/// `f`, or `None` once `d` has passed.
pub(crate) async fn timeout<R: Runtime, T>(rt: &R, d: Duration, f: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        rt.sleep(d).await;
        None
    })
    .await
}
