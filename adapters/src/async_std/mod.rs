//! The async-std adapter (feature `async-std`): the same capabilities and the same API as the
//! blocking adapter, for async programs, from the same driver; only the runtime differs.
//!
//! * [`OAuthClient`]: cheap to clone and shared by tasks. Tasks that want a token at once for
//!   the same server cause one authorization or refresh; the others wait for its result (an
//!   async lock per client, and the store's lock across clients and processes, taken on the
//!   blocking pool so the executor never blocks).
//! * [`McpClient`]: connect (eager or lazy), list and call tools, 401 retry, step-up, over
//!   Streamable HTTP, the stateless 2026-07-28 wire, or legacy HTTP+SSE.
//! * [`HttpClient`]: bring your own HTTP client (a closure will do); the default is
//!   [`UreqClient`], ureq on async-std's blocking pool.
//!
//! The runtime surface is small on purpose (async-std is deprecated in favour of smol): tasks
//! (`spawn`, `spawn_blocking`), `net`, `future::timeout` and `task::sleep`, all in [`AsyncStd`].
//! The futures run on any executor: the test suite drives them with `smol::block_on` too.
//!
//! ```no_run
//! use mcp_oauth_client::async_std::McpClient;
//! use mcp_oauth_client::{Config, FileStore, Interaction};
//! use std::sync::Arc;
//!
//! # async_std::task::block_on(async {
//! let config = Config::new("https://mcp.example.com/mcp".parse()?);
//! let store = Arc::new(FileStore::in_default_dir()?);
//! let mut mcp = McpClient::with_oauth(config, store, Interaction::default()).await?;
//! for tool in mcp.list_tools().await? {
//!     println!("{}", tool.name);
//! }
//! let result = mcp.call_tool("echo", serde_json::json!({"text": "hi"})).await?;
//! # let _ = result;
//! # Ok::<(), Box<dyn std::error::Error>>(()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::driver::{BoxFuture, ByteStream, HttpClient, HttpStream};
pub use crate::mcp::{challenge_of, Challenge, ConnectMode, SseEvent, Tool};

use crate::driver::Runtime;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task::JoinHandle;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

crate::driver::api::clients!(runtime: AsyncStd, mode: async, keyword: [async]);

/// The default HTTP client: ureq on async-std's blocking pool.
pub type UreqClient = crate::driver::UreqOn<AsyncStd>;

/// The async-std runtime: its tasks, blocking pool, timers and sockets.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStd;

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

impl Runtime for AsyncStd {
    type Listener = TcpListener;
    type Conn = TcpStream;
    type Task = JoinHandle<()>;

    fn spawn(&self, _name: &'static str, task: impl Future<Output = ()> + Send + 'static) -> io::Result<JoinHandle<()>> {
        Ok(async_std::task::spawn(task))
    }

    fn join(&self, task: JoinHandle<()>) -> BoxFuture<'static, ()> {
        Box::pin(task)
    }

    fn spawn_blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> BoxFuture<'static, T> {
        Box::pin(async_std::task::spawn_blocking(f))
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async_std::task::sleep(d))
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpListener>> {
        Box::pin(TcpListener::bind(addr))
    }

    fn local_addr(&self, listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept<'a>(&self, listener: &'a TcpListener) -> BoxFuture<'a, io::Result<TcpStream>> {
        Box::pin(async move { Ok(listener.accept().await?.0) })
    }

    fn closer(&self, conn: &TcpStream) -> io::Result<Box<dyn Fn() + Send + Sync>> {
        let handle = conn.clone();
        Ok(Box::new(move || {
            let _ = handle.shutdown(Shutdown::Both);
        }))
    }

    fn read<'a>(&self, conn: &'a mut TcpStream, buf: &'a mut [u8], within: Duration) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(async move { async_std::future::timeout(within, conn.read(buf)).await.map_err(|_| timed_out())? })
    }

    fn write_all<'a>(&self, conn: &'a mut TcpStream, buf: &'a [u8], within: Duration) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { async_std::future::timeout(within, conn.write_all(buf)).await.map_err(|_| timed_out())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TokenStore;
    use crate::Interaction;
    use mcp_oauth_core::Config;
    use std::sync::Arc;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send_so_tasks_can_be_spawned() {
        let store: Arc<dyn TokenStore> = Arc::new(crate::MemoryStore::new());
        let config = Config::new("https://mcp.example.com/mcp".parse().unwrap());
        let client = async_std::task::block_on(OAuthClient::new(config.clone(), store.clone(), Interaction::non_interactive())).unwrap();
        assert_send(&client.authorization());
        let req = ::http::Request::get("https://mcp.example.com/mcp").body(Vec::new()).unwrap();
        assert_send(&client.send(req, 10));
        let mut mcp = McpClient::new(config.server_url.clone(), Some(client));
        assert_send(&mcp.list_tools());
        assert_send(&mcp.call_tool("echo", serde_json::json!({})));
        assert_send(&McpClient::with_oauth(config, store, Interaction::non_interactive()));
    }
}
