//! The Redis protocol (RESP2 requests, RESP2/RESP3 replies), so that
//! redis-cli, redis-py, redis-benchmark and twemproxy can talk to the server.
//!
//! Pure, like [`frame`](super::frame): a [`Parser`] looks at the unconsumed
//! bytes of one connection and says whether a whole command is at the front.
//! It keeps where it stopped, so bytes arriving one at a time cost O(1) each
//! (a bulk body is skipped by its length, never scanned, and a header line is
//! scanned once), and it never reserves memory because a header announced a
//! length. It keeps no list of a multibulk command's arguments at all: they
//! lie in the input, and [`Parser::args`] walks their headers again when the
//! command is whole, so a million empty arguments cost the parser nothing
//! beyond the bytes that brought them.
//!
//! A command is bounded as a whole ([`Limits::max_command`], `--max-command`):
//! its arguments' lengths plus [`ARG_OVERHEAD`] bytes each. `*N` is refused
//! when N arguments alone would pass the bound, and each `$len` as soon as it
//! would, before its body is read; a connection's unconsumed input is then
//! at most one command under the bound plus one read.
//!
//! Requests come in two shapes, as in Redis's `processInputBuffer`:
//! *multibulk* (`*N\r\n$len\r\nbytes\r\n...`, what every client library
//! sends) and *inline* (a line of words, what a person types into `nc` or
//! `telnet`, split with Redis's `sdssplitargs` quoting rules). The limits and
//! error texts are Redis 7's.
//!
//! Replies are written by [`Reply`], in the protocol version a connection chose
//! (`HELLO 3` switches to RESP3, where a missing value is `_` and a map is `%`).

use std::fmt;

/// The largest multibulk count accepted: Redis 7.0's (`INT_MAX`). What a
/// command may really hold is bounded by [`Limits::max_command`], which
/// refuses a count whose arguments' overheads alone pass it.
pub const MAX_MULTIBULK: i64 = i32::MAX as i64;

/// The longest inline request, and the longest `*N` / `$len` header line,
/// without its terminator (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;

/// Bytes a [`Parsed::Incomplete`] hint may ask for beyond what has arrived.
const HINT_STEP: usize = 16 * 1024;

/// Default `--max-command`: 64 MiB.
pub const DEFAULT_MAX_COMMAND: usize = 64 << 20;

/// What each argument counts toward [`Limits::max_command`] besides its
/// bytes: more than its header on the wire (`$len\r\n`, the `\r\n` after
/// the body: at most 15 bytes for a length below 4 GiB) plus its place in
/// the argument list a command runs with (16 bytes), so a command's count is
/// at least what it costs to receive and run, even with empty arguments.
pub const ARG_OVERHEAD: usize = 32;

/// The bounds a [`Parser`] enforces on a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest bulk string (`--max-frame`); longer is
    /// [`ProtocolError::InvalidBulkLength`].
    pub max_bulk: usize,
    /// The largest command (`--max-command`): the lengths of its arguments
    /// plus [`ARG_OVERHEAD`] each. Larger is
    /// [`ProtocolError::TooBigMultibulkRequest`] (inline:
    /// [`ProtocolError::TooBigInlineRequest`]).
    pub max_command: usize,
    /// The client has yet to authenticate on a server that wants it: as
    /// Redis 7.0, a command of more than [`UNAUTHENTICATED_ARGS`] arguments
    /// or with a bulk string of more than [`UNAUTHENTICATED_BULK`] bytes is
    /// a protocol error ([`ProtocolError::UnauthenticatedMultibulkLength`],
    /// [`ProtocolError::UnauthenticatedBulkLength`]), so that a client
    /// without the password cannot make the server hold much of its input.
    pub unauthenticated: bool,
}

/// The most arguments of a command from a client that has not authenticated
/// on a server that wants it (Redis 7.0's `authRequired` check).
pub const UNAUTHENTICATED_ARGS: i64 = 10;
/// The longest bulk string from such a client.
pub const UNAUTHENTICATED_BULK: usize = 16384;

impl Limits {
    /// Bulk strings up to `max_bulk` bytes, commands up to
    /// [`DEFAULT_MAX_COMMAND`], from an authenticated client (or with
    /// authentication off).
    pub const fn new(max_bulk: usize) -> Limits {
        Limits {
            max_bulk,
            max_command: DEFAULT_MAX_COMMAND,
            unauthenticated: false,
        }
    }
}

