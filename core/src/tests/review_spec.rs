//! Independent review: spec-audit reproductions (SPEC.md item numbers).

use super::*;

/// SPEC 55 / RFC 6749 §4.4.3: `offline_access` is for a client that wants refresh tokens; the
/// client credentials grant gets none ("a refresh token SHOULD NOT be included"), and servers
/// such as Okta refuse `offline_access` on it (`invalid_scope`). Core adds it to the client
/// credentials request whenever the server lists it.
#[test]
fn s55_no_offline_access_on_the_client_credentials_grant() {
    let mut h = service()
        .server(|o| o.as_scopes = Some(vec!["mcp:read".into(), "mcp:write".into(), "offline_access".into()]))
        .config(svc_secret)
        .start();
    h.lazy_call("tools/list").unwrap();
    let form = h.last_form("/token");
    assert_eq!(param(&form, "grant_type"), Some("client_credentials"));
    let scope = param(&form, "scope").unwrap_or("");
    assert!(!scope.split(' ').any(|s| s == "offline_access"), "client credentials request asks for {scope:?}");
}

/// Item 6: re-discovery only when the challenge names *another* `resource_metadata`. The
/// comparison is between the header's raw string and the URL as the `url` crate re-serialised
/// it, so the same URL spelled with an explicit default port or an upper-case host (both
/// legal, RFC 3986 §6.2.2/§6.2.3) counts as "another" and every 401 re-fetches both metadata
/// documents.
#[test]
fn item6_the_same_metadata_url_in_another_spelling_is_not_another_one() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    h.server.revoke_access_tokens();
    // The resource server spells its metadata URL with the default port and an upper-case host.
    let before = h.sent.len();
    let www = vec![http::HeaderValue::from_static(
        r#"Bearer error="invalid_token", resource_metadata="https://MCP.example.com:443/.well-known/oauth-protected-resource/mcp""#,
    )];
    let now = h.now;
    h.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None }).unwrap();
    assert_eq!(h.targets()[before..], ["/token"], "a 401 naming the metadata in use re-discovered");
}

/// Item 18 regression: a service configured for `private_key_jwt` (client id + private key,
/// flow `auto`), against an authorization server whose metadata omits the OPTIONAL
/// `grant_types_supported` (many do). The previous version always used client credentials
/// with a key; now `auto` reads the RFC 8414 default (`authorization_code` only) as "client
/// credentials not offered" and starts a browser login, which a service cannot do (the README:
/// "client_id + client_secret (or private_key) uses the client credentials grant").
#[test]
fn item18_a_key_configured_service_keeps_client_credentials_when_grant_types_are_not_listed() {
    let mut h = Scenario::new()
        .server(|o| {
            o.dcr = false;
            o.auth_methods = vec!["private_key_jwt".into()];
            o.clients = vec![key_client("svc")];
        })
        .config(|c| {
            c.client_id = Some("svc".into());
            c.private_key = Some(crate::secret::PrivateKeyPem::new(crate::jwt::TEST_KEY));
        })
        .browser(Browser::Silent)
        .start();
    // The server's metadata, without the optional `grant_types_supported`.
    h.rewrite = Some(Box::new(|req: &OutgoingRequest, resp: &mut HttpResponse| {
        if req.purpose == crate::http::Purpose::ServerMetadata {
            let mut v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            v.as_object_mut().unwrap().remove("grant_types_supported");
            *resp.body_mut() = v.to_string().into_bytes();
        }
    }));
    let r = h.lazy_call("tools/list").map(|r| r.status().as_u16());
    assert!(
        h.server.authorization_requests().is_empty() && r == Ok(200),
        "a key-configured service went to the browser: {} authorization requests, {r:?}",
        h.server.authorization_requests().len()
    );
}
