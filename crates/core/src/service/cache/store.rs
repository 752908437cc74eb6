//! One shard of the keyspace: a dense vector of items, a hash index into it,
//! and a dense vector of deadlines.
//!
//! Why dense: eviction and active expiry pick keys at random, which a hash map
//! cannot do. So the items live in a `Vec` (a delete is a `swap_remove` that
//! re-points the index entry of the item that moved), the index is a
//! `hashbrown::HashTable` of [`Slot`]s (a position and a hash tag, 9 bytes a
//! bucket), and the keys with a deadline are listed, with the deadline, in a
//! vector of their own: volatile sampling and active expiry never wade
//! through keys that do not expire, and a key without a deadline pays nothing
//! for the possibility.
//!
//! An item is 40 bytes, plus one allocation holding its key followed by its
//! value: an integer's 8 bytes, or the bytes of a value under [`SHARED_MIN`].
//! A 16-byte key with a 16-byte value costs 40 + 48 (malloc's share of 32
//! bytes) + about 14 of index, and a deadline 16 more: 1M such keys grow the
//! process by 100–107 MB (Redis: about 130). A value of [`SHARED_MIN`] bytes
//! or more is kept as shared [`Bytes`], so that reading it hands out a
//! reference, not a copy.
//!
//! Every change goes through the methods here, which keep the three vectors
//! consistent and the memory estimate ([`Shard::used`]) exact.

use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::evict::Pool;

use super::expire::Clock;
use super::value::{Value, ValueRef};

/// Values this long or longer are stored once as shared, reference-counted
/// bytes, so handing one to many readers costs no copy.
pub const SHARED_MIN: usize = 16 * 1024;

/// `Item::deadline` of a key without one.
const NO_DEADLINE: u32 = u32::MAX;

/// The index's share of a key: a bucket is an 8-byte [`Slot`] and a 1-byte
/// control tag, and the table is between 7/16 and 7/8 full (it doubles past 7/8).
const INDEX_BYTES: usize = 14;

/// Around a shared value: its `Box<Bytes>` (32 bytes, a 48-byte chunk) and the
/// header `Bytes` allocates when the value is first shared (24 bytes, 32).
const SHARED_OVERHEAD: usize = 48 + 32;

/// The cost of a deadline: one entry of `Shard::deadlines`.
pub(super) const DEADLINE_BYTES: usize = size_of::<Deadline>();

/// What glibc's malloc (64-bit) sets aside for a request of `n` bytes: the
/// request plus an 8-byte header, rounded up to 16, at least 32; a block of
/// 128 KiB or more is mapped pages of its own.
pub fn malloc_size(n: usize) -> usize {
    const MMAP_THRESHOLD: usize = 128 * 1024;
    match n {
        0 => 0,
        n if n >= MMAP_THRESHOLD => (n + 16).next_multiple_of(4096),
        n => (n + 8).next_multiple_of(16).max(32),
    }
}

pub(super) fn hash_key(hasher: &RandomState, key: &[u8]) -> u64 {
    hasher.hash_one(key)
}

/// An index entry: where the item is, and 32 bits of its key's hash, so that
/// growing the table, and passing over a bucket holding another key, never
/// has to read the item (two cache misses: the item and its key).
#[derive(Debug, Clone, Copy)]
struct Slot {
    item: u32,
    tag: u32,
}

/// The 32 bits of a key's hash that its [`Slot`] keeps: the low ones (the
/// shard was chosen by bits 32 and up, which are the same across a shard).
fn tag_of(hash: u64) -> u32 {
    hash as u32
}

/// The hash the table sees for a tag: the tag in the low bits, where
/// hashbrown picks the bucket, and again in the high bits, where it takes the
/// 7-bit control tag from.
fn table_hash(tag: u32) -> u64 {
    u64::from(tag) << 32 | u64::from(tag)
}

/// Bits of the LRU stamp that count writes; the seconds sit above them.
pub(super) const LRU_WRITE_BITS: u32 = 28;

