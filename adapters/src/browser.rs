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

/// In an SSH session (`SSH_CONNECTION` set): the command that forwards the loopback callback
/// port of an authorization URL's `redirect_uri` from the person's own computer to this one,
/// so that their browser's redirect reaches this program's listener:
/// `ssh -N -L PORT:HOST:PORT [-p SSH_PORT] [user@]SERVER`. `None` outside SSH, or when the URL
/// has no loopback redirect URI with a port.
///
/// ```
/// use mcp_oauth_client::browser::ssh_port_forward;
///
/// let url = "https://as.example/authorize?redirect_uri=http%3A%2F%2F127.0.0.1%3A41234%2Fcallback".parse()?;
/// let env = |k: &str| match k {
///     "SSH_CONNECTION" => Some("10.0.0.9 50000 10.0.0.5 2222".to_owned()),
///     "USER" => Some("alice".to_owned()),
///     _ => None,
/// };
/// assert_eq!(ssh_port_forward(&url, &env).as_deref(), Some("ssh -N -L 41234:127.0.0.1:41234 -p 2222 alice@10.0.0.5"));
/// # Ok::<(), url::ParseError>(())
/// ```
pub fn ssh_port_forward(url: &Url, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let conn = env("SSH_CONNECTION")?;
    let fields: Vec<&str> = conn.split_whitespace().collect();
    let (server, server_port) = (fields.get(2)?, fields.get(3)?);
    let redirect = url.query_pairs().find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned())?;
    let redirect = Url::parse(&redirect).ok()?;
    let port = redirect.port()?;
    let host = match redirect.host()? {
        url::Host::Ipv4(ip) if ip.is_loopback() => ip.to_string(),
        url::Host::Ipv6(ip) if ip.is_loopback() => format!("[{ip}]"),
        url::Host::Domain("localhost") => "localhost".to_owned(),
        _ => return None,
    };
    // Only what an SSH command line takes: no shell metacharacters from the environment.
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c));
    if !plain(server) || !server_port.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let user = env("USER").or_else(|| env("LOGNAME")).filter(|u| plain(u)).map(|u| format!("{u}@")).unwrap_or_default();
    let p = if *server_port == "22" { String::new() } else { format!(" -p {server_port}") };
    let server = if server.contains(':') { format!("[{server}]") } else { (*server).to_owned() };
    Some(format!("ssh -N -L {port}:{host}:{port}{p} {user}{server}"))
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

    fn auth_url(redirect: &str) -> Url {
        let mut u = Url::parse("https://as.example/authorize?response_type=code").unwrap();
        u.query_pairs_mut().append_pair("redirect_uri", redirect);
        u
    }

    #[test]
    fn ssh_port_forward_names_the_bound_port_the_host_and_the_ssh_server() {
        let ssh = env(&[("SSH_CONNECTION", "10.0.0.9 50000 10.0.0.5 22"), ("LOGNAME", "bob")]);
        let cases = [
            ("http://127.0.0.1:41234/callback", Some("ssh -N -L 41234:127.0.0.1:41234 bob@10.0.0.5")),
            ("http://[::1]:5000/callback", Some("ssh -N -L 5000:[::1]:5000 bob@10.0.0.5")),
            ("http://localhost:7000/cb", Some("ssh -N -L 7000:localhost:7000 bob@10.0.0.5")),
            // No port to forward, or not a loopback redirect.
            ("http://127.0.0.1/callback", None),
            ("https://app.example.com/callback", None),
        ];
        for (redirect, want) in cases {
            assert_eq!(ssh_port_forward(&auth_url(redirect), &ssh).as_deref(), want, "{redirect}");
        }
        // An IPv6 SSH server and a non-default port; no user name known.
        let v6 = env(&[("SSH_CONNECTION", "fe80::1 50000 2001:db8::5 2200")]);
        assert_eq!(
            ssh_port_forward(&auth_url("http://127.0.0.1:9/cb"), &v6).as_deref(),
            Some("ssh -N -L 9:127.0.0.1:9 -p 2200 [2001:db8::5]")
        );
        // Outside SSH, or with values no SSH command line takes: no hint.
        assert_eq!(ssh_port_forward(&auth_url("http://127.0.0.1:9/cb"), &env(&[])), None);
        let hostile = env(&[("SSH_CONNECTION", "1.2.3.4 1 $(reboot) 22")]);
        assert_eq!(ssh_port_forward(&auth_url("http://127.0.0.1:9/cb"), &hostile), None);
        let odd_user = env(&[("SSH_CONNECTION", "1.2.3.4 1 10.0.0.5 22"), ("USER", "a;b")]);
        assert_eq!(ssh_port_forward(&auth_url("http://127.0.0.1:9/cb"), &odd_user).as_deref(), Some("ssh -N -L 9:127.0.0.1:9 10.0.0.5"));
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
