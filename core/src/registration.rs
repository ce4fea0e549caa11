//! Client registration: pre-registered ids, Client ID Metadata Documents (CIMD), and Dynamic
//! Client Registration (RFC 7591). The result is a [`ClientInfo`], persisted per issuer.

use crate::error::{Error, HttpError, RegistrationError};
use crate::http::{body_summary, json_error, HttpRequest, HttpResponse, Purpose};
use crate::secret::ClientSecret;
use crate::token::AuthMethod;
use serde::{Deserialize, Serialize};
use url::Url;

/// How a client id was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Configured in advance.
    PreRegistered,
    /// A Client ID Metadata Document URL (portable across authorization servers).
    MetadataDocument,
    /// RFC 7591 dynamic registration (bound to one issuer).
    Dynamic,
}

/// A client registration at one authorization server, as persisted by the adapter's store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The issuer this registration belongs to (SEP-2352: credentials are per issuer).
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret, if one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    /// When the secret expires (seconds since the epoch; 0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    /// The authentication method the server assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The registered redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// How the id was obtained.
    pub kind: ClientKind,
    /// The grant types registered (dynamic registrations; empty when unknown, as in
    /// registrations stored by older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
}

impl ClientInfo {
    /// The registered method, if it is one core knows.
    pub fn auth_method(&self) -> Option<AuthMethod> {
        self.token_endpoint_auth_method.as_deref().and_then(AuthMethod::parse)
    }

    /// True if the device authorization grant (RFC 8628) was registered for this client.
    pub fn allows_device_grant(&self) -> bool {
        self.grant_types.iter().any(|g| g == crate::device::DEVICE_CODE_GRANT)
    }

    /// True if the secret has expired at `now_secs`.
    pub fn secret_expired(&self, now_secs: u64) -> bool {
        matches!(self.client_secret_expires_at, Some(t) if t != 0 && t <= now_secs)
    }

    /// True if `redirect_uri` is registered. For loopback IP literals the port is ignored
    /// (RFC 8252 §7.3) when `port_agnostic` is set.
    pub fn allows_redirect(&self, redirect_uri: &Url, port_agnostic: bool) -> bool {
        self.redirect_uris.iter().any(|r| {
            let Ok(r) = Url::parse(r) else { return false };
            if r == *redirect_uri {
                return true;
            }
            let ip_literal = matches!(r.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
            port_agnostic
                && ip_literal
                && r.scheme() == redirect_uri.scheme()
                && r.host() == redirect_uri.host()
                && r.path() == redirect_uri.path()
                && r.query() == redirect_uri.query()
        })
    }
}

/// The checks a Client ID Metadata Document URL must pass (MCP 2025-11-25 §Client ID Metadata
/// Documents; CIMD draft §3): `https`, a path other than `/`, no fragment, no credentials, no
/// dot segments.
pub(crate) fn validate_client_metadata_url(url: &Url) -> Result<(), &'static str> {
    if url.scheme() != "https" {
        return Err("must be an https url");
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err("must have a path");
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials");
    }
    if url.path().split('/').any(|s| s == "." || s == "..") {
        return Err("must not contain dot segments");
    }
    Ok(())
}

