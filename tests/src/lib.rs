//! An independent OAuth 2.1 authorization server and MCP protected resource for tests and the
//! demo, written from the RFCs. It does not depend on `mcp-oauth-core`, so a parsing bug in the
//! client cannot be mirrored by its peer.
//!
//! [`TestServer::handle`] is Sans-IO (`http::Request` in, `http::Response` out); the same
//! handler is served in memory by core's scenario tests and over TCP by the end-to-end tests.
//! Every behaviour is a field of [`Options`].

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use url::Url;

pub mod bench;
pub mod browser;
pub mod hostile;
pub mod ledger;
pub mod tcp;

pub use ledger::Ledger;

/// Where protected resource metadata is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrmLocation {
    /// `/.well-known/oauth-protected-resource{mcp_path}`.
    PathAware,
    /// `/.well-known/oauth-protected-resource`.
    Root,
    /// A custom path, only discoverable through the `WWW-Authenticate` header.
    Custom(String),
    /// No metadata at all (a 2025-03-26 server).
    None,
}

/// Where authorization server metadata is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsMetadataLocation {
    /// RFC 8414 (path inserted).
    OAuth,
    /// OpenID Connect, path inserted.
    OidcInserted,
    /// OpenID Connect, path appended.
    OidcAppended,
    /// No metadata (2025-03-26 default endpoints).
    None,
}

/// What the server sends as `iss` in redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssBehaviour {
    /// The correct issuer.
    Correct,
    /// No `iss`.
    Missing,
    /// This value.
    Wrong(String),
}

/// A client registered in advance.
#[derive(Debug, Clone)]
pub struct PreClient {
    /// The id.
    pub id: String,
    /// The secret, for confidential clients.
    pub secret: Option<String>,
    /// An ES256 public key (SEC1 bytes) for `private_key_jwt`.
    pub jwt_key: Option<Vec<u8>>,
}

/// Every knob of the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// The origin of the MCP server, e.g. `https://mcp.example.com`.
    pub resource_origin: String,
    /// The MCP endpoint path.
    pub mcp_path: String,
    /// The origin of the authorization server (may equal the resource origin).
    pub auth_origin: String,
    /// A path for the issuer, e.g. `/tenant1` (endpoints live under it).
    pub issuer_path: String,
    /// Where PRM lives.
    pub prm: PrmLocation,
    /// Put `resource_metadata` in the 401 challenge.
    pub prm_in_header: bool,
    /// Override PRM `resource`.
    pub prm_resource: Option<String>,
    /// PRM `scopes_supported`.
    pub prm_scopes: Option<Vec<String>>,
    /// `scope` in the 401 challenge.
    pub challenge_scope: Option<String>,
    /// Where AS metadata lives.
    pub as_metadata: AsMetadataLocation,
    /// AS `scopes_supported`.
    pub as_scopes: Option<Vec<String>>,
    /// Publish a registration endpoint.
    pub dcr: bool,
    /// DCR issues a secret and demands `client_secret_basic`.
    pub dcr_confidential: bool,
    /// Accept Client ID Metadata Document URLs as client ids.
    pub cimd: bool,
    /// `code_challenge_methods_supported` (`None` = absent).
    pub pkce_methods: Option<Vec<String>>,
    /// Advertise RFC 9207 `iss`.
    pub iss_supported: bool,
    /// What `iss` redirects carry.
    pub iss: IssBehaviour,
    /// Put this `issuer` in the metadata instead of the real one.
    pub issuer_override: Option<String>,
    /// Clients registered in advance.
    pub clients: Vec<PreClient>,
    /// `token_endpoint_auth_methods_supported`.
    pub auth_methods: Vec<String>,
    /// `grant_types_supported`.
    pub grant_types: Vec<String>,
    /// `expires_in` of access tokens (`None` = omitted).
    pub token_lifetime: Option<u64>,
    /// Issue refresh tokens.
    pub refresh_tokens: bool,
    /// Rotate refresh tokens on use.
    pub rotate_refresh: bool,
    /// Scopes needed to call `tools/call` on `admin-tool` (step-up tests).
    pub admin_scope: Option<String>,
    /// Answer every authorization with `error=access_denied`.
    pub deny: bool,
    /// Redirect with a different `state` than received.
    pub wrong_state: bool,
    /// Answer the token endpoint with an HTML 500.
    pub token_html_500: bool,
    /// Answer this path with a body of this many bytes.
    pub huge_body: Option<(String, usize)>,
    /// Answer refresh requests with `invalid_grant`.
    pub refresh_invalid_grant: bool,
    /// Require `resource` on authorization and token requests.
    pub require_resource: bool,
    /// Redirect URIs must match exactly, even the loopback port.
    pub strict_redirect_port: bool,
    /// Issuers listed in PRM before the real one (dead or foreign servers).
    pub prm_extra_servers: Vec<String>,
    /// Grant exactly this scope, whatever was asked (makes step-up impossible).
    pub grant_scope_override: Option<String>,
    /// Frame MCP POST replies as Server-Sent Events (`text/event-stream`).
    pub sse_responses: bool,
    /// Hand out an `Mcp-Session-Id` on `initialize` and require it afterwards.
    pub sessions: bool,
    /// Serve the MCP endpoint without any authorization (a server without OAuth).
    pub open: bool,
    /// The legacy HTTP+SSE transport (2024-11-05): `GET {mcp_path}` opens an event stream that
    /// announces `/messages?sessionId=…`; replies to POSTs there arrive on the stream. Only
    /// over TCP ([`tcp`]).
    pub legacy_sse: bool,
    /// Act as an enterprise IdP too: `/idp/token` exchanges this ID token (RFC 8693) for an
    /// ID-JAG that the authorization server accepts once as a JWT bearer grant (RFC 7523).
    pub idp_id_token: Option<String>,
    /// Speak only the stateless 2026-07-28 wire: `initialize` is refused, `server/discover`
    /// answers, and every request must carry `MCP-Protocol-Version: 2026-07-28`, a matching
    /// `Mcp-Method` header and the protocol version in `params._meta`.
    pub stateless_2026: bool,
    /// Accept this workload JWT as a JWT bearer grant (workload identity federation).
    pub workload_assertion: Option<String>,
    /// DPoP (RFC 9449): advertise ES256, bind tokens requested with a proof, and demand a valid
    /// proof with every request made with a bound token.
    pub dpop: bool,
    /// Demand this nonce in token-request proofs (`use_dpop_nonce` until given).
    pub dpop_as_nonce: Option<String>,
    /// Demand this nonce in resource-request proofs.
    pub dpop_rs_nonce: Option<String>,
    /// A refresh token presented again after rotation replaced it revokes its whole grant
    /// (RFC 9700 §4.14.2: reuse is a sign of theft).
    pub refresh_reuse_revokes_grant: bool,
    /// Scopes a JSON-RPC method needs, as `(method, scope)`; `tools/call:<name>` names one
    /// tool. A token without the scope gets `403 insufficient_scope`.
    pub method_scopes: Vec<(String, String)>,
    /// RFC 7009: advertise `revocation_endpoint` (`{issuer}/revoke`) and revoke there.
    pub revocation: bool,
    /// Answer revocation requests with this status (an error body) instead of revoking.
    pub revocation_status: Option<u16>,
    /// RFC 8628: advertise `device_authorization_endpoint` (`{issuer}/device_authorization`);
    /// a person approves a code at `{issuer}/device?user_code=…` (`&deny=1` refuses).
    pub device: bool,
    /// The `interval` of device authorization responses (`None`: omitted, 5 s by the RFC).
    pub device_interval: Option<u64>,
    /// The `expires_in` of device codes, in seconds (judged by the server's clock if set).
    pub device_expires_in: u64,
    /// Answer this many polls with `slow_down` before anything else.
    pub device_slow_downs: u32,
    /// Put this `verification_uri` in device authorization responses (a hostile server).
    pub device_verification_uri: Option<String>,
    /// Advertise the device grant in DCR-registered clients only when they asked for it.
    pub device_requires_registration: bool,
}

