//! [`RedisStore`]: one store for a fleet of workers on many machines, on Redis or Valkey.
//!
//! Keys (all of one server's in one Cluster slot, thanks to the `{…}` hash tag):
//!
//! * `PREFIX[:SUBJECT]:{H}:entries`: a hash, one field per issuer, holding the entry (the
//!   registration and tokens, as a [`FileStore`](super::FileStore) file holds them), where `H`
//!   is a hash of the store key;
//! * `PREFIX[:SUBJECT]:{H}:revision`: a random number, new with every save and forget that
//!   changes the tokens (set by the same script that writes), kept when the entries go
//!   ([`TokenStore::revision`]);
//! * `PREFIX[:SUBJECT]:{H}:lease`: the refresh lock, a lease: set if absent (`PX`) to a random token,
//!   renewed by the holder while it works, released by compare-and-delete;
//! * `PREFIX[:SUBJECT]:{H}:done`: the channel a holder publishes on when it lets go, so waiters
//!   wake at once instead of polling (they still poll once a second, should a message be lost);
//! * `PREFIX[:SUBJECT]:servers`: the store keys held, for listing; with encryption, the hash
//!   `PREFIX[:SUBJECT]:servers:sealed` instead, each key sealed (a server's URL and principal
//!   are not left readable in Redis).
//!
//! (`{`, `}` and `%` in the prefix or subject are written `%7B`, `%7D` and `%25`, so the hash
//! tag is always the server's.) `H` is not keyed: whoever can list the keys can confirm a
//! guessed server and principal, encryption or not (a keyed name would change with every key
//! rotation). Encryption keeps values and the listing unreadable, not which servers a guess
//! names.
//!
//! **Eviction.** The store needs `maxmemory-policy noeviction` (Redis's default): a Redis that
//! may evict under memory pressure would drop a held lease (`volatile-*`: two workers refresh
//! at once) or the tokens themselves (`allkeys-*`). Such a Redis is refused
//! ([`StoreError::Misconfigured`], saying why), asked on each new connection; a Cluster's
//! nodes are not asked.
//!
//! **Cluster resharding.** While a server's slot is being moved, its first save of tokens after
//! an upgrade from a version without the revision key, and any save while the server holds
//! nothing (a first login, a login after a logout), is refused with a retryable error until the
//! move ends: Redis refuses a script naming a key that is not there yet.
//!
//! **Fencing.** A write made while holding the lease runs as one script that first checks the
//! lease still holds this holder's token: a holder that was paused, killed or cut off past its
//! lease, and whose lease another worker then took, cannot overwrite what the new holder wrote
//! ([`StoreError::LeaseLost`]).
//!
//! **Failures.** Redis unreachable, slow or restarting is a [`StoreError::Redis`] (retryable:
//! nothing is forgotten, and no login starts because the store could not be read); every
//! command has a deadline (5 s by default), and the next call reconnects.
//!
//! **TLS**: `rediss://` (and `rediss+cluster://`, `rediss+sentinel://`) trusts the system's
//! roots, or the CA given by [`RedisStore::open_with_tls`] ([`RedisTls`]), which can also present
//! a client certificate (mutual TLS).
//!
//! **Cluster and Sentinel** ([`RedisStore::open`] takes `redis+cluster://` and
//! `redis+sentinel://` URLs). On a Cluster every server's keys live in one slot, so the lease,
//! the fenced write and the release each run as one script on one node; waiters subscribe on
//! any node, since a Cluster delivers `PUBLISH` to all. A master down on a Cluster without a
//! replica, or during a Sentinel failover, is a retryable error for the servers it holds
//! until it is back or replaced. Replication is asynchronous: a write acknowledged by a master
//! that dies before its replica has it is lost in the failover, as any Redis write is; the
//! lost tokens cost a refresh or a login, never someone else's tokens.
//!
//! **Encryption at rest** ([`RedisStore::with_encryption`]): each value is sealed with
//! XChaCha20-Poly1305 under the current key of an [`EncryptionKeys`] set, tagged with its key id
//! (so keys rotate: older ids still decrypt, new writes use the current one), and bound to where
//! it lives (prefix, subject, server, issuer), so a value copied elsewhere does not decrypt. A
//! value that does not decrypt (a wrong or missing key, a value stored unencrypted, a tampered
//! or moved one) is a [`StoreError::Undecryptable`]: reported, never read as "nothing stored",
//! never overwritten (only [`forget`](TokenStore::forget) removes it). Without a key, entries
//! are stored as they are: then protect Redis as you would the secrets (ACLs, `rediss://`).
//!
//! What encryption does not give is freshness: whoever can write to Redis can put back an older
//! value of the same entry, as they can delete it (nothing kept in Redis alone can tell an old
//! value from a current one to a process that never saw the newer). That costs the client at
//! worst a refused refresh and a new login; it reveals no token, and never hands one server's
//! or subject's tokens to another.

use super::{fresh_revision, hex16, issuer_of, restored, Entry, StoreError, StoreLock, StoredServer, TokenStore};
use ::redis::{Commands, Connection};
use mcp_oauth_core::{Persist, Restored};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a lease lasts unless renewed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// How long one Redis command may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`TokenStore::lock`] waits for another holder (a browser login may hold the lease
/// for minutes).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(600);
/// Idle connections kept per store (and its clones).
const MAX_IDLE: usize = 8;
/// How long a connection may sit idle and still be used (NAT gateways drop idle flows after a
/// few minutes, AWS's after 350 s, without telling either end).
const MAX_IDLE_AGE: Duration = Duration::from_secs(60);
/// The key prefix unless one is given.
pub const DEFAULT_PREFIX: &str = "mcp-oauth";

/// The write, fenced: `ARGV[1]` is the holder's lease token (empty: not holding one, and then
/// the lease is not named: a key named but absent makes Redis Cluster refuse the script while
/// the slot is being moved), then the field and the value (empty: delete the field), then the
/// server's new revision if the write moves it (else empty). `KEYS[1]` is the entries, then the
/// revision if it moves, then the lease if fenced. Returns how many entries are left.
const FENCED_WRITE: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[#KEYS]) ~= ARGV[1] then
  return redis.error_reply('MCPOAUTH_LEASE_LOST the lease on this server is no longer held')
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4])
end
return redis.call('HLEN', KEYS[1])
";

