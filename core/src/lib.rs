//! # mcp-oauth-core
//!
//! A Sans-IO OAuth 2.1 client for MCP (Model Context Protocol) servers: the MCP Authorization
//! specification (2026-07-28, and servers of 2025-03-26, 2025-06-18 and 2025-11-25) as a pure
//! state machine. It does every protocol decision (discovery, registration, PKCE, `state` and
//! `iss` checks, scope selection, refresh, step-up, fallbacks) and no I/O: no sockets, files,
//! clocks, threads or random numbers. Time and random bytes are inputs.
//!
//! Most users want the `mcp-oauth-client` crate, which drives this machine with real HTTP, a
//! loopback listener, a browser and a token store. Use this crate directly to drive the flow
//! from your own event loop, or to test and fuzz it.
//!
//! ## The contract
//!
//! One [`Authorizer`] per MCP server. Everything that happens is an [`Input`] (each carries
//! `now`); everything the machine wants done is an [`Output`].
//!
//! **Run-loop rule:** after every [`Authorizer::handle_input`], call
//! [`Authorizer::poll_output`] until it returns [`Output::Wait`], [`Output::Ready`] or
//! [`Output::Failed`]. Each other output says what the adapter MUST do; most are answered by
//! exactly one input:
//!
//! | output | the adapter does | then feeds |
//! |---|---|---|
//! | [`Output::Send`] | sends the request, no redirects, body capped | [`Input::Response`] (same id) |
//! | [`Output::PrepareAttempt`] | binds the loopback listener if asked, reads OS randomness | [`Input::AttemptPrepared`] |
//! | [`Output::OpenAuthorizationUrl`] | runs the hook / opens the browser, prints the URL | nothing, or [`Input::CallbackUnavailable`] |
//! | [`Output::PromptForRedirect`] | asks the user to paste the redirect URL | [`Input::Redirect`] |
//! | [`Output::AnswerCallback`] | writes [`callback::response_page`] to the browser, stops listening | nothing |
//! | [`Output::RejectCallback`] | writes the page to that connection only, keeps listening | nothing |
//! | [`Output::Persist`] | saves or deletes in the token store, in order | nothing |
//! | [`Output::Wait`] | waits for the callback, or until `until` | [`Input::Redirect`] or [`Input::Timeout`] |
//! | [`Output::Ready`] | attaches the header and (re)sends the MCP request | next time: [`Input::TokenWanted`] |
//! | [`Output::Failed`] | reports the error | next time: [`Input::TokenWanted`] |
//!
//! Before each MCP request feed [`Input::TokenWanted`]; when the server answers 401, or 403 with
//! `insufficient_scope`, feed [`Input::Challenged`] and retry with the new header.
//!
//! A usage error (an input that does not fit the state, a response with an unknown id) is
//! returned from `handle_input` and changes nothing. Every other failure ends the flow with
//! [`Output::Failed`]; the machine keeps its tokens and registrations, and a later
//! `TokenWanted` or `Challenged` starts a new flow.
//!
//! ## States
//!
//! ```text
//!                 TokenWanted (token fresh) ──────────────────────────────────────────────┐
//!                 TokenWanted (refresh due) / Challenged 401 ──► Refreshing ──┐ ok         │
//!  ┌──────┐       (with the metadata in use: no discovery)                    └──────────► ▼
//!  │ Idle │ ──────────────────────────► ResourceMetadata ──► ServerMetadata ──┐     ┌────────┐
//!  └──────┘  nothing known yet; the      (manual endpoints skip discovery)    │     │ Ready  │
//!      ▲     challenge names other       404s: 2025-03-26 legacy              │     └────────┘
//!      │     metadata; a rejected token                                       ▼
//!      │     that cannot be refreshed;   ┌───────────── obtain token ◄── invalid_grant ── Refreshing
//!      │     before a browser login      ▼                        ▼
//!      │            AwaitingPreparation ──► Registration ──► AwaitingRedirect ──► ExchangingCode ──► Idle
//!      │            (bind + entropy)        (DCR, if needed)  (loopback │ paste;
//!      │                                                       a forged callback: RejectCallback, wait on)
//!      │                         ├──► ClientCredentials ─────────────────────────────────────────► Idle
//!      │                         └──► TokenExchange (IdP: ID token -> ID-JAG) ──► JwtBearer ─────► Idle
//!      │
//!      └─── any error ──► Failed (the flow ends; a new TokenWanted or Challenged starts over)
//!
//!  A login in a remote session, or with "interaction": "device" (RFC 8628):
//!  obtain token ──► AwaitingPreparation ──► (Registration) ──► DeviceAuthorization
//!      ──► AwaitingDevice (ShowDeviceCode; poll at the interval) ──► Idle
//!
//!  LogoutWanted ──► (discovery, if the issuer is not known) ──► Revoking (refresh token, then
//!  access token; RFC 7009) ──► forget tokens and registrations ──► LoggedOut ──► Idle
//! ```
//!
//! A transient failure of a refresh (network, 5xx, `temporarily_unavailable`) keeps the tokens:
//! the request fails with a retryable error, or, ahead of expiry, gets the still valid token.
//! Only `invalid_grant` (and `invalid_client`, which also drops a dynamic registration) forgets
//! them.
//!
//! ## A complete loop
//!
//! ```no_run
//! use mcp_oauth_core::{Authorizer, CallbackSetup, Config, Entropy, Input, Output, Restored, Timestamp};
//! # use mcp_oauth_core::http::{TransportFailure, TransportFailureKind};
//! # fn http_call(_: &mcp_oauth_core::http::OutgoingRequest) -> Result<mcp_oauth_core::http::HttpResponse, TransportFailure> {
//! #     Err(TransportFailure { kind: TransportFailureKind::Other, message: "plug in your HTTP client".into() })
//! # }
//! # fn now() -> Timestamp { Timestamp(0) }
//! # fn random_bytes() -> [u8; 96] { [0; 96] }
//! # fn bind(plan: &mcp_oauth_core::RedirectPlan) -> url::Url { plan.redirect_uri(8976) }
//! # fn wait_for_callback(_: Option<Timestamp>) -> Option<String> { None }
//! let config = Config::new("https://mcp.example.com/mcp".parse()?);
//! let mut auth = Authorizer::new(config, Restored::default(), now())?;
//! auth.handle_input(Input::TokenWanted { now: now() })?;
//! let header = loop {
//!     let next = match auth.poll_output() {
//!         Output::Send(req) => Input::Response { now: now(), id: req.id, result: http_call(&req) },
//!         Output::PrepareAttempt(plan) => Input::AttemptPrepared {
//!             now: now(),
//!             entropy: Entropy::from_bytes(random_bytes()),
//!             callback: match &plan.redirect {
//!                 Some(r) => CallbackSetup::Listening(bind(r)),
//!                 None => CallbackSetup::NotRequested,
//!             },
//!         },
//!         Output::OpenAuthorizationUrl { url, .. } => { println!("open {url}"); continue }
//!         Output::PromptForRedirect { url } => {
//!             println!("open {url}, then paste the address you land on:");
//!             let mut line = String::new();
//!             std::io::stdin().read_line(&mut line)?;
//!             Input::Redirect { now: now(), url: line.trim().to_owned(), source: mcp_oauth_core::RedirectSource::Paste }
//!         }
//!         Output::AnswerCallback(outcome) => { let _page = mcp_oauth_core::callback::response_page(&outcome); continue }
//!         Output::RejectCallback(outcome) => { let _page = mcp_oauth_core::callback::response_page(&outcome); continue }
//!         Output::Persist(_) => continue, // save to your store
//!         Output::Wait { until } => match wait_for_callback(until) {
//!             Some(url) => Input::Redirect { now: now(), url, source: mcp_oauth_core::RedirectSource::Loopback },
//!             None => Input::Timeout { now: now() },
//!         },
//!         Output::Ready(authorization) => break authorization,
//!         Output::Failed(e) => return Err(e.into()),
//!         _ => continue,
//!     };
//!     auth.handle_input(next)?;
//! };
//! let _ = header.header_value(); // attach as `Authorization`
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Security properties
//!
//! PKCE S256 always; `state` compared in constant time; RFC 9207 `iss` and the RFC 8414 issuer
//! echo checked exactly; HTTPS for every endpoint except loopback; metadata `resource` checked
//! against the server; tokens and registrations bound to their issuer; response bodies capped;
//! `Debug` of every secret-bearing type redacted.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod authorizer;
mod context;
mod dpop;
mod entropy;
mod jwt;
mod pkce;
mod policy;
mod state;
mod time;

pub mod authorize;
pub mod callback;
pub mod config;
pub mod device;
pub mod discovery;
pub mod error;
pub mod http;
pub mod metadata;
pub mod registration;
pub mod revocation;
pub mod secret;
pub mod token;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use authorizer::{
    AttemptPlan, Authorizer, CallbackSetup, CancelReason, Input, Output, Persist, RedirectPlan, RedirectSource, Restored, StateName,
};
pub use config::{Config, Flow, LoginMethod, NetworkPolicy, OAuthConfig};
pub use entropy::Entropy;
pub use error::{
    AuthorizationError, Blame, ConfigError, DiscoveryError, Error, ErrorCode, HttpError, OAuthErrorResponse, RedirectProblem,
    RegistrationError, ResourceError, Stage, TokenError, UsageError,
};
pub use registration::{ClientInfo, ClientKind};
pub use revocation::{IfUnreachable, LogoutReport, Revocation};
pub use time::Timestamp;
pub use token::{Authorization, GrantKind, TokenSet};
pub use url::Url;

#[cfg(test)]
mod tests;
