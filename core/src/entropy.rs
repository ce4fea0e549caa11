//! Random bytes, supplied by the adapter.
//!
//! Core has no random number generator. Each authorization attempt begins with
//! [`Output::PrepareAttempt`](crate::Output::PrepareAttempt); the adapter answers with
//! [`Input::AttemptPrepared`](crate::Input::AttemptPrepared) carrying fresh [`Entropy`] from the
//! operating system (the adapter crate's `os_entropy()` uses `getrandom`). Tests pass fixed bytes.

use std::fmt;

/// Fresh random bytes for one authorization attempt.
///
/// * `pkce`: 32 bytes, encoded as the 43-character PKCE `code_verifier` (RFC 7636 §4.1).
/// * `state`: 16 bytes (128 bits, RFC 6749 §10.10), encoded as the CSRF `state`.
/// * `nonce`: 16 bytes for anything else that must be unique, such as a client assertion's `jti`
///   (RFC 7523 §3).
/// * `dpop_key`: 32 bytes for a DPoP key (RFC 9449), independent of everything a server sees.
///
/// `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Entropy {
    /// Bytes for the PKCE code verifier.
    pub pkce: [u8; 32],
    /// Bytes for the `state` parameter.
    pub state: [u8; 16],
    /// Bytes for other unique identifiers (JWT `jti`).
    pub nonce: [u8; 16],
    /// Bytes for a DPoP private key.
    pub dpop_key: [u8; 32],
}

impl Entropy {
    /// The number of bytes an adapter must supply.
    pub const LEN: usize = 96;

    /// Splits 96 random bytes into the fields.
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        let mut pkce = [0u8; 32];
        let mut state = [0u8; 16];
        let mut nonce = [0u8; 16];
        let mut dpop_key = [0u8; 32];
        pkce.copy_from_slice(&bytes[..32]);
        state.copy_from_slice(&bytes[32..48]);
        nonce.copy_from_slice(&bytes[48..64]);
        dpop_key.copy_from_slice(&bytes[64..]);
        Entropy { pkce, state, nonce, dpop_key }
    }
}

impl fmt::Debug for Entropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entropy([redacted])")
    }
}
