//! The simulated token store: keyed like the adapters' stores (one entry per MCP server key and
//! issuer; the newest tokens by `obtained_at` are restored), and every entry lives as JSON, so
//! each load parses what the last persist serialized, as a file store would.
//!
//! Mirrors `adapters/src/store.rs` (`Entry`, `Entry::apply`, `restored`).

use mcp_oauth_core::{ClientInfo, Config, Persist, Restored, TokenSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The store key for one configuration, the only place that says how entries are keyed: as
/// the adapters key them (`OAuthClient::with_parts`: `config.store_key()`, the server URL plus
/// the configured principal, so a service and a person never share an entry).
pub fn store_key(config: &Config) -> String {
    config.store_key()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Entry {
    #[serde(default)]
    version: u32,
    server: String,
    issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client: Option<ClientInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens: Option<TokenSet>,
}

fn issuer_of(p: &Persist) -> &str {
    match p {
        Persist::Client(c) => &c.issuer,
        Persist::ForgetClient { issuer } | Persist::ForgetTokens { issuer } => issuer,
        Persist::Tokens(t) => &t.issuer,
        _ => "",
    }
}

#[derive(Default)]
pub struct Store {
    /// key -> issuer -> the entry as JSON.
    data: BTreeMap<String, BTreeMap<String, String>>,
    /// Every entry as written, before serialization: the writer's own copy (a file store reads
    /// the file back before it writes; that read is the one `load` does). The invariants look
    /// at it after every step; processes always parse the JSON.
    typed: BTreeMap<String, BTreeMap<String, Entry>>,
}

impl Store {
    fn parse(json: &str) -> Entry {
        serde_json::from_str(json).expect("the store reads back what it wrote")
    }

    /// Everything stored under `key`: registrations per issuer, and the newest tokens.
    pub fn load(&self, key: &str) -> Restored {
        let mut r = Restored::default();
        for json in self.data.get(key).into_iter().flat_map(|m| m.values()) {
            let e = Self::parse(json);
            if let Some(c) = e.client {
                r.clients.push(c);
            }
            if let Some(t) = e.tokens {
                if r.tokens.as_ref().is_none_or(|old| old.obtained_at < t.obtained_at) {
                    r.tokens = Some(t);
                }
            }
        }
        r
    }

    pub fn persist(&mut self, key: &str, p: &Persist) {
        let issuer = issuer_of(p).to_owned();
        let per = self.data.entry(key.to_owned()).or_default();
        let typed = self.typed.entry(key.to_owned()).or_default();
        let e = typed.entry(issuer.clone()).or_insert_with(|| Entry {
            version: 1,
            server: key.to_owned(),
            issuer: issuer.clone(),
            ..Default::default()
        });
        match p {
            Persist::Client(c) => e.client = Some(c.clone()),
            Persist::ForgetClient { .. } => e.client = None,
            Persist::Tokens(t) => e.tokens = Some(t.clone()),
            Persist::ForgetTokens { .. } => e.tokens = None,
            _ => {}
        }
        if e.client.is_none() && e.tokens.is_none() {
            per.remove(&issuer);
            typed.remove(&issuer);
        } else {
            per.insert(issuer, serde_json::to_string(&*e).expect("entries serialize"));
        }
    }

    /// The tokens stored under `key` for every issuer (for the invariants).
    pub fn tokens(&self, key: &str) -> impl Iterator<Item = &TokenSet> {
        self.typed.get(key).into_iter().flat_map(|m| m.values()).filter_map(|e| e.tokens.as_ref())
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.data.keys()
    }
}
