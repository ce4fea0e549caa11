//! The loopback callback listener on `async_std::net::TcpListener`: the same rules as the
//! blocking one (loopback hosts only, port 0 for any free port, bounded and time-limited heads,
//! 404 for other paths, `Host` checked), served by tasks instead of threads. [`AsyncListener::close`]
//! stops it and frees the port; dropping it does the same soon after.

use super::rt;
use crate::listen::{self, Head, Heads, HEAD_TIMEOUT};
use async_std::channel::{self, Sender};
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task::JoinHandle;
use mcp_oauth_core::RedirectPlan;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// What the listener (or the paste prompt) delivers to the flow.
pub type Event = crate::listen::ListenerEvent<async_std::channel::Sender<Vec<u8>>>;

/// A running listener.
#[derive(Debug)]
pub struct AsyncListener {
    redirect_uri: Url,
    local: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl AsyncListener {
    /// Binds the planned host and port (or any port, when the plan allows and the port is
    /// taken) and starts serving; callbacks arrive on `events`. Only loopback hosts are accepted.
    pub async fn bind(plan: &RedirectPlan, events: Sender<Event>) -> io::Result<AsyncListener> {
        let ip = listen::loopback_ip(&plan.host)?;
        let listener = match TcpListener::bind(SocketAddr::new(ip, plan.port)).await {
            Ok(l) => l,
            Err(_) if plan.port != 0 && plan.any_port_fallback => TcpListener::bind(SocketAddr::new(ip, 0)).await?,
            Err(e) => return Err(e),
        };
        let local = listener.local_addr()?;
        let redirect_uri = plan.redirect_uri(local.port());
        let (path, base) = (plan.path.clone(), redirect_uri.clone());
        let task = rt::spawn(async move {
            let heads: Arc<Heads<TcpStream>> = Arc::default();
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    rt::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let id = heads.admit(conn.clone(), |c| {
                    let _ = c.shutdown(Shutdown::Both);
                });
                let (h, ev, p, b) = (heads.clone(), events.clone(), path.clone(), base.clone());
                rt::spawn(async move {
                    let _ = handle(conn, &p, &b, &ev, || h.done(id)).await;
                    h.done(id);
                });
            }
        });
        Ok(AsyncListener { redirect_uri, local, task: Some(task) })
    }

    /// The exact redirect URI, with the real port.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting and frees the port (connections already delivered still get their page).
    pub async fn close(mut self) {
        if let Some(t) = self.task.take() {
            t.cancel().await;
        }
    }
}

impl Drop for AsyncListener {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            rt::spawn(async move {
                t.cancel().await;
            });
        }
    }
}

async fn handle(mut conn: TcpStream, path: &str, base: &Url, events: &Sender<Event>, head_read: impl FnOnce()) -> io::Result<()> {
    let started = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let url = loop {
        match listen::judge(&buf, path, base) {
            Head::Incomplete => {}
            Head::Respond(page) => return conn.write_all(&page).await,
            Head::Deliver(url) => break url,
        }
        let left = HEAD_TIMEOUT.saturating_sub(started.elapsed());
        let want = listen::read_size(buf.len(), 1024);
        // Slowloris: give up on it when the time is up; the wait goes on.
        let Ok(read) = rt::timeout(left, conn.read(&mut chunk[..want])).await else { return Ok(()) };
        let n = read?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    head_read();
    let (tx, rx) = channel::bounded(1);
    if events.send(Event::Callback { url, reply: tx }).await.is_err() {
        return Ok(());
    }
    let page = match rt::timeout(listen::ANSWER_TIMEOUT, rx.recv()).await {
        Ok(Ok(page)) => page,
        _ => listen::no_answer_page(),
    };
    let _ = rt::timeout(Duration::from_secs(5), conn.write_all(&page)).await;
    conn.flush().await
}
