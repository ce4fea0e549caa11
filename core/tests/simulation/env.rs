//! Everything of a life except its processes: the network, the store, the ground truth, the
//! generator, the trace, and the application request in progress. Every HTTP request of a
//! client or a browser passes through [`Env::exchange`] or [`Env::visit`], where it is checked,
//! routed, perhaps failed, and answered.

use crate::net::{Dest, FaultKind, Net, Target};
use crate::rng::Rng;
use crate::store::Store;
use crate::truth::{Identity, Invariant, Truth};
use mcp_oauth_core::http::{HttpRequest, HttpResponse, TransportFailure, TransportFailureKind};
use std::collections::VecDeque;
use url::Url;

/// Most HTTP requests one application request may cause (MCP requests and the client's OAuth
/// requests; not the browser's): up to 4 authorizations (the first, and
/// `max_authorization_attempts` = 3 challenges) of at most 12 requests each (3 metadata
/// candidates, 3 server metadata candidates, a registration, a refresh and a token request
/// with one DPoP nonce retry each), plus the MCP attempts between them.
pub const REQUEST_BOUND: u32 = 64;

/// What an application request of the simulation asks the MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// `tools/list` (needs `mcp:read` where scopes are enforced).
    List,
    /// `tools/call` of `echo` (needs `mcp:write`).
    Echo,
    /// `tools/call` of `admin-tool` (needs `mcp:admin`, outside PRM `scopes_supported`).
    Admin,
}

/// A challenge the resource (or an impostor) answered.
#[derive(Debug, Clone, Default)]
pub struct ChallengeSeen {
    pub status: u16,
    pub error: Option<String>,
    pub scope: Option<String>,
    pub resource_metadata: Option<String>,
}

/// The application request in progress and what happened to it.
#[derive(Debug, Clone)]
pub struct ReqStats {
    pub kind: AppKind,
    pub started: u64,
    pub http: u32,
    pub faults: u32,
    /// A token obtained during this request had expired (by the server's clock) when the
    /// resource saw it: a lifetime shorter than the round trip.
    pub expired_in_transit: bool,
    pub hostile: u32,
    /// `use_dpop_nonce` challenges the resource answered.
    pub nonce_demands: u32,
    pub storm: bool,
    pub forged: u32,
    pub user_absent: bool,
    pub refresh_sent: bool,
    pub logins: u32,
    pub challenge: Option<ChallengeSeen>,
}

impl ReqStats {
    pub fn new(kind: AppKind, now: u64) -> Self {
        ReqStats {
            kind,
            expired_in_transit: false,
            started: now,
            http: 0,
            faults: 0,
            hostile: 0,
            nonce_demands: 0,
            storm: false,
            forged: 0,
            user_absent: false,
            refresh_sent: false,
            logins: 0,
            challenge: None,
        }
    }

    /// The scope of the `insufficient_scope` challenge being answered, if that is what this is.
    pub fn step_up_scope(&self) -> Option<&str> {
        self.challenge.as_ref().filter(|c| c.status == 403 && c.error.as_deref() == Some("insufficient_scope"))?.scope.as_deref()
    }
}

/// What one machine (an `Authorizer` instance) has discovered, for the discovery invariant.
#[derive(Debug, Clone, Default)]
pub struct MachineInfo {
    pub discovered: bool,
    pub prm_generation: u32,
    pub prm_url: Option<String>,
}

/// Who is sending, as the checks need to know.
pub struct Caller<'a> {
    pub process: usize,
    pub identity: Identity,
    /// The machine held a refresh token when it asked for this request.
    pub holds_refresh: bool,
    pub machine: &'a mut MachineInfo,
    /// The first metadata request of this flow was already judged.
    pub prm_judged: &'a mut bool,
}

pub struct Trace {
    lines: VecDeque<String>,
    /// Lines kept; 0: no trace.
    pub cap: usize,
    pub start: u64,
}

impl Trace {
    pub fn new(cap: usize, start: u64) -> Self {
        Trace { lines: VecDeque::with_capacity(cap), cap, start }
    }