/// Counters the whole cache shares, updated by every shard.
#[derive(Default)]
pub(super) struct Totals {
    /// Estimated bytes held by all shards: what `maxmemory` bounds.
    used: AtomicUsize,
    /// Writes so far. Its low bits are the LRU clock's: idleness is counted
    /// in writes, which orders keys as wall time would (ties aside), and
    /// eviction only ever happens on a write.
    dirty: AtomicU64,
    /// Whole seconds on the cache's clock, as last set by the housekeeping
    /// ([`Totals::set_seconds`]): the LRU clock's high bits, so that a key's
    /// stamp also says, to the second, when it was last used (`OBJECT
    /// IDLETIME`) without a clock read per access or a byte more per key.
    seconds: AtomicU64,
}

impl Totals {
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    pub fn dirty(&self) -> u64 {
        self.dirty.load(Relaxed)
    }

    /// The LRU clock for `dirty` writes: the coarse seconds above, the
    /// writes (modulo 2^28, a wrap a second at most) below, so it orders
    /// accesses by second, then by write.
    fn stamp_at(&self, dirty: u64) -> u64 {
        let seconds = self.seconds.load(Relaxed).min((1 << 28) - 1);
        seconds << LRU_WRITE_BITS | (dirty & ((1 << LRU_WRITE_BITS) - 1))
    }

    /// The LRU clock now (what a read stamps).
    pub fn lru_clock(&self) -> u64 {
        self.stamp_at(self.dirty())
    }

    /// Counts a write; returns the LRU clock after it.
    pub fn write(&self) -> u64 {
        self.stamp_at(self.dirty.fetch_add(1, Relaxed) + 1)
    }

    /// The coarse seconds the LRU clock carries.
    pub fn seconds(&self) -> u64 {
        self.seconds.load(Relaxed)
    }

    /// Moves the coarse seconds on (the housekeeping calls it every tick).
    pub fn set_seconds(&self, seconds: u64) {
        self.seconds.fetch_max(seconds, Relaxed);
    }
}

/// How a value is stored. The raw kinds differ only in what `OBJECT
/// ENCODING` reports, which depends in Redis on how the string was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Int = 0,
    /// Bytes as `SET` stores them: Redis tries the `int` encoding, then
    /// `embstr` up to 44 bytes.
    Raw = 1,
    Json = 2,
    /// Bytes made by `INCRBYFLOAT`: `embstr` up to 44 bytes, never `int`.
    RawNoTry = 3,
    /// Bytes changed in place (`APPEND`, `SETRANGE`): always `raw`.
    RawInPlace = 4,
}

/// A value on its way into the store, in the form it will be kept.
pub(super) enum Payload<'a> {
    Int(i64),
    /// Under [`SHARED_MIN`]: copied into the item's own allocation.
    Inline(Kind, &'a [u8]),
    /// [`SHARED_MIN`] or more: kept as the shared bytes.
    Shared(Kind, Bytes),
}

