//! A real rmcp client (`serve`, `list_all_tools`, `call_tool`) over this crate's
//! [`OAuthHttpClient`], against the in-process test MCP server behind OAuth: cold login,
//! restart from the store with no OAuth request, expiry and refresh, revocation (401 ->
//! refresh -> retry), step-up (403 -> login with the union -> retry), `invalid_grant` -> one
//! new login, and eight rmcp clients on one store -> one login.
#![cfg(feature = "rmcp")]

mod common;
use common::*;
use mcp_oauth_client::mcp::ConnectMode;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::tokio::{OAuthClient, ReqwestClient};
use mcp_oauth_client::{Clock, FileStore, Interaction, MemoryStore, ServerConfig, Timestamp, TokenStore, Transport};
use mcp_oauth_tests::tcp::TcpTestServer;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A clock the test moves.
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

async fn oauth(s: &TcpTestServer, store: Arc<dyn TokenStore>, i: Interaction, clock: Option<Arc<ManualClock>>) -> OAuthClient {
    let c = config(s);
    match clock {
        Some(clock) => {
            let http = Arc::new(ReqwestClient::new(Duration::from_secs(10)).with_policy(c.network, "127.0.0.1"));
            OAuthClient::with_parts(c, store, i, http, clock).await.unwrap()
        }
        None => OAuthClient::new(c, store, i).await.unwrap(),
    }
}

async fn serve(client: OAuthHttpClient) -> RunningService<RoleClient, ()> {
    ().serve(client.into_transport()).await.expect("rmcp connects (initialize) through the OAuth client")
}

