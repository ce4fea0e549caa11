//! Review of the logout flow and the `mcp-oauth` binary: reproductions of defects found.
//! Each test states what should happen; each fails on the code under review.

mod common;
use common::*;
use mcp_oauth_client::{FileStore, TokenStore};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-review-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn store(&self) -> PathBuf {
        self.0.join("store")
    }
    fn config(&self) -> PathBuf {
        let dir = self.0.join("mcp-oauth");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("servers.json")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cli(s: &Scratch, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcp-oauth"));
    c.arg("--store").arg("file").arg("--store-dir").arg(s.store()).env("XDG_CONFIG_HOME", &s.0);
    c.args(args);
    c.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").env_remove("BROWSER").env_remove("MCP_OAUTH_STORE").env("CI", "true");
    c.env_remove("SSH_CONNECTION");
    c.stdin(Stdio::null());
    c
}

fn run(s: &Scratch, args: &[&str]) -> Output {
    cli(s, args).output().expect("run mcp-oauth")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a login and plays the browser (whatever the pages say): the output.
fn login(s: &Scratch, args: &[&str]) -> Output {
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
                let _ = mcp_oauth_tests::browser::log_in(t);
            }
        }
        seen
    });
    let start = std::time::Instant::now();
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
    let stderr = reader.join().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    Output { status, stdout: stdout.into_bytes(), stderr: stderr.into_bytes() }
}

