//! Errors, sorted by who is to blame (h11, rustls).
//!
//! * [`UsageError`]: the caller broke the contract (h11's local protocol error). Returned from
//!   [`Authorizer::handle_input`](crate::Authorizer::handle_input); the machine is unchanged.
//! * [`DiscoveryError`], [`RegistrationError`], [`TokenError`], [`HttpError`]: a server
//!   misbehaved or refused.
//! * [`AuthorizationError`]: the redirect was bad, the user refused, or nobody could log in.
//! * [`Error::TimedOut`]: a deadline core computed passed.
//! * [`ResourceError`]: the MCP server kept refusing after authorization.
//!
//! `Display` is lower-case without a trailing period and names the field or header at fault.
//! Text that came from a server is escaped and never contains a token or secret of ours.

use crate::http::{Purpose, RequestId, TransportFailure, TransportFailureKind};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error core reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller misused the API. Nothing changed.
    #[error("usage: {0}")]
    Usage(#[from] UsageError),
    /// Metadata discovery failed.
    #[error("discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The client could not get a client id.
    #[error("registration: {0}")]
    Registration(#[from] RegistrationError),
    /// The authorization step (browser, redirect) failed.
    #[error("authorization: {0}")]
    Authorization(#[from] AuthorizationError),
    /// The token endpoint refused or answered nonsense.
    #[error("token: {0}")]
    Token(#[from] TokenError),
    /// An HTTP exchange failed below the OAuth level.
    #[error("{purpose}: {error}")]
    Http {
        /// What the request was for.
        purpose: Purpose,
        /// What went wrong.
        error: HttpError,
    },
    /// A deadline passed.
    #[error("timed out waiting for {waiting_for}")]
    TimedOut {
        /// What core was waiting for.
        waiting_for: Stage,
    },
    /// The MCP server refused the request after authorization.
    #[error("resource: {0}")]
    Resource(#[from] ResourceError),
}

/// The stage of the flow an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Stage {
    /// The caller's side of the contract.
    Usage,
    /// Protected resource or authorization server metadata.
    Discovery,
    /// Client registration.
    Registration,
    /// The browser round trip and the redirect.
    Authorization,
    /// The token endpoint.
    Token,
    /// The MCP server itself.
    Resource,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Usage => "usage",
            Stage::Discovery => "discovery",
            Stage::Registration => "registration",
            Stage::Authorization => "the authorization redirect",
            Stage::Token => "the token endpoint",
            Stage::Resource => "the resource server",
        })
    }
}

impl Error {
    /// The stage the error belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            Error::Usage(_) => Stage::Usage,
            Error::Discovery(_) => Stage::Discovery,
            Error::Registration(_) => Stage::Registration,
            Error::Authorization(_) => Stage::Authorization,
            Error::Token(_) => Stage::Token,
            Error::Http { purpose, .. } => match purpose {
                Purpose::ResourceMetadata | Purpose::ServerMetadata => Stage::Discovery,
                Purpose::Registration => Stage::Registration,
                _ => Stage::Token,
            },
            Error::TimedOut { waiting_for } => *waiting_for,
            Error::Resource(_) => Stage::Resource,
        }
    }

    /// True if trying the same thing again later may succeed (network trouble, 5xx,
    /// `temporarily_unavailable`, timeouts). False for refusals and misconfiguration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Http { error, .. } => match error {
                HttpError::Transport(t) => t.kind != TransportFailureKind::BodyTooLarge,
                HttpError::UnexpectedStatus { status, .. } => *status >= 500 || *status == 429,
                _ => false,
            },
            Error::Token(TokenError::Rejected(e)) | Error::Registration(RegistrationError::Rejected(e)) => {
                matches!(e.error.as_str(), "server_error" | "temporarily_unavailable")
            }
            Error::Authorization(AuthorizationError::Denied(e)) => {
                matches!(e.error.as_str(), "server_error" | "temporarily_unavailable")
            }
            Error::TimedOut { .. } => true,
            _ => false,
        }
    }
}

/// The caller broke the Sans-IO contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// A `Response` carried an id that is not outstanding (unknown, stale or answered already).
    #[error("no outstanding request has id {0}")]
    UnknownRequest(RequestId),
    /// The input does not fit the current state.
    #[error("input {input} is not expected in state {state}")]
    UnexpectedInput {
        /// The input's name.
        input: &'static str,
        /// The machine's state.
        state: crate::StateName,
    },
    /// A redirect URI from `AttemptPrepared` is not a loopback `http` URL on the planned path.
    #[error("callback redirect uri {0:?} is not a loopback http url on the planned path")]
    BadRedirectUri(String),
}

