//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1) and the well-known URL candidates of RFC 9728,
//! RFC 8414 and OpenID Connect Discovery, in the order the MCP specification requires.

use crate::error::ErrorCode;
use std::fmt;
use url::Url;

/// Longest `WWW-Authenticate` field (all lines together) the parser accepts.
pub const MAX_WWW_AUTHENTICATE_BYTES: usize = 16 * 1024;
/// Most parameters in one challenge.
pub const MAX_PARAMS: usize = 64;

/// One challenge of a `WWW-Authenticate` field (RFC 9110 §11.1: an auth scheme and its
/// parameters). Not to be confused with the adapters' `Challenge`, the MCP server's response
/// that carries these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthChallenge {
    /// The auth scheme, lower-cased (`bearer`, `dpop`, `basic`).
    pub scheme: String,
    /// A token68 payload, if the challenge has one instead of parameters.
    pub token68: Option<String>,
    /// Parameters in order; names lower-cased, values unescaped.
    pub params: Vec<(String, String)>,
}

impl AuthChallenge {
    /// The value of a parameter (name compared case-insensitively).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The parameters of the `Bearer` challenge that matter to an MCP client (RFC 6750 §3,
/// RFC 9728 §5.1). An empty value is treated as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// `resource_metadata`: where the protected resource metadata lives (unvalidated).
    pub resource_metadata: Option<String>,
    /// `scope`: space-delimited scopes the request needs.
    pub scope: Option<String>,
    /// `error`: `invalid_token`, `insufficient_scope`, `invalid_request`...
    pub error: Option<ErrorCode>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `error_uri`.
    pub error_uri: Option<String>,
    /// `realm`.
    pub realm: Option<String>,
}