async fn echo(service: &RunningService<RoleClient, ()>, text: &str) -> String {
    let args = serde_json::json!({ "text": text }).as_object().unwrap().clone();
    let r = service.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await.expect("call_tool");
    serde_json::to_value(&r).unwrap()["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

fn grants(s: &TcpTestServer, grant: &str) -> usize {
    s.lock().token_requests().iter().filter(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == grant)).count()
}

#[test]
fn a_cold_rmcp_client_logs_in_once_and_calls_tools() {
    let s = server(|_| {});
    let (i, log) = following_browser();
    rt().block_on(async {
        let service = serve(OAuthHttpClient::new(oauth(&s, Arc::new(MemoryStore::new()), i, None).await)).await;
        let tools = service.list_all_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
        assert_eq!(echo(&service, "through rmcp").await, "through rmcp");
        service.cancel().await.unwrap();
    });
    assert_eq!(log.lock().unwrap().opened.len(), 1, "one login");
    let server = s.lock();
    assert_eq!(server.authorization_requests().len(), 1);
    // Every MCP request after the login carried the token (the server checks it, and answered).
    let mcp: Vec<_> = server.log.iter().filter(|r| r.target.starts_with("/mcp")).collect();
    assert!(mcp.iter().any(|r| r.authorization.is_some() && r.status == 200), "no MCP request carried a token: {mcp:?}");
}

#[test]
fn an_eager_rmcp_client_logs_in_before_its_first_request() {
    let s = server(|_| {});
    let (i, log) = following_browser();
    rt().block_on(async {
        let client = OAuthHttpClient::new(oauth(&s, Arc::new(MemoryStore::new()), i, None).await).mode(ConnectMode::Eager);
        let service = serve(client).await;
        assert_eq!(echo(&service, "eager").await, "eager");
        service.cancel().await.unwrap();
    });
    assert_eq!(log.lock().unwrap().opened.len(), 1);
    let server = s.lock();
    let mcp: Vec<_> = server.log.iter().filter(|r| r.target.starts_with("/mcp")).collect();
    assert!(!mcp.is_empty() && mcp.iter().all(|r| r.authorization.is_some()), "a request went out without a token: {mcp:?}");
}

#[test]
fn a_restarted_rmcp_client_uses_the_stored_token_without_any_oauth_request() {
    let s = server(|_| {});
    let dir = std::env::temp_dir().join(format!("mcp-oauth-rmcp-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (i, _) = following_browser();
    rt().block_on(async {
        let service = serve(OAuthHttpClient::new(oauth(&s, Arc::new(FileStore::new(&dir)), i, None).await)).await;
        assert_eq!(echo(&service, "first run").await, "first run");
        service.cancel().await.unwrap();
    });
    let oauth_requests = |s: &TcpTestServer| {
        let server = s.lock();
        server.authorization_requests().len() + server.token_requests().len()
    };
    let before = oauth_requests(&s);
    // A new process: a new runtime, a new client, the same directory; no browser at all.
    rt().block_on(async {
        let service =
            serve(OAuthHttpClient::new(oauth(&s, Arc::new(FileStore::new(&dir)), Interaction::non_interactive(), None).await)).await;
        assert_eq!(echo(&service, "second run").await, "second run");
        service.cancel().await.unwrap();
    });
    assert_eq!(oauth_requests(&s), before, "the restart made OAuth requests");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_expired_token_is_refreshed_before_the_next_rmcp_request() {
    let s = server(|o| o.token_lifetime = Some(120));
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let (i, log) = following_browser();
    rt().block_on(async {
        let service = serve(OAuthHttpClient::new(oauth(&s, Arc::new(MemoryStore::new()), i, Some(clock.clone())).await)).await;
        assert_eq!(echo(&service, "before").await, "before");
        clock.0.fetch_add(200_000, Ordering::SeqCst);
        assert_eq!(echo(&service, "after expiry").await, "after expiry");
        service.cancel().await.unwrap();
    });
    assert_eq!(grants(&s, "refresh_token"), 1, "one refresh");
    assert_eq!(log.lock().unwrap().opened.len(), 1, "no second login");
}

#[test]
fn a_revoked_token_is_refreshed_and_the_rmcp_request_retried() {
    let s = server(|_| {});
    let (i, log) = following_browser();
    rt().block_on(async {
        let service = serve(OAuthHttpClient::new(oauth(&s, Arc::new(MemoryStore::new()), i, None).await)).await;
        assert_eq!(echo(&service, "before").await, "before");
        s.lock().revoke_access_tokens();
        // 401 -> refresh -> the same call again, invisible to rmcp.
        assert_eq!(echo(&service, "again").await, "again");
        service.cancel().await.unwrap();
    });
    assert_eq!(grants(&s, "refresh_token"), 1);
    assert_eq!(log.lock().unwrap().opened.len(), 1, "refresh, not a new login");
}

#[test]
fn insufficient_scope_steps_up_with_the_union_and_retries_the_rmcp_call() {
    let s = server(|_| {});
    let (i, log) = following_browser();
    rt().block_on(async {
        let service = serve(OAuthHttpClient::new(oauth(&s, Arc::new(MemoryStore::new()), i, None).await)).await;
        let r = service.call_tool(CallToolRequestParams::new("admin-tool")).await.expect("admin-tool after the step-up");
        assert_ne!(r.is_error, Some(true), "{r:?}");
        service.cancel().await.unwrap();
    });
    assert_eq!(log.lock().unwrap().opened.len(), 2, "the first login and the step-up");
    let server = s.lock();
    let second = &server.authorization_requests()[1];
    let scope = &second.iter().find(|(k, _)| k == "scope").unwrap().1;
    assert_eq!(scope, "mcp:read mcp:write mcp:admin");
}

#[test]
fn invalid_grant_on_refresh_leads_to_one_new_login() {
    let s = server(|o| o.token_lifetime = Some(120));
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let (i, log) = following_browser();
    rt().block_on(async {
        let service = serve(OAuthHttpClient::new(oauth(&s, Arc::new(MemoryStore::new()), i, Some(clock.clone())).await)).await;
        assert_eq!(echo(&service, "before").await, "before");
        s.lock().options.refresh_invalid_grant = true;
        clock.0.fetch_add(200_000, Ordering::SeqCst);
        assert_eq!(echo(&service, "after").await, "after");
        service.cancel().await.unwrap();
    });
    assert_eq!(grants(&s, "refresh_token"), 1, "one refresh attempt, no loop");
    assert_eq!(log.lock().unwrap().opened.len(), 2, "exactly one new login");
}

#[test]
fn eight_rmcp_clients_on_one_store_log_in_once() {
    let s = server(|_| {});
    let dir = std::env::temp_dir().join(format!("mcp-oauth-rmcp-eight-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (i, log) = following_browser();
    rt().block_on(async {
        let mut tasks = Vec::new();
        for n in 0..8 {
            // Eight independent OAuth clients (as eight processes would have), one store.
            let client = OAuthHttpClient::new(oauth(&s, Arc::new(FileStore::new(&dir)), i.clone(), None).await);
            tasks.push(tokio::spawn(async move {
                let service = serve(client).await;
                let text = echo(&service, &format!("client {n}")).await;
                service.cancel().await.unwrap();
                text
            }));
        }
        for (n, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), format!("client {n}"));
        }
    });
    assert_eq!(log.lock().unwrap().opened.len(), 1, "eight clients, one login");
    assert_eq!(s.lock().authorization_requests().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_config_without_oauth_is_served_unchanged() {
    let s = server(|o| o.open = true);
    let cfg = ServerConfig { transport: Transport::StreamableHttp { url: s.mcp_url(), headers: Default::default() }, oauth: None };
    rt().block_on(async {
        let client =
            OAuthHttpClient::from_config(&cfg, Arc::new(MemoryStore::new()), Interaction::non_interactive(), &|_| None).await.unwrap();
        assert!(client.oauth().is_none());
        let service = serve(client).await;
        assert_eq!(echo(&service, "plain").await, "plain");
        service.cancel().await.unwrap();
    });
    let server = s.lock();
    assert!(server.log.iter().all(|r| r.target.starts_with("/mcp")), "no OAuth request for a server without OAuth");
    assert!(server.log.iter().all(|r| r.authorization.is_none()));
}
