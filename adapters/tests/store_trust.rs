//! A FileStore trusts only what its own user made privately: a store or server directory that
//! another user owns or may write is refused with an error naming the path; entries and the
//! lock file are never followed through symbolic links; an entry that another user owns or may
//! write, or that is a link, is ignored; temp files cannot be redirected by a planted link.
//!
//! Owner checks need a second user: when the tests run as root (as CI does) they `chown` to
//! `nobody` (65534); otherwise that part is skipped here, and the unit tests of the store's
//! decision function (`judge_owner`) cover it.
#![cfg(unix)]

use mcp_oauth_client::core::secret::{AccessToken, RefreshToken};
use mcp_oauth_client::{FileStore, StoreError, TokenStore};
use mcp_oauth_core::{Persist, Timestamp, TokenSet};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const SERVER: &str = "http://127.0.0.1:1/mcp";
const ISSUER: &str = "https://as.example";

fn tokens(endpoint: &str) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new("AT-VICTIM-SECRET"),
        token_type: "Bearer".into(),
        refresh_token: Some(RefreshToken::new("RT-VICTIM-SECRET")),
        expires_at: Some(Timestamp::from_secs(9_999_999_999)),
        scope: None,
        issuer: ISSUER.into(),
        resource: SERVER.into(),
        token_endpoint: Some(endpoint.into()),
        client_id: Some("victim-client".into()),
        obtained_at: Timestamp::from_secs(1),
        dpop_key: None,
        resource_metadata: None,
        grant: None,
    }
}

/// A fresh, empty scratch directory for one test (removed when dropped).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mcp-oauth-trust-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The uid files made by this process get.
fn my_uid(t: &Scratch) -> u32 {
    std::fs::metadata(&t.0).unwrap().uid()
}

/// Another user: `nobody`, or its neighbour when we are `nobody`.
fn other_uid(t: &Scratch) -> u32 {
    if my_uid(t) == 65534 {
        65533
    } else {
        65534
    }
}

/// Gives `p` to [`other_uid`]; false (and a note) when this process may not (not root).
fn give_away(t: &Scratch, p: &Path) -> bool {
    let other = other_uid(t);
    match std::os::unix::fs::chown(p, Some(other), Some(other)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("not root ({e}): the foreign-owner case is covered by the store's unit tests");
            false
        }
    }
}

/// A valid entry file for SERVER, as the store itself would write it.
fn entry_json(endpoint: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"version": 1, "server": SERVER, "issuer": ISSUER, "tokens": tokens(endpoint)})).unwrap()
}

/// The error must name the path and the reason, and never quote a secret.
fn assert_refused(r: Result<impl std::fmt::Debug, StoreError>, path: &Path, reason: &str) {
    let e = r.expect_err("the store used a directory it must not trust");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "the error does not name {}: {msg}", path.display());
    assert!(msg.contains(reason), "the error does not say {reason:?}: {msg}");
    for s in ["AT-VICTIM-SECRET", "RT-VICTIM-SECRET"] {
        assert!(!msg.contains(s) && !format!("{e:?}").contains(s), "the error quotes a secret");
    }
}

#[test]
fn a_store_directory_others_may_write_is_refused() {
    let t = Scratch::new("store-0777");
    let root = t.0.join("store");
    std::fs::create_dir(&root).unwrap();
    chmod(&root, 0o777);
    let store = FileStore::new(&root);
    assert_refused(store.persist(SERVER, &Persist::Tokens(tokens("https://as.example/token"))), &root, "writable by group or others");
    assert_refused(store.lock(SERVER), &root, "writable by group or others");
    // Something planted there is not read either.
    std::fs::create_dir(store.server_dir(SERVER)).unwrap();
    std::fs::write(store.entry_path(SERVER, ISSUER), entry_json("http://127.0.0.1:2/token")).unwrap();
    assert_refused(store.load(SERVER), &root, "writable by group or others");
    // Group-writable is refused too.
    chmod(&root, 0o770);
    assert_refused(store.load(SERVER), &root, "writable by group or others");
}

#[test]
fn a_server_directory_others_may_write_is_refused() {
    let t = Scratch::new("server-0777");
    let store = FileStore::new(&t.0);
    let dir = store.server_dir(SERVER);
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o777);
    std::fs::write(store.entry_path(SERVER, ISSUER), entry_json("http://127.0.0.1:2/token")).unwrap();
    assert_refused(store.load(SERVER), &dir, "writable by group or others");
    assert_refused(store.persist(SERVER, &Persist::Tokens(tokens("https://as.example/token"))), &dir, "writable by group or others");
    assert_refused(store.lock(SERVER), &dir, "writable by group or others");
}

