//! Metadata documents: protected resource metadata (RFC 9728 §2) and authorization server
//! metadata (RFC 8414 §2, OpenID Connect Discovery 1.0 §3), with the checks MCP requires.

use crate::error::DiscoveryError;
use crate::http::is_secure_endpoint;
use serde::{Deserialize, Serialize};
use url::Url;

/// RFC 9728 protected resource metadata. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier (REQUIRED).
    pub resource: String,
    /// Issuer identifiers of authorization servers (MCP requires at least one).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// How the resource accepts bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// Parses and checks the required fields: `resource` present, at least one
    /// authorization server, each a valid secure URL.
    pub fn from_json(body: &[u8]) -> Result<Self, DiscoveryError> {
        let m: Self = serde_json::from_slice(body).map_err(|e| DiscoveryError::ResourceMetadataNotJson { reason: e.to_string() })?;
        if m.resource.trim().is_empty() {
            return Err(DiscoveryError::ResourceMetadataMissingField { field: "resource" });
        }
        if m.authorization_servers.is_empty() {
            return Err(DiscoveryError::ResourceMetadataMissingField { field: "authorization_servers" });
        }
        Ok(m)
    }
}

/// RFC 8414 / OpenID Connect authorization server metadata. Unknown fields are ignored.
/// Boolean flags are kept as raw JSON so that only a literal `true` counts (SPEC item 69).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier (REQUIRED).
    pub issuer: String,
    /// Where the browser goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Where tokens come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// RFC 7591 dynamic registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Scopes the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// `code`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types_supported: Option<Vec<String>>,
    /// `authorization_code`, `refresh_token`, `client_credentials`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// PKCE methods; MCP requires `S256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// JWS algorithms for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9207: the server sends `iss` in authorization responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<serde_json::Value>,
    /// Client ID Metadata Documents are accepted as `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<serde_json::Value>,
    /// RFC 9449: JWS algorithms accepted for DPoP proofs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 7009 token revocation (RFC 8414 §2), used at logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 8628 device authorization (§4), for logins on another device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
}

fn lists(v: &Option<Vec<String>>, item: &str) -> bool {
    v.as_ref().is_some_and(|l| l.iter().any(|s| s == item))
}

impl AuthorizationServerMetadata {
    /// Parses a document and checks it against the issuer it was fetched for: the `issuer` must
    /// be identical (simple string comparison, RFC 8414 §3.3), and every endpoint must be a
    /// secure URL.
    ///
    /// `legacy_origin`: the document was fetched from a 2025-03-26 server's own origin, where
    /// the MCP server *is* the authorization server and no issuer was published in advance.
    /// There the `issuer` must be on that same origin (the conformance suite's legacy server
    /// publishes `{origin}/oauth`); a foreign issuer is still refused.
    pub fn from_json(body: &[u8], expected_issuer: &str, legacy_origin: bool) -> Result<Self, DiscoveryError> {
        let m: Self = serde_json::from_slice(body).map_err(|e| DiscoveryError::ServerMetadataNotJson {
            issuer: expected_issuer.to_owned(),
            reason: crate::http::json_error(&e),
        })?;
        let same_origin = || match (Url::parse(&m.issuer), Url::parse(expected_issuer)) {
            (Ok(found), Ok(expected)) => found.origin() == expected.origin() && found.query().is_none() && found.fragment().is_none(),
            _ => false,
        };
        if m.issuer != expected_issuer && !(legacy_origin && same_origin()) {
            return Err(DiscoveryError::IssuerMismatch { expected: expected_issuer.to_owned(), found: crate::error::bounded(&m.issuer) });
        }
        for (field, value) in [
            ("authorization_endpoint", &m.authorization_endpoint),
            ("token_endpoint", &m.token_endpoint),
            ("registration_endpoint", &m.registration_endpoint),
            ("revocation_endpoint", &m.revocation_endpoint),
            ("device_authorization_endpoint", &m.device_authorization_endpoint),
        ] {
            if let Some(v) = value {
                let url = Url::parse(v).map_err(|_| DiscoveryError::InvalidUrl { field })?;
                if !is_secure_endpoint(&url) {
                    return Err(DiscoveryError::InsecureUrl { field, url: crate::http::redact_query(v) });
                }
            }
        }
        Ok(m)
    }