impl<'a> Payload<'a> {
    /// Large values are kept by reference: the `Bytes` is stored as it is.
    pub fn of(value: &'a Value) -> Payload<'a> {
        match value {
            Value::Int(n) => Payload::Int(*n),
            Value::Raw(b) => Payload::bytes(Kind::Raw, b),
            Value::Json(b) => Payload::bytes(Kind::Json, b),
        }
    }

    /// Large values are copied once, into shared bytes.
    pub fn of_ref(value: ValueRef<'a>) -> Payload<'a> {
        match value {
            ValueRef::Int(n) => Payload::Int(n),
            ValueRef::Raw(b) if b.len() >= SHARED_MIN => {
                Payload::Shared(Kind::Raw, Bytes::copy_from_slice(b))
            }
            ValueRef::Json(b) if b.len() >= SHARED_MIN => {
                Payload::Shared(Kind::Json, Bytes::copy_from_slice(b))
            }
            ValueRef::Raw(b) => Payload::Inline(Kind::Raw, b),
            ValueRef::Json(b) => Payload::Inline(Kind::Json, b),
        }
    }

    fn bytes(kind: Kind, b: &'a Bytes) -> Payload<'a> {
        if b.len() >= SHARED_MIN {
            Payload::Shared(kind, b.clone())
        } else {
            Payload::Inline(kind, b)
        }
    }

    /// The same bytes, stored as `kind` (a raw kind: what `OBJECT
    /// ENCODING` will say); an integer stays an integer.
    pub fn with_kind(self, kind: Kind) -> Payload<'a> {
        match self {
            Payload::Int(n) => Payload::Int(n),
            Payload::Inline(_, b) => Payload::Inline(kind, b),
            Payload::Shared(_, b) => Payload::Shared(kind, b),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Payload::Int(_) => Kind::Int,
            Payload::Inline(kind, _) | Payload::Shared(kind, _) => *kind,
        }
    }

    /// The estimated bytes of an item holding this value under a key of
    /// `key_len` bytes (without a deadline).
    pub fn item_bytes(&self, key_len: usize) -> usize {
        let (inline, shared) = match self {
            Payload::Int(_) => (size_of::<i64>(), 0),
            Payload::Inline(_, b) => (b.len(), 0),
            Payload::Shared(_, b) => (0, SHARED_OVERHEAD + malloc_size(b.len())),
        };
        size_of::<Item>() + INDEX_BYTES + malloc_size(key_len + inline) + shared
    }
}

/// One key and its value.
pub(super) struct Item {
    /// The key, then an inline value (an `Int`'s 8 little-endian bytes, or the
    /// bytes of a value under [`SHARED_MIN`]).
    buf: Box<[u8]>,
    /// A value of [`SHARED_MIN`] bytes or more.
    shared: Option<Box<Bytes>>,
    /// The LRU clock at the last access (bits 8 and up) and the value's
    /// [`Kind`] (bits 0–7), in one word so that an item stays 40 bytes.
    stamp: u64,
    key_len: u32,
    /// Where this key's deadline is in `Shard::deadlines`, or [`NO_DEADLINE`].
    deadline: u32,
}

impl Item {
    fn new(key: &[u8], payload: Payload<'_>, lru: u64) -> Item {
        let mut item = Item {
            buf: Item::join(key, &payload),
            shared: None,
            stamp: 0,
            key_len: key.len() as u32, // the caller checked it fits
            deadline: NO_DEADLINE,
        };
        item.finish(payload, lru);
        item
    }

    fn join(key: &[u8], payload: &Payload<'_>) -> Box<[u8]> {
        let int;
        let inline: &[u8] = match payload {
            Payload::Int(n) => {
                int = n.to_le_bytes();
                &int
            }
            Payload::Inline(_, b) => b,
            Payload::Shared(..) => &[],
        };
        let mut buf = Vec::with_capacity(key.len() + inline.len());
        buf.extend_from_slice(key);
        buf.extend_from_slice(inline);
        buf.into_boxed_slice()
    }

    /// Replaces the value, in place when the new inline value is as long as the old.
    fn set_value(&mut self, payload: Payload<'_>, lru: u64) {
        let same_length = match &payload {
            Payload::Int(_) => self.shared.is_none() && self.inline_len() == size_of::<i64>(),
            Payload::Inline(_, b) => self.shared.is_none() && self.inline_len() == b.len(),
            Payload::Shared(..) => self.inline_len() == 0,
        };
        let key_len = self.key_len as usize;
        match &payload {
            Payload::Int(n) if same_length => self.buf[key_len..].copy_from_slice(&n.to_le_bytes()),
            Payload::Inline(_, b) if same_length => self.buf[key_len..].copy_from_slice(b),
            Payload::Shared(..) if same_length => {}
            _ => self.buf = Item::join(self.key(), &payload),
        }
        self.finish(payload, lru);
    }

    fn finish(&mut self, payload: Payload<'_>, lru: u64) {
        let kind = payload.kind();
        self.shared = match payload {
            Payload::Shared(_, bytes) => Some(Box::new(bytes)),
            Payload::Int(_) | Payload::Inline(..) => None,
        };
        self.stamp = lru << 8 | kind as u64;
    }

    fn inline_len(&self) -> usize {
        self.buf.len() - self.key_len as usize
    }

    pub fn key(&self) -> &[u8] {
        &self.buf[..self.key_len as usize]
    }

    /// The LRU clock at the last access.
    pub fn lru(&self) -> u64 {
        self.stamp >> 8
    }

    fn touch(&mut self, lru: u64) {
        self.stamp = lru << 8 | (self.stamp & 0xff);
    }

    pub fn kind(&self) -> Kind {
        match self.stamp & 0xff {
            0 => Kind::Int,
            1 => Kind::Raw,
            3 => Kind::RawNoTry,
            4 => Kind::RawInPlace,
            _ => Kind::Json,
        }
    }

    /// Estimated bytes of this item with its index slot and value (what
    /// `MEMORY USAGE` reports, with a deadline's share).
    pub fn memory(&self) -> usize {
        self.bytes()
    }

    pub fn value_ref(&self) -> ValueRef<'_> {
        let bytes = match &self.shared {
            Some(shared) => &shared[..],
            None => &self.buf[self.key_len as usize..],
        };
        match self.kind() {
            Kind::Int => {
                let n = <[u8; 8]>::try_from(bytes).map_or(0, i64::from_le_bytes);
                ValueRef::Int(n)
            }
            Kind::Raw | Kind::RawNoTry | Kind::RawInPlace => ValueRef::Raw(bytes),
            Kind::Json => ValueRef::Json(bytes),
        }
    }

    /// The value as a new handle on its shared bytes, if it is kept shared.
    pub fn shared_value(&self) -> Option<Value> {
        self.shared.as_ref().map(|_| self.to_value())
    }

    /// The value, owned: a shared value is a new handle on the same bytes.
    pub fn to_value(&self) -> Value {
        match (&self.shared, self.kind()) {
            (Some(shared), Kind::Json) => Value::Json((**shared).clone()),
            (Some(shared), _) => Value::Raw((**shared).clone()),
            (None, _) => self.value_ref().to_owned(),
        }
    }

    /// Estimated heap bytes of this item, its index slot and its value (not
    /// counting a deadline).
    fn bytes(&self) -> usize {
        let shared = self
            .shared
            .as_ref()
            .map_or(0, |b| SHARED_OVERHEAD + malloc_size(b.len()));
        size_of::<Item>() + INDEX_BYTES + malloc_size(self.buf.len()) + shared
    }
}

/// A key with a deadline.
pub(super) struct Deadline {
    /// When it expires, on the cache's [`Clock`] (milliseconds).
    pub at: u64,
    /// Its position in `Shard::items`.
    pub item: u32,
}

/// What the keyspace statistics count, per shard (summed by `Cache::info`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ShardStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    pub evicted: u64,
}

