#!/usr/bin/env bash
# Clean debug build of a minimal rmcp client two ways, timed one after the other on this machine:
#   ours:  rmcp (client, streamable HTTP over reqwest) + mcp-oauth-client with `rmcp`
#   auth:  rmcp with its own `auth` feature (oauth2) on the same transport, and its `reqwest`
#          feature for TLS (reqwest's rustls, as rmcp users enable it to reach https servers;
#          ours brings rustls with ring itself)
# Prints the crates compiled, the wall time of each build, and whether `oauth2` is in the tree.
# Usage: tests/rmcp-auth-bench/build-compare.sh   (from the repository root; needs the registry)
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rmcp_features='"client", "transport-streamable-http-client-reqwest"'
make_crate() { # name, extra rmcp features, extra dependency line, main body
  mkdir -p "$work/$1/src"
  cat >"$work/$1/Cargo.toml" <<EOF
[package]
name = "$1"
version = "0.0.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
rmcp = { version = "3.11", default-features = false, features = [$rmcp_features$2] }
tokio = { version = "1.40", features = ["rt-multi-thread", "macros"] }
$3
EOF
  printf '%s\n' "$4" >"$work/$1/src/main.rs"
}

make_crate ours '' "mcp-oauth-client = { path = \"$root/adapters\", default-features = false, features = [\"rmcp\"] }" '
use mcp_oauth_client::{rmcp::OAuthHttpClient, tokio::OAuthClient, Config, Interaction, MemoryStore};
use rmcp::ServiceExt;
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: ours URL")?;
    let oauth = OAuthClient::new(Config::new(url.parse()?), std::sync::Arc::new(MemoryStore::new()), Interaction::default()).await?;
    let service = ().serve(OAuthHttpClient::new(oauth).into_transport()).await?;
    println!("{:?}", service.list_all_tools().await?);
    Ok(())
}'

make_crate auth ', "auth", "reqwest"' '' '
use rmcp::transport::auth::{AuthClient, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: auth URL")?;
    let state = OAuthState::new(url.as_str(), None).await?;
    let manager = state.into_authorization_manager().ok_or("not authorized")?;
    let client = AuthClient::new(reqwest::Client::default(), manager);
    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
    let service = ().serve(StreamableHttpClientTransport::with_client(client, config)).await?;
    println!("{:?}", service.list_all_tools().await?);
    Ok(())
}'
echo 'reqwest = { version = "0.13", default-features = false }' >>"$work/auth/Cargo.toml"

for c in ours auth; do
  (cd "$work/$c" && cargo fetch -q && cargo generate-lockfile -q)
done
for c in ours auth; do
  cd "$work/$c"
  start=$(date +%s.%N)
  cargo build -q 2>/dev/null
  end=$(date +%s.%N)
  crates=$(cargo tree -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)//' | sort -u | wc -l)
  oauth2=$(cargo tree -e normal -i oauth2 >/dev/null 2>&1 && echo yes || echo no)
  aws=$(cargo tree -e normal,build -i aws-lc-sys >/dev/null 2>&1 && echo yes || echo no)
  printf '%-5s %4d crates  %6.1f s  oauth2: %s  aws-lc-sys: %s\n' "$c" "$crates" "$(echo "$end - $start" | bc)" "$oauth2" "$aws"
done
