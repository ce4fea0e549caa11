//! The machine's state, behind `move_to_*` methods (quinn-proto's habit): its phase is a
//! private field, so nothing outside this module assigns it, and every move says where it may
//! come from.
//!
//! **Every handled input ends in a move.** `state.rs` takes the phase out with
//! [`State::take`] before it handles an input, and every handler returns `Result<Moved, _>`.
//! [`Moved`] can only be made here, by a move: a handler that returns `Ok` without choosing the
//! next state does not compile. On `Err`, the caller moves to `Failed`.
//!
//! **Origins are checked with `debug_assert!`**, not a returned error. Which state may follow
//! which is a property of the code, not of the input: the scenario tests, the property tests
//! and the deterministic simulation run every move in debug builds, where a wrong origin panics
//! with both names. In a release build each phase is still a consistent state on its own, so
//! failing the user's request over a bookkeeping slip would only turn a latent bug into an
//! outage (and add an error path no input can reach).

use super::Attempt;
use crate::authorizer::{AttemptPlan, RedirectPlan, StateName};
use crate::device::DeviceAuthorization;
use crate::http::RequestId;
use crate::policy::ChosenFlow;
use crate::registration::{ClientInfo, ClientMetadata};
use crate::revocation::TokenHint;
use crate::time::Timestamp;
use url::Url;
use StateName::*;

/// Proof that a handler moved the machine: only the `move_to_*` methods (and
/// [`State::stay`]) make one.
#[must_use = "a handler returns the move it made"]
pub(crate) struct Moved(());

/// What an `AttemptPrepared` is awaited for.
pub(super) enum Preparing {
    /// A browser login: the listener to bind, and entropy.
    Login(RedirectPlan),
    /// A grant without a browser, which needs entropy (a DPoP key, an assertion's `jti`).
    Machine(ChosenFlow),
    /// Revocation requests whose client assertions need a `jti` each.
    Revoke,
    /// A device login (RFC 8628): a DPoP key, and the base of its assertions' `jti`s.
    Device,
}

/// A device login (RFC 8628) in progress: the client, and once the server answered, the code.
pub(crate) struct DeviceLogin {
    pub(crate) client: ClientInfo,
    /// `client` was registered for this login (and is not on file yet).
    pub(crate) registered: bool,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    /// The base of the client assertions' `jti`s (one per request, with `polls` mixed in).
    pub(crate) nonce: [u8; 16],
    /// Requests made with `nonce` so far.
    pub(crate) polls: u32,
    /// The server's answer, once it gave one.
    pub(crate) code: Option<DeviceAuthorization>,
    /// When to poll next.
    pub(crate) next_poll: Timestamp,
}

/// The phases. Each in-flight phase remembers the one outstanding request, if any.
pub(super) enum Phase {
    Idle,
    Failed,
    ResourceMetadata {
        req: RequestId,
        candidates: Vec<(Url, Url)>,
        index: usize,
    },
    ServerMetadata {
        req: RequestId,
        issuers: Vec<String>,
        issuer_index: usize,
        candidates: Vec<Url>,
        index: usize,
        legacy: bool,
    },
    AwaitingPreparation(Preparing),
    Registration {
        req: RequestId,
        attempt: Box<Attempt>,
        metadata: ClientMetadata,
        listening: bool,
    },
    AwaitingRedirect {
        attempt: Box<Attempt>,
        deadline: Timestamp,
        listening: bool,
    },
    ExchangingCode {
        req: RequestId,
        attempt: Box<Attempt>,
    },
    ClientCredentials {
        req: RequestId,
        scope: Option<String>,
    },
    Refreshing {
        req: RequestId,
        endpoint: Url,
    },
    /// `nonce`: the entropy for the JWT bearer grant's client assertion that follows, if any.
    TokenExchange {
        req: RequestId,
        scope: Option<String>,
        nonce: Option<[u8; 16]>,
    },
    JwtBearer {
        req: RequestId,
        scope: Option<String>,
    },
    /// Registering a client for a device login (RFC 8628).
    DeviceRegistration {
        req: RequestId,
        metadata: ClientMetadata,
        nonce: [u8; 16],
    },
    /// Asking the device authorization endpoint for a code.
    DeviceAuthorization {
        req: RequestId,
        login: Box<DeviceLogin>,
    },
    /// The person was shown the code: waiting until the next poll.
    AwaitingDevice {
        login: Box<DeviceLogin>,
    },
    /// Polling the token endpoint with the device code.
    DeviceToken {
        req: RequestId,
        login: Box<DeviceLogin>,
    },
    /// A revocation request (logout). `nonce`: the `jti` entropy for the next one's client
    /// assertion, if any.
    Revoking {
        req: RequestId,
        hint: TokenHint,
        nonce: Option<[u8; 16]>,
    },
}

