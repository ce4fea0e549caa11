//! The loopback callback listener: a `std::net::TcpListener` on 127.0.0.1, localhost or ::1,
//! bound before the browser opens, served from a background thread. Request heads are bounded
//! in size and time, so a client that connects and sends nothing cannot block the callback.
//! Other paths get 404 and do not end the wait. Dropping the listener stops the thread and
//! frees the port.

use crate::listen::HEAD_TIMEOUT;
use crate::listen::{self, Head, Heads};
use mcp_oauth_core::RedirectPlan;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use url::Url;

/// What the listener (or the paste prompt) delivers to the flow.
pub type Event = crate::listen::ListenerEvent<std::sync::mpsc::Sender<Vec<u8>>>;

/// A running listener. Drop it to stop.
#[derive(Debug)]
pub struct Listener {
    redirect_uri: Url,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds the planned host and port (or any port, when the plan allows and the port is
    /// taken) and starts serving. Only loopback hosts are accepted.
    pub fn bind(plan: &RedirectPlan, events: Sender<Event>) -> io::Result<Listener> {
        let ip = listen::loopback_ip(&plan.host)?;
        let listener = match TcpListener::bind(SocketAddr::new(ip, plan.port)) {
            Ok(l) => l,
            Err(_) if plan.port != 0 && plan.any_port_fallback => TcpListener::bind(SocketAddr::new(ip, 0))?,
            Err(e) => return Err(e),
        };
        let port = listener.local_addr()?.port();
        let redirect_uri = plan.redirect_uri(port);
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (st, path, base) = (stop.clone(), plan.path.clone(), redirect_uri.clone());
        let thread = std::thread::Builder::new().name("mcp-oauth-callback".into()).spawn(move || {
            let heads: Arc<Heads<TcpStream>> = Arc::default();
            // Blocking accept; Drop wakes it with a connection of its own.
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) if st.load(Ordering::Relaxed) => break,
                    Ok((conn, _)) => {
                        let Ok(handle_copy) = conn.try_clone() else { continue };
                        let id = heads.admit(handle_copy, |c| {
                            let _ = c.shutdown(Shutdown::Both);
                        });
                        let (h, ev, p, b) = (heads.clone(), events.clone(), path.clone(), base.clone());
                        let spawned = std::thread::Builder::new().name("mcp-oauth-callback-conn".into()).spawn(move || {
                            let _ = handle(conn, &p, &b, &ev, || h.done(id));
                            h.done(id);
                        });
                        if spawned.is_err() {
                            heads.done(id);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
        Ok(Listener { redirect_uri, local, stop, thread: Some(thread) })
    }

    /// The exact redirect URI, with the real port.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(mut conn: TcpStream, path: &str, base: &Url, events: &Sender<Event>, head_read: impl FnOnce()) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    let started = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let url = loop {
        match listen::judge(&buf, path, base) {
            Head::Incomplete => {}
            Head::Respond(page) => return conn.write_all(&page),
            Head::Deliver(url) => break url,
        }
        let left = HEAD_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(()); // slowloris: give up on it, the wait goes on
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut chunk[..listen::read_size(buf.len(), 1024)])?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    head_read();
    let (tx, rx) = mpsc::channel();
    if events.send(Event::Callback { url, reply: tx }).is_err() {
        return Ok(());
    }
    let page = rx.recv_timeout(listen::ANSWER_TIMEOUT).unwrap_or_else(|_| listen::no_answer_page());
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(&page)?;
    conn.flush()
}