/// The client metadata sent in a DCR request (RFC 7591 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Where the authorization server may redirect (none for a device-only client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Set explicitly: RFC 7591 defaults to `client_secret_basic` otherwise.
    pub token_endpoint_auth_method: String,
    /// `authorization_code` and `refresh_token`.
    pub grant_types: Vec<String>,
    /// `code` (none for a device-only client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    /// `native` for loopback redirect URIs (MCP 2026-07-28, SEP-837).
    pub application_type: String,
    /// A human-readable name.
    pub client_name: String,
    /// The scope the client will ask for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl ClientMetadata {
    /// Metadata for a public native client that uses `redirect_uri`.
    pub fn native(redirect_uri: &Url, client_name: &str, scope: Option<String>) -> Self {
        ClientMetadata {
            redirect_uris: vec![redirect_uri.to_string()],
            token_endpoint_auth_method: "none".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            application_type: "native".into(),
            client_name: client_name.to_owned(),
            scope,
        }
    }

    /// Metadata for a public native client that logs in with the device authorization grant
    /// (RFC 8628): no redirect URI, no response type.
    pub fn device(client_name: &str, scope: Option<String>) -> Self {
        ClientMetadata {
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: "none".into(),
            grant_types: vec![crate::device::DEVICE_CODE_GRANT.into(), "refresh_token".into()],
            response_types: Vec::new(),
            application_type: "native".into(),
            client_name: client_name.to_owned(),
            scope,
        }
    }
}

