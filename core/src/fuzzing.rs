//! Entry points for fuzz targets and the corpus replay test (feature `fuzzing`).
//!
//! Each function takes arbitrary bytes and must return without panicking; any error is a typed
//! value. The fuzz crate's targets are one line each, calling these.

use crate::http::HttpResponse;

fn response(status: u16, body: &[u8]) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .unwrap_or_else(|_| http::Response::new(body.to_vec()))
}

/// `WWW-Authenticate`: the bytes are split at `\n` into field lines.
pub fn www_authenticate(data: &[u8]) {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if let Ok(challenges) = crate::discovery::parse_www_authenticate(lines.iter().copied()) {
        // What the parser accepted must survive a render and a second parse unchanged.
        let rendered = crate::discovery::render_www_authenticate(&challenges);
        if rendered.len() <= crate::discovery::MAX_WWW_AUTHENTICATE_BYTES {
            let again = crate::discovery::parse_www_authenticate([rendered.as_bytes()]);
            assert_eq!(again.as_ref().ok(), Some(&challenges), "render/parse round trip");
        }
    }
    let _ = crate::discovery::bearer_challenge(lines.iter().copied());
}

/// Protected resource and authorization server metadata documents.
pub fn metadata(data: &[u8]) {
    let _ = crate::metadata::ProtectedResourceMetadata::from_json(data);
    let _ = crate::metadata::AuthorizationServerMetadata::from_json(data, "https://as.example.com", false);
    let _ = crate::metadata::AuthorizationServerMetadata::from_json(data, "https://as.example.com", true);
}

/// Token responses and error bodies, under several statuses.
pub fn token_response(data: &[u8]) {
    for status in [200, 400, 401, 500] {
        let _ = crate::token::TokenResponse::from_http(&response(status, data), crate::http::Purpose::CodeExchange);
    }
}

/// Registration responses.
pub fn registration_response(data: &[u8]) {
    let redirect = url::Url::parse("http://127.0.0.1:8976/callback").unwrap_or_else(|_| unreachable!());
    let md = crate::registration::ClientMetadata::native(&redirect, "fuzz", None);
    for status in [200, 201, 400] {
        let _ = crate::registration::parse_registration_response(&response(status, data), "https://as.example.com", &md);
    }
}

/// The loopback request head, whole and cut at every length.
pub fn callback_head(data: &[u8]) {
    let whole = crate::callback::parse_request_head(data);
    if let Ok(req) = &whole {
        let _ = req.path();
    }
    for cut in 0..data.len().min(512) {
        let _ = crate::callback::parse_request_head(&data[..cut]);
    }
}

/// A pasted or delivered redirect URL, checked against a fixed attempt.
pub fn redirect_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let redirect = url::Url::parse("http://127.0.0.1:8976/callback").unwrap_or_else(|_| unreachable!());
    let state = crate::secret::CsrfState::new("fuzz-state");
    if let Ok(p) = crate::authorize::parse_redirect(&text, &redirect) {
        let _ = crate::authorize::check_redirect(
            p,
            &crate::authorize::RedirectExpectations { state: &state, issuer: Some("https://as.example.com"), iss_supported: true },
        );
    }
}
