//! UDP in userspace: each client (its address and port, and the local address it sent to)
//! gets a socket connected from that local address to the client's target port. Datagrams
//! from the client go out through it; the service's replies come back to the client from
//! the listen port, with the local address it used.

use std::{
    cell::RefCell,
    collections::HashMap,
    io::{self, IoSlice, IoSliceMut},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicU16, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use log::{debug, warn};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvmsg, sendmsg,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{io::Interest, net::UdpSocket, sync::mpsc, time::Instant};

use reflector_common::{DropReason, admission};

use super::{
    Shared,
    counters::{ActiveGuard, ConnectFailure},
    loop_guard::{LoopGuard, relayed_ttl},
};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Who a flow is for: the client, and the local address it sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    client: SocketAddr,
    local: IpAddr,
}

/// A flow as the listener sees it.
struct Flow {
    /// Tells a flow from a later one with the same key when the first expires.
    id: u64,
    service: Arc<UdpSocket>,
    last_ms: Arc<AtomicU64>,
    /// The highest TTL its datagrams arrived with: the kernel's per-flow loop guard.
    highest_ttl: u8,
}

/// Serves one listening socket forever, reflecting each new client to its own port `target`
/// (as it is when the client's first datagram arrives).
pub(super) async fn serve(listener: UdpSocket, target: Arc<AtomicU16>, shared: Arc<Shared>) {
    let listener = Arc::new(listener);
    let clock = Instant::now();
    let mut flows: HashMap<FlowKey, Flow> = HashMap::new();
    let (expired_tx, mut expired_rx) = mpsc::unbounded_channel::<(FlowKey, u64)>();
    let mut next_id = 0_u64;
    let mut buf = vec![0_u8; MAX_DATAGRAM];
    let mut last_warning: Option<Instant> = None;
    let mut loop_guard = LoopGuard::default();
    loop {
        tokio::select! {
            Some((key, id)) = expired_rx.recv() => {
                if flows.get(&key).is_some_and(|flow| flow.id == id) {
                    flows.remove(&key);
                }
            }
            received = receive(&listener, &mut buf) => {
                let Received { len, key, ttl } = match received {
                    Ok(Some(received)) => received,
                    Ok(None) => continue,
                    Err(error) => {
                        if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                            warn!("receiving on UDP port {}: {error}", local_port(&listener));
                            last_warning = Some(Instant::now());
                        }
                        continue;
                    }
                };
                let now_ms = millis_since(clock);
                // A known flow's datagrams are checked as the kernel checks a flow's packets;
                // only a new flow's first datagram needs the guard's memory of payloads.
                if let Some(flow) = flows.get_mut(&key) {
                    match admission::loop_detected(flow.highest_ttl, ttl) {
                        Ok(highest) if ttl > 1 => flow.highest_ttl = highest,
                        _ => {
                            refuse_loop(&shared, key, ttl);
                            continue;
                        }
                    }
                    flow.last_ms.store(now_ms, Relaxed);
                    forward(&flow.service, &buf[..len], &shared);
                    continue;
                }
                if ttl <= 1 || !loop_guard.admit(key.client.ip(), &buf[..len], ttl, Instant::now()) {
                    refuse_loop(&shared, key, ttl);
                    continue;
                }
                if !shared.admit(key.client.ip(), reflector_common::Protocol::Udp) {
                    continue;
                }
                if shared.counters.udp_active.load(Relaxed) >= u64::from(shared.options.max_udp_flows) {
                    shared.counters.udp_over_limit.fetch_add(1, Relaxed);
                    continue;
                }
                let service_addr = SocketAddr::new(key.client.ip(), target.load(Relaxed));
                let service = match connect_back(key.local, service_addr, relayed_ttl(ttl)) {
                    Ok(service) => Arc::new(service),
                    Err(error) => {
                        let reason = ConnectFailure::from_io(&error);
                        shared.counters.connect_failed(reason);
                        debug!("connect-back to {service_addr} for client {} failed: {reason}: {error}", key.client);
                        continue;
                    }
                };
                next_id += 1;
                let flow = Flow {
                    id: next_id,
                    service,
                    last_ms: Arc::new(AtomicU64::new(now_ms)),
                    highest_ttl: ttl,
                };
                shared.counters.udp_flows.fetch_add(1, Relaxed);
                forward(&flow.service, &buf[..len], &shared);
                tokio::spawn(reply_loop(FlowTask {
                    key,
                    id: flow.id,
                    service: Arc::clone(&flow.service),
                    listener: Arc::clone(&listener),
                    last_ms: Arc::clone(&flow.last_ms),
                    clock,
                    shared: Arc::clone(&shared),
                    expired: expired_tx.clone(),
                }));
                flows.insert(key, flow);
            }
        }
    }
}

/// Counts and logs a datagram of `key` that went round a loop (or, at `ttl` 1 or less, can
/// go no further), which is dropped.
fn refuse_loop(shared: &Shared, key: FlowKey, ttl: u8) {
    shared
        .counters
        .refused(reflector_common::Protocol::Udp, DropReason::LoopDetected);
    debug!(
        "{}: a datagram that went round a loop (TTL {ttl}); dropped",
        key.client
    );
}

/// Sends a client's datagram on to its service; a full socket buffer drops it, as the
/// network would.
fn forward(service: &UdpSocket, datagram: &[u8], shared: &Shared) {
    // Straight to the socket: tokio's `try_send` waits for a readiness event first, which a
    // fresh socket has not had yet.
    let sent = nix::sys::socket::send(service.as_raw_fd(), datagram, MsgFlags::MSG_DONTWAIT);
    if sent.is_ok() {
        shared.counters.udp_datagrams.fetch_add(1, Relaxed);
        shared
            .counters
            .bytes_to_services
            .fetch_add(datagram.len() as u64, Relaxed);
    }
}

