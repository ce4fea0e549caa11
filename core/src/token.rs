//! Token endpoint requests (authorization code, refresh, client credentials), client
//! authentication (RFC 6749 §2.3, RFC 7523), token responses (RFC 6749 §5) and the persisted
//! [`TokenSet`].

use crate::error::{Error, ErrorCode, HttpError, OAuthErrorResponse, TokenError};
use crate::http::{body_summary, is_json_or_absent, json_error, HttpRequest, HttpResponse, Purpose};
use crate::metadata::AuthorizationServerMetadata;
use crate::secret::{AccessToken, AuthorizationCode, ClientSecret, PkceVerifier, RefreshToken, SubjectToken};
use crate::time::Timestamp;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use url::Url;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Public client: `client_id` in the body, no secret.
    None,
    /// `Authorization: Basic` with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
    /// A signed JWT assertion (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The registered name (`none`, `client_secret_basic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses a registered name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => AuthMethod::None,
            "client_secret_basic" => AuthMethod::ClientSecretBasic,
            "client_secret_post" => AuthMethod::ClientSecretPost,
            "private_key_jwt" => AuthMethod::PrivateKeyJwt,
            _ => return None,
        })
    }
}

/// Chooses the authentication method (SPEC item 77): a forced method, then the one the
/// registration returned, then `private_key_jwt` with a key, then Basic or Post with a secret,
/// else `none`.
pub(crate) fn select_auth_method(
    metadata: Option<&AuthorizationServerMetadata>,
    forced: Option<AuthMethod>,
    registered: Option<AuthMethod>,
    has_secret: bool,
    has_key: bool,
) -> AuthMethod {
    if let Some(m) = forced {
        return m;
    }
    let supports = |m: AuthMethod| metadata.is_none_or(|md| md.supports_auth_method(m.as_str()));
    if let Some(m) = registered {
        let usable = match m {
            AuthMethod::None => true,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => has_secret,
            AuthMethod::PrivateKeyJwt => has_key,
        };
        if usable {
            return m;
        }
    }
    if has_key && (supports(AuthMethod::PrivateKeyJwt) || !has_secret) {
        return AuthMethod::PrivateKeyJwt;
    }
    if has_secret {
        let listed = metadata.is_some_and(|m| m.lists_auth_methods());
        if listed && !supports(AuthMethod::ClientSecretBasic) && supports(AuthMethod::ClientSecretPost) {
            return AuthMethod::ClientSecretPost;
        }
        return AuthMethod::ClientSecretBasic;
    }
    AuthMethod::None
}

/// Client authentication for one token request.
pub(crate) struct ClientAuth<'a> {
    /// The method.
    pub method: AuthMethod,
    /// The client id.
    pub client_id: &'a str,
    /// The secret, for the `client_secret_*` methods.
    pub secret: Option<&'a ClientSecret>,
    /// The signed assertion, for `private_key_jwt`.
    pub assertion: Option<String>,
    /// Put `client_id` in the body even with `private_key_jwt` (the authorization code flow
    /// does; the client credentials extension omits it, RFC 7523 §3).
    pub client_id_in_body: bool,
}

impl fmt::Debug for ClientAuth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth").field("method", &self.method).field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1 and Appendix B).
pub(crate) fn basic_authorization(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret))))
}

