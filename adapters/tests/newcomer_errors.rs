//! The errors a new user meets first (issue 13, part 3), tried as one would: a typo in the MCP
//! path, the bare origin, the authorization server's URL instead of the MCP server's, a server
//! that wants OAuth configured without `oauth`, and nothing listening. Each error names the step,
//! the method and the URL (never its query), and says what to do next. Before, all but the last
//! were `mcp: http status 404` (or 401), and the last named no host.

mod common;
use common::*;
use mcp_oauth_client::core::http::TransportFailureKind;
use mcp_oauth_client::{Error, Interaction, MemoryStore, ServerConfig};
use std::sync::Arc;

/// A client for `url` configured without OAuth.
fn plain(a: Adapter, url: &str) -> Mcp {
    let cfg: ServerConfig = serde_json::from_value(serde_json::json!({"type": "streamable_http", "url": url})).unwrap();
    a.configured(&cfg, Arc::new(MemoryStore::new()), Interaction::non_interactive(), &|_| None).unwrap()
}

fn a_typo_in_the_path_names_the_url_and_says_to_check_it(a: Adapter) {
    let s = server(|o| o.open = true);
    let url = format!("{}/mcpp?api_key=s3cr3t", s.origin());
    let e = plain(a, &url).list_tools().unwrap_err();
    let Error::Status { request, status: 404 } = &e else { panic!("not a 404 status error: {e:?}") };
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, format!("{}/mcpp", s.origin()), "the URL, without its query");
    assert_eq!(request.step, "initialize", "after server/discover, the handshake of older servers");
    let text = e.to_string();
    assert!(text.contains(&format!("POST {}/mcpp", s.origin())), "{text}");
    assert!(text.contains("check the MCP endpoint's path"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}

fn the_bare_origin_says_to_check_the_path(a: Adapter) {
    let s = server(|o| o.open = true);
    let e = plain(a, &s.origin()).connect().unwrap_err();
    assert!(matches!(&e, Error::Status { status: 404, .. }), "{e:?}");
    assert!(e.to_string().contains("check the MCP endpoint's path"), "{e}");
}

fn the_authorization_server_url_says_to_check_the_path(a: Adapter) {
    let s = server(|o| o.open = true);
    let e = plain(a, &format!("{}/authorize", s.origin())).connect().unwrap_err();
    let Error::Status { request, status } = &e else { panic!("not a status error: {e:?}") };
    assert!(request.url.ends_with("/authorize"), "{request}");
    assert!(*status >= 400, "{e}");
    assert!(e.to_string().contains("(often /mcp)"), "{e}");
}

fn a_server_that_wants_oauth_says_to_add_it(a: Adapter) {
    let s = server(|_| {});
    let e = plain(a, &s.mcp_url()).list_tools().unwrap_err();
    let Error::OAuthRequired { request } = &e else { panic!("not OAuthRequired: {e:?}") };
    assert_eq!(request.step, "server/discover", "said at once, not after a fallback");
    assert!(e.to_string().contains(r#"add an "oauth" section"#), "{e}");
    assert_eq!(s.lock().log.len(), 1, "one request: nothing retried without OAuth");
}

fn nothing_listening_names_the_host_and_port(a: Adapter) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = plain(a, &format!("http://127.0.0.1:{port}/mcp")).connect().unwrap_err();
    let Error::Transport { request, failure } = &e else { panic!("not a transport error: {e:?}") };
    assert_eq!(failure.kind, TransportFailureKind::Connect, "{e}");
    assert_eq!(request.url, format!("http://127.0.0.1:{port}/mcp"));
    let text = e.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")) && text.contains("is an MCP server running at 127.0.0.1"), "{text}");
}

on_every_adapter!(
    a_typo_in_the_path_names_the_url_and_says_to_check_it,
    the_bare_origin_says_to_check_the_path,
    the_authorization_server_url_says_to_check_the_path,
    a_server_that_wants_oauth_says_to_add_it,
    nothing_listening_names_the_host_and_port,
);