/// Why a `WWW-Authenticate` field could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WwwAuthenticateError {
    /// The field is longer than [`MAX_WWW_AUTHENTICATE_BYTES`].
    #[error("www-authenticate is longer than {MAX_WWW_AUTHENTICATE_BYTES} bytes")]
    TooLong,
    /// The field is not visible ASCII / UTF-8.
    #[error("www-authenticate is not valid text")]
    NotText,
    /// A character that the grammar does not allow.
    #[error("www-authenticate: unexpected {found} at byte {at}")]
    Unexpected {
        /// Byte offset in the joined field.
        at: usize,
        /// What was found (`end of input` or the character).
        found: String,
    },
    /// A quoted string without its closing quote.
    #[error("www-authenticate: unterminated quoted string at byte {at}")]
    UnterminatedQuote {
        /// Byte offset of the opening quote.
        at: usize,
    },
    /// A parameter appears twice in one challenge (RFC 9110 §11.2, RFC 6750 §3).
    #[error("www-authenticate: parameter {0:?} appears more than once in one challenge")]
    DuplicateParameter(String),
    /// More than [`MAX_PARAMS`] parameters.
    #[error("www-authenticate: more than {MAX_PARAMS} parameters")]
    TooManyParameters,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // All tchars are ASCII, so the slice is valid UTF-8.
        (self.i > start).then(|| std::str::from_utf8(&self.s[start..self.i]).unwrap_or(""))
    }

    fn unexpected(&self) -> WwwAuthenticateError {
        WwwAuthenticateError::Unexpected {
            at: self.i,
            found: match self.peek() {
                None => "end of input".into(),
                Some(b) => format!("{:?}", b as char),
            },
        }
    }

    fn quoted(&mut self) -> Result<String, WwwAuthenticateError> {
        let open = self.i;
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(WwwAuthenticateError::UnterminatedQuote { at: open }),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| WwwAuthenticateError::NotText);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        None => return Err(WwwAuthenticateError::UnterminatedQuote { at: open }),
                        Some(b) => {
                            out.push(b);
                            self.i += 1;
                        }
                    }
                }
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                    out.push(b);
                    self.i += 1;
                }
                Some(_) => return Err(self.unexpected()),
            }
        }
    }

    /// Skips list separators: OWS and commas. Returns true if at least one comma was seen.
    fn separators(&mut self) -> bool {
        let mut comma = false;
        loop {
            self.ows();
            if self.peek() == Some(b',') {
                comma = true;
                self.i += 1;
            } else {
                return comma;
            }
        }
    }

    /// After a scheme and its space: is a token68 next? (token68 chars, `=` padding, then a
    /// comma or the end.)
    fn token68_ahead(&self) -> Option<usize> {
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_token68_char) {
            j += 1;
        }
        if j == self.i {
            return None;
        }
        while self.s.get(j) == Some(&b'=') {
            j += 1;
        }
        let mut k = j;
        while matches!(self.s.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        matches!(self.s.get(k), None | Some(b',')).then_some(j)
    }

    /// At a list element: is it `token BWS "="` (a parameter) rather than a new challenge?
    fn param_ahead(&self) -> bool {
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_tchar) {
            j += 1;
        }
        if j == self.i {
            return false;
        }
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        self.s.get(j) == Some(&b'=')
    }

    fn challenge(&mut self) -> Result<AuthChallenge, WwwAuthenticateError> {
        let scheme = self.token().ok_or_else(|| self.unexpected())?.to_ascii_lowercase();
        let mut ch = AuthChallenge { scheme, token68: None, params: Vec::new() };
        let had_space = matches!(self.peek(), Some(b' ' | b'\t'));
        self.ows();
        if !had_space || matches!(self.peek(), None | Some(b',')) {
            return Ok(ch);
        }
        // A token68 ends in `=` padding followed by a comma or the end, which no
        // `name=value` parameter does, so it is tried first.
        if let Some(end) = self.token68_ahead() {
            ch.token68 = Some(String::from_utf8_lossy(&self.s[self.i..end]).into_owned());
            self.i = end;
            return Ok(ch);
        }
        if !self.param_ahead() {
            return Err(self.unexpected());
        }
        loop {
            let name = self.token().ok_or_else(|| self.unexpected())?.to_ascii_lowercase();
            self.ows();
            if self.peek() != Some(b'=') {
                return Err(self.unexpected());
            }
            self.i += 1;
            self.ows();
            let value = match self.peek() {
                Some(b'"') => self.quoted()?,
                _ => self.token().ok_or_else(|| self.unexpected())?.to_owned(),
            };
            if ch.params.iter().any(|(n, _)| *n == name) {
                return Err(WwwAuthenticateError::DuplicateParameter(name));
            }
            if ch.params.len() == MAX_PARAMS {
                return Err(WwwAuthenticateError::TooManyParameters);
            }
            ch.params.push((name, value));
            let save = self.i;
            let comma = self.separators();
            if self.peek().is_none() {
                return Ok(ch);
            }
            if !comma {
                return Err(self.unexpected());
            }
            if !self.param_ahead() {
                // The next element starts a new challenge; leave the commas for the caller.
                self.i = save;
                return Ok(ch);
            }
        }
    }
}

/// Parses one or more `WWW-Authenticate` field lines into challenges. Several lines are one
/// comma-separated list (RFC 9110 §5.3).
pub fn parse_www_authenticate<'a, I>(values: I) -> Result<Vec<AuthChallenge>, WwwAuthenticateError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut joined = Vec::new();
    for v in values {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v);
        if joined.len() > MAX_WWW_AUTHENTICATE_BYTES {
            return Err(WwwAuthenticateError::TooLong);
        }
    }
    if joined.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
        return Err(WwwAuthenticateError::NotText);
    }
    let mut p = Parser { s: &joined, i: 0 };
    let mut out = Vec::new();
    loop {
        p.separators();
        if p.peek().is_none() {
            return Ok(out);
        }
        out.push(p.challenge()?);
    }
}

fn params_of(c: &AuthChallenge) -> BearerChallenge {
    let get = |n: &str| c.param(n).filter(|v| !v.trim().is_empty()).map(str::to_owned);
    BearerChallenge {
        resource_metadata: get("resource_metadata"),
        scope: get("scope"),
        error: get("error").map(ErrorCode::from),
        error_description: get("error_description"),
        error_uri: get("error_uri"),
        realm: get("realm"),
    }
}

