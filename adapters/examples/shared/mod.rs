//! What both demos share: the simulated browser and the printed server log.
#![allow(dead_code)]

use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{Config, FileStore};
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::Options;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What a demo runs against: the in-process test server, a fresh file store, and a config.
pub struct Setup {
    pub server: TcpTestServer,
    pub dir: PathBuf,
    pub store: Arc<FileStore>,
    pub config: Config,
}

/// Starts the independent test server on 127.0.0.1 and prepares a store in a temp directory.
pub fn setup(name: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    let server = TcpTestServer::start(Options::new)?;
    let dir = std::env::temp_dir().join(format!("{}-{}", name.replace(' ', "-"), std::process::id()));
    let store = Arc::new(FileStore::new(&dir));
    let mut config = Config::new(server.mcp_url().parse()?);
    config.client_name = name.into();
    config.callback_timeout = Duration::from_secs(120);
    println!("MCP server (independent test server) at {}", server.mcp_url());
    Ok(Setup { server, dir, store, config })
}

/// The `--server URL` argument, if given.
pub fn server_arg() -> Result<Option<url::Url>, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "--server") {
        Some(i) => Ok(Some(args.get(i + 1).ok_or("--server needs a URL")?.parse()?)),
        None => Ok(None),
    }
}

/// The simulated browser: GET the authorization URL, then follow the redirect to the loopback.
pub fn simulated_browser() -> Interaction {
    let mut i = Interaction::with_hook(|url: &url::Url| {
        let url = url.clone();
        std::thread::spawn(move || {
            use mcp_oauth_tests::browser;
            let resp = browser::get(url.as_str()).expect("authorization endpoint");
            let loc = resp.location.clone().unwrap_or_default();
            let path = |u: &str| u.split('?').next().unwrap_or("").to_owned();
            println!("   browser: {} -> {} redirect to {}?…", path(url.as_str()), resp.status, path(&loc));
            let page = browser::get(&loc).expect("loopback callback");
            println!("   browser: loopback page {} \"{}\"", page.status, page.title());
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i
}

/// The simulated browser, silent (for workers whose standard output is data).
pub fn simulated_browser_quiet() -> Interaction {
    let mut i = Interaction::with_hook(|url: &url::Url| {
        let url = url.clone();
        std::thread::spawn(move || {
            use mcp_oauth_tests::browser;
            if let Ok(resp) = browser::get(url.as_str()) {
                let _ = browser::get(&resp.location.unwrap_or_default());
            }
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i
}

pub fn print_log(server: &TcpTestServer, from: &mut usize) {
    let s = server.lock();
    for r in &s.log[*from..] {
        let target = r.target.split('?').next().unwrap_or("");
        let what = match target {
            "/mcp" => "mcp",
            t if t.contains(".well-known") => "discovery",
            t if t.ends_with("/register") => "registration",
            t if t.ends_with("/authorize") => "authorization (browser)",
            t if t.ends_with("/token") => r.params.iter().find(|(k, _)| k == "grant_type").map(|(_, v)| v.as_str()).unwrap_or("token"),
            _ => "",
        };
        let auth = if r.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer")) { " [Bearer]" } else { "" };
        println!("   server saw: {} {target} -> {} ({what}){auth}", r.method, r.status);
    }
    *from = s.log.len();
}

/// Prints the server's log since `from`, and returns how many of those requests were OAuth ones
/// (anything but the MCP endpoint).
pub fn oauth_requests_since(server: &TcpTestServer, from: &mut usize) -> usize {
    let before = *from;
    print_log(server, from);
    let n = server.lock().log[before..].iter().filter(|r| r.target != "/mcp").count();
    println!("   OAuth requests in the second run: {n}");
    n
}
