//! TCP in userspace: accept a client, connect back to its target port from the address it
//! connected to, then relay. Every client has its own task, so a slow connect-back delays
//! no one else.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering::Relaxed},
    },
    time::Duration,
};

use log::{debug, warn};
use reflector_common::Protocol;
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    time::Instant,
};

use super::{
    Shared,
    counters::{ActiveGuard, ConnectFailure},
    relay::{RelayEnd, relay, reset},
};

/// How long to stop accepting after the process ran out of file descriptors or memory:
/// retrying at once would spin; the backlog holds new clients meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Shortest time between two warnings about failing accepts.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts clients on `listener` forever, reflecting each to its own port `target` (as it
/// is when the client arrives).
pub(super) async fn serve(listener: TcpListener, target: Arc<AtomicU16>, shared: Arc<Shared>) {
    let mut last_warning: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                if !shared.admit(peer.ip(), Protocol::Tcp) {
                    reset(&client);
                    continue;
                }
                shared.counters.tcp_accepted.fetch_add(1, Relaxed);
                let Ok(slot) = Arc::clone(&shared.tcp_slots).try_acquire_owned() else {
                    shared.counters.tcp_over_limit.fetch_add(1, Relaxed);
                    debug!(
                        "{peer}: {} reflected connections active; reset",
                        shared.options.max_conns
                    );
                    reset(&client);
                    continue;
                };
                let shared = Arc::clone(&shared);
                let target = target.load(Relaxed);
                tokio::spawn(async move {
                    reflect(client, peer, target, &shared).await;
                    drop(slot);
                });
            }
            Err(error) => {
                if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    warn!("accepting on port {}: {error}", local_port(&listener));
                    last_warning = Some(Instant::now());
                }
                if is_resource_shortage(&error) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Connects back to `peer`'s port `target` and relays, or resets the client when that fails.
async fn reflect(client: TcpStream, peer: SocketAddr, target: u16, shared: &Shared) {
    let counters = &shared.counters;
    let _active = ActiveGuard::new(&counters.tcp_active);
    let Ok(local) = client.local_addr() else {
        return; // The client is already gone.
    };
    let service_addr = SocketAddr::new(peer.ip(), target);
    let service = match connect_back(local.ip(), service_addr, shared.options.connect_timeout).await
    {
        Ok(service) => service,
        Err(error) => {
            let reason = ConnectFailure::from_io(&error);
            counters.connect_failed(reason);
            debug!("connect-back to {service_addr} for client {peer} failed: {reason}: {error}");
            reset(&client);
            return;
        }
    };
    let end = relay(
        &client,
        &service,
        shared.options.idle_timeout,
        &counters.bytes_to_services,
        &counters.bytes_to_clients,
    )
    .await;
    match end {
        RelayEnd::Closed => {}
        RelayEnd::Idle => debug!("{peer} -> {service_addr}: idle, closed"),
        RelayEnd::Failed(error) => debug!("{peer} -> {service_addr}: reset: {error}"),
    }
}

/// Connects from `local` (any port) to `service`, giving up after `timeout`.
async fn connect_back(
    local: IpAddr,
    service: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = match service {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Choose the port at connect time, per destination: binding `local:0` alone would
    // reserve a port for every destination and run out at a few tens of thousands.
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )
    .map_err(io::Error::from)?;
    socket.bind(SocketAddr::new(local, 0))?;
    // Each end already decides when to send; holding bytes back here would only add delay.
    // (Accepted clients inherit this from their listener.)
    socket.set_nodelay(true)?;
    match tokio::time::timeout(timeout, socket.connect(service)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Whether `error` means the process is short of descriptors or memory.
fn is_resource_shortage(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn local_port(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |addr| addr.port().to_string())
}
