//! The cache: one keyspace, shared by every connection and by both protocols.
//!
//! The JSON methods (`set get del exists incr expire ttl mget mset getdel
//! scan flush`, in [`methods`]) and the RESP commands both go through the typed API of [`Cache`] and never
//! touch the store. Keys are bytes; a [`Value`] is an integer, raw bytes, or
//! JSON text, and [`value`] holds the conversions both protocols share.
//!
//! How it is built, and why:
//! * The keyspace is split into [`SHARDS`] shards, each behind its own mutex,
//!   so the threaded models contend only when two threads touch the same shard
//!   (the reactor never contends). Keys come from the network, so the hash
//!   choosing the shard and the slot is seeded per process (foldhash).
//! * A shard (`store.rs`) keeps its items in a dense vector with a hash index
//!   into it, so that eviction can pick keys at random and expiry can walk
//!   them, and an item is one allocation holding key and value: about 105
//!   bytes for a small key (Redis: about 130).
//! * Memory is bounded by `maxmemory` (`evict.rs`): a write evicts keys sampled
//!   as Redis samples them, or fails with [`CacheError::Oom`]. Reads and
//!   deletes always work.
//! * Keys expire lazily when touched, and actively (`expire.rs`): a
//!   time-boxed cycle, run by the server's housekeeping, hunts for expired
//!   keys the way Redis does.
//! * A snapshot is taken shard by shard ([`Cache::export_shard`]), so a save
//!   never holds a lock for long; [`Cache::dirty`] says whether anything
//!   changed since.

mod evict;
mod expire;
pub mod methods;
mod ops;
mod scan;
mod store;
pub mod value;
pub mod watch;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use foldhash::fast::RandomState;

pub use evict::{EvictionPolicy, UnknownPolicy};
pub use methods::register;
pub use ops::{ExpireIf, KeyInfo, Rename};
pub use scan::SCAN_MAX_WORK;
pub use store::{malloc_size, SHARED_MIN};
pub use value::{Value, ValueRef};

use expire::Clock;
use store::{hash_key, Item, Payload, Shard, Totals, DEADLINE_BYTES};

use reactor_rpc_protocol::{ErrorCode, RpcError};

/// What [`Cache::get_shared_or_with`] found: a handle on a shared value, or
/// what the caller's function made of a small value shown in place.
pub(crate) enum Shown<R> {
    /// A value kept as shared bytes: a new handle on them (no copy).
    Shared(Value),
    /// A small value's result.
    InPlace(R),
}

/// Shards in the store: a power of two, comfortably above the core count.
pub const SHARDS: usize = 16;

/// How long one housekeeping tick (every 100 ms) may spend removing expired
/// keys: 5% of the time, a fifth of what Redis allows itself, because on the
/// reactor the cycle runs on the event loop. At about 200 ns a key that is
/// 25 000 keys a tick (measured in release on a busy 2-core machine).
pub const EXPIRE_BUDGET: Duration = Duration::from_millis(5);

/// The memory bound and what to do at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes of estimated memory the keys may hold; 0 means unlimited.
    pub maxmemory: usize,
    /// The eviction policy (`--maxmemory-policy`).
    pub policy: EvictionPolicy,
}

impl Default for CacheConfig {
    /// 1 GiB, evicting the least recently used keys.
    fn default() -> CacheConfig {
        CacheConfig {
            maxmemory: 1 << 30,
            policy: EvictionPolicy::AllKeysLru,
        }
    }
}

/// When [`Cache::set`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetCond {
    #[default]
    /// Always store (plain `SET`).
    Always,
    /// Only if the key is missing (Redis `NX`).
    IfAbsent,
    /// Only if the key is present (Redis `XX`).
    IfPresent,
}

/// How [`Cache::set`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetOptions {
    /// A time to live (more than zero). `None` clears the key's TTL, unless `keep_ttl`.
    pub ttl: Option<Duration>,
    /// Whether the key must be absent (NX) or present (XX).
    pub cond: SetCond,
    /// With `ttl: None`, keep the TTL the key has (Redis `KEEPTTL`).
    pub keep_ttl: bool,
    /// An absolute expiry, as Unix time in milliseconds (Redis `EXAT` /
    /// `PXAT`), instead of `ttl`; a time already past stores the key
    /// expired (it is never returned).
    pub at_unix_ms: Option<u64>,
}

