//! Opening the system browser, and knowing when there is none.

use url::Url;

/// True when no browser can be shown to the user: no display on Linux/BSD, an SSH session, or
/// CI. An explicit `BROWSER` command always counts as a browser.
pub fn is_headless(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    if set("BROWSER") {
        return false;
    }
    if set("CI") || set("SSH_CONNECTION") || set("SSH_TTY") {
        return true;
    }
    if cfg!(any(target_os = "macos", windows)) {
        return false;
    }
    !(set("DISPLAY") || set("WAYLAND_DISPLAY"))
}

/// The process environment, for [`is_headless`].
pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Opens `url` in the system browser (honouring `BROWSER`) through a platform API, never a
/// shell. Only `http` and `https` URLs are opened.
pub fn open(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("refusing to open a {} url", url.scheme()));
    }
    webbrowser::open(url.as_str()).map_err(|e| format!("could not open a browser: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn headless_rules() {
        if cfg!(any(target_os = "macos", windows)) {
            return;
        }
        assert!(is_headless(&env(&[])));
        assert!(!is_headless(&env(&[("DISPLAY", ":0")])));
        assert!(!is_headless(&env(&[("WAYLAND_DISPLAY", "wayland-0")])));
        assert!(is_headless(&env(&[("DISPLAY", ":0"), ("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")])));
        assert!(is_headless(&env(&[("DISPLAY", ":0"), ("CI", "true")])));
        assert!(!is_headless(&env(&[("BROWSER", "/usr/bin/chromium"), ("CI", "true")])));
    }

    #[test]
    fn only_http_urls_are_opened() {
        assert!(open(&Url::parse("file:///etc/passwd").unwrap()).is_err());
        assert!(open(&Url::parse("javascript:alert(1)").unwrap()).is_err());
    }
}
