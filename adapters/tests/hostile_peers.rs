//! Hostile peers over real sockets (a scripted raw server, not our test server): redirects are
//! never followed, metadata pointing at plain `http://` or a foreign issuer is refused before
//! anything is sent there, a body that never ends and a gigantic header fail fast with typed
//! errors.

mod common;
use common::*;
use mcp_oauth_client::{Error, MemoryStore, SystemClock};
use mcp_oauth_core::{DiscoveryError, Error as CoreError, HttpError};
use mcp_oauth_tests::hostile::{Behaviour, HostilePeer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An MCP endpoint at `/mcp` that demands OAuth and points at `/prm`; the rest is `script`.
fn peer(script: impl Fn(&str, &str) -> Behaviour + Send + Sync + 'static) -> HostilePeer {
    HostilePeer::start(move |origin, target| match target {
        "/mcp" => Behaviour::response(401, &format!("www-authenticate: Bearer resource_metadata=\"{origin}/prm\"\r\n"), ""),
        _ => script(origin, target),
    })
    .unwrap()
}

fn prm(origin: &str, server: &str) -> Behaviour {
    Behaviour::json(200, &format!(r#"{{"resource": "{origin}/mcp", "authorization_servers": ["{server}"]}}"#))
}

fn asm(issuer: &str, origin: &str, token_endpoint: &str) -> Behaviour {
    Behaviour::json(
        200,
        &format!(
            r#"{{"issuer": "{issuer}", "authorization_endpoint": "{origin}/authorize", "token_endpoint": "{token_endpoint}",
                "registration_endpoint": "{origin}/register", "code_challenge_methods_supported": ["S256"],
                "response_types_supported": ["code"]}}"#
        ),
    )
}

/// Runs one MCP call against the peer with a hook that records any authorization URL.
fn call(a: Adapter, p: &HostilePeer, timeout: Duration) -> (Error, Vec<String>, Duration) {
    call_with(a, p, timeout, mcp_oauth_client::core::NetworkPolicy::Open)
}

fn call_with(
    a: Adapter,
    p: &HostilePeer,
    timeout: Duration,
    network: mcp_oauth_client::core::NetworkPolicy,
) -> (Error, Vec<String>, Duration) {
    let opened = Arc::new(Mutex::new(Vec::new()));
    let o = opened.clone();
    let mut i = mcp_oauth_client::Interaction::with_hook(move |u: &url::Url| {
        o.lock().unwrap().push(u.to_string());
        mcp_oauth_client::UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    let mut c = mcp_oauth_client::Config::new(format!("{}/mcp", p.origin()).parse().unwrap());
    c.callback_timeout = Duration::from_secs(5);
    c.network = network;
    let mut mcp = a.with_parts(c, Arc::new(MemoryStore::new()), i, Some(timeout), Arc::new(SystemClock)).unwrap();
    let t = Instant::now();
    let e = mcp.list_tools().unwrap_err();
    let opened = opened.lock().unwrap().clone();
    (e, opened, t.elapsed())
}

fn redirects_are_never_followed(a: Adapter) {
    let elsewhere = HostilePeer::start(|origin, _| prm(origin, origin)).unwrap();
    let target = elsewhere.origin();
    let p = peer(move |_, _| Behaviour::response(302, &format!("location: {target}/prm\r\n"), ""));
    let (e, opened, _) = call(a, &p, Duration::from_secs(5));
    assert!(matches!(&e, Error::Core(CoreError::Http { error: HttpError::UnexpectedStatus { status: 302, .. }, .. })), "{e:?}");
    assert!(elsewhere.requests().is_empty(), "the redirect was followed: {:?}", elsewhere.requests());
    assert!(opened.is_empty());
}

fn plain_http_metadata_is_refused_before_contact(a: Adapter) {
    // An authorization server on plain http at a non-loopback address: refused without a connect.
    let p = peer(|origin, target| match target {
        "/prm" => prm(origin, "http://10.255.255.1"),
        _ => Behaviour::Silent,
    });
    let (e, opened, took) = call(a, &p, Duration::from_secs(20));
    let text = e.to_string();
    assert!(matches!(e.core(), Some(CoreError::Discovery(_))), "{e:?}");
    assert!(text.contains("http://10.255.255.1") || text.contains("no usable authorization server"), "{text}");
    assert!(took < Duration::from_secs(2), "it tried to connect: {took:?}");
    assert!(opened.is_empty());

    // Metadata whose token endpoint is plain http elsewhere: no browser is ever opened.
    let q = peer(|origin, target| match target {
        "/prm" => prm(origin, origin),
        "/.well-known/oauth-authorization-server" => asm(origin, origin, "http://evil.example.com/token"),
        _ => Behaviour::json(404, "{}"),
    });
    let (e, opened, _) = call(a, &q, Duration::from_secs(5));
    assert!(matches!(e.core(), Some(CoreError::Discovery(_))), "{e:?}");
    assert!(opened.is_empty(), "a login started against insecure metadata");
    assert!(!q.requests().iter().any(|r| r.contains("/register")), "registered with insecure metadata: {:?}", q.requests());
}

fn a_foreign_issuer_is_refused(a: Adapter) {
    let p = peer(|origin, target| match target {
        "/prm" => prm(origin, origin),
        "/.well-known/oauth-authorization-server" => asm("https://evil.example.com", origin, &format!("{origin}/token")),
        _ => Behaviour::json(404, "{}"),
    });
    let (e, opened, _) = call(a, &p, Duration::from_secs(5));
    let found =
        matches!(e.core(), Some(CoreError::Discovery(DiscoveryError::IssuerMismatch { found, .. })) if found == "https://evil.example.com");
    assert!(found || e.to_string().contains("evil.example.com"), "{e:?}");
    assert!(opened.is_empty());
    assert!(!p.requests().iter().any(|r| r.contains("/register") || r.contains("/token")), "{:?}", p.requests());
}

fn an_endless_body_times_out(a: Adapter) {
    // No length announced (a body framed by the connection's close): nothing tells the client
    // in advance that it will not end. (A declared length over the cap is refused at once by
    // the reqwest client, before reading.)
    let p = peer(|_, _| Behaviour::Drip {
        head: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{".to_vec(),
        every: Duration::from_millis(20),
    });
    let (e, _, took) = call(a, &p, Duration::from_millis(800));
    assert!(
        matches!(&e, Error::Core(CoreError::Http { error: HttpError::Transport(f), .. }) if f.kind == mcp_oauth_core::http::TransportFailureKind::Timeout),
        "{e:?}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
}

fn a_gigantic_header_is_refused(a: Adapter) {
    let p = peer(|_, _| {
        let huge = "a".repeat(1024 * 1024);
        Behaviour::Raw(format!("HTTP/1.1 200 OK\r\nx-junk: {huge}\r\ncontent-length: 2\r\n\r\n{{}}").into_bytes())
    });
    let (e, _, took) = call(a, &p, Duration::from_secs(5));
    assert!(matches!(&e, Error::Core(CoreError::Http { error: HttpError::Transport(_), .. })), "{e:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// The network policy: a discovered host that resolves to loopback (`localhost`, while the MCP
/// server is `127.0.0.1`) is refused under `public` and allowed under `public_or_loopback`; a
/// private address is refused at once; the MCP server's own host is always reachable.
fn the_network_policy_guards_discovered_hosts(a: Adapter) {
    use mcp_oauth_client::core::http::TransportFailureKind;
    use mcp_oauth_client::core::NetworkPolicy;
    let auth = HostilePeer::start(|origin, _| asm(origin, origin, &format!("{origin}/token"))).unwrap();
    let auth_via_localhost = auth.origin().replace("127.0.0.1", "localhost");
    let p = peer(move |origin, target| match target {
        "/prm" => prm(origin, &auth_via_localhost),
        _ => Behaviour::json(404, "{}"),
    });
    let blocked = |e: &Error| matches!(e, Error::Core(CoreError::Http { error: HttpError::Transport(f), .. }) if f.kind == TransportFailureKind::Blocked);

    let (e, _, _) = call_with(a, &p, Duration::from_secs(5), NetworkPolicy::Public);
    assert!(blocked(&e), "{e:?}");
    assert!(e.to_string().contains("loopback"), "{e}");
    assert!(auth.requests().is_empty(), "a blocked host was contacted: {:?}", auth.requests());
    assert!(p.requests().iter().any(|r| r == "GET /prm"), "the MCP server's own host is exempt: {:?}", p.requests());

    let _ = call_with(a, &p, Duration::from_secs(5), NetworkPolicy::PublicOrLoopback);
    assert!(auth.requests().iter().any(|r| r.contains("oauth-authorization-server")), "{:?}", auth.requests());

    let q = peer(|origin, target| match target {
        "/prm" => prm(origin, "https://10.0.0.1"),
        _ => Behaviour::json(404, "{}"),
    });
    let (e, _, took) = call_with(a, &q, Duration::from_secs(20), NetworkPolicy::PublicOrLoopback);
    assert!(blocked(&e) && e.to_string().contains("private"), "{e:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

on_every_adapter!(
    the_network_policy_guards_discovered_hosts,
    redirects_are_never_followed,
    plain_http_metadata_is_refused_before_contact,
    a_foreign_issuer_is_refused,
    an_endless_body_times_out,
    a_gigantic_header_is_refused,
);
