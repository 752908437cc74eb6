//! Walking and emptying the whole keyspace without stalling anyone: `KEYS`,
//! `SCAN`, `RANDOMKEY`, `FLUSHALL`/`FLUSHDB` (sync and async), and the
//! housekeeping that frees what an async flush left and prunes `WATCH`
//! entries of sessions that have gone.
//!
//! Every walk goes shard by shard and never holds two shard locks, so a
//! walk over a million keys holds one lock for one shard's share (about
//! 60 000 keys, a few milliseconds) at a time, and other connections' commands
//! on other shards go on meanwhile.
//!
//! `SCAN`'s cursor names a shard and a position in its dense vector of items,
//! walked downwards: see [`Shard::scan_down`] for why that keeps Redis's
//! guarantee (a key present for the whole iteration is returned at least
//! once) although a removal moves the last item into the hole. The cursor is
//! `position << 4 | shard`, where position 0 means "from the top": the
//! first call's cursor 0 is shard 0 from the top, and the reply's cursor is
//! 0 once shard 15 is done. The hash that places a key in a shard is fixed
//! for the life of the process, so a cursor stays meaningful between calls.

use super::store::Item;
use super::{lock, Cache, SHARDS};

/// The most items one `SCAN` call looks at, whatever its `COUNT`: `COUNT`
/// is a hint, and this bounds the time one call holds the loop (about a
/// millisecond).
pub const SCAN_MAX_WORK: usize = 16 * 1024;

/// Items an async flush frees per housekeeping tick (about a millisecond).
const FREE_PER_TICK: usize = 16 * 1024;

/// Shards whose dead watchers one housekeeping tick prunes.
const PRUNE_SHARDS_PER_TICK: usize = 1;

impl Cache {
    /// Calls `f` with every live key, shard by shard (one lock at a time).
    /// Expired keys not yet removed are left out, as Redis's `KEYS` does.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8])) {
        self.for_each_key_while(|key| {
            f(key);
            true
        });
    }

    /// [`Cache::for_each_key`] until `f` answers `false` (a reply over its
    /// bound, say); returns whether every key was visited.
    pub fn for_each_key_while(&self, mut f: impl FnMut(&[u8]) -> bool) -> bool {
        let now = self.clock.now_ms();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for item in shard.items() {
                if shard.deadline_of(item).is_none_or(|at| at > now) && !f(item.key()) {
                    return false;
                }
            }
        }
        true
    }

    /// One step of `SCAN`: looks at up to `count` items (at least 1, at most
    /// [`SCAN_MAX_WORK`]) from `cursor` on, calling `f` with each live key,
    /// and returns the cursor to continue from (0 when the walk is done).
    /// Expired keys met are removed. See the module docs for the guarantee.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8])) -> u64 {
        let mut shard = (cursor & 0xf) as usize;
        let mut from = usize::try_from(cursor >> 4).unwrap_or(usize::MAX);
        let mut budget = count.clamp(1, SCAN_MAX_WORK);
        loop {
            let top = if from == 0 { usize::MAX } else { from };
            let (left, spent) = {
                let mut locked = self.lock(shard);
                let len = locked.items().len();
                let start = top.min(len);
                let left = locked.scan_down(start, budget, |item: &Item| f(item.key()));
                (left, start - left)
            };
            budget = budget.saturating_sub(spent.max(1));
            if left > 0 {
                return (left as u64) << 4 | shard as u64;
            }
            shard += 1;
            from = 0;
            if shard == SHARDS {
                return 0;
            }
            if budget == 0 {
                return shard as u64;
            }
        }
    }

    /// A random live key, if there is one: a shard chosen in proportion to
    /// its size, then an item in it. Expired keys met are removed and the
    /// draw repeated, up to 100 times (as Redis tries).
    pub fn random_key(&self) -> Option<Vec<u8>> {
        for _ in 0..100 {
            let sizes: Vec<usize> = self.shards.iter().map(|s| lock(s).items().len()).collect();
            let total: usize = sizes.iter().sum();
            if total == 0 {
                return None;
            }
            let mut n = fastrand::usize(..total);
            let mut s = 0;
            while s + 1 < SHARDS && n >= sizes[s] {
                n -= sizes[s];
                s += 1;
            }
            let mut shard = self.lock(s);
            if n >= shard.items().len() {
                continue; // it shrank meanwhile
            }
            let now = shard.now_ms();
            if shard.deadline(n).is_some_and(|at| at <= now) {
                shard.expire(n);
                continue;
            }
            return Some(shard.item(n).key().to_vec());
        }
        None
    }

    /// Removes every key, shard by shard. Each shard's items are detached
    /// under its lock in O(1) and freed after it is released, so no lock is
    /// held while a million keys are freed.
    pub fn flush_all(&self) {
        for shard in self.shards.iter() {
            let items = lock(shard).detach();
            drop(items);
        }
        self.totals.write();
    }

    /// Removes every key at once, freeing them later: each shard's items
    /// are detached in O(1), and [`Cache::free_garbage`] (called by the
    /// housekeeping) frees them in bounded steps (`FLUSHALL ASYNC`). The
    /// keys are gone and their memory no longer counts at once.
    pub fn flush_all_async(&self) {
        let mut detached = Vec::new();
        for shard in self.shards.iter() {
            let items = lock(shard).detach();
            if !items.is_empty() {
                detached.push(items);
            }
        }
        self.totals.write();
        if !detached.is_empty() {
            lock_garbage(self).extend(detached);
        }
    }

    /// Frees up to `budget` items left by [`Cache::flush_all_async`];
    /// returns how many are still waiting.
    pub fn free_garbage(&self, budget: usize) -> usize {
        let mut garbage = lock_garbage(self);
        let mut budget = budget;
        while budget > 0 {
            let Some(last) = garbage.last_mut() else {
                break;
            };
            let take = budget.min(last.len());
            let keep = last.len() - take;
            last.truncate(keep);
            budget -= take;
            if last.is_empty() {
                garbage.pop();
            }
        }
        garbage.iter().map(Vec::len).sum()
    }

    /// The housekeeping's share of this module: frees some of what an async
    /// flush left and prunes the watchers of gone sessions in one shard.
    pub(crate) fn tidy(&self) {
        self.free_garbage(FREE_PER_TICK);
        for _ in 0..PRUNE_SHARDS_PER_TICK {
            let s = self
                .prune_cursor
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                % SHARDS;
            if let Some(mut shard) = self.try_lock(s) {
                shard.prune_watches(usize::MAX);
            }
        }
    }
}

fn lock_garbage(cache: &Cache) -> std::sync::MutexGuard<'_, Vec<Vec<Item>>> {
    cache
        .garbage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
