//! Review of the device authorization grant (RFC 8628): reproductions that fail now.

use super::*;
use crate::config::LoginMethod;
use crate::error::AuthorizationError;
use crate::http::{Purpose, TransportFailureKind};
use mcp_oauth_tests::PreClient;

fn device() -> Scenario {
    Scenario::new().server(|o| o.device = true).config(|c| c.login = LoginMethod::Device)
}

fn sent_at_of(h: &Harness, purpose: Purpose) -> Vec<u64> {
    h.sent.iter().zip(&h.sent_at).filter(|(r, _)| r.purpose == purpose).map(|(_, t)| t.as_millis()).collect()
}

/// Seconds between the device authorization request and each poll, and between polls.
fn gaps(h: &Harness) -> Vec<u64> {
    let mut times = sent_at_of(h, Purpose::DeviceAuthorization);
    times.extend(sent_at_of(h, Purpose::DeviceToken));
    times.windows(2).map(|w| (w[1] - w[0]) / 1000).collect()
}

/// RFC 8628 §3.2: `interval` is "the minimum amount of time in seconds that the client SHOULD
/// wait between polling requests". A server asking for 120 s is polled every 60 s.
#[test]
fn review_a_server_interval_over_sixty_seconds_is_not_shortened() {
    let mut h = device().server(|o| o.device_interval = Some(120)).start();
    h.device_person = Some((1, true));
    h.token_wanted().unwrap();
    let g = gaps(&h);
    assert!(g.iter().all(|s| *s >= 120), "polled faster than the server's interval of 120 s: gaps {g:?}");
}

/// RFC 8628 §3.5: on `slow_down` "the interval MUST be increased by 5 seconds for this and all
/// subsequent requests". At the 60 s cap a slow_down changes nothing.
#[test]
fn review_slow_down_at_sixty_seconds_still_slows_down() {
    let mut h = device()
        .server(|o| {
            o.device_interval = Some(60);
            o.device_slow_downs = 1;
        })
        .start();
    h.device_person = Some((2, true));
    h.token_wanted().unwrap();
    let g = gaps(&h);
    // authorization → poll 1 (slow_down) → poll 2 (pending) → poll 3 (approved)
    assert_eq!(g[0], 60);
    assert!(g[1] >= 65 && g[2] >= 65, "slow_down did not increase the interval past 60 s: gaps {g:?}");
}

/// RFC 8628 §3.5: "On encountering a connection timeout, clients MUST unilaterally reduce their
/// polling frequency before retrying" (exponential backoff RECOMMENDED). The machine polls a
/// timing-out token endpoint at the same rate.
#[test]
fn review_connection_timeouts_reduce_the_polling_frequency() {
    let mut h = device().start();
    let mut failures = 0;
    h.intercept = Some(Box::new(move |req: &OutgoingRequest| {
        if req.purpose == Purpose::DeviceToken && failures < 3 {
            failures += 1;
            return Some(Err(TransportFailure { kind: TransportFailureKind::Timeout, message: "timed out".into() }));
        }
        None
    }));
    h.device_person = Some((3, true));
    h.token_wanted().unwrap();
    let g = gaps(&h);
    // g[0]: the first poll; g[1..=3]: after each timeout.
    assert!(g[2] > g[1] && g[3] > g[2], "no backoff after connection timeouts: gaps {g:?}");
}

/// A user code with bidirectional overrides or invisible characters (Unicode format
/// characters, not "control" ones) is shown as is: the code the person reads is not the code
/// the server holds, or reads differently on the terminal (Trojan Source style).
#[test]
fn review_a_user_code_with_bidi_or_invisible_characters_is_refused() {
    for body in [
        r#"{"device_code":"d","user_code":"WDJB-\u202eDCBA","verification_uri":"https://mcp.example.com/device","expires_in":60}"#,
        r#"{"device_code":"d","user_code":"WDJB\u200b-MJHT","verification_uri":"https://mcp.example.com/device","expires_in":60}"#,
        r#"{"device_code":"d","user_code":"WDJB\u2066-MJHT","verification_uri":"https://mcp.example.com/device","expires_in":60}"#,
    ] {
        let mut h = device().start();
        h.device_person = None;
        h.intercept =
            Some(Box::new(move |req: &OutgoingRequest| (req.purpose == Purpose::DeviceAuthorization).then(|| Ok(json(200, body)))));
        let e = h.token_wanted().unwrap_err();
        assert!(h.device_codes.is_empty(), "shown to the person: {:?}", h.device_codes.iter().map(|c| &c.user_code).collect::<Vec<_>>());
        assert!(matches!(e, Error::Authorization(AuthorizationError::InvalidDeviceResponse(_))), "{body}: {e:?}");
    }
}

/// `auto` in a remote session takes the device grant because the authorization server lists the
/// endpoint, even for a client that may not use it (a client registered in advance without
/// the device grant, as most are: Entra, Okta and Auth0 make it opt-in). Before, that login
/// worked in a remote session (the paste flow); now it fails with `unauthorized_client` and
/// never falls back to the browser.
#[test]
fn review_auto_falls_back_to_the_browser_when_the_client_may_not_use_the_device_grant() {
    let mut h = Scenario::new()
        .server(|o| {
            o.device = true;
            o.clients = vec![PreClient { id: "pre-1".into(), secret: None, jwt_key: None }];
        })
        .config(|c| {
            c.client_id = Some("pre-1".into());
            c.remote_session = true;
        })
        .browser(Browser::FailsThenPaste)
        .start();
    h.intercept = Some(Box::new(|req: &OutgoingRequest| {
        (req.purpose == Purpose::DeviceAuthorization)
            .then(|| Ok(json(400, r#"{"error":"unauthorized_client","error_description":"device grant not enabled for this client"}"#)))
    }));
    let r = h.token_wanted();
    assert!(r.is_ok(), "auto did not fall back to the paste flow: {r:?}");
}

/// A person who logs in from the desktop (browser) and sometimes over SSH (device grant) gets a
/// new dynamic registration at every switch: each kind replaces the other in the store, the
/// authorization server keeps the orphans. One registration with both grants would do.
#[test]
fn review_switching_between_browser_and_device_logins_does_not_register_again_and_again() {
    let server_opts = |o: &mut mcp_oauth_tests::Options| o.device = true;
    // Desktop: the browser.
    let mut h = Scenario::new().server(server_opts).start();
    h.token_wanted().unwrap();
    let mut stored = h.stored();
    let mut server = h.server;
    for remote in [true, false, true, false] {
        // The grant is gone (revoked, expired): a login is needed.
        let grants: Vec<_> = server.ledger().unrevoked_grants().collect();
        for g in grants {
            server.revoke_grant(g);
        }
        let mut h = Scenario::new().on(server).restored(stored.clone()).config(move |c| c.remote_session = remote).start();
        assert_eq!(h.mcp_call("tools/list", serde_json::json!({})).unwrap().status(), 200);
        assert_eq!(h.device_codes.len(), usize::from(remote), "a device login iff remote");
        stored = h.stored();
        server = h.server;
    }
    let n = server.count("/register");
    assert!(n <= 2, "{n} registrations for 5 logins by one client alternating browser and device");
}
