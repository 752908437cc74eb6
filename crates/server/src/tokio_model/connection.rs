//! One client connection of the tokio models: a task that reads, answers and
//! writes, in the shape every tokio tutorial teaches (mini-redis's `Connection`).
//!
//! Read into a `BytesMut` with `read_buf`, let the connection's protocol
//! ([`Session::process`]: JSON frames, RESP or metrics HTTP, chosen by the
//! listener that accepted it; the call every model makes) answer every
//! complete request in it, write the batch, read again. When half a request
//! is buffered, `TCP_QUICKACK` first, so that a client writing a request in
//! two pieces without `TCP_NODELAY` is not held up by a delayed ACK. An
//! answer that ends the connection (`frame_too_large`, a RESP `QUIT` or
//! protocol error, an HTTP `Connection: close`) is followed by a lingering
//! close. What the reactor does by hand comes from tokio here: `await`
//! instead of readiness flags, `tokio::time::timeout_at` instead of a deadline
//! heap, `spawn_blocking` instead of a worker pool and a waker, the runtime's
//! cooperative budget instead of a bounded turn per connection.
//!
//! The limits, as in the other models:
//! * `--idle-timeout`: each read waits at most that long, anew per read.
//! * `--frame-timeout`: once a request's first byte is buffered, the reads
//!   that complete it wait only until its deadline (the read's deadline is
//!   whichever comes first), so dribbling bytes into a frame does not keep the
//!   connection open: it ends with `bye (frame timeout)`. Not counted while
//!   the server holds off reading (a write to a client that does not read, a
//!   heavy request on a blocking thread): the clock starts once the server is
//!   ready to read the rest.
//! * `--max-output`: [`Session::process`] stops a batch at it, and the batch is
//!   written before anything more is decoded, so a connection holds at most
//!   `--max-output` plus one response.
//! * `--max-output-total`: a batch that cannot be written at once counts in
//!   the shared total until it is; above the total, a connection decodes one
//!   response per batch, as the reactor does. The bound is the total plus one
//!   response per connection (in `tokio-mt`, plus one batch per worker thread
//!   that read the total just before it passed the bound).
//! * Refused connections (`--max-conns`, `--max-conns-per-ip`) get their
//!   `overloaded` frame and a lingering close from [`refuse`].
//!
//! On a TLS port the socket is wrapped by tokio-rustls ([`Transport::Tls`]); the
//! handshake ([`handshake`]) runs in the connection's task, within
//! `--frame-timeout`, before anything else.

use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use log::{debug, error};
use reactor_rpc_tls::server::BUFFER_LIMIT;
use reactor_rpc_tls::TlsSource;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::net::{self, CloseReason, LINGER};
use reactor_rpc_core::output::Output;
use reactor_rpc_core::session::{Session, Stop};
use reactor_rpc_protocol::buffer::{KEEP_IDLE, MAX_READ, READ_CHUNK};

/// Bytes a task writes before it yields to the others when a batch does not
/// fit the socket at once (large values, straight from the cache). 500 tasks
/// each writing megabytes into their socket buffers would otherwise hold a
/// ping elsewhere for the time of all those copies: 500 non-reading clients x
/// 8 `get`s of 1 MiB, worst ping on another connection (tokio model, release):
/// 724 ms unsliced, 230-260 ms in 64 KiB slices, 7-13 ms in 16 KiB slices.
const WRITE_SLICE: usize = 16 * 1024;

/// Bytes a task reads before it yields to the others, when its reads keep
/// finding more (a client sending a huge request as fast as loopback
/// allows): as the reactor's turn, so a ping elsewhere waits behind a few
/// hundred KiB of copying per such client, not the megabytes tokio's
/// cooperative budget (128 reads) would allow.
const READ_PER_YIELD: usize = 256 * 1024;

/// While shutting down, bytes taken from the socket before answering them.
const DRAIN_BATCH: usize = 16 * READ_CHUNK;