impl SetOptions {
    /// Set with a time to live.
    pub fn ttl(ttl: Duration) -> SetOptions {
        SetOptions {
            ttl: Some(ttl),
            ..SetOptions::default()
        }
    }
}

/// A key's time to live (Redis `PTTL`: -2, -1, or milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// No such key.
    Missing,
    /// The key never expires.
    Persistent,
    /// At least 1 ms (a key with less is expired).
    Remaining(Duration),
}

/// Why a cache operation failed. The messages are for people and name no
/// parser positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheError {
    /// `incr` of a value that is not an integer.
    NotInteger,
    /// `incr` of an integer beyond 64-bit signed range.
    OutOfRange,
    /// `incr` whose result would leave 64-bit signed range.
    Overflow,
    /// A value this protocol cannot carry (raw bytes that are not UTF-8, read as JSON).
    WrongType,
    /// The write would take used memory over `maxmemory` and nothing can be evicted.
    /// Nothing can be evicted and the write would pass `--maxmemory`.
    Oom {
        /// The bound, in bytes.
        maxmemory: usize,
    },
    /// A `set` with a TTL of zero.
    InvalidExpireTime,
    /// A key of 4 GiB or more (the store keeps key lengths in 32 bits).
    KeyTooLong,
    /// A string would grow past 512 MiB (Redis's `proto-max-bulk-len`).
    TooLarge,
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::NotInteger => f.write_str("value is not an integer"),
            CacheError::OutOfRange => f.write_str("value is out of the i64 range"),
            CacheError::Overflow => f.write_str("increment would overflow"),
            CacheError::WrongType => {
                f.write_str("the value is binary (not UTF-8) and has no JSON form")
            }
            CacheError::Oom { maxmemory } => write!(
                f,
                "out of memory: used memory would go above --maxmemory ({maxmemory} bytes) \
                 and nothing can be evicted"
            ),
            CacheError::InvalidExpireTime => f.write_str("invalid expire time"),
            CacheError::KeyTooLong => f.write_str("key is 4 GiB or longer"),
            CacheError::TooLarge => {
                f.write_str("string exceeds maximum allowed size (proto-max-bulk-len)")
            }
        }
    }
}

impl std::error::Error for CacheError {}

impl From<CacheError> for RpcError {
    fn from(e: CacheError) -> RpcError {
        let code = match e {
            CacheError::Oom { .. } => ErrorCode::Oom,
            CacheError::WrongType => ErrorCode::WrongType,
            _ => ErrorCode::BadParams,
        };
        RpcError::new(code, e.to_string())
    }
}

/// One key in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Value,
    /// The deadline as wall-clock time, so that it means the same after a restart.
    pub expires_at_unix_ms: Option<u64>,
}

/// What `stats` reports about the cache (Redis `INFO` names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInfo {
    /// Keys stored, including expired ones not yet removed.
    pub keys: usize,
    /// Keys with a TTL.
    pub expires: usize,
    /// Estimated bytes the keys hold (what `maxmemory` bounds).
    pub used_memory: usize,
    /// `--maxmemory` in bytes (0: unlimited).
    pub maxmemory: usize,
    /// The eviction policy.
    pub policy: EvictionPolicy,
    /// Keys evicted to stay under `maxmemory`.
    pub evicted_keys: u64,
    /// Keys removed because their TTL passed.
    pub expired_keys: u64,
    /// Reads that found their key.
    pub keyspace_hits: u64,
    /// Reads that did not.
    pub keyspace_misses: u64,
}

/// The shared key-value store.
pub struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// `maxmemory`, changeable at run time (`CONFIG SET`): read by every
    /// write that must make room, so a change applies to the next write.
    maxmemory: AtomicUsize,
    /// The eviction policy's index in [`EvictionPolicy::ALL`], likewise.
    policy: AtomicUsize,
    totals: Arc<Totals>,
    clock: Clock,
    /// The shard the next active expiry cycle starts with.
    expire_cursor: AtomicUsize,
    /// Shards' contents detached by `FLUSHALL ASYNC`, freed by the
    /// housekeeping in bounded steps ([`Cache::free_garbage`]).
    garbage: Mutex<Vec<Vec<Item>>>,
    /// The shard whose dead watchers the next housekeeping tick prunes.
    prune_cursor: AtomicUsize,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache::new(CacheConfig::default())
    }
}

