//! `mcp-oauth`: log in to MCP servers, see and clear what is stored, and use a server from the
//! shell. Built on the library's public API only (`--features cli`).
//!
//! Standard output carries only results (a token, a status, a tool's answer); everything said
//! to the person (the authorization URL, waits, errors) goes to standard error.

use lexopt::prelude::*;
use mcp_oauth_client::blocking::{McpClient, OAuthClient};
use mcp_oauth_client::config::Transport;
use mcp_oauth_client::core::config::SecretRef;
use mcp_oauth_client::core::device::DeviceCode;
use mcp_oauth_client::core::{Blame, Flow, IfUnreachable, LoginMethod, LogoutReport, Revocation};
use mcp_oauth_client::interaction::UrlHandled;
use mcp_oauth_client::{
    ClientKind, Config, Error, FileStore, Interaction, KeyringBackend, KeyringFailure, KeyringStore, MemoryStore, OAuthConfig, Persist,
    ServerConfig, StoredServer, TokenStore,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const HELP: &str = "\
mcp-oauth: OAuth for MCP servers, from the terminal

USAGE:
  mcp-oauth [GLOBAL OPTIONS] <COMMAND> [ARGS]

COMMANDS:
  login <url|name>          log in (browser, or paste the redirect URL)
      --scope SCOPE         ask for this scope (repeatable, or space-separated)
      --no-browser          do not open a browser: print the URL and wait for the callback or a paste
      --port N              listen for the callback on this port (default: any free port)
      --callback-host HOST  127.0.0.1 (default), localhost or ::1
      --redirect-uri URI    this exact redirect URI (a registered client, an SSH port forward)
      --client-id ID        a client registered in advance
      --client-secret-env VAR  its secret, read from this environment variable
      --device              log in on another device with a code (RFC 8628)
      --force               log in again even if a token is held (the old grant is revoked
                            once the new login succeeds)
  status [<url|name>]       what is stored: issuer, client, scopes, expiry (never a token)
  token <url|name>          print a fresh access token (refreshed if needed) for scripts
  logout <url|name> | --all revoke at the authorization server (RFC 7009), then forget
      --forget              forget even what an unreachable authorization server could not revoke
  tools <url|name>          list the server's tools
  call <url|name> <tool> [JSON]  call a tool with these arguments (default {})

GLOBAL OPTIONS:
  --store auto|keyring|file|memory
                            where credentials live (env MCP_OAUTH_STORE). auto (the default):
                            the OS keyring when it answers, else files; status shows which
  --keyring platform|secret-service|keyutils
                            which keyring (env MCP_OAUTH_KEYRING; default platform: Keychain,
                            Credential Manager, Secret Service). keyutils, the Linux kernel's,
                            needs no daemon but keeps items only until reboot
                            (env MCP_OAUTH_KEYRING_TIMEOUT: seconds a keyring may take, 10)
  --store-dir DIR           the file store's directory (and the keyring's index)
  --config FILE             servers by name, in the mcpServers JSON shape MCP clients use
                            (default: $XDG_CONFIG_HOME/mcp-oauth/servers.json)
  --json                    machine-readable output (status, tools, call, logout)
  -h, --help                this text
  -V, --version             the version

EXIT CODES:
  0  success
  1  the MCP server or the authorization server failed or refused; try again later
  2  usage or configuration error (arguments, config file, store directory)
  3  not logged in, and no login was possible here: run `mcp-oauth login`
  4  the login was cancelled, denied or timed out
  5  the network: no answer from a server (logout: the tokens were kept, or forgotten unrevoked)
  6  the tool answered with an error (call)
  7  a forged or tampered answer was refused
";

/// A failure, with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
    hint: Option<String>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure { code: 2, message: message.into(), hint: Some("see `mcp-oauth --help`".into()) }
    }

    fn of(e: &Error, target: &str) -> Self {
        use mcp_oauth_client::core::{AuthorizationError, Error as CoreError};
        let not_logged_in = matches!(e.core(), Some(CoreError::Authorization(AuthorizationError::InteractionRequired)));
        let (code, hint) = if not_logged_in {
            (3, format!("log in first: mcp-oauth login {target}"))
        } else {
            match e.blame() {
                Blame::Server => (1, "the MCP server failed or refused: check the URL, or try again later".to_owned()),
                Blame::AuthorizationServer => {
                    (1, "the authorization server failed or refused: try again later, or log in again".to_owned())
                }
                Blame::User => (4, format!("log in again: mcp-oauth login {target}")),
                Blame::Configuration => (2, "fix the configuration (arguments, config file, store directory)".to_owned()),
                Blame::Network => (5, "no answer: check the network and the URL, then try again".to_owned()),
                Blame::Attacker => (7, "a forged or tampered answer was refused and nothing was sent; check the URL".to_owned()),
                _ => (1, "this looks like a bug in mcp-oauth: please report it".to_owned()),
            }
        };
        Failure { code, message: clean(&format!("{e} (to blame: {})", e.blame())), hint: Some(clean(&hint)) }
    }
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::usage(e.to_string())
    }
}

#[derive(Default)]
struct Global {
    store: Option<String>,
    keyring: Option<String>,
    store_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
}

#[derive(Default)]
struct LoginOptions {
    scopes: Vec<String>,
    no_browser: bool,
    port: Option<u16>,
    callback_host: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    device: bool,
    force: bool,
}

