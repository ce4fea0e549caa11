//! Errors, grouped by stage, each saying who is to blame (h11, rustls).
//!
//! * [`UsageError`]: the caller broke the contract (h11's local protocol error). Returned from
//!   [`Authorizer::handle_input`](crate::Authorizer::handle_input); the machine is unchanged.
//! * [`DiscoveryError`], [`RegistrationError`], [`TokenError`], [`HttpError`]: a server
//!   misbehaved or refused.
//! * [`AuthorizationError`]: the redirect was bad or forged, the user refused, or nobody could
//!   log in.
//! * [`Error::TimedOut`]: a deadline core computed passed.
//! * [`ResourceError`]: the MCP server kept refusing after authorization.
//! * [`Error::Bug`]: an invariant of core broke.
//!
//! The stage says where the flow stopped; [`Blame`], from every error's `blame()`, says whose
//! move it is: an application can tell "check your configuration" from "the server is down"
//! from "you cancelled" without parsing text. OAuth error codes are an [`ErrorCode`].
//!
//! `Display` is lower-case without a trailing period, names the field or header at fault, and
//! after a colon says what the user can do next. Text that came from a server is escaped and
//! never contains a token or secret of ours.

use crate::http::{Purpose, RequestId, TransportFailure, TransportFailureKind};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who is to blame for an error: whose move it is to fix it.
///
/// `Attacker` earns its place beside the parties of the flow: a `state` that does not match, a
/// redirect without `state`, an `iss` that is not the issuer we sent the user to, or a redirect
/// that repeats a parameter, are what CSRF, mix-up and parameter-pollution attacks look like
/// (RFC 9700 §4.4, §4.7, RFC 9207). No honest server sends them, so blaming the authorization
/// server would send an operator hunting a bug that is not there, and blaming the user would
/// tell them they did something wrong. The same marks come from an old browser tab finishing
/// an earlier login, which is why the error says to start again rather than to panic: what the
/// caller learns is that the input was refused because it could have been forged, and that
/// retrying it will never help. An application may log these as security events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Blame {
    /// The MCP server (the resource server), including its protected resource metadata.
    Server,
    /// The authorization server (or, for enterprise-managed authorization, the identity
    /// provider): its metadata, registration or token endpoint refused or answered nonsense.
    AuthorizationServer,
    /// The person: they cancelled, denied access, pasted the wrong address, or did not finish
    /// the login in time. Logging in again fixes it.
    User,
    /// This client's own setup: its configuration and credentials, and the machine it runs on
    /// (the token store's directory and files, randomness, the network policy, the features
    /// built in). Whoever configures the client fixes it.
    Configuration,
    /// No answer arrived: connection refused, name resolution, TLS, a timeout. Trying again
    /// later may work.
    Network,
    /// Input that could have been forged was refused (see above).
    Attacker,
    /// A bug in this software, or in the code driving it: a broken invariant of core
    /// ([`Error::Bug`]), or a caller that broke the contract ([`Error::Usage`]).
    Bug,
}

impl fmt::Display for Blame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Blame::Server => "the mcp server",
            Blame::AuthorizationServer => "the authorization server",
            Blame::User => "the user",
            Blame::Configuration => "the configuration",
            Blame::Network => "the network",
            Blame::Attacker => "a possible attacker",
            Blame::Bug => "a bug",
        })
    }
}

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
    #[error("timed out waiting for {waiting_for}{}", timeout_hint(*.waiting_for))]
    TimedOut {
        /// What core was waiting for.
        waiting_for: Stage,
    },
    /// The MCP server refused the request after authorization.
    #[error("resource: {0}")]
    Resource(#[from] ResourceError),
    /// An invariant of core itself broke: a bug in this crate, never the fault of a server or
    /// the user (rustls's `Unreachable`). The text names the invariant; it is never input.
    #[error("internal error: {0}: this is a bug in mcp-oauth, please report it")]
    Bug(&'static str),
}

fn timeout_hint(stage: Stage) -> &'static str {
    match stage {
        Stage::Authorization => ": finish the login in the browser sooner (or raise callback_timeout_secs), then try again",
        _ => ": try again later",
    }
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
    /// None: an internal invariant broke ([`Error::Bug`]).
    Internal,
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
            Stage::Internal => "an internal invariant",
        })
    }
}

impl Error {
    /// Who is to blame (see [`Blame`]).
    pub fn blame(&self) -> Blame {
        match self {
            Error::Usage(e) => e.blame(),
            Error::Discovery(e) => e.blame(),
            Error::Registration(e) => e.blame(),
            Error::Authorization(e) => e.blame(),
            Error::Token(e) => e.blame(),
            Error::Http { purpose, error } => error.blame(*purpose),
            // The one deadline core sets is the login's: the person did not finish in time.
            Error::TimedOut { waiting_for: Stage::Authorization } => Blame::User,
            Error::TimedOut { .. } => Blame::Network,
            Error::Resource(e) => e.blame(),
            Error::Bug(_) => Blame::Bug,
        }
    }

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
            Error::Bug(_) => Stage::Internal,
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
            Error::Token(TokenError::Rejected(e) | TokenError::MachineGrantRefused { error: e, .. })
            | Error::Registration(RegistrationError::Rejected(e))
            | Error::Authorization(AuthorizationError::Denied(e)) => e.error.is_transient(),
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
    #[error("no outstanding request has id {0}: feed each response once, with the id of its Send")]
    UnknownRequest(RequestId),
    /// The input does not fit the current state.
    #[error("input {input} is not expected in state {state}: poll outputs until Wait, Ready or Failed before the next input")]
    UnexpectedInput {
        /// The input's name.
        input: &'static str,
        /// The machine's state.
        state: crate::StateName,
    },
    /// A redirect URI from `AttemptPrepared` is not a loopback `http` URL on the planned path.
    #[error("callback redirect uri {uri:?} is not a loopback http url on the planned path: bind the listener the plan asks for")]
    BadRedirectUri {
        /// The redirect URI the adapter reported.
        uri: url::Url,
    },
}

impl UsageError {
    /// Always [`Blame::Bug`]: the code driving the machine broke its contract.
    pub fn blame(&self) -> Blame {
        Blame::Bug
    }
}