    /// True if `code_challenge_methods_supported` lists `S256`.
    pub fn supports_s256(&self) -> bool {
        lists(&self.code_challenge_methods_supported, "S256")
    }

    /// True if the server advertises RFC 9207 `iss` (a literal JSON `true`).
    pub fn iss_parameter_supported(&self) -> bool {
        self.authorization_response_iss_parameter_supported == Some(serde_json::Value::Bool(true))
    }

    /// True if the server accepts Client ID Metadata Document URLs (a literal JSON `true`).
    pub fn client_id_metadata_document_supported(&self) -> bool {
        self.client_id_metadata_document_supported == Some(serde_json::Value::Bool(true))
    }

    /// True if `grant_types_supported` lists the grant. RFC 8414 §2: when absent, the default
    /// is `authorization_code` and `implicit`.
    pub fn supports_grant(&self, grant: &str) -> bool {
        match &self.grant_types_supported {
            None => grant == "authorization_code",
            Some(_) => lists(&self.grant_types_supported, grant),
        }
    }

    /// True if the server accepts ES256 DPoP proofs (RFC 9449 §5.1).
    pub fn supports_dpop_es256(&self) -> bool {
        lists(&self.dpop_signing_alg_values_supported, crate::dpop::ALG)
    }

    /// True if `scopes_supported` lists the scope.
    pub fn lists_scope(&self, scope: &str) -> bool {
        lists(&self.scopes_supported, scope)
    }

