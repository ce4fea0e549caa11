//! Configuration as plain data.
//!
//! [`OAuthConfig`] is how an application describes the OAuth settings of one MCP server (the MCP
//! client's server configuration holds it, in the adapters); it serializes to and from JSON and round-trips exactly (every optional field
//! is skipped when absent). Secrets in it are [`SecretRef`]s: an environment variable name, or a
//! literal. Literals are written back out as `{"redacted": true}` unless the caller asks for
//! them by serializing [`Exposed`].
//!
//! [`Config`] is the resolved form the [`Authorizer`](crate::Authorizer) runs on: defaults
//! applied, URLs parsed, secrets read through a caller-supplied lookup (core itself never reads
//! the environment).

use crate::discovery::ResourceMatch;
use crate::error::ConfigError;
use crate::http::{is_loopback_url, is_secure_endpoint};
use crate::registration::{ClientInfo, ClientKind};
use crate::secret::{ClientSecret, PrivateKeyPem};
use crate::token::TokenSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;

use std::fmt;
use std::time::Duration;
use url::Url;

thread_local! {
    static EXPOSE: Cell<bool> = const { Cell::new(false) };
}

/// Serializes the configuration it wraps with literal secrets in plain text, for example to save
/// a configuration file the user asked to keep secrets in; serialized any other way they read
/// `{"redacted": true}`.
///
/// ```
/// use mcp_oauth_core::config::{Exposed, OAuthConfig, SecretRef};
///
/// let oauth = OAuthConfig { client_secret: Some(SecretRef::literal("s3cr3t")), ..Default::default() };
/// assert!(!serde_json::to_string(&oauth)?.contains("s3cr3t"));
/// assert!(serde_json::to_string(&Exposed(&oauth))?.contains("s3cr3t"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Exposed<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> Serialize for Exposed<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        with_secrets_exposed(|| self.0.serialize(serializer))
    }
}

/// Runs `f` with literal secrets serialized in plain text (what [`Exposed`] does).
pub(crate) fn with_secrets_exposed<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSE.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(EXPOSE.with(|e| e.replace(true)));
    f()
}

/// Where a secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// Read from this environment variable when the configuration is resolved.
    Env(String),
    /// The value itself. `plain` remembers whether it was written as a bare string.
    Literal {
        /// The secret.
        value: String,
        /// Written as `"value"` rather than `{"value": "..."}`.
        plain: bool,
    },
    /// A literal that was redacted when the configuration was saved.
    Redacted,
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => f.debug_tuple("Env").field(v).finish(),
            SecretRef::Literal { .. } => f.write_str("Literal([redacted])"),
            SecretRef::Redacted => f.write_str("Redacted"),
        }
    }
}

impl SecretRef {
    /// A literal secret.
    pub fn literal(value: impl Into<String>) -> Self {
        SecretRef::Literal { value: value.into(), plain: true }
    }

    /// Resolves the secret through `env`.
    pub fn resolve(&self, field: &'static str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
        match self {
            SecretRef::Env(var) => env(var).ok_or_else(|| ConfigError::MissingEnv { field, var: var.clone() }),
            SecretRef::Literal { value, .. } => Ok(value.clone()),
            SecretRef::Redacted => Err(ConfigError::RedactedSecret(field)),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SecretRepr {
    Plain(String),
    Env { env: String },
    Value { value: String },
    Redacted { redacted: bool },
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let expose = EXPOSE.with(Cell::get);
        let repr = match self {
            SecretRef::Env(env) => SecretRepr::Env { env: env.clone() },
            SecretRef::Literal { value, plain } if expose => {
                if *plain {
                    SecretRepr::Plain(value.clone())
                } else {
                    SecretRepr::Value { value: value.clone() }
                }
            }
            SecretRef::Literal { .. } | SecretRef::Redacted => SecretRepr::Redacted { redacted: true },
        };
        repr.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match SecretRepr::deserialize(d)? {
            SecretRepr::Plain(value) => SecretRef::Literal { value, plain: true },
            SecretRepr::Env { env } => SecretRef::Env(env),
            SecretRepr::Value { value } => SecretRef::Literal { value, plain: false },
            SecretRepr::Redacted { .. } => SecretRef::Redacted,
        })
    }
}

/// Which grant to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// The workload identity flow with `workload_token`; enterprise-managed with `idp`; client
    /// credentials when a client id with a secret or private key is configured and the server
    /// offers `client_credentials` (a confidential client that a person logs in through says
    /// `authorization_code`); otherwise the authorization code flow.
    #[default]
    Auto,
    /// Authorization code with PKCE (a user logs in through a browser).
    AuthorizationCode,
    /// Client credentials (machine to machine, MCP ext-auth).
    ClientCredentials,
    /// Enterprise-managed authorization (SEP-990): an ID token from the enterprise identity
    /// provider is exchanged there for an ID-JAG (RFC 8693), which the authorization server
    /// takes as a JWT bearer grant (RFC 7523). Needs `idp`.
    EnterpriseManaged,
    /// Workload identity federation (SEP-1933): a JWT the platform issued to this workload is
    /// presented as an RFC 7523 JWT bearer grant. Needs `workload_token`.
    WorkloadIdentity,
}

