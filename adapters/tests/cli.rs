//! The `mcp-oauth` binary, driven as a person would from a shell, against the independent test
//! server over TCP: login through a stand-in browser (the test reads the authorization URL the
//! program prints and follows it, as a person's browser would, to the program's loopback
//! listener), status, token, tools, call, logout with revocation, names from an `mcpServers`
//! file, the callback host and exact redirect URI, and the exit codes.

mod common;
use common::*;
use mcp_oauth_client::{FileStore, TokenStore};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A scratch directory for one test: the file store and the config file.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn store(&self) -> PathBuf {
        self.0.join("store")
    }
    /// The default config file, under `XDG_CONFIG_HOME` (which `cli` points here).
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

/// `mcp-oauth --store file --store-dir … ARGS`, its config file the default one in the scratch
/// directory, headless, with no terminal.
fn cli(s: &Scratch, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcp-oauth"));
    c.arg("--store").arg("file").arg("--store-dir").arg(s.store()).env("XDG_CONFIG_HOME", &s.0);
    c.args(args);
    c.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").env_remove("BROWSER").env_remove("MCP_OAUTH_STORE").env("CI", "true");
    c.stdin(Stdio::null());
    c
}

fn run(s: &Scratch, args: &[&str]) -> Output {
    cli(s, args).output().expect("run mcp-oauth")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a login and plays the person's browser: reads the authorization URL from standard
/// error, follows it to the server, then the redirect to the program's listener. Returns the
/// program's output and the authorization URL.
fn login_via_browser(s: &Scratch, args: &[&str]) -> (Output, String) {
    login_via_browser_with(s, args, &[])
}

fn login_via_browser_with(s: &Scratch, args: &[&str], envs: &[(&str, &str)]) -> (Output, String) {
    let mut child = cli(s, args).envs(envs.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut url = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            let t = line.trim();
            if url.is_none() && t.starts_with("http") && t.contains("/authorize?") {
                url = Some(t.to_owned());
                let page = mcp_oauth_tests::browser::log_in(t).expect("the stand-in browser completes the login");
                assert_eq!(page.status, 200, "the callback page: {}", page.body);
            }
        }
        (seen, url)
    });
    let status = wait(&mut child, Duration::from_secs(60));
    let (stderr, url) = reader.join().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let out = Output { status, stdout: stdout.into_bytes(), stderr: stderr.into_bytes() };
    let url = url.unwrap_or_else(|| panic!("no authorization URL printed; stderr:\n{}", text(&out.stderr)));
    (out, url)
}

fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("mcp-oauth did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn query(url: &str, k: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned())
}

/// A POST of `tools/list` with this `Authorization`: the status.
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

fn stored_token(s: &Scratch, url: &str) -> mcp_oauth_client::TokenSet {
    let store = FileStore::new(s.store());
    let key = config_for(url).store_key();
    store.load(&key).unwrap().tokens.expect("tokens stored")
}

fn config_for(url: &str) -> mcp_oauth_client::Config {
    mcp_oauth_client::Config::new(url.parse().unwrap())
}