    /// True if `token_endpoint_auth_methods_supported` lists the method; RFC 8414 §2: when
    /// absent, only `client_secret_basic` is implied.
    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            None => method == "client_secret_basic",
            Some(_) => lists(&self.token_endpoint_auth_methods_supported, method),
        }
    }

    /// Whether `token_endpoint_auth_methods_supported` is present.
    pub fn lists_auth_methods(&self) -> bool {
        self.token_endpoint_auth_methods_supported.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9728_example_parses() {
        // RFC 9728 §3.2 example.
        let body = br#"{"resource":"https://resource.example.com","authorization_servers":["https://as1.example.com","https://as2.example.net"],"bearer_methods_supported":["header","body"],"scopes_supported":["profile","email","phone"],"resource_documentation":"https://resource.example.com/resource_documentation.html"}"#;
        let m = ProtectedResourceMetadata::from_json(body).unwrap();
        assert_eq!(m.authorization_servers.len(), 2);
        assert_eq!(m.scopes_supported.unwrap()[0], "profile");
    }

    #[test]
    fn prm_requires_resource_and_servers() {
        assert_eq!(
            ProtectedResourceMetadata::from_json(br#"{"resource":"https://r"}"#).unwrap_err(),
            DiscoveryError::ResourceMetadataMissingField { field: "authorization_servers" }
        );
        assert!(matches!(ProtectedResourceMetadata::from_json(b"<html>"), Err(DiscoveryError::ResourceMetadataNotJson { .. })));
        assert_eq!(
            ProtectedResourceMetadata::from_json(br#"{"resource":"https://r","authorization_servers":[]}"#).unwrap_err(),
            DiscoveryError::ResourceMetadataMissingField { field: "authorization_servers" }
        );
        assert_eq!(
            ProtectedResourceMetadata::from_json(br#"{"resource":" ","authorization_servers":["https://a"]}"#).unwrap_err(),
            DiscoveryError::ResourceMetadataMissingField { field: "resource" }
        );
        assert!(matches!(
            AuthorizationServerMetadata::from_json(b"<html>", "https://as", false),
            Err(DiscoveryError::ServerMetadataNotJson { issuer, .. }) if issuer == "https://as"
        ));
        assert!(ProtectedResourceMetadata::from_json(br#"{"authorization_servers":["https://a"]}"#).is_err());
        assert!(ProtectedResourceMetadata::from_json(br#"{"resource":5,"authorization_servers":["https://a"]}"#).is_err());
        assert!(ProtectedResourceMetadata::from_json(b"<html>").is_err());
    }

    #[test]
    fn rfc8414_example_parses_and_checks_issuer() {
        // RFC 8414 §3.2 example (abridged).
        let body = br#"{"issuer":"https://server.example.com","authorization_endpoint":"https://server.example.com/authorize","token_endpoint":"https://server.example.com/token","token_endpoint_auth_methods_supported":["client_secret_basic","private_key_jwt"],"token_endpoint_auth_signing_alg_values_supported":["RS256","ES256"],"userinfo_endpoint":"https://server.example.com/userinfo","registration_endpoint":"https://server.example.com/register","scopes_supported":["openid","profile","email"],"response_types_supported":["code","code token"],"code_challenge_methods_supported":["S256"]}"#;
        let m = AuthorizationServerMetadata::from_json(body, "https://server.example.com", false).unwrap();
        assert!(m.supports_s256());
        assert!(m.supports_auth_method("private_key_jwt"));
        assert!(!m.supports_auth_method("none"));
        assert!(m.supports_grant("authorization_code"));
        assert!(!m.supports_grant("client_credentials"));
        let err = AuthorizationServerMetadata::from_json(body, "https://attacker.example.com", false).unwrap_err();
        assert!(matches!(err, DiscoveryError::IssuerMismatch { .. }));
        // A trailing slash is a different issuer, except for the synthesized legacy origin.
        assert!(AuthorizationServerMetadata::from_json(body, "https://server.example.com/", false).is_err());
        assert!(AuthorizationServerMetadata::from_json(body, "https://server.example.com/", true).is_ok());
        // Legacy: an issuer on the server's own origin is the server itself; another origin is not.
        let prefixed = br#"{"issuer":"http://localhost:3000/oauth"}"#;
        assert!(AuthorizationServerMetadata::from_json(prefixed, "http://localhost:3000", true).is_ok());
        assert!(AuthorizationServerMetadata::from_json(prefixed, "http://localhost:3000", false).is_err());
        let foreign = br#"{"issuer":"http://localhost:3001/oauth"}"#;
        assert!(matches!(
            AuthorizationServerMetadata::from_json(foreign, "http://localhost:3000", true),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
    }

    #[test]
    fn insecure_endpoints_are_rejected() {
        let body = br#"{"issuer":"https://a.example","token_endpoint":"http://a.example/token"}"#;
        let err = AuthorizationServerMetadata::from_json(body, "https://a.example", false).unwrap_err();
        assert!(matches!(err, DiscoveryError::InsecureUrl { field: "token_endpoint", .. }));
        let body = br#"{"issuer":"https://a.example","authorization_endpoint":"javascript:alert(1)"}"#;
        assert!(AuthorizationServerMetadata::from_json(body, "https://a.example", false).is_err());
    }

    #[test]
    fn only_literal_true_counts() {
        let body =
            br#"{"issuer":"https://a","authorization_response_iss_parameter_supported":"true","client_id_metadata_document_supported":1}"#;
        let m = AuthorizationServerMetadata::from_json(body, "https://a", false).unwrap();
        assert!(!m.iss_parameter_supported());
        assert!(!m.client_id_metadata_document_supported());
        let body = br#"{"issuer":"https://a","authorization_response_iss_parameter_supported":true}"#;
        assert!(AuthorizationServerMetadata::from_json(body, "https://a", false).unwrap().iss_parameter_supported());
    }
}
