//! TLS on the reactor: rustls's `ServerConnection` between the socket and a
//! connection's buffers, as rustls's own `tlsserver-mio` example drives it.
//!
//! A `ServerConnection` is a state machine that never touches a socket:
//! ciphertext goes in with `read_tls` and is decrypted by
//! `process_new_packets` (which also advances the handshake), plaintext comes
//! out of `reader()`; plaintext goes in through `writer()` and records come out
//! with `write_tls`. This module is only the socket work around it, in the
//! reactor's terms: read until the socket is empty (a short read says so, as
//! in the plaintext path), never more than the connection's batch, and write
//! until the socket is full. The request path above it sees the same
//! plaintext bytes a plaintext connection would.
//!
//! What a TLS connection may hold beyond a plaintext one is bounded by rustls:
//! at most one record being deframed (64 KiB while a handshake message is
//! joined), 16 KiB of decrypted plaintext not yet taken (rustls refuses to
//! read more until it is), and [`BUFFER_LIMIT`] of encrypted records not yet
//! written, which the connection's output charge counts.

use std::io::{self, ErrorKind};

use mio::net::TcpStream;
use reactor_rpc_protocol::buffer::ReadBuffer;
use rustls::ServerConnection;

pub use reactor_rpc_tls::server::BUFFER_LIMIT;

/// What one read got, through TLS or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// `n` plaintext bytes were appended to the input; `drained` says the
    /// socket's queue was empty at the last read (a short read).
    Bytes { n: usize, drained: bool },
    /// No plaintext, and the socket is empty for now (`WouldBlock`, or a
    /// short read that brought only handshake messages or part of a record).
    Empty,
    /// The peer closed: a `close_notify` (clean) or a TCP EOF.
    Eof,
}

/// A TLS failure: what the peer sent is not TLS, or not TLS we accept.
/// Carried in an `io::Error` of kind `InvalidData` so that the connection
/// can tell it apart from a socket error ([`is_tls_failure`]).
#[derive(Debug)]
struct TlsFailure(rustls::Error);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

/// Whether `e` is a TLS failure (an alert is queued for the peer), rather
/// than a socket error.
pub fn is_tls_failure(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TlsFailure>())
}

/// A reader that remembers how much it was offered and how much it gave,
/// so that a short read (the socket's queue emptied) can be seen through
/// `read_tls`, which only reports the bytes read.
struct Probe<'a> {
    stream: &'a mut TcpStream,
    offered: usize,
    got: usize,
}

impl io::Read for Probe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.offered = buf.len();
        self.got = self.stream.read(buf)?;
        Ok(self.got)
    }
}

/// Reads plaintext into `input` (at most about `want` bytes): what rustls
/// already decrypted first, then ciphertext from the socket, decrypted.
/// `hup`: the peer hung up, so a short read does not mean "empty for now".
pub fn read(
    tls: &mut ServerConnection,
    stream: &mut TcpStream,
    input: &mut ReadBuffer,
    want: usize,
    hup: bool,
) -> io::Result<Got> {
    let mut drained = false;
    loop {
        match input.read_from(&mut tls.reader(), want) {
            Ok((0, _)) => return Ok(Got::Eof), // close_notify, all read
            Ok((n, _)) => return Ok(Got::Bytes { n, drained }),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Got::Eof),
            Err(e) => return Err(e),
        }
        if drained {
            return Ok(Got::Empty);
        }
        let mut probe = Probe {
            stream: &mut *stream,
            offered: 0,
            got: 0,
        };
        match tls.read_tls(&mut probe) {
            Ok(n) => {
                if let Err(e) = tls.process_new_packets() {
                    return Err(io::Error::new(ErrorKind::InvalidData, TlsFailure(e)));
                }
                // TCP EOF (n = 0): the reader reports it, clean or not.
                drained = n > 0 && probe.got < probe.offered && !hup;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Got::Empty),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes the records rustls holds until it holds none or the socket is
/// full; returns the bytes written, and whether the socket said `WouldBlock`.
pub fn write_records(
    tls: &mut ServerConnection,
    stream: &mut TcpStream,
) -> io::Result<(usize, bool)> {
    let mut written = 0;
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((written, true)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((written, false))
}