/// Finds the first `Bearer` challenge in the field lines and extracts its parameters.
/// `Ok(None)` when there is no Bearer challenge.
pub fn bearer_challenge<'a, I>(values: I) -> Result<Option<BearerChallenge>, WwwAuthenticateError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    Ok(parse_www_authenticate(values)?.iter().find(|c| c.scheme == "bearer").map(params_of))
}

/// The parameters of the OAuth challenge: the first `Bearer` challenge, else the first `DPoP`
/// challenge (RFC 9449 §7.1; DPoP resource servers challenge with that scheme).
pub fn oauth_challenge<'a, I>(values: I) -> Result<Option<BearerChallenge>, WwwAuthenticateError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let all = parse_www_authenticate(values)?;
    Ok(all.iter().find(|c| c.scheme == "bearer").or_else(|| all.iter().find(|c| c.scheme == "dpop")).map(params_of))
}

/// True if an MCP server response is an OAuth challenge to feed as
/// [`Input::Challenged`](crate::Input::Challenged): any 401, or a 403 whose Bearer challenge
/// says `insufficient_scope`. Other 403s are not OAuth matters (SPEC item 93).
pub fn is_challenge(status: u16, www_authenticate: &[http::HeaderValue]) -> bool {
    match status {
        401 => true,
        403 => oauth_challenge(www_authenticate.iter().map(|v| v.as_bytes()))
            .ok()
            .flatten()
            .is_some_and(|c| c.error == Some(ErrorCode::InsufficientScope)),
        _ => false,
    }
}

/// Renders challenges back into one field value (quoting every parameter value). Used by tests
/// and the test server; `parse(render(x)) == x` for every well-formed `x`.
pub fn render_www_authenticate(challenges: &[AuthChallenge]) -> String {
    let mut out = String::new();
    for (i, c) in challenges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&c.scheme);
        if let Some(t) = &c.token68 {
            out.push(' ');
            out.push_str(t);
        }
        for (j, (n, v)) in c.params.iter().enumerate() {
            out.push_str(if j == 0 { " " } else { ", " });
            out.push_str(n);
            out.push_str("=\"");
            for ch in v.chars() {
                if ch == '"' || ch == '\\' {
                    out.push('\\');
                }
                out.push(ch);
            }
            out.push('"');
        }
    }
    out
}

/// The canonical URI of an MCP server (SPEC item 62): scheme and host lower-cased, default port
/// and fragment dropped, and no trailing `/` when the path is empty.
pub fn canonical_resource_uri(server: &Url) -> String {
    let mut u = server.clone();
    u.set_fragment(None);
    let s = u.to_string();
    if u.path() == "/" && u.query().is_none() {
        s.trim_end_matches('/').to_owned()
    } else {
        s
    }
}

/// `scheme://host[:port]` of a URL, without a trailing slash.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn with_path(base: &Url, path: &str, query: Option<&str>) -> Url {
    let mut u = base.clone();
    u.set_path(path);
    u.set_query(query);
    u.set_fragment(None);
    u
}

/// The well-known protected resource metadata candidates for an MCP server (RFC 9728 §3.1;
/// MCP 2025-11-25): path-aware first, then the root. A server URL without a path yields only the
/// root. A trailing `/` on the path is removed; a query is kept after the inserted path.
pub fn resource_metadata_urls(server: &Url) -> Vec<Url> {
    const WK: &str = "/.well-known/oauth-protected-resource";
    let path = server.path().trim_end_matches('/');
    let root = with_path(server, WK, None);
    if path.is_empty() {
        return vec![root];
    }
    vec![with_path(server, &format!("{WK}{path}"), server.query()), root]
}

