//! Property tests for the frame codec: any way of cutting a byte stream into
//! reads yields the same frames, and an oversized length prefix is refused as
//! soon as its 4 header bytes have arrived, however the stream was cut.
//!
//! Frames are decoded the way a server does: bytes appended to a
//! [`ReadBuffer`] one read at a time, every whole frame at the front decoded
//! and consumed after each read.

use proptest::prelude::*;
use reactor_rpc::protocol::buffer::ReadBuffer;
use reactor_rpc::protocol::frame::encode;
use reactor_rpc::protocol::{decode, Decoded, HEADER_LEN};

use reactor_rpc::testing as stream;

/// The limit used here; small so that bodies at and near it stay cheap.
const MAX_FRAME: u32 = 2048;

/// Bodies of arbitrary bytes: empty, tiny, up to the limit, and exactly at it.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 1..16),
        prop::collection::vec(any::<u8>(), 16..=MAX_FRAME as usize),
        Just(vec![b'x'; MAX_FRAME as usize]),
    ]
}

/// Chunk sizes, cycled to cut the stream: mostly small reads, some large ones.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..8usize, 1..300usize, 1..5000usize], 0..12)
}

fn encode_all(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = Vec::new();
    for b in bodies {
        encode(&mut stream, b);
    }
    stream
}

/// What one connection's reads decode to.
struct Decoder {
    input: ReadBuffer,
    fed: usize,
    bodies: Vec<Vec<u8>>,
    /// Bytes fed when `TooLarge` was first reported.
    too_large_at: Option<usize>,
}

impl Decoder {
    fn new() -> Decoder {
        Decoder {
            input: ReadBuffer::new(),
            fed: 0,
            bodies: Vec::new(),
            too_large_at: None,
        }
    }

    /// One read: append, then decode and consume every whole frame at the front.
    fn read(&mut self, chunk: &[u8]) {
        assert!(self.too_large_at.is_none(), "read after TooLarge");
        self.input.extend_from_slice(chunk);
        self.fed += chunk.len();
        loop {
            match decode(self.input.readable(), MAX_FRAME) {
                Decoded::Frame { body_len } => {
                    let frame = &self.input.readable()[..HEADER_LEN + body_len];
                    self.bodies.push(frame[HEADER_LEN..].to_vec());
                    self.input.consume(HEADER_LEN + body_len);
                }
                Decoded::Incomplete { needed } => {
                    assert!(needed > self.input.readable().len());
                    assert!(needed >= HEADER_LEN);
                    return;
                }
                Decoded::TooLarge { body_len } => {
                    assert!(body_len > u64::from(MAX_FRAME));
                    self.too_large_at = Some(self.fed);
                    return;
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_cutting_yields_the_same_frames(
        bodies in prop::collection::vec(body(), 0..20),
        sizes in cuts(),
    ) {
        let stream = encode_all(&bodies);
        let mut d = Decoder::new();
        for chunk in stream::chunks(&stream, &sizes) {
            d.read(chunk);
        }
        prop_assert_eq!(d.too_large_at, None);
        prop_assert!(d.input.is_empty(), "bytes left over after the last frame");
        prop_assert_eq!(d.bodies, bodies);
    }

    #[test]
    fn oversized_prefix_is_refused_once_its_header_is_in(
        bodies in prop::collection::vec(body(), 0..6),
        len in (MAX_FRAME + 1)..=u32::MAX,
        after in prop::collection::vec(any::<u8>(), 0..64),
        sizes in cuts(),
    ) {
        let mut stream = encode_all(&bodies);
        let header_end = stream.len() + HEADER_LEN;
        stream.extend_from_slice(&len.to_le_bytes());
        stream.extend_from_slice(&after);

        let mut d = Decoder::new();
        for chunk in stream::chunks(&stream, &sizes) {
            d.read(chunk);
            if d.fed >= header_end {
                break; // the server stops reading here
            }
        }
        // Reported by the very read that completed the header, not later, and
        // only after every frame in front of it.
        let first_read_with_header = stream::chunks(&stream, &sizes)
            .iter()
            .scan(0, |fed, c| { *fed += c.len(); Some(*fed) })
            .find(|&fed| fed >= header_end);
        prop_assert_eq!(d.too_large_at, first_read_with_header);
        prop_assert_eq!(d.bodies, bodies);
    }
}

#[test]
fn oversized_prefix_dribbled_one_byte_at_a_time() {
    let mut stream = encode_all(&[b"{}".to_vec()]);
    stream.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut d = Decoder::new();
    for (i, b) in stream.iter().enumerate() {
        d.read(std::slice::from_ref(b));
        let header_in = i + 1 == stream.len();
        assert_eq!(d.too_large_at.is_some(), header_in, "after {} bytes", i + 1);
    }
    assert_eq!(d.bodies, [b"{}".to_vec()]);
}
