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

/// Counters the whole cache shares, updated by every shard.
#[derive(Default)]
pub(super) struct Totals {
    /// Estimated bytes held by all shards: what `maxmemory` bounds.
    used: AtomicUsize,
    /// Writes so far. It doubles as the LRU clock: idleness is counted in
    /// writes, which orders keys as wall time would (ties aside), and eviction
    /// only ever happens on a write.
    dirty: AtomicU64,
}

impl Totals {
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    pub fn dirty(&self) -> u64 {
        self.dirty.load(Relaxed)
    }

    /// Counts a write; returns the LRU clock after it.
    pub fn write(&self) -> u64 {
        self.dirty.fetch_add(1, Relaxed) + 1
    }
}

/// How a value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Int = 0,
    Raw = 1,
    Json = 2,
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

    fn kind(&self) -> Kind {
        match self.stamp & 0xff {
            0 => Kind::Int,
            1 => Kind::Raw,
            _ => Kind::Json,
        }
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
            Kind::Raw => ValueRef::Raw(bytes),
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
            (Some(shared), Kind::Raw) => Value::Raw((**shared).clone()),
            (Some(shared), _) => Value::Json((**shared).clone()),
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

    /// Records an access on the LRU clock.
    pub fn touch(&mut self, i: usize) {
        let now = self.totals.dirty();
        self.items[i].touch(now);
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
        i
    }

    /// Replaces the value at `i`; the deadline stays.
    pub fn replace(&mut self, i: usize, payload: Payload<'_>, lru: u64) {
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

    /// Removes everything.
    pub fn clear(&mut self) {
        self.items = Vec::new();
        self.index = HashTable::new();
        self.deadlines = Vec::new();
        self.pool.clear();
        self.refund(self.used);
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
