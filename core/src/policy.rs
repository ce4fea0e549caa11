//! Policy: the protocol's choices, as pure functions of what the machine knows (configuration,
//! metadata, tokens, registrations, the request so far). They change nothing and send nothing;
//! the transitions in `state.rs` ask them and act on the answer.
//!
//! One function answers each question:
//!
//! | question | answered by |
//! |---|---|
//! | which grant (flow) | [`choose_flow`] |
//! | which scope | [`select_scope`] (and [`record_requested`] for the step-up union) |
//! | which resource (RFC 8707) | [`resource_param`], [`token_resource`] |
//! | which client | [`configured_client`] (pre-registered), [`login_client`] (a login), [`client_for_tokens`] (a refresh) |
//! | how the client authenticates | [`auth_method`], [`client_auth`] |
//! | which authorization server first | [`order_issuers`] |
//! | where a refresh goes | [`refresh_endpoint`] |
//! | which redirect URI | [`redirect_plan`], [`paste_redirect_uri`] |
//! | what tokens a response makes | [`token_set_from`]; a refresh's, with the refresh token rotated: [`refreshed_tokens`] |
//! | DPoP or not | [`dpop_wanted`] |
//! | whether a login is repeated | [`login_backed_off`] |

use crate::authorizer::RedirectPlan;
use crate::config::{Config, DpopMode, Flow, LoginMethod};
use crate::context::{RequestContext, ServerContext};
use crate::device::DEVICE_CODE_GRANT;
use crate::discovery;
use crate::error::{AuthorizationError, DiscoveryError, Error, RegistrationError, TokenError};
use crate::http::is_secure_endpoint;
use crate::jwt::SigningKey;
use crate::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use crate::registration::{ClientInfo, ClientKind};
use crate::revocation::Revocation;
use crate::time::Timestamp;
use crate::token::{select_auth_method, AuthMethod, ClientAuth, GrantKind, TokenResponse, TokenSet};
use std::time::Duration;
use url::Url;

/// The grant the machine obtains tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChosenFlow {
    AuthorizationCode,
    ClientCredentials,
    EnterpriseManaged,
    WorkloadIdentity,
    /// A refresh whose client assertion (`private_key_jwt`) needs entropy for its `jti`.
    Refresh,
}

/// How long a login whose fresh token the resource server rejected is not repeated: meanwhile
/// such a rejection fails at once (`RejectedFreshToken`), and refreshes still run.
pub(crate) const LOGIN_BACKOFF: Duration = Duration::from_secs(300);

// ---- Which grant ------------------------------------------------------------------------

/// `auto`: a workload token or an identity provider name their flow; configured client
/// credentials (a secret or a key) mean machine to machine when the authorization server
/// offers the grant (or, without metadata, always); everything else is a person logging in.
pub(crate) fn choose_flow(config: &Config, metadata: Option<&AuthorizationServerMetadata>) -> ChosenFlow {
    match config.flow {
        Flow::ClientCredentials => ChosenFlow::ClientCredentials,
        Flow::AuthorizationCode => ChosenFlow::AuthorizationCode,
        Flow::EnterpriseManaged => ChosenFlow::EnterpriseManaged,
        Flow::WorkloadIdentity => ChosenFlow::WorkloadIdentity,
        Flow::Auto if config.workload_token.is_some() => ChosenFlow::WorkloadIdentity,
        Flow::Auto if config.idp.is_some() && config.client_id.is_some() => ChosenFlow::EnterpriseManaged,
        Flow::Auto => {
            // Without `grant_types_supported` (it is optional) a service is taken at its word.
            let offered = metadata.is_none_or(|m| m.grant_types_supported.is_none() || m.supports_grant("client_credentials"));
            if config.has_client_credentials() && offered {
                ChosenFlow::ClientCredentials
            } else {
                ChosenFlow::AuthorizationCode
            }
        }
    }
}

/// True if new tokens should be DPoP-bound (RFC 9449): always, never, or when the
/// authorization server supports ES256 proofs.
pub(crate) fn dpop_wanted(mode: DpopMode, metadata: Option<&AuthorizationServerMetadata>) -> bool {
    match mode {
        DpopMode::Always => true,
        DpopMode::Never => false,
        DpopMode::Auto => metadata.is_some_and(|m| m.supports_dpop_es256()),
    }
}

/// A login whose fresh token the resource server rejected is not repeated, after another
/// rejection, before [`LOGIN_BACKOFF`] has passed: the server, not the grant, is the problem
/// (its clock, its keys, its audience), and a person should not get a login per request.
/// Not after a migration or a rename: a login at another server (`issuer` is the one in use),
/// or for another identifier, is worth trying at once.
pub(crate) fn login_backed_off(
    request: &RequestContext,
    login_rejected_at: Option<&(Timestamp, String)>,
    issuer: Option<&str>,
    now: Timestamp,
) -> bool {
    request.rejected
        && !request.resource_changed
        && login_rejected_at.is_some_and(|(at, i)| now < at.saturating_add(LOGIN_BACKOFF) && Some(i.as_str()) == issuer)
}

// ---- Which resource, which scope ----------------------------------------------------------

