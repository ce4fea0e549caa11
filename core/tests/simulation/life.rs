//! One life of a credential: a world (authorization servers, the resource, a store, client
//! processes) drawn from a seed, and months of virtual time of application requests and world
//! events, with every invariant checked after every step.

use crate::adapter::{AdapterError, Process, UserModel};
use crate::env::{AppKind, Env, ReqStats, Trace};
use crate::net::{FaultKind, Net, Outage};
use crate::rng::Rng;
use crate::store::Store;
use crate::truth::{Identity, Invariant, Truth, Violation};
use mcp_oauth_core::{Authorization, Config, Flow};
use mcp_oauth_tests::{Options, PreClient, PrmLocation, TestServer};
use std::collections::BTreeMap;
use url::Url;

pub const RS_ORIGIN: &str = "https://mcp.example.com";
const SERVICE_ID: &str = "svc-reporting";
const START: u64 = 1_750_000_000_000;

/// Where protected resource metadata lives and what `resource` it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrmVariant {
    /// Path-aware, `resource` = the MCP endpoint.
    Exact,
    /// At the root, `resource` = the origin (differs from the canonical server URL).
    RootOrigin,
    /// Path-aware, `resource` with a trailing slash.
    TrailingSlash,
}

/// The parameters of one life, all drawn from its seed.
#[derive(Debug, Clone)]
pub struct Profile {
    pub lifetime: Option<u64>,
    pub refresh_tokens: bool,
    pub rotate: bool,
    pub reuse_revokes: bool,
    pub dpop: bool,
    pub as_nonce: bool,
    pub rs_nonce: bool,
    pub prm: PrmVariant,
    pub separate_as: bool,
    pub issuer_path: bool,
    pub dcr_confidential: bool,
    pub users: usize,
    pub service: bool,
    pub service_bound: bool,
    pub user_scopes: bool,
    /// The users' configuration says `step_up: false`.
    pub no_step_up: bool,
    pub migrations: usize,
    pub hostile: bool,
    /// The resource's metadata starts naming another identifier for it (its origin, a trailing
    /// slash, or back): tokens for the old one are refused, refreshes for it too.
    pub renames: bool,
    pub forged_rate: f64,
    pub duration: u64,
    pub mean_gap: u64,
    /// The share of gaps between requests that are seconds, not hours.
    pub quick: f64,
    pub max_offset: u64,
    pub outages: bool,
    pub revoke_access: bool,
    pub revoke_grants: bool,
    pub storm: bool,
}

impl Profile {
    pub fn draw(rng: &mut Rng) -> Self {
        let dpop = rng.chance(0.03);
        let duration = rng.log_uniform(7 * 86_400_000, 120 * 86_400_000);
        // Application requests of the whole life (all processes), before bursts.
        let requests = rng.log_uniform(2, 20);
        Profile {
            lifetime: if rng.chance(0.1) { None } else { Some(rng.log_uniform(1, 86_400)) },
            refresh_tokens: rng.chance(0.85),
            rotate: rng.chance(0.7),
            reuse_revokes: rng.chance(0.5),
            dpop,
            as_nonce: dpop && rng.chance(0.5),
            rs_nonce: dpop && rng.chance(0.5),
            prm: *rng.pick(&[PrmVariant::Exact, PrmVariant::Exact, PrmVariant::RootOrigin, PrmVariant::TrailingSlash]),
            separate_as: rng.chance(0.5),
            issuer_path: rng.chance(0.25),
            dcr_confidential: rng.chance(0.2),
            users: rng.range(1, 3) as usize,
            service: rng.chance(0.3),
            service_bound: rng.chance(0.5),
            user_scopes: rng.chance(0.15),
            no_step_up: rng.chance(0.1),
            migrations: if rng.chance(0.12) { rng.range(1, 2) as usize } else { 0 },
            hostile: rng.chance(if dpop { 0.5 } else { 0.1 }),
            renames: rng.chance(0.05),
            forged_rate: if rng.chance(0.3) { 0.15 } else { 0.0 },
            duration,
            mean_gap: duration / requests,
            quick: rng.unit() * 0.3,
            max_offset: if rng.chance(0.5) { 0 } else { rng.log_uniform(1_000, 120_000) },
            outages: rng.chance(0.5),
            revoke_access: rng.chance(0.3),
            revoke_grants: rng.chance(0.3),
            storm: dpop && rng.chance(0.3),
        }
    }