/// An OAuth error response (RFC 6749 §4.1.2.1, §5.2; RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorResponse {
    /// The `error` code, such as `invalid_grant` or `access_denied`.
    pub error: String,
    /// `error_description`, if any. Server-controlled text.
    #[serde(default, rename = "error_description", skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `error_uri`, if any. Server-controlled text.
    #[serde(default, rename = "error_uri", skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

impl fmt::Display for OAuthErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error.escape_default())?;
        if let Some(d) = &self.description {
            let d: String = d.chars().take(200).collect();
            write!(f, " ({})", d.escape_default())?;
        }
        Ok(())
    }
}

/// Discovery of protected resource or authorization server metadata failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// A URL from configuration or metadata is neither `https` nor loopback `http`.
    #[error("{field} {url:?} is not https (http is allowed only for loopback hosts)")]
    InsecureUrl {
        /// Which field held the URL.
        field: &'static str,
        /// The URL, without its query.
        url: String,
    },
    /// A URL from metadata did not parse.
    #[error("{field} is not a valid url")]
    InvalidUrl {
        /// Which field held the URL.
        field: &'static str,
    },
    /// The protected resource metadata document is unusable.
    #[error("protected resource metadata: {0}")]
    InvalidResourceMetadata(String),
    /// The metadata's `resource` is not this MCP server (RFC 9728 §3.3).
    #[error("protected resource metadata names resource {found:?}, expected {expected:?}")]
    ResourceMismatch {
        /// The MCP server URL.
        expected: String,
        /// The `resource` value in the document.
        found: String,
    },
    /// No authorization server from the metadata could be used.
    #[error("no usable authorization server (tried {tried})")]
    NoAuthorizationServer {
        /// How many were tried.
        tried: usize,
    },
    /// The authorization server metadata document is unusable.
    #[error("authorization server metadata for {issuer:?}: {reason}")]
    InvalidServerMetadata {
        /// The issuer being discovered.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// The metadata's `issuer` differs from the issuer it was fetched for (RFC 8414 §3.3).
    #[error("authorization server metadata issuer {found:?} does not equal {expected:?}")]
    IssuerMismatch {
        /// The issuer the metadata was fetched for.
        expected: String,
        /// The `issuer` in the document.
        found: String,
    },
    /// The authorization server does not advertise PKCE `S256`.
    #[error("authorization server {issuer:?} does not list S256 in code_challenge_methods_supported")]
    PkceNotSupported {
        /// The issuer.
        issuer: String,
    },
    /// The flow needs an endpoint the server does not have.
    #[error("authorization server {issuer:?} has no {endpoint}")]
    MissingEndpoint {
        /// The issuer.
        issuer: String,
        /// The missing endpoint's metadata name.
        endpoint: &'static str,
    },
}

/// The client could not obtain a client id for the authorization server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// No pre-registered id, no client id metadata document support, no registration endpoint.
    #[error("authorization server {issuer:?} offers no way to register (no client_id configured, no client id metadata document support, no registration_endpoint)")]
    NoMethod {
        /// The issuer.
        issuer: String,
    },
    /// The configured client credentials belong to another authorization server (SEP-2352).
    #[error("configured client_id is bound to {configured:?}, but the resource uses {discovered:?}")]
    BoundToOtherIssuer {
        /// The issuer in configuration.
        configured: String,
        /// The issuer discovery found.
        discovered: String,
    },
    /// The registration endpoint refused (RFC 7591 §3.2.2).
    #[error("registration refused: {0}")]
    Rejected(OAuthErrorResponse),
    /// The registration response is unusable.
    #[error("invalid registration response: {0}")]
    InvalidResponse(String),
}

