//! [`KeyringStore`]: secrets in the OS credential store, an index and the lock in files.
//!
//! Each (MCP server, issuer) entry (its registration and tokens, serialized as a [`FileStore`]
//! writes them) lives in the keyring, split into items of at most [`CHUNK`] bytes: a Windows
//! credential holds 2,560 bytes, and tokens with an ID token and a DPoP key can be longer. A
//! small index file per entry, in a private directory laid out as a [`FileStore`]'s, names the
//! items and their SHA-256 and holds nothing secret. It is what makes the store work as the
//! others do:
//!
//! * a write puts the new items under a fresh random name, then replaces the index file
//!   atomically (the commit), then deletes the old items: a crash leaves the old entry or the
//!   new one, never a mix, and a reader never sees half of a write;
//! * the file lock next to the index serializes processes, so cross-process single flight holds
//!   as it does for files;
//! * [`servers`](TokenStore::servers) lists from the index, without asking the keyring (no
//!   unlock prompt for a listing).
//!
//! Every keyring call runs on its own thread with a deadline (10 s by default): a keyring that
//! waits on an unlock prompt nobody sees fails with [`KeyringFailure::Timeout`] instead of
//! hanging the caller. A keyring failure is a [`StoreError::Keyring`]; nothing is forgotten
//! because of it, and the call can be retried.

use super::{
    check_dir, hex16, io_err, issuer_of, restored, Entry, FileStore, KeyringFailure, RevisionMove, StoreError, StoreLock, StoredServer,
    TokenStore,
};
use keyring_core::{CredentialStore, Error as KrError};
use mcp_oauth_core::{Persist, Restored};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows, all(unix, not(any(target_os = "ios", target_os = "android"))))))]
compile_error!(
    "mcp-oauth-client's `keyring` feature has no OS credential store for this target \
     (it supports Linux and the BSDs, macOS and Windows): build without it and use FileStore"
);

/// The most bytes one keyring item holds (a Windows credential holds 2,560).
pub const CHUNK: usize = 2000;

/// How long a keyring call may take before it fails with [`KeyringFailure::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many timed-out keyring calls may still hang before further calls fail at once.
const MAX_STUCK: usize = 2;

/// The most items one entry may have (2 MB): an index naming more is not this store's.
const MAX_CHUNKS: u32 = 1024;

/// The keyring service name items are filed under.
pub const DEFAULT_SERVICE: &str = "mcp-oauth";

/// Which OS credential store a [`KeyringStore`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyringBackend {
    /// The platform's own: the macOS Keychain, the Windows Credential Manager, the Secret
    /// Service (GNOME Keyring, KWallet, KeePassXC) on Linux and the BSDs.
    #[default]
    Platform,
    /// The freedesktop Secret Service over the D-Bus session bus (Linux and the BSDs).
    SecretService,
    /// The Linux kernel's key retention service (keyutils): needs no daemon and works headless,
    /// over SSH and in containers, but lives in memory: items last until reboot (and the
    /// per-user persistent keyring expires after days unused, three by default).
    KeyUtils,
}

impl KeyringBackend {
    /// The backend this one stands for on this platform ([`Platform`](Self::Platform) named).
    fn resolved(self) -> KeyringBackend {
        match self {
            KeyringBackend::Platform if cfg!(any(target_os = "macos", windows)) => KeyringBackend::Platform,
            KeyringBackend::Platform => KeyringBackend::SecretService,
            other => other,
        }
    }

    /// A name for messages: "macOS Keychain", "Windows Credential Manager", "Secret Service",
    /// "kernel keyutils".
    pub fn name(self) -> &'static str {
        match self.resolved() {
            KeyringBackend::Platform if cfg!(target_os = "macos") => "macOS Keychain",
            KeyringBackend::Platform => "Windows Credential Manager",
            KeyringBackend::SecretService => "Secret Service",
            KeyringBackend::KeyUtils => "kernel keyutils",
        }
    }

    /// Parses `platform` (or `default`), `secret-service` or `keyutils`.
    pub fn parse(s: &str) -> Option<KeyringBackend> {
        match s {
            "platform" | "default" => Some(KeyringBackend::Platform),
            "secret-service" | "secret_service" => Some(KeyringBackend::SecretService),
            "keyutils" => Some(KeyringBackend::KeyUtils),
            _ => None,
        }
    }

    fn open(self) -> Result<Arc<CredentialStore>, KrError> {
        match self.resolved() {
            #[cfg(target_os = "macos")]
            KeyringBackend::Platform => Ok(apple_native_keyring_store::keychain::Store::new()?),
            #[cfg(windows)]
            KeyringBackend::Platform => Ok(windows_native_keyring_store::Store::new()?),
            #[cfg(all(unix, not(any(target_os = "macos", target_os = "ios", target_os = "android"))))]
            KeyringBackend::SecretService => {
                // Without a session bus there is nothing to ask: say so plainly (zbus would
                // otherwise look for a bus at a default path and report a socket error).
                if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|v| v.is_empty())
                    && std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|d| !Path::new(&d).join("bus").exists())
                {
                    return Err(KrError::NotSupportedByStore("no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set)".into()));
                }
                Ok(zbus_secret_service_keyring_store::Store::new()?)
            }
            #[cfg(target_os = "linux")]
            KeyringBackend::KeyUtils => {
                join_session_keyring()?;
                Ok(linux_keyutils_keyring_store::Store::new()?)
            }
            #[allow(unreachable_patterns)]
            other => Err(KrError::NotSupportedByStore(format!("{} is not on this platform", other.name()))),
        }
    }
}