/// The byte stream under a connection: the socket, or TLS over it (what
/// `Transport` is in the threaded models and the client too).
pub(super) enum Transport {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS (boxed: the rustls state is a few KiB).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// The socket under it.
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS handshake of a connection accepted on a TLS port, within
/// `--frame-timeout`; its buffers are limited as in the other models.
pub(super) async fn handshake(
    stream: TcpStream,
    source: &TlsSource,
    shared: &Shared,
) -> Result<TlsStream<TcpStream>, CloseReason> {
    let acceptor = tokio_rustls::TlsAcceptor::from(source.current());
    let accept = acceptor.accept_with(stream, |conn| conn.set_buffer_limit(Some(BUFFER_LIMIT)));
    match tokio::time::timeout(shared.frame_timeout, accept).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) if e.kind() == ErrorKind::InvalidData => {
            debug!("TLS handshake failed: {e}");
            Err(CloseReason::TlsError)
        }
        Ok(Err(e)) if e.kind() == ErrorKind::UnexpectedEof => Err(CloseReason::Bye),
        Ok(Err(e)) => {
            debug!("TLS handshake failed: {e}");
            Err(CloseReason::IoError)
        }
        Err(_) => Err(CloseReason::FrameTimeout),
    }
}

/// Where the connection's input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Requests are read as they come.
    Open,
    /// The peer has finished sending: answer what is buffered, then close.
    Ended,
    /// Shutting down, with more already arrived than one drain batch: answer
    /// the batch, then take the next.
    Draining,
    /// Shutting down, and all that had arrived is buffered: answer it, then close.
    Drained,
}

pub(super) struct Connection {
    stream: Transport,
    peer: SocketAddr,
    /// The protocol it speaks, with its state between reads.
    session: Session,
    shared: Arc<Shared>,
    /// Cancelled when the server starts shutting down.
    stopping: CancellationToken,
    /// Bytes read, not yet answered. Empty (no allocation) until bytes arrive;
    /// it grows with the bytes that arrive, never to a length a header announces.
    input: BytesMut,
    /// Responses not yet written; large values stay spliced in by reference
    /// and are written from the cache's bytes. A connection writes each
    /// batch before reading more, so it holds at most one batch.
    output: Output,
    /// When the request at the front of `input` began to count against
    /// `--frame-timeout` (`None`: no part of a request is buffered).
    frame_since: Option<Instant>,
    /// Its name in `--max-input-total`, what closes it for that, and the
    /// input it last reported holding there.
    input_total: (u64, CancellationToken, usize),
    /// Bytes read since the task last yielded ([`READ_PER_YIELD`]).
    read_since_yield: usize,
}

impl Connection {
    pub(super) fn new(
        stream: Transport,
        peer: SocketAddr,
        session: Session,
        shared: Arc<Shared>,
        stopping: CancellationToken,
    ) -> Connection {
        Connection {
            stream,
            peer,
            session,
            shared,
            stopping,
            input: BytesMut::new(),
            output: Output::new(),
            frame_since: None,
            input_total: (0, CancellationToken::new(), 0),
            read_since_yield: 0,
        }
    }

    /// Names the connection in `--max-input-total`, and gives it the token
    /// that closes it for that.
    pub(super) fn input_total_id(&mut self, id: u64, evict: CancellationToken) {
        self.input_total = (id, evict, 0);
    }

    /// Reports the input held (read, not yet answered) to
    /// `--max-input-total` if it changed; whether the connection goes on
    /// (it may be the one holding the most when the total is over).
    fn report_input(&mut self) -> bool {
        let (id, evict, reported) = &mut self.input_total;
        let held = self.input.len();
        if held != *reported {
            *reported = held;
            self.shared.hold_input(*id, self.peer, held, evict);
        }
        !evict.is_cancelled()
    }