/// Builds the RFC 7591 registration `POST`.
pub fn registration_request(endpoint: &Url, metadata: &ClientMetadata) -> HttpRequest {
    let body = serde_json::to_vec(metadata).unwrap_or_default();
    http::Request::post(endpoint.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .unwrap_or_else(|_| http::Request::new(Vec::new()))
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_expires_at: Option<u64>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
}

/// Interprets a registration response (RFC 7591 §3.2): 200 or 201 with a `client_id`; the
/// server's values replace the requested ones.
pub fn parse_registration_response(resp: &HttpResponse, issuer: &str, requested: &ClientMetadata) -> Result<ClientInfo, Error> {
    crate::token::check_size(resp, Purpose::Registration)?;
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        if let Some(e) = crate::token::oauth_error(resp.body()) {
            return Err(RegistrationError::Rejected(e).into());
        }
        return Err(Error::Http {
            purpose: Purpose::Registration,
            error: HttpError::UnexpectedStatus { status, excerpt: body_summary(Purpose::Registration, resp.body()) },
        });
    }
    let r: RegistrationResponse =
        serde_json::from_slice(resp.body()).map_err(|e| RegistrationError::ResponseNotJson { reason: json_error(&e) })?;
    if r.client_id.is_empty() {
        return Err(RegistrationError::EmptyClientId.into());
    }
    let method = r.token_endpoint_auth_method.unwrap_or_else(|| requested.token_endpoint_auth_method.clone());
    Ok(ClientInfo {
        issuer: issuer.to_owned(),
        client_id: r.client_id,
        client_secret: r.client_secret.filter(|s| !s.is_empty()).map(ClientSecret::new),
        client_secret_expires_at: r.client_secret_expires_at,
        token_endpoint_auth_method: Some(method),
        redirect_uris: r.redirect_uris.filter(|v| !v.is_empty()).unwrap_or_else(|| requested.redirect_uris.clone()),
        kind: ClientKind::Dynamic,
        grant_types: r.grant_types.filter(|v| !v.is_empty()).unwrap_or_else(|| requested.grant_types.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn cimd_url_rules() {
        assert!(validate_client_metadata_url(&u("https://app.example.com/oauth/client.json")).is_ok());
        assert!(validate_client_metadata_url(&u("https://example.com")).is_err());
        assert!(validate_client_metadata_url(&u("https://example.com/")).is_err());
        assert!(validate_client_metadata_url(&u("http://example.com/c.json")).is_err());
        assert!(validate_client_metadata_url(&u("https://example.com/c.json#f")).is_err());
        assert!(validate_client_metadata_url(&u("https://u:p@example.com/c.json")).is_err());
    }

    #[test]
    fn dcr_body_has_the_required_fields() {
        let md = ClientMetadata::native(&u("http://127.0.0.1:5555/callback"), "demo", Some("a b".into()));
        let req = registration_request(&u("https://as.example/register"), &md);
        let v: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(v["application_type"], "native");
        assert_eq!(v["token_endpoint_auth_method"], "none");
        assert_eq!(v["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
        assert_eq!(v["redirect_uris"], serde_json::json!(["http://127.0.0.1:5555/callback"]));
        assert_eq!(v["scope"], "a b");
    }

    #[test]
    fn dcr_response_values_win() {
        let md = ClientMetadata::native(&u("http://127.0.0.1:5555/callback"), "demo", None);
        let resp = http::Response::builder()
            .status(201)
            .body(br#"{"client_id":"c1","client_secret":"s1","token_endpoint_auth_method":"client_secret_post"}"#.to_vec())
            .unwrap();
        let ci = parse_registration_response(&resp, "https://as", &md).unwrap();
        assert_eq!(ci.client_id, "c1");
        assert_eq!(ci.auth_method(), Some(AuthMethod::ClientSecretPost));
        assert_eq!(ci.redirect_uris, md.redirect_uris);
        assert!(!format!("{ci:?}").contains("s1\""));
        let rejected = http::Response::builder()
            .status(400)
            .body(br#"{"error":"invalid_redirect_uri","error_description":"loopback not allowed"}"#.to_vec())
            .unwrap();
        assert!(matches!(
            parse_registration_response(&rejected, "https://as", &md),
            Err(Error::Registration(RegistrationError::Rejected(_)))
        ));
        let junk = http::Response::builder().status(201).body(b"{}".to_vec()).unwrap();
        assert!(matches!(
            parse_registration_response(&junk, "https://as", &md),
            Err(Error::Registration(RegistrationError::ResponseNotJson { .. }))
        ));
        let empty = http::Response::builder().status(201).body(br#"{"client_id":""}"#.to_vec()).unwrap();
        assert_eq!(
            parse_registration_response(&empty, "https://as", &md).unwrap_err(),
            Error::Registration(RegistrationError::EmptyClientId)
        );
    }

    #[test]
    fn errors_never_quote_what_could_be_a_secret() {
        let md = ClientMetadata::native(&u("http://127.0.0.1:5555/callback"), "demo", None);
        // A secret of the wrong type: serde would quote it.
        let typed = http::Response::builder().status(201).body(br#"{"client_id":"c","client_secret":918273645}"#.to_vec()).unwrap();
        let e = parse_registration_response(&typed, "https://as", &md).unwrap_err().to_string();
        assert!(!e.contains("918273645"), "{e}");
        // A server echoing our request back in an error page.
        let echo = http::Response::builder().status(500).body(b"code=sekrit-code&code_verifier=sekrit-verifier".to_vec()).unwrap();
        let e = parse_registration_response(&echo, "https://as", &md).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("sekrit"), "{e:?}");
        let t = crate::token::TokenResponse::from_http(&echo, Purpose::CodeExchange).unwrap_err();
        assert!(!format!("{t} {t:?}").contains("sekrit"), "{t:?}");
    }

    #[test]
    fn loopback_port_rules() {
        let ci = ClientInfo {
            issuer: "https://as".into(),
            client_id: "c".into(),
            client_secret: None,
            client_secret_expires_at: Some(10),
            token_endpoint_auth_method: None,
            redirect_uris: vec!["http://127.0.0.1:5555/callback".into(), "http://localhost:7777/callback".into()],
            kind: ClientKind::Dynamic,
            grant_types: Vec::new(),
        };
        assert!(ci.allows_redirect(&u("http://127.0.0.1:5555/callback"), false));
        assert!(!ci.allows_redirect(&u("http://127.0.0.1:6666/callback"), false));
        assert!(ci.allows_redirect(&u("http://127.0.0.1:6666/callback"), true));
        assert!(!ci.allows_redirect(&u("http://127.0.0.1:6666/other"), true));
        // `localhost` is a name, not an IP literal: no port agnosticism (RFC 8252 §8.3).
        assert!(!ci.allows_redirect(&u("http://localhost:8888/callback"), true));
        assert!(ci.secret_expired(10));
        assert!(!ci.secret_expired(9));
    }
}
