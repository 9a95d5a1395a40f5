//! The service manager's notification protocol (`sd_notify(3)`), spoken directly: one
//! datagram of `KEY=VALUE` lines to the unix socket named by `NOTIFY_SOCKET`, no libsystemd.
//! Under systemd (`Type=notify`) it says when the daemon is ready, reloading and stopping,
//! what it is doing (`STATUS=`), and pings the watchdog. Without `NOTIFY_SOCKET` every call
//! does nothing, so the daemon behaves the same everywhere else.

use std::{
    ffi::OsStr,
    io,
    os::{
        linux::net::SocketAddrExt as _,
        unix::{
            ffi::OsStrExt as _,
            net::{SocketAddr, UnixDatagram},
        },
    },
    time::Duration,
};

use log::{debug, warn};

/// The variable that names the socket (a path, or `@name` for an abstract socket).
pub(crate) const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The variable that asks for watchdog pings, in microseconds between deadlines.
pub(crate) const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The variable that names the process the watchdog is meant for.
pub(crate) const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// The service manager's socket, when there is one.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for; one that does nothing when it is unset. A
    /// value that cannot be used is logged once and then ignored: the daemon runs anyway.
    #[must_use]
    pub(crate) fn from_env() -> Self {
        let Some(name) = std::env::var_os(NOTIFY_SOCKET) else {
            return Self::default();
        };
        match open(name.as_encoded_bytes()) {
            Ok(socket) => Self {
                socket: Some(socket),
            },
            Err(error) => {
                warn!(
                    "{NOTIFY_SOCKET}={}: {error}; not notifying the service manager",
                    name.to_string_lossy()
                );
                Self::default()
            }
        }
    }

    /// Whether a service manager listens.
    #[must_use]
    pub(crate) fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Start-up or a reload is done: `READY=1` and `status`.
    pub(crate) fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// A reload begins; [`Notifier::ready`] ends it. `MONOTONIC_USEC` lets systemd (253 and
    /// later, `Type=notify-reload`) tell this reload from an earlier one.
    pub(crate) fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            monotonic_usec()
        ));
    }

    /// Shutdown begins.
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: detaching");
    }

    /// What the daemon does now, e.g. after the port maps changed.
    pub(crate) fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    /// The main loop is alive.
    pub(crate) fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    fn send(&self, state: &str) {
        let Some((socket, address)) = &self.socket else {
            return;
        };
        match socket.send_to_addr(state.as_bytes(), address) {
            Ok(_) => debug!("notified the service manager: {}", state.replace('\n', " ")),
            Err(error) => warn!(
                "notifying the service manager ({}) failed: {error}",
                state.lines().next().unwrap_or_default()
            ),
        }
    }
}

/// The watchdog's clock: ticks every [`watchdog_interval`], or never when there is no
/// watchdog (or no service manager to ping).
#[derive(Debug)]
pub(crate) struct Watchdog {
    interval: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// The clock for `notifier`; the first tick is at once.
    #[must_use]
    pub(crate) fn new(notifier: &Notifier) -> Self {
        let interval = watchdog_interval()
            .filter(|_| notifier.is_enabled())
            .map(|period| {
                let mut interval = tokio::time::interval(period);
                // A stalled loop pings once when it wakes, not a burst for every tick missed.
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval
            });
        Self { interval }
    }

    /// Completes at the next tick; never, without a watchdog.
    pub(crate) async fn tick(&mut self) {
        match self.interval.as_mut() {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, when it is set and meant for
/// this process (`WATCHDOG_PID` unset or ours), as `sd_watchdog_enabled(3)` has it.
#[must_use]
pub(crate) fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var(WATCHDOG_USEC).ok().as_deref(),
        std::env::var(WATCHDOG_PID).ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&usec| usec > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own)
    {
        return None;
    }
    Some(Duration::from_micros(usec) / 2)
}

/// An unbound datagram socket and the manager's address: a path, or `@name` for an
/// abstract socket.
fn open(name: &[u8]) -> io::Result<(UnixDatagram, SocketAddr)> {
    let address = match name {
        [] => return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty")),
        [b'@', abstract_name @ ..] => SocketAddr::from_abstract_name(abstract_name)?,
        [b'/', ..] => SocketAddr::from_pathname(OsStr::from_bytes(name))?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor @abstract",
            ));
        }
    };
    Ok((UnixDatagram::unbound()?, address))
}

/// `CLOCK_MONOTONIC` in microseconds.
fn monotonic_usec() -> u128 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(now.tv_sec.unsigned_abs(), now.tv_nsec.unsigned_abs() as u32).as_micros()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::watchdog_interval_from;

    #[test]
    fn watchdog_is_half_the_timeout_and_only_ours() {
        let half = Some(Duration::from_secs(5));
        assert_eq!(watchdog_interval_from(Some("10000000"), None, 7), half);
        assert_eq!(watchdog_interval_from(Some("10000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval_from(Some("10000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
    }
}
