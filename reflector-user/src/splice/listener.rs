//! The sockets the userspace path listens on: one per listen port, protocol and family.

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
};

use nix::sys::socket::{setsockopt, sockopt};
use reflector_common::Protocol;
use socket2::{Domain, Socket, Type};
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};

/// Connections waiting to be accepted, per listening socket: health checks arrive in bursts.
const BACKLOG: i32 = 4096;

/// An IP family, as far as listening goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// IPv4, `0.0.0.0`.
    V4,
    /// IPv6, `[::]`, IPv6 only (IPv4 has its own socket).
    V6,
}

impl Family {
    /// Both, IPv4 first.
    pub(crate) const BOTH: [Self; 2] = [Self::V4, Self::V6];

    fn any(self, port: u16) -> SocketAddr {
        match self {
            Self::V4 => (Ipv4Addr::UNSPECIFIED, port).into(),
            Self::V6 => (Ipv6Addr::UNSPECIFIED, port).into(),
        }
    }
}

/// A listening socket could not be set up.
#[derive(Debug, Error)]
// The kernel's words go in the message, before the hint that depends on them, so they are
// not also the error's source (an error shows its cause once).
#[error("cannot listen on {address} ({protocol}): {cause}{}", hint(cause))]
pub struct ListenError {
    /// Where.
    pub address: SocketAddr,
    /// Which protocol.
    pub protocol: &'static str,
    /// What the kernel said.
    pub cause: io::Error,
}

impl ListenError {
    /// Whether the host has no IPv6 at all, so listening on it can be skipped.
    #[must_use]
    pub fn is_family_unsupported(&self) -> bool {
        self.address.is_ipv6()
            && matches!(
                self.cause.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
            )
    }
}

fn hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::AddrInUse => {
            "; another program uses this port: stop it, or map a different listen port"
        }
        io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need root or CAP_NET_BIND_SERVICE: run as root, or map a listen port of 1024 or more"
        }
        _ => "",
    }
}

/// A TCP socket listening on `port` of every address of `family`.
///
/// # Errors
/// [`ListenError`] when the socket cannot be created, bound or put to listen.
pub(crate) fn tcp(family: Family, port: u16) -> Result<TcpListener, ListenError> {
    let address = family.any(port);
    let error = |cause| ListenError {
        address,
        protocol: Protocol::Tcp.name(),
        cause,
    };
    let socket = socket(family, Type::STREAM).map_err(error)?;
    socket.set_reuse_address(true).map_err(error)?;
    // Accepted sockets inherit it: relaying must not delay small writes.
    socket.set_tcp_nodelay(true).map_err(error)?;
    socket.bind(&address.into()).map_err(error)?;
    socket.listen(BACKLOG).map_err(error)?;
    TcpListener::from_std(socket.into()).map_err(error)
}

/// A UDP socket bound to `port` of every address of `family`, which reports each
/// datagram's destination address so replies can come from it.
///
/// # Errors
/// [`ListenError`] when the socket cannot be created or bound.
pub(crate) fn udp(family: Family, port: u16) -> Result<UdpSocket, ListenError> {
    let address = family.any(port);
    let error = |cause| ListenError {
        address,
        protocol: Protocol::Udp.name(),
        cause,
    };
    let socket = socket(family, Type::DGRAM).map_err(error)?;
    // The destination address of each datagram (replies come from it), and its TTL (the
    // loop guard's).
    match family {
        Family::V4 => setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)
            .and_then(|()| setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)),
        Family::V6 => setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
            .and_then(|()| setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)),
    }
    .map_err(|errno| error(errno.into()))?;
    socket.bind(&address.into()).map_err(error)?;
    UdpSocket::from_std(socket.into()).map_err(error)
}

fn socket(family: Family, kind: Type) -> io::Result<Socket> {
    let domain = match family {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    };
    let socket = Socket::new(domain, kind.nonblocking().cloexec(), None)?;
    if family == Family::V6 {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}
