//! Third independent review: `store::load_for` (527a252) moves from `…#machine:<id>` to a
//! `user:<id>` configuration's key on its first load. A service and a person using one server
//! through the same confidential client (`client_id` + secret; the service with flow `auto`, the
//! person with flow `authorization_code`) are two live configurations, whose keys the README
//! keeps apart. The person's first start finds nothing under its own key, and takes the
//! service's issuer binding (item 13: the pre-registered client on file, without its secret,
//! which makes the credentials refuse any other authorization server) from the service's key,
//! and removes it there (`ForgetClient`). The service's machine grant is not taken (it is
//! refused by `accepts_tokens`), so the service keeps running, unbound.
//!
//! Consequence: once the service's tokens go (server_known drops them when the metadata names
//! another issuer: a hostile or compromised resource metadata), nothing binds its credentials,
//! and its client secret goes to the other authorization server. With the binding on file it is
//! refused (`BoundToOtherIssuer`), as `item13_configured_credentials_stay_with_their_issuer` pins.
//! What should happen: a move takes what belongs to the user (a user's grant) and leaves another
//! live configuration's binding where it is (or copies it, never removes it).

mod common;
use common::*;
use mcp_oauth_client::blocking::OAuthClient;
use mcp_oauth_client::core::secret::ClientSecret;
use mcp_oauth_client::core::Flow;
use mcp_oauth_client::{Interaction, MemoryStore, TokenStore};
use mcp_oauth_tests::PreClient;
use std::sync::Arc;

fn run(person_starts: bool) -> (bool, Vec<String>) {
    let s = server(|o| {
        o.dcr = false;
        o.auth_methods = vec!["client_secret_basic".into()];
        o.clients = vec![PreClient { id: "app".into(), secret: Some("app-secret".into()), jwt_key: None }];
    });
    let mut service = config(&s);
    service.client_id = Some("app".into());
    service.client_secret = Some(ClientSecret::new("app-secret"));
    service.flow = Flow::Auto; // a machine: principal machine:app
    let mut person = service.clone();
    person.flow = Flow::AuthorizationCode; // a person through the same client: user:app
    let store = Arc::new(MemoryStore::new());

    // The service runs: a client credentials token, and its binding to this issuer on file.
    let svc = OAuthClient::new(service.clone(), store.clone(), Interaction::non_interactive()).unwrap();
    svc.authorization().unwrap();
    assert!(!store.load(&service.store_key()).unwrap().clients.is_empty(), "the binding is on file");

    // A person's configuration for the same client starts (nothing needs to happen yet).
    if person_starts {
        drop(OAuthClient::new(person.clone(), store.clone(), Interaction::non_interactive()).unwrap());
    }
    let binding_kept = !store.load(&service.store_key()).unwrap().clients.is_empty();

    // Later (a restart of the service), the resource's metadata names another authorization
    // server (here: another issuer on the same host) and the service's token is rejected.
    let svc = OAuthClient::new(service.clone(), store.clone(), Interaction::non_interactive()).unwrap();
    s.lock().options.issuer_path = "/elsewhere".into();
    s.lock().revoke_access_tokens();
    let req = http::Request::post(s.mcp_url())
        .header("content-type", "application/json")
        .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_vec())
        .unwrap();
    let _ = svc.send(req, 1 << 20);
    let elsewhere: Vec<String> = s
        .lock()
        .token_requests()
        .iter()
        .filter(|r| r.target.starts_with("/elsewhere/"))
        .map(|r| format!("{} {:?}", r.target, r.authorization))
        .collect();
    (binding_kept, elsewhere)
}

/// Control: without the person's configuration, the binding holds and nothing goes elsewhere.
#[test]
fn review3_control_the_service_binding_refuses_another_issuer() {
    let (kept, elsewhere) = run(false);
    assert!(kept);
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
}

#[test]
fn review3_a_persons_first_start_does_not_unbind_the_services_credentials() {
    let (kept, elsewhere) = run(true);
    assert!(
        kept && elsewhere.is_empty(),
        "the person's first load removed the service's binding (kept: {kept}); the service then sent its credentials \
         to another authorization server: {elsewhere:?}"
    );
}
