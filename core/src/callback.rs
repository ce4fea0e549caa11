//! The loopback callback, without the socket: parse the browser's request head, and render the
//! page that answers it. The adapter owns the listener; these functions are pure and bounded.

use crate::error::{AuthorizationError, Error};

/// Longest request head accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The request line of the browser's callback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    /// The method (`GET` expected).
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The `Host` header, if there is exactly one.
    pub host: Option<String>,
}

impl CallbackRequest {
    /// The path of the target, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// True if the `Host` header names the redirect URI's host and port (ASCII case-insensitive).
    /// A browser following our redirect always sends exactly that; a page of another site that
    /// rebinds its name to 127.0.0.1 sends its own name, and is refused.
    pub fn host_matches(&self, redirect_uri: &url::Url) -> bool {
        let (Some(host), Some(want_host), Some(port)) = (&self.host, redirect_uri.host_str(), redirect_uri.port_or_known_default()) else {
            return false;
        };
        let want = format!("{want_host}:{port}");
        host.eq_ignore_ascii_case(&want) || (port == 80 && host.eq_ignore_ascii_case(want_host))
    }

    /// The full redirect URL: the listener's base (`http://127.0.0.1:port`) plus the target.
    pub fn redirect_url(&self, redirect_uri: &url::Url) -> String {
        format!("{}{}", crate::discovery::origin_of(redirect_uri), self.target)
    }
}

/// Why a request head was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The head is not complete yet (no blank line); read more.
    #[error("request head is incomplete")]
    Incomplete,
    /// The head is longer than [`MAX_HEAD_BYTES`].
    #[error("request head exceeds {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    /// Not an HTTP/1.x request line.
    #[error("malformed request line")]
    Malformed,
}

/// Parses a request head from the bytes read so far. Call again with more bytes on
/// [`CallbackError::Incomplete`]. Feeding the head whole or a byte at a time gives the same
/// result.
pub fn parse_request_head(buf: &[u8]) -> Result<CallbackRequest, CallbackError> {
    let end = find_head_end(buf);
    let Some(end) = end else {
        return Err(if buf.len() >= MAX_HEAD_BYTES { CallbackError::TooLarge } else { CallbackError::Incomplete });
    };
    if end > MAX_HEAD_BYTES {
        return Err(CallbackError::TooLarge);
    }
    let head = &buf[..end];
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| CallbackError::Malformed)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(CallbackError::Malformed);
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !target.bytes().all(|b| b.is_ascii_graphic())
        || !(version == "HTTP/1.1" || version == "HTTP/1.0")
    {
        return Err(CallbackError::Malformed);
    }
    let mut host = None;
    for line in head[line_end..].split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        if line[..colon].eq_ignore_ascii_case(b"host") {
            let value = std::str::from_utf8(&line[colon + 1..]).map_err(|_| CallbackError::Malformed)?.trim();
            if host.replace(value.to_owned()).is_some() {
                return Err(CallbackError::Malformed); // RFC 9112 §3.2: more than one Host is a bad request
            }
        }
    }
    Ok(CallbackRequest { method: method.to_owned(), target: target.to_owned(), host })
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HEAD_BYTES + 4);
    let b = &buf[..limit];
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if b[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// What the page tells the person in the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The redirect was accepted.
    Success,
    /// The redirect was rejected; the text says why and what to do.
    Failure {
        /// A one-line summary.
        title: String,
        /// What happened and what to do next.
        detail: String,
    },
    /// A request to another path (favicon, probes): 404, the wait goes on.
    NotFound,
}

