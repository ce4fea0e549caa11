//! DPoP (RFC 9449): proofs of possession for token requests and MCP requests.
//!
//! The key is a P-256 key made from injected entropy (never from bytes a server sees), kept
//! with the tokens it binds. Each proof is a JWT signed with it: `typ` `dpop+jwt`, the public
//! key as `jwk`, and claims `jti` (unique), `htm`, `htu` (no query or fragment), `iat`, and
//! `nonce` when a server demanded one, `ath` (the access token's hash) on resource requests.

use crate::http::{HttpRequest, HttpResponse, Purpose, TransportFailure};
use crate::secret::DpopPrivateKey;
use crate::time::Timestamp;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use url::Url;

/// The DPoP signing algorithm used.
pub(crate) const ALG: &str = "ES256";

/// A DPoP key with its public JWK. Clones share the `jti` counter. `Debug` is redacted.
#[derive(Clone)]
pub(crate) struct DpopKey {
    key: crate::jwt::SigningKey,
    /// The private scalar, base64url, for persistence.
    secret: DpopPrivateKey,
    jwk: serde_json::Value,
    counter: Arc<AtomicU64>,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey").field("jkt", &self.thumbprint()).finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A key from 32 random bytes (`None` in the negligible case they are not a valid scalar).
    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let sk = p256::SecretKey::from_slice(bytes).ok()?;
        Some(Self::from_secret_key(sk))
    }

    /// Restores a persisted key (the base64url scalar from [`persisted`](Self::persisted)).
    pub(crate) fn restore(persisted: &DpopPrivateKey) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(persisted.secret()).ok()?;
        Some(Self::from_secret_key(p256::SecretKey::from_slice(&bytes).ok()?))
    }

    fn from_secret_key(sk: p256::SecretKey) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = sk.public_key().to_encoded_point(false);
        let b64 = |b: Option<&p256::FieldBytes>| b.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(point.x()), "y": b64(point.y())});
        let secret = DpopPrivateKey::new(URL_SAFE_NO_PAD.encode(sk.to_bytes()));
        DpopKey { key: crate::jwt::SigningKey::from_p256(sk), secret, jwk, counter: Arc::new(AtomicU64::new(0)) }
    }

    /// The key material to persist (secret).
    pub(crate) fn persisted(&self) -> &DpopPrivateKey {
        &self.secret
    }

    /// The RFC 7638 JWK thumbprint (`jkt`) of the public key.
    pub(crate) fn thumbprint(&self) -> String {
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#, self.jwk["x"], self.jwk["y"]);
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for `method` on `url` at `now`. `access_token` adds `ath` (resource requests).
    /// `salt` (fresh random bytes from the adapter, may be empty) makes the `jti` unique even
    /// across processes that share the key; within one, a shared counter does.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &Url,
        now: Timestamp,
        nonce: Option<&str>,
        access_token: Option<&str>,
        salt: &[u8],
    ) -> String {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        // jti: unpredictable (keyed with the private scalar) and unique (a counter).
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = Sha256::new();
        h.update(self.secret.secret().as_bytes());
        h.update(n.to_be_bytes());
        h.update(now.as_millis().to_be_bytes());
        h.update(salt);
        let jti = URL_SAFE_NO_PAD.encode(&h.finalize()[..16]);
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": ALG, "jwk": self.jwk});
        let mut claims = serde_json::json!({"jti": jti, "htm": method, "htu": htu.as_str(), "iat": now.as_secs()});
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        if let Some(t) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())).into();
        }
        self.key.sign_jwt(&header, &claims)
    }
}

/// The machine's DPoP: the key, the nonces servers demanded, and the last token request for a
/// nonce retry.
#[derive(Default)]
pub(crate) struct DpopContext {
    pub(crate) key: Option<DpopKey>,
    pub(crate) as_nonce: Option<String>,
    pub(crate) rs_nonce: Option<String>,
    last_token_request: Option<(Purpose, HttpRequest)>,
    nonce_retried: bool,
}

impl DpopContext {
    /// A new key from entropy; the nonces of the old one no longer apply.
    pub(crate) fn new_key(&mut self, bytes: &[u8; 32]) {
        self.key = DpopKey::from_bytes(bytes);
        self.as_nonce = None;
        self.rs_nonce = None;
    }

