//! The userspace path: listens on every mapped port and reflects each client itself,
//! moving TCP bytes with splice(2). It is the whole reflector where the kernel program
//! cannot run (`--mode splice`, or `auto` without BPF), and in kernel modes it catches
//! what the program never sees: connections from this host itself and from interfaces
//! it is not attached to.

pub(crate) mod counters;
pub(crate) mod fd_limit;
pub(crate) mod listener;
mod loop_guard;
mod relay;
mod tcp;
mod udp;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU16, Ordering::Relaxed},
    },
    time::Duration,
};

use log::{debug, warn};
use reflector_common::Protocol;
use tokio::{sync::Semaphore, task::JoinHandle};

pub(crate) use counters::{ConnectFailure, SpliceCounters};
pub(crate) use listener::ListenError;

use crate::{admission::Admission, portmap::PortMap};
use listener::Family;

/// Limits and timeouts of the userspace path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpliceOptions {
    /// How long a connect-back may take before the client is reset.
    pub connect_timeout: Duration,
    /// How long a reflected TCP connection may stay silent both ways before it is closed.
    pub idle_timeout: Duration,
    /// How long a UDP flow may stay silent both ways before it is forgotten.
    pub udp_idle_timeout: Duration,
    /// Reflected TCP connections at once; further clients are reset.
    pub max_conns: u32,
    /// UDP flows at once; datagrams of further clients are dropped.
    pub max_udp_flows: u32,
}

impl Default for SpliceOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(300),
            udp_idle_timeout: Duration::from_secs(30),
            max_conns: 4096,
            max_udp_flows: 4096,
        }
    }
}

/// What every connection task shares.
#[derive(Debug)]
struct Shared {
    options: SpliceOptions,
    counters: Arc<SpliceCounters>,
    /// One permit per reflected TCP connection.
    tcp_slots: Arc<Semaphore>,
    /// Who may open a new flow, and how often; replaced whole when the settings change.
    admission: RwLock<Arc<Admission>>,
}

impl Shared {
    /// Whether a new flow (a TCP client accepted, a UDP client's first datagram) from
    /// `source` is admitted; a refusal is counted under `protocol`.
    fn admit(&self, source: IpAddr, protocol: Protocol) -> bool {
        let admission = Arc::clone(
            &self
                .admission
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        match admission.admit(source) {
            Ok(()) => true,
            Err(reason) => {
                self.counters.refused(protocol, reason);
                debug!(
                    "{source}: new {} flow refused: {}",
                    protocol.name(),
                    reason.name()
                );
                false
            }
        }
    }
}

/// A listen port and protocol.
type ListenerKey = (u16, Protocol);

/// The userspace path: one task per listening socket, one per reflected connection or flow.
/// Dropping it stops listening; connections already reflected run on until they end.
#[derive(Debug)]
pub(crate) struct Userspace {
    shared: Arc<Shared>,
    listeners: HashMap<ListenerKey, Listening>,
}

/// The sockets of one listen port and protocol, served by one task each.
#[derive(Debug)]
struct Listening {
    /// The target port, read for each new client.
    target: Arc<AtomicU16>,
    tasks: Vec<JoinHandle<()>>,
}

impl Userspace {
    /// A userspace path listening on nothing yet, admitting new flows by `admission`.
    #[must_use]
    pub(crate) fn new(options: SpliceOptions, admission: Admission) -> Self {
        Self {
            shared: Arc::new(Shared {
                options,
                counters: Arc::default(),
                tcp_slots: Arc::new(Semaphore::new(options.max_conns as usize)),
                admission: RwLock::new(Arc::new(admission)),
            }),
            listeners: HashMap::new(),
        }
    }

    /// Admits new flows by `admission` from now on (its buckets start full).
    pub(crate) fn set_admission(&self, admission: Admission) {
        *self
            .shared
            .admission
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(admission);
    }

    /// Listens on exactly the ports of `maps`: opens the new ones, closes the ones no longer
    /// mapped, and keeps the rest as they are. All new sockets are opened before anything is
    /// closed, so on error nothing changes.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ListenError`] when a port cannot be listened on.
    pub(crate) fn apply(&mut self, maps: &[PortMap]) -> Result<(), ListenError> {
        let wanted: HashMap<ListenerKey, u16> = maps
            .iter()
            .flat_map(|map| {
                map.protocols
                    .iter()
                    .map(move |&protocol| ((map.listen, protocol), map.target))
            })
            .collect();
        let mut opened = Vec::new();
        for (&key, &target) in &wanted {
            if !self.listeners.contains_key(&key) {
                opened.push((key, target, Self::open(key)?));
            }
        }
        self.listeners.retain(|key, listening| {
            let Some(&target) = wanted.get(key) else {
                listening.tasks.iter().for_each(JoinHandle::abort);
                return false;
            };
            // Same port, new target: the sockets stay bound; the next client goes there.
            listening.target.store(target, Relaxed);
            true
        });
        for (key, target, sockets) in opened {
            let target = Arc::new(AtomicU16::new(target));
            let tasks = sockets
                .into_iter()
                .map(|socket| socket.spawn(Arc::clone(&target), Arc::clone(&self.shared)))
                .collect();
            self.listeners.insert(key, Listening { target, tasks });
        }
        Ok(())
    }

    /// Opens the sockets for one listen port and protocol, both families.
    fn open((port, protocol): ListenerKey) -> Result<Vec<Socket>, ListenError> {
        let mut sockets = Vec::new();
        for family in Family::BOTH {
            let socket = match protocol {
                Protocol::Tcp => listener::tcp(family, port).map(Socket::Tcp),
                Protocol::Udp => listener::udp(family, port).map(Socket::Udp),
            };
            match socket {
                Ok(socket) => sockets.push(socket),
                Err(error) if error.is_family_unsupported() => {
                    warn!(
                        "{}; reflecting port {port} over IPv4 only",
                        crate::error_text::render(&error)
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(sockets)
    }

    /// The counters so far.
    #[must_use]
    pub(crate) fn counters(&self) -> &SpliceCounters {
        &self.shared.counters
    }

    /// The counters, shared: they stay readable (for metrics) while the path runs.
    #[must_use]
    pub(crate) fn shared_counters(&self) -> Arc<SpliceCounters> {
        Arc::clone(&self.shared.counters)
    }
}

impl Drop for Userspace {
    fn drop(&mut self) {
        for listening in self.listeners.values() {
            listening.tasks.iter().for_each(JoinHandle::abort);
        }
    }
}

/// A listening socket not yet served.
enum Socket {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

impl Socket {
    fn spawn(self, target: Arc<AtomicU16>, shared: Arc<Shared>) -> JoinHandle<()> {
        match self {
            Self::Tcp(listener) => tokio::spawn(tcp::serve(listener, target, shared)),
            Self::Udp(socket) => tokio::spawn(udp::serve(socket, target, shared)),
        }
    }
}
