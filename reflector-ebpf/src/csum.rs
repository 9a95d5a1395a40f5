//! Internet checksum helpers (RFC 1071 folding, RFC 1624 incremental update) for the path
//! that patches checksums itself (XDP).

/// The checksum `check` after the 16-bit words `old` of the data it covers became `new`
/// (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`, once per word). Words are taken
/// big-endian, as they stand in the packet.
#[inline(always)]
#[must_use]
pub(crate) fn replace<const N: usize>(check: u16, old: [u8; N], new: [u8; N]) -> u16 {
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
pub(crate) fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{fold, replace};

    /// The Internet checksum of `data` (RFC 1071) written the long way: every 16-bit word
    /// added into a 64-bit sum, the carries wrapped around until none is left, complemented.
    fn checksum(data: &[u8]) -> u16 {
        let mut sum: u64 = data
            .chunks(2)
            .map(|word| u64::from(word[0]) << 8 | u64::from(*word.get(1).unwrap_or(&0)))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// Whether two checksums are the same one's-complement number (0x0000 and 0xffff are
    /// both zero).
    fn same(a: u16, b: u16) -> bool {
        a == b || (a, b) == (0, 0xffff) || (a, b) == (0xffff, 0)
    }

    /// A header-sized buffer, a word-aligned place in it, and new bytes for that place.
    fn patch<const N: usize>() -> impl Strategy<Value = (Vec<u8>, usize, [u8; N])> {
        (
            proptest::collection::vec(any::<u8>(), 20..=60).prop_map(|mut data| {
                data.truncate(data.len() & !1);
                data
            }),
            any::<usize>(),
            any::<[u8; N]>(),
        )
            .prop_map(|(data, at, new)| {
                let at = (at % ((data.len() - N) / 2 + 1)) * 2;
                (data, at, new)
            })
    }

    /// The checksum `replace` gives after `new` overwrites the bytes at `at`, and the one
    /// computed afresh over the changed data.
    fn incremental_and_afresh<const N: usize>(
        mut data: Vec<u8>,
        at: usize,
        new: [u8; N],
    ) -> (u16, u16) {
        let before = checksum(&data);
        let old: [u8; N] = data[at..at + N].try_into().expect("N bytes");
        data[at..at + N].copy_from_slice(&new);
        (replace(before, old, new), checksum(&data))
    }

    proptest! {
        #[test]
        fn fold_keeps_the_sum_modulo_ffff(sum in any::<u32>()) {
            let folded = u32::from(fold(sum));
            prop_assert_eq!(folded % 0xffff, sum % 0xffff);
            // End-around carry never turns a non-zero sum into zero.
            prop_assert_eq!(folded == 0, sum == 0);
        }

        #[test]
        fn replacing_ports_matches_a_checksum_afresh((data, at, new) in patch::<4>()) {
            let (incremental, afresh) = incremental_and_afresh(data, at, new);
            prop_assert!(same(incremental, afresh), "{incremental:#06x} vs {afresh:#06x}");
        }

        #[test]
        fn replacing_a_word_matches_a_checksum_afresh((data, at, new) in patch::<2>()) {
            let (incremental, afresh) = incremental_and_afresh(data, at, new);
            prop_assert!(same(incremental, afresh), "{incremental:#06x} vs {afresh:#06x}");
        }

        #[test]
        fn a_patched_header_verifies((mut data, at, new) in patch::<4>()) {
            // The checksum field is the first word; the patch lands after it.
            prop_assume!(at >= 2);
            data[..2].fill(0);
            let check = checksum(&data);
            data[..2].copy_from_slice(&check.to_be_bytes());
            let old: [u8; 4] = data[at..at + 4].try_into().expect("4 bytes");
            data[at..at + 4].copy_from_slice(&new);
            let patched = replace(check, old, new);
            data[..2].copy_from_slice(&patched.to_be_bytes());
            // A receiver sums everything, checksum included, and expects all ones.
            prop_assert!(same(checksum(&data), 0), "{:#06x}", checksum(&data));
        }
    }
}
