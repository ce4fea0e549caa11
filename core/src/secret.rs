//! Secret newtypes (the oauth2-rs pattern).
//!
//! Each type's `Debug` prints `[redacted]`, none implements `Display`, none derives `PartialEq`
//! (comparisons that matter are constant-time), and the value is reached only through
//! `.secret()`. Serialization writes the real value, because persisting tokens is the point;
//! the adapter's store is responsible for protecting the file.

use serde::{Deserialize, Serialize};
use std::fmt;
use subtle::ConstantTimeEq;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            /// The secret value. Never log it.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Constant-time comparison with another value.
            pub fn ct_eq(&self, other: &str) -> bool {
                ct_eq_str(&self.0, other)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An OAuth access token (RFC 6749 §1.4).
    AccessToken
);
secret_type!(
    /// An OAuth refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// A client secret issued by registration or configured in advance (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// A PKCE code verifier (RFC 7636 §4.1).
    PkceVerifier
);
secret_type!(
    /// An authorization code from the redirect (RFC 6749 §4.1.2).
    AuthorizationCode
);
secret_type!(
    /// The CSRF `state` value sent in the authorization request (RFC 6749 §10.12).
    CsrfState
);
secret_type!(
    /// A token presented to an identity provider (an ID token) or an assertion obtained from one
    /// (an ID-JAG), for enterprise-managed authorization (RFC 8693, RFC 7523).
    SubjectToken
);
secret_type!(
    /// The private key a DPoP-bound token is bound to (RFC 9449): a P-256 scalar, base64url,
    /// stored with the tokens it binds.
    DpopPrivateKey
);
secret_type!(
    /// A private key in PEM form, used for `private_key_jwt` client authentication (RFC 7523).
    PrivateKeyPem
);

/// Constant-time string equality (length is not hidden, contents are).
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let t = AccessToken::new("super-secret-value");
        let d = format!("{t:?}");
        assert_eq!(d, "AccessToken([redacted])");
        assert!(!d.contains("super"));
        assert_eq!(t.secret(), "super-secret-value");
    }

    #[test]
    fn constant_time_eq() {
        let s = CsrfState::new("abc");
        assert!(s.ct_eq("abc"));
        assert!(!s.ct_eq("abd"));
        assert!(!s.ct_eq("ab"));
        assert!(!s.ct_eq(""));
    }
}
