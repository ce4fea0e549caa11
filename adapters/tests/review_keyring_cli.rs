//! Review of the KeyringStore change (5aa12d8): `mcp-oauth --store auto` as a user meets it.
//! The keyring is the kernel's keyutils (the CLI files items under its default service name;
//! the servers are loopback ones with fresh ports, and every test logs out with --forget).
#![cfg(target_os = "linux")]

mod common;
use common::*;
use mcp_oauth_client::{FileStore, TokenStore};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-review-krcli-{}-{tag}", std::process::id()));
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

/// `mcp-oauth --store-dir … ARGS` (no --store: each test says which), headless.
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

/// A D-Bus "session bus" that accepts connections and never answers: a keyring waiting on an
/// unlock prompt nobody sees.
fn silent_bus(s: &Scratch) -> String {
    let path = s.0.join("bus");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    format!("unix:path={}", path.display())
}

/// The login is in the keyring. Today the keyring does not answer (locked, prompt unseen), so
/// `--store auto` falls back to files. The issue asks for a fall back "with a message": a
/// command other than `status` must say the keyring did not answer (and that logins are out of
/// reach), not only "not logged in, run mcp-oauth login".
#[test]
fn a_command_on_auto_that_falls_back_says_the_keyring_did_not_answer() {
    let srv = server(|_| {});
    let s = Scratch::new("fallback-msg");
    let url = srv.mcp_url();
    let out = login_via_browser(&s, &["--store", "keyring", "--keyring", "keyutils", "login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let bus = silent_bus(&s);
    let out = cli(&s, &["--store", "auto", "--keyring", "secret-service", "token", &url])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .env("MCP_OAUTH_KEYRING_TIMEOUT", "1")
        .output()
        .unwrap();
    let (code, stderr) = (out.status.code(), text(&out.stderr));
    let cleanup = run(&s, &["--store", "keyring", "--keyring", "keyutils", "logout", &url, "--forget"]);
    assert_eq!(cleanup.status.code(), Some(0), "{}", text(&cleanup.stderr));
    assert!(
        stderr.contains("Secret Service") || stderr.to_lowercase().contains("keyring"),
        "exit {code:?}; stderr says nothing of the keyring that did not answer:\n{stderr}"
    );
}

/// Logged in through the keyring; a day without it (auto fell back to files) and a login
/// there; then, with the keyring back, `mcp-oauth logout URL` (auto). Afterwards no store may
/// hold a login for the server: `--store file status` must say "not logged in" (exit 3).
#[test]
fn logout_on_auto_leaves_no_login_in_the_files() {
    let srv = server(|o| o.refresh_tokens = true);
    let s = Scratch::new("logout-both");
    let url = srv.mcp_url();
    let out = login_via_browser(&s, &["--store", "keyring", "--keyring", "keyutils", "login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = login_via_browser(&s, &["--store", "file", "login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(&s, &["--store", "auto", "--keyring", "keyutils", "logout", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status = run(&s, &["--store", "file", "status", &url]);
    let _ = run(&s, &["--store", "file", "logout", &url, "--forget"]);
    let _ = run(&s, &["--store", "keyring", "--keyring", "keyutils", "logout", &url, "--forget"]);
    assert_eq!(status.status.code(), Some(3), "after `mcp-oauth logout` the file store still holds a login:\n{}", text(&status.stdout));
}

/// An application (the library with `FileStore::in_default_dir()`, the README's example; here
/// the same directory) is logged in. The user runs `mcp-oauth status` (auto, the keyring
/// answers). The application's next start must not need a new login.
#[test]
fn status_on_auto_leaves_an_applications_logins_where_they_are() {
    let srv = server(|o| o.refresh_tokens = true);
    let s = Scratch::new("app");
    let (i, _) = following_browser();
    Adapter::Blocking.with_oauth(config(&srv), Arc::new(FileStore::new(s.store())), i.clone()).unwrap().list_tools().unwrap();
    let logins = srv.lock().authorization_requests().len();

    let out = run(&s, &["--keyring", "keyutils", "status"]);
    let said = text(&out.stderr);

    Adapter::Blocking.with_oauth(config(&srv), Arc::new(FileStore::new(s.store())), i).unwrap().list_tools().unwrap();
    let after = srv.lock().authorization_requests().len();
    let key = config(&srv).store_key();
    let _ = mcp_oauth_client::KeyringStore::new(s.store().join("keyring-index"), mcp_oauth_client::KeyringBackend::KeyUtils).forget(&key);
    let _ = FileStore::new(s.store()).forget(&key);
    assert_eq!(after, logins, "`mcp-oauth status` said {said:?}; the application then had to log in again");
}
