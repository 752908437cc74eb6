//! Accepting connections without spinning or blocking: which accept errors
//! are the connection's and which the process's, the back-off after the
//! latter, the best-effort turn-away of a refused connection,
//! `TCP_QUICKACK` for clients that send a request in two writes, and the
//! capped kernel send buffer of a metrics connection.

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

/// The kernel send buffer a metrics connection asks for (`SO_SNDBUF`; Linux
/// doubles it for its bookkeeping, so 128 KiB are held): a few pages of
/// metrics in flight. Without it a scraper that pipelines and never reads
/// pins what TCP autotuning grows the buffer to, up to `tcp_wmem`'s maximum
/// (4 MiB here): 100 such scrapers held 407 MiB of the host's TCP memory,
/// counted against `tcp_mem` for every socket of the host.
pub(crate) const METRICS_SEND_BUFFER: libc::c_int = 64 * 1024;

/// Caps a metrics connection's kernel send buffer at [`METRICS_SEND_BUFFER`]
/// (which also turns send-buffer autotuning off for it). Best effort: a
/// failure is logged at debug and changes nothing else.
pub(crate) fn cap_send_buffer(socket: &impl AsRawFd) {
    let bytes = METRICS_SEND_BUFFER;
    // SAFETY: setsockopt on a descriptor the caller owns, with a pointer to
    // a c_int and its exact length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!(
            "cannot cap a metrics connection's send buffer: {}",
            io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The socket's `SO_SNDBUF` as the kernel reports it.
    fn send_buffer(socket: &impl AsRawFd) -> libc::c_int {
        let mut bytes: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt on a live descriptor into a c_int and its length.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&mut bytes as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        bytes
    }

    #[test]
    fn a_metrics_connection_gets_a_capped_send_buffer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (served, _) = listener.accept().expect("accept");
        cap_send_buffer(&served);
        let got = send_buffer(&served);
        // Linux doubles the request for its bookkeeping; others keep it.
        assert!(
            got == METRICS_SEND_BUFFER || got == 2 * METRICS_SEND_BUFFER,
            "SO_SNDBUF is {got}"
        );
    }
}
