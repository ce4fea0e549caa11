//! A deliberately hostile HTTP peer on 127.0.0.1: each path gets a scripted misbehaviour
//! (redirects elsewhere, insecure or foreign metadata, a body that drips forever, a gigantic
//! header, silence). Every request line it receives is recorded, so tests can show what a
//! client did not do (follow a redirect, contact an insecure endpoint).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the peer does with a request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answer with exactly these bytes, then close.
    Raw(Vec<u8>),
    /// Send this head, then one body byte every `every` until the client goes away.
    Drip {
        /// The response head (status line and headers, ending with an empty line).
        head: Vec<u8>,
        /// The delay between bytes.
        every: Duration,
    },
    /// Read the request and never answer (the connection stays open until the client leaves).
    Silent,
}

impl Behaviour {
    /// A complete response with this status, extra header lines (each ending in CRLF) and body.
    pub fn response(status: u16, headers: &str, body: &str) -> Behaviour {
        Behaviour::Raw(
            format!("HTTP/1.1 {status} X\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).into_bytes(),
        )
    }

    /// A JSON response.
    pub fn json(status: u16, body: &str) -> Behaviour {
        Behaviour::response(status, "content-type: application/json\r\n", body)
    }
}

type Script = dyn Fn(&str, &str) -> Behaviour + Send + Sync;

/// A running hostile peer. Dropping it stops accepting.
pub struct HostilePeer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// `METHOD target` of every request received, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl HostilePeer {
    /// Serves `script(origin, target)` for every request.
    pub fn start(script: impl Fn(&str, &str) -> Behaviour + Send + Sync + 'static) -> io::Result<HostilePeer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let origin = format!("http://127.0.0.1:{}", addr.port());
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let (st, sn) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (sc, sn, st, origin) = (script.clone(), sn.clone(), st.clone(), origin.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &origin, &*sc, &sn, &st);
                });
            }
        });
        Ok(HostilePeer { addr, stop, seen })
    }

    /// `http://127.0.0.1:port`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(mut conn: TcpStream, origin: &str, script: &Script, seen: &Mutex<Vec<String>>, stop: &AtomicBool) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or("").to_owned();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{method} {target}"));
    match script(origin, &target) {
        Behaviour::Raw(bytes) => conn.write_all(&bytes),
        Behaviour::Drip { head, every } => {
            conn.write_all(&head)?;
            while !stop.load(Ordering::Relaxed) {
                conn.write_all(b"x")?;
                std::thread::sleep(every);
            }
            Ok(())
        }
        Behaviour::Silent => {
            while !stop.load(Ordering::Relaxed) && conn.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
            Ok(())
        }
    }
}