/// The RFC 8707 `resource` parameter, if sent at all (SPEC OQ 2): the validated metadata
/// value, byte for byte; else the canonical URI of the server.
pub(crate) fn resource_param(config: &Config, prm: Option<&ProtectedResourceMetadata>) -> Option<String> {
    if !config.send_resource {
        return None;
    }
    Some(match prm {
        Some(p) => p.resource.clone(),
        None => discovery::canonical_resource_uri(&config.server_url),
    })
}

/// The resource new tokens are for (kept with them): [`resource_param`], or the canonical URI
/// when the parameter is not sent.
pub(crate) fn token_resource(config: &Config, prm: Option<&ProtectedResourceMetadata>) -> String {
    resource_param(config, prm).unwrap_or_else(|| discovery::canonical_resource_uri(&config.server_url))
}

/// SPEC §2.H: the challenge's scope, else PRM `scopes_supported`, else the configured scopes
/// (for servers that say nothing), else none; a step-up takes the union with what was
/// requested and granted before; and `offline_access` when the server lists it.
///
/// `offline`: the grant can have refresh tokens (the code flow; not client credentials,
/// RFC 6749 §4.4.3, nor JWT bearer grants).
pub(crate) fn select_scope(
    config: &Config,
    request: &RequestContext,
    prm: Option<&ProtectedResourceMetadata>,
    tokens: Option<&TokenSet>,
    metadata: Option<&AuthorizationServerMetadata>,
    offline: bool,
) -> Option<String> {
    let split = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let challenged = request.challenge.as_ref().and_then(|c| c.scope.as_deref()).map(split);
    let mut scopes =
        challenged.or_else(|| prm.and_then(|p| p.scopes_supported.clone())).or_else(|| config.scopes.clone()).unwrap_or_default();
    if request.step_up {
        let mut union: Vec<String> = request.requested_scopes.clone();
        if let Some(t) = tokens {
            union.extend(t.scopes().into_iter().map(str::to_owned));
        }
        union.extend(scopes);
        scopes = union;
    }
    if offline && config.offline_access && !scopes.is_empty() && metadata.is_some_and(|m| m.lists_scope("offline_access")) {
        scopes.push("offline_access".into());
    }
    let mut seen = std::collections::HashSet::new();
    scopes.retain(|s| seen.insert(s.clone()));
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

/// Adds a requested scope to those a later step-up unites with (`offline_access` aside).
pub(crate) fn record_requested(requested: &mut Vec<String>, scope: Option<&str>) {
    for x in scope.into_iter().flat_map(str::split_whitespace) {
        if x != "offline_access" && !requested.iter().any(|y| y == x) {
            requested.push(x.to_owned());
        }
    }
}

// ---- Which authorization server -----------------------------------------------------------

/// Orders the issuers a resource lists (SPEC item 24): the issuer of configured credentials,
/// then the one tokens or a registration are held for; otherwise the listed order.
pub(crate) fn order_issuers(config: &Config, tokens: Option<&TokenSet>, clients: &[ClientInfo], issuers: &mut [String]) {
    let preferred: Vec<&str> = config
        .authorization_server
        .as_deref()
        .into_iter()
        .chain(tokens.map(|t| t.issuer.as_str()))
        .chain(clients.iter().map(|c| c.issuer.as_str()))
        .collect();
    issuers.sort_by_key(|i| preferred.iter().position(|p| p == i).unwrap_or(usize::MAX));
}

// ---- Which client ---------------------------------------------------------------------------

/// The issuer the configured client id belongs to, if known: the configured
/// `authorization_server`, else the one it was first used with (kept in the store as a
/// registration without secret), else the issuer of tokens issued to it.
pub(crate) fn bound_issuer<'a>(config: &'a Config, clients: &'a [ClientInfo], tokens: Option<&'a TokenSet>) -> Option<&'a str> {
    let id = config.client_id.as_deref()?;
    config
        .authorization_server
        .as_deref()
        .or_else(|| clients.iter().find(|c| c.kind == ClientKind::PreRegistered && c.client_id == id).map(|c| c.issuer.as_str()))
        .or_else(|| tokens.filter(|t| t.client_id.as_deref() == Some(id)).map(|t| t.issuer.as_str()))
}

/// The pre-registered client, if configuration has one, for `issuer`. Configured credentials
/// belong to one authorization server (SEP-2352): another issuer is an error, before anything
/// is sent there.
pub(crate) fn configured_client(
    config: &Config,
    clients: &[ClientInfo],
    tokens: Option<&TokenSet>,
    issuer: &str,
) -> Result<Option<ClientInfo>, Error> {
    let Some(id) = &config.client_id else { return Ok(None) };
    if let Some(bound) = bound_issuer(config, clients, tokens) {
        if bound != issuer {
            return Err(RegistrationError::BoundToOtherIssuer { configured: bound.to_owned(), discovered: issuer.to_owned() }.into());
        }
    }
    Ok(Some(ClientInfo {
        issuer: issuer.to_owned(),
        client_id: id.clone(),
        client_secret: config.client_secret.clone(),
        client_secret_expires_at: None,
        token_endpoint_auth_method: config.token_endpoint_auth_method.clone(),
        redirect_uris: Vec::new(),
        kind: ClientKind::PreRegistered,
        grant_types: Vec::new(),
    }))
}