impl Phase {
    pub(super) fn name(&self) -> StateName {
        match self {
            Phase::Idle => Idle,
            Phase::Failed => Failed,
            Phase::ResourceMetadata { .. } => ResourceMetadata,
            Phase::ServerMetadata { .. } => ServerMetadata,
            Phase::AwaitingPreparation(_) => AwaitingPreparation,
            Phase::Registration { .. } => Registration,
            Phase::AwaitingRedirect { .. } => AwaitingRedirect,
            Phase::ExchangingCode { .. } => ExchangingCode,
            Phase::ClientCredentials { .. } => ClientCredentials,
            Phase::Refreshing { .. } => Refreshing,
            Phase::TokenExchange { .. } => TokenExchange,
            Phase::JwtBearer { .. } => JwtBearer,
            Phase::Revoking { .. } => Revoking,
            Phase::DeviceRegistration { .. } => Registration,
            Phase::DeviceAuthorization { .. } => DeviceAuthorization,
            Phase::AwaitingDevice { .. } | Phase::DeviceToken { .. } => AwaitingDevice,
        }
    }

    /// The request the phase waits for, if any.
    pub(super) fn outstanding(&self) -> Option<RequestId> {
        match self {
            Phase::ResourceMetadata { req, .. }
            | Phase::ServerMetadata { req, .. }
            | Phase::Registration { req, .. }
            | Phase::ExchangingCode { req, .. }
            | Phase::ClientCredentials { req, .. }
            | Phase::Refreshing { req, .. }
            | Phase::TokenExchange { req, .. }
            | Phase::JwtBearer { req, .. }
            | Phase::Revoking { req, .. }
            | Phase::DeviceRegistration { req, .. }
            | Phase::DeviceAuthorization { req, .. }
            | Phase::DeviceToken { req, .. } => Some(*req),
            Phase::Idle | Phase::Failed | Phase::AwaitingPreparation(_) | Phase::AwaitingRedirect { .. } | Phase::AwaitingDevice { .. } => {
                None
            }
        }
    }

    /// The phases waiting for a token endpoint (where DPoP nonces are retried).
    /// The grant made without a person this phase waits on the answer to, if it is one.
    pub(super) fn machine_grant(&self) -> Option<crate::token::GrantKind> {
        match self {
            Phase::ClientCredentials { .. } => Some(crate::token::GrantKind::ClientCredentials),
            Phase::TokenExchange { .. } | Phase::JwtBearer { .. } => Some(crate::token::GrantKind::JwtBearer),
            _ => None,
        }
    }

    pub(super) fn at_token_endpoint(&self) -> bool {
        matches!(
            self,
            Phase::ExchangingCode { .. }
                | Phase::ClientCredentials { .. }
                | Phase::Refreshing { .. }
                | Phase::JwtBearer { .. }
                | Phase::DeviceToken { .. }
        )
    }
}

/// Where the moves that obtain a token may come from: a new request, the end of discovery,
/// entropy for a grant, or a token endpoint's answer that calls for a new grant.
const OBTAINING: &[StateName] =
    &[Idle, Failed, ResourceMetadata, ServerMetadata, AwaitingPreparation, Refreshing, ClientCredentials, JwtBearer, DeviceAuthorization];

