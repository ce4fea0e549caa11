//! The authorization request URL (OAuth 2.1 §4.1.1, RFC 7636, RFC 8707) and the checks on the
//! redirect that comes back (state, `iss` per RFC 9207, `error`, `code`), all in one place.

use crate::error::{AuthorizationError, ErrorCode, OAuthErrorResponse, RedirectProblem};
use crate::pkce::PkceChallenge;
use crate::secret::{ct_eq_str, AuthorizationCode, CsrfState};
use url::Url;

/// Longest redirect URL accepted (pasted or from the loopback listener).
pub const MAX_REDIRECT_URL_BYTES: usize = 8 * 1024;

/// The parameters of one authorization request.
#[derive(Debug, Clone)]
pub(crate) struct AuthorizationRequest<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// The exact redirect URI (sent again at the token endpoint).
    pub redirect_uri: &'a str,
    /// The PKCE challenge (method S256).
    pub challenge: &'a PkceChallenge,
    /// The CSRF state.
    pub state: &'a CsrfState,
    /// Space-separated scopes; omitted when `None`.
    pub scope: Option<&'a str>,
    /// The RFC 8707 resource; omitted when `None`.
    pub resource: Option<&'a str>,
}

/// Builds the URL the browser opens. A query already in the endpoint is kept (OAuth 2.1 §3.1).
/// Parameter order: `response_type, client_id, redirect_uri, code_challenge,
/// code_challenge_method, state, scope, resource`.
pub(crate) fn authorization_url(endpoint: &Url, r: &AuthorizationRequest<'_>) -> Url {
    let mut url = endpoint.clone();
    url.set_fragment(None);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", r.client_id)
            .append_pair("redirect_uri", r.redirect_uri)
            .append_pair("code_challenge", r.challenge.as_str())
            .append_pair("code_challenge_method", PkceChallenge::METHOD)
            .append_pair("state", r.state.secret());
        if let Some(s) = r.scope {
            q.append_pair("scope", s);
        }
        if let Some(res) = r.resource {
            q.append_pair("resource", res);
        }
    }
    url
}

/// The query parameters of a redirect, each at most once.
#[derive(Default)]
pub struct RedirectParams {
    /// `code`.
    pub code: Option<AuthorizationCode>,
    /// `state`.
    pub state: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
    /// `error`.
    pub error: Option<ErrorCode>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `error_uri`.
    pub error_uri: Option<String>,
}

impl std::fmt::Debug for RedirectParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedirectParams")
            .field("code", &self.code)
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Parses a redirect URL and checks that it is addressed to `redirect_uri` (scheme, host, port
/// and path). Duplicate parameters are rejected.
pub fn parse_redirect(url: &str, redirect_uri: &Url) -> Result<RedirectParams, AuthorizationError> {
    if url.len() > MAX_REDIRECT_URL_BYTES {
        return Err(AuthorizationError::InvalidRedirect(RedirectProblem::TooLong { limit: MAX_REDIRECT_URL_BYTES }));
    }
    let parsed = Url::parse(url.trim()).map_err(|e| AuthorizationError::InvalidRedirect(RedirectProblem::NotAUrl(e)))?;
    if parsed.scheme() != redirect_uri.scheme()
        || parsed.host() != redirect_uri.host()
        || parsed.port_or_known_default() != redirect_uri.port_or_known_default()
        || parsed.path() != redirect_uri.path()
    {
        return Err(AuthorizationError::InvalidRedirect(RedirectProblem::NotOurRedirectUri));
    }
    let mut p = RedirectParams::default();
    for (k, v) in parsed.query_pairs() {
        let slot = match k.as_ref() {
            "code" => {
                if p.code.is_some() {
                    return Err(AuthorizationError::InvalidRedirect(RedirectProblem::DuplicateParameter("code")));
                }
                p.code = Some(AuthorizationCode::new(v.into_owned()));
                continue;
            }
            "state" => ("state", &mut p.state),
            "iss" => ("iss", &mut p.iss),
            "error" => {
                if p.error.is_some() {
                    return Err(AuthorizationError::InvalidRedirect(RedirectProblem::DuplicateParameter("error")));
                }
                p.error = Some(ErrorCode::from(v.into_owned()));
                continue;
            }
            "error_description" => ("error_description", &mut p.error_description),
            "error_uri" => ("error_uri", &mut p.error_uri),
            _ => continue,
        };
        let (name, slot) = slot;
        if slot.is_some() {
            return Err(AuthorizationError::InvalidRedirect(RedirectProblem::DuplicateParameter(name)));
        }
        *slot = Some(v.into_owned());
    }
    Ok(p)
}

/// What the redirect must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct RedirectExpectations<'a> {
    /// The state we sent.
    pub state: &'a CsrfState,
    /// The issuer recorded before redirecting, if known.
    pub issuer: Option<&'a str>,
    /// `authorization_response_iss_parameter_supported` was literally `true`.
    pub iss_supported: bool,
}