#[test]
fn a_whole_session_login_status_token_tools_call_logout() {
    let srv = server(|o| o.revocation = true);
    let s = Scratch::new("session");
    let url = srv.mcp_url();

    let (out, _) = login_via_browser(&s, &["login", &url, "--no-browser"]);
    assert!(out.status.success(), "login failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("logged in to "), "{}", text(&out.stdout));
    let held = stored_token(&s, &url);
    let secret = held.access_token.secret().to_owned();
    let refresh = held.refresh_token.as_ref().unwrap().secret().to_owned();

    // status: what is stored, never a token.
    let out = run(&s, &["status", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for want in
        ["issuer", &srv.origin(), "dynamic registration", "mcp:read", "expires     in", "refresh     yes", "dpop-bound  no", "file ("]
    {
        assert!(shown.contains(want), "status lacks {want:?}:\n{shown}");
    }
    assert!(!shown.contains(&secret) && !shown.contains(&refresh), "status shows a token:\n{shown}");
    let out = run(&s, &["--json", "status"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(v["servers"][0]["logged_in"], true, "{v}");
    assert_eq!(v["servers"][0]["tokens"]["refresh_token"], true);
    assert!(v["servers"][0]["tokens"]["expires_in_secs"].as_i64().unwrap() > 3000);
    assert!(!out.stdout.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // token: exactly the access token on stdout, which the server takes.
    let out = run(&s, &["token", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim_end(), secret);
    assert_eq!(mcp_status_with(&url, &format!("Bearer {}", text(&out.stdout).trim_end())), 200);

    // tools and call, through the stored authorization (no second login).
    let out = run(&s, &["tools", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).lines().any(|l| l.starts_with("echo\t")), "{}", text(&out.stdout));
    let out = run(&s, &["--json", "tools", &url]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.as_array().unwrap().iter().any(|t| t["name"] == "echo"));
    let out = run(&s, &["call", &url, "echo", r#"{"text":"hello from the shell"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hello from the shell"), "{}", text(&out.stdout));
    assert_eq!(srv.lock().authorization_requests().len(), 1, "one login for the whole session");

    // logout: revoked at the server (refresh token first), forgotten here.
    let out = run(&s, &["logout", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("refresh token revoked, access token revoked"), "{}", text(&out.stdout));
    let revoked: Vec<String> = srv
        .lock()
        .log
        .iter()
        .filter(|r| r.target == "/revoke")
        .filter_map(|r| r.params.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(revoked, vec![refresh, secret.clone()]);
    assert_eq!(mcp_status_with(&url, &format!("Bearer {secret}")), 401, "the server no longer takes the token");
    let out = run(&s, &["status", &url]);
    assert_eq!(out.status.code(), Some(3), "not logged in any more");
    let out = run(&s, &["token", &url]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("mcp-oauth login"), "{}", text(&out.stderr));
}

#[test]
fn names_come_from_an_mcp_servers_file_in_the_shape_clients_use() {
    let srv = server(|_| {});
    let s = Scratch::new("names");
    let cfg = serde_json::json!({"mcpServers": {
        "demo": {"type": "http", "url": srv.mcp_url(), "disabled": false},
        "local": {"command": "my-server", "args": ["-v"]}
    }});
    std::fs::write(s.config(), cfg.to_string()).unwrap();
    let (out, _) = login_via_browser(&s, &["login", "demo", "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&s, &["status"]);
    assert!(text(&out.stdout).contains("(demo)"), "{}", text(&out.stdout));
    let out = run(&s, &["call", "demo", "echo", r#"{"text":"by name"}"#]);
    assert!(text(&out.stdout).contains("by name"), "{}", text(&out.stderr));
    // A stdio server has no OAuth, and an unknown name is a usage error: both exit 2.
    assert_eq!(run(&s, &["login", "local"]).status.code(), Some(2));
    let out = run(&s, &["token", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no server named `nosuch`"), "{}", text(&out.stderr));
}

#[test]
fn the_callback_host_port_and_an_exact_redirect_uri_are_honoured_end_to_end() {
    let srv = server(|o| o.strict_redirect_port = true);
    let s = Scratch::new("redirect");
    let port = free_port();
    let (out, url) =
        login_via_browser(&s, &["login", &srv.mcp_url(), "--no-browser", "--callback-host", "localhost", "--port", &port.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = format!("http://localhost:{port}/callback");
    assert_eq!(query(&url, "redirect_uri").as_deref(), Some(want.as_str()));
    let registered = srv.lock().log.iter().filter(|r| r.target == "/register").map(|r| r.params.clone()).next_back().unwrap();
    assert!(registered.iter().any(|(k, v)| k == "redirect_uris" && v.contains(&want)), "DCR registered {registered:?}");

    // An exact redirect URI on another port: registered anew for it, and used as given.
    let port2 = free_port();
    let exact = format!("http://127.0.0.1:{port2}/callback");
    let (out, url) = login_via_browser(&s, &["login", &srv.mcp_url(), "--no-browser", "--force", "--redirect-uri", &exact]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(query(&url, "redirect_uri").as_deref(), Some(exact.as_str()));
    // Contradictory options are refused before anything happens.
    let out = run(&s, &["login", &srv.mcp_url(), "--redirect-uri", &exact, "--port", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&s, &["login", &srv.mcp_url(), "--callback-host", "0.0.0.0"]);
    assert_eq!(out.status.code(), Some(2), "only loopback hosts");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_dpop_bound_token_is_not_printed() {
    let srv = server(|o| o.dpop = true);
    let s = Scratch::new("dpop");
    let (out, _) = login_via_browser(&s, &["login", &srv.mcp_url(), "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&s, &["token", &srv.mcp_url()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(text(&out.stderr).contains("DPoP"), "{}", text(&out.stderr));
    assert!(text(&run(&s, &["status", &srv.mcp_url()]).stdout).contains("dpop-bound  yes"));
}

#[test]
fn logout_all_and_usage_errors() {
    let (a, b) = (server(|o| o.revocation = true), server(|_| {}));
    let s = Scratch::new("all");
    for srv in [&a, &b] {
        let (out, _) = login_via_browser(&s, &["login", &srv.mcp_url(), "--no-browser"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = run(&s, &["logout", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert_eq!(said.lines().filter(|l| l.starts_with("logged out of")).count(), 2, "{said}");
    // The server without revocation: forgotten here, and the person is told it was not revoked.
    assert!(text(&out.stderr).contains("not revoked: the authorization server offers no revocation endpoint"), "{}", text(&out.stderr));
    assert!(FileStore::new(s.store()).servers().unwrap().is_empty());
    let out = run(&s, &["status"]);
    assert!(text(&out.stderr).contains("Nothing stored"));

    for (args, code) in [
        (&["frobnicate"][..], 2),
        (&[][..], 2),
        (&["call", "https://x.example/mcp", "echo", "not json"][..], 2),
        (&["--store", "bogus", "status"][..], 2),
        (&["status", "--what"][..], 2),
    ] {
        let out = run(&s, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}: stdout carries only results");
        assert!(text(&out.stderr).starts_with("mcp-oauth: error:"), "{args:?}: {}", text(&out.stderr));
    }
    let out = run(&s, &["--help"]);
    assert!(out.status.success() && text(&out.stdout).contains("EXIT CODES"));
}

#[test]
fn over_ssh_the_login_prints_the_port_forward_and_completes_through_the_listener() {
    // No display, an SSH session: no browser is tried; the URL is printed with the `ssh -L`
    // command for the bound port, and the listener takes the redirect (as the forward delivers it).
    let srv = server(|_| {});
    let s = Scratch::new("ssh");
    let envs = [("SSH_CONNECTION", "10.0.0.9 50000 10.0.0.5 2222"), ("USER", "alice")];
    let (out, url) = login_via_browser_with(&s, &["login", &srv.mcp_url()], &envs);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let port = url::Url::parse(&query(&url, "redirect_uri").unwrap()).unwrap().port().unwrap();
    let want = format!("ssh -N -L {port}:127.0.0.1:{port} -p 2222 alice@10.0.0.5");
    assert!(text(&out.stderr).contains(&want), "no {want:?} in:\n{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Waiting for the sign-in"), "{}", text(&out.stderr));
}

#[test]
fn a_device_login_from_the_terminal() {
    // `--device`: the code and the page are printed; the person enters the code on another
    // device (the test, at the verification page); the program polls and finishes.
    let srv = server(|o| {
        o.device = true;
        o.device_interval = Some(1);
    });
    let s = Scratch::new("device");
    let mut child = cli(&s, &["login", &srv.mcp_url(), "--device"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(code) = line.trim().strip_prefix("and enter the code:") {
                let page = seen.lines().find(|l| l.trim().ends_with("/device")).unwrap().trim().to_owned();
                let (status, _) = get(&format!("{page}?user_code={}", code.trim()));
                assert_eq!(status, 200);
            }
        }
        seen
    });
    let status = wait(&mut child, Duration::from_secs(60));
    let seen = reader.join().unwrap();
    assert!(status.success(), "{seen}");
    let asked = format!("To sign in to {} (at {}", srv.mcp_url(), srv.origin());
    assert!(seen.contains(&asked) && seen.contains("open this page on any device"), "names the server and the issuer: {seen}");
    assert!(srv.lock().authorization_requests().is_empty(), "no browser login");
    let out = run(&s, &["status", &srv.mcp_url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("refresh     yes"));
}

#[test]
fn an_unreachable_authorization_server_keeps_the_tokens_until_forget() {
    let srv = server(|o| {
        o.revocation = true;
        o.revocation_status = Some(503);
    });
    let s = Scratch::new("forget");
    let url = srv.mcp_url();
    let (out, _) = login_via_browser(&s, &["login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&s, &["logout", &url]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not logged out"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(run(&s, &["status", &url]).status.code(), Some(0), "still logged in");
    let out = run(&s, &["logout", "--forget", &url]);
    assert_eq!(out.status.code(), Some(5), "forgotten, but not revoked: {}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("logged out of"), "{}", text(&out.stdout));
    assert_eq!(run(&s, &["status", &url]).status.code(), Some(3), "forgotten");
}

/// A D-Bus "session bus" that accepts connections and never answers (a hung daemon, or a
/// keyring waiting on a prompt nobody sees). Returns its address.
#[cfg(target_os = "linux")]
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

/// The whole session on the kernel keyutils keyring: the tokens are in the keyring, the files
/// beside it hold no secret, and status names the keyring.
#[cfg(target_os = "linux")]
#[test]
fn a_session_on_the_keyutils_keyring() {
    let srv = server(|o| o.revocation = true);
    let s = Scratch::new("keyring");
    let url = srv.mcp_url();
    let keyring = ["--store", "keyring", "--keyring", "keyutils"];
    let (out, _) = login_via_browser(&s, &[&keyring[..], &["login", &url, "--no-browser"]].concat());
    assert!(out.status.success(), "login failed: {}", text(&out.stderr));
    assert!(FileStore::new(s.store()).servers().unwrap().is_empty(), "nothing went to the file store");

    let out = run(&s, &[&keyring[..], &["status", &url]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("keyring: kernel keyutils"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("kept until reboot"), "{}", text(&out.stdout));
    let out = run(&s, &[&keyring[..], &["token", &url]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim_end().to_owned();
    assert_eq!(mcp_status_with(&url, &format!("Bearer {token}")), 200);
    // No file under the store directory holds the token.
    let mut stack = vec![s.store()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                let body = std::fs::read(e.path()).unwrap();
                assert!(!body.windows(token.len()).any(|w| w == token.as_bytes()), "{} holds the token", e.path().display());
            }
        }
    }
    assert!(files >= 2, "an index file and a lock file");

    let out = run(&s, &[&keyring[..], &["call", &url, "echo", r#"{"text":"from the keyring"}"#]].concat());
    assert!(text(&out.stdout).contains("from the keyring"), "{}", text(&out.stderr));
    let out = run(&s, &[&keyring[..], &["logout", &url]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("access token revoked"), "{}", text(&out.stdout));
    assert_eq!(run(&s, &[&keyring[..], &["status", &url]].concat()).status.code(), Some(3));
    assert_eq!(srv.lock().authorization_requests().len(), 1);
}

/// `--store auto` (the default): the keyring when it answers, a login made in files staying
/// there; files when it does not answer, within the timeout, saying why (on every command when
/// the keyring holds logins out of reach); a command on an explicit keyring that does not
/// answer fails (exit 2) without starting a login.
#[cfg(target_os = "linux")]
#[test]
fn auto_takes_the_keyring_that_answers_and_falls_back_from_one_that_does_not() {
    let srv = server(|_| {});
    let s = Scratch::new("auto");
    let url = srv.mcp_url();
    let (out, _) = login_via_browser(&s, &["login", &url, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(FileStore::new(s.store()).servers().unwrap().len(), 1);

    // A session bus that never answers: auto falls back to the files, in about the timeout.
    let bus = silent_bus(&s);
    let started = std::time::Instant::now();
    let out = cli(&s, &["--store", "auto", "status", &url])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .env("MCP_OAUTH_KEYRING_TIMEOUT", "1")
        .env_remove("MCP_OAUTH_KEYRING")
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("files in") && shown.contains("Secret Service: no answer in 1 s"), "{shown}");
    assert!(shown.contains("chosen by --store auto"), "{shown}");

    // No D-Bus session at all (SSH, a container): files at once, saying so.
    let out = cli(&s, &["--store", "auto", "status", &url])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("XDG_RUNTIME_DIR", s.store())
        .env_remove("MCP_OAUTH_KEYRING")
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("no D-Bus session"), "{}", text(&out.stdout));

    // A keyring that answers: the login made in files stays there and keeps working (nothing
    // moved, no second login); status names the keyring and says so.
    let out = run(&s, &["--store", "auto", "--keyring", "keyutils", "status", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("keyring: kernel keyutils"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("logins made with files stay in"), "{}", text(&out.stdout));
    assert_eq!(FileStore::new(s.store()).servers().unwrap().len(), 1, "the files still hold it");
    let out = run(&s, &["--store", "auto", "--keyring", "keyutils", "call", &url, "echo", r#"{"text":"shared"}"#]);
    assert!(text(&out.stdout).contains("shared"), "{}", text(&out.stderr));
    assert_eq!(srv.lock().authorization_requests().len(), 1, "no second login");

    // A second server logged in through the keyring. Behind a Secret Service that does not
    // answer: an explicit keyring fails clearly, within the timeout, and starts no login; auto
    // falls back and says so on the command's standard error (its login is out of reach).
    let srv2 = server(|_| {});
    let url2 = srv2.mcp_url();
    let (out, _) = login_via_browser(&s, &["--store", "keyring", "--keyring", "keyutils", "login", &url2, "--no-browser"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = srv2.lock().log.len();
    let out = cli(&s, &["--store", "keyring", "--keyring", "secret-service", "token", &url2])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .env("MCP_OAUTH_KEYRING_TIMEOUT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Secret Service: no answer in 1 s"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let out = cli(&s, &["--store", "auto", "--keyring", "secret-service", "token", &url2])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .env("MCP_OAUTH_KEYRING_TIMEOUT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "not logged in, in the files: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("mcp-oauth: using files in"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("out of reach"), "{}", text(&out.stderr));
    assert_eq!(srv2.lock().log.len(), before, "no request reached the server");

    for u in [&url, &url2] {
        assert_eq!(run(&s, &["--store", "auto", "--keyring", "keyutils", "logout", u, "--forget"]).status.code(), Some(0));
    }
    assert!(FileStore::new(s.store()).servers().unwrap().is_empty());
}
