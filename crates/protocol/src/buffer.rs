//! Per-connection byte buffers, after muduo's `Buffer`.
//!
//! [`ReadBuffer`] is `[consumed | readable | writable]` over memory that is
//! initialised once, so a socket read goes straight into the writable tail
//! with no zeroing per read, and consuming a frame only moves an index.
//! Compaction (one `memmove` of the unread tail) happens only when the tail is
//! too short for the next read. Its allocation grows by doubling (so a large
//! request is copied O(1) times per byte), but only the bytes offered to a
//! read are ever written, at most [`MAX_READ`] past the readable ones: the
//! memory a process touches follows the bytes that arrived, not the doubled
//! allocation (a 64 MiB request held 128 MiB when every grown byte was
//! zeroed at once). [`WriteBuffer`] is a `Vec<u8>` that responses
//! are serialised into, with a head index for partially written output.

use std::io::{self, Read, Write};

/// Bytes offered to each socket read, at least.
pub const READ_CHUNK: usize = 4 * 1024;

/// Buffers larger than this are released when a connection goes quiet.
pub const KEEP_IDLE: usize = 64 * 1024;

/// Bytes offered to one socket read, at most: one read never takes more
/// than this from the kernel, and never initialises more beyond what is
/// readable.
pub const MAX_READ: usize = 64 * 1024;

/// Input bytes waiting to be decoded.
#[derive(Default)]
pub struct ReadBuffer {
    /// Its length is the part ever offered to a read (initialised); its
    /// capacity may be up to twice that, untouched.
    data: Vec<u8>,
    head: usize,
    tail: usize,
}

impl ReadBuffer {
    /// An empty buffer; it allocates on the first read.
    pub fn new() -> ReadBuffer {
        ReadBuffer::default()
    }

    /// Bytes read but not yet consumed.
    #[inline]
    pub fn readable(&self) -> &[u8] {
        &self.data[self.head..self.tail]
    }

    /// Whether no bytes are waiting to be consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Drops `n` bytes from the front.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.tail - self.head);
        self.head += n;
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
    }

    /// Drops everything readable.
    #[inline]
    pub fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
    }

    /// Makes room for at least `min` more bytes after the readable ones, and
    /// returns them, initialised. The allocation at least doubles when it
    /// grows; only the `min` bytes are written (zeroed) here, once.
    pub fn reserve(&mut self, min: usize) -> &mut [u8] {
        let readable = self.tail - self.head;
        if self.head > 0 && self.data.capacity() - self.tail < min {
            self.data.copy_within(self.head..self.tail, 0);
            self.head = 0;
            self.tail = readable;
        }
        let end = self.tail + min;
        if self.data.len() < end {
            // `resize` grows the allocation by doubling (a `realloc`, which
            // copies or remaps what is there) and zeroes only up to `end`.
            self.data.resize(end, 0);
        }
        &mut self.data[self.tail..end]
    }

    /// One `read` into the free tail, for a caller that `wants` that many
    /// more bytes (the rest of a frame, say). Memory follows the bytes that
    /// actually arrive, never a length a header merely announced: a read is
    /// offered at most as many bytes as the buffer already has (from
    /// [`READ_CHUNK`]), and at most [`MAX_READ`], so a header declaring 1 MiB
    /// followed by one byte costs 4 KiB, not 1 MiB.
    /// Returns bytes read and bytes offered; fewer read than offered means the
    /// socket's queue was empty at that moment (a short read).
    pub fn read_from<R: Read>(&mut self, r: &mut R, wants: usize) -> io::Result<(usize, usize)> {
        let offer = wants
            .min(self.data.len().max(READ_CHUNK))
            .min(MAX_READ)
            // Bytes already initialised past the readable ones cost nothing.
            .max(self.data.len().saturating_sub(self.tail).min(MAX_READ))
            .max(1);
        let space = self.reserve(offer);
        let offered = space.len();
        let n = r.read(space)?;
        self.tail += n;
        Ok((n, offered))
    }

    /// Appends bytes (for tests and the in-memory fuzz path).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len()).copy_from_slice(bytes);
        self.tail += bytes.len();
    }

    /// Memory held: the bytes ever offered to a read (the allocation may be
    /// up to twice as large, its rest untouched).
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Frees the memory of an empty buffer grown past 64 KiB.
    pub fn release_if_large(&mut self) {
        if self.is_empty() && self.data.capacity() > KEEP_IDLE {
            self.data = Vec::new();
        }
    }
}

