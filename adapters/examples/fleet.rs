//! A fleet of worker processes sharing one login through Redis.
//!
//! ```sh
//! cargo run -p mcp-oauth-client --features redis --example fleet -- [--processes 4 --workers 16]
//! ```
//!
//! Starts a `redis-server` of its own on a free loopback port (or uses `REDIS_URL`), the
//! in-process test authorization and MCP server, then fleets of worker processes (each thread of
//! each its own client, all on one `RedisStore`) that call a tool: cold (one login for all),
//! then after each forced expiry (one refresh for all). It prints the server's view, the Redis
//! round trips per authorized request when the token is warm and per refresh, and the latency
//! of a refresh round through the lease against the same fleet on one machine's `FileStore`.

mod shared;

use mcp_oauth_client::blocking::McpClient;
use mcp_oauth_client::{Config, FileStore, Interaction, Persist, RedisStore, Timestamp, TokenStore};
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::Options;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `redis:URL` or `file:DIR`.
fn open_store(spec: &str) -> Res<Arc<dyn TokenStore>> {
    Ok(match spec.split_once(':') {
        Some(("redis", url)) => Arc::new(RedisStore::open(url)?),
        Some(("file", dir)) => Arc::new(FileStore::new(dir)),
        _ => return Err(format!("bad store spec {spec}").into()),
    })
}

/// A worker process: `threads` clients, each one tool call; prints each first call's latency.
fn worker(spec: &str) -> Res<()> {
    let mut parts = spec.splitn(4, '|');
    let (store, url, threads, login) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("1"), parts.next());
    let store = open_store(store)?;
    let threads: usize = threads.parse()?;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (store, url, login) = (store.clone(), url.to_owned(), login == Some("login"));
            std::thread::spawn(move || -> Result<u128, String> {
                let mut config = Config::new(url.parse().map_err(|e| format!("{e}"))?);
                config.callback_timeout = Duration::from_secs(60);
                let interaction = if login { shared::simulated_browser_quiet() } else { Interaction::non_interactive() };
                let started = Instant::now();
                let mut mcp = McpClient::with_oauth(config, store, interaction).map_err(|e| e.to_string())?;
                mcp.call_tool("echo", serde_json::json!({"text": "worker"})).map_err(|e| e.to_string())?;
                Ok(started.elapsed().as_micros())
            })
        })
        .collect();
    let mut times = Vec::new();
    for h in handles {
        times.push(h.join().map_err(|_| "a worker panicked")??);
    }
    println!("{}", serde_json::to_string(&times)?);
    Ok(())
}

struct Fleet {
    processes: usize,
    workers: usize,
}

impl Fleet {
    /// Runs the fleet once; returns every worker's time to its first answer, in µs, sorted.
    fn run(&self, store: &str, url: &str, login: bool) -> Res<Vec<u128>> {
        let exe = std::env::current_exe()?;
        let children: Vec<_> = (0..self.processes)
            .map(|_| {
                let spec = format!("{store}|{url}|{}|{}", self.workers, if login { "login" } else { "" });
                Command::new(&exe).env("MCP_OAUTH_FLEET_WORKER", spec).stdout(Stdio::piped()).spawn()
            })
            .collect::<Result<_, _>>()?;
        let mut all = Vec::new();
        for c in children {
            let out = c.wait_with_output()?;
            if !out.status.success() {
                return Err("a worker process failed".into());
            }
            all.extend(serde_json::from_slice::<Vec<u128>>(&out.stdout)?);
        }
        all.sort_unstable();
        Ok(all)
    }
}

fn median(v: &[u128]) -> f64 {
    v.get(v.len() / 2).copied().unwrap_or(0) as f64 / 1000.0
}

fn max(v: &[u128]) -> f64 {
    v.last().copied().unwrap_or(0) as f64 / 1000.0
}

/// Commands Redis has executed (all but INFO itself).
fn redis_commands(url: &str) -> Res<u64> {
    let mut c = redis::Client::open(url)?.get_connection()?;
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut c)?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum())
}

fn expire(store: &dyn TokenStore, key: &str) -> Res<()> {
    let mut t = store.load(key)?.tokens.ok_or("no tokens stored")?;
    t.expires_at = Some(Timestamp::from_secs(1));
    store.persist(key, &Persist::Tokens(t))?;
    Ok(())
}

fn logins(s: &TcpTestServer) -> usize {
    s.lock().authorization_requests().len()
}

fn refreshes(s: &TcpTestServer) -> usize {
    s.lock().token_requests().iter().filter(|r| r.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")).count()
}

/// Our own redis-server on a free port, or `REDIS_URL`.
struct OwnRedis(Option<std::process::Child>, std::path::PathBuf);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn redis() -> Res<(String, OwnRedis)> {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-fleet-{}", std::process::id()));
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Ok((url, OwnRedis(None, dir)));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    std::fs::create_dir_all(&dir)?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start redis-server ({e}). Install Redis (Debian/Ubuntu: sudo apt-get install redis-server; \
                 macOS: brew install redis) or set REDIS_URL=redis://host:port/"
            )
        })?;
    let own = OwnRedis(Some(child), dir);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((format!("redis://127.0.0.1:{port}/"), own))
}

