//! Entering a network namespace for the current thread, and coming back.

use std::fs::File;
use std::marker::PhantomData;

use nix::sched::{CloneFlags, setns};

use crate::netns::Netns;

/// While alive, the current thread is in another network namespace; on drop it is back in
/// the one it was in before. Sockets (and aya links) created meanwhile stay in the entered
/// namespace.
///
/// Not `Send`: a namespace belongs to a thread.
#[derive(Debug)]
pub struct EnteredNetns {
    original: File,
    name: String,
    _not_send: PhantomData<*const ()>,
}

impl EnteredNetns {
    /// Moves the current thread into `ns`.
    #[must_use]
    pub fn enter(ns: &Netns) -> Self {
        let original = File::open("/proc/thread-self/ns/net")
            .unwrap_or_else(|e| panic!("cannot open this thread's network namespace: {e}"));
        let target = File::open(ns.path())
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", ns.path().display()));
        setns(&target, CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("cannot enter network namespace {}: {e}", ns.name()));
        Self {
            original,
            name: ns.name().to_owned(),
            _not_send: PhantomData,
        }
    }
}

impl Drop for EnteredNetns {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original, CloneFlags::CLONE_NEWNET) {
            // A thread left in the wrong namespace would make later tests lie: abort
            // rather than go on (panicking while unwinding would abort anyway).
            eprintln!("cannot leave network namespace {}: {e}", self.name);
            std::process::abort();
        }
    }
}

/// Runs `f` with the current thread inside `ns`.
pub fn in_netns<T>(ns: &Netns, f: impl FnOnce() -> T) -> T {
    let _entered = EnteredNetns::enter(ns);
    f()
}