/// Output bytes waiting to be written.
#[derive(Default)]
pub struct WriteBuffer {
    data: Vec<u8>,
    head: usize,
}

impl WriteBuffer {
    /// An empty buffer; it allocates when the first response is appended.
    pub fn new() -> WriteBuffer {
        WriteBuffer::default()
    }

    /// Bytes not yet written.
    #[inline]
    pub fn pending(&self) -> &[u8] {
        &self.data[self.head..]
    }

    /// Bytes not yet written (the length of [`WriteBuffer::pending`]).
    #[inline]
    pub fn len(&self) -> usize {
        self.data.len() - self.head
    }

    /// Whether everything has been written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.data.len()
    }

    /// The vector to append responses to; its length is exactly the pending
    /// bytes. Bytes already written are dropped from the front first (only
    /// after a partial write, which is rare).
    #[inline]
    pub fn vec_mut(&mut self) -> &mut Vec<u8> {
        if self.head > 0 {
            self.data.drain(..self.head);
            self.head = 0;
        }
        &mut self.data
    }

    /// Marks `n` bytes written.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head == self.data.len() {
            self.data.clear();
            self.head = 0;
        }
    }

    /// One `write` of the pending bytes; returns how many went out.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let n = w.write(self.pending())?;
        self.consume(n);
        Ok(n)
    }

    /// Frees the memory of an empty buffer grown past 64 KiB.
    pub fn release_if_large(&mut self) {
        if self.is_empty() && self.data.capacity() > KEEP_IDLE {
            self.data = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_consume_compact_grow() {
        let mut b = ReadBuffer::new();
        b.extend_from_slice(b"hello world");
        b.consume(6);
        assert_eq!(b.readable(), b"world");
        b.reserve(100_000);
        assert_eq!(b.readable(), b"world");
        assert!(b.capacity() >= 100_005);
        b.consume(5);
        assert!(b.is_empty());
        b.release_if_large();
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn growth_follows_arrived_bytes_not_declared_lengths() {
        let mut b = ReadBuffer::new();
        let mut src: &[u8] = b"\x00\x00\x10\x00x"; // a header declaring 1 MiB, then one byte
        let (n, offered) = b.read_from(&mut src, 1 << 20).unwrap();
        assert_eq!(n, 5);
        assert!(offered <= READ_CHUNK, "offered {offered}");
        assert!(b.capacity() <= READ_CHUNK);
        // Bytes that keep coming double the buffer each time, up to what is needed.
        let body = vec![7u8; 1 << 20];
        let mut src: &[u8] = &body;
        let mut capacities = vec![b.capacity()];
        while !src.is_empty() {
            b.read_from(&mut src, 1 << 20).unwrap();
            capacities.push(b.capacity());
        }
        assert_eq!(b.readable().len(), 5 + (1 << 20));
        for pair in capacities.windows(2) {
            assert!(pair[1] <= 2 * pair[0].max(READ_CHUNK), "{capacities:?}");
        }
    }

    /// A reader that hands out at most 1 000 bytes a read, like a socket
    /// whose queue holds little at each moment.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1000).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// The allocation doubles, but the memory written (and so resident)
    /// stays within one read of the bytes that arrived.
    #[test]
    fn memory_touched_follows_the_bytes_read() {
        let body = vec![1u8; 3 << 20];
        let mut src = Trickle(&body);
        let mut b = ReadBuffer::new();
        while !src.0.is_empty() {
            b.read_from(&mut src, 1 << 30).unwrap();
            let readable = b.readable().len();
            assert!(
                b.capacity() <= readable + MAX_READ,
                "{} touched for {readable} read",
                b.capacity()
            );
        }
        assert_eq!(b.readable().len(), 3 << 20);
    }

    #[test]
    fn short_read_is_reported() {
        let mut b = ReadBuffer::new();
        let mut src: &[u8] = b"abc";
        let (n, offered) = b.read_from(&mut src, 16).unwrap();
        assert_eq!((n, b.readable()), (3, &b"abc"[..]));
        assert!(offered >= 16);
    }

    #[test]
    fn partial_writes_resume() {
        let mut w = WriteBuffer::new();
        w.vec_mut().extend_from_slice(b"abcdef");
        let mut sink = [0u8; 4];
        let n = w.write_to(&mut &mut sink[..]).unwrap();
        assert_eq!((n, w.pending()), (4, &b"ef"[..]));
        w.vec_mut().extend_from_slice(b"gh");
        assert_eq!(w.pending(), b"efgh");
        w.consume(4);
        assert!(w.is_empty());
    }
}