    /// Serves the connection until it ends, and says why.
    pub(super) async fn serve(&mut self) -> CloseReason {
        let mut input = Input::Open;
        loop {
            let mut opts = self.shared.opts;
            opts.max_output = self.shared.output.high_water(opts.max_output);
            let progress = self.session.process(
                &self.shared.core.env(opts),
                &self.peer,
                &self.input,
                &mut self.output,
            );
            self.input.advance(progress.consumed);
            if !self.report_input() {
                return CloseReason::InputTotal;
            }
            // One write for the whole batch, before reading any further.
            if let Err(why) = self.flush().await {
                return why;
            }
            // A request begun: its clock starts now, once the server is ready
            // to read its rest (after the write above); one still incomplete
            // keeps its start.
            self.frame_since = match self.frame_since {
                _ if self.input.is_empty() => None,
                Some(since) if progress.consumed == 0 => Some(since),
                _ => Some(Instant::now()),
            };
            match progress.stop {
                // Half a request: don't let a delayed ACK hold its rest. A
                // read that ended on a request boundary costs no syscall.
                Stop::NeedMore { .. } if !self.input.is_empty() => net::quickack(self.stream.tcp()),
                Stop::NeedMore { .. } => {}
                // Written (the client read it): answer the frames still
                // buffered; what is left of them counts from the next batch.
                Stop::OutputFull => {
                    self.frame_since = None;
                    continue;
                }
                Stop::Offload { len } => {
                    if let Err(why) = self.offload(len).await {
                        return why;
                    }
                    // The time on the blocking thread was the server's.
                    self.frame_since = None;
                    continue;
                }
                // The answer that ends the connection is written.
                Stop::Close(why) => {
                    self.linger().await;
                    return why;
                }
            }
            let next = match input {
                Input::Ended => return CloseReason::Bye,
                Input::Drained => return CloseReason::Shutdown,
                Input::Draining => self.drain(),
                Input::Open => self.read().await,
            };
            input = match next {
                Ok(next) => next,
                Err(why) => return why,
            };
        }
    }

    /// Waits for more input: until bytes arrive, the peer closes, the idle
    /// timeout passes (or, inside a request, its frame timeout), or the server
    /// starts shutting down.
    async fn read(&mut self) -> Result<Input, CloseReason> {
        if self.stopping.is_cancelled() {
            return self.drain();
        }
        if self.read_since_yield >= READ_PER_YIELD {
            self.read_since_yield = 0;
            tokio::task::yield_now().await;
        }
        let now = Instant::now();
        let idle = self.shared.idle_timeout.map(|idle| now + idle);
        let (deadline, timed_out) = match self.frame_since {
            None => (idle, CloseReason::IdleTimeout),
            Some(since) => {
                let frame = since + self.shared.frame_timeout;
                if frame <= now {
                    return Err(CloseReason::FrameTimeout);
                }
                match idle {
                    Some(idle) if idle < frame => (Some(idle), CloseReason::IdleTimeout),
                    _ => (Some(frame), CloseReason::FrameTimeout),
                }
            }
        };
        if self.input.is_empty() {
            // Between requests: give back what a large frame or response grew.
            if self.input.capacity() > KEEP_IDLE {
                self.input = BytesMut::new();
            }
            if self.output.capacity() > KEEP_IDLE {
                self.output = Output::new();
            }
        }
        let Connection {
            stream,
            input,
            stopping,
            ..
        } = self;
        let read = async {
            // A connection without a buffer (it never sent anything, or gave a
            // large one back) waits for a byte before taking one. Not with
            // `readable()`: tokio takes a new socket for readable until a read
            // says otherwise, so every silent client would get a buffer.
            if input.capacity() == 0 {
                if let Transport::Plain(stream) = stream {
                    stream.peek(&mut [0u8; 1]).await?;
                }
            }
            input.reserve(READ_CHUNK);
            // At most MAX_READ a read, whatever room a grown buffer has:
            // appended to `input` (a `&mut BytesMut` limited, not its bytes).
            let mut room = <&mut BytesMut as BufMut>::limit(&mut *input, MAX_READ);
            stream.read_buf(&mut room).await
        };
        let read = tokio::select! {
            biased;
            read = until(deadline, read) => Some(read),
            () = stopping.cancelled() => None,
        };
        match read {
            None => self.drain(),
            Some(None) => Err(timed_out),
            Some(Some(Ok(0))) => Ok(Input::Ended),
            Some(Some(Ok(n))) => {
                self.read_since_yield += n;
                Ok(Input::Open)
            }
            Some(Some(Err(e))) if e.kind() == ErrorKind::Interrupted => Ok(Input::Open),
            // A TLS peer that closes without `close_notify`.
            Some(Some(Err(e))) if e.kind() == ErrorKind::UnexpectedEof => Ok(Input::Ended),
            Some(Some(Err(e))) => Err(self.failed("read", &e)),
        }
    }

