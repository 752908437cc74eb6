//! One client connection served by one blocking thread: the loop both threaded
//! models share.
//!
//! Read into a [`ReadBuffer`], let the connection's [`Session`] (JSON
//! frames, RESP or metrics HTTP) answer every complete request, write the
//! responses with one `write_all` per batch, read again. The
//! socket's read timeout is the idle timeout, so a silent client (or one stuck
//! halfway through a frame) ends with a timed-out read; its write timeout bounds
//! how long a client that does not read can keep this thread blocked. A batch
//! the kernel does not take at once counts in the pending-output gauge
//! (`reactor_rpc_pending_output_bytes`) while the thread blocks writing it.
//!
//! On a TLS port the socket is wrapped in a rustls `Stream` over the borrowed
//! socket ([`Tls`]), whose reads and writes are blocking ones through TLS; the
//! handshake runs first, within `--frame-timeout`. The loop is the same for
//! both ([`Transport`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::debug;

use reactor_rpc_core::output::Output;
use reactor_rpc_core::service::Stats;
use reactor_rpc_core::session::{Env, Role, Session, Stop};
use reactor_rpc_protocol::buffer::{ReadBuffer, KEEP_IDLE, READ_CHUNK};
use rustls::ServerConnection;

use super::registry::Connection;
use crate::net::{quickack, CloseReason, LINGER};

impl Connection {
    /// Serves the connection on this thread until it ends, then drops it
    /// (which unregisters it and logs why it ended).
    pub(super) fn serve(mut self, mut session: Session, tls: Option<ServerConnection>) {
        session.on_kill(|| self.shared.kill_hook(self.id));
        let limits = &self.shared.limits;
        let timeouts = self
            .stream
            .set_read_timeout(limits.idle_timeout)
            .and_then(|()| self.stream.set_write_timeout(limits.idle_timeout))
            .and_then(|()| self.stream.set_nodelay(true));
        if let Err(e) = timeouts {
            debug!("{}: cannot set socket options: {e}", self.peer);
            self.why = CloseReason::IoError;
            return;
        }
        if session.role() == Role::Metrics {
            crate::net::cap_send_buffer(&self.stream);
        }
        let opt = limits.session_options(false);
        let timeouts = Timeouts {
            idle: limits.idle_timeout,
            frame: limits.frame_timeout,
        };
        let env = self.shared.core.env(opt);
        let mut held = InputHeld {
            shared: &self.shared,
            id: self.id,
            peer: self.peer,
            reported: 0,
        };
        self.why = match tls {
            None => serve(&mut self.stream, &env, session, timeouts, &mut held),
            Some(conn) => {
                let mut tls = Tls {
                    conn,
                    sock: &mut self.stream,
                };
                match handshake(&mut tls, timeouts.frame) {
                    Ok(()) => serve(&mut tls, &env, session, timeouts, &mut held),
                    Err(why) => {
                        debug!("{}: TLS handshake failed ({why})", self.peer);
                        why
                    }
                }
            }
        };
    }
}

/// What the serve loop tells `--max-input-total` of its connection's input:
/// the bytes read and not yet answered, each time they change.
pub(super) struct InputHeld<'a> {
    shared: &'a super::Shared,
    id: u64,
    peer: SocketAddr,
    /// What was last reported.
    reported: usize,
}

impl InputHeld<'_> {
    fn report(&mut self, bytes: usize) {
        if bytes != self.reported {
            self.reported = bytes;
            self.shared.hold_input(self.id, self.peer, bytes);
        }
    }
}

/// What the serve loop needs of a connection: bytes in and out, and the
/// TCP socket under them (timeouts, `TCP_QUICKACK`, the lingering close).
pub(super) trait Transport: Read + Write {
    /// The socket.
    fn tcp(&self) -> &TcpStream;

    /// Before the write side is shut: a TLS `close_notify`.
    fn close_notify(&mut self) {}

    /// Whether a read error means the peer is gone (a TLS peer that closes
    /// without `close_notify` reads as an unexpected EOF).
    fn is_eof(&self, _e: &io::Error) -> bool {
        false
    }

