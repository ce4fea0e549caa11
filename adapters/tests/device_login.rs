//! The device authorization grant (RFC 8628) over real sockets on every adapter: asked for in
//! configuration, or chosen because the session is remote (no display, no hook); the person
//! approves at the verification URI from another "device" (the test), and the tokens work.

mod common;
use common::*;
use mcp_oauth_client::core::LoginMethod;
use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::{MemoryStore, TokenStore};
use std::sync::{Arc, Mutex};

/// An interaction whose person approves every shown code on another device (a GET of the
/// verification URI with the code), recording what was shown.
fn approving_person(env_remote: bool) -> (Interaction, Arc<Mutex<Vec<String>>>) {
    let shown = Arc::new(Mutex::new(Vec::new()));
    let s = shown.clone();
    let on_device_code: mcp_oauth_client::interaction::DeviceCodeHook = Arc::new(move |code| {
        s.lock().unwrap().push(code.user_code.clone());
        let url = format!("{}?user_code={}", code.verification_uri, code.user_code);
        std::thread::spawn(move || {
            let (status, _) = get(&url);
            assert_eq!(status, 200);
        });
    });
    let i = Interaction {
        prompt: Arc::new(mcp_oauth_client::prompt::NoPrompt),
        print_url: false,
        env: Arc::new(move |k: &str| (env_remote && k == "SSH_CONNECTION").then(|| "10.0.0.9 5000 10.0.0.5 22".to_owned())),
        on_device_code: Some(on_device_code),
        ..Interaction::default()
    };
    (i, shown)
}

fn device_login_when_configured(a: Adapter) {
    let s = server(|o| {
        o.device = true;
        o.device_interval = Some(1);
    });
    let (i, shown) = approving_person(false);
    let mut c = config(&s);
    c.login = LoginMethod::Device;
    let store = Arc::new(MemoryStore::new());
    let mut mcp = a.with_oauth(c.clone(), store.clone(), i).unwrap();
    assert!(!mcp.list_tools().unwrap().is_empty());
    assert_eq!(shown.lock().unwrap().len(), 1, "the code was shown once");
    assert!(s.lock().authorization_requests().is_empty(), "no browser");
    let held = store.describe(&c.store_key()).unwrap();
    assert!(held.tokens.is_some_and(|t| t.refresh_token));
}

fn a_remote_session_uses_the_device_grant_by_itself(a: Adapter) {
    let s = server(|o| {
        o.device = true;
        o.device_interval = Some(1);
    });
    let (i, shown) = approving_person(true);
    let mut mcp = a.with_oauth(config(&s), Arc::new(MemoryStore::new()), i).unwrap();
    assert!(!mcp.list_tools().unwrap().is_empty());
    assert_eq!(shown.lock().unwrap().len(), 1);
    assert!(s.lock().authorization_requests().is_empty());
}

fn a_service_never_starts_a_device_login(a: Adapter) {
    let s = server(|o| o.device = true);
    let mut c = config(&s);
    c.login = LoginMethod::Device;
    let mut mcp = a.with_oauth(c, Arc::new(MemoryStore::new()), Interaction::non_interactive()).unwrap();
    let e = mcp.list_tools().unwrap_err();
    assert!(e.to_string().contains("interactive login required"), "{e}");
    assert_eq!(s.lock().count("/device_authorization"), 0, "no code is asked for when nobody can enter it");
}

on_every_adapter!(device_login_when_configured, a_remote_session_uses_the_device_grant_by_itself, a_service_never_starts_a_device_login);