/// Builds a token endpoint `POST` with a form body, adding client authentication.
pub(crate) fn token_request(endpoint: &Url, mut form: Vec<(&'static str, String)>, auth: &ClientAuth<'_>) -> HttpRequest {
    let mut basic = None;
    match auth.method {
        AuthMethod::None => form.push(("client_id", auth.client_id.to_owned())),
        AuthMethod::ClientSecretBasic => {
            basic = Some(basic_authorization(auth.client_id, auth.secret.map(ClientSecret::secret).unwrap_or("")));
        }
        AuthMethod::ClientSecretPost => {
            form.push(("client_id", auth.client_id.to_owned()));
            form.push(("client_secret", auth.secret.map(|s| s.secret().to_owned()).unwrap_or_default()));
        }
        AuthMethod::PrivateKeyJwt => {
            if auth.client_id_in_body {
                form.push(("client_id", auth.client_id.to_owned()));
            }
            form.push(("client_assertion_type", crate::jwt::ASSERTION_TYPE.to_owned()));
            form.push(("client_assertion", auth.assertion.clone().unwrap_or_default()));
        }
    }
    let mut req = form_request(endpoint, &form);
    if let Some(v) = basic {
        if let Ok(mut hv) = http::HeaderValue::from_str(&v) {
            hv.set_sensitive(true);
            req.headers_mut().insert(http::header::AUTHORIZATION, hv);
        }
    }
    req
}

/// A grant at a token endpoint, with its parameters: every token request body core sends is
/// built here, by [`Grant::form`], in one fixed parameter order per grant.
pub(crate) enum Grant<'a> {
    /// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5) and RFC 8707 `resource`.
    AuthorizationCode { code: &'a AuthorizationCode, redirect_uri: &'a Url, verifier: &'a PkceVerifier, resource: Option<&'a str> },
    /// RFC 6749 §6: the grant's own `resource`, never a scope (a refresh cannot widen it).
    RefreshToken { refresh_token: &'a RefreshToken, resource: Option<&'a str> },
    /// RFC 6749 §4.4.
    ClientCredentials { resource: Option<&'a str>, scope: Option<&'a str> },
    /// RFC 8693 at the identity provider: an ID token for an ID-JAG addressed to `audience`
    /// (the authorization server's issuer) and `resource`.
    IdJagExchange { id_token: &'a SubjectToken, audience: &'a str, resource: &'a str, scope: Option<&'a str> },
    /// RFC 7523 §2.1: an assertion (an ID-JAG, or a workload's JWT) as a grant.
    JwtBearer { assertion: &'a SubjectToken, resource: Option<&'a str>, scope: Option<&'a str> },
    /// RFC 8628 §3.4: the device code, with the `resource` of the device authorization request.
    DeviceCode { device_code: &'a str, resource: Option<&'a str> },
}

impl Grant<'_> {
    /// The form body, before client authentication: the grant's own parameters, then
    /// `resource`, then `scope`.
    pub(crate) fn form(&self) -> Vec<(&'static str, String)> {
        let (mut form, resource, scope) = match *self {
            Grant::AuthorizationCode { code, redirect_uri, verifier, resource } => (
                vec![
                    ("grant_type", "authorization_code".to_owned()),
                    ("code", code.secret().to_owned()),
                    ("redirect_uri", redirect_uri.to_string()),
                    ("code_verifier", verifier.secret().to_owned()),
                ],
                resource,
                None,
            ),
            Grant::RefreshToken { refresh_token, resource } => {
                (vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", refresh_token.secret().to_owned())], resource, None)
            }
            Grant::ClientCredentials { resource, scope } => (vec![("grant_type", "client_credentials".to_owned())], resource, scope),
            Grant::IdJagExchange { id_token, audience, resource, scope } => (
                vec![
                    ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
                    ("requested_token_type", ID_JAG_TOKEN_TYPE.to_owned()),
                    ("subject_token", id_token.secret().to_owned()),
                    ("subject_token_type", ID_TOKEN_TYPE.to_owned()),
                    ("audience", audience.to_owned()),
                ],
                Some(resource),
                scope,
            ),
            Grant::JwtBearer { assertion, resource, scope } => {
                (vec![("grant_type", JWT_BEARER_GRANT.to_owned()), ("assertion", assertion.secret().to_owned())], resource, scope)
            }
            Grant::DeviceCode { device_code, resource } => {
                (vec![("grant_type", crate::device::DEVICE_CODE_GRANT.to_owned()), ("device_code", device_code.to_owned())], resource, None)
            }
        };
        form.extend(resource.map(|r| ("resource", r.to_owned())));
        form.extend(scope.map(|s| ("scope", s.to_owned())));
        form
    }

    /// The `POST` to `endpoint`, with client authentication when there is a client.
    pub(crate) fn request(&self, endpoint: &Url, auth: Option<&ClientAuth<'_>>) -> HttpRequest {
        match auth {
            Some(auth) => token_request(endpoint, self.form(), auth),
            None => form_request(endpoint, &self.form()),
        }
    }
}

/// A form `POST` accepting JSON, without client authentication.
pub(crate) fn form_request(endpoint: &Url, form: &[(&'static str, String)]) -> HttpRequest {
    let body = serde_urlencoded::to_string(form).unwrap_or_default().into_bytes();
    http::Request::post(endpoint.as_str())
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .unwrap_or_else(|_| http::Request::new(Vec::new()))
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// `Bearer` or `DPoP` (normalised).
    pub token_type: String,
    /// Lifetime in seconds, if given (a numeric string is accepted).
    pub expires_in: Option<u64>,
    /// A refresh token, if issued.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, if given.
    pub scope: Option<String>,
}

/// Parses an OAuth error body, if it is one.
pub(crate) fn oauth_error(body: &[u8]) -> Option<OAuthErrorResponse> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = ErrorCode::from(v.get("error")?.as_str()?);
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    Some(OAuthErrorResponse { error, description: text("error_description"), uri: text("error_uri") })
}

/// Checks the size limit of a response.
pub(crate) fn check_size(resp: &HttpResponse, purpose: Purpose) -> Result<(), Error> {
    let limit = purpose.max_response_bytes();
    if resp.body().len() > limit {
        return Err(Error::Http { purpose, error: HttpError::BodyTooLarge { limit } });
    }
    Ok(())
}

impl TokenResponse {
    /// Interprets a token endpoint response: 2xx with a valid body is success; an `error`
    /// body (also inside a 200, as GitHub does) is [`TokenError::Rejected`]; anything else is an
    /// HTTP error.
    pub fn from_http(resp: &HttpResponse, purpose: Purpose) -> Result<Self, Error> {
        check_size(resp, purpose)?;
        let status = resp.status().as_u16();
        let body = resp.body();
        if let Some(e) = oauth_error(body) {
            return Err(TokenError::Rejected(e).into());
        }
        if !resp.status().is_success() {
            return Err(Error::Http { purpose, error: HttpError::UnexpectedStatus { status, excerpt: body_summary(purpose, body) } });
        }
        if !is_json_or_absent(resp) {
            let ct = crate::http::header_str(resp, http::header::CONTENT_TYPE).unwrap_or("").to_owned();
            return Err(Error::Http { purpose, error: HttpError::BadContentType { content_type: ct } });
        }
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| Error::Http { purpose, error: HttpError::InvalidJson { reason: json_error(&e) } })?;
        let invalid = |field, expected| Error::from(TokenError::InvalidField { field, expected });
        let obj = v.as_object().ok_or(TokenError::NotAnObject)?;
        let access_token = match obj.get("access_token") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => AccessToken::new(s.clone()),
            _ => return Err(invalid("access_token", "a non-empty string")),
        };
        let token_type = match obj.get("token_type") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => return Err(invalid("token_type", "a string")),
        };
        let token_type = if token_type.eq_ignore_ascii_case("bearer") {
            "Bearer"
        } else if token_type.eq_ignore_ascii_case("dpop") {
            "DPoP"
        } else {
            return Err(TokenError::UnsupportedTokenType(token_type.chars().take(40).collect()).into());
        };
        let expires_in = match obj.get("expires_in") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => {
                Some(n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.max(0.0) as u64)).unwrap_or(0))
            }
            Some(serde_json::Value::String(s)) => Some(s.trim().parse::<u64>().map_err(|_| invalid("expires_in", "a number"))?),
            Some(_) => return Err(invalid("expires_in", "a number")),
        };
        let opt_str = |k: &'static str| -> Result<Option<String>, Error> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(k, "a string")),
            }
        };
        Ok(TokenResponse {
            access_token,
            token_type: token_type.into(),
            expires_in,
            refresh_token: opt_str("refresh_token")?.filter(|s| !s.is_empty()).map(RefreshToken::new),
            scope: opt_str("scope")?.filter(|s| !s.trim().is_empty()),
        })
    }
}