impl Options {
    /// A 2025-11-25-style server on one origin with DCR, PKCE, `iss`, refresh tokens.
    pub fn new(origin: &str) -> Self {
        Options {
            resource_origin: origin.trim_end_matches('/').to_owned(),
            mcp_path: "/mcp".into(),
            auth_origin: origin.trim_end_matches('/').to_owned(),
            issuer_path: String::new(),
            prm: PrmLocation::PathAware,
            prm_in_header: true,
            prm_resource: None,
            prm_scopes: Some(vec!["mcp:read".into(), "mcp:write".into()]),
            challenge_scope: None,
            as_metadata: AsMetadataLocation::OAuth,
            as_scopes: Some(vec!["mcp:read".into(), "mcp:write".into(), "mcp:admin".into()]),
            dcr: true,
            dcr_confidential: false,
            cimd: false,
            pkce_methods: Some(vec!["S256".into()]),
            iss_supported: true,
            iss: IssBehaviour::Correct,
            issuer_override: None,
            clients: Vec::new(),
            auth_methods: vec!["none".into(), "client_secret_basic".into(), "client_secret_post".into(), "private_key_jwt".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()],
            token_lifetime: Some(3600),
            refresh_tokens: true,
            rotate_refresh: true,
            admin_scope: Some("mcp:admin".into()),
            deny: false,
            wrong_state: false,
            token_html_500: false,
            huge_body: None,
            refresh_invalid_grant: false,
            require_resource: true,
            strict_redirect_port: false,
            prm_extra_servers: Vec::new(),
            grant_scope_override: None,
            sse_responses: false,
            sessions: false,
            open: false,
            legacy_sse: false,
            idp_id_token: None,
            stateless_2026: false,
            workload_assertion: None,
            dpop: false,
            dpop_as_nonce: None,
            dpop_rs_nonce: None,
            refresh_reuse_revokes_grant: false,
            method_scopes: Vec::new(),
            revocation: false,
            revocation_status: None,
            device: false,
            device_interval: None,
            device_expires_in: 600,
            device_slow_downs: 0,
            device_verification_uri: None,
            device_requires_registration: true,
        }
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> String {
        format!("{}{}", self.auth_origin, self.issuer_path)
    }

    /// The MCP endpoint URL.
    pub fn mcp_url(&self) -> String {
        format!("{}{}", self.resource_origin, self.mcp_path)
    }

    /// The `resource` value PRM publishes.
    pub fn resource(&self) -> String {
        self.prm_resource.clone().unwrap_or_else(|| self.mcp_url())
    }
}

#[derive(Debug, Clone)]
struct Client {
    secret: Option<String>,
    redirect_uris: Vec<String>,
    method: String,
    jwt_key: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: Option<String>,
    scope: Option<String>,
}

/// A device code (RFC 8628) waiting for, or given, a person's approval.
#[derive(Debug, Clone)]
struct DeviceGrant {
    user_code: String,
    client_id: String,
    scope: Option<String>,
    resource: Option<String>,
    /// `None` pending, `Some(true)` approved, `Some(false)` denied.
    approved: Option<bool>,
    expires_at: Option<u64>,
}

#[derive(Debug, Clone)]
struct Token {
    scope: Vec<String>,
    client_id: String,
    resource: Option<String>,
    /// The DPoP key thumbprint the token is bound to.
    jkt: Option<String>,
    /// The grant it belongs to (see [`Ledger`]).
    grant: u64,
    /// When it stops being accepted, by the server's clock (`None`: never).
    expires_at: Option<u64>,
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Form or JSON body fields, decoded (for token and registration requests).
    pub params: Vec<(String, String)>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The response status.
    pub status: u16,
}

/// The server. Cheap to build; all state is in memory.
#[derive(Debug)]
pub struct TestServer {
    /// The knobs; tests may change them between requests.
    pub options: Options,
    clients: HashMap<String, Client>,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, Token>,
    refresh: HashMap<String, Token>,
    used_jti: HashSet<String>,
    /// The thumbprint of the proof on the token request being served.
    pending_jkt: Option<String>,
    /// Issued ID-JAGs: (audience, resource, scope).
    jags: HashMap<String, (String, String, Option<String>)>,
    sessions: Vec<String>,
    /// Device codes (RFC 8628) by `device_code`.
    devices: HashMap<String, DeviceGrant>,
    /// Clients registered with the device grant.
    device_clients: HashSet<String>,
    counter: u64,
    /// Every request, in order.
    pub log: Vec<Seen>,
    /// The server's clock in milliseconds, once a simulation sets it: access tokens then
    /// expire, and the ledger records times.
    clock: Option<u64>,
    ledger: Ledger,
}

fn resp(status: u16, ctype: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    http::Response::builder().status(status).header("content-type", ctype).body(body).unwrap_or_default()
}

fn json_resp(status: u16, v: Value) -> http::Response<Vec<u8>> {
    resp(status, "application/json", v.to_string().into_bytes())
}

fn oauth_error(status: u16, error: &str, desc: &str) -> http::Response<Vec<u8>> {
    json_resp(status, json!({"error": error, "error_description": desc}))
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn is_loopback_ip_url(u: &Url) -> bool {
    matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback()) || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
}

impl TestServer {
    /// A server with these options.
    pub fn new(options: Options) -> Self {
        let mut s = TestServer {
            options,
            clients: HashMap::new(),
            grants: HashMap::new(),
            tokens: HashMap::new(),
            refresh: HashMap::new(),
            used_jti: HashSet::new(),
            pending_jkt: None,
            jags: HashMap::new(),
            sessions: Vec::new(),
            devices: HashMap::new(),
            device_clients: HashSet::new(),
            counter: 0,
            log: Vec::new(),
            clock: None,
            ledger: Ledger::default(),
        };
        for c in s.options.clients.clone() {
            let method = if c.jwt_key.is_some() {
                "private_key_jwt"
            } else if c.secret.is_some() {
                "client_secret_basic"
            } else {
                "none"
            };
            s.clients
                .insert(c.id.clone(), Client { secret: c.secret, redirect_uris: Vec::new(), method: method.into(), jwt_key: c.jwt_key });
        }
        s
    }

