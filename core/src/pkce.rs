//! PKCE (RFC 7636) with `S256` only: the verifier comes from injected entropy.

use crate::secret::PkceVerifier;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The `code_challenge` sent in the authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PkceChallenge(String);

impl PkceChallenge {
    /// `BASE64URL-NOPAD(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
    pub(crate) fn s256(verifier: &PkceVerifier) -> Self {
        PkceChallenge(URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.secret().as_bytes())))
    }

    /// The challenge string.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Always `S256`; `plain` is never used.
    pub(crate) const METHOD: &'static str = "S256";
}

/// A verifier from 32 random bytes: 43 characters of base64url (RFC 7636 §4.1).
pub(crate) fn verifier_from_bytes(bytes: &[u8; 32]) -> PkceVerifier {
    PkceVerifier::new(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88,
            83, 132, 141, 121,
        ];
        let v = verifier_from_bytes(&octets);
        assert_eq!(v.secret(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(PkceChallenge::s256(&v).as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn verifier_alphabet_and_length() {
        let v = verifier_from_bytes(&[0xff; 32]);
        assert_eq!(v.secret().len(), 43);
        assert!(v.secret().bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
    }
}
