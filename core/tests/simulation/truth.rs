//! The invariants of a credential's life, judged against the ground truth the authorization
//! servers keep (their ledgers) and what the simulation itself saw (who obtained which token,
//! which tokens the resource rejected, which grant each store held).

use crate::net::{Net, Target};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use mcp_oauth_core::http::HttpRequest;
use mcp_oauth_tests::ledger::{Issued, Presented, TokenKind};
use std::collections::{HashMap, HashSet};
use std::fmt;
use url::Url;

/// Who a process acts as. Tokens issued to one identity's clients must never be used by the
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The interactive user (dynamically registered clients).
    User,
    /// The machine client (pre-registered id and secret, client credentials).
    Service,
}

/// The invariants, each judged against ground truth (the servers' ledgers) after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// When a browser GETs an authorization endpoint for a process: the endpoint belongs to
    /// the server the resource trusts now; and the grant this store key last held for the
    /// process's identity at that server is gone: revoked, or with no refresh token the server
    /// would redeem and no access token valid for more than half its lifetime (plus the
    /// clock tolerance) that the resource never rejected. Exceptions: a step-up (the request
    /// is answering `403 insufficient_scope`) for a scope the grant lacks and that PRM
    /// `scopes_supported` did not offer (a first login asks for all of those, SPEC 53); a
    /// request an impostor's challenge reached. A configuration with `step_up: false` never
    /// logs in to step up.
    Login,
    /// No request carries a refresh token the server already redeemed while rotating, a code
    /// it redeemed, or either after the server refused it with `invalid_grant`. (A request
    /// refused before the grant logic, such as by a DPoP nonce demand, spends nothing, so the
    /// RFC 9449 retry is fine.)
    Spent,
    /// Every request (client and browser) is searched: URL, headers (Basic credentials
    /// decoded), form values or body, and the header and claims of any JWT in them. An access
    /// token may go only to the MCP endpoint; a refresh token, code, PKCE verifier or client
    /// secret only to the token endpoint of the server that issued it (a verifier: the server
    /// its attempt was opened at; the service's secret: the server it was registered at); a
    /// DPoP private key nowhere.
    Destination,
    /// A renewal (a refresh the server redeems, or a new client-credentials grant of the same
    /// scope) is allowed when the store's current access token of that grant (or client) was
    /// revoked, was rejected by the resource (`invalid_token`, or a DPoP nonce demanded twice
    /// in one request), or is at least [`REFRESH_POINT`] of its lifetime old, minus a
    /// tolerance of the clock-offset difference between the renewing process and the one that
    /// obtained the token plus [`TOLERANCE_MS`]. A token without expiry is never renewed
    /// unless rejected or revoked.
    RenewalRate,
    /// After a step in which a fault was injected, every store key that held a refresh token
    /// live at the resource's server before the step still holds one (of the same identity).
    TransientKeepsGrant,
    /// An application request makes at most [`REQUEST_BOUND`](crate::env::REQUEST_BOUND)
    /// HTTP requests (MCP and OAuth, not the browser's), and a flow ends within 4096 outputs.
    Bounded,
    /// An application request fails only if a fault touched it (an injected fault on one of
    /// its requests, an outage window overlapping it, a DPoP nonce storm, a token that expired
    /// on its way, an absent or too slow person, an impostor's challenge), or if neither the
    /// grant is alive with the needed scope (at its start or end) nor a login is possible (a
    /// person who can finish one; for the service, credentials at the resource's server), or
    /// if it is `InsufficientScope` for a configuration with `step_up: false`.
    Liveness,
    /// A process authenticates at a token endpoint, and opens a login, only as a client of its
    /// own identity, and sends the resource only access tokens issued to such a client.
    Identity,
    /// The first protected resource metadata request of a flow has a cause: the machine never
    /// discovered; the resource's metadata changed since (a migration); the machine holds no
    /// refresh token; a refresh was already tried in this application request; the request is
    /// a step-up (a login follows); or the challenge names other metadata than the machine's.
    Rediscovery,
}

