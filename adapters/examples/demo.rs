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
use std::sync::Arc;

#[path = "shared/mod.rs"]
mod shared;
use shared::{oauth_requests_since, print_log, server_arg, setup, simulated_browser, Setup};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(url) = server_arg()? {
        let mut mcp = McpClient::with_oauth(Config::new(url), Arc::new(FileStore::in_default_dir()?), Interaction::default())?;
        for t in mcp.list_tools()? {
            println!("{}: {}", t.name, t.description.unwrap_or_default());
        }
        return Ok(());
    }
    let real_browser = std::env::args().any(|a| a == "--browser");
    let Setup { server, dir, store, config } = setup("mcp-oauth demo")?;
    let interaction = if real_browser { Interaction::default() } else { simulated_browser() };
    let mut seen = 0;

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
    let oauth_requests = oauth_requests_since(&server, &mut seen);
    let _ = std::fs::remove_dir_all(&dir);
    if oauth_requests != 0 {
        return Err("the stored token was not reused".into());
    }
    println!("\ndone.");
    Ok(())
}
