//! Keeps secrets out of what the HTTP stack logs.
//!
//! ureq-proto (0.7, under ureq 3) logs at TRACE, unconditionally, every byte of each request
//! head it writes and of each response it reads (target `ureq_proto::util`, 16 bytes a record,
//! as hex and as text): `authorization: Bearer …`, `dpop: …`, and token and registration
//! responses with their `access_token`, `refresh_token` and `client_secret`. It ignores
//! [`HeaderValue::is_sensitive`](http::HeaderValue::is_sensitive) and has no setting or feature
//! that turns the dump off. A library cannot filter another crate's records either: `log` has
//! one global logger and one global level, and its `max_level_*` features would silence TRACE
//! for the whole program.
//!
//! So the secrets never reach ureq in plain text:
//!
//! * Requests: the values of `Authorization`, `Proxy-Authorization` and `DPoP`, and the body of
//!   OAuth exchanges, are replaced with random placeholders before ureq sees the request.
//!   [`ScrubConnector`], the last link of the connector chain (above TLS), puts the real bytes
//!   back as they are written to the connection.
//! * Responses to OAuth exchanges: once ureq has parsed the head, the body bytes are XORed with
//!   a random keystream as they arrive from the connection, before ureq-proto reads (and logs)
//!   them, following the body's framing so chunk sizes stay readable;
//!   [`Scrubbed::unmask`] restores the body ureq returns. The request asks for
//!   `accept-encoding: identity`, so that body is exactly the bytes ureq read.
//!
//! The per-request state travels in a thread-local: ureq runs a request, and the adapters read
//! its body, on the calling thread. Both halves fail closed: a placeholder left in place reaches
//! the server as a wrong credential, and a mask that disagrees with the framing makes ureq
//! reject the response.

use http::header::TRANSFER_ENCODING;
use http::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, PROXY_AUTHORIZATION};
use mcp_oauth_core::http::{TransportFailure, TransportFailureKind};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Request headers whose values are credentials.
const SECRET_HEADERS: [HeaderName; 3] = [AUTHORIZATION, PROXY_AUTHORIZATION, HeaderName::from_static("dpop")];

/// Bodies larger than this are sent as they are: ureq writes a body of at most its output buffer
/// (128 KiB) in one go, so a placeholder this small is never split between two writes. OAuth
/// request bodies are a few hundred bytes.
const MAX_SWAPPED_BODY: usize = 16 * 1024;

/// Shorter bodies are sent as they are (a placeholder that short could occur by chance).
const MIN_SWAPPED_BODY: usize = 16;

/// Header placeholders are this long (the head has no length field, so any length will do).
const HEADER_PLACEHOLDER_LEN: usize = 32;