/// A request the stream cannot recover from: Redis answers
/// `-ERR Protocol error: ...` and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*N` where N is not an integer or above [`MAX_MULTIBULK`].
    InvalidMultibulkLength,
    /// `$len` where len is not an integer, negative, or above the bulk limit.
    InvalidBulkLength,
    /// An argument header that does not start with `$`; carries the byte found.
    ExpectedDollar(u8),
    /// An inline request with an unterminated or badly closed quote.
    UnbalancedQuotes,
    /// An inline request of more than [`INLINE_MAX`] bytes, or whose
    /// arguments pass [`Limits::max_command`].
    TooBigInlineRequest,
    /// A multibulk request whose arguments pass [`Limits::max_command`]:
    /// refused at `*N` when N arguments alone would, otherwise at the `$len`
    /// that would, before its body is read.
    TooBigMultibulkRequest,
    /// A `*N` line of more than [`INLINE_MAX`] bytes.
    TooBigMbulkCountString,
    /// A `$len` line of more than [`INLINE_MAX`] bytes.
    TooBigBulkCountString,
    /// A NUL byte in an inline request: refused as soon as it arrives, since
    /// no one types NUL into `telnet` and binary data is not a RESP request
    /// (a JSON frame's length prefix sent to this port holds NULs). Redis
    /// would wait for a newline that may never come.
    NulInInline,
    /// `*N` with N above [`UNAUTHENTICATED_ARGS`] from a client that has
    /// yet to authenticate ([`Limits::unauthenticated`]).
    UnauthenticatedMultibulkLength,
    /// `$len` above [`UNAUTHENTICATED_BULK`] from such a client.
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The message after `ERR `, as bytes: `Protocol error: ...` (the byte of
    /// [`ProtocolError::ExpectedDollar`] is written as is, like Redis's `%c`).
    pub fn message(&self) -> Vec<u8> {
        let mut m = b"Protocol error: ".to_vec();
        match self {
            ProtocolError::InvalidMultibulkLength => {
                m.extend_from_slice(b"invalid multibulk length")
            }
            ProtocolError::InvalidBulkLength => m.extend_from_slice(b"invalid bulk length"),
            ProtocolError::ExpectedDollar(b) => {
                m.extend_from_slice(b"expected '$', got '");
                m.push(*b);
                m.push(b'\'');
            }
            ProtocolError::UnbalancedQuotes => m.extend_from_slice(b"unbalanced quotes in request"),
            ProtocolError::TooBigInlineRequest => m.extend_from_slice(b"too big inline request"),
            ProtocolError::TooBigMultibulkRequest => {
                m.extend_from_slice(b"too big multibulk request")
            }
            ProtocolError::TooBigMbulkCountString => {
                m.extend_from_slice(b"too big mbulk count string")
            }
            ProtocolError::TooBigBulkCountString => {
                m.extend_from_slice(b"too big bulk count string")
            }
            ProtocolError::UnauthenticatedMultibulkLength => {
                m.extend_from_slice(b"unauthenticated multibulk length")
            }
            ProtocolError::UnauthenticatedBulkLength => {
                m.extend_from_slice(b"unauthenticated bulk length")
            }
            ProtocolError::NulInInline => m.extend_from_slice(
                b"NUL byte in an inline request: this port speaks the Redis protocol \
                  (RESP); binary data such as a JSON frame belongs on the JSON port",
            ),
        }
        m
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.message()))
    }
}

impl std::error::Error for ProtocolError {}

/// What the front of a connection's input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole command yet. `needed` is how many input bytes to have
    /// before calling again: more than there are now, and never more than
    /// about twice what has arrived, so a declared length alone commits no
    /// memory.
    Incomplete {
        /// A hint of the total bytes the command needs (never more than has arrived, doubled).
        needed: usize,
    },
    /// A whole command in the first `consumed` bytes; read its arguments with
    /// [`Parser::args`]. It may have no arguments (a blank line, `*0`), which
    /// Redis skips without a reply.
    Command {
        /// Bytes the command occupied.
        consumed: usize,
    },
    /// The stream is broken; answer the error and close.
    Error(ProtocolError),
}

/// Bytes before each inline argument in the parser's scratch buffer: its
/// length, big-endian (an inline line is at most [`INLINE_MAX`] bytes).
const INLINE_LEN: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing of the next command looked at.
    Idle,
    /// An inline line; its first `scanned` bytes hold no `\n`.
    Inline { scanned: usize },
    /// The `*N` line; its first `scanned` bytes hold no `\r`.
    Count { scanned: usize },
    /// `left` arguments to come, the next one's `$len` line at `pos`, its
    /// first `scanned` bytes holding no `\r`.
    BulkHeader {
        pos: usize,
        left: usize,
        scanned: usize,
    },
    /// `left` arguments to come, the next one's `len` bytes at `pos`.
    BulkBody { pos: usize, left: usize, len: usize },
    /// A command was returned; its arguments stay readable until the next call.
    Done,
}

/// An incremental RESP request parser: one per connection.
///
/// Call [`Parser::parse`] with the connection's unconsumed input, each time
/// more bytes have arrived. The input must start at the same byte each time
/// until a command (or an error) is returned; then consume `consumed` bytes
/// and call again for the next command. (A shorter input than last time
/// restarts the parse, so misuse costs work, never memory safety or a panic.)
#[derive(Debug)]
pub struct Parser {
    state: State,
    /// Whether the arguments are in `scratch` (inline) or in the input.
    inline: bool,
    /// Arguments of the command: announced by `*N` (multibulk), or found
    /// (inline).
    count: usize,
    /// Where the first argument's `$len` line starts in the input (multibulk).
    first: usize,
    /// What is left of `max_command` for the argument bytes still to come
    /// (multibulk): the bound less [`ARG_OVERHEAD`] per argument announced,
    /// less the lengths of the arguments seen.
    budget: usize,
    /// The inline arguments, each its length ([`INLINE_LEN`] bytes) then its
    /// bytes (quotes and escapes change them, so they are not the input's).
    scratch: Vec<u8>,
    /// Input length at the last call.
    seen: usize,
    /// Bytes examined by line searches, for the work-bound test.
    #[cfg(test)]
    work: usize,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

impl Parser {
    /// A parser at the start of a command.
    pub fn new() -> Parser {
        Parser {
            state: State::Idle,
            inline: false,
            count: 0,
            first: 0,
            budget: 0,
            scratch: Vec::new(),
            seen: 0,
            #[cfg(test)]
            work: 0,
        }
    }