/// Gives the calling thread a session keyring when it has none (a no-op otherwise).
///
/// A thread started outside a login session (a service, a container, `su`, and every worker
/// thread of this store, which inherit none) has no session keyring. The keyutils store would
/// then resolve the user's default session keyring, while its linking of the persistent keyring
/// makes the kernel create a new session keyring for the thread: the first item goes into a
/// keyring the thread no longer possesses, and fails with "access denied". Joining first avoids
/// that; items stay reachable from other threads and later processes through the user's
/// persistent keyring, where the store links them.
///
/// It also links the user's persistent keyring into that session keyring, where the store finds
/// items written by other threads and processes. The store crate does that too but ignores a
/// failure (at the quota, a link needs room): its searches would then report items as missing,
/// which reads as "nothing stored" and starts a login. Here a failure is an error.
fn join_session_keyring() -> Result<(), KrError> {
    #[cfg(target_os = "linux")]
    {
        use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
        let fail = |e: KeyError| match e {
            KeyError::AccessDenied => KrError::NoStorageAccess(Box::new(e)),
            other => KrError::PlatformFailure(Box::new(other)),
        };
        KeyRing::from_special_id(KeyRingIdentifier::Session, true).map_err(fail)?;
        KeyRing::get_persistent(KeyRingIdentifier::Session).map_err(fail)?;
    }
    Ok(())
}

/// What a keyring error says, without any bytes an item held (keyring-core's `BadEncoding` and
/// `BadDataFormat` carry them).
fn failure(e: KrError) -> KeyringFailure {
    match e {
        KrError::NoStorageAccess(p) => KeyringFailure::Unavailable(p.to_string()),
        KrError::NoDefaultStore => KeyringFailure::Unavailable("no credential store".into()),
        KrError::NotSupportedByStore(s) => KeyringFailure::Unavailable(s),
        KrError::PlatformFailure(p) if p.to_string().to_ascii_lowercase().contains("quota") => KeyringFailure::Full(p.to_string()),
        KrError::PlatformFailure(p) => KeyringFailure::Failed(p.to_string()),
        KrError::BadEncoding(_) | KrError::BadDataFormat(..) => KeyringFailure::Corrupt,
        KrError::TooLong(what, max) => KeyringFailure::TooLong(format!("{what} is longer than {max}")),
        KrError::Invalid(what, why) => KeyringFailure::Failed(format!("{what}: {why}")),
        KrError::BadStoreFormat(s) => KeyringFailure::Failed(s),
        KrError::NoEntry => KeyringFailure::Failed("an item is missing".into()),
        KrError::Ambiguous(_) => KeyringFailure::Failed("several items match one name".into()),
        _ => KeyringFailure::Failed("an unknown keyring error".into()),
    }
}

/// One entry's index file: where its items are, and their digest. Nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Index {
    version: u32,
    server: String,
    issuer: String,
    /// The random name of this version of the entry's items.
    item: String,
    /// How many items of at most [`CHUNK`] bytes.
    chunks: u32,
    /// SHA-256 of the items' bytes, joined: a mix of versions or a changed item is detected.
    sha256: String,
}

impl Index {
    /// Whether this index is one this store could have written for `server`: a sane item
    /// count and an item name of 16 hex digits (so it never names other items).
    fn is_valid_for(&self, server: &str) -> bool {
        self.server == server
            && (1..=MAX_CHUNKS).contains(&self.chunks)
            && self.item.len() == 16
            && self.item.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }

    fn user(&self, i: u32) -> String {
        format!("{}.{}.{}.{i}", hex16(&self.server), hex16(&self.issuer), self.item)
    }
}

/// Reads an index file (as the file store reads its entries: private, no links; a bad one is
/// ignored with a warning).
fn read_index(path: &Path) -> Option<Index> {
    let idx = FileStore::read_json::<Index>(path)?;
    if !idx.is_valid_for(&idx.server) {
        log::warn!("mcp-oauth: keyring index {} is not one this store wrote; ignoring it", path.display());
        return None;
    }
    Some(idx)
}