thread_local! {
    static CURRENT: RefCell<Option<Job>> = const { RefCell::new(None) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the request running on this thread hides from ureq.
struct Job {
    id: u64,
    /// (placeholder, real bytes), put back by the transport on the way out.
    swaps: Vec<(Vec<u8>, Vec<u8>)>,
    /// Set once the response head is known and its body must be masked.
    armed: Option<Armed>,
}

struct Armed {
    key: [u8; 32],
    framing: Framing,
    /// Taken by the first connection that sees it (the one carrying this response).
    claimed: bool,
}

/// How the response body is delimited (ureq-proto's `BodyReader::for_response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

/// The request on this thread has its secrets swapped out; dropping this ends that.
pub(crate) struct Scrubbed {
    id: u64,
    /// The keystream key of the response body, for an OAuth exchange.
    key: Option<[u8; 32]>,
}

/// Swaps the credentials of `req` for placeholders, and for an OAuth `exchange` also its body,
/// and prepares to mask the response body. The swap lasts until the returned guard drops.
pub(crate) fn scrub(req: &mut http::Request<Vec<u8>>, exchange: bool) -> Result<Scrubbed, TransportFailure> {
    let mut swaps = Vec::new();
    // The credential headers, and any other header marked sensitive (the MCP clients mark the
    // headers a configuration adds, such as an API key).
    let mut names: Vec<HeaderName> = SECRET_HEADERS.to_vec();
    for (name, value) in req.headers() {
        if value.is_sensitive() && !names.contains(name) {
            names.push(name.clone());
        }
    }
    // The query (an API key in the server URL, as some hosted servers use): the request line
    // carries a placeholder of the same length.
    if let Some(query) = req.uri().query().filter(|q| !q.is_empty()).map(str::to_owned) {
        // Like a header, the request line has no length to keep: a placeholder long enough never
        // to occur by chance, whatever the query's length.
        let placeholder = placeholder(HEADER_PLACEHOLDER_LEN)?;
        let text = String::from_utf8(placeholder.clone()).map_err(|_| no_randomness())?;
        let mut parts = req.uri().clone().into_parts();
        let path = parts.path_and_query.as_ref().map(|p| p.path().to_owned()).unwrap_or_else(|| "/".into());
        parts.path_and_query = Some(format!("{path}?{text}").parse().map_err(|_| no_randomness())?);
        *req.uri_mut() = http::Uri::from_parts(parts).map_err(|_| no_randomness())?;
        swaps.push((placeholder, query.into_bytes()));
    }
    for name in names {
        let values: Vec<HeaderValue> = req.headers().get_all(&name).iter().cloned().collect();
        if values.is_empty() {
            continue;
        }
        req.headers_mut().remove(&name);
        for value in values {
            let placeholder = placeholder(HEADER_PLACEHOLDER_LEN)?;
            let mut v = HeaderValue::from_bytes(&placeholder).map_err(|_| no_randomness())?;
            v.set_sensitive(true);
            req.headers_mut().append(&name, v);
            swaps.push((placeholder, value.as_bytes().to_vec()));
        }
    }
    let mut key = None;
    if exchange {
        let len = req.body().len();
        if (MIN_SWAPPED_BODY..=MAX_SWAPPED_BODY).contains(&len) {
            let placeholder = placeholder(len)?;
            let body = std::mem::replace(req.body_mut(), placeholder.clone());
            swaps.push((placeholder, body));
        }
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|_| no_randomness())?;
        key = Some(k);
        req.headers_mut().insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    CURRENT.with(|c| *c.borrow_mut() = Some(Job { id, swaps, armed: None }));
    Ok(Scrubbed { id, key })
}

impl Scrubbed {
    /// ureq parsed the response head: mask its body from here on (OAuth exchanges only).
    ///
    /// A server that compresses anyway gets an error: ureq decodes gzip (and brotli) itself, from
    /// the masked bytes, which fails; it also strips `content-encoding` and `content-length`
    /// then, so [`framing`] says "until close", which masks at least as much. Codings ureq
    /// passes through are refused here, before the body is read.
    pub(crate) fn arm(&self, method: &http::Method, head: &http::response::Parts) -> Result<(), TransportFailure> {
        let Some(key) = self.key else { return Ok(()) };
        let framing = framing(method, head);
        let encoded = head.headers.get_all(CONTENT_ENCODING).iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded && framing != Framing::None {
            return Err(TransportFailure {
                kind: TransportFailureKind::Other,
                message: "the server compressed a response it was asked to send uncompressed".into(),
            });
        }
        CURRENT.with(|c| {
            if let Some(job) = c.borrow_mut().as_mut().filter(|j| j.id == self.id) {
                job.armed = Some(Armed { key, framing, claimed: false });
            }
        });
        Ok(())
    }

    /// Restores the response body ureq returned.
    pub(crate) fn unmask(&self, body: &mut [u8]) {
        if let Some(key) = self.key {
            Keystream::new(key).apply(body);
        }
    }
}

impl Drop for Scrubbed {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().is_some_and(|j| j.id == self.id) {
                *c = None;
            }
        });
    }
}

fn no_randomness() -> TransportFailure {
    TransportFailure { kind: TransportFailureKind::Other, message: "the system's random number generator failed".into() }
}

/// `len` random letters and digits: a valid header value, unlikely anywhere else in a request.
fn placeholder(len: usize) -> Result<Vec<u8>, TransportFailure> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|_| no_randomness())?;
    Ok(bytes.into_iter().map(|b| ALPHABET[b as usize % ALPHABET.len()]).collect())
}