/// The client a Client ID Metadata Document names (its URL is the client id): public.
pub(crate) fn metadata_document_client(issuer: &str, id: &str) -> ClientInfo {
    ClientInfo {
        issuer: issuer.to_owned(),
        client_id: id.to_owned(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: Vec::new(),
        kind: ClientKind::MetadataDocument,
        grant_types: Vec::new(),
    }
}

/// The client a login uses when configuration has none (SPEC item 40, after the
/// pre-registered one): a Client ID Metadata Document the server accepts, then the registration
/// an unfinished login made, then a stored registration that fits the redirect URI (any port
/// for loopback IP literals, RFC 8252 §7.3, only when re-registering is impossible). `None`:
/// register. The flag is true for the unfinished login's registration (not on file yet: the
/// one on file may hold a live grant).
pub(crate) fn login_client(
    config: &Config,
    server: &ServerContext,
    clients: &[ClientInfo],
    pending: Option<&ClientInfo>,
    redirect_uri: &Url,
    now: Timestamp,
) -> Option<(ClientInfo, bool)> {
    let cimd = server.metadata.as_ref().is_some_and(|m| m.client_id_metadata_document_supported());
    if let (Some(u), true) = (&config.client_metadata_url, cimd) {
        return Some((metadata_document_client(&server.issuer, u.as_str()), false));
    }
    let now_secs = now.as_secs();
    let pending = pending.filter(|c| c.issuer == server.issuer && !c.secret_expired(now_secs));
    let stored = clients.iter().find(|c| c.issuer == server.issuer && c.kind == ClientKind::Dynamic && !c.secret_expired(now_secs));
    match (pending, stored) {
        (Some(c), _) if c.allows_redirect(redirect_uri, false) => Some((c.clone(), true)),
        (_, Some(c)) if c.allows_redirect(redirect_uri, false) => Some((c.clone(), false)),
        (_, Some(c)) if server.registration_endpoint.is_none() && c.allows_redirect(redirect_uri, true) => Some((c.clone(), false)),
        _ => None,
    }
}

/// Whether a person's login uses the device authorization grant (RFC 8628): asked for, or
/// `auto` in a remote session where the authorization server offers it.
pub(crate) fn device_login(config: &Config, server: &ServerContext) -> Result<bool, Error> {
    let offered = server.metadata.as_ref().is_some_and(device_grant_offered);
    match config.login {
        LoginMethod::Browser => Ok(false),
        LoginMethod::Device if !offered => Err(AuthorizationError::DeviceUnsupported { issuer: server.issuer.clone() }.into()),
        LoginMethod::Device => Ok(true),
        // A metadata document's grants are its author's: `auto` does not assume the device
        // grant is among them.
        LoginMethod::Auto => Ok(offered && config.remote_session && config.client_metadata_url.is_none()),
    }
}

/// The server has a `device_authorization_endpoint`, and `grant_types_supported`, if given,
/// lists the device code grant.
pub(crate) fn device_grant_offered(m: &AuthorizationServerMetadata) -> bool {
    m.device_authorization_endpoint.is_some() && m.grant_types_supported.as_ref().is_none_or(|g| g.iter().any(|x| x == DEVICE_CODE_GRANT))
}

/// The client a device login uses when configuration has none: a Client ID Metadata Document
/// the server accepts, then the registration an unfinished login made, then a stored
/// registration, if the device grant was registered for them. `None`: register.
pub(crate) fn device_client(
    config: &Config,
    server: &ServerContext,
    clients: &[ClientInfo],
    pending: Option<&ClientInfo>,
    now: Timestamp,
) -> Option<(ClientInfo, bool)> {
    let cimd = server.metadata.as_ref().is_some_and(|m| m.client_id_metadata_document_supported());
    if let (Some(u), true) = (&config.client_metadata_url, cimd) {
        return Some((metadata_document_client(&server.issuer, u.as_str()), false));
    }
    let fits = |c: &&ClientInfo| c.issuer == server.issuer && c.allows_device_grant() && !c.secret_expired(now.as_secs());
    if let Some(c) = pending.filter(fits) {
        return Some((c.clone(), true));
    }
    clients.iter().filter(|c| c.kind == ClientKind::Dynamic).find(fits).map(|c| (c.clone(), false))
}

/// The client the tokens were issued to, if this configuration can act as it.
pub(crate) fn client_for_tokens(config: &Config, clients: &[ClientInfo], tokens: &TokenSet) -> Result<Option<ClientInfo>, Error> {
    let Some(id) = tokens.client_id.as_deref() else { return Ok(None) };
    if config.client_id.as_deref() == Some(id) {
        return configured_client(config, clients, Some(tokens), &tokens.issuer);
    }
    if config.client_metadata_url.as_ref().is_some_and(|u| u.as_str() == id) {
        return Ok(Some(metadata_document_client(&tokens.issuer, id)));
    }
    Ok(clients.iter().find(|c| c.issuer == tokens.issuer && c.client_id == id && c.kind == ClientKind::Dynamic).cloned())
}

/// True if `client` carries configured credentials (a secret or a signing key).
fn carries_configured_credentials(client: &ClientInfo, has_signing_key: bool) -> bool {
    client.kind == ClientKind::PreRegistered && (client.client_secret.is_some() || has_signing_key)
}

/// How `client` authenticates at the token endpoint (SPEC item 77). A signing key is the
/// configured client's only.
pub(crate) fn auth_method(
    config: &Config,
    metadata: Option<&AuthorizationServerMetadata>,
    has_signing_key: bool,
    client: &ClientInfo,
) -> AuthMethod {
    let forced = config.token_endpoint_auth_method.as_deref().and_then(AuthMethod::parse);
    let has_key = has_signing_key && client.kind == ClientKind::PreRegistered;
    select_auth_method(metadata, forced, client.auth_method(), client.client_secret.is_some(), has_key)
}

/// The `private_key_jwt` assertion's particulars: whom it is for (`jwt_audience` overrides)
/// and the `iat` and `jti` entropy.
pub(crate) struct Assertion<'a> {
    pub(crate) audience: &'a str,
    pub(crate) now: Timestamp,
    pub(crate) nonce: Option<&'a [u8; 16]>,
}

