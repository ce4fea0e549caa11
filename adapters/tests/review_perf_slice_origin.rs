//! Review of 33ff822's `check_origin` fast path: the request's scheme/host/port as `http::Uri`
//! spells them are compared with the normalised server URL; reqwest (and the DPoP proof) read
//! the same string with `url::Url`. Any string where the two disagree about the host would let
//! the token through to a foreign origin.
#![cfg(feature = "tokio")]

use mcp_oauth_client::tokio::OAuthClient;
use mcp_oauth_client::{Config, Interaction, MemoryStore};
use std::sync::Arc;

fn bearer() -> mcp_oauth_core::token::Authorization {
    let t: mcp_oauth_core::token::TokenSet = serde_json::from_value(serde_json::json!({
        "access_token": "s3cr3t-token", "token_type": "Bearer", "issuer": "https://as.example",
        "resource": "x", "obtained_at": 0
    }))
    .unwrap();
    t.authorization()
}

fn client(server: &str) -> OAuthClient {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(OAuthClient::new(Config::new(server.parse().unwrap()), Arc::new(MemoryStore::new()), Interaction::non_interactive()))
        .unwrap()
}

/// Every request string `http::Uri` accepts that the client attaches a token to must name the
/// server's origin as `url::Url` (what reqwest sends to) reads it.
fn no_disagreement(server: &str, host_port: &str) {
    let oauth = client(server);
    let server_origin = url::Url::parse(server).unwrap().origin();
    let auth = bearer();
    let scheme = &server[..server.find("://").unwrap()];
    let mut bad = Vec::new();
    let mut tried = 0;
    let pieces: Vec<String> = (0x20u8..0x7f)
        .map(|b| (b as char).to_string())
        .chain(["%40", "%2F", "%5C", "%2e", "\t", "\n"].iter().map(|s| s.to_string()))
        .collect();
    for p in &pieces {
        for tpl in [
            format!("{scheme}://evil.example{p}@{host_port}/mcp"),
            format!("{scheme}://{host_port}{p}@evil.example/mcp"),
            format!("{scheme}://{host_port}{p}evil.example/mcp"),
            format!("{scheme}://{p}{host_port}/mcp"),
            format!("{scheme}://{host_port}{p}/mcp"),
            format!("{scheme}://evil.example{p}{host_port}/mcp"),
            format!("{scheme}://u{p}:p@{host_port}/mcp"),
        ] {
            let Ok(uri) = tpl.parse::<http::Uri>() else { continue };
            let Ok(mut req) = http::Request::get(uri.clone()).body(Vec::new()) else { continue };
            tried += 1;
            if oauth.attach(&mut req, &auth).is_err() {
                continue;
            }
            let as_reqwest_sees = url::Url::parse(&uri.to_string());
            match as_reqwest_sees {
                Ok(u) if u.origin() == server_origin => {}
                other => bad.push(format!("{tpl:?} -> url: {:?}", other.map(|u| u.origin().ascii_serialization()))),
            }
        }
    }
    assert!(tried > 100);
    assert!(bad.is_empty(), "token attached for a request url::Url reads as elsewhere (or cannot read):\n{}", bad.join("\n"));
}

#[test]
fn origin_fast_path_agrees_with_url_for_an_ip_server() {
    no_disagreement("http://127.0.0.1:8080/mcp", "127.0.0.1:8080");
}

#[test]
fn origin_fast_path_agrees_with_url_for_a_named_server_on_the_default_port() {
    no_disagreement("https://mcp.example.com/mcp", "mcp.example.com");
}

#[test]
fn origin_fast_path_agrees_with_url_for_an_ipv6_server() {
    no_disagreement("http://[::1]:8080/mcp", "[::1]:8080");
}

