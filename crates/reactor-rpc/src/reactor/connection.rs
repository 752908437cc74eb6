//! One client connection of the reactor: its socket, buffers and state.
//!
//! [`Connection::drive`] is the whole per-connection cycle: read what has
//! arrived, answer every complete frame, write the answers in one go, and
//! repeat only while something can still move. It tracks readiness itself
//! (mio is edge-triggered: an edge is reported once, so `readable` stays true
//! until a read comes back short or with `WouldBlock`), which is what lets the
//! loop skip the extra `read` that would only say `WouldBlock`.

use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::workers::{Job, WorkerPool};
use crate::buffer::{ReadBuffer, WriteBuffer, READ_CHUNK};
use crate::dispatch::{self, Stop};
use crate::protocol::HEADER_LEN;
use crate::service::Service;

/// What a connection needs from the loop to make progress.
pub struct Env<'a> {
    pub service: &'a Service,
    pub opts: dispatch::Options,
    pub workers: Option<&'a WorkerPool>,
    pub now: Instant,
}

/// Where a connection stands with respect to the worker pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    None,
    /// A request of ours is on a worker; later requests wait behind it, so
    /// responses stay in order.
    Running,
    /// The job queue was full; the loop retries when a worker frees a slot.
    Stalled,
}

/// What the loop should do with a connection after driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Keep,
    /// Used up its turn with input still waiting: drive it again after the
    /// other ready connections (edge-triggered epoll will not report it again).
    Yield,
    /// `frame_too_large` is written and the write side shut: discard input
    /// until the peer closes or this moment, then close.
    Linger(Instant),
    Close(&'static str),
}

/// Read-answer-write rounds one connection gets per turn (each reads at most
/// 16 × `READ_CHUNK`): a client that pipelines without pause cannot keep the
/// loop from its other connections.
const ROUNDS_PER_TURN: usize = 16;

/// How long a connection refused for `frame_too_large` keeps discarding input.
/// Closing a socket with unread input sends a reset, which can destroy the
/// error response before the client reads it; a lingering close sends FIN
/// after the response instead.
const LINGER: Duration = Duration::from_secs(1);

pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Slab key, and an id unique for the server's lifetime.
    pub key: usize,
    pub id: u64,
    pub last_active: Instant,
    pub job: JobState,
    input: ReadBuffer,
    output: WriteBuffer,
    /// The socket may hold unread bytes.
    readable: bool,
    /// The socket may accept more bytes.
    writable: bool,
    /// The peer has hung up (RDHUP/HUP/error seen): read to the end, since no
    /// further edge will come to report the EOF behind a short read.
    hup: bool,
    /// Total bytes the next frame occupies, once its header is in.
    needed: usize,
    /// Every complete frame in `input` has been answered.
    input_done: bool,
    /// Pending output passed the high-water mark: no decoding until it drains.
    paused: bool,
    /// The peer has finished sending.
    eof: bool,
    /// Shutting down: read only what had arrived, answer it, then close.
    draining: bool,
    /// While draining, the socket came back empty once: read no more.
    drained: bool,
    /// `frame_too_large` was answered: close once it is written.
    poisoned: bool,
    /// When a lingering close (after `frame_too_large`) gives up waiting.
    pub linger_until: Option<Instant>,
}

