//! Review of the Redis token store (issue #16): the async adapters. Each test starts its own
//! `redis-server` on a free 127.0.0.1 port.

#![allow(dead_code)]
mod common;
mod store_contract;
use common::*;
use mcp_oauth_client::{Persist, RedisStore, TokenStore};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(tag: &str) -> Redis {
        Self::start_with(tag, &[])
    }

    fn start_with(tag: &str, extra: &[&str]) -> Redis {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-review-c-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let child = Command::new(std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let r = Redis { child, port, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn store(&self) -> RedisStore {
        RedisStore::open(&self.url()).unwrap()
    }

    fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn refreshes(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().token_requests().iter().filter(|r| r.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")).count()
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// Every key, and every string, set member and hash field/value in Redis, as one text.
fn everything_in(r: &Redis) -> String {
    let mut conn = r.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut out = String::new();
    for k in keys {
        out.push_str(&k);
        out.push('\n');
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut conn).unwrap();
        match kind.as_str() {
            "string" => out.push_str(&redis::cmd("GET").arg(&k).query::<String>(&mut conn).unwrap()),
            "set" => out.push_str(&redis::cmd("SMEMBERS").arg(&k).query::<Vec<String>>(&mut conn).unwrap().join("\n")),
            "hash" => {
                let h: Vec<String> = redis::cmd("HGETALL").arg(&k).query(&mut conn).unwrap();
                out.push_str(&h.join("\n"));
            }
            other => out.push_str(other),
        }
        out.push('\n');
    }
    out
}

/// Connected clients, as Redis counts them (this query's own included).
fn clients(r: &Redis) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut r.raw()).unwrap();
    list.lines().count()
}

fn threads_of_this_process() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// A proxy on 127.0.0.1 in front of Redis. The first command (after `armed` is set) that names
/// `needle` is applied by Redis on a side connection of the proxy's own, and the client's
/// connection is cut before any reply: a reply lost on the way back.
#[allow(dead_code)]
fn reply_losing_proxy(redis_port: u16, needle: &'static [u8], armed: Arc<AtomicBool>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut upstream) = std::net::TcpStream::connect(("127.0.0.1", redis_port)) else { return };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
            let armed = armed.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let names = buf[..n].windows(needle.len()).any(|w| w == needle);
                    if names && armed.swap(false, Ordering::SeqCst) {
                        let mut side = std::net::TcpStream::connect(("127.0.0.1", redis_port)).unwrap();
                        side.write_all(&buf[..n]).unwrap();
                        let _ = side.read(&mut [0u8; 512]);
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        let _ = upstream.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A proxy that passes everything, except that a client→Redis packet naming `needle` is held
/// for `delay` before it is passed on (a slow Redis, a network stall, for that command only).
#[allow(dead_code)]
fn stalling_proxy(redis_port: u16, needle: &'static [u8], delay: Duration, armed: Arc<AtomicBool>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut upstream) = std::net::TcpStream::connect(("127.0.0.1", redis_port)) else { return };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
            let armed = armed.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if armed.load(Ordering::SeqCst) && buf[..n].windows(needle.len()).any(|w| w == needle) {
                        std::thread::sleep(delay);
                    }
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = upstream.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

const KEY: &str = "https://mcp.example.com/mcp#user";

/// With an async adapter, the store's lease is dropped where the flow ends: on the executor
/// thread. `Lease::drop` joins the renewer and runs the release script synchronously, over a
/// blocking socket with the store's timeout (5 s by default, and once more on a new connection).
/// A Redis slow to answer that one command stalls the whole executor thread: every other task
/// on it (here a 20 ms ticker on a single-thread executor) stops for as long.
#[test]
fn the_lease_is_released_on_the_executor_thread_and_blocks_it() {
    let r = Redis::start("executor");
    let s = server(|o| o.refresh_tokens = true);
    let direct = Arc::new(r.store());
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&s), direct.clone(), i).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    let mut t = direct.load(&key).unwrap().tokens.unwrap();
    t.expires_at = Some(mcp_oauth_client::Timestamp::from_secs(1));
    direct.persist(&key, &Persist::Tokens(t)).unwrap();

    // Only the release names the `:done` channel (nobody waits here): it alone is slowed.
    let armed = Arc::new(AtomicBool::new(false));
    let proxy = stalling_proxy(r.port, b":done", Duration::from_millis(2500), armed.clone());
    let store: Arc<dyn TokenStore> = Arc::new(RedisStore::open(&format!("redis://127.0.0.1:{proxy}/")).unwrap());
    let mut mcp = match Adapter::Smol
        .with_oauth(mcp_oauth_client::Config::new(s.mcp_url().parse().unwrap()), store, mcp_oauth_client::Interaction::non_interactive())
        .unwrap()
    {
        Mcp::Async(_, c) => c,
        _ => unreachable!(),
    };
    armed.store(true, Ordering::SeqCst);
    let done = AtomicBool::new(false);
    let (called, max_gap) = smol::block_on(futures_lite::future::zip(
        async {
            let r = mcp.call_tool("echo", serde_json::json!({"text": "x"})).await.map(|_| ());
            done.store(true, Ordering::SeqCst);
            r
        },
        async {
            let mut last = Instant::now();
            let mut max = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                smol::Timer::after(Duration::from_millis(20)).await;
                max = max.max(last.elapsed());
                last = Instant::now();
            }
            max
        },
    ));
    called.unwrap();
    assert_eq!(refreshes(&s), 1, "it refreshed, under the lease");
    assert!(max_gap < Duration::from_millis(1000), "the executor thread was blocked for {max_gap:?} (the lease released on it)");
}