/// The `requested_token_type` and `issued_token_type` of an Identity Assertion JWT
/// Authorization Grant (ID-JAG).
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// The token exchange grant (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `subject_token_type` of an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// Interprets an RFC 8693 token exchange response that must carry an ID-JAG: the
/// `access_token` is the assertion (its `token_type` is `N_A`, so the bearer rules of
/// [`TokenResponse`] do not apply).
pub fn id_jag_from_http(resp: &HttpResponse) -> Result<crate::secret::SubjectToken, Error> {
    let purpose = Purpose::TokenExchange;
    check_size(resp, purpose)?;
    if let Some(e) = oauth_error(resp.body()) {
        return Err(TokenError::Rejected(e).into());
    }
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        return Err(Error::Http { purpose, error: HttpError::UnexpectedStatus { status, excerpt: body_summary(purpose, resp.body()) } });
    }
    let v: serde_json::Value = serde_json::from_slice(resp.body())
        .map_err(|e| Error::Http { purpose, error: HttpError::InvalidJson { reason: json_error(&e) } })?;
    match v.get("issued_token_type").and_then(|t| t.as_str()) {
        Some(ID_JAG_TOKEN_TYPE) => {}
        other => {
            let issued_token_type = other.map(|t| t.chars().take(100).collect());
            return Err(TokenError::NotIdJag { issued_token_type }.into());
        }
    }
    match v.get("access_token").and_then(|t| t.as_str()) {
        Some(t) if !t.is_empty() => Ok(crate::secret::SubjectToken::new(t)),
        _ => Err(TokenError::InvalidField { field: "access_token", expected: "an id-jag" }.into()),
    }
}

