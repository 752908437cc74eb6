//! Response bytes with large values queued by reference, not copied.
//!
//! An [`Output`] is what the request path writes responses into: a `Vec<u8>`
//! of owned bytes (it derefs to it, so every writer that appends to a vector
//! works unchanged) plus *splices*: shared, immutable [`Bytes`] that sit at a
//! given offset of the owned bytes. A cache `get` of a value of [`SHARE_MIN`]
//! bytes or more splices the stored bytes in (a reference count, no copy), so
//! 500 connections that each queue a 1 MiB value eight times hold that value
//! once, not 4 000 times.
//!
//! The logical output is the owned bytes with each splice inserted at its
//! offset. [`Output::total_len`] counts all of it (a JSON frame's length
//! prefix covers the spliced value; the per-connection `--max-output` stop
//! counts a spliced value at full size, so one connection's pipelined gets
//! stop after `--max-output` bytes of responses); `len()` (the
//! vector's, through `Deref`) is the owned bytes only.
//!
//! [`OutputQueue`] is the reactor's per-connection write side: an `Output`
//! plus how much of it the socket has taken, written with `write_vectored`
//! (up to [`MAX_IOVECS`] slices a call) so a spliced value goes from the
//! cache's memory straight to the kernel. What the reactor counts toward
//! `--max-output-total` is each queue's [`OutputQueue::charge`] (the owned
//! bytes plus [`SPLICE_CHARGE`] per queued splice) plus, once, the bytes of
//! every distinct shared value any queue holds ([`SharedLedger`]): a value is
//! held once (by the cache, or by the last reference) however many
//! connections queue it, but a value overwritten in the cache while queued,
//! or many distinct values, are memory the queues keep alive. The threaded
//! and tokio models write each batch per connection before reading more,
//! chunk by chunk ([`Output::chunks`]): a spliced value straight from the
//! cache's bytes.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Write};
use std::ops::{Deref, DerefMut};

use bytes::Bytes;

/// Values this large or larger are spliced by reference; smaller ones are
/// copied (a copy of a few KiB is cheaper than a segment to track). The
/// cache keeps values of this size as shared bytes
/// ([`SHARED_MIN`](crate::service::cache::SHARED_MIN)), so they can be spliced.
pub const SHARE_MIN: usize = 16 * 1024;

/// What a shared value costs an output beyond the value itself (its entry:
/// an offset and a `Bytes` handle), rounded up: what a reply's size counts
/// for each value it shares, against `--max-reply` ([`Output::cost_since`]).
pub const SPLICE_COST: usize = 64;

/// Slices handed to one `write_vectored` call at most.
pub const MAX_IOVECS: usize = 64;

/// What one queued splice counts toward `--max-output-total` in its queue's
/// [`OutputQueue::charge`]: its bookkeeping. Its bytes are shared, and
/// counted once for all queues by a [`SharedLedger`].
pub const SPLICE_CHARGE: usize = 64;

/// Response bytes: owned bytes plus shared values spliced in at offsets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    buf: Vec<u8>,
    /// `(offset into buf, bytes)`, offsets non-decreasing; never empty bytes.
    splices: VecDeque<(usize, Bytes)>,
    /// Sum of the splices' lengths.
    shared: usize,
}

/// A point in an [`Output`] to roll back to ([`Output::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    owned: usize,
    splices: usize,
    total: usize,
}

impl Mark {
    /// [`Output::total_len`] when the mark was taken.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The owned bytes' length (`len()`, through `Deref`) when the mark was taken.
    pub fn owned(&self) -> usize {
        self.owned
    }

    /// The number of shared values when the mark was taken.
    pub fn splices(&self) -> usize {
        self.splices
    }

    /// The memory what was appended since the mark holds, given the owned
    /// length and the number of splices now: the owned bytes, and
    /// [`SPLICE_COST`] for each shared value (the value itself is the
    /// cache's, counted once however many replies share it).
    #[inline]
    pub fn cost_to(&self, owned: usize, splices: usize) -> usize {
        owned.saturating_sub(self.owned)
            + splices
                .saturating_sub(self.splices)
                .saturating_mul(SPLICE_COST)
    }
}

impl Output {
    /// An empty output; nothing is allocated until bytes are appended.
    pub fn new() -> Output {
        Output::default()
    }

    /// An output whose owned bytes start as `buf` (no copy).
    pub fn from_vec(buf: Vec<u8>) -> Output {
        Output {
            buf,
            splices: VecDeque::new(),
            shared: 0,
        }
    }

