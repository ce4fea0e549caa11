//! The whole MCP OAuth flow with the async-std adapter, over real sockets, printed step by step.
//!
//! Like `demo`, it starts the independent test authorization server and MCP server in process
//! on 127.0.0.1 and plays the browser with an `on_authorization_url` hook. It adds what async
//! programs need: eight tasks connecting at once share one login.
//!
//! ```text
//! cargo run --example demo_async --features async-std
//! cargo run --example demo_async --features async-std -- --server URL   # any MCP server
//! ```

#[path = "shared/mod.rs"]
mod shared;
use shared::{print_log, simulated_browser};

use mcp_oauth_client::async_std::{AsyncOAuthClient, ConnectMode, McpClient};
use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::{Config, FileStore};
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::Options;
use std::sync::Arc;
use std::time::Duration;

#[async_std::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--server") {
        let url = args.get(i + 1).ok_or("--server needs a URL")?;
        let store = Arc::new(FileStore::in_default_dir()?);
        let mut mcp = McpClient::with_oauth(Config::new(url.parse()?), store, Interaction::default()).await?;
        for t in mcp.list_tools().await? {
            println!("{}: {}", t.name, t.description.unwrap_or_default());
        }
        return Ok(());
    }

    let server = TcpTestServer::start(Options::new)?;
    let dir = std::env::temp_dir().join(format!("mcp-oauth-demo-async-{}", std::process::id()));
    let store = Arc::new(FileStore::new(&dir));
    let mut config = Config::new(server.mcp_url().parse()?);
    config.client_name = "mcp-oauth async demo".into();
    config.callback_timeout = Duration::from_secs(120);
    let mut seen = 0;

    println!("MCP server (independent test server) at {}", server.mcp_url());
    println!("\n1. Eight tasks connect at once, sharing one OAuth client: one login between them.");
    let oauth = AsyncOAuthClient::new(config.clone(), store.clone(), simulated_browser()).await?;
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let mut mcp = McpClient::new(config.server_url.clone(), Some(oauth.clone())).mode(ConnectMode::Eager);
            async_std::task::spawn(async move {
                mcp.connect().await?;
                let r = mcp.call_tool("echo", serde_json::json!({ "text": format!("task {n}") })).await?;
                Ok::<_, mcp_oauth_client::Error>(r["content"][0]["text"].as_str().unwrap_or("").to_owned())
            })
        })
        .collect();
    for t in tasks {
        print!("{} ", t.await?);
    }
    println!();
    print_log(&server, &mut seen);
    let logins = server.lock().authorization_requests().len();
    println!("   logins: {logins}");

    println!("\n2. A tool that needs more scope: 403 insufficient_scope, step-up, retry.");
    let mut mcp = McpClient::new(config.server_url.clone(), Some(oauth.clone()));
    let r = mcp.call_tool("admin-tool", serde_json::json!({"text": "admin ok"})).await?;
    println!("   admin-tool: {}", r["content"][0]["text"]);
    print_log(&server, &mut seen);

    println!("\n3. The server revokes the token: 401 invalid_token, refresh, retry.");
    server.lock().revoke_access_tokens();
    mcp.call_tool("echo", serde_json::json!({"text": "after refresh"})).await?;
    print_log(&server, &mut seen);

    println!("\n4. A second run, as a new program: the token comes from {} and no OAuth request is made.", dir.display());
    let mut again = McpClient::with_oauth(config, store, simulated_browser()).await?.mode(ConnectMode::Eager);
    let r = again.call_tool("echo", serde_json::json!({"text": "from the stored token"})).await?;
    println!("   echo: {}", r["content"][0]["text"]);
    let before = seen;
    print_log(&server, &mut seen);
    let oauth_requests = server.lock().log[before..].iter().filter(|r| r.target != "/mcp").count();
    println!("   OAuth requests in the second run: {oauth_requests}");
    let _ = std::fs::remove_dir_all(&dir);
    if logins != 1 || oauth_requests != 0 {
        return Err("expected one login and a reused token".into());
    }
    println!("\ndone.");
    Ok(())
}
