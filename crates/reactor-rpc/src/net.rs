//! Socket helpers, constants and the close reasons every server model shares,
//! so that the models agree on what they do and on what they log.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::protocol::resp::{Reply, Version};
use crate::wire::Role;

/// How long a connection refused (`overloaded`) or closed for `frame_too_large`
/// keeps discarding input before it closes. Closing a socket with unread input
/// sends a reset, which can destroy the error response before the client reads
/// it; a lingering close sends FIN after the response instead.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// Refused connections lingering at once (the reactor's slab entries, the
/// tokio models' tasks); beyond it a refusal is a best-effort [`turn_away`].
pub(crate) const LINGERING_REFUSALS: usize = 1024;

/// The per-connection output high-water mark (`--max-output`, `per_conn`) for
/// a connection's next batch, given the pending output of all connections
/// together (`total`) and `--max-output-total` (`bound`): the configured one
/// while the total is within the bound, one byte (one response) above it, so
/// that no connection adds a batch to a total already over its bound.
#[inline]
pub(crate) fn output_high_water(total: usize, per_conn: usize, bound: usize) -> usize {
    if total <= bound {
        per_conn
    } else {
        1
    }
}

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
    /// A frame begun was not complete within `--frame-timeout`.
    FrameTimeout,
    /// Over `--max-conns` or `--max-conns-per-ip`: `overloaded`, then a lingering close.
    Refused,
    /// The server shut down.
    Shutdown,
    /// A read or write failed (a reset, say); the error is logged at debug.
    IoError,
    /// A RESP protocol error was answered (`-ERR Protocol error: ...`), or
    /// malformed HTTP on the metrics port (400).
    ProtocolError,
}

impl CloseReason {
    /// The words in the `bye (...)` log line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CloseReason::Bye => "bye",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::OutputNotRead => "output not read",
            CloseReason::FrameTooLarge => "frame too large",
            CloseReason::FrameTimeout => "frame timeout",
            CloseReason::Refused => "refused",
            CloseReason::Shutdown => "shutdown",
            CloseReason::IoError => "i/o error",
            CloseReason::ProtocolError => "protocol error",
        }
    }

    /// Logs the `bye` line of a connection at `level` (within [`CONN_LINES_PER_SEC`]).
    pub(crate) fn log(self, level: log::Level, peer: &dyn std::fmt::Display) {
        if !conn_line_allowed(level) {
            return;
        }
        match self {
            CloseReason::Bye => log::log!(level, "{peer} bye"),
            why => log::log!(level, "{peer} bye ({})", why.as_str()),
        }
    }
}

/// Per-connection lines (`comes`, `bye`) logged per second at most; beyond
/// it they are counted and one summary line says how many were held back, so
/// a connect/reset storm cannot fill a disk with its log.
pub(crate) const CONN_LINES_PER_SEC: u32 = 100;

/// The current second's budget of per-connection lines, for the whole process.
struct ConnLines {
    /// When the current one-second window began (`None`: no line yet).
    since: Option<std::time::Instant>,
    logged: u32,
    held: u64,
}

static CONN_LINES: std::sync::Mutex<ConnLines> = std::sync::Mutex::new(ConnLines {
    since: None,
    logged: 0,
    held: 0,
});

/// Whether a per-connection line may be logged now; reports the lines held
/// back once their second is over. Lines below the enabled level cost nothing.
fn conn_line_allowed(level: log::Level) -> bool {
    if !log::log_enabled!(level) {
        return false;
    }
    let now = std::time::Instant::now();
    let mut lines = CONN_LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    roll_conn_lines(&mut lines, now);
    if lines.logged < CONN_LINES_PER_SEC {
        lines.logged += 1;
        true
    } else {
        lines.held += 1;
        false
    }
}

/// Starts a new window once a second has passed, reporting what the last held back.
fn roll_conn_lines(lines: &mut ConnLines, now: std::time::Instant) {
    match lines.since {
        Some(since) if now.duration_since(since) < Duration::from_secs(1) => {}
        _ => {
            if lines.held > 0 {
                log::warn!(
                    "{} connection log lines (comes/bye) held back in the last second (at most {CONN_LINES_PER_SEC} a second)",
                    lines.held
                );
            }
            *lines = ConnLines {
                since: Some(now),
                logged: 0,
                held: 0,
            };
        }
    }
}

/// Reports held-back connection lines whose second is over, even when no
/// connection comes to trigger it (called by each model's housekeeping).
pub(crate) fn flush_conn_lines() {
    let mut lines = CONN_LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if lines.held > 0 {
        roll_conn_lines(&mut lines, std::time::Instant::now());
    }
}

/// Logs the `comes` line of a connection at `level` (within [`CONN_LINES_PER_SEC`]).
pub(crate) fn log_comes(level: log::Level, peer: &dyn std::fmt::Display) {
    if conn_line_allowed(level) {
        log::log!(level, "{peer} comes");
    }
}