    fn server(&self, i: usize, service_secret: &str) -> Options {
        let mut o = Options::new(RS_ORIGIN);
        if i > 0 || self.separate_as {
            o.auth_origin = format!("https://as{i}.example.com");
        }
        if self.issuer_path {
            o.issuer_path = "/tenant".into();
        }
        match self.prm {
            PrmVariant::Exact => {}
            PrmVariant::RootOrigin => {
                o.prm = PrmLocation::Root;
                o.prm_resource = Some(RS_ORIGIN.into());
            }
            PrmVariant::TrailingSlash => o.prm_resource = Some(format!("{}/", o.mcp_url())),
        }
        o.token_lifetime = self.lifetime;
        o.refresh_tokens = self.refresh_tokens;
        o.rotate_refresh = self.rotate;
        o.refresh_reuse_revokes_grant = self.reuse_revokes;
        o.dpop = self.dpop;
        o.dpop_as_nonce = self.as_nonce.then(|| format!("as{i}-nonce-0"));
        o.dpop_rs_nonce = self.rs_nonce.then(|| "rs-nonce-0".to_owned());
        o.dcr_confidential = self.dcr_confidential;
        o.method_scopes = vec![("tools/list".into(), "mcp:read".into()), ("tools/call:echo".into(), "mcp:write".into())];
        if i == 0 && self.service {
            o.clients.push(PreClient { id: SERVICE_ID.into(), secret: Some(service_secret.into()), jwt_key: None });
        }
        o
    }
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// Process `p` makes a request; `true`: and schedules its next one.
    Arrive(usize, bool),
    Continue(usize),
    Burst,
    Restart(usize),
    RevokeAccess,
    RevokeGrant,
    Outage,
    Migrate,
    Hostile,
    Rename,
    RotateNonces,
    Storm,
}

enum Phase {
    Start,
    Send(Option<Authorization>),
    Challenged(http::Response<Vec<u8>>, Option<Authorization>),
}

struct InFlight {
    phase: Phase,
    /// `flow::Retries`: the request's own budget.
    retries: crate::adapter::Retries,
    stats: Option<ReqStats>,
    id: u64,
    alive_at_start: Option<String>,
}

/// How a life went.
#[derive(Debug, Default, Clone)]
pub struct LifeStats {
    pub virtual_ms: u64,
    pub http: u64,
    pub requests: u64,
    pub succeeded: u64,
    pub logins: u64,
    pub steps: u64,
    /// Violations per invariant (only counted when the life keeps going past them).
    pub violations: BTreeMap<Invariant, u64>,
    /// The first violation of each kind (invariant and message, numbers and names left out):
    /// how many, and the seed, step and message of the first.
    pub first: BTreeMap<(Invariant, String), (u64, u64, u64, String)>,
    /// The trace tail, when kept.
    pub trace: Vec<String>,
}

/// A life that broke an invariant.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub violation: Violation,
    pub more: usize,
    pub trace: Vec<String>,
    pub profile: String,
}

pub struct Life {
    seed: u64,
    pub profile: Profile,
    env: Env,
    procs: Vec<Process>,
    inflight: Vec<Option<InFlight>>,
    /// When a process's request last failed with a freshly logged-in token rejected.
    login_rejected: Vec<Option<u64>>,
    /// The names the resource called itself before (renames never go back).
    names_used: Vec<Option<String>>,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    end: u64,
    migrations_left: usize,
    stats: LifeStats,
    next_id: u64,
    /// Go on after a broken invariant (to measure; the first failure stops a normal run),
    /// except this one, if given.
    pub keep_going: bool,
    pub focus: Option<Invariant>,
    /// With `focus`: the first step at which a violation counts.
    pub focus_step: u64,
}

