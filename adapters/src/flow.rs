//! The adapter's side of one flow, shared by every runtime.
//!
//! Core decides everything about OAuth; what is left for an adapter is how to reach the user:
//! when a prompt starts, whether a failed browser means "paste now" or "nobody can log in", what
//! a closed prompt means while the listener still runs. Those choices live here, once, and the
//! blocking and async loops only do the I/O each [`Step`] names and report back.

use crate::error::Error;
use crate::interaction::{Interaction, UrlHandled};
use mcp_oauth_core::callback::response_page;
use mcp_oauth_core::http::OutgoingRequest;
use mcp_oauth_core::{Authorization, Authorizer, CallbackSetup, CancelReason, Config, Entropy, Input, Output, Persist, RedirectPlan};
use mcp_oauth_core::{RedirectSource, Restored, StateName, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use url::Url;

/// The I/O one loop iteration must do.
pub(crate) enum Step {
    /// Send it; feed the answer as [`Input::Response`].
    Send(OutgoingRequest),
    /// Gather entropy and, for `Some`, bind the listener; then [`Flow::prepared`].
    Prepare(Option<RedirectPlan>),
    /// Give the URL to the interaction ([`Interaction::handle_url`]); then [`Flow::url_handled`].
    OpenUrl(Url),
    /// Start the paste prompt for this authorization URL; its answer is an [`Event`].
    StartPrompt(Url),
    /// Write this page to the connection that delivered the callback; stop the listener and
    /// cancel the prompt.
    Answer(Vec<u8>),
    /// Write this page to the connection that delivered the callback (a forged one); keep
    /// listening and prompting.
    Reject(Vec<u8>),
    /// Save it before going on.
    Persist(Persist),
    /// Wait for an [`Event`] until this time, then report [`Event::Timeout`].
    Wait(Timestamp),
    /// The flow's result.
    Ready(Authorization),
}

/// What happened while waiting.
pub(crate) enum Event {
    /// The listener received the redirect.
    Callback(String),
    /// The user pasted a redirect URL.
    Paste(String),
    /// The prompt ended without an answer.
    PromptClosed,
    /// The wait's deadline passed.
    Timeout(Timestamp),
}

/// One flow's interaction state.
#[derive(Default)]
pub(crate) struct Flow {
    listening: bool,
    prompting: bool,
    pending_prompt: Option<Url>,
}

impl Flow {
    /// The next I/O to do, after handling everything that needs none.
    pub(crate) fn next(&mut self, auth: &mut Authorizer, interaction: &Interaction, now: Timestamp) -> Result<Step, Error> {
        if let Some(url) = self.pending_prompt.take() {
            return Ok(Step::StartPrompt(url));
        }
        loop {
            let input = match auth.poll_output() {
                Output::Send(req) => return Ok(Step::Send(req)),
                Output::PrepareAttempt(plan) => match plan.redirect {
                    Some(_) if !interaction.can_interact() => Input::Cancel { now, reason: CancelReason::NoInteraction },
                    redirect => return Ok(Step::Prepare(redirect)),
                },
                Output::OpenAuthorizationUrl { url, .. } => return Ok(Step::OpenUrl(url)),
                Output::PromptForRedirect { url } => {
                    if !self.prompting && interaction.prompt.available() {
                        self.prompting = true;
                        return Ok(Step::StartPrompt(url));
                    } else if !self.prompting && !self.listening {
                        // Nobody can paste and nothing listens: no login can finish.
                        Input::Cancel { now, reason: CancelReason::NoInteraction }
                    } else {
                        continue;
                    }
                }
                Output::AnswerCallback(outcome) => {
                    self.listening = false;
                    self.prompting = false;
                    return Ok(Step::Answer(response_page(&outcome)));
                }
                Output::RejectCallback(outcome) => return Ok(Step::Reject(response_page(&outcome))),
                Output::Persist(p) => return Ok(Step::Persist(p)),
                Output::Wait { until: Some(t) } => return Ok(Step::Wait(t)),
                Output::Wait { until: None } => return Err(Error::Stalled),
                Output::Ready(a) => return Ok(Step::Ready(a)),
                Output::Failed(e) => return Err(e.into()),
                _ => continue,
            };
            auth.handle_input(input)?;
        }
    }

    /// Reports a [`Step::Prepare`]: the entropy and what came of binding.
    pub(crate) fn prepared(
        &mut self,
        auth: &mut Authorizer,
        now: Timestamp,
        entropy: Entropy,
        callback: CallbackSetup,
    ) -> Result<(), Error> {
        self.listening = matches!(callback, CallbackSetup::Listening(_));
        auth.handle_input(Input::AttemptPrepared { now, entropy, callback })?;
        Ok(())
    }

    /// Reports a [`Step::OpenUrl`].
    pub(crate) fn url_handled(
        &mut self,
        auth: &mut Authorizer,
        interaction: &Interaction,
        now: Timestamp,
        url: Url,
        handled: UrlHandled,
    ) -> Result<(), Error> {
        match handled {
            UrlHandled::Opened => {
                if interaction.paste_while_listening && !self.prompting && interaction.prompt.available() {
                    self.prompting = true;
                    self.pending_prompt = Some(url);
                }
            }
            // With a listener, core falls back to a paste; without one it already asked.
            UrlHandled::NotOpened(reason) if self.listening => auth.handle_input(Input::CallbackUnavailable { now, reason })?,
            UrlHandled::NotOpened(_) => {}
        }
        Ok(())
    }

    /// Reports what ended a [`Step::Wait`].
    pub(crate) fn event(&mut self, auth: &mut Authorizer, now: Timestamp, event: Event) -> Result<(), Error> {
        let input = match event {
            Event::Callback(url) => Input::Redirect { now, url, source: RedirectSource::Loopback },
            Event::Paste(url) => Input::Redirect { now, url, source: RedirectSource::Paste },
            Event::PromptClosed => {
                self.prompting = false;
                if self.listening {
                    return Ok(());
                }
                Input::Cancel { now, reason: CancelReason::NoInteraction }
            }
            Event::Timeout(until) => Input::Timeout { now: now.max(until) },
        };
        auth.handle_input(input)?;
        Ok(())
    }
}

/// Ends a flow the adapter could not finish (a store or entropy failure, a future dropped
/// mid-flow, a panicking hook): core is told the user gave up and is drained, so the next
/// request starts a new flow instead of meeting a usage error. A no-op between flows.
pub(crate) fn abandon(auth: &mut Authorizer, now: Timestamp) {
    if matches!(auth.state(), StateName::Idle | StateName::Failed) {
        return;
    }
    if auth.handle_input(Input::Cancel { now, reason: CancelReason::User }).is_err() {
        return;
    }
    for _ in 0..64 {
        if matches!(auth.poll_output(), Output::Failed(_) | Output::Ready(_) | Output::Wait { .. }) {
            break;
        }
    }
}

/// The text for a failed bind, as core's [`CallbackSetup::Unavailable`] wants it.
pub(crate) fn bind_failed(plan: &RedirectPlan, e: &std::io::Error) -> CallbackSetup {
    CallbackSetup::Unavailable(format!("cannot listen on {}:{}: {e}", plan.host, plan.port))
}

/// Logs (at debug) why stored tokens are not used by this configuration, if they are not.
pub(crate) fn note_foreign_tokens(config: &Config, restored: &Restored) {
    if let Some(t) = &restored.tokens {
        if let Err(why) = config.accepts_tokens(t, &restored.clients) {
            log::debug!("mcp-oauth: stored tokens for {} are not used: {why}", config.server_url);
        }
    }
}

/// True if the store holds other tokens than the machine (another instance refreshed or logged
/// in meanwhile): the machine must be rebuilt from the store.
pub(crate) fn store_changed(auth: &Authorizer, restored: &Restored) -> bool {
    let held = auth.token_set().map(|t| t.access_token.secret());
    let stored = restored.tokens.as_ref().map(|t| t.access_token.secret());
    held != stored
}

/// True if `restored` holds a fresh token of this configuration other than the one the server
/// rejected (`None`: the request carried no token): someone already replaced it or logged in,
/// so use that instead of authorizing again.
pub(crate) fn replaced_since(config: &Config, rejected: Option<&str>, restored: &Restored, now: Timestamp) -> bool {
    match &restored.tokens {
        Some(t) => {
            rejected != Some(t.access_token.secret())
                && t.is_fresh(now, config.refresh_skew)
                && config.accepts_tokens(t, &restored.clients).is_ok()
        }
        None => false,
    }
}

/// Item 14: the token of one MCP server goes only to that server's origin.
pub(crate) fn check_origin(config: &Config, req: &::http::Request<Vec<u8>>) -> Result<(), Error> {
    let url = Url::parse(&req.uri().to_string()).ok();
    if url.as_ref().is_some_and(|u| u.origin() == config.server_url.origin()) {
        return Ok(());
    }
    let shown = req.uri().to_string();
    Err(Error::ForeignOrigin {
        url: shown.split('?').next().unwrap_or("").to_owned(),
        server: config.server_url.origin().ascii_serialization(),
    })
}

/// Sets `Authorization` (and, for DPoP-bound tokens, a fresh `DPoP` proof) on a request.
pub(crate) fn attach(req: &mut ::http::Request<Vec<u8>>, authorization: &Authorization, now: Timestamp) {
    req.headers_mut().insert(::http::header::AUTHORIZATION, authorization.header_value());
    if let Ok(url) = Url::parse(&req.uri().to_string()) {
        let mut salt = [0u8; 16];
        let _ = getrandom::fill(&mut salt);
        if let Some(proof) = authorization.dpop_proof(req.method().as_str(), &url, now, &salt) {
            req.headers_mut().insert("DPoP", proof);
        }
    }
}

/// The cancel flag of the running paste prompt, raised when the flow no longer needs it (and
/// when the flow ends: on drop).
#[derive(Default)]
pub(crate) struct PromptSwitch(Option<Arc<AtomicBool>>);

impl PromptSwitch {
    /// A fresh flag for a prompt about to start.
    pub(crate) fn arm(&mut self) -> Arc<AtomicBool> {
        self.stop();
        let flag = Arc::new(AtomicBool::new(false));
        self.0 = Some(flag.clone());
        flag
    }

    /// Cancels the running prompt, if any.
    pub(crate) fn stop(&mut self) {
        if let Some(c) = self.0.take() {
            c.store(true, Ordering::Relaxed);
        }
    }

    /// The prompt ended by itself.
    pub(crate) fn ended(&mut self) {
        self.0 = None;
    }
}

impl Drop for PromptSwitch {
    fn drop(&mut self) {
        self.stop();
    }
}
