//! The device authorization grant (RFC 8628): for logins where this machine's browser cannot be
//! used or cannot reach the loopback listener (SSH, containers, headless servers).
//!
//! The machine asks the `device_authorization_endpoint` for a code ([`Output::ShowDeviceCode`]
//! tells the adapter what to show the person), then polls the token endpoint: a
//! [`Wait`](crate::Output::Wait) until the interval, `authorization_pending` waits again,
//! `slow_down` adds five seconds to the interval (§3.5), `access_denied` and `expired_token` end
//! the login, and so does the code's `expires_in`. A transient failure (no answer, a 5xx) keeps
//! polling until then. The `resource` parameter (RFC 8707) goes on both requests; PKCE has no
//! place in this grant (no authorization request passes through a browser from this client).
//!
//! [`Output::ShowDeviceCode`]: crate::Output::ShowDeviceCode

use crate::error::{AuthorizationError, Error};
use crate::http::{is_secure_endpoint, HttpResponse};
use crate::time::Timestamp;
use std::fmt;
use std::time::Duration;
use url::Url;

/// The `grant_type` of the token requests (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the server gives none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The shortest interval accepted (a server's `interval: 0` would make the client spin). A
/// longer one is the server's to ask for (§3.2: the minimum wait): the code's expiry bounds the
/// login anyway.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a device code is waited for, whatever its `expires_in` says.
pub const MAX_WAIT: Duration = Duration::from_secs(30 * 60);
/// The longest user code shown.
const MAX_USER_CODE: usize = 64;

/// What the person must see to log in on another device. `Debug` hides the code (a code sent
/// to someone else by a phishing page is how this grant is attacked). Show `server` and
/// `issuer` with it (RFC 8628 §5.4): the person should only enter a code for a login they
/// started, at the authorization server they expect.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// The MCP server the login is for.
    pub server: Url,
    /// The authorization server that issued the code.
    pub issuer: String,
    /// The code to enter (printable, at most 64 characters).
    pub user_code: String,
    /// Where to enter it.
    pub verification_uri: Url,
    /// The same page with the code filled in, if the server gave one (for a QR code or a link).
    pub verification_uri_complete: Option<Url>,
    /// When the code stops working.
    pub expires_at: Timestamp,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("server", &self.server.as_str())
            .field("issuer", &self.issuer)
            .field("verification_uri", &self.verification_uri.as_str())
            .field("verification_uri_complete", &self.verification_uri_complete.is_some())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The device code: a credential for the token request only, never shown or logged.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DeviceSecret(String);

impl DeviceSecret {
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceSecret(***)")
    }
}

/// A validated device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone)]
pub(crate) struct DeviceAuthorization {
    pub(crate) device_code: DeviceSecret,
    pub(crate) shown: DeviceCode,
    pub(crate) interval: Duration,
}

#[derive(serde::Deserialize)]
struct Raw {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    /// Some servers (Google's) spell it `verification_url`.
    verification_url: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
}

fn seconds(v: &Option<serde_json::Value>) -> Option<u64> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads the device authorization response: `device_code`, `user_code` (printable ASCII: a
/// code the person reads must be the code the server holds, with no bidi override or invisible
/// character), `verification_uri` (HTTPS, or HTTP on loopback) and `expires_in` are required;
/// `interval` defaults to 5 s and is at least 1 s; the wait ends at `expires_in` or 30 minutes,
/// whichever is sooner. A refusal (an OAuth error body) is [`AuthorizationError::Denied`].
pub(crate) fn parse_device_authorization(
    resp: &HttpResponse,
    now: Timestamp,
    server: &Url,
    issuer: &str,
) -> Result<DeviceAuthorization, Error> {
    crate::token::check_size(resp, crate::http::Purpose::DeviceAuthorization)?;
    let invalid = |why: &str| Error::from(AuthorizationError::InvalidDeviceResponse(why.to_owned()));
    if !resp.status().is_success() {
        if let Some(e) = crate::token::oauth_error(resp.body()) {
            return Err(AuthorizationError::Denied(e).into());
        }
        return Err(Error::Http {
            purpose: crate::http::Purpose::DeviceAuthorization,
            error: crate::error::HttpError::UnexpectedStatus {
                status: resp.status().as_u16(),
                excerpt: crate::http::body_summary(crate::http::Purpose::DeviceAuthorization, resp.body()),
            },
        });
    }
    let raw: Raw = serde_json::from_slice(resp.body()).map_err(|_| invalid("not a JSON object"))?;
    let device_code = raw.device_code.filter(|c| !c.is_empty()).ok_or_else(|| invalid("no device_code"))?;
    let user_code = raw.user_code.filter(|c| !c.is_empty()).ok_or_else(|| invalid("no user_code"))?;
    if user_code.len() > MAX_USER_CODE || !user_code.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(invalid("the user_code is too long or has characters other than printable ASCII"));
    }
    let uri = |field: &str, v: &str| -> Result<Url, Error> {
        let u = Url::parse(v).map_err(|_| invalid(&format!("{field} is not a URL")))?;
        if !is_secure_endpoint(&u) {
            return Err(invalid(&format!("{field} is not HTTPS")));
        }
        Ok(u)
    };
    let verification = raw.verification_uri.or(raw.verification_url).ok_or_else(|| invalid("no verification_uri"))?;
    let verification_uri = uri("verification_uri", &verification)?;
    let verification_uri_complete = raw.verification_uri_complete.as_deref().map(|v| uri("verification_uri_complete", v)).transpose()?;
    let expires_in = seconds(&raw.expires_in).filter(|s| *s > 0).ok_or_else(|| invalid("no positive expires_in"))?;
    let wait = Duration::from_secs(expires_in).min(MAX_WAIT);
    let interval = seconds(&raw.interval).map(Duration::from_secs).unwrap_or(DEFAULT_INTERVAL).max(MIN_INTERVAL);
    let shown = DeviceCode {
        server: server.clone(),
        issuer: issuer.to_owned(),
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at: now.saturating_add(wait),
    };
    Ok(DeviceAuthorization { device_code: DeviceSecret(device_code), shown, interval })
}

/// What a polling answer means.
#[derive(Debug)]
pub(crate) enum Poll {
    /// Not yet: poll again after the interval.
    Pending,
    /// Not yet, and poll less often (§3.5: the interval grows by 5 s).
    SlowDown,
    /// No usable answer (no response, a 5xx, a 429): poll less often (§3.5: back off).
    Transient,
}

/// Classifies a failed device token request: `Ok(poll)` to keep polling, `Err` to end the
/// login (`access_denied`, `expired_token`, or any other refusal).
pub(crate) fn classify(error: Error) -> Result<Poll, Error> {
    use crate::error::TokenError;
    match &error {
        Error::Token(TokenError::Rejected(r)) => match r.error.as_str() {
            "authorization_pending" => Ok(Poll::Pending),
            "slow_down" => Ok(Poll::SlowDown),
            "expired_token" => Err(AuthorizationError::DeviceCodeExpired.into()),
            "access_denied" => Err(AuthorizationError::Denied(r.clone()).into()),
            _ if r.error.is_transient() => Ok(Poll::Transient),
            _ => Err(error),
        },
        Error::Http { error: crate::error::HttpError::UnexpectedStatus { status, .. }, .. } if *status == 429 || *status >= 500 => {
            Ok(Poll::Transient)
        }
        Error::Http { error: crate::error::HttpError::Transport(_), .. } => Ok(Poll::Transient),
        _ => Err(error),
    }
}
