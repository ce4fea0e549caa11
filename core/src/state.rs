//! Every state transition of the [`Authorizer`] lives in this file (h11's "Rule 1"): each
//! input's handler takes the state out and returns the move it made (`machine`, where the
//! state's phase is private). What to ask for (which scope, client, resource) is `policy.rs`'s
//! to answer; the request bodies are `token.rs`'s.

mod machine;

pub(crate) use machine::State;
use machine::{Moved, Phase, Preparing};

use crate::authorize::{authorization_url, check_redirect, parse_redirect, AuthorizationRequest, RedirectExpectations};
use crate::authorizer::{Authorizer, CallbackSetup, CancelReason, Input, Output, Persist, RedirectSource};
use crate::callback::Outcome;
use crate::context::ServerContext;
use crate::discovery;
use crate::entropy::Entropy;
use crate::error::*;
use crate::http::{is_secure_endpoint, HttpRequest, HttpResponse, OutgoingRequest, Purpose, RequestId, TransportFailure};
use crate::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use crate::pkce::{verifier_from_bytes, PkceChallenge};
use crate::policy::{self, ChosenFlow};
use crate::registration::{parse_registration_response, registration_request, ClientInfo, ClientKind, ClientMetadata};
use crate::revocation::{revocation_outcome, revocation_request, IfUnreachable, LogoutReport, Revocation, TokenHint as RevokeHint};
use crate::secret::{CsrfState, PkceVerifier};
use crate::time::Timestamp;
use crate::token::{AuthMethod, ClientAuth, Grant, GrantKind, TokenResponse, TokenSet};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use url::Url;

/// One authorization-code attempt: everything recorded before the browser opens.
struct Attempt {
    verifier: PkceVerifier,
    state: CsrfState,
    redirect_uri: Url,
    client: Option<ClientInfo>,
    scope: Option<String>,
    resource: Option<String>,
    issuer: String,
    /// The issuer recorded for the `iss` check, when there is a baseline.
    expected_iss: Option<String>,
    iss_supported: bool,
    url: Option<Url>,
    /// `client` was registered for this attempt (and is not on file yet).
    registered: bool,
    /// The `jti` of the code exchange's client assertion (`private_key_jwt`), from this
    /// attempt's entropy.
    jti: [u8; 16],
}

/// A refusal of a grant made without a person (client credentials, a JWT bearer assertion, the
/// token exchange before it) is for the configuration or the platform to fix: nobody can log
/// in again for a service.
fn machine_refusal(e: Error, grant: Option<crate::token::GrantKind>) -> Error {
    match (e, grant) {
        (Error::Token(TokenError::Rejected(error)), Some(grant)) => TokenError::MachineGrantRefused { grant, error }.into(),
        (e, _) => e,
    }
}

/// A failed exchange; an adapter that stopped reading at the cap reports the same typed
/// `BodyTooLarge` as a body core measured itself.
fn transport_error(purpose: Purpose, t: TransportFailure) -> Error {
    let error = match t.kind {
        crate::http::TransportFailureKind::BodyTooLarge => HttpError::BodyTooLarge { limit: purpose.max_response_bytes() },
        _ => HttpError::Transport(t),
    };
    Error::Http { purpose, error }
}

fn failed<T>(e: impl Into<Error>) -> Result<T, Error> {
    Err(e.into())
}

impl Authorizer {
    /// The authorization server in use; every caller runs after discovery.
    fn ctx(&self) -> Result<ServerContext, Error> {
        self.server.clone().ok_or(Error::Bug("no authorization server in use after discovery"))
    }

    fn unexpected(&self, input: &Input) -> Error {
        UsageError::UnexpectedInput { input: input.name(), state: self.state.name() }.into()
    }

    /// Entry point for every input.
    pub(crate) fn handle(&mut self, input: Input) -> Result<(), Error> {
        self.check(&input)?;
        // Time only moves forward.
        self.now = self.now.max(input.now());
        let from = self.state.take();
        let cancelled = matches!(input, Input::Cancel { .. });
        if let Err(e) = self.step(from, input) {
            match self.request.logout.is_some() && !cancelled {
                // A logout forgets the tokens even when their authorization server cannot be
                // found or reached: the report says why they were not revoked.
                true => {
                    let why = if e.is_retryable() { Revocation::Unavailable(e.to_string()) } else { Revocation::NotSent(e.to_string()) };
                    let _ = self.logged_out(Some(why));
                }
                false => {
                    self.request.logout = None;
                    self.fail(e);
                }
            }
        }
        debug_assert!(self.state.settled());
        Ok(())
    }

    /// Validates an input before anything changes: a usage error changes nothing.
    fn check(&self, input: &Input) -> Result<(), Error> {
        let phase = self.state.phase();
        let idle = matches!(phase, Phase::Idle | Phase::Failed);
        match input {
            Input::TokenWanted { .. } | Input::Challenged { .. } | Input::LogoutWanted { .. } if !idle => Err(self.unexpected(input)),
            Input::Response { id, .. } if phase.outstanding() != Some(*id) => Err(UsageError::UnknownRequest(*id).into()),
            Input::AttemptPrepared { callback, .. } => match (phase, callback) {
                // The listener must be the one the plan asked for: checked here, before the
                // clock or the DPoP key (made from this input's entropy) change.
                (Phase::AwaitingPreparation(Preparing::Login(plan)), CallbackSetup::Listening(uri)) if !plan.accepts(uri) => {
                    Err(UsageError::BadRedirectUri { uri: uri.clone() }.into())
                }
                (Phase::AwaitingPreparation(_), _) => Ok(()),
                _ => Err(self.unexpected(input)),
            },
            Input::Redirect { .. } | Input::CallbackUnavailable { .. } if !matches!(phase, Phase::AwaitingRedirect { .. }) => {
                Err(self.unexpected(input))
            }
            Input::Cancel { .. } if idle => Err(self.unexpected(input)),
            _ => Ok(()),
        }
    }

    /// Handles a checked input in the phase taken out of the state; returns the move made.
    fn step(&mut self, from: Phase, input: Input) -> Result<Moved, Error> {
        match (input, from) {
            (Input::TokenWanted { .. }, _) => self.on_token_wanted(),
            (Input::LogoutWanted { if_unreachable, .. }, _) => self.on_logout_wanted(if_unreachable),
            (Input::Challenged { status, www_authenticate, dpop_nonce, .. }, from) => {
                self.on_challenged(matches!(from, Phase::Failed), status, &www_authenticate, dpop_nonce)
            }
            (Input::Response { result, .. }, from) => match self.dpop_nonce_retry(&from, &result) {
                Some(id) => Ok(self.state.stay(from.with_request(id))),
                None => {
                    let machine = from.machine_grant();
                    self.on_response(from, result).map_err(|e| machine_refusal(e, machine))
                }
            },
            (Input::AttemptPrepared { entropy, callback, .. }, Phase::AwaitingPreparation(preparing)) => {
                self.on_prepared(preparing, entropy, callback)
            }
            (Input::CallbackUnavailable { .. }, Phase::AwaitingRedirect { attempt, deadline, listening }) => {
                Ok(self.on_callback_unavailable(attempt, deadline, listening))
            }
            (Input::Redirect { url, source, .. }, Phase::AwaitingRedirect { attempt, deadline, listening }) => {
                self.on_redirect(&url, source, attempt, deadline, listening)
            }
            (Input::Timeout { .. }, Phase::AwaitingRedirect { attempt, deadline, listening }) => {
                self.on_timeout(attempt, deadline, listening)
            }
            (Input::Timeout { .. }, Phase::AwaitingDevice { login }) => self.on_device_timeout(login),
            (Input::Cancel { reason, .. }, _) => failed(match reason {
                CancelReason::User => AuthorizationError::Cancelled,
                CancelReason::NoInteraction => AuthorizationError::InteractionRequired,
            }),
            // A late timer: nothing waits on it. (`check` let no other input through here.)
            (_, from) => Ok(self.state.stay(from)),
        }
    }

    fn fail(&mut self, e: Error) {
        self.state.move_to_failed();
        self.queue.push_back(Output::Failed(e));
    }

    fn ready(&mut self) -> Moved {
        if let Some(t) = &self.tokens {
            self.queue.push_back(Output::Ready(t.authorization_with(self.dpop.key.as_ref(), self.dpop.rs_nonce.clone())));
        }
        self.state.move_to_idle()
    }

    fn send(&mut self, purpose: Purpose, request: HttpRequest) -> RequestId {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.queue.push_back(Output::Send(OutgoingRequest { id, purpose, request, max_response_bytes: purpose.max_response_bytes() }));
        id
    }

    fn get(&mut self, purpose: Purpose, url: &Url) -> RequestId {
        let req = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header("MCP-Protocol-Version", self.config.protocol_version.as_str())
            .body(Vec::new())
            .unwrap_or_else(|_| http::Request::new(Vec::new()));
        self.send(purpose, req)
    }