impl Connection {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        key: usize,
        id: u64,
        now: Instant,
    ) -> Connection {
        Connection {
            stream,
            peer,
            key,
            id,
            last_active: now,
            job: JobState::None,
            input: ReadBuffer::new(),
            output: WriteBuffer::new(),
            readable: false,
            writable: true,
            hup: false,
            needed: HEADER_LEN,
            input_done: true,
            paused: false,
            eof: false,
            draining: false,
            drained: false,
            poisoned: false,
            linger_until: None,
        }
    }

    /// Records a readiness event.
    #[inline]
    pub fn ready(&mut self, readable: bool, writable: bool, hup: bool) {
        self.readable |= readable | hup;
        self.writable |= writable;
        self.hup |= hup;
    }

    /// Whether requests are being decoded.
    #[inline]
    fn decoding(&self) -> bool {
        self.job == JobState::None && !self.paused && !self.poisoned
    }

    /// Whether the socket should be read.
    #[inline]
    fn wants_input(&self) -> bool {
        (self.decoding() || self.linger_until.is_some()) && !self.eof && !self.drained
    }

    /// Reads, answers and writes until nothing more can move now, or its turn is up.
    pub fn drive(&mut self, env: &Env<'_>) -> Next {
        for _ in 0..ROUNDS_PER_TURN {
            if self.readable && self.wants_input() {
                if let Err(e) = self.fill(env.now) {
                    return self.failed("read", &e);
                }
                if self.linger_until.is_some() {
                    self.input.clear(); // lingering: input is discarded
                }
            }
            if self.decoding() && !self.input_done {
                self.answer(env);
            }
            if let Err(e) = self.flush(env) {
                return self.failed("write", &e);
            }
            let more_input = self.readable && self.wants_input();
            let more_frames = self.decoding() && !self.input_done;
            if !more_input && !more_frames {
                return self.next(env.now);
            }
        }
        Next::Yield
    }

    /// Reads until the socket is empty (a short read or `WouldBlock`), the peer
    /// closes, or a batch is buffered (then `readable` stays set and the loop
    /// comes back after answering it).
    fn fill(&mut self, now: Instant) -> io::Result<()> {
        let batch = self.needed.max(16 * READ_CHUNK);
        while self.input.readable().len() < batch {
            let want = self
                .needed
                .saturating_sub(self.input.readable().len())
                .max(READ_CHUNK);
            match self.input.read_from(&mut self.stream, want) {
                Ok((0, _)) => {
                    self.eof = true;
                    self.readable = false;
                    break;
                }
                Ok((n, offered)) => {
                    self.last_active = now;
                    self.input_done = false;
                    if n < offered && !self.hup {
                        self.socket_empty(); // short read: the queue was empty
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.socket_empty();
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[inline]
    fn socket_empty(&mut self) {
        self.readable = false;
        self.drained = self.draining;
    }

    /// Answers every complete frame, up to backpressure or a heavy request.
    fn answer(&mut self, env: &Env<'_>) {
        let opts = env.opts;
        let p = dispatch::process(
            env.service,
            &self.peer,
            self.input.readable(),
            self.output.vec_mut(),
            opts,
        );
        self.input.consume(p.consumed);
        match p.stop {
            Stop::NeedMore { needed } => {
                self.needed = needed;
                self.input_done = true;
            }
            Stop::OutputFull => self.paused = true,
            Stop::TooLarge => self.poisoned = true,
            Stop::Offload { body_len } => self.offload(env, body_len),
        }
    }

    /// Hands the heavy frame at the front of the input to a worker.
    fn offload(&mut self, env: &Env<'_>, body_len: usize) {
        let body = self.input.readable()[HEADER_LEN..HEADER_LEN + body_len].to_vec();
        let job = Job {
            key: self.key,
            conn_id: self.id,
            peer: self.peer,
            body,
        };
        let submitted = match env.workers {
            Some(workers) => workers.submit(job, env.service),
            None => Err(job),
        };
        match submitted {
            Ok(()) => {
                self.input.consume(HEADER_LEN + body_len);
                self.job = JobState::Running;
            }
            Err(job) if env.workers.is_some() => {
                drop(job);
                self.job = JobState::Stalled;
            }
            Err(job) => {
                // No pool to run it on (cannot happen: offload is only on with
                // workers), so run it here rather than lose it.
                env.service
                    .handle(&self.peer, &job.body, self.output.vec_mut(), false);
                self.input.consume(HEADER_LEN + body_len);
            }
        }
    }

    /// A worker's response arrived: queue it and let decoding resume.
    pub fn job_done(&mut self, response: &[u8]) {
        self.output.vec_mut().extend_from_slice(response);
        self.job = JobState::None;
    }

    /// The job queue has room again: try the stalled request once more.
    pub fn unstall(&mut self) {
        if self.job == JobState::Stalled {
            self.job = JobState::None;
        }
    }

    /// Writes pending output until done or the socket is full.
    fn flush(&mut self, env: &Env<'_>) -> io::Result<()> {
        while self.writable && !self.output.is_empty() {
            match self.output.write_to(&mut self.stream) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => self.last_active = env.now,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.paused && self.output.len() <= env.opts.max_output / 2 {
            self.paused = false;
        }
        if self.output.is_empty() {
            self.output.release_if_large();
            self.input.release_if_large();
        }
        Ok(())
    }

    /// Whether the connection is finished.
    fn next(&mut self, now: Instant) -> Next {
        let flushed = self.output.is_empty() && self.job == JobState::None;
        if self.poisoned && flushed {
            if self.eof || self.linger_until.is_some_and(|t| t <= now) {
                return Next::Close("frame too large");
            }
            if self.linger_until.is_none() {
                if let Err(e) = self.stream.shutdown(Shutdown::Write) {
                    return self.failed("shutdown", &e);
                }
                let until = now + LINGER;
                self.linger_until = Some(until);
                return Next::Linger(until);
            }
            Next::Keep
        } else if (self.eof || self.drained) && flushed && self.input_done {
            Next::Close(if self.eof { "bye" } else { "shutdown" })
        } else {
            Next::Keep
        }
    }

    fn failed(&self, what: &str, e: &io::Error) -> Next {
        log::debug!("{} {what} failed: {e}", self.peer);
        Next::Close("bye")
    }

    /// Shutdown: read what has already arrived, until the socket first comes
    /// back empty, then no more; the loop keeps driving the connection until
    /// every complete request read is answered and written.
    pub fn start_draining(&mut self, env: &Env<'_>) -> Next {
        self.draining = true;
        self.readable = true;
        self.drive(env)
    }

    /// Bytes of output waiting, for the backpressure timeout.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Frees the buffers of a quiet connection (nothing pending in either).
    pub fn release_buffers(&mut self) {
        if self.input.is_empty() && self.output.is_empty() {
            self.input = ReadBuffer::new();
            self.output = WriteBuffer::new();
        }
    }
}