impl Invariant {
    pub const ALL: [Invariant; 9] = [
        Invariant::Login,
        Invariant::Spent,
        Invariant::Destination,
        Invariant::RenewalRate,
        Invariant::TransientKeepsGrant,
        Invariant::Bounded,
        Invariant::Liveness,
        Invariant::Identity,
        Invariant::Rediscovery,
    ];

    pub fn by_name(name: &str) -> Option<Invariant> {
        Self::ALL.into_iter().find(|i| i.to_string() == name)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::Login => "login-only-when-needed",
            Invariant::Spent => "spent-credential-never-resent",
            Invariant::Destination => "secrets-only-where-they-belong",
            Invariant::RenewalRate => "one-renewal-per-lifetime",
            Invariant::TransientKeepsGrant => "transient-failure-keeps-grant",
            Invariant::Bounded => "bounded-requests",
            Invariant::Liveness => "liveness",
            Invariant::Identity => "own-identity-only",
            Invariant::Rediscovery => "discovery-needs-a-cause",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: Invariant,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The MCP endpoint.
    Resource,
    /// The token endpoint of this server.
    TokenEndpoint(usize),
    /// Never sent anywhere (a DPoP private key; a verifier not yet bound to an attempt).
    Nowhere,
}

#[derive(Debug, Clone, Copy)]
struct Secret {
    kind: &'static str,
    owner: Owner,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    issued: usize,
    codes: usize,
    registrations: usize,
    presentations: usize,
    grants: usize,
}

/// A renewal seen going out, judged once the server answers.
struct PendingRenewal {
    server: usize,
    refresh_token: String,
    /// The server's presentations before this request.
    presented: usize,
    verdict: Result<(), String>,
}

/// The half of the refresh point: a renewal earlier than half the token's lifetime is a
/// second renewal within one lifetime. Any skew policy that refreshes "shortly before expiry"
/// refreshes later than this.
pub const REFRESH_POINT: f64 = 0.5;
/// Slack for latency inside one flow, added to the clock-offset difference of the processes.
pub const TOLERANCE_MS: u64 = 2_000;

/// FNV-1a: the secrets map is looked up for every word of every request, and SipHash is slow
/// in debug builds.
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

#[derive(Default)]
pub struct Truth {
    secrets: FastMap<String, Secret>,
    /// Bit `n` set: some secret is `n` bytes long.
    lengths: u128,
    cursors: Vec<Cursor>,
    /// Refresh tokens (rotating) and codes the server redeemed, and anything it refused with
    /// `invalid_grant`.
    dead: HashSet<String>,
    /// Client ids per (server, client id).
    pub identities: HashMap<(usize, String), Identity>,
    /// Which process received each access token.
    obtainer: HashMap<String, usize>,
    /// Access tokens the resource (or an impostor) answered with `invalid_token`.
    pub rejected: HashSet<String>,
    /// The grant a store key last held, per issuer and identity: (server, grant).
    pub held: HashMap<(String, String, Identity), (usize, u64)>,
    /// The newest client-credentials token per (server, client): its value.
    last_cc: HashMap<(usize, String), String>,
    /// Verifiers handed out in entropy, per process, not yet bound to an attempt.
    unbound_verifiers: HashMap<usize, Vec<String>>,
    pending_renewal: Option<PendingRenewal>,
    /// Clock offset of every process, in milliseconds.
    pub offsets: Vec<i64>,
    pub violations: Vec<Violation>,
}

impl Truth {
    pub fn violate(&mut self, invariant: Invariant, message: impl Into<String>) {
        self.violations.push(Violation { invariant, message: message.into() });
    }

    pub fn add_secret(&mut self, value: &str, kind: &'static str, to_server: Option<usize>) {
        let owner = to_server.map_or(Owner::Nowhere, Owner::TokenEndpoint);
        self.secret(value.to_owned(), Secret { kind, owner });
    }

    fn secret(&mut self, value: String, s: Secret) {
        if value.len() < 128 {
            self.lengths |= 1u128 << value.len();
        }
        self.secrets.insert(value, s);
    }

    /// A verifier from entropy: it may go nowhere until its attempt's URL shows which server.
    pub fn verifier_made(&mut self, process: usize, verifier: String) {
        self.add_secret(&verifier, "pkce verifier", None);
        self.unbound_verifiers.entry(process).or_default().push(verifier);
    }

