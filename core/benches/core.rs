//! Parser throughput and one full in-memory flow (discovery, DCR, authorization, code exchange)
//! against the independent test server. Run: `cargo bench -p mcp-oauth-core` (the `memory`
//! bench, in its own binary so its counting allocator does not slow these, reports allocations).

use criterion::{black_box, criterion_group, Criterion, Throughput};
use mcp_oauth_core::http::Purpose;
use mcp_oauth_core::{Authorizer, CallbackSetup, Config, Entropy, Input, Output, RedirectSource, Restored, Timestamp};
use mcp_oauth_tests::{Options, TestServer};
const WWW: &str = r#"DPoP algs="ES256 PS256", Bearer error="insufficient_scope", scope="files:read files:write user:profile", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error_description="Additional file write permission required""#;
const ASM: &str = r#"{"issuer":"https://server.example.com","authorization_endpoint":"https://server.example.com/authorize","token_endpoint":"https://server.example.com/token","registration_endpoint":"https://server.example.com/register","scopes_supported":["openid","profile","email"],"response_types_supported":["code"],"grant_types_supported":["authorization_code","refresh_token"],"code_challenge_methods_supported":["S256"],"token_endpoint_auth_methods_supported":["none","client_secret_basic"],"authorization_response_iss_parameter_supported":true}"#;
const TOKEN: &str = r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"Bearer","expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA","scope":"mcp:read mcp:write"}"#;
const HEAD: &[u8] = b"GET /callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj&iss=https%3A%2F%2Fserver.example.com HTTP/1.1\r\nHost: 127.0.0.1:8976\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html\r\n\r\n";

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(WWW.len() as u64));
    g.bench_function("www_authenticate", |b| b.iter(|| mcp_oauth_core::discovery::bearer_challenge([black_box(WWW.as_bytes())])));
    g.throughput(Throughput::Bytes(ASM.len() as u64));
    g.bench_function("server_metadata", |b| {
        b.iter(|| {
            mcp_oauth_core::metadata::AuthorizationServerMetadata::from_json(black_box(ASM.as_bytes()), "https://server.example.com", false)
        })
    });
    let resp = http::Response::builder().status(200).header("content-type", "application/json").body(TOKEN.as_bytes().to_vec()).unwrap();
    g.throughput(Throughput::Bytes(TOKEN.len() as u64));
    g.bench_function("token_response", |b| {
        b.iter(|| mcp_oauth_core::token::TokenResponse::from_http(black_box(&resp), Purpose::CodeExchange))
    });
    g.throughput(Throughput::Bytes(HEAD.len() as u64));
    g.bench_function("callback_head", |b| b.iter(|| mcp_oauth_core::callback::parse_request_head(black_box(HEAD))));
    g.finish();
}

/// One cold flow: returns the number of HTTP requests it made.
fn full_flow() -> usize {
    let mut server = TestServer::new(Options::new("https://mcp.example.com"));
    let now = Timestamp::from_secs(1_700_000_000);
    let config = Config::new(server.options.mcp_url().parse().unwrap());
    let mut auth = Authorizer::new(config, Restored::default(), now).unwrap();
    let mut sent = 0;
    auth.handle_input(Input::TokenWanted { now }).unwrap();
    loop {
        let next = match auth.poll_output() {
            Output::Send(req) => {
                sent += 1;
                Input::Response { now, id: req.id, result: Ok(server.handle(&req.request)) }
            }
            Output::PrepareAttempt(plan) => Input::AttemptPrepared {
                now,
                entropy: Entropy::from_bytes([5; 96]),
                callback: CallbackSetup::Listening(plan.redirect.unwrap().redirect_uri(40000)),
            },
            Output::OpenAuthorizationUrl { url, .. } => {
                let resp = server.handle(&http::Request::get(url.as_str()).body(Vec::new()).unwrap());
                let loc = resp.headers()["location"].to_str().unwrap().to_owned();
                Input::Redirect { now, url: loc, source: RedirectSource::Loopback }
            }
            Output::Ready(a) => {
                black_box(a);
                return sent;
            }
            Output::Failed(e) => panic!("{e}"),
            _ => continue,
        };
        auth.handle_input(next).unwrap();
    }
}

fn flow(c: &mut Criterion) {
    assert_eq!(full_flow(), 4, "PRM, AS metadata, registration, code exchange");
    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cold_authorization_code_in_memory", |b| b.iter(full_flow));
    let now = Timestamp::from_secs(1_700_000_000);
    // Warm path: a held token, TokenWanted -> Ready with no request.
    let set: mcp_oauth_core::TokenSet = serde_json::from_str(
        r#"{"access_token":"a","token_type":"Bearer","issuer":"https://mcp.example.com","resource":"https://mcp.example.com/mcp","obtained_at":0,"client_id":"pre"}"#,
    )
    .unwrap();
    let mut config = Config::new("https://mcp.example.com/mcp".parse().unwrap());
    config.client_id = Some("pre".into());
    let mut warm = Authorizer::new(config, Restored { clients: vec![], tokens: Some(set) }, now).unwrap();
    g.bench_function("token_wanted_with_a_held_token", |b| {
        b.iter(|| {
            warm.handle_input(Input::TokenWanted { now }).unwrap();
            match warm.poll_output() {
                Output::Ready(a) => black_box(a),
                other => panic!("{other:?}"),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parsers, flow);

criterion::criterion_main!(benches);
