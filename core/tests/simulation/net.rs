//! The simulated internet: authorization servers (independent `TestServer`s, one per issuer),
//! the MCP resource (served by the instance of the authorization server it currently trusts),
//! a hostile host, and the faults injected before a request reaches a server.

use crate::rng::Rng;
use mcp_oauth_core::http::{HttpRequest, HttpResponse, TransportFailure, TransportFailureKind};
use mcp_oauth_tests::TestServer;
use url::Url;

/// How an authorization server fails during an outage. Every kind fails before the server
/// processes the request: nothing it would have done happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A proxy's HTML error page with this 5xx status.
    Html(u16),
    /// `503` with `{"error":"temporarily_unavailable"}`.
    Unavailable,
    /// `500` with `{"error":"server_error"}`.
    ServerError,
    /// The request times out.
    Timeout,
    /// The connection is dropped.
    Dropped,
}

/// One outage window of one authorization server.
#[derive(Debug, Clone)]
pub struct Outage {
    pub server: usize,
    pub from: u64,
    pub until: u64,
    pub kind: FaultKind,
    /// Of every thousand requests in the window, how many fail.
    pub per_mille: u64,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The MCP resource (its endpoint or its protected resource metadata), served by this
    /// instance.
    Resource(usize),
    /// An authorization server's own endpoints.
    Auth(usize),
    /// The hostile host.
    Attacker,
    /// Nothing answers there.
    Nowhere,
}

pub struct Net {
    /// True time (the authorization servers' clock), in milliseconds.
    pub now: u64,
    pub servers: Vec<TestServer>,
    /// The instance whose authorization server the resource trusts (and which serves it).
    pub rs: usize,
    pub rs_origin: String,
    pub mcp_path: String,
    pub attacker_origin: String,
    pub outages: Vec<Outage>,
    /// While `now` is before this, the resource demands a fresh DPoP nonce on every request.
    pub storm_until: u64,
    /// How many MCP responses an impostor still replaces with its own challenge.
    pub hostile_left: u32,
    /// Bumped whenever the resource's metadata changes (a migration).
    pub prm_generation: u32,
    /// Requests sent by clients and browsers.
    pub http_requests: u64,
    nonces: u64,
}

pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Where a request goes, read from its URI without a full URL parse (the adapters' requests
/// come from core, which writes URLs in their serialized form).
#[derive(Debug, Clone)]
pub struct Target {
    pub origin: String,
    pub path: String,
    pub query: Option<String>,
}

impl Target {
    pub fn of(uri: &http::Uri) -> Self {
        Target {
            origin: format!("{}://{}", uri.scheme_str().unwrap_or("https"), uri.authority().map_or("", |a| a.as_str())),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
        }
    }

    pub fn from_url(url: &Url) -> Self {
        Target { origin: origin(url), path: url.path().to_owned(), query: url.query().map(str::to_owned) }
    }

    /// Origin and path.
    pub fn endpoint(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }

    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes()).into_owned()
    }
}

pub fn json_response(status: u16, body: &str) -> HttpResponse {
    http::Response::builder().status(status).header("content-type", "application/json").body(body.as_bytes().to_vec()).unwrap_or_default()
}

impl Net {
    pub fn new(servers: Vec<TestServer>, now: u64) -> Self {
        let o = servers[0].options.clone();
        Net {
            now,
            rs: 0,
            rs_origin: o.resource_origin.clone(),
            mcp_path: o.mcp_path.clone(),
            attacker_origin: "https://attacker.example".into(),
            servers,
            outages: Vec::new(),
            storm_until: 0,
            hostile_left: 0,
            prm_generation: 0,
            http_requests: 0,
            nonces: 0,
        }
    }

    pub fn mcp_url(&self) -> String {
        format!("{}{}", self.rs_origin, self.mcp_path)
    }