/// The grant that started a chain of tokens (kept across refreshes): who the tokens act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantKind {
    /// A person logged in (authorization code): the tokens act for that user.
    AuthorizationCode,
    /// Client credentials: the tokens act for the client itself.
    ClientCredentials,
    /// A JWT bearer grant (enterprise-managed ID-JAG, or a workload's platform JWT).
    JwtBearer,
    /// A person logged in on another device (RFC 8628 device authorization grant).
    DeviceCode,
}

impl GrantKind {
    /// The grant's name, for logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::AuthorizationCode => "authorization_code",
            GrantKind::ClientCredentials => "client_credentials",
            GrantKind::JwtBearer => "jwt_bearer",
            GrantKind::DeviceCode => "device_code",
        }
    }

    /// True for grants where a person logged in.
    pub fn is_user(self) -> bool {
        matches!(self, GrantKind::AuthorizationCode | GrantKind::DeviceCode)
    }
}

/// Tokens for one (resource, issuer) pair, as persisted by the adapter's store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// `Bearer`, or `DPoP` for a token bound to [`dpop_key`](Self::dpop_key) (normalised).
    pub token_type: String,
    /// The refresh token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The granted scope (the requested one when the server did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The issuer that minted the tokens.
    pub issuer: String,
    /// The resource (MCP server) they are for.
    pub resource: String,
    /// Where to refresh them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The client id they were issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When they were obtained.
    pub obtained_at: Timestamp,
    /// The DPoP key the access token is bound to (secret; `token_type` is `DPoP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<crate::secret::DpopPrivateKey>,
    /// The URL the protected resource metadata came from when the grant was obtained: a
    /// challenge naming the same URL needs no new discovery, after a restart too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_metadata: Option<String>,
    /// The grant that started the chain (absent in tokens stored by older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantKind>,
}

/// The share of a token's lifetime that the refresh skew may take at most: a token is used for
/// at least three quarters of its life, however short (a 2 s token is refreshed after 1.5 s, a
/// 60 s one after 45 s; from 4 minutes up the configured skew applies).
pub const MAX_SKEW_SHARE: u32 = 4;