/// Takes the lease for `ARGV[1]` for `ARGV[2]` ms: 1 if taken, 0 if another holder has it. A
/// lease already this token's counts as taken (a repeat after a lost reply), so the taker
/// never waits out its own lease.
const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Renews the lease if it is still this holder's.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Releases the lease if it is still this holder's, and wakes the waiters (`ARGV[2]` is the
/// channel: a channel is not a key, and naming it among the keys would make Redis Cluster
/// refuse the script (TRYAGAIN) while the slot is being moved).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[2], '1')
return 1
";

/// A token store on Redis or Valkey (see the [module docs](self)).
///
/// ```no_run
/// use mcp_oauth_client::{RedisStore, TokenStore};
/// let store = RedisStore::open("redis://127.0.0.1:6379/")?.with_subject("tenant-42");
/// println!("{} servers", store.servers()?.len());
/// # Ok::<(), mcp_oauth_client::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    /// Where Redis is, and the TLS it was built with (both replaced when certificate files
    /// change), shared by clones.
    target: Arc<std::sync::RwLock<(Arc<Target>, RedisTls)>>,
    /// `user:password@` (percent-encoded) for Sentinels that ask for it, or "".
    sentinel_auth: String,
    url: String,
    /// Idle connections, taken by one call at a time (threads of one process do not queue
    /// behind one connection).
    pool: Arc<Mutex<Vec<(Conn, Instant)>>>,
    prefix: String,
    subject: Option<String>,
    lease: Duration,
    timeout: Duration,
    lock_wait: Duration,
    encryption: Option<EncryptionKeys>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &shown_url(&self.url))
            .field("prefix", &self.prefix)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The keys that seal a [`RedisStore`]'s values: the current one (new writes) and older ones
/// (still read). `Debug` shows the key ids only.
#[derive(Clone)]
pub struct EncryptionKeys {
    current: String,
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKeys")
            .field("current", &self.current)
            .field("ids", &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>())
            .finish()
    }
}

/// What sealed values start with.
const SEALED: &str = "mcpoauth:enc1:";

impl EncryptionKeys {
    /// One key, the current one, under `id` (letters, digits, `-`, `_`, `.`).
    pub fn new(id: &str, key: [u8; 32]) -> Result<Self, StoreError> {
        Self::check_id(id)?;
        Ok(EncryptionKeys { current: id.to_owned(), keys: vec![(id.to_owned(), key)] })
    }

    /// Adds an older key, still read (values it sealed are re-sealed with the current key on
    /// their next write).
    pub fn with_older(mut self, id: &str, key: [u8; 32]) -> Result<Self, StoreError> {
        Self::check_id(id)?;
        if self.keys.iter().any(|(k, _)| k == id) {
            return Err(Self::bad("a key id is given twice".into()));
        }
        self.keys.push((id.to_owned(), key));
        Ok(self)
    }

    /// Parses `ID:BASE64KEY[,ID:BASE64KEY…]`, the current key first (32 bytes each, standard
    /// or URL-safe base64). Errors never repeat a key.
    pub fn parse(spec: &str) -> Result<Self, StoreError> {
        use base64::Engine as _;
        let mut keys: Option<EncryptionKeys> = None;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            // Errors name the key's position, never its text (an id and a key swapped would
            // otherwise print the key).
            let n = keys.as_ref().map_or(1, |k| k.keys.len() + 1);
            let (id, b64) = part.split_once(':').ok_or_else(|| Self::bad("each key is ID:BASE64KEY".into()))?;
            Self::check_id(id)?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64.trim().trim_end_matches('=')))
                .map_err(|_| Self::bad(format!("key {n} is not base64")))?;
            let key: [u8; 32] = raw.try_into().map_err(|_| Self::bad(format!("key {n} is not 32 bytes")))?;
            keys = Some(match keys {
                None => EncryptionKeys::new(id, key)?,
                Some(k) => k.with_older(id, key)?,
            });
        }
        keys.ok_or_else(|| Self::bad("no key given".into()))
    }

    /// [`parse`](Self::parse) of an environment variable; `Ok(None)` when it is unset or empty.
    pub fn from_env(var: &str) -> Result<Option<Self>, StoreError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// [`parse`](Self::parse) of a file's contents (a secret file, as mounted by an
    /// orchestrator).
    pub fn from_file(path: &std::path::Path) -> Result<Self, StoreError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StoreError::Misconfigured { message: format!("cannot read the encryption key file {}: {e}", path.display()) })?;
        Self::parse(&text)
    }

    fn check_id(id: &str) -> Result<(), StoreError> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(Self::bad("a key id is 1 to 64 letters, digits, `-`, `_` or `.`".into()));
        }
        Ok(())
    }

    fn bad(why: String) -> StoreError {
        StoreError::Misconfigured { message: format!("encryption keys: {why}") }
    }

    fn cipher(key: &[u8; 32]) -> chacha20poly1305::XChaCha20Poly1305 {
        use chacha20poly1305::KeyInit as _;
        chacha20poly1305::XChaCha20Poly1305::new(&(*key).into())
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<String, StoreError> {
        use base64::Engine as _;
        use chacha20poly1305::aead::{Aead as _, Payload};
        let key = &self.keys.iter().find(|(id, _)| *id == self.current).unwrap_or_else(|| unreachable!("the current key is held")).1;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Redis { message: format!("no randomness for a nonce: {e}") })?;
        let sealed = Self::cipher(key)
            .encrypt(&nonce.into(), Payload { msg: plain, aad })
            .map_err(|_| StoreError::Redis { message: "encryption failed".into() })?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!("{SEALED}{}:{}", self.current, base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)))
    }

    fn open(&self, value: &str, aad: &[u8]) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        use chacha20poly1305::aead::{Aead as _, Payload};
        let Some(rest) = value.strip_prefix(SEALED) else {
            return Err("it is stored unencrypted, and this store requires encryption".into());
        };
        let (id, b64) = rest.split_once(':').ok_or("it is not a sealed value")?;
        let key = &self.keys.iter().find(|(k, _)| k == id).ok_or_else(|| format!("it was sealed with key `{id}`, which is not given"))?.1;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64).map_err(|_| "it is not a sealed value".to_owned())?;
        if raw.len() < 24 + 16 {
            return Err("it is not a sealed value".into());
        }
        let (nonce, sealed) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| "it is not a sealed value".to_owned())?;
        Self::cipher(key)
            .decrypt(&nonce.into(), Payload { msg: sealed, aad })
            .map_err(|_| format!("it does not decrypt with key `{id}` (a wrong key, or a value changed or moved)"))
    }
}

/// TLS for a [`RedisStore`] beyond the system's roots: the CA that signed the servers'
/// certificates, and a client certificate for mutual TLS. `Debug` shows what is set, never the
/// key.
#[derive(Clone, Default)]
pub struct RedisTls {
    roots: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
    /// The files read by [`from_files`](Self::from_files): read again when they change.
    files: Option<TlsFiles>,
}

/// How long certificate files must have been still before they are read again.
const TLS_SETTLE: Duration = Duration::from_secs(2);

/// The PEM files of a [`RedisTls`], and what they were when read (modification time, size).
#[derive(Clone)]
struct TlsFiles {
    paths: [Option<std::path::PathBuf>; 3],
    stamp: Stamp,
    /// A change seen, and when (by the monotonic clock: file times may come from another
    /// clock, or the future).
    seen: Arc<Mutex<Option<(Stamp, Instant)>>>,
}

/// Each file's modification time and size (`None`: unreadable).
type Stamp = Vec<Option<(std::time::SystemTime, u64)>>;

impl TlsFiles {
    fn stamp(paths: &[Option<std::path::PathBuf>; 3]) -> Stamp {
        paths.iter().map(|p| p.as_ref().and_then(|p| std::fs::metadata(p).ok()).and_then(|m| Some((m.modified().ok()?, m.len())))).collect()
    }
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls").field("roots", &self.roots.is_some()).field("client_certificate", &self.client.is_some()).finish()
    }
}

