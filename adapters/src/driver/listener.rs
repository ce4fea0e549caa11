//! The loopback callback listener, on any [`Runtime`]: bound to 127.0.0.1, localhost or ::1
//! only (port 0 for any free port) before the browser opens, served by a task of its own.
//! Request heads are bounded in size and time, and at most [`MAX_CONNECTIONS`] wait at once
//! (the oldest is evicted), so connections that send nothing or junk cannot keep the browser's
//! callback out. Other paths get 404 and do not end the wait. Which request is the callback is
//! decided by [`listen::judge`]; whether it carries the login's `state`, by core.
//!
//! [`Listener::close`] stops it and frees the port; dropping it stops it soon after. Stopping
//! is a signal the accept loop races with its accept, so it needs no connection of its own (a
//! process out of file descriptors still stops it).
//!
//! [`MAX_CONNECTIONS`]: crate::listen::MAX_CONNECTIONS

use super::{timeout, Runtime};
use crate::listen::{self, Event, Head, Heads, HEAD_TIMEOUT};
use async_channel::{Receiver, Sender};
use mcp_oauth_core::RedirectPlan;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// How long writing a page to the browser may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running listener.
pub(crate) struct Listener<R: Runtime> {
    rt: R,
    redirect_uri: Url,
    /// Dropped to stop the accept loop.
    stop: Option<Sender<()>>,
    task: Option<R::Task>,
}

impl<R: Runtime> Listener<R> {
    /// Binds the planned host and port (or any port, when the plan allows and the port is
    /// taken) and starts serving; callbacks arrive on `events`.
    pub(crate) async fn bind(rt: &R, plan: &RedirectPlan, events: Sender<Event>) -> io::Result<Self> {
        let ip = listen::loopback_ip(&plan.host)?;
        let listener = match rt.bind(SocketAddr::new(ip, plan.port)).await {
            Ok(l) => l,
            Err(_) if plan.port != 0 && plan.any_port_fallback => rt.bind(SocketAddr::new(ip, 0)).await?,
            Err(e) => return Err(e),
        };
        let local = rt.local_addr(&listener)?;
        let redirect_uri = plan.redirect_uri(local.port());
        let (stop, stopped) = async_channel::bounded(1);
        let serve = accept_loop(rt.clone(), listener, stopped, plan.path.clone(), redirect_uri.clone(), events);
        let task = rt.spawn("mcp-oauth-callback", serve)?;
        Ok(Listener { rt: rt.clone(), redirect_uri, stop: Some(stop), task: Some(task) })
    }

    /// The exact redirect URI, with the real port.
    pub(crate) fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Stops accepting and frees the port before returning (a connection already delivered
    /// still gets its page).
    pub(crate) async fn close(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            self.rt.join(task).await;
        }
    }
}

// Dropping a listener that was not closed (the flow's future was dropped) drops `stop`: the
// accept loop ends by itself, and frees the port, without anyone waiting for it here.

async fn accept_loop<R: Runtime>(rt: R, listener: R::Listener, stopped: Receiver<()>, path: String, base: Url, events: Sender<Event>) {
    let heads: Arc<Heads<Box<dyn Fn() + Send + Sync>>> = Arc::default();
    loop {
        let accepted = futures_lite::future::or(async { Some(rt.accept(&listener).await) }, async {
            let _ = stopped.recv().await;
            None
        });
        let conn = match accepted.await {
            None => break,
            Some(Ok(conn)) => conn,
            Some(Err(_)) => {
                rt.sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(closer) = rt.closer(&conn) else { continue };
        let id = heads.admit(closer, |close| close());
        let (h, ev, p, b, r) = (heads.clone(), events.clone(), path.clone(), base.clone(), rt.clone());
        let spawned = rt.spawn("mcp-oauth-callback-conn", async move {
            let _ = handle(&r, conn, &p, &b, &ev, || h.done(id)).await;
            h.done(id);
        });
        if spawned.is_err() {
            heads.done(id);
        }
    }
}

async fn handle<R: Runtime>(
    rt: &R,
    mut conn: R::Conn,
    path: &str,
    base: &Url,
    events: &Sender<Event>,
    head_read: impl FnOnce(),
) -> io::Result<()> {
    let started = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let url = loop {
        match listen::judge(&buf, path, base) {
            Head::Incomplete => {}
            Head::Respond(page) => return rt.write_all(&mut conn, &page, WRITE_TIMEOUT).await,
            Head::Deliver(url) => break url,
        }
        let left = HEAD_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(()); // slowloris: give up on it, the wait goes on
        }
        let want = listen::read_size(buf.len(), chunk.len());
        let n = match rt.read(&mut conn, &mut chunk[..want], left).await {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(()),
            read => read?,
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    head_read();
    let (tx, rx) = async_channel::bounded(1);
    if events.send(Event::Callback { url, reply: tx }).await.is_err() {
        return Ok(());
    }
    let page = match timeout(rt, listen::ANSWER_TIMEOUT, rx.recv()).await {
        Some(Ok(page)) => page,
        _ => listen::no_answer_page(),
    };
    rt.write_all(&mut conn, &page, WRITE_TIMEOUT).await
}