/// Items that exist, or may, and that no index may name yet (or any more): recorded before they
/// are written, cleared once they are named or deleted. Nothing secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pending {
    server: String,
    issuer: String,
    /// Item name → how many items.
    items: std::collections::BTreeMap<String, u32>,
}

impl Pending {
    fn is_valid(&self) -> bool {
        self.items.iter().all(|(id, n)| {
            (1..=MAX_CHUNKS).contains(n) && id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
    }
}

fn read_pending(path: &Path, server: &str, issuer: &str) -> Pending {
    FileStore::read_json::<Pending>(path).filter(|p| p.server == server && p.issuer == issuer && p.is_valid()).unwrap_or_else(|| Pending {
        server: server.into(),
        issuer: issuer.into(),
        items: Default::default(),
    })
}

fn write_pending(path: &Path, pending: &Pending) -> Result<(), StoreError> {
    if pending.items.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io { path: path.to_owned(), source: e }),
            _ => Ok(()),
        };
    }
    let bytes = serde_json::to_vec_pretty(pending).map_err(|e| StoreError::Io { path: path.to_owned(), source: e.into() })?;
    FileStore::write_atomic(path, &bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token store whose secrets live in the OS keyring (see the [module docs](self)).
///
/// ```no_run
/// use mcp_oauth_client::{KeyringBackend, KeyringStore, TokenStore};
/// let store = KeyringStore::in_default_dir(KeyringBackend::Platform)?;
/// store.probe()?; // fails (typed) when the keyring cannot store, or does not answer
/// println!("{} servers", store.servers()?.len());
/// # Ok::<(), mcp_oauth_client::StoreError>(())
/// ```
#[derive(Clone)]
pub struct KeyringStore {
    index: FileStore,
    backend: KeyringBackend,
    service: String,
    timeout: Duration,
    /// The opened credential store, once it opened.
    opened: Arc<Mutex<Option<Arc<CredentialStore>>>>,
    /// Keyring calls that timed out and have not returned yet (shared by clones).
    stuck: Arc<std::sync::atomic::AtomicUsize>,
    /// The one thread that talks to the keyring (shared by clones): keyutils keeps a session
    /// keyring per thread, and one thread's lets a key it holds be updated in place.
    worker: Arc<Mutex<Option<std::sync::mpsc::Sender<Job>>>>,
}

/// A keyring call for the worker thread.
type Job = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("backend", &self.backend.name())
            .field("service", &self.service)
            .field("index", &self.index.dir)
            .finish()
    }
}

impl KeyringStore {
    /// A store in `backend`, with its index and lock files in `index_dir` (created 0700 when
    /// first written; trusted as a [`FileStore`] directory is). Nothing is opened yet: the
    /// keyring is asked on first use.
    pub fn new(index_dir: impl Into<PathBuf>, backend: KeyringBackend) -> Self {
        KeyringStore {
            index: FileStore::new(index_dir),
            backend,
            service: DEFAULT_SERVICE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            opened: Arc::default(),
            stuck: Arc::default(),
            worker: Arc::default(),
        }
    }

    /// The index in its per-user default: `keyring-index` in [`FileStore::default_dir`].
    pub fn default_index_dir() -> Result<PathBuf, StoreError> {
        FileStore::default_dir().map(|d| d.join("keyring-index"))
    }

    /// A store with its index in [`default_index_dir`](Self::default_index_dir).
    pub fn in_default_dir(backend: KeyringBackend) -> Result<Self, StoreError> {
        Self::default_index_dir().map(|d| Self::new(d, backend))
    }

    /// Files items under another keyring service name than [`DEFAULT_SERVICE`] (one per
    /// application, or per test).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// How long one keyring call may take ([`DEFAULT_TIMEOUT`] unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The keyring this store uses.
    pub fn backend(&self) -> KeyringBackend {
        self.backend
    }

    /// Where the index and lock files are.
    pub fn index_dir(&self) -> &Path {
        &self.index.dir
    }

