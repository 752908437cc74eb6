//! The loop's deadlines (idle, frame, lingering close), so it can sleep
//! until the nearest one.
//!
//! mio has no timers. A [`Deadlines`] is a min-heap of `(when, connection)`
//! entries; the reactor keeps two: one entry per connection for its idle
//! timeout or the end of its lingering close, and one per frame begun for
//! `--frame-timeout`. An idle entry is armed at the connection's last
//! activity plus the idle timeout. Activity does not touch the heap (that
//! would be work per request): when an entry comes due, the loop compares it
//! with the connection's real last activity and either closes the connection
//! or re-arms the entry. Entries of closed connections are skipped when they
//! come due, and dropped in bulk when they outnumber the live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A lazy min-heap of deadlines, each for a connection `(slab key, id)`.
#[derive(Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Deadlines {
    /// Arms a deadline for the connection `(key, id)`.
    pub fn arm(&mut self, at: Instant, key: usize, id: u64) {
        self.heap.push(Reverse((at, key, id)));
    }

    /// The nearest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Pops one entry that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => {
                self.heap.pop().map(|Reverse((_, k, id))| (k, id))
            }
            _ => None,
        }
    }

    /// Drops entries of closed connections once they are most of the heap.
    pub fn compact(&mut self, live: usize, is_live: impl Fn(usize, u64) -> bool) {
        if self.heap.len() > 1024 && self.heap.len() > 2 * live {
            self.heap.retain(|Reverse((_, k, id))| is_live(*k, *id));
        }
    }
}