/// An OAuth error code: the `error` of a token, authorization or registration error response,
/// or of a `WWW-Authenticate` challenge. The codes this crate acts on, or that a caller may want
/// to match, are variants; any other is kept as [`ErrorCode::Other`] (oauth2-rs's habit).
///
/// Parsing is total and canonical: [`ErrorCode::parse`] never returns `Other` for a code that
/// has a variant, and `Other("invalid_grant")` built by hand still equals
/// [`ErrorCode::InvalidGrant`] (equality and hashing go by [`as_str`](ErrorCode::as_str)).
/// It serializes as the plain string, so stored or parsed data is unchanged.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request` (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1).
    InvalidRequest,
    /// `invalid_client` (RFC 6749 §5.2): client authentication failed.
    InvalidClient,
    /// `invalid_grant` (RFC 6749 §5.2): the code, refresh token or assertion is invalid,
    /// expired or revoked.
    InvalidGrant,
    /// `unauthorized_client` (RFC 6749 §4.1.2.1, §5.2): this client may not use this grant.
    UnauthorizedClient,
    /// `unsupported_grant_type` (RFC 6749 §5.2).
    UnsupportedGrantType,
    /// `invalid_scope` (RFC 6749 §4.1.2.1, §5.2).
    InvalidScope,
    /// `access_denied` (RFC 6749 §4.1.2.1): the user or the server refused.
    AccessDenied,
    /// `unsupported_response_type` (RFC 6749 §4.1.2.1).
    UnsupportedResponseType,
    /// `server_error` (RFC 6749 §4.1.2.1): transient.
    ServerError,
    /// `temporarily_unavailable` (RFC 6749 §4.1.2.1): transient.
    TemporarilyUnavailable,
    /// `invalid_token` (RFC 6750 §3.1): the access token is expired, revoked or malformed.
    InvalidToken,
    /// `insufficient_scope` (RFC 6750 §3.1): the request needs more scope.
    InsufficientScope,
    /// `use_dpop_nonce` (RFC 9449 §8, §9): retry with the server's `DPoP-Nonce`.
    UseDpopNonce,
    /// `invalid_dpop_proof` (RFC 9449 §7.1, §12.2).
    InvalidDpopProof,
    /// `invalid_redirect_uri` (RFC 7591 §3.2.2).
    InvalidRedirectUri,
    /// `invalid_client_metadata` (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// `invalid_software_statement` (RFC 7591 §3.2.2).
    InvalidSoftwareStatement,
    /// `unapproved_software_statement` (RFC 7591 §3.2.2).
    UnapprovedSoftwareStatement,
    /// Any other code, as the server sent it (server-controlled text: `Display` escapes it).
    Other(String),
}

/// Every named code, for parsing.
const NAMED_CODES: [ErrorCode; 18] = [
    ErrorCode::InvalidRequest,
    ErrorCode::InvalidClient,
    ErrorCode::InvalidGrant,
    ErrorCode::UnauthorizedClient,
    ErrorCode::UnsupportedGrantType,
    ErrorCode::InvalidScope,
    ErrorCode::AccessDenied,
    ErrorCode::UnsupportedResponseType,
    ErrorCode::ServerError,
    ErrorCode::TemporarilyUnavailable,
    ErrorCode::InvalidToken,
    ErrorCode::InsufficientScope,
    ErrorCode::UseDpopNonce,
    ErrorCode::InvalidDpopProof,
    ErrorCode::InvalidRedirectUri,
    ErrorCode::InvalidClientMetadata,
    ErrorCode::InvalidSoftwareStatement,
    ErrorCode::UnapprovedSoftwareStatement,
];

impl ErrorCode {
    /// The code for `s`: a named variant if there is one (exact, case-sensitive match, as the
    /// RFCs define the codes), else [`ErrorCode::Other`].
    pub fn parse(s: &str) -> Self {
        NAMED_CODES.iter().find(|c| c.as_str() == s).cloned().unwrap_or_else(|| ErrorCode::Other(s.to_owned()))
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidSoftwareStatement => "invalid_software_statement",
            ErrorCode::UnapprovedSoftwareStatement => "unapproved_software_statement",
            ErrorCode::Other(s) => s,
        }
    }

    /// True for the codes that say "try again later" (`server_error`, `temporarily_unavailable`).
    pub fn is_transient(&self) -> bool {
        matches!(self, ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable)
    }
}

impl PartialEq for ErrorCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ErrorCode {}

impl std::hash::Hash for ErrorCode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl From<&str> for ErrorCode {
    fn from(s: &str) -> Self {
        ErrorCode::parse(s)
    }
}

impl From<String> for ErrorCode {
    fn from(s: String) -> Self {
        match ErrorCode::parse(&s) {
            ErrorCode::Other(_) => ErrorCode::Other(s),
            named => named,
        }
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ErrorCode::parse(s))
    }
}

/// Escaped: an [`ErrorCode::Other`] is server-controlled text.
impl fmt::Display for ErrorCode {
    /// Escaped, and at most 100 characters of it (an unknown code is server text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bounded(self.as_str()).escape_default())
    }
}

/// Server text as errors show it: at most 200 characters, `…` marking a cut.
pub(crate) fn bounded(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ErrorCode::from)
    }
}

/// An OAuth error response (RFC 6749 §4.1.2.1, §5.2; RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorResponse {
    /// The `error` code, such as `invalid_grant` or `access_denied`.
    pub error: ErrorCode,
    /// `error_description`, if any. Server-controlled text.
    #[serde(default, rename = "error_description", skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `error_uri`, if any. Server-controlled text.
    #[serde(default, rename = "error_uri", skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

impl OAuthErrorResponse {
    /// Who is to blame, by the code: `access_denied` and `invalid_grant` (the login or grant is
    /// refused, expired or revoked: log in again) the user; codes that say this client, its
    /// credentials, scopes or registration do not fit the server the configuration; the rest
    /// (transient, malformed, unknown) the authorization server.
    pub fn blame(&self) -> Blame {
        match self.error {
            ErrorCode::AccessDenied | ErrorCode::InvalidGrant => Blame::User,
            ErrorCode::InvalidClient
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::InvalidScope
            | ErrorCode::InvalidRedirectUri
            | ErrorCode::InvalidClientMetadata
            | ErrorCode::InvalidSoftwareStatement
            | ErrorCode::UnapprovedSoftwareStatement => Blame::Configuration,
            _ => Blame::AuthorizationServer,
        }
    }

    /// What to do next, after the code.
    fn hint(&self) -> &'static str {
        match self.blame() {
            _ if self.error.is_transient() => ": try again later",
            Blame::User if self.error == ErrorCode::AccessDenied => ": log in again and allow access if that was a mistake",
            Blame::User => ": log in again",
            Blame::Configuration => ": check the client's configuration (client_id, credentials, scopes) for this server",
            _ => ": the authorization server refused; see its description",
        }
    }
}

