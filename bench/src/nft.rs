//! Kernel NAT with nftables: the strongest reflection a user can set up by hand today.

use std::fs;

use anyhow::{Context as _, Result};
use reflector_tests::{Netns, TempDir};

/// The table this adds (removed with the namespace).
const TABLE: &str = "reflector_bench";

/// The ruleset that sends a connection (TCP, or a UDP flow) to port `listen` back to its
/// source on port `service`: DNAT to the source address, masquerade so replies come back
/// through R, and no redirects (R forwards out of the interface the packet came in on).
pub(crate) fn ruleset(listen: u16, service: u16) -> String {
    format!(
        "table inet {TABLE} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip version 4 tcp dport {listen} dnat ip to ip saddr : {service}
        ip6 version 6 tcp dport {listen} dnat ip6 to ip6 saddr : {service}
        ip version 4 udp dport {listen} dnat ip to ip saddr : {service}
        ip6 version 6 udp dport {listen} dnat ip6 to ip6 saddr : {service}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ct status dnat meta l4proto tcp ct original proto-dst {listen} masquerade
        ct status dnat meta l4proto udp ct original proto-dst {listen} masquerade
    }}
    chain output {{
        type filter hook output priority filter; policy accept;
        icmpv6 type nd-redirect drop
        icmp type redirect drop
    }}
}}
"
    )
}

/// Turns forwarding on in `ns` and loads [`ruleset`] there.
pub(crate) fn reflect(ns: &Netns, listen: u16, service: u16) -> Result<()> {
    ns.exec(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
    ]);
    let dir = TempDir::new("nft");
    let file = dir.join("reflect.nft");
    fs::write(&file, ruleset(listen, service))
        .with_context(|| format!("cannot write {}", file.display()))?;
    ns.exec(&["nft", "-f", &file.to_string_lossy()]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ruleset;

    #[test]
    fn ruleset_maps_the_listen_port_to_the_service_port() {
        let rules = ruleset(10022, 22);
        assert!(rules.contains("tcp dport 10022 dnat ip to ip saddr : 22"));
        assert!(rules.contains("ct original proto-dst 10022 masquerade"));
    }
}