    /// A token endpoint request about to be sent, with a proof when a key is in use;
    /// remembered for one `use_dpop_nonce` retry.
    pub(crate) fn token_request(&mut self, purpose: Purpose, req: HttpRequest, now: Timestamp) -> HttpRequest {
        self.last_token_request = self.key.as_ref().map(|_| (purpose, req.clone()));
        self.nonce_retried = false;
        self.with_proof(req, now)
    }

    fn with_proof(&self, mut req: HttpRequest, now: Timestamp) -> HttpRequest {
        if let Some(key) = &self.key {
            if let Ok(url) = Url::parse(&req.uri().to_string()) {
                let proof = key.proof(req.method().as_str(), &url, now, self.as_nonce.as_deref(), None, &[]);
                if let Ok(v) = http::HeaderValue::from_str(&proof) {
                    req.headers_mut().insert("DPoP", v);
                }
            }
        }
        req
    }

    /// RFC 9449 §8: a token endpoint that answers `use_dpop_nonce` with a `DPoP-Nonce` header
    /// gets the same request once more, with a proof carrying the nonce: returned here, to be
    /// sent in place of the answered one.
    ///
    /// Only the answer to the outstanding token request counts (`token_answer`; the caller
    /// checked the id): a nonce from a metadata host or any other response is ignored, and the
    /// remembered request is forgotten once answered, so nothing can make the machine send a
    /// spent code or an already rotated refresh token again.
    pub(crate) fn nonce_retry(
        &mut self,
        token_answer: bool,
        result: &Result<HttpResponse, TransportFailure>,
        now: Timestamp,
    ) -> Option<(Purpose, HttpRequest)> {
        let (purpose, req) = self.last_token_request.take().filter(|_| token_answer)?;
        let resp = result.as_ref().ok()?;
        let nonce = crate::http::header_str(resp, http::header::HeaderName::from_static("dpop-nonce")).map(str::to_owned);
        if nonce.is_some() {
            self.as_nonce = nonce.clone();
        }
        let demanded = crate::token::oauth_error(resp.body()).is_some_and(|e| e.error == crate::error::ErrorCode::UseDpopNonce);
        if !demanded || nonce.is_none() || self.nonce_retried {
            return None;
        }
        self.nonce_retried = true;
        let proof = self.with_proof(req.clone(), now);
        // The retry is the outstanding request now (and is itself never retried).
        self.last_token_request = Some((purpose, req));
        Some((purpose, proof))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn proofs_verify_and_carry_the_claims() {
        let key = DpopKey::from_bytes(&[7; 32]).unwrap();
        let url = Url::parse("https://mcp.example.com/mcp?x=1#f").unwrap();
        let p = key.proof("POST", &url, Timestamp::from_secs(100), Some("n1"), Some("tok"), &[]);
        let parts: Vec<&str> = p.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert!(header["jwk"].get("d").is_none(), "no private key in the jwk");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://mcp.example.com/mcp");
        assert_eq!(claims["nonce"], "n1");
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok")));
        // Verify with the public key from the jwk header alone.
        let x = URL_SAFE_NO_PAD.decode(header["jwk"]["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(header["jwk"]["y"].as_str().unwrap()).unwrap();
        let mut sec1 = vec![4u8];
        sec1.extend(x);
        sec1.extend(y);
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
        // Fresh jti every time, and a restored key is the same key.
        let q = key.proof("POST", &url, Timestamp::from_secs(100), None, None, &[]);
        assert_ne!(p.split('.').nth(1), q.split('.').nth(1));
        // Two copies restored from storage (separate counters) differ through the salt.
        let (a, b) = (DpopKey::restore(key.persisted()).unwrap(), DpopKey::restore(key.persisted()).unwrap());
        let jti = |p: String| {
            serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(p.split('.').nth(1).unwrap()).unwrap()).unwrap()["jti"]
                .clone()
        };
        assert_eq!(jti(a.proof("GET", &url, Timestamp(5), None, None, &[])), jti(b.proof("GET", &url, Timestamp(5), None, None, &[])));
        assert_ne!(jti(a.proof("GET", &url, Timestamp(5), None, None, &[1])), jti(b.proof("GET", &url, Timestamp(5), None, None, &[2])));
        let restored = DpopKey::restore(key.persisted()).unwrap();
        assert_eq!(restored.thumbprint(), key.thumbprint());
        assert!(!format!("{key:?}").contains(key.persisted().secret()));
    }
}