    /// Every byte of the logical output, owned and spliced.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.buf.len() + self.shared
    }

    /// Bytes held by reference in splices.
    #[inline]
    pub fn shared_len(&self) -> usize {
        self.shared
    }

    /// Splices queued.
    #[inline]
    pub fn splices(&self) -> usize {
        self.splices.len()
    }

    /// Whether the logical output is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.splices.is_empty()
    }

    /// Appends `bytes`: by reference when it is [`SHARE_MIN`] bytes or more,
    /// copied otherwise.
    pub fn share(&mut self, bytes: &Bytes) {
        if bytes.len() >= SHARE_MIN {
            self.shared += bytes.len();
            self.splices.push_back((self.buf.len(), bytes.clone()));
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The current end, to [`Output::rollback`] to.
    pub fn mark(&self) -> Mark {
        Mark {
            owned: self.buf.len(),
            splices: self.splices.len(),
            total: self.total_len(),
        }
    }

    /// The memory appended since `mark` ([`Mark::cost_to`]): what a reply
    /// is measured by against `--max-reply`.
    pub fn cost_since(&self, mark: Mark) -> usize {
        mark.cost_to(self.buf.len(), self.splices.len())
    }

    /// Drops everything appended since `mark`.
    pub fn rollback(&mut self, mark: Mark) {
        self.buf.truncate(mark.owned);
        while self.splices.len() > mark.splices {
            if let Some((_, b)) = self.splices.pop_back() {
                self.shared -= b.len();
            }
        }
    }

    /// Appends another output (its splices stay shared).
    pub fn append(&mut self, other: Output) {
        let base = self.buf.len();
        self.shared += other.shared;
        self.splices
            .extend(other.splices.into_iter().map(|(at, b)| (base + at, b)));
        self.buf.extend_from_slice(&other.buf);
    }

    /// Empties the output, keeping the owned bytes' capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.splices.clear();
        self.shared = 0;
    }

    /// Copies every splice into the owned bytes, in place: what a model that
    /// writes a plain buffer does before writing.
    pub fn flatten(&mut self) {
        if self.splices.is_empty() {
            return;
        }
        let mut flat = Vec::with_capacity(self.total_len());
        let mut at = 0;
        for (offset, b) in self.splices.drain(..) {
            flat.extend_from_slice(&self.buf[at..offset]);
            flat.extend_from_slice(&b);
            at = offset;
        }
        flat.extend_from_slice(&self.buf[at..]);
        self.buf = flat;
        self.shared = 0;
    }

    /// The logical output in order, as slices of the owned bytes and of
    /// the splices (no empty ones). It allocates nothing: a model writes
    /// every batch through it.
    pub fn chunks(&self) -> Chunks<'_> {
        Chunks {
            output: self,
            at: 0,
            next: 0,
            in_splice: false,
        }
    }

    /// The logical output as one vector (a move when nothing is spliced).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.flatten();
        self.buf
    }

    /// The owned bytes' capacity.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The owned bytes and, apart, a [`Splicer`] that adds splices: for a
    /// writer that holds the vector (a RESP [`Reply`](reactor_rpc_protocol::resp::Reply))
    /// and must still splice a value in.
    pub fn split_mut(&mut self) -> (&mut Vec<u8>, Splicer<'_>) {
        let splicer = Splicer {
            splices: &mut self.splices,
            shared: &mut self.shared,
        };
        (&mut self.buf, splicer)
    }
}

/// Adds splices to an [`Output`] whose owned bytes are borrowed elsewhere
/// ([`Output::split_mut`]).
#[derive(Debug)]
pub struct Splicer<'a> {
    splices: &'a mut VecDeque<(usize, Bytes)>,
    shared: &'a mut usize,
}

impl Splicer<'_> {
    /// The number of shared values in the output.
    pub fn len(&self) -> usize {
        self.splices.len()
    }

    /// Whether the output shares no value.
    pub fn is_empty(&self) -> bool {
        self.splices.is_empty()
    }

    /// Splices `bytes` in by reference at `at`, which must be the current
    /// length of the owned bytes (the end of the output).
    pub fn splice(&mut self, at: usize, bytes: &Bytes) {
        debug_assert!(self.splices.back().is_none_or(|(last, _)| *last <= at));
        if !bytes.is_empty() {
            *self.shared += bytes.len();
            self.splices.push_back((at, bytes.clone()));
        }
    }
}