/// What a flow's reply task owns.
struct FlowTask {
    key: FlowKey,
    id: u64,
    service: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    last_ms: Arc<AtomicU64>,
    clock: Instant,
    shared: Arc<Shared>,
    expired: mpsc::UnboundedSender<(FlowKey, u64)>,
}

/// Passes the service's replies back to the client until the flow is idle.
async fn reply_loop(task: FlowTask) {
    let counters = &task.shared.counters;
    let _active = ActiveGuard::new(&counters.udp_active);
    let idle = task.shared.options.udp_idle_timeout;
    loop {
        let last = task.clock + Duration::from_millis(task.last_ms.load(Relaxed));
        tokio::select! {
            ready = task.service.readable() => {
                if ready.is_ok() {
                    pass_replies(&task);
                }
            }
            () = tokio::time::sleep_until(last + idle) => {
                let last = task.clock + Duration::from_millis(task.last_ms.load(Relaxed));
                if Instant::now() >= last + idle {
                    break;
                }
            }
        }
    }
    // The listener may be gone already at shutdown; then there is nothing to tell.
    let _ = task.expired.send((task.key, task.id));
}

thread_local! {
    /// Room for one datagram per runtime thread, rather than per flow: thousands of mostly
    /// idle flows would otherwise hold 64 KiB each.
    static REPLY_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// Passes every reply waiting on the flow's socket back to its client.
fn pass_replies(task: &FlowTask) {
    let counters = &task.shared.counters;
    REPLY_BUF.with_borrow_mut(|buf| {
        loop {
            match task.service.try_recv(buf) {
                Ok(len) => {
                    task.last_ms.store(millis_since(task.clock), Relaxed);
                    if send_from(&task.listener, &buf[..len], task.key.client, task.key.local)
                        .is_ok()
                    {
                        counters.udp_datagrams.fetch_add(1, Relaxed);
                        counters.bytes_to_clients.fetch_add(len as u64, Relaxed);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error for an earlier datagram (nothing listens on the target
                // port, say); the flow stays, as the service may yet come up.
                Err(error) => counters.connect_failed(ConnectFailure::from_io(&error)),
            }
        }
    });
}

/// A socket from `local` (any port) connected to `service`, sending with `ttl`.
fn connect_back(local: IpAddr, service: SocketAddr, ttl: u8) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(service),
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    if service.is_ipv4() {
        socket.set_ttl_v4(u32::from(ttl))?;
    } else {
        socket.set_unicast_hops_v6(u32::from(ttl))?;
    }
    socket.bind(&SocketAddr::new(local, 0).into())?;
    socket.connect(&service.into())?;
    UdpSocket::from_std(socket.into())
}

/// A datagram as received: its length, its flow, and the TTL (hop limit) it arrived with.
struct Received {
    len: usize,
    key: FlowKey,
    ttl: u8,
}

/// Waits for a datagram; `None` for one this host should not answer (sent to a broadcast or
/// multicast address, or without packet info).
async fn receive(listener: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<Received>> {
    listener
        .async_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(buf)];
            let mut space = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
            let message = recvmsg::<SockaddrStorage>(
                listener.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_DONTWAIT,
            )
            .map_err(io::Error::from)?;
            let client = message.address.as_ref().and_then(socket_addr);
            let mut local = None;
            // Asked for on every listener; a datagram without one is taken to have come far.
            let mut ttl = u8::MAX;
            for cmsg in message.cmsgs().map_err(io::Error::from)? {
                local = match cmsg {
                    ControlMessageOwned::Ipv4Ttl(value)
                    | ControlMessageOwned::Ipv6HopLimit(value) => {
                        ttl = u8::try_from(value).unwrap_or(u8::MAX);
                        continue;
                    }
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        let to = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                        let spec = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                        // The kernel sets the two apart for broadcast and multicast.
                        (to == spec).then_some(IpAddr::V4(to))
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        let to = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                        (!to.is_multicast()).then_some(IpAddr::V6(to))
                    }
                    _ => continue,
                };
            }
            Ok((message.bytes, client, local, ttl))
        })
        .await
        .map(|(len, client, local, ttl)| match (client, local) {
            (Some(client), Some(local)) => Some(Received {
                len,
                key: FlowKey { client, local },
                ttl,
            }),
            _ => None,
        })
}

/// Sends `datagram` to `client` with source address `local`, whatever address the listener
/// is bound to.
fn send_from(
    listener: &UdpSocket,
    datagram: &[u8],
    client: SocketAddr,
    local: IpAddr,
) -> io::Result<usize> {
    // Straight to the socket, without waiting for readiness: a full buffer drops the reply.
    let iov = [IoSlice::new(datagram)];
    let fd = listener.as_raw_fd();
    let sent = match (client, local) {
        (SocketAddr::V4(client), IpAddr::V4(local)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(local).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let to = SockaddrIn::from(client);
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&info)],
                MsgFlags::MSG_DONTWAIT,
                Some(&to),
            )
        }
        (SocketAddr::V6(client), IpAddr::V6(local)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: local.octets(),
                },
                ipi6_ifindex: 0,
            };
            let to = SockaddrIn6::from(client);
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv6PacketInfo(&info)],
                MsgFlags::MSG_DONTWAIT,
                Some(&to),
            )
        }
        _ => return Err(io::ErrorKind::InvalidInput.into()),
    };
    sent.map_err(io::Error::from)
}

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

fn millis_since(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn local_port(listener: &UdpSocket) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |addr| addr.port().to_string())
}