    /// The authorization URL names the server, and its `code_challenge` the verifier.
    pub fn attempt_opened(&mut self, net: &Net, process: usize, url: &Url) {
        let Some(server) = net.servers.iter().position(|s| url.as_str().starts_with(&format!("{}/authorize", s.options.issuer()))) else {
            return;
        };
        let challenge = url.query_pairs().find(|(k, _)| k == "code_challenge").map(|(_, v)| v.into_owned());
        let list = self.unbound_verifiers.entry(process).or_default();
        let found = list.iter().position(|v| {
            use sha2::Digest;
            Some(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()))) == challenge
        });
        if let Some(i) = found {
            let v = list.remove(i);
            self.add_secret(&v, "pkce verifier", Some(server));
        }
    }

    fn tolerance(&self, a: usize, b: usize) -> u64 {
        let (x, y) = (self.offsets.get(a).copied().unwrap_or(0), self.offsets.get(b).copied().unwrap_or(0));
        x.abs_diff(y) + TOLERANCE_MS
    }

    /// Takes in what server `i` issued, redeemed and registered since the last look, in answer
    /// to process `caller`.
    pub fn harvest(&mut self, net: &Net, i: usize, caller: usize) {
        if self.cursors.len() < net.servers.len() {
            self.cursors.resize(net.servers.len(), Cursor::default());
        }
        let ledger = net.servers[i].ledger();
        let c = self.cursors[i];
        for t in &ledger.issued[c.issued..] {
            let owner = match t.kind {
                TokenKind::Access => Owner::Resource,
                TokenKind::Refresh => Owner::TokenEndpoint(i),
            };
            let kind = if t.kind == TokenKind::Access { "access token" } else { "refresh token" };
            self.secret(t.value.clone(), Secret { kind, owner });
        }
        for code in &ledger.codes[c.codes..] {
            self.secret(code.value.clone(), Secret { kind: "authorization code", owner: Owner::TokenEndpoint(i) });
        }
        for r in &ledger.registrations[c.registrations..] {
            if let Some(s) = &r.secret {
                self.secret(s.clone(), Secret { kind: "client secret", owner: Owner::TokenEndpoint(i) });
            }
        }
        let rotating = net.servers[i].options.rotate_refresh;
        for p in &ledger.presentations[c.presentations..] {
            let dead = match (&p.refused, p.what) {
                (Some(e), _) => e == "invalid_grant",
                (None, Presented::Code) => true,
                (None, Presented::RefreshToken) => rotating,
            };
            if dead {
                self.dead.insert(p.value.clone());
            }
        }
        // Client credentials grants renew a token without a browser: the same rate applies.
        let now = net.now;
        let mut cc_checks = Vec::new();
        for g in &ledger.grants[c.grants..] {
            if g.grant_type != "client_credentials" {
                continue;
            }
            let Some(new) = ledger.last_access(g.id) else { continue };
            let key = (i, g.client_id.clone());
            if let Some(prev) = self.last_cc.get(&key).and_then(|v| ledger.token(v)) {
                let widened = new.scope.iter().any(|s| !prev.scope.contains(s));
                if !widened {
                    cc_checks.push(prev.clone());
                }
            }
            self.last_cc.insert(key, new.value.clone());
        }
        self.cursors[i] = Cursor {
            issued: ledger.issued.len(),
            codes: ledger.codes.len(),
            registrations: ledger.registrations.len(),
            presentations: ledger.presentations.len(),
            grants: ledger.grants.len(),
        };
        for prev in cc_checks {
            if let Err(why) = self.renewal_allowed(&prev, caller, now) {
                self.violate(Invariant::RenewalRate, format!("client credentials token renewed: {why}"));
            }
        }
    }

    /// A token response reached process `p`: it obtained this access token.
    pub fn obtained(&mut self, access_token: &str, p: usize) {
        self.obtainer.insert(access_token.to_owned(), p);
    }

    /// Whether renewing while `prev` is the store's current access token is allowed at `now`.
    fn renewal_allowed(&self, prev: &Issued, renewer: usize, now: u64) -> Result<(), String> {
        if prev.revoked_at.is_some() || self.rejected.contains(&prev.value) {
            return Ok(());
        }
        let Some(life) = prev.lifetime_secs else {
            return Err("the current access token never expires and was neither rejected nor revoked".into());
        };
        let age = now.saturating_sub(prev.issued_at);
        let obtainer = self.obtainer.get(&prev.value).copied().unwrap_or(renewer);
        let tol = self.tolerance(renewer, obtainer);
        let point = (life as f64 * 1000.0 * REFRESH_POINT) as u64;
        if age + tol >= point {
            Ok(())
        } else {
            Err(format!(
                "the current access token ({life} s lifetime) was {age} ms old; the earliest refresh point is {point} ms (tolerance {tol} ms)"
            ))
        }
    }

    /// A refresh request is about to reach server `i`: judge its timing now, count it once the
    /// server redeems it.
    pub fn refresh_leaving(&mut self, net: &Net, i: usize, refresh_token: &str, renewer: usize) {
        let ledger = net.servers[i].ledger();
        let verdict = match ledger.token(refresh_token).and_then(|t| ledger.last_access(t.grant)) {
            Some(prev) => self.renewal_allowed(prev, renewer, net.now),
            None => Ok(()),
        };
        let presented = ledger.presentations.len();
        self.pending_renewal = Some(PendingRenewal { server: i, refresh_token: refresh_token.to_owned(), presented, verdict });
    }

    /// After the answer: was the pending refresh redeemed?
    pub fn refresh_answered(&mut self, net: &Net) {
        let Some(p) = self.pending_renewal.take() else { return };
        let redeemed = net.servers[p.server].ledger().presentations[p.presented..]
            .iter()
            .any(|x| x.value == p.refresh_token && x.refused.is_none() && x.what == Presented::RefreshToken);
        if let (true, Err(why)) = (redeemed, p.verdict) {
            self.violate(Invariant::RenewalRate, format!("refreshed: {why}"));
        }
    }

    /// The identity a client id of server `i` belongs to.
    pub fn identity_of(&self, i: usize, client_id: &str) -> Option<Identity> {
        self.identities.get(&(i, client_id.to_owned())).copied()
    }

    /// The identity of an access token, by the ledgers of every server.
    pub fn token_identity(&self, net: &Net, token: &str) -> Option<(usize, Identity, String)> {
        net.servers.iter().enumerate().find_map(|(i, s)| {
            let t = s.ledger().token(token)?;
            Some((i, self.identity_of(i, &t.client_id)?, t.client_id.clone()))
        })
    }

    /// Finds every known secret in `s`: runs of URL-safe characters (a secret is one), and,
    /// inside JWTs (DPoP proofs, client assertions), their decoded header and claims.
    fn look(&self, s: &str, found: &mut Vec<(String, Secret)>, jwt: bool) {
        let b = s.as_bytes();
        let token = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        let mut i = 0;
        while i < b.len() {
            if !token(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && token(b[i]) {
                i += 1;
            }
            let piece = &s[start..i];
            if piece.len() < 128 && self.lengths & (1u128 << piece.len()) != 0 {
                if let Some(sec) = self.secrets.get(piece) {
                    found.push((piece.to_owned(), *sec));
                }
            }
            if jwt && piece.len() > 40 && piece.bytes().filter(|&c| c == b'.').count() == 2 {
                for part in piece.split('.').take(2) {
                    if let Ok(bytes) = URL_SAFE_NO_PAD.decode(part) {
                        self.look(&String::from_utf8_lossy(&bytes), found, false);
                    }
                }
            }
        }
    }

    /// Checks one request leaving process `p` (acting as `who`) for `url`: every secret in it
    /// must belong there, spent credentials must not be in it, and the client it
    /// authenticates as or the token it carries must be its own identity's.
    pub fn scan(&mut self, net: &Net, p: usize, who: Identity, target: &Target, req: &HttpRequest) {
        let mut found: Vec<(String, Secret)> = Vec::new();
        let look = |s: &str, found: &mut Vec<(String, Secret)>| self.look(s, found, true);
        look(&target.path, &mut found);
        for (_, v) in target.query_pairs() {
            look(&v, &mut found);
        }
        let mut basic_client = None;
        for (name, value) in req.headers() {
            let Ok(v) = value.to_str() else { continue };
            if name == http::header::AUTHORIZATION {
                if let Some(b) = v.strip_prefix("Basic ") {
                    let decoded = STANDARD.decode(b).map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_default();
                    let (id, secret) = decoded.split_once(':').unwrap_or((&decoded, ""));
                    let dec = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
                    basic_client = dec(id);
                    look(&dec(secret).unwrap_or_default(), &mut found);
                    continue;
                }
            }
            look(v, &mut found);
        }
        let body = String::from_utf8_lossy(req.body());
        let form: Vec<(String, String)> =
            if req.headers().get("content-type").is_some_and(|c| c.as_bytes().starts_with(b"application/x-www-form")) {
                url::form_urlencoded::parse(req.body()).into_owned().collect()
            } else {
                Vec::new()
            };
        if form.is_empty() {
            look(&body, &mut found);
        } else {
            for (_, v) in &form {
                look(v, &mut found);
            }
        }
        // Where it may go.
        let here = target.endpoint();
        let mcp = net.mcp_url();
        for (value, s) in &found {
            let ok = match s.owner {
                Owner::Resource => here == mcp,
                Owner::TokenEndpoint(i) => here == net.token_endpoint(i),
                Owner::Nowhere => false,
            };
            if !ok {
                let to = match s.owner {
                    Owner::Resource => "the MCP endpoint".to_owned(),
                    Owner::TokenEndpoint(i) => net.token_endpoint(i),
                    Owner::Nowhere => "nowhere".to_owned(),
                };
                self.violate(Invariant::Destination, format!("a {} that belongs to {to} went to {here} ({}…)", s.kind, &value[..8]));
            }
        }
        // Spent credentials.
        for (k, v) in &form {
            if (k == "refresh_token" || k == "code") && self.dead.contains(v) {
                self.violate(
                    Invariant::Spent,
                    format!("the {k} {}… went to {here} again after the server redeemed or refused it", &v[..v.len().min(8)]),
                );
            }
        }
        // Identity: the client a token request authenticates as.
        if let Some(i) = net.servers.iter().position(|s| here == format!("{}/token", s.options.issuer())) {
            let client = basic_client.or_else(|| form.iter().find(|(k, _)| k == "client_id").map(|(_, v)| v.clone()));
            if let Some(c) = client {
                if let Some(id) = self.identity_of(i, &c) {
                    if id != who {
                        self.violate(Invariant::Identity, format!("process {p} ({who:?}) authenticated as {c}, a client of {id:?}"));
                    }
                }
            }
        }
        // Identity: the token an MCP request carries.
        if here == mcp {
            if let Some(token) = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.split_once(' ')) {
                match self.token_identity(net, token.1) {
                    Some((_, id, client)) if id != who => self.violate(
                        Invariant::Identity,
                        format!("process {p} ({who:?}) sent the resource a token issued to {client}, a client of {id:?}"),
                    ),
                    Some(_) => {}
                    None => self.violate(Invariant::Identity, format!("process {p} sent the resource a token no server issued")),
                }
            }
        }
    }

    /// True if the grant this store key holds for `who` at the resource's current server is
    /// alive: not revoked, and a refresh token it can redeem, or an access token good for more
    /// than half a lifetime (plus tolerance) that the resource never rejected. `needs` is a
    /// scope the grant must include.
    pub fn held_grant_alive(&self, net: &Net, key: &str, who: Identity, p: usize, needs: Option<&str>) -> Option<String> {
        let issuer = net.servers[net.rs].options.issuer();
        let &(srv, g) = self.held.get(&(key.to_owned(), issuer, who))?;
        let ledger = net.servers[srv].ledger();
        let grant = ledger.grant(g)?;
        if grant.revoked_at.is_some() {
            return None;
        }
        if let Some(n) = needs {
            if n.split_whitespace().any(|s| !grant.scope.iter().any(|x| x == s)) {
                return None;
            }
        }
        // Tokens for another identifier than the one the resource calls itself now are of no use
        // (it refuses them, and the authorization server their refresh).
        let resource = net.servers[net.rs].options.resource();
        if let Some(rt) = ledger.live_refresh(g, net.now).filter(|rt| rt.resource.as_deref() == Some(resource.as_str())) {
            return Some(format!("grant {g} of {} has a live refresh token {}…", grant.client_id, &rt.value[..8]));
        }
        let at = ledger.last_access(g)?;
        if !at.is_live(net.now) || self.rejected.contains(&at.value) || at.resource.as_deref() != Some(resource.as_str()) {
            return None;
        }
        let obtainer = self.obtainer.get(&at.value).copied().unwrap_or(p);
        let margin = match at.lifetime_secs {
            None => 0,
            Some(l) => (l as f64 * 1000.0 * REFRESH_POINT) as u64 + self.tolerance(p, obtainer),
        };
        let good = at.expires_at().is_none_or(|e| e > net.now + margin);
        good.then(|| format!("grant {g} of {} has an access token good for long", grant.client_id))
    }

    /// A browser is about to GET an authorization endpoint for process `p`. `step_up` is the
    /// scope of the `insufficient_scope` challenge this flow answers, if any; `lied_to`: an
    /// impostor's challenge reached this request (the client cannot tell it from the
    /// resource's, so a login it causes is the attack's doing, not the client's).
    #[allow(clippy::too_many_arguments)]
    pub fn check_login(&mut self, net: &Net, url: &Url, p: usize, who: Identity, key: &str, step_up: Option<&str>, lied_to: bool) {
        let Some(server) = (0..net.servers.len()).find(|&i| url.as_str().starts_with(&net.authorization_endpoint(i))) else {
            return;
        };
        if let Some(c) = url.query_pairs().find(|(k, _)| k == "client_id").map(|(_, v)| v.into_owned()) {
            if let Some(id) = self.identity_of(server, &c) {
                if id != who {
                    self.violate(Invariant::Identity, format!("process {p} ({who:?}) opened a login as {c}, a client of {id:?}"));
                }
            }
        }
        if server != net.rs {
            self.violate(
                Invariant::Login,
                format!("login at {} which the resource no longer trusts", net.servers[server].options.issuer()),
            );
            return;
        }
        if lied_to {
            return;
        }
        let Some(alive) = self.held_grant_alive(net, key, who, p, None) else { return };
        if let Some(scope) = step_up {
            let issuer = net.servers[net.rs].options.issuer();
            let granted = self
                .held
                .get(&(key.to_owned(), issuer, who))
                .and_then(|&(s, g)| net.servers[s].ledger().grant(g).map(|g| g.scope.clone()))
                .unwrap_or_default();
            let offered = net.servers[net.rs].options.prm_scopes.clone().unwrap_or_default();
            let lacking: Vec<&str> = scope.split_whitespace().filter(|s| !granted.iter().any(|g| g == s)).collect();
            if lacking.is_empty() {
                self.violate(Invariant::Login, format!("step-up login for {scope:?}, which the live grant already has ({alive})"));
            } else if lacking.iter().all(|s| offered.iter().any(|o| o == s)) {
                self.violate(
                    Invariant::Login,
                    format!("step-up login for {lacking:?}, which PRM scopes_supported offered at the first login ({alive})"),
                );
            }
            return;
        }
        self.violate(Invariant::Login, format!("login while the grant is alive: {alive}"));
    }

    /// Store keys (with the identity of their grant) that hold a refresh token live at the
    /// resource's current server.
    pub fn keys_with_live_refresh(&self, net: &Net, store: &crate::store::Store) -> Vec<(String, Identity)> {
        let mut out = Vec::new();
        for key in store.keys() {
            for t in store.tokens(key) {
                let Some(rt) = &t.refresh_token else { continue };
                let Some(i) = net.server_of_issuer(&t.issuer).filter(|&i| i == net.rs) else { continue };
                let ledger = net.servers[i].ledger();
                let Some(issued) = ledger.token(rt.secret()) else { continue };
                let revoked = ledger.grant(issued.grant).is_none_or(|g| g.revoked_at.is_some());
                if issued.is_live(net.now) && !revoked {
                    if let Some(id) = self.identity_of(i, &issued.client_id) {
                        out.push((key.clone(), id));
                    }
                }
            }
        }
        out
    }
}