/// The authorization server metadata candidates for an issuer (MCP 2025-11-25 §Authorization
/// Server Metadata Discovery): for a path issuer, RFC 8414 path insertion, OpenID path insertion,
/// OpenID path appending; for a root issuer, RFC 8414 then OpenID. Never the root RFC 8414 URL
/// for a path issuer.
pub fn server_metadata_urls(issuer: &Url) -> Vec<Url> {
    const OAUTH: &str = "/.well-known/oauth-authorization-server";
    const OIDC: &str = "/.well-known/openid-configuration";
    let path = issuer.path().trim_end_matches('/');
    if path.is_empty() {
        return vec![with_path(issuer, OAUTH, None), with_path(issuer, OIDC, None)];
    }
    vec![
        with_path(issuer, &format!("{OAUTH}{path}"), None),
        with_path(issuer, &format!("{OIDC}{path}"), None),
        with_path(issuer, &format!("{path}{OIDC}"), None),
    ]
}

/// 2025-03-26 servers: the metadata URL at the server's origin (the path is discarded).
pub fn legacy_server_metadata_url(server: &Url) -> Url {
    with_path(server, "/.well-known/oauth-authorization-server", None)
}

/// 2025-03-26 servers without metadata: `{origin}/authorize`, `/token`, `/register`.
pub(crate) fn legacy_default_endpoints(server: &Url) -> (Url, Url, Url) {
    (with_path(server, "/authorize", None), with_path(server, "/token", None), with_path(server, "/register", None))
}

/// How strictly the metadata's `resource` must match the MCP server (SPEC Open Question 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceMatch {
    /// Same origin, and the `resource` path is a whole-segment prefix of the server path
    /// (what the TypeScript and Python SDKs accept; draft-mcguinness-oauth-rfc9728bis).
    #[default]
    Prefix,
    /// RFC 9728 §3.3: identical to the identifier the metadata URL was built from (after
    /// canonicalisation, so `https://x` equals `https://x/`).
    Strict,
}