/// One shard. Positions (`usize` item indexes) are valid until the next removal.
pub(super) struct Shard {
    items: Vec<Item>,
    index: HashTable<Slot>,
    deadlines: Vec<Deadline>,
    /// Estimated bytes held by this shard (included in `Totals::used`).
    used: usize,
    hasher: RandomState,
    totals: Arc<Totals>,
    clock: Clock,
    pub rng: fastrand::Rng,
    /// Eviction candidates remembered between evictions.
    pub pool: Pool,
    /// Where the next active expiry round starts in `deadlines`.
    pub expire_cursor: usize,
    pub stats: ShardStats,
    /// The keys of this shard some session `WATCH`es; `None` (and free)
    /// while there are none.
    watched: Option<Box<super::watch::Watched>>,
}

impl Shard {
    pub fn new(hasher: RandomState, totals: Arc<Totals>, clock: Clock) -> Shard {
        Shard {
            items: Vec::new(),
            index: HashTable::new(),
            deadlines: Vec::new(),
            used: 0,
            hasher,
            totals,
            clock,
            rng: fastrand::Rng::new(),
            pool: Pool::default(),
            expire_cursor: 0,
            stats: ShardStats::default(),
            watched: None,
        }
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn deadlines(&self) -> &[Deadline] {
        &self.deadlines
    }

    pub fn item(&self, i: usize) -> &Item {
        &self.items[i]
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Estimated bytes held by this shard.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }

    /// The deadline of the item at `i`, if it has one.
    pub fn deadline(&self, i: usize) -> Option<u64> {
        self.deadline_of(&self.items[i])
    }

    pub fn deadline_of(&self, item: &Item) -> Option<u64> {
        match item.deadline {
            NO_DEADLINE => None,
            slot => Some(self.deadlines[slot as usize].at),
        }
    }

    /// The position of `key`, expired or not.
    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let (items, tag) = (&self.items, tag_of(hash));
        let found = self.index.find(table_hash(tag), |s| {
            s.tag == tag && items[s.item as usize].key() == key
        })?;
        Some(found.item as usize)
    }