    fn mint(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let h = Sha256::digest(format!("{prefix}:{}:{}", self.counter, self.options.issuer()));
        format!("{prefix}-{}", URL_SAFE_NO_PAD.encode(&h[..18]))
    }

    /// Sets the server's clock (milliseconds). From then on access tokens expire after their
    /// `expires_in`, judged by this clock, and the [`Ledger`] records times.
    pub fn set_time(&mut self, now_ms: u64) {
        self.clock = Some(now_ms);
    }

    fn now(&self) -> u64 {
        self.clock.unwrap_or(0)
    }

    /// Everything issued, presented and revoked so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Revokes every access token (the next MCP request gets `invalid_token`).
    pub fn revoke_access_tokens(&mut self) {
        let now = self.now();
        for value in self.tokens.keys() {
            self.ledger.revoked(value, now);
        }
        self.tokens.clear();
    }

    /// Revokes a grant: its access and refresh tokens stop working.
    pub fn revoke_grant(&mut self, grant: u64) {
        self.tokens.retain(|_, t| t.grant != grant);
        self.refresh.retain(|_, t| t.grant != grant);
        let now = self.now();
        self.ledger.grant_revoked(grant, now);
    }

    fn expired(&self, t: &Token) -> bool {
        matches!((self.clock, t.expires_at), (Some(now), Some(exp)) if now >= exp)
    }

    /// How many requests had this path (query ignored).
    pub fn count(&self, path: &str) -> usize {
        self.log.iter().filter(|s| s.target.split('?').next() == Some(path)).count()
    }

    /// Requests to the token endpoint, in order.
    pub fn token_requests(&self) -> Vec<&Seen> {
        let p = format!("{}/token", self.options.issuer_path);
        self.log.iter().filter(|s| s.target == p).collect()
    }

    /// Query parameters of authorization requests, in order.
    pub fn authorization_requests(&self) -> Vec<Vec<(String, String)>> {
        let p = format!("{}/authorize", self.options.issuer_path);
        self.log
            .iter()
            .filter(|s| s.target.split('?').next() == Some(p.as_str()))
            .map(|s| form(s.target.split_once('?').map(|(_, q)| q).unwrap_or("").as_bytes()))
            .collect()
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        let target = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let params = match req.headers().get("content-type").and_then(|v| v.to_str().ok()) {
            Some(ct) if ct.starts_with("application/x-www-form-urlencoded") => form(req.body()),
            Some(ct) if ct.starts_with("application/json") => serde_json::from_slice::<Value>(req.body())
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|o| o.into_iter().map(|(k, v)| (k, if let Value::String(s) = v { s } else { v.to_string() })).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let response = self.route(req, &target, &params, authorization.as_deref());
        self.log.push(Seen { method: req.method().to_string(), target, params, authorization, status: response.status().as_u16() });
        response
    }

    fn route(
        &mut self,
        req: &http::Request<Vec<u8>>,
        target: &str,
        params: &[(String, String)],
        authz: Option<&str>,
    ) -> http::Response<Vec<u8>> {
        let path = target.split('?').next().unwrap_or("");
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let o = self.options.clone();
        if let Some((p, n)) = &o.huge_body {
            if p == path {
                return resp(200, "application/json", vec![b' '; *n]);
            }
        }
        let ip = &o.issuer_path;
        let prm_path = match &o.prm {
            PrmLocation::PathAware => Some(format!("/.well-known/oauth-protected-resource{}", o.mcp_path)),
            PrmLocation::Root => Some("/.well-known/oauth-protected-resource".to_owned()),
            PrmLocation::Custom(p) => Some(p.clone()),
            PrmLocation::None => None,
        };
        let as_path = match o.as_metadata {
            AsMetadataLocation::OAuth => Some(format!("/.well-known/oauth-authorization-server{ip}")),
            AsMetadataLocation::OidcInserted => Some(format!("/.well-known/openid-configuration{ip}")),
            AsMetadataLocation::OidcAppended => Some(format!("{ip}/.well-known/openid-configuration")),
            AsMetadataLocation::None => None,
        };
        if prm_path.as_deref() == Some(path) && req.method() == http::Method::GET {
            let mut servers = o.prm_extra_servers.clone();
            servers.push(o.issuer());
            let mut v = json!({"resource": o.resource(), "authorization_servers": servers});
            if let Some(s) = &o.prm_scopes {
                v["scopes_supported"] = json!(s);
            }
            return json_resp(200, v);
        }
        if as_path.as_deref() == Some(path) && req.method() == http::Method::GET {
            return json_resp(200, self.as_metadata());
        }
        if path == format!("{ip}/authorize") && req.method() == http::Method::GET {
            return self.authorize(query);
        }
        if path == "/idp/token" && req.method() == http::Method::POST && o.idp_id_token.is_some() {
            return self.idp_token_exchange(params);
        }
        if path == format!("{ip}/token") && req.method() == http::Method::POST {
            let proof = req.headers().get("dpop").and_then(|v| v.to_str().ok()).map(str::to_owned);
            return self.token(params, authz, proof.as_deref());
        }
        if path == format!("{ip}/device_authorization") && req.method() == http::Method::POST && o.device {
            return self.device_authorization(params, authz);
        }
        if path == format!("{ip}/device") && req.method() == http::Method::GET && o.device {
            let q = form(query.as_bytes());
            let code = get(&q, "user_code").unwrap_or("").to_owned();
            let deny = get(&q, "deny").is_some();
            return match self.devices.values_mut().find(|d| d.user_code == code && d.approved.is_none()) {
                Some(d) => {
                    d.approved = Some(!deny);
                    resp(200, "text/html", if deny { b"denied".to_vec() } else { b"approved".to_vec() })
                }
                None => resp(404, "text/html", b"no such code".to_vec()),
            };
        }
        if path == format!("{ip}/revoke") && req.method() == http::Method::POST && o.revocation {
            return self.revoke(params, authz);
        }
        if path == format!("{ip}/register") && req.method() == http::Method::POST && o.dcr {
            return self.register(params);
        }
        if path == o.mcp_path {
            return self.mcp(req, authz);
        }
        resp(404, "text/plain", b"not found".to_vec())
    }

    fn as_metadata(&self) -> Value {
        let o = &self.options;
        let iss = o.issuer();
        let mut v = json!({
            "issuer": o.issuer_override.clone().unwrap_or_else(|| iss.clone()),
            "authorization_endpoint": format!("{iss}/authorize"),
            "token_endpoint": format!("{iss}/token"),
            "response_types_supported": ["code"],
            "grant_types_supported": o.grant_types,
            "token_endpoint_auth_methods_supported": o.auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        });
        if o.dcr {
            v["registration_endpoint"] = json!(format!("{iss}/register"));
        }
        if let Some(m) = &o.pkce_methods {
            v["code_challenge_methods_supported"] = json!(m);
        }
        if let Some(s) = &o.as_scopes {
            v["scopes_supported"] = json!(s);
        }
        if o.iss_supported {
            v["authorization_response_iss_parameter_supported"] = json!(true);
        }
        if o.cimd {
            v["client_id_metadata_document_supported"] = json!(true);
        }
        if o.dpop {
            v["dpop_signing_alg_values_supported"] = json!(["ES256"]);
        }
        if o.revocation {
            v["revocation_endpoint"] = json!(format!("{iss}/revoke"));
        }
        if o.device {
            v["device_authorization_endpoint"] = json!(format!("{iss}/device_authorization"));
            if let Some(g) = v["grant_types_supported"].as_array_mut() {
                g.push(json!("urn:ietf:params:oauth:grant-type:device_code"));
            }
        }
        v
    }

    /// The user codes of device logins still waiting for a person, oldest first.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let mut v: Vec<_> =
            self.devices.iter().filter(|(_, d)| d.approved.is_none()).map(|(k, d)| (k.clone(), d.user_code.clone())).collect();
        v.sort();
        v.into_iter().map(|(_, c)| c).collect()
    }

