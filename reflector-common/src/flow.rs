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

/// Where a reply of a reflected flow goes back to, and what the loop guard remembers of it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowValue {
    /// The listen port `L` the client connected to, host byte order: the reply's new
    /// source port.
    pub listen_port: u16,
    /// The counter slot of the flow's port map ([`crate::PortEntry::map_slot`]), so replies
    /// are counted with their map without another lookup.
    pub map_slot: u16,
    /// The highest TTL (hop limit) a forward packet of the flow arrived with; 0 before the
    /// first. The loop guard drops a packet that arrives well below it
    /// ([`crate::admission::LOOP_TTL_DROP`]).
    pub forward_ttl: u8,
    /// The same for reverse packets (replies of the client's service).
    pub reverse_ttl: u8,
    /// Always zero: keeps the value free of padding.
    pad: u16,
}

impl FlowValue {
    /// A flow whose replies leave from `listen_port`, counted in `map_slot`, with no TTL
    /// seen yet.
    #[must_use]
    pub const fn new(listen_port: u16, map_slot: u16) -> Self {
        Self {
            listen_port,
            map_slot,
            forward_ttl: 0,
            reverse_ttl: 0,
            pad: 0,
        }
    }

    /// This flow, with `ttl` as the highest TTL seen on forward packets (as the forward
    /// packet that records a flow leaves it).
    #[must_use]
    pub const fn with_forward_ttl(mut self, ttl: u8) -> Self {
        self.forward_ttl = ttl;
        self
    }

    /// Whether `other` sends replies the same way: the same listen port and counter slot,
    /// whatever TTLs either has seen.
    #[must_use]
    pub const fn same_route(&self, other: &Self) -> bool {
        self.listen_port == other.listen_port && self.map_slot == other.map_slot
    }
}

const _: () = assert!(core::mem::size_of::<FlowValue>() == 8);
