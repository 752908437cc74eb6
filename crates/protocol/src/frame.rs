//! Framing: a 4-byte little-endian unsigned length, then exactly that many bytes.
//!
//! The decoder is a pure function over whatever bytes have arrived so far, so it
//! is incremental by construction: call it again when more bytes come. A length
//! above the limit is refused as soon as the 4 header bytes are visible, before
//! any of the body is buffered.

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Default `--max-frame`: 1 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;

/// What the front of a byte stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame: the body is `buf[HEADER_LEN..HEADER_LEN + body_len]`.
    Frame {
        /// Bytes in the body (the length prefix says so).
        body_len: usize,
    },
    /// Not a whole frame yet; `needed` is the total bytes (header included) the
    /// frame will occupy once known, or `HEADER_LEN` while the header is partial.
    Incomplete {
        /// Bytes the front of the stream must hold before calling again helps.
        needed: usize,
    },
    /// The length prefix exceeds the limit. The stream cannot be resynchronised.
    TooLarge {
        /// The body length the prefix announced.
        body_len: u64,
    },
}

/// Looks at the front of `buf` and says whether a complete frame is there.
///
/// ```
/// use reactor_rpc_protocol::frame::{decode, encode, Decoded, HEADER_LEN};
///
/// let mut wire = Vec::new();
/// encode(&mut wire, br#"{"in":"ping"}"#);
/// assert_eq!(decode(&wire[..3], 1024), Decoded::Incomplete { needed: HEADER_LEN });
/// assert_eq!(decode(&wire[..6], 1024), Decoded::Incomplete { needed: HEADER_LEN + 13 });
/// assert_eq!(decode(&wire, 1024), Decoded::Frame { body_len: 13 });
/// assert_eq!(decode(&wire, 8), Decoded::TooLarge { body_len: 13 });
/// ```
#[inline]
pub fn decode(buf: &[u8], max_frame: u32) -> Decoded {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Decoded::Incomplete { needed: HEADER_LEN };
    };
    let len = u32::from_le_bytes(*header);
    if len > max_frame {
        return Decoded::TooLarge {
            body_len: u64::from(len),
        };
    }
    let body_len = len as usize;
    if buf.len() - HEADER_LEN >= body_len {
        Decoded::Frame { body_len }
    } else {
        Decoded::Incomplete {
            needed: HEADER_LEN + body_len,
        }
    }
}

/// Starts a frame in `out`: reserves the length prefix and returns where it is.
#[inline]
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    start
}

/// Finishes the frame begun at `start`: writes the body length into its prefix.
#[inline]
pub fn end_frame(out: &mut [u8], start: usize) {
    let body_len = out.len() - start - HEADER_LEN;
    // Bodies we produce are bounded far below 4 GiB (the largest is F(100000)).
    let len = u32::try_from(body_len).unwrap_or(u32::MAX);
    out[start..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
}

/// Appends one whole frame carrying `body`.
pub fn encode(out: &mut Vec<u8>, body: &[u8]) {
    let start = begin_frame(out);
    out.extend_from_slice(body);
    end_frame(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_little_endian() {
        let mut out = Vec::new();
        encode(&mut out, b"{}");
        assert_eq!(out, [2, 0, 0, 0, b'{', b'}']);
    }

    #[test]
    fn partial_header_and_body_are_incomplete() {
        assert_eq!(decode(&[], 10), Decoded::Incomplete { needed: 4 });
        assert_eq!(decode(&[3, 0], 10), Decoded::Incomplete { needed: 4 });
        assert_eq!(
            decode(&[3, 0, 0, 0, 1], 10),
            Decoded::Incomplete { needed: 7 }
        );
        assert_eq!(
            decode(&[3, 0, 0, 0, 1, 2, 3, 9], 10),
            Decoded::Frame { body_len: 3 }
        );
    }

    #[test]
    fn oversized_prefix_is_refused_from_the_header_alone() {
        assert_eq!(
            decode(&[11, 0, 0, 0], 10),
            Decoded::TooLarge { body_len: 11 }
        );
        assert_eq!(
            decode(&[0xff; 4], DEFAULT_MAX_FRAME),
            Decoded::TooLarge {
                body_len: u64::from(u32::MAX)
            }
        );
        assert_eq!(
            decode(&[10, 0, 0, 0], 10),
            Decoded::Incomplete { needed: 14 }
        );
    }

    #[test]
    fn zero_length_frame_is_a_frame() {
        assert_eq!(decode(&[0, 0, 0, 0], 10), Decoded::Frame { body_len: 0 });
    }
}