    /// Shutting down: takes what has already arrived, up to one batch, with
    /// plain non-blocking reads. Not through tokio: its readiness may not yet
    /// know of bytes that arrived just before the shutdown, and those requests
    /// must be answered.
    fn drain(&mut self) -> Result<Input, CloseReason> {
        let stream = match &mut self.stream {
            Transport::Plain(stream) => stream,
            // Through TLS: only what rustls already decrypted, taken now.
            Transport::Tls(tls) => return Ok(drain_tls(tls, &mut self.input)),
        };
        let socket = socket2::SockRef::from(&*stream);
        let mut reader: &socket2::Socket = &socket;
        let start = self.input.len();
        while self.input.len() - start < DRAIN_BATCH {
            let len = self.input.len();
            self.input.resize(len + READ_CHUNK, 0);
            let read = reader.read(&mut self.input[len..]);
            self.input.truncate(len + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Ok(Input::Ended),
                // A short read: the socket's queue is empty.
                Ok(n) if n < READ_CHUNK => return Ok(Input::Drained),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Input::Drained),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed("read", &e)),
            }
        }
        Ok(Input::Draining)
    }

    /// Writes every pending response. A write that makes no progress for the
    /// idle timeout means the client does not read: the connection is closed.
    /// A batch the first write could not take whole counts in
    /// `--max-output-total` until it is written.
    async fn flush(&mut self) -> Result<(), CloseReason> {
        let total = self.output.total_len();
        if total == 0 {
            return Ok(());
        }
        // Large values stay shared with the cache: each chunk (owned bytes,
        // or a spliced value) is written from where it lies, never copied.
        let mut pending = None;
        let mut result = Ok(());
        'chunks: for chunk in self.output.chunks() {
            let mut written = 0;
            if pending.is_none() {
                let first = &chunk[..chunk.len().min(WRITE_SLICE)];
                let tried = match &self.stream {
                    Transport::Plain(stream) => stream.try_write(first),
                    // Through TLS every write is an await below.
                    Transport::Tls(_) => Err(ErrorKind::WouldBlock.into()),
                };
                written = match tried {
                    Ok(n) => n,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) =>
                    {
                        0
                    }
                    Err(e) => {
                        result = Err(self.failed("write", &e));
                        break 'chunks;
                    }
                };
                // The whole batch stays allocated (or pinned) until it is
                // written: count it all.
                if written < chunk.len() {
                    pending = Some(self.shared.output.hold(total));
                }
            }
            while written < chunk.len() {
                if written > 0 {
                    // A large value goes out a slice at a time, letting the
                    // other tasks (a ping elsewhere) run in between.
                    tokio::task::yield_now().await;
                }
                let end = chunk.len().min(written + WRITE_SLICE);
                let write = self.stream.write(&chunk[written..end]);
                match within(self.shared.idle_timeout, write).await {
                    None => {
                        result = Err(CloseReason::OutputNotRead);
                        break 'chunks;
                    }
                    Some(Ok(0)) => {
                        result = Err(self.failed("write", &ErrorKind::WriteZero.into()));
                        break 'chunks;
                    }
                    Some(Ok(n)) => written += n,
                    Some(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                    Some(Err(e)) => {
                        result = Err(self.failed("write", &e));
                        break 'chunks;
                    }
                }
            }
        }
        drop(pending);
        self.output.clear();
        result
    }

    /// Runs the heavy request at the front of the input on a blocking thread
    /// and waits for it: nothing behind it is decoded meanwhile, so responses
    /// leave in request order, while every other connection goes on.
    async fn offload(&mut self, len: usize) -> Result<(), CloseReason> {
        // The request leaves the buffer without a copy (`Bytes` shares it).
        let opts = self.shared.opts;
        let job = self.session.job(self.input.split_to(len).freeze(), &opts);
        let shared = &self.shared;
        let stats = shared.core.service.stats();
        // A bounded queue in front of a bounded number of running jobs, as in
        // the reactor: when it is full, this connection waits for room.
        let Ok(queued) = shared.job_queue.acquire().await else {
            return Err(CloseReason::Shutdown);
        };
        stats.job_queued();
        let Ok(running) = shared.job_running.acquire().await else {
            return Err(CloseReason::Shutdown);
        };
        drop(queued);
        stats.job_started();
        let (service, peer) = (shared.core.service.clone(), self.peer);
        let job = tokio::task::spawn_blocking(move || job.run(&service, &peer));
        let done = job.await;
        stats.job_finished();
        drop(running);
        match done {
            Ok(finished) => {
                let response = self.session.finish(finished);
                self.output.append(response);
                Ok(())
            }
            Err(e) => {
                error!("{}: a heavy request failed: {e}", self.peer);
                Err(CloseReason::IoError)
            }
        }
    }

    /// After the answer that ends the connection (`frame_too_large`, a RESP
    /// `QUIT` or protocol error, an HTTP `Connection: close`): FIN after it,
    /// then discard input until the peer closes or [`LINGER`] passes, because
    /// closing with unread input sends a reset that can destroy the response
    /// in flight.
    async fn linger(&mut self) {
        // What was left unanswered (a refused command's start, up to
        // `--max-command`) is neither kept nor counted while it lingers.
        self.input = BytesMut::new();
        self.report_input();
        linger(&mut self.stream, &mut self.input, &self.peer).await;
    }

    fn failed(&self, what: &str, e: &io::Error) -> CloseReason {
        debug!("{} {what} failed: {e}", self.peer);
        match (&self.stream, e.kind()) {
            (Transport::Tls(_), ErrorKind::InvalidData) => CloseReason::TlsError,
            _ => CloseReason::IoError,
        }
    }
}