impl fmt::Display for OAuthErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
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
    #[error("{field} {url:?} is not https (http is allowed only for loopback hosts): the server publishing it must use https")]
    InsecureUrl {
        /// Which field held the URL.
        field: &'static str,
        /// The URL, without its query.
        url: String,
    },
    /// A URL from metadata did not parse.
    #[error("{field} is not a valid url: the server publishing it must correct its metadata")]
    InvalidUrl {
        /// Which field held the URL.
        field: &'static str,
    },
    /// The protected resource metadata document is not the JSON object RFC 9728 defines.
    #[error("protected resource metadata is not valid json ({reason}): the mcp server's /.well-known/oauth-protected-resource is broken")]
    ResourceMetadataNotJson {
        /// serde_json's message (field path, line, column).
        reason: String,
    },
    /// The protected resource metadata lacks a required field, or has it empty.
    #[error("protected resource metadata has no {field}: the mcp server's /.well-known/oauth-protected-resource is incomplete")]
    ResourceMetadataMissingField {
        /// `resource` or `authorization_servers`.
        field: &'static str,
    },
    /// The metadata's `resource` is not this MCP server (RFC 9728 §3.3).
    #[error("protected resource metadata names resource {found:?}, expected {expected:?}: check the server url, or set resource_match if the server names itself differently")]
    ResourceMismatch {
        /// The MCP server URL.
        expected: String,
        /// The `resource` value in the document.
        found: String,
    },
    /// No authorization server from the metadata could be used.
    #[error("no usable authorization server (tried {tried}): set authorization_server or endpoints in the configuration")]
    NoAuthorizationServer {
        /// How many were tried.
        tried: usize,
    },
    /// The authorization server metadata document is not the JSON object RFC 8414 defines.
    #[error("authorization server metadata for {issuer:?} is not valid json ({reason}): the authorization server's metadata is broken")]
    ServerMetadataNotJson {
        /// The issuer being discovered.
        issuer: String,
        /// serde_json's message (field path, line, column).
        reason: String,
    },
    /// The authorization server's `response_types_supported` does not list `code`: no login
    /// is possible there.
    #[error("authorization server {issuer:?} does not list code in response_types_supported: it offers no browser login; use a machine flow (client credentials) or another server")]
    CodeNotSupported {
        /// The issuer.
        issuer: String,
    },
    /// The metadata's `issuer` differs from the issuer it was fetched for (RFC 8414 §3.3).
    #[error("authorization server metadata issuer {found:?} does not equal {expected:?}: the authorization server must publish its exact issuer")]
    IssuerMismatch {
        /// The issuer the metadata was fetched for.
        expected: String,
        /// The `issuer` in the document.
        found: String,
    },
    /// The authorization server does not advertise PKCE `S256`.
    #[error("authorization server {issuer:?} does not list S256 in code_challenge_methods_supported: set allow_missing_pkce_metadata if it supports PKCE anyway")]
    PkceNotSupported {
        /// The issuer.
        issuer: String,
    },
    /// The flow needs an endpoint the server does not have.
    #[error("authorization server {issuer:?} has no {endpoint}: configure endpoints, or use a flow that does not need it")]
    MissingEndpoint {
        /// The issuer.
        issuer: String,
        /// The missing endpoint's metadata name.
        endpoint: &'static str,
    },
}

impl DiscoveryError {
    /// Who is to blame: the MCP server for its protected resource metadata, the authorization
    /// server for its own.
    pub fn blame(&self) -> Blame {
        match self {
            DiscoveryError::InsecureUrl { field: "authorization_servers", .. }
            | DiscoveryError::InvalidUrl { field: "authorization_servers" }
            | DiscoveryError::ResourceMetadataNotJson { .. }
            | DiscoveryError::ResourceMetadataMissingField { .. }
            | DiscoveryError::ResourceMismatch { .. }
            | DiscoveryError::NoAuthorizationServer { .. } => Blame::Server,
            DiscoveryError::InsecureUrl { .. }
            | DiscoveryError::InvalidUrl { .. }
            | DiscoveryError::ServerMetadataNotJson { .. }
            | DiscoveryError::CodeNotSupported { .. }
            | DiscoveryError::IssuerMismatch { .. }
            | DiscoveryError::PkceNotSupported { .. }
            | DiscoveryError::MissingEndpoint { .. } => Blame::AuthorizationServer,
        }
    }
}

/// The client could not obtain a client id for the authorization server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// No pre-registered id, no client id metadata document support, no registration endpoint.
    #[error("authorization server {issuer:?} offers no way to register (no client_id configured, no client id metadata document support, no registration_endpoint): register a client there and configure its client_id")]
    NoMethod {
        /// The issuer.
        issuer: String,
    },
    /// The configured client credentials belong to another authorization server (SEP-2352).
    #[error("configured client_id is bound to {configured:?}, but the resource uses {discovered:?}: register a client at the new server and configure it, with authorization_server")]
    BoundToOtherIssuer {
        /// The issuer in configuration.
        configured: String,
        /// The issuer discovery found.
        discovered: String,
    },
    /// The registration endpoint refused (RFC 7591 §3.2.2).
    #[error("registration refused: {}{}", .0, .0.hint())]
    Rejected(OAuthErrorResponse),
    /// The registration response is not the JSON object RFC 7591 defines.
    #[error("registration response is not valid json ({reason}): the authorization server's registration endpoint is broken; configure a client_id instead")]
    ResponseNotJson {
        /// serde_json's message (field path, line, column).
        reason: String,
    },
    /// The registration response has an empty `client_id`.
    #[error("registration response has an empty client_id: the authorization server's registration endpoint is broken; configure a client_id instead")]
    EmptyClientId,
}

impl RegistrationError {
    /// Who is to blame: the configuration when no registration is possible or the configured
    /// client belongs elsewhere; otherwise the authorization server (by the refusal's code).
    pub fn blame(&self) -> Blame {
        match self {
            RegistrationError::NoMethod { .. } | RegistrationError::BoundToOtherIssuer { .. } => Blame::Configuration,
            RegistrationError::Rejected(e) => e.blame(),
            RegistrationError::ResponseNotJson { .. } | RegistrationError::EmptyClientId => Blame::AuthorizationServer,
        }
    }
}