fn mcp_status_with(url: &str, authorization: &str) -> u16 {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    ureq::post(url)
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Every token set the file store holds, whatever its key.
fn all_tokens(s: &Scratch) -> Vec<(String, mcp_oauth_client::TokenSet)> {
    let store = FileStore::new(s.store());
    store.servers().unwrap().into_iter().filter_map(|k| store.load(&k).unwrap().tokens.map(|t| (k, t))).collect()
}

/// `--help` promises exit code 1 when "the authorization server failed or refused"; `logout`
/// computes that (`worst`) and then returns 0 anyway, so a script cannot tell that the tokens
/// are still valid at the authorization server.
#[test]
fn logout_refused_by_the_authorization_server_exits_nonzero() {
    let srv = server(|o| {
        o.revocation = true;
        o.revocation_status = Some(400);
    });
    let s = Scratch::new("exit");
    let url = srv.mcp_url();
    let out = login(&s, &["login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&s, &["logout", &url]);
    assert!(text(&out.stderr).contains("not everything was revoked"), "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "refused revocation must not exit 0; stderr: {}", text(&out.stderr));
}

/// A 503 at the revocation endpoint is reported as "log out again later to revoke", but the
/// tokens were already forgotten: a later logout has nothing to revoke, and the grant stays
/// valid at the authorization server with nothing left to revoke it with.
#[test]
fn logout_again_later_after_a_503_revokes_as_promised() {
    let srv = server(|o| {
        o.revocation = true;
        o.revocation_status = Some(503);
    });
    let s = Scratch::new("503");
    let url = srv.mcp_url();
    let out = login(&s, &["login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let access = all_tokens(&s)[0].1.access_token.secret().to_owned();
    let out = run(&s, &["logout", &url]);
    assert!(text(&out.stderr).contains("log out again later to revoke"), "{}", text(&out.stderr));
    // The server is back: do as told.
    srv.lock().options.revocation_status = None;
    let out = run(&s, &["logout", &url]);
    assert!(
        text(&out.stdout).contains("refresh token revoked"),
        "the second logout, as the first one advised, revoked nothing: {}",
        text(&out.stdout)
    );
    assert_eq!(mcp_status_with(&url, &format!("Bearer {access}")), 401, "the grant is still alive at the server");
}

/// `login --force` forgets the held tokens before the new login has succeeded: a login that
/// is then denied (or cancelled, or times out) leaves the person with nothing, while the old
/// grant is never revoked and stays valid at the server.
#[test]
fn a_failed_login_force_keeps_the_old_tokens() {
    let srv = server(|o| o.revocation = true);
    let s = Scratch::new("force");
    let url = srv.mcp_url();
    let out = login(&s, &["login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = all_tokens(&s);
    assert_eq!(before.len(), 1);
    srv.lock().options.deny = true;
    let out = login(&s, &["login", &url, "--no-browser", "--force"]);
    assert_eq!(out.status.code(), Some(4), "the denied login: {}", text(&out.stderr));
    let old = before[0].1.access_token.secret().to_owned();
    assert_eq!(mcp_status_with(&url, &format!("Bearer {old}")), 200, "the old grant is still valid at the server");
    let after = all_tokens(&s);
    assert_eq!(after.len(), 1, "the denied `login --force` threw the working tokens away (not revoked either)");
}

/// A login with `--client-id` stores under `URL#user:<id>`; `status URL`, `token URL`,
/// `logout URL` and `logout --all` all look under the key of a configuration without that
/// client id. `logout` says "logged out" and exits 0 while the tokens stay in the store and
/// valid at the server.
#[test]
fn logout_by_url_finds_a_login_made_with_client_id() {
    let srv = server(|o| {
        o.revocation = true;
        o.clients.push(mcp_oauth_tests::PreClient { id: "app".into(), secret: None, jwt_key: None });
    });
    let s = Scratch::new("clientid");
    let url = srv.mcp_url();
    let out = login(&s, &["login", &url, "--no-browser", "--client-id", "app"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(all_tokens(&s).len(), 1);
    let access = all_tokens(&s)[0].1.access_token.secret().to_owned();

    let status = run(&s, &["status", &url]);
    let logout = run(&s, &["logout", &url]);
    let after_url = all_tokens(&s).len();
    let all = run(&s, &["logout", "--all"]);
    let after_all = all_tokens(&s).len();
    let alive = mcp_status_with(&url, &format!("Bearer {access}"));
    assert!(
        status.status.code() == Some(0) && after_url == 0 && after_all == 0 && alive == 401,
        "status URL exit {:?}; `logout URL` said {:?} (exit {:?}) and left {after_url} token set(s); \
         `logout --all` said {:?} and left {after_all}; the access token still gets {alive} at the server",
        status.status.code(),
        text(&logout.stdout),
        logout.status.code(),
        text(&all.stdout),
    );
}

/// `status` prints the granted scope (chosen by the authorization server) to the terminal
/// as is: escape sequences (here OSC 52, which writes the clipboard) reach the terminal.
#[test]
fn status_does_not_print_terminal_escapes_from_the_server() {
    let srv = server(|o| o.grant_scope_override = Some("mcp:read \u{1b}]52;c;cm0gLXJmIH4=\u{7}".into()));
    let s = Scratch::new("escape");
    let url = srv.mcp_url();
    let out = login(&s, &["login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&s, &["status", &url]);
    let both = [out.stdout.clone(), out.stderr.clone()].concat();
    assert!(!both.iter().any(|b| *b == 0x1b || *b == 0x07), "raw control bytes printed: {:?}", text(&out.stdout));
}

/// A config file in the shape other MCP clients write, with one entry this tool does not
/// understand (Windsurf's `serverUrl`), makes every command fail with exit 2, even ones given
/// a URL that needs no name at all.
#[test]
fn one_foreign_entry_in_the_servers_file_does_not_break_every_command() {
    let srv = server(|_| {});
    let s = Scratch::new("foreign");
    let cfg = serde_json::json!({"mcpServers": {
        "demo": {"type": "http", "url": srv.mcp_url()},
        "windsurf-style": {"serverUrl": "https://other.example/mcp"}
    }});
    std::fs::write(s.config(), cfg.to_string()).unwrap();
    let out = run(&s, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&s, &["status", &srv.mcp_url()]);
    assert_eq!(out.status.code(), Some(3), "not logged in (not a config error): {}", text(&out.stderr));
}
