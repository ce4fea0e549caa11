//! Configuration as plain data.
//!
//! [`ServerConfig`] is how an application describes one MCP server (transport plus optional
//! [`OAuthConfig`]); it serializes to and from JSON and round-trips exactly (every optional field
//! is skipped when absent). Secrets in it are [`SecretRef`]s: an environment variable name, or a
//! literal. Literals are written back out as `{"redacted": true}` unless the caller asks for
//! them with [`with_secrets_exposed`].
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
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use url::Url;

thread_local! {
    static EXPOSE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with literal secrets serialized in plain text (for example to save a configuration
/// file the user asked to keep secrets in). Outside this call they serialize as redacted.
pub fn with_secrets_exposed<R>(f: impl FnOnce() -> R) -> R {
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

/// One MCP server as an application configures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// How to reach the server.
    #[serde(flatten)]
    pub transport: Transport,
    /// OAuth settings; absent means the server is used without OAuth, exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthConfig>,
}

/// The MCP transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transport {
    /// Streamable HTTP (MCP 2025-03-26 and later).
    StreamableHttp {
        /// The MCP endpoint.
        url: String,
        /// Extra headers for every request.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// The legacy HTTP+SSE transport (MCP 2024-11-05).
    Sse {
        /// The SSE endpoint.
        url: String,
        /// Extra headers for every request.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// A child process speaking over stdin/stdout. Never uses OAuth.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Extra environment variables.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
}

impl Transport {
    /// The URL of an HTTP transport.
    pub fn url(&self) -> Option<&str> {
        match self {
            Transport::StreamableHttp { url, .. } | Transport::Sse { url, .. } => Some(url),
            Transport::Stdio { .. } => None,
        }
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
}

/// OAuth settings of one MCP server, as plain data. Every field is optional.
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
}

impl ServerConfig {
    /// Checks the configuration without resolving secrets: OAuth only on HTTP transports, and
    /// URLs that parse.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.transport, &self.oauth) {
            (Transport::Stdio { command, .. }, Some(_)) => Err(ConfigError::OAuthOnStdio(command.clone())),
            (Transport::Stdio { .. }, None) => Ok(()),
            (t, _) => {
                let url = t.url().unwrap_or_default();
                Url::parse(url).map_err(|e| ConfigError::UnparsableUrl { field: "url", error: e })?;
                Ok(())
            }
        }
    }

    /// Resolves the OAuth settings into a [`Config`]; `Ok(None)` when the server has no OAuth.
    /// `env` looks up environment variables named by [`SecretRef::Env`].
    pub fn oauth_config(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Config>, ConfigError> {
        self.validate()?;
        let (Some(oauth), Some(url)) = (&self.oauth, self.transport.url()) else { return Ok(None) };
        let server = Url::parse(url).map_err(|e| ConfigError::UnparsableUrl { field: "url", error: e })?;
        Config::from_oauth(server, oauth, env).map(Some)
    }
}

/// The resolved configuration of one [`Authorizer`](crate::Authorizer).
///
/// Build it with [`Config::new`] and set fields, or from plain data with
/// [`ServerConfig::oauth_config`].
#[derive(Debug, Clone)]
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
        }
    }

    /// Applies [`OAuthConfig`] to the defaults, resolving secrets through `env`.
    pub fn from_oauth(server_url: Url, o: &OAuthConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Config::new(server_url);
        c.flow = o.flow.unwrap_or_default();
        c.client_id = o.client_id.clone();
        c.client_secret = o.client_secret.as_ref().map(|s| s.resolve("client_secret", env)).transpose()?.map(ClientSecret::new);
        c.authorization_server = o.authorization_server.clone();
        c.client_metadata_url = o
            .client_metadata_url
            .as_deref()
            .map(|u| Url::parse(u).map_err(|e| ConfigError::UnparsableUrl { field: "client_metadata_url", error: e }))
            .transpose()?;
        c.private_key = o.private_key.as_ref().map(|s| s.resolve("private_key", env)).transpose()?.map(PrivateKeyPem::new);
        if let Some(alg) = &o.signing_algorithm {
            if alg != "ES256" {
                return Err(ConfigError::UnsupportedSigningAlgorithm { algorithm: alg.clone() });
            }
        }
        c.key_id = o.key_id.clone();
        c.jwt_audience = o.jwt_audience.clone();
        c.token_endpoint_auth_method = o.token_endpoint_auth_method.clone();
        c.endpoints = o.endpoints.clone();
        c.scopes = o.scopes.clone();
        if let Some(r) = &o.redirect_uri {
            c.redirect_uri = Url::parse(r).map_err(|e| ConfigError::UnparsableUrl { field: "redirect_uri", error: e })?;
        }
        if let Some(n) = &o.client_name {
            c.client_name = n.clone();
        }
        c.send_resource = o.send_resource.unwrap_or(true);
        c.resource_match = o.resource_match.unwrap_or_default();
        if let Some(s) = o.callback_timeout_secs {
            c.callback_timeout = Duration::from_secs(s);
        }
        if let Some(s) = o.refresh_skew_secs {
            c.refresh_skew = Duration::from_secs(s);
        }
        if let Some(n) = o.max_authorization_attempts {
            c.max_authorization_attempts = n;
        }
        c.offline_access = o.offline_access.unwrap_or(true);
        c.allow_missing_pkce_metadata = o.allow_missing_pkce_metadata.unwrap_or(false);
        if let Some(v) = &o.protocol_version {
            c.protocol_version = v.clone();
        }
        if let Some(i) = &o.idp {
            c.idp = Some(IdpConfig {
                token_endpoint: Url::parse(&i.token_endpoint)
                    .map_err(|e| ConfigError::UnparsableUrl { field: "idp.token_endpoint", error: e })?,
                client_id: i.client_id.clone(),
                client_secret: i.client_secret.as_ref().map(|s| s.resolve("idp.client_secret", env)).transpose()?.map(ClientSecret::new),
                subject_token: crate::secret::SubjectToken::new(i.id_token.resolve("idp.id_token", env)?),
            });
        }
        c.dpop = o.dpop.unwrap_or_default();
        c.network = o.network.unwrap_or_default();
        c.step_up = o.step_up.unwrap_or(true);
        c.workload_token =
            o.workload_token.as_ref().map(|t| t.resolve("workload_token", env)).transpose()?.map(crate::secret::SubjectToken::new);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn round_trips_exactly() {
        let src = json!({
            "type": "streamable_http",
            "url": "https://mcp.example.com",
            "headers": {"X-Team": "a"},
            "oauth": {
                "flow": "client_credentials",
                "client_id": "abc",
                "client_secret": {"env": "MCP_SECRET"},
                "scopes": ["mcp:read"],
                "redirect_uri": "http://127.0.0.1:8976/callback",
                "send_resource": false,
                "resource_match": "strict",
                "callback_timeout_secs": 60,
                "network": "public"
            }
        });
        let cfg: ServerConfig = serde_json::from_value(src.clone()).unwrap();
        assert_eq!(serde_json::to_value(&cfg).unwrap(), src);
        let env = |k: &str| (k == "MCP_SECRET").then(|| "s".to_owned());
        assert_eq!(cfg.oauth_config(&env).unwrap().unwrap().network, NetworkPolicy::Public);
        let plain = json!({"type": "sse", "url": "http://localhost:3000/sse"});
        let cfg: ServerConfig = serde_json::from_value(plain.clone()).unwrap();
        assert_eq!(serde_json::to_value(&cfg).unwrap(), plain);
        assert!(cfg.oauth_config(&no_env).unwrap().is_none());
    }

    #[test]
    fn literal_secrets_are_redacted_unless_exposed() {
        let src = json!({"type": "streamable_http", "url": "https://m.example", "oauth": {"client_id": "a", "client_secret": "hunter2"}});
        let cfg: ServerConfig = serde_json::from_value(src.clone()).unwrap();
        let out = serde_json::to_string(&cfg).unwrap();
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("redacted"));
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let exposed = with_secrets_exposed(|| serde_json::to_value(&cfg).unwrap());
        assert_eq!(exposed, src);
        // A redacted config read back refuses to resolve instead of using "[redacted]".
        let back: ServerConfig = serde_json::from_str(&out).unwrap();
        assert_eq!(back.oauth_config(&no_env).unwrap_err(), ConfigError::RedactedSecret("client_secret"));
    }

    #[test]
    fn env_secrets_resolve_through_the_lookup() {
        let src =
            json!({"type": "streamable_http", "url": "https://m.example", "oauth": {"client_id": "a", "client_secret": {"env": "S"}}});
        let cfg: ServerConfig = serde_json::from_value(src).unwrap();
        let env = |k: &str| (k == "S").then(|| "from-env".to_string());
        let c = cfg.oauth_config(&env).unwrap().unwrap();
        assert_eq!(c.client_secret.unwrap().secret(), "from-env");
        assert!(matches!(cfg.oauth_config(&no_env), Err(ConfigError::MissingEnv { .. })));
    }

    #[test]
    fn stdio_with_oauth_is_refused() {
        let src = json!({"type": "stdio", "command": "server", "args": ["-v"], "oauth": {}});
        let cfg: ServerConfig = serde_json::from_value(src).unwrap();
        assert_eq!(cfg.validate().unwrap_err(), ConfigError::OAuthOnStdio("server".into()));
        assert!(cfg.validate().unwrap_err().to_string().contains("stdio"));
        let ok: ServerConfig = serde_json::from_value(json!({"type": "stdio", "command": "server"})).unwrap();
        assert!(ok.validate().is_ok());
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

    #[test]
    fn unknown_oauth_fields_are_an_error() {
        let src = json!({"type": "streamable_http", "url": "https://m.example", "oauth": {"clientid": "typo"}});
        assert!(serde_json::from_value::<ServerConfig>(src).is_err());
    }
}
