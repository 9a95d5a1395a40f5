//! Sockets as the service and the load generator use them: a listener with a long
//! backlog, client connections with every step bounded in time, errors named by errno.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Pending connections a listener queues (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// A TCP listener on `addr` (`SO_REUSEADDR`, backlog [`BACKLOG`]).
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A blocking TCP connection to `to`. The connect, every read and every write give up
/// after `timeout` (`SO_SNDTIMEO` also bounds a blocking connect on Linux, which then
/// fails with `EINPROGRESS`).
pub(crate) fn connect(to: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_write_timeout(Some(timeout))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_tcp_nodelay(true)?;
    socket.connect(&SockAddr::from(to))?;
    Ok(socket.into())
}

/// An I/O error as a short stable key for counting: the errno name (`ECONNREFUSED`,
/// `EAGAIN` for a timeout), or the error kind when it has no errno.
pub(crate) fn error_key(e: &io::Error) -> String {
    e.raw_os_error().map_or_else(
        || format!("{:?}", e.kind()),
        |code| format!("{:?}", nix::errno::Errno::from_raw(code)),
    )
}