impl TokenSet {
    /// True if the access token is usable at `now`: before [`refresh_at`](Self::refresh_at).
    /// Tokens of unknown lifetime are always fresh (they are used until the server rejects them).
    pub fn is_fresh(&self, now: Timestamp, skew: Duration) -> bool {
        self.refresh_at(skew).is_none_or(|at| now < at)
    }

    /// When to refresh: `skew` before expiry, but never earlier than three quarters into the
    /// token's lifetime ([`MAX_SKEW_SHARE`]), so short-lived tokens are not refreshed on every
    /// request. `None` when the lifetime is unknown.
    pub fn refresh_at(&self, skew: Duration) -> Option<Timestamp> {
        let exp = self.expires_at?;
        let lifetime = exp.duration_since(self.obtained_at);
        Some(exp.saturating_sub(skew.min(lifetime / MAX_SKEW_SHARE)))
    }

    /// The header to attach (and, for DPoP-bound tokens, what proves possession).
    pub fn authorization(&self) -> Authorization {
        self.authorization_with(None, None)
    }

    /// The header, with the machine's DPoP key (sharing its `jti` counter) and the nonce the
    /// resource server demanded, if any.
    pub(crate) fn authorization_with(&self, key: Option<&crate::dpop::DpopKey>, rs_nonce: Option<String>) -> Authorization {
        let dpop = match (&self.dpop_key, self.token_type.as_str()) {
            (Some(k), "DPoP") => key.cloned().or_else(|| crate::dpop::DpopKey::restore(k)).map(|key| (key, rs_nonce)),
            _ => None,
        };
        let scheme = if dpop.is_some() { "DPoP" } else { "Bearer" };
        Authorization { header: format!("{scheme} {}", self.access_token.secret()), token: self.access_token.clone(), dpop }
    }

    /// The granted scopes as a list.
    pub fn scopes(&self) -> Vec<&str> {
        self.scope.as_deref().map(|s| s.split_whitespace().collect()).unwrap_or_default()
    }
}

/// What to attach to MCP requests: the `Authorization` header value and, for DPoP-bound
/// tokens, a fresh `DPoP` proof per request. `Debug` is redacted.
#[derive(Clone)]
pub struct Authorization {
    header: String,
    token: AccessToken,
    dpop: Option<(crate::dpop::DpopKey, Option<String>)>,
}

impl Authorization {
    /// The `Authorization` header value (`Bearer …` or `DPoP …`), marked sensitive so HTTP
    /// libraries do not log it.
    pub fn header_value(&self) -> http::HeaderValue {
        let mut v = http::HeaderValue::from_str(&self.header).unwrap_or_else(|_| http::HeaderValue::from_static("Bearer invalid"));
        v.set_sensitive(true);
        v
    }

    /// The `DPoP` header for one request (`None` for bearer tokens): a fresh proof bound to the
    /// method, the URL, the time and the access token. Build one per request; `salt` is fresh
    /// random bytes from the adapter (the `jti` stays unique across processes sharing the key).
    pub fn dpop_proof(&self, method: &str, url: &url::Url, now: Timestamp, salt: &[u8]) -> Option<http::HeaderValue> {
        let (key, nonce) = self.dpop.as_ref()?;
        let proof = key.proof(method, url, now, nonce.as_deref(), Some(self.token.secret()), salt);
        http::HeaderValue::from_str(&proof).ok()
    }

    /// The access token itself (to tell which token a server rejected). Never log it.
    pub fn access_token(&self) -> &AccessToken {
        &self.token
    }