/// Client authentication for one token request; `id_in_body` puts `client_id` in the body
/// even with an assertion (the code flow does; client credentials do not, RFC 7523 §3).
pub(crate) fn client_auth<'a>(
    config: &Config,
    metadata: Option<&AuthorizationServerMetadata>,
    signing_key: Option<&SigningKey>,
    client: &'a ClientInfo,
    assertion: Assertion<'_>,
    id_in_body: bool,
) -> Result<ClientAuth<'a>, Error> {
    let method = auth_method(config, metadata, signing_key.is_some(), client);
    let assertion = match method {
        AuthMethod::PrivateKeyJwt => {
            let key = signing_key.ok_or(TokenError::NoPrivateKey)?;
            let nonce = assertion.nonce.ok_or(Error::Bug("a client assertion is built without entropy for its jti"))?;
            let aud = config.jwt_audience.as_deref().unwrap_or(assertion.audience);
            Some(crate::jwt::client_assertion(key, config.key_id.as_deref(), &client.client_id, aud, assertion.now, nonce))
        }
        _ => None,
    };
    Ok(ClientAuth { method, client_id: &client.client_id, secret: client.client_secret.as_ref(), assertion, client_id_in_body: id_in_body })
}

// ---- Refresh ----------------------------------------------------------------------------------

/// Where a logout revokes `tokens` (RFC 7009): the `revocation_endpoint` of the authorization
/// server that issued them, from its metadata or the configuration; otherwise why not.
pub(crate) fn revocation_endpoint(config: &Config, server: Option<&ServerContext>, tokens: &TokenSet) -> Result<Url, Revocation> {
    let Some(server) = server else { return Err(Revocation::NotSent("the authorization server is not known".into())) };
    if server.issuer != tokens.issuer {
        return Err(Revocation::NotSent(format!(
            "the MCP server names another authorization server ({}) than the one that issued the tokens ({})",
            crate::error::bounded(&server.issuer),
            crate::error::bounded(&tokens.issuer)
        )));
    }
    let configured = config.endpoints.as_ref().and_then(|e| e.revocation_endpoint.as_deref());
    let advertised = server.metadata.as_ref().and_then(|m| m.revocation_endpoint.as_deref());
    let Some(endpoint) = configured.or(advertised) else { return Err(Revocation::NoEndpoint) };
    // Both were checked when read (metadata, configuration): a secure URL.
    Url::parse(endpoint)
        .ok()
        .filter(is_secure_endpoint)
        .ok_or_else(|| Revocation::NotSent("the revocation endpoint is not a secure URL".into()))
}

/// Where the tokens' refresh goes: the token endpoint in use when it is their issuer's;
/// without discovery, the one stored with them (HTTPS or loopback), except for configured
/// credentials, which only go to an endpoint from discovery or configuration (item 12).
pub(crate) fn refresh_endpoint(
    server: Option<&ServerContext>,
    tokens: &TokenSet,
    client: &ClientInfo,
    has_signing_key: bool,
) -> Option<Url> {
    match server {
        Some(s) if s.issuer == tokens.issuer => Some(s.token_endpoint.clone()),
        Some(_) => None,
        None if carries_configured_credentials(client, has_signing_key) => None,
        None => tokens.token_endpoint.as_deref().and_then(|u| Url::parse(u).ok()).filter(is_secure_endpoint),
    }
}

/// True if the access token has not expired at `now` (a token of unknown lifetime has not).
pub(crate) fn unexpired(tokens: &TokenSet, now: Timestamp) -> bool {
    tokens.expires_at.is_none_or(|exp| now < exp)
}

// ---- Tokens from a response ---------------------------------------------------------------

/// What a token request asked for: the request's side of the [`TokenSet`] its answer makes.
pub(crate) struct Requested {
    pub(crate) scope: Option<String>,
    pub(crate) issuer: String,
    pub(crate) resource: String,
    pub(crate) client_id: Option<String>,
    pub(crate) grant: Option<GrantKind>,
}

/// The tokens a successful response makes at `now`. The token endpoint kept with them is the
/// one in use when it is their issuer's; `prm_url` is where the metadata in use came from.
pub(crate) fn token_set_from(
    response: TokenResponse,
    requested: Requested,
    now: Timestamp,
    server: Option<&ServerContext>,
    prm_url: Option<&str>,
) -> TokenSet {
    let token_endpoint = server.filter(|s| s.issuer == requested.issuer).map(|s| s.token_endpoint.to_string());
    TokenSet {
        expires_at: response.expires_in.map(|s| now.saturating_add(Duration::from_secs(s))),
        access_token: response.access_token,
        token_type: response.token_type,
        refresh_token: response.refresh_token,
        // SPEC item 82: no scope in the response means the requested scope was granted.
        scope: response.scope.or(requested.scope),
        issuer: requested.issuer,
        resource: requested.resource,
        token_endpoint,
        client_id: requested.client_id,
        obtained_at: now,
        dpop_key: None,
        resource_metadata: prm_url.map(str::to_owned),
        grant: requested.grant,
    }
}