    /// True if a DPoP key must be made (from entropy) before the next token request.
    fn needs_dpop_key(&self) -> bool {
        policy::dpop_wanted(self.config.dpop, self.metadata()) && self.dpop.key.is_none()
    }

    fn metadata(&self) -> Option<&AuthorizationServerMetadata> {
        self.server.as_ref().and_then(|s| s.metadata.as_ref())
    }

    /// Sends a token endpoint request, with a DPoP proof when a key is in use.
    fn send_token(&mut self, purpose: Purpose, req: HttpRequest) -> RequestId {
        let req = self.dpop.token_request(purpose, req, self.now);
        self.send(purpose, req)
    }

    /// RFC 9449 §8: a `use_dpop_nonce` answer of the token endpoint is sent again once, with
    /// the nonce ([`DpopContext::nonce_retry`](crate::dpop::DpopContext::nonce_retry)): the id
    /// the phase waits for now, if resent.
    /// A client assertion in it is signed anew (RFC 7523 §3: a `jti` is never used twice).
    fn dpop_nonce_retry(&mut self, from: &Phase, result: &Result<HttpResponse, TransportFailure>) -> Option<RequestId> {
        let (purpose, mut proof) = self.dpop.nonce_retry(from.at_token_endpoint(), result, self.now)?;
        if let Some(key) = &self.signing_key {
            if let Some(body) = crate::jwt::with_fresh_assertion(proof.body(), key, self.config.key_id.as_deref(), self.now) {
                *proof.body_mut() = body;
            }
        }
        Some(self.send(purpose, proof))
    }

    // ---- Logout (RFC 7009) ----------------------------------------------------------------

    fn on_logout_wanted(&mut self, if_unreachable: IfUnreachable) -> Result<Moved, Error> {
        self.new_request();
        self.request.logout_if_unreachable = if_unreachable;
        let report = LogoutReport::new(self.tokens.as_ref());
        let issuer = report.issuer.clone();
        self.request.logout = Some(report);
        let Some(issuer) = issuer else { return Ok(self.logged_out(None)) };
        // The authorization server in use is the tokens' issuer: its metadata (or the
        // configured endpoints) name the revocation endpoint.
        if self.server.as_ref().is_some_and(|s| s.issuer == issuer) {
            return self.revoke_next(None, None);
        }
        if self.config.endpoints.is_some() {
            return self.start_discovery();
        }
        // Otherwise the issuer's own metadata (RFC 8414), not the MCP server's: a server that is
        // down (or gone, a common reason to log out) does not keep the grant alive, and nothing
        // goes to an authorization server that did not issue the tokens.
        self.start_server_metadata(vec![issuer], 0, false)
    }

    /// Revokes the next held token (the refresh token first), or ends the logout. `nonce` and
    /// `next_nonce`: entropy for the client assertions of this request and the one after.
    fn revoke_next(&mut self, nonce: Option<[u8; 16]>, next_nonce: Option<[u8; 16]>) -> Result<Moved, Error> {
        let Some(hint) = self.request.logout.as_ref().and_then(LogoutReport::next_pending) else { return Ok(self.logged_out(None)) };
        let Some(tokens) = self.tokens.clone() else { return Ok(self.logged_out(None)) };
        let endpoint = match policy::revocation_endpoint(&self.config, self.server.as_ref(), &tokens) {
            Ok(e) => e,
            Err(why) => return Ok(self.logged_out(Some(why))),
        };
        let Some(client) = policy::client_for_tokens(&self.config, &self.clients, &tokens)? else {
            return Ok(self.logged_out(Some(Revocation::NotSent("no registration of the client the tokens were issued to is held".into()))));
        };
        if self.auth_method_for(&client) == AuthMethod::PrivateKeyJwt && nonce.is_none() {
            let (plan, moved) = self.state.move_to_awaiting_preparation(Preparing::Revoke);
            self.queue.push_back(Output::PrepareAttempt(plan));
            return Ok(moved);
        }
        let token = match hint {
            RevokeHint::RefreshToken => tokens.refresh_token.as_ref().map(|t| t.secret().to_owned()),
            RevokeHint::AccessToken => Some(tokens.access_token.secret().to_owned()),
        };
        let Some(token) = token else { return Ok(self.logged_out(None)) };
        let auth = self.client_auth(&client, &tokens.issuer, nonce.as_ref(), true)?;
        let req = revocation_request(&endpoint, &token, hint, &auth);
        let req = self.send(Purpose::Revocation, req);
        Ok(self.state.move_to_revoking(req, hint, next_nonce))
    }

    fn on_revoked(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        hint: RevokeHint,
        nonce: Option<[u8; 16]>,
    ) -> Result<Moved, Error> {
        let outcome = revocation_outcome(&result);
        if let Some(report) = self.request.logout.as_mut() {
            *report.slot(hint) = outcome;
        }
        // The next request's assertion takes the second `jti`; none is left for a third.
        self.revoke_next(nonce, None)
    }

    /// Ends a logout: whatever is still pending is `outcome`; the tokens and every registration
    /// are forgotten (unless the server could not be reached and the logout keeps them), then
    /// [`Output::LoggedOut`].
    fn logged_out(&mut self, outcome: Option<Revocation>) -> Moved {
        let mut report = self.request.logout.take().unwrap_or_else(|| LogoutReport::new(self.tokens.as_ref()));
        if let Some(outcome) = outcome {
            report.settle_pending(outcome);
        }
        if report.unreachable() && self.request.logout_if_unreachable == IfUnreachable::Keep {
            report.forgotten = false;
            self.queue.push_back(Output::LoggedOut(report));
            return self.state.move_to_logged_out();
        }
        self.forget_tokens();
        for client in std::mem::take(&mut self.clients) {
            self.queue.push_back(Output::Persist(Persist::ForgetClient { issuer: client.issuer }));
        }
        self.dpop.key = None;
        self.queue.push_back(Output::LoggedOut(report));
        self.state.move_to_logged_out()
    }

    // ---- Starting a request -------------------------------------------------------------

    /// A new application request: a fresh attempt budget (the step-up union is kept).
    fn new_request(&mut self) {
        let requested = std::mem::take(&mut self.request.requested_scopes);
        self.request = Default::default();
        self.request.requested_scopes = requested;
    }

    fn on_token_wanted(&mut self) -> Result<Moved, Error> {
        self.new_request();
        if self.has_usable_token(self.now) {
            return Ok(self.ready());
        }
        if let Some(moved) = self.try_refresh()? {
            return Ok(moved);
        }
        self.new_token()
    }

    fn on_challenged(
        &mut self,
        after_failure: bool,
        status: u16,
        values: &[http::HeaderValue],
        dpop_nonce: Option<String>,
    ) -> Result<Moved, Error> {
        if after_failure {
            // The request the last flow served has ended (with that failure): this challenge
            // belongs to a new one. A lazy client sends its first request bare and feeds only
            // challenges, never `TokenWanted`.
            self.new_request();
        }
        // A malformed header is treated as no header: well-known discovery still works.
        let challenge = discovery::oauth_challenge(values.iter().map(|v| v.as_bytes())).ok().flatten();
        let error = challenge.as_ref().and_then(|c| c.error.as_ref());
        let (wants_nonce, insufficient) = (error == Some(&ErrorCode::UseDpopNonce), error == Some(&ErrorCode::InsufficientScope));
        match status {
            // Servers send `insufficient_scope` with 401 too (RFC 6750 says 403): no step-up
            // means no step-up either way.
            401 | 403 if insufficient && !self.config.step_up => {
                let c = challenge.unwrap_or_default();
                return failed(ResourceError::InsufficientScope {
                    scope: c.scope,
                    description: c.error_description,
                    resource_metadata: c.resource_metadata,
                    attempts: 0,
                });
            }
            401 => {}
            403 if insufficient => {}
            403 => return failed(ResourceError::Forbidden { description: challenge.and_then(|c| c.error_description) }),
            other => return failed(ResourceError::NotAChallenge(other)),
        }
        // Every challenge counts (a nonce retry and a refresh included): a request ends after
        // twice the attempt limit and two more, whatever the server does. New authorizations are
        // limited to the attempt limit itself (`authorization_budget`).
        self.request.challenges = self.request.challenges.saturating_add(1);
        if self.request.challenges > self.config.max_authorization_attempts.saturating_mul(2).saturating_add(2) {
            self.request.challenge = challenge;
            self.request.step_up = insufficient;
            return Err(self.out_of_attempts());
        }
        // RFC 9449 §9: the resource server wants a nonce in the proof. Same token, new proof,
        // once per request (item 8); a demand that cannot be met ends the request below.
        if status == 401
            && wants_nonce
            && self.dpop.key.is_some()
            && self.tokens.is_some()
            && dpop_nonce.is_some()
            && dpop_nonce != self.dpop.rs_nonce
            && !self.request.rs_nonce_retried
        {
            self.request.rs_nonce_retried = true;
            self.dpop.rs_nonce = dpop_nonce;
            return Ok(self.ready());
        }
        if status == 401 && wants_nonce {
            // The resource server keeps demanding nonces (or demands one of a bearer token): a
            // new token would not help.
            return failed(ResourceError::RejectedFreshToken { status });
        }
        if status == 401 && self.request.authorized {
            if self.request.logged_in {
                // A login that just produced a rejected token is not repeated for a while.
                self.login_rejected_at = self.tokens.as_ref().map(|t| (self.now, t.issuer.clone()));
            }
            return failed(ResourceError::RejectedFreshToken { status });
        }
        self.request.step_up = insufficient;
        self.request.rejected |= status == 401;
        self.request.refreshed_rejected |= status == 401 && self.request.refreshed_tokens;
        let other_metadata = challenge.as_ref().and_then(|c| c.resource_metadata.as_deref()).is_some_and(|u| !self.is_metadata_url(u));
        self.request.challenge = challenge;
        // Discovered metadata is kept for the life of the machine; a challenge naming other
        // metadata is followed (SPEC 95), and so is one that arrives before any discovery.
        if other_metadata || self.server.is_none() && insufficient {
            return self.start_discovery();
        }
        if insufficient {
            // Step-up: a new authorization with the union of scopes (a refresh cannot widen).
            return self.obtain_token();
        }
        // A rejected token: refresh it if possible (token + retry), else a new token.
        if let Some(moved) = self.try_refresh()? {
            return Ok(moved);
        }
        self.new_token()
    }

