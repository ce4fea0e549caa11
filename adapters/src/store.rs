//! Token stores: where registrations and tokens persist between runs and instances.
//!
//! * [`MemoryStore`]: shared by every clone in one process.
//! * [`FileStore`]: one JSON file per (MCP server, issuer) in a per-user directory; files are
//!   `0600`, written atomically (temp file, fsync, rename), and a lock file serializes
//!   processes, so two processes never clobber each other or refresh with the same rotating
//!   refresh token at once. A corrupt or half-written file is skipped with a warning; it never
//!   affects another server's entry.
//! * `KeyringStore` (feature `keyring`): the secrets in the OS keyring (Keychain, Credential
//!   Manager, Secret Service, kernel keyutils), an index and the lock in files as above; and
//!   `auto`, which takes the keyring when it answers and the `FileStore` otherwise. See the
//!   `keyring` module (built with the feature).
//!
//! # What a `FileStore` trusts (Unix)
//!
//! Another user who can write where the tokens live can read them (a link at a temp name) or
//! plant an entry whose token endpoint is theirs. So the store trusts only what the current
//! (effective) user made privately:
//!
//! * the store directory and each server directory must be owned by the current user and not
//!   writable by group or others; otherwise every call fails with [`StoreError::Untrusted`],
//!   naming the path and the [`Distrust`] reason. Directories the store creates, intermediate
//!   ones included, are `0700`. The store directory may be reached through a symbolic link (a
//!   user's choice); a server directory may not.
//! * temp files get random names and are created exclusively (`O_CREAT | O_EXCL`,
//!   `O_NOFOLLOW`), so a planted file or link is never written through;
//! * entries and the lock file are opened with `O_NOFOLLOW`, then checked on the open handle:
//!   a regular file, owned by the current user, not writable by group or others. An entry that
//!   fails is ignored with a warning (its path and the reason, never its contents), so it is
//!   never trusted; a lock file that fails is an error.
//!
//! Not covered: someone who may write the store directory's *parent* could swap the whole
//! directory between a check and a use. Keep the store under a directory only you (or root)
//! can write, such as the default one; `/tmp` is fine thanks to its sticky bit.
//!
//! On other platforms the directories are created with the platform's defaults and only the
//! symbolic link checks apply.
//!
//! The driver holds [`TokenStore::lock`] around every flow that may persist, reloads what the
//! store has (another process may have refreshed meanwhile), and only then talks to the server.

use mcp_oauth_core::{ClientInfo, ClientKind, Persist, Restored, TokenSet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

#[cfg(feature = "keyring")]
pub mod keyring;
#[cfg(feature = "keyring")]
pub use keyring::{auto, AutoStore, KeyringBackend, KeyringStore};
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{EncryptionKeys, RedisStore, RedisTls};

/// Why a `KeyringStore`'s OS keyring failed ([`StoreError::Keyring`]). Never carries what an
/// item holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringFailure {
    /// No answer in time: a locked keyring waiting on a password prompt nobody sees, or a
    /// D-Bus service that hangs.
    Timeout {
        /// How long it waited.
        after: std::time::Duration,
    },
    /// The keyring cannot be reached or used here: no D-Bus session or Secret Service, access
    /// denied, or a keyring this platform does not have.
    Unavailable(String),
    /// An item is too large for this keyring.
    TooLong(String),
    /// The keyring is full: the kernel's keyutils gives a user who is not root 20,000 bytes
    /// (`/proc/sys/kernel/keys/maxbytes`), about eight logins.
    Full(String),
    /// An item holds data that is not what this store wrote.
    Corrupt,
    /// Any other failure the keyring reported.
    Failed(String),
}

impl std::fmt::Display for KeyringFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyringFailure::Timeout { after } => write!(
                f,
                "no answer in {} s (a locked keyring waiting for its password?); unlock it, or use the file store",
                after.as_secs_f32()
            ),
            KeyringFailure::Unavailable(why) => write!(f, "not available: {why}"),
            KeyringFailure::TooLong(what) => write!(f, "an item is too large: {what}"),
            KeyringFailure::Full(why) => write!(
                f,
                "full ({why}; keyutils gives a user who is not root 20,000 bytes, see /proc/sys/kernel/keys/maxbytes): \
                 log out of servers you no longer use, or use the file store"
            ),
            KeyringFailure::Corrupt => f.write_str("an item holds data this store did not write"),
            KeyringFailure::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A store failure. Messages name the file, never its contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// This store cannot list the servers it holds (the default of [`TokenStore::servers`]).
    #[error("this token store cannot list what it holds")]
    CannotList,
    /// [`TokenStore::forget`] removed entries, and the store kept returning more.
    #[error("{}: the store still returns entries after they were forgotten", crate::safe_url(server))]
    NotForgotten {
        /// The store key.
        server: String,
    },
    /// No per-user directory could be determined (no HOME).
    #[error("no per-user data directory (set HOME or XDG_DATA_HOME, or pass a directory)")]
    NoDirectory,
    /// The OS keyring of a `KeyringStore` failed or did not answer. Nothing was lost: what
    /// the keyring holds stays there, and a call can be retried once it answers.
    #[error("{backend}: {reason}")]
    Keyring {
        /// Which keyring (`KeyringBackend::name`).
        backend: &'static str,
        /// What went wrong.
        reason: KeyringFailure,
    },
    /// Redis (`RedisStore`) could not be reached, timed out or refused a command. Retryable:
    /// nothing was lost, and the call can be retried once Redis answers.
    #[error("redis: {message}")]
    Redis {
        /// What went wrong (never a value, never the URL's password).
        message: String,
    },
    /// The store's configuration is wrong (a URL that is not one, malformed encryption keys, a
    /// store this build lacks). Not retryable: fix the configuration.
    #[error("store configuration: {message}")]
    Misconfigured {
        /// What is wrong (never a key or a password).
        message: String,
    },
    /// A stored value does not decrypt (`RedisStore` with encryption): a wrong or missing key,
    /// a value stored unencrypted where encryption is required, or one changed or moved. It is
    /// neither read as "nothing stored" nor overwritten; fix the keys, or forget the server.
    #[error("{server}: a stored value cannot be read: {reason}")]
    Undecryptable {
        /// The store key (without a query).
        server: String,
        /// Why.
        reason: String,
    },
    /// A write under a lease that this worker no longer holds (it was paused or cut off past
    /// the lease, and another worker took it) was refused, so it cannot overwrite what the new
    /// holder wrote. Reload and start over.
    #[error("the store's lease on this server was lost; the write was refused")]
    LeaseLost,
    /// A directory or file of the store could have been made or changed by another user, so
    /// the store refuses to use it. Fix the path (or choose another store directory).
    #[error("{}: refusing to use it: {reason}", path.display())]
    Untrusted {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: Distrust,
    },
}