    /// Looks at the front of `input` (the unconsumed bytes) and says whether a
    /// whole command is there; a bulk string longer than `limits.max_bulk`,
    /// or one that takes the command past `limits.max_command`, is refused as
    /// soon as its `$len` line is in.
    pub fn parse(&mut self, input: &[u8], limits: Limits) -> Parsed {
        if self.state == State::Done || input.len() < self.seen {
            self.reset();
        }
        self.seen = input.len();
        loop {
            match self.state {
                State::Idle => {
                    let Some(&first) = input.first() else {
                        return Parsed::Incomplete { needed: 1 };
                    };
                    self.inline = first != b'*';
                    self.state = if self.inline {
                        State::Inline { scanned: 0 }
                    } else {
                        State::Count { scanned: 0 }
                    };
                }
                State::Inline { scanned } => {
                    // A NUL stops the search too, and is refused at once.
                    let nl = match self.find(input, 0, scanned, |b| b == b'\n' || b == 0) {
                        Find::Found(at) if input[at] == 0 => {
                            return self.fail(ProtocolError::NulInInline)
                        }
                        Find::Found(nl) => nl,
                        Find::Pending(scanned) => {
                            self.state = State::Inline { scanned };
                            return incomplete(input.len() + 1, input.len());
                        }
                        Find::TooLong => return self.fail(ProtocolError::TooBigInlineRequest),
                    };
                    let line = &input[..nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    match split_inline(line, &mut self.scratch) {
                        Err(()) => return self.fail(ProtocolError::UnbalancedQuotes),
                        Ok(count) => self.count = count,
                    }
                    // Each argument's bytes and length prefix, plus the
                    // overhead less that prefix: what the command counts.
                    let size = self
                        .scratch
                        .len()
                        .saturating_add(self.count.saturating_mul(ARG_OVERHEAD - INLINE_LEN));
                    if size > limits.max_command {
                        return self.fail(ProtocolError::TooBigInlineRequest);
                    }
                    return self.done(nl + 1);
                }
                State::Count { scanned } => {
                    // A NUL cannot be in a count: refused at once, so that a
                    // JSON frame of 42 bytes (its prefix starts with `*`) is too.
                    let cr = match self.find(input, 0, scanned, |b| b == b'\r' || b == 0) {
                        Find::Found(at) if input[at] == 0 => {
                            return self.fail(ProtocolError::InvalidMultibulkLength)
                        }
                        Find::Found(cr) => cr,
                        Find::Pending(scanned) => {
                            self.state = State::Count { scanned };
                            return incomplete(input.len() + 1, input.len());
                        }
                        Find::TooLong => return self.fail(ProtocolError::TooBigMbulkCountString),
                    };
                    // Like Redis: the byte after '\r' is taken to be '\n'.
                    if cr + 2 > input.len() {
                        self.state = State::Count { scanned: cr };
                        return incomplete(cr + 2, input.len());
                    }
                    let count = match parse_i64(&input[1..cr]) {
                        Some(n) if n <= MAX_MULTIBULK => n,
                        _ => return self.fail(ProtocolError::InvalidMultibulkLength),
                    };
                    if count > UNAUTHENTICATED_ARGS && limits.unauthenticated {
                        return self.fail(ProtocolError::UnauthenticatedMultibulkLength);
                    }
                    if count <= 0 {
                        self.count = 0;
                        return self.done(cr + 2);
                    }
                    // N arguments, even empty, count N overheads: a header
                    // that alone passes the bound is refused now.
                    let overheads = (count as usize).saturating_mul(ARG_OVERHEAD);
                    let Some(budget) = limits.max_command.checked_sub(overheads) else {
                        return self.fail(ProtocolError::TooBigMultibulkRequest);
                    };
                    self.count = count as usize;
                    self.first = cr + 2;
                    self.budget = budget;
                    self.state = State::BulkHeader {
                        pos: cr + 2,
                        left: count as usize,
                        scanned: 0,
                    };
                }
                State::BulkHeader { pos, left, scanned } => {
                    let cr = match self.find(input, pos, scanned, |b| b == b'\r') {
                        Find::Found(cr) => cr,
                        Find::Pending(scanned) => {
                            self.state = State::BulkHeader { pos, left, scanned };
                            return incomplete(input.len() + 1, input.len());
                        }
                        Find::TooLong => return self.fail(ProtocolError::TooBigBulkCountString),
                    };
                    if cr + 2 > input.len() {
                        self.state = State::BulkHeader {
                            pos,
                            left,
                            scanned: cr - pos,
                        };
                        return incomplete(cr + 2, input.len());
                    }
                    if input[pos] != b'$' {
                        return self.fail(ProtocolError::ExpectedDollar(input[pos]));
                    }
                    let len = match parse_i64(&input[pos + 1..cr]) {
                        Some(n) if n >= 0 && n as u64 <= limits.max_bulk as u64 => n as usize,
                        _ => return self.fail(ProtocolError::InvalidBulkLength),
                    };
                    if len > UNAUTHENTICATED_BULK && limits.unauthenticated {
                        return self.fail(ProtocolError::UnauthenticatedBulkLength);
                    }
                    // Refused before the body: the bytes to come would pass
                    // the command's bound.
                    let Some(budget) = self.budget.checked_sub(len) else {
                        return self.fail(ProtocolError::TooBigMultibulkRequest);
                    };
                    self.budget = budget;
                    self.state = State::BulkBody {
                        pos: cr + 2,
                        left,
                        len,
                    };
                }
                State::BulkBody { pos, left, len } => {
                    // Like Redis, the two bytes after the body are skipped unchecked.
                    let end = pos.saturating_add(len);
                    let next = end.saturating_add(2);
                    if input.len() < next {
                        return incomplete(next, input.len());
                    }
                    if left == 1 {
                        return self.done(next);
                    }
                    self.state = State::BulkHeader {
                        pos: next,
                        left: left - 1,
                        scanned: 0,
                    };
                }
                State::Done => unreachable!("reset above"),
            }
        }
    }

    /// The arguments of the command just returned by [`Parser::parse`], which
    /// must have been given this same `input`. A multibulk command's are
    /// found by walking its `$len` lines again (each is short, and each body
    /// is skipped by its length), so the parser keeps no list of them.
    pub fn args<'a>(&'a self, input: &'a [u8]) -> Args<'a> {
        if self.state != State::Done {
            return Args {
                source: &[],
                pos: 0,
                left: 0,
                inline: false,
            };
        }
        let (source, pos) = if self.inline {
            (&self.scratch[..], 0)
        } else {
            (input, self.first)
        };
        Args {
            source,
            pos,
            left: self.count,
            inline: self.inline,
        }
    }

    /// How many arguments the command just returned has.
    pub fn arg_count(&self) -> usize {
        if self.state == State::Done {
            self.count
        } else {
            0
        }
    }

    fn done(&mut self, consumed: usize) -> Parsed {
        self.state = State::Done;
        Parsed::Command { consumed }
    }

    fn fail(&mut self, err: ProtocolError) -> Parsed {
        self.reset();
        Parsed::Error(err)
    }

    fn reset(&mut self) {
        self.state = State::Idle;
        self.seen = 0;
        self.count = 0;
        // A long inline line's arguments are not kept for the next command.
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        } else {
            self.scratch.clear();
        }
    }

