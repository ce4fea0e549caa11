//! Review helper: the OLD client (7c48282) logs in once against a running test server and
//! leaves its FileStore behind. Args: <mcp_url> <store_dir> <client_id or -> <client_secret or -> <flow>
use mcp_oauth_client::blocking::OAuthClient;
use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::{Config, FileStore};
use std::sync::Arc;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mut c = Config::new(a[1].parse().unwrap());
    if a[3] != "-" {
        c.client_id = Some(a[3].clone());
    }
    if a[4] != "-" {
        c.client_secret = Some(mcp_oauth_client::core::secret::ClientSecret::new(a[4].clone()));
    }
    c.flow = match a[5].as_str() {
        "authorization_code" => mcp_oauth_client::core::Flow::AuthorizationCode,
        "client_credentials" => mcp_oauth_client::core::Flow::ClientCredentials,
        _ => mcp_oauth_client::core::Flow::Auto,
    };
    let mut i = Interaction::with_hook(|url: &url::Url| {
        let url = url.clone();
        std::thread::spawn(move || {
            let loc = mcp_oauth_tests::browser::approve(url.as_str()).unwrap();
            let _ = mcp_oauth_tests::browser::get(&loc);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    let store = Arc::new(FileStore::new(&a[2]));
    let mut o = OAuthClient::new(c, store, i).unwrap();
    let h = o.authorization().unwrap();
    println!("OLD-OK {}", if h.secret().starts_with("Bearer") { "bearer" } else { "other" });
}
