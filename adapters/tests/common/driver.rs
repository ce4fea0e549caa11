//! One test body, several drivers: every end-to-end test runs against the blocking adapter,
//! the async-std adapter on async-std's executor, the same async adapter driven by smol, and the
//! tokio adapter on a multi-thread tokio runtime.

use mcp_oauth_client::blocking;
use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::mcp::{ConnectMode, Tool};
use mcp_oauth_client::{Clock, Config, Error, ServerConfig, SystemClock, TokenStore};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Which adapter (and executor) a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Blocking,
    #[cfg(feature = "async-std")]
    AsyncStd,
    #[cfg(feature = "async-std")]
    Smol,
    #[cfg(feature = "tokio")]
    Tokio,
}

/// The tokio runtime the tokio adapter's tests run on (multi-thread, IO and time enabled).
#[cfg(feature = "tokio")]
pub fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("a tokio runtime"))
}

impl Adapter {
    pub fn name(self) -> &'static str {
        match self {
            Adapter::Blocking => "blocking",
            #[cfg(feature = "async-std")]
            Adapter::AsyncStd => "async-std",
            #[cfg(feature = "async-std")]
            Adapter::Smol => "smol",
            #[cfg(feature = "tokio")]
            Adapter::Tokio => "tokio",
        }
    }

    pub fn from_name(name: &str) -> Adapter {
        match name {
            #[cfg(feature = "async-std")]
            "async-std" => Adapter::AsyncStd,
            #[cfg(feature = "async-std")]
            "smol" => Adapter::Smol,
            #[cfg(feature = "tokio")]
            "tokio" => Adapter::Tokio,
            _ => Adapter::Blocking,
        }
    }

    #[cfg(feature = "async-std")]
    pub fn block_on<T>(self, f: impl Future<Output = T>) -> T {
        match self {
            Adapter::Smol => smol::block_on(f),
            #[cfg(feature = "tokio")]
            Adapter::Tokio => tokio_runtime().block_on(f),
            _ => async_std::task::block_on(f),
        }
    }

    #[cfg(not(feature = "async-std"))]
    pub fn block_on<T>(self, f: impl Future<Output = T>) -> T {
        #[cfg(feature = "tokio")]
        if self == Adapter::Tokio {
            return tokio_runtime().block_on(f);
        }
        let _ = f;
        unreachable!("no async adapter for {self:?} in this build")
    }

    /// A client with OAuth for `config.server_url`.
    pub fn with_oauth(self, config: Config, store: Arc<dyn TokenStore>, i: Interaction) -> Result<Mcp, Error> {
        self.with_parts(config, store, i, None, Arc::new(SystemClock))
    }

    /// With an HTTP timeout and a clock of the test's choosing.
    pub fn with_parts(
        self,
        config: Config,
        store: Arc<dyn TokenStore>,
        i: Interaction,
        timeout: Option<Duration>,
        clock: Arc<dyn Clock>,
    ) -> Result<Mcp, Error> {
        let timeout = timeout.unwrap_or(Duration::from_secs(30));
        let url = config.server_url.clone();
        match self {
            #[cfg(feature = "tokio")]
            Adapter::Tokio => {
                use mcp_oauth_client::tokio as tok;
                let host = config.server_url.host_str().unwrap_or("").to_owned();
                let http = Arc::new(tok::ReqwestClient::new(timeout).with_policy(config.network, &host));
                let oauth = tokio_runtime().block_on(tok::OAuthClient::with_parts(config, store, i, http, clock))?;
                Ok(Mcp::Tokio(tok::McpClient::new(url, Some(oauth))))
            }
            Adapter::Blocking => {
                let host = config.server_url.host_str().unwrap_or("").to_owned();
                let http = Arc::new(blocking::UreqClient::new(timeout).with_policy(config.network, &host));
                let oauth = blocking::OAuthClient::with_parts(config, store, i, http, clock)?;
                Ok(Mcp::Blocking(Box::new(blocking::McpClient::new(url, Some(oauth)))))
            }
            #[cfg(feature = "async-std")]
            a => {
                use mcp_oauth_client::async_std as asy;
                let host = config.server_url.host_str().unwrap_or("").to_owned();
                let http = Arc::new(asy::UreqClient::new(timeout).with_policy(config.network, &host));
                let oauth = a.block_on(asy::OAuthClient::with_parts(config, store, i, http, clock))?;
                Ok(Mcp::Async(a, asy::McpClient::new(url, Some(oauth))))
            }
        }
    }

    /// From plain configuration.
    pub fn configured(
        self,
        cfg: &ServerConfig,
        store: Arc<dyn TokenStore>,
        i: Interaction,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Mcp, Error> {
        match self {
            Adapter::Blocking => Ok(Mcp::Blocking(Box::new(blocking::McpClient::from_config(cfg, store, i, env)?))),
            #[cfg(feature = "tokio")]
            Adapter::Tokio => {
                Ok(Mcp::Tokio(tokio_runtime().block_on(mcp_oauth_client::tokio::McpClient::from_config(cfg, store, i, env))?))
            }
            #[cfg(feature = "async-std")]
            a => Ok(Mcp::Async(a, a.block_on(mcp_oauth_client::async_std::McpClient::from_config(cfg, store, i, env))?)),
        }
    }

    /// `OAuthClient::send`: authorize-and-retry around any request.
    pub fn send(
        self,
        config: Config,
        store: Arc<dyn TokenStore>,
        i: Interaction,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        match self {
            Adapter::Blocking => blocking::OAuthClient::new(config, store, i)?.send(req, 1 << 20),
            #[cfg(feature = "tokio")]
            Adapter::Tokio => tokio_runtime().block_on(async {
                let oauth = mcp_oauth_client::tokio::OAuthClient::new(config, store, i).await?;
                oauth.send(req, 1 << 20).await
            }),
            #[cfg(feature = "async-std")]
            a => a.block_on(async {
                let oauth = mcp_oauth_client::async_std::OAuthClient::new(config, store, i).await?;
                oauth.send(req, 1 << 20).await
            }),
        }
    }
}

