//! Socket helpers, constants and the close reasons every server model shares,
//! so that the models agree on what they do and on what they log.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How long a connection refused (`overloaded`) or closed for `frame_too_large`
/// keeps discarding input before it closes. Closing a socket with unread input
/// sends a reset, which can destroy the error response before the client reads
/// it; a lingering close sends FIN after the response instead.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// How long accepting pauses after a failed `accept` (out of descriptors, say),
/// so that an acceptor never spins while the connected clients go on being served.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why a connection ended: one vocabulary for every model, logged the same way
/// by each (`PEER bye` for a client that left, `PEER bye (REASON)` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client closed its side, every request answered.
    Bye,
    /// Nothing arrived for `--idle-timeout`.
    IdleTimeout,
    /// The client did not read its responses within `--idle-timeout`.
    OutputNotRead,
    /// A length prefix over `--max-frame`, answered, then a lingering close.
    FrameTooLarge,
    /// The server shut down.
    Shutdown,
    /// A read or write failed (a reset, say); the error is logged at debug.
    IoError,
}

impl CloseReason {
    /// The words in the `bye (...)` log line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CloseReason::Bye => "bye",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::OutputNotRead => "output not read",
            CloseReason::FrameTooLarge => "frame too large",
            CloseReason::Shutdown => "shutdown",
            CloseReason::IoError => "i/o error",
        }
    }

    /// Logs the `bye` line of a connection at `level`.
    pub(crate) fn log(self, level: log::Level, peer: &dyn std::fmt::Display) {
        match self {
            CloseReason::Bye => log::log!(level, "{peer} bye"),
            why => log::log!(level, "{peer} bye ({})", why.as_str()),
        }
    }
}

/// Listen backlog: enough for a burst of thousands of connects. The kernel caps
/// it at `net.core.somaxconn`.
pub const BACKLOG: i32 = 4096;

/// Binds a listening socket (with `SO_REUSEADDR`, as std does on Unix) and
/// raises its backlog from std's 128 to [`BACKLOG`].
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // SAFETY: listen(2) on a descriptor we own; calling it again on a listening
    // socket only changes the backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// Whether an accept error means the process (or system) is out of descriptors.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Whether an accept error concerns only the connection being accepted (the
/// peer gave up already) so the next accept may well succeed.
pub fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(libc::EPROTO) | Some(libc::EPERM))
}

/// Sends `frame` to a connection being turned away (a non-blocking socket)
/// and lets it go cleanly: FIN after the frame, then a bounded swallow of what
/// the client already sent, because closing with unread input sends a reset
/// that can destroy the frame in flight. Never blocks.
pub fn turn_away<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    frame: &[u8],
    shutdown_write: impl FnOnce(&mut S) -> io::Result<()>,
) {
    if stream.write_all(frame).is_err() || shutdown_write(stream).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Lets a repeated warning through at most once per interval, counting the
/// ones it held back, so a flood of refused clients costs one log line a second.
pub struct RateLimitedLog {
    every: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub const fn new(every: std::time::Duration) -> RateLimitedLog {
        RateLimitedLog {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Returns `Some(n)` when a line may be logged now, `n` being how many were
    /// held back since the last one; `None` when this one should be dropped.
    pub fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Gives the heap's free memory back to the operating system.
///
/// Connection buffers are most of a server's memory. When thousands of
/// connections close, glibc keeps their freed buffers in the heap (only the
/// top of the heap is returned by itself), so RSS stays at its peak. Servers
/// call this after such a drop, never per request.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
