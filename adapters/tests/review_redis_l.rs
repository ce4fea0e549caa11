//! Eighth review (of efd4b8a): the random revision, `Entry::apply`, the keyring revision.
//! Tests named `sound_*` record what held; the others fail against the reviewed code.

mod common;
mod store_contract;
#[allow(unused_imports)]
use common::*;
use mcp_oauth_client::{FileStore, Persist, TokenStore};
use std::path::{Path, PathBuf};

const KEY: &str = "https://mcp.example.com/mcp#user";
const ISS: &str = "https://as.example";

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-review-l-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The one server directory under a store directory.
fn server_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root).unwrap().flatten().map(|d| d.path()).filter(|p| p.is_dir()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Finding 1: FileStore reads a revision file it cannot read (EACCES/EIO/EMFILE, a damaged
/// or deleted file) as 0, "nothing was ever saved", where the driver needs `Unknown`. A client
/// whose first save failed on a new server saw {empty, 0}; a login and a logout elsewhere then
/// leave {empty, R}; if the revision then does not read, it is {empty, 0} again: the driver's
/// write-back finds the store unchanged and undoes the logout.
#[test]
fn an_unreadable_file_revision_reads_as_never_saved() {
    let dir = scratch("unreadable");
    let store = FileStore::new(&dir);
    let seen = store.revision(KEY).unwrap();
    assert_eq!(seen, Some(0), "a new server");
    // Elsewhere: a login and a logout.
    store.persist(KEY, &Persist::Tokens(store_contract::tokens(ISS, "other-login", 100))).unwrap();
    store.persist(KEY, &Persist::ForgetTokens { issuer: ISS.into() }).unwrap();
    let moved = store.revision(KEY).unwrap();
    assert_ne!(moved, seen);
    // The revision file stops reading (here: something else in its place; EACCES, EIO or EMFILE
    // on the read take the same path).
    let rev = server_dir(&dir).join("revision");
    std::fs::remove_file(&rev).unwrap();
    std::fs::create_dir(&rev).unwrap();
    let now = store.revision(KEY);
    assert!(store.load(KEY).unwrap().tokens.is_none());
    assert!(
        now.is_err() || now.as_ref().unwrap() != &seen,
        "after a login and a logout, a revision that does not read is {now:?}, the very value a client whose first \
         save failed saw ({seen:?}): its write-back finds the empty store unchanged and writes its login over the logout"
    );
}

/// Finding 2: FileStore writes the entry, then the revision: a revision write that fails leaves
/// the tokens changed and the revision where it was, and the save reports failure. Two such
/// writes (a login and a logout) leave the store exactly as a client saw it.
#[test]
fn a_failed_revision_write_leaves_changed_tokens_with_an_unchanged_revision() {
    let dir = scratch("revfail");
    let store = FileStore::new(&dir);
    store.persist(KEY, &Persist::Tokens(store_contract::tokens(ISS, "first", 100))).unwrap();
    store.persist(KEY, &Persist::ForgetTokens { issuer: ISS.into() }).unwrap();
    let seen = store.revision(KEY).unwrap();
    let rev = server_dir(&dir).join("revision");
    // The revision cannot be replaced (here a directory in its place; `chattr +i` does the same).
    let value = std::fs::read(&rev).unwrap();
    std::fs::remove_file(&rev).unwrap();
    std::fs::create_dir(&rev).unwrap();
    let login = store.persist(KEY, &Persist::Tokens(store_contract::tokens(ISS, "elsewhere", 200)));
    let after_login = store.load(KEY).unwrap().tokens.map(|t| t.access_token.secret().to_owned());
    let logout = store.persist(KEY, &Persist::ForgetTokens { issuer: ISS.into() });
    std::fs::remove_dir(&rev).unwrap();
    std::fs::write(&rev, value).unwrap();
    let now = store.revision(KEY).unwrap();
    println!("login: {login:?}, stored after it: {after_login:?}, logout: {logout:?}");
    assert!(
        !(after_login.is_some() && now == seen),
        "a login ({login:?}) that was stored ({after_login:?}) and a logout ({logout:?}) left the revision at {now:?}, \
         the value seen before both"
    );
}

#[cfg(all(target_os = "linux", feature = "keyring"))]
mod keyring {
    use super::*;
    use mcp_oauth_client::{KeyringBackend, KeyringStore};
    use sha2::{Digest, Sha256};
    use std::sync::Arc;

    fn hex16(s: &str) -> String {
        Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn join_session_keyring() {
        linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true).unwrap();
    }

    fn item(service: &str, index: &serde_json::Value) -> Result<Vec<u8>, keyring_core::Error> {
        join_session_keyring();
        let store: Arc<keyring_core::CredentialStore> = linux_keyutils_keyring_store::Store::new().unwrap();
        let (server, issuer, item) =
            (index["server"].as_str().unwrap(), index["issuer"].as_str().unwrap(), index["item"].as_str().unwrap());
        let user = format!("{}.{}.{item}.0", hex16(server), hex16(issuer));
        keyring_core::Entry::new_in_store(&store, service, &user).unwrap().get_secret()
    }

    /// Finding 3: KeyringStore, on a save that empties an entry (a logout), removes the index
    /// file, then moves the revision, and only then records the old keyring item as pending.
    /// A revision write that fails returns before that: the item, which holds the refresh
    /// token, stays in the keyring with nothing naming it; `forget` does not find it either.
    #[test]
    fn a_failed_keyring_revision_write_leaves_the_tokens_in_the_keyring_for_ever() {
        join_session_keyring();
        let dir = scratch("keyring-leak");
        let service = format!("mcp-oauth-test-{}-review-l-leak", std::process::id());
        let store = KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(service.clone());
        store.persist(KEY, &Persist::Tokens(store_contract::tokens(ISS, "secret-access", 100))).unwrap();
        let sdir = server_dir(&dir);
        let index_path =
            std::fs::read_dir(&sdir).unwrap().flatten().map(|f| f.path()).find(|p| p.extension().is_some_and(|x| x == "json")).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
        assert!(item(&service, &index).is_ok(), "the item is there");
        let rev = sdir.join("revision");
        std::fs::remove_file(&rev).unwrap();
        std::fs::create_dir(&rev).unwrap();
        let logout = store.persist(KEY, &Persist::ForgetTokens { issuer: ISS.into() });
        std::fs::remove_dir(&rev).unwrap();
        let forgot = store.forget(KEY);
        let left = item(&service, &index);
        let secret = left.as_ref().ok().map(|b| String::from_utf8_lossy(b).contains("secret-access"));
        println!(
            "logout: {logout:?}; forget: {forgot:?}; index left: {}; item left: {:?} (holds the token: {secret:?})",
            index_path.exists(),
            left.as_ref().map(|b| b.len())
        );
        assert!(
            left.is_err(),
            "the logout failed ({logout:?}) after removing the index; forget ({forgot:?}) found nothing, and the keyring \
             still holds the tokens ({} bytes, access token inside: {secret:?}), named by no index or pending record",
            left.as_ref().map(|b| b.len()).unwrap_or(0)
        );
    }

    /// What held: the keyring's revision moves with a login and a logout and stays with a
    /// registration.
    #[test]
    fn sound_the_keyring_revision_moves_with_tokens_only() {
        join_session_keyring();
        let dir = scratch("keyring-sound");
        let store =
            KeyringStore::new(&dir, KeyringBackend::KeyUtils).with_service(format!("mcp-oauth-test-{}-review-l-sound", std::process::id()));
        let r0 = store.revision(KEY).unwrap();
        store.persist(KEY, &Persist::Client(store_contract::client(ISS))).unwrap();
        assert_eq!(store.revision(KEY).unwrap(), r0);
        let t = store_contract::tokens(ISS, "a", 1);
        store.persist(KEY, &Persist::Tokens(t.clone())).unwrap();
        let r1 = store.revision(KEY).unwrap();
        assert_ne!(r1, r0);
        store.persist(KEY, &Persist::Tokens(t)).unwrap();
        assert_eq!(store.revision(KEY).unwrap(), r1, "the same tokens again");
        store.forget(KEY).unwrap();
        assert_ne!(store.revision(KEY).unwrap(), r1);
    }
}

/// What held: saving the very tokens held (FileStore reads them back from JSON) does not move
/// the revision, and the MemoryStore revision never returns to 0 after a logout.
#[test]
fn sound_same_tokens_do_not_move_the_file_revision() {
    let dir = scratch("same");
    let store = FileStore::new(&dir);
    let t = store_contract::tokens(ISS, "a", 1);
    store.persist(KEY, &Persist::Tokens(t.clone())).unwrap();
    let r = store.revision(KEY).unwrap();
    store.persist(KEY, &Persist::Tokens(t)).unwrap();
    assert_eq!(store.revision(KEY).unwrap(), r);
    let m = mcp_oauth_client::MemoryStore::new();
    m.persist(KEY, &Persist::Tokens(store_contract::tokens(ISS, "b", 1))).unwrap();
    m.persist(KEY, &Persist::ForgetTokens { issuer: ISS.into() }).unwrap();
    assert_ne!(m.revision(KEY).unwrap(), Some(0));
}
