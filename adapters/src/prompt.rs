//! The manual paste fallback: ask the user for the URL the browser landed on.

use std::io::{BufRead, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use url::Url;

/// Reads a pasted redirect URL. Runs off the flow's thread (a helper thread in the blocking
/// adapter, the blocking pool in the async one, so blocking reads are fine) while the loopback
/// listener may still answer first; implementations should return soon after `cancel` becomes
/// true.
pub trait Prompt: Send + Sync {
    /// Shows `authorization_url` and returns what the user pasted, or `None` if nobody can
    /// answer (no terminal) or the prompt was cancelled.
    fn read_redirect(&self, authorization_url: &Url, cancel: &AtomicBool) -> Option<String>;

    /// Whether someone can answer at all (a terminal is attached).
    fn available(&self) -> bool {
        true
    }
}

/// Reads the pasted URL from standard input, printing instructions to standard error.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdinPrompt;

/// One reader thread for the whole process, so a cancelled prompt leaves no blocked thread
/// per flow behind.
fn stdin_lines() -> &'static Mutex<Receiver<String>> {
    static LINES: OnceLock<Mutex<Receiver<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Mutex::new(rx)
    })
}

impl Prompt for StdinPrompt {
    fn read_redirect(&self, authorization_url: &Url, cancel: &AtomicBool) -> Option<String> {
        if !self.available() {
            return None;
        }
        eprintln!(
            "\nIf the browser did not return to this program, open this URL, log in, and paste the full address\n\
             the browser ends up on (it starts with http://127.0.0.1 or http://localhost):\n\n  {authorization_url}\n\nRedirect URL: "
        );
        let rx = stdin_lines().lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => return Some(line.trim().to_owned()),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn available(&self) -> bool {
        std::io::stdin().is_terminal()
    }
}

/// A prompt nobody answers (services, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPrompt;

impl Prompt for NoPrompt {
    fn read_redirect(&self, _: &Url, _: &AtomicBool) -> Option<String> {
        None
    }

    fn available(&self) -> bool {
        false
    }
}