/// Why a [`FileStore`] does not trust a directory or file (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Distrust {
    /// Owned by another user.
    Owner {
        /// Its owner's uid.
        uid: u32,
        /// The effective uid of this process.
        expected: u32,
    },
    /// Group or others may write it, so they could replace or plant entries.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// A symbolic link where the store keeps only its own directories and files.
    Symlink,
    /// Not a directory, where the store keeps a directory.
    NotADirectory,
    /// Not a regular file (a directory, device, FIFO or socket), where the store keeps a file.
    NotAFile,
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::Owner { uid, expected } => write!(f, "owned by uid {uid}, not by this user (uid {expected})"),
            Distrust::Writable { mode } => {
                write!(f, "writable by group or others (mode {mode:o}; make it private: chmod go-w, or 700 for a directory)")
            }
            Distrust::Symlink => f.write_str("a symbolic link"),
            Distrust::NotADirectory => f.write_str("not a directory"),
            Distrust::NotAFile => f.write_str("not a regular file"),
        }
    }
}

/// What a directory or file should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Dir,
    File,
}

/// The decision on what a path is (from its metadata), for every platform: no links, and the
/// right kind.
fn judge_kind(want: Want, t: fs::FileType) -> Result<(), Distrust> {
    match want {
        _ if t.is_symlink() => Err(Distrust::Symlink),
        Want::Dir if !t.is_dir() => Err(Distrust::NotADirectory),
        Want::File if !t.is_file() => Err(Distrust::NotAFile),
        _ => Ok(()),
    }
}

/// The decision on who made it (Unix): owned by `euid`, not writable by group or others. Pure,
/// so it is tested for every owner without a second user.
#[cfg(unix)]
fn judge_owner(uid: u32, mode: u32, euid: u32) -> Result<(), Distrust> {
    if uid != euid {
        Err(Distrust::Owner { uid, expected: euid })
    } else if mode & 0o022 != 0 {
        Err(Distrust::Writable { mode: mode & 0o7777 })
    } else {
        Ok(())
    }
}

/// Both decisions on the metadata of a path or an open handle.
fn judge(want: Want, m: &fs::Metadata) -> Result<(), Distrust> {
    judge_kind(want, m.file_type())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        judge_owner(m.uid(), m.mode(), rustix::process::geteuid().as_raw())?;
    }
    Ok(())
}

/// Extra `open` flags for files of the store: never follow a link in the last component
/// (`ELOOP` instead), and never block opening a FIFO someone put there.
#[cfg(unix)]
fn no_follow(opts: &mut fs::OpenOptions) {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    // The flags are small positive constants; the kernel ABI takes them as a C int.
    let flags = (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits();
    opts.custom_flags(i32::try_from(flags).unwrap_or_else(|_| unreachable!("O_NOFOLLOW | O_NONBLOCK fits an int")));
}

/// Opens a file of the store without following a link, and checks the open handle. On failure
/// says whether a link (or a bad file) was the reason, so the caller can name it.
fn open_checked(path: &Path, opts: &mut fs::OpenOptions) -> Result<fs::File, OpenFailure> {
    #[cfg(unix)]
    no_follow(opts);
    #[cfg(not(unix))]
    {
        // No O_NOFOLLOW here: look first (a race left open where links need privileges anyway).
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(OpenFailure::Untrusted(Distrust::Symlink));
        }
    }
    let f = opts.open(path).map_err(|e| {
        // `O_NOFOLLOW` reports a link as ELOOP (EMLINK or EFTYPE on some BSDs): name it plainly.
        if e.kind() != io::ErrorKind::NotFound && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            OpenFailure::Untrusted(Distrust::Symlink)
        } else {
            OpenFailure::Io(e)
        }
    })?;
    let m = f.metadata().map_err(OpenFailure::Io)?;
    judge(Want::File, &m).map_err(OpenFailure::Untrusted)?;
    Ok(f)
}

enum OpenFailure {
    Io(io::Error),
    Untrusted(Distrust),
}

