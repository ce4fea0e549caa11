//! A client for the official MCP conformance suite:
//! `conformance [--async|--tokio|--rmcp] <server-url>` (`--async`: the async-std adapter, built
//! with `--features async-std`; `--tokio`: the tokio adapter, built with `--features tokio`;
//! `--rmcp`: the MCP side through rmcp's client over `OAuthHttpClient`, built with
//! `--features rmcp`).
//!
//! The suite sets `MCP_CONFORMANCE_SCENARIO` and `MCP_CONFORMANCE_CONTEXT` (JSON with
//! credentials for pre-registered and machine-to-machine clients). This program maps the
//! context onto plain `OAuthConfig` data the way any application would, connects, lists tools
//! and calls `test-tool`. It contains no OAuth logic and nothing per scenario: authorization is
//! the library's normal loopback flow, with an `on_authorization_url` hook that follows the URL
//! with an HTTP GET (the suite's authorization server approves at once) instead of a browser.

use mcp_oauth_client::blocking::McpClient;
use mcp_oauth_client::core::config::{IdpSettings, SecretRef};
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{MemoryStore, OAuthConfig, ServerConfig, Transport};
use std::sync::Arc;

/// This client's Client ID Metadata Document URL (its identity, as a real app has one).
const CLIENT_METADATA_URL: &str = "https://conformance-test.local/client-metadata.json";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let adapter = if args.iter().any(|a| a == "--async") {
        "async-std"
    } else if args.iter().any(|a| a == "--tokio") {
        "tokio"
    } else if args.iter().any(|a| a == "--rmcp") {
        "rmcp"
    } else {
        "blocking"
    };
    let Some(url) = args.iter().rfind(|a| !a.starts_with("--")) else {
        eprintln!("usage: conformance [--async|--tokio|--rmcp] <server-url>");
        std::process::exit(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    match run(url, adapter) {
        Ok(()) => eprintln!("conformance client ({adapter}): {scenario}: done"),
        Err(e) => {
            eprintln!("conformance client ({adapter}): {scenario}: {e}");
            std::process::exit(1);
        }
    }
}

fn run(url: &str, adapter: &str) -> Result<(), Box<dyn std::error::Error>> {
    let context: serde_json::Value =
        std::env::var("MCP_CONFORMANCE_CONTEXT").ok().and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default();
    let text = |k: &str| context.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let oauth = OAuthConfig {
        client_name: Some("mcp-oauth conformance client".into()),
        client_metadata_url: Some(CLIENT_METADATA_URL.into()),
        client_id: text("client_id"),
        client_secret: text("client_secret").map(SecretRef::literal),
        private_key: text("private_key_pem").map(SecretRef::literal),
        signing_algorithm: text("signing_algorithm"),
        // A workload identity (a JWT the platform issued to this workload).
        workload_token: text("valid_jwt").map(SecretRef::literal),
        idp: match (text("idp_token_endpoint"), text("idp_id_token")) {
            (Some(token_endpoint), Some(id_token)) => Some(IdpSettings {
                token_endpoint,
                client_id: text("idp_client_id"),
                client_secret: text("idp_client_secret").map(SecretRef::literal),
                id_token: SecretRef::literal(id_token),
            }),
            _ => None,
        },
        ..Default::default()
    };
    let server = ServerConfig { transport: Transport::StreamableHttp { url: url.into(), headers: Default::default() }, oauth: Some(oauth) };

    let mut interaction = Interaction::with_hook(|auth_url: &url::Url| {
        let auth_url = auth_url.clone();
        std::thread::spawn(move || {
            let _ = mcp_oauth_tests::browser::log_in(auth_url.as_str());
        });
        UrlHandled::Opened
    });
    interaction.print_url = false;
    interaction.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);

    match adapter {
        "async-std" => return run_async(&server, interaction),
        "tokio" => return run_tokio(&server, interaction),
        "rmcp" => return run_rmcp(&server, interaction),
        _ => {}
    }
    let mut mcp = McpClient::from_config(&server, Arc::new(MemoryStore::new()), interaction, &|_| None)?;
    mcp.connect()?;
    let tools = mcp.list_tools()?;
    if tools.iter().any(|t| t.name == "test-tool") {
        mcp.call_tool("test-tool", serde_json::json!({}))?;
    }
    Ok(())
}

/// The same steps on the async-std adapter.
#[cfg(feature = "async-std")]
fn run_async(server: &ServerConfig, interaction: Interaction) -> Result<(), Box<dyn std::error::Error>> {
    use mcp_oauth_client::async_std::McpClient;
    async_std::task::block_on(async {
        let mut mcp = McpClient::from_config(server, Arc::new(MemoryStore::new()), interaction, &|_| None).await?;
        mcp.connect().await?;
        let tools = mcp.list_tools().await?;
        if tools.iter().any(|t| t.name == "test-tool") {
            mcp.call_tool("test-tool", serde_json::json!({})).await?;
        }
        Ok(())
    })
}

#[cfg(not(feature = "async-std"))]
fn run_async(_: &ServerConfig, _: Interaction) -> Result<(), Box<dyn std::error::Error>> {
    Err("built without the async-std feature".into())
}

/// The same steps on the tokio adapter (a current-thread runtime: the futures must not need
/// more).
#[cfg(feature = "tokio")]
fn run_tokio(server: &ServerConfig, interaction: Interaction) -> Result<(), Box<dyn std::error::Error>> {
    use mcp_oauth_client::tokio::McpClient;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut mcp = McpClient::from_config(server, Arc::new(MemoryStore::new()), interaction, &|_| None).await?;
        mcp.connect().await?;
        let tools = mcp.list_tools().await?;
        if tools.iter().any(|t| t.name == "test-tool") {
            mcp.call_tool("test-tool", serde_json::json!({})).await?;
        }
        Ok(())
    })
}

#[cfg(not(feature = "tokio"))]
fn run_tokio(_: &ServerConfig, _: Interaction) -> Result<(), Box<dyn std::error::Error>> {
    Err("built without the tokio feature".into())
}

/// The same steps with rmcp's client (`serve`, `list_all_tools`, `call_tool`) over
/// `OAuthHttpClient`.
#[cfg(feature = "rmcp")]
fn run_rmcp(server: &ServerConfig, interaction: Interaction) -> Result<(), Box<dyn std::error::Error>> {
    use mcp_oauth_client::rmcp::OAuthHttpClient;
    use rmcp::model::CallToolRequestParams;
    use rmcp::ServiceExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = OAuthHttpClient::from_config(server, Arc::new(MemoryStore::new()), interaction, &|_| None).await?;
        let service = ().serve(client.into_transport()).await?;
        let tools = service.list_all_tools().await?;
        if tools.iter().any(|t| t.name == "test-tool") {
            service.call_tool(CallToolRequestParams::new("test-tool")).await?;
        }
        service.cancel().await?;
        Ok(())
    })
}

#[cfg(not(feature = "rmcp"))]
fn run_rmcp(_: &ServerConfig, _: Interaction) -> Result<(), Box<dyn std::error::Error>> {
    Err("built without the rmcp feature".into())
}