/// The configuration's name of the flow (`client_credentials`).
impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flow::Auto => "auto",
            Flow::AuthorizationCode => "authorization_code",
            Flow::ClientCredentials => "client_credentials",
            Flow::EnterpriseManaged => "enterprise_managed",
            Flow::WorkloadIdentity => "workload_identity",
        })
    }
}

/// When to bind tokens to a key with DPoP (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopMode {
    /// When the authorization server lists ES256 in `dpop_signing_alg_values_supported`.
    #[default]
    Auto,
    /// Always (for servers configured by hand).
    Always,
    /// Never.
    Never,
}

/// How a person logs in (the `interaction` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// The browser (authorization code with PKCE), unless the session is remote
    /// ([`Config::remote_session`]) and the authorization server offers the device grant.
    #[default]
    Auto,
    /// Always the browser (authorization code with PKCE and a loopback redirect).
    Browser,
    /// The device authorization grant (RFC 8628): a code to enter at a URL, on any device. The
    /// authorization server must list a `device_authorization_endpoint`.
    Device,
}

/// The enterprise identity provider, as plain data (enterprise-managed authorization).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpSettings {
    /// The IdP's token endpoint (RFC 8693 token exchange).
    pub token_endpoint: String,
    /// This client's id at the IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// This client's secret at the IdP, if it is confidential there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// The user's ID token from the IdP (the subject token).
    pub id_token: SecretRef,
}

/// The resolved identity provider settings.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// The IdP's token endpoint.
    pub token_endpoint: Url,
    /// This client's id at the IdP.
    pub client_id: Option<String>,
    /// This client's secret at the IdP.
    pub client_secret: Option<ClientSecret>,
    /// The subject token (an ID token).
    pub subject_token: crate::secret::SubjectToken,
}

/// Endpoints given in configuration: discovery is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualEndpoints {
    /// The issuer, for `iss` checks and credential binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The authorization endpoint (needed for the code flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The registration endpoint, if dynamic registration should be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// The RFC 7009 revocation endpoint, if logout should revoke tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
}

