//! The tokio adapter (feature `tokio`): the same capabilities and the same API as the blocking
//! and async-std adapters, from the same driver; only the runtime differs.
//!
//! * [`OAuthClient`]: cheap to clone and shared by tasks; tasks that want a token at once share
//!   one authorization or refresh. The store, the browser, the hook and the paste prompt run on
//!   tokio's blocking pool, so a file lock held by another process never blocks a worker.
//! * [`McpClient`]: connect (eager or lazy), list and call tools, 401 retry, step-up.
//! * [`HttpClient`]: bring your own HTTP client (a closure will do); the default is
//!   [`ReqwestClient`] (async, rustls, the network policy in reqwest's resolver hook), and
//!   [`UreqClient`], ureq on tokio's blocking pool, is there too.
//!
//! The futures are `Send` and must run inside a tokio runtime with IO and time enabled
//! (`#[tokio::main]`, or a `Builder` with `enable_all`), current-thread or multi-thread.
//!
//! ```no_run
//! use mcp_oauth_client::tokio::McpClient;
//! use mcp_oauth_client::{Config, FileStore, Interaction};
//! use std::sync::Arc;
//!
//! # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! # rt.block_on(async {
//! let config = Config::new("https://mcp.example.com/mcp".parse()?);
//! let store = Arc::new(FileStore::in_default_dir()?);
//! let mut mcp = McpClient::with_oauth(config, store, Interaction::default()).await?;
//! for tool in mcp.list_tools().await? {
//!     println!("{}", tool.name);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::driver::{BoxFuture, ByteStream, HttpClient, HttpStream};
pub use crate::mcp::{challenge_of, Challenge, ConnectMode, SseEvent, Tool};
pub use crate::transport::ReqwestClient;

use crate::driver::Runtime;
use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
use ::tokio::net::{TcpListener, TcpStream};
use ::tokio::task::JoinHandle;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

crate::driver::api::clients!(runtime: Tokio, mode: async, keyword: [async]);

/// ureq on tokio's blocking pool (the default is [`ReqwestClient`]).
pub type UreqClient = crate::driver::UreqOn<Tokio>;

/// The tokio runtime: its tasks, blocking pool, timers and sockets (of the runtime the futures
/// run in).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// A connection, and a handle to its socket that can shut it down from another task (a tokio
/// stream cannot be cloned).
pub struct Connection(TcpStream, std::net::TcpStream);

impl Runtime for Tokio {
    type Listener = TcpListener;
    type Conn = Connection;
    type Task = JoinHandle<()>;

    fn spawn(&self, _name: &'static str, task: impl Future<Output = ()> + Send + 'static) -> io::Result<JoinHandle<()>> {
        let handle = ::tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        Ok(handle.spawn(task))
    }

    fn join(&self, task: JoinHandle<()>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = task.await;
        })
    }

    fn spawn_blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> BoxFuture<'static, T> {
        Box::pin(async move {
            match ::tokio::task::spawn_blocking(f).await {
                Ok(v) => v,
                // The work panicked: the panic goes on here, as async-std's pool does.
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(e) => panic!("blocking work cancelled by the runtime's shutdown: {e}"),
                },
            }
        })
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(::tokio::time::sleep(d))
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpListener>> {
        Box::pin(TcpListener::bind(addr))
    }

    fn local_addr(&self, listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept<'a>(&self, listener: &'a TcpListener) -> BoxFuture<'a, io::Result<Connection>> {
        Box::pin(async move {
            let (conn, _) = listener.accept().await?;
            let std = conn.into_std()?;
            let handle = std.try_clone()?;
            Ok(Connection(TcpStream::from_std(std)?, handle))
        })
    }

    fn closer(&self, conn: &Connection) -> io::Result<Box<dyn Fn() + Send + Sync>> {
        let handle = conn.1.try_clone()?;
        Ok(Box::new(move || {
            let _ = handle.shutdown(Shutdown::Both);
        }))
    }

    fn read<'a>(&self, conn: &'a mut Connection, buf: &'a mut [u8], within: Duration) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(async move { ::tokio::time::timeout(within, conn.0.read(buf)).await.map_err(|_| timed_out())? })
    }

    fn write_all<'a>(&self, conn: &'a mut Connection, buf: &'a [u8], within: Duration) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { ::tokio::time::timeout(within, conn.0.write_all(buf)).await.map_err(|_| timed_out())? })
    }

    fn default_http(&self, policy: mcp_oauth_core::NetworkPolicy, exempt_host: &str) -> std::sync::Arc<dyn HttpClient> {
        std::sync::Arc::new(ReqwestClient::default().with_policy(policy, exempt_host))
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
        let rt = ::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store: Arc<dyn TokenStore> = Arc::new(crate::MemoryStore::new());
        let config = Config::new("https://mcp.example.com/mcp".parse().unwrap());
        let client = rt.block_on(OAuthClient::new(config.clone(), store.clone(), Interaction::non_interactive())).unwrap();
        assert_send(&client.authorization());
        let req = ::http::Request::get("https://mcp.example.com/mcp").body(Vec::new()).unwrap();
        assert_send(&client.send(req, 10));
        let mut mcp = McpClient::new(config.server_url.clone(), Some(client));
        assert_send(&mcp.list_tools());
        assert_send(&mcp.call_tool("echo", serde_json::json!({})));
        assert_send(&McpClient::with_oauth(config, store, Interaction::non_interactive()));
    }
}