/// The authorization step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The redirect's `state` is not the one we sent (possible CSRF); nothing was exchanged.
    #[error("state in the redirect does not match the request, so it was refused (it may be forged, or from an earlier login): start the login again")]
    StateMismatch,
    /// The redirect has no `state`.
    #[error("redirect has no state parameter, so it was refused (it may be forged): start the login again")]
    MissingState,
    /// The redirect has neither `code` nor `error`.
    #[error("redirect has no code parameter: the authorization server ended the login without a result; start it again")]
    MissingCode,
    /// The authorization server answered with an error (the user refusing is `access_denied`).
    #[error("authorization server refused: {}{}", .0, .0.hint())]
    Denied(OAuthErrorResponse),
    /// The redirect's `iss` is not the issuer we sent the user to (RFC 9207 §2.4).
    #[error("iss in the redirect is {found:?}, expected {expected:?}, so it was refused (a mix-up attack looks like this): start the login again")]
    IssuerMismatch {
        /// The recorded issuer.
        expected: String,
        /// The `iss` received.
        found: String,
    },
    /// The server advertises `iss` in redirects but this one has none (RFC 9207 §2.4).
    #[error("redirect has no iss parameter although the server advertises it, so it was refused: start the login again")]
    MissingIssuer,
    /// The redirect URL is not a URL, is not addressed to our redirect URI, or repeats a
    /// parameter.
    #[error("redirect url is invalid: {0}")]
    InvalidRedirect(RedirectProblem),
    /// The caller cancelled.
    #[error("cancelled: start the login again when ready")]
    Cancelled,
    /// A user must log in, but nobody can: no browser, no terminal, no hook.
    #[error("interactive login required, but no browser, terminal or hook is available (a service authenticates as itself with \"client_id\" and \"client_secret\" or \"private_key\"; set \"flow\": \"client_credentials\" if the server does not list that grant)")]
    InteractionRequired,
    /// The device code (RFC 8628) expired before the person finished signing in.
    #[error("the device code expired before the sign-in was finished: log in again, and enter the code sooner")]
    DeviceCodeExpired,
    /// `"interaction": "device"`, but the authorization server offers no device grant.
    #[error("the authorization server {issuer} offers no device authorization grant (no device_authorization_endpoint): log in with the browser (\"interaction\": \"browser\")")]
    DeviceUnsupported {
        /// The authorization server.
        issuer: String,
    },
    /// The device authorization response (RFC 8628 §3.2) is unusable.
    #[error("the device authorization response is unusable: {0}")]
    InvalidDeviceResponse(String),
}

impl AuthorizationError {
    /// Who is to blame: a possible attacker for redirects that fail the anti-forgery checks,
    /// the user for cancelling, refusing or pasting the wrong address, the configuration when
    /// nobody can log in, the authorization server otherwise.
    pub fn blame(&self) -> Blame {
        match self {
            AuthorizationError::StateMismatch
            | AuthorizationError::MissingState
            | AuthorizationError::IssuerMismatch { .. }
            | AuthorizationError::MissingIssuer => Blame::Attacker,
            AuthorizationError::InvalidRedirect(p) => p.blame(),
            AuthorizationError::MissingCode => Blame::AuthorizationServer,
            AuthorizationError::Denied(e) => e.blame(),
            AuthorizationError::Cancelled | AuthorizationError::DeviceCodeExpired => Blame::User,
            AuthorizationError::InteractionRequired | AuthorizationError::DeviceUnsupported { .. } => Blame::Configuration,
            AuthorizationError::InvalidDeviceResponse(_) => Blame::AuthorizationServer,
        }
    }
}

/// What is wrong with a redirect URL ([`AuthorizationError::InvalidRedirect`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectProblem {
    /// Longer than [`MAX_REDIRECT_URL_BYTES`](crate::authorize::MAX_REDIRECT_URL_BYTES).
    #[error("it is longer than {limit} bytes: paste the address the login ended on")]
    TooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Not a URL at all.
    #[error("it is not a url ({0}): paste the whole address from the browser's address bar")]
    NotAUrl(url::ParseError),
    /// A URL, but not to our redirect URI (scheme, host, port and path).
    #[error("it is not addressed to this client's redirect uri: paste the address the login ended on")]
    NotOurRedirectUri,
    /// A parameter appears twice (parameter pollution).
    #[error("parameter {0} appears more than once, so it was refused (it may be forged): start the login again")]
    DuplicateParameter(&'static str),
}

impl RedirectProblem {
    /// Who is to blame: the user for an address that is not the redirect (a paste gone wrong),
    /// a possible attacker for a repeated parameter (parameter pollution).
    pub fn blame(&self) -> Blame {
        match self {
            RedirectProblem::TooLong { .. } | RedirectProblem::NotAUrl(_) | RedirectProblem::NotOurRedirectUri => Blame::User,
            RedirectProblem::DuplicateParameter(_) => Blame::Attacker,
        }
    }
}

/// The token endpoint refused or answered nonsense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// An OAuth error response (RFC 6749 §5.2).
    #[error("token endpoint refused: {}{}", .0, .0.hint())]
    Rejected(OAuthErrorResponse),
    /// The success response's body is JSON, but not an object.
    #[error("token response is not a json object: the token endpoint is broken")]
    NotAnObject,
    /// A field of the success response is missing or of the wrong type.
    #[error("token response field {field} is missing or not {expected}: the token endpoint is broken")]
    InvalidField {
        /// The field: `access_token`, `token_type`, `expires_in`, `refresh_token` or `scope`.
        field: &'static str,
        /// What it must be, in words (`a non-empty string`, `a number`).
        expected: &'static str,
    },
    /// A token exchange at the identity provider answered something other than an ID-JAG.
    #[error("token exchange answered issued_token_type {}, not an id-jag: the identity provider does not support enterprise-managed authorization for this client", describe_type(.issued_token_type))]
    NotIdJag {
        /// The `issued_token_type` received, if any (server text, at most 100 characters).
        issued_token_type: Option<String>,
    },
    /// `token_type` is not `Bearer`.
    #[error("unsupported token_type {0:?}: the token endpoint must issue Bearer or DPoP tokens")]
    UnsupportedTokenType(String),
    /// A grant made without a person (client credentials, a JWT bearer assertion, or the
    /// token exchange before one) was refused: what the configuration or the platform supplies
    /// (credentials, the workload's token, the ID token) is not accepted. Nobody can log in
    /// again instead.
    #[error("{} grant refused: {error}{}", grant.as_str(), machine_hint(error))]
    MachineGrantRefused {
        /// The grant.
        grant: crate::token::GrantKind,
        /// The refusal.
        error: OAuthErrorResponse,
    },
    /// `token_endpoint_auth_method` is `private_key_jwt`, and no `private_key` is configured.
    #[error("token_endpoint_auth_method is private_key_jwt but no private_key is configured: add private_key, or choose another token_endpoint_auth_method")]
    NoPrivateKey,
}

/// What to do after a refused machine grant.
fn machine_hint(e: &OAuthErrorResponse) -> &'static str {
    if e.error.is_transient() {
        ": try again later"
    } else {
        ": check what the configuration supplies for it (client credentials, workload token, ID token)"
    }
}