impl fmt::Display for ResourceMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceMatch::Prefix => "prefix",
            ResourceMatch::Strict => "strict",
        })
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Checks a metadata `resource` value against the MCP server URL. `identifier` is the URL the
/// metadata location was derived from: the server URL, or its origin for the root well-known URL.
pub fn resource_matches(found: &str, server: &Url, identifier: &Url, mode: ResourceMatch) -> bool {
    let Ok(found_url) = Url::parse(found) else { return false };
    if found_url.fragment().is_some() {
        return false;
    }
    match mode {
        ResourceMatch::Strict => canonical_resource_uri(&found_url) == canonical_resource_uri(identifier),
        ResourceMatch::Prefix => {
            if found_url.origin() != server.origin() {
                return false;
            }
            let have = segments(found_url.path());
            let want = segments(server.path());
            have.len() <= want.len() && have.iter().zip(&want).all(|(a, b)| a == b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(values: &[&str]) -> BearerChallenge {
        bearer_challenge(values.iter().map(|s| s.as_bytes())).unwrap().unwrap()
    }

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strs(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(|u| u.to_string()).collect()
    }

    // SPEC §3.5, W1–W15.
    #[test]
    fn w1_w2_w3_basic_parameters() {
        let c = b(&[r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="files:read""#]);
        assert_eq!(c.resource_metadata.as_deref(), Some("https://mcp.example.com/.well-known/oauth-protected-resource"));
        assert_eq!(c.scope.as_deref(), Some("files:read"));
        let c = b(&[
            r#"Bearer error="insufficient_scope", scope="files:read files:write user:profile", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error_description="Additional file write permission required""#,
        ]);
        assert_eq!(c.error, Some(ErrorCode::InsufficientScope));
        assert_eq!(c.scope.as_deref().unwrap().split(' ').count(), 3);
        assert_eq!(c.error_description.as_deref(), Some("Additional file write permission required"));
        let c = b(&[r#"Bearer scope="mcp:basic", resource_metadata="http://localhost:3001/.well-known/oauth-protected-resource/mcp""#]);
        assert_eq!(c.scope.as_deref(), Some("mcp:basic"));
        assert_eq!(c.resource_metadata.as_deref(), Some("http://localhost:3001/.well-known/oauth-protected-resource/mcp"));
    }

    #[test]
    fn w4_case_insensitive_names() {
        let c = b(&[r#"bearer Resource_Metadata="https://a.example/prm""#]);
        assert_eq!(c.resource_metadata.as_deref(), Some("https://a.example/prm"));
    }

    #[test]
    fn w5_token_values() {
        let c = b(&[r#"Bearer error=invalid_token, error_description="The access token expired""#]);
        assert_eq!(c.error, Some(ErrorCode::InvalidToken));
        assert_eq!(c.error_description.as_deref(), Some("The access token expired"));
    }

    #[test]
    fn w6_w7_quoted_strings() {
        let c = b(&[r#"Bearer realm="mcp", error_description="a, b=c", scope="x""#]);
        assert_eq!(c.error_description.as_deref(), Some("a, b=c"));
        assert_eq!(c.scope.as_deref(), Some("x"));
        assert_eq!(c.realm.as_deref(), Some("mcp"));
        let c = b(&[r#"Bearer error_description="say \"hi\" \\ ok""#]);
        assert_eq!(c.error_description.as_deref(), Some(r#"say "hi" \ ok"#));
    }

    #[test]
    fn w8_w9_w10_several_challenges() {
        let c = b(&[r#"DPoP algs="ES256 PS256", Bearer resource_metadata="https://a.example/prm""#]);
        assert_eq!(c.resource_metadata.as_deref(), Some("https://a.example/prm"));
        assert_eq!(c.scope, None);
        let c = b(&[r#"Basic realm="x""#, r#"Bearer scope="s""#]);
        assert_eq!(c.scope.as_deref(), Some("s"));
        assert_eq!(c.realm, None);
        let c = b(&[r#"Negotiate YIIB+w==, Bearer scope="s""#]);
        assert_eq!(c.scope.as_deref(), Some("s"));
        let all = parse_www_authenticate([r#"Negotiate YIIB+w==, Bearer scope="s""#.as_bytes()]).unwrap();
        assert_eq!(all[0].token68.as_deref(), Some("YIIB+w=="));
    }

    #[test]
    fn w11_w12_no_parameters() {
        assert_eq!(b(&["Bearer"]), BearerChallenge::default());
        assert_eq!(b(&[r#"Bearer realm="example""#]).resource_metadata, None);
        assert_eq!(bearer_challenge([r#"Basic realm="x""#.as_bytes()]).unwrap(), None);
        assert_eq!(bearer_challenge(std::iter::empty::<&[u8]>()).unwrap(), None);
    }

    #[test]
    fn w13_bws_and_w15_empty() {
        assert_eq!(b(&[r#"Bearer scope = "a b""#]).scope.as_deref(), Some("a b"));
        assert_eq!(b(&[r#"Bearer scope="""#]).scope, None);
    }

    #[test]
    fn w14_invalid_url_is_kept_raw_for_the_caller_to_reject() {
        assert_eq!(b(&[r#"Bearer resource_metadata="not a url""#]).resource_metadata.as_deref(), Some("not a url"));
    }

    #[test]
    fn bearer_with_no_params_then_another_challenge() {
        let all = parse_www_authenticate([b"Bearer, Basic realm=\"x\"".as_slice()]).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "bearer");
        assert_eq!(all[1].param("realm"), Some("x"));
    }

    #[test]
    fn rejects_malformed_fields() {
        let bad = |s: &str| parse_www_authenticate([s.as_bytes()]).unwrap_err();
        assert!(matches!(bad(r#"Bearer scope="a", scope="b""#), WwwAuthenticateError::DuplicateParameter(_)));
        assert!(matches!(bad(r#"Bearer Scope="a", scope="b""#), WwwAuthenticateError::DuplicateParameter(_)));
        assert!(matches!(bad(r#"Bearer scope="a"#), WwwAuthenticateError::UnterminatedQuote { .. }));
        assert!(matches!(bad(r#"Bearer scope="a" realm="b""#), WwwAuthenticateError::Unexpected { .. }));
        assert!(matches!(bad("Bearer a=b c"), WwwAuthenticateError::Unexpected { .. }));
        // `scope=` with nothing after it is a token68 (RFC 9110), not a scope parameter.
        let t68 = parse_www_authenticate([b"Bearer scope=".as_slice()]).unwrap();
        assert_eq!(t68[0].token68.as_deref(), Some("scope="));
        assert_eq!(b(&["Bearer scope="]).scope, None);
        assert!(matches!(bad("Bearer \"x\""), WwwAuthenticateError::Unexpected { .. }));
        assert!(matches!(bad("Bearer a=b\r\nX: y"), WwwAuthenticateError::NotText));
        let huge = format!("Bearer scope=\"{}\"", "a".repeat(MAX_WWW_AUTHENTICATE_BYTES));
        assert_eq!(bad(&huge), WwwAuthenticateError::TooLong);
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert_eq!(bad(&format!("Bearer {}", many.join(", "))), WwwAuthenticateError::TooManyParameters);
    }

    #[test]
    fn dpop_challenges_count_when_there_is_no_bearer_one() {
        let c = oauth_challenge([br#"DPoP error="use_dpop_nonce", resource_metadata="https://a/prm""#.as_slice()]).unwrap().unwrap();
        assert_eq!(c.error, Some(ErrorCode::UseDpopNonce));
        let c = oauth_challenge([br#"DPoP algs="ES256", Bearer scope="s""#.as_slice()]).unwrap().unwrap();
        assert_eq!(c.scope.as_deref(), Some("s"), "Bearer wins");
        assert_eq!(bearer_challenge([br#"DPoP error="x""#.as_slice()]).unwrap(), None);
    }

    #[test]
    fn challenge_classification() {
        let h = |s: &'static str| vec![http::HeaderValue::from_static(s)];
        assert!(is_challenge(401, &[]));
        assert!(is_challenge(403, &h(r#"Bearer error="insufficient_scope", scope="a""#)));
        assert!(!is_challenge(403, &h(r#"Bearer error="invalid_token""#)));
        assert!(!is_challenge(403, &[]));
        assert!(!is_challenge(404, &[]));
        // A quoted "insufficient_scope" elsewhere is not the error code.
        assert!(!is_challenge(403, &h(r#"Bearer error_description="no insufficient_scope here""#)));
    }

    #[test]
    fn render_round_trips() {
        let src = [r#"DPoP algs="ES256", Bearer error_description="say \"hi\" \\ ok, a=b", scope="x y""#.as_bytes()];
        let parsed = parse_www_authenticate(src).unwrap();
        let again = parse_www_authenticate([render_www_authenticate(&parsed).as_bytes()]).unwrap();
        assert_eq!(parsed, again);
    }

    // SPEC §3.1, P1–P11.
    #[test]
    fn prm_candidates() {
        let c = |s: &str| strs(resource_metadata_urls(&u(s)));
        let root = "https://example.com/.well-known/oauth-protected-resource";
        assert_eq!(c("https://example.com/public/mcp"), ["https://example.com/.well-known/oauth-protected-resource/public/mcp", root]);
        assert_eq!(c("https://example.com/mcp"), ["https://example.com/.well-known/oauth-protected-resource/mcp", root]);
        assert_eq!(c("https://example.com"), [root]);
        assert_eq!(c("https://example.com/"), [root]);
        assert_eq!(
            c("https://example.com:8443/mcp"),
            [
                "https://example.com:8443/.well-known/oauth-protected-resource/mcp",
                "https://example.com:8443/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            c("http://localhost:3000/mcp"),
            [
                "http://localhost:3000/.well-known/oauth-protected-resource/mcp",
                "http://localhost:3000/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(c("HTTPS://Example.COM:443/MCP"), ["https://example.com/.well-known/oauth-protected-resource/MCP", root]);
        assert_eq!(c("https://example.com/mcp#frag"), ["https://example.com/.well-known/oauth-protected-resource/mcp", root]);
        assert_eq!(c("https://example.com/mcp/"), ["https://example.com/.well-known/oauth-protected-resource/mcp", root]);
        assert_eq!(c("https://example.com/mcp?tenant=a"), ["https://example.com/.well-known/oauth-protected-resource/mcp?tenant=a", root]);
    }

    // SPEC §3.2, A1–A8.
    #[test]
    fn as_candidates() {
        let c = |s: &str| strs(server_metadata_urls(&u(s)));
        let a1 = [
            "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
            "https://auth.example.com/.well-known/openid-configuration/tenant1",
            "https://auth.example.com/tenant1/.well-known/openid-configuration",
        ];
        assert_eq!(c("https://auth.example.com/tenant1"), a1);
        assert_eq!(c("https://auth.example.com/tenant1/"), a1);
        let a2 = [
            "https://auth.example.com/.well-known/oauth-authorization-server",
            "https://auth.example.com/.well-known/openid-configuration",
        ];
        assert_eq!(c("https://auth.example.com"), a2);
        assert_eq!(c("https://auth.example.com/"), a2);
        assert_eq!(
            c("https://auth.example.com/a/b"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/a/b",
                "https://auth.example.com/.well-known/openid-configuration/a/b",
                "https://auth.example.com/a/b/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            c("https://auth.example.com:9443/t"),
            [
                "https://auth.example.com:9443/.well-known/oauth-authorization-server/t",
                "https://auth.example.com:9443/.well-known/openid-configuration/t",
                "https://auth.example.com:9443/t/.well-known/openid-configuration",
            ]
        );
        // A8: never the root RFC 8414 URL for a path issuer.
        assert!(
            !c("https://auth.example.com/tenant1").contains(&"https://auth.example.com/.well-known/oauth-authorization-server".to_string())
        );
    }

    // SPEC §3.3.
    #[test]
    fn legacy_urls() {
        let s = u("https://api.example.com/v1/mcp");
        assert_eq!(legacy_server_metadata_url(&s).as_str(), "https://api.example.com/.well-known/oauth-authorization-server");
        let (a, t, r) = legacy_default_endpoints(&s);
        assert_eq!(
            (a.as_str(), t.as_str(), r.as_str()),
            ("https://api.example.com/authorize", "https://api.example.com/token", "https://api.example.com/register")
        );
        assert_eq!(origin_of(&u("http://localhost:3000/mcp")), "http://localhost:3000");
    }

    // SPEC §3.4.
    #[test]
    fn canonical_uris() {
        let c = |s: &str| canonical_resource_uri(&u(s));
        assert_eq!(c("https://mcp.example.com"), "https://mcp.example.com");
        assert_eq!(c("https://mcp.example.com/"), "https://mcp.example.com");
        assert_eq!(c("https://example.com/public/mcp"), "https://example.com/public/mcp");
        assert_eq!(c("HTTPS://MCP.Example.com/mcp#x"), "https://mcp.example.com/mcp");
        assert_eq!(c("https://mcp.example.com:8443"), "https://mcp.example.com:8443");
        assert_eq!(c("https://mcp.example.com:443/mcp"), "https://mcp.example.com/mcp");
        let enc = serde_urlencoded::to_string([("resource", c("https://mcp.example.com"))]).unwrap();
        assert_eq!(enc, "resource=https%3A%2F%2Fmcp.example.com");
    }

    #[test]
    fn resource_matching() {
        let server = u("https://example.com/public/mcp");
        let p = |f: &str| resource_matches(f, &server, &server, ResourceMatch::Prefix);
        assert!(p("https://example.com/public/mcp"));
        assert!(p("https://example.com/public/mcp/"));
        assert!(p("https://example.com"));
        assert!(p("https://example.com/"));
        assert!(p("https://example.com/public"));
        assert!(!p("https://evil.example.com/mcp"));
        assert!(!p("http://example.com/public/mcp"));
        assert!(!p("https://example.com:8443/public/mcp"));
        assert!(!p("https://example.com/pub"));
        assert!(!p("https://example.com/public/mcp/extra"));
        assert!(!p("not a url"));
        let root = u("https://example.com");
        let s = |f: &str, id: &Url| resource_matches(f, &server, id, ResourceMatch::Strict);
        assert!(s("https://example.com/public/mcp", &server));
        assert!(!s("https://example.com", &server));
        assert!(s("https://example.com", &root));
        assert!(s("https://example.com/", &root));
        assert!(!s("https://example.com/public", &server));
    }
}