    /// The error that ends a request whose attempts are spent.
    fn out_of_attempts(&self) -> Error {
        let c = self.request.challenge.clone().unwrap_or_default();
        if self.request.step_up {
            ResourceError::InsufficientScope {
                scope: c.scope,
                description: c.error_description,
                resource_metadata: c.resource_metadata,
                attempts: self.request.authorizations,
            }
            .into()
        } else {
            ResourceError::RejectedFreshToken { status: 401 }.into()
        }
    }

    /// Counts a new authorization (a login or a machine grant) for this request, or fails when
    /// `max_authorization_attempts` were made already (SPEC 96).
    fn authorization_budget(&mut self) -> Result<(), Error> {
        if self.request.authorizations >= self.config.max_authorization_attempts {
            return Err(self.out_of_attempts());
        }
        self.request.authorizations += 1;
        self.authorizations = self.authorizations.saturating_add(1);
        Ok(())
    }

    /// The URL the protected resource metadata in use came from (kept with the tokens).
    fn metadata_url(&self) -> Option<&str> {
        self.prm_url.as_deref().or_else(|| self.tokens.as_ref().and_then(|t| t.resource_metadata.as_deref()))
    }

    /// True if `url` names the metadata in use, however it is spelled (host case, default port).
    fn is_metadata_url(&self, url: &str) -> bool {
        match (self.metadata_url().map(Url::parse), Url::parse(url)) {
            (Some(Ok(known)), Ok(named)) => known == named,
            _ => false,
        }
    }

    /// No usable token and no refresh: get a new one. Discovery runs first when nothing is known
    /// yet, or when the metadata in use may be stale and a new authorization is about to ask
    /// for it: after the server rejected a token (the authorization server may have moved), and
    /// before a browser login. Machine grants reuse the metadata in use when nothing was rejected.
    fn new_token(&mut self) -> Result<Moved, Error> {
        if self.server.is_none()
            || !self.request.discovered && (self.request.rejected || self.choose_flow() == ChosenFlow::AuthorizationCode)
        {
            return self.start_discovery();
        }
        self.obtain_token()
    }

    fn login_backed_off(&self) -> bool {
        let issuer = self.server.as_ref().map(|s| s.issuer.as_str());
        policy::login_backed_off(&self.request, self.login_rejected_at.as_ref(), issuer, self.now)
    }

    // ---- Discovery ----------------------------------------------------------------------

    fn start_discovery(&mut self) -> Result<Moved, Error> {
        if let Some(m) = self.config.endpoints.clone() {
            let parse = |field: &'static str, v: &str| Url::parse(v).map_err(|_| Error::from(DiscoveryError::InvalidUrl { field }));
            let token_endpoint = parse("token_endpoint", &m.token_endpoint)?;
            let ctx = ServerContext {
                issuer: m.issuer.clone().unwrap_or_else(|| discovery::origin_of(&token_endpoint)),
                metadata: None,
                authorization_endpoint: m.authorization_endpoint.as_deref().map(|v| parse("authorization_endpoint", v)).transpose()?,
                token_endpoint,
                registration_endpoint: m.registration_endpoint.as_deref().map(|v| parse("registration_endpoint", v)).transpose()?,
                iss_baseline: m.issuer.is_some(),
            };
            return self.server_known(ctx);
        }
        let server = self.config.server_url.clone();
        let mut candidates = Vec::new();
        // The challenge's metadata URL; without one, the URL the metadata in use came from (a
        // server whose metadata is only announced in its challenges is found again).
        let hinted =
            self.request.challenge.as_ref().and_then(|c| c.resource_metadata.clone()).or_else(|| self.metadata_url().map(str::to_owned));
        if let Some(rm) = hinted.as_deref() {
            // SPEC W14: an invalid or insecure URL is ignored; well-known discovery follows.
            if let Ok(u) = Url::parse(rm) {
                if is_secure_endpoint(&u) {
                    candidates.push((u, server.clone()));
                }
            }
        }
        for u in discovery::resource_metadata_urls(&server) {
            let identifier = if u.path() == "/.well-known/oauth-protected-resource" {
                Url::parse(&discovery::origin_of(&server)).unwrap_or_else(|_| server.clone())
            } else {
                server.clone()
            };
            if !candidates.iter().any(|(c, _)| *c == u) {
                candidates.push((u, identifier));
            }
        }
        let req = self.get(Purpose::ResourceMetadata, &candidates[0].0);
        Ok(self.state.move_to_resource_metadata(req, candidates, 0))
    }

    fn on_response(&mut self, from: Phase, result: Result<HttpResponse, TransportFailure>) -> Result<Moved, Error> {
        match from {
            Phase::ResourceMetadata { candidates, index, .. } => self.on_resource_metadata(result, candidates, index),
            Phase::ServerMetadata { issuers, issuer_index, candidates, index, legacy, .. } => {
                self.on_server_metadata(result, issuers, issuer_index, candidates, index, legacy)
            }
            Phase::Registration { attempt, metadata, listening, .. } => self.on_registration(result, attempt, metadata, listening),
            Phase::ExchangingCode { attempt, .. } => self.on_code_exchanged(result, attempt),
            Phase::ClientCredentials { scope, .. } => self.on_client_credentials(result, scope, Purpose::ClientCredentials),
            Phase::Refreshing { endpoint, .. } => self.on_refreshed(result, endpoint),
            Phase::TokenExchange { scope, nonce, .. } => self.on_token_exchanged(result, scope, nonce),
            Phase::JwtBearer { scope, .. } => self.on_client_credentials(result, scope, Purpose::JwtBearer),
            Phase::Revoking { hint, nonce, .. } => self.on_revoked(result, hint, nonce),
            Phase::DeviceRegistration { metadata, nonce, .. } => self.on_device_registration(result, metadata, nonce),
            Phase::DeviceAuthorization { login, .. } => self.on_device_authorization(result, login),
            Phase::DeviceToken { login, .. } => self.on_device_token(result, login),
            // `check` let no response through without an outstanding request.
            other @ (Phase::Idle
            | Phase::Failed
            | Phase::AwaitingPreparation(_)
            | Phase::AwaitingRedirect { .. }
            | Phase::AwaitingDevice { .. }) => Ok(self.state.stay(other)),
        }
    }

