//! What the machine knows beyond its state: the authorization server in use, and what the
//! current MCP request has seen. Plain data; `state.rs` changes it, `policy.rs` reads it.

use crate::discovery::BearerChallenge;
use crate::error::Error;
use crate::metadata::AuthorizationServerMetadata;
use url::Url;

/// The authorization server in use.
#[derive(Debug, Clone)]
pub(crate) struct ServerContext {
    pub(crate) issuer: String,
    pub(crate) metadata: Option<AuthorizationServerMetadata>,
    pub(crate) authorization_endpoint: Option<Url>,
    pub(crate) token_endpoint: Url,
    pub(crate) registration_endpoint: Option<Url>,
    /// The issuer is a baseline for RFC 9207 `iss` checks: it came from validated metadata or
    /// explicit configuration, not synthesized for 2025-03-26 default endpoints (SPEC OQ 18).
    pub(crate) iss_baseline: bool,
}

/// What one MCP request (one `TokenWanted` and the challenges that follow) has seen.
#[derive(Debug, Default)]
pub(crate) struct RequestContext {
    pub(crate) challenge: Option<BearerChallenge>,
    pub(crate) step_up: bool,
    pub(crate) challenges: u8,
    /// New authorizations (logins, machine grants) started in this request.
    pub(crate) authorizations: u8,
    /// A full authorization (code, client credentials, JWT bearer) finished in this request: a
    /// 401 now means the server rejects a token obtained moments ago, which is final.
    pub(crate) authorized: bool,
    /// A refresh was sent after the server rejected a token in this request: not twice. (A
    /// refresh ahead of expiry does not count: it cannot know of a rejection to come.)
    pub(crate) refreshed: bool,
    /// The resource server rejected the token (401) in this request.
    pub(crate) rejected: bool,
    /// Discovery ran in this request: the metadata in use is current.
    pub(crate) discovered: bool,
    /// The resource server's `use_dpop_nonce` was honoured once in this request.
    pub(crate) rs_nonce_retried: bool,
    /// The tokens of this request come from a person's login (the code flow).
    pub(crate) logged_in: bool,
    /// The tokens held were obtained by a refresh in this request.
    pub(crate) refreshed_tokens: bool,
    /// Discovery in this request found another resource identifier than the tokens': they are
    /// kept until a new authorization replaces them, but not refreshed.
    pub(crate) resource_changed: bool,
    /// The server rejected (401) tokens refreshed in this request.
    pub(crate) refreshed_rejected: bool,
    /// A refresh at metadata not discovered in this request was refused for another reason than
    /// a dead grant: discovery runs, and the refusal stands unless the token endpoint changed.
    pub(crate) refresh_refused: Option<(Url, Error)>,
    /// This request is a logout: what its revocations came to so far.
    pub(crate) logout: Option<crate::revocation::LogoutReport>,
    /// The device authorization endpoint refused this client (`auto` fell back to the browser).
    pub(crate) device_refused: bool,
    /// What this logout does with tokens it could not revoke for want of an answer.
    pub(crate) logout_if_unreachable: crate::revocation::IfUnreachable,
    /// Scopes requested in earlier authorizations (kept across requests for the step-up union).
    pub(crate) requested_scopes: Vec<String>,
}
