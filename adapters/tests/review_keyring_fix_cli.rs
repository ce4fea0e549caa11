//! Re-review of 20225fb: `mcp-oauth logout` on `--store auto` with a login in both stores.
#![cfg(target_os = "linux")]

mod common;
use common::*;
use mcp_oauth_tests::ledger::TokenKind;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-rrkf-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn store(&self) -> PathBuf {
        self.0.join("store")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cli(s: &Scratch, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcp-oauth"));
    c.arg("--store-dir").arg(s.store()).env("XDG_CONFIG_HOME", &s.0);
    c.args(args);
    c.env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .env_remove("MCP_OAUTH_STORE")
        .env_remove("MCP_OAUTH_KEYRING")
        .env_remove("MCP_OAUTH_KEYRING_TIMEOUT")
        .env("CI", "true");
    c.stdin(Stdio::null());
    c
}

fn run(s: &Scratch, args: &[&str]) -> Output {
    cli(s, args).output().expect("run mcp-oauth")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn login_via_browser(s: &Scratch, args: &[&str]) -> Output {
    let mut child = cli(s, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut done = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            let t = line.trim();
            if !done && t.starts_with("http") && t.contains("/authorize?") {
                done = true;
                mcp_oauth_tests::browser::log_in(t).expect("the stand-in browser completes the login");
            }
        }
        seen
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "login did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    Output { status, stdout: stdout.into_bytes(), stderr: stderr.into_bytes() }
}

/// Live refresh tokens at the server (issued, not revoked, not spent).
fn live_refresh(srv: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    let g = srv.lock();
    g.ledger().issued.iter().filter(|t| t.kind == TokenKind::Refresh && t.revoked_at.is_none() && t.spent_at.is_none()).count()
}

/// A login in the keyring and one in the files (a day the keyring did not answer). The commit
/// says: "the CLI's logout revokes a copy left in the other store". After `logout URL` on auto,
/// no refresh token may still be live at the server, and each login is reported once.
#[test]
fn logout_on_auto_revokes_the_copy_in_the_other_store() {
    let srv = server(|o| {
        o.refresh_tokens = true;
        o.revocation = true;
    });
    let s = Scratch::new("revoke-both");
    let url = srv.mcp_url();
    let out = login_via_browser(&s, &["--store", "keyring", "--keyring", "keyutils", "login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = login_via_browser(&s, &["--store", "file", "login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = live_refresh(&srv);

    let out = run(&s, &["--store", "auto", "--keyring", "keyutils", "logout", &url]);
    let after = live_refresh(&srv);
    let _ = run(&s, &["--store", "file", "logout", &url, "--forget"]);
    let _ = run(&s, &["--store", "keyring", "--keyring", "keyutils", "logout", &url, "--forget"]);
    let said = format!("exit {:?}\nstdout:\n{}stderr:\n{}", out.status.code(), text(&out.stdout), text(&out.stderr));
    assert_eq!(before, 2, "{said}");
    assert_eq!(after, 0, "live refresh tokens before logout {before}, after {after}; logout said:\n{said}");
}

/// Same, with the login only in the keyring: one line of output, exit 0.
#[test]
fn logout_on_auto_reports_a_single_login_once() {
    let srv = server(|o| {
        o.refresh_tokens = true;
        o.revocation = true;
    });
    let s = Scratch::new("once");
    let url = srv.mcp_url();
    let out = login_via_browser(&s, &["--store", "auto", "--keyring", "keyutils", "login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&s, &["--store", "auto", "--keyring", "keyutils", "logout", &url]);
    let _ = run(&s, &["--store", "keyring", "--keyring", "keyutils", "logout", &url, "--forget"]);
    let said = format!("exit {:?}\nstdout:\n{}stderr:\n{}", out.status.code(), text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_eq!(text(&out.stdout).matches("logged out of").count(), 1, "{said}");
}

/// The authorization server cannot be reached at logout (no --forget: tokens kept, exit 5).
/// One login, one message.
#[test]
fn logout_on_auto_with_an_unreachable_server_says_it_once() {
    let srv = server(|o| {
        o.refresh_tokens = true;
        o.revocation = true;
        o.revocation_status = Some(503);
    });
    let s = Scratch::new("unreach");
    let url = srv.mcp_url();
    let out = login_via_browser(&s, &["--store", "auto", "--keyring", "keyutils", "login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&s, &["--store", "auto", "--keyring", "keyutils", "logout", &url]);
    let _ = run(&s, &["--store", "keyring", "--keyring", "keyutils", "logout", &url, "--forget"]);
    let said = format!("exit {:?}\nstdout:\n{}stderr:\n{}", out.status.code(), text(&out.stdout), text(&out.stderr));
    let revokes = srv.lock().count("/revoke");
    assert_eq!(text(&out.stderr).matches("not logged out").count(), 1, "revocation requests: {revokes}\n{said}");
}