/// An MCP client of either adapter, with the blocking client's API.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // test code: one per test
pub enum Mcp {
    Blocking(Box<blocking::McpClient>),
    #[cfg(feature = "async-std")]
    Async(Adapter, mcp_oauth_client::async_std::McpClient),
    #[cfg(feature = "tokio")]
    Tokio(mcp_oauth_client::tokio::McpClient),
}

impl Mcp {
    pub fn mode(self, mode: ConnectMode) -> Self {
        match self {
            Mcp::Blocking(c) => Mcp::Blocking(Box::new(c.mode(mode))),
            #[cfg(feature = "async-std")]
            Mcp::Async(a, c) => Mcp::Async(a, c.mode(mode)),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => Mcp::Tokio(c.mode(mode)),
        }
    }

    pub fn connect(&mut self) -> Result<Value, Error> {
        match self {
            Mcp::Blocking(c) => c.connect(),
            #[cfg(feature = "async-std")]
            Mcp::Async(a, c) => a.block_on(c.connect()),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => tokio_runtime().block_on(c.connect()),
        }
    }

    pub fn list_tools(&mut self) -> Result<Vec<Tool>, Error> {
        match self {
            Mcp::Blocking(c) => c.list_tools(),
            #[cfg(feature = "async-std")]
            Mcp::Async(a, c) => a.block_on(c.list_tools()),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => tokio_runtime().block_on(c.list_tools()),
        }
    }

    pub fn call_tool(&mut self, name: &str, args: Value) -> Result<Value, Error> {
        match self {
            Mcp::Blocking(c) => c.call_tool(name, args),
            #[cfg(feature = "async-std")]
            Mcp::Async(a, c) => a.block_on(c.call_tool(name, args)),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => tokio_runtime().block_on(c.call_tool(name, args)),
        }
    }

    pub fn session_id(&self) -> Option<String> {
        match self {
            Mcp::Blocking(c) => c.session_id().map(str::to_owned),
            #[cfg(feature = "async-std")]
            Mcp::Async(_, c) => c.session_id().map(str::to_owned),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => c.session_id().map(str::to_owned),
        }
    }

    pub fn protocol_version(&self) -> Option<String> {
        match self {
            Mcp::Blocking(c) => c.protocol_version().map(str::to_owned),
            #[cfg(feature = "async-std")]
            Mcp::Async(_, c) => c.protocol_version().map(str::to_owned),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => c.protocol_version().map(str::to_owned),
        }
    }

    /// `OAuthClient::logout` of the client's OAuth, keeping what an unreachable server could not revoke.
    pub fn logout(&self) -> Result<mcp_oauth_client::core::LogoutReport, Error> {
        let keep = mcp_oauth_client::core::IfUnreachable::Keep;
        match self {
            Mcp::Blocking(c) => c.oauth().expect("oauth").logout(keep),
            #[cfg(feature = "async-std")]
            Mcp::Async(a, c) => a.block_on(c.oauth().expect("oauth").logout(keep)),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => tokio_runtime().block_on(c.oauth().expect("oauth").logout(keep)),
        }
    }

    pub fn has_oauth(&self) -> bool {
        match self {
            Mcp::Blocking(c) => c.oauth().is_some(),
            #[cfg(feature = "async-std")]
            Mcp::Async(_, c) => c.oauth().is_some(),
            #[cfg(feature = "tokio")]
            Mcp::Tokio(c) => c.oauth().is_some(),
        }
    }
}

/// Runs each named test body (`fn name(a: Adapter)`) once per adapter, as separate tests.
#[macro_export]
macro_rules! on_every_adapter {
    ($($name:ident),* $(,)?) => {
        mod blocking {
            $( #[test] fn $name() { super::$name($crate::common::driver::Adapter::Blocking) } )*
        }
        #[cfg(feature = "tokio")]
        mod tokio {
            $( #[test] fn $name() { super::$name($crate::common::driver::Adapter::Tokio) } )*
        }
        $crate::on_async_adapters!($($name),*);
    };
}

/// Runs each named test body on the async adapter only: on async-std, and under smol.
#[macro_export]
macro_rules! on_async_adapters {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "async-std")]
        mod async_std {
            $( #[test] fn $name() { super::$name($crate::common::driver::Adapter::AsyncStd) } )*
        }
        #[cfg(feature = "async-std")]
        mod smol {
            $( #[test] fn $name() { super::$name($crate::common::driver::Adapter::Smol) } )*
        }
    };
}