    /// True for a DPoP-bound token.
    pub fn is_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// The header value as text. Never log it.
    pub fn secret(&self) -> &str {
        &self.header
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.dpop.is_some() { "DPoP" } else { "Bearer" };
        write!(f, "Authorization({scheme} [redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        http::Response::builder().status(status).header("content-type", "application/json").body(body.as_bytes().to_vec()).unwrap()
    }

    fn keys(g: &Grant<'_>) -> Vec<&'static str> {
        g.form().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn grant_forms() {
        let url = Url::parse("http://127.0.0.1:9/cb").unwrap();
        let (code, verifier) = (AuthorizationCode::new("c"), PkceVerifier::new("v"));
        let code_grant = Grant::AuthorizationCode { code: &code, redirect_uri: &url, verifier: &verifier, resource: Some("https://rs/") };
        assert_eq!(
            code_grant.form(),
            [
                ("grant_type", "authorization_code".to_owned()),
                ("code", "c".to_owned()),
                ("redirect_uri", "http://127.0.0.1:9/cb".to_owned()),
                ("code_verifier", "v".to_owned()),
                ("resource", "https://rs/".to_owned()),
            ]
        );
        let rt = RefreshToken::new("r");
        assert_eq!(keys(&Grant::RefreshToken { refresh_token: &rt, resource: None }), ["grant_type", "refresh_token"]);
        assert_eq!(keys(&Grant::ClientCredentials { resource: None, scope: None }), ["grant_type"]);
        assert_eq!(keys(&Grant::ClientCredentials { resource: Some("r"), scope: Some("a b") }), ["grant_type", "resource", "scope"]);
        let token = SubjectToken::new("t");
        let exchange = Grant::IdJagExchange { id_token: &token, audience: "https://as", resource: "https://rs/", scope: None };
        assert_eq!(keys(&exchange), ["grant_type", "requested_token_type", "subject_token", "subject_token_type", "audience", "resource"]);
        assert_eq!(exchange.form()[0].1, TOKEN_EXCHANGE_GRANT);
        let bearer = Grant::JwtBearer { assertion: &token, resource: Some("r"), scope: Some("s") };
        assert_eq!(keys(&bearer), ["grant_type", "assertion", "resource", "scope"]);
        // Without a client the body carries no client_id; with one, the method decides.
        let endpoint = Url::parse("https://as/token").unwrap();
        assert!(!String::from_utf8_lossy(bearer.request(&endpoint, None).body()).contains("client_id"));
        let auth = ClientAuth { method: AuthMethod::None, client_id: "me", secret: None, assertion: None, client_id_in_body: true };
        assert!(String::from_utf8_lossy(bearer.request(&endpoint, Some(&auth)).body()).ends_with("&client_id=me"));
    }

    #[test]
    fn basic_auth_vectors() {
        // RFC 6749 §2.3.1 example and SPEC §3.6.
        assert_eq!(basic_authorization("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw"), "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3");
        assert_eq!(basic_authorization("a:b", "c d"), "Basic YSUzQWI6Yytk");
    }

    #[test]
    fn client_credentials_post_body_vector() {
        let secret = ClientSecret::new("7Fjfp0ZBr1KtDRbnfVdmIw");
        let auth = ClientAuth {
            method: AuthMethod::ClientSecretPost,
            client_id: "s6BhdRkqt3",
            secret: Some(&secret),
            assertion: None,
            client_id_in_body: true,
        };
        let form = vec![("grant_type", "client_credentials".into())];
        let mut form2 = form.clone();
        form2.push(("resource", "https://mcp.example.com".into()));
        form2.push(("scope", "mcp:read".into()));
        let req = token_request(&Url::parse("https://as.example/token").unwrap(), form2, &auth);
        let body = String::from_utf8(req.body().clone()).unwrap();
        let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
        pairs.sort();
        let mut want: Vec<(String, String)> = serde_urlencoded::from_str(
            "grant_type=client_credentials&client_id=s6BhdRkqt3&client_secret=7Fjfp0ZBr1KtDRbnfVdmIw&resource=https%3A%2F%2Fmcp.example.com&scope=mcp%3Aread",
        )
        .unwrap();
        want.sort();
        assert_eq!(pairs, want);
        assert!(req.headers().get("authorization").is_none());
        assert!(!format!("{auth:?}").contains("7Fjf"));
    }

    #[test]
    fn basic_puts_no_secret_in_body() {
        let secret = ClientSecret::new("sekrit");
        let auth = ClientAuth {
            method: AuthMethod::ClientSecretBasic,
            client_id: "id",
            secret: Some(&secret),
            assertion: None,
            client_id_in_body: false,
        };
        let req = token_request(&Url::parse("https://as.example/token").unwrap(), vec![("grant_type", "client_credentials".into())], &auth);
        assert!(!String::from_utf8_lossy(req.body()).contains("sekrit"));
        assert!(req.headers()["authorization"].is_sensitive());
    }

    #[test]
    fn method_selection() {
        let md = |methods: Option<&[&str]>| {
            let mut v = serde_json::json!({"issuer": "https://a"});
            if let Some(m) = methods {
                v["token_endpoint_auth_methods_supported"] = serde_json::json!(m);
            }
            AuthorizationServerMetadata::from_json(v.to_string().as_bytes(), "https://a", false).unwrap()
        };
        let basic = md(Some(&["client_secret_basic"]));
        let post = md(Some(&["client_secret_post"]));
        let none = md(Some(&["none"]));
        let jwt = md(Some(&["private_key_jwt"]));
        let absent = md(None);
        assert_eq!(select_auth_method(Some(&basic), None, None, true, false), AuthMethod::ClientSecretBasic);
        assert_eq!(select_auth_method(Some(&post), None, None, true, false), AuthMethod::ClientSecretPost);
        assert_eq!(select_auth_method(Some(&none), None, None, false, false), AuthMethod::None);
        assert_eq!(select_auth_method(Some(&absent), None, None, true, false), AuthMethod::ClientSecretBasic);
        assert_eq!(select_auth_method(Some(&jwt), None, None, false, true), AuthMethod::PrivateKeyJwt);
        assert_eq!(select_auth_method(Some(&none), None, Some(AuthMethod::ClientSecretPost), true, false), AuthMethod::ClientSecretPost);
        // A registration that names a secret method but issued no secret cannot use it.
        assert_eq!(select_auth_method(Some(&none), None, Some(AuthMethod::ClientSecretBasic), false, false), AuthMethod::None);
        assert_eq!(select_auth_method(Some(&basic), Some(AuthMethod::ClientSecretPost), None, true, false), AuthMethod::ClientSecretPost);
    }

    #[test]
    fn token_responses() {
        let ok = TokenResponse::from_http(
            &resp(200, r#"{"access_token":"a","token_type":"bearer","expires_in":"3600","refresh_token":"r","scope":"x y"}"#),
            Purpose::CodeExchange,
        )
        .unwrap();
        assert_eq!(ok.expires_in, Some(3600));
        assert_eq!(ok.token_type, "Bearer");
        assert_eq!(ok.scope.as_deref(), Some("x y"));
        let no_exp = TokenResponse::from_http(&resp(200, r#"{"access_token":"a","token_type":"Bearer"}"#), Purpose::CodeExchange).unwrap();
        assert_eq!(no_exp.expires_in, None);
        assert!(no_exp.refresh_token.is_none());
        let e = TokenResponse::from_http(&resp(400, r#"{"error":"invalid_grant","error_description":"bad code"}"#), Purpose::CodeExchange)
            .unwrap_err();
        assert!(matches!(&e, Error::Token(TokenError::Rejected(r)) if r.error == ErrorCode::InvalidGrant));
        let e = TokenResponse::from_http(&resp(200, r#"{"error":"bad_verification_code"}"#), Purpose::CodeExchange).unwrap_err();
        assert!(matches!(e, Error::Token(TokenError::Rejected(_))));
        let e = TokenResponse::from_http(&resp(200, r#"{"access_token":"a","token_type":"mac"}"#), Purpose::CodeExchange).unwrap_err();
        assert!(matches!(e, Error::Token(TokenError::UnsupportedTokenType(_))));
        let e = TokenResponse::from_http(&resp(200, r#"{"token_type":"Bearer"}"#), Purpose::CodeExchange).unwrap_err();
        assert!(matches!(e, Error::Token(TokenError::InvalidField { field: "access_token", .. })), "{e}");
        let e = TokenResponse::from_http(&resp(200, r#"{"access_token":"a"}"#), Purpose::CodeExchange).unwrap_err();
        assert!(matches!(e, Error::Token(TokenError::InvalidField { field: "token_type", .. })), "{e}");
        let e =
            TokenResponse::from_http(&resp(200, r#"{"access_token":"a","token_type":"Bearer","expires_in":[]}"#), Purpose::CodeExchange)
                .unwrap_err();
        assert!(matches!(e, Error::Token(TokenError::InvalidField { field: "expires_in", expected: "a number" })), "{e}");
        let e = TokenResponse::from_http(&resp(200, r#"{"access_token":"a","token_type":"Bearer","scope":1}"#), Purpose::CodeExchange)
            .unwrap_err();
        assert!(matches!(e, Error::Token(TokenError::InvalidField { field: "scope", expected: "a string" })), "{e}");
        let e = TokenResponse::from_http(&resp(200, "[1]"), Purpose::CodeExchange).unwrap_err();
        assert_eq!(e, Error::Token(TokenError::NotAnObject));
        let e = TokenResponse::from_http(&resp(500, "<html>oops</html>"), Purpose::Refresh).unwrap_err();
        assert!(matches!(e, Error::Http { error: HttpError::UnexpectedStatus { status: 500, .. }, .. }));
        assert!(e.is_retryable());
        let big = "x".repeat(Purpose::CodeExchange.max_response_bytes() + 1);
        let e = TokenResponse::from_http(&resp(200, &big), Purpose::CodeExchange).unwrap_err();
        assert!(matches!(e, Error::Http { error: HttpError::BodyTooLarge { .. }, .. }));
        let html = http::Response::builder().status(200).header("content-type", "text/html").body(b"{}".to_vec()).unwrap();
        assert!(matches!(
            TokenResponse::from_http(&html, Purpose::CodeExchange),
            Err(Error::Http { error: HttpError::BadContentType { .. }, .. })
        ));
    }

    #[test]
    fn id_jag_responses() {
        let ok =
            resp(200, r#"{"access_token":"eyJ.jag.sig","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag","token_type":"N_A"}"#);
        assert_eq!(id_jag_from_http(&ok).unwrap().secret(), "eyJ.jag.sig");
        let wrong =
            resp(200, r#"{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer"}"#);
        assert_eq!(
            id_jag_from_http(&wrong).unwrap_err(),
            Error::Token(TokenError::NotIdJag { issued_token_type: Some("urn:ietf:params:oauth:token-type:access_token".into()) })
        );
        let empty = resp(200, r#"{"access_token":"","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag"}"#);
        assert!(matches!(id_jag_from_http(&empty), Err(Error::Token(TokenError::InvalidField { field: "access_token", .. }))));
        let refused = resp(400, r#"{"error":"invalid_grant","error_description":"Invalid ID token"}"#);
        assert!(matches!(id_jag_from_http(&refused), Err(Error::Token(TokenError::Rejected(_)))));
    }

    #[test]
    fn freshness_and_redaction() {
        let ts = TokenSet {
            access_token: AccessToken::new("tok-secret"),
            token_type: "Bearer".into(),
            refresh_token: Some(RefreshToken::new("ref-secret")),
            expires_at: Some(Timestamp::from_secs(100)),
            scope: Some("a b".into()),
            issuer: "https://as".into(),
            resource: "https://rs".into(),
            token_endpoint: None,
            client_id: None,
            obtained_at: Timestamp::ZERO,
            dpop_key: None,
            resource_metadata: None,
            grant: None,
        };
        // A 100 s token: the skew is a quarter of its life (25 s), not 60 s.
        assert!(ts.is_fresh(Timestamp::from_secs(74), Duration::from_secs(60)));
        assert!(!ts.is_fresh(Timestamp::from_secs(75), Duration::from_secs(60)));
        let d = format!("{ts:?} {:?}", ts.authorization());
        assert!(!d.contains("tok-secret") && !d.contains("ref-secret"), "{d}");
        assert_eq!(ts.authorization().secret(), "Bearer tok-secret");
        assert_eq!(ts.scopes(), ["a", "b"]);
    }
}
