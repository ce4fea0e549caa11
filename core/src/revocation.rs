//! Logging out: RFC 7009 token revocation, then forgetting what is stored.
//!
//! [`Input::LogoutWanted`](crate::Input::LogoutWanted) revokes the held refresh token first
//! (RFC 7009 §2.1: an authorization server that revokes a refresh token should also invalidate
//! the access tokens of its grant), then the access token, at the authorization server's
//! `revocation_endpoint`, authenticated as the client the tokens were issued to. The tokens and
//! registrations are then forgotten ([`Persist`](crate::Persist)), unless the authorization
//! server could not be reached and [`IfUnreachable::Keep`] asked to keep them for a later try;
//! the flow ends with [`Output::LoggedOut`](crate::Output::LoggedOut) and a [`LogoutReport`]
//! that says what each revocation came to and whether anything was forgotten.

use crate::http::{HttpResponse, TransportFailure};
use crate::token::{oauth_error, token_request, ClientAuth};
use std::fmt;
use url::Url;

/// What a logout does with tokens it could not revoke because the authorization server could
/// not be reached (no answer, 5xx, 429, or its metadata unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfUnreachable {
    /// Keep everything, so that a later logout can revoke them (the default: forgetting a
    /// token that still works at the server does not log anybody out there).
    #[default]
    Keep,
    /// Forget them anyway (the authorization server is gone for good).
    Forget,
}

/// Which token a revocation request names (RFC 7009 §2.1 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    /// `refresh_token`.
    RefreshToken,
    /// `access_token`.
    AccessToken,
}

impl TokenHint {
    /// The `token_type_hint` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenHint::RefreshToken => "refresh_token",
            TokenHint::AccessToken => "access_token",
        }
    }
}

/// What became of one token at logout.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// The authorization server answered `200`: the token is revoked (or was already invalid,
    /// which RFC 7009 §2.2 answers the same way).
    Revoked,
    /// No such token was held: nothing to revoke.
    NotHeld,
    /// The authorization server offers no `revocation_endpoint` (revocation is optional): the
    /// token was only forgotten here, and stays valid until it expires or the user revokes the
    /// grant at the authorization server.
    NoEndpoint,
    /// The request was not sent; why (the authorization server could not be discovered, it is
    /// not the one that issued the tokens, no registration for them is held).
    NotSent(String),
    /// The authorization server refused; what it said. Trying again would not help.
    Failed(String),
    /// The authorization server could not be reached, or failed (no answer, 5xx, 429); why.
    /// Trying again later may work.
    Unavailable(String),
}

impl Revocation {
    /// True unless a held token may still be valid at the authorization server.
    pub fn is_settled(&self) -> bool {
        matches!(self, Revocation::Revoked | Revocation::NotHeld)
    }
}

impl fmt::Display for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revocation::Revoked => f.write_str("revoked"),
            Revocation::NotHeld => f.write_str("none held"),
            Revocation::NoEndpoint => f.write_str("not revoked: the authorization server offers no revocation endpoint"),
            Revocation::NotSent(why) => write!(f, "not revoked: {why}"),
            Revocation::Failed(why) | Revocation::Unavailable(why) => write!(f, "not revoked: {why}"),
        }
    }
}

/// What a logout did: each token's revocation, and whether the tokens and registrations were
/// forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutReport {
    /// The issuer of the tokens, if any were held.
    pub issuer: Option<String>,
    /// The refresh token's revocation.
    pub refresh_token: Revocation,
    /// The access token's revocation.
    pub access_token: Revocation,
    /// The tokens and registrations were forgotten. False only when the authorization server
    /// could not be reached and [`IfUnreachable::Keep`] kept them for a later logout.
    pub forgotten: bool,
}

impl LogoutReport {
    /// A report with nothing revoked yet: held tokens are [`Revocation::NotSent`] until a
    /// request settles them.
    pub(crate) fn new(tokens: Option<&crate::TokenSet>) -> Self {
        let pending = |held: bool| if held { Revocation::NotSent("logout did not finish".into()) } else { Revocation::NotHeld };
        LogoutReport {
            issuer: tokens.map(|t| t.issuer.clone()),
            refresh_token: pending(tokens.is_some_and(|t| t.refresh_token.is_some())),
            access_token: pending(tokens.is_some()),
            forgotten: true,
        }
    }

    /// True if a revocation could not reach the authorization server (trying later may work).
    pub fn unreachable(&self) -> bool {
        matches!(self.refresh_token, Revocation::Unavailable(_)) || matches!(self.access_token, Revocation::Unavailable(_))
    }

    /// True if every held token is known to be revoked.
    pub fn all_revoked(&self) -> bool {
        self.refresh_token.is_settled() && self.access_token.is_settled()
    }

    /// The outcome for one token.
    pub fn get(&self, hint: TokenHint) -> &Revocation {
        match hint {
            TokenHint::RefreshToken => &self.refresh_token,
            TokenHint::AccessToken => &self.access_token,
        }
    }

    pub(crate) fn slot(&mut self, hint: TokenHint) -> &mut Revocation {
        match hint {
            TokenHint::RefreshToken => &mut self.refresh_token,
            TokenHint::AccessToken => &mut self.access_token,
        }
    }

    /// The next held token still to revoke: the refresh token first.
    pub(crate) fn next_pending(&self) -> Option<TokenHint> {
        [TokenHint::RefreshToken, TokenHint::AccessToken].into_iter().find(|h| matches!(self.get(*h), Revocation::NotSent(_)))
    }

    /// Settles every token still pending with `outcome`.
    pub(crate) fn settle_pending(&mut self, outcome: Revocation) {
        for hint in [TokenHint::RefreshToken, TokenHint::AccessToken] {
            let slot = self.slot(hint);
            if matches!(slot, Revocation::NotSent(_)) {
                *slot = outcome.clone();
            }
        }
    }
}

/// The RFC 7009 §2.1 request: `token` and `token_type_hint`, with client authentication.
pub(crate) fn revocation_request(endpoint: &Url, token: &str, hint: TokenHint, auth: &ClientAuth<'_>) -> crate::http::HttpRequest {
    let form = vec![("token", token.to_owned()), ("token_type_hint", hint.as_str().to_owned())];
    token_request(endpoint, form, auth)
}

/// Reads the authorization server's answer (RFC 7009 §2.2): `200` is success; an error body's
/// code (`unsupported_token_type`, `invalid_client`) is a failure, a 5xx, a 429 or no answer
/// at all an unavailable server,
/// described without anything the server may have echoed beyond its error code.
pub(crate) fn revocation_outcome(result: &Result<HttpResponse, TransportFailure>) -> Revocation {
    let resp = match result {
        Ok(resp) => resp,
        Err(t) => return Revocation::Unavailable(format!("no answer from the authorization server ({:?})", t.kind)),
    };
    let status = resp.status().as_u16();
    if status == 200 {
        return Revocation::Revoked;
    }
    // Only the code's printable ASCII (RFC 6749 §5.2's NQSCHAR): a hostile server's bytes are not echoed.
    let code = oauth_error(resp.body())
        .map(|e| crate::error::bounded(&e.error.as_str().chars().filter(char::is_ascii_graphic).collect::<String>()));
    let said = match code {
        Some(code) => format!("the authorization server answered {status} {code}"),
        None => format!("the authorization server answered {status}"),
    };
    if status >= 500 || status == 429 {
        Revocation::Unavailable(said)
    } else {
        Revocation::Failed(said)
    }
}
