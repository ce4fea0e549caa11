//! Shared helpers for the end-to-end tests: the independent test server over TCP, and a
//! "browser" that follows the authorization URL with plain HTTP GETs.
#![allow(dead_code)]

pub mod driver;
#[allow(unused_imports)]
pub use driver::{Adapter, Mcp};

use mcp_oauth_client::interaction::{Interaction, UrlHandled};
use mcp_oauth_client::prompt::Prompt;
use mcp_oauth_client::Config;
use mcp_oauth_tests::tcp::TcpTestServer;
use mcp_oauth_tests::Options;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

pub fn server(configure: impl FnOnce(&mut Options)) -> TcpTestServer {
    TcpTestServer::start(|origin| {
        let mut o = Options::new(origin);
        configure(&mut o);
        o
    })
    .expect("start test server")
}

pub fn config(s: &TcpTestServer) -> Config {
    let mut c = Config::new(s.mcp_url().parse().unwrap());
    c.callback_timeout = Duration::from_secs(20);
    c
}

/// GETs the authorization URL and returns the redirect `Location` (the server auto-approves).
pub fn approve(url: &Url) -> String {
    mcp_oauth_tests::browser::approve(url.as_str()).expect("authorize")
}

/// GETs a URL, returning status and body.
pub fn get(url: &str) -> (u16, String) {
    let page = mcp_oauth_tests::browser::get(url).expect("get");
    (page.status, page.body)
}

/// What the simulated browser saw.
#[derive(Default, Debug, Clone)]
pub struct BrowserLog {
    pub opened: Vec<String>,
    pub pages: Vec<(u16, String)>,
}

/// A hook that plays the browser on its own thread: follows the authorization URL to the
/// server, then the redirect to our loopback listener, and records the page it got.
pub fn following_browser() -> (Interaction, Arc<Mutex<BrowserLog>>) {
    let log = Arc::new(Mutex::new(BrowserLog::default()));
    let l = log.clone();
    let mut i = Interaction::with_hook(move |url: &Url| {
        let (url, l) = (url.clone(), l.clone());
        l.lock().unwrap().opened.push(url.to_string());
        std::thread::spawn(move || {
            let loc = approve(&url);
            let page = get(&loc);
            l.lock().unwrap().pages.push(page);
        });
        UrlHandled::Opened
    });
    i.print_url = false;
    i.prompt = Arc::new(mcp_oauth_client::prompt::NoPrompt);
    (i, log)
}

/// A prompt that "pastes" by visiting the authorization URL itself and returning the redirect.
pub struct PastingPrompt {
    pub used: Arc<Mutex<usize>>,
}

impl Prompt for PastingPrompt {
    fn read_redirect(&self, url: &Url, _: &AtomicBool) -> Option<String> {
        *self.used.lock().unwrap() += 1;
        Some(approve(url))
    }
}

/// An interaction with no browser (headless) and a pasting prompt.
pub fn pasting(hook: Option<mcp_oauth_client::interaction::AuthorizationUrlHook>) -> (Interaction, Arc<Mutex<usize>>) {
    let used = Arc::new(Mutex::new(0));
    let i = Interaction {
        on_authorization_url: hook,
        prompt: Arc::new(PastingPrompt { used: used.clone() }),
        print_url: false,
        paste_while_listening: false,
        env: Arc::new(|k: &str| (k == "CI").then(|| "true".to_owned())),
        interactive: true,
        on_device_code: None,
        remote_session: None,
    };
    (i, used)
}
