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
            Error::Token(TokenError::Rejected(e))
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str().escape_default())
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