enum Command {
    Login(String, LoginOptions),
    Status(Option<String>),
    Token(String),
    Logout(Option<String>, bool),
    Tools(String),
    Call(String, String, Option<String>),
}

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1).collect()) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("mcp-oauth: error: {}", f.message);
            if let Some(h) = f.hint {
                eprintln!("mcp-oauth: next: {h}");
            }
            ExitCode::from(f.code)
        }
    }
}

fn string(v: OsString) -> Result<String, Failure> {
    v.into_string().map_err(|v| Failure::usage(format!("not valid UTF-8: {}", v.to_string_lossy())))
}

fn parse(args: Vec<OsString>) -> Result<Option<(Global, Command)>, Failure> {
    let mut p = lexopt::Parser::from_args(args);
    let mut g = Global::default();
    let mut login = LoginOptions::default();
    let mut positional: Vec<String> = Vec::new();
    let mut all = false;
    let mut forget = false;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("mcp-oauth {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Long("store") => g.store = Some(string(p.value()?)?),
            Long("store-dir") => g.store_dir = Some(p.value()?.into()),
            Long("keyring") => g.keyring = Some(string(p.value()?)?),
            Long("config") => g.config = Some(p.value()?.into()),
            Long("json") => g.json = true,
            Long("all") => all = true,
            Long("scope") => login.scopes.extend(string(p.value()?)?.split_whitespace().map(str::to_owned)),
            Long("no-browser") => login.no_browser = true,
            Long("port") => login.port = Some(p.value()?.parse()?),
            Long("callback-host") => login.callback_host = Some(string(p.value()?)?),
            Long("redirect-uri") => login.redirect_uri = Some(string(p.value()?)?),
            Long("client-id") => login.client_id = Some(string(p.value()?)?),
            Long("client-secret-env") => login.client_secret_env = Some(string(p.value()?)?),
            Long("force") => login.force = true,
            Long("device") => login.device = true,
            Long("forget") => forget = true,
            Value(v) => positional.push(string(v)?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let mut it = positional.into_iter();
    let Some(cmd) = it.next() else { return Err(Failure::usage("no command given")) };
    let mut need = |what: &str| it.next().ok_or_else(|| Failure::usage(format!("`{cmd}` needs {what}")));
    let command = match cmd.as_str() {
        "login" => Command::Login(need("a server URL or name")?, login),
        "status" => Command::Status(it.next()),
        "token" => Command::Token(need("a server URL or name")?),
        "logout" if all => Command::Logout(None, forget),
        "logout" => Command::Logout(Some(need("a server URL or name (or --all)")?), forget),
        "tools" => Command::Tools(need("a server URL or name")?),
        "call" => {
            let server = need("a server URL or name")?;
            let tool = need("a tool name")?;
            Command::Call(server, tool, it.next())
        }
        other => return Err(Failure::usage(format!("unknown command `{other}`"))),
    };
    if let Some(extra) = it.next() {
        return Err(Failure::usage(format!("unexpected argument `{extra}`")));
    }
    Ok(Some((g, command)))
}

fn run(args: Vec<OsString>) -> Result<u8, Failure> {
    let Some((g, command)) = parse(args)? else { return Ok(0) };
    let (store, store_shown, parts) = open_store(&g)?;
    let servers = Servers::load(g.config.clone())?;
    match command {
        Command::Login(target, o) => login(&servers, &store, &target, o),
        Command::Status(target) => status(&servers, &store, &store_shown, target.as_deref(), g.json),
        Command::Token(target) => token(&servers, &store, &target),
        Command::Logout(target, forget) => logout(&servers, &store, &parts, target.as_deref(), forget, g.json),
        Command::Tools(target) => tools(&servers, &store, &target, g.json),
        Command::Call(target, tool, args) => call(&servers, &store, &target, &tool, args.as_deref(), g.json),
    }
}

// ---- Stores ---------------------------------------------------------------------------------

/// The store, how `status` shows it, and (for `auto`) the stores behind it.
type Opened = (Arc<dyn TokenStore>, String, Vec<Arc<dyn TokenStore>>);

fn open_store(g: &Global) -> Result<Opened, Failure> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let kind = g.store.clone().or_else(|| env("MCP_OAUTH_STORE")).unwrap_or_else(|| "auto".into());
    let dir = || match &g.store_dir {
        Some(d) => Ok(d.clone()),
        None => FileStore::default_dir().map_err(|e| Failure::usage(format!("{e}: give --store-dir"))),
    };
    let backend = match g.keyring.clone().or_else(|| env("MCP_OAUTH_KEYRING")) {
        None => KeyringBackend::Platform,
        Some(b) => KeyringBackend::parse(&b)
            .ok_or_else(|| Failure::usage(format!("unknown keyring `{b}`: platform, secret-service or keyutils")))?,
    };
    let timeout = match env("MCP_OAUTH_KEYRING_TIMEOUT") {
        None => mcp_oauth_client::store::keyring::DEFAULT_TIMEOUT,
        Some(t) => t
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite() && *t > 0.0 && *t <= 3600.0)
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| Failure::usage(format!("MCP_OAUTH_KEYRING_TIMEOUT={t}: give seconds, more than 0")))?,
    };
    let until_reboot = if backend == KeyringBackend::KeyUtils { "; kept until reboot" } else { "" };
    match kind.as_str() {
        "file" => {
            let dir = dir()?;
            Ok((Arc::new(FileStore::new(&dir)), format!("file ({})", dir.display()), Vec::new()))
        }
        "auto" => {
            let chosen = mcp_oauth_client::store::auto(dir()?, backend, timeout);
            // Falling back is said once per command when it is news: the keyring exists but did
            // not answer, or it holds logins that are out of reach (no session bus at all, as
            // over SSH, is the normal case there and goes unsaid outside `status`).
            let timed_out =
                matches!(chosen.fallback, Some(mcp_oauth_client::StoreError::Keyring { reason: KeyringFailure::Timeout { .. }, .. }));
            if chosen.keyring.is_none() && (timed_out || chosen.description.contains("out of reach")) {
                eprintln!("mcp-oauth: using {}", clean(&chosen.description));
            }
            let shown = match chosen.keyring {
                Some(_) => format!("keyring: {}{until_reboot}, chosen by --store auto", chosen.description),
                None => format!("{}, chosen by --store auto", chosen.description),
            };
            Ok((chosen.store, shown, chosen.parts))
        }
        "keyring" => {
            let index = match &g.store_dir {
                Some(d) => d.join("keyring-index"),
                None => KeyringStore::default_index_dir().map_err(|e| Failure::usage(format!("{e}: give --store-dir")))?,
            };
            let store = KeyringStore::new(&index, backend).with_timeout(timeout);
            Ok((Arc::new(store), format!("keyring: {} (index in {}){until_reboot}", backend.name(), index.display()), Vec::new()))
        }
        "memory" => Ok((Arc::new(MemoryStore::new()), "memory (this process only)".into(), Vec::new())),
        other => Err(Failure::usage(format!("unknown store `{other}`: auto, keyring, file or memory"))),
    }
}

