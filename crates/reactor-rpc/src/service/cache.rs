//! The Redis-like cache: `set get del exists incr expire ttl`.
//!
//! One store shared by every connection, split into shards, each behind its own
//! mutex, so the threaded models contend only when two threads touch the same
//! shard (the reactor never contends). Expiry works as in Redis: an expired key
//! is never returned and is dropped when touched (lazily), and
//! [`Cache::sweep`] removes expired keys nobody touches, a bounded batch per
//! tick, so dead keys do not keep memory.
//!
//! Keys come from the network, so both the shard choice and the maps use a
//! randomly seeded hash (foldhash: fast, and seeded per process).
//!
//! Each shard keeps a min-heap of (deadline, version, key). Setting or expiring
//! a key bumps its version, so an old heap entry is recognised as stale and
//! skipped; the heap is rebuilt when stale entries outnumber live keys.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Context, Method, Registry};
use crate::protocol::message::write_int;
use crate::protocol::{Json, RpcError};

/// Shards in the store: a power of two, comfortably above the core count.
const SHARDS: usize = 16;

/// The most expired keys one [`Cache::sweep`] removes from each shard.
pub const SWEEP_BUDGET: usize = 128;

/// A stored value. Integers are kept as integers so `incr` needs no parsing.
enum Value {
    Int(i64),
    Json(Box<RawValue>),
}

struct Entry {
    value: Value,
    expires: Option<Instant>,
    version: u64,
}

impl Entry {
    fn live(&self, now: impl FnOnce() -> Instant) -> bool {
        self.expires.is_none_or(|t| t > now())
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<str>, Entry, RandomState>,
    deadlines: BinaryHeap<Reverse<(Instant, u64, Box<str>)>>,
    next_version: u64,
}

impl Shard {
    /// The live entry for `key`; an expired one is removed on the way.
    fn live_entry(&mut self, key: &str) -> Option<&mut Entry> {
        let expired = !self.map.get(key)?.live(Instant::now);
        if expired {
            self.map.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn version(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// Sets the deadline of an existing entry and records it in the heap.
    fn set_deadline(&mut self, key: &str, deadline: Option<Instant>) {
        let version = self.version();
        let Some(entry) = self.map.get_mut(key) else {
            return;
        };
        entry.version = version;
        entry.expires = deadline;
        if let Some(t) = deadline {
            self.deadlines.push(Reverse((t, version, key.into())));
            if self.deadlines.len() > 64 && self.deadlines.len() > 2 * self.map.len() {
                self.rebuild_deadlines();
            }
        }
    }

    fn rebuild_deadlines(&mut self) {
        let live = self
            .map
            .iter()
            .filter_map(|(k, e)| e.expires.map(|t| Reverse((t, e.version, k.clone()))));
        self.deadlines = live.collect();
    }

    fn sweep(&mut self, now: Instant, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            match self.deadlines.peek() {
                Some(Reverse((t, _, _))) if *t <= now => {}
                _ => break,
            }
            let Some(Reverse((t, version, key))) = self.deadlines.pop() else {
                break;
            };
            if self
                .map
                .get(&key)
                .is_some_and(|e| e.version == version && e.expires == Some(t))
            {
                self.map.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

/// The shared key-value store.
pub struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    sweep_cursor: AtomicUsize,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache::new()
    }
}

impl Cache {
    pub fn new() -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::default(),
            sweep_cursor: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        lock(&self.shards[i])
    }

    /// Keys stored, including expired ones not yet swept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes up to `budget` expired keys from each of a few shards; returns how many.
    /// Called every housekeeping tick, it visits every shard within a second.
    pub fn sweep(&self, now: Instant, budget: usize) -> usize {
        let start = self.sweep_cursor.fetch_add(2, Ordering::Relaxed);
        (start..start + 2)
            .map(|i| lock(&self.shards[i % SHARDS]).sweep(now, budget))
            .sum()
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave it inconsistent in a way that
    // matters more than losing the whole cache would, so keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Parses cache params, which are always an object (serde alone would also
/// take `["k"]` as `{"key": "k"}`).
fn params<'a, T: Deserialize<'a>>(raw: Json<'a>) -> Result<T, RpcError> {
    if !raw.get().starts_with('{') {
        return Err(RpcError::bad_params(
            "params must be an object with a string \"key\"",
        ));
    }
    super::params(raw)
}

fn deadline_in(ttl_ms: u64) -> Result<Instant, RpcError> {
    if ttl_ms == 0 {
        return Err(RpcError::bad_params("ttl_ms must be an integer > 0"));
    }
    Instant::now()
        .checked_add(Duration::from_millis(ttl_ms))
        .ok_or_else(|| RpcError::bad_params("ttl_ms is too large"))
}

#[derive(Deserialize)]
struct KeyParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
}

#[derive(Deserialize)]
struct SetParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: &'a RawValue,
    ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
struct IncrParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    by: Option<i64>,
}

#[derive(Deserialize)]
struct ExpireParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    ttl_ms: u64,
}

struct Set;
struct Get;
struct Del;
struct Exists;
struct Incr;
struct Expire;
struct Ttl;

/// Adds the cache methods to a registry.
pub fn register(r: &mut Registry) {
    r.insert("set", Set)
        .insert("get", Get)
        .insert("del", Del)
        .insert("exists", Exists)
        .insert("incr", Incr)
        .insert("expire", Expire)
        .insert("ttl", Ttl);
}

fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

impl Method for Set {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: SetParams = params(raw)?;
        let deadline = p.ttl_ms.map(deadline_in).transpose()?;
        let value = Value::Json(p.value.to_owned());
        let mut shard = cx.cache.shard(&p.key);
        match shard.map.get_mut(&*p.key) {
            Some(entry) => entry.value = value,
            None => {
                let entry = Entry {
                    value,
                    expires: None,
                    version: 0,
                };
                shard.map.insert((*p.key).into(), entry);
            }
        }
        shard.set_deadline(&p.key, deadline);
        write_bool(out, true);
        Ok(())
    }
}

impl Method for Get {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        match cx.cache.shard(&p.key).live_entry(&p.key).map(|e| &e.value) {
            Some(Value::Int(n)) => write_int(out, *n),
            Some(Value::Json(v)) => out.extend_from_slice(v.get().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        Ok(())
    }
}

impl Method for Del {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        let mut shard = cx.cache.shard(&p.key);
        let existed = shard.live_entry(&p.key).is_some();
        shard.map.remove(&*p.key);
        out.push(if existed { b'1' } else { b'0' });
        Ok(())
    }
}

impl Method for Exists {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        write_bool(out, cx.cache.shard(&p.key).live_entry(&p.key).is_some());
        Ok(())
    }
}

impl Method for Incr {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: IncrParams = params(raw)?;
        let by = p.by.unwrap_or(1);
        let mut shard = cx.cache.shard(&p.key);
        let n = match shard.live_entry(&p.key) {
            Some(entry) => {
                let old = match &entry.value {
                    Value::Int(n) => *n,
                    Value::Json(v) => serde_json::from_str::<i64>(v.get())
                        .map_err(|_| RpcError::bad_params("value is not an integer"))?,
                };
                let n = old
                    .checked_add(by)
                    .ok_or_else(|| RpcError::bad_params("increment would overflow"))?;
                entry.value = Value::Int(n);
                n
            }
            None => {
                let entry = Entry {
                    value: Value::Int(by),
                    expires: None,
                    version: 0,
                };
                shard.map.insert(p.key.into(), entry);
                by
            }
        };
        write_int(out, n);
        Ok(())
    }
}

