//! The classic threaded servers, kept beside the reactor for comparison.
//!
//! * `threaded`: one acceptor thread; every accepted connection gets its own
//!   thread, which blocks in `read` until the peer speaks (the seed's model).
//! * `pool`: `pool_size` threads that each `accept` on the shared listener and
//!   then serve that one connection until it closes (the pre-threaded server).
//!   Connection N+1 waits in the kernel's accept backlog, unanswered, until one
//!   of the first N leaves: the limitation the comparison is about.
//!
//! Both run the same blocking loop ([`connection::serve`]) over the shared
//! [`dispatch::process`](crate::dispatch::process), and the same limits:
//! `max_conns` (refused with `overloaded`), the idle timeout (socket timeouts),
//! `max_frame` and `max_output` (in dispatch). Shutdown wakes blocked `accept`
//! calls by connecting to the listener, and blocked reads by shutting down the
//! read side of every live socket, so responses already produced still leave.

mod connection;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, error, info, log, warn, Level};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{Config, Limits, Model};
use crate::dispatch::Options;
use crate::net::{self, CloseReason, RateLimitedLog, ACCEPT_BACKOFF};
use crate::service::{Service, HOUSEKEEPING_INTERVAL};
use crate::shutdown::ShutdownHandle;

/// Stack of every thread that serves connections. Measured on the deepest
/// request path (a 127-level nested `ping` and cached value, `fib 100000`,
/// `stats`, trace logging on): under 48 KiB in a debug build, within glibc's
/// 16 KiB minimum in release. 128 KiB keeps more than 2x headroom in debug
/// builds (`stack_headroom` below runs that path on half of it) and reserves
/// 16x less address space per idle client than std's 2 MiB default; only the
/// pages touched count toward RSS either way.
pub const STACK_SIZE: usize = 128 * 1024;

/// Memory is handed back to the OS only after at least this many connections
/// closed (and the live ones halved), so a quiet server never pays for it.
const TRIM_AFTER_CLOSES: usize = 100;

/// How often a shutdown checks for acceptors still blocked in `accept`.
const WAKE_RETRY: Duration = Duration::from_millis(100);

/// After the grace period, how long to wait for threads once their sockets are closed.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A `threaded` or `pool` server, bound and ready to run.
pub struct Threaded {
    listener: Arc<TcpListener>,
    local_addr: SocketAddr,
    model: Model,
    acceptors: usize,
    /// SIGINT and SIGTERM, registered at bind so none is missed before `run`.
    signals: Option<Signals>,
    grace: Duration,
    shared: Arc<Shared>,
    shutdown: ShutdownHandle,
}

