//! The cache operations behind Redis's string and keyspace commands beyond
//! plain get/set: read-and-delete, read-and-expire, append and overwrite in
//! place, ranges, absolute expiry with Redis's NX/XX/GT/LT conditions,
//! rename, `WATCH` registration, and what `OBJECT` / `MEMORY USAGE` report.
//!
//! Each operation runs under one shard lock (two, in index order, for a
//! rename across shards), so it is atomic in every server model. A write
//! that grows a value makes room under `maxmemory` *before* it allocates,
//! and a string is never let past [`MAX_STRING`], Redis's default
//! `proto-max-bulk-len`, which is checked before anything is allocated.

use bytes::Bytes;
use std::sync::Arc;

use super::store::{Kind, Payload};
use super::value::ValueRef;
use super::watch::Flag;
use super::{check_key, Cache, CacheError, SetOptions, Value};

/// The longest string `APPEND` and `SETRANGE` may make: 512 MiB, Redis's
/// `proto-max-bulk-len`.
pub const MAX_STRING: usize = 512 << 20;

/// `EXPIRE`'s conditions (Redis 7): set only if the key has no TTL (`nx`),
/// has one (`xx`), the new one is later (`gt`; no TTL counts as infinite) or
/// sooner (`lt`). The command checks which combinations are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireIf {
    /// Only if the key has no TTL.
    pub nx: bool,
    /// Only if the key has a TTL.
    pub xx: bool,
    /// Only if the new expiry is later than the current one.
    pub gt: bool,
    /// Only if the new expiry is sooner than the current one.
    pub lt: bool,
}

/// What [`Cache::rename`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    /// The source key does not exist.
    NoSuchKey,
    /// `only_if_absent` and the destination exists: nothing changed.
    DestinationExists,
    /// Renamed (or source and destination are the same key).
    Done,
}

/// What `OBJECT` and `MEMORY USAGE` report about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// Redis's name for how the string is kept: `int`, `embstr` or `raw`.
    pub encoding: &'static str,
    /// Seconds since the key was last read or written (to the second).
    pub idle_seconds: u64,
    /// Estimated bytes the key holds (as `maxmemory` counts them).
    pub memory: usize,
}

/// Redis's `OBJECT ENCODING` of a string: `int` if `SET` would store it as a
/// 64-bit integer (at most 20 bytes, canonical decimal), else `embstr` up to
/// 44 bytes, else `raw`; values changed in place are `raw`, and
/// `INCRBYFLOAT`'s results are never `int`.
fn encoding(kind: Kind, bytes: &[u8]) -> &'static str {
    match kind {
        Kind::Int => "int",
        Kind::RawInPlace => "raw",
        Kind::Raw | Kind::Json
            if bytes.len() <= 20 && reactor_rpc_protocol::resp::parse_i64(bytes).is_some() =>
        {
            "int"
        }
        _ if bytes.len() <= 44 => "embstr",
        _ => "raw",
    }
}

impl Cache {
    /// Unix time in milliseconds on the cache's clock: what absolute
    /// expiry times (`EXPIREAT`, `SET ... PXAT`) are compared with.
    pub fn unix_now_ms(&self) -> u64 {
        self.clock.unix_now_ms()
    }

    /// Removes `key` and answers its value (`GETDEL`).
    pub fn get_del(&self, key: &[u8]) -> Option<Value> {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let i = shard.read_live(hash, key)?;
        let value = shard.item(i).to_value();
        shard.remove(i);
        self.totals.write();
        Some(value)
    }

    /// Answers the value of `key` and changes its expiry (`GETEX`): `None`
    /// leaves it, `Some(None)` removes it (`PERSIST`), `Some(Some(at))` sets
    /// it to Unix time `at` ms; with `delete_if_past`, a time already past
    /// deletes the key (Redis does so for `EXAT`/`PXAT`).
    pub fn get_ex(
        &self,
        key: &[u8],
        change: Option<Option<u64>>,
        delete_if_past: bool,
    ) -> Option<Value> {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let i = shard.read_live(hash, key)?;
        shard.touch(i);
        let value = shard.item(i).to_value();
        match change {
            Some(None) if shard.deadline(i).is_some() => {
                shard.set_deadline(i, None);
                self.totals.write();
            }
            None | Some(None) => {}
            Some(Some(at)) => {
                if delete_if_past && at <= self.clock.unix_now_ms() {
                    shard.remove(i);
                } else {
                    shard.set_deadline(i, Some(self.clock.deadline_at_unix_ms(at)));
                }
                self.totals.write();
            }
        }
        Some(value)
    }