impl Method for Expire {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: ExpireParams = params(raw)?;
        let deadline = deadline_in(p.ttl_ms)?;
        let mut shard = cx.cache.shard(&p.key);
        let exists = shard.live_entry(&p.key).is_some();
        if exists {
            shard.set_deadline(&p.key, Some(deadline));
        }
        write_bool(out, exists);
        Ok(())
    }
}

impl Method for Ttl {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        let ttl = match cx.cache.shard(&p.key).live_entry(&p.key) {
            None => -2,
            Some(Entry { expires: None, .. }) => -1,
            Some(Entry {
                expires: Some(t), ..
            }) => {
                // Round up, so a key set with ttl_ms 100 reads 100 right away.
                let left = t.saturating_duration_since(Instant::now());
                i64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
            }
        };
        write_int(out, ttl);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_expired_keys_in_bounded_batches() {
        let mut shard = Shard::default();
        let past = Instant::now();
        for i in 0..10 {
            let key = format!("k{i}");
            let entry = Entry {
                value: Value::Int(i),
                expires: None,
                version: 0,
            };
            shard.map.insert(key.clone().into(), entry);
            shard.set_deadline(&key, Some(past));
        }
        let later = past + Duration::from_millis(1);
        assert_eq!(shard.sweep(later, 4), 4);
        assert_eq!(shard.map.len(), 6);
        assert_eq!(shard.sweep(later, 100), 6);
        assert!(shard.map.is_empty() && shard.deadlines.is_empty());
    }

    #[test]
    fn stale_deadlines_are_skipped_and_compacted() {
        let mut shard = Shard::default();
        let now = Instant::now();
        let entry = Entry {
            value: Value::Int(1),
            expires: None,
            version: 0,
        };
        shard.map.insert("k".into(), entry);
        for _ in 0..1000 {
            shard.set_deadline("k", Some(now));
        }
        assert!(
            shard.deadlines.len() <= 65,
            "heap compacted: {}",
            shard.deadlines.len()
        );
        shard.set_deadline("k", None); // persist: every heap entry is now stale
        assert_eq!(shard.sweep(now + Duration::from_secs(1), 1000), 0);
        assert_eq!(shard.map.len(), 1);
    }
}
