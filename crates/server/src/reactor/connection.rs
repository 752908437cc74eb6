//! One client connection of the reactor: its socket, buffers and state.
//!
//! [`Connection::drive`] is the whole per-connection cycle: read what has
//! arrived, answer every complete frame, write the answers in one go, and
//! repeat only while something can still move. It tracks readiness itself
//! (mio is edge-triggered: an edge is reported once, so `readable` stays true
//! until a read comes back short or with `WouldBlock`), which is what lets the
//! loop skip the extra `read` that would only say `WouldBlock`.
//!
//! Every state a connection can be in is one of a few small types, each
//! answering one question: [`Readiness`] (what may the socket do?), [`Flow`]
//! (are requests decoded, and if not, what do they wait for?), [`Drain`] (is
//! the server shutting down?), [`Ending`] (was a frame too large?), plus `eof`
//! (has the peer finished sending?). [`Next`] tells the loop what follows.

use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::net::SocketAddr;
use std::time::Instant;

use mio::event::Event;
use mio::net::TcpStream;

use reactor_rpc_core::output::{OutputQueue, SharedLedger};
use reactor_rpc_core::session::{self, Finished, Role, Session, Stop};
use reactor_rpc_protocol::buffer::{ReadBuffer, READ_CHUNK};

use rustls::ServerConnection;

use super::tls::{self, Got};
use super::workers::{Task, WorkerPool};
use crate::net::{quickack, CloseReason, LINGER};

/// What a connection needs from the loop to make progress in this turn: what
/// its session needs (the service, the exposition, the limits), the worker
/// pool, and the loop's clock.
pub struct Turn<'a> {
    pub env: session::Env<'a>,
    pub workers: Option<&'a WorkerPool>,
    pub now: Instant,
}

/// What the socket may do, as far as the edges seen so far tell. mio is
/// edge-triggered: an edge is reported once, so a flag stays set until an
/// operation comes back short or with `WouldBlock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The socket may hold unread bytes.
    pub readable: bool,
    /// The socket may accept more bytes.
    pub writable: bool,
    /// The peer has hung up (RDHUP/HUP/error seen): read to the end, since no
    /// further edge will come to report the EOF behind a short read.
    pub hup: bool,
}

impl Readiness {
    /// What one mio event says (an error counts as both a hang-up and writable,
    /// so the next read or write reports it).
    #[inline]
    pub fn of(event: &Event) -> Readiness {
        Readiness {
            readable: event.is_readable(),
            writable: event.is_writable() || event.is_write_closed() || event.is_error(),
            hup: event.is_read_closed() || event.is_error(),
        }
    }

    /// Adds what a new event says; a hang-up makes the socket readable (the EOF).
    #[inline]
    fn merge(&mut self, event: Readiness) {
        self.readable |= event.readable | event.hup;
        self.writable |= event.writable;
        self.hup |= event.hup;
    }
}

/// Whether requests are being decoded and, if not, what they wait for. Each
/// other state is entered from `Decoding` only, so they exclude one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Requests are decoded as their frames complete.
    Decoding,
    /// The session stopped for its output ([`Stop::OutputFull`]): no
    /// decoding until the output drains to this many bytes. Half the
    /// high-water mark when the output passed it; nothing, i.e. every byte
    /// written, when the session stopped below it (the metrics session
    /// answers one request at a time, and is read no further until its
    /// client takes the reply).
    Paused(usize),
    /// A request of ours is on a worker; later requests wait behind it, so
    /// responses stay in order.
    Offloaded,
    /// The job queue was full; the loop retries when a worker frees a slot.
    Stalled,
}

/// Shutdown: read what has already arrived, answer it, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Not shutting down.
    Off,
    /// Reading until the socket first comes back empty.
    Reading,
    /// The socket came back empty once: read no more.
    Done,
}

/// How the connection ends after an answer that ends it (`frame_too_large`,
/// a RESP protocol error or `QUIT`, an HTTP `Connection: close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Requests go on.
    Open,
    /// The last answer is queued: no more decoding; once it is written, shut
    /// the write side and linger. The reason is logged at the close.
    Poisoned(CloseReason),
    /// Write side shut: discard input until the peer closes or this moment.
    Lingering(Instant, CloseReason),
}

/// Whether the input holds part of a frame, and since when: a frame begun
/// must be complete within `--frame-timeout`, however the bytes dribble in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Every byte read so far belongs to a complete, answered frame.
    Between,
    /// A frame's first byte arrived at this moment (or the read that brought it).
    Partial(Instant),
}