impl OpenFailure {
    fn into_store_error(self, path: &Path) -> StoreError {
        match self {
            OpenFailure::Io(source) => StoreError::Io { path: path.to_owned(), source },
            OpenFailure::Untrusted(reason) => StoreError::Untrusted { path: path.to_owned(), reason },
        }
    }
}

/// Checks a directory of the store; `Ok(false)` if it does not exist. `follow`: the path may be
/// a link to a trusted directory (the store directory, which the user chose).
pub(crate) fn check_dir(path: &Path, follow: bool) -> Result<bool, StoreError> {
    let m = if follow { fs::metadata(path) } else { fs::symlink_metadata(path) };
    match m {
        Ok(m) => judge(Want::Dir, &m).map(|()| true).map_err(|reason| StoreError::Untrusted { path: path.to_owned(), reason }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io { path: path.to_owned(), source }),
    }
}

/// Holds the store's lock for one server until dropped.
pub struct StoreLock {
    _inner: Box<dyn Send>,
    /// The holder's own lease token, for stores whose locks can be lost (`RedisStore`): writes
    /// under this lock are fenced by it.
    fence: Option<String>,
}

impl StoreLock {
    /// The holder's lease token, if this lock is a lease.
    pub(crate) fn fence(&self) -> Option<&str> {
        self.fence.as_deref()
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Where registrations and tokens live. `server` is the key of one configuration:
/// [`Config::store_key`](mcp_oauth_core::Config::store_key), the MCP server URL and the
/// principal (`https://mcp.example.com/mcp#user`).
///
/// The calls block (files, locks): from async code run them on the runtime's blocking pool.
pub trait TokenStore: Send + Sync {
    /// Everything stored for this server: registrations per issuer, and the newest tokens.
    fn load(&self, server: &str) -> Result<Restored, StoreError>;
    /// Applies one [`Persist`] output. Callers hold [`lock`](Self::lock).
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError>;
    /// Exclusive access for this server, across threads (and, for files, processes).
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError>;

    /// Applies one [`Persist`] output under `lock`, this store's lock for `server`. A store
    /// whose locks can be lost (a `RedisStore` lease that expired while its holder was paused)
    /// refuses the write once this holder lost it ([`StoreError::LeaseLost`]). The default
    /// ignores the lock.
    fn persist_locked(&self, server: &str, p: &Persist, lock: &StoreLock) -> Result<(), StoreError> {
        let _ = lock;
        self.persist(server, p)
    }

    /// The lock if nobody holds it, else `Ok(None)` at once. The default is [`lock`](Self::lock),
    /// which waits: then it never answers `None`, and a client waits in `lock` as before.
    fn try_lock(&self, server: &str) -> Result<Option<StoreLock>, StoreError> {
        self.lock(server).map(Some)
    }

    /// Waits, without taking the lock, while another holder has it; `Ok(true)` if it waited.
    ///
    /// A client whose token ran out and finds the lock taken ([`try_lock`](Self::try_lock))
    /// calls this: the holder was most likely refreshing, and the client reloads and goes on
    /// with the holder's tokens without queueing for the lock at all (or tries again). For a store whose lock hands over
    /// slowly (a `RedisStore` lease, handed over by messages) this turns a fleet's queue of
    /// lock holders, each reloading in turn, into one refresh and a reload by all at once. The
    /// default waits for nothing (`Ok(false)`): the lock itself is then the wait.
    fn wait_unlocked(&self, server: &str) -> Result<bool, StoreError> {
        let _ = server;
        Ok(false)
    }

    /// A number that changes every time the tokens of `server` change (saved or forgotten,
    /// through any instance; saving the tokens already held changes nothing) and never comes
    /// back to an earlier value; 0 for a server nothing was ever saved for. `None` for a store
    /// that keeps none (the default). An error when it cannot be read now: a client then judges
    /// by the tokens, and takes an emptied store for changed. Clients read it before
    /// [`load`](Self::load), so that a save between the two shows as a change.
    ///
    /// A client whose save failed writes its tokens back later only if the store still holds
    /// what it last saw. Comparing the tokens alone cannot see a round trip: the store was
    /// empty, another instance logged in, the fleet logged out, and it is empty again. With a
    /// revision the client sees that it moved, and leaves the logout alone. [`MemoryStore`],
    /// [`FileStore`], `KeyringStore` and `RedisStore` keep one: a random number, new with each
    /// change (a counter could come back to a value a client saw: a Redis failover that lost
    /// writes). What the store keeps for a server deleted by hand (its directory, its Redis
    /// keys) starts again at 0, and a client that saw 0 then cannot tell. Versions of this crate
    /// before the revision write without moving it: while one still writes to a shared store,
    /// that round trip can go unseen. A store that wraps another must forward this too, or its
    /// clients judge by the tokens alone.
    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        let _ = server;
        Ok(None)
    }

    /// The keys of every server this store holds something for, sorted. The default says the
    /// store cannot list ([`StoreError::CannotList`]); [`MemoryStore`] and [`FileStore`] can.
    fn servers(&self) -> Result<Vec<String>, StoreError> {
        Err(StoreError::CannotList)
    }

    /// What this store holds for `server`, without any secret (for a status screen).
    fn describe(&self, server: &str) -> Result<StoredServer, StoreError> {
        Ok(StoredServer::of(server, &self.load(server)?))
    }

    /// Forgets everything held for `server`, tokens and registrations of every issuer, under
    /// the server's lock (a flow under way elsewhere finishes first). Returns what was held.
    /// The tokens are not revoked at the authorization server. For a configuration, use
    /// [`forget_config`], which also takes what older versions stored under the bare URL.
    fn forget(&self, server: &str) -> Result<StoredServer, StoreError> {
        let lock = self.lock(server)?;
        let held = StoredServer::of(server, &self.load(server)?);
        // `load` shows the newest tokens only: older ones (another issuer's) show up as the
        // newer are forgotten. Each round forgets at least one entry, so this ends.
        for _ in 0..MAX_FORGET_ROUNDS {
            let r = self.load(server)?;
            let mut issuers: Vec<String> = r.clients.iter().map(|c| c.issuer.clone()).collect();
            issuers.extend(r.tokens.iter().map(|t| t.issuer.clone()));
            if issuers.is_empty() {
                return Ok(held);
            }
            for issuer in issuers {
                self.persist_locked(server, &Persist::ForgetTokens { issuer: issuer.clone() }, &lock)?;
                self.persist_locked(server, &Persist::ForgetClient { issuer }, &lock)?;
            }
        }
        Err(StoreError::NotForgotten { server: server.to_owned() })
    }
}

/// Forgets everything `store` holds for `config`, as [`TokenStore::forget`] does for its
/// [`store_key`](mcp_oauth_core::Config::store_key), including what versions before keys named
/// the principal stored under the bare server URL that a client of `config` would take over on
/// its next start (moved to its key first, as a client does, then forgotten). Returns what was
/// held. Blocks (files, locks).
pub fn forget_config(store: &dyn TokenStore, config: &mcp_oauth_core::Config) -> Result<StoredServer, StoreError> {
    load_for(config, store)?;
    store.forget(&config.store_key())
}

/// How many times [`TokenStore::forget`] reloads before it gives up on a store that keeps
/// returning entries.
const MAX_FORGET_ROUNDS: usize = 64;

/// What a store holds for one server, without any secret: for status screens and logouts.
/// `Debug` shows the key and URL without their query (a configured URL may carry an API key).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredServer {
    /// The store key ([`Config::store_key`](mcp_oauth_core::Config::store_key)).
    pub key: String,
    /// The MCP server URL: the key without its `#principal`.
    pub server_url: String,
    /// Registrations, one per issuer.
    pub clients: Vec<StoredClient>,
    /// The newest tokens, if any.
    pub tokens: Option<StoredTokens>,
}