/// OAuth settings of one MCP server, as plain data. Every field is optional: `{}` logs in
/// through the browser with a dynamically registered client. Secrets are `{"env": "NAME"}` or a
/// literal string. Every field, with its serde name (unknown fields are an error, so a typo is
/// caught):
///
/// ```
/// use mcp_oauth_core::OAuthConfig;
///
/// let oauth: OAuthConfig = serde_json::from_str(r#"{
///     "flow": "auto",
///     "client_id": "my-agent", "client_secret": {"env": "MY_AGENT_SECRET"},
///     "authorization_server": "https://auth.example.com",
///     "client_metadata_url": "https://agent.example.com/oauth/client.json",
///     "private_key": {"env": "MY_AGENT_KEY_PEM"}, "signing_algorithm": "ES256",
///     "key_id": "key-1", "jwt_audience": "https://auth.example.com/token",
///     "token_endpoint_auth_method": "client_secret_basic",
///     "endpoints": {"authorization_endpoint": "https://auth.example.com/authorize",
///                   "token_endpoint": "https://auth.example.com/token"},
///     "scopes": ["mcp:read"], "redirect_uri": "http://127.0.0.1:0/callback",
///     "client_name": "My agent", "send_resource": true, "resource_match": "prefix",
///     "callback_timeout_secs": 300, "refresh_skew_secs": 60, "max_authorization_attempts": 3,
///     "offline_access": true, "allow_missing_pkce_metadata": false,
///     "protocol_version": "2025-11-25",
///     "idp": {"token_endpoint": "https://idp.example.com/token", "client_id": "agent-at-idp",
///             "id_token": {"env": "ID_TOKEN"}},
///     "workload_token": {"env": "PLATFORM_JWT"},
///     "dpop": "auto", "network": "public", "step_up": true, "interaction": "auto"
/// }"#)?;
/// assert_eq!(oauth.scopes.as_deref(), Some(&["mcp:read".to_owned()][..]));
/// assert!(serde_json::from_str::<OAuthConfig>(r#"{"clientid": "typo"}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// `flow`: `auto`, `authorization_code`, `client_credentials`, `enterprise_managed`,
/// `workload_identity`. `token_endpoint_auth_method`: `client_secret_basic`,
/// `client_secret_post`, `private_key_jwt`, `none`. `resource_match`: `prefix` or `strict`.
/// `dpop`: `auto`, `always`, `never`. `network`: `open`, `public_or_loopback`,
/// `public`. `interaction`: `auto`, `browser`, `device`. Each field's default is in its doc below.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Which grant to use (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
    /// A client id registered in advance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The secret of a confidential client registered in advance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// The issuer the pre-registered credentials belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_server: Option<String>,
    /// An HTTPS URL of this client's Client ID Metadata Document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata_url: Option<String>,
    /// A PEM private key for `private_key_jwt` (ES256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<SecretRef>,
    /// The JWS algorithm for `private_key_jwt` (only `ES256` is supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<String>,
    /// The `kid` header of client assertions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The `aud` of client assertions (default: the issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_audience: Option<String>,
    /// Force a token endpoint authentication method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Endpoints given by hand; discovery is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<ManualEndpoints>,
    /// Scopes to request when the server does not say which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The loopback redirect URI (default `http://127.0.0.1:0/callback`; port 0 = any free port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// `client_name` for registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Send the RFC 8707 `resource` parameter (default true; some servers such as Entra ID
    /// reject it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resource: Option<bool>,
    /// How strictly the metadata `resource` must match the server URL (default `prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_match: Option<ResourceMatch>,
    /// Seconds to wait for the browser redirect before asking for a paste (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_timeout_secs: Option<u64>,
    /// Refresh this many seconds before expiry (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_skew_secs: Option<u64>,
    /// Authorization attempts per request before giving up (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_authorization_attempts: Option<u8>,
    /// Ask for `offline_access` when the server lists it (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_access: Option<bool>,
    /// Proceed when metadata omits `code_challenge_methods_supported` (default false; the MCP
    /// specification says refuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_missing_pkce_metadata: Option<bool>,
    /// `MCP-Protocol-Version` sent on discovery requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The enterprise identity provider (enterprise-managed authorization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<IdpSettings>,
    /// The workload's platform-issued JWT (workload identity federation), usually an env
    /// reference refreshed by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_token: Option<SecretRef>,
    /// DPoP-bound tokens (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<DpopMode>,
    /// Which addresses discovered URLs may lead to (default `open`; `public` for services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkPolicy>,
    /// Authorize again with more scopes when the server answers 403 `insufficient_scope`
    /// (default true). False: the request fails with `InsufficientScope`, carrying the scope
    /// and `resource_metadata` the server named, for the application to decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<bool>,
    /// How a person logs in: `auto` (the browser, or the device grant in a remote session
    /// where the authorization server offers it), `browser`, or `device` (RFC 8628).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<LoginMethod>,
}

/// The resolved configuration of one [`Authorizer`](crate::Authorizer).
///
/// Build it with [`Config::new`] and set fields, or from plain data with
/// [`Config::from_oauth`] (an MCP client's server configuration does this for its `oauth`).
///
/// Non-exhaustive: start from [`Config::new`] (the defaults) and set fields or chain the
/// `with_*` builder methods, so a new option is never a breaking change:
///
/// ```
/// use mcp_oauth_core::{Config, Flow};
/// use mcp_oauth_core::secret::ClientSecret;
///
/// let config = Config::new("https://mcp.example.com/mcp".parse()?)
///     .with_flow(Flow::ClientCredentials)
///     .with_client_id("svc")
///     .with_client_secret(ClientSecret::new("from-the-vault"))
///     .with_scopes(["mcp:read"]);
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The MCP server URL (the protected resource).
    pub server_url: Url,
    /// Which grant to use.
    pub flow: Flow,
    /// A client id registered in advance.
    pub client_id: Option<String>,
    /// Its secret.
    pub client_secret: Option<ClientSecret>,
    /// The issuer the pre-registered credentials belong to.
    pub authorization_server: Option<String>,
    /// A Client ID Metadata Document URL to use as `client_id`.
    pub client_metadata_url: Option<Url>,
    /// A PEM private key for `private_key_jwt`.
    pub private_key: Option<PrivateKeyPem>,
    /// The `kid` of client assertions.
    pub key_id: Option<String>,
    /// The `aud` of client assertions (default: the issuer).
    pub jwt_audience: Option<String>,
    /// Force this token endpoint authentication method.
    pub token_endpoint_auth_method: Option<String>,
    /// Endpoints given by hand.
    pub endpoints: Option<ManualEndpoints>,
    /// Scopes to request when the server does not say which.
    pub scopes: Option<Vec<String>>,
    /// The redirect URI plan; port 0 means any free port.
    pub redirect_uri: Url,
    /// `client_name` for registration.
    pub client_name: String,
    /// Send the RFC 8707 `resource` parameter.
    pub send_resource: bool,
    /// How strictly PRM `resource` must match.
    pub resource_match: ResourceMatch,
    /// How long to wait for the loopback redirect before asking for a paste.
    pub callback_timeout: Duration,
    /// Refresh this long before expiry.
    pub refresh_skew: Duration,
    /// Authorization attempts per request.
    pub max_authorization_attempts: u8,
    /// Ask for `offline_access` when the server lists it.
    pub offline_access: bool,
    /// Proceed without `code_challenge_methods_supported`.
    pub allow_missing_pkce_metadata: bool,
    /// `MCP-Protocol-Version` on discovery requests.
    pub protocol_version: String,
    /// The enterprise identity provider, for enterprise-managed authorization.
    pub idp: Option<IdpConfig>,
    /// The workload's JWT, for workload identity federation.
    pub workload_token: Option<crate::secret::SubjectToken>,
    /// DPoP-bound tokens.
    pub dpop: DpopMode,
    /// Which addresses discovered URLs may lead to (enforced by the adapter's resolver).
    pub network: NetworkPolicy,
    /// Step up on 403 `insufficient_scope` (else fail with the challenge's details).
    pub step_up: bool,
    /// How a person logs in: the browser, or the device grant (RFC 8628).
    pub login: LoginMethod,
    /// The session is remote or headless (SSH, a container, no display) and no paste is
    /// possible: a browser on this machine cannot be opened, and a loopback redirect from the
    /// person's browser cannot arrive. With [`LoginMethod::Auto`] the device grant is used when
    /// the authorization server offers it. Set by the adapter from its environment, not read
    /// from configuration.
    pub remote_session: bool,
}