    fn on_resource_metadata(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        candidates: Vec<(Url, Url)>,
        index: usize,
    ) -> Result<Moved, Error> {
        let purpose = Purpose::ResourceMetadata;
        let resp = result.map_err(|t| transport_error(purpose, t))?;
        crate::token::check_size(&resp, purpose)?;
        let status = resp.status().as_u16();
        let next = |this: &mut Self| -> Result<Moved, Error> {
            if let Some((url, _)) = candidates.get(index + 1) {
                let url = url.clone();
                let req = this.get(purpose, &url);
                Ok(this.state.move_to_resource_metadata(req, candidates.clone(), index + 1))
            } else {
                this.start_legacy_discovery()
            }
        };
        if (400..500).contains(&status) {
            return next(self);
        }
        if !resp.status().is_success() {
            return failed(Error::Http {
                purpose,
                error: HttpError::UnexpectedStatus { status, excerpt: crate::http::body_summary(purpose, resp.body()) },
            });
        }
        let prm = match ProtectedResourceMetadata::from_json(resp.body()) {
            Ok(p) => p,
            // SPEC OQ 5: an unusable document is like a missing one; try the next candidate.
            Err(_) if index + 1 < candidates.len() => return next(self),
            Err(e) => return failed(e),
        };
        let (_, identifier) = &candidates[index];
        if !discovery::resource_matches(&prm.resource, &self.config.server_url, identifier, self.config.resource_match) {
            return failed(DiscoveryError::ResourceMismatch {
                expected: discovery::canonical_resource_uri(&self.config.server_url),
                found: prm.resource.chars().take(200).collect(),
            });
        }
        let mut issuers = Vec::new();
        for a in &prm.authorization_servers {
            match Url::parse(a) {
                Ok(u) if is_secure_endpoint(&u) => issuers.push(a.clone()),
                Ok(_) => return failed(DiscoveryError::InsecureUrl { field: "authorization_servers", url: a.chars().take(200).collect() }),
                Err(_) => return failed(DiscoveryError::InvalidUrl { field: "authorization_servers" }),
            }
        }
        policy::order_issuers(&self.config, self.tokens.as_ref(), &self.clients, &mut issuers);
        self.prm = Some(prm);
        self.prm_url = Some(candidates[index].0.to_string());
        self.start_server_metadata(issuers, 0, false)
    }

    fn start_legacy_discovery(&mut self) -> Result<Moved, Error> {
        // 2025-03-26: the authorization server is the MCP server's origin.
        self.prm = None;
        self.prm_url = None;
        let origin = discovery::origin_of(&self.config.server_url);
        self.start_server_metadata(vec![origin], 0, true)
    }

    fn start_server_metadata(&mut self, issuers: Vec<String>, issuer_index: usize, legacy: bool) -> Result<Moved, Error> {
        let Some(issuer) = issuers.get(issuer_index) else {
            return failed(DiscoveryError::NoAuthorizationServer { tried: issuers.len() });
        };
        let url = Url::parse(issuer).map_err(|_| DiscoveryError::InvalidUrl { field: "authorization_servers" })?;
        let candidates = if legacy {
            vec![discovery::legacy_server_metadata_url(&self.config.server_url)]
        } else {
            discovery::server_metadata_urls(&url)
        };
        let req = self.get(Purpose::ServerMetadata, &candidates[0]);
        Ok(self.state.move_to_server_metadata(req, issuers, issuer_index, candidates, 0, legacy))
    }

    fn on_server_metadata(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        issuers: Vec<String>,
        issuer_index: usize,
        candidates: Vec<Url>,
        index: usize,
        legacy: bool,
    ) -> Result<Moved, Error> {
        let purpose = Purpose::ServerMetadata;
        let resp = result.map_err(|t| transport_error(purpose, t))?;
        crate::token::check_size(&resp, purpose)?;
        let status = resp.status().as_u16();
        let issuer = issuers[issuer_index].clone();
        let not_found = (400..500).contains(&status);
        if !not_found && !resp.status().is_success() {
            return failed(Error::Http {
                purpose,
                error: HttpError::UnexpectedStatus { status, excerpt: crate::http::body_summary(purpose, resp.body()) },
            });
        }
        let parsed = if not_found { None } else { Some(AuthorizationServerMetadata::from_json(resp.body(), &issuer, legacy)) };
        match parsed {
            Some(Ok(md)) => {
                let ctx = self.context_from_metadata(&issuer, md, legacy)?;
                self.server_known(ctx)
            }
            // Security failures are final: never move silently to another server (SPEC OQ 8).
            Some(Err(e @ (DiscoveryError::IssuerMismatch { .. } | DiscoveryError::InsecureUrl { .. }))) => failed(e),
            Some(Err(e)) if index + 1 == candidates.len() && issuer_index + 1 == issuers.len() && !legacy => failed(e),
            _ => {
                if let Some(url) = candidates.get(index + 1) {
                    let url = url.clone();
                    let req = self.get(purpose, &url);
                    Ok(self.state.move_to_server_metadata(req, issuers, issuer_index, candidates, index + 1, legacy))
                } else if legacy {
                    // 2025-03-26 without metadata: the default endpoints.
                    let (a, t, r) = discovery::legacy_default_endpoints(&self.config.server_url);
                    self.server_known(ServerContext {
                        issuer,
                        metadata: None,
                        authorization_endpoint: Some(a),
                        token_endpoint: t,
                        registration_endpoint: Some(r),
                        iss_baseline: false,
                    })
                } else {
                    self.start_server_metadata(issuers, issuer_index + 1, false)
                }
            }
        }
    }