// ---- Servers by name ------------------------------------------------------------------------

/// The servers of the config file, by name. An entry this tool cannot read is kept as its
/// error: it only matters when a command names it.
struct Servers {
    path: Option<PathBuf>,
    by_name: BTreeMap<String, Result<ServerConfig, String>>,
}

/// Where a command's server was found: its configuration, and the store keys it reaches.
struct Target {
    server: ServerConfig,
    /// The configuration as resolved (without login options).
    config: Config,
}

impl Servers {
    fn default_path() -> Option<PathBuf> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        env("XDG_CONFIG_HOME").or_else(|| env("HOME").map(|h| h.join(".config"))).map(|d| d.join("mcp-oauth").join("servers.json"))
    }

    fn load(given: Option<PathBuf>) -> Result<Self, Failure> {
        let explicit = given.is_some();
        let Some(path) = given.or_else(Self::default_path) else { return Ok(Servers { path: None, by_name: BTreeMap::new() }) };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Servers { path: Some(path), by_name: BTreeMap::new() });
            }
            Err(e) => return Err(Failure::usage(format!("cannot read {}: {e}", path.display()))),
        };
        let by_name = parse_servers(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
        Ok(Servers { path: Some(path), by_name })
    }

    fn configured(&self) -> impl Iterator<Item = (&String, &ServerConfig)> {
        self.by_name.iter().filter_map(|(n, c)| c.as_ref().ok().map(|c| (n, c)))
    }

    /// The server a command names: a URL, or a name in the config file.
    fn resolve(&self, target: &str) -> Result<Target, Failure> {
        let server = if target.starts_with("https://") || target.starts_with("http://") {
            let url = url::Url::parse(target).map_err(|e| Failure::usage(format!("`{target}` is not a URL: {e}")))?;
            // A name whose URL this is keeps its OAuth settings.
            match self.configured().find(|(_, c)| c.transport.url().and_then(|u| url::Url::parse(u).ok()) == Some(url.clone())) {
                Some((_, cfg)) => cfg.clone(),
                None => {
                    let transport = Transport::StreamableHttp { url: url.to_string(), headers: BTreeMap::new() };
                    ServerConfig { transport, oauth: Some(OAuthConfig::default()) }
                }
            }
        } else {
            match self.by_name.get(target) {
                Some(Ok(cfg)) => cfg.clone(),
                Some(Err(e)) => return Err(Failure::usage(format!("server `{target}` in the config file: {e}"))),
                None => {
                    return Err(Failure::usage(match &self.path {
                        Some(p) => format!("no server named `{target}` in {} (give a URL, or add it under mcpServers)", p.display()),
                        None => format!("no server named `{target}`: give a URL, or a config file with --config"),
                    }))
                }
            }
        };
        let config = oauth_config(&server)?;
        Ok(Target { server, config })
    }

    /// The name of the server with this store key, if the config file has one.
    fn name_of(&self, key: &str) -> Option<(&String, &ServerConfig)> {
        self.configured().find(|(_, c)| oauth_config(c).ok().is_some_and(|cfg| cfg.store_key() == key))
    }
}

/// The `mcpServers` object of an MCP client's config file, each entry read as a
/// [`ServerConfig`], with the spellings those files use: `"type": "http"` (or
/// `streamable-http`, `streamableHttp`) for Streamable HTTP, no `type` with a `url` (or
/// `serverUrl`, `httpUrl`) for Streamable HTTP or a `command` for stdio. An HTTP server without
/// `oauth` gets the defaults (`{}`): this tool is for OAuth. Fields other clients keep there
/// (`disabled`, `timeout`...) are ignored; an entry that still cannot be read is kept as its error.
fn parse_servers(text: &str) -> Result<BTreeMap<String, Result<ServerConfig, String>>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let servers = doc.get("mcpServers").or_else(|| doc.get("servers")).and_then(Value::as_object).ok_or("no `mcpServers` object")?;
    Ok(servers.iter().map(|(name, entry)| (name.clone(), parse_server(entry))).collect())
}

