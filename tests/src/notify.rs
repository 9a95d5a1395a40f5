//! A stand-in for the service manager's end of `sd_notify(3)`: a unix datagram socket that
//! records every notification the daemon sends, with the time it arrived.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::enter::in_netns;
use crate::names;
use crate::netns::Netns;
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// How long one receive waits before the reader checks whether it should stop.
const RECEIVE_SLICE: Duration = Duration::from_millis(50);

/// One notification: the datagram's text and when it arrived.
#[derive(Clone, Debug)]
pub struct Notification {
    /// When it arrived.
    pub at: Instant,
    /// Its `KEY=VALUE` lines.
    pub text: String,
}

impl Notification {
    /// The value of `key` in it, if it has that line.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
    }

    /// Whether it has the line `line` (e.g. `READY=1`).
    #[must_use]
    pub fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }
}

/// The socket, bound until drop, and everything received on it so far.
#[derive(Debug)]
pub struct NotifySocket {
    value: String,
    received: Arc<Mutex<Vec<Notification>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    // Last: the socket file goes after the reader stopped.
    _dir: Option<TempDir>,
}

impl NotifySocket {
    /// A socket at a path in a directory of its own (what systemd does).
    #[must_use]
    pub fn at_path() -> Self {
        let dir = TempDir::new("sdn");
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", path.display()));
        Self::start(socket, path.to_string_lossy().into_owned(), Some(dir))
    }

    /// An abstract socket (`@name`) in `ns`'s network namespace, where abstract names live.
    #[must_use]
    pub fn abstract_in(ns: &Netns) -> Self {
        let name = names::name(names::next_id(), "sdn");
        let socket = in_netns(ns, || {
            let address = SocketAddr::from_abstract_name(name.as_bytes())
                .unwrap_or_else(|e| panic!("bad abstract name {name}: {e}"));
            UnixDatagram::bind_addr(&address)
                .unwrap_or_else(|e| panic!("cannot bind @{name} in {}: {e}", ns.name()))
        });
        Self::start(socket, format!("@{name}"), None)
    }

    fn start(socket: UnixDatagram, value: String, dir: Option<TempDir>) -> Self {
        socket
            .set_read_timeout(Some(RECEIVE_SLICE))
            .expect("a read timeout on the notify socket");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            thread::spawn(move || {
                let mut buffer = [0_u8; 4096];
                // Ends when the socket is dropped: `stop` is checked every RECEIVE_SLICE.
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buffer) {
                        let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                        received
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(Notification {
                                at: Instant::now(),
                                text,
                            });
                    }
                }
            })
        };
        Self {
            value,
            received,
            stop,
            reader: Some(reader),
            _dir: dir,
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Everything received so far, oldest first.
    #[must_use]
    pub fn received(&self) -> Vec<Notification> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits up to `timeout` for a notification after the first `seen` ones that has the
    /// line `line`; returns its index and it. Panics with everything received otherwise.
    #[must_use]
    pub fn wait_for(&self, line: &str, seen: usize, timeout: Duration) -> (usize, Notification) {
        let find = || {
            self.received()
                .into_iter()
                .enumerate()
                .skip(seen)
                .find(|(_, notification)| notification.has(line))
        };
        poll_until(timeout, || find().is_some());
        find().unwrap_or_else(|| {
            panic!(
                "no `{line}` notification (after the first {seen}) within {timeout:?}; \
                 received: {:#?}",
                self.received()
            )
        })
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