    pub fn push(&mut self, step: u64, now: u64, line: String) {
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        let t = now.saturating_sub(self.start);
        let (d, h, m, s, ms) = (t / 86_400_000, t / 3_600_000 % 24, t / 60_000 % 60, t / 1000 % 60, t % 1000);
        self.lines.push_back(format!("#{step:<5} {d:>3}d{h:02}:{m:02}:{s:02}.{ms:03} {line}"));
    }

    pub fn tail(&self) -> impl Iterator<Item = &String> {
        self.lines.iter()
    }
}

pub struct Env {
    pub rng: Rng,
    pub net: Net,
    pub store: Store,
    pub truth: Truth,
    pub trace: Trace,
    pub req: Option<ReqStats>,
    /// A fault was injected during the current step.
    pub fault_in_step: bool,
    /// The step being run (for the trace).
    pub step: u64,
}

fn form_value(req: &HttpRequest, key: &str) -> Option<String> {
    let is_form = req.headers().get("content-type").is_some_and(|c| c.as_bytes().starts_with(b"application/x-www-form"));
    if !is_form {
        return None;
    }
    url::form_urlencoded::parse(req.body()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// The parameters of a `Bearer` (or `DPoP`) challenge, by a plain reading of the headers the
/// simulation's own servers write.
pub fn read_challenge(resp: &HttpResponse) -> ChallengeSeen {
    let www: Vec<String> = resp.headers().get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
    let param = |name: &str| {
        www.iter().find_map(|w| {
            let at = w.find(&format!("{name}=\""))? + name.len() + 2;
            w[at..].split('"').next().map(str::to_owned)
        })
    };
    ChallengeSeen {
        status: resp.status().as_u16(),
        error: param("error"),
        scope: param("scope"),
        resource_metadata: param("resource_metadata"),
    }
}

impl Env {
    /// Adds a line to the trace (built only when the trace is kept: a failing life is run
    /// again with it).
    pub fn note(&mut self, line: impl FnOnce() -> String) {
        if self.trace.cap > 0 {
            self.trace.push(self.step, self.net.now, line());
        }
    }

    /// One HTTP request of a client: checked, routed, perhaps failed, answered.
    pub fn exchange(&mut self, who: &mut Caller<'_>, req: &HttpRequest) -> Result<HttpResponse, TransportFailure> {
        let p = who.process;
        if let Some(r) = &mut self.req {
            r.http += 1;
            if r.http > REQUEST_BOUND {
                if r.http == REQUEST_BOUND + 1 {
                    let kind = r.kind;
                    self.truth.violate(
                        Invariant::Bounded,
                        format!("process {p}: a {kind:?} request made more than {REQUEST_BOUND} HTTP requests"),
                    );
                }
                return Err(TransportFailure { kind: TransportFailureKind::Other, message: "simulation: request budget exhausted".into() });
            }
        }
        self.net.http_requests += 1;
        let target = Target::of(req.uri());
        let dest = self.net.dest(&target);
        let grant_type = form_value(req, "grant_type");
        self.truth.scan(&self.net, p, who.identity, &target, req);
        // Discovery needs a cause: judged at the first metadata request of a flow.
        let is_prm = target.path.starts_with("/.well-known/oauth-protected-resource");
        if is_prm && !*who.prm_judged {
            *who.prm_judged = true;
            self.judge_discovery(who, &target);
        }
        if grant_type.as_deref() == Some("refresh_token") {
            if let Some(r) = &mut self.req {
                r.refresh_sent = true;
            }
            if let (Dest::Auth(i), Some(rt)) = (dest, form_value(req, "refresh_token")) {
                self.truth.refresh_leaving(&self.net, i, &rt, p);
            }
        }
        self.net.now += self.rng.range(5, 250);
        let fault = self.net.fault(&mut self.rng, dest);
        let result = if let Some(kind) = fault {
            self.fault_in_step = true;
            if let Some(r) = &mut self.req {
                r.faults += 1;
            }
            if matches!(kind, FaultKind::Timeout) {
                self.net.now += self.rng.range(10_000, 30_000);
            }
            Net::fault_result(kind)
        } else {
            match dest {
                Dest::Resource(i) => {
                    let is_mcp = target.path == self.net.mcp_path;
                    if is_mcp && self.net.hostile_left > 0 {
                        self.net.hostile_left -= 1;
                        if let Some(r) = &mut self.req {
                            r.hostile += 1;
                        }
                        Ok(self.net.hostile_challenge())
                    } else {
                        if is_mcp && self.net.now < self.net.storm_until {
                            let n = self.net.nonce("storm");
                            self.net.servers[i].options.dpop_rs_nonce = Some(n);
                            if let Some(r) = &mut self.req {
                                r.storm = true;
                            }
                        }
                        Ok(self.net.deliver(i, req))
                    }
                }
                Dest::Auth(i) => Ok(self.net.deliver(i, req)),
                Dest::Attacker => Ok(self.net.attacker_response()),
                Dest::Nowhere => Err(TransportFailure { kind: TransportFailureKind::Connect, message: "no such host".into() }),
            }
        };
        if fault.is_none() {
            if let Dest::Auth(i) | Dest::Resource(i) = dest {
                self.truth.harvest(&self.net, i, p);
            }
        }
        self.truth.refresh_answered(&self.net);
        self.note(|| {
            let what = grant_type.as_deref().map(|g| format!(" [{g}]")).unwrap_or_default();
            let outcome = match (&result, fault) {
                (_, Some(k)) => format!("fault {k:?}"),
                (Ok(r), None) if r.status().is_client_error() || r.status().is_server_error() => {
                    let error =
                        serde_json::from_slice::<serde_json::Value>(r.body()).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
                    format!("{} {}", r.status().as_str(), error.unwrap_or_default())
                }
                (Ok(r), None) => r.status().as_str().to_owned(),
                (Err(e), None) => e.to_string(),
            };
            format!("P{p} {} {}{what} -> {outcome}", req.method(), target.endpoint())
        });
        if let Ok(resp) = &result {
            self.observe(who, dest, &target, req, resp);
        }
        result
    }

    fn judge_discovery(&mut self, who: &Caller<'_>, target: &Target) {
        let challenge_rm = self.req.as_ref().and_then(|r| r.challenge.as_ref()).and_then(|c| c.resource_metadata.clone());
        let refreshed = self.req.as_ref().is_some_and(|r| r.refresh_sent);
        let step_up = self.req.as_ref().is_some_and(|r| r.step_up_scope().is_some());
        let m = &who.machine;
        let cause = if !m.discovered {
            "first discovery of this machine"
        } else if m.prm_generation != self.net.prm_generation {
            "the resource's metadata changed"
        } else if !who.holds_refresh {
            "no refresh token to try first"
        } else if refreshed {
            "a refresh in this request already"
        } else if step_up {
            "a step-up: a login follows"
        } else if challenge_rm.is_some() && challenge_rm != m.prm_url {
            "the challenge names other metadata"
        } else {
            ""
        };
        if cause.is_empty() {
            self.truth.violate(
                Invariant::Rediscovery,
                format!(
                    "process {} fetched {} again: it discovered before, holds a refresh token it did not try, and nothing changed",
                    who.process,
                    target.endpoint()
                ),
            );
        }
    }

    /// Learns from a response: who registered which client, who obtained which token, which
    /// token the resource rejected, what the machine discovered.
    fn observe(&mut self, who: &mut Caller<'_>, dest: Dest, target: &Target, req: &HttpRequest, resp: &HttpResponse) {
        let status = resp.status().as_u16();
        match dest {
            Dest::Auth(i) => {
                let json = |field: &str| {
                    serde_json::from_slice::<serde_json::Value>(resp.body()).ok().and_then(|v| v[field].as_str().map(str::to_owned))
                };
                if target.path.ends_with("/register") && status == 201 {
                    if let Some(id) = json("client_id") {
                        self.truth.identities.insert((i, id), who.identity);
                    }
                }
                if target.path.ends_with("/token") && status == 200 {
                    if let Some(at) = json("access_token") {
                        self.truth.obtained(&at, who.process);
                    }
                }
            }
            Dest::Resource(_) => {
                if target.path.starts_with("/.well-known/oauth-protected-resource") && status == 200 {
                    who.machine.discovered = true;
                    who.machine.prm_generation = self.net.prm_generation;
                    who.machine.prm_url = Some(target.endpoint());
                }
                if target.path == self.net.mcp_path && (status == 401 || status == 403) {
                    let c = read_challenge(resp);
                    // A nonce demanded once is no rejection (RFC 9449 §9); demanded again in the
                    // same request, it is the server refusing the token.
                    let nonce_again = c.error.as_deref() == Some("use_dpop_nonce") && {
                        let r = self.req.as_mut();
                        r.is_some_and(|r| {
                            r.nonce_demands += 1;
                            r.nonce_demands > 1
                        })
                    };
                    if c.error.as_deref() == Some("invalid_token") || nonce_again {
                        if let Some(t) = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.split_once(' ')) {
                            let started = self.req.as_ref().map_or(u64::MAX, |r| r.started);
                            let expired_fresh = self
                                .net
                                .servers
                                .iter()
                                .filter_map(|s| s.ledger().token(t.1))
                                .any(|i| i.issued_at >= started && i.expires_at().is_some_and(|e| e <= self.net.now));
                            if let (true, Some(r)) = (expired_fresh, &mut self.req) {
                                r.expired_in_transit = true;
                            }
                            self.truth.rejected.insert(t.1.to_owned());
                        }
                    }
                    if let Some(r) = &mut self.req {
                        r.challenge = Some(c);
                    }
                }
            }
            Dest::Attacker | Dest::Nowhere => {}
        }
    }

    /// The user's browser GETs an authorization URL; returns where it was redirected.
    /// `step_up_allowed`: the configuration steps up on `insufficient_scope`.
    pub fn visit(&mut self, p: usize, who: Identity, key: &str, step_up_allowed: bool, url: &Url) -> Option<String> {
        self.net.http_requests += 1;
        let step_up = self.req.as_ref().and_then(|r| r.step_up_scope().map(str::to_owned));
        let lied_to = self.req.as_ref().is_some_and(|r| r.hostile > 0);
        if step_up.is_some() && !step_up_allowed {
            self.truth.violate(Invariant::Login, format!("process {p} logged in to step up though its configuration says step_up: false"));
        }
        self.truth.check_login(&self.net, url, p, who, key, step_up.as_deref(), lied_to);
        if let Some(r) = &mut self.req {
            r.logins += 1;
        }
        let req = http::Request::get(url.as_str()).body(Vec::new()).ok()?;
        let target = Target::from_url(url);
        self.truth.scan(&self.net, p, who, &target, &req);
        let dest = self.net.dest(&target);
        self.net.now += self.rng.range(50, 400);
        let outcome = if let Some(kind) = self.net.fault(&mut self.rng, dest) {
            self.fault_in_step = true;
            if let Some(r) = &mut self.req {
                r.faults += 1;
            }
            Err(format!("fault {kind:?}"))
        } else if let Dest::Auth(i) = dest {
            let resp = self.net.deliver(i, &req);
            self.truth.harvest(&self.net, i, p);
            let loc = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
            loc.ok_or_else(|| format!("{} without a redirect", resp.status()))
        } else {
            Err("not an authorization server".into())
        };
        self.note(|| {
            let shown = outcome.as_ref().map(|_| "302".to_owned()).unwrap_or_else(|e| e.clone());
            format!("P{p} browser GET {} -> {shown}", target.endpoint())
        });
        outcome.ok()
    }

    /// Fresh entropy for an attempt (seeded); the verifier and DPoP key it implies are secrets
    /// that may go nowhere yet.
    pub fn entropy(&mut self, p: usize) -> mcp_oauth_core::Entropy {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let mut b = [0u8; mcp_oauth_core::Entropy::LEN];
        self.rng.fill(&mut b);
        let e = mcp_oauth_core::Entropy::from_bytes(b);
        self.truth.verifier_made(p, URL_SAFE_NO_PAD.encode(e.pkce));
        self.truth.add_secret(&URL_SAFE_NO_PAD.encode(e.dpop_key), "dpop private key", None);
        e
    }
}
