//! A real browser through the library's own browser path: `BROWSER` points at a script that
//! runs headless Chromium, which follows the authorization URL, is redirected to our loopback
//! listener, and renders the callback page. The rendered DOM's text is checked, and a
//! screenshot is kept as an artifact.
//!
//! `cargo run -p mcp-oauth-client --example real_browser -- --out DIR [--async|--tokio]` (CI
//! installs Debian's `chromium`; exits 2 when no Chromium is installed, 1 when the check fails;
//! `--async` uses the async-std adapter, built with `--features async-std`, and `--tokio` the
//! tokio adapter, built with `--features tokio`).

use mcp_oauth_client::blocking::McpClient;
use mcp_oauth_client::{Config, Interaction, MemoryStore};
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::Options;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/real-browser"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        eprintln!("real browser check: {chromium} is not installed (apt-get install chromium)");
        std::process::exit(2);
    }
    let adapter = if args.iter().any(|a| a == "--async") {
        "async-std"
    } else if args.iter().any(|a| a == "--tokio") {
        "tokio"
    } else {
        "blocking"
    };
    match run(&out, &chromium, adapter) {
        Ok(()) => println!("real browser check: PASS (screenshot: {})", out.join("callback-page.png").display()),
        Err(e) => {
            eprintln!("real browser check: FAIL: {e}");
            std::process::exit(1);
        }
    }
}

fn run(out: &std::path::Path, chromium: &str, adapter: &str) -> Result<(), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let out = std::fs::canonicalize(out)?;
    let script = out.join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {chromium} --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
             --disable-background-networking --disable-component-update --disable-sync \
             --user-data-dir='{dir}/profile' --window-size=900,420 --screenshot='{dir}/callback-page.png' \
             --dump-dom \"$1\" > '{dir}/dom.html' 2> '{dir}/chromium.log'\n",
            dir = out.display()
        ),
    )?;
    #[cfg(unix)]
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    // The library's default browser path honours BROWSER, even without a display.
    std::env::set_var("BROWSER", &script);

    let server = TcpTestServer::start(Options::new)?;
    let interaction = Interaction { prompt: Arc::new(mcp_oauth_client::prompt::NoPrompt), ..Default::default() };
    let mut config = Config::new(server.mcp_url().parse()?);
    config.callback_timeout = Duration::from_secs(60);
    let args = serde_json::json!({"text": "real browser"});
    let r = match adapter {
        "async-std" => call_async(config, interaction, args)?,
        "tokio" => call_tokio(config, interaction, args)?,
        _ => McpClient::with_oauth(config, Arc::new(MemoryStore::new()), interaction)?.call_tool("echo", args)?,
    };
    if r["content"][0]["text"] != "real browser" {
        return Err(format!("unexpected tool result {r}").into());
    }
    // Chromium writes the DOM when it has rendered the page.
    let dom_path = out.join("dom.html");
    let t = Instant::now();
    let dom = loop {
        let dom = std::fs::read_to_string(&dom_path).unwrap_or_default();
        if dom.contains("</html>") || t.elapsed() > Duration::from_secs(30) {
            break dom;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text: String = dom.split('<').filter_map(|p| p.split_once('>').map(|(_, t)| t)).collect::<Vec<_>>().join(" ");
    println!("rendered text: {}", text.split_whitespace().collect::<Vec<_>>().join(" "));
    if !text.contains("You are signed in") || !text.contains("close this tab") {
        return Err(format!("the rendered page does not say the login succeeded: {text:?}").into());
    }
    let auths = server.lock().authorization_requests().len();
    if auths != 1 {
        return Err(format!("{auths} authorization requests").into());
    }
    Ok(())
}

#[cfg(feature = "async-std")]
fn call_async(config: Config, interaction: Interaction, args: serde_json::Value) -> Result<serde_json::Value, mcp_oauth_client::Error> {
    async_std::task::block_on(async {
        let mut mcp = mcp_oauth_client::async_std::McpClient::with_oauth(config, Arc::new(MemoryStore::new()), interaction).await?;
        mcp.call_tool("echo", args).await
    })
}

#[cfg(not(feature = "async-std"))]
fn call_async(_: Config, _: Interaction, _: serde_json::Value) -> Result<serde_json::Value, mcp_oauth_client::Error> {
    Err(mcp_oauth_client::Error::Unsupported("built without the async-std feature"))
}

#[cfg(feature = "tokio")]
fn call_tokio(config: Config, interaction: Interaction, args: serde_json::Value) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(rt.block_on(async {
        let mut mcp = mcp_oauth_client::tokio::McpClient::with_oauth(config, Arc::new(MemoryStore::new()), interaction).await?;
        mcp.call_tool("echo", args).await
    })?)
}

#[cfg(not(feature = "tokio"))]
fn call_tokio(_: Config, _: Interaction, _: serde_json::Value) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Err("built without the tokio feature".into())
}