fn dpop() -> mcp_oauth_core::token::Authorization {
    use base64::Engine;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    let t: mcp_oauth_core::token::TokenSet = serde_json::from_value(serde_json::json!({
        "access_token": "s3cr3t-dpop-token", "token_type": "DPoP", "issuer": "https://as.example",
        "resource": "x", "obtained_at": 0, "dpop_key": key
    }))
    .unwrap();
    let a = t.authorization();
    assert!(a.is_dpop());
    a
}

/// A port `http::Uri` accepts but cannot read as a number (`port_u16()` is `None`, as the
/// normalised URL's `port()` is for a default-port server) passes the quick path; before
/// 33ff822 the request was parsed with `url::Url`, failed, and was refused as a foreign origin.
/// Now the token is attached, and `attach`'s own `Url::parse` fails too, so a DPoP-bound token
/// gets `Authorization: DPoP …` and no `DPoP` proof (RFC 9449 §7.1).
#[test]
fn a_dpop_token_is_attached_without_a_proof_to_a_request_with_an_unparsable_port() {
    let oauth = client("https://mcp.example.com/mcp");
    for odd in ["https://mcp.example.com:evil.example/mcp", "https://mcp.example.com:65536/mcp", "https://mcp.example.com:99999999/mcp"] {
        let mut req = http::Request::post(odd).body(Vec::new()).unwrap();
        let attached = oauth.attach(&mut req, &dpop());
        assert!(
            attached.is_err(),
            "{odd}: attached ({:?}, DPoP proof: {})",
            req.headers().get("authorization").map(|_| "DPoP …"),
            req.headers().contains_key("dpop")
        );
    }
}

/// Sound: the usual spellings still get a proof, and case/port-spelled variants are parsed.
#[test]
fn a_dpop_token_gets_a_proof_on_the_quick_and_the_parsed_path() {
    let oauth = client("https://mcp.example.com/mcp");
    for ok in ["https://mcp.example.com/mcp", "https://MCP.example.com:443/mcp?x=1", "HTTPS://mcp.example.com/other"] {
        let mut req = http::Request::post(ok).body(Vec::new()).unwrap();
        oauth.attach(&mut req, &dpop()).unwrap();
        assert!(req.headers().contains_key("dpop"), "{ok}: no proof");
        assert!(req.headers()["authorization"].to_str().unwrap().starts_with("DPoP "));
    }
    let mut req = http::Request::post("https://mcp.example.com/mcp").body(Vec::new()).unwrap();
    oauth.attach(&mut req, &bearer()).unwrap();
    assert!(!req.headers().contains_key("dpop"));
}

/// What actually goes on the wire: through ureq (the blocking/async-std default, and tokio's
/// `UreqClient`), which reads the same `http::Uri`, the request for a default-port loopback
/// server with a junk port is sent, to the server's host on the default port, carrying the
/// DPoP-bound token with no proof. Needs 127.0.0.1:80 (skipped if it cannot be bound).
#[test]
fn through_ureq_the_proofless_dpop_token_is_sent() {
    use std::io::{Read, Write};
    let Ok(l) = std::net::TcpListener::bind("127.0.0.1:80") else {
        eprintln!("skipped: cannot bind 127.0.0.1:80");
        return;
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut buf = [0u8; 8192];
            let n = c.read(&mut buf).unwrap_or(0);
            *s2.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
        }
    });
    let oauth = client("http://127.0.0.1/mcp");
    let mut req = http::Request::post("http://127.0.0.1:x/mcp").body(b"{}".to_vec()).unwrap();
    let attached = oauth.attach(&mut req, &dpop());
    if attached.is_ok() {
        use mcp_oauth_client::tokio::HttpClient;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ureq = mcp_oauth_client::tokio::UreqClient::new(std::time::Duration::from_secs(3));
        let _ = rt.block_on(ureq.send(req, 1024));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let seen = seen.lock().unwrap().to_ascii_lowercase();
    assert!(
        !seen.contains("s3cr3t-dpop-token"),
        "the DPoP-bound token went out (DPoP proof header present: {}):\n{seen}",
        seen.contains("\r\ndpop:")
    );
}