impl RedisTls {
    /// Trusts the CA certificates in `pem` (instead of the system's roots).
    pub fn with_roots_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots = Some(pem.into());
        self
    }

    /// Presents this client certificate and its private key (PEM) for mutual TLS.
    pub fn with_client_pem(mut self, certificate: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.client = Some((certificate.into(), key.into()));
        self
    }

    /// Reads the PEM files: a CA, and a client certificate with its key (both or neither).
    /// Errors name the file, never its contents. A store using them reads them again when
    /// they change (certificates renewed in place): its next new connection presents the new
    /// ones.
    pub fn from_files(
        roots: Option<&std::path::Path>,
        client_certificate: Option<&std::path::Path>,
        client_key: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| StoreError::Misconfigured { message: format!("cannot read {}: {e}", p.display()) })
        };
        let paths = [roots.map(Into::into), client_certificate.map(Into::into), client_key.map(Into::into)];
        // Stamped before reading: a change while they are read is seen next time.
        let stamp = TlsFiles::stamp(&paths);
        let mut tls = RedisTls { files: Some(TlsFiles { paths, stamp, seen: Arc::default() }), ..RedisTls::default() };
        if let Some(p) = roots {
            tls = tls.with_roots_pem(read(p)?);
        }
        match (client_certificate, client_key) {
            (Some(c), Some(k)) => tls = tls.with_client_pem(read(c)?, read(k)?),
            (None, None) => {}
            _ => {
                return Err(StoreError::Misconfigured {
                    message: "a client certificate for Redis needs both its certificate and its key".into(),
                })
            }
        }
        Ok(tls)
    }

    fn is_empty(&self) -> bool {
        self.roots.is_none() && self.client.is_none()
    }

    /// Read again from its files if they changed since (certificates renewed in place, as
    /// cert-manager and SPIFFE do), else `None`.
    fn renewed(&self) -> Option<Result<RedisTls, StoreError>> {
        let files = self.files.as_ref()?;
        let stamp = TlsFiles::stamp(&files.paths);
        if stamp == files.stamp {
            return None;
        }
        // A renewal writes the certificate and the key one after the other: not taken until
        // the files have been seen unchanged for a moment, so a new certificate is never
        // paired with the old key.
        let now = std::time::SystemTime::now();
        let settled = stamp.iter().flatten().all(|(modified, _)| now.duration_since(*modified).is_ok_and(|age| age >= TLS_SETTLE));
        if !settled {
            // Changed a moment ago, or stamped by another clock (or in the future): taken once
            // seen unchanged for a moment by our own clock.
            let mut seen = files.seen.lock().unwrap_or_else(|e| e.into_inner());
            match &*seen {
                Some((s, since)) if *s == stamp => {
                    if since.elapsed() < TLS_SETTLE {
                        return None;
                    }
                }
                _ => {
                    log::debug!("mcp-oauth: the Redis TLS files changed; using them once they have been still for a moment");
                    *seen = Some((stamp, Instant::now()));
                    return None;
                }
            }
        }
        let [roots, cert, key] = &files.paths;
        Some(RedisTls::from_files(roots.as_deref(), cert.as_deref(), key.as_deref()))
    }

    /// PEM that holds no certificate would leave the crate with an empty root store (every
    /// server refused, and nothing said why) or no client certificate: refused up front.
    fn check(&self) -> Result<(), StoreError> {
        let has = |pem: &[u8], label: &[u8]| pem.windows(label.len()).any(|w| w == label);
        let bad = |what: &str| Err(StoreError::Misconfigured { message: format!("the Redis TLS {what} holds no PEM block of its kind") });
        if self.roots.as_deref().is_some_and(|r| !has(r, b"-----BEGIN CERTIFICATE-----")) {
            return bad("CA");
        }
        if let Some((c, k)) = &self.client {
            if !has(c, b"-----BEGIN CERTIFICATE-----") {
                return bad("client certificate");
            }
            if !has(k, b"PRIVATE KEY-----") {
                return bad("client key");
            }
            // A renewal caught between its two writes (or copied with the files' old times) has
            // a new certificate and the old key: refused, so the pair in use stays.
            if client_pair_mismatched(c, k) {
                return Err(StoreError::Misconfigured {
                    message: "the Redis TLS client certificate and key do not belong together".into(),
                });
            }
        }
        Ok(())
    }

    fn certificates(&self) -> ::redis::TlsCertificates {
        ::redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|(c, k)| ::redis::ClientTlsConfig { client_cert: c.clone(), client_key: k.clone() }),
            root_cert: self.roots.clone(),
        }
    }

    /// A client for one node's URL, with these certificates if any.
    fn client(&self, url: &str) -> ::redis::RedisResult<::redis::Client> {
        if self.is_empty() {
            ::redis::Client::open(url)
        } else {
            ::redis::Client::build_with_tls(url, self.certificates())
        }
    }
}

/// Whether the client certificate's public key is not the key's (what the TLS handshake would
/// fail on). Anything that cannot be told here (PEM that does not parse, a key type without a
/// public key to compare) is left for the connection to report.
fn client_pair_mismatched(certificate: &[u8], key: &[u8]) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Ok(chain) = CertificateDer::pem_slice_iter(certificate).collect::<Result<Vec<_>, _>>() else { return false };
    let Ok(key) = PrivateKeyDer::from_pem_slice(key) else { return false };
    let Ok(signing) = rustls::crypto::ring::sign::any_supported_type(&key) else { return false };
    matches!(
        rustls::sign::CertifiedKey::new(chain, signing).keys_match(),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch))
    )
}