/// Where the OAuth requests of a flow may connect, beyond "HTTPS, or plain HTTP to loopback":
/// the SSRF defence for clients that run next to private services (SPEC item 20). URLs come
/// from the server's metadata, so a hostile server could point them at an internal address or
/// a cloud metadata endpoint. Adapters apply the policy to every address a host resolves to,
/// when they connect (so DNS rebinding cannot slip past a check made earlier); see
/// [`http::address_blocked`](crate::http::address_blocked). The MCP server's own host is
/// exempt: it was configured, not discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// No address checks (the default: a desktop client goes where its user points it).
    #[default]
    Open,
    /// No address that is not globally reachable (private, link-local with the cloud metadata
    /// endpoints, shared, site-local, documentation, multicast, reserved, unspecified, and IPv4
    /// embedded in IPv6 that is one of these), except loopback (development against a local
    /// authorization server).
    PublicOrLoopback,
    /// Globally reachable addresses only (services).
    Public,
}

/// The default loopback redirect URI: any free port on 127.0.0.1 (RFC 8252 §7.3).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:0/callback";
/// The MCP protocol version sent on discovery requests by default.
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-11-25";

impl Config {
    /// A configuration with every default for the MCP server at `server_url`.
    pub fn new(server_url: Url) -> Self {
        Config {
            server_url,
            flow: Flow::Auto,
            client_id: None,
            client_secret: None,
            authorization_server: None,
            client_metadata_url: None,
            private_key: None,
            key_id: None,
            jwt_audience: None,
            token_endpoint_auth_method: None,
            endpoints: None,
            scopes: None,
            redirect_uri: Url::parse(DEFAULT_REDIRECT_URI).unwrap_or_else(|_| unreachable!()),
            client_name: "mcp-oauth".into(),
            send_resource: true,
            resource_match: ResourceMatch::Prefix,
            callback_timeout: Duration::from_secs(300),
            refresh_skew: Duration::from_secs(60),
            max_authorization_attempts: 3,
            offline_access: true,
            allow_missing_pkce_metadata: false,
            protocol_version: DEFAULT_PROTOCOL_VERSION.into(),
            idp: None,
            workload_token: None,
            dpop: DpopMode::Auto,
            network: NetworkPolicy::Open,
            step_up: true,
            login: LoginMethod::Auto,
            remote_session: false,
        }
    }

