//! The adapter's error: core errors plus what can go wrong with real I/O.

use crate::store::StoreError;
use mcp_oauth_core::{ConfigError, Error as CoreError};

/// Everything the adapters report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OAuth flow failed (see the core error's stage and blame).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Saving or loading tokens failed.
    #[error("token store: {0}")]
    Store(#[from] StoreError),
    /// The operating system had no randomness to give.
    #[error("no randomness available: {0}")]
    Entropy(String),
    /// A request to the MCP server failed below HTTP.
    #[error("mcp transport: {0}")]
    Transport(mcp_oauth_core::http::TransportFailure),
    /// The MCP server answered something this client cannot use.
    #[error("mcp: {0}")]
    Mcp(String),
    /// The legacy transport's event stream failed: an event over the size cap, or the stream
    /// ended. The next call opens a new stream.
    #[error("mcp event stream: {0}")]
    EventStream(crate::mcp::EventStreamError),
    /// A JSON-RPC error from the MCP server.
    #[error("mcp server error {code}: {message}")]
    JsonRpc {
        /// The JSON-RPC error code.
        code: i64,
        /// The message (server-controlled text).
        message: String,
    },
    /// The flow waited for an event that can never come (a bug in a custom driver).
    #[error("the authorization flow stalled waiting without a deadline")]
    Stalled,
    /// A request for another origin than the MCP server's was handed to the OAuth client: its
    /// token is never attached there.
    #[error("refusing to send the token for {server} to {url}: not the MCP server's origin")]
    ForeignOrigin {
        /// The request's URL, without its query.
        url: String,
        /// The MCP server's origin.
        server: String,
    },
}

impl Error {
    /// The core error, if this is one.
    pub fn core(&self) -> Option<&CoreError> {
        match self {
            Error::Core(e) => Some(e),
            _ => None,
        }
    }
}