/// Where the store's Redis is, by the URL's scheme.
enum Target {
    /// One server (`redis://`, `rediss://`, `redis+unix://`).
    Node(::redis::Client),
    /// A Cluster (`redis+cluster://`, `rediss+cluster://`): the crate's cluster client follows
    /// the slots; `nodes` are the seeds, for the one plain connection a waiter subscribes on
    /// (a Cluster delivers `PUBLISH` to every node).
    Cluster { client: ::redis::cluster::ClusterClient, nodes: Vec<::redis::Client> },
    /// A master found through Sentinel (`redis+sentinel://`, `rediss+sentinel://`): asked anew
    /// for each new connection, so a failover is followed.
    Sentinel { sentinels: Vec<::redis::Client>, master: String, scheme: &'static str, userinfo: String, db: String, tls: RedisTls },
}

/// A connection to a server, or to a Cluster.
enum Conn {
    Node(Connection),
    Cluster(Box<::redis::cluster::ClusterConnection>),
}

impl ::redis::ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> ::redis::RedisResult<::redis::Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> ::redis::RedisResult<Vec<::redis::Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &::redis::Cmd) -> ::redis::RedisResult<::redis::Value> {
        match self {
            Conn::Node(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Node(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Node(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

/// `s` percent-encoded for a URL's userinfo: all but the unreserved characters.
fn userinfo_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The URL as `Debug` shows it: no userinfo even where a password holds an unencoded `/`
/// (everything up to the last `@` goes), no query.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    format!("{scheme}://{rest}")
}

/// `scheme://[userinfo@]host:port[,host:port…][/path]` split into its userinfo (still
/// percent-encoded, with its `@`), its hosts and its path segments.
fn split_multi_host(rest: &str) -> Result<(String, Vec<String>, Vec<String>), StoreError> {
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (authority[..=at].to_owned(), &authority[at + 1..]),
        None => (String::new(), authority),
    };
    let hosts: Vec<String> = hosts.split(',').map(str::to_owned).collect();
    if hosts.iter().any(|h| h.is_empty() || h.contains(['/', '@'])) {
        return Err(StoreError::Misconfigured { message: "a Redis URL names an empty or malformed host".into() });
    }
    if path.contains('@') {
        // A password with an unencoded `/`: the rest of it would be taken for the path (and
        // sent as a master name).
        return Err(StoreError::Misconfigured {
            message: "a Redis URL has an `@` after its hosts: percent-encode `/` in a password as %2F".into(),
        });
    }
    let path = path.split('/').filter(|p| !p.is_empty()).map(str::to_owned).collect();
    Ok((userinfo, hosts, path))
}

fn misconfigured(what: &str, e: &::redis::RedisError) -> StoreError {
    StoreError::Misconfigured { message: format!("{what} ({:?})", e.kind()) }
}

impl Target {
    /// `sentinel_auth`: `user:password@`, percent-encoded, for the Sentinels ("" for none).
    fn parse(url: &str, timeout: Duration, tls: &RedisTls, sentinel_auth: &str) -> Result<Target, StoreError> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let node_scheme = if scheme.starts_with("rediss+") { "rediss" } else { "redis" };
        tls.check()?;
        if !tls.is_empty() && !scheme.starts_with("rediss") {
            return Err(StoreError::Misconfigured {
                message: "TLS certificates are given, but the Redis URL is not rediss:// (or rediss+cluster://, rediss+sentinel://)".into(),
            });
        }
        match scheme {
            "redis+cluster" | "rediss+cluster" => {
                let (userinfo, hosts, path) = split_multi_host(rest)?;
                if !path.is_empty() {
                    return Err(StoreError::Misconfigured {
                        message: "a Redis Cluster has no databases: a redis+cluster:// URL ends at its hosts".into(),
                    });
                }
                let nodes = hosts
                    .iter()
                    .map(|h| tls.client(&format!("{node_scheme}://{userinfo}{h}/")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| misconfigured("not a Redis Cluster URL", &e))?;
                let mut builder = ::redis::cluster::ClusterClient::builder(nodes.iter().map(|n| n.get_connection_info().clone()))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(200);
                if !tls.is_empty() {
                    builder = builder.certs(tls.certificates());
                }
                let client = builder.build().map_err(|e| misconfigured("not a Redis Cluster URL", &e))?;
                Ok(Target::Cluster { client, nodes })
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let (userinfo, hosts, path) = split_multi_host(rest)?;
                let (master, db) = match path.as_slice() {
                    [master, ..] if !master.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) => {
                        return Err(StoreError::Misconfigured {
                            message: "a Sentinel master name is made of letters, digits, `.`, `_` and `-`".into(),
                        })
                    }
                    [master] => (master.clone(), "0".to_owned()),
                    [master, db] if db.parse::<u32>().is_ok() => (master.clone(), db.clone()),
                    _ => {
                        return Err(StoreError::Misconfigured {
                            message: "a redis+sentinel:// URL ends in /MASTER-NAME or /MASTER-NAME/DB".into(),
                        })
                    }
                };
                let sentinels = hosts
                    .iter()
                    .map(|h| tls.client(&format!("{node_scheme}://{sentinel_auth}{h}/")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| misconfigured("not a Redis Sentinel URL", &e))?;
                // The master's URL must parse too (its credentials, its database).
                tls.client(&format!("{node_scheme}://{userinfo}127.0.0.1:6379/{db}"))
                    .map_err(|e| misconfigured("not a Redis Sentinel URL", &e))?;
                Ok(Target::Sentinel { sentinels, master, scheme: node_scheme, userinfo, db, tls: tls.clone() })
            }
            _ => tls.client(url).map(Target::Node).map_err(|e| misconfigured("not a Redis URL", &e)),
        }
    }
}

fn plain_connection(client: &::redis::Client, timeout: Duration) -> ::redis::RedisResult<Connection> {
    let c = client.get_connection_with_timeout(timeout)?;
    c.set_read_timeout(Some(timeout))?;
    c.set_write_timeout(Some(timeout))?;
    Ok(c)
}

/// Whether a failed command may be repeated on a new connection: the socket failed, or the
/// server is no longer the master (a Sentinel failover demoted it).
fn reconnect_for(e: &::redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.code() == Some("READONLY")
}

fn redis_error(e: &::redis::RedisError) -> StoreError {
    if e.code() == Some("MCPOAUTH_LEASE_LOST") {
        return StoreError::LeaseLost;
    }
    StoreError::Redis { message: e.to_string() }
}

impl RedisStore {
    /// A store on the Redis at `url`:
    ///
    /// * one server: `redis://[user:password@]host:port[/db]`, `rediss://` for TLS,
    ///   `redis+unix:///path`;
    /// * a Cluster: `redis+cluster://[user:password@]host:port[,host:port…]` (`rediss+cluster://`
    ///   for TLS), the hosts being seeds: the client learns the slots and follows them (each
    ///   server's keys share one slot, so its scripts run on one node);
    /// * a master found through Sentinel:
    ///   `redis+sentinel://[user:password@]host:port[,host:port…]/MASTER-NAME[/db]`
    ///   (`rediss+sentinel://` for TLS), the hosts being Sentinels (the credentials and
    ///   database are the master's; Sentinels that ask for a password get
    ///   [`with_sentinel_auth`](Self::with_sentinel_auth)). Without TLS, the master's password
    ///   goes to whatever address the Sentinels name: authenticate the Sentinels, or use TLS. Each new connection asks the
    ///   Sentinels again, so the store follows a failover; meanwhile calls fail with a
    ///   retryable [`StoreError::Redis`].
    ///
    /// Nothing is connected yet; a URL that cannot be parsed is a
    /// [`StoreError::Misconfigured`] (which never repeats its password).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_tls(url, RedisTls::default())
    }

    /// [`open`](Self::open), for a `rediss://` URL (or `rediss+cluster://`,
    /// `rediss+sentinel://`) whose servers need more than the system's roots: a private CA,
    /// or a client certificate (mutual TLS). Certificates that do not parse, or given for a URL
    /// without TLS, are a [`StoreError::Misconfigured`].
    pub fn open_with_tls(url: &str, tls: RedisTls) -> Result<Self, StoreError> {
        Ok(RedisStore {
            target: Arc::new(std::sync::RwLock::new((Arc::new(Target::parse(url, DEFAULT_TIMEOUT, &tls, "")?), tls))),
            sentinel_auth: String::new(),
            url: url.to_owned(),
            pool: Arc::default(),
            prefix: DEFAULT_PREFIX.to_owned(),
            subject: None,
            lease: DEFAULT_LEASE,
            timeout: DEFAULT_TIMEOUT,
            lock_wait: DEFAULT_LOCK_WAIT,
            encryption: None,
        })
    }

    /// Credentials for Sentinels that ask for them (`requirepass` in `sentinel.conf`, or an
    /// ACL user: then `username` too); the URL's credentials are the master's. An error for a
    /// URL that is not `redis+sentinel://` (or `rediss+sentinel://`).
    pub fn with_sentinel_auth(mut self, username: Option<&str>, password: &str) -> Result<Self, StoreError> {
        let (target, tls) = self.target.read().unwrap_or_else(|e| e.into_inner()).clone();
        if !matches!(*target, Target::Sentinel { .. }) {
            return Err(StoreError::Misconfigured {
                message: "Sentinel credentials are given, but the Redis URL is not redis+sentinel://".into(),
            });
        }
        self.sentinel_auth = format!("{}:{}@", userinfo_encode(username.unwrap_or("")), userinfo_encode(password));
        let target = Target::parse(&self.url, self.timeout, &tls, &self.sentinel_auth)?;
        self.target = Arc::new(std::sync::RwLock::new((Arc::new(target), tls)));
        self.pool = Arc::default();
        Ok(self)
    }

    /// Keys under another prefix than [`DEFAULT_PREFIX`].
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Keeps entries apart per subject: one user or tenant of a multi-user service.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// How long a lease lasts unless renewed (renewed every third of it while held).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How long one command may take ([`DEFAULT_TIMEOUT`] unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        // Connections carry their timeouts: a store derived with another timeout (a clone)
        // keeps its own, not the pooled connections of the store it came from.
        self.pool = Arc::default();
        let (target, tls) = self.target.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Target::Cluster { .. } = *target {
            if let Ok(target) = Target::parse(&self.url, self.timeout, &tls, &self.sentinel_auth) {
                self.target = Arc::new(std::sync::RwLock::new((Arc::new(target), tls)));
            }
        }
        self
    }

    /// How long [`lock`](TokenStore::lock) waits for another holder ([`DEFAULT_LOCK_WAIT`]).
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Seals every value written with `keys`, and reads only values sealed by them (see the
    /// [module docs](self)).
    pub fn with_encryption(mut self, keys: EncryptionKeys) -> Self {
        self.encryption = Some(keys);
        self
    }

    /// What a sealed value is bound to: where it lives.
    fn aad(&self, server: &str, issuer_field: &str) -> Vec<u8> {
        format!("mcp-oauth redis entry\n{}\n{server}\n{issuer_field}", self.base()).into_bytes()
    }

    /// A stored value as an entry of `server`: `Ok(None)` for one that is not this server's
    /// (or not an entry), an error for one that does not decrypt.
    fn decode(&self, server: &str, field: &str, value: &str) -> Result<Option<Entry>, StoreError> {
        let plain = match &self.encryption {
            Some(keys) => keys
                .open(value, &self.aad(server, field))
                .map_err(|reason| StoreError::Undecryptable { server: crate::safe_url(server), reason })?,
            None if value.starts_with(SEALED) => {
                return Err(StoreError::Undecryptable {
                    server: crate::safe_url(server),
                    reason: "it is encrypted, and this store has no key".into(),
                })
            }
            None => value.as_bytes().to_vec(),
        };
        match serde_json::from_slice::<Entry>(&plain) {
            Ok(e) if e.server == server && hex16(&e.issuer) == field => Ok(Some(e)),
            Ok(_) => Ok(None),
            Err(e) => {
                log::warn!("mcp-oauth: a Redis entry of {} is corrupt (at column {}); ignoring it", crate::safe_url(server), e.column());
                Ok(None)
            }
        }
    }

    fn encode(&self, server: &str, field: &str, e: &Entry) -> Result<String, StoreError> {
        let json = serde_json::to_string(e).map_err(|_| StoreError::Redis { message: "cannot encode an entry".into() })?;
        match &self.encryption {
            Some(keys) => keys.seal(json.as_bytes(), &self.aad(server, field)),
            None => Ok(json),
        }
    }

    /// `PREFIX[:SUBJECT]`, with `{`, `}` (and `%`) escaped: a brace there would change Redis
    /// Cluster's hash tag, the first `{…}` of a key, which must be the server's.
    fn base(&self) -> String {
        let escape = |s: &str| s.replace('%', "%25").replace('{', "%7B").replace('}', "%7D");
        match &self.subject {
            Some(s) => format!("{}:{}", escape(&self.prefix), escape(s)),
            None => escape(&self.prefix),
        }
    }

    fn keys(&self, server: &str) -> Keys {
        let tag = format!("{}:{{{}}}", self.base(), hex16(server));
        Keys {
            entries: format!("{tag}:entries"),
            revision: format!("{tag}:revision"),
            lease: format!("{tag}:lease"),
            done: format!("{tag}:done"),
        }
    }

    /// Lists `server`: in the set, or (encrypted) sealed in the hash, leaving nothing of the
    /// server's URL readable in Redis.
    fn list(&self, server: &str) -> Result<(), StoreError> {
        match &self.encryption {
            None => self.with(|c| c.sadd::<_, _, ()>(self.servers_key(), server)),
            Some(keys) => {
                let field = hex16(server);
                let sealed = keys.seal(server.as_bytes(), &self.listing_aad(&field))?;
                self.with(|c| c.hset::<_, _, _, ()>(self.sealed_servers_key(), &field, &sealed))?;
                // Listed in the clear before encryption was turned on: not any more.
                self.with(|c| c.srem::<_, _, ()>(self.servers_key(), server))
            }
        }
    }

    fn unlist(&self, server: &str) -> Result<(), StoreError> {
        self.with(|c| c.srem::<_, _, ()>(self.servers_key(), server))?;
        if self.encryption.is_some() {
            self.with(|c| c.hdel::<_, _, ()>(self.sealed_servers_key(), hex16(server)))?;
        }
        Ok(())
    }

    fn listing_aad(&self, field: &str) -> Vec<u8> {
        format!("mcp-oauth redis listing\n{}\n{field}", self.base()).into_bytes()
    }

    fn sealed_servers_key(&self) -> String {
        format!("{}:servers:sealed", self.base())
    }

    fn servers_key(&self) -> String {
        format!("{}:servers", self.base())
    }

    /// Where Redis is, built anew first if the certificate files changed (connections made
    /// before keep what they have; new ones present the new certificates). Files that do not
    /// read or parse yet (half written) leave the old ones in use, with a warning.
    fn target(&self) -> Arc<Target> {
        let (target, tls) = self.target.read().unwrap_or_else(|e| e.into_inner()).clone();
        match tls.renewed() {
            None => target,
            Some(renewed) => {
                match renewed.and_then(|tls| Ok((Arc::new(Target::parse(&self.url, self.timeout, &tls, &self.sentinel_auth)?), tls))) {
                    Ok(new) => {
                        let target = new.0.clone();
                        *self.target.write().unwrap_or_else(|e| e.into_inner()) = new;
                        target
                    }
                    Err(e) => {
                        log::warn!("mcp-oauth: the Redis TLS files changed but cannot be used yet ({e}); keeping the ones read before");
                        target
                    }
                }
            }
        }
    }

    fn connect(&self) -> ::redis::RedisResult<Conn> {
        match &*self.target() {
            Target::Cluster { client, .. } => {
                let c = client.get_connection()?;
                c.set_read_timeout(Some(self.timeout))?;
                c.set_write_timeout(Some(self.timeout))?;
                Ok(Conn::Cluster(Box::new(c)))
            }
            _ => self.subscriber().map(Conn::Node),
        }
    }

    /// A plain connection, for the commands and the subscription of a waiter: to the server, to
    /// the master Sentinel names, or to the first Cluster seed that answers.
    fn subscriber(&self) -> ::redis::RedisResult<Connection> {
        match &*self.target() {
            Target::Node(client) => plain_connection(client, self.timeout),
            Target::Cluster { nodes, .. } => {
                let mut last = None;
                for n in nodes {
                    match plain_connection(n, self.timeout) {
                        Ok(c) => return Ok(c),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| (::redis::ErrorKind::InvalidClientConfig, "no Cluster node").into()))
            }
            Target::Sentinel { sentinels, master, scheme, userinfo, db, tls } => {
                self.master_connection(sentinels, master, (scheme, userinfo, db), tls)
            }
        }
    }

    /// Asks each Sentinel in turn where `master` is, and connects to it if it says it is the
    /// master (a failover may be under way). Every step has the store's deadline: a Sentinel
    /// that hangs costs one timeout, not the caller's thread. (The crate's Sentinel client
    /// sets none on its Sentinel connections, hence this.)
    fn master_connection(
        &self,
        sentinels: &[::redis::Client],
        master: &str,
        (scheme, userinfo, db): (&str, &str, &str),
        tls: &RedisTls,
    ) -> ::redis::RedisResult<Connection> {
        let mut last: ::redis::RedisError = (::redis::ErrorKind::InvalidClientConfig, "no Sentinel").into();
        for sentinel in sentinels {
            let addr: Option<(String, u16)> = match plain_connection(sentinel, self.timeout)
                .and_then(|mut c| ::redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(master).query(&mut c))
            {
                Ok(a) => a,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let Some((host, port)) = addr else {
                last = (::redis::ErrorKind::InvalidClientConfig, "Sentinel does not know this master name").into();
                continue;
            };
            let host = if host.contains(':') { format!("[{host}]") } else { host };
            let client = tls.client(&format!("{scheme}://{userinfo}{host}:{port}/{db}"))?;
            let mut c = match plain_connection(&client, self.timeout) {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match ::redis::cmd("ROLE").query::<Vec<::redis::Value>>(&mut c) {
                Ok(role) if role.first().and_then(|r| ::redis::from_redis_value_ref::<String>(r).ok()).as_deref() == Some("master") => {
                    return Ok(c)
                }
                Ok(_) => {}
                // A user without `ROLE` (it is @dangerous): trust the Sentinel; a write to a
                // server that is no longer the master fails READONLY and asks again.
                Err(e) if e.code() == Some("NOPERM") => return Ok(c),
                Err(e) => {
                    last = e;
                    continue;
                }
            }
            last =
                (::redis::ErrorKind::Server(::redis::ServerErrorKind::ReadOnly), "the master Sentinel named is not a master (yet)").into();
        }
        Err(last)
    }

    /// Runs `f` on an idle connection, or a new one. A reused connection that fails at the
    /// socket (Redis restarted while it sat idle) is dropped and `f` runs once more on a new
    /// one: every command here is idempotent, or (taking the lease) safe to repeat.
    fn with<T>(&self, f: impl FnMut(&mut Conn) -> ::redis::RedisResult<T>) -> Result<T, StoreError> {
        self.run(false, f)
    }

    /// [`with`](Self::with), for a command that may be repeated whatever happened to the
    /// first try (taking the lease with the same token): repeated once on a new connection
    /// after a failed socket, even if the first connection was new too (its reply was lost).
    fn with_repeatable<T>(&self, f: impl FnMut(&mut Conn) -> ::redis::RedisResult<T>) -> Result<T, StoreError> {
        self.run(true, f)
    }

    fn run<T>(&self, repeatable: bool, mut f: impl FnMut(&mut Conn) -> ::redis::RedisResult<T>) -> Result<T, StoreError> {
        // Not one idle for long: a NAT or a firewall may have dropped it without a word, and the
        // first command on it would wait out the whole timeout before the retry.
        let idle = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.retain(|(_, since)| since.elapsed() < MAX_IDLE_AGE);
            pool.pop().map(|(c, _)| c)
        };
        let reused = idle.is_some() || repeatable;
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let mut c = self.connect().map_err(|e| redis_error(&e))?;
                self.check_eviction(&mut c)?;
                c
            }
        };
        let mut result = f(&mut conn);
        if result.as_ref().is_err_and(|e| e.code() == Some("READONLY")) || reused && result.as_ref().is_err_and(reconnect_for) {
            conn = self.connect().map_err(|e| redis_error(&e))?;
            self.check_eviction(&mut conn)?;
            result = f(&mut conn);
        }
        match result {
            Ok(t) => {
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < MAX_IDLE {
                    pool.push((conn, Instant::now()));
                }
                Ok(t)
            }
            Err(e) => {
                // A server's error reply leaves the connection usable; anything else may not.
                if !reconnect_for(&e) && matches!(e.kind(), ::redis::ErrorKind::Server(_)) {
                    let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                    if pool.len() < MAX_IDLE {
                        pool.push((conn, Instant::now()));
                    }
                }
                Err(redis_error(&e))
            }
        }
    }

    /// Refuses a Redis that may evict keys (`maxmemory-policy` other than `noeviction`): under
    /// memory pressure it would drop a held lease (two workers refresh at once, and an
    /// authorization server that detects refresh token reuse revokes the grant) or, with an
    /// `allkeys-*` policy, the tokens themselves (a silent logout of the fleet). Asked on every
    /// new connection (one `INFO` per connection, which the pool keeps for a minute), so a
    /// policy changed at runtime, or a failover to a server configured otherwise, is seen. A
    /// Redis that does not say (an ACL without `INFO`) is not refused; a Cluster's nodes are not
    /// asked (`INFO` there is every node's).
    fn check_eviction(&self, conn: &mut Conn) -> Result<(), StoreError> {
        let Conn::Node(node) = conn else { return Ok(()) };
        match ::redis::cmd("INFO").arg("memory").query::<String>(node) {
            Ok(info) => match eviction_refusal(&info) {
                Some(why) => Err(StoreError::Misconfigured { message: why }),
                None => Ok(()),
            },
            // Refused (an ACL without `INFO`, a proxy's own error): not known, not refused.
            Err(e) if !reconnect_for(&e) && !e.is_timeout() => {
                log::debug!("mcp-oauth: Redis did not say its eviction policy ({:?})", e.kind());
                Ok(())
            }
            // Not answered: the connection is not used (a late reply must not be taken for the
            // next command's).
            Err(e) => Err(redis_error(&e)),
        }
    }

    fn entries(&self, server: &str) -> Result<Vec<Entry>, StoreError> {
        let k = self.keys(server);
        let raw: HashMap<String, String> = self.with(|c| c.hgetall(&k.entries))?;
        self.decode_all(server, &raw)
    }

    fn decode_all(&self, server: &str, raw: &HashMap<String, String>) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for (field, value) in raw {
            out.extend(self.decode(server, field, value)?);
        }
        Ok(out)
    }
}