fn parse_server(entry: &Value) -> Result<ServerConfig, String> {
    let Some(obj) = entry.as_object() else { return Err("not an object".into()) };
    let mut obj = obj.clone();
    if !obj.contains_key("url") {
        if let Some(u) = obj.get("serverUrl").or_else(|| obj.get("httpUrl")).cloned() {
            obj.insert("url".into(), u);
        }
    }
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("http" | "streamable-http" | "streamableHttp" | "streamable_http") => "streamable_http",
        Some("sse") => "sse",
        Some("stdio") => "stdio",
        Some(other) => return Err(format!("unknown type `{}`", clean(other))),
        None if obj.contains_key("url") => "streamable_http",
        None if obj.contains_key("command") => "stdio",
        None => return Err("neither a url nor a command".into()),
    };
    obj.insert("type".into(), json!(kind));
    if kind != "stdio" && !obj.contains_key("oauth") {
        obj.insert("oauth".into(), json!({}));
    }
    let keep = ["type", "url", "headers", "oauth", "command", "args", "env"];
    obj.retain(|k, _| keep.contains(&k.as_str()));
    serde_json::from_value(Value::Object(obj)).map_err(|e| e.to_string())
}

fn env_lookup(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn oauth_config(server: &ServerConfig) -> Result<Config, Failure> {
    match server.oauth_config(&env_lookup) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Failure::usage("this server has no OAuth (a stdio server)")),
        Err(e) => Err(Failure::usage(e.to_string())),
    }
}

/// The server URL of a store key (the key without its `#principal`).
fn key_url(key: &str) -> &str {
    key.rsplit_once('#').map_or(key, |(u, _)| u)
}

/// A configuration whose store key is `key`, made from the key's principal (`user:ID`,
/// `app:NAME`, `cimd:URL`), when the config file has none: enough to refresh or revoke as the
/// client that key's tokens were issued to. `None` for principals that need configured
/// credentials (a service's secret).
fn config_for_key(key: &str) -> Option<Config> {
    let (url, principal) = key.rsplit_once('#')?;
    let mut c = Config::new(url::Url::parse(url).ok()?);
    let (kind, value) = principal.split_once(':')?;
    match kind {
        "user" => {
            c.client_id = Some(value.to_owned());
            c.flow = Flow::AuthorizationCode;
        }
        "app" => c.client_name = value.to_owned(),
        "cimd" => c.client_metadata_url = Some(url::Url::parse(value).ok()?),
        _ => return None,
    }
    (c.store_key() == key).then_some(c)
}

/// The store keys of `target`'s server: its own key first, then every other login the store
/// holds for the same URL (made with other options, such as `--client-id`).
fn keys_for(store: &dyn TokenStore, target: &Target) -> Result<Vec<String>, Failure> {
    let own = target.config.store_key();
    let mut keys = vec![own.clone()];
    let url = key_url(&own).to_owned();
    match store.servers() {
        Ok(all) => keys.extend(all.into_iter().filter(|k| *k != own && key_url(k) == url)),
        Err(mcp_oauth_client::StoreError::CannotList) => {}
        Err(e) => return Err(Failure::usage(e.to_string())),
    }
    Ok(keys)
}

/// The server's configuration with the login options applied.
fn with_login_options(mut server: ServerConfig, o: &LoginOptions) -> Result<ServerConfig, Failure> {
    let oauth = server.oauth.get_or_insert_with(OAuthConfig::default);
    if !o.scopes.is_empty() {
        oauth.scopes = Some(o.scopes.clone());
    }
    if let Some(id) = &o.client_id {
        oauth.client_id = Some(id.clone());
    }
    if let Some(var) = &o.client_secret_env {
        if std::env::var_os(var).is_none() {
            return Err(Failure::usage(format!("--client-secret-env: the environment variable {var} is not set")));
        }
        oauth.client_secret = Some(SecretRef::Env(var.clone()));
    }
    // `login` is a person's: with a client secret, `auto` would take the client credentials
    // grant (the client acting as itself) where the server offers it.
    if oauth.flow.is_none() {
        oauth.flow = Some(Flow::AuthorizationCode);
    }
    if o.device {
        oauth.interaction = Some(LoginMethod::Device);
    }
    match (&o.redirect_uri, &o.callback_host, o.port) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(Failure::usage("--redirect-uri is exact: give it without --port or --callback-host"));
        }
        (Some(uri), None, None) => oauth.redirect_uri = Some(uri.clone()),
        (None, None, None) => {}
        (None, host, port) => {
            let host = host.as_deref().unwrap_or("127.0.0.1");
            let host = match host {
                "127.0.0.1" | "localhost" => host.to_owned(),
                "::1" | "[::1]" => "[::1]".to_owned(),
                other => return Err(Failure::usage(format!("--callback-host {}: only 127.0.0.1, localhost or ::1", clean(other)))),
            };
            oauth.redirect_uri = Some(format!("http://{host}:{}/callback", port.unwrap_or(0)));
        }
    }
    Ok(server)
}

// ---- Commands -------------------------------------------------------------------------------

fn headless() -> bool {
    mcp_oauth_client::browser::is_headless(&mcp_oauth_client::browser::process_env)
}