/// The body framing ureq-proto uses for this response (its `BodyReader::for_response`).
fn framing(method: &http::Method, head: &http::response::Parts) -> Framing {
    let status = head.status.as_u16();
    let body_allowed = !(method == http::Method::HEAD
        || (head.status.is_success() && method == http::Method::CONNECT)
        || head.status.is_informational()
        || matches!(status, 204 | 304));
    let has_token = |name: &HeaderName, token: &str| {
        head.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let defined = if has_token(&TRANSFER_ENCODING, "chunked") && head.version != http::Version::HTTP_10 {
        Some(Framing::Chunked)
    } else {
        // ureq rejected the head if the lengths disagree or do not parse.
        let len = head.headers.get_all(CONTENT_LENGTH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).next();
        len.and_then(|l| l.trim_matches([' ', '\t']).parse().ok()).map(Framing::Length)
    };
    match defined {
        _ if !body_allowed => Framing::None,
        Some(f) => f,
        None => Framing::Close,
    }
}

/// SHA-256 in counter mode: the mask of a response body.
struct Keystream {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl Keystream {
    fn new(key: [u8; 32]) -> Self {
        Keystream { key, counter: 0, block: [0; 32], used: 32 }
    }

    fn apply(&mut self, data: &mut [u8]) {
        for b in data {
            if self.used == self.block.len() {
                self.block = Sha256::new().chain_update(self.key).chain_update(self.counter.to_le_bytes()).finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *b ^= self.block[self.used];
            self.used += 1;
        }
    }
}

/// Masks the body bytes of one response as they arrive, in order, leaving the chunked framing
/// readable. It follows ureq-proto's dechunker; where the bytes break the framing it masks
/// everything after, so ureq fails on them rather than reading (and logging) anything.
struct BodyMask {
    keystream: Keystream,
    state: MaskState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaskState {
    /// This many body bytes left.
    Length(u64),
    /// Body bytes until the connection closes.
    Close,
    /// In a chunk-size line: the line so far, and whether the last byte was `\r`.
    Size { line: [u8; MAX_SIZE_LINE], len: usize, cr: bool },
    /// This many chunk bytes left.
    Chunk(usize),
    /// The CRLF after a chunk: whether its `\r` was seen.
    ChunkEnd { cr: bool },
    /// After the last chunk: a trailer line or the final CRLF (line length so far, last byte `\r`).
    Trailer { len: usize, cr: bool },
    /// The body is over.
    Done,
    /// The framing broke: mask everything.
    All,
}

/// ureq-proto refuses chunk-size lines longer than this.
const MAX_SIZE_LINE: usize = 20;

const SIZE_LINE: MaskState = MaskState::Size { line: [0; MAX_SIZE_LINE], len: 0, cr: false };

impl BodyMask {
    fn new(key: [u8; 32], framing: Framing) -> Self {
        let state = match framing {
            Framing::None | Framing::Length(0) => MaskState::Done,
            Framing::Length(n) => MaskState::Length(n),
            Framing::Close => MaskState::Close,
            Framing::Chunked => SIZE_LINE,
        };
        BodyMask { keystream: Keystream::new(key), state }
    }

    /// Masks the body bytes in `input`, the next bytes of the response.
    fn apply(&mut self, mut input: &mut [u8]) {
        while !input.is_empty() {
            let taken = match &mut self.state {
                MaskState::Done => return,
                MaskState::Close | MaskState::All => {
                    self.keystream.apply(input);
                    return;
                }
                MaskState::Length(n) => {
                    let k = (*n).min(input.len() as u64) as usize;
                    *n -= k as u64;
                    if *n == 0 {
                        self.state = MaskState::Done;
                    }
                    self.keystream.apply(&mut input[..k]);
                    k
                }
                MaskState::Chunk(n) => {
                    let k = (*n).min(input.len());
                    *n -= k;
                    if *n == 0 {
                        self.state = MaskState::ChunkEnd { cr: false };
                    }
                    self.keystream.apply(&mut input[..k]);
                    k
                }
                state => {
                    *state = framing_byte(*state, input[0]);
                    1
                }
            };
            input = &mut input[taken..];
        }
    }
}

/// The state after one byte of chunked framing: a size line, a chunk's CRLF, a trailer line.
fn framing_byte(state: MaskState, b: u8) -> MaskState {
    match state {
        MaskState::Size { line, len, cr: true } => match (b, chunk_size(&line[..len])) {
            (b'\n', Some(0)) => MaskState::Trailer { len: 0, cr: false },
            (b'\n', Some(n)) => MaskState::Chunk(n),
            _ => MaskState::All,
        },
        MaskState::Size { line, len, cr: false } => match b {
            b'\r' => MaskState::Size { line, len, cr: true },
            _ if len == MAX_SIZE_LINE => MaskState::All,
            _ => {
                let mut line = line;
                line[len] = b;
                MaskState::Size { line, len: len + 1, cr: false }
            }
        },
        MaskState::ChunkEnd { cr: false } if b == b'\r' => MaskState::ChunkEnd { cr: true },
        MaskState::ChunkEnd { cr: true } if b == b'\n' => SIZE_LINE,
        MaskState::ChunkEnd { .. } => MaskState::All,
        MaskState::Trailer { len, cr: true } => match b {
            b'\n' if len == 0 => MaskState::Done,
            b'\n' => MaskState::Trailer { len: 0, cr: false },
            _ => MaskState::All,
        },
        MaskState::Trailer { len, cr: false } => match b {
            b'\r' => MaskState::Trailer { len, cr: true },
            _ => MaskState::Trailer { len: len + 1, cr: false },
        },
        other => other,
    }
}

/// A chunk-size line's size, parsed as ureq-proto does: up to the first `;`, trimmed, hex.
fn chunk_size(line: &[u8]) -> Option<usize> {
    let end = line.iter().position(|b| *b == b';').unwrap_or(line.len());
    usize::from_str_radix(std::str::from_utf8(&line[..end]).ok()?.trim(), 16).ok()
}

/// The last link of the connector chain: wraps every connection in a [`ScrubTransport`].
#[derive(Debug)]
pub(crate) struct ScrubConnector;

impl<In: Transport> Connector<In> for ScrubConnector {
    type Out = ScrubTransport;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<ScrubTransport>, ureq::Error> {
        let (input, output) = (details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(chained.map(|inner| ScrubTransport { inner: inner.boxed(), buf: Buf::new(input, output), mask: None }))
    }
}

/// A connection (plain or TLS) seen through its own buffers: what ureq writes has its
/// placeholders swapped back before it goes out; what arrives has its body masked (for the
/// armed response) before ureq reads it.
#[derive(Debug)]
pub(crate) struct ScrubTransport {
    inner: Box<dyn Transport>,
    buf: Buf,
    /// The id of the response being masked, and its mask.
    mask: Option<(u64, BodyMask)>,
}

impl std::fmt::Debug for BodyMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyMask").finish_non_exhaustive()
    }
}

impl ScrubTransport {
    /// Follows this thread's job: starts masking when a response was armed and no other
    /// connection took it, stops when the job is over; then masks what arrived since.
    fn sync_mask(&mut self) {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            let job = c.as_mut();
            let mine = matches!((&self.mask, &job), (Some((id, _)), Some(j)) if *id == j.id);
            if !mine {
                self.mask = None;
                if let Some(Job { id, armed: Some(armed), .. }) = job {
                    if !armed.claimed {
                        armed.claimed = true;
                        self.mask = Some((*id, BodyMask::new(armed.key, armed.framing)));
                        self.buf.masked = self.buf.start;
                    }
                }
            }
        });
        if let Some((_, mask)) = &mut self.mask {
            mask.apply(&mut self.buf.input[self.buf.masked..self.buf.end]);
        }
        self.buf.masked = self.buf.end;
    }
}

impl Transport for ScrubTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.sync_mask();
        &mut self.buf
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let out = &self.buf.output[..amount];
        let swapped = CURRENT.with(|c| c.borrow().as_ref().and_then(|j| swap(out, &j.swaps)));
        let mut rest = swapped.as_deref().unwrap_or(out);
        while !rest.is_empty() {
            let dst = self.inner.buffers().output();
            let n = dst.len().min(rest.len());
            dst[..n].copy_from_slice(&rest[..n]);
            self.inner.transmit_output(n, timeout)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if self.inner.buffers().input().is_empty() && !self.inner.await_input(timeout)? {
            return Ok(false);
        }
        let src = self.inner.buffers().input();
        let dst = self.buf.input_append_buf();
        let n = dst.len().min(src.len());
        dst[..n].copy_from_slice(&src[..n]);
        self.buf.input_appended(n);
        self.inner.buffers().input_consume(n);
        self.sync_mask();
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Leftover bytes mean the connection is out of step: not reusable.
        self.buf.start == self.buf.end && self.inner.buffers().input().is_empty() && self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// `out` with every placeholder replaced by its real bytes, or `None` if it holds none.
fn swap(out: &[u8], swaps: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    let (mut result, mut copied, mut i) = (Vec::new(), 0, 0);
    while i < out.len() {
        match swaps.iter().find(|(placeholder, _)| out[i..].starts_with(placeholder)) {
            Some((placeholder, real)) => {
                result.extend_from_slice(&out[copied..i]);
                result.extend_from_slice(real);
                i += placeholder.len();
                copied = i;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return None;
    }
    result.extend_from_slice(&out[copied..]);
    Some(result)
}

/// The buffers ureq reads and writes ([`LazyBuffers`](ureq::unversioned::transport::LazyBuffers)
/// with a mutable input, so arrived bytes can be masked in place).
#[derive(Debug)]
struct Buf {
    input: Vec<u8>,
    /// Unconsumed input is `input[start..end]`; `input[masked..end]` has not been through the mask.
    start: usize,
    end: usize,
    masked: usize,
    output: Vec<u8>,
    input_size: usize,
    output_size: usize,
    progress: bool,
}

/// ureq reads a request body into the free input space: at least this much.
const MIN_TMP: usize = 10 * 1024;

impl Buf {
    fn new(input_size: usize, output_size: usize) -> Self {
        Buf { input: Vec::new(), start: 0, end: 0, masked: 0, output: Vec::new(), input_size, output_size, progress: false }
    }

    /// Allocates both buffers on first use, zeroed by the allocator (`vec!`), so pages no byte
    /// reaches are never touched.
    fn allocate(&mut self) {
        if self.output.is_empty() {
            self.output = vec![0; self.output_size];
        }
        if self.input.is_empty() {
            self.input = vec![0; self.input_size];
        }
    }

    /// Moves the unconsumed input to the front.
    fn shift(&mut self) {
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.masked = self.masked.saturating_sub(self.start);
            self.start = 0;
        }
    }
}

impl Buffers for Buf {
    fn output(&mut self) -> &mut [u8] {
        self.allocate();
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.allocate();
        self.shift();
        &mut self.input[self.end..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.end += amount;
        assert!(self.end <= self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.start += amount;
        assert!(self.start <= self.end);
        if self.start == self.end {
            (self.start, self.end, self.masked) = (0, 0, 0);
        }
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.allocate();
        self.shift();
        if self.input.len() - self.end < MIN_TMP {
            self.input.resize(self.end + MIN_TMP, 0);
        }
        (&mut self.input[self.end..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.start < self.end && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{OAuthExchange, Ureq};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;
    use std::time::Duration;

    const KEY: [u8; 32] = [7; 32];

    /// Masks `wire` fed in pieces cut at `cuts`; returns the result.
    fn masked(framing: Framing, wire: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = wire.to_vec();
        let mut mask = BodyMask::new(KEY, framing);
        let mut from = 0;
        for &to in cuts.iter().chain([&wire.len()]) {
            mask.apply(&mut out[from..to]);
            from = to;
        }
        out
    }

    const CHUNKED: &[u8] = b"5;ext=1\r\nhello\r\n 1B \r\n{\"access_token\":\"secret-1\"}\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";

    #[test]
    fn chunked_bodies_are_masked_and_their_framing_is_not_wherever_the_reads_split() {
        let whole = masked(Framing::Chunked, CHUNKED, &[]);
        for cut in 0..=CHUNKED.len() {
            assert_eq!(masked(Framing::Chunked, CHUNKED, &[cut]), whole, "cut at {cut}");
        }
        assert_eq!(masked(Framing::Chunked, CHUNKED, &(0..CHUNKED.len()).collect::<Vec<_>>()), whole, "one byte at a time");
        // The framing is as it was; the data is not; the rest (the next response) is untouched.
        let text = String::from_utf8_lossy(&whole);
        assert!(text.starts_with("5;ext=1\r\n") && text.contains("\r\n 1B \r\n") && text.ends_with("\r\n0\r\nx-trailer: 1\r\n\r\nNEXT"));
        assert!(!text.contains("hello") && !text.contains("secret-1"));
        // Unmasking what ureq returns (the data, dechunked) gives the body back.
        let mut data = [&whole[9..14], &whole[22..49]].concat();
        Keystream::new(KEY).apply(&mut data);
        assert_eq!(data, b"hello{\"access_token\":\"secret-1\"}");
    }

    #[test]
    fn length_and_close_delimited_bodies_are_masked_to_their_end() {
        let wire = b"{\"access_token\":\"secret-1\"}NEXT";
        let m = masked(Framing::Length(27), wire, &[3, 20]);
        assert!(m.ends_with(b"NEXT") && !String::from_utf8_lossy(&m).contains("secret"));
        assert!(masked(Framing::Close, wire, &[5]).iter().zip(wire).filter(|(a, b)| a == b).count() < 4);
        assert_eq!(masked(Framing::None, wire, &[5]), wire);
    }

    #[test]
    fn broken_chunk_framing_masks_everything_after() {
        for wire in
            [&b"zz\r\nsecret-1secret-1"[..], b"5\r\nhelloXXsecret-1secret-1", b"5\rxsecret-1", b"0000000000000000000000005\r\nsecret-1"]
        {
            assert!(
                !String::from_utf8_lossy(&masked(Framing::Chunked, wire, &[])).contains("secret-1"),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn sensitive_headers_and_the_query_are_swapped_out() {
        let mut v = HeaderValue::from_static("key-0123456789abcdef");
        v.set_sensitive(true);
        let mut req = http::Request::post("https://mcp.example.com/mcp?api_key=0123456789abcdef0123")
            .header("x-api-key", v)
            .header("x-plain", "visible")
            .body(b"{}".to_vec())
            .unwrap();
        let _s = scrub(&mut req, false).unwrap();
        assert_eq!(req.uri().path(), "/mcp");
        assert!(!req.uri().to_string().contains("0123456789abcdef"), "{}", req.uri());
        assert_eq!(req.uri().query().unwrap().len(), HEADER_PLACEHOLDER_LEN);
        assert_ne!(req.headers()["x-api-key"], "key-0123456789abcdef");
        assert_eq!(req.headers()["x-plain"], "visible");
        let line = format!(
            "POST {} HTTP/1.1\r\nx-api-key: {}\r\n",
            req.uri().path_and_query().unwrap(),
            req.headers()["x-api-key"].to_str().unwrap()
        );
        let back = CURRENT.with(|c| swap(line.as_bytes(), &c.borrow().as_ref().unwrap().swaps)).unwrap();
        assert_eq!(
            String::from_utf8(back).unwrap(),
            "POST /mcp?api_key=0123456789abcdef0123 HTTP/1.1\r\nx-api-key: key-0123456789abcdef\r\n"
        );
    }

    #[test]
    fn placeholders_are_swapped_back_wherever_they_are() {
        let swaps = vec![(b"PLACEHOLDER1".to_vec(), b"Bearer real".to_vec()), (b"PLACEHOLDER2".to_vec(), b"x".to_vec())];
        assert_eq!(swap(b"a: PLACEHOLDER1\r\nb: PLACEHOLDER2\r\n", &swaps).unwrap(), b"a: Bearer real\r\nb: x\r\n");
        assert_eq!(swap(b"PLACEHOLDER1", &swaps).unwrap(), b"Bearer real");
        assert_eq!(swap(b"nothing here", &swaps), None);
    }

    /// Every record of this test binary: (thread, target, text).
    static RECORDS: Mutex<Vec<(std::thread::ThreadId, String, String)>> = Mutex::new(Vec::new());

    struct Recorder;

    impl log::Log for Recorder {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, r: &log::Record) {
            let entry = (std::thread::current().id(), r.target().to_owned(), r.args().to_string());
            RECORDS.lock().unwrap().push(entry);
        }
        fn flush(&self) {}
    }

    /// The bytes ureq-proto dumped on this thread (rows of 16: hex groups, then text).
    fn dumped_here() -> String {
        let me = std::thread::current().id();
        let mut bytes = Vec::new();
        for (_, _, text) in RECORDS.lock().unwrap().iter().filter(|(t, target, _)| *t == me && target == "ureq_proto::util") {
            let hex: String = text.get(..40).unwrap_or("").split(' ').collect();
            for pair in hex.as_bytes().chunks(2).take_while(|p| *p != b"--") {
                bytes.extend(std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A server on 127.0.0.1 that answers the requests of one keep-alive connection with
    /// `responses`, in order, and returns what it received.
    fn serve(responses: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut received = Vec::new();
            for response in responses {
                // One request: the head, then content-length bytes.
                let start = received.len();
                let mut buf = [0u8; 4096];
                loop {
                    let got = &received[start..];
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                        let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                    let n = conn.read(&mut buf).unwrap();
                    assert!(n > 0, "client closed early");
                    received.extend_from_slice(&buf[..n]);
                }
                conn.write_all(&response).unwrap();
            }
            received
        });
        (origin, server)
    }

    fn exchange(origin: &str, body: &str) -> http::Request<Vec<u8>> {
        let mut req = http::Request::post(format!("{origin}/token"))
            .header("authorization", "Basic c3ZjOnRoZS1jbGllbnQtc2VjcmV0")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.as_bytes().to_vec())
            .unwrap();
        req.extensions_mut().insert(OAuthExchange);
        req
    }

    #[test]
    fn credentials_reach_the_server_and_the_caller_but_not_the_log() {
        let _ = log::set_logger(&Recorder);
        log::set_max_level(log::LevelFilter::Trace);
        let token = r#"{"access_token":"at-only-for-the-caller","refresh_token":"rt-only-for-the-caller"}"#;
        let chunked = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\n{}\r\n{:x};x=y\r\n{}\r\n0\r\n\r\n",
            &token[..16],
            token.len() - 16,
            &token[16..]
        );
        let sized = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{token}", token.len());
        let mcp = "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"result\":\"ok\"}";
        let close = format!("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n{token}");
        // One connection, reused: an exchange (chunked), an MCP request (not masked), an
        // exchange (sized), and one whose body ends with the connection.
        let (origin, server) = serve(vec![chunked.into(), mcp.into(), sized.into(), close.into()]);
        let http = Ureq::new(Duration::from_secs(10));
        let form = "grant_type=refresh_token&refresh_token=rt-the-one-presented";
        let resp = http.send(exchange(&origin, form), 1 << 16).unwrap();
        assert_eq!(resp.body(), token.as_bytes());
        let mut req = http::Request::post(format!("{origin}/mcp")).body(b"{\"method\":\"tools/list\"}".to_vec()).unwrap();
        req.headers_mut().insert("authorization", "Bearer at-the-one-presented".parse().unwrap());
        req.headers_mut().insert("dpop", "eyJ.the-proof.sig".parse().unwrap());
        assert_eq!(http.send(req, 1 << 16).unwrap().body(), b"{\"result\":\"ok\"}");
        assert_eq!(http.send(exchange(&origin, form), 1 << 16).unwrap().body(), token.as_bytes());
        let resp = http.send(exchange(&origin, form), 1 << 16).unwrap();
        assert_eq!((resp.status().as_u16(), resp.body().as_slice()), (400, token.as_bytes()));
        let received = String::from_utf8(server.join().unwrap()).unwrap();
        // The server got the real credentials, once per request.
        assert_eq!(received.matches("authorization: Basic c3ZjOnRoZS1jbGllbnQtc2VjcmV0\r\n").count(), 3, "{received}");
        assert_eq!(received.matches(form).count(), 3);
        assert!(received.contains("authorization: Bearer at-the-one-presented\r\ndpop: eyJ.the-proof.sig\r\n"));
        assert!(received.contains("accept-encoding: identity"));
        // ureq dumped the exchanges, without a credential.
        let dumped = dumped_here();
        assert!(dumped.contains("POST /token HTTP/1.1") && dumped.contains("transfer-encoding: chunked"), "{dumped}");
        assert!(dumped.contains("{\"result\":\"ok\"}"), "an MCP response is not masked");
        for secret in ["c3ZjOnRoZS1jbGllbnQtc2VjcmV0", "rt-the-one-presented", "at-the-one-presented", "the-proof", "only-for-the-caller"] {
            assert!(!dumped.contains(secret), "{secret} in {dumped}");
        }
    }

    #[test]
    fn a_compressed_exchange_response_is_refused() {
        // ureq decodes gzip itself (and strips the headers that say so): the masked bytes fail
        // to decode. Other codings it passes through are refused before reading.
        for (coding, expected) in [("gzip", "gzip"), ("deflate", "compressed")] {
            let response = format!("HTTP/1.1 200 OK\r\ncontent-encoding: {coding}\r\ncontent-length: 4\r\n\r\nxxxx");
            let (origin, server) = serve(vec![response.into_bytes()]);
            let err = Ureq::new(Duration::from_secs(10)).send(exchange(&origin, "grant_type=client_credentials"), 1 << 16).unwrap_err();
            assert!(err.message.contains(expected), "{err:?}");
            server.join().unwrap();
        }
    }
}
