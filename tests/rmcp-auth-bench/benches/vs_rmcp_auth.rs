//! rmcp's client through this crate's `OAuthHttpClient` against rmcp's client with rmcp's own
//! `auth` feature (`OAuthState::authenticate_client_credentials`, then `AuthClient`), both with
//! a pre-registered confidential client (client credentials) against the same in-process test
//! server on 127.0.0.1:
//! - `warm`: one `tools/list` with the token held (per-request overhead), also measured in
//!   alternation (`mcp_oauth_tests::bench::paired`);
//! - `cold`: a client from nothing to its first `tools/list` (discovery, token, `initialize`),
//!   with the requests the server saw per cold start printed first.
//!
//! Run: `cargo bench --manifest-path tests/rmcp-auth-bench/Cargo.toml`. This crate is its own
//! workspace, so rmcp's `auth` feature (and `oauth2`) never reaches the main workspace's builds.

use criterion::{criterion_group, criterion_main, Criterion};
use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::{MemoryStore, ServerConfig};
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::{Options, PreClient};
use rmcp::service::RunningService;
use rmcp::transport::auth::{AuthClient, ClientCredentialsConfig, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use std::sync::Arc;

type Service = RunningService<RoleClient, ()>;

const CLIENT_ID: &str = "svc";
const SECRET: &str = "s3cr3t";

fn server() -> TcpTestServer {
    TcpTestServer::start(|origin| {
        let mut o = Options::new(origin);
        o.grant_types = vec!["client_credentials".into()];
        o.auth_methods = vec!["client_secret_post".into()];
        o.dcr = false;
        o.clients = vec![PreClient { id: CLIENT_ID.into(), secret: Some(SECRET.into()), jwt_key: None }];
        o
    })
    .expect("the test server starts")
}

/// A reqwest client with rustls (ring) and no redirects, for rmcp's transport.
fn plain_reqwest() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap()
}

/// rmcp over this crate: the configuration as JSON, as a user's config file holds it.
async fn ours(url: &str) -> Service {
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({
        "type": "streamable_http", "url": url, "oauth": {"client_id": CLIENT_ID, "client_secret": SECRET}
    }))
    .unwrap();
    let client = OAuthHttpClient::from_config(&cfg, Arc::new(MemoryStore::new()), Interaction::non_interactive(), &|_| None).await.unwrap();
    ().serve(client.into_transport()).await.unwrap()
}

/// rmcp with its own `auth` feature, as its documentation shows the client credentials grant.
async fn theirs(url: &str) -> Service {
    let mut state = OAuthState::new(url, Some(plain_reqwest())).await.unwrap();
    let config = ClientCredentialsConfig::ClientSecret {
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        scopes: Vec::new(),
        resource: Some(url.into()),
    };
    state.authenticate_client_credentials(config).await.unwrap();
    let manager = state.into_authorization_manager().expect("authorized");
    let client = AuthClient::new(plain_reqwest(), manager);
    ().serve(StreamableHttpClientTransport::with_client(client, StreamableHttpClientTransportConfig::with_uri(url))).await.unwrap()
}

fn vs_rmcp_auth(c: &mut Criterion) {
    // rmcp's own OAuth HTTP client is built without a crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s = server();
    let url = s.mcp_url();

    // What one cold start costs in requests, each way (printed, not timed).
    for (name, start) in [("ours", true), ("rmcp auth", false)] {
        let before = s.lock().log.len();
        let service = rt.block_on(async {
            if start {
                ours(&url).await
            } else {
                theirs(&url).await
            }
        });
        rt.block_on(service.list_tools(None)).unwrap();
        let log = s.lock().log[before..].iter().map(|r| format!("{} {} {}", r.method, r.target, r.status)).collect::<Vec<_>>();
        println!("cold start, {name}: {} requests: {}", log.len(), log.join(", "));
        let _ = rt.block_on(service.cancel());
    }

    let mut g = c.benchmark_group("rmcp_warm_tools_list");
    let ours_warm = rt.block_on(ours(&url));
    let theirs_warm = rt.block_on(theirs(&url));
    let theirs_list = || drop(rt.block_on(theirs_warm.list_tools(None)).unwrap());
    let ours_list = || drop(rt.block_on(ours_warm.list_tools(None)).unwrap());
    mcp_oauth_tests::bench::paired("rmcp warm", &[("rmcp_auth_client", &theirs_list), ("oauth_http_client", &ours_list)]);
    g.bench_function("rmcp_auth_client", |b| b.iter(theirs_list));
    g.bench_function("oauth_http_client", |b| b.iter(ours_list));
    g.finish();

    let mut g = c.benchmark_group("rmcp_cold_start");
    g.sample_size(30);
    g.bench_function("rmcp_auth_client", |b| {
        b.iter(|| {
            rt.block_on(async {
                let service = theirs(&url).await;
                service.list_tools(None).await.unwrap();
                service.cancel().await.unwrap();
            })
        })
    });
    g.bench_function("oauth_http_client", |b| {
        b.iter(|| {
            rt.block_on(async {
                let service = ours(&url).await;
                service.list_tools(None).await.unwrap();
                service.cancel().await.unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, vs_rmcp_auth);
criterion_main!(benches);