struct Keys {
    entries: String,
    /// The server's [`revision`](TokenStore::revision): a random number, kept when the entries go.
    revision: String,
    lease: String,
    done: String,
}

impl RedisStore {
    /// [`FENCED_WRITE`] on `k`, naming the revision only when it `moves`, and the lease only
    /// when fenced by `token`.
    fn fenced_write(&self, k: &Keys, token: &str, moves: bool) -> ::redis::ScriptInvocation<'static> {
        static SCRIPT: std::sync::OnceLock<::redis::Script> = std::sync::OnceLock::new();
        let mut call = SCRIPT.get_or_init(|| ::redis::Script::new(FENCED_WRITE)).key(&k.entries);
        if moves {
            call.key(&k.revision);
        }
        if !token.is_empty() {
            call.key(&k.lease);
        }
        call
    }

    /// Takes the lease in `k` for `token`: `Ok(false)` if another holder has it. Repeated on a
    /// new connection after a lost reply (the same token makes that safe); if even that fails,
    /// the lease is let go of should it have been taken, not left to run out while all wait.
    fn take(&self, k: &Keys, token: &str) -> Result<bool, StoreError> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        match self.with_repeatable(|c| ::redis::Script::new(ACQUIRE).key(&k.lease).arg(token).arg(lease_ms).invoke::<i64>(c)) {
            Ok(got) => Ok(got == 1),
            Err(e) => {
                let _ = self.with(|c| ::redis::Script::new(RELEASE).key(&k.lease).arg(token).arg(&k.done).invoke::<i64>(c));
                Err(e)
            }
        }
    }

    /// The lease just taken, as a lock: renewed by a thread of its own until dropped.
    fn holding(&self, server: &str, k: Keys, token: String) -> Result<StoreLock, StoreError> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let renewer = {
            let (store, lease_key, token) = (self.clone(), k.lease.clone(), token.clone());
            std::thread::Builder::new()
                .name("mcp-oauth-lease".into())
                .spawn(move || loop {
                    match stopped.recv_timeout(store.lease / 3) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let renewed: Result<i64, _> =
                        store.with(|c| ::redis::Script::new(RENEW).key(&lease_key).arg(&token).arg(lease_ms).invoke(c));
                    match renewed {
                        Ok(1) => {}
                        Ok(_) => {
                            log::warn!("mcp-oauth: the Redis lease was lost; writes under it will be refused");
                            return;
                        }
                        Err(e) => log::warn!("mcp-oauth: could not renew the Redis lease: {e}"),
                    }
                })
                .map_err(|e| StoreError::Redis { message: format!("cannot start the lease renewer: {e}") })?
        };
        let fence = token.clone();
        Ok(StoreLock {
            _inner: Box::new(Lease {
                store: self.clone(),
                server: server.to_owned(),
                token,
                keys: k,
                stop: Some(stop),
                renewer: Some(renewer),
            }),
            fence: Some(fence),
        })
    }

    /// Waits for the lease in `k` to be let go (its release message, or a poll after 1 s):
    /// `Ok(false)` once it is free, `Ok(true)` if it may still be held (look again). Subscribed
    /// before it looks, so a release between the look and the wait is not missed.
    fn wait_once(&self, server: &str, k: &Keys, deadline: Instant, waiter: &mut Option<Connection>) -> Result<bool, StoreError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StoreError::Redis {
                message: format!("{}: another worker held the lease for over {} s", crate::safe_url(server), self.lock_wait.as_secs()),
            });
        }
        let conn = match waiter {
            Some(c) => c,
            None => waiter.insert(self.subscriber().map_err(|e| redis_error(&e))?),
        };
        let mut ps = conn.as_pubsub();
        ps.set_read_timeout(Some(left.min(Duration::from_secs(1)))).map_err(|e| redis_error(&e))?;
        ps.subscribe(&k.done).map_err(|e| redis_error(&e))?;
        if !self.with(|c| c.exists::<_, bool>(&k.lease))? {
            let _ = ps.unsubscribe(&k.done);
            return Ok(false);
        }
        match ps.get_message() {
            Ok(_) => {}
            Err(e) if e.is_timeout() => {}
            Err(e) => {
                drop(ps);
                *waiter = None;
                log::debug!("mcp-oauth: Redis lease wait: {e}");
                return Ok(true);
            }
        }
        let _ = ps.unsubscribe(&k.done);
        Ok(true)
    }

    /// Applies `p`, fenced by `token` (empty: not fenced).
    fn write(&self, server: &str, p: &Persist, token: &str) -> Result<(), StoreError> {
        let issuer = issuer_of(p);
        let k = self.keys(server);
        let field = hex16(issuer);
        let current: Option<String> = self.with(|c| c.hget(&k.entries, &field))?;
        // A value that does not decrypt is an error here too: never overwritten.
        let current = match current {
            Some(v) => self.decode(server, &field, &v)?,
            None => None,
        };
        let first = current.is_none();
        let mut e = current.filter(|e| e.issuer == issuer).unwrap_or_else(|| Entry {
            version: 1,
            server: server.into(),
            issuer: issuer.into(),
            ..Default::default()
        });
        let moved = e.apply(p);
        let value = if e.is_empty() { String::new() } else { self.encode(server, &field, &e)? };
        // The listing is kept outside the fenced script (its key is in no server's slot), so
        // it is kept in an order that never hides a server that holds something: listed before
        // a first entry is written (a writer that dies next leaves it listed) and after every
        // write (see `unlist_if_empty`); unlisted only once the entries are seen gone.
        let listed_first = !value.is_empty() && first;
        if listed_first {
            self.list(server)?;
        }
        let revision = if moved { fresh_revision().to_string() } else { String::new() };
        let written: Result<i64, StoreError> =
            self.with(|c| self.fenced_write(&k, token, moved).arg(token).arg(&field).arg(&value).arg(&revision).invoke(c));
        let left = match written {
            Ok(left) => left,
            Err(e) => {
                // Refused (a lost lease) or not answered: a listing made for this write alone
                // goes again if the server holds nothing (best effort: the error is the news).
                if listed_first {
                    let _ = self.unlist_if_empty(server, &k);
                }
                return Err(e);
            }
        };
        if left == 0 {
            self.unlist_if_empty(server, &k)
        } else if !value.is_empty() {
            self.list(server)
        } else {
            Ok(())
        }
    }

    /// Unlists `server`, then lists it again if it holds entries after all. A writer lists
    /// after its write, so whichever of the two comes last sees the other's: a stale holder's
    /// unlist, arriving late, never hides the next holder's login.
    fn unlist_if_empty(&self, server: &str, k: &Keys) -> Result<(), StoreError> {
        self.unlist(server)?;
        if self.with(|c| c.exists::<_, bool>(&k.entries))? {
            self.list(server)?;
        }
        Ok(())
    }
}

