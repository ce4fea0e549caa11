//! Ground truth for simulations: what the authorization server issued, to which client, when
//! (by its own clock), what clients presented back, and what was revoked.
//!
//! Everything is appended in the order it happened and never removed, so a reader can keep a
//! cursor per list and look only at what is new. Times are the server's clock in milliseconds
//! ([`TestServer::set_time`](crate::TestServer::set_time); 0 while no clock was set).

use std::collections::HashMap;

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
}

/// One grant: an authorization (a code exchange, a client credentials or JWT bearer grant) and
/// every token issued under it, refreshes included.
#[derive(Debug, Clone)]
pub struct GrantRecord {
    /// Its id (the index in [`Ledger::grants`]).
    pub id: u64,
    /// The client it was made for.
    pub client_id: String,
    /// `authorization_code`, `client_credentials`, or the JWT bearer grant type.
    pub grant_type: String,
    /// The scope granted.
    pub scope: Vec<String>,
    /// When it was made.
    pub created_at: u64,
    /// When it was revoked (every token of it with it).
    pub revoked_at: Option<u64>,
    /// The newest access token issued under it (an index in [`Ledger::issued`]).
    pub last_access: Option<usize>,
    /// The newest refresh token issued under it (an index in [`Ledger::issued`]).
    pub last_refresh: Option<usize>,
}

/// One token as issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The token.
    pub value: String,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The grant it belongs to.
    pub grant: u64,
    /// The client it was issued to.
    pub client_id: String,
    /// Its scope.
    pub scope: Vec<String>,
    /// The `resource` it was issued for.
    pub resource: Option<String>,
    /// When it was issued.
    pub issued_at: u64,
    /// `expires_in` as told to the client (access tokens; `None`: not said, never expires).
    pub lifetime_secs: Option<u64>,
    /// When it was revoked.
    pub revoked_at: Option<u64>,
    /// Refresh tokens: when the server redeemed it and rotation made it unusable.
    pub spent_at: Option<u64>,
}

impl Issued {
    /// When an access token stops being accepted (`None`: never, by time).
    pub fn expires_at(&self) -> Option<u64> {
        self.lifetime_secs.map(|l| self.issued_at.saturating_add(l.saturating_mul(1000)))
    }

    /// True if the server accepts it at `now`: not revoked, not spent, not expired.
    pub fn is_live(&self, now: u64) -> bool {
        self.revoked_at.is_none() && self.spent_at.is_none() && self.expires_at().is_none_or(|e| now < e)
    }
}

/// One authorization code.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    /// The code.
    pub value: String,
    /// The client it was issued to.
    pub client_id: String,
    /// When the authorization endpoint issued it.
    pub issued_at: u64,
    /// When the token endpoint redeemed it.
    pub redeemed_at: Option<u64>,
}

/// What was presented at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// A refresh token.
    RefreshToken,
    /// An authorization code.
    Code,
}

/// One refresh token or code that reached the token endpoint's grant logic (after DPoP nonce
/// and client authentication checks).
#[derive(Debug, Clone)]
pub struct Presentation {
    /// When.
    pub at: u64,
    /// A refresh token or a code.
    pub what: Presented,
    /// The value presented.
    pub value: String,
    /// The client that authenticated.
    pub client_id: String,
    /// `None`: redeemed; otherwise the OAuth error it was refused with.
    pub refused: Option<String>,
}

/// One dynamic registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The client id issued.
    pub client_id: String,
    /// The secret issued, if any.
    pub secret: Option<String>,
    /// When.
    pub at: u64,
}

/// The server's record of everything it issued and saw presented.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Every grant, by id.
    pub grants: Vec<GrantRecord>,
    /// Every access and refresh token, in order of issue.
    pub issued: Vec<Issued>,
    /// Every authorization code, in order of issue.
    pub codes: Vec<CodeRecord>,
    /// Every refresh token or code that reached the grant logic, in order.
    pub presentations: Vec<Presentation>,
    /// Every dynamic registration, in order.
    pub registrations: Vec<Registration>,
    by_value: HashMap<String, usize>,
    code_by_value: HashMap<String, usize>,
}

