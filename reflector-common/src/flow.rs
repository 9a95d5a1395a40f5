//! The flow table: how a reply from a client's service is mapped back to the client.

use bytemuck::{Pod, Zeroable};

/// A reflected flow, as seen by a reply packet: from `remote_addr:remote_port` (the
/// client's service, port `P`) to `local_addr:local_port` (this host, at the client's own
/// source port `s`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FlowKey {
    /// The client's address (IPv4-mapped for IPv4).
    pub remote_addr: [u8; 16],
    /// The address of this host the client connected to (IPv4-mapped for IPv4).
    pub local_addr: [u8; 16],
    /// The target port `P`, host byte order.
    pub remote_port: u16,
    /// The client's source port `s`, host byte order.
    pub local_port: u16,
    /// IP protocol number.
    pub protocol: u8,
    /// Always zero, as is `pad_word`: keeps the key free of padding so lookups hash the
    /// same bytes. A byte and a word, not `[u8; 3]`: LLVM zeroes a 3-byte array with a
    /// call to a byte-wise `memset` on the BPF target, on every packet.
    pad_byte: u8,
    /// Always zero (see `pad_byte`).
    pad_word: u16,
}

impl FlowKey {
    /// The key of a flow between `remote_addr:remote_port` and `local_addr:local_port`.
    #[must_use]
    pub const fn new(
        remote_addr: [u8; 16],
        local_addr: [u8; 16],
        remote_port: u16,
        local_port: u16,
        protocol: u8,
    ) -> Self {
        Self {
            remote_addr,
            local_addr,
            remote_port,
            local_port,
            protocol,
            pad_byte: 0,
            pad_word: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);

/// Where a reply of a reflected flow goes back to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowValue {
    /// The listen port `L` the client connected to, host byte order: the reply's new
    /// source port.
    pub listen_port: u16,
    /// The counter slot of the flow's port map ([`crate::PortEntry::map_slot`]), so replies
    /// are counted with their map without another lookup.
    pub map_slot: u16,
}

impl FlowValue {
    /// A flow whose replies leave from `listen_port`, counted in `map_slot`.
    #[must_use]
    pub const fn new(listen_port: u16, map_slot: u16) -> Self {
        Self {
            listen_port,
            map_slot,
        }
    }
}

const _: () = assert!(core::mem::size_of::<FlowValue>() == 4);