/// A stored registration, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredClient {
    /// The authorization server it belongs to.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// How it was obtained: configured, a Client ID Metadata Document, or dynamic registration.
    pub kind: ClientKind,
    /// Whether a client secret is stored with it.
    pub has_secret: bool,
}

/// Stored tokens, described: never the tokens themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredTokens {
    /// The issuer that minted them.
    pub issuer: String,
    /// The client they were issued to, if known.
    pub client_id: Option<String>,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// When the access token expires, if known.
    pub expires_at: Option<mcp_oauth_core::Timestamp>,
    /// When they were obtained.
    pub obtained_at: mcp_oauth_core::Timestamp,
    /// Whether a refresh token is held.
    pub refresh_token: bool,
    /// Whether the access token is bound to a DPoP key (RFC 9449).
    pub dpop_bound: bool,
}

impl std::fmt::Debug for StoredServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredServer")
            .field("key", &crate::safe_url(&self.key))
            .field("server_url", &crate::safe_url(&self.server_url))
            .field("clients", &self.clients)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl StoredServer {
    pub(crate) fn of(key: &str, r: &Restored) -> Self {
        // The principal is free text (`app:<client_name>` may hold a `#`); the URL has none.
        let server_url = key.split_once('#').map_or(key, |(url, _)| url).to_owned();
        let clients = r
            .clients
            .iter()
            .map(|c| StoredClient {
                issuer: c.issuer.clone(),
                client_id: c.client_id.clone(),
                kind: c.kind,
                has_secret: c.client_secret.is_some(),
            })
            .collect();
        let tokens = r.tokens.as_ref().map(|t| StoredTokens {
            issuer: t.issuer.clone(),
            client_id: t.client_id.clone(),
            scopes: t.scopes().into_iter().map(str::to_owned).collect(),
            expires_at: t.expires_at,
            obtained_at: t.obtained_at,
            refresh_token: t.refresh_token.is_some(),
            dpop_bound: t.dpop_key.is_some(),
        });
        StoredServer { key: key.to_owned(), server_url, clients, tokens }
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.tokens.is_none()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Entry {
    #[serde(default)]
    version: u32,
    server: String,
    issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client: Option<ClientInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens: Option<TokenSet>,
}

impl Entry {
    /// Applies `p`; true if the tokens held changed (a save of other tokens, or a forget of
    /// some): what moves the server's [`revision`](TokenStore::revision). Saving the tokens
    /// already held (a write-back of a save whose reply was lost) changes nothing.
    fn apply(&mut self, p: &Persist) -> bool {
        let fingerprint = |t: &Option<TokenSet>| serde_json::to_vec(t).unwrap_or_default();
        let before = fingerprint(&self.tokens);
        match p {
            Persist::Client(c) => self.client = Some(c.clone()),
            Persist::ForgetClient { .. } => self.client = None,
            Persist::Tokens(t) => self.tokens = Some(t.clone()),
            Persist::ForgetTokens { .. } => self.tokens = None,
            _ => {}
        }
        matches!(p, Persist::Tokens(_) | Persist::ForgetTokens { .. }) && fingerprint(&self.tokens) != before
    }

    fn is_empty(&self) -> bool {
        self.client.is_none() && self.tokens.is_none()
    }
}

/// The revision stored as `bytes`: the number they hold, else a digest of them (see
/// [`FileStore::read_revision`]).
pub(crate) fn revision_of_bytes(bytes: &[u8]) -> u64 {
    match std::str::from_utf8(bytes).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
        Some(n) => n,
        None => {
            let d = Sha256::digest(bytes);
            u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]).max(1)
        }
    }
}