impl Threaded {
    /// Binds the listener; `config.model` picks `threaded` or `pool`.
    pub fn bind(config: Config, service: Arc<Service>) -> io::Result<Threaded> {
        let listener = net::bind_listener(config.addr)?;
        let local_addr = listener.local_addr()?;
        let acceptors = match config.model {
            Model::Pool => config.pool_size.max(1),
            _ => 1,
        };
        let shared = Arc::new(Shared {
            service,
            limits: config.limits,
            pool: config.model == Model::Pool,
            state: Mutex::new(State::default()),
            stop: Condvar::new(),
            drained: Condvar::new(),
            refused_log: Mutex::new(RateLimitedLog::new(Duration::from_secs(1))),
            accept_log: Mutex::new(RateLimitedLog::new(Duration::from_secs(1))),
        });
        let signals = if config.signals {
            Some(Signals::new([SIGINT, SIGTERM])?)
        } else {
            None
        };
        let waker = Arc::clone(&shared);
        let shutdown = ShutdownHandle::new(move || waker.request_stop());
        info!("listening on {local_addr} (model {})", config.model);
        Ok(Threaded {
            listener: Arc::new(listener),
            local_addr,
            model: config.model,
            acceptors,
            signals,
            grace: config.shutdown_grace,
            shared,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shut down, then drains the connections (up to the grace period).
    pub fn run(mut self) -> io::Result<()> {
        let signals = match self.signals.take() {
            Some(signals) => Some(spawn_signal_thread(
                signals,
                self.shutdown.clone(),
                Arc::clone(&self.shared),
            )?),
            None => None,
        };
        let mut threads = Vec::new();
        let started = self.spawn_threads(&mut threads);
        if started.is_err() {
            self.shared.request_stop();
        }
        self.shared.wait_for_stop();
        let drained = self.stop();
        for t in threads {
            // Every thread is done or about to be, unless the grace period ran
            // out on a stuck client: then leave those behind.
            if drained || t.is_finished() {
                let _ = t.join();
            }
        }
        if let Some((handle, thread)) = signals {
            handle.close();
            let _ = thread.join();
        }
        info!("stopped");
        started
    }

    /// Starts the housekeeping thread and the acceptors.
    fn spawn_threads(&self, threads: &mut Vec<JoinHandle<()>>) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        threads.push(
            thread::Builder::new()
                .name("housekeeping".into())
                .spawn(move || shared.housekeeping())?,
        );
        for i in 0..self.acceptors {
            let shared = Arc::clone(&self.shared);
            let listener = Arc::clone(&self.listener);
            let alive = AcceptorAlive::new(shared);
            let spawned = thread::Builder::new()
                .name(match self.model {
                    Model::Pool => format!("pool-{i}"),
                    _ => "accept".into(),
                })
                .stack_size(STACK_SIZE)
                .spawn(move || alive.0.accept_loop(&listener));
            threads.push(spawned?);
        }
        Ok(())
    }

    /// Stops accepting, lets connections finish what they received, and after
    /// the grace period closes whatever is left. Returns whether every
    /// connection and acceptor finished.
    fn stop(&self) -> bool {
        info!(
            "shutting down: {} connections, up to {:?} to deliver responses",
            self.shared.lock().conns.len(),
            self.grace
        );
        // Clients still in the backlog may have sent requests already: from
        // now on acceptors take them without blocking, serve them like the
        // others (read side shut down), and leave at the first `WouldBlock`.
        if let Err(e) = self.listener.set_nonblocking(true) {
            warn!("cannot drain the accept backlog: {e}");
        }
        self.shared.shutdown_conns(Shutdown::Read);
        let deadline = Instant::now() + self.grace;
        let wake = wake_addr(self.local_addr);
        let drained = loop {
            // An acceptor that blocked in `accept` before the listener turned
            // non-blocking returns only with a connection: make one per such
            // acceptor (checked again, in case another took it).
            for _ in 0..self.shared.lock().in_accept {
                if let Err(e) = TcpStream::connect_timeout(&wake, WAKE_RETRY) {
                    debug!("cannot wake an acceptor through {wake}: {e}");
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.shared.wait_drained(left.min(WAKE_RETRY)) {
                break true;
            }
            if left.is_zero() {
                break false;
            }
        };
        if !drained {
            warn!(
                "shutdown grace over: closing {} connections",
                self.shared.lock().conns.len()
            );
            self.shared.shutdown_conns(Shutdown::Both);
            return self.shared.wait_drained(FORCED_CLOSE_WAIT);
        }
        true
    }
}

/// The listener's own address, reachable from here (`0.0.0.0` is not a destination).
fn wake_addr(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    addr
}

type SignalThread = (signal_hook::iterator::Handle, JoinHandle<()>);

/// A thread that turns SIGINT and SIGTERM into a shutdown request; a second
/// signal closes every connection at once instead of waiting out the grace period.
fn spawn_signal_thread(
    mut signals: Signals,
    shutdown: ShutdownHandle,
    shared: Arc<Shared>,
) -> io::Result<SignalThread> {
    let handle = signals.handle();
    let thread = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                debug!("signal {signal}");
                if shutdown.is_requested() {
                    warn!("second signal: closing every connection now");
                    shared.shutdown_conns(Shutdown::Both);
                } else {
                    shutdown.shutdown();
                }
            }
        })?;
    Ok((handle, thread))
}

/// State every server thread shares.
struct Shared {
    service: Arc<Service>,
    limits: Limits,
    pool: bool,
    state: Mutex<State>,
    /// Notified when a stop is requested.
    stop: Condvar,
    /// Notified, while stopping, when a connection or acceptor finishes.
    drained: Condvar,
    refused_log: Mutex<RateLimitedLog>,
    accept_log: Mutex<RateLimitedLog>,
}

#[derive(Default)]
struct State {
    stopping: bool,
    /// The descriptor of every live connection, to shut it down from another
    /// thread. Not a `try_clone`: that would cost each connection a second
    /// descriptor and halve how many fit under `ulimit -n`. An entry is removed
    /// (under the lock) before its socket closes, see [`Conn`]'s `Drop`.
    conns: HashMap<u64, RawFd>,
    next_id: u64,
    /// Acceptor threads still running.
    acceptors: usize,
    /// Acceptors inside `accept` (the shutdown wakes those that block).
    in_accept: usize,
    /// Most connections at once since memory was last handed back.
    peak_since_trim: usize,
}

impl State {
    /// Shuts down one direction of a registered connection's socket; the
    /// caller holds the lock, so the socket is still open.
    fn shutdown(&self, fd: RawFd, how: Shutdown) {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: `fd` is registered and `&self` borrows the locked state, so
        // the `TcpStream` owning `fd` has not been dropped (`Conn::drop`
        // unregisters it under the lock first). shutdown(2) neither closes nor
        // frees the descriptor; its error (the peer is gone) is of no interest.
        unsafe { libc::shutdown(fd, how) };
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn request_stop(&self) {
        self.lock().stopping = true;
        self.stop.notify_all();
        self.drained.notify_all();
    }

    fn wait_for_stop(&self) {
        let mut state = self.lock();
        while !state.stopping {
            state = self
                .stop
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Sleeps for `d` or until a stop is requested; returns whether stopping.
    fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .stop
            .wait_timeout_while(state, d, |s| !s.stopping)
            .unwrap_or_else(PoisonError::into_inner);
        state.stopping
    }

    /// Waits up to `timeout` for every connection and acceptor to finish.
    fn wait_drained(&self, timeout: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .drained
            .wait_timeout_while(state, timeout, |s| !s.conns.is_empty() || s.acceptors > 0)
            .unwrap_or_else(PoisonError::into_inner);
        state.conns.is_empty() && state.acceptors == 0
    }

    fn shutdown_conns(&self, how: Shutdown) {
        let state = self.lock();
        for &fd in state.conns.values() {
            state.shutdown(fd, how);
        }
    }

    /// Sweeps expired cache keys every [`HOUSEKEEPING_INTERVAL`] until stopped.
    fn housekeeping(&self) {
        while !self.sleep_unless_stopped(HOUSEKEEPING_INTERVAL) {
            self.service.housekeeping(Instant::now());
        }
    }

    /// Accepts until stopped; serves each connection on a new thread
    /// (`threaded`) or right here (`pool`).
    fn accept_loop(self: &Arc<Self>, listener: &TcpListener) {
        loop {
            self.lock().in_accept += 1;
            let accepted = listener.accept();
            let stopping = {
                let mut state = self.lock();
                state.in_accept -= 1;
                state.stopping
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                // Stopping, the listener is non-blocking: the backlog is empty.
                Err(e) if stopping && e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if net::transient_accept_error(&e) => continue,
                Err(e) if stopping => {
                    debug!("accept failed during shutdown: {e}");
                    return;
                }
                Err(e) => {
                    self.back_off("accept failed", &e);
                    continue;
                }
            };
            // Accepted from a non-blocking listener: some systems pass the flag on.
            if stopping && stream.set_nonblocking(false).is_err() {
                continue;
            }
            let Some(conn) = self.admit(stream, peer) else {
                continue;
            };
            if self.pool {
                // A bug in a method must not cost the pool a thread for good.
                if panic::catch_unwind(AssertUnwindSafe(|| conn.serve())).is_err() {
                    error!("{peer}: connection handler panicked");
                }
                continue;
            }
            let spawned = thread::Builder::new()
                .name(format!("conn-{}", conn.id))
                .stack_size(STACK_SIZE)
                .spawn(move || conn.serve());
            if let Err(e) = spawned {
                // The closure, and with it the connection, is dropped: closed.
                self.back_off("cannot start a connection thread", &e);
            }
        }
    }

    /// Out of descriptors, threads or memory (or something unexpected): log at
    /// most once a second and pause accepting, so the acceptor never spins
    /// while the clients already connected go on being served.
    fn back_off(&self, what: &str, e: &io::Error) {
        if let Some(held) = allow(&self.accept_log) {
            let why = if net::out_of_descriptors(e) {
                "out of descriptors: "
            } else {
                ""
            };
            warn!("{what} ({why}{e}); pausing accepts for {ACCEPT_BACKOFF:?} ({held} more since last report)");
        }
        self.sleep_unless_stopped(ACCEPT_BACKOFF);
    }

    /// Registers a new connection, or refuses it with `overloaded` beyond `max_conns`.
    fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Option<Conn> {
        let (id, late) = {
            let mut state = self.lock();
            if state.conns.len() >= self.limits.max_conns {
                drop(state);
                self.refuse(stream, peer);
                return None;
            }
            let fd = stream.as_raw_fd();
            state.next_id += 1;
            let id = state.next_id;
            state.conns.insert(id, fd);
            state.peak_since_trim = state.peak_since_trim.max(state.conns.len());
            if state.stopping {
                state.shutdown(fd, Shutdown::Read);
            }
            (id, state.stopping)
        };
        self.service.stats().connection_opened();
        // From here on, dropping `conn` unregisters `fd` before closing it.
        let conn = Conn {
            shared: Arc::clone(self),
            id,
            stream,
            peer,
            why: CloseReason::Bye,
            log_level: if late { Level::Debug } else { Level::Info },
        };
        // Taken from the backlog during a shutdown: a client or a wake-up call.
        log!(conn.log_level, "{peer} comes");
        Some(conn)
    }

    /// Answers one `overloaded` error and closes, without ever blocking the acceptor.
    fn refuse(&self, mut stream: TcpStream, peer: SocketAddr) {
        self.service.stats().connection_rejected();
        if let Some(held) = allow(&self.refused_log) {
            warn!(
                "refused {peer}: at max-conns {} ({held} more refused since last report)",
                self.limits.max_conns
            );
        }
        if stream.set_nonblocking(true).is_ok() {
            let frame = crate::protocol::message::refusal_frame(self.limits.max_conns);
            net::turn_away(&mut stream, &frame, |s| s.shutdown(Shutdown::Write));
        }
    }
}

/// Counts a running acceptor for the shutdown, even if it ends by a panic.
struct AcceptorAlive(Arc<Shared>);

impl AcceptorAlive {
    fn new(shared: Arc<Shared>) -> AcceptorAlive {
        shared.lock().acceptors += 1;
        AcceptorAlive(shared)
    }
}

impl Drop for AcceptorAlive {
    fn drop(&mut self) {
        self.0.lock().acceptors -= 1;
        self.0.drained.notify_all();
    }
}

/// A served connection; dropping it unregisters it and logs `bye`. `Drop::drop`
/// runs before the `stream` field is dropped, so the descriptor leaves the
/// registry while it is still open.
struct Conn {
    shared: Arc<Shared>,
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    /// Why it ended, for the `bye` line.
    why: CloseReason,
    /// Of `comes` and `bye`: debug for connections accepted while stopping.
    log_level: Level,
}

impl Conn {
    fn serve(mut self) {
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
        let opt = Options {
            max_frame: limits.max_frame,
            offload: false,
            max_output: limits.max_output,
        };
        self.why = connection::serve(&mut self.stream, &self.peer, &self.shared.service, opt);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.conns.remove(&self.id);
        let stopping = state.stopping;
        let live = state.conns.len();
        let trim =
            live <= state.peak_since_trim / 2 && state.peak_since_trim - live >= TRIM_AFTER_CLOSES;
        if trim {
            state.peak_since_trim = live;
        }
        drop(state);
        if trim {
            // glibc keeps freed memory in its arenas, and with a thread per
            // connection a crowd's buffers are spread over many arenas, pinned by
            // the few live allocations between them: after 5 000 clients left,
            // RSS stayed at 84 MiB (peak 159 MiB); trimming brings it to 30 MiB,
            // most of it glibc's cache of thread stacks. At most log2(peak) times
            // per crowd, by the closing thread, before `stats` shows it gone.
            crate::net::return_free_memory();
        }
        self.shared.service.stats().connection_closed();
        let why = match self.why {
            // EOF or a failed write after the shutdown shut the socket down.
            CloseReason::Bye | CloseReason::IoError if stopping => CloseReason::Shutdown,
            why => why,
        };
        why.log(self.log_level, &self.peer);
        if stopping {
            self.shared.drained.notify_all();
        }
    }
}

fn allow(log: &Mutex<RateLimitedLog>) -> Option<u64> {
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allow(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deepest requests fit in half of [`STACK_SIZE`], in the debug build too.
    #[test]
    fn stack_headroom() {
        use crate::dispatch::process;
        use crate::protocol::frame::encode;
        let nested = |d: usize| format!("{}1{}", "[".repeat(d), "]".repeat(d));
        let objects = |d: usize| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d));
        let bodies = [
            format!(r#"{{"in":"ping","params":{}}}"#, nested(127)),
            format!(
                r#"{{"in":"set","params":{{"key":"a","value":{}}}}}"#,
                nested(126)
            ),
            r#"{"in":"get","params":{"key":"a"}}"#.to_string(),
            format!(
                r#"{{"in":"set","params":{{"key":"b","value":{}}}}}"#,
                objects(126)
            ),
            r#"{"in":"get","params":{"key":"b"}}"#.to_string(),
            r#"{"in":"fib","params":100000}"#.to_string(),
            r#"{"in":"stats"}"#.to_string(),
            format!(r#"{{"in":"ping","params":{}}}"#, nested(100_000)),
        ];
        let mut input = Vec::new();
        for body in &bodies {
            encode(&mut input, body.as_bytes());
        }
        let answered = thread::Builder::new()
            .stack_size(STACK_SIZE / 2)
            .spawn(move || {
                let service = Service::new();
                let opt = Options {
                    max_frame: u32::MAX,
                    offload: false,
                    max_output: usize::MAX,
                };
                let mut out = Vec::new();
                process(&service, &"test", &input, &mut out, opt).answered
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(answered, bodies.len());
    }

    #[test]
    fn wake_addr_replaces_unspecified_ip() {
        let any: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        assert_eq!(wake_addr(any), "127.0.0.1:4000".parse().unwrap());
        let v6: SocketAddr = "[::]:4000".parse().unwrap();
        assert_eq!(wake_addr(v6), "[::1]:4000".parse().unwrap());
        let own: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        assert_eq!(wake_addr(own), own);
    }
}