/// Whether a connection is served or only there to deliver its refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Counted in `--max-conns` and served.
    Served,
    /// Over a limit: writes `overloaded`, lingers, closes (not counted).
    Refused,
}

/// What the loop should do with a connection after driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more to do until the next event or deadline.
    Keep,
    /// Used up its turn with input still waiting: drive it again after the
    /// other ready connections (edge-triggered epoll will not report it again).
    Yield,
    /// A heavy request found the job queue full: drive it again when a
    /// worker frees a slot.
    Stalled,
    /// `frame_too_large` is written and the write side shut: discard input
    /// until the peer closes or this moment, then close.
    Linger(Instant),
    /// Done: close the connection and log why.
    Close(CloseReason),
}

/// Read-answer-write rounds one connection gets per turn (each reads at most
/// [`READ_BATCH`]): a client that pipelines without pause, or sends one huge
/// request, cannot keep the loop from its other connections.
const ROUNDS_PER_TURN: usize = 16;

/// Bytes one round reads, at most.
const READ_BATCH: usize = 16 * READ_CHUNK;

/// Bytes one connection may read per turn: a client sending a huge request
/// as fast as loopback allows (gigabytes a second) yields after this much,
/// as a writer does after [`WRITE_PER_TURN`], so a ping elsewhere waits
/// behind a few hundred KiB of copying per such client, not a MiB.
const READ_PER_TURN: usize = 256 * 1024;

/// Bytes one connection may write per turn: a turn that writes large values
/// (by reference, straight from the cache) stops after this much and yields,
/// so 500 connections each taking megabytes into their socket buffers cannot
/// hold a ping elsewhere for the time of all those copies.
const WRITE_PER_TURN: usize = 64 * 1024;

/// A client connection. Its whole state: [`Readiness`], [`Flow`], [`Drain`],
/// [`Ending`], the end of input (`eof`) and how far framing got
/// (`input_done`, `framing`).
pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Slab key, and an id unique for the server's lifetime.
    pub key: usize,
    pub id: u64,
    pub last_active: Instant,
    input: ReadBuffer,
    /// Responses not yet written; large cached values by reference.
    output: OutputQueue,
    ready: Readiness,
    flow: Flow,
    drain: Drain,
    ending: Ending,
    /// The peer has finished sending.
    eof: bool,
    /// Every complete frame in `input` has been answered.
    input_done: bool,
    /// Whether a frame is half-read, and since when.
    framing: Framing,
    /// Pending output as last added to the reactor's running total.
    pub counted_output: usize,
    /// Input not yet answered as last reported to `--max-input-total`.
    pub counted_input: usize,
    admission: Admission,
    /// The protocol it speaks (JSON, RESP or metrics HTTP), and its state.
    session: Session,
    /// TLS between the socket and the buffers, on a TLS port.
    tls: Option<Box<ServerConnection>>,
}