/// Checks a redirect in the order that keeps attacker-controlled text from being acted on:
/// state first, then `iss` (RFC 9207 §2.4, MCP 2026-07-28 table), then `error`, then `code`.
pub fn check_redirect(p: RedirectParams, e: &RedirectExpectations<'_>) -> Result<AuthorizationCode, AuthorizationError> {
    match &p.state {
        None => return Err(AuthorizationError::MissingState),
        Some(s) if !ct_eq_str(e.state.secret(), s) => return Err(AuthorizationError::StateMismatch),
        Some(_) => {}
    }
    match (&p.iss, e.issuer) {
        (Some(found), Some(expected)) if found != expected => {
            return Err(AuthorizationError::IssuerMismatch { expected: expected.to_owned(), found: crate::error::bounded(found) })
        }
        (None, Some(_)) if e.iss_supported => return Err(AuthorizationError::MissingIssuer),
        _ => {}
    }
    if let Some(error) = p.error {
        return Err(AuthorizationError::Denied(OAuthErrorResponse { error, description: p.error_description, uri: p.error_uri }));
    }
    p.code.filter(|c| !c.secret().is_empty()).ok_or(AuthorizationError::MissingCode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkce::verifier_from_bytes;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn spec_vector_authorization_url() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88,
            83, 132, 141, 121,
        ];
        let challenge = PkceChallenge::s256(&verifier_from_bytes(&octets));
        let state = CsrfState::new("af0ifjsldkj");
        let url = authorization_url(
            &u("https://as.example.com/authorize"),
            &AuthorizationRequest {
                client_id: "https://app.example.com/oauth/client-metadata.json",
                redirect_uri: "http://127.0.0.1:8976/callback",
                challenge: &challenge,
                state: &state,
                scope: Some("files:read files:write"),
                resource: Some("https://example.com/public/mcp"),
            },
        );
        assert_eq!(
            url.query().unwrap(),
            "response_type=code&client_id=https%3A%2F%2Fapp.example.com%2Foauth%2Fclient-metadata.json&redirect_uri=http%3A%2F%2F127.0.0.1%3A8976%2Fcallback&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=af0ifjsldkj&scope=files%3Aread+files%3Awrite&resource=https%3A%2F%2Fexample.com%2Fpublic%2Fmcp"
        );
    }

    #[test]
    fn keeps_existing_query_and_omits_absent_params() {
        let c = PkceChallenge::s256(&verifier_from_bytes(&[1; 32]));
        let s = CsrfState::new("s");
        let url = authorization_url(
            &u("https://as.example/authorize?tenant=x"),
            &AuthorizationRequest {
                client_id: "c",
                redirect_uri: "http://127.0.0.1/cb",
                challenge: &c,
                state: &s,
                scope: None,
                resource: None,
            },
        );
        let q = url.query().unwrap();
        assert!(q.starts_with("tenant=x&response_type=code"));
        assert!(!q.contains("scope=") && !q.contains("resource="));
    }

    fn check(url: &str, issuer: Option<&str>, supported: bool) -> Result<AuthorizationCode, AuthorizationError> {
        let state = CsrfState::new("good");
        let p = parse_redirect(url, &u("http://127.0.0.1:5000/cb"))?;
        check_redirect(p, &RedirectExpectations { state: &state, issuer, iss_supported: supported })
    }

    #[test]
    fn redirect_checks() {
        let base = "http://127.0.0.1:5000/cb";
        assert_eq!(check(&format!("{base}?code=c1&state=good"), None, false).unwrap().secret(), "c1");
        assert_eq!(check(&format!("{base}?code=c1&state=bad"), None, false).unwrap_err(), AuthorizationError::StateMismatch);
        assert_eq!(check(&format!("{base}?code=c1"), None, false).unwrap_err(), AuthorizationError::MissingState);
        assert_eq!(check(&format!("{base}?state=good"), None, false).unwrap_err(), AuthorizationError::MissingCode);
        let denied = check(&format!("{base}?error=access_denied&state=good"), None, false).unwrap_err();
        assert!(matches!(denied, AuthorizationError::Denied(e) if e.error == ErrorCode::AccessDenied));
        // A wrong state hides the error: nothing attacker-controlled is acted on.
        assert_eq!(check(&format!("{base}?error=access_denied&state=bad"), None, false).unwrap_err(), AuthorizationError::StateMismatch);
        let invalid = |url: &str| match check(url, None, false) {
            Err(AuthorizationError::InvalidRedirect(p)) => p,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(invalid(&format!("{base}?code=a&code=b&state=good")), RedirectProblem::DuplicateParameter("code"));
        assert_eq!(invalid(&format!("{base}?code=a&state=good&state=good")), RedirectProblem::DuplicateParameter("state"));
        assert_eq!(invalid(&format!("{base}?error=a&error=b&state=good")), RedirectProblem::DuplicateParameter("error"));
        assert_eq!(invalid("http://127.0.0.1:5001/cb?code=a&state=good"), RedirectProblem::NotOurRedirectUri);
        assert_eq!(invalid("http://127.0.0.1:5000/other?code=a&state=good"), RedirectProblem::NotOurRedirectUri);
        assert_eq!(invalid("not a url"), RedirectProblem::NotAUrl(url::ParseError::RelativeUrlWithoutBase));
        let long = format!("{base}?code={}", "a".repeat(MAX_REDIRECT_URL_BYTES));
        assert_eq!(invalid(&long), RedirectProblem::TooLong { limit: MAX_REDIRECT_URL_BYTES });
    }

    // The RFC 9207 table of MCP 2026-07-28 and the conformance iss-* scenarios.
    #[test]
    fn iss_table() {
        let base = "http://127.0.0.1:5000/cb?code=c&state=good";
        let iss = Some("https://as.example");
        assert!(check(&format!("{base}&iss=https%3A%2F%2Fas.example"), iss, true).is_ok()); // iss-supported
        assert_eq!(check(base, iss, true).unwrap_err(), AuthorizationError::MissingIssuer); // iss-supported-missing
        assert!(matches!(
            check(&format!("{base}&iss=https%3A%2F%2Fevil.example"), iss, true),
            Err(AuthorizationError::IssuerMismatch { .. })
        )); // iss-wrong-issuer
        assert!(matches!(
            check(&format!("{base}&iss=https%3A%2F%2Fevil.example"), iss, false),
            Err(AuthorizationError::IssuerMismatch { .. })
        )); // iss-unexpected
        assert!(matches!(
            check(&format!("{base}&iss=https%3A%2F%2Fas.example%2F"), iss, true),
            Err(AuthorizationError::IssuerMismatch { .. })
        )); // iss-normalized
        assert!(check(base, iss, false).is_ok()); // iss-not-advertised
                                                  // The error of a mismatched issuer is not surfaced.
        let e = check("http://127.0.0.1:5000/cb?error=access_denied&state=good&iss=https%3A%2F%2Fevil", iss, false).unwrap_err();
        assert!(matches!(e, AuthorizationError::IssuerMismatch { .. }));
    }
}