fn arg(name: &str, default: usize) -> Res<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).ok_or(format!("{name} needs a number"))?.parse()?),
        None => Ok(default),
    }
}

fn main() -> Res<()> {
    if let Ok(spec) = std::env::var("MCP_OAUTH_FLEET_WORKER") {
        return worker(&spec);
    }
    let fleet = Fleet { processes: arg("--processes", 4)?, workers: arg("--workers", 16)? };
    let n = fleet.processes * fleet.workers;
    let (redis_url, _own) = redis()?;
    let server = TcpTestServer::start(|origin| {
        let mut o = Options::new(origin);
        o.refresh_tokens = true;
        o
    })?;
    let url = server.mcp_url();
    let key = Config::new(url.parse()?).store_key();
    let redis_store = RedisStore::open(&redis_url)?;
    let spec = format!("redis:{redis_url}");
    println!("Redis at {redis_url}; MCP server (independent test server) at {url}");
    println!("Fleet: {} processes x {} clients = {n} workers, one RedisStore\n", fleet.processes, fleet.workers);

    let cold = fleet.run(&spec, &url, true)?;
    println!(
        "1. Cold start, {n} workers at once: {} login(s) at the server; first answers median {:.1} ms, max {:.1} ms",
        logins(&server),
        median(&cold),
        max(&cold)
    );

    // Round trips: one client in this process, warm, then through one refresh.
    let mut one = McpClient::with_oauth(Config::new(url.parse()?), Arc::new(redis_store.clone()), Interaction::non_interactive())?;
    one.call_tool("echo", serde_json::json!({"text": "warm up"}))?;
    let before = redis_commands(&redis_url)?;
    let calls = 100;
    for _ in 0..calls {
        one.call_tool("echo", serde_json::json!({"text": "warm"}))?;
    }
    let warm = redis_commands(&redis_url)? - before;
    println!("2. Warm token: {warm} Redis commands for {calls} authorized requests ({:.2} per request)", warm as f64 / calls as f64);
    expire(&redis_store, &key)?;
    let mut fresh = McpClient::with_oauth(Config::new(url.parse()?), Arc::new(redis_store.clone()), Interaction::non_interactive())?;
    let before = redis_commands(&redis_url)?;
    fresh.call_tool("echo", serde_json::json!({"text": "refresh"}))?;
    let per_refresh = redis_commands(&redis_url)? - before;
    println!("3. One refresh through the lease, uncontended: {per_refresh} Redis commands (lease, reload, fenced writes, release)");

    let rounds = arg("--rounds", 2)?;
    let mut redis_rounds = Vec::new();
    for round in 1..=rounds {
        let refreshes_before = refreshes(&server);
        expire(&redis_store, &key)?;
        let t = fleet.run(&spec, &url, false)?;
        println!(
            "4.{round} Expired token, {n} workers at once: {} refresh(es); first answers median {:.1} ms, max {:.1} ms",
            refreshes(&server) - refreshes_before,
            median(&t),
            max(&t)
        );
        redis_rounds.push(median(&t));
    }

    // The same fleet on one machine's FileStore (process locks instead of the lease).
    let dir = std::env::temp_dir().join(format!("mcp-oauth-fleet-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file_spec = format!("file:{}", dir.display());
    let files = FileStore::new(&dir);
    let logins_before = logins(&server);
    fleet.run(&file_spec, &url, true)?;
    let mut file_rounds = Vec::new();
    for _ in 1..=rounds {
        expire(&files, &key)?;
        file_rounds.push(median(&fleet.run(&file_spec, &url, false)?));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (r, f) = (redis_rounds.iter().sum::<f64>() / rounds as f64, file_rounds.iter().sum::<f64>() / rounds as f64);
    println!(
        "5. Refresh round, median first answer: Redis lease {r:.1} ms, FileStore on one machine {f:.1} ms: {:.2}x \
         (the file store's fleet logged in {} more time)",
        r / f,
        logins(&server) - logins_before
    );

    let statuses: Vec<u16> = server.lock().token_requests().iter().map(|t| t.status).collect();
    let by_status = statuses.iter().fold(std::collections::BTreeMap::new(), |mut m, s| {
        *m.entry(*s).or_insert(0) += 1;
        m
    });
    println!(
        "\nThe server's view: {logins_before} login(s) for the Redis fleet, {} refresh(es) in all ({} forced expiries per store, \
         plus one uncontended), token request statuses {by_status:?}",
        refreshes(&server),
        rounds
    );
    if statuses.iter().any(|s| *s != 200) {
        return Err("a token request failed: a refresh token presented twice?".into());
    }
    Ok(())
}
