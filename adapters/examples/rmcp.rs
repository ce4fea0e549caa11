//! The demo's story through rmcp, the official Rust MCP SDK: rmcp's own client (`serve`,
//! `list_all_tools`, `call_tool`) over this crate's `OAuthHttpClient`, printing every request the
//! server saw.
//!
//! ```text
//! cargo run -p mcp-oauth-client --features rmcp --example rmcp                   # in-process server, simulated browser
//! cargo run -p mcp-oauth-client --features rmcp --example rmcp -- --browser      # in-process server, your real browser (or BROWSER)
//! cargo run -p mcp-oauth-client --features rmcp --example rmcp -- --server URL   # any MCP server, your browser
//! ```

use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::tokio::OAuthClient;
use mcp_oauth_client::{Config, FileStore};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use std::sync::Arc;

#[path = "shared/mod.rs"]
mod shared;
use shared::{oauth_requests_since, print_log, server_arg, setup, simulated_browser, Setup};

type Service = RunningService<RoleClient, ()>;

async fn call(service: &Service, tool: &'static str, text: &str) -> Result<String, Box<dyn std::error::Error>> {
    let args = serde_json::json!({ "text": text }).as_object().cloned().unwrap_or_default();
    let r = service.call_tool(CallToolRequestParams::new(tool).with_arguments(args)).await?;
    if r.is_error == Some(true) {
        return Err(format!("{tool} failed: {r:?}").into());
    }
    Ok(serde_json::to_value(&r)?["content"][0]["text"].as_str().unwrap_or_default().to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(url) = server_arg()? {
        let store = Arc::new(FileStore::in_default_dir()?);
        let oauth = OAuthClient::new(Config::new(url), store, Interaction::default()).await?;
        let service = ().serve(OAuthHttpClient::new(oauth).into_transport()).await?;
        for t in service.list_all_tools().await? {
            println!("{}: {}", t.name, t.description.unwrap_or_default());
        }
        service.cancel().await?;
        return Ok(());
    }
    let real_browser = std::env::args().any(|a| a == "--browser");
    let Setup { server, dir, store, config } = setup("mcp-oauth demo through rmcp")?;
    let interaction = if real_browser { Interaction::default() } else { simulated_browser() };
    let mut seen = 0;

    println!(
        "\n1. rmcp connects (initialize): the first request goes out without a token and gets 401; the login runs inside rmcp's call."
    );
    let oauth = OAuthClient::new(config.clone(), store.clone(), interaction.clone()).await?;
    let service = ().serve(OAuthHttpClient::new(oauth).into_transport()).await?;
    print_log(&server, &mut seen);

    println!("\n2. rmcp lists tools and calls one with the token.");
    let tools = service.list_all_tools().await?;
    println!("   tools: {}", tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>().join(", "));
    println!("   echo: {}", call(&service, "echo", "hello over OAuth, through rmcp").await?);
    print_log(&server, &mut seen);

    println!("\n3. A tool that needs more scope: 403 insufficient_scope, step-up, the same rmcp call again.");
    println!("   admin-tool: {}", call(&service, "admin-tool", "admin ok").await?);
    print_log(&server, &mut seen);

    println!("\n4. The server revokes the token: 401 invalid_token, refresh, retry.");
    server.lock().revoke_access_tokens();
    println!("   echo: {}", call(&service, "echo", "after refresh").await?);
    print_log(&server, &mut seen);
    service.cancel().await?;

    println!("\n5. A second run, as a new program: the token comes from {} and no OAuth request is made.", dir.display());
    let oauth = OAuthClient::new(config, store, interaction).await?;
    let service = ().serve(OAuthHttpClient::new(oauth).into_transport()).await?;
    println!("   echo: {}", call(&service, "echo", "from the stored token").await?);
    service.cancel().await?;
    let oauth_requests = oauth_requests_since(&server, &mut seen);
    let _ = std::fs::remove_dir_all(&dir);
    if oauth_requests != 0 {
        return Err("the stored token was not reused".into());
    }
    println!("\ndone.");
    Ok(())
}
