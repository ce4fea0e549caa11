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
use shared::{oauth_requests_since, print_log, server_arg, setup, simulated_browser, Setup};

use mcp_oauth_client::async_std::{ConnectMode, McpClient, OAuthClient};
use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::{Config, FileStore};
use std::sync::Arc;

#[async_std::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(url) = server_arg()? {
        let mut mcp = McpClient::with_oauth(Config::new(url), Arc::new(FileStore::in_default_dir()?), Interaction::default()).await?;
        for t in mcp.list_tools().await? {
            println!("{}: {}", t.name, t.description.unwrap_or_default());
        }
        return Ok(());
    }
    let Setup { server, dir, store, config } = setup("mcp-oauth async demo")?;
    let mut seen = 0;

    println!("\n1. Eight tasks connect at once, sharing one OAuth client: one login between them.");
    let oauth = OAuthClient::new(config.clone(), store.clone(), simulated_browser()).await?;
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
    let oauth_requests = oauth_requests_since(&server, &mut seen);
    let _ = std::fs::remove_dir_all(&dir);
    if logins != 1 || oauth_requests != 0 {
        return Err("expected one login and a reused token".into());
    }
    println!("\ndone.");
    Ok(())
}