    /// The position of a key whose hash is `hash` and which `pred` accepts
    /// (eviction candidates are remembered by hash, and checked by rank).
    pub fn find_by_hash(&self, hash: u64, mut pred: impl FnMut(usize) -> bool) -> Option<usize> {
        let tag = tag_of(hash);
        let found = self
            .index
            .find(table_hash(tag), |s| s.tag == tag && pred(s.item as usize))?;
        Some(found.item as usize)
    }

    pub fn hash_at(&self, i: usize) -> u64 {
        hash_key(&self.hasher, self.items[i].key())
    }

    /// The position of `key` if it is live; an expired key is removed on the
    /// way. The clock is read only for a key with a deadline.
    pub fn live(&mut self, hash: u64, key: &[u8]) -> Option<usize> {
        let clock = self.clock;
        self.live_by(hash, key, || clock.now_ms())
    }

    /// [`Shard::live`] at a given time (`ttl` reads the clock once for both).
    pub fn live_at(&mut self, hash: u64, key: &[u8], now: u64) -> Option<usize> {
        self.live_by(hash, key, || now)
    }

    fn live_by(&mut self, hash: u64, key: &[u8], now: impl FnOnce() -> u64) -> Option<usize> {
        let i = self.find(hash, key)?;
        if self.deadline(i).is_some_and(|at| at <= now()) {
            self.expire(i);
            return None;
        }
        Some(i)
    }

    /// What every read of a key does first: its live position, counted as a
    /// keyspace hit, or `None`, counted as a miss.
    pub fn read_live(&mut self, hash: u64, key: &[u8]) -> Option<usize> {
        let Some(i) = self.live(hash, key) else {
            self.stats.misses += 1;
            return None;
        };
        self.stats.hits += 1;
        Some(i)
    }

    /// Records an access on the LRU clock.
    pub fn touch(&mut self, i: usize) {
        let now = self.totals.lru_clock();
        self.items[i].touch(now);
    }

    /// Seconds since the item at `i` was last used, to the coarse second
    /// the LRU clock carries (`OBJECT IDLETIME`).
    pub fn idle_seconds(&self, i: usize) -> u64 {
        let used = self.items[i].lru() >> LRU_WRITE_BITS;
        self.totals.seconds().saturating_sub(used)
    }

    /// Marks the watchers of `key` (`WATCH`): it was written, deleted,
    /// expired or evicted. Costs a branch while nothing in the shard is watched.
    #[inline]
    fn modified(&mut self, i: usize) {
        if let Some(watched) = &self.watched {
            watched.fire(self.items[i].key());
        }
    }

    /// Watches `key` for the session whose flag is `dirty`: any change to
    /// the key sets it. Whether it did not watch it already.
    pub fn watch(&mut self, key: &[u8], dirty: &Arc<super::watch::Flag>) -> bool {
        self.watched
            .get_or_insert_with(Default::default)
            .add(key, dirty)
    }

    /// The session whose flag is `dirty` no longer watches `key`.
    pub fn unwatch(&mut self, key: &[u8], dirty: &Arc<super::watch::Flag>) {
        if let Some(watched) = &mut self.watched {
            watched.remove(key, dirty);
            if watched.is_empty() {
                self.watched = None;
            }
        }
    }

    /// Drops watchers whose session has gone, up to `budget` keys; returns
    /// how many keys were looked at.
    pub fn prune_watches(&mut self, budget: usize) -> usize {
        let Some(watched) = &mut self.watched else {
            return 0;
        };
        let looked = watched.prune(budget);
        if watched.is_empty() {
            self.watched = None;
        }
        looked
    }