    /// Checks that the keyring answers and can store: writes, reads back and deletes one item.
    /// A locked keyring that would prompt fails with [`KeyringFailure::Timeout`].
    pub fn probe(&self) -> Result<(), StoreError> {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| self.error(KeyringFailure::Failed(e.to_string())))?;
        let (service, user) = (self.service.clone(), format!("probe.{}", hex(&r)));
        self.run(move |store| {
            let item = keyring_core::Entry::new_in_store(store, &service, &user)?;
            item.set_secret(b"mcp-oauth probe")?;
            let back = item.get_secret();
            let _ = item.delete_credential();
            if back? != b"mcp-oauth probe" {
                return Err(KrError::BadDataFormat(Vec::new(), "the probe read back differently".into()));
            }
            Ok(())
        })
    }

    fn error(&self, reason: KeyringFailure) -> StoreError {
        StoreError::Keyring { backend: self.backend.name(), reason }
    }

    /// Runs `f` against the opened keyring on its own thread, waiting at most the timeout. A
    /// call that does not answer in time is left to finish (or hang) on its own thread.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Arc<CredentialStore>) -> Result<T, KrError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run_then(f, |_, _| {})
    }

    /// As [`run`](Self::run); and when the caller gave up waiting before `f` finished, what `f`
    /// returned goes to `undo` on that thread (so a write that completes after its timeout
    /// removes what it wrote: nobody will ever name it).
    fn run_then<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Arc<CredentialStore>) -> Result<T, KrError> + Send + 'static,
        undo: impl FnOnce(&Arc<CredentialStore>, T) + Send + 'static,
    ) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering;
        // A keyring that left calls hanging gets no more threads: each would hang too.
        if self.stuck.load(Ordering::SeqCst) >= MAX_STUCK {
            return Err(self.error(KeyringFailure::Timeout { after: self.timeout }));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (opened, backend) = (self.opened.clone(), self.backend);
        // Set by whichever comes first: the thread finishing, or the caller giving up.
        let decided = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (late, stuck) = (decided.clone(), self.stuck.clone());
        self.submit(Box::new(move || {
            if late.load(Ordering::SeqCst) {
                // The caller gave up before this call started: it is not made at all.
                stuck.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            let mut opened_store = None;
            let r = (|| {
                if backend == KeyringBackend::KeyUtils {
                    join_session_keyring()?;
                }
                let store = {
                    let mut o = opened.lock().unwrap_or_else(|e| e.into_inner());
                    match &*o {
                        Some(s) => s.clone(),
                        None => o.insert(backend.open()?).clone(),
                    }
                };
                opened_store = Some(store.clone());
                f(&store)
            })();
            if late.swap(true, Ordering::SeqCst) {
                // The caller gave up: undo, and this call is no longer stuck.
                if let (Some(store), Ok(t)) = (opened_store, r) {
                    undo(&store, t);
                }
                stuck.fetch_sub(1, Ordering::SeqCst);
            } else {
                let _ = tx.send(r);
            }
        }))?;
        let r = match rx.recv_timeout(self.timeout) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if !decided.swap(true, Ordering::SeqCst) {
                    self.stuck.fetch_add(1, Ordering::SeqCst);
                    return Err(self.error(KeyringFailure::Timeout { after: self.timeout }));
                }
                // It finished just now: its result is on its way.
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => return Err(self.error(KeyringFailure::Failed("the keyring call panicked".into()))),
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(self.error(KeyringFailure::Failed("the keyring call panicked".into())))
            }
        };
        r.map_err(|e| self.error(failure(e)))
    }

    /// Hands `job` to the worker thread, starting it (again, should it have died) as needed.
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        let mut w = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        let job = match &*w {
            Some(tx) => match tx.send(job) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("mcp-oauth-keyring".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|e| self.error(KeyringFailure::Failed(format!("cannot start a thread: {e}"))))?;
        tx.send(job).map_err(|_| self.error(KeyringFailure::Failed("the keyring thread ended".into())))?;
        *w = Some(tx);
        Ok(())
    }

    /// The entries of `indexes`, read from the keyring in one call: `None` where an item is
    /// missing or does not match its digest.
    fn read(&self, indexes: Vec<Index>) -> Result<Vec<Got>, StoreError> {
        let service = self.service.clone();
        let raw = self.run(move |store| {
            let mut out = Vec::with_capacity(indexes.len());
            'entries: for idx in &indexes {
                let mut bytes = Vec::new();
                for i in 0..idx.chunks {
                    match keyring_core::Entry::new_in_store(store, &service, &idx.user(i))?.get_secret() {
                        Ok(b) => bytes.extend_from_slice(&b),
                        Err(KrError::NoEntry) => {
                            out.push(Err(None));
                            continue 'entries;
                        }
                        // keyutils also says this of a key another process deleted between
                        // finding and reading it: the caller tells the two apart.
                        Err(KrError::NoStorageAccess(p)) => {
                            out.push(Err(Some(p.to_string())));
                            continue 'entries;
                        }
                        Err(e) => return Err(e),
                    }
                }
                out.push(Ok(bytes));
            }
            Ok((indexes, out))
        })?;
        let (indexes, out) = raw;
        Ok(indexes
            .iter()
            .zip(out)
            .map(|(idx, bytes)| {
                let bytes = match bytes {
                    Ok(b) => b,
                    Err(None) => return Got::Missing,
                    Err(Some(why)) => return Got::Denied(why),
                };
                if hex(&Sha256::digest(&bytes)) != idx.sha256 {
                    log::warn!("mcp-oauth: the keyring items of {} do not match their index; ignoring them", crate::safe_url(&idx.server));
                    return Got::Missing;
                }
                match serde_json::from_slice::<Entry>(&bytes) {
                    Ok(e) if e.server == idx.server && e.issuer == idx.issuer => Got::Entry(Box::new(e)),
                    _ => {
                        log::warn!("mcp-oauth: the keyring items of {} are corrupt; ignoring them", crate::safe_url(&idx.server));
                        Got::Missing
                    }
                }
            })
            .collect())
    }

    /// Deletes the items of `idx` (a missing one is fine).
    fn delete(&self, idx: Index) -> Result<(), StoreError> {
        let service = self.service.clone();
        self.run(move |store| {
            for i in 0..idx.chunks {
                match keyring_core::Entry::new_in_store(store, &service, &idx.user(i))?.delete_credential() {
                    Ok(()) | Err(KrError::NoEntry) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Writes `chunks` as the items of `idx`. Should the caller have given up waiting (a keyring
    /// that answered after the timeout), the items are deleted again: no index will name them.
    fn write_items(&self, idx: &Index, chunks: &[Vec<u8>]) -> Result<(), StoreError> {
        let (service, new, chunks) = (self.service.clone(), idx.clone(), chunks.to_vec());
        let (undo_service, undo_idx) = (self.service.clone(), idx.clone());
        self.run_then(
            move |store| {
                for (i, chunk) in (0u32..).zip(&chunks) {
                    let item = keyring_core::Entry::new_in_store(store, &service, &new.user(i))?;
                    if let Err(e) = item.set_secret(chunk) {
                        for j in 0..i {
                            if let Ok(done) = keyring_core::Entry::new_in_store(store, &service, &new.user(j)) {
                                let _ = done.delete_credential();
                            }
                        }
                        return Err(e);
                    }
                }
                Ok(())
            },
            move |store, ()| {
                for i in 0..undo_idx.chunks {
                    if let Ok(item) = keyring_core::Entry::new_in_store(store, &undo_service, &undo_idx.user(i)) {
                        let _ = item.delete_credential();
                    }
                }
            },
        )
    }

    fn pending_path(&self, server: &str, issuer: &str) -> PathBuf {
        self.index.server_dir(server).join(format!("{}.pending", hex16(issuer)))
    }

    /// Deletes the items `pending` records, except `keep` (the ones the index names); what
    /// could not be deleted stays recorded.
    fn sweep(&self, pending: &mut Pending, keep: Option<&str>) {
        let stale: Vec<(String, u32)> =
            pending.items.iter().filter(|(id, _)| Some(id.as_str()) != keep).map(|(id, n)| (id.clone(), *n)).collect();
        for (item, chunks) in stale {
            let idx = Index {
                version: 1,
                server: pending.server.clone(),
                issuer: pending.issuer.clone(),
                item: item.clone(),
                chunks,
                sha256: String::new(),
            };
            match self.delete(idx) {
                Ok(()) => {
                    pending.items.remove(&item);
                }
                Err(e) => log::warn!("mcp-oauth: could not delete unused keyring items: {e}"),
            }
        }
    }

    /// The index files of `server` (trusted, readable, naming this server), with their paths.
    fn indexes(&self, server: &str) -> Result<Vec<(PathBuf, Index)>, StoreError> {
        let dir = self.index.server_dir(server);
        if !check_dir(&self.index.dir, true)? || !check_dir(&dir, false)? {
            return Ok(Vec::new());
        }
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut out = Vec::new();
        for f in rd.flatten() {
            let p = f.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Some(idx) = read_index(&p).filter(|i| i.is_valid_for(server)) {
                    out.push((p, idx));
                }
            }
        }
        Ok(out)
    }

    /// The entry of one index file, re-reading the index when its items went missing or did
    /// not match (a writer in another process replaced them meanwhile).
    fn read_current(&self, path: &Path, mut idx: Index) -> Result<Option<Entry>, StoreError> {
        // Each retry follows a new version another process committed meanwhile; a run of
        // back-to-back writers gets this many.
        let mut denied = None;
        for _ in 0..32 {
            match self.read(vec![idx.clone()])?.pop() {
                Some(Got::Entry(e)) => return Ok(Some(*e)),
                Some(Got::Denied(why)) => denied = Some(why),
                _ => denied = None,
            }
            match read_index(path) {
                Some(now) if now != idx && now.is_valid_for(&idx.server) && now.issuer == idx.issuer => idx = now,
                _ => break,
            }
        }
        // Refused, and not because a writer replaced the items: an error (never "nothing
        // stored", which would start a login that overwrites it).
        if let Some(why) = denied {
            return Err(self.error(KeyringFailure::Unavailable(why)));
        }
        log::warn!(
            "mcp-oauth: the {} no longer holds what was stored for {} (issuer {}); it is ignored (log in again)",
            self.backend.name(),
            crate::safe_url(&idx.server),
            crate::safe_url(&idx.issuer)
        );
        Ok(None)
    }
}

/// One entry as read from the keyring.
enum Got {
    Entry(Box<Entry>),
    /// An item is missing, or the items do not match the index.
    Missing,
    /// The keyring refused to read an item.
    Denied(String),
}

impl TokenStore for KeyringStore {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        let indexes = self.indexes(server)?;
        if indexes.is_empty() {
            return Ok(Restored::default());
        }
        let (paths, idxs): (Vec<PathBuf>, Vec<Index>) = indexes.into_iter().unzip();
        let first = self.read(idxs.clone())?;
        let mut entries = Vec::new();
        for ((path, idx), e) in paths.iter().zip(idxs).zip(first) {
            match e {
                Got::Entry(e) => entries.push(*e),
                Got::Missing | Got::Denied(_) => entries.extend(self.read_current(path, idx)?),
            }
        }
        Ok(restored(entries))
    }

    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        let issuer = issuer_of(p);
        let dir = self.index.ensure_dirs(server)?;
        let path = self.index.entry_path(server, issuer);
        let old = read_index(&path).filter(|i| i.is_valid_for(server) && i.issuer == issuer);
        // What earlier writers left unnamed (killed between items and index, or before deleting
        // the replaced items) goes first.
        let pending_path = self.pending_path(server, issuer);
        let mut pending = read_pending(&pending_path, server, issuer);
        self.sweep(&mut pending, old.as_ref().map(|o| o.item.as_str()));
        let current = match &old {
            Some(idx) => self.read_current(&path, idx.clone())?,
            None => None,
        };
        let mut e = current.unwrap_or_else(|| Entry { version: 1, server: server.into(), issuer: issuer.into(), ..Default::default() });
        // The revision before the write, put back if the write does not happen (see
        // `RevisionMove`).
        let revision = RevisionMove::begin(&dir, e.apply(p))?;
        if e.is_empty() {
            match std::fs::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    revision.undo();
                    return Err(StoreError::Io { path, source: err });
                }
                _ => {}
            }
            if let Some(old) = old {
                pending.items.insert(old.item.clone(), old.chunks);
            }
            self.sweep(&mut pending, None);
            return write_pending(&pending_path, &pending);
        }
        let committed = (|| {
            let bytes = serde_json::to_vec(&e).map_err(|err| StoreError::Io { path: path.clone(), source: err.into() })?;
            let mut r = [0u8; 8];
            getrandom::fill(&mut r).map_err(|err| self.error(KeyringFailure::Failed(err.to_string())))?;
            let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect();
            let idx = Index {
                version: 1,
                server: server.into(),
                issuer: issuer.into(),
                item: hex(&r),
                chunks: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
                sha256: hex(&Sha256::digest(&bytes)),
            };
            // 0. A record of the items about to exist (and of those about to be replaced),
            //    before any is written: whoever comes next deletes what no index names.
            pending.items.insert(idx.item.clone(), idx.chunks);
            if let Some(o) = &old {
                pending.items.insert(o.item.clone(), o.chunks);
            }
            write_pending(&pending_path, &pending)?;
            // 1. The new items, under their new name.
            if let Err(err) = self.write_items(&idx, &chunks) {
                // Nothing of the new version is left; the stored entry is as it was. (A keyring
                // at its quota, `KeyringFailure::Full`, refuses here: it has no room for the
                // new version beside the old one, and writing over the old one in place could
                // lose both.)
                pending.items.remove(&idx.item);
                let _ = write_pending(&pending_path, &pending);
                return Err(err);
            }
            // 2. The commit: the index names them.
            let index_bytes = serde_json::to_vec_pretty(&idx).map_err(|err| StoreError::Io { path: path.clone(), source: err.into() })?;
            FileStore::sweep_temp_files(&dir);
            FileStore::write_atomic(&path, &index_bytes)?;
            Ok(idx)
        })();
        let idx = match committed {
            Ok(idx) => idx,
            Err(err) => {
                revision.undo();
                return Err(err);
            }
        };
        // 3. The replaced items go (what fails stays recorded, for the next writer).
        self.sweep(&mut pending, Some(&idx.item));
        pending.items.remove(&idx.item);
        write_pending(&pending_path, &pending)
    }

    /// Deletes the keyring items and index files of `server`, under its lock. Works when the
    /// keyring no longer holds the items (after a reboot, for keyutils).
    fn forget(&self, server: &str) -> Result<StoredServer, StoreError> {
        let _lock = self.lock(server)?;
        let held = StoredServer::of(server, &self.load(server)?);
        for (path, idx) in self.indexes(server)? {
            self.delete(idx)?;
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StoreError::Io { path, source: e }),
                _ => {}
            }
        }
        // Items that no index names (a writer killed mid-write, a write after its timeout).
        let dir = self.index.server_dir(server);
        if check_dir(&self.index.dir, true)? && check_dir(&dir, false)? {
            for f in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|x| x == "pending") {
                    if let Some(mut pending) = FileStore::read_json::<Pending>(&p).filter(|q| q.server == server && q.is_valid()) {
                        self.sweep(&mut pending, None);
                        write_pending(&p, &pending)?;
                    }
                }
            }
        }
        if held.tokens.is_some() {
            FileStore::move_revision(&self.index.ensure_dirs(server)?)?;
        }
        if !self.indexes(server)?.is_empty() {
            return Err(StoreError::NotForgotten { server: server.to_owned() });
        }
        Ok(held)
    }

    /// Kept in the index directory, as [`FileStore`] keeps it (the keyring holds no revision).
    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        TokenStore::revision(&self.index, server)
    }

    /// The servers with an index file (or items recorded as pending), without asking the
    /// keyring.
    fn servers(&self) -> Result<Vec<String>, StoreError> {
        if !check_dir(&self.index.dir, true)? {
            return Ok(Vec::new());
        }
        let rd = std::fs::read_dir(&self.index.dir).map_err(io_err(&self.index.dir))?;
        let mut keys = std::collections::BTreeSet::new();
        for d in rd.flatten() {
            let dir = d.path();
            if !matches!(check_dir(&dir, false), Ok(true)) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(&dir) else { continue };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|x| x == "json") {
                    if let Some(idx) = read_index(&p).filter(|i| i.is_valid_for(&i.server) && self.index.server_dir(&i.server) == dir) {
                        keys.insert(idx.server);
                    }
                } else if p.extension().is_some_and(|x| x == "pending") {
                    // Items no index names yet (a first login killed mid-write) are held too:
                    // listed, so that forgetting everything deletes them.
                    if let Some(q) = FileStore::read_json::<Pending>(&p)
                        .filter(|q| q.is_valid() && !q.items.is_empty() && self.index.server_dir(&q.server) == dir)
                    {
                        keys.insert(q.server);
                    }
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        self.index.lock(server)
    }
}