impl Life {
    pub fn new(seed: u64, trace_lines: usize) -> Self {
        let mut rng = Rng::new(seed);
        let profile = Profile::draw(&mut rng);
        let secret = format!("svc-secret-{:016x}", rng.next_u64());
        let servers: Vec<TestServer> = (0..=profile.migrations).map(|i| TestServer::new(profile.server(i, &secret))).collect();
        let mut env = Env {
            rng,
            net: Net::new(servers, START),
            store: Store::default(),
            truth: Truth::default(),
            trace: Trace::new(trace_lines, START),
            req: None,
            fault_in_step: false,
            step: 0,
        };
        if profile.service {
            env.truth.add_secret(&secret, "client secret", Some(0));
            env.truth.identities.insert((0, SERVICE_ID.into()), Identity::Service);
        }
        let mcp = Url::parse(&env.net.mcp_url()).expect("mcp url");
        let a_issuer = env.net.servers[0].options.issuer();
        let mut specs = Vec::new();
        for _ in 0..profile.users {
            let mut c = Config::new(mcp.clone());
            if profile.user_scopes {
                c.scopes = Some(vec!["mcp:read".into()]);
            }
            c.step_up = !profile.no_step_up;
            let user = UserModel {
                interactive: true,
                browser: env.rng.chance(0.9),
                prompt: env.rng.chance(0.7),
                paste_while_listening: true,
                can_bind: env.rng.chance(0.95),
                forged_rate: profile.forged_rate,
                absent_rate: 0.02,
            };
            specs.push((Identity::User, c, user));
        }
        if profile.service {
            let mut c = Config::new(mcp.clone());
            c.flow = Flow::ClientCredentials;
            c.client_id = Some(SERVICE_ID.into());
            c.client_secret = Some(mcp_oauth_core::secret::ClientSecret::new(secret.clone()));
            if profile.service_bound {
                c.authorization_server = Some(a_issuer.clone());
            }
            let user = UserModel {
                interactive: false,
                browser: false,
                prompt: false,
                paste_while_listening: false,
                can_bind: false,
                forged_rate: 0.0,
                absent_rate: 0.0,
            };
            specs.push((Identity::Service, c, user));
        }
        let mut procs = Vec::new();
        for (id, (identity, config, user)) in specs.into_iter().enumerate() {
            let offset = Self::draw_offset(&mut env.rng, profile.max_offset);
            env.truth.offsets.push(offset);
            let mut proc = Process::new(id, identity, config, offset, user, &mut env).expect("valid configuration");
            proc.eager = env.rng.chance(0.3);
            procs.push(proc);
        }
        let n = procs.len();
        let mut life = Life {
            seed,
            end: START + profile.duration,
            migrations_left: profile.migrations,
            profile,
            env,
            procs,
            inflight: (0..n).map(|_| None).collect(),
            names_used: Vec::new(),
            login_rejected: vec![None; n],
            queue: BTreeMap::new(),
            seq: 0,
            stats: LifeStats::default(),
            next_id: 0,
            keep_going: false,
            focus: None,
            focus_step: 0,
        };
        life.schedule_initial();
        life
    }

