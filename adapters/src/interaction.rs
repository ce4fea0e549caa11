//! What happens with the authorization URL: the `on_authorization_url` hook, the browser, the
//! paste prompt. The defaults print the URL, open the system browser unless the session is
//! headless, and offer a paste prompt when a terminal is attached.

use crate::prompt::{NoPrompt, Prompt, StdinPrompt};
use mcp_oauth_core::device::DeviceCode;
use std::sync::Arc;
use url::Url;

/// What the hook did with the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlHandled {
    /// Someone will visit it (browser opened, URL sent to a UI...): keep listening.
    Opened,
    /// Nobody will: fall back to a pasted redirect.
    NotOpened(String),
}

/// A replacement for "open the browser": print it, send it to a UI, drive a test browser.
pub type AuthorizationUrlHook = Arc<dyn Fn(&Url) -> UrlHandled + Send + Sync>;

/// Shows a device login's code (RFC 8628) to the person: a UI, a QR code, a chat message.
pub type DeviceCodeHook = Arc<dyn Fn(&DeviceCode) + Send + Sync>;

/// An environment lookup (`std::env::var` by default; tests replace it).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How the user is reached.
#[derive(Clone)]
pub struct Interaction {
    /// Replaces opening the browser. `None`: the system browser, unless headless. It runs inside
    /// the flow (on the blocking pool in the async adapter) and should return soon; it must not
    /// ask the same client for a token, which is busy with this very flow and would wait forever.
    pub on_authorization_url: Option<AuthorizationUrlHook>,
    /// Where a pasted redirect comes from.
    pub prompt: Arc<dyn Prompt>,
    /// Print the authorization URL to standard error (always true by default: the library
    /// never hides the URL).
    pub print_url: bool,
    /// Ask for a paste while still listening (SSH users can paste at once).
    pub paste_while_listening: bool,
    /// Environment lookup, for headless detection.
    pub env: EnvLookup,
    /// False for services: never start a login that needs a person.
    pub interactive: bool,
    /// Replaces printing a device login's code and URL to standard error (RFC 8628).
    pub on_device_code: Option<DeviceCodeHook>,
    /// Whether the session is remote (see [`is_remote_session`](Self::is_remote_session));
    /// `None` detects it.
    pub remote_session: Option<bool>,
}

impl std::fmt::Debug for Interaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interaction")
            .field("hook", &self.on_authorization_url.is_some())
            .field("prompt_available", &self.prompt.available())
            .field("print_url", &self.print_url)
            .finish_non_exhaustive()
    }
}

impl Default for Interaction {
    fn default() -> Self {
        Interaction {
            on_authorization_url: None,
            prompt: Arc::new(StdinPrompt),
            print_url: true,
            paste_while_listening: true,
            env: Arc::new(crate::browser::process_env),
            interactive: true,
            on_device_code: None,
            remote_session: None,
        }
    }
}

impl Interaction {
    /// For services: no browser, no prompt. A flow that needs a person fails with
    /// `InteractionRequired` instead of waiting.
    pub fn non_interactive() -> Self {
        Interaction {
            on_authorization_url: None,
            prompt: Arc::new(NoPrompt),
            print_url: false,
            paste_while_listening: false,
            env: Arc::new(crate::browser::process_env),
            interactive: false,
            on_device_code: None,
            remote_session: None,
        }
    }

    /// With a hook instead of the browser.
    pub fn with_hook(hook: impl Fn(&Url) -> UrlHandled + Send + Sync + 'static) -> Self {
        Interaction { on_authorization_url: Some(Arc::new(hook)), ..Default::default() }
    }

    /// True if anybody can complete a login: a hook, a browser, or a prompt.
    pub fn can_interact(&self) -> bool {
        self.interactive && (self.on_authorization_url.is_some() || !crate::browser::is_headless(&*self.env) || self.prompt.available())
    }

    /// True if the session is remote or headless, nothing else reaches the person, and a person
    /// can be shown a device code: [`remote_session`](Self::remote_session) if set, else no
    /// `on_authorization_url` hook, no display (SSH, a container), and an `on_device_code` hook
    /// or a terminal to show the code on (a CI job has neither: it gets no device login it
    /// would wait on for nothing). A login there uses the device grant when the authorization
    /// server offers it (`"interaction": "auto"`).
    pub fn is_remote_session(&self) -> bool {
        self.interactive
            && self.remote_session.unwrap_or_else(|| {
                self.on_authorization_url.is_none()
                    && crate::browser::is_headless(&*self.env)
                    && (self.on_device_code.is_some() || self.prompt.available())
            })
    }

    /// Shows a device login's code: the hook, or standard error.
    pub fn show_device_code(&self, code: &DeviceCode) {
        if let Some(h) = &self.on_device_code {
            return h(code);
        }
        eprintln!(
            "To sign in to {} (at {}), open this page on any device:\n\n  {}\n\nand enter the code:  {}\n",
            crate::safe_url(code.server.as_str()),
            crate::safe_url(&code.issuer),
            code.verification_uri,
            code.user_code
        );
        if let Some(complete) = &code.verification_uri_complete {
            eprintln!("(or open {complete}, which has the code filled in)\n");
        }
        eprintln!("Waiting for the sign-in…");
    }

    /// Runs the hook, or prints and opens the browser.
    pub fn handle_url(&self, url: &Url) -> UrlHandled {
        if self.print_url {
            eprintln!("Authorize this application by visiting:\n\n  {url}\n");
        }
        if let Some(h) = &self.on_authorization_url {
            return h(url);
        }
        if crate::browser::is_headless(&*self.env) {
            if let Some(forward) = crate::browser::ssh_port_forward(url, &*self.env) {
                eprintln!("This is an SSH session: to let your own browser reach this program, run on your computer\n\n  {forward}\n\nthen open the URL there.\n");
            }
            return UrlHandled::NotOpened("headless session: no display, SSH or CI".into());
        }
        match crate::browser::open(url) {
            Ok(()) => UrlHandled::Opened,
            Err(e) => UrlHandled::NotOpened(e),
        }
    }
}