/// What [`auto`] chose.
#[non_exhaustive]
pub struct AutoStore {
    /// The store to use.
    pub store: Arc<dyn TokenStore>,
    /// The keyring, when it answered.
    pub keyring: Option<KeyringBackend>,
    /// Why the keyring was not chosen, when it was not.
    pub fallback: Option<StoreError>,
    /// The stores behind [`store`](Self::store) (the keyring and the file store when the keyring
    /// answered): a thorough logout revokes and forgets in each what it still holds.
    pub parts: Vec<Arc<dyn TokenStore>>,
    /// A line for a status screen: which store, and why.
    pub description: String,
}

impl std::fmt::Debug for AutoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoStore")
            .field("keyring", &self.keyring)
            .field("fallback", &self.fallback)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// Picks a store: the keyring when it answers a [`probe`](KeyringStore::probe) within
/// `timeout`, else the [`FileStore`] in `dir` (the keyring's index goes in its
/// `keyring-index`). The choice is logged once per call.
///
/// When the keyring answers, the store is per server: a server whose login is in the file
/// store and not in the keyring stays in the file store (an application using
/// `FileStore::in_default_dir()` shares it, under the same file lock, and nothing is moved or
/// copied, so two copies of a rotating refresh token never exist); every other server uses the
/// keyring. The choice is made once per server and kept for the life of the store. `forget`
/// forgets in both. When the keyring does not answer, logins it holds stay there, and
/// [`AutoStore::description`] says how many are out of reach.
pub fn auto(dir: impl Into<PathBuf>, backend: KeyringBackend, timeout: Duration) -> AutoStore {
    let dir = dir.into();
    let file = FileStore::new(&dir);
    let keyring = KeyringStore::new(dir.join("keyring-index"), backend).with_timeout(timeout);
    match keyring.probe() {
        Ok(()) => {
            log::debug!(
                "mcp-oauth: store: the {} (index in {}), and files in {}",
                backend.name(),
                keyring.index_dir().display(),
                dir.display()
            );
            let in_files = file.servers().map(|s| s.len()).unwrap_or(0);
            let mut description = format!("{} (index in {})", backend.name(), keyring.index_dir().display());
            if in_files > 0 {
                description.push_str(&format!("; logins made with files stay in {}", dir.display()));
            }
            let parts: Vec<Arc<dyn TokenStore>> = vec![Arc::new(keyring.clone()), Arc::new(file.clone())];
            AutoStore {
                description,
                store: Arc::new(Routed { keyring, file, locked: Arc::default() }),
                keyring: Some(backend),
                fallback: None,
                parts,
            }
        }
        Err(e) => {
            let stranded = keyring.servers().map(|s| s.len()).unwrap_or(0);
            let mut description = format!("files in {} (the {e})", dir.display());
            if stranded > 0 {
                description.push_str(&format!("; the keyring holds {stranded} login(s) that are out of reach until it answers"));
            }
            log::info!("mcp-oauth: store: {description}");
            let file: Arc<dyn TokenStore> = Arc::new(file);
            AutoStore { store: file.clone(), keyring: None, fallback: Some(e), parts: vec![file], description }
        }
    }
}