/// A new [`revision`](TokenStore::revision): random, so that it does not come back to a value a
/// client saw (a counter would, after a Redis failover that lost writes). Never 0, the revision
/// of a server nothing was ever saved for.
pub(crate) fn fresh_revision() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: the time, which does not repeat either.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (t.as_nanos() as u64).to_le_bytes();
    }
    u64::from_le_bytes(b).max(1)
}

pub(crate) fn issuer_of(p: &Persist) -> &str {
    match p {
        Persist::Client(c) => &c.issuer,
        Persist::ForgetClient { issuer } | Persist::ForgetTokens { issuer } => issuer,
        Persist::Tokens(t) => &t.issuer,
        _ => "",
    }
}

/// What `store` holds for `config`: its own entries, or, the first time, what stores written
/// before keys named the configured identity hold under the bare server URL
/// ([`Config::legacy_store_key`](mcp_oauth_core::Config::legacy_store_key)): the tokens this
/// configuration accepts and its registrations are moved to its own key (under the lock, so
/// that a process refreshing meanwhile is not overwritten) and removed from the old one.
pub(crate) fn load_for(config: &mcp_oauth_core::Config, store: &dyn TokenStore) -> Result<Restored, StoreError> {
    let key = config.store_key();
    let own = store.load(&key)?;
    if own.tokens.is_some() || !own.clients.is_empty() {
        return Ok(own);
    }
    let lock = store.lock(&key)?;
    let own = store.load(&key)?;
    if own.tokens.is_some() || !own.clients.is_empty() {
        return Ok(own);
    }
    // Where this configuration's grant may be: under the bare server URL (versions before keys
    // named the client), and, for a person logging in through a configured client, under that
    // client's machine key (where a user's grant from such a version went while `flow` was
    // `auto`, before the configuration said `authorization_code`).
    let mut sources = vec![config.legacy_store_key()];
    if let Some(id) = config.principal().strip_prefix("user:") {
        sources.push(format!("{}#machine:{id}", config.server_url));
    }
    for source in sources.into_iter().filter(|s| *s != key) {
        // The legacy key is nobody's any more; another configuration's key is still in use:
        // from there only the tokens move, and its registrations (an issuer binding that keeps
        // its configured secret at one authorization server) stay as they are.
        let in_use = source != config.legacy_store_key();
        // Under that key's lock, and read under it: an older version's process may be
        // refreshing there right now.
        let old = store.lock(&source)?;
        let legacy = store.load(&source)?;
        let clients: Vec<ClientInfo> = legacy
            .clients
            .iter()
            .filter(|c| match &config.client_id {
                Some(id) => c.kind == ClientKind::PreRegistered && &c.client_id == id,
                None => c.kind == ClientKind::Dynamic,
            })
            .cloned()
            .collect();
        let tokens = legacy.tokens.filter(|t| config.accepts_tokens(t, &legacy.clients).is_ok());
        if tokens.is_none() && clients.is_empty() {
            continue;
        }
        for c in &clients {
            store.persist_locked(&key, &Persist::Client(c.clone()), &lock)?;
        }
        if let Some(t) = &tokens {
            store.persist_locked(&key, &Persist::Tokens(t.clone()), &lock)?;
            if config.flow == mcp_oauth_core::Flow::Auto && config.has_client_credentials() && t.grant.is_none() {
                log::warn!(
                    "mcp-oauth: {}: the stored grant from an earlier version is used while it lasts; after it, this configuration \
                     (client_id with a secret or key, flow auto) uses the client credentials grant and acts as the client itself. \
                     Set \"flow\": \"authorization_code\" to keep logging in as a user (the grant moves along).",
                    config.server_url
                );
            }
            store.persist_locked(&source, &Persist::ForgetTokens { issuer: t.issuer.clone() }, &old)?;
        }
        if !in_use {
            for c in &clients {
                store.persist_locked(&source, &Persist::ForgetClient { issuer: c.issuer.clone() }, &old)?;
            }
        }
        log::debug!("mcp-oauth: {}: moved what was stored under another key to this configuration's own", config.server_url);
        return Ok(Restored { clients, tokens });
    }
    Ok(own)
}

