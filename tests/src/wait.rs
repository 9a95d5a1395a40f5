//! Bounded waiting: every loop here ends, by count and by time.

use std::thread;
use std::time::{Duration, Instant};

/// How often [`wait_until`] checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Checks `done` every [`POLL_INTERVAL`] until it returns true or `timeout` has passed.
/// Returns whether it became true.
pub fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    // Bounded twice: by time, and by a count that time alone would give.
    let max_rounds = timeout.as_millis() / POLL_INTERVAL.as_millis() + 2;
    for _ in 0..max_rounds {
        if done() {
            return true;
        }
        if start.elapsed() >= timeout {
            break;
        }
        thread::sleep(POLL_INTERVAL);
    }
    done()
}

/// Like [`poll_until`], but panics with `what` (and the time waited) when `done` never
/// returned true.
pub fn wait_until(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, done),
        "timed out after {timeout:?} waiting for {what}"
    );
}
