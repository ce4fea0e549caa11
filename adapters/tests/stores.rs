//! Tokens persist across instances: a shared MemoryStore, and a FileStore on disk (0600 files,
//! atomic writes, corrupt files ignored).

mod common;
use common::*;
use mcp_oauth_client::{FileStore, MemoryStore, TokenStore};
use std::sync::Arc;

fn oauth_requests(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().log.iter().filter(|r| r.target != "/mcp").count()
}

fn memory_store_is_shared_by_instances(a: Adapter) {
    let s = server(|_| {});
    let store = MemoryStore::new();
    let (i, _) = following_browser();
    a.with_oauth(config(&s), Arc::new(store.clone()), i.clone()).unwrap().list_tools().unwrap();
    let before = oauth_requests(&s);
    a.with_oauth(config(&s), Arc::new(store), i).unwrap().list_tools().unwrap();
    assert_eq!(oauth_requests(&s), before, "the second instance made OAuth requests");
}

fn file_store_persists_with_private_permissions(a: Adapter) {
    let s = server(|_| {});
    let dir = std::env::temp_dir().join(format!("mcp-oauth-test-{}-{}-{}", std::process::id(), line!(), a.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let (i, _) = following_browser();
    a.with_oauth(config(&s), Arc::new(FileStore::new(&dir)), i.clone()).unwrap().list_tools().unwrap();
    let before = oauth_requests(&s);
    // A new store object reads the files back: a fresh start of the program.
    a.with_oauth(config(&s), Arc::new(FileStore::new(&dir)), i).unwrap().list_tools().unwrap();
    assert_eq!(oauth_requests(&s), before);
    let store = FileStore::new(&dir);
    let key = config(&s).store_key();
    let file = store.entry_path(&key, &s.origin());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("access_token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(store.server_dir(&key)).unwrap().permissions().mode() & 0o777, 0o700);
    }
    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(store.server_dir(&key))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

fn a_corrupt_file_is_ignored_and_other_servers_are_untouched(a: Adapter) {
    let s = server(|_| {});
    let dir = std::env::temp_dir().join(format!("mcp-oauth-test-{}-{}-{}", std::process::id(), line!(), a.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::new(&dir);
    let (i, _) = following_browser();
    a.with_oauth(config(&s), Arc::new(store.clone()), i.clone()).unwrap().list_tools().unwrap();
    let key = config(&s).store_key();
    // Another server's entry, then a half-written file for ours.
    let other = "https://other.example.com/mcp";
    let t = store.load(&key).unwrap().tokens.unwrap();
    store.persist(other, &mcp_oauth_core::Persist::Tokens(t)).unwrap();
    std::fs::write(store.entry_path(&key, &s.origin()), b"{\"version\":1,\"server\":\"http").unwrap();
    let r = store.load(&key).unwrap();
    assert!(r.tokens.is_none() && r.clients.is_empty(), "a corrupt file yields nothing, not a panic");
    assert!(store.load(other).unwrap().tokens.is_some(), "another server's entry survives");
    // The program recovers by authorizing again and rewriting the file.
    a.with_oauth(config(&s), Arc::new(store.clone()), i).unwrap().list_tools().unwrap();
    assert!(store.load(&key).unwrap().tokens.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run as a child by `file_store_persists_across_processes` (MCP_OAUTH_CHILD=dir|url): uses the
/// stored token, non-interactively. Run directly: an empty store yields nothing.
#[test]
fn file_store_child_entry() {
    match std::env::var("MCP_OAUTH_CHILD") {
        Ok(spec) => {
            let (dir, url) = spec.split_once('|').unwrap();
            let a = Adapter::from_name(&std::env::var("MCP_OAUTH_ADAPTER").unwrap_or_default());
            let config = mcp_oauth_client::Config::new(url.parse().unwrap());
            let mut mcp = a.with_oauth(config, Arc::new(FileStore::new(dir)), mcp_oauth_client::Interaction::non_interactive()).unwrap();
            mcp.list_tools().expect("the child uses the parent's stored token");
        }
        Err(_) => {
            let dir = std::env::temp_dir().join(format!("mcp-oauth-empty-{}", std::process::id()));
            let r = FileStore::new(&dir).load("https://nothing.example.com/mcp").unwrap();
            assert!(r.tokens.is_none() && r.clients.is_empty());
        }
    }
}

fn file_store_persists_across_processes(a: Adapter) {
    let s = server(|_| {});
    let dir = std::env::temp_dir().join(format!("mcp-oauth-test-{}-{}-{}", std::process::id(), line!(), a.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let (i, _) = following_browser();
    a.with_oauth(config(&s), Arc::new(FileStore::new(&dir)), i).unwrap().list_tools().unwrap();
    let oauth_before = oauth_requests(&s);
    let mcp_before = s.lock().count("/mcp");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "file_store_child_entry", "--test-threads=1"])
        .env("MCP_OAUTH_ADAPTER", a.name())
        .env("MCP_OAUTH_CHILD", format!("{}|{}", dir.display(), s.mcp_url()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child process failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(oauth_requests(&s), oauth_before, "the child made OAuth requests");
    assert!(s.lock().count("/mcp") > mcp_before, "the child talked to the server");
    let _ = std::fs::remove_dir_all(&dir);
}

on_every_adapter!(
    memory_store_is_shared_by_instances,
    file_store_persists_with_private_permissions,
    a_corrupt_file_is_ignored_and_other_servers_are_untouched,
    file_store_persists_across_processes
);