impl TokenError {
    /// Who is to blame: by the refusal's code, the configuration for a missing private key,
    /// the authorization server (or identity provider) for a response that is not a token.
    pub fn blame(&self) -> Blame {
        match self {
            TokenError::Rejected(e) => e.blame(),
            TokenError::MachineGrantRefused { error, .. } => match error.blame() {
                Blame::User => Blame::Configuration,
                other => other,
            },
            TokenError::NoPrivateKey => Blame::Configuration,
            TokenError::NotAnObject
            | TokenError::InvalidField { .. }
            | TokenError::NotIdJag { .. }
            | TokenError::UnsupportedTokenType(_) => Blame::AuthorizationServer,
        }
    }
}

/// The MCP server refused the request after authorization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// A `403` that is not `insufficient_scope`: not an OAuth matter (SPEC item 93).
    #[error("forbidden (status 403){}: the mcp server does not allow this request for this account", describe(.description))]
    Forbidden {
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The server wants more scope: step-up did not satisfy it within the attempt limit, or
    /// step-up is off (`attempts` is 0) and the application decides (SPEC 97).
    #[error("insufficient scope after {attempts} authorization attempts (scope {scope:?}){}{}", describe(.description), scope_hint(*.attempts))]
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
    #[error("the server rejected a freshly obtained token (status {status}): the mcp server and its authorization server disagree (audience, clock, keys); try again later")]
    RejectedFreshToken {
        /// The status of the last challenge.
        status: u16,
    },
    /// `Challenged` was given a status that is not 401 or 403.
    #[error("status {0} is not an authorization challenge: feed Challenged only for 401, or 403 with insufficient_scope")]
    NotAChallenge(u16),
}

impl ResourceError {
    /// Who is to blame: the MCP server for refusals; the configuration for a scope step-up
    /// that is turned off (`attempts` 0: the application decides); a bug for a status that is
    /// not a challenge (the driver fed it).
    pub fn blame(&self) -> Blame {
        match self {
            ResourceError::Forbidden { .. } | ResourceError::RejectedFreshToken { .. } => Blame::Server,
            ResourceError::InsufficientScope { attempts: 0, .. } => Blame::Configuration,
            ResourceError::InsufficientScope { .. } => Blame::Server,
            ResourceError::NotAChallenge(_) => Blame::Bug,
        }
    }
}

fn scope_hint(attempts: u8) -> &'static str {
    if attempts == 0 {
        ": step_up is off; authorize with that scope (scopes), or turn step_up on"
    } else {
        ": the authorization server did not grant the scope the mcp server wants; ask its administrator"
    }
}

fn describe_type(t: &Option<String>) -> String {
    match t {
        Some(t) => format!("{:?}", t.chars().take(100).collect::<String>()),
        None => "absent".to_owned(),
    }
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
    #[error("response body exceeds {limit} bytes: the server's answer is not what the protocol allows")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A status core cannot use.
    #[error("unexpected status {status}: {excerpt}{}", status_hint(*.status))]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The start of the body, escaped.
        excerpt: String,
    },
    /// `Content-Type` is not JSON.
    #[error("content-type {content_type:?} is not application/json: is the url a token endpoint?")]
    BadContentType {
        /// The header value.
        content_type: String,
    },
    /// The body is not the JSON expected.
    #[error("invalid json: {reason}: the server's answer is not the json the protocol defines")]
    InvalidJson {
        /// serde_json's message (field path, line, column).
        reason: String,
    },
    /// No response arrived.
    #[error("{}{}", .0, transport_hint(.0.kind))]
    Transport(TransportFailure),
}

impl HttpError {
    /// Who is to blame, given what the request was for: the network for a failed exchange
    /// (the configuration when the network policy blocked it), otherwise the server that
    /// answered ([`Purpose::ResourceMetadata`] is the MCP server's; every other request goes to
    /// an authorization server or identity provider). An `HttpError` alone does not know who
    /// answered, hence the argument; [`Error::blame`] passes the purpose it carries.
    pub fn blame(&self, purpose: Purpose) -> Blame {
        let server = match purpose {
            Purpose::ResourceMetadata => Blame::Server,
            _ => Blame::AuthorizationServer,
        };
        match self {
            HttpError::Transport(t) => match t.kind {
                TransportFailureKind::Blocked => Blame::Configuration,
                TransportFailureKind::BodyTooLarge => server,
                _ => Blame::Network,
            },
            HttpError::BodyTooLarge { .. }
            | HttpError::UnexpectedStatus { .. }
            | HttpError::BadContentType { .. }
            | HttpError::InvalidJson { .. } => server,
        }
    }
}

fn transport_hint(kind: TransportFailureKind) -> &'static str {
    match kind {
        TransportFailureKind::Blocked => ": the network policy forbids this address; change \"network\" if it is meant to be reached",
        TransportFailureKind::Tls => ": the server's certificate is not trusted for this name",
        _ => ": check the network and try again",
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        429 | 500..=599 => ": the server failed or is busy; try again later",
        _ => ": the server did not follow the protocol; check the urls in the configuration",
    }
}

/// A configuration problem found by `validate()` or [`Authorizer::new`](crate::Authorizer::new).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// OAuth was configured for a stdio server, which takes credentials from its environment.
    #[error("oauth is only for http transports (streamable_http, sse); server {0:?} uses stdio: remove its \"oauth\" section and pass credentials in its env")]
    OAuthOnStdio(String),
    /// A URL does not parse.
    #[error("{field} is not a valid url ({error}): correct it in the configuration")]
    UnparsableUrl {
        /// The field.
        field: &'static str,
        /// Why it does not parse.
        error: url::ParseError,
    },
    /// A URL is neither `https` nor loopback `http`, or carries credentials.
    #[error("{field} must be https (http only for loopback hosts), without credentials: correct it in the configuration")]
    InsecureUrl {
        /// The field.
        field: &'static str,
    },
    /// `redirect_uri` is not an `http` URL on `localhost`, `127.0.0.1` or `[::1]`.
    #[error("redirect_uri must be http on localhost, 127.0.0.1 or [::1]: correct it in the configuration, or leave it out")]
    RedirectUriNotLoopback,
    /// `redirect_uri` has a query or a fragment.
    #[error("redirect_uri must not have a query or fragment: remove them from the configuration")]
    RedirectUriHasQuery,
    /// `client_metadata_url` breaks a rule of Client ID Metadata Documents.
    #[error("client_metadata_url {reason}: correct it in the configuration")]
    InvalidClientMetadataUrl {
        /// The rule broken (`must be an https url`, `must have a path`...).
        reason: &'static str,
    },
    /// An environment variable named by a secret reference is not set.
    #[error("{field}: environment variable {var:?} is not set: set it, or configure the value another way")]
    MissingEnv {
        /// The field.
        field: &'static str,
        /// The variable.
        var: String,
    },
    /// A literal secret was redacted when the configuration was written out.
    #[error("{0}: the secret was redacted when this configuration was saved; supply it again or use an env reference")]
    RedactedSecret(&'static str),
    /// `signing_algorithm` names an algorithm this client cannot sign with.
    #[error("signing_algorithm {algorithm:?} is not supported: use ES256, or leave it out")]
    UnsupportedSigningAlgorithm {
        /// The configured value.
        algorithm: String,
    },
    /// `private_key` is not a PEM-encoded P-256 private key.
    #[error("private_key is not a PEM-encoded P-256 private key (PKCS#8 or SEC1): supply the key in one of those forms")]
    InvalidPrivateKey,
    /// The configured flow needs a setting that is absent.
    #[error("flow {flow} needs {needs}: add it to the configuration, or choose another flow")]
    FlowNeeds {
        /// The configured flow.
        flow: crate::config::Flow,
        /// What it needs, as the configuration names it (`client_id`, `client_secret or
        /// private_key`, `idp`, `workload_token`).
        needs: &'static str,
    },
    /// `max_authorization_attempts` is 0.
    #[error("max_authorization_attempts must be at least 1: raise it, or leave it out")]
    NoAuthorizationAttempts,
    /// A stdio server was handed to a client that speaks HTTP.
    #[error("server {command:?} uses stdio, and this client speaks http: run it with a stdio mcp client, or configure its http url")]
    StdioServer {
        /// The server's command.
        command: String,
    },
    /// A configured HTTP header name or value is not one HTTP allows.
    #[error("header {name:?} is not a valid http header name or value: correct the server's \"headers\" in the configuration")]
    InvalidHeader {
        /// The header's name, as configured.
        name: String,
    },
}

