//! What a reflected exchange must look like from X: the client reaches X's own service
//! through `R:L`, and the service sees the reflector as its peer.

use std::net::SocketAddr;

use crate::client;
use crate::daemon::Mode;
use crate::kind::{Family, Proto};
use crate::servers::parse_peer_reply;
use crate::topology::Topology;

/// `L:P/<protos>`, the daemon's `--map` value.
#[must_use]
pub fn map_arg((listen, target): (u16, u16), protos: &str) -> String {
    format!("{listen}:{target}/{protos}")
}

/// The way a reflected exchange goes, which decides the peer the service in X sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The kernel program turns packets around: the service sees R's address and the
    /// client's own source port.
    Kernel,
    /// Userspace splice: R accepts and connects back (TCP), or relays from a socket of its
    /// own (UDP): the service sees R's address and a port R's kernel chose.
    Splice,
}

impl Path {
    /// The path `mode` takes on a [`Topology`]'s veth when the daemon can load BPF: splice
    /// for [`Mode::Splice`], the kernel otherwise (`auto` picks TC on a veth).
    #[must_use]
    pub const fn of(mode: Mode) -> Self {
        match mode {
            Mode::Splice => Self::Splice,
            Mode::Xdp | Mode::XdpSkb | Mode::Tc | Mode::Auto => Self::Kernel,
        }
    }
}

/// One exchange from X to `R:listen` with the peer service (running in X on the target
/// port); asserts it reached the service in X, which saw R's address as its peer (and the
/// client's source port on the kernel path), and that a UDP reply came back from
/// `R:listen`.
pub fn assert_reflected(
    topology: &Topology,
    path: Path,
    proto: Proto,
    family: Family,
    listen: u16,
    tag: &str,
) {
    let r = topology.r_addr(family);
    let to = SocketAddr::new(r, listen);
    let message = format!("{tag}-{}", topology.id());
    let (local, reply) = match proto {
        Proto::Tcp => client::tcp_line(topology.x(), to, &message),
        Proto::Udp => {
            let (local, from, reply) =
                client::udp_exchange(topology.x(), topology.x_addr(family), to, &message);
            assert_eq!(
                from, to,
                "the UDP reply to {local} must come from {to} (the reflector's listen port)"
            );
            (local, reply)
        }
    };
    assert_eq!(
        local.ip(),
        topology.x_addr(family),
        "the client's address in X"
    );
    let (peer_ip, peer_port, echoed) = parse_peer_reply(&reply);
    match path {
        Path::Kernel => assert_eq!(
            (peer_ip, peer_port, echoed),
            (r, local.port(), message.as_str()),
            "{proto} {local} -> {to}: the service in X must see the reflector's address and \
             the client's source port as its peer, and get the message (reply {reply:?})"
        ),
        Path::Splice => assert_eq!(
            (peer_ip, echoed),
            (r, message.as_str()),
            "{proto} {local} -> {to} (splice): the service in X must see the reflector's \
             address as its peer, and get the message (reply {reply:?})"
        ),
    }
}