    /// Approves (or denies) the device login with this user code, as the person would at the
    /// verification page. False if no such login waits.
    pub fn approve_device(&mut self, user_code: &str, approve: bool) -> bool {
        match self.devices.values_mut().find(|d| d.user_code == user_code && d.approved.is_none()) {
            Some(d) => {
                d.approved = Some(approve);
                true
            }
            None => false,
        }
    }

    /// RFC 8628 §3.1–3.2: a device code for an authenticated (or public) client.
    fn device_authorization(&mut self, p: &[(String, String)], authz: Option<&str>) -> http::Response<Vec<u8>> {
        let client_id = match self.authenticate(p, authz) {
            Ok(id) => id,
            Err(d) => return oauth_error(401, "invalid_client", &d),
        };
        let o = self.options.clone();
        if o.device_requires_registration && client_id.starts_with("dyn-") && !self.device_clients.contains(&client_id) {
            return oauth_error(400, "unauthorized_client", "the client did not register the device grant");
        }
        let resource = get(p, "resource").map(str::to_owned);
        if o.require_resource && resource.as_deref() != Some(o.resource().as_str()) {
            return oauth_error(400, "invalid_target", "resource missing or wrong");
        }
        let device_code = self.mint("dc");
        self.counter += 1;
        let user_code = format!("WDJB-{:04}", self.counter % 10_000);
        let now = self.now();
        let expires_at = self.clock.map(|_| now.saturating_add(o.device_expires_in.saturating_mul(1000)));
        let grant = DeviceGrant {
            user_code: user_code.clone(),
            client_id,
            scope: get(p, "scope").map(str::to_owned),
            resource,
            approved: None,
            expires_at,
        };
        self.devices.insert(device_code.clone(), grant);
        let iss = o.issuer();
        let uri = o.device_verification_uri.clone().unwrap_or_else(|| format!("{iss}/device"));
        let mut v = json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": format!("{uri}?user_code={user_code}"),
            "expires_in": o.device_expires_in,
        });
        if let Some(i) = o.device_interval {
            v["interval"] = json!(i);
        }
        let mut r = json_resp(200, v);
        r.headers_mut().insert("cache-control", http::HeaderValue::from_static("no-store"));
        r
    }

    /// RFC 7009: the authenticated client revokes one of its tokens. A refresh token takes its
    /// whole grant with it (§2.1); an unknown token is answered `200` (§2.2); a token of
    /// another client is refused.
    fn revoke(&mut self, p: &[(String, String)], authz: Option<&str>) -> http::Response<Vec<u8>> {
        if let Some(status) = self.options.revocation_status {
            let error = if status == 503 { "temporarily_unavailable" } else { "invalid_request" };
            return oauth_error(status, error, "revocation refused by the test knob");
        }
        let client_id = match self.authenticate(p, authz) {
            Ok(id) => id,
            Err(d) => return oauth_error(401, "invalid_client", &d),
        };
        let Some(token) = get(p, "token").map(str::to_owned) else { return oauth_error(400, "invalid_request", "no token") };
        let found = self
            .refresh
            .get(&token)
            .map(|t| (t.client_id.clone(), t.grant, true))
            .or_else(|| self.tokens.get(&token).map(|t| (t.client_id.clone(), t.grant, false)));
        let Some((owner, grant, refresh)) = found else { return resp(200, "application/json", Vec::new()) };
        if owner != client_id {
            return oauth_error(400, "invalid_request", "the token was issued to another client");
        }
        let now = self.now();
        if refresh {
            self.revoke_grant(grant);
        } else {
            self.tokens.remove(&token);
            self.ledger.revoked(&token, now);
        }
        resp(200, "application/json", Vec::new())
    }

    fn redirect_allowed(&self, client_id: &str, redirect_uri: &str) -> bool {
        let Ok(want) = Url::parse(redirect_uri) else { return false };
        if self.options.cimd && client_id.starts_with("https://") {
            return is_loopback_ip_url(&want) || want.host_str() == Some("localhost");
        }
        let Some(c) = self.clients.get(client_id) else { return false };
        if c.redirect_uris.is_empty() {
            // Pre-registered clients in these tests accept any loopback redirect.
            return is_loopback_ip_url(&want) || want.host_str() == Some("localhost");
        }
        c.redirect_uris.iter().any(|r| {
            let Ok(r) = Url::parse(r) else { return false };
            r == want
                || (!self.options.strict_redirect_port
                    && is_loopback_ip_url(&r)
                    && r.host() == want.host()
                    && r.path() == want.path()
                    && r.scheme() == want.scheme())
        })
    }

    fn authorize(&mut self, query: &str) -> http::Response<Vec<u8>> {
        let q = form(query.as_bytes());
        let o = self.options.clone();
        let (Some(client_id), Some(redirect_uri)) = (get(&q, "client_id"), get(&q, "redirect_uri")) else {
            return resp(400, "text/plain", b"client_id and redirect_uri required".to_vec());
        };
        if !self.redirect_allowed(client_id, redirect_uri) {
            return resp(400, "text/plain", b"unknown client or redirect_uri not registered".to_vec());
        }
        let mut loc = Url::parse(redirect_uri).unwrap_or_else(|_| Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable!()));
        let state = get(&q, "state").map(|s| if o.wrong_state { format!("{s}x") } else { s.to_owned() });
        let mut add = |k: &str, v: &str| {
            loc.query_pairs_mut().append_pair(k, v);
        };
        let problem = if get(&q, "response_type") != Some("code") {
            Some("unsupported_response_type")
        } else if get(&q, "code_challenge_method") != Some("S256") || get(&q, "code_challenge").is_none() {
            Some("invalid_request")
        } else if o.require_resource && get(&q, "resource") != Some(o.resource().as_str()) {
            Some("invalid_target")
        } else if o.deny {
            Some("access_denied")
        } else {
            None
        };
        match problem {
            Some(e) => add("error", e),
            None => {
                let code = self.mint("code");
                let now = self.now();
                self.ledger.code_issued(&code, client_id, now);
                self.grants.insert(
                    code.clone(),
                    Grant {
                        client_id: client_id.to_owned(),
                        redirect_uri: redirect_uri.to_owned(),
                        challenge: get(&q, "code_challenge").unwrap_or("").to_owned(),
                        resource: get(&q, "resource").map(str::to_owned),
                        scope: get(&q, "scope").map(str::to_owned),
                    },
                );
                add("code", &code);
            }
        }
        if let Some(s) = &state {
            add("state", s);
        }
        match &o.iss {
            IssBehaviour::Correct => add("iss", &o.issuer()),
            IssBehaviour::Missing => {}
            IssBehaviour::Wrong(w) => add("iss", w),
        }
        http::Response::builder().status(302).header("location", loc.as_str()).body(Vec::new()).unwrap_or_default()
    }

    /// Authenticates the client of a token request: its id, or why not (`invalid_client`).
    fn authenticate(&mut self, p: &[(String, String)], authz: Option<&str>) -> Result<String, String> {
        let invalid = |d: &str| Err(d.to_owned());
        if let Some(basic) = authz.and_then(|a| a.strip_prefix("Basic ")) {
            let Ok(raw) = STANDARD.decode(basic) else { return invalid("bad basic encoding") };
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let Some((id, secret)) = raw.split_once(':') else { return invalid("bad basic credentials") };
            let dec =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
            let (id, secret) = (dec(id), dec(secret));
            if !self.options.auth_methods.iter().any(|m| m == "client_secret_basic") {
                return invalid("client_secret_basic not supported");
            }
            return match self.clients.get(&id) {
                Some(c) if c.secret.as_deref() == Some(secret.as_str()) => Ok(id),
                _ => invalid("bad client credentials"),
            };
        }
        if let Some(assertion) = get(p, "client_assertion") {
            if get(p, "client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return invalid("bad client_assertion_type");
            }
            return self.verify_assertion(assertion);
        }
        let Some(id) = get(p, "client_id").map(str::to_owned) else { return invalid("no client authentication") };
        if self.options.cimd && id.starts_with("https://") {
            return Ok(id);
        }
        let Some(c) = self.clients.get(&id).cloned() else { return invalid("unknown client") };
        match (get(p, "client_secret"), &c.secret) {
            (Some(s), Some(want)) if s == want => {
                if !self.options.auth_methods.iter().any(|m| m == "client_secret_post") {
                    return invalid("client_secret_post not supported");
                }
                Ok(id)
            }
            (None, None) => Ok(id),
            (None, Some(_)) if c.method == "none" => Ok(id),
            _ => invalid("bad client secret"),
        }
    }

    fn verify_assertion(&mut self, jwt: &str) -> Result<String, String> {
        use p256::ecdsa::signature::Verifier;
        let parts: Vec<&str> = jwt.split('.').collect();
        let [h, c, s] = parts[..] else { return Err("not a compact jws".into()) };
        let dec = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|_| "bad base64url".to_string());
        let header: Value = serde_json::from_slice(&dec(h)?).map_err(|_| "bad header")?;
        let claims: Value = serde_json::from_slice(&dec(c)?).map_err(|_| "bad claims")?;
        if header["alg"] != "ES256" {
            return Err("alg must be ES256".into());
        }
        let id = claims["iss"].as_str().ok_or("no iss")?.to_owned();
        if claims["sub"].as_str() != Some(id.as_str()) {
            return Err("sub must equal iss".into());
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => a.trim_end_matches('/') == self.options.issuer(),
            Value::Array(v) => v.iter().any(|a| a.as_str().map(|a| a.trim_end_matches('/')) == Some(self.options.issuer().as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err("aud must be the issuer".into());
        }
        let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
        if self.used_jti.contains(&jti) {
            return Err("jti replayed".into());
        }
        if claims["exp"].as_u64().is_none() || claims["iat"].as_u64().is_none() {
            return Err("exp and iat required".into());
        }
        let key = self.clients.get(&id).and_then(|c| c.jwt_key.clone()).ok_or("client has no key")?;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key).map_err(|_| "bad key")?;
        let sig = p256::ecdsa::Signature::from_slice(&dec(s)?).map_err(|_| "bad signature encoding")?;
        vk.verify(format!("{h}.{c}").as_bytes(), &sig).map_err(|_| "signature does not verify")?;
        self.used_jti.insert(jti);
        Ok(id)
    }

    /// Issues tokens under `grant`, or under a new grant of `grant_type` when `None`.
    fn issue(
        &mut self,
        client_id: &str,
        scope: Option<String>,
        resource: Option<String>,
        with_refresh: bool,
        grant: Result<u64, &str>,
    ) -> http::Response<Vec<u8>> {
        let scope = self.options.grant_scope_override.clone().or(scope);
        let scopes: Vec<String> = scope.as_deref().map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
        let now = self.now();
        let grant = grant.unwrap_or_else(|grant_type| self.ledger.new_grant(client_id, grant_type, &scopes, now));
        let access = self.mint("at");
        let jkt = self.pending_jkt.take();
        let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
        let lifetime = self.options.token_lifetime;
        let expires_at = lifetime.map(|l| now.saturating_add(l.saturating_mul(1000)));
        let t = Token { scope: scopes.clone(), client_id: client_id.to_owned(), resource: resource.clone(), jkt, grant, expires_at };
        self.tokens.insert(access.clone(), t.clone());
        let record = |value: &str, kind| ledger::Issued {
            value: value.to_owned(),
            kind,
            grant,
            client_id: client_id.to_owned(),
            scope: scopes.clone(),
            resource: resource.clone(),
            issued_at: now,
            lifetime_secs: if kind == ledger::TokenKind::Access { lifetime } else { None },
            revoked_at: None,
            spent_at: None,
        };
        self.ledger.issue(record(&access, ledger::TokenKind::Access));
        let mut v = json!({"access_token": access, "token_type": token_type});
        if let Some(l) = self.options.token_lifetime {
            v["expires_in"] = json!(l);
        }
        if let Some(s) = &scope {
            v["scope"] = json!(s);
        }
        if with_refresh && self.options.refresh_tokens {
            let rt = self.mint("rt");
            self.ledger.issue(record(&rt, ledger::TokenKind::Refresh));
            self.refresh.insert(rt.clone(), t);
            v["refresh_token"] = json!(rt);
        }
        let mut r = json_resp(200, v);
        r.headers_mut().insert("cache-control", http::HeaderValue::from_static("no-store"));
        r
    }

    fn token(&mut self, p: &[(String, String)], authz: Option<&str>, proof: Option<&str>) -> http::Response<Vec<u8>> {
        self.pending_jkt = None;
        if let (true, Some(proof)) = (self.options.dpop, proof) {
            let url = format!("{}/token", self.options.issuer());
            match self.verify_dpop(proof, "POST", &url, None, self.options.dpop_as_nonce.clone().as_deref()) {
                Ok(jkt) => self.pending_jkt = Some(jkt),
                Err(e) if e == "nonce" => {
                    let mut r = oauth_error(400, "use_dpop_nonce", "a DPoP nonce is required");
                    let n = self.options.dpop_as_nonce.clone().unwrap_or_default();
                    r.headers_mut().insert("dpop-nonce", http::HeaderValue::from_str(&n).unwrap_or(http::HeaderValue::from_static("n")));
                    return r;
                }
                Err(e) => return oauth_error(400, "invalid_dpop_proof", &e),
            }
        }
        if self.options.token_html_500 {
            return resp(500, "text/html", b"<html><body>Internal Server Error</body></html>".to_vec());
        }
        // RFC 7523 §3.1: client authentication is optional with the JWT bearer grant.
        let anonymous_jwt_bearer = get(p, "grant_type") == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            && authz.is_none()
            && get(p, "client_id").is_none()
            && get(p, "client_assertion").is_none();
        let client_id = match self.authenticate(p, authz) {
            Ok(id) => id,
            Err(_) if anonymous_jwt_bearer => String::new(),
            Err(why) => return oauth_error(401, "invalid_client", &why),
        };
        let o = self.options.clone();
        let resource = get(p, "resource").map(str::to_owned);
        if o.require_resource && resource.as_deref() != Some(o.resource().as_str()) {
            return oauth_error(400, "invalid_target", "resource missing or wrong");
        }
        match get(p, "grant_type") {
            Some("authorization_code") => {
                let code = get(p, "code").unwrap_or("").to_owned();
                let now = self.now();
                let refuse = |this: &mut Self, error: &str, desc: &str| {
                    this.ledger.presented(ledger::Presented::Code, &code, &client_id, Some(error), now);
                    oauth_error(400, error, desc)
                };
                let Some(g) = self.grants.remove(&code) else {
                    return refuse(self, "invalid_grant", "unknown or used code");
                };
                if g.client_id != client_id || Some(g.redirect_uri.as_str()) != get(p, "redirect_uri") {
                    return refuse(self, "invalid_grant", "client or redirect_uri mismatch");
                }
                let verifier = get(p, "code_verifier").unwrap_or("");
                if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != g.challenge {
                    return refuse(self, "invalid_grant", "pkce verification failed");
                }
                if g.resource != resource {
                    return refuse(self, "invalid_target", "resource differs from the authorization request");
                }
                self.ledger.presented(ledger::Presented::Code, &code, &client_id, None, now);
                self.ledger.code_redeemed(&code, now);
                self.issue(&client_id, g.scope, resource, true, Err("authorization_code"))
            }
            Some("refresh_token") => {
                let Some(rt) = get(p, "refresh_token") else { return oauth_error(400, "invalid_request", "no refresh_token") };
                let now = self.now();
                let refuse = |this: &mut Self, desc: &str| {
                    this.ledger.presented(ledger::Presented::RefreshToken, rt, &client_id, Some("invalid_grant"), now);
                    oauth_error(400, "invalid_grant", desc)
                };
                if o.refresh_invalid_grant {
                    return refuse(self, "refresh token revoked");
                }
                let Some(t) = self.refresh.get(rt).cloned() else {
                    let reused = self.ledger.token(rt).filter(|t| t.spent_at.is_some()).map(|t| t.grant);
                    if let (true, Some(grant)) = (o.refresh_reuse_revokes_grant, reused) {
                        self.revoke_grant(grant);
                    }
                    return refuse(self, "unknown refresh token");
                };
                if t.client_id != client_id {
                    return refuse(self, "refresh token of another client");
                }
                self.ledger.presented(ledger::Presented::RefreshToken, rt, &client_id, None, now);
                if o.rotate_refresh {
                    self.refresh.remove(rt);
                    self.ledger.spent(rt, now);
                }
                let scope = (!t.scope.is_empty()).then(|| t.scope.join(" "));
                let mut r = self.issue(&client_id, scope, resource, o.rotate_refresh, Ok(t.grant));
                if !o.rotate_refresh {
                    // Without rotation the response carries no new refresh token.
                    if let Ok(mut v) = serde_json::from_slice::<Value>(r.body()) {
                        v.as_object_mut().map(|m| m.remove("refresh_token"));
                        *r.body_mut() = v.to_string().into_bytes();
                    }
                }
                r
            }
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                let assertion = get(p, "assertion");
                if assertion.is_some() && assertion == o.workload_assertion.as_deref() {
                    return self.issue(&client_id, get(p, "scope").map(str::to_owned), resource, false, Err("jwt_bearer"));
                }
                let Some((aud, res, scope)) = assertion.and_then(|a| self.jags.remove(a)) else {
                    return oauth_error(400, "invalid_grant", "unknown or used assertion");
                };
                if aud != o.issuer() || Some(res.as_str()) != resource.as_deref().or(Some(res.as_str())) {
                    return oauth_error(400, "invalid_grant", "assertion audience or resource mismatch");
                }
                self.issue(&client_id, scope, Some(res), false, Err("jwt_bearer"))
            }
            Some("urn:ietf:params:oauth:grant-type:device_code") if o.device => {
                let code = get(p, "device_code").unwrap_or("").to_owned();
                let Some(d) = self.devices.get(&code).cloned() else { return oauth_error(400, "invalid_grant", "unknown device code") };
                if d.client_id != client_id {
                    return oauth_error(400, "invalid_grant", "device code of another client");
                }
                if d.expires_at.is_some_and(|e| self.now() >= e) {
                    self.devices.remove(&code);
                    return oauth_error(400, "expired_token", "the device code expired");
                }
                if self.options.device_slow_downs > 0 {
                    self.options.device_slow_downs -= 1;
                    return oauth_error(400, "slow_down", "polling too fast");
                }
                match d.approved {
                    None => oauth_error(400, "authorization_pending", "the person has not finished"),
                    Some(false) => {
                        self.devices.remove(&code);
                        oauth_error(400, "access_denied", "the person refused")
                    }
                    Some(true) => {
                        self.devices.remove(&code);
                        if d.resource != resource {
                            return oauth_error(400, "invalid_target", "resource differs from the device authorization request");
                        }
                        self.issue(&client_id, d.scope, resource, true, Err("device_code"))
                    }
                }
            }
            Some("client_credentials") => {
                if !o.grant_types.iter().any(|g| g == "client_credentials") {
                    return oauth_error(400, "unsupported_grant_type", "client_credentials not enabled");
                }
                if !self.clients.get(&client_id).is_some_and(|c| c.secret.is_some() || c.jwt_key.is_some()) {
                    return oauth_error(401, "invalid_client", "client_credentials needs a confidential client");
                }
                self.issue(&client_id, get(p, "scope").map(str::to_owned), resource, false, Err("client_credentials"))
            }
            _ => oauth_error(400, "unsupported_grant_type", "unknown grant_type"),
        }
    }

    /// Verifies a DPoP proof (RFC 9449 §4.3) with the key in its own header; returns the key's
    /// thumbprint. `Err("nonce")` when the nonce is missing or wrong.
    fn verify_dpop(&mut self, proof: &str, method: &str, url: &str, token: Option<&str>, nonce: Option<&str>) -> Result<String, String> {
        use p256::ecdsa::signature::Verifier;
        let parts: Vec<&str> = proof.split('.').collect();
        let [h, c, s] = parts[..] else { return Err("not a compact jws".into()) };
        let dec = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|_| "bad base64url".to_string());
        let header: Value = serde_json::from_slice(&dec(h)?).map_err(|_| "bad header")?;
        let claims: Value = serde_json::from_slice(&dec(c)?).map_err(|_| "bad claims")?;
        if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
            return Err("typ must be dpop+jwt and alg ES256".into());
        }
        let jwk = &header["jwk"];
        if jwk.get("d").is_some() {
            return Err("private key in jwk".into());
        }
        let (x, y) = (jwk["x"].as_str().ok_or("no x")?, jwk["y"].as_str().ok_or("no y")?);
        let mut sec1 = vec![4u8];
        sec1.extend(dec(x)?);
        sec1.extend(dec(y)?);
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "bad jwk")?;
        let sig = p256::ecdsa::Signature::from_slice(&dec(s)?).map_err(|_| "bad signature encoding")?;
        vk.verify(format!("{h}.{c}").as_bytes(), &sig).map_err(|_| "signature does not verify")?;
        if claims["htm"] != method || claims["htu"] != url {
            return Err(format!("htm/htu mismatch: {} {}", claims["htm"], claims["htu"]));
        }
        if let Some(t) = token {
            if claims["ath"] != URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())).as_str() {
                return Err("ath mismatch".into());
            }
        }
        let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
        if self.used_jti.contains(&jti) {
            return Err("jti replayed".into());
        }
        if nonce.is_some() && claims["nonce"].as_str() != nonce {
            return Err("nonce".into());
        }
        self.used_jti.insert(jti);
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
    }

    /// The IdP's RFC 8693 endpoint: an ID token for an ID-JAG.
    fn idp_token_exchange(&mut self, p: &[(String, String)]) -> http::Response<Vec<u8>> {
        let o = self.options.clone();
        let want = |k: &str, v: &str| get(p, k) == Some(v);
        if !want("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
            || !want("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag")
            || !want("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")
        {
            return oauth_error(400, "invalid_request", "not an id-jag token exchange");
        }
        if get(p, "subject_token") != o.idp_id_token.as_deref() {
            return oauth_error(400, "invalid_grant", "invalid id token");
        }
        let (Some(aud), Some(res)) = (get(p, "audience"), get(p, "resource")) else {
            return oauth_error(400, "invalid_request", "audience and resource are required");
        };
        let jag = self.mint("jag");
        self.jags.insert(jag.clone(), (aud.to_owned(), res.to_owned(), get(p, "scope").map(str::to_owned)));
        json_resp(200, json!({"access_token": jag, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag", "token_type": "N_A"}))
    }

    fn register(&mut self, p: &[(String, String)]) -> http::Response<Vec<u8>> {
        let grants: Vec<String> = get(p, "grant_types").and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default();
        let device = grants.iter().any(|g| g == "urn:ietf:params:oauth:grant-type:device_code");
        let uris = match get(p, "redirect_uris").and_then(|v| serde_json::from_str::<Vec<String>>(v).ok()) {
            Some(uris) => uris,
            // RFC 7591 §2: redirect URIs are for redirect-based grants only.
            None if device && !grants.iter().any(|g| g == "authorization_code") => Vec::new(),
            None => return oauth_error(400, "invalid_redirect_uri", "redirect_uris required"),
        };
        if get(p, "application_type").is_none() {
            return oauth_error(400, "invalid_client_metadata", "application_type required");
        }
        if uris.iter().any(|u| Url::parse(u).map(|u| !(is_loopback_ip_url(&u) || u.host_str() == Some("localhost"))).unwrap_or(true)) {
            return oauth_error(400, "invalid_redirect_uri", "only loopback redirect uris");
        }
        self.counter += 1;
        let id = format!("dyn-{}", self.counter);
        let (secret, method) = if self.options.dcr_confidential {
            (Some(self.mint("secret")), "client_secret_basic".to_owned())
        } else {
            (None, get(p, "token_endpoint_auth_method").unwrap_or("client_secret_basic").to_owned())
        };
        self.clients
            .insert(id.clone(), Client { secret: secret.clone(), redirect_uris: uris.clone(), method: method.clone(), jwt_key: None });
        if device {
            self.device_clients.insert(id.clone());
        }
        let now = self.now();
        self.ledger.registrations.push(ledger::Registration { client_id: id.clone(), secret: secret.clone(), at: now });
        let mut v = json!({"client_id": id, "redirect_uris": uris, "token_endpoint_auth_method": method, "client_id_issued_at": 0});
        if !grants.is_empty() {
            v["grant_types"] = json!(grants);
        }
        if let Some(s) = secret {
            v["client_secret"] = json!(s);
            v["client_secret_expires_at"] = json!(0);
        }
        json_resp(201, v)
    }

    fn challenge(&self, error: Option<(&str, &str)>, scope: Option<&str>) -> http::Response<Vec<u8>> {
        let o = &self.options;
        let mut parts = Vec::new();
        if let Some((e, d)) = error {
            parts.push(format!("error=\"{e}\""));
            parts.push(format!("error_description=\"{d}\""));
        }
        if let Some(s) = scope.or(o.challenge_scope.as_deref()) {
            parts.push(format!("scope=\"{s}\""));
        }
        if o.prm_in_header {
            let p = match &o.prm {
                PrmLocation::PathAware => Some(format!("/.well-known/oauth-protected-resource{}", o.mcp_path)),
                PrmLocation::Root => Some("/.well-known/oauth-protected-resource".into()),
                PrmLocation::Custom(p) => Some(p.clone()),
                PrmLocation::None => None,
            };
            if let Some(p) = p {
                parts.push(format!("resource_metadata=\"{}{p}\"", o.resource_origin));
            }
        }
        let status = if error.map(|e| e.0) == Some("insufficient_scope") { 403 } else { 401 };
        let value = if parts.is_empty() { "Bearer".to_owned() } else { format!("Bearer {}", parts.join(", ")) };
        http::Response::builder()
            .status(status)
            .header("www-authenticate", value)
            .header("content-type", "application/json")
            .body(br#"{"error":"unauthorized"}"#.to_vec())
            .unwrap_or_default()
    }

    /// Checks the bearer token of a legacy event-stream open (logged like any request):
    /// `Some` is the challenge to send instead of the stream.
    pub fn open_event_stream(&mut self, target: &str, authz: Option<&str>) -> Option<http::Response<Vec<u8>>> {
        let result = if self.options.open {
            Ok(())
        } else {
            match authz.and_then(|a| a.strip_prefix("Bearer ")).map(|b| self.tokens.get(b).cloned()) {
                None => Err(self.challenge(None, None)),
                Some(Some(t))
                    if !self.expired(&t)
                        && (!self.options.require_resource || t.resource.as_deref() == Some(self.options.resource().as_str())) =>
                {
                    Ok(())
                }
                Some(_) => Err(self.challenge(Some(("invalid_token", "The access token is invalid or expired")), None)),
            }
        };
        let status = result.as_ref().map(|_| 200).unwrap_or_else(|r| r.status().as_u16());
        self.log.push(Seen {
            method: "GET".into(),
            target: target.to_owned(),
            params: Vec::new(),
            authorization: authz.map(str::to_owned),
            status,
        });
        result.err()
    }

    /// The MCP endpoint: JSON-RPC over Streamable HTTP (JSON responses), behind bearer auth.
    fn mcp(&mut self, req: &http::Request<Vec<u8>>, authz: Option<&str>) -> http::Response<Vec<u8>> {
        if self.options.open {
            let all = Token {
                scope: vec!["mcp:admin".into()],
                client_id: String::new(),
                resource: Some(self.options.resource()),
                jkt: None,
                grant: 0,
                expires_at: None,
            };
            return self.rpc(req, &all);
        }
        let (scheme, bearer) = match authz.and_then(|a| a.split_once(' ')) {
            Some((s, t)) => (s.to_ascii_lowercase(), t.trim()),
            None => return self.challenge(None, None),
        };
        let Some(tok) = self.tokens.get(bearer).cloned().filter(|t| !self.expired(t)) else {
            return self.challenge(Some(("invalid_token", "The access token is invalid or expired")), None);
        };
        match (&tok.jkt, scheme.as_str()) {
            (None, "bearer") => {}
            (Some(jkt), "dpop") => {
                let proof = req.headers().get("dpop").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let url = self.options.mcp_url();
                match self.verify_dpop(&proof, req.method().as_str(), &url, Some(bearer), self.options.dpop_rs_nonce.clone().as_deref()) {
                    Ok(k) if &k == jkt => {}
                    Ok(_) => return self.challenge(Some(("invalid_dpop_proof", "proof key does not match the token")), None),
                    Err(e) if e == "nonce" => {
                        let mut r = self.challenge(Some(("use_dpop_nonce", "A DPoP nonce is required")), None);
                        let v = r.headers()["www-authenticate"].to_str().unwrap_or("").replacen("Bearer", "DPoP", 1);
                        r.headers_mut()
                            .insert("www-authenticate", http::HeaderValue::from_str(&v).unwrap_or(http::HeaderValue::from_static("DPoP")));
                        let n = self.options.dpop_rs_nonce.clone().unwrap_or_default();
                        r.headers_mut()
                            .insert("dpop-nonce", http::HeaderValue::from_str(&n).unwrap_or(http::HeaderValue::from_static("n")));
                        return r;
                    }
                    Err(e) => return self.challenge(Some(("invalid_dpop_proof", &e)), None),
                }
            }
            _ => return self.challenge(Some(("invalid_token", "wrong authorization scheme for this token")), None),
        }
        if self.options.require_resource && tok.resource.as_deref() != Some(self.options.resource().as_str()) {
            return self.challenge(Some(("invalid_token", "The access token is for another resource")), None);
        }
        self.rpc(req, &tok)
    }

    /// The `insufficient_scope` answer if `what` (a method, or `tools/call:<name>`) needs a
    /// scope the token lacks ([`Options::method_scopes`]).
    fn lacking_scope(&self, what: &str, tok: &Token) -> Option<http::Response<Vec<u8>>> {
        let (_, need) = self.options.method_scopes.iter().find(|(m, s)| m == what && !tok.scope.iter().any(|t| t == s))?;
        Some(self.challenge(Some(("insufficient_scope", "Additional permission required")), Some(need)))
    }

    fn rpc(&mut self, req: &http::Request<Vec<u8>>, tok: &Token) -> http::Response<Vec<u8>> {
        if req.method() != http::Method::POST {
            return resp(405, "text/plain", b"method not allowed".to_vec());
        }
        let Ok(msg) = serde_json::from_slice::<Value>(req.body()) else {
            return json_resp(400, json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}}));
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        if self.options.stateless_2026 && !method.starts_with("notifications/") {
            let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let meta_version = msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"].as_str().unwrap_or("");
            if method == "initialize" || header("mcp-protocol-version") != "2026-07-28" || meta_version != "2026-07-28" {
                let err = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "Unsupported protocol version", "data": {"supported": ["2026-07-28"]}}});
                return json_resp(400, err);
            }
            if header("mcp-method") != method {
                return json_resp(
                    400,
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32020, "message": "Header mismatch: Mcp-Method"}}),
                );
            }
            if method == "server/discover" {
                let r = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "serverInfo": {"name": "mcp-oauth-test-server", "version": "0.1.0"}, "ttlMs": 60000});
                return json_resp(200, json!({"jsonrpc": "2.0", "id": id, "result": r}));
            }
        }
        let session = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if self.options.sessions && method != "initialize" && !session.as_ref().is_some_and(|s| self.sessions.contains(s)) {
            return resp(404, "text/plain", b"unknown or missing Mcp-Session-Id".to_vec());
        }
        let result = match method {
            "initialize" => json!({
                "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-11-25"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mcp-oauth-test-server", "version": "0.1.0"},
            }),
            "notifications/initialized" => return resp(202, "application/json", Vec::new()),
            "tools/list" => {
                if let Some(r) = self.lacking_scope(method, tok) {
                    return r;
                }
                json!({"tools": [
                {"name": "echo", "description": "Echoes its text argument", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
                {"name": "admin-tool", "description": "Needs the admin scope", "inputSchema": {"type": "object"}},
                ]})
            }
            "tools/call" => {
                let name = msg["params"]["name"].as_str().unwrap_or("");
                if let Some(r) = self.lacking_scope(&format!("tools/call:{name}"), tok) {
                    return r;
                }
                if name == "admin-tool" {
                    if let Some(need) = self.options.admin_scope.clone() {
                        if !need.split_whitespace().all(|s| tok.scope.iter().any(|t| t == s)) {
                            return self.challenge(Some(("insufficient_scope", "Additional permission required")), Some(&need));
                        }
                    }
                }
                let text = msg["params"]["arguments"]["text"].as_str().unwrap_or("ok").to_owned();
                json!({"content": [{"type": "text", "text": text}], "isError": false})
            }
            _ => return json_resp(200, json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}})),
        };
        let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
        let mut r = if self.options.sse_responses {
            resp(200, "text/event-stream", format!("event: message\ndata: {body}\n\n").into_bytes())
        } else {
            json_resp(200, body)
        };
        if self.options.sessions && method == "initialize" {
            self.counter += 1;
            let sid = format!("sess-{}", self.counter);
            self.sessions.push(sid.clone());
            r.headers_mut().insert("mcp-session-id", http::HeaderValue::from_str(&sid).unwrap_or(http::HeaderValue::from_static("x")));
        }
        r
    }
}