/// The tokens a refresh makes of `old`: the same grant (scope, issuer, resource, client, the
/// endpoint and metadata it was obtained at), a new access token, and the refresh token
/// rotated: a new one replaces the old; none means the old one stays.
pub(crate) fn refreshed_tokens(
    old: TokenSet,
    response: TokenResponse,
    now: Timestamp,
    server: Option<&ServerContext>,
    prm_url: Option<&str>,
) -> TokenSet {
    let requested = Requested { scope: old.scope, issuer: old.issuer, resource: old.resource, client_id: old.client_id, grant: old.grant };
    let mut set = token_set_from(response, requested, now, server, prm_url);
    set.token_endpoint = old.token_endpoint.or(set.token_endpoint);
    set.resource_metadata = old.resource_metadata.or(set.resource_metadata);
    set.refresh_token = set.refresh_token.or(old.refresh_token);
    set
}

// ---- The login ------------------------------------------------------------------------------

/// The login can run at this authorization server: an authorization endpoint over HTTPS (or
/// loopback), PKCE S256 (or, when allowed, no word on PKCE), and the `code` response type.
pub(crate) fn check_login(config: &Config, server: &ServerContext) -> Result<(), Error> {
    let issuer = &server.issuer;
    let endpoint = server
        .authorization_endpoint
        .clone()
        .ok_or_else(|| DiscoveryError::MissingEndpoint { issuer: issuer.clone(), endpoint: "authorization_endpoint" })?;
    if !matches!(endpoint.scheme(), "http" | "https") || !is_secure_endpoint(&endpoint) {
        return Err(
            DiscoveryError::InsecureUrl { field: "authorization_endpoint", url: crate::http::redact_query(endpoint.as_str()) }.into()
        );
    }
    if let Some(md) = &server.metadata {
        let absent = md.code_challenge_methods_supported.is_none();
        if !(md.supports_s256() || absent && config.allow_missing_pkce_metadata) {
            return Err(DiscoveryError::PkceNotSupported { issuer: issuer.clone() }.into());
        }
        if md.response_types_supported.as_ref().is_some_and(|r| !r.iter().any(|t| t == "code")) {
            return Err(DiscoveryError::CodeNotSupported { issuer: issuer.clone() }.into());
        }
    }
    Ok(())
}

/// Where the loopback listener of a login at `issuer` listens: the configured redirect URI,
/// and for port 0 the port of a registration that can be reused as is (any free port, else).
pub(crate) fn redirect_plan(redirect_uri: &Url, clients: &[ClientInfo], issuer: &str) -> RedirectPlan {
    let host = match redirect_uri.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => "127.0.0.1".into(),
    };
    let configured_port = redirect_uri.port().unwrap_or(0);
    let registered_port = clients
        .iter()
        .filter(|c| c.issuer == issuer && c.kind == ClientKind::Dynamic)
        .flat_map(|c| c.redirect_uris.iter())
        .filter_map(|u| Url::parse(u).ok())
        .find(|u| u.host() == redirect_uri.host() && u.path() == redirect_uri.path())
        .and_then(|u| u.port());
    let port = if configured_port == 0 { registered_port.unwrap_or(0) } else { configured_port };
    RedirectPlan { host, port, path: redirect_uri.path().to_owned(), any_port_fallback: configured_port == 0 }
}