/// Which limit a refused connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--max-conns` connections are open.
    MaxConns(usize),
    /// Its address holds `--max-conns-per-ip` connections.
    PerIp(usize),
}

impl Refusal {
    /// What the client is told, in the protocol of the listener it reached:
    /// the JSON `overloaded` frame, a RESP error worded as Redis words it
    /// (`-ERR max number of clients reached`), or an HTTP 503.
    pub(crate) fn response(self, role: Role) -> Vec<u8> {
        let mut out = Vec::new();
        match role {
            Role::Rpc => {
                let message = match self {
                    Refusal::MaxConns(n) => format!("server is at its limit of {n} connections"),
                    Refusal::PerIp(n) => {
                        format!("too many connections from this address (limit {n})")
                    }
                };
                crate::protocol::message::write_overloaded_frame(&mut out, message);
            }
            Role::Resp => {
                let message: &[u8] = match self {
                    Refusal::MaxConns(_) => b"ERR max number of clients reached",
                    Refusal::PerIp(_) => b"ERR max number of clients per address reached",
                };
                Reply::new(&mut out, Version::Resp2).error(message);
            }
            Role::Metrics => crate::ops::http::write_response(
                &mut out,
                crate::ops::http::Status::ServiceUnavailable,
                "text/plain; charset=utf-8",
                format!("{self}\n").as_bytes(),
                true,
            ),
        }
        out
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::MaxConns(n) => write!(f, "at max-conns {n}"),
            Refusal::PerIp(n) => write!(f, "its address at max-conns-per-ip {n}"),
        }
    }
}

/// Open connections per client address, for `--max-conns-per-ip` (empty when
/// the limit is off, so it costs nothing then).
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    limit: usize,
    open: std::collections::HashMap<std::net::IpAddr, usize>,
}

impl PerIp {
    pub(crate) fn new(limit: usize) -> PerIp {
        PerIp {
            limit,
            open: std::collections::HashMap::new(),
        }
    }

    /// Counts one more connection from `ip`, or says it is over the limit.
    pub(crate) fn admit(&mut self, ip: std::net::IpAddr) -> Result<(), Refusal> {
        if self.limit == 0 {
            return Ok(());
        }
        let open = self.open.entry(ip).or_insert(0);
        if *open >= self.limit {
            return Err(Refusal::PerIp(self.limit));
        }
        *open += 1;
        Ok(())
    }

    /// Counts one connection from `ip` less.
    pub(crate) fn release(&mut self, ip: std::net::IpAddr) {
        if self.limit == 0 {
            return;
        }
        if let std::collections::hash_map::Entry::Occupied(mut e) = self.open.entry(ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
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

/// The listening sockets of a server: the JSON RPC port, and the RESP and
/// metrics ports when configured. Bound (or inherited) before a model starts,
/// so every model serves the same set.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// The JSON RPC listener.
    pub rpc: TcpListener,
    /// The Redis protocol listener (`--resp-addr`).
    pub resp: Option<TcpListener>,
    /// The metrics listener (`--metrics-addr`).
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Takes the inherited sockets and binds the others from `config`.
    pub(crate) fn open(
        config: &crate::Config,
        inherited: crate::config::Inherited,
    ) -> io::Result<Listeners> {
        // The error names the address, so one line says what failed.
        let named =
            |addr: SocketAddr| move |e: io::Error| io::Error::new(e.kind(), format!("{addr}: {e}"));
        let bind = |socket: Option<TcpListener>, addr: Option<SocketAddr>| match (socket, addr) {
            (Some(socket), _) => Ok(Some(socket)),
            (None, Some(addr)) => bind_listener(addr).map(Some).map_err(named(addr)),
            (None, None) => Ok(None),
        };
        let rpc = match inherited.rpc {
            Some(socket) => socket,
            None => bind_listener(config.addr).map_err(named(config.addr))?,
        };
        Ok(Listeners {
            rpc,
            resp: bind(inherited.resp, config.resp_addr)?,
            metrics: bind(inherited.metrics, config.metrics_addr)?,
        })
    }

    /// Each listener with the role of the connections it accepts.
    pub(crate) fn into_roles(self) -> Vec<(crate::wire::Role, TcpListener)> {
        use crate::wire::Role;
        let mut all = vec![(Role::Rpc, self.rpc)];
        all.extend(self.resp.map(|l| (Role::Resp, l)));
        all.extend(self.metrics.map(|l| (Role::Metrics, l)));
        all
    }
}

/// Logs where a server listens: the `listening on ADDR (model NAME)` line
/// that tools parse, then one line per extra port.
pub(crate) fn log_listening(roles: &[(crate::wire::Role, SocketAddr)], model: &str) {
    for (role, addr) in roles {
        match role {
            crate::wire::Role::Rpc => log::info!("listening on {addr} (model {model})"),
            other => log::info!("{other} listening on {addr}"),
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
