//! HTTP for the driver: the [`HttpClient`] trait (implemented for closures), and the default
//! [`UreqOn`], ureq on a runtime's blocking pool.
//!
//! The default runs [`Ureq`] off the executor. That is a deliberate choice over an async HTTP
//! client: every adapter then sends the OAuth requests through exactly one tested stack (rustls
//! with webpki roots, redirects never followed, timeouts on every call, bodies read only up to
//! the cap, credentials scrubbed from ureq's log), whatever the runtime. The cost is one pool
//! thread per request in flight, which is nothing for the few requests an OAuth flow makes;
//! MCP-heavy programs can bring their own client by implementing the trait (or passing a
//! closure).

use super::Runtime;
use crate::transport::{pump, Stream, StreamCloser, Ureq, STREAM_CHUNKS};
use futures_lite::Stream as StreamTrait;
use mcp_oauth_core::http::{HttpResponse, TransportFailure, TransportFailureKind};
use mcp_oauth_core::NetworkPolicy;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A boxed, sendable future (what [`HttpClient`] returns, so it works as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The body of an open event stream: chunks as they arrive, ending when the stream closes.
/// Dropping it must close the connection (the client drops it when it is dropped, and when a
/// connect fails).
pub type ByteStream = Pin<Box<dyn StreamTrait<Item = Vec<u8>> + Send>>;

/// What [`HttpClient::open_stream`] got.
pub enum HttpStream {
    /// A 2xx head and the body to read as it arrives.
    Open(http::response::Parts, ByteStream),
    /// Any other response, read whole (for challenges).
    Done(HttpResponse),
}

impl std::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpStream::Open(p, _) => f.debug_tuple("Open").field(&p.status).finish(),
            HttpStream::Done(r) => f.debug_tuple("Done").field(&r.status()).finish(),
        }
    }
}

/// An HTTP client for the adapters, whatever their runtime. Implementations must not follow
/// redirects, must return every status code as a response, must time out, and should stop
/// reading a body after `max_body` bytes with [`TransportFailureKind::BodyTooLarge`] (the
/// adapter also checks the length it gets).
///
/// A closure `Fn(http::Request<Vec<u8>>, usize) -> impl Future<Output = Result<HttpResponse,
/// TransportFailure>>` is a client:
///
/// ```
/// use mcp_oauth_client::transport::HttpClient;
/// use mcp_oauth_client::core::http::{HttpResponse, TransportFailure};
///
/// let client = |req: http::Request<Vec<u8>>, _max_body: usize| async move {
///     // Hand `req` to your own HTTP stack here.
///     let _ = req;
///     Ok::<HttpResponse, TransportFailure>(http::Response::builder().status(204).body(Vec::new()).unwrap())
/// };
/// fn takes(_: impl HttpClient) {}
/// takes(client);
/// ```
pub trait HttpClient: Send + Sync {
    /// Sends one request, reading at most `max_body` bytes of the response body.
    fn send(&self, req: http::Request<Vec<u8>>, max_body: usize) -> BoxFuture<'_, Result<HttpResponse, TransportFailure>>;

    /// Opens a long-lived response (the legacy transport's event stream). The default says
    /// this client cannot. Implementations should give up a stream that stays silent for
    /// [`STREAM_IDLE_TIMEOUT`](crate::mcp::STREAM_IDLE_TIMEOUT), read a non-2xx body within
    /// their timeout, and close the connection when the [`ByteStream`] is dropped; the client
    /// caps each event itself ([`SseAssembler`](crate::mcp::SseAssembler)).
    fn open_stream(&self, req: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<HttpStream, TransportFailure>> {
        let _ = req;
        Box::pin(async {
            Err(TransportFailure { kind: TransportFailureKind::Other, message: "this HTTP client cannot open event streams".into() })
        })
    }
}

impl<F, Fut> HttpClient for F
where
    F: Fn(http::Request<Vec<u8>>, usize) -> Fut + Send + Sync,
    Fut: Future<Output = Result<HttpResponse, TransportFailure>> + Send + 'static,
{
    fn send(&self, req: http::Request<Vec<u8>>, max_body: usize) -> BoxFuture<'_, Result<HttpResponse, TransportFailure>> {
        Box::pin(self(req, max_body))
    }
}

/// Sends through `client` and enforces the body cap even if the client did not.
pub(crate) async fn send_capped(
    client: &dyn HttpClient,
    req: http::Request<Vec<u8>>,
    max_body: usize,
) -> Result<HttpResponse, TransportFailure> {
    let resp = client.send(req, max_body).await?;
    if resp.body().len() > max_body {
        return Err(TransportFailure { kind: TransportFailureKind::BodyTooLarge, message: format!("body larger than {max_body} bytes") });
    }
    Ok(resp)
}

/// The default client: [`Ureq`] run on runtime `R`'s blocking pool (in the blocking adapter,
/// on the calling thread). Each adapter names it `UreqClient`.
#[derive(Clone, Debug, Default)]
pub struct UreqOn<R> {
    ureq: Ureq,
    rt: R,
}

impl<R: Runtime> UreqOn<R> {
    /// A client whose calls time out after `timeout` in any phase (see [`Ureq::new`]).
    pub fn new(timeout: Duration) -> Self {
        UreqOn { ureq: Ureq::new(timeout), rt: R::default() }
    }

    /// With `policy` enforced on every host but `exempt_host` (see [`Ureq::with_policy`]).
    pub fn with_policy(self, policy: NetworkPolicy, exempt_host: &str) -> Self {
        UreqOn { ureq: self.ureq.with_policy(policy, exempt_host), rt: self.rt }
    }
}

impl<R: Runtime> HttpClient for UreqOn<R> {
    fn send(&self, req: http::Request<Vec<u8>>, max_body: usize) -> BoxFuture<'_, Result<HttpResponse, TransportFailure>> {
        let ureq = self.ureq.clone();
        Box::pin(self.rt.spawn_blocking(move || ureq.send(req, max_body)))
    }

    fn open_stream(&self, req: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<HttpStream, TransportFailure>> {
        let ureq = self.ureq.clone();
        Box::pin(async move {
            match self.rt.spawn_blocking(move || ureq.open_stream(req)).await? {
                Stream::Done(resp) => Ok(HttpStream::Done(resp)),
                Stream::Open(parts, body) => {
                    let (reader, closer) = body.into_parts();
                    let (tx, rx) = async_channel::bounded(STREAM_CHUNKS);
                    pump("mcp-oauth-stream", reader, move |chunk| tx.send_blocking(chunk).is_ok()).map_err(|e| TransportFailure {
                        kind: TransportFailureKind::Other,
                        message: format!("cannot start the stream reader: {e}"),
                    })?;
                    Ok(HttpStream::Open(parts, Box::pin(Pumped { chunks: Box::pin(rx), _closer: closer })))
                }
            }
        })
    }
}

/// An event stream read by a thread of its own (see [`pump`]) into a bounded channel. Dropping
/// it shuts the connection, which ends the thread's blocked read at once.
struct Pumped {
    chunks: Pin<Box<async_channel::Receiver<Vec<u8>>>>,
    _closer: StreamCloser,
}

impl StreamTrait for Pumped {
    type Item = Vec<u8>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        self.chunks.as_mut().poll_next(cx)
    }
}