/// The iterator of [`Output::chunks`].
#[derive(Debug)]
pub struct Chunks<'a> {
    output: &'a Output,
    /// Owned bytes before this offset are given out.
    at: usize,
    /// The next splice.
    next: usize,
    /// The owned bytes before splice `next` are given out; the splice is next.
    in_splice: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let out = self.output;
        loop {
            if self.in_splice {
                self.in_splice = false;
                let bytes = &out.splices.get(self.next)?.1;
                self.next += 1;
                if !bytes.is_empty() {
                    return Some(&bytes[..]);
                }
            } else if let Some((offset, _)) = out.splices.get(self.next) {
                let part = &out.buf[self.at..*offset];
                self.at = *offset;
                self.in_splice = true;
                if !part.is_empty() {
                    return Some(part);
                }
            } else {
                let part = &out.buf[self.at..];
                self.at = out.buf.len();
                return (!part.is_empty()).then_some(part);
            }
        }
    }
}

impl Deref for Output {
    type Target = Vec<u8>;

    #[inline]
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for Output {
    #[inline]
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl From<Vec<u8>> for Output {
    fn from(buf: Vec<u8>) -> Output {
        Output::from_vec(buf)
    }
}

/// The shared values that connections' [`OutputQueue`]s hold, each counted
/// once however many queues (or how many times one queue) hold it: what the
/// reactor adds to the queues' [`charge`](OutputQueue::charge)s for
/// `--max-output-total`. A value is known by the address of its first byte.
/// So a value overwritten in the cache while connections still queue it is
/// counted, as is every distinct value a client could make connections pin;
/// the cache's current value is counted once more while it is queued.
#[derive(Debug, Default)]
pub struct SharedLedger {
    /// Address → (references held, bytes).
    held: HashMap<usize, (usize, usize)>,
    bytes: usize,
}

impl SharedLedger {
    /// An empty ledger.
    pub fn new() -> SharedLedger {
        SharedLedger::default()
    }

    /// Bytes of the distinct shared values held.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Distinct shared values held.
    pub fn values(&self) -> usize {
        self.held.len()
    }

    fn add(&mut self, (at, len): (usize, usize)) {
        let entry = self.held.entry(at).or_insert((0, len));
        if entry.0 == 0 {
            self.bytes += entry.1;
        }
        entry.0 += 1;
    }

    fn release(&mut self, (at, _): (usize, usize)) {
        if let Some(entry) = self.held.get_mut(&at) {
            entry.0 -= 1;
            if entry.0 == 0 {
                self.bytes -= entry.1;
                self.held.remove(&at);
            }
        }
    }
}

/// How a [`SharedLedger`] knows a value: its address and length.
fn ledger_key(bytes: &Bytes) -> (usize, usize) {
    (bytes.as_ptr() as usize, bytes.len())
}

/// Output waiting for a socket: an [`Output`] and how much of it was written.
#[derive(Debug, Default)]
pub struct OutputQueue {
    out: Output,
    /// Owned bytes written (a position in `out.buf`).
    head: usize,
    /// Bytes of the front splice written, once `head` reached its offset.
    splice_head: usize,
    /// Splices at the front entered in a [`SharedLedger`] (splices are
    /// appended at the back and written from the front, so they are a prefix).
    entered: usize,
    /// Entered splices written or dropped since the last [`OutputQueue::settle`].
    left: Vec<(usize, usize)>,
}

impl OutputQueue {
    /// An empty queue.
    pub fn new() -> OutputQueue {
        OutputQueue::default()
    }

    /// Bytes not yet written, owned and shared.
    #[inline]
    pub fn len(&self) -> usize {
        self.out.total_len() - self.head - self.splice_head
    }

    /// Whether everything has been written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.out.buf.len() && self.out.splices.is_empty()
    }

    /// What the pending output counts toward `--max-output-total` on its
    /// own: owned bytes not yet written plus [`SPLICE_CHARGE`] per pending
    /// splice. The spliced values are counted once for all queues, by a
    /// [`SharedLedger`] ([`OutputQueue::settle`]).
    #[inline]
    pub fn charge(&self) -> usize {
        self.out.buf.len() - self.head + self.out.splices.len() * SPLICE_CHARGE
    }

    /// The output to append responses to; its `total_len` is exactly the
    /// pending bytes. Owned bytes already written are dropped from the front
    /// first (only after a partial write, which is rare).
    #[inline]
    pub fn output_mut(&mut self) -> &mut Output {
        if self.head > 0 {
            self.out.buf.drain(..self.head);
            for (at, _) in self.out.splices.iter_mut() {
                *at -= self.head;
            }
            self.head = 0;
        }
        &mut self.out
    }

    /// Fills `dst` with slices of the pending bytes, in order, `limit` bytes
    /// in all at most; returns how many it filled.
    pub fn fill_slices<'s>(&'s self, dst: &mut [IoSlice<'s>], limit: usize) -> usize {
        let max = dst.len();
        let mut filled = 0;
        let mut left = limit;
        // Adds a slice; whether there is room for another.
        let mut push = |bytes: &'s [u8], left: &mut usize| {
            let take = bytes.len().min(*left);
            *left -= take;
            dst[filled] = IoSlice::new(&bytes[..take]);
            filled += 1;
            filled < max && *left > 0
        };
        if max == 0 || limit == 0 {
            return 0;
        }
        let mut at = self.head;
        let mut skip = self.splice_head;
        'fill: {
            for (offset, b) in &self.out.splices {
                if at < *offset && !push(&self.out.buf[at..*offset], &mut left) {
                    break 'fill;
                }
                if !push(&b[skip..], &mut left) {
                    break 'fill;
                }
                skip = 0;
                at = *offset;
            }
            if at < self.out.buf.len() {
                push(&self.out.buf[at..], &mut left);
            }
        }
        filled
    }

    /// Marks `n` bytes written, across owned bytes and splices.
    pub fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.len());
        while n > 0 {
            let boundary = self
                .out
                .splices
                .front()
                .map_or(self.out.buf.len(), |(at, _)| *at);
            if self.head < boundary {
                let k = n.min(boundary - self.head);
                self.head += k;
                n -= k;
                continue;
            }
            let Some((_, front)) = self.out.splices.front() else {
                break; // cannot happen: n <= len
            };
            let front_len = front.len();
            let k = n.min(front_len - self.splice_head);
            self.splice_head += k;
            n -= k;
            if self.splice_head == front_len {
                if let Some((_, gone)) = self.out.splices.pop_front() {
                    if self.entered > 0 {
                        self.entered -= 1;
                        self.left.push(ledger_key(&gone));
                    }
                }
                self.out.shared -= front_len;
                self.splice_head = 0;
            }
        }
        if self.is_empty() {
            self.out.buf.clear();
            self.head = 0;
        }
    }

    /// One `write_vectored` of up to [`MAX_IOVECS`] pending slices and at
    /// most `limit` bytes; returns how many bytes went out.
    pub fn write_to<W: Write>(&mut self, w: &mut W, limit: usize) -> io::Result<usize> {
        let n = if self.out.splices.is_empty() {
            // Owned bytes only (every small response): a plain `write`.
            let end = self.out.buf.len().min(self.head.saturating_add(limit));
            w.write(&self.out.buf[self.head..end])?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let filled = self.fill_slices(&mut slices, limit);
            w.write_vectored(&slices[..filled])?
        };
        self.consume(n);
        Ok(n)
    }

    /// Frees the memory of an empty queue grown past 64 KiB.
    pub fn release_if_large(&mut self) {
        if self.is_empty() && self.out.capacity() > reactor_rpc_protocol::buffer::KEEP_IDLE {
            self.out = Output::new();
        }
    }

    /// Brings `ledger` up to date with this queue: releases the splices
    /// written or dropped since the last call, enters the ones queued since.
    /// Nothing to do (no hashing) when neither happened.
    pub fn settle(&mut self, ledger: &mut SharedLedger) {
        if self.left.is_empty() && self.entered == self.out.splices.len() {
            return;
        }
        for key in self.left.drain(..) {
            ledger.release(key);
        }
        // A rollback only drops splices queued since the last settle.
        self.entered = self.entered.min(self.out.splices.len());
        for (_, b) in self.out.splices.iter().skip(self.entered) {
            ledger.add(ledger_key(b));
        }
        self.entered = self.out.splices.len();
        if self.left.capacity() > 64 {
            self.left = Vec::new();
        }
    }

    /// Drops everything pending (a connection being closed); the next
    /// [`OutputQueue::settle`] releases its splices.
    pub fn forget(&mut self) {
        let entered = self.entered.min(self.out.splices.len());
        for (_, b) in self.out.splices.iter().take(entered) {
            self.left.push(ledger_key(b));
        }
        self.entered = 0;
        self.out = Output::new();
        self.head = 0;
        self.splice_head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `k` bytes a call, across slices, like a socket whose
    /// buffer is nearly full.
    struct Trickle {
        k: usize,
        got: Vec<u8>,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            assert!(bufs.len() <= MAX_IOVECS);
            let mut left = self.k;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Ok(self.k - left)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// How many slices one call would hand over, of at most `max`.
    fn slices(q: &OutputQueue, max: usize, limit: usize) -> usize {
        let mut dst = vec![IoSlice::new(&[]); max];
        q.fill_slices(&mut dst, limit)
    }

    fn big(byte: u8, n: usize) -> Bytes {
        Bytes::from(vec![byte; n])
    }

    /// An output mixing owned bytes and splices, and its flat form.
    fn mixed() -> (Output, Vec<u8>) {
        let mut o = Output::new();
        o.extend_from_slice(b"head");
        o.share(&big(b'a', SHARE_MIN));
        o.share(&big(b'b', SHARE_MIN + 3)); // two splices back to back
        o.extend_from_slice(b"middle");
        o.share(&Bytes::from_static(b"small")); // copied
        o.share(&big(b'c', SHARE_MIN * 2));
        let flat = o.clone().into_vec();
        (o, flat)
    }

    #[test]
    fn splices_are_shared_and_counted() {
        let (o, flat) = mixed();
        assert_eq!(o.splices(), 3);
        assert_eq!(o.len(), 4 + 6 + 5);
        assert_eq!(o.total_len(), flat.len());
        assert_eq!(o.shared_len(), SHARE_MIN * 4 + 3);
        let mut expect = b"head".to_vec();
        expect.extend(vec![b'a'; SHARE_MIN]);
        expect.extend(vec![b'b'; SHARE_MIN + 3]);
        expect.extend_from_slice(b"middlesmall");
        expect.extend(vec![b'c'; SHARE_MIN * 2]);
        assert_eq!(flat, expect);
    }

    #[test]
    fn rollback_drops_splices_after_the_mark() {
        let mut o = Output::new();
        o.extend_from_slice(b"x");
        let mark = o.mark();
        o.share(&big(b'a', SHARE_MIN));
        o.extend_from_slice(b"y");
        o.rollback(mark);
        assert_eq!((o.total_len(), o.splices(), o.shared_len()), (1, 0, 0));
        assert_eq!(o.into_vec(), b"x");
    }

    #[test]
    fn partial_vectored_writes_resume_across_splices() {
        for k in [1, 3, 7, 4096, SHARE_MIN - 1, SHARE_MIN + 5, 1 << 20] {
            let (o, flat) = mixed();
            let mut q = OutputQueue::new();
            q.output_mut().append(o);
            assert_eq!(q.len(), flat.len());
            let mut w = Trickle {
                k,
                got: Vec::new(),
                calls: 0,
            };
            let mut appended = false;
            while !q.is_empty() {
                let before = q.len();
                let n = q.write_to(&mut w, usize::MAX).unwrap();
                assert_eq!(q.len(), before - n);
                if !appended && w.got.len() > flat.len() / 2 {
                    // Appending after a partial write keeps the order.
                    q.output_mut().extend_from_slice(b"tail");
                    appended = true;
                }
            }
            let mut expect = flat.clone();
            if appended {
                expect.extend_from_slice(b"tail");
            }
            assert_eq!(w.got, expect, "k = {k}");
            assert_eq!((q.len(), q.charge()), (0, 0));
        }
    }

    #[test]
    fn at_most_max_iovecs_a_call() {
        let mut q = OutputQueue::new();
        let value = big(b'v', SHARE_MIN);
        for i in 0..100u8 {
            let o = q.output_mut();
            o.push(i);
            o.share(&value);
        }
        assert_eq!(q.charge(), 100 + 100 * SPLICE_CHARGE);
        assert_eq!(slices(&q, 1000, usize::MAX), 200);
        assert_eq!(slices(&q, MAX_IOVECS, usize::MAX), MAX_IOVECS);
        let mut w = Trickle {
            k: usize::MAX / 2,
            got: Vec::new(),
            calls: 0,
        };
        while !q.is_empty() {
            q.write_to(&mut w, usize::MAX).unwrap();
        }
        assert_eq!(w.calls, 200usize.div_ceil(MAX_IOVECS));
        assert_eq!(w.got.len(), 100 * (1 + SHARE_MIN));
    }

    #[test]
    fn a_write_takes_at_most_its_limit() {
        let (o, flat) = mixed();
        let mut q = OutputQueue::new();
        q.output_mut().append(o);
        let mut w = Trickle {
            k: usize::MAX / 2,
            got: Vec::new(),
            calls: 0,
        };
        for limit in [1, 5, SHARE_MIN, 3].into_iter().cycle() {
            if q.is_empty() {
                break;
            }
            let before = q.len();
            let n = q.write_to(&mut w, limit).unwrap();
            assert_eq!(n, limit.min(before));
        }
        assert_eq!(w.got, flat);
        assert_eq!(slices(&q, MAX_IOVECS, 0), 0);
    }

    #[test]
    fn the_ledger_counts_each_value_once_while_any_queue_holds_it() {
        let mut ledger = SharedLedger::new();
        let one = big(b'1', SHARE_MIN);
        let two = big(b'2', SHARE_MIN * 2);
        let mut a = OutputQueue::new();
        let mut b = OutputQueue::new();
        for _ in 0..3 {
            a.output_mut().share(&one);
            b.output_mut().share(&one);
        }
        b.output_mut().share(&two);
        a.settle(&mut ledger);
        b.settle(&mut ledger);
        assert_eq!((ledger.values(), ledger.bytes()), (2, SHARE_MIN * 3));
        // `a` writes everything: `one` is still held by `b`.
        let mut w = Trickle {
            k: usize::MAX / 2,
            got: Vec::new(),
            calls: 0,
        };
        while !a.is_empty() {
            a.write_to(&mut w, usize::MAX).unwrap();
        }
        a.settle(&mut ledger);
        assert_eq!(ledger.bytes(), SHARE_MIN * 3);
        // `b` writes its first value and a half: `one` still queued twice.
        b.write_to(
            &mut Trickle {
                k: SHARE_MIN + SHARE_MIN / 2,
                got: Vec::new(),
                calls: 0,
            },
            usize::MAX,
        )
        .unwrap();
        b.settle(&mut ledger);
        assert_eq!(ledger.bytes(), SHARE_MIN * 3);
        // Appended after a partial write, then the connection closes.
        b.output_mut().share(&big(b'3', SHARE_MIN));
        b.settle(&mut ledger);
        assert_eq!((ledger.values(), ledger.bytes()), (3, SHARE_MIN * 4));
        b.forget();
        b.settle(&mut ledger);
        assert_eq!((ledger.values(), ledger.bytes()), (0, 0));
        // Queued and written between two settles: never entered.
        a.output_mut().share(&one);
        while !a.is_empty() {
            a.write_to(&mut w, usize::MAX).unwrap();
        }
        a.settle(&mut ledger);
        assert_eq!((ledger.values(), ledger.bytes()), (0, 0));
    }

    #[test]
    fn flatten_and_append_keep_the_bytes() {
        let (a, flat_a) = mixed();
        let (b, flat_b) = mixed();
        let mut joined = a.clone();
        joined.append(b);
        let mut expect = flat_a.clone();
        expect.extend_from_slice(&flat_b);
        assert_eq!(joined.total_len(), expect.len());
        joined.flatten();
        assert_eq!((joined.splices(), &joined[..]), (0, &expect[..]));
    }

    #[test]
    fn chunks_give_every_byte_in_order_and_no_empty_slice() {
        let value = Bytes::from(vec![b'v'; SHARE_MIN]);
        let (mixed, flat) = mixed();
        let mut leading = Output::new();
        leading.share(&value);
        leading.share(&value);
        leading.extend_from_slice(b"tail");
        let mut expect_leading = value.to_vec();
        expect_leading.extend_from_slice(&value);
        expect_leading.extend_from_slice(b"tail");
        let mut trailing = Output::from_vec(b"head".to_vec());
        trailing.share(&value);
        let mut expect_trailing = b"head".to_vec();
        expect_trailing.extend_from_slice(&value);
        for (out, expect) in [
            (mixed, flat),
            (leading, expect_leading),
            (trailing, expect_trailing),
            (Output::new(), Vec::new()),
        ] {
            let chunks: Vec<&[u8]> = out.chunks().collect();
            assert!(chunks.iter().all(|c| !c.is_empty()), "{chunks:?}");
            assert_eq!(chunks.concat(), expect);
        }
    }
}