#[test]
fn a_server_directory_that_is_a_link_is_refused() {
    let t = Scratch::new("server-link");
    let elsewhere = t.0.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    chmod(&elsewhere, 0o700);
    let store = FileStore::new(t.0.join("store"));
    std::fs::create_dir(t.0.join("store")).unwrap();
    chmod(&t.0.join("store"), 0o700);
    let dir = store.server_dir(SERVER);
    symlink(&elsewhere, &dir).unwrap();
    assert_refused(store.load(SERVER), &dir, "symbolic link");
    assert_refused(store.persist(SERVER, &Persist::Tokens(tokens("https://as.example/token"))), &dir, "symbolic link");
    assert_refused(store.lock(SERVER), &dir, "symbolic link");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "the store wrote through the link");
}

#[test]
fn directories_of_another_user_are_refused() {
    let t = Scratch::new("foreign-dirs");
    let root = t.0.join("store");
    std::fs::create_dir(&root).unwrap();
    chmod(&root, 0o755);
    if !give_away(&t, &root) {
        return;
    }
    let theirs = format!("owned by uid {}", other_uid(&t));
    let store = FileStore::new(&root);
    assert_refused(store.load(SERVER), &root, &theirs);
    assert_refused(store.lock(SERVER), &root, &theirs);
    // Our store directory, another user's server directory.
    std::os::unix::fs::chown(&root, Some(my_uid(&t)), None).unwrap();
    chmod(&root, 0o700);
    let dir = store.server_dir(SERVER);
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    assert!(give_away(&t, &dir));
    assert_refused(store.load(SERVER), &dir, &theirs);
    assert_refused(store.persist(SERVER, &Persist::Tokens(tokens("https://as.example/token"))), &dir, &theirs);
}

/// The reviewer's reproduction: a link planted at the temp name the store used to pick
/// (`.tmp-<pid>-<hash of path and thread>`) received the tokens.
#[test]
fn a_link_at_a_temp_name_receives_nothing() {
    let t = Scratch::new("temp-link");
    let store = FileStore::new(t.0.join("store"));
    store.persist(SERVER, &Persist::ForgetTokens { issuer: ISSUER.into() }).unwrap();
    let loot = t.0.join("loot");
    std::fs::write(&loot, b"").unwrap();
    chmod(&loot, 0o666);
    let entry = store.entry_path(SERVER, ISSUER);
    let hex16 = |s: &str| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
    };
    let old_name = format!(".tmp-{}-{}", std::process::id(), hex16(&format!("{:?}{:?}", entry, std::thread::current().id())));
    symlink(&loot, store.server_dir(SERVER).join(old_name)).unwrap();
    store.persist(SERVER, &Persist::Tokens(tokens("https://as.example/token"))).unwrap();
    // (No assert_eq!: its message would print what went through.)
    assert!(std::fs::read(&loot).unwrap().is_empty(), "the tokens went through the planted link");
    let m = std::fs::symlink_metadata(&entry).unwrap();
    assert!(m.file_type().is_file(), "the entry is not a regular file");
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(store.load(SERVER).unwrap().tokens.unwrap().access_token.secret(), "AT-VICTIM-SECRET");
}

#[test]
fn an_entry_that_is_a_link_is_ignored() {
    let t = Scratch::new("entry-link");
    let store = FileStore::new(t.0.join("store"));
    store.persist(SERVER, &Persist::ForgetTokens { issuer: ISSUER.into() }).unwrap();
    // A well-formed entry elsewhere (even one of ours, 0600): reached only through a link.
    let planted = t.0.join("planted.json");
    std::fs::write(&planted, entry_json("http://127.0.0.1:2/token")).unwrap();
    chmod(&planted, 0o600);
    symlink(&planted, store.entry_path(SERVER, ISSUER)).unwrap();
    assert!(store.load(SERVER).unwrap().tokens.is_none(), "an entry was read through a symbolic link");
}

#[test]
fn an_entry_others_may_write_is_ignored() {
    let t = Scratch::new("entry-0666");
    let store = FileStore::new(t.0.join("store"));
    store.persist(SERVER, &Persist::ForgetTokens { issuer: ISSUER.into() }).unwrap();
    let path = store.entry_path(SERVER, ISSUER);
    std::fs::write(&path, entry_json("http://127.0.0.1:2/token")).unwrap();
    chmod(&path, 0o666);
    assert!(store.load(SERVER).unwrap().tokens.is_none(), "a world-writable entry was trusted");
    chmod(&path, 0o620);
    assert!(store.load(SERVER).unwrap().tokens.is_none(), "a group-writable entry was trusted");
    // The same file, private again, is read: only the mode made the difference.
    chmod(&path, 0o600);
    assert!(store.load(SERVER).unwrap().tokens.is_some());
}