impl Outcome {
    /// The page for a flow error, in words for the person at the browser.
    pub fn for_error(e: &Error) -> Self {
        let (title, detail) = match e {
            Error::Authorization(AuthorizationError::Denied(r)) if r.error == crate::error::ErrorCode::AccessDenied => (
                "Access was denied",
                "The request was declined, so the application was not authorized. Close this tab; start the login again from the application if that was a mistake.".to_owned(),
            ),
            Error::Authorization(AuthorizationError::StateMismatch | AuthorizationError::MissingState) => (
                "This login link does not belong to this session",
                "The response did not match the login the application started (state mismatch), so it was refused to protect you. Close this tab and start the login again from the application.".to_owned(),
            ),
            Error::Authorization(AuthorizationError::IssuerMismatch { .. } | AuthorizationError::MissingIssuer) => (
                "The response came from an unexpected server",
                "The authorization server in the response is not the one the application used (issuer mismatch), so it was refused. Close this tab and start the login again.".to_owned(),
            ),
            other => ("Authorization failed", format!("{other}. Close this tab and return to the application.")),
        };
        Outcome::Failure { title: title.to_owned(), detail }
    }
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// The complete HTTP/1.1 response for the browser: status line, headers and a small HTML page.
/// The connection is closed after it.
pub fn response_page(outcome: &Outcome) -> Vec<u8> {
    let (status, title, detail, color) = match outcome {
        Outcome::Success => (
            "200 OK",
            "You are signed in".to_owned(),
            "Authorization is complete. You can close this tab and return to the application.".to_owned(),
            "#1a7f37",
        ),
        Outcome::Failure { title, detail } => ("400 Bad Request", html_escape(title), html_escape(detail), "#cf222e"),
        Outcome::NotFound => {
            ("404 Not Found", "Not found".to_owned(), "This address only receives the login response.".to_owned(), "#57606a")
        }
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#24292f\">\
<h1 style=\"color:{color};font-size:1.5em\">{title}</h1><p>{detail}</p></body></html>"
    );
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET /callback?code=abc&state=xyz HTTP/1.1\r\nHost: 127.0.0.1:5000\r\nUser-Agent: t\r\n\r\n";

    #[test]
    fn parses_a_head() {
        let r = parse_request_head(HEAD).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path(), "/callback");
        assert_eq!(
            r.redirect_url(&url::Url::parse("http://127.0.0.1:5000/callback").unwrap()),
            "http://127.0.0.1:5000/callback?code=abc&state=xyz"
        );
    }

    #[test]
    fn host_must_be_the_redirect_uris() {
        let uri = url::Url::parse("http://127.0.0.1:5000/callback").unwrap();
        assert!(parse_request_head(HEAD).unwrap().host_matches(&uri));
        let head = |h: &str| parse_request_head(format!("GET /callback HTTP/1.1\r\n{h}\r\n").as_bytes());
        assert!(!head("Host: rebind.attacker.example:5000\r\n").unwrap().host_matches(&uri));
        assert!(!head("Host: 127.0.0.1:5001\r\n").unwrap().host_matches(&uri));
        assert!(!head("X-Host: 127.0.0.1:5000\r\n").unwrap().host_matches(&uri));
        assert!(head("hOsT:  127.0.0.1:5000 \r\n").unwrap().host_matches(&uri));
        assert_eq!(head("Host: 127.0.0.1:5000\r\nHost: evil\r\n"), Err(CallbackError::Malformed));
        let v6 = url::Url::parse("http://[::1]:5000/callback").unwrap();
        assert!(head("Host: [::1]:5000\r\n").unwrap().host_matches(&v6));
        let localhost = url::Url::parse("http://localhost:5000/callback").unwrap();
        assert!(head("Host: LOCALHOST:5000\r\n").unwrap().host_matches(&localhost));
        assert!(!head("Host: 127.0.0.1:5000\r\n").unwrap().host_matches(&localhost));
    }

    #[test]
    fn whole_and_byte_by_byte_agree() {
        let mut buf = Vec::new();
        let mut result = Err(CallbackError::Incomplete);
        for &b in HEAD {
            assert_eq!(result, Err(CallbackError::Incomplete));
            buf.push(b);
            result = parse_request_head(&buf);
        }
        assert_eq!(result, parse_request_head(HEAD));
    }

    #[test]
    fn rejects_bad_heads() {
        assert_eq!(parse_request_head(b"GET / HTTP/1.1\r\n"), Err(CallbackError::Incomplete));
        assert_eq!(parse_request_head(&vec![b'a'; MAX_HEAD_BYTES]), Err(CallbackError::TooLarge));
        assert_eq!(parse_request_head(b"GET http://evil/ HTTP/1.1\r\n\r\n"), Err(CallbackError::Malformed));
        assert_eq!(parse_request_head(b"GET / HTTP/2\r\n\r\n"), Err(CallbackError::Malformed));
        assert_eq!(parse_request_head(b"\x16\x03\x01\x02\r\n\r\n"), Err(CallbackError::Malformed));
        assert_eq!(parse_request_head(b"GET  / HTTP/1.1\r\n\r\n"), Err(CallbackError::Malformed));
        let mut long = b"GET /".to_vec();
        long.extend(vec![b'a'; MAX_HEAD_BYTES]);
        long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(parse_request_head(&long), Err(CallbackError::TooLarge));
    }

    #[test]
    fn pages_escape_and_frame() {
        let page = response_page(&Outcome::Failure { title: "<script>".into(), detail: "a & b".into() });
        let text = String::from_utf8(page).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("&lt;script&gt;") && !text.contains("<script>"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let ok = String::from_utf8(response_page(&Outcome::Success)).unwrap();
        assert!(ok.contains("You are signed in"));
        let denied = Outcome::for_error(&Error::Authorization(AuthorizationError::StateMismatch));
        assert!(matches!(denied, Outcome::Failure { ref title, .. } if title.contains("does not belong")));
    }
}