/// The machine's state. See the module docs.
pub(crate) struct State {
    phase: Phase,
    /// While an input is handled: the phase it was taken from.
    taken: Option<StateName>,
}

impl State {
    /// A new machine: idle.
    pub(crate) fn new() -> Self {
        State { phase: Phase::Idle, taken: None }
    }

    /// The public name of the state.
    pub(crate) fn name(&self) -> StateName {
        self.taken.unwrap_or_else(|| self.phase.name())
    }

    /// When the login stops waiting for the redirect, if it waits.
    pub(crate) fn deadline(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::AwaitingRedirect { deadline, .. } => Some(*deadline),
            Phase::AwaitingDevice { login } => Some(login.next_poll),
            _ => None,
        }
    }

    /// The phase, to read.
    pub(super) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Takes the phase out to handle an input; the handler's move puts the next one in.
    pub(super) fn take(&mut self) -> Phase {
        debug_assert!(self.taken.is_none(), "an input is handled already");
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        self.taken = Some(phase.name());
        phase
    }

    /// True unless a taken phase still waits for its move.
    pub(super) fn settled(&self) -> bool {
        self.taken.is_none()
    }

    fn enter(&mut self, to: Phase, from: &[StateName]) -> Moved {
        let origin = self.name();
        debug_assert!(from.contains(&origin), "no move from {origin} to {}", to.name());
        self.phase = to;
        self.taken = None;
        Moved(())
    }

    /// The input changed nothing: the phase taken goes back as it was (`req` renamed after a
    /// DPoP nonce retry).
    pub(super) fn stay(&mut self, phase: Phase) -> Moved {
        let origin = self.name();
        self.enter(phase, &[origin])
    }

    /// The flow ended with tokens (or without, when none are held): a new request may start.
    pub(super) fn move_to_idle(&mut self) -> Moved {
        self.enter(Phase::Idle, &[Idle, Failed, Refreshing, ExchangingCode, ClientCredentials, JwtBearer, AwaitingDevice])
    }

    /// A logout is done, from wherever it ended (its discovery or entropy may fail): idle.
    pub(super) fn move_to_logged_out(&mut self) -> Moved {
        let origin = self.name();
        self.enter(Phase::Idle, &[origin])
    }

    /// Sends a revocation request: after discovery, entropy, or the one before.
    pub(super) fn move_to_revoking(&mut self, req: RequestId, hint: TokenHint, nonce: Option<[u8; 16]>) -> Moved {
        self.enter(Phase::Revoking { req, hint, nonce }, &[Idle, Failed, ResourceMetadata, ServerMetadata, AwaitingPreparation, Revoking])
    }

    /// The flow failed; from anywhere.
    pub(super) fn move_to_failed(&mut self) {
        let _ = self.enter(Phase::Failed, &[self.name()]);
    }

    pub(super) fn move_to_resource_metadata(&mut self, req: RequestId, candidates: Vec<(Url, Url)>, index: usize) -> Moved {
        self.enter(
            Phase::ResourceMetadata { req, candidates, index },
            &[Idle, Failed, ResourceMetadata, AwaitingPreparation, Refreshing, ClientCredentials, JwtBearer],
        )
    }

    pub(super) fn move_to_server_metadata(
        &mut self,
        req: RequestId,
        issuers: Vec<String>,
        issuer_index: usize,
        candidates: Vec<Url>,
        index: usize,
        legacy: bool,
    ) -> Moved {
        // From Idle: a logout asks the tokens' issuer directly.
        self.enter(
            Phase::ServerMetadata { req, issuers, issuer_index, candidates, index, legacy },
            &[Idle, Failed, ResourceMetadata, ServerMetadata],
        )
    }

    /// Entropy (and a listener, for a login) before the attempt; returns the plan to ask with.
    pub(super) fn move_to_awaiting_preparation(&mut self, preparing: Preparing) -> (AttemptPlan, Moved) {
        let redirect = if let Preparing::Login(r) = &preparing { Some(r.clone()) } else { None };
        let plan = AttemptPlan { redirect, device_login: matches!(preparing, Preparing::Device) };
        (plan, self.enter(Phase::AwaitingPreparation(preparing), OBTAINING))
    }

    pub(super) fn move_to_registration(
        &mut self,
        req: RequestId,
        attempt: Box<Attempt>,
        metadata: ClientMetadata,
        listening: bool,
    ) -> Moved {
        self.enter(Phase::Registration { req, attempt, metadata, listening }, &[AwaitingPreparation])
    }

    /// The browser is open (or the paste asked for); also the wait going on, with a new
    /// deadline or without the listener.
    pub(super) fn move_to_awaiting_redirect(&mut self, attempt: Box<Attempt>, deadline: Timestamp, listening: bool) -> Moved {
        self.enter(Phase::AwaitingRedirect { attempt, deadline, listening }, &[AwaitingPreparation, Registration, AwaitingRedirect])
    }

    pub(super) fn move_to_exchanging_code(&mut self, req: RequestId, attempt: Box<Attempt>) -> Moved {
        self.enter(Phase::ExchangingCode { req, attempt }, &[AwaitingRedirect])
    }

    pub(super) fn move_to_client_credentials(&mut self, req: RequestId, scope: Option<String>) -> Moved {
        self.enter(Phase::ClientCredentials { req, scope }, OBTAINING)
    }

    pub(super) fn move_to_refreshing(&mut self, req: RequestId, endpoint: Url) -> Moved {
        self.enter(Phase::Refreshing { req, endpoint }, OBTAINING)
    }

    pub(super) fn move_to_token_exchange(&mut self, req: RequestId, scope: Option<String>, nonce: Option<[u8; 16]>) -> Moved {
        self.enter(Phase::TokenExchange { req, scope, nonce }, OBTAINING)
    }

    pub(super) fn move_to_device_registration(&mut self, req: RequestId, metadata: ClientMetadata, nonce: [u8; 16]) -> Moved {
        self.enter(Phase::DeviceRegistration { req, metadata, nonce }, &[AwaitingPreparation])
    }

    pub(super) fn move_to_device_authorization(&mut self, req: RequestId, login: Box<DeviceLogin>) -> Moved {
        self.enter(Phase::DeviceAuthorization { req, login }, &[AwaitingPreparation, Registration])
    }

    /// The code is shown: wait for the next poll (again after each answer that says so).
    pub(super) fn move_to_awaiting_device(&mut self, login: Box<DeviceLogin>) -> Moved {
        self.enter(Phase::AwaitingDevice { login }, &[DeviceAuthorization, AwaitingDevice])
    }

    pub(super) fn move_to_device_token(&mut self, req: RequestId, login: Box<DeviceLogin>) -> Moved {
        self.enter(Phase::DeviceToken { req, login }, &[AwaitingDevice])
    }

    pub(super) fn move_to_jwt_bearer(&mut self, req: RequestId, scope: Option<String>) -> Moved {
        let mut from = OBTAINING.to_vec();
        from.push(TokenExchange);
        self.enter(Phase::JwtBearer { req, scope }, &from)
    }
}

