//! Least privilege: once the kernel path is attached, the daemon keeps only the capabilities
//! what it may still do needs, and drops the rest from every set.
//!
//! Capabilities belong to threads, not processes. The runtime's worker threads run the
//! listeners, the relays, the metrics server and the control socket; none of that needs
//! more than reading the kernel program's maps, so each worker keeps at most `CAP_BPF` from
//! its first instruction ([`WORKER`], applied by the runtime's thread-start hook). The
//! thread that runs the daemon's main loop did the loading and attaching; it drops to
//! [`after_start`]'s set as soon as that is done, before the daemon says it is ready.

use std::{
    io,
    num::NonZeroUsize,
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::Duration,
};

use log::{debug, error, info};
use rustix::thread::{
    CapabilitySet, CapabilitySets, capabilities, capability_is_in_bounding_set,
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
};
use tokio::runtime::Runtime;

/// What a worker thread keeps: `CAP_BPF`, for reading the kernel program's counters and
/// flow table through the fds the daemon holds (with `kernel.unprivileged_bpf_disabled`
/// set, as distributions ship it, every bpf(2) call needs it, even on a held fd).
pub(crate) const WORKER: CapabilitySet = CapabilitySet::BPF;

/// What the main loop keeps once the data paths are up:
/// - `CAP_BPF` with a kernel path: port-map changes (reload, control socket) and the
///   local-address table are map updates through held fds, which bpf(2) allows only with
///   it;
/// - `CAP_NET_BIND_SERVICE`: a map added later may listen on a port below 1024 (the
///   userspace listener of the hybrid path);
/// - `CAP_NET_ADMIN` only when detaching needs netlink: TC through a clsact qdisc (kernels
///   without TCX), whose filter and qdisc are removed on exit. Links (XDP, TCX) detach by
///   closing their fd.
#[must_use]
pub(crate) fn after_start(kernel: bool, netlink_detach: bool) -> CapabilitySet {
    let mut keep = CapabilitySet::NET_BIND_SERVICE;
    if kernel {
        keep |= CapabilitySet::BPF;
    }
    if netlink_detach {
        keep |= CapabilitySet::NET_ADMIN;
    }
    keep
}

/// Reduces the calling thread's capabilities to `keep` (less whatever it does not have):
/// bounding set first (which needs `CAP_SETPCAP`; without it, the bounding set stays as it
/// is, which matters only to a program this thread would exec, and it execs none), then the
/// ambient, inheritable, permitted and effective sets. Returns what is kept.
///
/// # Errors
/// When the kernel refuses to lower the sets (it never refuses lowering them).
pub(crate) fn keep_only(keep: CapabilitySet) -> io::Result<CapabilitySet> {
    let current = capabilities(None)?;
    if current.effective.contains(CapabilitySet::SETPCAP) {
        for bit in 0..64 {
            let Some(capability) = CapabilitySet::from_bits(1 << bit) else {
                continue;
            };
            if !keep.contains(capability)
                && capability_is_in_bounding_set(capability).unwrap_or(false)
            {
                remove_capability_from_bounding_set(capability)?;
            }
        }
    } else {
        debug!("without CAP_SETPCAP the bounding set stays as it is");
    }
    clear_ambient_capability_set()?;
    let kept = current.permitted & keep;
    set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    Ok(kept)
}

/// A multi-threaded runtime whose threads keep at most `worker_keeps`: each drops the rest
/// as it starts, and this returns only once every worker has (a worker the scheduler has
/// not run yet would otherwise still hold everything when the daemon says it is ready).
///
/// # Errors
/// When the runtime cannot be built, or its workers do not start within 10 seconds.
pub(crate) fn runtime(worker_keeps: CapabilitySet) -> io::Result<Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let started = Arc::new((Mutex::new(0_usize), Condvar::new()));
    let hook = Arc::clone(&started);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .on_thread_start(move || {
            if let Err(error) = keep_only(worker_keeps) {
                error!("a runtime thread cannot drop its capabilities: {error}");
                std::process::abort();
            }
            let (count, changed) = &*hook;
            *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            changed.notify_all();
        })
        .build()?;
    let (count, changed) = &*started;
    let count = count.lock().unwrap_or_else(PoisonError::into_inner);
    let (_count, wait) = changed
        .wait_timeout_while(count, Duration::from_secs(10), |count| *count < workers)
        .unwrap_or_else(PoisonError::into_inner);
    if wait.timed_out() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the runtime's worker threads did not start within 10 s",
        ));
    }
    Ok(runtime)
}

/// [`keep_only`] for the main loop's thread once the data paths are up, logging what it
/// keeps.
///
/// # Errors
/// As [`keep_only`].
pub(crate) fn drop_after_start(kernel: bool, netlink_detach: bool) -> io::Result<()> {
    let kept = keep_only(after_start(kernel, netlink_detach))?;
    info!("capabilities: kept {} and dropped the rest", names(kept));
    Ok(())
}

/// `CAP_BPF, CAP_NET_BIND_SERVICE`, or `none`.
fn names(set: CapabilitySet) -> String {
    let names: Vec<String> = set
        .iter_names()
        .map(|(name, _)| format!("CAP_{name}"))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_loop_keeps_what_it_may_still_need() {
        assert_eq!(
            after_start(true, false),
            CapabilitySet::BPF | CapabilitySet::NET_BIND_SERVICE
        );
        assert_eq!(after_start(false, false), CapabilitySet::NET_BIND_SERVICE);
        assert!(after_start(true, true).contains(CapabilitySet::NET_ADMIN));
        assert_eq!(
            names(after_start(true, false)),
            "CAP_NET_BIND_SERVICE, CAP_BPF"
        );
    }

    #[test]
    fn dropping_in_a_thread_leaves_the_others_alone() {
        let before = capabilities(None).unwrap();
        let kept = std::thread::spawn(|| {
            let kept = keep_only(CapabilitySet::empty()).unwrap();
            (kept, capabilities(None).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(kept.0, CapabilitySet::empty());
        assert_eq!(kept.1.effective, CapabilitySet::empty());
        assert_eq!(kept.1.permitted, CapabilitySet::empty());
        assert_eq!(capabilities(None).unwrap(), before);
    }
}