/// Shutting down a TLS connection: the plaintext rustls already holds
/// decrypted, appended to `input`. Bytes still on the socket are not read
/// (they would need decrypting, a read the shutdown does not wait for).
fn drain_tls(tls: &mut TlsStream<TcpStream>, input: &mut BytesMut) -> Input {
    let (_, conn) = tls.get_mut();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => return Input::Ended,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Input::Ended,
            Err(_) => return Input::Drained, // WouldBlock: nothing more decrypted
        }
    }
}

/// FIN after what was written, then discard input (into `sink`) until the
/// peer closes or [`LINGER`] passes.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    sink: &mut BytesMut,
    peer: &SocketAddr,
) {
    if let Err(e) = stream.shutdown().await {
        debug!("{peer} shutdown failed: {e}");
        return;
    }
    // A client may go on sending as fast as loopback allows (the rest of a
    // huge refused command): each read takes at most MAX_READ, and the task
    // yields after READ_PER_YIELD, as when serving.
    let discard = async {
        let mut since_yield = 0;
        loop {
            sink.clear();
            sink.reserve(READ_CHUNK);
            let mut room = <&mut BytesMut as BufMut>::limit(&mut *sink, MAX_READ);
            match stream.read_buf(&mut room).await {
                Ok(0) | Err(_) => return,
                Ok(n) => since_yield += n,
            }
            if since_yield >= READ_PER_YIELD {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, discard).await;
}

/// A refused connection (`--max-conns`, `--max-conns-per-ip`): its
/// `overloaded` `frame` (written within [`LINGER`]), then a lingering close,
/// so that a client still sending its request reads the frame, not a reset.
pub(super) async fn refuse(mut stream: TcpStream, frame: &[u8], peer: &SocketAddr) {
    match tokio::time::timeout(LINGER, stream.write_all(frame)).await {
        Ok(Ok(())) => linger(&mut stream, &mut BytesMut::new(), peer).await,
        Ok(Err(e)) => debug!("{peer} refused: write failed: {e}"),
        Err(_) => debug!("{peer} refused: the frame was not taken within {LINGER:?}"),
    }
}

/// `fut`'s output, or `None` if `limit` passes first (no limit: never).
async fn within<F: std::future::Future>(limit: Option<Duration>, fut: F) -> Option<F::Output> {
    until(limit.map(|limit| Instant::now() + limit), fut).await
}

/// `fut`'s output, or `None` if `deadline` passes first (none: never).
async fn until<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, fut).await.ok(),
        None => Some(fut.await),
    }
}