/// Paste mode: the browser lands on a port nobody listens on, and the user copies the
/// address. Port 0 needs a concrete port: one derived from the entropy.
pub(crate) fn paste_redirect_uri(plan: &RedirectPlan, nonce: &[u8; 16]) -> Url {
    let port = if plan.port != 0 { plan.port } else { 49152 + (u16::from_be_bytes([nonce[0], nonce[1]]) % 16384) };
    plan.redirect_uri(port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::BearerChallenge;
    use crate::secret::{AccessToken, ClientSecret, RefreshToken};

    fn config() -> Config {
        Config::new(Url::parse("https://mcp.example.com/mcp").unwrap())
    }

    fn as_metadata(json: &str) -> AuthorizationServerMetadata {
        AuthorizationServerMetadata::from_json(json.as_bytes(), "https://as.example.com", false).unwrap()
    }

    fn server(metadata: Option<AuthorizationServerMetadata>) -> ServerContext {
        ServerContext {
            issuer: "https://as.example.com".into(),
            metadata,
            authorization_endpoint: Some(Url::parse("https://as.example.com/authorize").unwrap()),
            token_endpoint: Url::parse("https://as.example.com/token").unwrap(),
            registration_endpoint: Some(Url::parse("https://as.example.com/register").unwrap()),
            iss_baseline: true,
        }
    }

    fn tokens(issuer: &str, client_id: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new("at"),
            token_type: "Bearer".into(),
            refresh_token: Some(RefreshToken::new("rt-old")),
            expires_at: Some(Timestamp::from_secs(100)),
            scope: Some("a b".into()),
            issuer: issuer.into(),
            resource: "https://mcp.example.com/mcp".into(),
            token_endpoint: Some("https://stored.example.com/token".into()),
            client_id: client_id.map(str::to_owned),
            obtained_at: Timestamp::ZERO,
            dpop_key: None,
            resource_metadata: Some("https://mcp.example.com/.well-known/oauth-protected-resource".into()),
            grant: Some(GrantKind::AuthorizationCode),
        }
    }

    fn dynamic(issuer: &str, id: &str, redirect: &str) -> ClientInfo {
        ClientInfo {
            issuer: issuer.into(),
            client_id: id.into(),
            client_secret: None,
            client_secret_expires_at: None,
            token_endpoint_auth_method: Some("none".into()),
            redirect_uris: vec![redirect.into()],
            kind: ClientKind::Dynamic,
            grant_types: Vec::new(),
        }
    }

    fn response(refresh: Option<&str>, scope: Option<&str>) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new("at-new"),
            token_type: "Bearer".into(),
            expires_in: Some(60),
            refresh_token: refresh.map(RefreshToken::new),
            scope: scope.map(str::to_owned),
        }
    }

    #[test]
    fn a_login_needs_the_code_response_type() {
        let c = config();
        let token_only = as_metadata(
            r#"{"issuer":"https://as.example.com","code_challenge_methods_supported":["S256"],"response_types_supported":["token"]}"#,
        );
        assert_eq!(
            check_login(&c, &server(Some(token_only))).unwrap_err(),
            Error::Discovery(DiscoveryError::CodeNotSupported { issuer: "https://as.example.com".into() })
        );
        let mut s = server(None);
        s.authorization_endpoint = Some(Url::parse("javascript:alert(1)").unwrap());
        assert!(matches!(check_login(&c, &s), Err(Error::Discovery(DiscoveryError::InsecureUrl { field: "authorization_endpoint", .. }))));
    }

    #[test]
    fn client_authentication_names_what_is_missing() {
        let mut c = config();
        c.token_endpoint_auth_method = Some("private_key_jwt".into());
        let mut client = dynamic("https://as.example.com", "pre", "");
        client.kind = ClientKind::PreRegistered;
        let assertion = || Assertion { audience: "https://as.example.com", now: Timestamp::ZERO, nonce: None };
        // Forced private_key_jwt, and no key configured: the configuration's fault.
        assert_eq!(client_auth(&c, None, None, &client, assertion(), true).err(), Some(Error::Token(TokenError::NoPrivateKey)));
        // A key, and no entropy for the assertion: core's own invariant broke.
        let key = SigningKey::from_pem(&crate::secret::PrivateKeyPem::new(crate::jwt::TEST_KEY)).unwrap();
        assert!(matches!(client_auth(&c, None, Some(&key), &client, assertion(), true), Err(Error::Bug(_))));
    }

    #[test]
    fn flow_follows_configuration_then_metadata() {
        let mut c = config();
        assert_eq!(choose_flow(&c, None), ChosenFlow::AuthorizationCode);
        c.client_id = Some("svc".into());
        c.client_secret = Some(ClientSecret::new("s"));
        assert_eq!(choose_flow(&c, None), ChosenFlow::ClientCredentials, "no metadata: taken at its word");
        let code_only = as_metadata(r#"{"issuer":"https://as.example.com","grant_types_supported":["authorization_code"]}"#);
        assert_eq!(choose_flow(&c, Some(&code_only)), ChosenFlow::AuthorizationCode);
        c.flow = Flow::ClientCredentials;
        assert_eq!(choose_flow(&c, Some(&code_only)), ChosenFlow::ClientCredentials, "an explicit flow is not second-guessed");
        c.flow = Flow::Auto;
        c.workload_token = Some(crate::secret::SubjectToken::new("jwt"));
        assert_eq!(choose_flow(&c, None), ChosenFlow::WorkloadIdentity);
    }

    #[test]
    fn dpop_by_mode_and_metadata() {
        let es256 = as_metadata(r#"{"issuer":"https://as.example.com","dpop_signing_alg_values_supported":["ES256"]}"#);
        assert!(dpop_wanted(DpopMode::Auto, Some(&es256)));
        assert!(!dpop_wanted(DpopMode::Auto, None));
        assert!(!dpop_wanted(DpopMode::Never, Some(&es256)));
        assert!(dpop_wanted(DpopMode::Always, None));
    }

    #[test]
    fn resource_is_the_metadata_value_or_the_canonical_uri() {
        let mut c = config();
        let prm = ProtectedResourceMetadata::from_json(
            br#"{"resource":"https://mcp.example.com/mcp/","authorization_servers":["https://as.example.com"]}"#,
        )
        .unwrap();
        assert_eq!(resource_param(&c, Some(&prm)).as_deref(), Some("https://mcp.example.com/mcp/"), "byte for byte");
        assert_eq!(resource_param(&c, None).as_deref(), Some("https://mcp.example.com/mcp"));
        c.send_resource = false;
        assert_eq!(resource_param(&c, Some(&prm)), None);
        assert_eq!(token_resource(&c, Some(&prm)), "https://mcp.example.com/mcp");
    }

    #[test]
    fn scope_from_challenge_then_metadata_then_configuration() {
        let mut c = config();
        c.scopes = Some(vec!["configured".into()]);
        let mut r = RequestContext::default();
        assert_eq!(select_scope(&c, &r, None, None, None, false).as_deref(), Some("configured"));
        let prm = ProtectedResourceMetadata::from_json(
            br#"{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://as.example.com"],"scopes_supported":["read","read"]}"#,
        )
        .unwrap();
        assert_eq!(select_scope(&c, &r, Some(&prm), None, None, false).as_deref(), Some("read"), "deduplicated");
        r.challenge = Some(BearerChallenge { scope: Some("write".into()), ..Default::default() });
        assert_eq!(select_scope(&c, &r, Some(&prm), None, None, false).as_deref(), Some("write"));
        // A step-up: the union with what was requested and granted before.
        r.step_up = true;
        record_requested(&mut r.requested_scopes, Some("earlier offline_access"));
        assert_eq!(r.requested_scopes, ["earlier"]);
        let held = tokens("https://as.example.com", None);
        assert_eq!(select_scope(&c, &r, Some(&prm), Some(&held), None, false).as_deref(), Some("earlier a b write"));
        // offline_access only for grants with refresh tokens, and when the server lists it.
        let md = as_metadata(r#"{"issuer":"https://as.example.com","scopes_supported":["offline_access"]}"#);
        r = RequestContext::default();
        assert_eq!(select_scope(&c, &r, None, None, Some(&md), true).as_deref(), Some("configured offline_access"));
        assert_eq!(select_scope(&c, &r, None, None, Some(&md), false).as_deref(), Some("configured"));
        c.scopes = None;
        assert_eq!(select_scope(&c, &r, None, None, Some(&md), true), None, "no scope, no offline_access alone");
    }

    #[test]
    fn configured_client_is_bound_to_one_issuer() {
        let mut c = config();
        assert!(configured_client(&c, &[], None, "https://as.example.com").unwrap().is_none());
        c.client_id = Some("pre".into());
        let first = configured_client(&c, &[], None, "https://as.example.com").unwrap().unwrap();
        assert_eq!((first.kind, first.client_id.as_str()), (ClientKind::PreRegistered, "pre"));
        // Bound by the tokens issued to it, by a stored binding, or by configuration.
        let held = tokens("https://old.example.com", Some("pre"));
        assert!(matches!(
            configured_client(&c, &[], Some(&held), "https://as.example.com"),
            Err(Error::Registration(RegistrationError::BoundToOtherIssuer { .. }))
        ));
        let binding = ClientInfo { kind: ClientKind::PreRegistered, ..dynamic("https://old.example.com", "pre", "") };
        assert!(configured_client(&c, &[binding], None, "https://as.example.com").is_err());
        c.authorization_server = Some("https://as.example.com".into());
        assert!(configured_client(&c, &[], Some(&held), "https://as.example.com").unwrap().is_some());
    }

    #[test]
    fn login_client_prefers_the_metadata_document_then_the_pending_then_a_stored_registration() {
        let mut c = config();
        let s = server(None);
        let redirect = Url::parse("http://127.0.0.1:8976/callback").unwrap();
        let stored = dynamic(&s.issuer, "stored", "http://127.0.0.1:8976/callback");
        let pending = dynamic(&s.issuer, "pending", "http://127.0.0.1:8976/callback");
        let now = Timestamp::ZERO;
        assert!(login_client(&c, &s, &[], None, &redirect, now).is_none(), "nothing fits: register");
        let (client, registered) = login_client(&c, &s, std::slice::from_ref(&stored), Some(&pending), &redirect, now).unwrap();
        assert_eq!((client.client_id.as_str(), registered), ("pending", true));
        let (client, registered) = login_client(&c, &s, std::slice::from_ref(&stored), None, &redirect, now).unwrap();
        assert_eq!((client.client_id.as_str(), registered), ("stored", false));
        // Another port fits a loopback IP literal only when the server cannot register anew.
        let other_port = Url::parse("http://127.0.0.1:9000/callback").unwrap();
        assert!(login_client(&c, &s, std::slice::from_ref(&stored), None, &other_port, now).is_none());
        let closed = ServerContext { registration_endpoint: None, ..server(None) };
        assert!(login_client(&c, &closed, std::slice::from_ref(&stored), None, &other_port, now).is_some());
        // A metadata document, where the server accepts one, comes first.
        c.client_metadata_url = Some(Url::parse("https://app.example.com/client.json").unwrap());
        let cimd = server(Some(as_metadata(r#"{"issuer":"https://as.example.com","client_id_metadata_document_supported":true}"#)));
        let (client, _) = login_client(&c, &cimd, &[stored], Some(&pending), &redirect, now).unwrap();
        assert_eq!((client.kind, client.client_id.as_str()), (ClientKind::MetadataDocument, "https://app.example.com/client.json"));
    }

    #[test]
    fn client_for_tokens_is_the_one_they_were_issued_to() {
        let mut c = config();
        let issuer = "https://as.example.com";
        let reg = dynamic(issuer, "dyn", "http://127.0.0.1/cb");
        assert_eq!(client_for_tokens(&c, std::slice::from_ref(&reg), &tokens(issuer, Some("dyn"))).unwrap().unwrap().client_id, "dyn");
        assert!(client_for_tokens(&c, std::slice::from_ref(&reg), &tokens("https://other", Some("dyn"))).unwrap().is_none());
        assert!(client_for_tokens(&c, &[reg], &tokens(issuer, None)).unwrap().is_none());
        c.client_id = Some("pre".into());
        assert_eq!(client_for_tokens(&c, &[], &tokens(issuer, Some("pre"))).unwrap().unwrap().kind, ClientKind::PreRegistered);
    }

    #[test]
    fn refresh_goes_to_the_issuers_endpoint() {
        let t = tokens("https://as.example.com", Some("dyn"));
        let public = dynamic("https://as.example.com", "dyn", "");
        let s = server(None);
        assert_eq!(refresh_endpoint(Some(&s), &t, &public, false).unwrap().as_str(), "https://as.example.com/token");
        let other = ServerContext { issuer: "https://elsewhere".into(), ..server(None) };
        assert_eq!(refresh_endpoint(Some(&other), &t, &public, false), None);
        assert_eq!(refresh_endpoint(None, &t, &public, false).unwrap().as_str(), "https://stored.example.com/token");
        let pre = ClientInfo { kind: ClientKind::PreRegistered, client_secret: Some(ClientSecret::new("s")), ..public };
        assert_eq!(refresh_endpoint(None, &t, &pre, false), None, "configured credentials never go to a stored endpoint");
    }

    #[test]
    fn a_refresh_rotates_the_refresh_token_and_keeps_the_grant() {
        let old = tokens("https://as.example.com", Some("dyn"));
        let now = Timestamp::from_secs(50);
        let s = server(None);
        let rotated = refreshed_tokens(old.clone(), response(Some("rt-new"), None), now, Some(&s), None);
        assert_eq!(rotated.refresh_token.as_ref().unwrap().secret(), "rt-new");
        assert_eq!(rotated.access_token.secret(), "at-new");
        assert_eq!(rotated.scope, old.scope, "no scope in the response: the grant's");
        assert_eq!(rotated.token_endpoint, old.token_endpoint);
        assert_eq!(rotated.resource_metadata, old.resource_metadata);
        assert_eq!((rotated.grant, rotated.obtained_at, rotated.expires_at), (old.grant, now, Some(Timestamp::from_secs(110))));
        let kept = refreshed_tokens(old, response(None, Some("a")), now, Some(&s), None);
        assert_eq!(kept.refresh_token.unwrap().secret(), "rt-old", "none issued: the old one stays");
        assert_eq!(kept.scope.as_deref(), Some("a"));
    }

    #[test]
    fn new_tokens_keep_the_endpoint_of_their_issuer() {
        let s = server(None);
        let requested = |issuer: &str| Requested {
            scope: Some("asked".into()),
            issuer: issuer.into(),
            resource: "r".into(),
            client_id: None,
            grant: Some(GrantKind::ClientCredentials),
        };
        let t = token_set_from(response(None, None), requested(&s.issuer), Timestamp::ZERO, Some(&s), Some("https://prm"));
        assert_eq!(t.token_endpoint.as_deref(), Some("https://as.example.com/token"));
        assert_eq!((t.scope.as_deref(), t.resource_metadata.as_deref()), (Some("asked"), Some("https://prm")));
        let t = token_set_from(response(None, None), requested("https://other"), Timestamp::ZERO, Some(&s), None);
        assert_eq!(t.token_endpoint, None);
    }

    #[test]
    fn issuers_with_credentials_or_tokens_come_first() {
        let mut c = config();
        let mut issuers = vec!["https://a".to_owned(), "https://b".to_owned(), "https://c".to_owned()];
        order_issuers(&c, Some(&tokens("https://c", None)), &[], &mut issuers);
        assert_eq!(issuers, ["https://c", "https://a", "https://b"]);
        c.authorization_server = Some("https://b".into());
        order_issuers(&c, Some(&tokens("https://c", None)), &[], &mut issuers);
        assert_eq!(issuers, ["https://b", "https://c", "https://a"]);
    }

    #[test]
    fn redirect_plans_and_paste_ports() {
        let uri = Url::parse("http://127.0.0.1/callback").unwrap();
        let plan = redirect_plan(&uri, &[], "https://as.example.com");
        assert_eq!((plan.host.as_str(), plan.port, plan.path.as_str(), plan.any_port_fallback), ("127.0.0.1", 0, "/callback", true));
        let reg = dynamic("https://as.example.com", "dyn", "http://127.0.0.1:8123/callback");
        assert_eq!(redirect_plan(&uri, &[reg], "https://as.example.com").port, 8123, "a registration that can be reused as is");
        let fixed = redirect_plan(&Url::parse("http://[::1]:7000/cb").unwrap(), &[], "x");
        assert_eq!((fixed.host.as_str(), fixed.port, fixed.any_port_fallback), ("::1", 7000, false));
        let port = paste_redirect_uri(&plan, &[0xff; 16]).port().unwrap();
        assert!((49152..=65535).contains(&port));
        assert_eq!(paste_redirect_uri(&fixed, &[0; 16]).as_str(), "http://[::1]:7000/cb");
    }

    #[test]
    fn logins_back_off_at_the_same_server_only() {
        let now = Timestamp::from_secs(1000);
        let mut r = RequestContext { rejected: true, ..Default::default() };
        let at = (Timestamp::from_secs(900), "https://as".to_owned());
        assert!(login_backed_off(&r, Some(&at), Some("https://as"), now));
        assert!(!login_backed_off(&r, Some(&at), Some("https://other"), now));
        assert!(!login_backed_off(&r, Some(&at), Some("https://as"), now.saturating_add(LOGIN_BACKOFF)));
        r.resource_changed = true;
        assert!(!login_backed_off(&r, Some(&at), Some("https://as"), now));
    }
}
