//! The source allow-list: IPv4 and IPv6 prefixes, matched as the kernel's LPM tries match
//! (an IPv4 source against IPv4 prefixes, an IPv6 source against IPv6 prefixes).

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use reflector_common::{admission::mask, v4_mapped};

/// An address prefix, `addr/len` (`len` at most 32 for IPv4, 128 for IPv6); an address
/// without `/len` is a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// A prefix that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    /// The part before `/` is not an IP address.
    #[error("{text:?} is not an IP address or prefix (expected e.g. 10.0.0.0/8 or fd00::/8)")]
    Address {
        /// The text given.
        text: String,
    },
    /// The part after `/` is not a length for the address's family.
    #[error("{text:?}: the prefix length must be a number from 0 to {max}")]
    Length {
        /// The text given.
        text: String,
        /// The longest prefix of the family.
        max: u8,
    },
}

impl Prefix {
    /// `addr/len`, or `None` when `len` is too long for the family.
    #[must_use]
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= max_len(addr)).then_some(Self { addr, len })
    }

    /// The prefix's address, as given.
    #[must_use]
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    #[must_use]
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The prefix as 16 bytes (IPv4-mapped for IPv4) with the host bits cleared, and how
    /// many leading bits count: what the kernel's tries key, by the program's own masking
    /// arithmetic.
    #[must_use]
    pub fn network(&self) -> ([u8; 16], u32) {
        let (addr, bits) = match self.addr {
            IpAddr::V4(addr) => (v4_mapped(addr.octets()), 96 + u32::from(self.len)),
            IpAddr::V6(addr) => (addr.octets(), u32::from(self.len)),
        };
        (mask(addr, bits), bits)
    }

    /// Whether `addr` (of the same family) is inside.
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match (self.addr, addr) {
            (IpAddr::V4(_), IpAddr::V4(addr)) => v4_mapped(addr.octets()),
            (IpAddr::V6(_), IpAddr::V6(addr)) => addr.octets(),
            _ => return false,
        };
        let (network, bits) = self.network();
        mask(addr, bits) == network
    }
}

const fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_std_words| PrefixError::Address {
            text: text.to_owned(),
        })?;
        let max = max_len(addr);
        let len = match len {
            None => max,
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|len| *len <= max)
                .ok_or_else(|| PrefixError::Length {
                    text: text.to_owned(),
                    max,
                })?,
        };
        Ok(Self { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The allowed source prefixes. Whether the list is enforced is the configuration's
/// (`ADMISSION_ALLOW_LIST`): an empty list that is enforced allows no one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    prefixes: Vec<Prefix>,
}

impl AllowList {
    /// The list of `prefixes`.
    #[must_use]
    pub const fn new(prefixes: Vec<Prefix>) -> Self {
        Self { prefixes }
    }

    /// Parses every prefix of `texts`.
    ///
    /// # Errors
    /// The first that does not parse.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, PrefixError> {
        texts
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// The prefixes.
    #[must_use]
    pub fn prefixes(&self) -> &[Prefix] {
        &self.prefixes
    }

    /// Whether `addr` is inside some prefix of its family.
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.prefixes.iter().any(|prefix| prefix.contains(addr))
    }

    /// The IPv4 prefixes as the kernel's `ALLOW_V4` trie keys them: (length, address).
    pub fn v4_keys(&self) -> impl Iterator<Item = (u32, Ipv4Addr)> + '_ {
        self.prefixes.iter().filter_map(|prefix| match prefix.addr {
            IpAddr::V4(addr) => Some((u32::from(prefix.len), addr)),
            IpAddr::V6(_) => None,
        })
    }

    /// The IPv6 prefixes as the kernel's `ALLOW_V6` trie keys them: (length, address).
    pub fn v6_keys(&self) -> impl Iterator<Item = (u32, Ipv6Addr)> + '_ {
        self.prefixes.iter().filter_map(|prefix| match prefix.addr {
            IpAddr::V6(addr) => Some((u32::from(prefix.len), addr)),
            IpAddr::V4(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::{AllowList, Prefix, PrefixError};

    #[test]
    fn prefixes_parse_and_match_their_family_only() {
        let list = AllowList::parse(["10.0.0.0/8", "192.0.2.7", "fd00::/8", "::/0"])
            .expect("valid prefixes");
        assert!(list.contains(IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1))));
        assert!(list.contains(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
        assert!(!list.contains(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))));
        // ::/0 allows every IPv6 source and no IPv4 one.
        assert!(list.contains(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(!list.contains(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1))));
        assert_eq!(list.v4_keys().count(), 2);
        assert_eq!(
            list.v6_keys().collect::<Vec<_>>(),
            [
                (8, "fd00::".parse().expect("an address")),
                (0, Ipv6Addr::UNSPECIFIED)
            ]
        );
    }

    #[test]
    fn zero_length_matches_the_whole_family() {
        let all_v4: Prefix = "0.0.0.0/0".parse().expect("a prefix");
        assert!(all_v4.contains(IpAddr::V4(Ipv4Addr::BROADCAST)));
        assert!(!all_v4.contains(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
        assert_eq!(all_v4.to_string(), "0.0.0.0/0");
    }

    #[test]
    fn bad_prefixes_say_what_is_wrong() {
        assert_eq!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(PrefixError::Length {
                text: "10.0.0.0/33".to_owned(),
                max: 32
            })
        );
        assert!(matches!(
            "fd00::/129".parse::<Prefix>(),
            Err(PrefixError::Length { max: 128, .. })
        ));
        let error = "example.com/8"
            .parse::<Prefix>()
            .expect_err("not an address");
        assert!(error.to_string().contains("not an IP address"), "{error}");
        assert!(matches!(
            "10.0.0.0/x".parse::<Prefix>(),
            Err(PrefixError::Length { .. })
        ));
    }
}