pub(crate) fn restored(entries: impl IntoIterator<Item = Entry>) -> Restored {
    let mut r = Restored::default();
    for e in entries {
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

/// An in-memory store; clones share their contents (tokens persist across instances in one
/// process).
#[derive(Clone, Default)]
pub struct MemoryStore {
    data: Arc<Mutex<HashMap<String, HashMap<String, Entry>>>>,
    /// Each server's [`revision`](TokenStore::revision), kept after its entries are gone.
    revisions: Arc<Mutex<HashMap<String, u64>>>,
    locks: Arc<(Mutex<HashSet<String>>, Condvar)>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

struct MemoryLock {
    locks: Arc<(Mutex<HashSet<String>>, Condvar)>,
    server: String,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        let (m, cv) = &*self.locks;
        m.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.server);
        cv.notify_all();
    }
}

impl TokenStore for MemoryStore {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        Ok(restored(data.get(server).map(|m| m.values().cloned().collect::<Vec<_>>()).unwrap_or_default()))
    }

    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        let issuer = issuer_of(p).to_owned();
        let per = data.entry(server.to_owned()).or_default();
        let e = per.entry(issuer.clone()).or_insert_with(|| Entry { version: 1, server: server.into(), issuer, ..Default::default() });
        if e.apply(p) {
            // Moved while the data is still locked: a reader that reads the revision first
            // and then the data sees a change, never misses one.
            self.revisions.lock().unwrap_or_else(|e| e.into_inner()).insert(server.to_owned(), fresh_revision());
        }
        Ok(())
    }

    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.revisions.lock().unwrap_or_else(|e| e.into_inner()).get(server).copied().unwrap_or(0)))
    }

    fn servers(&self) -> Result<Vec<String>, StoreError> {
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<String> = data.iter().filter(|(_, per)| per.values().any(|e| !e.is_empty())).map(|(k, _)| k.clone()).collect();
        keys.sort();
        Ok(keys)
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        let (m, cv) = &*self.locks;
        let mut held = m.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(server) {
            held = cv.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        held.insert(server.to_owned());
        Ok(StoreLock { _inner: Box::new(MemoryLock { locks: self.locks.clone(), server: server.to_owned() }), fence: None })
    }
}

/// The file, in a server's directory, of its [`revision`](TokenStore::revision).
const REVISION_FILE: &str = "revision";

/// A server's revision, moved before the write it stands for (a revision that cannot be moved
/// leaves everything as it was), and put back if that write then fails: a revision moved for a
/// change that did not happen would make the writer, whose save failed, take the store for
/// changed and throw its newer tokens away; a change made without moving it could hide a login
/// and a logout elsewhere. Callers hold the server's lock.
pub(crate) struct RevisionMove {
    dir: PathBuf,
    /// What to put back: `None` if nothing moved; `Some(None)` if there was no file.
    before: Option<Option<u64>>,
}

impl RevisionMove {
    pub(crate) fn begin(dir: &Path, moves: bool) -> Result<Self, StoreError> {
        if !moves {
            return Ok(RevisionMove { dir: dir.to_owned(), before: None });
        }
        let path = dir.join(REVISION_FILE);
        let before = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            // One that cannot be read is not put back as it was: a new value then (a change).
            _ => Some(FileStore::read_revision(&path).unwrap_or_else(|_| fresh_revision())),
        };
        FileStore::move_revision(dir)?;
        Ok(RevisionMove { dir: dir.to_owned(), before: Some(before) })
    }

    /// The write failed: the revision as it was (best effort; if even this fails, the store
    /// shows a change, the careful side).
    pub(crate) fn undo(self) {
        let path = self.dir.join(REVISION_FILE);
        let _ = match self.before {
            None => Ok(()),
            Some(None) => fs::remove_file(&path).map_err(|_| ()),
            Some(Some(v)) => FileStore::write_atomic(&path, v.to_string().as_bytes()).map_err(|_| ()),
        };
    }
}

/// A store of JSON files in a per-user directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    pub(crate) dir: PathBuf,
}