impl Connection {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        key: usize,
        id: u64,
        now: Instant,
        session: Session,
        tls: Option<ServerConnection>,
    ) -> Connection {
        Connection {
            stream,
            peer,
            key,
            id,
            last_active: now,
            input: ReadBuffer::new(),
            output: OutputQueue::new(),
            ready: Readiness {
                readable: false,
                writable: true,
                hup: false,
            },
            flow: Flow::Decoding,
            drain: Drain::Off,
            ending: Ending::Open,
            eof: false,
            input_done: true,
            // The handshake counts as the first request: it must be done
            // within `--frame-timeout`.
            framing: match tls {
                Some(_) => Framing::Partial(now),
                None => Framing::Between,
            },
            counted_output: 0,
            counted_input: 0,
            admission: Admission::Served,
            session,
            tls: tls.map(Box::new),
        }
    }

    /// Records a readiness event.
    #[inline]
    pub fn ready(&mut self, event: Readiness) {
        self.ready.merge(event);
    }

    /// Whether requests are being decoded.
    #[inline]
    fn decoding(&self) -> bool {
        self.flow == Flow::Decoding && self.ending == Ending::Open
    }

    #[inline]
    fn lingering(&self) -> bool {
        matches!(self.ending, Ending::Lingering(..))
    }

    /// Whether the socket should be read.
    #[inline]
    fn wants_input(&self) -> bool {
        (self.decoding() || self.lingering()) && !self.eof && self.drain != Drain::Done
    }

    /// When a lingering close gives up waiting, and why it ends, if lingering.
    pub fn linger_deadline(&self) -> Option<(Instant, CloseReason)> {
        match self.ending {
            Ending::Lingering(until, why) => Some((until, why)),
            _ => None,
        }
    }

    /// Since when a frame is half-read, if one is.
    #[inline]
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// When the half-read frame must be complete: only while the connection
    /// reads requests (a pause for backpressure or a worker is the server's
    /// doing, not the client's).
    pub fn frame_deadline(&self, timeout: std::time::Duration) -> Option<Instant> {
        match self.framing {
            Framing::Partial(since) if self.decoding() => Some(since + timeout),
            _ => None,
        }
    }

    /// The listener it came from.
    pub fn role(&self) -> Role {
        self.session.role()
    }

    /// Whether a request of this connection is running on a worker.
    pub fn job_running(&self) -> bool {
        self.flow == Flow::Offloaded
    }

    /// Reads, answers and writes until nothing more can move now, or its turn is up.
    pub fn drive(&mut self, turn: &Turn<'_>) -> Next {
        let mut budget = WRITE_PER_TURN;
        let mut read_left = READ_PER_TURN;
        for _ in 0..ROUNDS_PER_TURN {
            if read_left > 0 && self.ready.readable && self.wants_input() {
                if let Err(e) = self.fill(turn.now, &mut read_left) {
                    return self.failed("read", &e);
                }
                if self.lingering() {
                    self.input.clear(); // lingering: input is discarded
                }
            }
            if self.decoding() && !self.input_done {
                self.answer(turn);
            }
            if let Err(e) = self.flush(turn, &mut budget) {
                return self.failed("write", &e);
            }
            if budget == 0 && self.ready.writable && !self.output.is_empty() {
                return Next::Yield; // wrote its share: the others go first
            }
            let more_input = self.ready.readable && self.wants_input();
            let more_frames = self.decoding() && !self.input_done;
            if !more_input && !more_frames {
                return self.next(turn.now);
            }
            if read_left == 0 && !more_frames {
                return Next::Yield; // read its share: the others go first
            }
        }
        Next::Yield
    }

    /// Reads until the socket is empty (a short read or `WouldBlock`), the peer
    /// closes, or a batch of [`READ_BATCH`] bytes is read (then `readable`
    /// stays set and the loop comes back after answering it). Never more,
    /// however large the request being read: its parse resumes where it
    /// stopped, so reading a 64 MiB command in 64 KiB batches costs no more
    /// than in one, and a turn stays short for the other connections.
    fn fill(&mut self, now: Instant, read_left: &mut usize) -> io::Result<()> {
        let batch = self.input.readable().len() + READ_BATCH.min(*read_left);
        while self.input.readable().len() < batch {
            let want = batch - self.input.readable().len();
            match self.read_some(want) {
                Ok(Got::Eof) => {
                    self.eof = true;
                    self.ready.readable = false;
                    break;
                }
                Ok(Got::Bytes { n, drained }) => {
                    *read_left = read_left.saturating_sub(n);
                    self.last_active = now;
                    self.input_done = false;
                    if drained {
                        self.socket_empty(); // short read: the queue was empty
                        break;
                    }
                }
                Ok(Got::Empty) => {
                    self.socket_empty();
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.handshake_done_idle() {
            self.framing = Framing::Between;
        }
        Ok(())
    }

    /// One read: from the socket, or through TLS.
    #[inline]
    fn read_some(&mut self, want: usize) -> io::Result<Got> {
        let Some(tls) = &mut self.tls else {
            return match self.input.read_from(&mut self.stream, want) {
                Ok((0, _)) => Ok(Got::Eof),
                Ok((n, offered)) => Ok(Got::Bytes {
                    n,
                    drained: n < offered && !self.ready.hup,
                }),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Got::Empty),
                Err(e) => Err(e),
            };
        };
        tls::read(tls, &mut self.stream, &mut self.input, want, self.ready.hup)
    }

    /// A TLS handshake just finished with no request begun: its deadline no
    /// longer applies.
    fn handshake_done_idle(&self) -> bool {
        matches!(self.framing, Framing::Partial(_))
            && self.input.is_empty()
            && self.tls.as_ref().is_some_and(|t| !t.is_handshaking())
    }

    #[inline]
    fn socket_empty(&mut self) {
        self.ready.readable = false;
        if self.drain == Drain::Reading {
            self.drain = Drain::Done;
        }
    }

    /// Answers every complete request, up to backpressure or a heavy request.
    fn answer(&mut self, turn: &Turn<'_>) {
        let p = self.session.process(
            &turn.env,
            &self.peer,
            self.input.readable(),
            self.output.output_mut(),
        );
        self.input.consume(p.consumed);
        match p.stop {
            Stop::NeedMore { .. } => {
                self.input_done = true;
                if self.input.is_empty() {
                    self.framing = Framing::Between;
                } else {
                    if p.consumed > 0 || self.framing == Framing::Between {
                        // A new frame began in what was just read.
                        self.framing = Framing::Partial(turn.now);
                    }
                    // Half a request: don't let a delayed ACK hold its rest.
                    quickack(&self.stream);
                }
            }
            Stop::OutputFull => {
                let high_water = turn.env.opts.max_output;
                let resume = if self.output.len() >= high_water {
                    high_water / 2
                } else {
                    0
                };
                self.flow = Flow::Paused(resume);
            }
            Stop::Close(why) => self.ending = Ending::Poisoned(why),
            Stop::Offload { len } => self.offload(turn, len),
        }
    }

    /// Hands the heavy request at the front of the input (`len` bytes) to a
    /// worker.
    fn offload(&mut self, turn: &Turn<'_>, len: usize) {
        let job = self
            .session
            .job(self.input.readable()[..len].to_vec(), &turn.env.opts);
        let task = Task {
            key: self.key,
            conn_id: self.id,
            peer: self.peer,
            job,
        };
        let submitted = match turn.workers {
            Some(workers) => workers.submit(task, turn.env.service),
            None => Err(task),
        };
        match submitted {
            Ok(()) => {
                self.input.consume(len);
                self.flow = Flow::Offloaded;
            }
            Err(task) if turn.workers.is_some() => {
                // The queue is full: the request stays in the input.
                self.session.restore(task.job);
                self.flow = Flow::Stalled;
            }
            Err(task) => {
                // No pool to run it on (cannot happen: offload is only on with
                // workers), so run it here rather than lose it.
                let finished = task.job.run(turn.env.service, &self.peer);
                self.job_done(finished);
                self.input.consume(len);
            }
        }
    }

    /// A worker's response arrived: queue it and let decoding resume.
    pub fn job_done(&mut self, finished: Finished) {
        let response = self.session.finish(finished);
        self.output.output_mut().append(response);
        self.flow = Flow::Decoding;
    }

    /// The job queue has room again: try the stalled request once more.
    pub fn unstall(&mut self) {
        if self.flow == Flow::Stalled {
            self.flow = Flow::Decoding;
        }
    }

    /// Writes pending output until done, the socket is full, or `budget`
    /// bytes (this turn's share, reduced by what is written) went out.
    fn flush(&mut self, turn: &Turn<'_>, budget: &mut usize) -> io::Result<()> {
        if self.tls.is_some() {
            self.flush_tls(turn, budget)?;
        }
        while self.tls.is_none() && self.ready.writable && !self.output.is_empty() && *budget > 0 {
            match self.output.write_to(&mut self.stream, *budget) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *budget -= n.min(*budget);
                    self.last_active = turn.now;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.ready.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Flow::Paused(resume) = self.flow {
            if self.output.len() <= resume.min(turn.env.opts.max_output / 2) {
                self.flow = Flow::Decoding;
            }
        }
        if self.output.is_empty() {
            self.output.release_if_large();
            self.input.release_if_large();
        }
        Ok(())
    }

    /// [`Connection::flush`] through TLS: hand plaintext to rustls (which
    /// encrypts it into records, up to its buffer limit), write the records
    /// (handshake messages and alerts too) until the socket is full.
    fn flush_tls(&mut self, turn: &Turn<'_>, budget: &mut usize) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        while self.ready.writable {
            let mut fed = 0;
            if !self.output.is_empty() && *budget > 0 {
                // rustls takes what fits (0 when its buffer is full).
                fed = self.output.write_to(&mut tls.writer(), *budget)?;
                *budget -= fed.min(*budget);
            }
            let (written, blocked) = tls::write_records(tls, &mut self.stream)?;
            if written > 0 {
                self.last_active = turn.now;
            }
            if blocked {
                self.ready.writable = false;
            } else if fed == 0 {
                break; // nothing more to encrypt, or no budget left
            }
        }
        Ok(())
    }

    /// What the loop should do next, now that nothing more can move.
    fn next(&mut self, now: Instant) -> Next {
        if self.flow == Flow::Stalled {
            return Next::Stalled;
        }
        let flushed = self.output.is_empty()
            && self.flow != Flow::Offloaded
            && !self.tls.as_ref().is_some_and(|t| t.wants_write());
        if !flushed {
            return Next::Keep;
        }
        match self.ending {
            Ending::Open => self.finished(),
            Ending::Poisoned(why) if self.eof => Next::Close(why),
            Ending::Poisoned(why) => self.linger(now, why),
            Ending::Lingering(until, why) if self.eof || until <= now => Next::Close(why),
            Ending::Lingering(..) => Next::Keep,
        }
    }

    /// Closes a flushed connection once no more requests can come.
    fn finished(&self) -> Next {
        if !self.input_done {
            Next::Keep
        } else if self.eof {
            Next::Close(CloseReason::Bye)
        } else if self.drain == Drain::Done {
            Next::Close(CloseReason::Shutdown)
        } else {
            Next::Keep
        }
    }

    /// The last answer is written: send FIN after it and start discarding input.
    fn linger(&mut self, now: Instant, why: CloseReason) -> Next {
        let until = now + LINGER;
        self.ending = Ending::Lingering(until, why);
        if let Some(tls) = &mut self.tls {
            // The last answer is out: say so in TLS too, best effort.
            tls.send_close_notify();
            let _ = tls::write_records(tls, &mut self.stream);
        }
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            return self.failed("shutdown", &e);
        }
        Next::Linger(until)
    }

    /// A read, write or shutdown failed (a reset, say). Once lingering, the
    /// last answer is out and the connection was ending anyway: it ended for
    /// that reason, as in the threaded models.
    fn failed(&mut self, what: &str, e: &io::Error) -> Next {
        log::debug!("{} {what} failed: {e}", self.peer);
        if tls::is_tls_failure(e) {
            if let Some(tls) = &mut self.tls {
                // The alert rustls queued tells the peer why, best effort.
                let _ = tls::write_records(tls, &mut self.stream);
            }
            return Next::Close(CloseReason::TlsError);
        }
        match self.ending {
            Ending::Lingering(_, why) => Next::Close(why),
            _ => Next::Close(CloseReason::IoError),
        }
    }

    /// Shutdown: read what has already arrived, until the socket first comes
    /// back empty, then no more; the loop keeps driving the connection until
    /// every complete request read is answered and written.
    pub fn start_draining(&mut self, turn: &Turn<'_>) -> Next {
        self.drain = Drain::Reading;
        self.ready.readable = true;
        self.drive(turn)
    }

    /// Input read and not yet answered (at most one incomplete request, plus
    /// the requests of a batch paused for output or a worker), for
    /// `--max-input-total`.
    pub fn held_input(&self) -> usize {
        self.input.readable().len()
    }

    /// Bytes of output waiting (spliced values at full size), for the
    /// backpressure timeout.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// What the pending output counts toward `--max-output-total` on its
    /// own: the bytes this connection owns, plus a small fixed charge per
    /// value queued by reference (the values themselves are counted once for
    /// all connections, see [`Connection::settle_shared`]).
    pub fn output_charge(&self) -> usize {
        // Records rustls holds unwritten: at most its buffer limit.
        let tls = match &self.tls {
            Some(t) if t.wants_write() => tls::BUFFER_LIMIT,
            _ => 0,
        };
        self.output.charge() + tls
    }

    /// Makes this a refused connection: `frame` (`overloaded`) is its only
    /// output, then it lingers like after `frame_too_large`.
    pub fn refuse(&mut self, frame: &[u8]) {
        self.output.output_mut().extend_from_slice(frame);
        self.ending = Ending::Poisoned(CloseReason::Refused);
        self.admission = Admission::Refused;
    }

    /// Whether this connection was refused (it never counted as served).
    pub fn refused(&self) -> bool {
        self.admission == Admission::Refused
    }

    /// Drops the pending output of a connection being closed, so that the
    /// running total forgets it.
    pub fn forget_output(&mut self) {
        self.output.forget();
    }

    /// Brings the reactor's ledger of shared values up to date with this
    /// connection's output.
    pub fn settle_shared(&mut self, ledger: &mut SharedLedger) {
        self.output.settle(ledger);
    }

    /// Frees the buffers of a quiet connection (nothing pending in either).
    pub fn release_buffers(&mut self) {
        if self.input.is_empty() && self.output.is_empty() {
            self.input = ReadBuffer::new();
            self.output = OutputQueue::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn a_hang_up_makes_the_socket_readable_and_stays() {
        let mut ready = Readiness {
            readable: false,
            writable: false,
            hup: false,
        };
        ready.merge(Readiness {
            readable: false,
            writable: true,
            hup: true,
        });
        assert!(ready.readable && ready.writable && ready.hup);
        ready.readable = false; // a read came back short
        ready.merge(Readiness {
            readable: false,
            writable: false,
            hup: false,
        });
        assert!(!ready.readable && ready.writable && ready.hup);
    }
}
