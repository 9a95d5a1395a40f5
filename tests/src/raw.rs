//! Raw IP packets with a source of the test's choosing, sent from inside a namespace: the
//! spoofed packets an attacker would send (a flood of forged sources, one forged packet
//! that sets two reflectors bouncing). The socket takes the IP header as given
//! (`IPPROTO_RAW`, which implies `IP_HDRINCL` and `IPV6_HDRINCL`); the kernel routes each
//! packet by its destination, fills in the link layer and checks nothing else.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::enter::in_netns;
use crate::kind::Family;
use crate::netns::Netns;
use crate::packets::{ETH_LEN, Frame, Vlan};

/// `IPPROTO_RAW`: send-only, the caller writes the IP header.
const IPPROTO_RAW: i32 = 255;

/// A send-only raw IP socket in a namespace, for one IP family.
#[derive(Debug)]
pub struct RawSender {
    socket: Socket,
    family: Family,
}

impl RawSender {
    /// A raw socket for `family`, created inside `ns` (a socket belongs to the namespace
    /// it was made in, and routes there).
    #[must_use]
    pub fn new(ns: &Netns, family: Family) -> Self {
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let socket = in_netns(ns, || {
            Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
        })
        .unwrap_or_else(|e| panic!("raw {family:?} socket in {}: {e}", ns.name()));
        Self { socket, family }
    }

    /// Sends the IP packet of `frame` (untagged; its Ethernet header is left off: the
    /// kernel writes its own) to the frame's destination, exactly as built: source, TTL
    /// and checksums included.
    ///
    /// # Errors
    ///
    /// When the kernel refuses it (`ENOBUFS` when the interface's queue is full, say).
    pub fn send(&self, frame: &Frame) -> io::Result<()> {
        assert!(
            frame.vlan == Vlan::Untagged
                && frame.destination().is_ipv4() == (self.family == Family::V4),
            "a raw {:?} socket sends untagged packets of its own family",
            self.family
        );
        let bytes = frame.bytes();
        let to = SockAddr::from(SocketAddr::new(frame.destination(), 0));
        let sent = self.socket.send_to(&bytes[ETH_LEN..], &to)?;
        assert_eq!(sent, bytes.len() - ETH_LEN, "a raw send is all or nothing");
        Ok(())
    }
}
