//! The loop guard of the userspace UDP path, the kernel's rule made to fit it.
//!
//! Two reflectors aimed at each other bounce one forged datagram back and forth. In the
//! kernel each bounce is the same flow, and a flow remembers its highest TTL; a known flow
//! here does the same (`udp.rs`, with the kernel's arithmetic). But a bounce through this
//! path is often a new flow (a new connect-back socket, a new source port), which has
//! nothing to remember yet; the datagram, though, is the same every time. So the guard remembers, for
//! a short while, the highest TTL each (peer address, payload) arrived with, and the path
//! relays every datagram with its TTL less one, as a router would: a bounced datagram comes
//! back lower each round, while a client repeating itself arrives with the TTL it always
//! has. One arriving [`admission::LOOP_TTL_DROP`] or more below, or with a TTL of 1 or less (it could
//! go no further), is refused as `loop_detected`: two reflectors aimed at each other relay
//! a datagram 4 times in all, as in the kernel.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash as _, Hasher as _},
    net::IpAddr,
    time::Duration,
};

use reflector_common::admission;
use tokio::time::Instant;

/// How long a (peer, payload) is remembered: far longer than a bounce takes, shorter than
/// the time between a health check's repeats.
const REMEMBER: Duration = Duration::from_secs(2);

/// At most this many (peer, payload) pairs are remembered per listening socket.
const CAPACITY: usize = 4_096;

/// What the guard remembers of one (peer, payload).
#[derive(Clone, Copy, Debug)]
struct Seen {
    highest_ttl: u8,
    at: Instant,
}

/// The guard of one listening socket.
#[derive(Debug, Default)]
pub(super) struct LoopGuard {
    seen: HashMap<(IpAddr, u64), Seen>,
}

impl LoopGuard {
    /// Whether the first datagram of a new flow, `payload` from `peer` that arrived with
    /// `ttl` at `now`, may be relayed; `false` for one that went round a loop. (A TTL of 1
    /// or less, which can go no further, is the caller's to refuse, for every datagram.)
    pub(super) fn admit(&mut self, peer: IpAddr, payload: &[u8], ttl: u8, now: Instant) -> bool {
        let mut hasher = DefaultHasher::new();
        payload.hash(&mut hasher);
        let key = (peer.to_canonical(), hasher.finish());
        if self.seen.len() >= CAPACITY && !self.seen.contains_key(&key) {
            self.forget_old(now);
        }
        let seen = self.seen.entry(key).or_insert(Seen {
            highest_ttl: ttl,
            at: now,
        });
        if now.duration_since(seen.at) >= REMEMBER {
            seen.highest_ttl = ttl;
        }
        seen.at = now;
        // The kernel's rule, shared: 4 or more below the highest seen is a loop.
        match admission::loop_detected(seen.highest_ttl, ttl) {
            Ok(highest) => {
                seen.highest_ttl = highest;
                true
            }
            Err(_) => false,
        }
    }

    /// Makes room: forgets what is older than [`REMEMBER`], and when all of it is recent,
    /// the older half (at once, rather than one entry per datagram).
    fn forget_old(&mut self, now: Instant) {
        self.seen
            .retain(|_, seen| now.duration_since(seen.at) < REMEMBER);
        if self.seen.len() >= CAPACITY {
            let mut ages: Vec<Instant> = self.seen.values().map(|seen| seen.at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.seen.retain(|_, seen| seen.at > cutoff);
        }
    }
}

/// The TTL to relay a datagram that arrived with `ttl`: one less, as a router would.
#[must_use]
pub(super) const fn relayed_ttl(ttl: u8) -> u8 {
    ttl.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn a_bounced_datagram_is_relayed_four_times_between_two_reflectors() {
        for start in [64, 255] {
            let (mut r, mut x) = (LoopGuard::default(), LoopGuard::default());
            let now = Instant::now();
            let mut ttl = start;
            let mut relayed = 0;
            for turn in 0..300 {
                let guard = if turn % 2 == 0 { &mut r } else { &mut x };
                if !guard.admit(PEER, b"ping", ttl, now) {
                    break;
                }
                relayed += 1;
                ttl = relayed_ttl(ttl);
            }
            assert_eq!(relayed, 4, "from TTL {start}");
        }
    }

    #[test]
    fn a_client_repeating_itself_is_no_loop() {
        let mut guard = LoopGuard::default();
        let now = Instant::now();
        for i in 0..10 {
            assert!(guard.admit(PEER, b"check", 61, now + Duration::from_millis(i * 100)));
        }
        // 3 below is a route change, not a loop; 4 below within the window is.
        assert!(guard.admit(PEER, b"check", 58, now + Duration::from_secs(1)));
        assert!(!guard.admit(PEER, b"check", 57, now + Duration::from_secs(1)));
        // Another payload, or much later, starts afresh.
        assert!(guard.admit(PEER, b"other", 40, now + Duration::from_secs(1)));
        assert!(guard.admit(PEER, b"check", 40, now + Duration::from_secs(10)));
    }

    #[test]
    fn memory_is_bounded() {
        let mut guard = LoopGuard::default();
        let now = Instant::now();
        for i in 0..3 * CAPACITY as u32 {
            let at = now + Duration::from_micros(u64::from(i));
            guard.admit(PEER, &i.to_be_bytes(), 64, at);
            assert!(guard.seen.len() <= CAPACITY);
        }
    }
}
