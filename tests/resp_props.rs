//! Property tests for the RESP request parser: any way of cutting a command
//! stream (multibulk and inline, mixed) into reads yields the same commands as
//! feeding it whole; garbage never panics and ends in a protocol error or an
//! incomplete command, the same however it was cut; and a bulk string over the
//! limit is refused by the very read that completes its `$len` line, before
//! any of its body.
//!
//! Commands are parsed the way a server does: bytes appended to a read
//! buffer one read at a time, every whole command at the front parsed and
//! consumed after each read. The reader and the cut-versus-whole check are
//! `reactor_rpc::testing::resp`, shared with the cargo-fuzz target
//! `fuzz/fuzz_targets/resp.rs`; regression inputs the fuzzer finds go at the
//! bottom as plain tests.

use proptest::prelude::*;
use reactor_rpc::protocol::resp::ProtocolError;

use reactor_rpc::testing as stream;
use reactor_rpc::testing::resp::{Command, Reader};

/// The bulk limit used here; small so bulks at and near it stay cheap.
const MAX_BULK: usize = 2048;

/// One argument: empty, short binary, RESP-looking, or up to the limit.
fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..12),
        2 => prop::sample::select(vec![
            b"".to_vec(), b"\r\n".to_vec(), b"*1\r\n".to_vec(), b"$3".to_vec(),
            b"\"".to_vec(), b"'".to_vec(), b"\\".to_vec(), b"\0".to_vec(), b" ".to_vec(),
        ]),
        1 => prop::collection::vec(any::<u8>(), 12..=MAX_BULK),
        1 => Just(vec![b'x'; MAX_BULK]),
    ]
}

/// How a command is put on the wire.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Multibulk,
    /// A line ending in `\r\n` or in a bare `\n`.
    Inline {
        crlf: bool,
    },
}

fn command() -> impl Strategy<Value = (Command, Shape)> {
    let shape = prop_oneof![
        3 => Just(Shape::Multibulk),
        1 => any::<bool>().prop_map(|crlf| Shape::Inline { crlf }),
    ];
    (prop::collection::vec(arg(), 0..6), shape)
}

/// A command of a few short arguments, for tests that try every cut point.
fn small_command() -> impl Strategy<Value = (Command, Shape)> {
    let shape = prop_oneof![
        Just(Shape::Multibulk),
        any::<bool>().prop_map(|crlf| Shape::Inline { crlf }),
    ];
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..4),
        shape,
    )
}

fn encode_multibulk(out: &mut Vec<u8>, args: &[Vec<u8>]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// An inline line that a person could type: every argument in double quotes,
/// with `\xHH` for anything not printable and escapes for `"` and `\`.
fn encode_inline(out: &mut Vec<u8>, args: &[Vec<u8>], crlf: bool) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.push(b'"');
        for &b in a {
            match b {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                0x20..=0x7e => out.push(b),
                _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out.push(b'"');
    }
    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
}

fn encode_all(commands: &[(Command, Shape)]) -> Vec<u8> {
    let mut stream = Vec::new();
    for (args, shape) in commands {
        match shape {
            Shape::Multibulk => encode_multibulk(&mut stream, args),
            Shape::Inline { crlf } => encode_inline(&mut stream, args, *crlf),
        }
    }
    stream
}

/// Chunk sizes, cycled to cut the stream: mostly small reads, some large ones.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..8usize, 1..300usize, 1..5000usize], 0..12)
}

/// Bytes that are mostly RESP-shaped, so the parser's deeper states are reached.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            &b"*"[..],
            b"$",
            b"\r",
            b"\n",
            b"\r\n",
            b"-",
            b"0",
            b"1",
            b"3",
            b"9",
            b"*2\r\n",
            b"$3\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"\"",
            b"'",
            b"\\",
            b"\\x",
            b" ",
            b"\0",
            b"PING",
            b"*2147483648\r\n",
            b"$99999\r\n",
        ])
        .prop_map(<[u8]>::to_vec),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_cutting_yields_the_same_commands(
        commands in prop::collection::vec(command(), 0..16),
        sizes in cuts(),
    ) {
        let stream = encode_all(&commands);
        let r = Reader::feed(&stream, &sizes, MAX_BULK);
        prop_assert_eq!(r.error, None);
        prop_assert!(r.input.is_empty(), "bytes left over after the last command");
        let want: Vec<Command> = commands.into_iter().map(|(args, _)| args).collect();
        prop_assert_eq!(r.commands, want);
    }

    #[test]
    fn every_single_cut_point_agrees(
        commands in prop::collection::vec(small_command(), 1..6),
    ) {
        let stream = encode_all(&commands);
        let whole = Reader::feed(&stream, &[], MAX_BULK);
        for at in 0..=stream.len() {
            let mut r = Reader::new(MAX_BULK);
            r.read(&stream[..at]);
            r.read(&stream[at..]);
            prop_assert_eq!(&r.commands, &whole.commands, "cut at {}", at);
        }
    }

    #[test]
    fn garbage_never_panics_and_ends_the_same_however_cut(
        bytes in garbage(),
        sizes in cuts(),
    ) {
        // Same commands, same error, same incomplete tail; hints bounded.
        stream::resp::check(&bytes, &sizes, MAX_BULK);
    }

    #[test]
    fn oversized_bulk_is_refused_once_its_header_is_in(
        commands in prop::collection::vec(command(), 0..6),
        len in (MAX_BULK as u64 + 1)..=u64::from(u32::MAX),
        after in prop::collection::vec(any::<u8>(), 0..64),
        sizes in cuts(),
    ) {
        let mut stream = encode_all(&commands);
        stream.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n");
        stream.extend_from_slice(format!("${len}\r\n").as_bytes());
        let header_end = stream.len();
        stream.extend_from_slice(&after);

        let r = Reader::feed(&stream, &sizes, MAX_BULK);
        let first_read_with_header = stream::chunks(&stream, &sizes)
            .iter()
            .scan(0, |fed, c| { *fed += c.len(); Some(*fed) })
            .find(|&fed| fed >= header_end);
        prop_assert_eq!(r.error, Some((ProtocolError::InvalidBulkLength, first_read_with_header.unwrap())));
        let want: Vec<Command> = commands.into_iter().map(|(args, _)| args).collect();
        prop_assert_eq!(r.commands, want);
    }
}

#[test]
fn oversized_bulk_dribbled_one_byte_at_a_time() {
    let stream = b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2049\r\n";
    let mut r = Reader::new(MAX_BULK);
    for (i, b) in stream.iter().enumerate() {
        r.read(std::slice::from_ref(b));
        let header_in = i + 1 == stream.len();
        assert_eq!(r.error.is_some(), header_in, "after {} bytes", i + 1);
    }
    assert_eq!(r.commands, [vec![b"PING".to_vec()]]);
}