    /// Sends what the socket takes without waiting for room, if the
    /// transport can: the bytes not taken then count as pending output
    /// while a blocking write sends them. TLS cannot (a record must go out
    /// whole), so its whole batch counts as pending while it is written.
    fn send_nowait(&mut self, _bytes: &[u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }

    fn send_nowait(&mut self, bytes: &[u8]) -> io::Result<usize> {
        send_nowait(self, bytes)
    }
}

/// A TLS connection over the socket: blocking reads and writes through
/// rustls (`rustls::Stream` over the borrowed socket, so the connection
/// costs no second descriptor).
pub(super) struct Tls<'a> {
    conn: ServerConnection,
    sock: &'a mut TcpStream,
}

impl Read for Tls<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        rustls::Stream::new(&mut self.conn, self.sock).read(buf)
    }
}

impl Write for Tls<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        rustls::Stream::new(&mut self.conn, self.sock).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        rustls::Stream::new(&mut self.conn, self.sock).flush()
    }
}

impl Transport for Tls<'_> {
    fn tcp(&self) -> &TcpStream {
        self.sock
    }

    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.write_tls(self.sock);
    }

    fn is_eof(&self, e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::UnexpectedEof
    }
}

/// Completes the TLS handshake within `timeout`, or says why not.
fn handshake(tls: &mut Tls<'_>, timeout: Duration) -> Result<(), CloseReason> {
    let deadline = Instant::now() + timeout;
    while tls.conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tls.sock.set_read_timeout(Some(left)).is_err() {
            return Err(CloseReason::FrameTimeout);
        }
        match tls.conn.complete_io(tls.sock) {
            Ok((0, 0)) => return Err(CloseReason::Bye), // the peer left
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(CloseReason::FrameTimeout)
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // rustls queued an alert saying why: send it, best effort.
                let _ = tls.conn.write_tls(tls.sock);
                return Err(CloseReason::TlsError);
            }
            Err(_) => return Err(CloseReason::IoError),
        }
    }
    Ok(())
}

/// The read timeouts of a connection: between frames the idle timeout, inside
/// a frame whichever ends first, the idle timeout or what is left of the frame's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub idle: Option<Duration>,
    pub frame: Duration,
}

/// Whether the input holds part of a frame, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Every byte read so far belongs to an answered frame.
    Between,
    /// A frame's first byte arrived with the read at this moment.
    Partial(Instant),
}

/// Serves `stream` until the peer closes, an I/O error or timeout, or a frame
/// over the limit, and says why it ended (for the `bye` log line). Every
/// complete frame received before the peer's EOF is answered, so a client that
/// half-closes its write side gets all responses.
pub(super) fn serve<T: Transport>(
    stream: &mut T,
    env: &Env<'_>,
    mut session: Session,
    timeouts: Timeouts,
    held: &mut InputHeld<'_>,
) -> CloseReason {
    let peer_addr = held.peer;
    let peer = &peer_addr;
    let mut input = ReadBuffer::new();
    let mut out = Output::new();
    let mut framing = Framing::Between;
    // What the socket's read timeout was last set for (the caller set the idle one).
    let mut timeout_for = Framing::Between;
    loop {
        let missing = loop {
            let progress = session.process(env, peer, input.readable(), &mut out);
            input.consume(progress.consumed);
            held.report(input.readable().len());
            framing = match framing {
                _ if input.is_empty() => Framing::Between,
                Framing::Partial(since) if progress.consumed == 0 => Framing::Partial(since),
                _ => Framing::Partial(Instant::now()),
            };
            if !out.is_empty() {
                if let Err(e) = write_counted(stream, &out, env.service.stats()) {
                    return ended(peer, CloseReason::OutputNotRead, "write", e);
                }
                out.clear();
            }
            match progress.stop {
                // Written: go on with the frames already buffered before reading more.
                Stop::OutputFull => {}
                Stop::NeedMore { needed } => break needed.saturating_sub(input.readable().len()),
                Stop::Close(why) => {
                    // What was left unanswered (a refused command's start, up
                    // to `--max-command`) is neither kept nor counted while
                    // the connection lingers.
                    input = ReadBuffer::new();
                    held.report(input.readable().len());
                    stream.close_notify();
                    linger(stream.tcp());
                    return why;
                }
                Stop::Offload { .. } => unreachable!("threaded models never offload"),
            }
        };
        if !input.is_empty() {
            // Half a request: don't let a delayed ACK hold its rest.
            quickack(stream.tcp());
        }
        // Idle between frames: give back what a large frame or response grew.
        input.release_if_large();
        if out.capacity() > KEEP_IDLE {
            out = Output::new();
        }
        // Inside a frame, the read waits no longer than the frame has left;
        // the timeout is set (a syscall) once per frame that spans reads, and
        // again between frames. Time left only shrinks within a frame, so the
        // check above ends it once a read returns past its deadline.
        let (wanted, timed_out) = match framing {
            Framing::Between => (timeouts.idle, CloseReason::IdleTimeout),
            Framing::Partial(since) => {
                let left = timeouts.frame.saturating_sub(since.elapsed());
                if left.is_zero() {
                    return CloseReason::FrameTimeout;
                }
                match timeouts.idle {
                    Some(idle) if idle < left => (Some(idle), CloseReason::IdleTimeout),
                    _ => (Some(left), CloseReason::FrameTimeout),
                }
            }
        };
        if timeout_for != framing {
            if let Err(e) = stream.tcp().set_read_timeout(wanted) {
                return ended(peer, timed_out, "set_read_timeout", e);
            }
            timeout_for = framing;
        }
        match input.read_from(stream, missing.max(READ_CHUNK)) {
            Ok((0, _)) => return CloseReason::Bye,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if stream.is_eof(&e) => return CloseReason::Bye,
            Err(e) => return ended(peer, timed_out, "read", e),
        }
    }
}

