//! Keeping memory under `maxmemory`: which key goes, chosen as Redis's
//! `evict.c` chooses.
//!
//! Exact LRU would thread a list through every key (16 bytes each) and update
//! it on every read. Like Redis, we approximate it: sample a few keys at
//! random and evict the one idle longest. A small pool per shard remembers
//! the best candidates across samplings, which brings the choice close to
//! true LRU for little cost. Idleness is counted on the LRU clock, which ticks
//! once per write (see `store::Totals`): only the order of accesses matters,
//! and evictions only happen on writes.
//!
//! A write makes room before it takes its own shard's lock, evicting one key
//! at a time from one shard at a time, starting with its own shard and going
//! round, so no two shard locks are ever held together and the shards stay
//! equally full.

use std::fmt;
use std::str::FromStr;

use super::store::Shard;
use super::{Cache, CacheError, SHARDS};

/// What to evict when a write would take used memory over `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EvictionPolicy {
    /// The least recently used key, approximately (the default).
    #[default]
    AllKeysLru,
    /// The least recently used key among those with a TTL.
    VolatileLru,
    /// Any key, at random.
    AllKeysRandom,
    /// The key with a TTL that expires soonest.
    VolatileTtl,
    /// None: the write fails with [`CacheError::Oom`].
    NoEviction,
}

impl EvictionPolicy {
    /// Every policy, in the order `--help` lists them.
    pub const ALL: [EvictionPolicy; 5] = [
        EvictionPolicy::AllKeysLru,
        EvictionPolicy::VolatileLru,
        EvictionPolicy::AllKeysRandom,
        EvictionPolicy::VolatileTtl,
        EvictionPolicy::NoEviction,
    ];

    /// The name, as Redis spells it (`maxmemory-policy`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EvictionPolicy::AllKeysLru => "allkeys-lru",
            EvictionPolicy::VolatileLru => "volatile-lru",
            EvictionPolicy::AllKeysRandom => "allkeys-random",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
            EvictionPolicy::NoEviction => "noeviction",
        }
    }

    /// Whether only keys with a TTL may be evicted.
    fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru | EvictionPolicy::VolatileTtl
        )
    }
}

