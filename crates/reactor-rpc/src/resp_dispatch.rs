//! RESP bytes in, replies out: the request path of a Redis-protocol
//! connection, as [`dispatch::process`](crate::dispatch::process) is for JSON.
//!
//! [`process`] parses every complete command at the front of an input slice,
//! runs each with [`redis::execute`], and appends each reply to the output
//! vector. It stops when the input runs out, when pending output passes the
//! high-water mark, after `QUIT`, or at a protocol error (after writing
//! `-ERR Protocol error: ...`; the connection is then closed, as Redis does).
//! It is pure, so tests drive exactly what the servers run. A server model
//! keeps one [`Connection`] per RESP connection and calls [`process`] after
//! every read, consuming `consumed` bytes, exactly as it calls
//! `dispatch::process` for JSON connections.

use crate::output::Output;
use crate::protocol::resp::{Parsed, Parser, Reply};
use crate::service::redis::{self, Flow, Session};
use crate::service::Service;

/// How to process input.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Longest accepted bulk string (the server passes `--max-frame`).
    pub max_bulk: usize,
    /// Stop parsing once the output holds this many bytes (backpressure).
    pub max_output: usize,
}

/// Why [`process`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// No complete command left: read until the unconsumed input holds
    /// `needed` bytes (a hint that grows with what arrived, never with what a
    /// header announced), then call again.
    NeedMore {
        /// A hint of the bytes the next command needs.
        needed: usize,
    },
    /// The output reached `max_output`; drain it before processing more.
    OutputFull,
    /// After `QUIT` (`error: false`), or after a protocol error whose reply
    /// was written (`error: true`): flush the output, then close.
    Close {
        /// Whether a protocol error ended the connection.
        error: bool,
    },
}

/// What [`process`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed (whole commands only).
    pub consumed: usize,
    /// Replies appended.
    pub answered: usize,
    /// Why processing stopped.
    pub stop: Stop,
}

/// One RESP connection's state: its session and its parser's progress
/// through the command at the front of the input.
#[derive(Debug)]
pub struct Connection {
    /// The client's session: protocol version, name.
    pub session: Session,
    parser: Parser,
}

impl Connection {
    /// A new connection that arrived on `tcp_port` (reported by `INFO`).
    pub fn new(tcp_port: u16) -> Connection {
        Connection {
            session: Session::new(tcp_port),
            parser: Parser::new(),
        }
    }

    /// A new connection from `peer`, accepted at `local` (both reported by
    /// `CLIENT LIST`).
    pub fn with_addrs(peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Connection {
        Connection {
            session: Session::with_addrs(peer, local),
            parser: Parser::new(),
        }
    }
}

/// Commands with at most this many arguments pass them on the stack.
const STACK_ARGS: usize = 16;

/// Answers every complete command at the front of `input`; see the module
/// docs. `input` must start where the previous call's `consumed` left off.
/// A large cached value is copied into `out`; [`process_output`] queues it
/// by reference instead.
pub fn process(
    service: &Service,
    conn: &mut Connection,
    input: &[u8],
    out: &mut Vec<u8>,
    opt: Options,
) -> Progress {
    // A move in and out: nothing is copied unless a value was spliced.
    let mut output = Output::from_vec(std::mem::take(out));
    let p = process_output(service, conn, input, &mut output, opt);
    *out = output.into_vec();
    p
}

/// [`process`] into an [`Output`], where a `GET` of a large value queues it
/// by reference (see [`crate::output`]); `max_output` counts spliced bytes at
/// full size.
pub fn process_output(
    service: &Service,
    conn: &mut Connection,
    input: &[u8],
    out: &mut Output,
    opt: Options,
) -> Progress {
    let mut consumed = 0;
    let mut answered = 0;
    let mut batch = crate::service::Batch::new(service);
    let out_start = out.total_len();
    let stop = loop {
        if out.total_len() >= opt.max_output {
            break Stop::OutputFull;
        }
        let rest = &input[consumed..];
        match conn.parser.parse(rest, opt.max_bulk) {
            Parsed::Incomplete { needed } => break Stop::NeedMore { needed },
            Parsed::Error(e) => {
                let mut message = b"ERR ".to_vec();
                message.extend_from_slice(&e.message());
                Reply::new(out, conn.session.protocol).error(&message);
                answered += 1;
                break Stop::Close { error: true };
            }
            Parsed::Command { consumed: len } => {
                consumed += len;
                let args = conn.parser.args(rest);
                if args.len() == 0 {
                    continue; // a blank line or `*0`: no reply, as in Redis
                }
                let (flow, label) = if args.len() <= STACK_ARGS {
                    let mut argv: [&[u8]; STACK_ARGS] = [&[]; STACK_ARGS];
                    let n = args.len();
                    for (slot, arg) in argv.iter_mut().zip(args) {
                        *slot = arg;
                    }
                    redis::execute_labelled(service, &mut conn.session, &argv[..n], out)
                } else {
                    // Grows with the arguments present (already parsed).
                    let argv: Vec<&[u8]> = args.collect();
                    redis::execute_labelled(service, &mut conn.session, &argv, out)
                };
                if let Some(label) = label {
                    batch.push(label);
                }
                answered += 1;
                if flow == Flow::Close {
                    break Stop::Close { error: false };
                }
            }
        }
    };
    // Counted here rather than at each read and write, so every model
    // counts the same way at one pair of adds per batch: the bytes of the
    // requests taken and of the responses queued.
    batch.bytes(consumed, out.total_len().saturating_sub(out_start));
    Progress {
        consumed,
        answered,
        stop,
    }
}
