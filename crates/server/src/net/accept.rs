//! Accepting connections without spinning or blocking: which accept errors
//! are the connection's and which the process's, the back-off after the
//! latter, the best-effort turn-away of a refused connection, and
//! `TCP_QUICKACK` for clients that send a request in two writes.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How long accepting pauses after a failed `accept` (out of descriptors, say),
/// so that an acceptor never spins while the connected clients go on being served.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Whether an accept error means the process (or system) is out of descriptors.
pub(crate) fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Whether an accept error concerns only the connection being accepted (the
/// peer gave up already) so the next accept may well succeed.
pub(crate) fn transient_accept_error(e: &io::Error) -> bool {
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
pub(crate) fn turn_away<S: std::io::Read + std::io::Write>(
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

/// Sets `TCP_QUICKACK` on a socket whose last read left a request
/// incomplete. A client that writes a request in two pieces without
/// `TCP_NODELAY` (the seed's client does) has its second piece held by
/// Nagle's algorithm until the first is ACKed, and Linux delays that ACK by
/// ~40 ms hoping to piggyback it on a response that cannot come yet.
/// QUICKACK sends it now. Never called for a read that ended on a request
/// boundary, so single-write clients pay no syscall. A no-op off Linux.
#[inline]
pub(crate) fn quickack(socket: &impl AsRawFd) {
    #[cfg(target_os = "linux")]
    {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a descriptor the caller owns, with a pointer
        // to a c_int and its exact length; failure changes nothing we rely on.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}