impl fmt::Display for EvictionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an eviction policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown eviction policy {:?} (expected one of", self.0)?;
        for (n, policy) in EvictionPolicy::ALL.iter().enumerate() {
            let sep = if n == 0 { " " } else { ", " };
            write!(f, "{sep}{policy}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for EvictionPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<EvictionPolicy, UnknownPolicy> {
        EvictionPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

/// Keys sampled per eviction (Redis's `maxmemory-samples` default).
const SAMPLES: usize = 5;

/// Candidates a pool remembers (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;

/// A key worth evicting, remembered by hash; a lower rank goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    /// The key's LRU clock (LRU policies) or deadline (`volatile-ttl`) when
    /// sampled. If it changed since, the key was used (or its TTL changed),
    /// and the candidate is stale.
    rank: u64,
    hash: u64,
}

/// The best eviction candidates seen so far in one shard.
#[derive(Debug, Default)]
pub(super) struct Pool {
    /// Highest rank first, so that the best candidate is popped off the end.
    candidates: Vec<Candidate>,
}

impl Pool {
    fn offer(&mut self, candidate: Candidate) {
        if let Some(at) = self
            .candidates
            .iter()
            .position(|c| c.hash == candidate.hash)
        {
            self.candidates.remove(at); // sampled again: keep the newer rank
        }
        if self.candidates.len() == POOL_SIZE {
            if candidate.rank >= self.candidates[0].rank {
                return;
            }
            self.candidates.remove(0);
        }
        let at = self.candidates.partition_point(|c| c.rank > candidate.rank);
        self.candidates.insert(at, candidate);
    }

    fn pop(&mut self) -> Option<Candidate> {
        self.candidates.pop()
    }

    pub fn clear(&mut self) {
        self.candidates.clear();
    }
}

impl Shard {
    /// Evicts one key by `policy`; false when this shard has none it may evict.
    /// The population sampled is every key, or for `volatile-*` the keys with a TTL.
    pub(super) fn evict_one(&mut self, policy: EvictionPolicy) -> bool {
        let population = if policy.volatile_only() {
            self.deadlines().len()
        } else {
            self.items().len()
        };
        if population == 0 {
            return false;
        }
        match policy {
            EvictionPolicy::NoEviction => false,
            EvictionPolicy::AllKeysRandom => {
                let i = self.rng.usize(..population);
                self.evict(i);
                true
            }
            EvictionPolicy::AllKeysLru
            | EvictionPolicy::VolatileLru
            | EvictionPolicy::VolatileTtl => {
                // Stale candidates are dropped as they come up. Fresh ones are
                // valid (sampled under this same lock), so the second sampling
                // always finds one.
                for _ in 0..2 {
                    self.sample_into_pool(policy, population);
                    while let Some(c) = self.pool.pop() {
                        let current =
                            self.find_by_hash(c.hash, |i| self.rank(i, policy) == Some(c.rank));
                        if let Some(i) = current {
                            self.evict(i);
                            return true;
                        }
                    }
                }
                false
            }
        }
    }

    fn sample_into_pool(&mut self, policy: EvictionPolicy, population: usize) {
        for _ in 0..SAMPLES {
            let n = self.rng.usize(..population);
            let i = if policy.volatile_only() {
                self.deadlines()[n].item as usize
            } else {
                n
            };
            if let Some(rank) = self.rank(i, policy) {
                let hash = self.hash_at(i);
                self.pool.offer(Candidate { rank, hash });
            }
        }
    }

    /// How soon the item at `i` should go under `policy` (lower first); `None`
    /// when the policy may not evict it.
    fn rank(&self, i: usize, policy: EvictionPolicy) -> Option<u64> {
        match policy {
            EvictionPolicy::AllKeysLru => Some(self.item(i).lru()),
            EvictionPolicy::VolatileLru => self.deadline(i).map(|_| self.item(i).lru()),
            EvictionPolicy::VolatileTtl => self.deadline(i),
            EvictionPolicy::AllKeysRandom | EvictionPolicy::NoEviction => None,
        }
    }

    /// Removes the item at `i` to free memory; one already past its deadline
    /// counts as expired rather than evicted.
    fn evict(&mut self, i: usize) {
        if self.deadline(i).is_some_and(|at| at <= self.now_ms()) {
            self.expire(i);
            return;
        }
        self.remove(i);
        self.stats.evicted += 1;
        self.totals().write();
    }
}

impl Cache {
    /// Evicts keys until `incoming` more bytes fit under `maxmemory`, starting
    /// with shard `home`; [`CacheError::Oom`] when they cannot.
    pub(super) fn make_room(&self, home: usize, incoming: usize) -> Result<(), CacheError> {
        let config = self.config();
        let max = config.maxmemory;
        let fits = || self.totals.used().saturating_add(incoming) <= max;
        if max == 0 || fits() {
            return Ok(());
        }
        let oom = Err(CacheError::Oom { maxmemory: max });
        let policy = config.policy;
        if incoming > max || policy == EvictionPolicy::NoEviction {
            return oom;
        }
        // One key per shard in turn, until a whole round evicts nothing.
        let (mut shard, mut fruitless) = (home, 0);
        while !fits() {
            if fruitless == SHARDS {
                return oom;
            }
            if self.lock(shard).evict_one(policy) {
                fruitless = 0;
            } else {
                fruitless += 1;
            }
            shard = (shard + 1) % SHARDS;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for policy in EvictionPolicy::ALL {
            assert_eq!(policy.as_str().parse::<EvictionPolicy>(), Ok(policy));
        }
        assert_eq!(EvictionPolicy::default(), EvictionPolicy::AllKeysLru);
        let err = "lru".parse::<EvictionPolicy>().unwrap_err().to_string();
        assert!(err.contains("allkeys-lru, volatile-lru"), "{err}");
    }

    #[test]
    fn the_pool_keeps_the_lowest_ranks_and_the_newest_sample() {
        let mut pool = Pool::default();
        for rank in (0..40).rev() {
            pool.offer(Candidate { rank, hash: rank });
        }
        assert_eq!(pool.candidates.len(), POOL_SIZE);
        pool.offer(Candidate { rank: 100, hash: 3 }); // key 3 was used since
        assert_eq!(pool.pop(), Some(Candidate { rank: 0, hash: 0 }));
        assert_eq!(pool.pop(), Some(Candidate { rank: 1, hash: 1 }));
        assert_eq!(pool.pop(), Some(Candidate { rank: 2, hash: 2 }));
        assert_eq!(pool.pop(), Some(Candidate { rank: 4, hash: 4 }));
    }
}
