//! Second independent review: the attempt budget of one request is not one request's.
//!
//! Core bounds the retries of one MCP request (every challenge counts; a request ends after
//! `2 * max_authorization_attempts + 2` challenges, SPEC 12 and 96). That budget lives in the one
//! machine, and `Input::TokenWanted` resets it. Since e7d30d3 `challenged()` answers a challenge
//! with `TokenWanted` whenever the store holds another token than the one rejected.
//!
//! * async adapter, one process: clones of one `OAuthClient` share one machine (README:
//!   "tasks asking at once get one login or one refresh between them"). Two tasks whose
//!   requests the server rejects reset each other's budget: task A's challenge refreshes, task
//!   B's challenge sees A's token (replaced) and feeds `TokenWanted`, which zeroes the budget A
//!   is in the middle of; then the roles swap. Neither `send` ever ends, and every round costs
//!   one refresh at the authorization server.
//! * blocking adapter, two processes on one store: the same with another instance that
//!   refreshes between this one's attempts (a resource server that rejects every token, or
//!   one that delays its 401s so the two instances alternate).
//!
//! What should happen: each `send` ends (with `RejectedFreshToken`) after a bounded number of
//! attempts, whatever the other instance does. Each test caps the run at `LIMIT` MCP requests by
//! answering 200 from then on, and fails when that cap is reached.

mod common;
use common::*;
use mcp_oauth_client::{Interaction, MemoryStore, TokenStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// MCP requests after which the hostile resource server gives up and answers 200.
const LIMIT: usize = 120;

/// The bound for two requests: each gets its first try, 2 x 3 + 2 challenges the machine acts
/// on, and as many answered with a token another task or instance stored meanwhile.
const BOUND: usize = 2 * (1 + 2 * (2 * 3 + 2));

/// Logs in once (a person at the browser), leaving tokens in `store` under `config`'s key.
fn logged_in(s: &mcp_oauth_tests::tcp::TcpTestServer, store: &Arc<MemoryStore>) {
    let (i, _) = following_browser();
    let mut mcp = mcp_oauth_client::blocking::McpClient::with_oauth(config(s), store.clone(), i).unwrap();
    mcp.list_tools().unwrap();
    assert!(store.load(&config(s).store_key()).unwrap().tokens.is_some());
}

/// The 401 of a resource server that rejects every token (its audience or clock is wrong),
/// naming the metadata the client already uses.
fn reject_all(origin: &str) -> http::Response<Vec<u8>> {
    let www = format!(
        r#"Bearer error="invalid_token", error_description="rejected", resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp""#
    );
    http::Response::builder().status(401).header("www-authenticate", www).body(b"{}".to_vec()).unwrap()
}

fn ok() -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec())
        .unwrap()
}

/// Two requests in flight meet here: the server answers both once both arrived (or after a
/// second, so a request left alone is not held up for long).
#[derive(Default)]
struct Rendezvous {
    arrived: Mutex<u64>,
    cv: Condvar,
}

impl Rendezvous {
    fn meet(&self) {
        let mut n = self.arrived.lock().unwrap();
        *n += 1;
        let target = (*n - 1) / 2 * 2 + 2;
        self.cv.notify_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while *n < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            n = self.cv.wait_timeout(n, left).unwrap().0;
        }
    }
}

