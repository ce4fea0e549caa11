//! Replays the committed fuzz corpora on stable in every test run, so the fuzz entry points
//! (and what they assert) cannot rot: `fuzz/corpus/<target>/*`.
#![cfg(feature = "fuzzing")]

use mcp_oauth_core::fuzzing;
use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().collect();
    assert!(!files.is_empty(), "no corpus for {target}");
    for f_ in files {
        let data = std::fs::read(f_.path()).unwrap();
        f(&data);
    }
}

#[test]
fn www_authenticate() {
    replay("www_authenticate", fuzzing::www_authenticate);
}

#[test]
fn metadata() {
    replay("metadata", fuzzing::metadata);
}

#[test]
fn token_response() {
    replay("token_response", fuzzing::token_response);
}

#[test]
fn registration_response() {
    replay("registration_response", fuzzing::registration_response);
}

#[test]
fn callback_head() {
    replay("callback_head", fuzzing::callback_head);
}

#[test]
fn redirect_url() {
    replay("redirect_url", fuzzing::redirect_url);
}

#[test]
fn authorizer() {
    replay("authorizer", fuzzing::authorizer);
}