    /// Applies [`OAuthConfig`] to the defaults, resolving secrets through `env`.
    ///
    /// The one conversion from the plain data to the resolved form. Both lists are exhaustive:
    /// [`new`](Self::new) builds every field of `Config` (the defaults, in one place), and this
    /// names every field of `OAuthConfig`, so an option added to one and not carried over does
    /// not compile.
    pub fn from_oauth(server_url: Url, o: &OAuthConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let OAuthConfig {
            flow,
            client_id,
            client_secret,
            authorization_server,
            client_metadata_url,
            private_key,
            signing_algorithm,
            key_id,
            jwt_audience,
            token_endpoint_auth_method,
            endpoints,
            scopes,
            redirect_uri,
            client_name,
            send_resource,
            resource_match,
            callback_timeout_secs,
            refresh_skew_secs,
            max_authorization_attempts,
            offline_access,
            allow_missing_pkce_metadata,
            protocol_version,
            idp,
            workload_token,
            dpop,
            network,
            step_up,
            interaction,
        } = o;
        let url = |field: &'static str, u: &str| Url::parse(u).map_err(|e| ConfigError::UnparsableUrl { field, error: e });
        let secret = |field: &'static str, s: &SecretRef| s.resolve(field, env);
        if let Some(alg) = signing_algorithm {
            if alg != "ES256" {
                return Err(ConfigError::UnsupportedSigningAlgorithm { algorithm: alg.clone() });
            }
        }
        let mut c = Config::new(server_url);
        c.flow = flow.unwrap_or(c.flow);
        c.client_id = client_id.clone();
        c.client_secret = client_secret.as_ref().map(|s| secret("client_secret", s)).transpose()?.map(ClientSecret::new);
        c.authorization_server = authorization_server.clone();
        c.client_metadata_url = client_metadata_url.as_deref().map(|u| url("client_metadata_url", u)).transpose()?;
        c.private_key = private_key.as_ref().map(|s| secret("private_key", s)).transpose()?.map(PrivateKeyPem::new);
        c.key_id = key_id.clone();
        c.jwt_audience = jwt_audience.clone();
        c.token_endpoint_auth_method = token_endpoint_auth_method.clone();
        c.endpoints = endpoints.clone();
        c.scopes = scopes.clone();
        c.redirect_uri = redirect_uri.as_deref().map(|r| url("redirect_uri", r)).transpose()?.unwrap_or(c.redirect_uri);
        c.client_name = client_name.clone().unwrap_or(c.client_name);
        c.send_resource = send_resource.unwrap_or(c.send_resource);
        c.resource_match = resource_match.unwrap_or(c.resource_match);
        c.callback_timeout = callback_timeout_secs.map(Duration::from_secs).unwrap_or(c.callback_timeout);
        c.refresh_skew = refresh_skew_secs.map(Duration::from_secs).unwrap_or(c.refresh_skew);
        c.max_authorization_attempts = max_authorization_attempts.unwrap_or(c.max_authorization_attempts);
        c.offline_access = offline_access.unwrap_or(c.offline_access);
        c.allow_missing_pkce_metadata = allow_missing_pkce_metadata.unwrap_or(c.allow_missing_pkce_metadata);
        c.protocol_version = protocol_version.clone().unwrap_or(c.protocol_version);
        c.idp = match idp {
            Some(IdpSettings { token_endpoint, client_id, client_secret, id_token }) => Some(IdpConfig {
                token_endpoint: url("idp.token_endpoint", token_endpoint)?,
                client_id: client_id.clone(),
                client_secret: client_secret.as_ref().map(|s| secret("idp.client_secret", s)).transpose()?.map(ClientSecret::new),
                subject_token: crate::secret::SubjectToken::new(secret("idp.id_token", id_token)?),
            }),
            None => None,
        };
        c.workload_token = workload_token.as_ref().map(|t| secret("workload_token", t)).transpose()?.map(crate::secret::SubjectToken::new);
        c.dpop = dpop.unwrap_or(c.dpop);
        c.network = network.unwrap_or(c.network);
        c.step_up = step_up.unwrap_or(c.step_up);
        c.login = interaction.unwrap_or(c.login);
        c.validate()?;
        Ok(c)
    }

    /// True if a client id with a secret or private key is configured: what `auto` uses for
    /// client credentials when the authorization server offers the grant.
    pub fn has_client_credentials(&self) -> bool {
        self.client_id.is_some() && (self.client_secret.is_some() || self.private_key.is_some())
    }

    /// True if this configuration may use the client credentials grant (the MCP extension a
    /// client declares in its capabilities): `flow` says so, or `auto` with client credentials.
    pub fn uses_client_credentials(&self) -> bool {
        match self.flow {
            Flow::ClientCredentials => true,
            Flow::Auto => self.workload_token.is_none() && self.idp.is_none() && self.has_client_credentials(),
            _ => false,
        }
    }

    /// Who the tokens of this configuration act for, and through which client: `machine:svc`
    /// for a service with client credentials, `user:app` for a person logging in through the
    /// pre-registered client `app`, `cimd:<url>` through a client id metadata document,
    /// `app:<client_name>` through a client registered on the fly (dynamic registration),
    /// `enterprise:<id>` and `workload:<id>` for those grants.
    pub fn principal(&self) -> String {
        let id = self.client_id.as_deref().unwrap_or("");
        let machine = self.workload_token.is_some()
            || self.idp.is_some()
            || matches!(self.flow, Flow::ClientCredentials | Flow::EnterpriseManaged | Flow::WorkloadIdentity)
            || self.flow == Flow::Auto && self.has_client_credentials();
        if self.workload_token.is_some() || self.flow == Flow::WorkloadIdentity {
            format!("workload:{id}")
        } else if self.idp.is_some() || self.flow == Flow::EnterpriseManaged {
            format!("enterprise:{id}")
        } else if machine {
            format!("machine:{id}")
        } else if self.client_id.is_some() {
            format!("user:{id}")
        } else if let Some(u) = &self.client_metadata_url {
            format!("cimd:{u}")
        } else {
            format!("app:{}", self.client_name)
        }
    }

