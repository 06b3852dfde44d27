//! Anti-replay (digest §3.2, §3.5): the 128-bit sliding window for datagram seqs and
//! the cache of accepted hello nonces.

use std::collections::{HashSet, VecDeque};

use super::{Misbehavior, SessionError, NONCE_LEN};
use crate::id::CanonicalId;

/// Largest window the bitmap holds.
pub const MAX_REPLAY_WINDOW: u64 = 128;
/// How many accepted hellos the responder remembers (\[I\]).
pub const DEFAULT_HELLO_REPLAY_CAPACITY: usize = 1024;

/// The \[I\] replay window: a 128-bit bitmap below the highest seq seen.
///
/// Call [`ReplayWindow::check`] before verifying the MAC and [`ReplayWindow::update`]
/// only after the MAC verified, so forged datagrams never move the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u64,
    /// Bit `i` set: `highest − i` was accepted.
    bitmap: u128,
    window: u64,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new(MAX_REPLAY_WINDOW)
    }
}

impl ReplayWindow {
    /// A window of `window` seqs (clamped to 1..=128; the default is 128).
    pub fn new(window: u64) -> ReplayWindow {
        ReplayWindow { highest: 0, bitmap: 0, window: window.clamp(1, MAX_REPLAY_WINDOW) }
    }

    /// The highest seq accepted so far (0 before any).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Rejects seq 0, a seq at or beyond the window's lower edge, and a seq already seen.
    pub fn check(&self, seq: u64) -> Result<(), SessionError> {
        if seq == 0 {
            return Err(Misbehavior::Replay.into());
        }
        if seq > self.highest {
            return Ok(());
        }
        let age = self.highest - seq;
        if age >= self.window || self.bitmap & (1u128 << age) != 0 {
            return Err(Misbehavior::Replay.into());
        }
        Ok(())
    }

    /// Records an authenticated seq that passed [`ReplayWindow::check`].
    pub fn update(&mut self, seq: u64) {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.bitmap = if shift >= 128 { 0 } else { self.bitmap << shift };
            self.bitmap |= 1;
            self.highest = seq;
        } else {
            let age = self.highest - seq;
            if age < MAX_REPLAY_WINDOW {
                self.bitmap |= 1u128 << age;
            }
        }
    }
}

/// The responder's memory of accepted `(from, nonce)` pairs, oldest evicted first.
#[derive(Clone, Debug)]
pub struct HelloReplayCache {
    capacity: usize,
    order: VecDeque<(CanonicalId, [u8; NONCE_LEN])>,
    seen: HashSet<(CanonicalId, [u8; NONCE_LEN])>,
}

impl Default for HelloReplayCache {
    fn default() -> Self {
        HelloReplayCache::new(DEFAULT_HELLO_REPLAY_CAPACITY)
    }
}

impl HelloReplayCache {
    /// A cache of at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> HelloReplayCache {
        let capacity = capacity.max(1);
        HelloReplayCache { capacity, order: VecDeque::with_capacity(capacity), seen: HashSet::with_capacity(capacity) }
    }

    /// Whether the pair was accepted recently.
    pub fn contains(&self, from: &CanonicalId, nonce: &[u8; NONCE_LEN]) -> bool {
        self.seen.contains(&(from.clone(), *nonce))
    }

    /// Records an accepted hello, evicting the oldest entry when full.
    pub fn insert(&mut self, from: CanonicalId, nonce: [u8; NONCE_LEN]) {
        if !self.seen.insert((from.clone(), nonce)) {
            return;
        }
        self.order.push_back((from, nonce));
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    /// Number of remembered hellos.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn accept(w: &mut ReplayWindow, seq: u64) -> bool {
        let ok = w.check(seq).is_ok();
        if ok {
            w.update(seq);
        }
        ok
    }

    #[test]
    fn window_rules() {
        let mut w = ReplayWindow::default();
        assert!(!accept(&mut w, 0), "seq 0 is always rejected");
        assert!(accept(&mut w, 1));
        assert!(!accept(&mut w, 1));
        assert!(accept(&mut w, 200));
        assert!(accept(&mut w, 73), "age 127 is inside");
        assert!(!accept(&mut w, 72), "age 128 is outside");
        assert!(!accept(&mut w, 73));
        assert!(accept(&mut w, 199));
        assert!(accept(&mut w, 1000));
        assert!(!accept(&mut w, 200), "a jump past the window forgets the bitmap, and the old seq is outside");
        let mut small = ReplayWindow::new(4);
        assert!(accept(&mut small, 10));
        assert!(accept(&mut small, 7));
        assert!(!accept(&mut small, 6));
    }

    #[test]
    fn check_does_not_move_the_window() {
        let mut w = ReplayWindow::default();
        w.update(5);
        assert_eq!(w.check(500), Ok(()));
        assert_eq!(w.highest(), 5);
        assert_eq!(w.check(5), Err(SessionError::PeerMisbehaved(Misbehavior::Replay)));
    }

    #[test]
    fn hello_cache_evicts_oldest() {
        let mut c = HelloReplayCache::new(2);
        let a = CanonicalId::new("a").expect("id");
        c.insert(a.clone(), [1; 16]);
        c.insert(a.clone(), [2; 16]);
        c.insert(a.clone(), [2; 16]);
        assert_eq!(c.len(), 2);
        c.insert(a.clone(), [3; 16]);
        assert!(!c.contains(&a, &[1; 16]));
        assert!(c.contains(&a, &[2; 16]) && c.contains(&a, &[3; 16]));
    }

    proptest! {
        #[test]
        fn matches_a_model(seqs in proptest::collection::vec(0u64..400, 1..300)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::BTreeSet::new();
            let mut highest = 0u64;
            for s in seqs {
                let model = s != 0 && !seen.contains(&s) && (s > highest || highest - s < 128);
                prop_assert_eq!(accept(&mut w, s), model, "seq {}", s);
                if model {
                    seen.insert(s);
                    highest = highest.max(s);
                }
            }
        }
    }
}
