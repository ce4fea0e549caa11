//! Review of the device grant: `auto` takes it where nobody can see the code.

mod common;
use common::*;
use mcp_oauth_client::interaction::Interaction;
use mcp_oauth_client::MemoryStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An application's default interaction in a CI job: `CI=true`, no display, no terminal (no
/// prompt), no hooks. Nobody can complete a login there.
fn ci_job() -> Interaction {
    Interaction {
        prompt: Arc::new(mcp_oauth_client::prompt::NoPrompt),
        print_url: false,
        env: Arc::new(|k: &str| (k == "CI").then(|| "true".to_owned())),
        ..Interaction::default()
    }
}

/// Before the device grant, such a login failed at once with "interactive login required"
/// (`can_interact()` is false: headless, no hook, no prompt). Where the authorization server
/// lists a device_authorization_endpoint, `is_remote_session()` is true in CI (no terminal
/// needed), so a device login starts: a code goes to a stderr nobody reads (a CI log), and the
/// job blocks polling until the code expires (up to 30 minutes), then fails as "the person's"
/// (DeviceCodeExpired, Blame::User) instead of InteractionRequired.
#[test]
fn review_a_ci_job_with_nobody_to_show_the_code_to_starts_no_device_login() {
    // The control: no device grant offered → fails at once, nobody asked.
    let s = server(|_| {});
    let mut mcp = Adapter::Blocking.with_oauth(config(&s), Arc::new(MemoryStore::new()), ci_job()).unwrap();
    let e = mcp.list_tools().unwrap_err();
    assert!(e.to_string().contains("interactive login required"), "control: {e}");

    // The same job where the authorization server offers the device grant.
    let s = server(|o| {
        o.device = true;
        o.device_interval = Some(1);
        o.device_expires_in = 4;
    });
    let started = Instant::now();
    let mut mcp = Adapter::Blocking.with_oauth(config(&s), Arc::new(MemoryStore::new()), ci_job()).unwrap();
    let e = mcp.list_tools().unwrap_err();
    let took = started.elapsed();
    let asked = s.lock().count("/device_authorization");
    let polls = s.lock().count("/token");
    assert!(
        e.to_string().contains("interactive login required") && asked == 0,
        "a device login nobody can see: {asked} code(s) asked for, {polls} polls, blocked {took:?}, then: {e}"
    );
    assert!(took < Duration::from_secs(2));
}