    /// The key an adapter's store keeps this configuration's registrations and tokens under:
    /// the server URL and the [`principal`](Self::principal). A service and a person using the
    /// same server, two services with different client ids, or two applications with their own
    /// clients never share tokens, even in one store; instances of one application do.
    pub fn store_key(&self) -> String {
        format!("{}#{}", self.server_url, self.principal())
    }

    /// The key stores used before [`store_key`](Self::store_key) named the principal: the server
    /// URL alone. Adapters move what belongs to this configuration from there once.
    pub fn legacy_store_key(&self) -> String {
        self.server_url.to_string()
    }

    /// Whether stored tokens belong to this configuration: issued to its client (the configured
    /// id, its client id metadata document, or one of `clients`, its own registrations) through
    /// a grant it would use. The reason, when not (client ids and grant names only, no secret).
    pub fn accepts_tokens(&self, tokens: &TokenSet, clients: &[ClientInfo]) -> Result<(), String> {
        let id = tokens.client_id.as_deref();
        let own = match (&self.client_id, id) {
            (Some(configured), Some(id)) => configured == id,
            (Some(_), None) => false,
            (None, None) => self.workload_token.is_some(),
            (None, Some(id)) => {
                self.client_metadata_url.as_ref().is_some_and(|u| u.as_str() == id)
                    || clients.iter().any(|c| c.client_id == id && c.issuer == tokens.issuer && c.kind == ClientKind::Dynamic)
            }
        };
        if !own {
            return Err(format!(
                "issued to client {:?}, this configuration is client {:?}",
                id.unwrap_or("(none)"),
                self.client_id.as_deref().or(self.client_metadata_url.as_ref().map(Url::as_str)).unwrap_or("(registered on the fly)")
            ));
        }
        let user = match self.flow {
            Flow::AuthorizationCode => Some(true),
            Flow::ClientCredentials | Flow::EnterpriseManaged | Flow::WorkloadIdentity => Some(false),
            Flow::Auto if self.workload_token.is_some() || self.idp.is_some() => Some(false),
            // With client credentials, `auto` picks by what the server offers: either fits.
            Flow::Auto if self.has_client_credentials() => None,
            Flow::Auto => Some(true),
        };
        match (tokens.grant, user) {
            (Some(g), Some(user)) if g.is_user() != user => Err(format!(
                "obtained with the {} grant, this configuration uses {}",
                g.as_str(),
                if user { "a user login" } else { "a machine grant" }
            )),
            _ => Ok(()),
        }
    }

    /// Checks the resolved configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_secure_endpoint(&self.server_url) {
            return Err(ConfigError::InsecureUrl { field: "url" });
        }
        let r = &self.redirect_uri;
        if r.scheme() != "http" || !is_loopback_url(r) {
            return Err(ConfigError::RedirectUriNotLoopback);
        }
        if r.fragment().is_some() || r.query().is_some() {
            return Err(ConfigError::RedirectUriHasQuery);
        }
        if let Some(u) = &self.client_metadata_url {
            crate::registration::validate_client_metadata_url(u).map_err(|reason| ConfigError::InvalidClientMetadataUrl { reason })?;
        }
        if let Some(e) = &self.endpoints {
            for (field, v) in [
                ("endpoints.token_endpoint", Some(&e.token_endpoint)),
                ("endpoints.authorization_endpoint", e.authorization_endpoint.as_ref()),
                ("endpoints.registration_endpoint", e.registration_endpoint.as_ref()),
                ("endpoints.revocation_endpoint", e.revocation_endpoint.as_ref()),
            ] {
                if let Some(v) = v {
                    let u = Url::parse(v).map_err(|error| ConfigError::UnparsableUrl { field, error })?;
                    if !is_secure_endpoint(&u) {
                        return Err(ConfigError::InsecureUrl { field });
                    }
                }
            }
        }
        if self.flow == Flow::ClientCredentials && self.client_id.is_none() {
            return Err(ConfigError::FlowNeeds { flow: self.flow, needs: "client_id" });
        }
        if self.flow == Flow::ClientCredentials && self.client_secret.is_none() && self.private_key.is_none() {
            return Err(ConfigError::FlowNeeds { flow: self.flow, needs: "client_secret or private_key" });
        }
        if let Some(key) = &self.private_key {
            crate::jwt::SigningKey::from_pem(key).map_err(|_| ConfigError::InvalidPrivateKey)?;
        }
        if let Some(i) = &self.idp {
            if !is_secure_endpoint(&i.token_endpoint) {
                return Err(ConfigError::InsecureUrl { field: "idp.token_endpoint" });
            }
        }
        if self.flow == Flow::EnterpriseManaged && (self.idp.is_none() || self.client_id.is_none()) {
            return Err(ConfigError::FlowNeeds { flow: self.flow, needs: "idp and client_id" });
        }
        if self.flow == Flow::WorkloadIdentity && self.workload_token.is_none() {
            return Err(ConfigError::FlowNeeds { flow: self.flow, needs: "workload_token" });
        }
        if self.max_authorization_attempts == 0 {
            return Err(ConfigError::NoAuthorizationAttempts);
        }
        Ok(())
    }
}