#[test]
fn an_entry_of_another_user_is_ignored() {
    let t = Scratch::new("entry-foreign");
    let store = FileStore::new(t.0.join("store"));
    store.persist(SERVER, &Persist::ForgetTokens { issuer: ISSUER.into() }).unwrap();
    let path = store.entry_path(SERVER, ISSUER);
    std::fs::write(&path, entry_json("http://127.0.0.1:2/token")).unwrap();
    chmod(&path, 0o600);
    if !give_away(&t, &path) {
        return;
    }
    assert!(store.load(SERVER).unwrap().tokens.is_none(), "another user's entry was trusted");
    // A write replaces it with one of ours (the directory is ours), never writes into theirs.
    store.persist(SERVER, &Persist::Tokens(tokens("https://as.example/token"))).unwrap();
    let m = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(m.uid(), my_uid(&t));
    assert_eq!(store.load(SERVER).unwrap().tokens.unwrap().token_endpoint.as_deref(), Some("https://as.example/token"));
}

#[test]
fn a_lock_file_that_is_a_link_is_refused() {
    let t = Scratch::new("lock-link");
    let store = FileStore::new(t.0.join("store"));
    store.persist(SERVER, &Persist::ForgetTokens { issuer: ISSUER.into() }).unwrap();
    // A dangling link: following it would create the target.
    let target = t.0.join("created-through-link");
    let lock = store.server_dir(SERVER).join(".lock");
    symlink(&target, &lock).unwrap();
    assert_refused(store.lock(SERVER), &lock, "symbolic link");
    assert!(!target.exists(), "the lock file was opened through the link");
}

#[test]
fn directories_the_store_creates_are_private() {
    let t = Scratch::new("nested");
    let root = t.0.join("a").join("b").join("store");
    let store = FileStore::new(&root);
    drop(store.lock(SERVER).unwrap());
    for d in [t.0.join("a"), t.0.join("a/b"), root.clone(), store.server_dir(SERVER)] {
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700, "{}", d.display());
    }
    store.persist(SERVER, &Persist::Tokens(tokens("https://as.example/token"))).unwrap();
    assert_eq!(std::fs::metadata(store.entry_path(SERVER, ISSUER)).unwrap().mode() & 0o777, 0o600);
    // An existing private directory of ours, 0755 (not writable by others), is fine too.
    chmod(&root, 0o755);
    assert!(store.load(SERVER).unwrap().tokens.is_some());
}

/// The reviewer's second reproduction, through the client: an entry planted in a directory
/// others may write names the attacker's token endpoint and the victim's client id; the client
/// must refuse the store rather than refresh there with the configured client secret.
#[cfg(feature = "blocking")]
#[test]
fn a_planted_entry_never_receives_the_client_secret() {
    use mcp_oauth_client::blocking::{OAuthClient, UreqClient};
    use mcp_oauth_client::{Config, Interaction, SystemClock};
    use std::io::{Read, Write};
    use std::sync::Arc;
    // The attacker's "token endpoint": records the first request head it gets.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let endpoint = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 8192];
        let n = c.read(&mut buf).unwrap_or(0);
        let _ = c.write_all(b"HTTP/1.1 400 X\r\ncontent-type: application/json\r\ncontent-length: 25\r\n\r\n{\"error\":\"invalid_grant\"}");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let t = Scratch::new("planted");
    let root = t.0.join("store");
    std::fs::create_dir(&root).unwrap();
    chmod(&root, 0o777);
    let store = FileStore::new(&root);
    let dir = store.server_dir(SERVER);
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o777);
    let mut planted = tokens(&format!("http://127.0.0.1:{port}/token"));
    planted.expires_at = Some(Timestamp::from_secs(2));
    let json = serde_json::json!({"version": 1, "server": SERVER, "issuer": ISSUER, "tokens": planted});
    std::fs::write(store.entry_path(SERVER, ISSUER), serde_json::to_vec(&json).unwrap()).unwrap();
    let mut config = Config::new(SERVER.parse().unwrap());
    config.client_id = Some("victim-client".into());
    config.client_secret = Some(mcp_oauth_core::secret::ClientSecret::new("VICTIM-CLIENT-SECRET"));
    let r = OAuthClient::with_parts(
        config,
        Arc::new(store),
        Interaction::non_interactive(),
        Arc::new(UreqClient::default()),
        Arc::new(SystemClock),
    )
    .and_then(|c| c.authorization().map(|_| ()));
    let e = r.expect_err("the client used a store others may write");
    // Ours is the first connection the endpoint sees: the client never went there.
    if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        c.write_all(b"nobody else").unwrap();
    }
    let seen = endpoint.join().unwrap();
    assert!(seen == "nobody else", "the planted token endpoint was contacted: {}", seen.lines().next().unwrap_or(""));
    assert!(e.to_string().contains("writable by group or others"), "{e}");
}