pub(crate) fn hex16(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

impl FileStore {
    /// A store rooted at `dir` (created, with any missing parents, with mode 0700 when first
    /// written). An existing `dir` must belong to the current user and not be writable by
    /// group or others, or every call fails with [`StoreError::Untrusted`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    /// The per-user default: `$XDG_DATA_HOME/mcp-oauth`, else `~/.local/share/mcp-oauth`
    /// (`~/Library/Application Support/mcp-oauth` on macOS, `%APPDATA%\mcp-oauth` on Windows).
    pub fn default_dir() -> Result<PathBuf, StoreError> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if cfg!(windows) {
            return env("APPDATA").map(|d| d.join("mcp-oauth")).ok_or(StoreError::NoDirectory);
        }
        if cfg!(target_os = "macos") {
            return env("HOME").map(|h| h.join("Library/Application Support/mcp-oauth")).ok_or(StoreError::NoDirectory);
        }
        env("XDG_DATA_HOME")
            .map(|d| d.join("mcp-oauth"))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/mcp-oauth")))
            .ok_or(StoreError::NoDirectory)
    }

    /// The store in [`default_dir`](Self::default_dir).
    pub fn in_default_dir() -> Result<Self, StoreError> {
        Self::default_dir().map(Self::new)
    }

    /// The directory of one server.
    pub fn server_dir(&self, server: &str) -> PathBuf {
        self.dir.join(hex16(server))
    }

    /// The file of one (server, issuer) pair.
    pub fn entry_path(&self, server: &str, issuer: &str) -> PathBuf {
        self.server_dir(server).join(format!("{}.json", hex16(issuer)))
    }

    /// Creates (0700) and checks the store directory and the server's directory; returns the
    /// latter.
    pub(crate) fn ensure_dirs(&self, server: &str) -> Result<PathBuf, StoreError> {
        let mut b = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        if !check_dir(&self.dir, true)? {
            // Missing parents get 0700 too. If someone else made it meanwhile, the check below
            // sees theirs.
            b.recursive(true).create(&self.dir).map_err(io_err(&self.dir))?;
            check_dir(&self.dir, true)?;
        }
        let dir = self.server_dir(server);
        if !check_dir(&dir, false)? {
            match b.recursive(false).create(&dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(StoreError::Io { path: dir, source: e }),
                _ => {}
            }
            check_dir(&dir, false)?;
        }
        Ok(dir)
    }

    /// Reads one entry; `None` (with a warning naming the path, never the contents) when it is
    /// missing, unreadable, corrupt, or not trusted.
    fn read_entry(path: &Path) -> Option<Entry> {
        Self::read_json(path)
    }

    /// Reads one JSON file of the store, as [`read_entry`](Self::read_entry) does.
    pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
        let mut f = match open_checked(path, fs::OpenOptions::new().read(true)) {
            Ok(f) => f,
            Err(OpenFailure::Io(e)) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(OpenFailure::Io(e)) => {
                log::warn!("mcp-oauth: cannot read token file {}: {e}; ignoring it", path.display());
                return None;
            }
            Err(OpenFailure::Untrusted(why)) => {
                log::warn!("mcp-oauth: token file {} is {why}; not trusting it, ignoring it", path.display());
                return None;
            }
        };
        let mut bytes = Vec::new();
        if let Err(e) = io::Read::read_to_end(&mut f, &mut bytes) {
            log::warn!("mcp-oauth: cannot read token file {}: {e}; ignoring it", path.display());
            return None;
        }
        match serde_json::from_slice::<T>(&bytes) {
            Ok(e) => Some(e),
            Err(e) => {
                // The position only: serde's message can quote a value, and values here are secrets.
                log::warn!("mcp-oauth: token file {} is corrupt (at line {} column {}); ignoring it", path.display(), e.line(), e.column());
                None
            }
        }
    }

    /// Removes temp files a crashed writer left behind (older than a minute: no live writer
    /// takes that long, and writers hold the lock anyway).
    pub(crate) fn sweep_temp_files(dir: &Path) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for f in rd.flatten() {
            let stale =
                f.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 60);
            if f.file_name().to_string_lossy().starts_with(".tmp-") && stale {
                let _ = fs::remove_file(f.path());
            }
        }
    }

    /// Creates a new 0600 temp file with a random name in `dir`, exclusively: an existing file
    /// or link at that name makes it pick another name, never write through it.
    fn create_temp(dir: &Path) -> io::Result<(PathBuf, fs::File)> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            no_follow(&mut opts);
        }
        let mut last = None;
        for _ in 0..8 {
            let mut r = [0u8; 16];
            getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
            let tmp = dir.join(format!(".tmp-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>()));
            match opts.open(&tmp) {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()))
    }

    /// The revision in the file at `path`: 0 if there is none. Content that is not a number
    /// (damaged, or written by someone else: the store writes numbers) stands for itself, a
    /// digest of it, so that the same damage read twice is no change and any write is one. A
    /// file that cannot be read at all is an error (a client cannot tell).
    pub(crate) fn read_revision(path: &Path) -> Result<u64, StoreError> {
        let mut f = match open_checked(path, fs::OpenOptions::new().read(true)) {
            Ok(f) => f,
            Err(OpenFailure::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(OpenFailure::Io(e)) => return Err(StoreError::Io { path: path.to_owned(), source: e }),
            Err(OpenFailure::Untrusted(reason)) => return Err(StoreError::Untrusted { path: path.to_owned(), reason }),
        };
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut f, &mut bytes).map_err(io_err(path))?;
        Ok(revision_of_bytes(&bytes))
    }

    /// Gives the server whose directory is `dir` a new revision.
    pub(crate) fn move_revision(dir: &Path) -> Result<(), StoreError> {
        Self::write_atomic(&dir.join(REVISION_FILE), fresh_revision().to_string().as_bytes())
    }

    /// Writes `bytes` to `path` atomically: a new 0600 temp file in the same directory, fsync,
    /// rename over the target (a link or file planted there is replaced, not written through),
    /// fsync the directory.
    pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let (tmp, mut f) = Self::create_temp(dir).map_err(io_err(dir))?;
        let result = (|| {
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err(path))
    }
}