/// The authorization step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The redirect's `state` is not the one we sent (possible CSRF); nothing was exchanged.
    #[error("state in the redirect does not match the request")]
    StateMismatch,
    /// The redirect has no `state`.
    #[error("redirect has no state parameter")]
    MissingState,
    /// The redirect has neither `code` nor `error`.
    #[error("redirect has no code parameter")]
    MissingCode,
    /// The authorization server answered with an error (the user refusing is `access_denied`).
    #[error("authorization server refused: {0}")]
    Denied(OAuthErrorResponse),
    /// The redirect's `iss` is not the issuer we sent the user to (RFC 9207 §2.4).
    #[error("iss in the redirect is {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The recorded issuer.
        expected: String,
        /// The `iss` received.
        found: String,
    },
    /// The server advertises `iss` in redirects but this one has none (RFC 9207 §2.4).
    #[error("redirect has no iss parameter although the server advertises it")]
    MissingIssuer,
    /// The redirect URL is not a URL, or not to our redirect URI.
    #[error("redirect url is invalid: {0}")]
    InvalidRedirect(String),
    /// The authorization endpoint is not `http(s)` or not secure.
    #[error("authorization_endpoint {0:?} is not an https url")]
    InsecureAuthorizationEndpoint(String),
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A user must log in, but nobody can: no browser, no terminal, no hook.
    #[error("interactive login required, but no browser, terminal or hook is available (a service authenticates as itself with \"client_id\" and \"client_secret\" or \"private_key\"; set \"flow\": \"client_credentials\" if the server does not list that grant)")]
    InteractionRequired,
    /// The configured flow cannot run with what the server offers.
    #[error("{0}")]
    FlowUnavailable(String),
}

/// The token endpoint refused or answered nonsense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// An OAuth error response (RFC 6749 §5.2).
    #[error("token endpoint refused: {0}")]
    Rejected(OAuthErrorResponse),
    /// The success response is unusable.
    #[error("invalid token response: {0}")]
    InvalidResponse(String),
    /// `token_type` is not `Bearer`.
    #[error("unsupported token_type {0:?}")]
    UnsupportedTokenType(String),
    /// Client authentication could not be built (bad key, missing secret).
    #[error("client authentication: {0}")]
    ClientAuthentication(String),
}

/// The MCP server refused the request after authorization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// A `403` that is not `insufficient_scope`: not an OAuth matter (SPEC item 93).
    #[error("forbidden (status 403){}", describe(.description))]
    Forbidden {
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The server wants more scope: step-up did not satisfy it within the attempt limit, or
    /// step-up is off (`attempts` is 0) and the application decides (SPEC 97).
    #[error("insufficient scope after {attempts} authorization attempts (scope {scope:?}){}", describe(.description))]
    InsufficientScope {
        /// The scope the server asked for.
        scope: Option<String>,
        /// `error_description`, if any.
        description: Option<String>,
        /// The challenge's `resource_metadata`, if any (unvalidated, as the server sent it).
        resource_metadata: Option<String>,
        /// Authorization attempts made for this request.
        attempts: u8,
    },
    /// The server rejected a token obtained moments ago, or kept challenging past the limit.
    #[error("the server rejected a freshly obtained token (status {status})")]
    RejectedFreshToken {
        /// The status of the last challenge.
        status: u16,
    },
    /// `Challenged` was given a status that is not 401 or 403.
    #[error("status {0} is not an authorization challenge")]
    NotAChallenge(u16),
}

fn describe(d: &Option<String>) -> String {
    match d {
        Some(d) => format!(": {}", d.chars().take(200).collect::<String>().escape_default()),
        None => String::new(),
    }
}

/// An HTTP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The body exceeded the limit for this purpose.
    #[error("response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A status core cannot use.
    #[error("unexpected status {status}: {excerpt}")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The start of the body, escaped.
        excerpt: String,
    },
    /// `Content-Type` is not JSON.
    #[error("content-type {content_type:?} is not application/json")]
    BadContentType {
        /// The header value.
        content_type: String,
    },
    /// The body is not the JSON expected.
    #[error("invalid json: {reason}")]
    InvalidJson {
        /// serde_json's message (field path, line, column).
        reason: String,
    },
    /// No response arrived.
    #[error("{0}")]
    Transport(TransportFailure),
}

/// A configuration problem found by `validate()` or [`Authorizer::new`](crate::Authorizer::new).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// OAuth was configured for a stdio server, which takes credentials from its environment.
    #[error("oauth is only for http transports (streamable_http, sse); server {0:?} uses stdio")]
    OAuthOnStdio(String),
    /// A URL is malformed or not allowed.
    #[error("{field}: {reason}")]
    InvalidUrl {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An environment variable named by a secret reference is not set.
    #[error("{field}: environment variable {var:?} is not set")]
    MissingEnv {
        /// The field.
        field: &'static str,
        /// The variable.
        var: String,
    },
    /// A literal secret was redacted when the configuration was written out.
    #[error("{0}: the secret was redacted when this configuration was saved; supply it again or use an env reference")]
    RedactedSecret(&'static str),
    /// Settings that contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}
