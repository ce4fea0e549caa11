//! What both demos share: the simulated browser and the printed server log.
#![allow(dead_code)]

use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_tests::tcp::TcpTestServer;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().max_redirects(0).max_redirects_will_error(false).http_status_as_error(false).build().into()
}

/// The simulated browser: GET the authorization URL, then follow the redirect to the loopback.
pub fn simulated_browser() -> Interaction {
    let mut i = Interaction::with_hook(|url: &url::Url| {
        let url = url.clone();
        std::thread::spawn(move || {
            let resp = agent().get(url.as_str()).call().expect("authorization endpoint");
            let loc = resp.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or("").to_owned();
            println!(
                "   browser: {} -> {} redirect to {}?…",
                url.as_str().split('?').next().unwrap_or(""),
                resp.status(),
                loc.split('?').next().unwrap_or("")
            );
            let mut page = agent().get(&loc).call().expect("loopback callback");
            let text = page.body_mut().read_to_string().unwrap_or_default();
            let title = text.split("<h1").nth(1).and_then(|h| h.split('>').nth(1)).and_then(|h| h.split('<').next()).unwrap_or("");
            println!("   browser: loopback page {} \"{title}\"", page.status());
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i
}

pub fn print_log(server: &TcpTestServer, from: &mut usize) {
    let s = server.lock();
    for r in &s.log[*from..] {
        let target = r.target.split('?').next().unwrap_or("");
        let what = match target {
            "/mcp" => "mcp",
            t if t.contains(".well-known") => "discovery",
            t if t.ends_with("/register") => "registration",
            t if t.ends_with("/authorize") => "authorization (browser)",
            t if t.ends_with("/token") => r.params.iter().find(|(k, _)| k == "grant_type").map(|(_, v)| v.as_str()).unwrap_or("token"),
            _ => "",
        };
        let auth = if r.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer")) { " [Bearer]" } else { "" };
        println!("   server saw: {} {target} -> {} ({what}){auth}", r.method, r.status);
    }
    *from = s.log.len();
}