    fn context_from_metadata(&self, issuer: &str, md: AuthorizationServerMetadata, legacy: bool) -> Result<ServerContext, Error> {
        let parse = |field: &'static str, v: &Option<String>| -> Result<Option<Url>, Error> {
            v.as_deref().map(|s| Url::parse(s).map_err(|_| DiscoveryError::InvalidUrl { field }.into())).transpose()
        };
        let token_endpoint = parse("token_endpoint", &md.token_endpoint)?
            .ok_or_else(|| DiscoveryError::MissingEndpoint { issuer: issuer.to_owned(), endpoint: "token_endpoint" })?;
        Ok(ServerContext {
            issuer: if legacy { md.issuer.clone() } else { issuer.to_owned() },
            authorization_endpoint: parse("authorization_endpoint", &md.authorization_endpoint)?,
            registration_endpoint: parse("registration_endpoint", &md.registration_endpoint)?,
            token_endpoint,
            metadata: Some(md),
            iss_baseline: true,
        })
    }

    /// Discovery is done: apply the authorization server binding, then get a token.
    fn server_known(&mut self, ctx: ServerContext) -> Result<Moved, Error> {
        if self.request.logout.is_some() {
            // A logout only revokes, at the issuer of the tokens (`revoke_next` checks).
            self.server = Some(ctx);
            self.request.discovered = true;
            return self.revoke_next(None, None);
        }
        // SEP-2352: tokens from another authorization server are never sent or refreshed.
        if self.tokens.as_ref().is_some_and(|t| t.issuer != ctx.issuer) {
            self.forget_tokens();
        }
        // A grant for another resource identifier than the server's metadata names now (it moved
        // its metadata to the origin, dropped a trailing slash): its tokens are for another
        // audience, and its refresh would ask for that one again.
        // They are kept (a login the person declines, or a challenge an impostor sent, must not
        // cost the grant) until a new authorization for the new identifier replaces them.
        let resource = self.resource_param();
        self.request.resource_changed = matches!((&self.tokens, &resource), (Some(t), Some(r)) if &t.resource != r);
        self.server = Some(ctx);
        self.request.discovered = true;
        self.obtain_token()
    }

    // ---- Getting a token ----------------------------------------------------------------

    fn obtain_token(&mut self) -> Result<Moved, Error> {
        if let Some((endpoint, refusal)) = self.request.refresh_refused.take() {
            // Discovery ran because a refresh at older metadata was refused: the refusal stands
            // unless the authorization server now has another token endpoint.
            let same = self.server.as_ref().is_some_and(|s| s.token_endpoint == endpoint);
            if same && self.tokens.is_some() && !self.request.resource_changed {
                return Err(refusal);
            }
            self.request.refreshed = false;
        }
        // A grant for another resource identifier cannot be refreshed into one for this one.
        if !self.request.step_up && !self.request.resource_changed {
            if let Some(moved) = self.try_refresh()? {
                return Ok(moved);
            }
        }
        let flow = self.choose_flow();
        if flow == ChosenFlow::AuthorizationCode {
            // The resource server rejected a token refreshed moments ago at this same
            // authorization server (discovery found no other): the grant is alive, and a login
            // would only give it one more such token (its clock, its keys, a lifetime shorter
            // than the round trip). A migration or a dead grant do get a login.
            let refreshed_and_rejected =
                self.request.refreshed_rejected && !self.request.step_up && !self.request.resource_changed && self.tokens.is_some();
            if refreshed_and_rejected || self.login_backed_off() {
                return failed(ResourceError::RejectedFreshToken { status: 401 });
            }
            self.authorization_budget()?;
            let ctx = self.ctx()?;
            if !self.request.device_refused && policy::device_login(&self.config, &ctx)? {
                return self.start_device_flow();
            }
            return self.start_code_flow(); // its PrepareAttempt also brings the entropy
        }
        self.authorization_budget()?;
        // Entropy for a client assertion's jti (any grant a client with a private key may
        // authenticate: client credentials, and the JWT bearer grants), or for a new DPoP key.
        let needs_entropy = self.needs_dpop_key() || self.signing_key.is_some();
        if needs_entropy {
            return self.prepare_machine_flow(flow);
        }
        self.start_machine_flow(flow, None)
    }

    fn prepare_machine_flow(&mut self, flow: ChosenFlow) -> Result<Moved, Error> {
        let (plan, moved) = self.state.move_to_awaiting_preparation(Preparing::Machine(flow));
        self.queue.push_back(Output::PrepareAttempt(plan));
        Ok(moved)
    }

    /// The grants without a browser.
    fn start_machine_flow(&mut self, flow: ChosenFlow, nonce: Option<&[u8; 16]>) -> Result<Moved, Error> {
        match flow {
            ChosenFlow::ClientCredentials => self.start_client_credentials(nonce),
            ChosenFlow::EnterpriseManaged => self.start_token_exchange(nonce.copied()),
            ChosenFlow::WorkloadIdentity => {
                let token = self
                    .config
                    .workload_token
                    .clone()
                    .ok_or(Error::Bug("workload identity chosen without a workload_token (validate() requires one)"))?;
                let scope = self.select_scope(false);
                self.remember_requested(&scope);
                self.send_jwt_bearer(&token, scope, nonce)
            }
            ChosenFlow::Refresh => match self.refresh_plan()? {
                Some((endpoint, client)) => self.send_refresh(endpoint, client, nonce),
                None => self.new_token(),
            },
            ChosenFlow::AuthorizationCode => self.start_code_flow(),
        }
    }

    fn choose_flow(&self) -> ChosenFlow {
        policy::choose_flow(&self.config, self.metadata())
    }

    /// [`configured_client`](Self::configured_client), binding the credentials to `issuer` on
    /// first use (persisted without the secret, so a restart keeps the binding).
    fn use_configured_client(&mut self, issuer: &str) -> Result<Option<ClientInfo>, Error> {
        let client = policy::configured_client(&self.config, &self.clients, self.tokens.as_ref(), issuer)?;
        if let Some(c) = &client {
            let known = self.clients.iter().any(|x| x.kind == ClientKind::PreRegistered && x.client_id == c.client_id);
            if !known {
                let binding = ClientInfo { client_secret: None, ..c.clone() };
                self.clients.retain(|x| x.issuer != issuer);
                self.clients.push(binding.clone());
                self.queue.push_back(Output::Persist(Persist::Client(binding)));
            }
        }
        Ok(client)
    }

    fn client_auth<'a>(
        &self,
        client: &'a ClientInfo,
        audience: &str,
        nonce: Option<&[u8; 16]>,
        id_in_body: bool,
    ) -> Result<ClientAuth<'a>, Error> {
        let assertion = policy::Assertion { audience, now: self.now, nonce };
        policy::client_auth(&self.config, self.metadata(), self.signing_key.as_ref(), client, assertion, id_in_body)
    }

    fn resource_param(&self) -> Option<String> {
        policy::resource_param(&self.config, self.prm.as_ref())
    }

    fn select_scope(&self, offline: bool) -> Option<String> {
        policy::select_scope(&self.config, &self.request, self.prm.as_ref(), self.tokens.as_ref(), self.metadata(), offline)
    }

    fn remember_requested(&mut self, scope: &Option<String>) {
        policy::record_requested(&mut self.request.requested_scopes, scope.as_deref());
    }

    /// Starts a refresh if there is a refresh token, a token endpoint and a client for it (once
    /// per request): the move, if started (or its entropy asked for).
    fn try_refresh(&mut self) -> Result<Option<Moved>, Error> {
        if self.request.refreshed {
            return Ok(None);
        }
        let Some((endpoint, client)) = self.refresh_plan()? else { return Ok(None) };
        if self.auth_method_for(&client) == AuthMethod::PrivateKeyJwt {
            // The client assertion needs a fresh jti: entropy first.
            self.request.refreshed = self.request.rejected;
            return self.prepare_machine_flow(ChosenFlow::Refresh).map(Some);
        }
        self.send_refresh(endpoint, client, None).map(Some)
    }

    /// Where and as whom the held refresh token can be used, if it can.
    fn refresh_plan(&self) -> Result<Option<(Url, ClientInfo)>, Error> {
        let Some(t) = self.tokens.as_ref().filter(|t| t.refresh_token.is_some()) else { return Ok(None) };
        let Some(client) = policy::client_for_tokens(&self.config, &self.clients, t)? else { return Ok(None) };
        let endpoint = policy::refresh_endpoint(self.server.as_ref(), t, &client, self.signing_key.is_some());
        Ok(endpoint.map(|e| (e, client)))
    }

    fn auth_method_for(&self, client: &ClientInfo) -> AuthMethod {
        policy::auth_method(&self.config, self.metadata(), self.signing_key.is_some(), client)
    }

    /// The refresh request (SPEC 87): the grant's own `resource`, the client that holds it.
    fn send_refresh(&mut self, endpoint: Url, client: ClientInfo, nonce: Option<&[u8; 16]>) -> Result<Moved, Error> {
        let Some(t) = self.tokens.clone() else { return self.new_token() };
        let Some(rt) = t.refresh_token.clone() else { return self.new_token() };
        if client.kind == ClientKind::PreRegistered {
            self.use_configured_client(&t.issuer)?;
        }
        let auth = self.client_auth(&client, &t.issuer, nonce, true)?;
        // Item 1: the `resource` the grant was obtained with, whatever discovery says today.
        let resource = self.config.send_resource.then_some(t.resource.as_str());
        let req = Grant::RefreshToken { refresh_token: &rt, resource }.request(&endpoint, Some(&auth));
        let req = self.send_token(Purpose::Refresh, req);
        // Once per rejection: a refresh ahead of expiry does not use up the one a rejected
        // token gets (a token that expired in transit, or revoked: the refresh then says so).
        self.request.refreshed = self.request.rejected;
        Ok(self.state.move_to_refreshing(req, endpoint))
    }

    /// The refresh's answer. Success replaces the tokens (rotation). Only a dead grant
    /// (`invalid_grant`) or a rejected client (`invalid_client`, which re-registers) forgets
    /// them; a transient failure keeps them and fails this request with a retryable error (or,
    /// for a refresh ahead of expiry, hands out the still valid token); any other refusal keeps
    /// them too and is reported, after checking the metadata in use was not stale.
    fn on_refreshed(&mut self, result: Result<HttpResponse, TransportFailure>, endpoint: Url) -> Result<Moved, Error> {
        // Ahead of expiry (no rejection in this request), rather than after a 401.
        let proactive = !self.request.rejected;
        let purpose = Purpose::Refresh;
        let parsed = result.map_err(|t| transport_error(purpose, t)).and_then(|resp| TokenResponse::from_http(&resp, purpose));
        let e = match parsed {
            Ok(tr) => {
                let Some(old) = self.tokens.take() else { return failed(Error::Bug("a refresh answered with no tokens to refresh")) };
                let set = policy::refreshed_tokens(old, tr, self.now, self.server.as_ref(), self.prm_url.as_deref());
                self.store_tokens(set, false);
                return Ok(self.ready());
            }
            Err(e) => e,
        };
        let code = match &e {
            Error::Token(TokenError::Rejected(r)) => Some(r.error.clone()),
            _ => None,
        };
        let dynamic = self
            .tokens
            .as_ref()
            .and_then(|t| policy::client_for_tokens(&self.config, &self.clients, t).ok().flatten())
            .is_some_and(|c| c.kind == ClientKind::Dynamic);
        let still_valid = self.tokens.as_ref().is_some_and(|t| policy::unexpired(t, self.now));
        if e.is_retryable() && proactive && still_valid {
            // Item 4: ahead of expiry, the still valid token serves; the next request tries again.
            return Ok(self.ready());
        }
        match code {
            // SPEC 90 and 98: the grant is dead, or the client is (a dynamic registration, which
            // registers again): authorize afresh.
            Some(ErrorCode::InvalidGrant) => {
                self.forget_tokens();
                self.new_token()
            }
            Some(ErrorCode::InvalidClient) if dynamic => {
                self.forget_tokens();
                self.forget_dynamic_client();
                self.new_token()
            }
            // This client may not use the refresh token (the grant is not allowed or not
            // supported): drop it and get a new token the way the client can.
            Some(ErrorCode::UnauthorizedClient | ErrorCode::UnsupportedGrantType) => {
                match self.tokens.clone() {
                    Some(mut t) if proactive && still_valid => {
                        // Keep the access token while it lasts (SPEC 98: report, do not log in).
                        t.refresh_token = None;
                        self.store_tokens(t, false);
                        // Kept, not refreshed: a rejection of it calls for a new token.
                        self.request.refreshed_tokens = false;
                        Ok(self.ready())
                    }
                    _ => {
                        self.forget_tokens();
                        self.new_token()
                    }
                }
            }
            // Anything else keeps the grant: a transient failure (item 4), or a refusal that does
            // not say the grant is dead (a configured client rejected is a configuration error,
            // SPEC 98). But first, unless it was just discovered, the metadata is looked at again:
            // a moved or decommissioned token endpoint (a migration) fails this way too.
            _ if !self.request.discovered && self.config.endpoints.is_none() => {
                self.request.refresh_refused = Some((endpoint, e));
                self.start_discovery()
            }
            _ => Err(e),
        }
    }

    fn forget_tokens(&mut self) {
        if let Some(t) = self.tokens.take() {
            self.queue.push_back(Output::Persist(Persist::ForgetTokens { issuer: t.issuer }));
        }
    }

    fn forget_dynamic_client(&mut self) {
        let issuer = self.server.as_ref().map(|s| s.issuer.clone()).or_else(|| self.tokens.as_ref().map(|t| t.issuer.clone()));
        if let Some(issuer) = issuer {
            let before = self.clients.len();
            self.clients.retain(|c| !(c.issuer == issuer && c.kind == ClientKind::Dynamic));
            if self.clients.len() != before {
                self.queue.push_back(Output::Persist(Persist::ForgetClient { issuer }));
            }
        }
    }

    /// Keeps and persists new tokens. `authorized`: they come from a full authorization (code,
    /// client credentials, JWT bearer) rather than a refresh, so the server rejecting them now
    /// is final for this request.
    fn store_tokens(&mut self, mut set: TokenSet, authorized: bool) {
        if set.token_type == "DPoP" {
            set.dpop_key = self.dpop.key.as_ref().map(|k| k.persisted().clone());
        }
        self.queue.push_back(Output::Persist(Persist::Tokens(set.clone())));
        self.tokens = Some(set);
        self.request.authorized |= authorized;
        self.request.refreshed_tokens = !authorized;
    }

    // ---- Client credentials -------------------------------------------------------------

    fn start_client_credentials(&mut self, nonce: Option<&[u8; 16]>) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let Some(client) = self.use_configured_client(&ctx.issuer)? else {
            return failed(Error::Bug("client credentials chosen without a client_id (validate() and choose_flow require one)"));
        };
        let scope = self.select_scope(false);
        let auth = self.client_auth(&client, &ctx.issuer, nonce, false)?;
        let resource = self.resource_param();
        let grant = Grant::ClientCredentials { resource: resource.as_deref(), scope: scope.as_deref() };
        let req = grant.request(&ctx.token_endpoint, Some(&auth));
        self.remember_requested(&scope);
        let req = self.send_token(Purpose::ClientCredentials, req);
        Ok(self.state.move_to_client_credentials(req, scope))
    }

    /// A token from a grant without a browser (client credentials, JWT bearer).
    fn on_client_credentials(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        scope: Option<String>,
        purpose: Purpose,
    ) -> Result<Moved, Error> {
        let tr = match result.map_err(|t| transport_error(purpose, t)).and_then(|resp| TokenResponse::from_http(&resp, purpose)) {
            Ok(tr) => tr,
            // A refusal at metadata kept from an earlier request (the server may have renamed
            // itself, or moved): look again once before it stands. A configured client's
            // rejection stands as it is (SPEC 98).
            Err(e @ Error::Token(TokenError::Rejected(_)))
                if !self.request.discovered
                    && self.config.endpoints.is_none()
                    && !matches!(&e, Error::Token(TokenError::Rejected(r)) if r.error == ErrorCode::InvalidClient) =>
            {
                self.request.authorizations = self.request.authorizations.saturating_sub(1);
                self.authorizations = self.authorizations.saturating_sub(1);
                return self.start_discovery();
            }
            Err(e) => return Err(e),
        };
        let ctx = self.ctx()?;
        let requested = policy::Requested {
            scope,
            issuer: ctx.issuer,
            resource: policy::token_resource(&self.config, self.prm.as_ref()),
            client_id: self.config.client_id.clone(),
            grant: Some(if purpose == Purpose::ClientCredentials { GrantKind::ClientCredentials } else { GrantKind::JwtBearer }),
        };
        let set = policy::token_set_from(tr, requested, self.now, self.server.as_ref(), self.prm_url.as_deref());
        self.store_tokens(set, true);
        Ok(self.ready())
    }

    // ---- Enterprise-managed authorization (SEP-990) ---------------------------------------

    /// RFC 8693 at the identity provider: the user's ID token for an ID-JAG addressed to the
    /// authorization server (`audience` = its issuer) and this resource.
    fn start_token_exchange(&mut self, nonce: Option<[u8; 16]>) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let idp = self
            .config
            .idp
            .clone()
            .ok_or(Error::Bug("enterprise-managed flow chosen without idp (validate() and choose_flow require it)"))?;
        let scope = self.select_scope(false);
        let resource = policy::token_resource(&self.config, self.prm.as_ref());
        let grant =
            Grant::IdJagExchange { id_token: &idp.subject_token, audience: &ctx.issuer, resource: &resource, scope: scope.as_deref() };
        // The client authenticates to the IdP with its IdP credentials, if it has any.
        let auth = idp.client_id.as_deref().map(|id| {
            let method = if idp.client_secret.is_some() { AuthMethod::ClientSecretBasic } else { AuthMethod::None };
            ClientAuth { method, client_id: id, secret: idp.client_secret.as_ref(), assertion: None, client_id_in_body: true }
        });
        let req = grant.request(&idp.token_endpoint, auth.as_ref());
        self.remember_requested(&scope);
        let req = self.send(Purpose::TokenExchange, req);
        Ok(self.state.move_to_token_exchange(req, scope, nonce))
    }

    /// The ID-JAG came back: present it to the authorization server.
    fn on_token_exchanged(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        scope: Option<String>,
        nonce: Option<[u8; 16]>,
    ) -> Result<Moved, Error> {
        let resp = result.map_err(|t| transport_error(Purpose::TokenExchange, t))?;
        let jag = crate::token::id_jag_from_http(&resp)?;
        self.send_jwt_bearer(&jag, scope, nonce.as_ref())
    }

    /// RFC 7523 at the authorization server: an assertion (an ID-JAG, or a workload's JWT) as
    /// a JWT bearer grant, with the client's own authentication if it has a client id. A
    /// refusal is final: no retry, no other grant (SEP-1933).
    fn send_jwt_bearer(
        &mut self,
        assertion: &crate::secret::SubjectToken,
        scope: Option<String>,
        nonce: Option<&[u8; 16]>,
    ) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let resource = self.resource_param();
        let grant = Grant::JwtBearer { assertion, resource: resource.as_deref(), scope: scope.as_deref() };
        let req = match self.use_configured_client(&ctx.issuer)? {
            Some(client) => {
                let auth = self.client_auth(&client, &ctx.issuer, nonce, true)?;
                grant.request(&ctx.token_endpoint, Some(&auth))
            }
            None => grant.request(&ctx.token_endpoint, None),
        };
        let req = self.send_token(Purpose::JwtBearer, req);
        Ok(self.state.move_to_jwt_bearer(req, scope))
    }

    // ---- Device authorization grant (RFC 8628) -------------------------------------------

    /// Entropy first: a DPoP key if one is wanted, and the base of the assertions' `jti`s.
    fn start_device_flow(&mut self) -> Result<Moved, Error> {
        let (plan, moved) = self.state.move_to_awaiting_preparation(Preparing::Device);
        self.queue.push_back(Output::PrepareAttempt(plan));
        Ok(moved)
    }

    /// The configured client, a metadata document, or a registration that has the device
    /// grant; else registers one (without redirect URIs).
    fn device_client(&mut self, nonce: [u8; 16]) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let client = match self.use_configured_client(&ctx.issuer)? {
            Some(c) => Some((c, false)),
            None => policy::device_client(&self.config, &ctx, &self.clients, self.pending_client.as_ref(), self.now),
        };
        if let Some((client, registered)) = client {
            return self.send_device_authorization(client, registered, nonce);
        }
        let Some(endpoint) = ctx.registration_endpoint.clone() else {
            return failed(RegistrationError::NoMethod { issuer: ctx.issuer.clone() });
        };
        if !is_secure_endpoint(&endpoint) {
            return failed(DiscoveryError::InsecureUrl { field: "registration_endpoint", url: endpoint.to_string() });
        }
        let metadata = ClientMetadata::device(&self.config.client_name, self.select_scope(true));
        let req = registration_request(&endpoint, &metadata);
        let req = self.send(Purpose::Registration, req);
        Ok(self.state.move_to_device_registration(req, metadata, nonce))
    }

    fn on_device_registration(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        metadata: ClientMetadata,
        nonce: [u8; 16],
    ) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let resp = result.map_err(|t| transport_error(Purpose::Registration, t))?;
        let info = parse_registration_response(&resp, &ctx.issuer, &metadata)?;
        // Filed once the login succeeds (the registration on file may hold a live grant).
        self.pending_client = Some(info.clone());
        self.send_device_authorization(info, true, nonce)
    }

    /// A `jti` for the next request of a device login: its base with the request's number.
    fn device_jti(login: &mut machine::DeviceLogin) -> [u8; 16] {
        let mut jti = login.nonce;
        login.polls = login.polls.wrapping_add(1);
        for (b, n) in jti[12..].iter_mut().zip(login.polls.to_be_bytes()) {
            *b ^= n;
        }
        jti
    }

    /// RFC 8628 §3.1: the client (authenticated if confidential), `scope` and `resource`.
    fn send_device_authorization(&mut self, client: ClientInfo, registered: bool, nonce: [u8; 16]) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let endpoint = ctx
            .metadata
            .as_ref()
            .and_then(|m| m.device_authorization_endpoint.as_deref())
            .and_then(|e| Url::parse(e).ok())
            .ok_or_else(|| AuthorizationError::DeviceUnsupported { issuer: ctx.issuer.clone() })?;
        let scope = self.select_scope(true);
        self.remember_requested(&scope);
        let resource = self.resource_param();
        let mut login =
            Box::new(machine::DeviceLogin { client, registered, scope, resource, nonce, polls: 0, code: None, next_poll: self.now });
        let jti = Self::device_jti(&mut login);
        let mut form = Vec::new();
        form.extend(login.scope.clone().map(|s| ("scope", s)));
        form.extend(login.resource.clone().map(|r| ("resource", r)));
        let auth = self.client_auth(&login.client, &ctx.issuer, Some(&jti), true)?;
        let req = crate::token::token_request(&endpoint, form, &auth);
        let req = self.send(Purpose::DeviceAuthorization, req);
        Ok(self.state.move_to_device_authorization(req, login))
    }

    fn on_device_authorization(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        mut login: Box<machine::DeviceLogin>,
    ) -> Result<Moved, Error> {
        let resp = result.map_err(|t| transport_error(Purpose::DeviceAuthorization, t))?;
        let ctx = self.ctx()?;
        let code = match crate::device::parse_device_authorization(&resp, self.now, &self.config.server_url, &ctx.issuer) {
            Ok(code) => code,
            Err(e) => {
                let refused =
                    |codes: &[&str]| matches!(&e, Error::Authorization(AuthorizationError::Denied(r)) if codes.contains(&r.error.as_str()));
                if refused(&["invalid_client"]) {
                    self.drop_device_client(&login);
                }
                // `auto` chose the device grant on its own: a client the server does not let use
                // it logs in with the browser (or a paste) as before.
                if self.config.login == crate::config::LoginMethod::Auto && refused(&["unauthorized_client", "unsupported_grant_type"]) {
                    self.request.device_refused = true;
                    if login.registered {
                        self.pending_client = None;
                    }
                    return self.start_code_flow();
                }
                return Err(e);
            }
        };
        self.queue.push_back(Output::ShowDeviceCode(code.shown.clone()));
        login.next_poll = self.now.saturating_add(code.interval).min(code.shown.expires_at);
        login.code = Some(code);
        Ok(self.state.move_to_awaiting_device(login))
    }

    /// A registration the server no longer knows: the one this login made, or the one on file.
    fn drop_device_client(&mut self, login: &machine::DeviceLogin) {
        if login.registered {
            self.pending_client = None;
        } else if login.client.kind == ClientKind::Dynamic {
            self.forget_dynamic_client();
        }
    }

    /// The poll is due (or the code expired); an early timer waits on.
    fn on_device_timeout(&mut self, mut login: Box<machine::DeviceLogin>) -> Result<Moved, Error> {
        let Some(code) = &login.code else { return Err(Error::Bug("a device login waits without a code")) };
        if self.now >= code.shown.expires_at {
            return failed(AuthorizationError::DeviceCodeExpired);
        }
        if self.now < login.next_poll {
            return Ok(self.state.move_to_awaiting_device(login));
        }
        let endpoint = self.ctx()?.token_endpoint;
        let issuer = self.ctx()?.issuer;
        let device_code = code.device_code.secret().to_owned();
        let jti = Self::device_jti(&mut login);
        let resource = login.resource.clone().filter(|_| self.config.send_resource);
        let auth = self.client_auth(&login.client, &issuer, Some(&jti), true)?;
        let req = Grant::DeviceCode { device_code: &device_code, resource: resource.as_deref() }.request(&endpoint, Some(&auth));
        let req = self.send_token(Purpose::DeviceToken, req);
        Ok(self.state.move_to_device_token(req, login))
    }

    fn on_device_token(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        mut login: Box<machine::DeviceLogin>,
    ) -> Result<Moved, Error> {
        let purpose = Purpose::DeviceToken;
        let answer = result.map_err(|t| transport_error(purpose, t)).and_then(|resp| TokenResponse::from_http(&resp, purpose));
        let tr = match answer {
            Ok(tr) => tr,
            Err(e) => {
                if matches!(&e, Error::Token(TokenError::Rejected(r)) if r.error == ErrorCode::InvalidClient) {
                    self.drop_device_client(&login);
                }
                let poll = crate::device::classify(e)?;
                let Some(code) = login.code.as_mut() else { return Err(Error::Bug("a device login polls without a code")) };
                match poll {
                    // §3.5: 5 s more for this and every later request.
                    crate::device::Poll::SlowDown => code.interval += std::time::Duration::from_secs(5),
                    // §3.5: after a timeout (or no usable answer) poll less often: exponential backoff.
                    crate::device::Poll::Transient => code.interval = code.interval.saturating_mul(2),
                    crate::device::Poll::Pending => {}
                }
                login.next_poll = self.now.saturating_add(code.interval).min(code.shown.expires_at);
                return Ok(self.state.move_to_awaiting_device(login));
            }
        };
        if login.registered {
            self.pending_client = None;
            self.clients.retain(|x| x.issuer != login.client.issuer);
            self.clients.push(login.client.clone());
            self.queue.push_back(Output::Persist(Persist::Client(login.client.clone())));
        }
        let ctx = self.ctx()?;
        let requested = policy::Requested {
            scope: login.scope.clone(),
            issuer: ctx.issuer,
            resource: login.resource.clone().unwrap_or_else(|| discovery::canonical_resource_uri(&self.config.server_url)),
            client_id: Some(login.client.client_id.clone()),
            grant: Some(GrantKind::DeviceCode),
        };
        let set = policy::token_set_from(tr, requested, self.now, self.server.as_ref(), self.prm_url.as_deref());
        self.store_tokens(set, true);
        self.request.logged_in = true;
        Ok(self.ready())
    }

    // ---- Authorization code -------------------------------------------------------------

    fn start_code_flow(&mut self) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        policy::check_login(&self.config, &ctx)?;
        let redirect = policy::redirect_plan(&self.config.redirect_uri, &self.clients, &ctx.issuer);
        let (plan, moved) = self.state.move_to_awaiting_preparation(Preparing::Login(redirect));
        self.queue.push_back(Output::PrepareAttempt(plan));
        Ok(moved)
    }

    fn on_prepared(&mut self, preparing: Preparing, entropy: Entropy, callback: CallbackSetup) -> Result<Moved, Error> {
        // A logout makes no DPoP key: its revocations need none.
        if self.needs_dpop_key() && !matches!(preparing, Preparing::Revoke) {
            self.dpop.new_key(&entropy.dpop_key);
        }
        let rp = match preparing {
            Preparing::Machine(flow) => return self.start_machine_flow(flow, Some(&entropy.nonce)),
            // One `jti` per revocation request: the nonce, then the state's bytes.
            Preparing::Revoke => return self.revoke_next(Some(entropy.nonce), Some(entropy.state)),
            Preparing::Device => return self.device_client(entropy.nonce),
            Preparing::Login(rp) => rp,
        };
        let (redirect_uri, listening) = match callback {
            // `check` refused a listener the plan did not ask for.
            CallbackSetup::Listening(uri) => (uri, true),
            CallbackSetup::Unavailable(_) | CallbackSetup::NotRequested => (policy::paste_redirect_uri(&rp, &entropy.nonce), false),
        };
        let ctx = self.ctx()?;
        let verifier = verifier_from_bytes(&entropy.pkce);
        let state = CsrfState::new(URL_SAFE_NO_PAD.encode(entropy.state));
        let attempt = Box::new(Attempt {
            verifier,
            state,
            redirect_uri,
            client: None,
            scope: self.select_scope(true),
            resource: self.resource_param(),
            issuer: ctx.issuer.clone(),
            expected_iss: ctx.iss_baseline.then(|| ctx.issuer.clone()),
            iss_supported: ctx.metadata.as_ref().is_some_and(|m| m.iss_parameter_supported()),
            url: None,
            registered: false,
            jti: entropy.nonce,
        });
        self.ensure_client(attempt, listening)
    }

    /// SPEC item 40: pre-registered, then [`policy::login_client`], then DCR.
    fn ensure_client(&mut self, mut attempt: Box<Attempt>, listening: bool) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let client = match self.use_configured_client(&ctx.issuer)? {
            Some(c) => Some((c, false)),
            None => policy::login_client(&self.config, &ctx, &self.clients, self.pending_client.as_ref(), &attempt.redirect_uri, self.now),
        };
        if let Some((c, registered)) = client {
            // A registration an unfinished login made is not on file yet (the one on file may
            // hold a live grant): it is filed once this login succeeds.
            attempt.registered = registered;
            attempt.client = Some(c);
            return self.open_authorization(attempt, listening);
        }
        let Some(endpoint) = ctx.registration_endpoint.clone() else {
            return failed(RegistrationError::NoMethod { issuer: ctx.issuer.clone() });
        };
        if !is_secure_endpoint(&endpoint) {
            return failed(DiscoveryError::InsecureUrl { field: "registration_endpoint", url: endpoint.to_string() });
        }
        let mut metadata = ClientMetadata::native(&attempt.redirect_uri, &self.config.client_name, attempt.scope.clone());
        // One registration serves both kinds of login where the server offers both: a person
        // who logs in at the desk and over SSH does not register anew each time.
        if ctx.metadata.as_ref().is_some_and(policy::device_grant_offered) {
            metadata.grant_types.insert(1, crate::device::DEVICE_CODE_GRANT.into());
        }
        let req = registration_request(&endpoint, &metadata);
        let req = self.send(Purpose::Registration, req);
        Ok(self.state.move_to_registration(req, attempt, metadata, listening))
    }

    fn on_registration(
        &mut self,
        result: Result<HttpResponse, TransportFailure>,
        mut attempt: Box<Attempt>,
        metadata: ClientMetadata,
        listening: bool,
    ) -> Result<Moved, Error> {
        let purpose = Purpose::Registration;
        let resp = result.map_err(|t| transport_error(purpose, t))?;
        let info = parse_registration_response(&resp, &attempt.issuer, &metadata)?;
        // Kept with the attempt: it replaces the registration on file (whose grant may still be
        // alive) only once the login it was made for succeeds.
        self.pending_client = Some(info.clone());
        attempt.client = Some(info);
        attempt.registered = true;
        self.open_authorization(attempt, listening)
    }

    fn open_authorization(&mut self, mut attempt: Box<Attempt>, listening: bool) -> Result<Moved, Error> {
        let ctx = self.ctx()?;
        let Some(endpoint) = ctx.authorization_endpoint.clone() else {
            return failed(DiscoveryError::MissingEndpoint { issuer: ctx.issuer, endpoint: "authorization_endpoint" });
        };
        let client_id = attempt.client.as_ref().map(|c| c.client_id.clone()).unwrap_or_default();
        let challenge = PkceChallenge::s256(&attempt.verifier);
        let redirect = attempt.redirect_uri.to_string();
        let url = authorization_url(
            &endpoint,
            &AuthorizationRequest {
                client_id: &client_id,
                redirect_uri: &redirect,
                challenge: &challenge,
                state: &attempt.state,
                scope: attempt.scope.as_deref(),
                resource: attempt.resource.as_deref(),
            },
        );
        let scope = attempt.scope.clone();
        self.remember_requested(&scope);
        attempt.url = Some(url.clone());
        let deadline = self.now.saturating_add(self.config.callback_timeout);
        self.queue.push_back(Output::OpenAuthorizationUrl { url: url.clone(), deadline });
        if !listening {
            self.queue.push_back(Output::PromptForRedirect { url });
        }
        Ok(self.state.move_to_awaiting_redirect(attempt, deadline, listening))
    }

    fn on_callback_unavailable(&mut self, attempt: Box<Attempt>, deadline: Timestamp, listening: bool) -> Moved {
        if !listening {
            return self.state.move_to_awaiting_redirect(attempt, deadline, listening);
        }
        self.paste_instead(attempt)
    }

    /// The listener is given up on: the wait goes on for a pasted redirect.
    fn paste_instead(&mut self, attempt: Box<Attempt>) -> Moved {
        let deadline = self.now.saturating_add(self.config.callback_timeout);
        if let Some(url) = attempt.url.clone() {
            self.queue.push_back(Output::PromptForRedirect { url });
        }
        self.state.move_to_awaiting_redirect(attempt, deadline, false)
    }

    fn on_timeout(&mut self, attempt: Box<Attempt>, deadline: Timestamp, listening: bool) -> Result<Moved, Error> {
        if self.now < deadline {
            return Ok(self.state.move_to_awaiting_redirect(attempt, deadline, listening));
        }
        if listening {
            // The browser never came back: ask for a paste (SSH sessions, other machines).
            return Ok(self.paste_instead(attempt));
        }
        failed(Error::TimedOut { waiting_for: Stage::Authorization })
    }

    fn on_redirect(
        &mut self,
        url: &str,
        source: RedirectSource,
        attempt: Box<Attempt>,
        deadline: Timestamp,
        listening: bool,
    ) -> Result<Moved, Error> {
        let checked = parse_redirect(url, &attempt.redirect_uri).and_then(|p| {
            check_redirect(
                p,
                &RedirectExpectations {
                    state: &attempt.state,
                    issuer: attempt.expected_iss.as_deref(),
                    iss_supported: attempt.iss_supported,
                },
            )
        });
        let code = match checked {
            Ok(code) => code,
            // Item 11: a request on the loopback callback path without our state can come from
            // any local process or web page. It gets an error page and the wait goes on: only
            // the redirect that carries our state ends the login.
            Err(e @ (AuthorizationError::MissingState | AuthorizationError::StateMismatch | AuthorizationError::InvalidRedirect(_)))
                if source == RedirectSource::Loopback =>
            {
                self.queue.push_back(Output::RejectCallback(Outcome::for_error(&Error::from(e))));
                return Ok(self.state.move_to_awaiting_redirect(attempt, deadline, listening));
            }
            Err(e) => {
                let e = Error::from(e);
                self.withdraw_prompts();
                if source == RedirectSource::Loopback {
                    self.queue.push_back(Output::AnswerCallback(Outcome::for_error(&e)));
                }
                return Err(e);
            }
        };
        self.withdraw_prompts();
        if source == RedirectSource::Loopback {
            self.queue.push_back(Output::AnswerCallback(Outcome::Success));
        }
        let ctx = self.ctx()?;
        let client = attempt.client.clone().ok_or_else(|| RegistrationError::NoMethod { issuer: ctx.issuer.clone() })?;
        let auth = self.client_auth(&client, &ctx.issuer, Some(&attempt.jti), true)?;
        let grant = Grant::AuthorizationCode {
            code: &code,
            redirect_uri: &attempt.redirect_uri,
            verifier: &attempt.verifier,
            resource: attempt.resource.as_deref(),
        };
        let req = grant.request(&ctx.token_endpoint, Some(&auth));
        let req = self.send_token(Purpose::CodeExchange, req);
        Ok(self.state.move_to_exchanging_code(req, attempt))
    }

    /// The redirect is in (a concurrent callback may beat the drain): asking for it again would
    /// be wrong, so outputs still queued for it are withdrawn.
    fn withdraw_prompts(&mut self) {
        self.queue.retain(|o| !matches!(o, Output::OpenAuthorizationUrl { .. } | Output::PromptForRedirect { .. }));
    }

    fn on_code_exchanged(&mut self, result: Result<HttpResponse, TransportFailure>, attempt: Box<Attempt>) -> Result<Moved, Error> {
        let purpose = Purpose::CodeExchange;
        let resp = result.map_err(|t| transport_error(purpose, t))?;
        let tr = match TokenResponse::from_http(&resp, purpose) {
            Ok(tr) => tr,
            Err(e) => {
                if matches!(&e, Error::Token(TokenError::Rejected(r)) if r.error == ErrorCode::InvalidClient) {
                    if attempt.registered {
                        // The registration an unfinished login made is gone at the server too.
                        self.pending_client = None;
                    } else {
                        self.forget_dynamic_client();
                    }
                }
                return Err(e);
            }
        };
        if let (true, Some(c)) = (attempt.registered, &attempt.client) {
            self.pending_client = None;
            self.clients.retain(|x| x.issuer != c.issuer);
            self.clients.push(c.clone());
            self.queue.push_back(Output::Persist(Persist::Client(c.clone())));
        }
        let ctx = self.ctx()?;
        let requested = policy::Requested {
            scope: attempt.scope.clone(),
            issuer: ctx.issuer,
            resource: attempt.resource.clone().unwrap_or_else(|| discovery::canonical_resource_uri(&self.config.server_url)),
            client_id: attempt.client.as_ref().map(|c| c.client_id.clone()),
            grant: Some(GrantKind::AuthorizationCode),
        };
        let set = policy::token_set_from(tr, requested, self.now, self.server.as_ref(), self.prm_url.as_deref());
        self.store_tokens(set, true);
        self.request.logged_in = true; // for `LOGIN_BACKOFF`
        Ok(self.ready())
    }
}
