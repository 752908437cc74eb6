//! Expiry: the clock deadlines are kept on, and the active expiry cycle.
//!
//! A key past its deadline is never returned, and is removed when touched
//! (`Shard::live`). Keys nobody touches again would keep their memory, so
//! [`Cache::active_expire_cycle`] hunts for them the way Redis's
//! `activeExpireCycle` (`expire.c`) does: look at 20 keys with a deadline in a
//! shard, remove the expired ones, and look at 20 more while more than 25% of
//! a round had expired (the shard then likely holds many more); stop when the
//! time budget is spent and resume at the next shard on the next call. The
//! work per call is bounded by its budget, and a shard is left once fewer than
//! a quarter of what it showed was dead, so dead keys hold about a quarter of
//! the memory of the keys with a TTL at most, and usually far less.
//!
//! Which 20: like Redis 6 (whose `dictScan` cursor replaced the random
//! sampling of earlier versions), each shard keeps a cursor into its dense
//! vector of deadlines and a round continues from it. Every key is looked at
//! once per pass, and memory is read in order rather than at random, which
//! made removing a mass of expired keys three to five times faster.
//!
//! Deadlines are milliseconds on a monotonic clock, 8 bytes instead of an
//! `Instant`'s 16. A key set to live `ttl` ms expires when the clock reaches
//! now + `ttl`: like Redis, within a millisecond of its time.

use std::time::{Duration, Instant};

use super::{Cache, SHARDS};
use crate::service::cache::store::Shard;

/// Milliseconds since the cache was created, never going back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    epoch: Instant,
    /// Unix time in milliseconds when `epoch` was taken: absolute times
    /// (`EXPIREAT`, `PEXPIRETIME`) map onto deadlines through this one
    /// offset, so that a time set is the time read back, to the millisecond.
    epoch_unix_ms: u64,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
            epoch_unix_ms: super::unix_ms(),
        }
    }

    /// Unix time in milliseconds, as this clock runs.
    pub fn unix_now_ms(&self) -> u64 {
        self.epoch_unix_ms.saturating_add(self.now_ms())
    }

    /// A deadline as Unix time in milliseconds.
    pub fn deadline_to_unix_ms(&self, deadline: u64) -> u64 {
        self.epoch_unix_ms.saturating_add(deadline)
    }

    /// The deadline at Unix time `at_ms` (0, long past, for a time before
    /// the clock started).
    pub fn deadline_at_unix_ms(&self, at_ms: u64) -> u64 {
        at_ms.saturating_sub(self.epoch_unix_ms)
    }

    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The deadline `ttl` from now: rounded up to whole milliseconds, and
    /// clamped to the end of time rather than overflowing.
    pub fn deadline_after(&self, ttl: Duration) -> u64 {
        let ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        self.now_ms().saturating_add(ms)
    }
}

/// Keys sampled per round (Redis's `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
const KEYS_PER_ROUND: usize = 20;

/// A shard is sampled again while more than this share of a sample had expired.
const STALE_PERCENT: usize = 25;

/// The clock is read once per this many samples (it costs more than a sample).
const SAMPLES_PER_CLOCK_READ: usize = 16;

/// The time a cycle may spend.
struct Budget {
    start: Instant,
    limit: Duration,
    samples: usize,
    spent: bool,
}

impl Budget {
    /// Whether one more key may be sampled.
    fn take(&mut self) -> bool {
        self.samples += 1;
        if self.samples % SAMPLES_PER_CLOCK_READ == 0 && self.start.elapsed() >= self.limit {
            self.spent = true;
        }
        !self.spent
    }
}

/// What one round in one shard saw.
#[derive(Debug, Default, Clone, Copy)]
struct Round {
    sampled: usize,
    expired: usize,
}

impl Round {
    fn mostly_stale(self) -> bool {
        self.sampled > 0 && self.expired * 100 > self.sampled * STALE_PERCENT
    }
}

impl Shard {
    /// Looks at up to [`KEYS_PER_ROUND`] keys with a deadline, from where the
    /// last round stopped, and removes the expired ones.
    fn expire_round(&mut self, budget: &mut Budget) -> Round {
        let now = self.now_ms();
        let mut round = Round::default();
        while round.sampled < KEYS_PER_ROUND {
            let volatile = self.deadlines().len();
            // A shard with few keys left has each looked at once.
            if volatile == 0 || round.sampled >= volatile || !budget.take() {
                break;
            }
            if self.expire_cursor >= volatile {
                self.expire_cursor = 0;
            }
            round.sampled += 1;
            if self.expire_if_due(self.expire_cursor, now) {
                // The last deadline moved into this slot: it is next.
                round.expired += 1;
            } else {
                self.expire_cursor += 1;
            }
        }
        round
    }

    fn expire_if_due(&mut self, slot: usize, now: u64) -> bool {
        let deadline = &self.deadlines()[slot];
        if deadline.at > now {
            return false;
        }
        let item = deadline.item as usize;
        self.expire(item);
        true
    }
}

impl Cache {
    /// Removes expired keys nobody touches, spending about `budget` (see the
    /// module docs); returns how many it removed. Call it periodically: the
    /// server's housekeeping does, every 100 ms. A shard is locked for one
    /// round of 20 samples at a time, never for the whole cycle, and a shard
    /// another thread holds (a snapshot copying it out) is skipped until the
    /// next cycle: the event loop never waits for it.
    pub fn active_expire_cycle(&self, budget: Duration) -> usize {
        let mut budget = Budget {
            start: Instant::now(),
            limit: budget,
            samples: 0,
            spent: false,
        };
        let mut removed = 0;
        for _ in 0..SHARDS {
            let shard = self.next_expire_shard();
            loop {
                let Some(mut locked) = self.try_lock(shard) else {
                    break;
                };
                let round = locked.expire_round(&mut budget);
                drop(locked);
                removed += round.expired;
                if budget.spent {
                    return removed;
                }
                if !round.mostly_stale() {
                    break;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_saturate() {
        let clock = Clock::new();
        let now = clock.now_ms();
        let d = clock.deadline_after(Duration::from_micros(1));
        assert!(d > now && d <= clock.now_ms() + 1, "{now} {d}");
        assert_eq!(clock.deadline_after(Duration::MAX), u64::MAX);
        assert_eq!(
            clock.deadline_after(Duration::from_millis(u64::MAX)),
            u64::MAX
        );
    }

    #[test]
    fn a_round_is_stale_above_a_quarter() {
        let r = |sampled, expired| Round { sampled, expired }.mostly_stale();
        assert!(!r(20, 5));
        assert!(r(20, 6));
        assert!(!r(0, 0));
        assert!(r(1, 1));
    }
}