    /// Stores `value` as raw bytes (as `SET` does) and answers the value the
    /// key held before, if it was set (`SET ... GET`, `GETSET`). The first
    /// element says whether the write happened (`opt.cond`).
    pub fn set_get(
        &self,
        key: &[u8],
        value: &[u8],
        opt: SetOptions,
    ) -> Result<(bool, Option<Value>), CacheError> {
        self.store_get(key, Payload::of_ref(ValueRef::Raw(value)), opt, true, true)
    }

    /// Stores the text `INCRBYFLOAT` made (`OBJECT ENCODING`: never `int`).
    fn store_float_text(&self, key: &[u8], text: &[u8]) -> Result<(), CacheError> {
        let opt = SetOptions {
            keep_ttl: true,
            ..SetOptions::default()
        };
        let payload = Payload::of_ref(ValueRef::Raw(text)).with_kind(Kind::RawNoTry);
        self.store_get(key, payload, opt, true, false).map(|_| ())
    }

    /// `INCRBYFLOAT`: `f` gets the current value's bytes (`None` if
    /// missing) and answers the new text, or its own error, which changes
    /// nothing. The key's TTL stays.
    ///
    /// The value is read, then written under a second lock: two threads of
    /// the threaded models may interleave between them, as with the other
    /// read-modify-write commands there.
    pub fn update_float<E>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<String, E>,
    ) -> Result<Result<String, E>, CacheError> {
        check_key(key)?;
        let current = self.get_with(key, |v| v.resp_bytes().into_owned());
        let text = match f(current.as_deref()) {
            Ok(text) => text,
            Err(e) => return Ok(Err(e)),
        };
        self.store_float_text(key, text.as_bytes())?;
        Ok(Ok(text))
    }

    /// The length of the value of `key` in its RESP form (`STRLEN`); 0 if missing.
    pub fn strlen(&self, key: &[u8]) -> usize {
        self.get_with(key, |v| match v {
            ValueRef::Raw(b) => b.len(),
            other => other.resp_bytes().len(),
        })
        .unwrap_or(0)
    }

    /// Appends `tail` to the value of `key` (made from nothing if missing);
    /// answers the new length. [`CacheError::TooLarge`] past `MAX_STRING`
    /// and [`CacheError::Oom`] are answered before anything is allocated.
    pub fn append(&self, key: &[u8], tail: &[u8]) -> Result<usize, CacheError> {
        let current = self.strlen_peek(key);
        let new_len = current
            .checked_add(tail.len())
            .ok_or(CacheError::TooLarge)?;
        if new_len > MAX_STRING {
            return Err(CacheError::TooLarge);
        }
        self.rewrite_with(key, tail.len(), |old| match old {
            None => (tail.to_vec(), Kind::Raw),
            Some(old) => {
                let mut v = Vec::with_capacity(old.len() + tail.len());
                v.extend_from_slice(&old);
                v.extend_from_slice(tail);
                (v, Kind::RawInPlace)
            }
        })
    }

    /// Overwrites the value of `key` from `offset` with `bytes`, padding with
    /// zero bytes (`SETRANGE`); answers the new length. Same bounds as
    /// [`Cache::append`]. Empty `bytes` change nothing and answer the length.
    pub fn set_range(&self, key: &[u8], offset: usize, bytes: &[u8]) -> Result<usize, CacheError> {
        let current = self.strlen_peek(key);
        if bytes.is_empty() {
            return Ok(current);
        }
        let end = offset
            .checked_add(bytes.len())
            .ok_or(CacheError::TooLarge)?;
        if end > MAX_STRING {
            return Err(CacheError::TooLarge);
        }
        let growth = end.saturating_sub(current);
        self.rewrite_with(key, growth, |old| {
            let mut v = old.map(|o| o.into_owned()).unwrap_or_default();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset..end].copy_from_slice(bytes);
            (v, Kind::RawInPlace)
        })
    }

    /// The length of the value without counting a hit or touching it.
    fn strlen_peek(&self, key: &[u8]) -> usize {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        match shard.live(hash, key) {
            Some(i) => match shard.item(i).value_ref() {
                ValueRef::Raw(b) => b.len(),
                other => other.resp_bytes().len(),
            },
            None => 0,
        }
    }

    /// Makes room for `growth` more bytes, then replaces the value of `key`
    /// with what `f` makes of the current one (the TTL stays).
    fn rewrite_with(
        &self,
        key: &[u8],
        growth: usize,
        f: impl FnOnce(Option<std::borrow::Cow<'_, [u8]>>) -> (Vec<u8>, Kind),
    ) -> Result<usize, CacheError> {
        check_key(key)?;
        let (hash, s) = self.locate(key);
        let estimate = super::malloc_size(growth).max(growth) + 64 + key.len();
        self.make_room(s, estimate)?;
        let mut shard = self.lock(s);
        let found = shard.live(hash, key);
        let old = found.map(|i| shard.item(i).value_ref().resp_bytes());
        let (bytes, kind) = f(old);
        let len = bytes.len();
        let lru = self.totals.write();
        match found {
            Some(i) => {
                if kind == Kind::RawInPlace {
                    shard.rewrite(i, &bytes, lru);
                } else {
                    shard.replace(i, Payload::of_ref(ValueRef::Raw(&bytes)), lru);
                }
            }
            None => {
                let payload = Payload::of_ref(ValueRef::Raw(&bytes)).with_kind(kind);
                shard.insert(hash, key, payload, lru);
            }
        }
        Ok(len)
    }

    /// Bytes `start..=end` of the value of `key`, with Redis's `GETRANGE`
    /// rules (negative indexes count from the end; out-of-range ends are
    /// clamped; an empty range is empty). Empty if the key is missing.
    pub fn get_range(&self, key: &[u8], start: i64, end: i64) -> Bytes {
        self.get(key)
            .map(|v| {
                let bytes = v.to_resp();
                let len = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
                let (mut start, mut end) = (start, end);
                if start < 0 && end < 0 && start > end {
                    return Bytes::new();
                }
                if start < 0 {
                    start += len;
                }
                if end < 0 {
                    end += len;
                }
                start = start.max(0);
                end = end.max(0);
                if len > 0 && end >= len {
                    end = len - 1;
                }
                if start > end || len == 0 {
                    return Bytes::new();
                }
                bytes.slice(start as usize..=end as usize)
            })
            .unwrap_or_default()
    }

    /// Sets the expiry of `key` to Unix time `at_ms` if `cond` allows it
    /// (compared with the current expiry, as Redis 7's `EXPIRE` options
    /// compare); a time at or before now deletes the key. `false` if the key
    /// is missing or the condition refused.
    pub fn expire_at(&self, key: &[u8], at_ms: i64, cond: ExpireIf) -> bool {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let Some(i) = shard.live(hash, key) else {
            return false;
        };
        let current = shard
            .deadline(i)
            .map(|d| i64::try_from(self.clock.deadline_to_unix_ms(d)).unwrap_or(i64::MAX));
        let refused = match current {
            None => cond.xx || cond.gt,
            Some(cur) => cond.nx || (cond.gt && at_ms <= cur) || (cond.lt && at_ms >= cur),
        };
        if refused {
            return false;
        }
        let now = i64::try_from(self.clock.unix_now_ms()).unwrap_or(i64::MAX);
        if at_ms <= now {
            shard.remove(i);
        } else {
            let at = self.clock.deadline_at_unix_ms(at_ms.unsigned_abs());
            shard.set_deadline(i, Some(at));
        }
        self.totals.write();
        true
    }

    /// The expiry of `key` as Unix time in milliseconds: `None` if the key
    /// is missing, `Some(None)` if it has no expiry.
    pub fn expire_time(&self, key: &[u8]) -> Option<Option<u64>> {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let i = shard.live(hash, key)?;
        Some(shard.deadline(i).map(|d| self.clock.deadline_to_unix_ms(d)))
    }

    /// Renames `from` to `to`, keeping the value and its TTL and replacing
    /// any value `to` had (unless `only_if_absent`: `RENAMENX`). Both shards
    /// are locked, in index order, for the move.
    pub fn rename(
        &self,
        from: &[u8],
        to: &[u8],
        only_if_absent: bool,
    ) -> Result<Rename, CacheError> {
        check_key(to)?;
        let (hash_from, s_from) = self.locate(from);
        let (hash_to, s_to) = self.locate(to);
        if s_from == s_to {
            let mut shard = self.lock(s_from);
            if shard.live(hash_from, from).is_none() {
                return Ok(Rename::NoSuchKey);
            }
            if from == to {
                return Ok(if only_if_absent {
                    Rename::DestinationExists
                } else {
                    Rename::Done
                });
            }
            if let Some(j) = shard.live(hash_to, to) {
                if only_if_absent {
                    return Ok(Rename::DestinationExists);
                }
                shard.remove(j);
            }
            // Positions change on removal: look the source up again.
            let Some(i) = shard.live(hash_from, from) else {
                return Ok(Rename::NoSuchKey);
            };
            let (value, kind, deadline) = {
                let item = shard.item(i);
                (item.to_value(), item.kind(), shard.deadline(i))
            };
            shard.remove(i);
            let lru = self.totals.write();
            let j = shard.insert(hash_to, to, Payload::of(&value).with_kind(kind), lru);
            shard.set_deadline(j, deadline);
            return Ok(Rename::Done);
        }
        // Two shards: locked in index order, so two renames cannot deadlock.
        let (mut src, mut dst) = if s_from < s_to {
            let a = self.lock(s_from);
            (a, self.lock(s_to))
        } else {
            let b = self.lock(s_to);
            (self.lock(s_from), b)
        };
        let Some(i) = src.live(hash_from, from) else {
            return Ok(Rename::NoSuchKey);
        };
        if let Some(j) = dst.live(hash_to, to) {
            if only_if_absent {
                return Ok(Rename::DestinationExists);
            }
            dst.remove(j);
        }
        let (value, kind, deadline) = {
            let item = src.item(i);
            (item.to_value(), item.kind(), src.deadline(i))
        };
        src.remove(i);
        let lru = self.totals.write();
        let j = dst.insert(hash_to, to, Payload::of(&value).with_kind(kind), lru);
        dst.set_deadline(j, deadline);
        Ok(Rename::Done)
    }

    /// What `OBJECT ENCODING` / `IDLETIME` and `MEMORY USAGE` say about
    /// `key`; reading it does not count as a use.
    pub fn key_info(&self, key: &[u8]) -> Option<KeyInfo> {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        let i = shard.live(hash, key)?;
        let item = shard.item(i);
        let value = item.value_ref();
        let encoding = match value {
            ValueRef::Int(_) => "int",
            ValueRef::Raw(b) => encoding(item.kind(), b),
            ValueRef::Json(_) => encoding(Kind::Json, &value.resp_bytes()),
        };
        let deadline = if shard.deadline(i).is_some() {
            super::store::DEADLINE_BYTES
        } else {
            0
        };
        Some(KeyInfo {
            encoding,
            idle_seconds: shard.idle_seconds(i),
            memory: item.memory() + deadline,
        })
    }

    /// The session whose flag is `flag` watches `key` (`WATCH`): any change
    /// to it from now on sets the flag. An expired key is removed first, so
    /// that its removal is not taken for a change. Whether the session did
    /// not watch it already.
    pub fn watch(&self, key: &[u8], flag: &Arc<Flag>) -> bool {
        let (hash, s) = self.locate(key);
        let mut shard = self.lock(s);
        shard.live(hash, key);
        shard.watch(key, flag)
    }

    /// Stops watching `key` for `flag`'s session.
    pub fn unwatch(&self, key: &[u8], flag: &Arc<Flag>) {
        let (_, s) = self.locate(key);
        self.lock(s).unwatch(key, flag);
    }

    /// Removes `key` if it has expired (so that its watchers see it), as
    /// `EXEC` does for each watched key before it checks its flag.
    pub fn expire_if_due(&self, key: &[u8]) {
        let (hash, s) = self.locate(key);
        self.lock(s).live(hash, key);
    }

    /// Whole seconds on the coarse clock (moved by [`Cache::tick_clock`]).
    pub fn coarse_seconds(&self) -> u64 {
        self.totals.seconds()
    }

    /// Items detached by `FLUSHALL ASYNC` and not yet freed.
    pub fn garbage_len(&self) -> usize {
        self.free_garbage(0)
    }

    /// Moves the coarse clock that `OBJECT IDLETIME` reads (the housekeeping
    /// calls it every tick).
    pub fn tick_clock(&self) {
        self.totals.set_seconds(self.clock.now_ms() / 1000);
    }
}
