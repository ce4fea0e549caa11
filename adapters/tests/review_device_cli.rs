//! Review of the device grant in the CLI: `login --no-browser` in an SSH session.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `--no-browser` ("print the URL and wait for the callback or a paste"; in SSH with the
/// `ssh -L` hint) in an SSH session where the authorization server offers the device grant.
/// `login()` sets `config.remote_session = headless() && !o.no_browser`, meaning --no-browser
/// keeps the URL flow, but `interaction()` sets `remote_session = Some(headless)` and
/// `OAuthClient::new` ORs it in: the device grant is taken anyway, the URL (and the SSH port
/// forward hint) never printed.
#[test]
fn review_login_no_browser_in_ssh_prints_the_url_not_a_device_code() {
    let srv = server(|o| {
        o.device = true;
        o.device_interval = Some(1);
        o.device_expires_in = 4;
    });
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-device-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-oauth"))
        .args(["--store", "file", "--store-dir"])
        .arg(dir.join("store"))
        .env("XDG_CONFIG_HOME", &dir)
        .args(["login", &srv.mcp_url(), "--no-browser"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .env_remove("MCP_OAUTH_STORE")
        .env_remove("CI")
        .env("SSH_CONNECTION", "10.0.0.9 5000 127.0.0.1 22")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            let t = line.trim();
            if t.starts_with("http") && t.contains("/authorize?") {
                let _ = mcp_oauth_tests::browser::log_in(t);
            }
        }
        seen
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("mcp-oauth did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seen = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!seen.contains("enter the code"), "--no-browser took the device grant (exit {status}):\n{seen}");
    assert!(seen.contains("/authorize?"), "no authorization URL printed:\n{seen}");
    assert!(status.success(), "{seen}");
}