    fn draw_offset(rng: &mut Rng, max: u64) -> i64 {
        if max == 0 || rng.chance(0.3) {
            0
        } else {
            rng.range(0, 2 * max) as i64 - max as i64
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    /// The time until a process's next request: mostly exponential around the life's mean
    /// gap (all processes together make the life's requests), sometimes seconds.
    fn gap(&mut self) -> u64 {
        let r = &mut self.env.rng;
        if r.chance(self.profile.quick) {
            r.range(500, 30_000)
        } else {
            (self.profile.mean_gap as f64 * self.procs.len() as f64 * -(1.0 - r.unit()).ln()) as u64 + 1
        }
    }

    /// Bursts (every process at once) make about a tenth of the requests.
    fn burst_gap(&mut self) -> u64 {
        let mean = self.profile.mean_gap as f64 * 10.0 * self.procs.len() as f64;
        (mean * -(1.0 - self.env.rng.unit()).ln()) as u64 + 1
    }

    fn schedule_initial(&mut self) {
        let now = START;
        for p in 0..self.procs.len() {
            let g = self.env.rng.range(0, 60_000);
            self.at(now + g, Ev::Arrive(p, true));
            let r = self.env.rng.log_uniform(12 * 3_600_000, 30 * 86_400_000);
            self.at(now + r, Ev::Restart(p));
        }
        let d = self.profile.duration;
        let once = |life: &mut Self, on: bool, ev: Ev, lo: u64, hi: u64| {
            if on {
                let t = life.env.rng.log_uniform(lo, hi).min(d);
                life.at(now + t, ev);
            }
        };
        if self.procs.len() > 1 {
            let t = self.burst_gap();
            self.at(now + t, Ev::Burst);
        }
        once(self, self.profile.revoke_access, Ev::RevokeAccess, 86_400_000, 30 * 86_400_000);
        once(self, self.profile.revoke_grants, Ev::RevokeGrant, 3 * 86_400_000, 60 * 86_400_000);
        once(self, self.profile.outages, Ev::Outage, 3_600_000, 20 * 86_400_000);
        once(self, self.profile.hostile, Ev::Hostile, 3_600_000, 20 * 86_400_000);
        once(self, self.profile.renames, Ev::Rename, 86_400_000, 30 * 86_400_000);
        once(self, self.profile.dpop, Ev::RotateNonces, 600_000, 2 * 86_400_000);
        once(self, self.profile.storm, Ev::Storm, 86_400_000, 30 * 86_400_000);
        for _ in 0..self.profile.migrations {
            let t = self.env.rng.range(86_400_000, d.max(86_400_001));
            self.at(now + t, Ev::Migrate);
        }
    }

    /// Runs the life to its end, or to the first broken invariant.
    pub fn run(mut self) -> Result<LifeStats, Box<Failure>> {
        while let Some(((t, _), ev)) = self.queue.pop_first() {
            if t > self.end && !matches!(ev, Ev::Continue(_)) {
                continue;
            }
            self.env.net.now = self.env.net.now.max(t);
            self.stats.steps += 1;
            self.env.step = self.stats.steps;
            let outage = self.env.net.outages.iter().any(|o| o.until > self.env.net.now);
            let before = if outage { self.env.truth.keys_with_live_refresh(&self.env.net, &self.env.store) } else { Vec::new() };
            self.env.fault_in_step = false;
            self.handle(ev);
            if self.env.fault_in_step {
                let after = self.env.truth.keys_with_live_refresh(&self.env.net, &self.env.store);
                for (key, who) in before {
                    if !after.contains(&(key.clone(), who)) {
                        self.env.truth.violate(
                            Invariant::TransientKeepsGrant,
                            format!("after an injected fault the store ({who:?}) no longer holds the live refresh token it held"),
                        );
                    }
                }
            }
            if !self.env.truth.violations.is_empty() {
                if let Some(f) = self.focus {
                    let early = self.stats.steps < self.focus_step;
                    self.env.truth.violations.retain(|v| v.invariant == f && !early);
                    if !self.env.truth.violations.is_empty() {
                        return Err(self.failure());
                    }
                    continue;
                }
                if !self.keep_going {
                    return Err(self.failure());
                }
                for v in self.env.truth.violations.drain(..) {
                    let (seed, step) = (self.seed, self.stats.steps);
                    let e = self.stats.first.entry((v.invariant, kind_of(&v.message))).or_insert((0, seed, step, v.message.clone()));
                    e.0 += 1;
                    *self.stats.violations.entry(v.invariant).or_default() += 1;
                }
            }
        }
        self.stats.virtual_ms = self.env.net.now - START;
        self.stats.trace = self.env.trace.tail().cloned().collect();
        self.stats.http = self.env.net.http_requests;
        Ok(self.stats)
    }

    fn failure(&mut self) -> Box<Failure> {
        let mut v = std::mem::take(&mut self.env.truth.violations);
        let first = v.remove(0);
        Box::new(Failure {
            seed: self.seed,
            step: self.stats.steps,
            violation: first,
            more: v.len(),
            trace: self.env.trace.tail().cloned().collect(),
            profile: format!("{:?}", self.profile),
        })
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.env.net.now;
        match ev {
            Ev::Arrive(p, chain) => {
                if self.inflight[p].is_some() {
                    self.at(now + 1_000, Ev::Arrive(p, chain));
                    return;
                }
                let kind = match self.env.rng.below(10) {
                    0..=5 => AppKind::List,
                    6..=8 => AppKind::Echo,
                    _ => AppKind::Admin,
                };
                self.next_id += 1;
                let alive = {
                    let pr = &self.procs[p];
                    self.env.truth.held_grant_alive(&self.env.net, &pr.key, pr.identity, p, Some(needed_scope(kind)))
                };
                self.env.note(|| format!("P{p} request {kind:?}"));
                self.inflight[p] = Some(InFlight {
                    phase: Phase::Start,
                    retries: crate::adapter::Retries::new(&self.procs[p].config),
                    stats: Some(ReqStats::new(kind, now)),
                    id: self.next_id,
                    alive_at_start: alive,
                });
                self.stats.requests += 1;
                self.advance(p);
                if chain {
                    let g = self.gap();
                    self.at(now + g, Ev::Arrive(p, true));
                }
            }
            Ev::Continue(p) => self.advance(p),
            Ev::Burst => {
                self.env.note(|| "burst: every process makes a request".into());
                for p in 0..self.procs.len() {
                    let d = self.env.rng.range(0, 2_000);
                    self.at(now + d, Ev::Arrive(p, false));
                }
                let t = self.burst_gap();
                self.at(now + t, Ev::Burst);
            }
            Ev::Restart(p) => {
                if self.inflight[p].is_some() {
                    self.at(now + 5_000, Ev::Restart(p));
                    return;
                }
                let offset = if self.env.rng.chance(0.3) {
                    Self::draw_offset(&mut self.env.rng, self.profile.max_offset)
                } else {
                    self.procs[p].offset
                };
                self.env.note(|| format!("P{p} restarts (clock offset {offset} ms)"));
                self.procs[p].restart(&mut self.env, offset).expect("valid configuration");
                let t = self.env.rng.log_uniform(12 * 3_600_000, 30 * 86_400_000);
                self.at(now + t, Ev::Restart(p));
            }
            Ev::RevokeAccess => {
                let rs = self.env.net.rs;
                self.env.note(|| format!("server {rs} revokes every access token"));
                self.env.net.servers[rs].set_time(now);
                self.env.net.servers[rs].revoke_access_tokens();
                self.disturbed_under_way();
                let t = self.env.rng.log_uniform(86_400_000, 30 * 86_400_000);
                self.at(now + t, Ev::RevokeAccess);
            }
            Ev::RevokeGrant => {
                let rs = self.env.net.rs;
                let grants: Vec<u64> = self.env.net.servers[rs].ledger().unrevoked_grants().collect();
                if !grants.is_empty() {
                    let g = *self.env.rng.pick(&grants);
                    self.env.note(|| format!("server {rs} revokes grant {g}"));
                    self.env.net.servers[rs].set_time(now);
                    self.env.net.servers[rs].revoke_grant(g);
                    self.disturbed_under_way();
                }
                let t = self.env.rng.log_uniform(3 * 86_400_000, 60 * 86_400_000);
                self.at(now + t, Ev::RevokeGrant);
            }
            Ev::Outage => {
                let r = &mut self.env.rng;
                let kind = *r.pick(&[
                    FaultKind::Html(502),
                    FaultKind::Html(503),
                    FaultKind::Unavailable,
                    FaultKind::ServerError,
                    FaultKind::Timeout,
                    FaultKind::Dropped,
                ]);
                let server = if r.chance(0.8) { self.env.net.rs } else { r.below(self.env.net.servers.len() as u64) as usize };
                let until = now + r.log_uniform(10_000, 6 * 3_600_000);
                let per_mille = *r.pick(&[1000, 1000, 500, 200]);
                self.env.note(|| format!("outage of server {server}: {kind:?} for {} s ({per_mille}‰)", (until - now) / 1000));
                self.env.net.outages.push(Outage { server, from: now, until, kind, per_mille });
                let t = self.env.rng.log_uniform(3_600_000, 20 * 86_400_000);
                self.at(now + t, Ev::Outage);
            }
            Ev::Migrate => {
                if self.migrations_left > 0 {
                    self.migrations_left -= 1;
                    self.env.net.rs += 1;
                    self.env.net.prm_generation += 1;
                    let issuer = self.env.net.servers[self.env.net.rs].options.issuer();
                    self.env.note(|| format!("migration: the resource now trusts {issuer}"));
                    self.disturbed_under_way();
                }
            }
            Ev::Rename => {
                let rs = self.env.net.rs;
                let o = &mut self.env.net.servers[rs].options;
                // Never back to an earlier name: tokens for it would come back to life, which the
                // client rightly forgot when the name changed.
                self.names_used.push(o.prm_resource.clone());
                let names = [None, Some(RS_ORIGIN.to_owned()), Some(format!("{}/", o.mcp_url()))];
                let others: Vec<_> = names.into_iter().filter(|n| !self.names_used.contains(n)).collect();
                if others.is_empty() {
                    return;
                }
                let next = others[self.env.rng.below(others.len() as u64) as usize].clone();
                if next.as_deref() == Some(RS_ORIGIN) {
                    o.prm = PrmLocation::Root;
                }
                o.prm_resource = next;
                let named = o.resource();
                self.env.note(|| format!("the resource now calls itself {named}"));
                self.disturbed_under_way();
                let t = self.env.rng.log_uniform(86_400_000, 30 * 86_400_000);
                self.at(now + t, Ev::Rename);
            }
            Ev::Hostile => {
                self.env.note(|| "an impostor will answer the next MCP request with its own challenge".into());
                self.env.net.hostile_left += 1;
                let t = self.env.rng.log_uniform(3_600_000, 20 * 86_400_000);
                self.at(now + t, Ev::Hostile);
            }
            Ev::RotateNonces => {
                for i in 0..self.env.net.servers.len() {
                    if self.profile.as_nonce {
                        let n = self.env.net.nonce(&format!("as{i}"));
                        self.env.net.servers[i].options.dpop_as_nonce = Some(n);
                    }
                    if self.profile.rs_nonce {
                        let n = self.env.net.nonce("rs");
                        self.env.net.servers[i].options.dpop_rs_nonce = Some(n);
                    }
                }
                self.env.note(|| "DPoP nonces rotate".into());
                // A request under way that already used its one nonce retry cannot follow.
                self.disturbed_under_way();
                let t = self.env.rng.log_uniform(600_000, 2 * 86_400_000);
                self.at(now + t, Ev::RotateNonces);
            }
            Ev::Storm => {
                let until = now + self.env.rng.range(60_000, 600_000);
                self.env.note(|| format!("the resource demands a new DPoP nonce on every request for {} s", (until - now) / 1000));
                self.env.net.storm_until = until;
                let p = self.env.rng.below(self.procs.len() as u64) as usize;
                let d = self.env.rng.range(1_000, 50_000);
                self.at(now + d, Ev::Arrive(p, false));
            }
        }
    }

    /// A revocation, a migration or a nonce rotation in the middle of an application request is
    /// a fault for it: a token obtained a moment ago being rejected is final for that request (SPEC 12),
    /// and so is a second nonce demand (one nonce retry per request, item 8).
    fn disturbed_under_way(&mut self) {
        for stats in self.inflight.iter_mut().flatten().filter_map(|f| f.stats.as_mut()) {
            stats.faults += 1;
        }
    }

    /// Runs the next phase of process `p`'s application request.
    fn advance(&mut self, p: usize) {
        let Some(mut inf) = self.inflight[p].take() else { return };
        self.env.req = inf.stats.take();
        let proc = &mut self.procs[p];
        let kind = self.env.req.as_ref().map_or(AppKind::List, |r| r.kind);
        let next: Result<Option<Phase>, AdapterError> = match std::mem::replace(&mut inf.phase, Phase::Start) {
            Phase::Start => {
                if proc.wants_token_up_front() {
                    proc.first(&mut self.env, &mut inf.retries).map(|h| Some(Phase::Send(Some(h))))
                } else {
                    Ok(Some(Phase::Send(None)))
                }
            }
            Phase::Send(h) => match proc.mcp_request(&mut self.env, h.as_ref(), kind, inf.id) {
                Err(t) => Err(AdapterError::Transport(t)),
                Ok(resp) => {
                    let www: Vec<_> = resp.headers().get_all("www-authenticate").iter().cloned().collect();
                    if mcp_oauth_core::discovery::is_challenge(resp.status().as_u16(), &www) {
                        Ok(Some(Phase::Challenged(resp, h)))
                    } else {
                        unchallenged(&resp).map(|()| None)
                    }
                }
            },
            Phase::Challenged(resp, h) => {
                proc.retry(&mut self.env, &resp, h.as_ref(), &mut inf.retries).map(|h| Some(Phase::Send(Some(h))))
            }
        };
        inf.stats = self.env.req.take();
        match next {
            Ok(Some(phase)) => {
                inf.phase = phase;
                self.inflight[p] = Some(inf);
                // The adapter goes on at once; now and then another process gets in between.
                let d = if self.env.rng.chance(0.05) { self.env.rng.range(100, 2_000) } else { self.env.rng.range(1, 30) };
                let now = self.env.net.now;
                self.at(now + d, Ev::Continue(p));
            }
            Ok(None) => self.finish(p, inf, Ok(())),
            Err(e) => self.finish(p, inf, Err(e)),
        }
    }

    fn finish(&mut self, p: usize, inf: InFlight, result: Result<(), AdapterError>) {
        let Some(stats) = inf.stats else { return };
        self.stats.logins += u64::from(stats.logins);
        let now = self.env.net.now;
        match &result {
            Ok(()) => {
                self.stats.succeeded += 1;
                self.env.note(|| format!("P{p} {:?} succeeded ({} requests)", stats.kind, stats.http));
                return;
            }
            Err(e) => self.env.note(|| format!("P{p} {:?} failed: {}", stats.kind, describe(e))),
        }
        // A login whose fresh token the resource rejected is not repeated for `LOGIN_BACKOFF`
        // (5 minutes, documented): requests failing with that meanwhile are the design.
        let rejected_fresh = matches!(
            &result,
            Err(AdapterError::Core(mcp_oauth_core::Error::Resource(mcp_oauth_core::ResourceError::RejectedFreshToken { .. })))
        );
        let backed_off = rejected_fresh && self.login_rejected[p].is_some_and(|at| now < at + 300_000);
        if rejected_fresh && stats.logins > 0 {
            self.login_rejected[p] = Some(now);
        }
        if matches!(result, Err(AdapterError::Runaway)) || stats.http > crate::env::REQUEST_BOUND {
            return; // already reported as unbounded
        }
        // Liveness: only a request no fault touched counts.
        let faulted = backed_off
            || stats.faults > 0
            || stats.expired_in_transit
            || stats.storm
            || stats.user_absent
            || stats.hostile > 0
            || self.env.net.outage_overlaps(stats.started, now);
        if faulted {
            return;
        }
        // A configuration that does not step up fails with the challenge, as it should.
        let refused_step_up = matches!(
            &result,
            Err(AdapterError::Core(mcp_oauth_core::Error::Resource(mcp_oauth_core::ResourceError::InsufficientScope { .. })))
        );
        if refused_step_up && !self.procs[p].config.step_up {
            return;
        }
        let proc = &self.procs[p];
        let needs = needed_scope(stats.kind);
        let alive = inf.alive_at_start.or_else(|| self.env.truth.held_grant_alive(&self.env.net, &proc.key, proc.identity, p, Some(needs)));
        let login = match proc.identity {
            Identity::User => proc.user.can_log_in().then(|| "the user can log in".to_owned()),
            Identity::Service => (self.env.net.rs == 0).then(|| "the service has credentials at this server".to_owned()),
        };
        if let Some(why) = alive.or(login) {
            let err = result.err().map(|e| describe(&e)).unwrap_or_default();
            self.env.truth.violate(Invariant::Liveness, format!("process {p} {:?} failed with no fault active ({why}): {err}", stats.kind));
        }
    }
}

/// A violation's kind: its message without numbers, names, URLs, tokens and parentheses.
pub fn kind_of(message: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for word in message.split(' ') {
        let opens = word.matches('(').count();
        let closes = word.matches(')').count();
        if depth == 0 && opens == 0 {
            let w = if word.contains("://") {
                "URL".to_owned()
            } else if matches!(word, "List" | "Echo" | "Admin") {
                "REQUEST".to_owned()
            } else if word.contains('…') || word.chars().any(|c| c.is_ascii_digit()) {
                "N".to_owned()
            } else {
                word.to_owned()
            };
            out.push_str(&w);
            out.push(' ');
        }
        depth = (depth + opens).saturating_sub(closes);
    }
    out.chars().take(110).collect::<String>().trim().to_owned()
}

fn needed_scope(kind: AppKind) -> &'static str {
    match kind {
        AppKind::List => "mcp:read",
        AppKind::Echo => "mcp:write",
        AppKind::Admin => "mcp:admin",
    }
}

fn describe(e: &AdapterError) -> String {
    match e {
        AdapterError::Core(e) => format!("{e} ({e:?})"),
        AdapterError::Config(s) | AdapterError::Mcp(s) => s.clone(),
        AdapterError::Transport(t) => t.to_string(),
        AdapterError::Stalled => "stalled".into(),
        AdapterError::Runaway => "runaway".into(),
    }
}

/// `mcp::unchallenged`, as far as success goes: a 2xx JSON-RPC result (the test server's
/// replies are compact JSON).
fn unchallenged(resp: &http::Response<Vec<u8>>) -> Result<(), AdapterError> {
    if !resp.status().is_success() {
        return Err(AdapterError::Mcp(format!("http status {}", resp.status().as_u16())));
    }
    if resp.body().windows(9).any(|w| w == b"\"result\":") {
        Ok(())
    } else {
        Err(AdapterError::Mcp(format!("json-rpc error {}", String::from_utf8_lossy(resp.body()))))
    }
}
