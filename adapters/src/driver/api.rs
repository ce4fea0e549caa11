//! The public API of every runtime, written once: `clients!` defines a runtime module's
//! `OAuthClient` and `McpClient` over the one driver, with the same names, arguments and docs
//! everywhere. Only the calling convention differs: `async fn`s awaited on an async runtime,
//! plain functions that block (run by `blocking::block_on`) on the blocking one.

/// Runs a driver future: awaited, or blocked on.
macro_rules! drive {
    (async, $e:expr) => {
        $e.await
    };
    (blocking, $e:expr) => {
        $crate::blocking::block_on($e)
    };
}
pub(crate) use drive;

/// Defines `OAuthClient` and `McpClient` for the runtime `$rt`; `$mode` is `async` or
/// `blocking`, and `[$($kw)?]` is `[async]` or `[]` (the keyword the methods take).
macro_rules! clients {
    (runtime: $rt:ty, mode: $mode:tt, keyword: [$($kw:tt)?]) => {
        pub use self::clients::{McpClient, OAuthClient};

        /// The public clients, in a module of their own so that their imports stay theirs.
        mod clients {
        #[allow(unused_imports)]
        use super::*;
        use $crate::driver::api::drive;
        use $crate::driver::{Client, HttpClient, Mcp};
        use $crate::error::Error;
        use $crate::interaction::Interaction;
        use $crate::mcp::{Challenge, ConnectMode, Tool};
        use $crate::store::TokenStore;
        use $crate::Clock;
        use $crate::config::ServerConfig;
        use mcp_oauth_core::{Authorization, Authorizer, Config};
        use serde_json::Value;
        use std::sync::Arc;
        use url::Url;

        /// The OAuth client for one MCP server. It makes no OAuth decision: it sends what the
        /// core machine asks, binds the loopback listener and waits, opens the browser (or the
        /// `on_authorization_url` hook) and prompts, saves, and feeds the results back.
        ///
        /// Clones share one machine: tasks and threads that want a token at once for the same
        /// server cause one authorization or refresh, and the others take its result. The
        /// store's lock does the same across clients and processes.
        #[derive(Clone, Debug)]
        pub struct OAuthClient {
            inner: Client<$rt>,
        }

        impl OAuthClient {
            /// A client for `config.server_url`, restoring what `store` holds for it. HTTP goes
            /// through this runtime's default client (ureq; on tokio, reqwest) with the
            /// configuration's [`NetworkPolicy`](mcp_oauth_core::NetworkPolicy) applied.
            pub $($kw)? fn new(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
                Ok(OAuthClient { inner: drive!($mode, Client::new(config, store, interaction))? })
            }

            /// Like [`new`](Self::new) with a specific HTTP client and clock (tests replace the
            /// clock). `http` is used as it is: it must apply the configuration's
            /// [`NetworkPolicy`](mcp_oauth_core::NetworkPolicy) itself
            /// ([`UreqClient::with_policy`] does; other clients can use
            /// [`address_blocked`](mcp_oauth_core::http::address_blocked) in their resolver).
            pub $($kw)? fn with_parts(
                config: Config,
                store: Arc<dyn TokenStore>,
                interaction: Interaction,
                http: Arc<dyn HttpClient>,
                clock: Arc<dyn Clock>,
            ) -> Result<Self, Error> {
                Ok(OAuthClient { inner: drive!($mode, Client::with_parts(config, store, interaction, http, clock))? })
            }

            /// The configuration.
            pub fn config(&self) -> &Config {
                self.inner.config()
            }

            /// The HTTP client, for sending MCP requests the same way.
            pub fn http(&self) -> Arc<dyn HttpClient> {
                self.inner.http()
            }

            /// Runs `f` on the core machine (getters: state, tokens, metadata). Waits while a
            /// flow runs.
            pub $($kw)? fn with_authorizer<T>(&self, f: impl FnOnce(&Authorizer) -> T) -> T {
                drive!($mode, self.inner.with_authorizer(f))
            }

            /// True if the machine holds tokens (usable or refreshable).
            pub $($kw)? fn holds_token(&self) -> bool {
                drive!($mode, self.inner.holds_token())
            }

            /// The `Authorization` header for the next request: the held token, a refreshed
            /// one, or one from a full authorization. Concurrent callers share one flow.
            pub $($kw)? fn authorization(&self) -> Result<Authorization, Error> {
                drive!($mode, self.inner.authorization())
            }

            /// The server challenged the request that carried `rejected` (see
            /// [`challenge_of`](crate::mcp::challenge_of)): re-authorize (or refresh, step up,
            /// or take a DPoP nonce) and return what to attach to the retry. If another task
            /// or process already replaced the rejected token, that one is returned without
            /// asking the server.
            pub $($kw)? fn challenged(&self, challenge: Challenge, rejected: Option<&Authorization>) -> Result<Authorization, Error> {
                drive!($mode, self.inner.challenged(challenge, rejected))
            }

            /// Sends `req` with the token attached; on 401, or 403 `insufficient_scope`,
            /// authorizes and retries (within this request's budget). For people who bring
            /// their own MCP client. A request for another origin than the MCP server's is
            /// refused ([`Error::ForeignOrigin`]) before anything is sent.
            pub $($kw)? fn send(&self, req: http::Request<Vec<u8>>, max_body: usize) -> Result<http::Response<Vec<u8>>, Error> {
                drive!($mode, self.inner.send(req, max_body))
            }

            /// Logs out of this server: revokes the tokens at the authorization server when it
            /// offers RFC 7009 revocation (the refresh token first, then the access token), then
            /// forgets them and every registration in the store. When the authorization server
            /// cannot be reached, `if_unreachable` says whether to keep them for a later logout
            /// ([`IfUnreachable::Keep`](mcp_oauth_core::IfUnreachable::Keep)) or forget them
            /// unrevoked; a refusal forgets them (trying again would not help). Runs under the
            /// store's lock, on what the store holds now. The report says what each revocation
            /// came to and whether anything was forgotten. An `Err` is the store's: it could not
            /// be locked, read or written (the error says which), and logging out again is safe.
            pub $($kw)? fn logout(&self, if_unreachable: mcp_oauth_core::IfUnreachable) -> Result<mcp_oauth_core::LogoutReport, Error> {
                drive!($mode, self.inner.logout(if_unreachable))
            }

            /// Sets `Authorization` (and, for DPoP-bound tokens, a fresh `DPoP` proof) on a
            /// request to the MCP server; a request for another origin is refused
            /// ([`Error::ForeignOrigin`]) and left unchanged.
            pub fn attach(&self, req: &mut http::Request<Vec<u8>>, authorization: &Authorization) -> Result<(), Error> {
                self.inner.attach(req, authorization)
            }

            /// The driver's client (for integrations inside this crate).
            #[allow(dead_code)]
            pub(crate) fn driver(&self) -> &Client<$rt> {
                &self.inner
            }
        }

        /// An MCP client for one server: connect (eager or lazy), list and call tools, over
        /// Streamable HTTP, the stateless 2026-07-28 wire, or legacy HTTP+SSE. With OAuth,
        /// every request carries the token, and a 401 (or 403 `insufficient_scope`) runs the
        /// flow and retries; without OAuth, requests go out as they would without this crate.
        #[derive(Debug)]
        pub struct McpClient {
            inner: Mcp<$rt>,
            oauth: Option<OAuthClient>,
        }

        impl McpClient {
            /// A client for `url`, with OAuth if `oauth` is given (its HTTP client is used for
            /// MCP too).
            pub fn new(url: Url, oauth: Option<OAuthClient>) -> Self {
                McpClient { inner: Mcp::new(url, oauth.as_ref().map(|o| o.inner.clone())), oauth }
            }

            /// A client for a server on the legacy HTTP+SSE transport (`url` is the event
            /// stream).
            pub fn legacy_sse(url: Url, oauth: Option<OAuthClient>) -> Self {
                McpClient { inner: Mcp::legacy_sse(url, oauth.as_ref().map(|o| o.inner.clone())), oauth }
            }

            /// From plain configuration. OAuth on a stdio server is refused; a stdio server
            /// without OAuth is not an HTTP server, so this client does not serve it either.
            pub $($kw)? fn from_config(
                server: &ServerConfig,
                store: Arc<dyn TokenStore>,
                interaction: Interaction,
                env: &(dyn Fn(&str) -> Option<String> + Sync),
            ) -> Result<Self, Error> {
                let inner = drive!($mode, Mcp::from_config(server, store, interaction, env))?;
                let oauth = inner.oauth().map(|o| OAuthClient { inner: o.clone() });
                Ok(McpClient { inner, oauth })
            }

            /// A client with OAuth for `config.server_url`.
            pub $($kw)? fn with_oauth(config: Config, store: Arc<dyn TokenStore>, interaction: Interaction) -> Result<Self, Error> {
                let url = config.server_url.clone();
                let inner = drive!($mode, Client::new(config, store, interaction))?;
                Ok(McpClient::new(url, Some(OAuthClient { inner })))
            }

            /// Sets eager or lazy authorization.
            pub fn mode(self, mode: ConnectMode) -> Self {
                McpClient { inner: self.inner.mode(mode), oauth: self.oauth }
            }

            /// The OAuth client, if any (clone it to share the token with other clients).
            pub fn oauth(&self) -> Option<&OAuthClient> {
                self.oauth.as_ref()
            }

            /// The session id the server assigned, if any.
            pub fn session_id(&self) -> Option<&str> {
                self.inner.session_id()
            }

            /// The negotiated protocol version, once connected.
            pub fn protocol_version(&self) -> Option<&str> {
                self.inner.protocol_version()
            }

            /// Authorizes now, before any MCP request (lazy clients call this to warm up).
            pub $($kw)? fn warm_up(&mut self) -> Result<(), Error> {
                drive!($mode, self.inner.warm_up())
            }

            /// Connects: `server/discover` on the stateless 2026-07-28 wire; servers that do
            /// not speak it get the `initialize` handshake (2025-11-25 and older; the legacy
            /// SSE transport always). Returns the server's discover or initialize result.
            ///
            /// On the legacy transport a failed connect leaves no stream open: its connection
            /// is shut before this returns.
            pub $($kw)? fn connect(&mut self) -> Result<Value, Error> {
                drive!($mode, self.inner.connect())
            }

            /// `tools/list`.
            pub $($kw)? fn list_tools(&mut self) -> Result<Vec<Tool>, Error> {
                drive!($mode, self.inner.list_tools())
            }

            /// `tools/call`. Returns the result (`content`, `isError`).
            pub $($kw)? fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, Error> {
                drive!($mode, self.inner.call_tool(name, arguments))
            }
        }
        }
    };
}
pub(crate) use clients;