/// How a login reaches the person: the URL is printed (by the library), then the browser opens
/// unless asked not to or there is no display; either way the program keeps listening for the
/// callback, takes a paste when a terminal is attached, and says so. In an SSH session it also
/// prints the `ssh -L` command that brings the callback port to the person's own computer.
/// A remote session uses the device grant when the authorization server offers it.
fn interaction(no_browser: bool) -> Interaction {
    let mut i = Interaction::default();
    let env = i.env.clone();
    let headless = headless();
    let terminal = std::io::stdin().is_terminal();
    // A remote session with someone at a terminal (or watching its output, as over SSH) logs in
    // on another device when the server can; --no-browser asks for the URL and the callback.
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    i.remote_session = Some(headless && !no_browser && (terminal || !ci));
    i.on_authorization_url = Some(Arc::new(move |url: &url::Url| {
        if let Some(hint) = ssh_hint(url, &*env) {
            eprintln!("{hint}");
        }
        let opened = if no_browser || headless { Ok(()) } else { mcp_oauth_client::browser::open(url) };
        let paste = if terminal { "; or paste the redirect URL here when asked" } else { "" };
        match opened {
            Ok(()) if no_browser || headless => eprintln!("Waiting for the sign-in at that URL (the callback{paste})…"),
            Ok(()) => eprintln!("Waiting for the browser sign-in{paste}…"),
            Err(e) => eprintln!("{}; open the URL yourself. Waiting for the sign-in{paste}…", clean(&e)),
        }
        UrlHandled::Opened
    }));
    i.on_device_code = Some(Arc::new(|code: &DeviceCode| {
        eprintln!(
            "To sign in to {} (at {}), open this page on any device:\n\n  {}\n\nand enter the code:  {}\n",
            clean(&shown(code.server.as_str())),
            clean(&shown(&code.issuer)),
            clean(code.verification_uri.as_str()),
            clean(&code.user_code)
        );
        if let Some(c) = &code.verification_uri_complete {
            eprintln!("(or open {}, which has the code filled in)\n", clean(c.as_str()));
        }
        eprintln!("Waiting for the sign-in…");
    }));
    i
}

/// In an SSH session: the `ssh -L` command for the callback port, with what to do with it.
fn ssh_hint(url: &url::Url, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let forward = mcp_oauth_client::browser::ssh_port_forward(url, env)?;
    Some(clean(&format!(
        "This is an SSH session: to let your own browser reach the callback, run on your computer\n\n  {forward}\n\nthen open the URL there."
    )))
}

fn store_err(e: mcp_oauth_client::StoreError) -> Failure {
    Failure::usage(e.to_string())
}

fn login(servers: &Servers, store: &Arc<dyn TokenStore>, target: &str, o: LoginOptions) -> Result<u8, Failure> {
    let t = servers.resolve(target)?;
    let server = with_login_options(t.server, &o)?;
    let mut config = oauth_config(&server)?;
    config.remote_session = false; // the interaction says (see `interaction`)
    let key = config.store_key();
    let held = store.describe(&key).map_err(store_err)?;
    if let (Some(t), false) = (&held.tokens, o.force) {
        eprintln!(
            "Already logged in to {} (issuer {}); `mcp-oauth login --force {}` logs in again.",
            clean(&shown(&held.server_url)),
            clean(&t.issuer),
            clean(target)
        );
        return Ok(0);
    }
    eprintln!("Logging in to {}…", clean(&shown(config.server_url.as_str())));
    if held.tokens.is_none() {
        let oauth = OAuthClient::new(config, store.clone(), interaction(o.no_browser)).map_err(|e| Failure::of(&e, target))?;
        oauth.authorization().map_err(|e| Failure::of(&e, target))?;
    } else {
        relogin(store, config, &key, &o, target)?;
    }
    let after = store.describe(&key).map_err(store_err)?;
    let issuer = after.tokens.as_ref().map(|t| t.issuer.clone()).unwrap_or_default();
    println!("logged in to {} (issuer {})", clean(&shown(&after.server_url)), clean(&issuer));
    Ok(0)
}

/// `login --force` with tokens held: the new login runs beside the old grant (in memory, with
/// the stored registrations), and replaces it in the store only once it succeeded; the old
/// grant is then revoked. A login that fails, is denied or is cancelled changes nothing.
fn relogin(store: &Arc<dyn TokenStore>, config: Config, key: &str, o: &LoginOptions, target: &str) -> Result<(), Failure> {
    let old = store.load(key).map_err(store_err)?;
    let scratch = Arc::new(MemoryStore::new());
    for c in &old.clients {
        scratch.persist(key, &Persist::Client(c.clone())).map_err(store_err)?;
    }
    let oauth = OAuthClient::new(config.clone(), scratch.clone(), interaction(o.no_browser)).map_err(|e| Failure::of(&e, target))?;
    oauth.authorization().map_err(|e| Failure::of(&e, target))?;
    let new = scratch.load(key).map_err(store_err)?;
    {
        let _lock = store.lock(key).map_err(store_err)?;
        for c in &new.clients {
            store.persist(key, &Persist::Client(c.clone())).map_err(store_err)?;
        }
        if let Some(t) = new.tokens {
            store.persist(key, &Persist::Tokens(t)).map_err(store_err)?;
        }
    }
    // The old grant: revoked where the authorization server can.
    if let Some(tokens) = old.tokens {
        let previous = Arc::new(MemoryStore::new());
        for c in &old.clients {
            previous.persist(key, &Persist::Client(c.clone())).map_err(store_err)?;
        }
        previous.persist(key, &Persist::Tokens(tokens)).map_err(store_err)?;
        let gone = OAuthClient::new(config, previous, Interaction::non_interactive()).and_then(|c| c.logout(IfUnreachable::Forget));
        match gone {
            Ok(r) if r.all_revoked() => eprintln!("The previous tokens were revoked."),
            Ok(r) => eprintln!("The previous tokens were replaced, but {}.", clean(&report_text(&r))),
            Err(e) => eprintln!("The previous tokens were replaced, but not revoked: {}", clean(&e.to_string())),
        }
    }
    Ok(())
}