/// [`auto`]'s store when the keyring answers: the keyring, except for servers whose login is
/// in the file store and not in the keyring.
#[derive(Clone)]
struct Routed {
    keyring: KeyringStore,
    file: FileStore,
    /// Per store key, while this store holds its lock: true when it went to the file store.
    /// Writes under the lock reach the store the lock was taken in; without a lock, each call
    /// decides afresh (a login made elsewhere since, in either store, is seen).
    locked: Arc<Mutex<std::collections::HashMap<String, bool>>>,
}

impl Routed {
    fn to_files(&self, server: &str) -> Result<bool, StoreError> {
        if let Some(r) = self.locked.lock().unwrap_or_else(|e| e.into_inner()).get(server) {
            return Ok(*r);
        }
        // The keyring's index says what it holds without asking the keyring.
        Ok(self.keyring.indexes(server)?.is_empty() && {
            let r = self.file.load(server)?;
            r.tokens.is_some() || !r.clients.is_empty()
        })
    }

    fn pick(&self, server: &str) -> Result<&dyn TokenStore, StoreError> {
        Ok(if self.to_files(server)? { &self.file } else { &self.keyring })
    }
}

/// A lock of [`Routed`]: the underlying store's, and the route kept until it is let go.
struct RoutedLock {
    _inner: StoreLock,
    locked: Arc<Mutex<std::collections::HashMap<String, bool>>>,
    server: String,
}