fn refreshes(s: &mcp_oauth_tests::tcp::TcpTestServer) -> usize {
    s.lock().token_requests().iter().filter(|r| r.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")).count()
}

/// Two tasks, one `OAuthClient` (clones), a resource server that rejects every token.
#[cfg(feature = "async-std")]
#[test]
fn two_tasks_on_one_client_do_not_retry_forever() {
    two_tasks(true)
}

/// The control: one task alone ends at once (refresh, rejected again: `RejectedFreshToken`).
#[cfg(feature = "async-std")]
#[test]
fn control_one_task_alone_ends() {
    two_tasks(false)
}

#[cfg(feature = "async-std")]
fn two_tasks(both: bool) {
    use mcp_oauth_client::async_std::OAuthClient;
    use mcp_oauth_client::core::http::HttpResponse;
    use mcp_oauth_client::transport::Ureq;
    use mcp_oauth_client::SystemClock;

    let s = server(|_| {});
    let store = Arc::new(MemoryStore::new());
    logged_in(&s, &store);
    let before = refreshes(&s);

    let mcp_requests = Arc::new(AtomicUsize::new(0));
    let meet = Arc::new(Rendezvous::default());
    let (origin, http) = (s.origin(), Ureq::default());
    let (count, m) = (mcp_requests.clone(), meet.clone());
    let client = move |req: http::Request<Vec<u8>>, max: usize| {
        let (http, origin, count, meet) = (http.clone(), origin.clone(), count.clone(), m.clone());
        async move {
            if req.uri().path() != "/mcp" {
                return async_std::task::spawn_blocking(move || http.send(req, max)).await;
            }
            if count.fetch_add(1, Ordering::SeqCst) >= LIMIT {
                return Ok::<HttpResponse, _>(ok());
            }
            async_std::task::spawn_blocking(move || meet.meet()).await;
            Ok(reject_all(&origin))
        }
    };
    let results = async_std::task::block_on(async {
        let oauth =
            OAuthClient::with_parts(config(&s), store.clone(), Interaction::non_interactive(), Arc::new(client), Arc::new(SystemClock))
                .await
                .unwrap();
        let url = s.mcp_url();
        let req = move || {
            http::Request::post(url.clone())
                .header("content-type", "application/json")
                .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_vec())
                .unwrap()
        };
        let (a, b) = (oauth.clone(), oauth.clone());
        let ra = req();
        let ta = async_std::task::spawn(async move { a.send(ra, 1 << 20).await.map(|r| r.status().as_u16()) });
        let rb = if both { Some(b.send(req(), 1 << 20).await.map(|r| r.status().as_u16())) } else { None };
        (ta.await, rb)
    });
    let sent = mcp_requests.load(Ordering::SeqCst);
    let refreshed = refreshes(&s) - before;
    if !both {
        assert!(sent <= 3 && results.0.is_err(), "alone: {sent} attempts, {results:?}");
        return;
    }
    assert!(
        sent <= BOUND,
        "two requests took {sent} MCP attempts and {refreshed} refreshes, and ended only because the server gave in at {LIMIT} \
         (results {results:?}): each task's TokenWanted reset the other's attempt budget"
    );
}

/// A store as a second instance of the same application sees it: every time this instance
/// reads the store to act on a challenge, the other one has just refreshed (its own request
/// was rejected too) and saved the new tokens.
struct OtherInstance {
    inner: Arc<MemoryStore>,
    token_endpoint: String,
    resource: String,
}

