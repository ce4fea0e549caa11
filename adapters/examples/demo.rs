//! The whole MCP OAuth flow over real sockets, printed step by step.
//!
//! By default it starts the independent test authorization server and MCP server (from
//! `mcp-oauth-tests`) in process on 127.0.0.1, and plays the browser with an
//! `on_authorization_url` hook that follows the authorization URL with plain HTTP (the test
//! server approves at once and redirects to our loopback listener). Then it runs again as a
//! new program would, from the stored token, with no OAuth request at all.
//!
//! ```text
//! cargo run --example demo                      # in-process server, simulated browser
//! cargo run --example demo -- --browser         # in-process server, your real browser
//! cargo run --example demo -- --server URL      # any MCP server, your browser
//! ```

use mcp_oauth_client::blocking::{ConnectMode, McpClient};
use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::{Config, FileStore};
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::Options;
use std::sync::Arc;
use std::time::Duration;

#[path = "shared/mod.rs"]
mod shared;
use shared::{print_log, simulated_browser};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let real_browser = args.iter().any(|a| a == "--browser");
    if let Some(i) = args.iter().position(|a| a == "--server") {
        let url = args.get(i + 1).ok_or("--server needs a URL")?;
        let store = Arc::new(FileStore::in_default_dir()?);
        let mut mcp = McpClient::with_oauth(Config::new(url.parse()?), store, Interaction::default())?;
        for t in mcp.list_tools()? {
            println!("{}: {}", t.name, t.description.unwrap_or_default());
        }
        return Ok(());
    }

    let server = TcpTestServer::start(Options::new)?;
    let dir = std::env::temp_dir().join(format!("mcp-oauth-demo-{}", std::process::id()));
    let store = Arc::new(FileStore::new(&dir));
    let mut config = Config::new(server.mcp_url().parse()?);
    config.client_name = "mcp-oauth demo".into();
    config.callback_timeout = Duration::from_secs(120);
    let interaction = if real_browser { Interaction::default() } else { simulated_browser() };
    let mut seen = 0;

    println!("MCP server (independent test server) at {}", server.mcp_url());
    println!("\n1. Connect lazily: the first request goes out without a token and gets 401.");
    let mut mcp = McpClient::with_oauth(config.clone(), store.clone(), interaction.clone())?.mode(ConnectMode::Lazy);
    mcp.connect()?;
    print_log(&server, &mut seen);

    println!("\n2. List tools and call one with the token.");
    let tools = mcp.list_tools()?;
    println!("   tools: {}", tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "));
    let r = mcp.call_tool("echo", serde_json::json!({"text": "hello over OAuth"}))?;
    println!("   echo: {}", r["content"][0]["text"]);
    print_log(&server, &mut seen);

    println!("\n3. A tool that needs more scope: 403 insufficient_scope, step-up, retry.");
    let r = mcp.call_tool("admin-tool", serde_json::json!({"text": "admin ok"}))?;
    println!("   admin-tool: {}", r["content"][0]["text"]);
    print_log(&server, &mut seen);

    println!("\n4. The server revokes the token: 401 invalid_token, refresh, retry.");
    server.lock().revoke_access_tokens();
    mcp.call_tool("echo", serde_json::json!({"text": "after refresh"}))?;
    print_log(&server, &mut seen);

    println!("\n5. A second run, as a new program: the token comes from {} and no OAuth request is made.", dir.display());
    let mut again = McpClient::with_oauth(config, store, interaction)?.mode(ConnectMode::Eager);
    let r = again.call_tool("echo", serde_json::json!({"text": "from the stored token"}))?;
    println!("   echo: {}", r["content"][0]["text"]);
    let before = seen;
    print_log(&server, &mut seen);
    let oauth_requests = server.lock().log[before..].iter().filter(|r| r.target != "/mcp").count();
    println!("   OAuth requests in the second run: {oauth_requests}");
    let _ = std::fs::remove_dir_all(&dir);
    if oauth_requests != 0 {
        return Err("the stored token was not reused".into());
    }
    println!("\ndone.");
    Ok(())
}
