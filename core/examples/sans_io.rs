//! The whole MCP OAuth flow, printed step by step: the core `Authorizer` against the
//! independent test authorization server and MCP resource from `mcp-oauth-tests`, in memory.
//!
//! Run: `cargo run -p mcp-oauth-core --example sans_io`

use mcp_oauth_core::{Authorizer, CallbackSetup, Config, Entropy, Input, Output, Persist, RedirectSource, Restored, Timestamp};
use mcp_oauth_tests::{Options, TestServer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Demo {
    auth: Authorizer,
    server: TestServer,
    now: Timestamp,
    persisted: Restored,
    requests: usize,
}

impl Demo {
    fn step(&self, what: &str) {
        println!("  [{:>2}] {what}", self.requests);
    }

    /// Plays the adapter's part until the machine is ready or fails.
    fn run(&mut self, first: Input) -> Result<mcp_oauth_core::Authorization, mcp_oauth_core::Error> {
        self.auth.handle_input(first)?;
        loop {
            let next = match self.auth.poll_output() {
                Output::Send(req) => {
                    self.requests += 1;
                    self.step(&format!("{} {} ({})", req.request.method(), req.request.uri(), req.purpose));
                    let resp = self.server.handle(&req.request);
                    self.step(&format!("     -> {}", resp.status()));
                    Input::Response { now: self.now, id: req.id, result: Ok(resp) }
                }
                Output::PrepareAttempt(plan) => {
                    let callback = match &plan.redirect {
                        Some(r) => {
                            let uri = r.redirect_uri(if r.port == 0 { 53682 } else { r.port });
                            self.step(&format!("listening for the redirect on {uri} (simulated loopback)"));
                            CallbackSetup::Listening(uri)
                        }
                        None => CallbackSetup::NotRequested,
                    };
                    let mut bytes = [0u8; 96];
                    let seed = self.now.as_millis().to_le_bytes();
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = seed[i % 8] ^ (i as u8).wrapping_mul(151);
                    }
                    Input::AttemptPrepared { now: self.now, entropy: Entropy::from_bytes(bytes), callback }
                }
                Output::OpenAuthorizationUrl { url, .. } => {
                    let shown = url.as_str().split('?').next().unwrap_or("").to_owned();
                    self.step(&format!("browser opens {shown}?… (the test server approves at once)"));
                    let req = http::Request::get(url.as_str()).body(Vec::new()).expect("request");
                    let resp = self.server.handle(&req);
                    let location = resp.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or("").to_owned();
                    self.step(&format!("     -> {} redirect to {}?…", resp.status(), location.split('?').next().unwrap_or("")));
                    Input::Redirect { now: self.now, url: location, source: RedirectSource::Loopback }
                }
                Output::PromptForRedirect { .. } => unreachable!("the demo's loopback always works"),
                Output::AnswerCallback(outcome) => {
                    self.step(&format!("browser shows: {outcome:?}"));
                    continue;
                }
                Output::RejectCallback(outcome) => {
                    self.step(&format!("a forged callback is refused with: {outcome:?}; still waiting"));
                    continue;
                }
                Output::Persist(p) => {
                    match &p {
                        Persist::Client(c) => {
                            self.step(&format!("store: client {} for issuer {}", c.client_id, c.issuer));
                            self.persisted.clients.push(c.clone());
                        }
                        Persist::Tokens(t) => {
                            self.step(&format!("store: tokens for {} (scope {:?}, expires {:?})", t.resource, t.scope, t.expires_at));
                            self.persisted.tokens = Some(t.clone());
                        }
                        other => self.step(&format!("store: {other:?}")),
                    }
                    continue;
                }
                Output::Wait { until } => panic!("the demo never waits (until {until:?})"),
                Output::Ready(a) => return Ok(a),
                Output::Failed(e) => return Err(e),
                _ => continue,
            };
            self.auth.handle_input(next)?;
        }
    }

    fn call_tool(&mut self, name: &str) -> Result<String, mcp_oauth_core::Error> {
        let mut header = self.run(Input::TokenWanted { now: self.now })?;
        loop {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {"text": "hello from the demo"}}});
            let req = http::Request::post(self.server.options.mcp_url())
                .header("content-type", "application/json")
                .header("authorization", header.header_value())
                .body(body.to_string().into_bytes())
                .expect("request");
            self.requests += 1;
            let resp = self.server.handle(&req);
            self.step(&format!("POST {} tools/call {name} -> {}", self.server.options.mcp_url(), resp.status()));
            match resp.status().as_u16() {
                401 | 403 => {
                    let www = resp.headers().get_all("www-authenticate").iter().cloned().collect::<Vec<_>>();
                    self.step(&format!("     challenge: {}", www.first().and_then(|v| v.to_str().ok()).unwrap_or("")));
                    header = self.run(Input::Challenged {
                        now: self.now,
                        status: resp.status().as_u16(),
                        www_authenticate: www,
                        dpop_nonce: None,
                    })?;
                }
                _ => {
                    let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
                    return Ok(v["result"]["content"][0]["text"].as_str().unwrap_or("").to_owned());
                }
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::new("https://mcp.example.com");
    let url = options.mcp_url();
    // The demo plays the adapter, and the adapter is the one place that reads the clock.
    #[allow(clippy::disallowed_methods)]
    let now = Timestamp(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64);
    let mut config = Config::new(url.parse()?);
    config.client_name = "mcp-oauth demo".into();
    let mut demo = Demo {
        auth: Authorizer::new(config.clone(), Restored::default(), now)?,
        server: TestServer::new(options),
        now,
        persisted: Restored::default(),
        requests: 0,
    };

    println!("1. First call: no token yet. The server challenges, the client discovers, registers and logs in.");
    let text = demo.call_tool("echo")?;
    println!("   result: {text:?} after {} HTTP requests\n", demo.requests);

    println!("2. A second call reuses the token: no OAuth requests.");
    let before = demo.requests;
    demo.call_tool("echo")?;
    println!("   OAuth requests: {}\n", demo.requests - before - 1);

    println!("3. A tool that needs more scope: 403 insufficient_scope, step-up, retry.");
    let text = demo.call_tool("admin-tool")?;
    println!("   result: {text:?}\n");

    println!("4. A new process restores the stored token: no OAuth requests at all.");
    demo.now = demo.now.saturating_add(Duration::from_secs(10));
    demo.auth = Authorizer::new(config.clone(), demo.persisted.clone(), demo.now)?;
    let before = demo.requests;
    demo.call_tool("echo")?;
    println!("   OAuth requests: {}\n", demo.requests - before - 1);

    println!("5. An hour later the token is near expiry: one refresh request, rotated refresh token.");
    demo.now = demo.now.saturating_add(Duration::from_secs(3560));
    let before = demo.requests;
    demo.call_tool("echo")?;
    println!("   OAuth requests: {}\n", demo.requests - before - 1);

    println!("done: the whole flow ran against an independent server, {} HTTP requests in all.", demo.requests);
    Ok(())
}
