//! nftables rules inside a namespace, to make one path of the network fail on purpose.

use std::net::SocketAddr;

use crate::netns::Netns;

/// The table the rules go in. nftables tables belong to a network namespace, so the name
/// need not be unique across tests, and the table goes with the namespace.
const TABLE: &str = "reflector_tests";

/// Drops (silently, as a filtering firewall does) every TCP segment arriving in `ns` for
/// `to` (address and port), counting them: a connection attempt to `to` then times out.
/// Panics, naming the package, when `nft` is missing.
pub fn drop_incoming_tcp(ns: &Netns, to: SocketAddr) {
    crate::require_tool("nft", "nftables");
    let family = if to.is_ipv4() { "ip" } else { "ip6" };
    ns.exec(&["nft", &format!("add table inet {TABLE}")]);
    ns.exec(&[
        "nft",
        &format!(
            "add chain inet {TABLE} input {{ type filter hook input priority 0; policy accept; }}"
        ),
    ]);
    ns.exec(&[
        "nft",
        &format!(
            "add rule inet {TABLE} input {family} daddr {} tcp dport {} counter drop",
            to.ip(),
            to.port()
        ),
    ]);
}

/// How many packets the rules of [`drop_incoming_tcp`] in `ns` dropped so far.
#[must_use]
pub fn dropped_packets(ns: &Netns) -> u64 {
    let listing = ns.exec(&["nft", "list", "chain", "inet", TABLE, "input"]);
    let words: Vec<&str> = listing.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "packets")
        .map(|pair| {
            pair[1]
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("bad packet count {:?} in:\n{listing}\n{e}", pair[1]))
        })
        .sum()
}
