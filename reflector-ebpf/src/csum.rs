//! Internet checksum helpers (RFC 1071 folding, RFC 1624 incremental update) for the path
//! that patches checksums itself (XDP).

/// The checksum `check` after the 16-bit words `old` of the data it covers became `new`
/// (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`, once per word). Words are taken
/// big-endian, as they stand in the packet.
#[inline(always)]
#[must_use]
pub fn replace<const N: usize>(check: u16, old: [u8; N], new: [u8; N]) -> u16 {
    let mut sum = u32::from(!check);
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(!u16::from_be_bytes([old[i], old[i + 1]]));
        sum += u32::from(u16::from_be_bytes([new[i], new[i + 1]]));
        i += 2;
    }
    !fold(sum)
}

/// Folds a 32-bit one's-complement sum into 16 bits.
#[inline(always)]
#[must_use]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