    /// Finds the first byte that is a `stop` in the line that starts at `start`, resuming after the
    /// `scanned` bytes already searched; a line may hold at most
    /// [`INLINE_MAX`] bytes before its terminator. Only the window that can
    /// hold a valid line is searched, so the outcome does not depend on how
    /// the input was cut into reads.
    fn find(
        &mut self,
        input: &[u8],
        start: usize,
        scanned: usize,
        stop: impl Fn(u8) -> bool,
    ) -> Find {
        let window_end = start.saturating_add(INLINE_MAX + 1).min(input.len());
        let from = start + scanned;
        if from < window_end {
            #[cfg(test)]
            {
                self.work += window_end - from;
            }
            if let Some(i) = input[from..window_end].iter().position(|&b| stop(b)) {
                return Find::Found(from + i);
            }
        }
        if input.len() - start > INLINE_MAX {
            Find::TooLong
        } else {
            Find::Pending(window_end.max(from) - start)
        }
    }
}

enum Find {
    Found(usize),
    /// Not found; this many bytes of the line are searched.
    Pending(usize),
    TooLong,
}

/// A hint for [`Parsed::Incomplete`]: the bytes that would complete the
/// current step, but no more than about twice what has arrived.
fn incomplete(complete_at: usize, have: usize) -> Parsed {
    let cap = have.saturating_mul(2).max(have.saturating_add(HINT_STEP));
    Parsed::Incomplete {
        needed: complete_at.min(cap).max(have + 1),
    }
}

/// Scratch memory kept between commands; a longer inline line's is freed.
const SCRATCH_KEEP: usize = 4096;

/// The arguments of one command, as borrowed byte slices.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    /// The input (multibulk) or the parser's scratch buffer (inline).
    source: &'a [u8],
    /// Where the next argument's header starts: its `$len` line, or its
    /// length prefix.
    pos: usize,
    left: usize,
    inline: bool,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (start, len) = if self.inline {
            let prefix = self.source.get(self.pos..self.pos + INLINE_LEN);
            let len = prefix.map_or(0, |p| {
                p.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
            });
            (self.pos + INLINE_LEN, len)
        } else {
            // The parser checked these lines: `$`, a valid length, `\r`
            // within 22 bytes (the byte after it is not looked at). So the
            // length is read back as plain digits, which every command pays
            // for each argument; anything else is not what the parser saw (a
            // different input): no argument.
            let line = self.source.get(self.pos..).unwrap_or_default();
            let mut len = 0usize;
            let mut cr = 1;
            loop {
                match line.get(cr) {
                    Some(b'\r') if cr > 1 => break,
                    Some(&d) if d.is_ascii_digit() && cr < 20 => {
                        len = len.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                        cr += 1;
                    }
                    _ => return Some(&[]),
                }
            }
            (self.pos + cr + 2, len)
        };
        let end = start.saturating_add(len);
        self.pos = if self.inline {
            end
        } else {
            end.saturating_add(2)
        };
        Some(self.source.get(start..end).unwrap_or_default())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Args<'_> {}

/// C's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline request into arguments like Redis's `sdssplitargs`:
/// words separated by blanks; `"..."` with `\n \r \t \b \a \xHH` and `\c`
/// escapes; `'...'` with only `\'`; a closing quote must be followed by a
/// blank or the end. The parser refuses a line holding a NUL byte before it
/// gets here ([`ProtocolError::NulInInline`]); a NUL would end the line, as
/// for Redis's C string. Each argument is appended to `scratch` as its
/// length ([`INLINE_LEN`] bytes, big-endian) and its bytes; returns how many
/// there are.
fn split_inline(line: &[u8], scratch: &mut Vec<u8>) -> Result<usize, ()> {
    let mut count = 0;
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(count);
        }
        let prefix = scratch.len();
        scratch.extend_from_slice(&[0; INLINE_LEN]);
        let start = scratch.len();
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if in_double {
                if let (b'\\', b'x', Some(hi), Some(lo)) =
                    (c, at(p + 1), hex_value(at(p + 2)), hex_value(at(p + 3)))
                {
                    scratch.push(hi * 16 + lo);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    scratch.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(());
                    }
                    done = true;
                } else if c == 0 {
                    return Err(());
                } else {
                    scratch.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    scratch.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(());
                    }
                    done = true;
                } else if c == 0 {
                    return Err(());
                } else {
                    scratch.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => scratch.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        let len = scratch.len() - start;
        let be = (len as u32).to_be_bytes();
        scratch[prefix..start].copy_from_slice(&be[4 - INLINE_LEN..]);
        count += 1;
    }
}

