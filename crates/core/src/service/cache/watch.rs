//! `WATCH`: which sessions watch which keys, per shard, so that a change to
//! a watched key makes those sessions' next `EXEC` fail, as Redis's
//! optimistic locking does.
//!
//! Exact per key: a shard keeps a table from each watched key to the flags
//! of the sessions watching it, and every change the shard makes to a key
//! (a write from either protocol, a delete, a TTL change, an expiry, an
//! eviction, a flush, either side of a rename) sets the flags of that key's
//! watchers. A write to a key nobody watches costs one branch: the table is
//! `None` while the shard has no watched key.
//!
//! A session holds its [`Flag`] in an `Arc`; the table keeps `Weak`s, so a
//! connection that goes away without `UNWATCH` leaves only dead entries,
//! which `Watched::prune` (run by the housekeeping, a shard per tick)
//! clears. `UNWATCH`, `EXEC` and `DISCARD` remove a session's entries at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use foldhash::fast::RandomState;

/// Set when a key a session watches changes.
#[derive(Debug, Default)]
pub struct Flag(AtomicBool);

impl Flag {
    /// Whether a watched key changed since the flag was made.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// One shard's watched keys.
#[derive(Default)]
pub(super) struct Watched {
    keys: hashbrown::HashMap<Box<[u8]>, Vec<Weak<Flag>>, RandomState>,
}

impl Watched {
    /// `flag` watches `key` (once, however often it is added); whether it
    /// did not already.
    pub fn add(&mut self, key: &[u8], flag: &Arc<Flag>) -> bool {
        let watchers = self.keys.entry(key.into()).or_default();
        watchers.retain(|w| w.strong_count() > 0);
        let new = !watchers
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(flag)));
        if new {
            watchers.push(Arc::downgrade(flag));
        }
        new
    }

    /// `flag` no longer watches `key`.
    pub fn remove(&mut self, key: &[u8], flag: &Arc<Flag>) {
        if let Some(watchers) = self.keys.get_mut(key) {
            watchers
                .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(flag)));
            if watchers.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// `key` changed: every session watching it fails its next `EXEC`.
    pub fn fire(&self, key: &[u8]) {
        if let Some(watchers) = self.keys.get(key) {
            for w in watchers {
                if let Some(flag) = w.upgrade() {
                    flag.set();
                }
            }
        }
    }

    /// Drops the entries of sessions that have gone; returns how many keys
    /// were looked at.
    pub fn prune(&mut self, _budget: usize) -> usize {
        let n = self.keys.len();
        self.keys.retain(|_, watchers| {
            watchers.retain(|w| w.strong_count() > 0);
            !watchers.is_empty()
        });
        n
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