impl Drop for RoutedLock {
    fn drop(&mut self) {
        self.locked.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.server);
    }
}

impl TokenStore for Routed {
    fn load(&self, server: &str) -> Result<Restored, StoreError> {
        self.pick(server)?.load(server)
    }

    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError> {
        self.pick(server)?.persist(server, p)
    }

    fn persist_locked(&self, server: &str, p: &Persist, lock: &StoreLock) -> Result<(), StoreError> {
        self.pick(server)?.persist_locked(server, p, lock)
    }

    /// While the keyring holds the server's entries, the keyring's revision: a client reads
    /// them alone, and what the files hold does not concern it. Otherwise both stores'
    /// revisions, mixed: the files may be what is read, or become it (an application on the
    /// files alone shares them), and a change in either shows.
    fn revision(&self, server: &str) -> Result<Option<u64>, StoreError> {
        let keyring = self.keyring.revision(server)?;
        if !self.keyring.indexes(server)?.is_empty() {
            return Ok(keyring);
        }
        Ok(match (self.file.revision(server)?, keyring) {
            (Some(f), Some(k)) => Some(f ^ k.rotate_left(17)),
            _ => None,
        })
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        // Decided, locked, then decided again under the lock: another process may have written
        // the other store meanwhile. Kept while the lock is held (a flow's writes follow it).
        let mut files = self.to_files(server)?;
        loop {
            let inner = if files { self.file.lock(server)? } else { self.keyring.lock(server)? };
            let now = self.to_files(server)?;
            if now == files {
                self.locked.lock().unwrap_or_else(|e| e.into_inner()).insert(server.to_owned(), files);
                return Ok(StoreLock {
                    _inner: Box::new(RoutedLock { _inner: inner, locked: self.locked.clone(), server: server.to_owned() }),
                    fence: None,
                });
            }
            files = now;
        }
    }

    fn servers(&self) -> Result<Vec<String>, StoreError> {
        let mut all: std::collections::BTreeSet<String> = self.keyring.servers()?.into_iter().collect();
        all.extend(self.file.servers()?);
        Ok(all.into_iter().collect())
    }

    fn describe(&self, server: &str) -> Result<StoredServer, StoreError> {
        self.pick(server)?.describe(server)
    }

    /// Forgets in both stores: a login made in files on a day the keyring did not answer goes
    /// too. Returns what the chosen store held (or, if nothing, what the other held).
    fn forget(&self, server: &str) -> Result<StoredServer, StoreError> {
        let files_first = self.to_files(server)?;
        let a = self.keyring.forget(server)?;
        let b = self.file.forget(server)?;
        let (chosen, other) = if files_first { (b, a) } else { (a, b) };
        Ok(if chosen.is_empty() { other } else { chosen })
    }
}