fn status(servers: &Servers, store: &Arc<dyn TokenStore>, store_shown: &str, target: Option<&str>, json: bool) -> Result<u8, Failure> {
    let held: Vec<StoredServer> = match target {
        Some(t) => {
            let target = servers.resolve(t)?;
            let keys = keys_for(&**store, &target)?;
            let all = keys.iter().map(|k| store.describe(k)).collect::<Result<Vec<_>, _>>().map_err(store_err)?;
            // The target's own entry, and any other login for the same URL that holds something.
            all.into_iter().enumerate().filter(|(i, s)| *i == 0 || !s.is_empty()).map(|(_, s)| s).collect()
        }
        None => {
            let keys = store.servers().map_err(store_err)?;
            keys.iter().map(|k| store.describe(k)).collect::<Result<_, _>>().map_err(store_err)?
        }
    };
    let now = now_ms();
    if json {
        let list: Vec<Value> = held.iter().filter(|s| !s.is_empty()).map(|s| status_json(servers, s, store_shown, now)).collect();
        println!("{}", serde_json::to_string_pretty(&json!({"store": store_shown, "servers": list})).unwrap_or_default());
    } else {
        if held.iter().all(StoredServer::is_empty) {
            eprintln!("Nothing stored in {}.", clean(store_shown));
        }
        for s in held.iter().filter(|s| !s.is_empty()) {
            print!("{}", status_text(servers, s, store_shown, now));
        }
    }
    // A named server without a usable login: no tokens, or expired ones that cannot be refreshed.
    let usable = |s: &StoredServer| s.tokens.as_ref().is_some_and(|t| t.refresh_token || t.expires_at.is_none_or(|e| e.as_millis() > now));
    Ok(if target.is_some() && !held.iter().any(usable) { 3 } else { 0 })
}

fn kind_name(k: ClientKind) -> &'static str {
    match k {
        ClientKind::PreRegistered => "pre-registered",
        ClientKind::MetadataDocument => "client ID metadata document (CIMD)",
        ClientKind::Dynamic => "dynamic registration (DCR)",
    }
}

fn principal_of(key: &str) -> &str {
    key.rsplit_once('#').map_or("", |(_, p)| p)
}

fn status_text(servers: &Servers, s: &StoredServer, store_shown: &str, now: u64) -> String {
    let mut out = clean(&shown(&s.server_url));
    match servers.name_of(&s.key) {
        Some((name, _)) => out.push_str(&format!(" ({})", clean(name))),
        None => out.push_str(&format!(" [{}]", clean(principal_of(&s.key)))),
    }
    out.push('\n');
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<12}{}\n", clean(&v)));
    match &s.tokens {
        Some(t) => {
            line(&mut out, "issuer", t.issuer.clone());
            let client = s.clients.iter().find(|c| c.issuer == t.issuer);
            let how = client.map(|c| kind_name(c.kind)).unwrap_or("unknown");
            line(&mut out, "client", format!("{how}{}", t.client_id.as_deref().map(|id| format!(", id {id}")).unwrap_or_default()));
            line(&mut out, "scopes", if t.scopes.is_empty() { "(none granted)".into() } else { t.scopes.join(" ") });
            line(&mut out, "expires", expiry(t.expires_at.map(|e| e.as_millis()), now, t.refresh_token));
            line(&mut out, "refresh", if t.refresh_token { "yes".into() } else { "no".into() });
            line(&mut out, "dpop-bound", if t.dpop_bound { "yes".into() } else { "no".into() });
        }
        None => {
            line(&mut out, "tokens", "none (log in with `mcp-oauth login`)".into());
            for c in &s.clients {
                line(&mut out, "client", format!("{} at {}, id {}", kind_name(c.kind), c.issuer, c.client_id));
            }
        }
    }
    line(&mut out, "store", store_shown.to_owned());
    out
}

fn status_json(servers: &Servers, s: &StoredServer, store_shown: &str, now: u64) -> Value {
    let tokens = s.tokens.as_ref().map(|t| {
        let client = s.clients.iter().find(|c| c.issuer == t.issuer);
        json!({
            "issuer": t.issuer,
            "client_id": t.client_id,
            "registration": client.map(|c| kind_name(c.kind)),
            "scopes": t.scopes,
            "expires_at_ms": t.expires_at.map(|e| e.as_millis()),
            "expires_in_secs": t.expires_at.map(|e| (e.as_millis() as i128 - now as i128) / 1000),
            "refresh_token": t.refresh_token,
            "dpop_bound": t.dpop_bound,
        })
    });
    let clients: Vec<Value> = s
        .clients
        .iter()
        .map(|c| json!({"issuer": c.issuer, "client_id": c.client_id, "registration": kind_name(c.kind), "has_secret": c.has_secret}))
        .collect();
    json!({
        "server": shown(&s.server_url),
        "name": servers.name_of(&s.key).map(|(n, _)| n),
        "principal": principal_of(&s.key),
        "logged_in": s.tokens.is_some(),
        "tokens": tokens,
        "clients": clients,
        "store": store_shown,
    })
}

