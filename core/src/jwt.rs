//! `private_key_jwt` client assertions (RFC 7523 §2.2, §3) signed with ES256.
//!
//! Signing uses `p256` (RustCrypto), whose ECDSA nonces are deterministic (RFC 6979), so core
//! needs no random number generator; `jti` comes from injected [`Entropy`](crate::Entropy).

use crate::secret::PrivateKeyPem;
use crate::time::Timestamp;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::Signature;
use p256::pkcs8::DecodePrivateKey;
use std::fmt;

/// The `client_assertion_type` for JWT client authentication.
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid.
pub(crate) const ASSERTION_LIFETIME_SECS: u64 = 300;

/// A parsed ES256 signing key. `Debug` is redacted.
#[derive(Clone)]
pub(crate) struct SigningKey(p256::ecdsa::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Parses a PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`) P-256 key.
    pub(crate) fn from_pem(pem: &PrivateKeyPem) -> Result<Self, String> {
        let text = pem.secret().trim();
        let secret = p256::SecretKey::from_pkcs8_pem(text)
            .or_else(|_| p256::SecretKey::from_sec1_pem(text))
            .map_err(|_| "not a PEM-encoded P-256 private key (PKCS#8 or SEC1)".to_string())?;
        Ok(SigningKey(p256::ecdsa::SigningKey::from(secret)))
    }

    /// Wraps a P-256 secret key.
    pub(crate) fn from_p256(sk: p256::SecretKey) -> Self {
        SigningKey(p256::ecdsa::SigningKey::from(sk))
    }

    /// Signs `header.claims` and returns the compact JWS.
    pub(crate) fn sign_jwt(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig: Signature = self.0.sign(input.as_bytes());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        input
    }
}

/// Builds a client assertion: `iss` = `sub` = `client_id`, `aud`, `iat`, `exp` and a unique `jti`.
pub(crate) fn client_assertion(
    key: &SigningKey,
    key_id: Option<&str>,
    client_id: &str,
    audience: &str,
    now: Timestamp,
    jti: &[u8; 16],
) -> String {
    let mut header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
    if let Some(kid) = key_id {
        header["kid"] = kid.into();
    }
    let iat = now.as_secs();
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": iat,
        "exp": iat.saturating_add(ASSERTION_LIFETIME_SECS),
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    key.sign_jwt(&header, &claims)
}

/// The form `body` with its `client_assertion` signed anew, for a request sent again (a DPoP
/// nonce retry): the same issuer and audience, `iat` now, and a `jti` derived from the old one
/// by SHA-256, so it is as unpredictable and never the same (RFC 7523 §3: a server may refuse
/// a `jti` it has seen). `None` if the body has no assertion of ours.
pub(crate) fn with_fresh_assertion(body: &[u8], key: &SigningKey, key_id: Option<&str>, now: Timestamp) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let old = &pairs.iter().find(|(k, _)| k == "client_assertion")?.1;
    let payload = URL_SAFE_NO_PAD.decode(old.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    let (client_id, audience, old_jti) = (claims["iss"].as_str()?, claims["aud"].as_str()?, claims["jti"].as_str()?);
    let digest = Sha256::new().chain_update(b"mcp-oauth jti, sent again: ").chain_update(old_jti).finalize();
    let mut jti = [0u8; 16];
    jti.copy_from_slice(&digest[..16]);
    let fresh = client_assertion(key, key_id, client_id, audience, now, &jti);
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        form.append_pair(k, if k == "client_assertion" { &fresh } else { v });
    }
    Some(form.finish().into_bytes())
}

/// A throwaway P-256 key generated for this crate's tests only.
#[cfg(test)]
pub(crate) const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6g9Ac2rEIOgE4SQU
tdYmF97Gp+K30YL5Gx6VsgujpzahRANCAARhrJjnXKTE7ZSbozxjFgR3X02Rcine
kGzt42Pj4u3khB1otUFCYX7vyKO1+dTE5f7v8zP+y0+QomuVKTd+/QBf
-----END PRIVATE KEY-----";

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn assertion_verifies_and_has_the_claims() {
        let key = SigningKey::from_pem(&PrivateKeyPem::new(TEST_KEY)).unwrap();
        let jwt = client_assertion(&key, Some("k1"), "client-1", "https://as.example", Timestamp::from_secs(1_000), &[7; 16]);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.example");
        assert_eq!(claims["iat"], 1000);
        assert_eq!(claims["exp"], 1300);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        key.0.verifying_key().verify(input.as_bytes(), &sig).unwrap();
        // Different jti, different assertion.
        let other = client_assertion(&key, None, "client-1", "https://as.example", Timestamp::from_secs(1_000), &[8; 16]);
        assert_ne!(jwt, other);
    }

    #[test]
    fn bad_keys_are_errors() {
        assert!(SigningKey::from_pem(&PrivateKeyPem::new("nope")).is_err());
        assert!(SigningKey::from_pem(&PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")).is_err());
        assert!(!format!("{:?}", SigningKey::from_pem(&PrivateKeyPem::new(TEST_KEY)).unwrap()).contains("MIG"));
    }
}