    /// Visits positions from `from` (exclusive, clamped to the length) down
    /// to 0, at most `budget` of them, calling `f` with each live item;
    /// expired items met on the way are removed. Returns where to resume (0:
    /// the shard is done).
    ///
    /// Why downwards: a removal moves the *last* item into the hole
    /// (`swap_remove`), and an insertion appends. So an item below the
    /// cursor (not yet visited) only ever moves further down, never above
    /// it, and every item present for the whole walk is visited at least
    /// once, whatever happens between two calls; an item moved from above
    /// (already visited) to below is visited again, which `SCAN` allows.
    pub fn scan_down(&mut self, from: usize, budget: usize, mut f: impl FnMut(&Item)) -> usize {
        let now = self.now_ms();
        let mut at = from.min(self.items.len());
        let mut spent = 0;
        while at > 0 && spent < budget {
            at -= 1;
            spent += 1;
            if self.deadline(at).is_some_and(|d| d <= now) {
                // The item moved here came from the top: already visited.
                self.expire(at);
                continue;
            }
            f(&self.items[at]);
        }
        at
    }

    /// Takes every item out in O(1), leaving the shard empty; the memory is
    /// refunded at once, and the items are the caller's to drop (in bounded
    /// steps for `FLUSHALL ASYNC`, outside the lock for a sync flush).
    pub fn detach(&mut self) -> Vec<Item> {
        if let Some(watched) = &self.watched {
            // Redis touches the watched keys that existed.
            for item in &self.items {
                watched.fire(item.key());
            }
        }
        let items = std::mem::take(&mut self.items);
        self.index = HashTable::new();
        self.deadlines = Vec::new();
        self.pool.clear();
        self.expire_cursor = 0;
        self.refund(self.used);
        items
    }

    /// Adds a key that is not there (no deadline); returns its position.
    pub fn insert(&mut self, hash: u64, key: &[u8], payload: Payload<'_>, lru: u64) -> usize {
        debug_assert!(self.find(hash, key).is_none(), "insert of a present key");
        debug_assert!(self.items.len() < NO_DEADLINE as usize);
        let item = Item::new(key, payload, lru);
        let bytes = item.bytes();
        let i = self.items.len();
        self.items.push(item);
        let tag = tag_of(hash);
        let slot = Slot {
            item: i as u32,
            tag,
        };
        self.index
            .insert_unique(table_hash(tag), slot, |s| table_hash(s.tag));
        self.charge(bytes);
        self.modified(i);
        i
    }

    /// Replaces the value at `i`; the deadline stays.
    pub fn replace(&mut self, i: usize, payload: Payload<'_>, lru: u64) {
        self.modified(i);
        let before = self.items[i].bytes();
        self.items[i].set_value(payload, lru);
        let after = self.items[i].bytes();
        // Usually the same size: then the shared counter is not touched.
        if after > before {
            self.charge(after - before);
        } else if before > after {
            self.refund(before - after);
        }
    }

    /// Sets or clears the deadline of the item at `i`.
    pub fn set_deadline(&mut self, i: usize, at: Option<u64>) {
        if !(self.items[i].deadline == NO_DEADLINE && at.is_none()) {
            self.modified(i);
        }
        match (self.items[i].deadline, at) {
            (NO_DEADLINE, None) => {}
            (NO_DEADLINE, Some(at)) => {
                self.items[i].deadline = self.deadlines.len() as u32;
                self.deadlines.push(Deadline { at, item: i as u32 });
                self.charge(DEADLINE_BYTES);
            }
            (slot, Some(at)) => self.deadlines[slot as usize].at = at,
            (slot, None) => {
                let slot = slot as usize;
                self.deadlines.swap_remove(slot);
                if let Some(moved) = self.deadlines.get(slot) {
                    self.items[moved.item as usize].deadline = slot as u32;
                }
                self.items[i].deadline = NO_DEADLINE;
                self.refund(DEADLINE_BYTES);
                self.shrink_deadlines_if_sparse();
            }
        }
    }