impl ConfigError {
    /// Always [`Blame::Configuration`].
    pub fn blame(&self) -> Blame {
        Blame::Configuration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every named code, matched exhaustively: a new variant must be added here and to
    /// `NAMED_CODES`, or this stops compiling (or the round trip below fails).
    fn wire(code: &ErrorCode) -> &'static str {
        match code {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidSoftwareStatement => "invalid_software_statement",
            ErrorCode::UnapprovedSoftwareStatement => "unapproved_software_statement",
            ErrorCode::Other(_) => unreachable!("not a named code"),
        }
    }

    #[test]
    fn error_codes_round_trip_through_parsing_and_serde() {
        for code in NAMED_CODES {
            let s = wire(&code);
            assert_eq!(code.as_str(), s);
            assert_eq!(ErrorCode::parse(s), code);
            assert!(!matches!(ErrorCode::parse(s), ErrorCode::Other(_)), "{s} parses to Other");
            assert_eq!(ErrorCode::from(s.to_owned()), code);
            assert_eq!(s.parse::<ErrorCode>().unwrap(), code);
            assert_eq!(code.to_string(), s);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let names: std::collections::HashSet<_> = NAMED_CODES.iter().map(ErrorCode::as_str).collect();
        assert_eq!(names.len(), NAMED_CODES.len(), "a code is listed twice");
        // Unknown codes are kept as sent, case and all; codes are case-sensitive.
        for s in ["slow_down", "Invalid_Grant", "", "x\"y"] {
            let code = ErrorCode::parse(s);
            assert_eq!(code, ErrorCode::Other(s.to_owned()));
            assert_eq!(code.as_str(), s);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap().as_str(), s);
        }
        // A hand-built `Other` of a named code is still that code.
        assert_eq!(ErrorCode::Other("invalid_grant".into()), ErrorCode::InvalidGrant);
        // Server text is escaped when printed.
        assert_eq!(ErrorCode::parse("a\nb").to_string(), "a\\nb");
        assert!(ErrorCode::ServerError.is_transient() && ErrorCode::TemporarilyUnavailable.is_transient());
        assert!(!ErrorCode::InvalidGrant.is_transient());
    }

    #[test]
    fn oauth_error_responses_keep_their_json_shape() {
        let body = r#"{"error":"invalid_grant","error_description":"expired","error_uri":"https://e"}"#;
        let r: OAuthErrorResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.error, ErrorCode::InvalidGrant);
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
        let r: OAuthErrorResponse = serde_json::from_str(r#"{"error":"custom_thing"}"#).unwrap();
        assert_eq!(r.error, ErrorCode::Other("custom_thing".into()));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"error":"custom_thing"}"#);
    }
}

#[cfg(test)]
mod blame_tests {
    use super::*;
    use crate::http::TransportFailure;

    fn code(c: &str) -> OAuthErrorResponse {
        OAuthErrorResponse { error: ErrorCode::parse(c), description: None, uri: None }
    }

    fn transport(kind: TransportFailureKind) -> HttpError {
        HttpError::Transport(TransportFailure { kind, message: "m".into() })
    }

