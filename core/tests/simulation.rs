//! A deterministic simulation of a credential's whole life.
//!
//! Sans-IO makes it possible: every input of core (time, randomness, responses, callbacks) is
//! data, so a seed decides a whole life and replays it exactly.
//!
//! **The world** (`life.rs`, `net.rs`): one to three independent authorization servers
//! (`mcp_oauth_tests::TestServer`, one per issuer, each keeping a ledger of what it issued,
//! to whom, when by its own clock, and what was presented back); the MCP resource, served by
//! the instance whose issuer it trusts (a migration moves it to the next, whose PRM names
//! another issuer on another origin; the old server stays reachable); an impostor whose
//! challenge names `resource_metadata` on a hostile host that answers everything with
//! `DPoP-Nonce` + `use_dpop_nonce`; a token store (`store.rs`) that keeps each entry as JSON,
//! keyed as the adapters key it; one to three user processes (dynamic registration,
//! browser or paste, lazy or eager) and perhaps a service (pre-registered id and secret,
//! client credentials), each with its own clock offset, sharing the store.
//!
//! **A life**: weeks to months of virtual time. Application requests (`tools/list`, `echo`
//! which needs `mcp:write`, `admin-tool` which needs `mcp:admin`, outside PRM
//! `scopes_supported`) at random intervals, now and then all processes at once; token
//! lifetimes from 1 s to 24 h or none, with or without refresh tokens and rotation (and reuse
//! detection); restarts (the store is the only memory); revocation of access tokens and of
//! whole grants; outages that fail requests before the server acts (5xx HTML,
//! `temporarily_unavailable`, `server_error`, timeouts, dropped connections); migrations; DPoP
//! with rotating nonces and nonce storms; forged loopback callbacks; PRM at the root naming the
//! origin or with a trailing slash; users whose configuration names scopes or turns step-up
//! off; slow or absent people.
//!
//! **The adapters** (`adapter.rs`) are mirrored, not reused: the decisions of
//! `adapters/src/steps.rs` and the single flight of `OAuthClient::{authorization, challenged}`
//! and `McpClient::post`, with the I/O simulated.
//!
//! **The invariants** (`truth.rs`, [`truth::Invariant`] states each exactly) are checked
//! after every step; a life stops at the first broken one and prints its seed, step,
//! invariant, profile and trace tail.
//!
//! ```text
//! cargo test -p mcp-oauth-core --test simulation -- --nocapture              # CI: 10,000 lives
//! SIM_SEED=<seed> cargo test -p mcp-oauth-core --test simulation -- --nocapture   # replay one life
//! SIM_LIVES=1000000 cargo test --release -p mcp-oauth-core --test simulation -- --nocapture   # soak
//! ```
//!
//! `SIM_BASE_SEED` changes the run's base seed (default fixed, so CI is deterministic),
//! `SIM_LIVES` the number of lives, `SIM_THREADS` the worker threads, `SIM_TRACE` the trace
//! lines kept (a failing life is run again with its trace); `SIM_KEEP_GOING=1` lets lives go on
//! past broken invariants and lists every kind of violation with an example;
//! `SIM_FOCUS=<invariant>` (and `SIM_FOCUS_STEP=<step>`) with `SIM_SEED` replays a life up to
//! that invariant's first break (at or after that step); `SIM_LIST=1` lists every failing life.

#[path = "simulation/adapter.rs"]
mod adapter;
#[path = "simulation/env.rs"]
mod env;
#[path = "simulation/life.rs"]
mod life;
#[path = "simulation/net.rs"]
mod net;
#[path = "simulation/rng.rs"]
mod rng;
#[path = "simulation/store.rs"]
mod store;
#[path = "simulation/truth.rs"]
mod truth;

use life::{Failure, Life, LifeStats};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const DEFAULT_BASE_SEED: u64 = 0x5EED_0F0A_11FE;
const DEFAULT_LIVES: u64 = 10_000;

/// Per kind of violation (invariant, message without names and numbers), in a keep-going run:
/// how many, and the first: life index, seed, step, message.
type Firsts = BTreeMap<(truth::Invariant, String), (u64, u64, u64, u64, String)>;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var_os(name)?;
    let s = v.to_str()?.trim().to_owned();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[allow(clippy::disallowed_methods)] // the harness measures its own wall time; core never reads a clock
fn wall_clock() -> std::time::Instant {
    std::time::Instant::now()
}

fn print_failure(f: &Failure) {
    println!("  seed {:#018x} (SIM_SEED={}), step {}: [{}] {}", f.seed, f.seed, f.step, f.violation.invariant, f.violation.message);
    if f.more > 0 {
        println!("  ({} more violations in the same step)", f.more);
    }
    println!("  profile: {}", f.profile);
    println!("  trace tail:");
    for line in &f.trace {
        println!("    {line}");
    }
}

/// Runs a failed life again with its trace kept (lives run without one): determinism makes
/// the second run the same life.
fn with_trace(seed: u64, first: &Failure, lines: usize) -> Failure {
    match Life::new(seed, lines).run() {
        Err(f) if f.step == first.step && f.violation.message == first.violation.message => *f,
        other => panic!("life {seed:#x} is not deterministic: first {first:?}, then {:?}", other.err()),
    }
}

