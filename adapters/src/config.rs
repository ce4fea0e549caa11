//! The MCP client's configuration of one server, as plain data: [`ServerConfig`] (a transport
//! and, optionally, [`OAuthConfig`]). The OAuth part is core's; this part is the MCP client's,
//! which alone reaches servers.

use mcp_oauth_core::config::OAuthConfig;
use mcp_oauth_core::{Config, ConfigError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use url::Url;

/// One MCP server as an application configures it: how to reach it, and its OAuth settings if it
/// has any. Plain data: it reads from and writes to JSON (or any serde format) beside the rest
/// of an application's configuration, and round-trips exactly.
///
/// The transport's `type` is `streamable_http`, `sse` (the legacy HTTP+SSE transport) or
/// `stdio`; `oauth` is an [`OAuthConfig`], every field optional (an empty `{}` logs in through
/// the browser, registering dynamically). Secrets are an environment variable
/// (`{"env": "NAME"}`) or a literal (`"value"`, written back as `{"redacted": true}` unless
/// serialized through [`Exposed`](mcp_oauth_core::config::Exposed)). Every field, with its serde name:
///
/// ```
/// use mcp_oauth_client::ServerConfig;
///
/// let server: ServerConfig = serde_json::from_str(r#"{
///     "type": "streamable_http",
///     "url": "https://mcp.example.com/mcp",
///     "headers": {"X-Team": "search"},
///     "oauth": {
///         "flow": "auto",
///         "client_id": "my-agent",
///         "client_secret": {"env": "MY_AGENT_SECRET"},
///         "authorization_server": "https://auth.example.com",
///         "client_metadata_url": "https://agent.example.com/oauth/client.json",
///         "private_key": {"env": "MY_AGENT_KEY_PEM"},
///         "signing_algorithm": "ES256",
///         "key_id": "key-1",
///         "jwt_audience": "https://auth.example.com/token",
///         "token_endpoint_auth_method": "client_secret_basic",
///         "endpoints": {
///             "authorization_endpoint": "https://auth.example.com/authorize",
///             "token_endpoint": "https://auth.example.com/token",
///             "registration_endpoint": "https://auth.example.com/register"
///         },
///         "scopes": ["mcp:read", "mcp:write"],
///         "redirect_uri": "http://127.0.0.1:0/callback",
///         "client_name": "My agent",
///         "send_resource": true,
///         "resource_match": "prefix",
///         "callback_timeout_secs": 300,
///         "refresh_skew_secs": 60,
///         "max_authorization_attempts": 3,
///         "offline_access": true,
///         "allow_missing_pkce_metadata": false,
///         "protocol_version": "2025-11-25",
///         "idp": {
///             "token_endpoint": "https://idp.example.com/token",
///             "client_id": "my-agent-at-idp",
///             "client_secret": {"env": "IDP_SECRET"},
///             "id_token": {"env": "ID_TOKEN"}
///         },
///         "workload_token": {"env": "PLATFORM_JWT"},
///         "dpop": "auto",
///         "network": "public",
///         "step_up": true
///     }
/// }"#)?;
/// assert!(server.oauth.is_some());
/// // A stdio server: never with OAuth.
/// let local: ServerConfig = serde_json::from_str(r#"{"type": "stdio", "command": "my-server", "args": ["-v"], "env": {"LOG": "1"}}"#)?;
/// assert!(local.validate().is_ok());
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// The values: `flow` is `auto`, `authorization_code`, `client_credentials`,
/// `enterprise_managed` or `workload_identity`; `token_endpoint_auth_method` one of
/// `client_secret_basic`, `client_secret_post`, `private_key_jwt`, `none`; `resource_match`
/// `prefix` or `strict`; `dpop` `auto`, `always` or `never`; `network` `open`,
/// `public_or_loopback` or `public`. [`OAuthConfig`]'s field docs give each default.
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
    /// `env` looks up environment variables named by [`SecretRef::Env`](mcp_oauth_core::config::SecretRef::Env).
    pub fn oauth_config(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Config>, ConfigError> {
        self.validate()?;
        let (Some(oauth), Some(url)) = (&self.oauth, self.transport.url()) else { return Ok(None) };
        let server = Url::parse(url).map_err(|e| ConfigError::UnparsableUrl { field: "url", error: e })?;
        Config::from_oauth(server, oauth, env).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_core::config::Exposed;
    use mcp_oauth_core::NetworkPolicy;
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
        let exposed = serde_json::to_value(Exposed(&cfg)).unwrap();
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
    fn unknown_oauth_fields_are_an_error() {
        let src = json!({"type": "streamable_http", "url": "https://m.example", "oauth": {"clientid": "typo"}});
        assert!(serde_json::from_value::<ServerConfig>(src).is_err());
    }
}

/// Where an application keeps its registrations and tokens, as plain data beside its servers'
/// configuration: `{"type": "file"}`, `{"type": "redis", "url": {"env": "REDIS_URL"}}`, …
///
/// ```
/// use mcp_oauth_client::config::StoreConfig;
///
/// let fleet: StoreConfig = serde_json::from_str(r#"{
///     "type": "redis",
///     "url": {"env": "REDIS_URL"},
///     "prefix": "agents",
///     "subject": "tenant-42",
///     "encryption_keys": {"env": "MCP_OAUTH_REDIS_KEYS"}
/// }"#)?;
/// assert!(matches!(fleet, StoreConfig::Redis { .. }));
/// let default: StoreConfig = serde_json::from_str(r#"{"type": "auto"}"#)?;
/// assert_eq!(default, StoreConfig::default());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum StoreConfig {
    /// [`MemoryStore`](crate::MemoryStore): this process only.
    Memory,
    /// [`FileStore`](crate::FileStore) in `dir`, or the per-user default.
    File {
        /// The store directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<std::path::PathBuf>,
    },
    /// The OS keyring (`KeyringStore`, feature `keyring`), its index in `dir`'s `keyring-index`.
    Keyring {
        /// `platform` (the default), `secret-service` or `keyutils`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyring: Option<String>,
        /// The file store directory the index goes in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<std::path::PathBuf>,
    },
    /// The keyring when it answers, else files (`store::auto`; files alone in a build without
    /// the `keyring` feature). The default.
    Auto {
        /// `platform` (the default), `secret-service` or `keyutils`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyring: Option<String>,
        /// The file store directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<std::path::PathBuf>,
    },
    /// Redis or Valkey (`RedisStore`, feature `redis`).
    Redis {
        /// `redis://…`, `rediss://…`, `redis+cluster://…` or `redis+sentinel://…` (see
        /// `RedisStore::open`); a secret (it may hold a password).
        url: mcp_oauth_core::config::SecretRef,
        /// The key prefix (default `mcp-oauth`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// One user or tenant of a multi-user service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// `ID:BASE64KEY[,…]`, the current key first: values are then encrypted at rest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encryption_keys: Option<mcp_oauth_core::config::SecretRef>,
        /// For `rediss://`: a PEM file of the CA that signed the servers' certificates (the
        /// system's roots otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_ca_file: Option<std::path::PathBuf>,
        /// For mutual TLS: the client certificate's PEM file (with `tls_key_file`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_cert_file: Option<std::path::PathBuf>,
        /// For mutual TLS: the client key's PEM file (with `tls_cert_file`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_key_file: Option<std::path::PathBuf>,
        /// For `redis+sentinel://`: the Sentinels' user, if they use ACL users.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sentinel_username: Option<String>,
        /// For `redis+sentinel://`: the Sentinels' password (the URL's is the master's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sentinel_password: Option<mcp_oauth_core::config::SecretRef>,
    },
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Auto { keyring: None, dir: None }
    }
}