    /// Every variant of every error type, with its blame. The `match` in `variant_of` is
    /// exhaustive over each enum (no wildcard), so a new variant does not compile until it is
    /// listed here with the blame it deserves.
    fn table() -> Vec<(Error, Blame)> {
        let url = url::Url::parse("http://127.0.0.1:1/cb").unwrap();
        let field = "token_endpoint";
        let issuer = || "https://as".to_owned();
        use AuthorizationError as A;
        use Blame::*;
        use DiscoveryError as D;
        use RegistrationError as R;
        use ResourceError as Res;
        use TokenError as T;
        let http = |purpose, error| Error::Http { purpose, error };
        vec![
            (UsageError::UnknownRequest(RequestId(1)).into(), Bug),
            (UsageError::UnexpectedInput { input: "x", state: crate::StateName::Idle }.into(), Bug),
            (UsageError::BadRedirectUri { uri: url }.into(), Bug),
            (D::InsecureUrl { field, url: "u".into() }.into(), AuthorizationServer),
            (D::InsecureUrl { field: "authorization_servers", url: "u".into() }.into(), Server),
            (D::InvalidUrl { field }.into(), AuthorizationServer),
            (D::InvalidUrl { field: "authorization_servers" }.into(), Server),
            (D::ResourceMetadataNotJson { reason: "r".into() }.into(), Server),
            (D::ResourceMetadataMissingField { field: "resource" }.into(), Server),
            (D::ResourceMismatch { expected: "a".into(), found: "b".into() }.into(), Server),
            (D::NoAuthorizationServer { tried: 2 }.into(), Server),
            (D::ServerMetadataNotJson { issuer: issuer(), reason: "r".into() }.into(), AuthorizationServer),
            (D::CodeNotSupported { issuer: issuer() }.into(), AuthorizationServer),
            (D::IssuerMismatch { expected: issuer(), found: "x".into() }.into(), AuthorizationServer),
            (D::PkceNotSupported { issuer: issuer() }.into(), AuthorizationServer),
            (D::MissingEndpoint { issuer: issuer(), endpoint: "registration_endpoint" }.into(), AuthorizationServer),
            (R::NoMethod { issuer: issuer() }.into(), Configuration),
            (R::BoundToOtherIssuer { configured: issuer(), discovered: "x".into() }.into(), Configuration),
            (R::Rejected(code("invalid_redirect_uri")).into(), Configuration),
            (R::Rejected(code("invalid_client_metadata")).into(), Configuration),
            (R::Rejected(code("temporarily_unavailable")).into(), AuthorizationServer),
            (R::ResponseNotJson { reason: "r".into() }.into(), AuthorizationServer),
            (R::EmptyClientId.into(), AuthorizationServer),
            (A::StateMismatch.into(), Attacker),
            (A::MissingState.into(), Attacker),
            (A::MissingCode.into(), AuthorizationServer),
            (A::Denied(code("access_denied")).into(), User),
            (A::Denied(code("server_error")).into(), AuthorizationServer),
            (A::Denied(code("invalid_scope")).into(), Configuration),
            (A::Denied(code("something_else")).into(), AuthorizationServer),
            (A::IssuerMismatch { expected: issuer(), found: "x".into() }.into(), Attacker),
            (A::MissingIssuer.into(), Attacker),
            (A::InvalidRedirect(RedirectProblem::TooLong { limit: 1 }).into(), User),
            (A::InvalidRedirect(RedirectProblem::NotAUrl(url::ParseError::EmptyHost)).into(), User),
            (A::InvalidRedirect(RedirectProblem::NotOurRedirectUri).into(), User),
            (A::InvalidRedirect(RedirectProblem::DuplicateParameter("state")).into(), Attacker),
            (A::Cancelled.into(), User),
            (A::InteractionRequired.into(), Configuration),
            (A::DeviceCodeExpired.into(), User),
            (A::DeviceUnsupported { issuer: issuer() }.into(), Configuration),
            (A::InvalidDeviceResponse("x".into()).into(), AuthorizationServer),
            (T::Rejected(code("invalid_grant")).into(), User),
            (T::MachineGrantRefused { grant: crate::token::GrantKind::JwtBearer, error: code("invalid_grant") }.into(), Configuration),
            (
                T::MachineGrantRefused { grant: crate::token::GrantKind::ClientCredentials, error: code("temporarily_unavailable") }.into(),
                AuthorizationServer,
            ),
            (T::Rejected(code("invalid_client")).into(), Configuration),
            (T::Rejected(code("unauthorized_client")).into(), Configuration),
            (T::Rejected(code("use_dpop_nonce")).into(), AuthorizationServer),
            (T::NotAnObject.into(), AuthorizationServer),
            (T::InvalidField { field: "access_token", expected: "a string" }.into(), AuthorizationServer),
            (T::NotIdJag { issued_token_type: None }.into(), AuthorizationServer),
            (T::UnsupportedTokenType("mac".into()).into(), AuthorizationServer),
            (T::NoPrivateKey.into(), Configuration),
            (http(Purpose::ResourceMetadata, HttpError::UnexpectedStatus { status: 500, excerpt: String::new() }), Server),
            (http(Purpose::ServerMetadata, HttpError::UnexpectedStatus { status: 500, excerpt: String::new() }), AuthorizationServer),
            (http(Purpose::Refresh, HttpError::BodyTooLarge { limit: 1 }), AuthorizationServer),
            (http(Purpose::TokenExchange, HttpError::BadContentType { content_type: "text/html".into() }), AuthorizationServer),
            (http(Purpose::Registration, HttpError::InvalidJson { reason: "r".into() }), AuthorizationServer),
            (http(Purpose::CodeExchange, transport(TransportFailureKind::Connect)), Network),
            (http(Purpose::CodeExchange, transport(TransportFailureKind::Tls)), Network),
            (http(Purpose::CodeExchange, transport(TransportFailureKind::Timeout)), Network),
            (http(Purpose::CodeExchange, transport(TransportFailureKind::Other)), Network),
            (http(Purpose::CodeExchange, transport(TransportFailureKind::Blocked)), Configuration),
            (http(Purpose::ResourceMetadata, transport(TransportFailureKind::BodyTooLarge)), Server),
            (Error::TimedOut { waiting_for: Stage::Authorization }, User),
            (Error::TimedOut { waiting_for: Stage::Token }, Network),
            (Res::Forbidden { description: None }.into(), Server),
            (Res::InsufficientScope { scope: None, description: None, resource_metadata: None, attempts: 0 }.into(), Configuration),
            (Res::InsufficientScope { scope: None, description: None, resource_metadata: None, attempts: 2 }.into(), Server),
            (Res::RejectedFreshToken { status: 401 }.into(), Server),
            (Res::NotAChallenge(500).into(), Bug),
            (Error::Bug("invariant"), Bug),
        ]
    }

