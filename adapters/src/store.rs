//! Token stores: where registrations and tokens persist between runs and instances.
//!
//! * [`MemoryStore`]: shared by every clone in one process.
//! * [`FileStore`]: one JSON file per (MCP server, issuer) in a per-user directory; files are
//!   `0600`, written atomically (temp file, fsync, rename), and a lock file serializes
//!   processes, so two processes never clobber each other or refresh with the same rotating
//!   refresh token at once. A corrupt or half-written file is skipped with a warning; it never
//!   affects another server's entry.
//!
//! The driver holds [`TokenStore::lock`] around every flow that may persist, reloads what the
//! store has (another process may have refreshed meanwhile), and only then talks to the server.

use mcp_oauth_core::{ClientInfo, Persist, Restored, TokenSet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

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
    /// No per-user directory could be determined (no HOME).
    #[error("no per-user data directory (set HOME or XDG_DATA_HOME, or pass a directory)")]
    NoDirectory,
}

/// Holds the store's lock for one server until dropped.
pub struct StoreLock {
    _inner: Box<dyn Send>,
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Where registrations and tokens live. `server` is the MCP server URL as configured.
pub trait TokenStore: Send + Sync {
    /// Everything stored for this server: registrations per issuer, and the newest tokens.
    fn load(&self, server: &str) -> Result<Restored, StoreError>;
    /// Applies one [`Persist`] output. Callers hold [`lock`](Self::lock).
    fn persist(&self, server: &str, p: &Persist) -> Result<(), StoreError>;
    /// Exclusive access for this server, across threads (and, for files, processes).
    fn lock(&self, server: &str) -> Result<StoreLock, StoreError>;
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

impl Entry {
    fn apply(&mut self, p: &Persist) {
        match p {
            Persist::Client(c) => self.client = Some(c.clone()),
            Persist::ForgetClient { .. } => self.client = None,
            Persist::Tokens(t) => self.tokens = Some(t.clone()),
            Persist::ForgetTokens { .. } => self.tokens = None,
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.client.is_none() && self.tokens.is_none()
    }
}

fn issuer_of(p: &Persist) -> &str {
    match p {
        Persist::Client(c) => &c.issuer,
        Persist::ForgetClient { issuer } | Persist::ForgetTokens { issuer } => issuer,
        Persist::Tokens(t) => &t.issuer,
        _ => "",
    }
}

fn restored(entries: impl IntoIterator<Item = Entry>) -> Restored {
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
        e.apply(p);
        Ok(())
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        let (m, cv) = &*self.locks;
        let mut held = m.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(server) {
            held = cv.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        held.insert(server.to_owned());
        Ok(StoreLock { _inner: Box::new(MemoryLock { locks: self.locks.clone(), server: server.to_owned() }) })
    }
}

/// A store of JSON files in a per-user directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

fn hex16(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

impl FileStore {
    /// A store rooted at `dir` (created with mode 0700 when first written).
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

    fn ensure_dir(&self, dir: &Path) -> Result<(), StoreError> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io_err(dir))
    }

    fn read_entry(path: &Path) -> Option<Entry> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!("mcp-oauth: cannot read token file {}: {e}; ignoring it", path.display());
                return None;
            }
        };
        match serde_json::from_slice::<Entry>(&bytes) {
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
    fn sweep_temp_files(dir: &Path) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for f in rd.flatten() {
            let stale =
                f.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 60);
            if f.file_name().to_string_lossy().starts_with(".tmp-") && stale {
                let _ = fs::remove_file(f.path());
            }
        }
    }

    /// Writes `bytes` to `path` atomically: a 0600 temp file in the same directory, fsync,
    /// rename over the target, fsync the directory.
    fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), hex16(&format!("{:?}{:?}", path, std::thread::current().id()))));
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let result = (|| {
            let mut f = opts.open(&tmp)?;
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
        let dir = self.server_dir(server);
        self.ensure_dir(&dir)?;
        let path = self.entry_path(server, issuer);
        let mut e = Self::read_entry(&path).unwrap_or_else(|| Entry {
            version: 1,
            server: server.into(),
            issuer: issuer.into(),
            ..Default::default()
        });
        e.apply(p);
        if e.is_empty() {
            return match fs::remove_file(&path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(StoreError::Io { path, source: err }),
                _ => Ok(()),
            };
        }
        let bytes = serde_json::to_vec_pretty(&e).map_err(|err| StoreError::Io { path: path.clone(), source: err.into() })?;
        Self::sweep_temp_files(&dir);
        Self::write_atomic(&path, &bytes)
    }

    fn lock(&self, server: &str) -> Result<StoreLock, StoreError> {
        let dir = self.server_dir(server);
        self.ensure_dir(&dir)?;
        let path = dir.join(".lock");
        let mut opts = fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let f = opts.open(&path).map_err(io_err(&path))?;
        f.lock().map_err(io_err(&path))?;
        Ok(StoreLock { _inner: Box::new(f) })
    }
}