fn expiry(expires_at: Option<u64>, now: u64, refreshable: bool) -> String {
    let Some(at) = expires_at else { return "unknown (no expires_in given)".into() };
    let human = |ms: u64| {
        let s = ms / 1000;
        match s {
            0..=89 => format!("{s} s"),
            90..=5399 => format!("{} min", (s + 30) / 60),
            5400..=172_799 => format!("{} h", (s + 1800) / 3600),
            _ => format!("{} days", (s + 43_200) / 86_400),
        }
    };
    if at > now {
        format!("in {}", human(at - now))
    } else if refreshable {
        format!("{} ago (refreshed on next use)", human(now - at))
    } else {
        format!("{} ago (log in again)", human(now - at))
    }
}

/// The configuration of the login a command acts on: the target's own if it holds tokens (or
/// nothing else does), else the one other login stored for the same URL.
fn acting_config(store: &dyn TokenStore, target: &Target) -> Result<Config, Failure> {
    let keys = keys_for(store, target)?;
    let holds = |k: &String| store.describe(k).map(|s| s.tokens.is_some()).unwrap_or(false);
    if holds(&keys[0]) {
        return Ok(target.config.clone());
    }
    let others: Vec<&String> = keys[1..].iter().filter(|k| holds(k)).collect();
    match others[..] {
        [] => Ok(target.config.clone()),
        [one] => config_for_key(one).ok_or_else(|| {
            Failure::usage(format!(
                "the login stored for this URL ({}) needs its configuration: name it in the config file",
                clean(principal_of(one))
            ))
        }),
        _ => Err(Failure::usage(format!(
            "several logins are stored for this URL ({}): name the one you mean in the config file",
            others.iter().map(|k| clean(principal_of(k))).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn token(servers: &Servers, store: &Arc<dyn TokenStore>, target: &str) -> Result<u8, Failure> {
    let t = servers.resolve(target)?;
    let config = acting_config(&**store, &t)?;
    let oauth = OAuthClient::new(config, store.clone(), Interaction::non_interactive()).map_err(|e| Failure::of(&e, target))?;
    if !oauth.holds_token() {
        return Err(Failure { code: 3, message: "not logged in".into(), hint: Some(format!("mcp-oauth login {}", clean(target))) });
    }
    let a = oauth.authorization().map_err(|e| Failure::of(&e, target))?;
    if a.is_dpop() {
        return Err(Failure {
            code: 2,
            message: "the token is DPoP-bound (RFC 9449): it only works with a proof signed by a key that never leaves this program".into(),
            hint: Some(format!("use `mcp-oauth call {} …`, or configure \"dpop\": \"never\" for a bearer token", clean(target))),
        });
    }
    println!("{}", a.access_token().secret());
    Ok(0)
}

fn report_text(r: &LogoutReport) -> String {
    format!("refresh token {}, access token {}", r.refresh_token, r.access_token)
}

/// One login to log out of: its key, and the configuration to act as (if one can be made).
struct Leaving {
    key: String,
    config: Option<Config>,
}

fn logout(
    servers: &Servers,
    store: &Arc<dyn TokenStore>,
    parts: &[Arc<dyn TokenStore>],
    target: Option<&str>,
    forget: bool,
    json: bool,
) -> Result<u8, Failure> {
    let leaving: Vec<Leaving> = match target {
        Some(t) => {
            let target = servers.resolve(t)?;
            let keys = keys_for(&**store, &target)?;
            let mut out = vec![Leaving { key: keys[0].clone(), config: Some(target.config.clone()) }];
            for k in &keys[1..] {
                let config = servers.name_of(k).and_then(|(_, c)| oauth_config(c).ok()).or_else(|| config_for_key(k));
                out.push(Leaving { key: k.clone(), config });
            }
            out
        }
        None => store
            .servers()
            .map_err(store_err)?
            .into_iter()
            .map(|k| {
                let config = servers.name_of(&k).and_then(|(_, c)| oauth_config(c).ok()).or_else(|| config_for_key(&k));
                Leaving { key: k, config }
            })
            .collect(),
    };
    // For one server: the logins that hold something (or its own, to say nothing was held).
    let mut leaving = leaving;
    if target.is_some() {
        let mut holding = Vec::new();
        for l in &leaving {
            holding.push(!store.describe(&l.key).map_err(store_err)?.is_empty());
        }
        if holding.iter().any(|h| *h) {
            let mut i = 0;
            leaving.retain(|_| {
                i += 1;
                holding[i - 1]
            });
        } else {
            leaving.truncate(1);
        }
    }
    let if_unreachable = if forget { IfUnreachable::Forget } else { IfUnreachable::Keep };
    let mut results = Vec::new();
    let mut worst = 0u8;
    // With `--store auto`, the stores behind it: a copy of the login left in the other one (a
    // login made on a day the keyring did not answer) is logged out of too.
    let mut runs: Vec<(&Leaving, Arc<dyn TokenStore>)> = Vec::new();
    for l in &leaving {
        // Each store behind `auto` that holds this login, once; else the store itself (to say
        // that nothing was held).
        let holding: Vec<Arc<dyn TokenStore>> = parts.iter().filter(|p| p.describe(&l.key).is_ok_and(|d| !d.is_empty())).cloned().collect();
        if holding.is_empty() {
            runs.push((l, store.clone()));
        } else {
            runs.extend(holding.into_iter().map(|p| (l, p)));
        }
    }
    for (l, store) in runs {
        let url = clean(&shown(key_url(&l.key)));
        let outcome = match &l.config {
            Some(config) => OAuthClient::new(config.clone(), store.clone(), Interaction::non_interactive())
                .and_then(|c| c.logout(if_unreachable))
                .map_err(|e| Failure::of(&e, &url)),
            // No configuration to act as (a service's secret): forgotten here, not revoked.
            None => store.forget(&l.key).map_err(store_err).map(|gone| LogoutReport {
                issuer: gone.tokens.as_ref().map(|t| t.issuer.clone()),
                refresh_token: not_revoked(gone.tokens.as_ref().is_some_and(|t| t.refresh_token)),
                access_token: not_revoked(gone.tokens.is_some()),
                forgotten: true,
            }),
        };
        let report = match outcome {
            Ok(r) => r,
            Err(f) => {
                eprintln!("mcp-oauth: {url}: error: {}", f.message);
                worst = worst.max(f.code);
                continue;
            }
        };
        let code = logout_code(&report);
        worst = worst.max(code);
        if !report.forgotten {
            eprintln!(
                "mcp-oauth: {url}: not logged out: {}. The tokens are kept so that you can log out again later to revoke them; `mcp-oauth logout --forget` forgets them now without revoking.",
                clean(&report_text(&report))
            );
        } else if !report.all_revoked() {
            eprintln!(
                "mcp-oauth: {url}: forgotten here, but not everything was revoked at the authorization server: {}",
                clean(&report_text(&report))
            );
        }
        if json {
            results.push(json!({
                "server": url,
                "principal": principal_of(&l.key),
                "issuer": report.issuer,
                "refresh_token": report.refresh_token.to_string(),
                "access_token": report.access_token.to_string(),
                "all_revoked": report.all_revoked(),
                "forgotten": report.forgotten,
            }));
        } else if report.forgotten {
            println!("logged out of {url}: {}", clean(&report_text(&report)));
            results.push(Value::Null);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results).unwrap_or_default());
    } else if results.is_empty() && target.is_none() && worst == 0 {
        eprintln!("Nothing stored: nothing to log out of.");
    }
    Ok(worst)
}

fn not_revoked(held: bool) -> Revocation {
    if held {
        Revocation::NotSent("no configuration to act as this login's client (name it in the config file)".into())
    } else {
        Revocation::NotHeld
    }
}

/// A logout's exit code: 0 when nothing held is still valid at the server for want of trying
/// (revoked, none held, or no revocation offered), 5 when the server could not be reached, 1
/// when it refused or nothing could be sent.
fn logout_code(r: &LogoutReport) -> u8 {
    let code = |v: &Revocation| match v {
        Revocation::Unavailable(_) => 5,
        Revocation::Failed(_) | Revocation::NotSent(_) => 1,
        _ => 0,
    };
    code(&r.refresh_token).max(code(&r.access_token))
}

fn mcp_client(server: &ServerConfig, store: &Arc<dyn TokenStore>, target: &str) -> Result<McpClient, Failure> {
    McpClient::from_config(server, store.clone(), interaction(false), &env_lookup).map_err(|e| Failure::of(&e, target))
}

fn tools(servers: &Servers, store: &Arc<dyn TokenStore>, target: &str, json: bool) -> Result<u8, Failure> {
    let t = servers.resolve(target)?;
    let mut mcp = mcp_client(&t.server, store, target)?;
    let tools = mcp.list_tools().map_err(|e| Failure::of(&e, target))?;
    if json {
        let list: Vec<Value> =
            tools.iter().map(|t| json!({"name": t.name, "description": t.description, "inputSchema": t.input_schema})).collect();
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
    } else {
        for t in &tools {
            match &t.description {
                Some(d) => println!("{}\t{}", clean(&t.name), clean(d.lines().next().unwrap_or(""))),
                None => println!("{}", clean(&t.name)),
            }
        }
    }
    Ok(0)
}

fn call(servers: &Servers, store: &Arc<dyn TokenStore>, target: &str, tool: &str, args: Option<&str>, json: bool) -> Result<u8, Failure> {
    let args: Value = match args {
        Some(a) => serde_json::from_str(a).map_err(|e| Failure::usage(format!("the tool's arguments are not JSON: {e}")))?,
        None => json!({}),
    };
    if !args.is_object() {
        return Err(Failure::usage("the tool's arguments must be a JSON object"));
    }
    let t = servers.resolve(target)?;
    let mut mcp = mcp_client(&t.server, store, target)?;
    let result = mcp.call_tool(tool, args).map_err(|e| Failure::of(&e, target))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
    } else {
        let content = result.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
        for item in &content {
            match item.get("text").and_then(Value::as_str) {
                Some(text) if item.get("type").and_then(Value::as_str) == Some("text") => println!("{}", clean_text(text)),
                _ => println!("{}", clean(&item.to_string())),
            }
        }
        if content.is_empty() {
            println!("{}", clean(&result.to_string()));
        }
    }
    Ok(if result.get("isError").and_then(Value::as_bool) == Some(true) { 6 } else { 0 })
}

/// Text from a server, fit for a terminal on one line: control characters (C0, DEL, C1: the
/// escape sequences that clear screens, retitle windows or write the clipboard) shown as `\u{…}`.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Like [`clean`], keeping line breaks and tabs (a tool's text answer).
fn clean_text(s: &str) -> String {
    s.split('\n').map(|l| l.split('\t').map(clean).collect::<Vec<_>>().join("\t")).collect::<Vec<_>>().join("\n")
}

/// A URL as shown to the person: no query or fragment (a configured URL may carry a key).
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or("").to_owned(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
