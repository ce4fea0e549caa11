//! Review of the logout flow: reproductions of defects found.

use super::*;
use crate::http::{TransportFailure, TransportFailureKind};
use crate::revocation::Revocation;

fn restored(h: &Harness) -> Restored {
    h.stored()
}

/// After a restart, logout discovers the authorization server through the MCP server (its
/// protected resource metadata). When the MCP server is down (or gone: a common reason to log
/// out) the tokens are forgotten unrevoked, although they name their issuer, whose own
/// metadata (RFC 8414, at the issuer's well-known URL) is up and names the revocation endpoint.
/// Nothing is then left to revoke the still-valid grant with.
#[test]
fn logout_revokes_at_the_tokens_issuer_when_the_mcp_server_is_down() {
    let mut h = Scenario::new()
        .server(|o| {
            o.revocation = true;
            o.auth_origin = "https://as.example.com".into();
        })
        .start();
    h.lazy_call("tools/list").unwrap();
    let r = restored(&h);
    assert_eq!(r.tokens.as_ref().unwrap().issuer, "https://as.example.com");
    let mut h2 = Scenario::new().restored(r).on(h.server).start();
    h2.intercept = Some(Box::new(|req: &OutgoingRequest| {
        (req.request.uri().host() == Some("mcp.example.com"))
            .then(|| Err(TransportFailure { kind: TransportFailureKind::Connect, message: "connection refused".into() }))
    }));
    let report = h2.logout().unwrap();
    let revoke_requests = h2.targets().iter().filter(|t| t.ends_with("/revoke")).count();
    assert!(
        report.all_revoked(),
        "the issuer was reachable, yet {revoke_requests} revocation request(s) were sent and the tokens were forgotten: {report:?}"
    );
    assert_eq!(report.refresh_token, Revocation::Revoked);
}