/// Parses a signed decimal exactly as Redis's `string2ll` does: no sign but
/// `-`, no leading zeros, no blanks, nothing beyond 64 bits. Commands use it
/// for their integer arguments too, so `INCRBY k 007` fails as in Redis.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    // Redis refuses 21 bytes or more before looking at them (LONG_STR_SIZE).
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// The RESP version a connection speaks; `HELLO 3` switches to RESP3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    /// RESP2, every connection's start.
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Version {
    /// 2 or 3, as `HELLO` reports it.
    pub fn number(self) -> i64 {
        match self {
            Version::Resp2 => 2,
            Version::Resp3 => 3,
        }
    }
}

/// Appends replies to an output buffer in a connection's RESP version.
///
/// Types RESP2 lacks are written as their RESP2 equivalents: a map as a flat
/// array of keys and values, null as the null bulk string `$-1`, a verbatim
/// string as a bulk string.
pub struct Reply<'a> {
    out: &'a mut Vec<u8>,
    version: Version,
}

impl<'a> Reply<'a> {
    /// A writer of replies into `out`, in `version`'s encoding.
    pub fn new(out: &'a mut Vec<u8>, version: Version) -> Reply<'a> {
        Reply { out, version }
    }

    /// The protocol version replies are written in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Switches the version for the replies that follow (`HELLO` answers in
    /// the version it selects).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The buffer, for callers that write several replies.
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// `+text`; `text` must hold no CR or LF (they are replaced by blanks).
    pub fn simple(&mut self, text: &[u8]) {
        self.line(b'+', text);
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// `-message`: the message starts with its code (`ERR ...`, `WRONGTYPE
    /// ...`). CR and LF in it (it may quote a client's bytes) become blanks,
    /// as in Redis, so the reply stays one line.
    pub fn error(&mut self, message: &[u8]) {
        self.line(b'-', message);
    }

    /// `:n`.
    pub fn integer(&mut self, n: i64) {
        self.out.push(b':');
        push_decimal(self.out, n);
        self.out.extend_from_slice(b"\r\n");
    }

    /// `$len` and the bytes.
    pub fn bulk(&mut self, bytes: &[u8]) {
        self.bulk_header(bytes.len());
        self.out.extend_from_slice(bytes);
        self.out.extend_from_slice(b"\r\n");
    }

    /// The header of a bulk string whose `len` bytes and `\r\n` the caller
    /// appends itself.
    pub fn bulk_header(&mut self, len: usize) {
        self.out.push(b'$');
        push_decimal(self.out, i64::try_from(len).unwrap_or(i64::MAX));
        self.out.extend_from_slice(b"\r\n");
    }

    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        self.out.extend_from_slice(match self.version {
            Version::Resp2 => b"$-1\r\n",
            Version::Resp3 => b"_\r\n",
        });
    }

    /// The header of an array of `len` replies, which follow.
    pub fn array(&mut self, len: usize) {
        self.aggregate(b'*', len);
    }

    /// The header of a map of `len` pairs (key, value replies follow): `%len`
    /// in RESP3, an array of `2 * len` in RESP2.
    pub fn map(&mut self, len: usize) {
        match self.version {
            Version::Resp2 => self.aggregate(b'*', len.saturating_mul(2)),
            Version::Resp3 => self.aggregate(b'%', len),
        }
    }

    /// Text for a person (`INFO`): RESP3's verbatim string `=len\r\ntxt:...`,
    /// a bulk string in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        match self.version {
            Version::Resp2 => self.bulk(text),
            Version::Resp3 => {
                self.out.push(b'=');
                push_decimal(self.out, i64::try_from(text.len() + 4).unwrap_or(i64::MAX));
                self.out.extend_from_slice(b"\r\ntxt:");
                self.out.extend_from_slice(text);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    fn aggregate(&mut self, kind: u8, len: usize) {
        self.out.push(kind);
        push_decimal(self.out, i64::try_from(len).unwrap_or(i64::MAX));
        self.out.extend_from_slice(b"\r\n");
    }

    fn line(&mut self, kind: u8, text: &[u8]) {
        self.out.push(kind);
        self.out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Appends `n` in decimal, without going through `fmt`.
pub fn push_decimal(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;
    const LIM: Limits = Limits::new(MAX);

    /// Parses `input` whole: the commands, and how the parse ended.
    fn parse_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Parsed) {
        let mut p = Parser::new();
        let mut rest = input;
        let mut commands = Vec::new();
        loop {
            match p.parse(rest, LIM) {
                Parsed::Command { consumed } => {
                    commands.push(p.args(rest).map(<[u8]>::to_vec).collect());
                    rest = &rest[consumed..];
                }
                other => return (commands, other),
            }
        }
    }

    fn words(ws: &[&str]) -> Vec<Vec<u8>> {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn error_of(input: &[u8]) -> ProtocolError {
        match parse_all(input).1 {
            Parsed::Error(e) => e,
            other => panic!("{input:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn multibulk_commands_back_to_back() {
        let (cmds, end) =
            parse_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        assert_eq!(cmds, [words(&["PING"]), words(&["SET", "k", ""])]);
        assert!(matches!(end, Parsed::Incomplete { .. }));
    }

    #[test]
    fn bulk_bytes_are_binary() {
        let (cmds, _) = parse_all(b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\0\xff\r\n");
        assert_eq!(cmds, [vec![b"ECHO".to_vec(), b"\r\n\0\xff".to_vec()]]);
    }

    #[test]
    fn empty_and_negative_multibulk_are_empty_commands() {
        let (cmds, _) = parse_all(b"*0\r\n*-1\r\n*1\r\n$1\r\nx\r\n");
        assert_eq!(cmds, [vec![], vec![], words(&["x"])]);
    }

    #[test]
    fn inline_commands() {
        let (cmds, end) = parse_all(b"PING\r\nset a  b\n\r\n   \nGET \"a b\"\r\nx");
        assert_eq!(
            cmds,
            [
                words(&["PING"]),
                words(&["set", "a", "b"]),
                vec![],
                vec![],
                words(&["GET", "a b"])
            ]
        );
        assert_eq!(end, Parsed::Incomplete { needed: 2 });
    }

    #[test]
    fn inline_quoting_follows_sdssplitargs() {
        let (cmds, _) = parse_all(b"a \"x\\n\\x41\\q\\\"\" 'it\\'s' b\"c d\"\tf\r\n");
        assert_eq!(
            cmds,
            [vec![
                b"a".to_vec(),
                b"x\nAq\"".to_vec(),
                b"it's".to_vec(),
                b"bc d".to_vec(),
                b"f".to_vec()
            ]]
        );
        // Single quotes keep backslashes; "\x4" is not a hex escape.
        let (cmds, _) = parse_all(b"'a\\nb' \"\\x4\"\n");
        assert_eq!(cmds, [vec![b"a\\nb".to_vec(), b"x4".to_vec()]]);
        // Empty quotes are an empty argument.
        let (cmds, _) = parse_all(b"set a \"\"\n");
        assert_eq!(cmds, [vec![b"set".to_vec(), b"a".to_vec(), vec![]]]);
    }

    #[test]
    fn unbalanced_quotes() {
        for bad in [
            &b"get \"a\n"[..],
            b"get 'a\n",
            b"get \"a\"b\n",
            b"get 'a'b\n",
            b"get \"a\\\"\n",
        ] {
            assert_eq!(error_of(bad), ProtocolError::UnbalancedQuotes, "{bad:?}");
        }
    }

    #[test]
    fn a_nul_in_an_inline_request_is_refused_at_once() {
        // A JSON frame's length prefix: refused before any newline arrives.
        let frame = b"\x0e\0\0\0{\"in\":\"ping\"}";
        for n in 2..=frame.len() {
            assert_eq!(
                Parser::new().parse(&frame[..n], Limits::new(MAX)),
                Parsed::Error(ProtocolError::NulInInline),
                "{n} bytes"
            );
        }
        assert!(matches!(
            Parser::new().parse(&frame[..1], Limits::new(MAX)),
            Parsed::Incomplete { .. }
        ));
        for bad in [
            &b"set a b\0c d\n"[..],
            b"get \"a\0\"\n",
            b"\0",
            b"PING\r\0\n",
        ] {
            assert_eq!(error_of(bad), ProtocolError::NulInInline, "{bad:?}");
        }
        // The commands before it are answered; a NUL inside a bulk is data.
        let (cmds, end) = parse_all(b"PING\r\n*1\r\n$2\r\n\0\0\r\nGET \0");
        assert_eq!(cmds, [words(&["PING"]), vec![b"\0\0".to_vec()]]);
        assert_eq!(end, Parsed::Error(ProtocolError::NulInInline));
        // A JSON frame of 42 bytes starts with `*`: its count is refused at once.
        assert_eq!(
            Parser::new().parse(b"*\0\0\0", Limits::new(MAX)),
            Parsed::Error(ProtocolError::InvalidMultibulkLength)
        );
        assert!(ProtocolError::NulInInline
            .to_string()
            .starts_with("Protocol error: NUL byte in an inline request"));
    }

    #[test]
    fn before_login_ten_arguments_and_16_kib_bulks_at_most() {
        let limits = Limits {
            unauthenticated: true,
            ..Limits::new(1 << 20)
        };
        let parse = |input: &[u8]| Parser::new().parse(input, limits);
        assert_eq!(
            parse(b"*11\r\n"),
            Parsed::Error(ProtocolError::UnauthenticatedMultibulkLength)
        );
        assert!(matches!(parse(b"*10\r\n"), Parsed::Incomplete { .. }));
        assert_eq!(
            parse(b"*2\r\n$4\r\nECHO\r\n$16385\r\n"),
            Parsed::Error(ProtocolError::UnauthenticatedBulkLength)
        );
        assert!(matches!(
            parse(b"*2\r\n$4\r\nECHO\r\n$16384\r\n"),
            Parsed::Incomplete { .. }
        ));
        // The limits are the caller's to lift: once logged in, both are read.
        assert!(matches!(
            Parser::new().parse(b"*11\r\n", Limits::new(1 << 20)),
            Parsed::Incomplete { .. }
        ));
        assert_eq!(
            ProtocolError::UnauthenticatedMultibulkLength.message(),
            b"Protocol error: unauthenticated multibulk length"
        );
        assert_eq!(
            ProtocolError::UnauthenticatedBulkLength.message(),
            b"Protocol error: unauthenticated bulk length"
        );
    }

    #[test]
    fn protocol_errors_as_redis_words_them() {
        assert_eq!(error_of(b"*x\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(
            error_of(b"*2147483648\r\n"),
            ProtocolError::InvalidMultibulkLength
        );
        assert_eq!(error_of(b"*01\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(error_of(b"*\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(error_of(b"*1\r\n$-1\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(error_of(b"*1\r\n$+1\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(
            error_of(b"*1\r\n:1\r\n"),
            ProtocolError::ExpectedDollar(b':')
        );
        assert_eq!(
            error_of(b"*1\r\n\r\n"),
            ProtocolError::ExpectedDollar(b'\r')
        );
        let (cmds, end) = parse_all(b"*1048576\r\n");
        assert!(cmds.is_empty());
        assert!(matches!(end, Parsed::Incomplete { .. }));
        assert_eq!(
            ProtocolError::ExpectedDollar(b'x').to_string(),
            "Protocol error: expected '$', got 'x'"
        );
        assert_eq!(
            ProtocolError::InvalidMultibulkLength.to_string(),
            "Protocol error: invalid multibulk length"
        );
    }

    #[test]
    fn bulk_over_the_limit_is_refused_from_its_header() {
        let mut p = Parser::new();
        assert_eq!(
            p.parse(b"*2\r\n$3\r\nSET\r\n$11\r\n", Limits::new(10)),
            Parsed::Error(ProtocolError::InvalidBulkLength)
        );
        let mut p = Parser::new();
        assert!(matches!(
            p.parse(b"*2\r\n$3\r\nSET\r\n$10\r\n", Limits::new(10)),
            Parsed::Incomplete { .. }
        ));
    }

    #[test]
    fn a_command_over_its_bound_is_refused_from_a_header() {
        let limits = |max_command| Limits {
            max_bulk: MAX,
            unauthenticated: false,
            max_command,
        };
        // `*N` alone: N overheads.
        let mut p = Parser::new();
        assert_eq!(
            p.parse(b"*4\r\n", limits(4 * ARG_OVERHEAD - 1)),
            Parsed::Error(ProtocolError::TooBigMultibulkRequest)
        );
        let mut p = Parser::new();
        assert!(matches!(
            p.parse(b"*4\r\n", limits(4 * ARG_OVERHEAD)),
            Parsed::Incomplete { .. }
        ));
        // A `$len` that would pass it, before its body: the overheads of the
        // arguments still to come count already.
        let bound = 3 * ARG_OVERHEAD + 3 + 10;
        let mut p = Parser::new();
        assert_eq!(
            p.parse(b"*3\r\n$3\r\nSET\r\n$11\r\n", limits(bound)),
            Parsed::Error(ProtocolError::TooBigMultibulkRequest)
        );
        let mut p = Parser::new();
        let input = b"*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$0\r\n\r\n";
        assert_eq!(
            p.parse(input, limits(bound)),
            Parsed::Command {
                consumed: input.len()
            }
        );
        let args: Vec<&[u8]> = p.args(input).collect();
        assert_eq!(args, [&b"SET"[..], b"0123456789", b""]);
        // The bound is per command: the next one starts afresh.
        let mut rest = input.to_vec();
        rest.extend_from_slice(input);
        let mut p = Parser::new();
        let Parsed::Command { consumed } = p.parse(&rest, limits(bound)) else {
            panic!("first");
        };
        assert!(matches!(
            p.parse(&rest[consumed..], limits(bound)),
            Parsed::Command { .. }
        ));
        // Inline: its words and an overhead each.
        let mut p = Parser::new();
        assert_eq!(
            p.parse(b"SET k v\n", limits(3 * ARG_OVERHEAD + 4)),
            Parsed::Error(ProtocolError::TooBigInlineRequest)
        );
        let mut p = Parser::new();
        assert!(matches!(
            p.parse(b"SET k v\n", limits(3 * ARG_OVERHEAD + 5)),
            Parsed::Command { .. }
        ));
        assert_eq!(
            ProtocolError::TooBigMultibulkRequest.to_string(),
            "Protocol error: too big multibulk request"
        );
    }

    /// The parser keeps nothing per argument: a multibulk command of many
    /// empty arguments leaves its scratch memory empty, and its arguments
    /// are read back from the input.
    #[test]
    fn many_arguments_cost_the_parser_nothing() {
        let n = 100_000;
        let mut input = format!("*{n}\r\n").into_bytes();
        for _ in 0..n {
            input.extend_from_slice(b"$0\r\n\r\n");
        }
        let mut p = Parser::new();
        let one_mib = Limits {
            max_bulk: MAX,
            unauthenticated: false,
            max_command: 1 << 20,
        };
        assert_eq!(
            p.parse(&input[..10], one_mib),
            Parsed::Error(ProtocolError::TooBigMultibulkRequest),
            "100 000 overheads pass 1 MiB, from the header alone"
        );
        let mut p = Parser::new();
        let Parsed::Command { consumed } = p.parse(&input, LIM) else {
            panic!("a whole command");
        };
        assert_eq!(consumed, input.len());
        assert_eq!(p.scratch.capacity(), 0);
        assert_eq!(p.arg_count(), n);
        let args = p.args(&input);
        assert_eq!(args.len(), n);
        assert!(args.into_iter().all(<[u8]>::is_empty));
    }

    #[test]
    fn inline_arguments_are_stored_compactly() {
        let mut line = b"a".to_vec();
        for _ in 0..1000 {
            line.extend_from_slice(b" a");
        }
        line.push(b'\n');
        let (cmds, _) = parse_all(&line);
        assert_eq!(cmds[0].len(), 1001);
        let mut p = Parser::new();
        assert!(matches!(p.parse(&line, LIM), Parsed::Command { .. }));
        assert_eq!(p.scratch.len(), 1001 * (INLINE_LEN + 1));
        // A whole-line argument of the longest length round-trips.
        let mut long = vec![b'x'; INLINE_MAX];
        long.push(b'\n');
        let (cmds, _) = parse_all(&long);
        assert_eq!(cmds[0][0].len(), INLINE_MAX);
    }

    #[test]
    fn long_lines_are_refused() {
        let mut line = vec![b'a'; INLINE_MAX];
        line.push(b'\n');
        assert_eq!(parse_all(&line).0.len(), 1, "exactly INLINE_MAX is fine");
        let mut line = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(
            Parser::new().parse(&line, LIM),
            Parsed::Error(ProtocolError::TooBigInlineRequest)
        );
        line.push(b'\n');
        assert_eq!(error_of(&line), ProtocolError::TooBigInlineRequest);

        let mut count = b"*".to_vec();
        count.resize(INLINE_MAX + 2, b'1');
        assert_eq!(error_of(&count), ProtocolError::TooBigMbulkCountString);
        let mut header = b"*1\r\n$".to_vec();
        header.resize(INLINE_MAX + 6, b'1');
        assert_eq!(error_of(&header), ProtocolError::TooBigBulkCountString);
    }

    #[test]
    fn incomplete_hint_never_runs_far_ahead() {
        let mut p = Parser::new();
        let input = b"*1\r\n$1000000\r\n";
        assert_eq!(
            p.parse(input, LIM),
            Parsed::Incomplete {
                needed: input.len() + HINT_STEP
            }
        );
        let mut p = Parser::new();
        let input = b"*1\r\n$10\r\nab";
        assert_eq!(
            p.parse(input, LIM),
            Parsed::Incomplete {
                needed: input.len() + 10
            }
        );
    }

    /// A 1 MiB bulk, and a 64 KiB inline line, dribbled one byte at a time:
    /// the searches examine each byte about once, not once per arrival.
    #[test]
    fn one_byte_at_a_time_is_linear() {
        let mut stream = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n".to_vec();
        stream.resize(stream.len() + (1 << 20), b'v');
        stream.extend_from_slice(b"\r\n");
        let mut inline = vec![b'x'; INLINE_MAX - 1];
        inline.extend_from_slice(b"\r\n");
        stream.extend_from_slice(&inline);

        let mut p = Parser::new();
        let mut start = 0;
        let mut commands = 0;
        for end in 1..=stream.len() {
            if let Parsed::Command { consumed } = p.parse(&stream[start..end], LIM) {
                commands += 1;
                start += consumed;
            }
        }
        assert_eq!(commands, 2);
        assert!(p.work < 2 * (INLINE_MAX + 64), "searched {} bytes", p.work);
    }

    #[test]
    fn a_shorter_input_restarts_instead_of_panicking() {
        let mut p = Parser::new();
        assert!(matches!(
            p.parse(b"*1\r\n$5\r\nab", LIM),
            Parsed::Incomplete { .. }
        ));
        assert!(matches!(p.parse(b"*1", LIM), Parsed::Incomplete { .. }));
        assert_eq!(
            p.parse(b"*1\r\n$1\r\nx\r\n", LIM),
            Parsed::Command { consumed: 11 }
        );
    }

    #[test]
    fn string2ll_rules() {
        for (s, v) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1a", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), v, "{s:?}");
        }
    }

    #[test]
    fn replies_in_both_versions() {
        let mut out = Vec::new();
        for v in [Version::Resp2, Version::Resp3] {
            let mut r = Reply::new(&mut out, v);
            r.ok();
            r.simple(b"PONG");
            r.error(b"ERR bad\r\nthing");
            r.integer(-42);
            r.integer(i64::MIN);
            r.bulk(b"hi");
            r.null();
            r.array(2);
            r.map(1);
            r.verbatim(b"x");
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+OK\r\n+PONG\r\n-ERR bad  thing\r\n:-42\r\n:-9223372036854775808\r\n$2\r\nhi\r\n\
             $-1\r\n*2\r\n*2\r\n$1\r\nx\r\n\
             +OK\r\n+PONG\r\n-ERR bad  thing\r\n:-42\r\n:-9223372036854775808\r\n$2\r\nhi\r\n\
             _\r\n*2\r\n%1\r\n=5\r\ntxt:x\r\n"
        );
    }
}
