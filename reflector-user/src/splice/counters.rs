//! What the userspace path has done, counted with atomics shared by every connection task.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use reflector_common::{DropReason, Protocol};

/// Why a connect-back to the client's target port failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectFailure {
    /// The client's host answered with a reset: nothing listens on the target port.
    Refused,
    /// No answer within the connect timeout: the port is filtered or the host is gone.
    Timeout,
    /// No route to the client, or an ICMP unreachable came back.
    Unreachable,
    /// This host ran out of something (file descriptors, ports, memory).
    Resources,
    /// Anything else.
    Other,
}

impl ConnectFailure {
    /// Every reason, in the order they are reported.
    pub const ALL: [Self; 5] = [
        Self::Refused,
        Self::Timeout,
        Self::Unreachable,
        Self::Resources,
        Self::Other,
    ];

    /// The reason's name, also its metric label value.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Resources => "resources",
            Self::Other => "other",
        }
    }

    /// Classifies a failed connect (or, for UDP, a failed receive on the connected socket).
    #[must_use]
    pub fn from_io(error: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::ConnectionRefused => Self::Refused,
            ErrorKind::TimedOut => Self::Timeout,
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Self::Unreachable,
            ErrorKind::OutOfMemory | ErrorKind::AddrNotAvailable => Self::Resources,
            _ => match error.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Self::Resources,
                _ => Self::Other,
            },
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The userspace path's counters. Totals only ever grow; `*_active` go up and down.
#[derive(Debug, Default)]
pub struct SpliceCounters {
    /// TCP clients accepted and reflected (or tried).
    pub tcp_accepted: AtomicU64,
    /// TCP connections being reflected right now.
    pub tcp_active: AtomicU64,
    /// TCP clients reset at once because `--max-conns` were active.
    pub tcp_over_limit: AtomicU64,
    connect_failures: [AtomicU64; ConnectFailure::ALL.len()],
    /// Bytes moved from clients to their services.
    pub bytes_to_services: AtomicU64,
    /// Bytes moved from services back to their clients.
    pub bytes_to_clients: AtomicU64,
    /// UDP flows started.
    pub udp_flows: AtomicU64,
    /// UDP flows open right now.
    pub udp_active: AtomicU64,
    /// UDP datagrams dropped because `--max-udp-flows` were open.
    pub udp_over_limit: AtomicU64,
    /// UDP datagrams moved, both ways.
    pub udp_datagrams: AtomicU64,
    /// New TCP clients reset at accept and new UDP clients' datagrams dropped by
    /// admission, per [`DropReason`].
    refused: [[AtomicU64; DropReason::COUNT]; 2],
}

impl SpliceCounters {
    /// Counts one new flow of `protocol` refused for `reason`.
    pub fn refused(&self, protocol: Protocol, reason: DropReason) {
        self.refused[protocol_index(protocol)][reason as usize].fetch_add(1, Relaxed);
    }

    /// New flows of `protocol` refused for `reason` so far.
    #[must_use]
    pub fn refusals(&self, protocol: Protocol, reason: DropReason) -> u64 {
        self.refused[protocol_index(protocol)][reason as usize].load(Relaxed)
    }

    /// Counts one connect-back failure.
    pub fn connect_failed(&self, reason: ConnectFailure) {
        self.connect_failures[reason.index()].fetch_add(1, Relaxed);
    }

    /// Connect-back failures so far for `reason`.
    #[must_use]
    pub fn connect_failures(&self, reason: ConnectFailure) -> u64 {
        self.connect_failures[reason.index()].load(Relaxed)
    }
}

const fn protocol_index(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
    }
}

/// `splice: tcp 12 accepted, 0 active, ...`: the one-line summary logged at exit.
impl fmt::Display for SpliceCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failures: u64 = ConnectFailure::ALL
            .iter()
            .map(|&r| self.connect_failures(r))
            .sum();
        write!(
            f,
            "tcp {} accepted, {} active, {failures} connect-back failures (",
            self.tcp_accepted.load(Relaxed),
            self.tcp_active.load(Relaxed),
        )?;
        for (i, reason) in ConnectFailure::ALL.iter().enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            write!(f, "{separator}{reason} {}", self.connect_failures(*reason))?;
        }
        write!(
            f,
            "), {} refused at max-conns; udp {} flows, {} active, {} datagrams, {} dropped at \
             max-udp-flows; bytes {} to services, {} to clients",
            self.tcp_over_limit.load(Relaxed),
            self.udp_flows.load(Relaxed),
            self.udp_active.load(Relaxed),
            self.udp_datagrams.load(Relaxed),
            self.udp_over_limit.load(Relaxed),
            self.bytes_to_services.load(Relaxed),
            self.bytes_to_clients.load(Relaxed),
        )?;
        let refused: u64 = DropReason::ALL
            .iter()
            .flat_map(|&reason| {
                [Protocol::Tcp, Protocol::Udp].map(|protocol| self.refusals(protocol, reason))
            })
            .sum();
        write!(f, "; {refused} new flows refused by admission")
    }
}

/// Holds one unit of an `*_active` gauge for as long as it lives.
#[derive(Debug)]
pub(crate) struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    /// Adds one to `gauge` until dropped.
    pub(crate) fn new(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Relaxed);
        Self(gauge)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn classifies_connect_errors() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(ConnectFailure::from_io(&refused), ConnectFailure::Refused);
        let unreachable = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(
            ConnectFailure::from_io(&unreachable),
            ConnectFailure::Unreachable
        );
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(ConnectFailure::from_io(&emfile), ConnectFailure::Resources);
        let perm = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(ConnectFailure::from_io(&perm), ConnectFailure::Other);
    }

    #[test]
    fn summary_names_every_reason() {
        let counters = SpliceCounters::default();
        counters.connect_failed(ConnectFailure::Refused);
        counters.connect_failed(ConnectFailure::Refused);
        counters.connect_failed(ConnectFailure::Timeout);
        let line = counters.to_string();
        assert!(line.contains("3 connect-back failures"), "{line}");
        assert!(
            line.contains("refused 2, timeout 1, unreachable 0"),
            "{line}"
        );
    }
}
