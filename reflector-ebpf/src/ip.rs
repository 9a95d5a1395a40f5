//! What differs between IPv4 and IPv6, behind one trait, so the whole pipeline is
//! monomorphised per family. The verifier then checks each family's path with that
//! family's header bounds, instead of tracking a family tag the compiler may spill.

use core::mem::size_of;

use network_types::ip::{Ipv4Hdr, Ipv6Hdr};
use reflector_common::{Family, PassReason, Protocol, v4_mapped};

use crate::consts::{
    IPV4_CHECK_OFFSET, IPV4_FRAGMENT_MASK, IPV6_EXTENSION_HEADERS, IPV6_NEXT_FRAGMENT,
};

/// The fields of an IP header the policy needs.
pub(crate) struct IpFields {
    /// Length of the header, options included.
    pub header_len: usize,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Source address (IPv4-mapped for IPv4).
    pub src_addr: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub dst_addr: [u8; 16],
    /// TTL or hop limit.
    pub ttl: u8,
}

/// An IP header reflector can turn around.
pub(crate) trait IpHeader {
    /// The IP version.
    const FAMILY: Family;

    /// Reads and validates the header.
    ///
    /// # Errors
    /// Why a packet with this header cannot be reflected, whatever its ports.
    fn fields(&self) -> Result<IpFields, PassReason>;

    /// Swaps source and destination and decrements the TTL. Returns the 16-bit word the
    /// header checksum covers that changed, old and new, when the header has a checksum.
    fn turn_around(&mut self) -> Option<([u8; 2], [u8; 2])>;

    /// Offset of the header checksum within the header, when it has one.
    const CHECK_OFFSET: Option<usize>;
}

impl IpHeader for Ipv4Hdr {
    const FAMILY: Family = Family::V4;
    const CHECK_OFFSET: Option<usize> = Some(IPV4_CHECK_OFFSET);

    #[inline(always)]
    fn fields(&self) -> Result<IpFields, PassReason> {
        let ihl = usize::from(self.vihl & 0x0f);
        if self.vihl >> 4 != 4 || ihl < 5 {
            return Err(PassReason::Malformed);
        }
        if u16::from_be_bytes(self.frags) & IPV4_FRAGMENT_MASK != 0 {
            return Err(PassReason::Fragment);
        }
        Ok(IpFields {
            header_len: ihl * 4,
            protocol: Protocol::from_ip_number(self.proto).ok_or(PassReason::NotTcpUdp)?,
            src_addr: v4_mapped(self.src_addr),
            dst_addr: v4_mapped(self.dst_addr),
            ttl: self.ttl,
        })
    }

    #[inline(always)]
    fn turn_around(&mut self) -> Option<([u8; 2], [u8; 2])> {
        core::mem::swap(&mut self.src_addr, &mut self.dst_addr);
        let old = [self.ttl, self.proto];
        self.ttl -= 1;
        Some((old, [self.ttl, self.proto]))
    }
}

impl IpHeader for Ipv6Hdr {
    const FAMILY: Family = Family::V6;
    const CHECK_OFFSET: Option<usize> = None;

    #[inline(always)]
    fn fields(&self) -> Result<IpFields, PassReason> {
        if self.vcf[0] >> 4 != 6 {
            return Err(PassReason::Malformed);
        }
        let protocol = match Protocol::from_ip_number(self.next_hdr) {
            Some(protocol) => protocol,
            None if self.next_hdr == IPV6_NEXT_FRAGMENT => return Err(PassReason::Fragment),
            None if IPV6_EXTENSION_HEADERS.contains(&self.next_hdr) => {
                return Err(PassReason::Ipv6ExtensionHeader);
            }
            None => return Err(PassReason::NotTcpUdp),
        };
        Ok(IpFields {
            header_len: size_of::<Self>(),
            protocol,
            src_addr: self.src_addr,
            dst_addr: self.dst_addr,
            ttl: self.hop_limit,
        })
    }

    #[inline(always)]
    fn turn_around(&mut self) -> Option<([u8; 2], [u8; 2])> {
        core::mem::swap(&mut self.src_addr, &mut self.dst_addr);
        // The hop limit is under no checksum: IPv6 has no header checksum and the
        // pseudo-header leaves it out.
        self.hop_limit -= 1;
        None
    }
}