    pub fn dest(&self, t: &Target) -> Dest {
        let o = &t.origin;
        if *o == self.rs_origin && (t.path == self.mcp_path || t.path.starts_with("/.well-known/oauth-protected-resource")) {
            return Dest::Resource(self.rs);
        }
        if let Some(i) = self.servers.iter().position(|s| s.options.auth_origin == *o) {
            return Dest::Auth(i);
        }
        if *o == self.attacker_origin {
            return Dest::Attacker;
        }
        Dest::Nowhere
    }

    /// The index of the server with this issuer.
    pub fn server_of_issuer(&self, issuer: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.options.issuer() == issuer)
    }

    /// The token endpoint URL of server `i` (origin and path).
    pub fn token_endpoint(&self, i: usize) -> String {
        format!("{}/token", self.servers[i].options.issuer())
    }

    pub fn authorization_endpoint(&self, i: usize) -> String {
        format!("{}/authorize", self.servers[i].options.issuer())
    }

    /// True if an outage of any server overlaps `[from, until]`.
    pub fn outage_overlaps(&self, from: u64, until: u64) -> bool {
        self.outages.iter().any(|o| o.from <= until && o.until >= from)
    }

    /// The fault this request to `dest` meets, if any.
    pub fn fault(&self, rng: &mut Rng, dest: Dest) -> Option<FaultKind> {
        let Dest::Auth(i) = dest else { return None };
        let o = self.outages.iter().find(|o| o.server == i && o.from <= self.now && self.now < o.until)?;
        (rng.below(1000) < o.per_mille).then_some(o.kind)
    }

    /// What a client sees of a fault.
    pub fn fault_result(kind: FaultKind) -> Result<HttpResponse, TransportFailure> {
        match kind {
            FaultKind::Html(status) => Ok(http::Response::builder()
                .status(status)
                .header("content-type", "text/html")
                .body(b"<html><body><h1>Bad Gateway</h1></body></html>".to_vec())
                .unwrap_or_default()),
            FaultKind::Unavailable => {
                Ok(json_response(503, r#"{"error":"temporarily_unavailable","error_description":"try again later"}"#))
            }
            FaultKind::ServerError => Ok(json_response(500, r#"{"error":"server_error","error_description":"internal error"}"#)),
            FaultKind::Timeout => Err(TransportFailure { kind: TransportFailureKind::Timeout, message: "timed out".into() }),
            FaultKind::Dropped => Err(TransportFailure { kind: TransportFailureKind::Connect, message: "connection reset".into() }),
        }
    }

    /// A fresh nonce value.
    pub fn nonce(&mut self, prefix: &str) -> String {
        self.nonces += 1;
        format!("{prefix}-{}", self.nonces)
    }

    /// What the hostile host answers to anything: a DPoP nonce demand.
    pub fn attacker_response(&mut self) -> HttpResponse {
        let n = self.nonce("evil");
        let mut r = json_response(400, r#"{"error":"use_dpop_nonce","error_description":"use this nonce"}"#);
        r.headers_mut().insert("dpop-nonce", http::HeaderValue::from_str(&n).unwrap_or(http::HeaderValue::from_static("evil")));
        r
    }

    /// An impostor's challenge for an MCP request: `resource_metadata` on the hostile host.
    pub fn hostile_challenge(&self) -> HttpResponse {
        let v = format!(
            r#"Bearer error="invalid_token", error_description="expired", resource_metadata="{}/.well-known/oauth-protected-resource""#,
            self.attacker_origin
        );
        let mut r = json_response(401, r#"{"error":"unauthorized"}"#);
        r.headers_mut().insert("www-authenticate", http::HeaderValue::from_str(&v).unwrap_or(http::HeaderValue::from_static("Bearer")));
        r
    }

    /// Hands the request to server `i` at the current time.
    pub fn deliver(&mut self, i: usize, req: &HttpRequest) -> HttpResponse {
        let now = self.now;
        let s = &mut self.servers[i];
        s.set_time(now);
        s.handle(req)
    }
}
