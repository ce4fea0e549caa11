//! Review checks that are expected to PASS (what was found sound): DPoP-bound tokens through
//! rmcp (a fresh proof on every request), a resource server demanding a DPoP nonce fails
//! without new logins or refreshes (the documented limitation), and many concurrent rmcp
//! requests after expiry share one refresh.
#![cfg(feature = "rmcp")]

mod common;
use common::*;
use mcp_oauth_client::rmcp::OAuthHttpClient;
use mcp_oauth_client::tokio::{OAuthClient, ReqwestClient};
use mcp_oauth_client::{Clock, MemoryStore, Timestamp};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

async fn echo(service: &RunningService<RoleClient, ()>, text: &str) -> Result<String, String> {
    let args = serde_json::json!({ "text": text }).as_object().unwrap().clone();
    let r = service.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await.map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(&r).unwrap()["content"][0]["text"].as_str().unwrap_or_default().to_owned())
}

fn grants(s: &mcp_oauth_tests::tcp::TcpTestServer, grant: &str) -> usize {
    s.lock().token_requests().iter().filter(|t| t.params.iter().any(|(k, v)| k == "grant_type" && v == grant)).count()
}

#[test]
fn dpop_bound_tokens_work_through_rmcp() {
    let s = server(|o| o.dpop = true);
    let (i, log) = following_browser();
    rt().block_on(async {
        let oauth = OAuthClient::new(config(&s), Arc::new(MemoryStore::new()), i).await.unwrap();
        let service = ().serve(OAuthHttpClient::new(oauth).into_transport()).await.expect("initialize");
        for n in 0..3 {
            assert_eq!(echo(&service, &format!("dpop {n}")).await.unwrap(), format!("dpop {n}"));
        }
        service.cancel().await.unwrap();
    });
    assert_eq!(log.lock().unwrap().opened.len(), 1);
    let server = s.lock();
    assert!(server
        .log
        .iter()
        .filter(|r| r.target.starts_with("/mcp") && r.status == 200)
        .all(|r| r.authorization.as_deref().is_some_and(|a| a.starts_with("DPoP "))));
}

#[test]
fn a_resource_server_nonce_demand_fails_without_new_logins() {
    let s = server(|o| {
        o.dpop = true;
        o.dpop_rs_nonce = Some("rs-n".into());
    });
    let (i, log) = following_browser();
    let r = rt().block_on(async {
        let oauth = OAuthClient::new(config(&s), Arc::new(MemoryStore::new()), i).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), ().serve(OAuthHttpClient::new(oauth).into_transport())).await
    });
    assert!(matches!(r, Ok(Err(_))), "initialize fails (nonce cannot be given)");
    assert_eq!(log.lock().unwrap().opened.len(), 1, "one login, no loop");
    assert_eq!(grants(&s, "refresh_token"), 0);
}

#[test]
fn sixteen_concurrent_rmcp_calls_after_expiry_share_one_refresh() {
    let s = server(|o| o.token_lifetime = Some(120));
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let (i, log) = following_browser();
    rt().block_on(async {
        let c = config(&s);
        let http = Arc::new(ReqwestClient::new(Duration::from_secs(10)).with_policy(c.network, "127.0.0.1"));
        let oauth = OAuthClient::with_parts(c, Arc::new(MemoryStore::new()), i, http, clock.clone()).await.unwrap();
        let service = Arc::new(().serve(OAuthHttpClient::new(oauth).into_transport()).await.expect("initialize"));
        assert_eq!(echo(&service, "before").await.unwrap(), "before");
        clock.0.fetch_add(200_000, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for n in 0..16 {
            let service = service.clone();
            tasks.push(tokio::spawn(async move { echo(&service, &format!("c{n}")).await }));
        }
        for (n, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), format!("c{n}"));
        }
    });
    assert_eq!(grants(&s, "refresh_token"), 1, "one refresh for sixteen requests");
    assert_eq!(log.lock().unwrap().opened.len(), 1);
}
