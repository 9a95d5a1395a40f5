//! The process's file-descriptor limit, raised at start to what the userspace path's limits
//! need: a reflected TCP connection holds six descriptors (two sockets, two pipes), a UDP
//! flow one. The usual soft limit (1,024) would hold about 170 connections, far below
//! `--max-conns`.

use std::fs;

use log::{info, warn};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use super::SpliceOptions;

/// Descriptors one reflected TCP connection holds: client and service sockets, and a pipe
/// (two descriptors) per direction.
pub(crate) const PER_TCP_CONNECTION: u64 = 6;
/// Descriptors one UDP flow holds: its connected socket.
pub(crate) const PER_UDP_FLOW: u64 = 1;
/// Room for everything else: listeners, the control socket, netlink, BPF maps and links.
const BASE: u64 = 1_024;

/// Descriptors the daemon needs at `options`' limits.
#[must_use]
pub(crate) fn needed(options: &SpliceOptions) -> u64 {
    BASE + u64::from(options.max_conns) * PER_TCP_CONNECTION
        + u64::from(options.max_udp_flows) * PER_UDP_FLOW
}

/// Raises the soft limit on open files to [`needed`] (and the hard limit too, up to the
/// kernel's `fs.nr_open`, when privileged), and says so; warns, with the numbers, when that
/// is not possible. Never lowers a limit.
pub(crate) fn raise(options: &SpliceOptions) {
    let needed = needed(options);
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= needed {
        return;
    }
    let hard = current.maximum.unwrap_or(u64::MAX);
    let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(hard);
    // Privileged, the hard limit may go up to nr_open; otherwise the soft one to the hard.
    let attempts = [needed.min(nr_open.max(hard)), needed.min(hard)];
    for target in attempts {
        let limit = Rlimit {
            current: Some(target),
            maximum: Some(target.max(hard)),
        };
        if target > soft && setrlimit(Resource::Nofile, limit).is_ok() {
            if target < needed {
                warn!(
                    "open-file limit raised from {soft} to {target}, below the {needed} that \
                     --max-conns {} and --max-udp-flows {} need: the userspace path may run \
                     out of descriptors before those limits",
                    options.max_conns, options.max_udp_flows
                );
            } else {
                info!(
                    "open-file limit raised from {soft} to {target} for --max-conns and --max-udp-flows"
                );
            }
            return;
        }
    }
    warn!(
        "open-file limit {soft} is below the {needed} that --max-conns {} and --max-udp-flows {} \
         need, and cannot be raised (hard limit {hard}): the userspace path may run out of \
         descriptors before those limits",
        options.max_conns, options.max_udp_flows
    );
}

#[cfg(test)]
mod tests {
    use super::{SpliceOptions, needed};

    #[test]
    fn the_defaults_need_about_thirty_thousand_descriptors() {
        let options = SpliceOptions::default();
        assert_eq!(
            needed(&options),
            1_024 + u64::from(options.max_conns) * 6 + u64::from(options.max_udp_flows)
        );
        assert_eq!(
            needed(&options),
            29_696,
            "--max-conns 4096, --max-udp-flows 4096"
        );
    }
}
