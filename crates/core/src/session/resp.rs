//! The Redis protocol's session: RESP bytes in, replies out, as
//! [`json::process`](super::json::process) is for JSON frames.
//!
//! [`process`] parses every complete command at the front of an input slice,
//! runs each with [`redis::execute`], and appends each reply to the output
//! vector. It stops when the input runs out, when pending output passes the
//! high-water mark, after `QUIT`, or at a protocol error (after writing
//! `-ERR Protocol error: ...`; the connection is then closed, as Redis does).
//! It is pure, so tests drive exactly what the servers run. A server model
//! keeps one [`RespSession`] per RESP connection and calls [`process`] after
//! every read, consuming `consumed` bytes, exactly as it does for JSON.

use reactor_rpc_protocol::resp::{Limits, Parsed, Parser, Reply};

use super::{CloseReason, Options, Progress, Stop};
use crate::output::Output;
use crate::service::redis::{self, Flow, Session};
use crate::service::Service;

/// One RESP connection's session: the [`Session`] its commands act on and
/// the parser's progress through the command at the front of the input.
#[derive(Debug)]
pub struct RespSession {
    /// What the commands see of the client: protocol version, name, an
    /// open transaction. `None` only while a heavy command runs on a worker
    /// with it ([`RespSession::lend`]).
    session: Option<Session>,
    parser: Parser,
}

impl RespSession {
    /// A new session for a connection that arrived on `tcp_port` (reported
    /// by `INFO`).
    pub fn new(tcp_port: u16) -> RespSession {
        RespSession {
            session: Some(Session::new(tcp_port)),
            parser: Parser::new(),
        }
    }

    /// A new connection from `peer`, accepted at `local` (both reported by
    /// `CLIENT LIST`).
    pub fn with_addrs(peer: std::net::SocketAddr, local: std::net::SocketAddr) -> RespSession {
        RespSession {
            session: Some(Session::with_addrs(peer, local)),
            parser: Parser::new(),
        }
    }
}

impl RespSession {
    /// The command state, unless a job has it.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The command state to change, unless a job has it.
    pub fn session_mut(&mut self) -> Option<&mut Session> {
        self.session.as_mut()
    }

    /// Sets what closes the connection on `CLIENT KILL` (see
    /// [`super::Session::on_kill`]).
    pub(super) fn set_kill_hook(&mut self, hook: redis::KillHook) {
        if let Some(session) = self.session.as_mut() {
            session.set_kill_hook(hook);
        }
    }

    /// Gives the command state to a job (see [`super::Session::job`]).
    pub(super) fn lend(&mut self) -> Box<Session> {
        match self.session.take() {
            Some(session) => Box::new(session),
            // A second job before the first came back: the model broke the
            // one-job-at-a-time rule. The job gets a fresh state; the
            // original comes back with the first job.
            None => Box::new(Session::new(0)),
        }
    }

    /// Takes the command state back from a job.
    pub(super) fn take_back(&mut self, session: Box<Session>) {
        self.session = Some(*session);
    }
}

/// Runs the one command in `request` (a heavy one, parsed once already on
/// the loop) with the connection's command state, on a worker; returns the
/// state.
pub(super) fn run_job(
    service: &Service,
    session: Box<Session>,
    request: &[u8],
    out: &mut Output,
    max_reply: usize,
) -> Box<Session> {
    let mut conn = RespSession {
        session: Some(*session),
        parser: Parser::new(),
    };
    let opt = Options {
        // Checked against --max-frame and --max-command when the loop parsed it.
        max_frame: u32::MAX,
        offload: false,
        max_output: usize::MAX,
        max_reply,
        max_command: usize::MAX,
    };
    process_output(service, &mut conn, request, out, opt);
    Box::new(conn.session.unwrap_or_else(|| Session::new(0)))
}

/// Commands with at most this many arguments pass them on the stack.
const STACK_ARGS: usize = 16;

/// Answers every complete command at the front of `input`; see the module
/// docs. `input` must start where the previous call's `consumed` left off.
/// A large cached value is copied into `out`; [`process_output`] queues it
/// by reference instead.
pub fn process(
    service: &Service,
    conn: &mut RespSession,
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
    conn: &mut RespSession,
    input: &[u8],
    out: &mut Output,
    opt: Options,
) -> Progress {
    let RespSession { session, parser } = conn;
    let Some(session) = session.as_mut() else {
        // A job has the state (see `RespSession::lend`): a model must not
        // decode until it returns. Closing is the safe answer to that bug.
        debug_assert!(false, "RESP input processed while a job holds the session");
        return Progress {
            consumed: 0,
            answered: 0,
            stop: Stop::Close(CloseReason::IoError),
        };
    };
    let mut consumed = 0;
    let mut answered = 0;
    let mut batch = crate::service::Batch::new(service);
    let out_start = out.total_len();
    let stop = loop {
        if out.total_len() >= opt.max_output {
            break Stop::OutputFull;
        }
        let rest = &input[consumed..];
        let limits = Limits {
            max_bulk: opt.max_frame as usize,
            max_command: opt.max_command,
            unauthenticated: session.login.awaits_login(service.auth()),
        };
        match parser.parse(rest, limits) {
            Parsed::Incomplete { needed } => break Stop::NeedMore { needed },
            Parsed::Error(e) => {
                let mut message = b"ERR ".to_vec();
                message.extend_from_slice(&e.message());
                Reply::new(out, session.protocol).error(&message);
                answered += 1;
                break Stop::Close(CloseReason::ProtocolError);
            }
            Parsed::Command { consumed: len } => {
                let count = parser.args(rest).len();
                if count == 0 {
                    consumed += len;
                    continue; // a blank line or `*0`: no reply, as in Redis
                }
                // The first arguments on the stack: all of most commands,
                // and enough to tell whether a long one is heavy (which the
                // worker then lists again) without listing it on the loop.
                let mut stack: [&[u8]; STACK_ARGS] = [&[]; STACK_ARGS];
                let head = count.min(STACK_ARGS);
                for (slot, arg) in stack.iter_mut().zip(parser.args(rest)) {
                    *slot = arg;
                }
                if opt.offload && redis::is_heavy_by_head(service, session, &stack[..head], count) {
                    break Stop::Offload { len };
                }
                let heap: Vec<&[u8]>;
                let argv: &[&[u8]] = if count <= STACK_ARGS {
                    &stack[..count]
                } else {
                    // Grows with the arguments present (already parsed).
                    heap = parser.args(rest).collect();
                    &heap
                };
                let (flow, label) =
                    redis::execute_labelled(service, session, argv, out, opt.max_reply);
                consumed += len;
                if let Some(label) = label {
                    batch.push(label);
                }
                answered += 1;
                if flow == Flow::Close {
                    break Stop::Close(CloseReason::Bye);
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