impl Ledger {
    /// A token by its value.
    pub fn token(&self, value: &str) -> Option<&Issued> {
        self.by_value.get(value).map(|&i| &self.issued[i])
    }

    /// A code by its value.
    pub fn code(&self, value: &str) -> Option<&CodeRecord> {
        self.code_by_value.get(value).map(|&i| &self.codes[i])
    }

    /// A grant by id.
    pub fn grant(&self, id: u64) -> Option<&GrantRecord> {
        usize::try_from(id).ok().and_then(|i| self.grants.get(i))
    }

    /// The newest access token of a grant.
    pub fn last_access(&self, grant: u64) -> Option<&Issued> {
        self.grant(grant).and_then(|g| g.last_access).map(|i| &self.issued[i])
    }

    /// The newest refresh token of a grant, if it can still be redeemed.
    pub fn live_refresh(&self, grant: u64, now: u64) -> Option<&Issued> {
        self.grant(grant).and_then(|g| g.last_refresh).map(|i| &self.issued[i]).filter(|t| t.is_live(now))
    }

    /// Ids of grants not revoked.
    pub fn unrevoked_grants(&self) -> impl Iterator<Item = u64> + '_ {
        self.grants.iter().filter(|g| g.revoked_at.is_none()).map(|g| g.id)
    }

    pub(crate) fn new_grant(&mut self, client_id: &str, grant_type: &str, scope: &[String], now: u64) -> u64 {
        let id = self.grants.len() as u64;
        self.grants.push(GrantRecord {
            id,
            client_id: client_id.to_owned(),
            grant_type: grant_type.to_owned(),
            scope: scope.to_vec(),
            created_at: now,
            revoked_at: None,
            last_access: None,
            last_refresh: None,
        });
        id
    }

    pub(crate) fn issue(&mut self, t: Issued) {
        let i = self.issued.len();
        if let Some(g) = usize::try_from(t.grant).ok().and_then(|g| self.grants.get_mut(g)) {
            match t.kind {
                TokenKind::Access => g.last_access = Some(i),
                TokenKind::Refresh => g.last_refresh = Some(i),
            }
        }
        self.by_value.insert(t.value.clone(), i);
        self.issued.push(t);
    }

    pub(crate) fn code_issued(&mut self, value: &str, client_id: &str, now: u64) {
        self.code_by_value.insert(value.to_owned(), self.codes.len());
        self.codes.push(CodeRecord { value: value.to_owned(), client_id: client_id.to_owned(), issued_at: now, redeemed_at: None });
    }

    pub(crate) fn code_redeemed(&mut self, value: &str, now: u64) {
        if let Some(&i) = self.code_by_value.get(value) {
            self.codes[i].redeemed_at.get_or_insert(now);
        }
    }

    pub(crate) fn presented(&mut self, what: Presented, value: &str, client_id: &str, refused: Option<&str>, now: u64) {
        self.presentations.push(Presentation {
            at: now,
            what,
            value: value.to_owned(),
            client_id: client_id.to_owned(),
            refused: refused.map(str::to_owned),
        });
    }

    pub(crate) fn spent(&mut self, value: &str, now: u64) {
        if let Some(&i) = self.by_value.get(value) {
            self.issued[i].spent_at.get_or_insert(now);
        }
    }

    pub(crate) fn revoked(&mut self, value: &str, now: u64) {
        if let Some(&i) = self.by_value.get(value) {
            self.issued[i].revoked_at.get_or_insert(now);
        }
    }

    pub(crate) fn grant_revoked(&mut self, grant: u64, now: u64) {
        if let Some(g) = usize::try_from(grant).ok().and_then(|g| self.grants.get_mut(g)) {
            g.revoked_at.get_or_insert(now);
        }
        for t in self.issued.iter_mut().filter(|t| t.grant == grant) {
            t.revoked_at.get_or_insert(now);
        }
    }
}
