//! Machine to machine over TCP, configured from plain JSON: all three authentication methods.

mod common;
use common::*;
use mcp_oauth_client::{Interaction, MemoryStore, ServerConfig};
use mcp_oauth_tests::PreClient;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use std::sync::Arc;

fn cc_server(methods: &[&str], client: PreClient) -> mcp_oauth_tests::tcp::TcpTestServer {
    let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
    server(move |o| {
        o.grant_types = vec!["client_credentials".into()];
        o.auth_methods = methods;
        o.dcr = false;
        o.clients = vec![client];
    })
}

fn connect(a: Adapter, url: &str, oauth: serde_json::Value, env: &(dyn Fn(&str) -> Option<String> + Sync)) -> Mcp {
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({"type": "streamable_http", "url": url, "oauth": oauth})).unwrap();
    a.configured(&cfg, Arc::new(MemoryStore::new()), Interaction::non_interactive(), env).unwrap()
}

fn secret_client() -> PreClient {
    PreClient { id: "svc".into(), secret: Some("s3cr3t".into()), jwt_key: None }
}

fn client_secret_basic(a: Adapter) {
    let s = cc_server(&["client_secret_basic"], secret_client());
    let env = |k: &str| (k == "SVC_SECRET").then(|| "s3cr3t".to_owned());
    let mut mcp = connect(a, &s.mcp_url(), serde_json::json!({"client_id": "svc", "client_secret": {"env": "SVC_SECRET"}}), &env);
    mcp.list_tools().unwrap();
    let server = s.lock();
    let t = server.token_requests()[0].clone();
    assert!(t.authorization.as_deref().unwrap().starts_with("Basic "));
    assert!(server.authorization_requests().is_empty());
}

fn client_secret_post(a: Adapter) {
    let s = cc_server(&["client_secret_post"], secret_client());
    let mut mcp = connect(a, &s.mcp_url(), serde_json::json!({"client_id": "svc", "client_secret": "s3cr3t"}), &|_| None);
    mcp.list_tools().unwrap();
    let t = s.lock().token_requests()[0].clone();
    assert!(t.params.iter().any(|(k, v)| k == "client_secret" && v == "s3cr3t"));
}

fn private_key_jwt(a: Adapter) {
    let sk = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let pem = sk.to_pkcs8_pem(Default::default()).unwrap().to_string();
    let public = p256::SecretKey::from_pkcs8_pem(&pem).unwrap().public_key().to_sec1_bytes().to_vec();
    let s = cc_server(&["private_key_jwt"], PreClient { id: "svc".into(), secret: None, jwt_key: Some(public) });
    let mut mcp =
        connect(a, &s.mcp_url(), serde_json::json!({"client_id": "svc", "private_key": pem, "signing_algorithm": "ES256"}), &|_| None);
    mcp.list_tools().unwrap();
    let t = s.lock().token_requests()[0].clone();
    assert!(t.params.iter().any(|(k, _)| k == "client_assertion"));
}

/// Item 16 (SPEC 104): a client that may use client credentials declares the extension, in
/// `initialize` capabilities and in the stateless wire's per-request `clientCapabilities`; an
/// interactive client does not.
fn the_client_credentials_extension_is_declared(a: Adapter) {
    let declared = |params: &[(String, String)], stateless: bool| -> Option<serde_json::Value> {
        let p: serde_json::Value = serde_json::from_str(&params.iter().find(|(k, _)| k == "params")?.1).ok()?;
        let caps = if stateless { &p["_meta"]["io.modelcontextprotocol/clientCapabilities"] } else { &p["capabilities"] };
        Some(caps["extensions"]["io.modelcontextprotocol/oauth-client-credentials"].clone()).filter(|v| !v.is_null())
    };
    for stateless in [false, true] {
        let s = server(move |o| {
            o.grant_types = vec!["client_credentials".into()];
            o.dcr = false;
            o.clients = vec![secret_client()];
            o.stateless_2026 = stateless;
        });
        let mut mcp = connect(a, &s.mcp_url(), serde_json::json!({"client_id": "svc", "client_secret": "s3cr3t"}), &|_| None);
        mcp.list_tools().unwrap();
        let server = s.lock();
        let method = if stateless { "tools/list" } else { "initialize" };
        let first = server.log.iter().find(|r| r.params.iter().any(|(k, v)| k == "method" && v == method) && r.status == 200).unwrap();
        assert_eq!(declared(&first.params, stateless), Some(serde_json::json!({})), "stateless: {stateless}");
    }
    let s = server(|_| {});
    let (i, _) = following_browser();
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    mcp.list_tools().unwrap();
    let server = s.lock();
    let init = server.log.iter().find(|r| r.params.iter().any(|(k, v)| k == "method" && v == "initialize") && r.status == 200).unwrap();
    assert_eq!(declared(&init.params, false), None, "an interactive client declares nothing");
}

on_every_adapter!(client_secret_basic, client_secret_post, private_key_jwt, the_client_credentials_extension_is_declared);