fn replay(seed: u64) {
    let trace = env_u64("SIM_TRACE").unwrap_or(400) as usize;
    let mut life = Life::new(seed, trace);
    if let Some(name) = std::env::var_os("SIM_FOCUS") {
        let name = name.to_string_lossy().into_owned();
        life.focus = Some(truth::Invariant::by_name(&name).unwrap_or_else(|| panic!("no invariant {name:?}")));
        life.focus_step = env_u64("SIM_FOCUS_STEP").unwrap_or(0);
    }
    println!("replaying life {seed:#018x}: {:?}", life.profile);
    match life.run() {
        Ok(s) => {
            for line in &s.trace {
                println!("    {line}");
            }
            println!(
                "life {seed:#018x} kept every invariant: {} steps, {} requests ({} succeeded), {} HTTP requests, {} logins, violations {:?}",
                s.steps, s.requests, s.succeeded, s.http, s.logins, s.violations
            );
        }
        Err(f) => {
            print_failure(&f);
            panic!("life {seed:#018x} broke [{}] at step {}", f.violation.invariant, f.step);
        }
    }
}

#[test]
fn simulation() {
    if let Some(seed) = env_u64("SIM_SEED") {
        return replay(seed);
    }
    let base = env_u64("SIM_BASE_SEED").unwrap_or(DEFAULT_BASE_SEED);
    let lives = env_u64("SIM_LIVES").unwrap_or(DEFAULT_LIVES);
    let threads = env_u64("SIM_THREADS").unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u64)).max(1);
    let trace = env_u64("SIM_TRACE").unwrap_or(30) as usize;
    let keep_going = env_u64("SIM_KEEP_GOING").is_some_and(|v| v != 0);
    let started = wall_clock();
    let next = AtomicU64::new(0);
    let totals = Mutex::new(LifeStats::default());
    let failures: Mutex<Vec<(u64, Failure)>> = Mutex::new(Vec::new());
    let firsts: Mutex<Firsts> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = LifeStats::default();
                let mut first = Firsts::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= lives {
                        break;
                    }
                    let seed = rng::life_seed(base, i);
                    let mut life = Life::new(seed, 0);
                    life.keep_going = keep_going;
                    match life.run() {
                        Ok(st) => {
                            for (k, v) in st.violations {
                                *mine.violations.entry(k).or_default() += v;
                            }
                            for (k, (n, seed, step, msg)) in st.first {
                                let e = first.entry(k).or_insert((0, i, seed, step, msg.clone()));
                                e.0 += n;
                                if i < e.1 {
                                    (e.1, e.2, e.3, e.4) = (i, seed, step, msg);
                                }
                            }
                            mine.virtual_ms += st.virtual_ms;
                            mine.http += st.http;
                            mine.requests += st.requests;
                            mine.succeeded += st.succeeded;
                            mine.logins += st.logins;
                            mine.steps += st.steps;
                        }
                        Err(f) => failures.lock().unwrap_or_else(|e| e.into_inner()).push((i, *f)),
                    }
                }
                let mut t = totals.lock().unwrap_or_else(|e| e.into_inner());
                t.virtual_ms += mine.virtual_ms;
                t.http += mine.http;
                t.requests += mine.requests;
                t.succeeded += mine.succeeded;
                t.logins += mine.logins;
                t.steps += mine.steps;
                for (k, v) in mine.violations {
                    *t.violations.entry(k).or_default() += v;
                }
                let mut all = firsts.lock().unwrap_or_else(|e| e.into_inner());
                for (k, v) in first {
                    let e = all.entry(k).or_insert((0, v.1, v.2, v.3, v.4.clone()));
                    e.0 += v.0;
                    if v.1 < e.1 {
                        (e.1, e.2, e.3, e.4) = (v.1, v.2, v.3, v.4);
                    }
                }
            });
        }
    });
    let wall = started.elapsed();
    let t = totals.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|(i, _)| *i);
    let years = t.virtual_ms as f64 / (365.25 * 86_400_000.0);
    println!(
        "simulation: base seed {base:#x}, {lives} lives ({} kept every invariant), {years:.1} virtual years, {} HTTP requests, \
         {} application requests ({} succeeded), {} browser logins, {} steps, {:.1} s wall time on {threads} threads",
        lives - failures.len() as u64,
        t.http,
        t.requests,
        t.succeeded,
        t.logins,
        t.steps,
        wall.as_secs_f64()
    );
    if keep_going {
        println!("violations counted without stopping lives: {:?}", t.violations);
        for ((inv, _), (n, i, seed, step, msg)) in firsts.into_inner().unwrap_or_else(|e| e.into_inner()) {
            println!("  [{inv}] {n}x, first in life {i}: SIM_SEED={seed} SIM_FOCUS={inv} SIM_FOCUS_STEP={step}: {msg}");
        }
        assert!(t.violations.is_empty(), "lives broke invariants: {:?}", t.violations);
        return;
    }
    if failures.is_empty() {
        return;
    }
    let mut by_invariant: BTreeMap<truth::Invariant, Vec<&(u64, Failure)>> = BTreeMap::new();
    for f in &failures {
        by_invariant.entry(f.1.violation.invariant).or_default().push(f);
    }
    println!("{} lives broke an invariant (each life stops at its first):", failures.len());
    if env_u64("SIM_LIST").is_some() {
        for (i, f) in &failures {
            println!("  life {i} SIM_SEED={} step {} [{}] {}", f.seed, f.step, f.violation.invariant, f.violation.message);
        }
    }
    for (inv, fs) in &by_invariant {
        let (i, f) = fs[0];
        println!("  [{inv}] {} lives; first: life {i}, seed {} at step {}: {}", fs.len(), f.seed, f.step, f.violation.message);
    }
    for (inv, fs) in &by_invariant {
        println!("\n[{inv}] first failing life ({} in all):", fs.len());
        print_failure(&with_trace(fs[0].1.seed, &fs[0].1, trace));
    }
    panic!(
        "{} of {lives} lives broke invariants: {}",
        failures.len(),
        by_invariant.iter().map(|(k, v)| format!("{k} ({})", v.len())).collect::<Vec<_>>().join(", ")
    );
}