/// Writes the whole batch `out`. A spliced value is written from the cache's
/// bytes, after the owned bytes before it: no copy, one write each. The
/// first write does not wait (`MSG_DONTWAIT`), so a batch the kernel takes
/// at once (nearly every batch of a client that reads) costs the same one
/// syscall and touches no shared counter; what it did not take counts in
/// [`Stats`]' pending output until the blocking writes have sent it.
fn write_counted<T: Transport>(stream: &mut T, out: &Output, stats: &Stats) -> io::Result<()> {
    let mut held: Option<Held<'_>> = None;
    let mut left = out.total_len();
    for chunk in out.chunks() {
        let mut written = 0;
        if held.is_none() {
            written = match stream.send_nowait(chunk) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    0
                }
                Err(e) => return Err(e),
            };
            if written < chunk.len() {
                held = Some(Held::new(stats, (left - written) as u64));
            }
        }
        stream.write_all(&chunk[written..])?;
        left -= chunk.len();
    }
    Ok(())
}

/// Output counted as pending in [`Stats`] until dropped (written, or the
/// write failed and the connection ends).
struct Held<'a> {
    stats: &'a Stats,
    bytes: u64,
}

impl<'a> Held<'a> {
    fn new(stats: &'a Stats, bytes: u64) -> Held<'a> {
        stats.add_pending_output(bytes);
        Held { stats, bytes }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.stats.sub_pending_output(self.bytes);
    }
}

/// One `send` that does not wait for room in the socket buffer, whatever
/// the socket's blocking mode, and raises no SIGPIPE.
fn send_nowait(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: send(2) on a descriptor the stream owns, reading at most
    // `bytes.len()` bytes from a live slice.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// The reason for a failed read or write: a socket timeout has its own name
/// (`timed_out`), a TLS failure its own, anything else (a reset, say) is an
/// I/O error logged at debug.
fn ended(peer: &SocketAddr, timed_out: CloseReason, op: &str, e: io::Error) -> CloseReason {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return timed_out;
    }
    if e.kind() == io::ErrorKind::InvalidData {
        debug!("{peer}: {op} failed: {e}");
        return CloseReason::TlsError;
    }
    debug!("{peer}: {op} failed: {e}");
    CloseReason::IoError
}

/// Sends FIN after what was written, then discards input for a bounded time.
pub(super) fn linger(mut stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() || stream.set_read_timeout(Some(LINGER)).is_err() {
        return;
    }
    let start = Instant::now();
    let mut sink = [0u8; 8192];
    while start.elapsed() < LINGER {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