impl StoreConfig {
    /// Opens the store, reading secrets through `env` (`std::env::var` in most programs).
    /// A store this build lacks (`keyring`, `redis` features) is an error naming the feature.
    pub fn open(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<std::sync::Arc<dyn crate::TokenStore>, crate::StoreError> {
        use crate::{FileStore, MemoryStore, StoreError};
        use std::sync::Arc;
        let dir = |d: &Option<std::path::PathBuf>| d.clone().map_or_else(FileStore::default_dir, Ok);
        match self {
            StoreConfig::Memory => Ok(Arc::new(MemoryStore::new())),
            StoreConfig::File { dir: d } => Ok(Arc::new(FileStore::new(dir(d)?))),
            #[cfg(feature = "keyring")]
            StoreConfig::Keyring { keyring, dir: d } => {
                Ok(Arc::new(crate::KeyringStore::new(dir(d)?.join("keyring-index"), keyring_backend(keyring)?)))
            }
            #[cfg(not(feature = "keyring"))]
            StoreConfig::Keyring { .. } => Err(StoreError::Keyring {
                backend: "keyring",
                reason: crate::KeyringFailure::Unavailable("this build has no `keyring` feature".into()),
            }),
            #[cfg(feature = "keyring")]
            StoreConfig::Auto { keyring, dir: d } => {
                Ok(crate::store::auto(dir(d)?, keyring_backend(keyring)?, crate::store::keyring::DEFAULT_TIMEOUT).store)
            }
            #[cfg(not(feature = "keyring"))]
            StoreConfig::Auto { dir: d, .. } => Ok(Arc::new(FileStore::new(dir(d)?))),
            #[cfg(feature = "redis")]
            StoreConfig::Redis {
                url,
                prefix,
                subject,
                encryption_keys,
                tls_ca_file,
                tls_cert_file,
                tls_key_file,
                sentinel_username,
                sentinel_password,
            } => {
                let bad = |e: mcp_oauth_core::ConfigError| StoreError::Misconfigured { message: e.to_string() };
                let tls = crate::RedisTls::from_files(tls_ca_file.as_deref(), tls_cert_file.as_deref(), tls_key_file.as_deref())?;
                let mut store = crate::RedisStore::open_with_tls(&url.resolve("store.url", env).map_err(bad)?, tls)?;
                if let Some(p) = sentinel_password {
                    store =
                        store.with_sentinel_auth(sentinel_username.as_deref(), &p.resolve("store.sentinel_password", env).map_err(bad)?)?;
                }
                if let Some(p) = prefix {
                    store = store.with_prefix(p.clone());
                }
                if let Some(s) = subject {
                    store = store.with_subject(s.clone());
                }
                if let Some(k) = encryption_keys {
                    store = store.with_encryption(crate::EncryptionKeys::parse(&k.resolve("store.encryption_keys", env).map_err(bad)?)?);
                }
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "redis"))]
            StoreConfig::Redis { .. } => {
                let _ = env;
                Err(StoreError::Misconfigured { message: "this build has no `redis` feature".into() })
            }
        }
    }
}

#[cfg(feature = "keyring")]
fn keyring_backend(name: &Option<String>) -> Result<crate::KeyringBackend, crate::StoreError> {
    match name {
        None => Ok(crate::KeyringBackend::Platform),
        Some(n) => crate::KeyringBackend::parse(n).ok_or_else(|| crate::StoreError::Keyring {
            backend: "keyring",
            reason: crate::KeyringFailure::Unavailable(format!("unknown keyring `{n}`: platform, secret-service or keyutils")),
        }),
    }
}