impl Cache {
    /// An empty cache bounded by `config`.
    pub fn new(config: CacheConfig) -> Cache {
        let hasher = RandomState::default();
        let totals = Arc::new(Totals::default());
        let clock = Clock::new();
        Cache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(hasher.clone(), totals.clone(), clock)))
                .collect(),
            hasher,
            maxmemory: AtomicUsize::new(config.maxmemory),
            policy: AtomicUsize::new(policy_index(config.policy)),
            totals,
            clock,
            expire_cursor: AtomicUsize::new(0),
            garbage: Mutex::new(Vec::new()),
            prune_cursor: AtomicUsize::new(0),
        }
    }

    /// The bound and policy in force.
    pub fn config(&self) -> CacheConfig {
        CacheConfig {
            maxmemory: self.maxmemory.load(Ordering::Relaxed),
            policy: EvictionPolicy::ALL
                .get(self.policy.load(Ordering::Relaxed))
                .copied()
                .unwrap_or_default(),
        }
    }

    /// Changes `maxmemory` at run time (`CONFIG SET maxmemory`); the next
    /// write that needs room evicts down to it. 0 means unlimited.
    pub fn set_maxmemory(&self, bytes: usize) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
    }

    /// Changes the eviction policy at run time (`CONFIG SET maxmemory-policy`).
    pub fn set_policy(&self, policy: EvictionPolicy) {
        self.policy.store(policy_index(policy), Ordering::Relaxed);
    }

    /// The value of `key`. Counts a keyspace hit or miss and records the
    /// access for LRU eviction.
    ///
    /// A value of [`SHARED_MIN`] bytes or more comes back as a handle on the
    /// stored bytes: cloning it costs a reference count, never a copy, so a
    /// reply can queue it by reference into many connections' output. Smaller
    /// values are copied. To read without any allocation, see [`Cache::get_with`].
    pub fn get(&self, key: &[u8]) -> Option<Value> {
        self.read(key, Item::to_value)
    }

    /// Like [`Cache::get`], but shows the value to `f` in place, under the
    /// shard's lock (so `f` should be quick: copying into an output buffer is).
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(ValueRef<'_>) -> R) -> Option<R> {
        self.read(key, |item| f(item.value_ref()))
    }

    /// Like [`Cache::get_with`], but a value kept as shared bytes (of
    /// [`SHARED_MIN`] bytes or more) comes back as a handle on them, for a
    /// reply to queue by reference; `f` sees only the small values.
    pub(crate) fn get_shared_or_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(ValueRef<'_>) -> R,
    ) -> Option<Shown<R>> {
        self.read(key, |item| match item.shared_value() {
            Some(value) => Shown::Shared(value),
            None => Shown::InPlace(f(item.value_ref())),
        })
    }

    fn read<R>(&self, key: &[u8], f: impl FnOnce(&Item) -> R) -> Option<R> {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let i = shard.read_live(hash, key)?;
        shard.touch(i);
        Some(f(shard.item(i)))
    }

    /// Stores `value` under `key`; `Ok(false)` when `opt.cond` was not met.
    ///
    /// A `Raw` or `Json` value of [`SHARED_MIN`] bytes or more is kept as the
    /// `Bytes` given, without a copy: pass one that owns just its bytes (from
    /// a `Vec`, or `Bytes::copy_from_slice`), not a slice of a larger buffer,
    /// which it would keep alive unaccounted.
    pub fn set(&self, key: &[u8], value: Value, opt: SetOptions) -> Result<bool, CacheError> {
        self.store(key, Payload::of(&value), opt, true)
    }

    /// [`Cache::set`] from borrowed bytes (copied once, into the store).
    pub fn set_ref(
        &self,
        key: &[u8],
        value: ValueRef<'_>,
        opt: SetOptions,
    ) -> Result<bool, CacheError> {
        self.store(key, Payload::of_ref(value), opt, true)
    }

    fn store(
        &self,
        key: &[u8],
        payload: Payload<'_>,
        opt: SetOptions,
        enforce_maxmemory: bool,
    ) -> Result<bool, CacheError> {
        self.store_get(key, payload, opt, enforce_maxmemory, false)
            .map(|(stored, _)| stored)
    }

    /// [`Cache::store`], also answering the value the key held before (when
    /// `old` is asked for: `SET ... GET`, `GETSET`).
    fn store_get(
        &self,
        key: &[u8],
        payload: Payload<'_>,
        opt: SetOptions,
        enforce_maxmemory: bool,
        old: bool,
    ) -> Result<(bool, Option<Value>), CacheError> {
        check_key(key)?;
        let deadline = match (opt.at_unix_ms, opt.ttl) {
            (Some(at), _) => Some(self.clock.deadline_at_unix_ms(at)),
            (None, Some(ttl)) if ttl.is_zero() => return Err(CacheError::InvalidExpireTime),
            (None, Some(ttl)) => Some(self.clock.deadline_after(ttl)),
            (None, None) => None,
        };
        let (hash, s) = self.locate(key);
        if enforce_maxmemory {
            let deadline_bytes = if deadline.is_some() {
                DEADLINE_BYTES
            } else {
                0
            };
            self.make_room(s, payload.item_bytes(key.len()) + deadline_bytes)?;
        }
        let mut shard = self.lock(s);
        let found = shard.live(hash, key);
        let previous = match (old, found) {
            (true, Some(i)) => Some(shard.item(i).to_value()),
            _ => None,
        };
        match (opt.cond, found) {
            (SetCond::IfAbsent, Some(_)) | (SetCond::IfPresent, None) => {
                return Ok((false, previous))
            }
            _ => {}
        }
        let lru = self.totals.write();
        let i = match found {
            Some(i) => {
                shard.replace(i, payload, lru);
                i
            }
            None => shard.insert(hash, key, payload, lru),
        };
        if deadline.is_some() || !opt.keep_ttl {
            shard.set_deadline(i, deadline);
        }
        Ok((true, previous))
    }

    /// Removes `key`; whether it was there.
    pub fn del(&self, key: &[u8]) -> bool {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let Some(i) = shard.live(hash, key) else {
            return false;
        };
        shard.remove(i);
        self.totals.write();
        true
    }

    /// Whether `key` holds a live value.
    pub fn exists(&self, key: &[u8]) -> bool {
        let (hash, s) = self.locate(key);
        self.lock(s).live(hash, key).is_some()
    }

    /// Adds `by` to the integer at `key` (a missing key counts from 0) and
    /// returns the result; the key's TTL stays. See [`ValueRef::to_i64`] for
    /// what counts as an integer; a refused increment changes nothing.
    pub fn incr_by(&self, key: &[u8], by: i64) -> Result<i64, CacheError> {
        check_key(key)?;
        let (hash, s) = self.locate(key);
        self.make_room(s, Payload::Int(by).item_bytes(key.len()))?;
        let mut shard = self.lock(s);
        let (n, found) = match shard.live(hash, key) {
            Some(i) => {
                let old = shard.item(i).value_ref().to_i64()?;
                (old.checked_add(by).ok_or(CacheError::Overflow)?, Some(i))
            }
            None => (by, None),
        };
        let lru = self.totals.write();
        match found {
            Some(i) => shard.replace(i, Payload::Int(n), lru),
            None => {
                shard.insert(hash, key, Payload::Int(n), lru);
            }
        }
        Ok(n)
    }

    /// Gives `key` a time to live; `Ok(false)` when the key is missing. A TTL
    /// of zero deletes the key (as Redis does for a time in the past). A TTL
    /// too long for the clock is clamped to the end of time, so this never
    /// fails today; the `Result` keeps room for a limit.
    pub fn expire(&self, key: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let Some(i) = shard.live(hash, key) else {
            return Ok(false);
        };
        if ttl.is_zero() {
            shard.remove(i);
        } else {
            shard.set_deadline(i, Some(self.clock.deadline_after(ttl)));
        }
        self.totals.write();
        Ok(true)
    }

    /// Removes the TTL of `key`; whether it had one.
    pub fn persist(&self, key: &[u8]) -> bool {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let Some(i) = shard.live(hash, key) else {
            return false;
        };
        if shard.deadline(i).is_none() {
            return false;
        }
        shard.set_deadline(i, None);
        self.totals.write();
        true
    }

    /// The time `key` has left to live.
    pub fn ttl(&self, key: &[u8]) -> Ttl {
        let (hash, s) = self.locate(key);
        let now = self.clock.now_ms();
        let mut shard = self.lock(s);
        let Some(i) = shard.live_at(hash, key, now) else {
            return Ttl::Missing;
        };
        match shard.deadline(i) {
            None => Ttl::Persistent,
            Some(at) => Ttl::Remaining(Duration::from_millis(at - now)),
        }
    }

    /// Keys stored, including expired ones not yet removed.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).items().len()).sum()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys with a TTL, including expired ones not yet removed.
    pub fn expires_len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).deadlines().len()).sum()
    }

    /// Estimated bytes held by the keys: each key's allocations rounded up to
    /// malloc's sizes, plus its item, its index slot and its deadline.
    pub fn used_memory(&self) -> usize {
        self.totals.used()
    }

    /// Counters and sizes, for `stats`, `INFO` and the metrics.
    pub fn info(&self) -> CacheInfo {
        let config = self.config();
        let mut info = CacheInfo {
            keys: 0,
            expires: 0,
            used_memory: 0,
            maxmemory: config.maxmemory,
            policy: config.policy,
            evicted_keys: 0,
            expired_keys: 0,
            keyspace_hits: 0,
            keyspace_misses: 0,
        };
        for shard in self.shards.iter() {
            let shard = lock(shard);
            info.keys += shard.items().len();
            info.expires += shard.deadlines().len();
            info.evicted_keys += shard.stats.evicted;
            info.expired_keys += shard.stats.expired;
            info.keyspace_hits += shard.stats.hits;
            info.keyspace_misses += shard.stats.misses;
        }
        info.used_memory = self.totals.used();
        info
    }

    /// Writes so far (sets, increments, deletes, TTL changes, expiries,
    /// evictions): compare two readings to know whether anything changed.
    pub fn dirty(&self) -> u64 {
        self.totals.dirty()
    }

    /// How many shards the keys are spread over (for snapshots, which visit them one by one).
    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    /// The live keys of shard `i` (expired ones left out), copied out under
    /// its lock; shared values are handles, not copies. A save iterates
    /// `0..shard_count()`, so no lock is held for longer than one shard takes.
    pub fn export_shard(&self, i: usize) -> Vec<Record> {
        let Some(shard) = self.shards.get(i) else {
            return Vec::new();
        };
        let shard = lock(shard);
        let now = self.clock.now_ms();
        let unix_now = unix_ms();
        let live = |item: &&Item| shard.deadline_of(item).is_none_or(|at| at > now);
        shard
            .items()
            .iter()
            .filter(live)
            .map(|item| Record {
                key: Bytes::copy_from_slice(item.key()),
                value: item.to_value(),
                expires_at_unix_ms: shard
                    .deadline_of(item)
                    .map(|at| unix_now.saturating_add(at - now)),
            })
            .collect()
    }

    /// Loads records (from a snapshot), replacing keys of the same name and
    /// leaving out those already expired; returns how many were loaded. Like
    /// Redis loading a snapshot, it ignores `maxmemory`: the next writes
    /// evict back under it.
    pub fn import(&self, records: impl IntoIterator<Item = Record>) -> usize {
        let mut loaded = 0;
        for record in records {
            let opt = match record.expires_at_unix_ms {
                None => SetOptions::default(),
                Some(at) => match at.checked_sub(unix_ms()) {
                    Some(left) if left > 0 => SetOptions::ttl(Duration::from_millis(left)),
                    _ => continue,
                },
            };
            if self.store(&record.key, Payload::of(&record.value), opt, false) == Ok(true) {
                loaded += 1;
            }
        }
        loaded
    }

    /// The hash of `key` and the shard it lives in. The shard comes from
    /// bits the tables do not use: hashbrown takes the low bits for the slot
    /// and the top 7 for the tag.
    fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = hash_key(&self.hasher, key);
        (hash, (hash >> 32) as usize % SHARDS)
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        lock(&self.shards[shard])
    }

    /// The shard, unless another thread holds it.
    fn try_lock(&self, shard: usize) -> Option<MutexGuard<'_, Shard>> {
        match self.shards[shard].try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn next_expire_shard(&self) -> usize {
        self.expire_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS
    }
}

fn policy_index(policy: EvictionPolicy) -> usize {
    EvictionPolicy::ALL
        .iter()
        .position(|&p| p == policy)
        .unwrap_or(0)
}

fn check_key(key: &[u8]) -> Result<(), CacheError> {
    if u32::try_from(key.len()).is_err() {
        return Err(CacheError::KeyTooLong);
    }
    Ok(())
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave it inconsistent in a way that
    // matters more than losing the whole cache would, so keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
