//! # mcp-oauth-client
//!
//! OAuth 2.1 for MCP (Model Context Protocol) servers, ready to use: the Sans-IO
//! [`mcp_oauth_core`] machine driven with real HTTP, a loopback callback listener, the system
//! browser (or your `on_authorization_url` hook), a paste fallback, and a token store.
//!
//! * Feature `blocking` (default): [`blocking::OAuthClient`] and [`blocking::McpClient`].
//! * Feature `async-std`: `async_std::{OAuthClient, McpClient}`, the same API, `async`.
//! * Feature `tokio`: `tokio::{OAuthClient, McpClient}`, the same API on tokio.
//! * Feature `rmcp`: `rmcp::OAuthHttpClient`, rmcp's Streamable HTTP client authorized here.
//!
//! ```no_run
//! # #[cfg(feature = "blocking")] {
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
//! let result = mcp.call_tool("echo", serde_json::json!({"text": "hi"}))?;
//! # let _ = result; }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Logging
//!
//! Through the [`log`](https://docs.rs/log) facade: each step of a flow (discovery, registration,
//! the browser and the callback, token requests and their answers, what is saved, the outcome)
//! at DEBUG under the target `mcp_oauth_client::flow`, prefixed with the MCP server; checks that
//! needed no I/O at TRACE. No record holds a token, code, verifier, client secret or a URL's
//! query string. ureq, the default HTTP client, logs the bytes it sends and receives at TRACE;
//! the credentials in them are swapped out before ureq sees them, so that log holds none either.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod browser;
pub mod config;
#[cfg(any(feature = "blocking", feature = "async-std", feature = "tokio"))]
mod driver;
pub mod error;
pub mod interaction;
#[cfg(any(feature = "blocking", feature = "async-std", feature = "tokio"))]
pub mod listen;
pub mod mcp;
pub mod prompt;
#[cfg(any(feature = "blocking", feature = "async-std", feature = "tokio"))]
mod steps;
pub mod store;
#[cfg(any(feature = "blocking", feature = "async-std", feature = "tokio"))]
pub mod transport;

#[cfg(feature = "blocking")]
pub mod blocking;

#[cfg(feature = "async-std")]
pub mod async_std;

#[cfg(feature = "tokio")]
pub mod tokio;

#[cfg(feature = "rmcp")]
pub mod rmcp;

pub use config::{ServerConfig, Transport};
pub use error::{Error, McpRequest, ProtocolError};
pub use interaction::{Interaction, UrlHandled};
pub use mcp_oauth_core as core;
pub use mcp_oauth_core::secret::ClientSecret;
pub use mcp_oauth_core::{Authorization, Blame, ClientKind, Config, Flow, OAuthConfig, Persist, Restored, Timestamp, TokenSet, Url};
#[cfg(feature = "keyring")]
pub use store::{AutoStore, KeyringBackend, KeyringStore};
pub use store::{Distrust, FileStore, KeyringFailure, MemoryStore, StoreError, StoredClient, StoredServer, StoredTokens, TokenStore};
#[cfg(feature = "redis")]
pub use store::{EncryptionKeys, RedisStore, RedisTls};

// Every code block of the README is compiled with the doc tests (`no_run`: they talk to
// example.com), so the README cannot drift from the API.
#[cfg(all(doctest, feature = "blocking", feature = "async-std", feature = "rmcp"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

use mcp_oauth_core::Entropy;

/// Fresh entropy for one authorization attempt, from the operating system.
pub fn os_entropy() -> Result<Entropy, Error> {
    let mut b = [0u8; Entropy::LEN];
    getrandom::fill(&mut b).map_err(|e| Error::Entropy(e.to_string()))?;
    Ok(Entropy::from_bytes(b))
}

/// A URL fit for the log: no userinfo, no query (`?…` marks one), no fragment.
pub(crate) fn safe_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut u) => {
            let had_query = u.query().is_some();
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            if had_query {
                format!("{u}?…")
            } else {
                u.to_string()
            }
        }
        Err(_) => {
            // Not a URL the parser takes: still no userinfo (a password) in what is shown.
            let mut s = s.to_owned();
            if let Some(start) = s.find("://").map(|i| i + 3) {
                let end = s[start..].find(['/', '?', '#']).map_or(s.len(), |i| start + i);
                if let Some(at) = s[start..end].rfind('@') {
                    s.replace_range(start..=start + at, "");
                }
            }
            match s.find(['?', '#']) {
                Some(i) => format!("{}?…", &s[..i]),
                None => s,
            }
        }
    }
}

/// The adapters' only clock (quinn's `Runtime::now`); tests replace it.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}