/// The builder methods of [`Config`]: each sets one field and returns the configuration.
macro_rules! builder {
    ($( $(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $field:ident = $value:expr; )*) => {
        impl Config {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, $arg: $ty) -> Self {
                    self.$field = $value;
                    self
                }
            )*
        }
    };
}

builder! {
    /// Which grant to use.
    with_flow(flow: Flow) => flow = flow;
    /// A client id registered in advance.
    with_client_id(id: impl Into<String>) => client_id = Some(id.into());
    /// The secret of the client registered in advance.
    with_client_secret(secret: ClientSecret) => client_secret = Some(secret);
    /// The issuer the pre-registered credentials belong to.
    with_authorization_server(issuer: impl Into<String>) => authorization_server = Some(issuer.into());
    /// A Client ID Metadata Document URL to use as `client_id`.
    with_client_metadata_url(url: Url) => client_metadata_url = Some(url);
    /// A PEM private key for `private_key_jwt`.
    with_private_key(pem: PrivateKeyPem) => private_key = Some(pem);
    /// The `kid` of client assertions.
    with_key_id(kid: impl Into<String>) => key_id = Some(kid.into());
    /// The `aud` of client assertions.
    with_jwt_audience(aud: impl Into<String>) => jwt_audience = Some(aud.into());
    /// Force this token endpoint authentication method.
    with_token_endpoint_auth_method(method: impl Into<String>) => token_endpoint_auth_method = Some(method.into());
    /// Endpoints given by hand (discovery is skipped).
    with_endpoints(endpoints: ManualEndpoints) => endpoints = Some(endpoints);
    /// Scopes to request when the server does not say which.
    with_scopes(scopes: impl IntoIterator<Item = impl Into<String>>) => scopes = Some(scopes.into_iter().map(Into::into).collect());
    /// The loopback redirect URI plan (port 0: any free port).
    with_redirect_uri(uri: Url) => redirect_uri = uri;
    /// `client_name` for registration.
    with_client_name(name: impl Into<String>) => client_name = name.into();
    /// Send the RFC 8707 `resource` parameter.
    with_send_resource(send: bool) => send_resource = send;
    /// How strictly the metadata's `resource` must match the server URL.
    with_resource_match(mode: ResourceMatch) => resource_match = mode;
    /// How long to wait for the loopback redirect before asking for a paste.
    with_callback_timeout(timeout: Duration) => callback_timeout = timeout;
    /// Refresh this long before expiry (at most a quarter of the token's lifetime is used).
    with_refresh_skew(skew: Duration) => refresh_skew = skew;
    /// Authorization attempts per request.
    with_max_authorization_attempts(attempts: u8) => max_authorization_attempts = attempts;
    /// Ask for `offline_access` when the server lists it.
    with_offline_access(ask: bool) => offline_access = ask;
    /// Proceed when metadata omits `code_challenge_methods_supported`.
    with_allow_missing_pkce_metadata(allow: bool) => allow_missing_pkce_metadata = allow;
    /// `MCP-Protocol-Version` on discovery requests.
    with_protocol_version(version: impl Into<String>) => protocol_version = version.into();
    /// The enterprise identity provider, for enterprise-managed authorization.
    with_idp(idp: IdpConfig) => idp = Some(idp);
    /// The workload's JWT, for workload identity federation.
    with_workload_token(token: crate::secret::SubjectToken) => workload_token = Some(token);
    /// DPoP-bound tokens.
    with_dpop(mode: DpopMode) => dpop = mode;
    /// Which addresses discovered URLs may lead to.
    with_network(policy: NetworkPolicy) => network = policy;
    /// Step up on 403 `insufficient_scope` (else fail with the challenge's details).
    with_step_up(step_up: bool) => step_up = step_up;
    /// How a person logs in: the browser, or the device grant (RFC 8628).
    with_login(method: LoginMethod) => login = method;
    /// The session is remote or headless (set by adapters from their environment).
    with_remote_session(remote: bool) => remote_session = remote;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_builder_sets_what_from_oauth_sets() {
        let o = OAuthConfig {
            flow: Some(Flow::ClientCredentials),
            client_id: Some("svc".into()),
            client_secret: Some(SecretRef::literal("s")),
            scopes: Some(vec!["a".into(), "b".into()]),
            callback_timeout_secs: Some(7),
            step_up: Some(false),
            network: Some(NetworkPolicy::Public),
            ..Default::default()
        };
        let url = Url::parse("https://m.example/mcp").unwrap();
        let from = Config::from_oauth(url.clone(), &o, &no_env).unwrap();
        let built = Config::new(url)
            .with_flow(Flow::ClientCredentials)
            .with_client_id("svc")
            .with_client_secret(ClientSecret::new("s"))
            .with_scopes(["a", "b"])
            .with_callback_timeout(Duration::from_secs(7))
            .with_step_up(false)
            .with_network(NetworkPolicy::Public);
        assert_eq!(format!("{from:?}"), format!("{built:?}"));
        assert_ne!(format!("{:?}", Config::new(from.server_url.clone())), format!("{built:?}"), "the defaults differ");
    }

    #[test]
    fn insecure_urls_are_refused() {
        let mk = |url: &str, redirect: &str| {
            let o = OAuthConfig { redirect_uri: Some(redirect.into()), ..Default::default() };
            Config::from_oauth(Url::parse(url).unwrap(), &o, &no_env)
        };
        assert!(mk("https://m.example/mcp", "http://127.0.0.1:0/cb").is_ok());
        assert_eq!(mk("http://m.example/mcp", "http://127.0.0.1:0/cb").unwrap_err(), ConfigError::InsecureUrl { field: "url" });
        assert_eq!(mk("https://m.example/mcp", "http://example.com/cb").unwrap_err(), ConfigError::RedirectUriNotLoopback);
        assert_eq!(mk("https://m.example/mcp", "https://127.0.0.1/cb").unwrap_err(), ConfigError::RedirectUriNotLoopback);
        assert_eq!(mk("https://m.example/mcp", "http://127.0.0.1/cb?x=1").unwrap_err(), ConfigError::RedirectUriHasQuery);
        assert_eq!(
            mk("https://m.example/mcp", "not a url").unwrap_err(),
            ConfigError::UnparsableUrl { field: "redirect_uri", error: url::ParseError::RelativeUrlWithoutBase }
        );
        assert!(mk("http://localhost:3000/mcp", "http://localhost/cb").is_ok());
        assert!(mk("http://[::1]:3000/mcp", "http://[::1]/cb").is_ok());
        // Only the exact name `localhost`: a resolver may send a subdomain of it, or the name
        // with a trailing dot, to the network's DNS.
        for name in ["app.localhost", "localhost.", "localhost.localdomain"] {
            assert!(mk("https://m.example/mcp", &format!("http://{name}:0/cb")).is_err(), "redirect_uri on {name}");
            assert!(mk(&format!("http://{name}:3000/mcp"), "http://127.0.0.1:0/cb").is_err(), "server url on {name}");
        }
    }

    /// Each named configuration error is raised in the case it names.
    #[test]
    fn configuration_errors_name_their_case() {
        let server = Url::parse("https://m.example/mcp").unwrap();
        let mk = |o: serde_json::Value| Config::from_oauth(server.clone(), &serde_json::from_value(o).unwrap(), &no_env).unwrap_err();
        let cc = Flow::ClientCredentials;
        assert_eq!(mk(json!({"flow": "client_credentials"})), ConfigError::FlowNeeds { flow: cc, needs: "client_id" });
        assert_eq!(
            mk(json!({"flow": "client_credentials", "client_id": "a"})),
            ConfigError::FlowNeeds { flow: cc, needs: "client_secret or private_key" }
        );
        assert_eq!(
            mk(json!({"flow": "enterprise_managed"})),
            ConfigError::FlowNeeds { flow: Flow::EnterpriseManaged, needs: "idp and client_id" }
        );
        assert_eq!(
            mk(json!({"flow": "workload_identity"})),
            ConfigError::FlowNeeds { flow: Flow::WorkloadIdentity, needs: "workload_token" }
        );
        assert_eq!(mk(json!({"max_authorization_attempts": 0})), ConfigError::NoAuthorizationAttempts);
        assert_eq!(mk(json!({"private_key": "not a key"})), ConfigError::InvalidPrivateKey);
        assert_eq!(mk(json!({"signing_algorithm": "RS256"})), ConfigError::UnsupportedSigningAlgorithm { algorithm: "RS256".into() });
        assert_eq!(
            mk(json!({"client_metadata_url": "http://c.example/client.json"})),
            ConfigError::InvalidClientMetadataUrl { reason: "must be an https url" }
        );
        assert_eq!(
            mk(json!({"endpoints": {"token_endpoint": "http://as.example/token"}})),
            ConfigError::InsecureUrl { field: "endpoints.token_endpoint" }
        );
        assert_eq!(
            mk(json!({"idp": {"token_endpoint": "http://idp.example/token", "id_token": "t"}})),
            ConfigError::InsecureUrl { field: "idp.token_endpoint" }
        );
        let e = mk(json!({"flow": "client_credentials"}));
        assert_eq!(e.to_string(), "flow client_credentials needs client_id: add it to the configuration, or choose another flow");
    }
}