    /// Removes the item at `i`. The last item takes its position.
    pub fn remove(&mut self, i: usize) -> Item {
        self.modified(i);
        let tag = tag_of(self.hash_at(i));
        match self
            .index
            .find_entry(table_hash(tag), |s| s.item as usize == i)
        {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => debug_assert!(false, "item {i} missing from the index"),
        }
        self.set_deadline(i, None);
        let item = self.items.swap_remove(i);
        if let Some(moved) = self.items.get(i) {
            let from = self.items.len() as u32;
            let tag = tag_of(hash_key(&self.hasher, moved.key()));
            if let Some(slot) = self.index.find_mut(table_hash(tag), |s| s.item == from) {
                slot.item = i as u32;
            }
            if moved.deadline != NO_DEADLINE {
                self.deadlines[moved.deadline as usize].item = i as u32;
            }
        }
        self.refund(item.bytes());
        self.shrink_if_sparse();
        item
    }

    /// Removes the item at `i` because it expired, counting it.
    pub fn expire(&mut self, i: usize) {
        self.remove(i);
        self.stats.expired += 1;
        self.totals.write();
    }

    /// Replaces the value at `i` with `bytes` made from the current ones
    /// (`APPEND`, `SETRANGE`), stored as `Kind::RawInPlace`; the deadline stays.
    pub fn rewrite(&mut self, i: usize, bytes: &[u8], lru: u64) {
        let payload = if bytes.len() >= SHARED_MIN {
            Payload::Shared(Kind::RawInPlace, Bytes::copy_from_slice(bytes))
        } else {
            Payload::Inline(Kind::RawInPlace, bytes)
        };
        self.replace(i, payload, lru);
    }

    fn charge(&mut self, bytes: usize) {
        self.used += bytes;
        self.totals.used.fetch_add(bytes, Relaxed);
    }

    fn refund(&mut self, bytes: usize) {
        self.used -= bytes;
        self.totals.used.fetch_sub(bytes, Relaxed);
    }

    /// Gives memory back after mass deletion (expiry, eviction, `del`): a
    /// table at a quarter of its capacity is halved to twice its length, so
    /// the amortised cost per removal stays constant.
    fn shrink_if_sparse(&mut self) {
        const MIN_CAPACITY: usize = 64;
        let len = self.items.len();
        if self.items.capacity() > MIN_CAPACITY && len * 4 < self.items.capacity() {
            self.items.shrink_to(len * 2);
        }
        if self.index.capacity() > MIN_CAPACITY && len * 4 < self.index.capacity() {
            self.index.shrink_to(len * 2, |s| table_hash(s.tag));
        }
    }

    fn shrink_deadlines_if_sparse(&mut self) {
        let (len, capacity) = (self.deadlines.len(), self.deadlines.capacity());
        if capacity > 64 && len * 4 < capacity {
            self.deadlines.shrink_to(len * 2);
        }
    }

