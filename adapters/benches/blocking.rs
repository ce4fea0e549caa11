//! The adapters' overhead per authorized request, against a raw ureq request with the same
//! header to the same loopback server (blocking, and with `--features async-std` the async
//! adapter: one request per `block_on`, and 16 tasks at once; with `--features tokio` the tokio
//! adapter against raw reqwest; with `--features rmcp` rmcp's client over `OAuthHttpClient`
//! against rmcp over a plain reqwest client with the same bearer header); and the wall time of
//! a cold flow.
//! Run: `cargo bench -p mcp-oauth-client --all-features`.

use criterion::{criterion_group, criterion_main, Criterion};
use mcp_oauth_client::blocking::{McpClient, OAuthClient};
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{Config, MemoryStore};
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::Options;
use std::sync::Arc;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().max_redirects(0).max_redirects_will_error(false).http_status_as_error(false).build().into()
}

fn browser() -> Interaction {
    let mut i = Interaction::with_hook(|url: &url::Url| {
        let url = url.clone();
        std::thread::spawn(move || {
            let _ = mcp_oauth_tests::browser::log_in(url.as_str());
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i
}

fn list_request(url: &str) -> http::Request<Vec<u8>> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).to_string();
    http::Request::post(url).header("content-type", "application/json").body(body.into_bytes()).unwrap()
}

fn overhead(c: &mut Criterion) {
    let server = TcpTestServer::start(Options::new).unwrap();
    let url = server.mcp_url();
    let oauth = OAuthClient::new(Config::new(url.parse().unwrap()), Arc::new(MemoryStore::new()), browser()).unwrap();
    let header = oauth.authorization().unwrap().header_value();
    let raw = agent();
    let mut g = c.benchmark_group("authorized_request");
    g.bench_function("raw_ureq_with_header", |b| {
        b.iter(|| {
            let mut req = list_request(&url);
            req.headers_mut().insert("authorization", header.clone());
            let mut resp = raw.run(req).unwrap();
            assert_eq!(resp.status(), 200);
            resp.body_mut().read_to_vec().unwrap()
        })
    });
    g.bench_function("oauth_client_send", |b| {
        b.iter(|| {
            let resp = oauth.send(list_request(&url), 1 << 20).unwrap();
            assert_eq!(resp.status(), 200);
            resp
        })
    });
    #[cfg(feature = "async-std")]
    {
        use mcp_oauth_client::async_std::OAuthClient;
        let store = Arc::new(MemoryStore::new());
        let config = Config::new(url.parse().unwrap());
        let a = async_std::task::block_on(OAuthClient::new(config, store, browser())).unwrap();
        async_std::task::block_on(a.authorization()).unwrap();
        // What the pool hop alone costs: the raw request above, on async-std's blocking pool.
        g.bench_function("raw_ureq_on_async_std_pool", |b| {
            b.iter(|| {
                let (raw, mut req) = (raw.clone(), list_request(&url));
                req.headers_mut().insert("authorization", header.clone());
                async_std::task::block_on(async_std::task::spawn_blocking(move || {
                    let mut resp = raw.run(req).unwrap();
                    assert_eq!(resp.status(), 200);
                    resp.body_mut().read_to_vec().unwrap()
                }))
            })
        });
        g.bench_function("async_oauth_client_send", |b| {
            b.iter(|| {
                let resp = async_std::task::block_on(a.send(list_request(&url), 1 << 20)).unwrap();
                assert_eq!(resp.status(), 200);
                resp
            })
        });
        g.bench_function("async_oauth_client_send_16_tasks", |b| {
            b.iter(|| {
                async_std::task::block_on(async {
                    let tasks: Vec<_> = (0..16)
                        .map(|_| {
                            let (a, req) = (a.clone(), list_request(&url));
                            async_std::task::spawn(async move { a.send(req, 1 << 20).await.unwrap().status() })
                        })
                        .collect();
                    for t in tasks {
                        assert_eq!(t.await, 200);
                    }
                })
            })
        });
    }
    #[cfg(feature = "tokio")]
    {
        use mcp_oauth_client::tokio::OAuthClient;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let t = rt.block_on(OAuthClient::new(Config::new(url.parse().unwrap()), Arc::new(MemoryStore::new()), browser())).unwrap();
        rt.block_on(t.authorization()).unwrap();
        let raw = plain_reqwest();
        // Every variant starts from the same serialized request (raw reqwest from its body).
        let prebuilt = list_request(&url);
        let body = prebuilt.body().clone();
        let raw_reqwest = || {
            rt.block_on(async {
                let resp = raw
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", header.clone())
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
            })
        };
        // The transport alone (no OAuth client): where the adapter's overhead is.
        let transport = mcp_oauth_client::tokio::ReqwestClient::default();
        let transport_only = || {
            use mcp_oauth_client::tokio::HttpClient;
            let mut req = prebuilt.clone();
            req.headers_mut().insert("authorization", header.clone());
            let resp = rt.block_on(transport.send(req, 1 << 20)).unwrap();
            assert_eq!(resp.status(), 200);
        };
        let oauth_client = || {
            let resp = rt.block_on(t.send(prebuilt.clone(), 1 << 20)).unwrap();
            assert_eq!(resp.status(), 200);
        };
        mcp_oauth_tests::bench::paired(
            "tokio",
            &[
                ("raw_reqwest_with_header", &raw_reqwest),
                ("reqwest_client_send_with_header", &transport_only),
                ("tokio_oauth_client_send", &oauth_client),
            ],
        );
        g.bench_function("raw_reqwest_with_header", |b| b.iter(raw_reqwest));
        g.bench_function("reqwest_client_send_with_header", |b| b.iter(transport_only));
        g.bench_function("tokio_oauth_client_send", |b| b.iter(oauth_client));
        #[cfg(feature = "rmcp")]
        {
            use mcp_oauth_client::rmcp::OAuthHttpClient;
            use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
            use rmcp::transport::StreamableHttpClientTransport;
            use rmcp::ServiceExt;
            let token = header.to_str().unwrap().trim_start_matches("Bearer ").to_owned();
            // (rmcp's transport spawns its worker: it is made inside the runtime.)
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token);
            let plain = rt.block_on(async { ().serve(StreamableHttpClientTransport::with_client(plain_reqwest(), config)).await }).unwrap();
            let ours = rt.block_on(async { ().serve(OAuthHttpClient::new(t.clone()).into_transport()).await }).unwrap();
            let plain_list = || drop(rt.block_on(plain.list_tools(None)).unwrap());
            let ours_list = || drop(rt.block_on(ours.list_tools(None)).unwrap());
            mcp_oauth_tests::bench::paired(
                "rmcp",
                &[("rmcp_list_tools_plain_bearer", &plain_list), ("rmcp_list_tools_oauth_http_client", &ours_list)],
            );
            g.bench_function("rmcp_list_tools_plain_bearer", |b| b.iter(plain_list));
            g.bench_function("rmcp_list_tools_oauth_http_client", |b| b.iter(ours_list));
        }
    }
    g.finish();
}

/// A reqwest client with nothing of this crate's: rustls (ring) and no redirects.
#[cfg(feature = "tokio")]
fn plain_reqwest() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap()
}

fn cold_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("cold_flow");
    g.sample_size(20);
    g.bench_function("loopback_authorization_code_then_tools_list", |b| {
        b.iter(|| {
            let server = TcpTestServer::start(Options::new).unwrap();
            let mut mcp =
                McpClient::with_oauth(Config::new(server.mcp_url().parse().unwrap()), Arc::new(MemoryStore::new()), browser()).unwrap();
            mcp.list_tools().unwrap();
            let n = server.lock().log.len();
            // 401, PRM, AS metadata, register, authorize, token, server/discover (refused: a
            // 2025-11-25 server), initialize, initialized, tools/list.
            assert_eq!(n, 10, "{n} requests");
        })
    });
    g.finish();
}

criterion_group!(benches, overhead, cold_flow);
criterion_main!(benches);