    /// The variant's name, by an exhaustive match over every error enum.
    fn variant_of(e: &Error) -> &'static str {
        match e {
            Error::Usage(u) => match u {
                UsageError::UnknownRequest(_) => "UnknownRequest",
                UsageError::UnexpectedInput { .. } => "UnexpectedInput",
                UsageError::BadRedirectUri { .. } => "BadRedirectUri",
            },
            Error::Discovery(d) => match d {
                DiscoveryError::InsecureUrl { .. } => "InsecureUrl",
                DiscoveryError::InvalidUrl { .. } => "InvalidUrl",
                DiscoveryError::ResourceMetadataNotJson { .. } => "ResourceMetadataNotJson",
                DiscoveryError::ResourceMetadataMissingField { .. } => "ResourceMetadataMissingField",
                DiscoveryError::ResourceMismatch { .. } => "ResourceMismatch",
                DiscoveryError::NoAuthorizationServer { .. } => "NoAuthorizationServer",
                DiscoveryError::ServerMetadataNotJson { .. } => "ServerMetadataNotJson",
                DiscoveryError::CodeNotSupported { .. } => "CodeNotSupported",
                DiscoveryError::IssuerMismatch { .. } => "D::IssuerMismatch",
                DiscoveryError::PkceNotSupported { .. } => "PkceNotSupported",
                DiscoveryError::MissingEndpoint { .. } => "MissingEndpoint",
            },
            Error::Registration(r) => match r {
                RegistrationError::NoMethod { .. } => "NoMethod",
                RegistrationError::BoundToOtherIssuer { .. } => "BoundToOtherIssuer",
                RegistrationError::Rejected(_) => "R::Rejected",
                RegistrationError::ResponseNotJson { .. } => "ResponseNotJson",
                RegistrationError::EmptyClientId => "EmptyClientId",
            },
            Error::Authorization(a) => match a {
                AuthorizationError::StateMismatch => "StateMismatch",
                AuthorizationError::MissingState => "MissingState",
                AuthorizationError::MissingCode => "MissingCode",
                AuthorizationError::Denied(_) => "Denied",
                AuthorizationError::IssuerMismatch { .. } => "A::IssuerMismatch",
                AuthorizationError::MissingIssuer => "MissingIssuer",
                AuthorizationError::InvalidRedirect(p) => match p {
                    RedirectProblem::TooLong { .. } => "TooLong",
                    RedirectProblem::NotAUrl(_) => "NotAUrl",
                    RedirectProblem::NotOurRedirectUri => "NotOurRedirectUri",
                    RedirectProblem::DuplicateParameter(_) => "DuplicateParameter",
                },
                AuthorizationError::Cancelled => "Cancelled",
                AuthorizationError::InteractionRequired => "InteractionRequired",
                AuthorizationError::DeviceCodeExpired => "DeviceCodeExpired",
                AuthorizationError::DeviceUnsupported { .. } => "DeviceUnsupported",
                AuthorizationError::InvalidDeviceResponse(_) => "InvalidDeviceResponse",
            },
            Error::Token(t) => match t {
                TokenError::Rejected(_) => "T::Rejected",
                TokenError::MachineGrantRefused { .. } => "MachineGrantRefused",
                TokenError::NotAnObject => "NotAnObject",
                TokenError::InvalidField { .. } => "InvalidField",
                TokenError::NotIdJag { .. } => "NotIdJag",
                TokenError::UnsupportedTokenType(_) => "UnsupportedTokenType",
                TokenError::NoPrivateKey => "NoPrivateKey",
            },
            Error::Http { error, .. } => match error {
                HttpError::BodyTooLarge { .. } => "BodyTooLarge",
                HttpError::UnexpectedStatus { .. } => "UnexpectedStatus",
                HttpError::BadContentType { .. } => "BadContentType",
                HttpError::InvalidJson { .. } => "InvalidJson",
                HttpError::Transport(_) => "Transport",
            },
            Error::TimedOut { .. } => "TimedOut",
            Error::Resource(r) => match r {
                ResourceError::Forbidden { .. } => "Forbidden",
                ResourceError::InsufficientScope { .. } => "InsufficientScope",
                ResourceError::RejectedFreshToken { .. } => "RejectedFreshToken",
                ResourceError::NotAChallenge(_) => "NotAChallenge",
            },
            Error::Bug(_) => "Bug",
        }
    }

    #[test]
    fn every_error_variant_has_its_blame() {
        let table = table();
        let mut seen = std::collections::BTreeSet::new();
        for (e, blame) in &table {
            assert_eq!(e.blame(), *blame, "{} ({e})", variant_of(e));
            seen.insert(variant_of(e));
            // Display: lower-case start, no trailing period, and a next step after a colon.
            let text = e.to_string();
            assert!(!text.ends_with('.'), "{text}");
            assert!(text.contains(": "), "{text}");
        }
        // Every variant of every enum appears in the table (56 variants across the types).
        let expected = [
            "UnknownRequest",
            "UnexpectedInput",
            "BadRedirectUri",
            "InsecureUrl",
            "InvalidUrl",
            "ResourceMetadataNotJson",
            "ResourceMetadataMissingField",
            "ResourceMismatch",
            "NoAuthorizationServer",
            "ServerMetadataNotJson",
            "CodeNotSupported",
            "D::IssuerMismatch",
            "PkceNotSupported",
            "MissingEndpoint",
            "NoMethod",
            "BoundToOtherIssuer",
            "R::Rejected",
            "ResponseNotJson",
            "EmptyClientId",
            "StateMismatch",
            "MissingState",
            "MissingCode",
            "Denied",
            "A::IssuerMismatch",
            "MissingIssuer",
            "TooLong",
            "NotAUrl",
            "NotOurRedirectUri",
            "DuplicateParameter",
            "Cancelled",
            "InteractionRequired",
            "DeviceCodeExpired",
            "DeviceUnsupported",
            "InvalidDeviceResponse",
            "T::Rejected",
            "MachineGrantRefused",
            "NotAnObject",
            "InvalidField",
            "NotIdJag",
            "UnsupportedTokenType",
            "NoPrivateKey",
            "BodyTooLarge",
            "UnexpectedStatus",
            "BadContentType",
            "InvalidJson",
            "Transport",
            "TimedOut",
            "Forbidden",
            "InsufficientScope",
            "RejectedFreshToken",
            "NotAChallenge",
            "Bug",
        ];
        for v in expected {
            assert!(seen.contains(v), "{v} has no row in the blame table");
        }
        assert_eq!(seen.len(), expected.len());
    }

    #[test]
    fn every_config_error_is_the_configurations() {
        use crate::config::Flow;
        let all = [
            ConfigError::OAuthOnStdio("s".into()),
            ConfigError::UnparsableUrl { field: "url", error: url::ParseError::EmptyHost },
            ConfigError::InsecureUrl { field: "url" },
            ConfigError::RedirectUriNotLoopback,
            ConfigError::RedirectUriHasQuery,
            ConfigError::InvalidClientMetadataUrl { reason: "must have a path" },
            ConfigError::MissingEnv { field: "client_secret", var: "S".into() },
            ConfigError::RedactedSecret("client_secret"),
            ConfigError::UnsupportedSigningAlgorithm { algorithm: "RS256".into() },
            ConfigError::InvalidPrivateKey,
            ConfigError::FlowNeeds { flow: Flow::ClientCredentials, needs: "client_id" },
            ConfigError::NoAuthorizationAttempts,
            ConfigError::StdioServer { command: "s".into() },
            ConfigError::InvalidHeader { name: "x".into() },
        ];
        for e in &all {
            // Exhaustive: a new variant must be added to `all`.
            match e {
                ConfigError::OAuthOnStdio(_)
                | ConfigError::UnparsableUrl { .. }
                | ConfigError::InsecureUrl { .. }
                | ConfigError::RedirectUriNotLoopback
                | ConfigError::RedirectUriHasQuery
                | ConfigError::InvalidClientMetadataUrl { .. }
                | ConfigError::MissingEnv { .. }
                | ConfigError::RedactedSecret(_)
                | ConfigError::UnsupportedSigningAlgorithm { .. }
                | ConfigError::InvalidPrivateKey
                | ConfigError::FlowNeeds { .. }
                | ConfigError::NoAuthorizationAttempts
                | ConfigError::StdioServer { .. }
                | ConfigError::InvalidHeader { .. } => {}
            }
            assert_eq!(e.blame(), Blame::Configuration, "{e}");
            let text = e.to_string();
            assert!(!text.ends_with('.') && text.contains(": "), "{text}");
        }
    }
}