impl TokenStore for OtherInstance {
    fn load(&self, server: &str) -> Result<mcp_oauth_core::Restored, mcp_oauth_client::StoreError> {
        let now = self.inner.load(server)?;
        if let Some(t) = &now.tokens {
            // The other instance refreshes with the stored refresh token, as its adapter would.
            let rt = t.refresh_token.as_ref().unwrap().secret().to_owned();
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", &rt)
                .append_pair("client_id", t.client_id.as_deref().unwrap())
                .append_pair("resource", &self.resource)
                .finish();
            let resp = ureq::post(&self.token_endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .send(form.as_str())
                .unwrap()
                .into_body()
                .read_to_string()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
            let mut fresh = t.clone();
            fresh.access_token = serde_json::from_value(v["access_token"].clone()).unwrap();
            fresh.refresh_token = Some(serde_json::from_value(v["refresh_token"].clone()).unwrap());
            self.inner.persist(server, &mcp_oauth_core::Persist::Tokens(fresh))?;
        }
        self.inner.load(server)
    }

    fn persist(&self, server: &str, p: &mcp_oauth_core::Persist) -> Result<(), mcp_oauth_client::StoreError> {
        self.inner.persist(server, p)
    }

    fn lock(&self, server: &str) -> Result<mcp_oauth_client::store::StoreLock, mcp_oauth_client::StoreError> {
        self.inner.lock(server)
    }
}

/// Blocking adapter, two instances on one store, a resource server that rejects every token:
/// `OAuthClient::send` of this instance never ends while the other keeps refreshing.
#[test]
fn a_request_ends_whatever_another_instance_does() {
    use mcp_oauth_tests::hostile::{Behaviour, HostilePeer};
    // The resource server (hostile or broken): metadata naming the test authorization server,
    // and a 401 for every token.
    let s = server(|_| {});
    let as_origin = s.origin();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let rs = HostilePeer::start(move |origin, target| {
        if target.starts_with("/.well-known/oauth-protected-resource") {
            return Behaviour::json(200, &format!(r#"{{"resource":"{origin}/mcp","authorization_servers":["{as_origin}"]}}"#));
        }
        if c.fetch_add(1, Ordering::SeqCst) >= LIMIT {
            return Behaviour::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        }
        let www = format!(
            r#"www-authenticate: Bearer error="invalid_token", resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp""#
        );
        Behaviour::response(401, &format!("{www}\r\ncontent-type: application/json\r\n"), "{}")
    })
    .unwrap();
    let rs_mcp = format!("{}/mcp", rs.origin());
    s.lock().options.prm_resource = Some(rs_mcp.clone());
    let mut cfg = mcp_oauth_client::Config::new(rs_mcp.parse().unwrap());
    cfg.callback_timeout = Duration::from_secs(20);

    // First a login (a person at the browser): its token is rejected like every other, but the
    // grant and its tokens are in the store.
    let store = Arc::new(MemoryStore::new());
    {
        let (i, _) = following_browser();
        let mut mcp = mcp_oauth_client::blocking::McpClient::with_oauth(cfg.clone(), store.clone(), i).unwrap();
        let _ = mcp.list_tools();
        assert!(store.load(&cfg.store_key()).unwrap().tokens.is_some(), "logged in");
    }
    count.store(0, Ordering::SeqCst);
    let before = refreshes(&s);

    let other = OtherInstance { inner: store.clone(), token_endpoint: format!("{}/token", s.origin()), resource: rs_mcp.clone() };
    let oauth = mcp_oauth_client::blocking::OAuthClient::new(cfg, Arc::new(other), Interaction::non_interactive()).unwrap();
    let req = http::Request::post(&rs_mcp).body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_vec()).unwrap();
    let r = oauth.send(req, 1 << 20).map(|r| r.status().as_u16());
    let sent = count.load(Ordering::SeqCst);
    assert!(
        sent <= BOUND / 2,
        "one request took {sent} MCP attempts ({} refreshes by the other instance) and ended only because the server gave in \
         at {LIMIT}: {r:?}",
        refreshes(&s) - before
    );
}

/// The same with step-up (SPEC 96, conformance `auth/scope-retry-limit`: at most 3
/// authorization attempts when the server keeps answering `403 insufficient_scope`). Two tasks
/// on one client: every round is a browser login for the person, without end.
#[cfg(feature = "async-std")]
#[test]
fn two_tasks_stepping_up_do_not_log_in_forever() {
    use mcp_oauth_client::async_std::OAuthClient;
    use mcp_oauth_client::core::http::HttpResponse;
    use mcp_oauth_client::transport::Ureq;
    use mcp_oauth_client::SystemClock;
    const LOGIN_LIMIT: usize = 30;

    let s = server(|_| {});
    let store = Arc::new(MemoryStore::new());
    logged_in(&s, &store);
    let logins_before = s.lock().authorization_requests().len();

    let mcp_requests = Arc::new(AtomicUsize::new(0));
    let meet = Arc::new(Rendezvous::default());
    let (origin, http) = (s.origin(), Ureq::default());
    let (count, m) = (mcp_requests.clone(), meet.clone());
    let client = move |req: http::Request<Vec<u8>>, max: usize| {
        let (http, origin, count, meet) = (http.clone(), origin.clone(), count.clone(), m.clone());
        async move {
            if req.uri().path() != "/mcp" {
                return async_std::task::spawn_blocking(move || http.send(req, max)).await;
            }
            if count.fetch_add(1, Ordering::SeqCst) >= LOGIN_LIMIT {
                return Ok::<HttpResponse, _>(ok());
            }
            async_std::task::spawn_blocking(move || meet.meet()).await;
            let www = format!(
                r#"Bearer error="insufficient_scope", scope="mcp:admin", resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp""#
            );
            Ok(http::Response::builder().status(403).header("www-authenticate", www).body(b"{}".to_vec()).unwrap())
        }
    };
    let (i, _) = following_browser();
    let results = async_std::task::block_on(async {
        let oauth = OAuthClient::with_parts(config(&s), store.clone(), i, Arc::new(client), Arc::new(SystemClock)).await.unwrap();
        let url = s.mcp_url();
        let req = move || {
            http::Request::post(url.clone())
                .header("content-type", "application/json")
                .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin-tool"}}"#.to_vec())
                .unwrap()
        };
        let (a, b) = (oauth.clone(), oauth.clone());
        let ra = req();
        let ta = async_std::task::spawn(async move { a.send(ra, 1 << 20).await.map(|r| r.status().as_u16()) });
        let rb = b.send(req(), 1 << 20).await.map(|r| r.status().as_u16());
        (ta.await, rb)
    });
    let logins = s.lock().authorization_requests().len() - logins_before;
    assert!(
        logins <= 6,
        "two requests made the person log in {logins} times ({} MCP attempts; the server gave in at {LOGIN_LIMIT}): {results:?}",
        mcp_requests.load(Ordering::SeqCst)
    );
}

/// No second failing request is needed: one request the server rejects (one tool behind a
/// misconfigured check) and another task that starts requests meanwhile (each starts with
/// `authorization()`, i.e. `TokenWanted`) are enough. Every `TokenWanted` zeroes the budget of
/// the request under way, so it refreshes and retries without end, rotating the grant's
/// tokens for every other task each time.
#[cfg(feature = "async-std")]
#[test]
fn a_rejected_request_ends_while_other_tasks_start_requests() {
    use mcp_oauth_client::async_std::OAuthClient;
    use mcp_oauth_client::core::http::HttpResponse;
    use mcp_oauth_client::transport::Ureq;
    use mcp_oauth_client::SystemClock;
    use std::sync::OnceLock;

    let s = server(|_| {});
    let store = Arc::new(MemoryStore::new());
    logged_in(&s, &store);
    let before = refreshes(&s);
    let other: Arc<OnceLock<OAuthClient>> = Arc::new(OnceLock::new());
    let mcp_requests = Arc::new(AtomicUsize::new(0));
    let (origin, http, count, o) = (s.origin(), Ureq::default(), mcp_requests.clone(), other.clone());
    let client = move |req: http::Request<Vec<u8>>, max: usize| {
        let (http, origin, count, other) = (http.clone(), origin.clone(), count.clone(), o.clone());
        async move {
            if req.uri().path() != "/mcp" {
                return async_std::task::spawn_blocking(move || http.send(req, max)).await;
            }
            if count.fetch_add(1, Ordering::SeqCst) >= LIMIT {
                return Ok::<HttpResponse, _>(ok());
            }
            // Meanwhile another task of the application starts a request (its token is fine).
            if let Some(o) = other.get() {
                o.authorization().await.unwrap();
            }
            Ok(reject_all(&origin))
        }
    };
    let result = async_std::task::block_on(async {
        let oauth =
            OAuthClient::with_parts(config(&s), store.clone(), Interaction::non_interactive(), Arc::new(client), Arc::new(SystemClock))
                .await
                .unwrap();
        let _ = other.set(oauth.clone());
        let req = http::Request::post(s.mcp_url())
            .header("content-type", "application/json")
            .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"broken"}}"#.to_vec())
            .unwrap();
        oauth.send(req, 1 << 20).await.map(|r| r.status().as_u16())
    });
    let sent = mcp_requests.load(Ordering::SeqCst);
    assert!(
        sent <= BOUND / 2,
        "one request took {sent} attempts and {} refreshes while other tasks started requests; it ended only because the \
         server gave in at {LIMIT}: {result:?}",
        refreshes(&s) - before
    );
}
