//! SPEC §2.F: 2025-03-26 servers without protected resource metadata.

use super::*;
use mcp_oauth_tests::{AsMetadataLocation, PrmLocation};

/// A 2025-03-26 server: no protected resource metadata, no authorization server metadata.
fn legacy(o: &mut Options) {
    o.prm = PrmLocation::None;
    o.as_metadata = AsMetadataLocation::None;
}

#[test]
fn metadata_at_the_origin_is_used() {
    let mut h = Scenario::new().server(|o| o.prm = PrmLocation::None).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.targets();
    assert_eq!(
        &t[..3],
        ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server"]
    );
    assert_eq!(h.auth.issuer(), Some(ORIGIN));
}

#[test]
fn default_endpoints_after_a_404() {
    let mut h = Scenario::new().server(legacy).start();
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
    let t = h.targets();
    assert_eq!(t[2], "/.well-known/oauth-authorization-server");
    assert_eq!(&t[3..], ["/register", "/token"]);
    assert_eq!(h.server.authorization_requests().len(), 1);
    // The resource indicator is still sent (MUST since 2025-06-18), as the canonical URI.
    assert_eq!(param(&h.last_form("/token"), "resource"), Some("https://mcp.example.com/mcp"));
}

#[test]
fn legacy_defaults_skip_the_iss_check_without_a_baseline() {
    let mut h = Scenario::new()
        .server(|o| {
            legacy(o);
            o.iss = mcp_oauth_tests::IssBehaviour::Wrong("https://elsewhere.example".into());
        })
        .start();
    // No validated issuer exists, so there is nothing to compare against (SPEC OQ 18).
    assert_eq!(h.lazy_call("tools/list").unwrap().status(), 200);
}