impl TokenStore for RedisStore {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        Ok(restored(self.entries(server)?))
    }

    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.write(server, p, "")
    }

    /// A number next to the entries (same hash tag), set by the same script that writes.
    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        let k = self.keys(server);
        revision_of(self.with(|c| c.get::<_, Option<Vec<u8>>>(&k.revision))?)
    }

    /// Fenced by this holder's own lease: refused ([`StoreError::LeaseLost`]) once it lost it.
    fn persist_locked(&self, server: &str, p: &Persist, lock: &StoreLock) -> Result<(), StoreError> {
        self.write(server, p, lock.fence().unwrap_or(""))
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        let (k, token) = (self.keys(server), lease_token()?);
        let deadline = Instant::now() + self.lock_wait;
        let mut waiter: Option<Connection> = None;
        while !self.take(&k, &token)? {
            self.wait_once(server, &k, deadline, &mut waiter)?;
        }
        self.holding(server, k, token)
    }

    /// One attempt: the lease, or `None` at once if another holder has it.
    fn try_lock(&self, server: &str) -> Result<Option<StoreLock>, StoreError> {
        let (k, token) = (self.keys(server), lease_token()?);
        if !self.take(&k, &token)? {
            return Ok(None);
        }
        self.holding(server, k, token).map(Some)
    }
    /// One `EXISTS` when nobody holds the lease; else a wait for the holder's release (its
    /// message, or the 1 s poll) by a subscriber that takes no lease.
    fn wait_unlocked(&self, server: &str) -> Result<bool, StoreError> {
        let k = self.keys(server);
        if !self.with(|c| c.exists::<_, bool>(&k.lease))? {
            return Ok(false);
        }
        let deadline = Instant::now() + self.lock_wait;
        let mut waiter: Option<Connection> = None;
        while self.wait_once(server, &k, deadline, &mut waiter)? {}
        Ok(true)
    }

    fn servers(&self) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = self.with(|c| c.smembers(self.servers_key()))?;
        if let Some(enc) = &self.encryption {
            // The set is not trusted (anyone who can write to Redis can add to it): a server
            // listed there before encryption was turned on is moved to the sealed listing if its
            // entries decrypt, and is not listed otherwise.
            for server in std::mem::take(&mut keys) {
                match self.entries(&server) {
                    Ok(e) if !e.is_empty() => {
                        // Best effort: a user who may only read still gets the listing.
                        if let Err(e) = self.list(&server) {
                            log::debug!("mcp-oauth: could not seal a Redis listing entry: {e}");
                        }
                        keys.push(server);
                    }
                    // Entries that do not decrypt: written before encryption was turned on, or
                    // planted by someone without the key. Not listed (the clear set is not
                    // trusted), but said.
                    Err(StoreError::Undecryptable { .. }) => log::warn!(
                        "mcp-oauth: a server listed in the clear has entries these keys do not decrypt (written before \
                         encryption, or planted); not listed: a store opened without the key lists and forgets it"
                    ),
                    // Redis did not answer: the listing is not known, and saying so beats
                    // leaving a server out of it (a `logout --all` would miss it).
                    Err(e @ StoreError::Redis { .. }) => return Err(e),
                    _ => log::warn!("mcp-oauth: a server listed in the clear has no entry in Redis; not listed"),
                }
            }
            let sealed: HashMap<String, String> = self.with(|c| c.hgetall(self.sealed_servers_key()))?;
            for (field, value) in sealed {
                match enc.open(&value, &self.listing_aad(&field)).map(String::from_utf8) {
                    Ok(Ok(server)) if hex16(&server) == field => keys.push(server),
                    _ => log::warn!("mcp-oauth: a listed Redis server does not decrypt with these keys; not listed"),
                }
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    fn forget(&self, server: &str) -> Result<StoredServer, StoreError> {
        let lock = self.lock(server)?;
        // What cannot be decrypted is forgotten too (forgetting is how to be rid of it).
        let held = match self.load(server) {
            Ok(r) => StoredServer::of(server, &r),
            Err(StoreError::Undecryptable { .. }) => StoredServer::of(server, &Restored::default()),
            Err(e) => return Err(e),
        };
        let k = self.keys(server);
        let fields: Vec<String> = self.with(|c| c.hkeys(&k.entries))?;
        let token = lock.fence().unwrap_or("").to_owned();
        // Each removal moves the revision: what is gone may be tokens that do not decrypt.
        for field in fields {
            let revision = fresh_revision().to_string();
            let _: i64 = self.with(|c| self.fenced_write(&k, &token, true).arg(&token).arg(&field).arg("").arg(&revision).invoke(c))?;
        }
        self.unlist_if_empty(server, &k)?;
        Ok(held)
    }
}

/// Why a Redis whose `INFO memory` is `info` may not hold tokens, if it may not.
fn eviction_refusal(info: &str) -> Option<String> {
    let policy = info.lines().find_map(|l| l.strip_prefix("maxmemory_policy:")).map(str::trim)?;
    if policy == "noeviction" {
        return None;
    }
    let what = if policy.starts_with("allkeys-") {
        "any key, stored tokens too (a silent logout)"
    } else {
        "keys with a TTL, a held refresh lease"
    };
    Some(format!(
        "this Redis may evict {what} under memory pressure (maxmemory-policy {policy}); a token store needs maxmemory-policy \
         noeviction (the policy is the server's: give the fleet a Redis of its own if others need eviction)"
    ))
}

/// The revision a `GET` of its key shows: 0 while it is not there; for a value that is not a
/// number (written by someone else: the store's own writes set numbers), a digest of it, so
/// that the same value read twice is no change and any write of the store's is one.
fn revision_of(value: Option<Vec<u8>>) -> Result<Option<u64>, StoreError> {
    Ok(Some(value.map_or(0, |v| super::revision_of_bytes(&v))))
}

/// A random lease token: who holds the lease.
fn lease_token() -> Result<String, StoreError> {
    let mut r = [0u8; 16];
    getrandom::fill(&mut r).map_err(|e| StoreError::Redis { message: format!("no randomness for a lease token: {e}") })?;
    Ok(r.iter().map(|b| format!("{b:02x}")).collect())
}

/// A held lease: renewed until dropped, then released (compare-and-delete) and announced.
struct Lease {
    store: RedisStore,
    server: String,
    token: String,
    keys: Keys,
    stop: Option<std::sync::mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        let released: Result<i64, _> =
            self.store.with(|c| ::redis::Script::new(RELEASE).key(&self.keys.lease).arg(&self.token).arg(&self.keys.done).invoke(c));
        if let Err(e) = released {
            // The lease then expires on its own.
            log::warn!("mcp-oauth: could not release the Redis lease of {}: {e}", crate::safe_url(&self.server));
        }
    }
}
