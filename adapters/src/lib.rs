//! OAuth 2.1 for MCP servers: adapters that drive [`mcp_oauth_core`] with real I/O.
//!
//! This crate is a skeleton until the blocking adapter lands; today it re-exports the core.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use mcp_oauth_core as core;
