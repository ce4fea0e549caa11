//! SPEC §2.C/§2.E: the metadata URLs are tried in the specification's order.

use super::*;
use mcp_oauth_tests::{AsMetadataLocation, PrmLocation};

/// A protected resource listing a dead authorization server (`/gone`) before the real one.
fn gone_then_real(o: &mut Options) {
    o.issuer_path = "/real".into();
    o.prm_extra_servers = vec![format!("{ORIGIN}/gone")];
}

#[test]
fn header_url_is_used_first_and_root_prm_never_fetched() {
    let mut h = Scenario::new().start();
    let resp = h.lazy_call("tools/list").unwrap();
    assert_eq!(resp.status(), 200);
    let t = h.targets();
    assert_eq!(t[0], "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(t[1], "/.well-known/oauth-authorization-server");
    assert!(!t.iter().any(|x| x == "/.well-known/oauth-protected-resource"), "{t:?}");
    assert_eq!(h.server.authorization_requests().len(), 1);
}

#[test]
fn without_header_path_aware_then_root() {
    let mut h = Scenario::new()
        .server(|o| {
            o.prm_in_header = false;
            o.prm = PrmLocation::Root;
            o.prm_resource = Some(ORIGIN.into()); // a root PRM names the origin (conformance metadata-var2)
        })
        .start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.targets();
    assert_eq!(&t[..2], ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]);
    // The resource sent is the PRM value, byte for byte.
    let authz = &h.server.authorization_requests()[0];
    assert_eq!(param(authz, "resource"), Some(ORIGIN));
}

#[test]
fn custom_header_url_only() {
    let mut h = Scenario::new().server(|o| o.prm = PrmLocation::Custom("/custom/metadata/location.json".into())).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(h.targets()[0], "/custom/metadata/location.json");
    assert!(!h.targets().iter().any(|t| t.starts_with("/.well-known/oauth-protected-resource")));
}

#[test]
fn invalid_header_url_falls_back_to_well_known() {
    let mut h = Scenario::new().start();
    let www = vec![http::HeaderValue::from_static(r#"Bearer resource_metadata="not a url""#)];
    let now = h.now;
    h.drive(Input::Challenged { now, status: 401, www_authenticate: www, dpop_nonce: None }).unwrap();
    assert_eq!(h.targets()[0], "/.well-known/oauth-protected-resource/mcp");
}

#[test]
fn path_issuer_uses_path_insertion_and_never_the_root() {
    let mut h = Scenario::new().server(|o| o.issuer_path = "/tenant1".into()).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.targets();
    assert_eq!(t[1], "/.well-known/oauth-authorization-server/tenant1");
    assert!(!t.iter().any(|x| x == "/.well-known/oauth-authorization-server"));
}

#[test]
fn path_issuer_oidc_appended_is_the_third_candidate() {
    let mut h = Scenario::new()
        .server(|o| {
            o.issuer_path = "/tenant1".into();
            o.as_metadata = AsMetadataLocation::OidcAppended;
        })
        .start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.targets();
    assert_eq!(
        &t[1..4],
        [
            "/.well-known/oauth-authorization-server/tenant1",
            "/.well-known/openid-configuration/tenant1",
            "/tenant1/.well-known/openid-configuration"
        ]
    );
}

#[test]
fn root_issuer_oidc_is_the_second_candidate() {
    let mut h = Scenario::new().server(|o| o.as_metadata = AsMetadataLocation::OidcInserted).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    assert_eq!(&h.targets()[1..3], ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]);
}

#[test]
fn several_authorization_servers_are_tried_in_turn() {
    let mut h = Scenario::new().server(gone_then_real).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.targets();
    assert_eq!(
        &t[1..5],
        [
            "/.well-known/oauth-authorization-server/gone",
            "/.well-known/openid-configuration/gone",
            "/gone/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/real",
        ]
    );
    assert_eq!(h.auth.issuer(), Some(format!("{ORIGIN}/real").as_str()));
}

#[test]
fn manual_endpoints_skip_discovery() {
    let mut h = Scenario::new()
        .config(|c| {
            c.endpoints = Some(crate::config::ManualEndpoints {
                issuer: Some(options().issuer()),
                authorization_endpoint: Some(format!("{ORIGIN}/authorize")),
                token_endpoint: format!("{ORIGIN}/token"),
                registration_endpoint: Some(format!("{ORIGIN}/register")),
                revocation_endpoint: None,
            })
        })
        .start();
    h.token_wanted().unwrap();
    let t = h.targets();
    assert!(!t.iter().any(|x| x.contains(".well-known")), "{t:?}");
    assert_eq!(t[0], "/register");
}

#[test]
fn discovery_requests_carry_protocol_version_and_no_token() {
    let mut h = Scenario::new().start();
    h.lazy_call("tools/list").unwrap();
    for r in h.sent.iter().filter(|r| r.request.method() == http::Method::GET) {
        assert_eq!(r.request.headers()["mcp-protocol-version"], "2025-11-25");
        assert!(r.request.headers().get("authorization").is_none());
    }
}

/// SPEC 24: the issuer of configured credentials comes first, then the one the stored tokens
/// or registration belong to; otherwise the listed order.
#[test]
fn spec24_preferred_issuers_are_tried_first() {
    let listed =
        |h: &Harness| h.targets().iter().filter(|t| t.starts_with("/.well-known/oauth-authorization-server")).cloned().collect::<Vec<_>>();
    // Listed order.
    let mut h = Scenario::new().server(gone_then_real).start();
    h.lazy_call("tools/list").unwrap();
    assert_eq!(listed(&h)[0], "/.well-known/oauth-authorization-server/gone");
    // Configured credentials' issuer first.
    let mut h2 = Scenario::new()
        .server(|o| {
            gone_then_real(o);
            o.clients = vec![mcp_oauth_tests::PreClient { id: "pre-1".into(), secret: None, jwt_key: None }];
        })
        .config(|c| {
            c.client_id = Some("pre-1".into());
            c.authorization_server = Some(format!("{ORIGIN}/real"));
        })
        .start();
    h2.lazy_call("tools/list").unwrap();
    assert_eq!(listed(&h2), ["/.well-known/oauth-authorization-server/real"]);
    // The issuer of a stored registration next.
    let clients: Vec<_> = h.persisted.iter().filter_map(|p| if let Persist::Client(c) = p { Some(c.clone()) } else { None }).collect();
    let mut h3 = Scenario::new().on(h.server).restored(Restored { clients, tokens: None }).start();
    h3.lazy_call("tools/list").unwrap();
    assert_eq!(listed(&h3), ["/.well-known/oauth-authorization-server/real"]);
}