impl TokenStore for FileStore {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        let dir = self.server_dir(server);
        if !check_dir(&self.dir, true)? || !check_dir(&dir, false)? {
            return Ok(Restored::default());
        }
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::default()),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut entries = Vec::new();
        for f in rd.flatten() {
            let p = f.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Some(e) = Self::read_entry(&p) {
                    if e.server == server {
                        entries.push(e);
                    }
                }
            }
        }
        Ok(restored(entries))
    }

    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        let issuer = issuer_of(p);
        let dir = self.ensure_dirs(server)?;
        let path = self.entry_path(server, issuer);
        let mut e = Self::read_entry(&path).unwrap_or_else(|| Entry {
            version: 1,
            server: server.into(),
            issuer: issuer.into(),
            ..Default::default()
        });
        let revision = RevisionMove::begin(&dir, e.apply(p))?;
        let written = if e.is_empty() {
            match fs::remove_file(&path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(StoreError::Io { path, source: err }),
                _ => Ok(()),
            }
        } else {
            serde_json::to_vec_pretty(&e).map_err(|err| StoreError::Io { path: path.clone(), source: err.into() }).and_then(|bytes| {
                Self::sweep_temp_files(&dir);
                Self::write_atomic(&path, &bytes)
            })
        };
        if written.is_err() {
            revision.undo();
        }
        written
    }

    /// The server's revision: a number in the file `revision` of its directory, 0 while there
    /// is none. It stays when the entries go. Content that is not a number stands for itself
    /// (a digest of it: the same damage read twice is no change); a file that cannot be read at
    /// all is an error. The next save of tokens writes it anew.
    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        let dir = self.server_dir(server);
        if !check_dir(&self.dir, true)? || !check_dir(&dir, false)? {
            return Ok(Some(0));
        }
        Self::read_revision(&dir.join(REVISION_FILE)).map(Some)
    }

    /// Removes every entry `load` would read for `server` (a copy under another name too, as
    /// sync tools and backups leave them), under the server's lock.
    fn forget(&self, server: &str) -> Result<StoredServer, StoreError> {
        let _lock = self.lock(server)?;
        let held = StoredServer::of(server, &self.load(server)?);
        let dir = self.server_dir(server);
        if check_dir(&self.dir, true)? && check_dir(&dir, false)? {
            let rd = fs::read_dir(&dir).map_err(io_err(&dir))?;
            for f in rd.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|x| x == "json") && Self::read_entry(&p).is_some_and(|e| e.server == server) {
                    match fs::remove_file(&p) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(StoreError::Io { path: p, source: e }),
                        _ => {}
                    }
                }
            }
        }
        // After the entries: a forget that fails midway leaves other tokens, which shows.
        if held.tokens.is_some() {
            Self::move_revision(&self.ensure_dirs(server)?)?;
        }
        let left = self.load(server)?;
        if left.tokens.is_some() || !left.clients.is_empty() {
            return Err(StoreError::NotForgotten { server: server.to_owned() });
        }
        Ok(held)
    }

    /// The `server` of every readable entry in a trusted server directory (the file names are
    /// hashes: the entries name their server).
    fn servers(&self) -> Result<Vec<String>, StoreError> {
        if !check_dir(&self.dir, true)? {
            return Ok(Vec::new());
        }
        let rd = fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        let mut keys = std::collections::BTreeSet::new();
        for d in rd.flatten() {
            let dir = d.path();
            // An untrusted or vanished server directory is skipped, as `load` skips it.
            if !matches!(check_dir(&dir, false), Ok(true)) {
                continue;
            }
            let Ok(files) = fs::read_dir(&dir) else { continue };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|x| x == "json") {
                    // Only an entry in the directory its server's hash names counts.
                    if let Some(e) = Self::read_entry(&p).filter(|e| !e.is_empty() && self.server_dir(&e.server) == dir) {
                        keys.insert(e.server);
                    }
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        let dir = self.ensure_dirs(server)?;
        let path = dir.join(".lock");
        let mut opts = fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let f = open_checked(&path, &mut opts).map_err(|e| e.into_store_error(&path))?;
        f.lock().map_err(io_err(&path))?;
        Ok(StoreLock { _inner: Box::new(f), fence: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The owner decision for owners a test cannot create without root.
    #[cfg(unix)]
    #[test]
    fn only_private_paths_of_this_user_are_trusted() {
        assert_eq!(judge_owner(1000, 0o40700, 1000), Ok(()));
        assert_eq!(judge_owner(1000, 0o100600, 1000), Ok(()));
        assert_eq!(judge_owner(1000, 0o40755, 1000), Ok(()), "readable by others is not a way in");
        assert_eq!(judge_owner(65534, 0o40700, 1000), Err(Distrust::Owner { uid: 65534, expected: 1000 }));
        // Root trusts only root's own, and a user does not trust root's.
        assert_eq!(judge_owner(1000, 0o40700, 0), Err(Distrust::Owner { uid: 1000, expected: 0 }));
        assert_eq!(judge_owner(0, 0o40700, 1000), Err(Distrust::Owner { uid: 0, expected: 1000 }));
        for mode in [0o40777, 0o41777, 0o40770, 0o40720, 0o40702, 0o100666, 0o100620] {
            assert_eq!(judge_owner(1000, mode, 1000), Err(Distrust::Writable { mode: mode & 0o7777 }), "{mode:o}");
        }
        // Another user's shared directory: the owner is named first.
        assert_eq!(judge_owner(65534, 0o40777, 1000), Err(Distrust::Owner { uid: 65534, expected: 1000 }));
    }

    #[test]
    fn reasons_read_plainly() {
        let e = StoreError::Untrusted { path: "/tmp/x".into(), reason: Distrust::Writable { mode: 0o1777 } };
        assert!(e.to_string().starts_with("/tmp/x: refusing to use it: writable by group or others (mode 1777"), "{e}");
        let e = StoreError::Untrusted { path: "/tmp/x".into(), reason: Distrust::Owner { uid: 65534, expected: 0 } };
        assert_eq!(e.to_string(), "/tmp/x: refusing to use it: owned by uid 65534, not by this user (uid 0)");
    }

    #[cfg(unix)]
    #[test]
    fn temp_files_are_new_private_and_never_links() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("mcp-oauth-temp-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        let (a, _) = FileStore::create_temp(&dir).unwrap();
        let (b, _) = FileStore::create_temp(&dir).unwrap();
        assert_ne!(a, b);
        assert_eq!(fs::symlink_metadata(&a).unwrap().mode() & 0o777, 0o600);
        // An exclusive, no-follow open of a name that is a link fails and creates nothing.
        let target = dir.join("target");
        let link = dir.join(".tmp-link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        no_follow(&mut opts);
        assert!(opts.open(&link).is_err());
        assert!(!target.exists());
        // And so does a plain no-follow open of an existing link.
        fs::write(&target, b"x").unwrap();
        assert!(matches!(open_checked(&link, fs::OpenOptions::new().read(true)), Err(OpenFailure::Untrusted(Distrust::Symlink))));
        let _ = fs::remove_dir_all(&dir);
    }
}
