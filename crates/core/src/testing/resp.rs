//! The RESP request parser's stream property, checked the same way by the
//! property tests (`tests/resp_props.rs`) and the cargo-fuzz target
//! `fuzz/fuzz_targets/resp.rs`.
//!
//! A server parses RESP one read at a time: it appends the read to the
//! connection's buffer, then asks the [`Parser`] for every whole command at
//! the front, consuming each. [`Reader`] does exactly that, and checks what
//! the parser promises on every call: a command consumes at least one byte
//! and no more than there is; an `Incomplete` hint asks for more than has
//! arrived and for no more than about twice that (a `$len` header alone
//! commits no memory). [`check`] then compares a stream cut into reads with
//! the same stream parsed whole: the same commands with the same arguments,
//! the same protocol error, and the same unparsed tail.

use reactor_rpc_protocol::buffer::ReadBuffer;
use reactor_rpc_protocol::resp::{Parsed, Parser, ProtocolError};

use super::chunks;

/// One command: its arguments, in order.
pub type Command = Vec<Vec<u8>>;

/// How far beyond twice the bytes that have arrived an `Incomplete` hint may
/// reach: the parser's hint step (16 KiB), so that a stream's first few bytes
/// may ask for a useful read rather than for one byte more.
pub const HINT_SLACK: usize = 16 * 1024;

/// The most an `Incomplete` hint may ask for when `have` bytes are unconsumed.
pub fn hint_bound(have: usize) -> usize {
    have.saturating_mul(2).max(have.saturating_add(HINT_SLACK))
}

/// What one connection's reads parse to.
pub struct Reader {
    /// The unconsumed bytes, as in a server's read buffer.
    pub input: ReadBuffer,
    parser: Parser,
    max_bulk: usize,
    /// Bytes read so far.
    pub fed: usize,
    /// The commands parsed, in order.
    pub commands: Vec<Command>,
    /// The protocol error, and the bytes read when it was reported.
    pub error: Option<(ProtocolError, usize)>,
}

impl Reader {
    /// A connection whose bulk strings may hold up to `max_bulk` bytes.
    pub fn new(max_bulk: usize) -> Reader {
        Reader {
            input: ReadBuffer::new(),
            parser: Parser::new(),
            max_bulk,
            fed: 0,
            commands: Vec::new(),
            error: None,
        }
    }

    /// One read: append `chunk`, then parse and consume every whole command
    /// at the front. Panics if the parser breaks a promise (see the module
    /// docs) or if called after a protocol error (a server stops reading).
    pub fn read(&mut self, chunk: &[u8]) {
        assert!(self.error.is_none(), "read after a protocol error");
        self.input.extend_from_slice(chunk);
        self.fed += chunk.len();
        loop {
            let have = self.input.readable().len();
            match self.parser.parse(
                self.input.readable(),
                reactor_rpc_protocol::resp::Limits::new(self.max_bulk),
            ) {
                Parsed::Command { consumed } => {
                    assert!(
                        consumed > 0 && consumed <= have,
                        "a command of {consumed} bytes in {have}"
                    );
                    let args = self.parser.args(self.input.readable());
                    assert_eq!(args.len(), self.parser.arg_count());
                    self.commands.push(args.map(<[u8]>::to_vec).collect());
                    self.input.consume(consumed);
                }
                Parsed::Incomplete { needed } => {
                    assert!(needed > have, "Incomplete asks for {needed} with {have} in");
                    assert!(
                        needed <= hint_bound(have),
                        "Incomplete asks for {needed} bytes with only {have} in"
                    );
                    return;
                }
                Parsed::Error(e) => {
                    self.error = Some((e, self.fed));
                    return;
                }
            }
        }
    }

    /// Reads `stream` cut into chunks by `sizes` (see [`chunks`]), stopping
    /// at the first protocol error as a server does.
    pub fn feed(stream: &[u8], sizes: &[usize], max_bulk: usize) -> Reader {
        let mut r = Reader::new(max_bulk);
        for chunk in chunks(stream, sizes) {
            r.read(chunk);
            if r.error.is_some() {
                break;
            }
        }
        r
    }
}

/// Parses `stream` cut by `sizes` and whole, and panics unless both give the
/// same commands, the same protocol error (or none), and, without an error,
/// the same unparsed tail; every call on the way keeps the parser's promises
/// (see [`Reader::read`]). Returns the whole stream's reader.
pub fn check(stream: &[u8], sizes: &[usize], max_bulk: usize) -> Reader {
    let whole = Reader::feed(stream, &[], max_bulk);
    let cut = Reader::feed(stream, sizes, max_bulk);
    assert_eq!(
        cut.commands, whole.commands,
        "cutting the stream changed its commands"
    );
    assert_eq!(
        cut.error.map(|e| e.0),
        whole.error.map(|e| e.0),
        "cutting the stream changed its protocol error"
    );
    if whole.error.is_none() {
        assert_eq!(
            cut.input.readable(),
            whole.input.readable(),
            "cutting the stream changed the incomplete tail"
        );
    }
    whole
}
