//! Token files survive crashes: a process killed (SIGKILL) in the middle of writing leaves the
//! previous or the new entry, complete, never a torn one; what the crash leaves behind (a temp
//! file) is ignored and later swept.

use mcp_oauth_client::core::secret::{AccessToken, RefreshToken};
use mcp_oauth_client::{FileStore, TokenStore};
use mcp_oauth_core::{Persist, Timestamp, TokenSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const SERVER: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://auth.example.com";
/// Large entries make each write take long enough to be interrupted.
const PAD: usize = 256 * 1024;

fn tokens(n: u64) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(format!("tok-{n}-{}", "a".repeat(PAD))),
        token_type: "Bearer".into(),
        refresh_token: Some(RefreshToken::new(format!("ref-{n}-{}", "r".repeat(PAD)))),
        expires_at: Some(Timestamp::from_secs(2_000_000_000)),
        scope: Some("mcp:read".into()),
        issuer: ISSUER.into(),
        resource: SERVER.into(),
        token_endpoint: Some(format!("{ISSUER}/token")),
        client_id: Some("c".into()),
        obtained_at: Timestamp::from_secs(1_700_000_000 + n),
        dpop_key: None,
        resource_metadata: None,
        grant: None,
    }
}

/// Checks what the store holds is one whole entry `tok-N` / `ref-N` (the same N), and returns N.
fn whole_entry(store: &FileStore) -> u64 {
    let t = store.load(SERVER).unwrap().tokens.expect("a complete entry survives the kill");
    let access = t.access_token.secret();
    let n: u64 = access.split('-').nth(1).unwrap().parse().unwrap();
    assert_eq!(access.len(), format!("tok-{n}-").len() + PAD, "access token cut short");
    let refresh = t.refresh_token.unwrap();
    assert_eq!(refresh.secret(), format!("ref-{n}-{}", "r".repeat(PAD)), "refresh token from another write");
    n
}

/// Run as a child (MCP_OAUTH_WRITER=dir): writes entries 1, 2, 3... under the lock until killed.
#[test]
fn writer_child_entry() {
    let Ok(dir) = std::env::var("MCP_OAUTH_WRITER") else {
        // Run directly: one write and one read.
        let dir = std::env::temp_dir().join(format!("mcp-oauth-writer-{}", std::process::id()));
        let store = FileStore::new(&dir);
        store.persist(SERVER, &Persist::Tokens(tokens(7))).unwrap();
        assert_eq!(whole_entry(&store), 7);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let store = FileStore::new(dir);
    let start: u64 = std::env::var("MCP_OAUTH_WRITER_FROM").unwrap().parse().unwrap();
    for n in start.. {
        let _lock = store.lock(SERVER).unwrap();
        store.persist(SERVER, &Persist::Tokens(tokens(n))).unwrap();
    }
}

/// The writer process; killed when dropped, so a failing assertion leaves no writer behind.
struct Writer(std::process::Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp-"))
        .collect()
}

#[test]
fn a_writer_killed_mid_write_never_leaves_a_torn_entry() {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::new(&dir);
    store.persist(SERVER, &Persist::Tokens(tokens(0))).unwrap();
    let mut last = 0;
    let mut advanced = 0;
    for round in 0..12u64 {
        let mut child = Writer(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "writer_child_entry", "--test-threads=1"])
                .env("MCP_OAUTH_WRITER", &dir)
                .env("MCP_OAUTH_WRITER_FROM", (last + 1).to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Once it has written (reading meanwhile is safe too), let it go on for a different
        // time each round, then kill it without warning.
        let started = Instant::now();
        while whole_entry(&store) == last {
            assert!(started.elapsed() < Duration::from_secs(20), "the writer made no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(3 + 29 * round));
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        let n = whole_entry(&store);
        assert!(n >= last, "an older entry came back: {n} after {last}");
        if n > last {
            advanced += 1;
        }
        last = n;
    }
    assert_eq!(advanced, 12, "every writer got at least one entry in");
    // The lock is free again after a killed holder (the OS drops it with the process).
    drop(store.lock(SERVER).unwrap());
    // Temp files of killed writers are ignored; once stale, the next write sweeps them.
    let server_dir = store.server_dir(SERVER);
    let left = temp_files(&server_dir);
    for f in &left {
        let old = SystemTime::now() - Duration::from_secs(300);
        std::fs::File::options().write(true).open(f).unwrap().set_modified(old).unwrap();
    }
    store.persist(SERVER, &Persist::Tokens(tokens(last + 1))).unwrap();
    assert!(temp_files(&server_dir).is_empty(), "stale temp files were not swept: {left:?}");
    assert_eq!(whole_entry(&store), last + 1);
    let _ = std::fs::remove_dir_all(&dir);
}