    /// Checks that the index, the items and the deadlines agree, and that the
    /// memory estimate is the sum of the items'.
    #[cfg(test)]
    pub fn check_consistency(&self) {
        assert_eq!(self.index.len(), self.items.len());
        let mut bytes = 0;
        for (i, item) in self.items.iter().enumerate() {
            assert_eq!(self.find(self.hash_at(i), item.key()), Some(i));
            if item.deadline != NO_DEADLINE {
                assert_eq!(self.deadlines[item.deadline as usize].item as usize, i);
                bytes += DEADLINE_BYTES;
            }
            bytes += item.bytes();
        }
        for (slot, d) in self.deadlines.iter().enumerate() {
            assert_eq!(self.items[d.item as usize].deadline as usize, slot);
        }
        assert_eq!(bytes, self.used, "memory estimate");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_forty_bytes() {
        assert_eq!(size_of::<Item>(), 40);
        assert_eq!(size_of::<Deadline>(), 16);
    }

    #[test]
    fn malloc_sizes_follow_glibc() {
        assert_eq!(malloc_size(0), 0);
        assert_eq!(malloc_size(1), 32);
        assert_eq!(malloc_size(24), 32);
        assert_eq!(malloc_size(25), 48);
        assert_eq!(malloc_size(32), 48);
        assert_eq!(malloc_size(40), 48);
        assert_eq!(malloc_size(41), 64);
        assert_eq!(malloc_size(1 << 20), (1 << 20) + 4096);
    }

    fn shard() -> Shard {
        Shard::new(
            RandomState::default(),
            Arc::new(Totals::default()),
            Clock::new(),
        )
    }

    #[test]
    fn values_round_trip_and_replace_in_place_or_not() {
        let mut s = shard();
        let key = b"key";
        let h = hash_key(&s.hasher, key);
        let i = s.insert(h, key, Payload::Int(7), 1);
        assert_eq!(s.item(i).value_ref(), ValueRef::Int(7));
        let buf = s.item(i).buf.as_ptr();
        s.replace(i, Payload::Int(-8), 2);
        assert_eq!(s.item(i).value_ref(), ValueRef::Int(-8));
        assert_eq!(
            s.item(i).buf.as_ptr(),
            buf,
            "an integer is rewritten in place"
        );
        assert_eq!(s.item(i).lru(), 2);
        s.replace(i, Payload::Inline(Kind::Json, b"[1,2]"), 3);
        assert_eq!(s.item(i).value_ref(), ValueRef::Json(b"[1,2]"));
        s.replace(i, Payload::Inline(Kind::Raw, b"[3,4]"), 3);
        assert_eq!(s.item(i).value_ref(), ValueRef::Raw(b"[3,4]"));
        let big = Bytes::from(vec![b'x'; SHARED_MIN]);
        let value = Value::Raw(big.clone());
        s.replace(i, Payload::of(&value), 4);
        match s.item(i).to_value() {
            Value::Raw(b) => assert_eq!(b.as_ptr(), big.as_ptr(), "shared, not copied"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.item(i).key(), key);
        s.replace(i, Payload::Int(1), 5);
        assert_eq!(s.item(i).value_ref(), ValueRef::Int(1));
        s.check_consistency();
        s.remove(i);
        assert_eq!(s.used(), 0);
        assert_eq!(s.totals.used(), 0);
    }

    #[test]
    fn removal_keeps_index_items_and_deadlines_consistent() {
        let mut s = shard();
        let keys: Vec<Vec<u8>> = (0..500).map(|i| format!("k{i}").into_bytes()).collect();
        for (n, key) in keys.iter().enumerate() {
            let h = hash_key(&s.hasher, key);
            let i = s.insert(h, key, Payload::Int(n as i64), 0);
            if n % 3 == 0 {
                s.set_deadline(i, Some(n as u64));
            }
        }
        s.check_consistency();
        assert_eq!(s.deadlines().len(), 167);
        // Remove in an order that moves items with and without deadlines.
        for (n, key) in keys.iter().enumerate() {
            if n % 2 == 0 {
                let i = s.find(hash_key(&s.hasher, key), key).expect("present");
                s.remove(i);
            } else if n % 5 == 0 {
                let i = s.find(hash_key(&s.hasher, key), key).expect("present");
                s.set_deadline(i, None);
            }
            if n % 50 == 0 {
                s.check_consistency();
            }
        }
        s.check_consistency();
        assert_eq!(s.items().len(), 250);
        for (n, key) in keys.iter().enumerate() {
            let found = s.find(hash_key(&s.hasher, key), key);
            assert_eq!(found.is_some(), n % 2 == 1, "{n}");
            if let Some(i) = found {
                assert_eq!(s.item(i).value_ref(), ValueRef::Int(n as i64));
                let want = (n % 3 == 0 && n % 5 != 0).then_some(n as u64);
                assert_eq!(s.deadline(i), want, "{n}");
            }
        }
    }

    #[test]
    fn a_shard_shrinks_when_mostly_empty() {
        let mut s = shard();
        let keys: Vec<Vec<u8>> = (0..10_000).map(|i| format!("k{i}").into_bytes()).collect();
        for key in &keys {
            let h = hash_key(&s.hasher, key);
            let i = s.insert(h, key, Payload::Int(0), 0);
            s.set_deadline(i, Some(1));
        }
        for key in &keys[10..] {
            let i = s.find(hash_key(&s.hasher, key), key).expect("present");
            s.remove(i);
        }
        s.check_consistency();
        assert!(s.items.capacity() <= 64, "{}", s.items.capacity());
        assert!(s.index.capacity() <= 64, "{}", s.index.capacity());
        assert!(s.deadlines.capacity() <= 64, "{}", s.deadlines.capacity());
    }
}