impl Phase {
    /// The same phase, now waiting for `id` (a DPoP nonce retry replaced the request).
    pub(super) fn with_request(mut self, id: RequestId) -> Self {
        if let Phase::ExchangingCode { req, .. }
        | Phase::ClientCredentials { req, .. }
        | Phase::Refreshing { req, .. }
        | Phase::JwtBearer { req, .. }
        | Phase::DeviceToken { req, .. } = &mut self
        {
            *req = id;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every state, walked through an exhaustive match: a variant added to [`StateName`] does
    /// not compile until it is linked in here, and then must be in the diagram.
    fn every_state() -> BTreeSet<String> {
        let next = |s: &StateName| match s {
            Idle => Some(ResourceMetadata),
            ResourceMetadata => Some(ServerMetadata),
            ServerMetadata => Some(AwaitingPreparation),
            AwaitingPreparation => Some(Registration),
            Registration => Some(AwaitingRedirect),
            AwaitingRedirect => Some(ExchangingCode),
            ExchangingCode => Some(ClientCredentials),
            ClientCredentials => Some(Refreshing),
            Refreshing => Some(TokenExchange),
            TokenExchange => Some(JwtBearer),
            JwtBearer => Some(DeviceAuthorization),
            DeviceAuthorization => Some(AwaitingDevice),
            AwaitingDevice => Some(Revoking),
            Revoking => Some(Failed),
            Failed => None,
        };
        std::iter::successors(Some(Idle), next).map(|s| s.to_string()).collect()
    }

    /// The variants as `authorizer.rs` declares them (so a variant the walk skips is caught).
    fn declared_states() -> BTreeSet<String> {
        let source = include_str!("../authorizer.rs");
        let body = source.split("pub enum StateName {").nth(1).and_then(|b| b.split('}').next()).expect("StateName in authorizer.rs");
        body.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("//") && l.ends_with(','))
            .map(|l| l.trim_end_matches(',').to_owned())
            .collect()
    }

    /// The capitalised words of the `## States` diagram in the crate docs.
    fn diagram_words() -> BTreeSet<String> {
        let docs: Vec<&str> = include_str!("../lib.rs").lines().filter_map(|l| l.strip_prefix("//!")).collect();
        let start = docs.iter().position(|l| l.trim() == "## States").expect("a States section in lib.rs");
        let diagram = docs[start..]
            .iter()
            .skip_while(|l| l.trim() != "```text")
            .skip(1)
            .take_while(|l| l.trim() != "```")
            .flat_map(|l| l.split(|c: char| !c.is_ascii_alphabetic()))
            .filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase()))
            .map(str::to_owned)
            .collect::<BTreeSet<_>>();
        assert!(!diagram.is_empty(), "no diagram under ## States in lib.rs");
        diagram
    }

    #[test]
    fn the_state_diagram_names_every_state_and_no_other() {
        let states = every_state();
        assert_eq!(states, declared_states(), "the walk in every_state() and the StateName enum differ");
        let words = diagram_words();
        let missing: Vec<_> = states.difference(&words).collect();
        assert!(missing.is_empty(), "the state diagram in lib.rs lacks {missing:?}");
        // The diagram's other words are inputs, outputs and abbreviations, not states: a state
        // removed or renamed in the enum but left in the diagram fails here.
        const NOT_STATES: &[&str] = &[
            "TokenWanted",
            "Challenged",
            "Ready",
            "RejectCallback",
            "IdP",
            "ID",
            "JAG",
            "DCR",
            "LogoutWanted",
            "LoggedOut",
            "RFC",
            "A",
            "ShowDeviceCode",
        ];
        let unknown: Vec<_> = words.iter().filter(|w| !states.contains(*w) && !NOT_STATES.contains(&w.as_str())).collect();
        assert!(unknown.is_empty(), "the state diagram in lib.rs names {unknown:?}, which are not states");
    }

    #[test]
    fn phases_name_their_state() {
        let mut state = State::new();
        assert_eq!((state.name(), state.deadline()), (Idle, None));
        let _ = state.move_to_resource_metadata(RequestId(1), Vec::new(), 0);
        assert_eq!((state.name(), state.phase().outstanding()), (ResourceMetadata, Some(RequestId(1))));
        // While an input is handled, the state is the one taken from.
        let taken = state.take();
        assert!(!state.settled());
        assert_eq!(state.name(), ResourceMetadata);
        let _ = state.stay(taken);
        assert!(state.settled());
        state.move_to_failed();
        assert_eq!(state.name(), Failed);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "no move from Idle to AwaitingDevice")]
    fn a_move_from_the_wrong_state_panics_in_debug_builds() {
        let mut state = State::new();
        let _ = state.take();
        let login = DeviceLogin {
            client: crate::policy::metadata_document_client("https://as.example", "https://app.example/client.json"),
            registered: false,
            scope: None,
            resource: None,
            nonce: [0; 16],
            polls: 0,
            code: None,
            next_poll: Timestamp::ZERO,
        };
        let _ = state.move_to_awaiting_device(Box::new(login));
    }
}
