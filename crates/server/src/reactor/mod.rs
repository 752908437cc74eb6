//! The reactor: one thread, one `mio::Poll`, every connection multiplexed on it.
//!
//! ```text
//!  poll.poll(events, timeout of the nearest deadline)
//!    LISTENER ─► accept until WouldBlock ─► slab.insert(Connection), register once (R|W)
//!                (one listener per endpoint: JSON, RESP, metrics, each plain or TLS)
//!    SIGNALS  ─► SIGINT/SIGTERM/SIGQUIT: the terminate hook (by default a graceful
//!                shutdown, a second one closes every connection); SIGHUP: the hangup hook
//!    WAKER    ─► worker results, CLIENT KILLs, shutdown requests
//!    conn     ─► Connection::drive: read ─► Session::process ─► one write per batch
//!  yielded: connections that used up their turn with input left get another one
//!  timers: accept back-off; idle and frame deadlines; the housekeeping tick
//! ```
//!
//! This file is the event loop itself: poll, dispatch events by token, accept,
//! close, shut down. A connection's cycle and states are in `connection.rs`
//! (its TLS layer in `tls.rs`), periodic chores in `housekeeping.rs`, the
//! deadline heap in `deadlines.rs`, the offload pool in `workers.rs`, and
//! `CLIENT KILL` in `kills.rs`.
//!
//! This module is the only one that touches mio. It knows nothing of what a
//! request means: bytes go to [`Session::process`], whatever the protocol,
//! as in every model.

mod connection;
mod deadlines;
mod housekeeping;
mod kills;
mod tls;
mod workers;

use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn, Level};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::SIGHUP;
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use reactor_rpc_core::output::SharedLedger;
use reactor_rpc_core::session::{self, Endpoint, Role, Session};
use rustls::ServerConnection;

use crate::config::{Config, Terminate};
use crate::env::Core;
use crate::net::{
    counts_per_ip, log_bye, log_comes, out_of_descriptors, transient_accept_error, turn_away,
    CloseReason, InputTotal, Listeners, PerIp, ProtectedMode, RateLimitedLog, Refusal, Slots,
    ACCEPT_BACKOFF, LINGERING_REFUSALS,
};
use crate::shutdown::ShutdownHandle;
use connection::{Connection, Framing, Next, Readiness, Turn};
use deadlines::Deadlines;
use housekeeping::Housekeeping;
use kills::Kills;
use workers::WorkerPool;

const SIGNALS: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Listener `i` (in `Endpoint::ALL`'s order, those configured) has token
/// `FIRST_LISTENER - i`; connections have their slab key, far below.
const FIRST_LISTENER: usize = usize::MAX - 3;
const MAX_LISTENERS: usize = Endpoint::ALL.len();
/// Yielded connections driven between two looks for new events: with each
/// turn writing at most 64 KiB, a ping waits behind at most 2 MiB of other
/// connections' writes, not behind every connection that has output.
const RESUME_PER_PASS: usize = 32;

/// The pending output of all connections together, kept as a running sum
/// of what each connection last reported (a compare per drive, no scan).
/// A connection reports its [`output_charge`](Connection::output_charge):
/// the bytes it owns, plus a small fixed charge per large cached value it
/// queued by reference; the values themselves are counted once each in a
/// [`SharedLedger`], however many connections queue them (one 1 MiB value
/// queued 4 000 times counts 1 MiB; 4 000 distinct values, or one value
/// overwritten while queued, count what they keep alive). A connection's own
/// `--max-output` stop counts those values at full size, so no connection
/// queues more than about `--max-output` bytes of responses in a turn.
/// Above `--max-output-total`, every connection still holding output stops
/// decoding (its high-water mark drops to one byte) until it drains: nothing
/// is dropped, and clients that keep up with their responses (nothing
/// pending) go on. Not a per-connection share of the total: the first
/// connections to fill their `--max-output` would set that share for
/// everyone, and the total would hold nothing.
#[derive(Debug, Default)]
struct OutputTotal {
    /// The connections' charges: owned bytes, and bookkeeping per splice.
    bytes: usize,
    /// The distinct shared values queued, each counted once.
    shared: SharedLedger,
}

impl OutputTotal {
    /// The per-connection high-water mark for the next drive: the configured
    /// one while the total is within `bound`, one byte above it.
    #[inline]
    fn high_water(&self, per_conn: usize, bound: usize) -> usize {
        crate::net::output_high_water(self.total(), per_conn, bound)
    }

    /// The pending output counted against `--max-output-total` now.
    #[inline]
    fn total(&self) -> usize {
        self.bytes + self.shared.bytes()
    }

    /// Takes a connection's pending output into the total, after it moved.
    #[inline]
    fn recount(&mut self, conn: &mut Connection) {
        let (was, now) = (conn.counted_output, conn.output_charge());
        if was != now {
            self.bytes = self.bytes - was + now;
            conn.counted_output = now;
        }
        conn.settle_shared(&mut self.shared);
    }
}

/// A listening socket and the endpoint it is.
struct Listening {
    endpoint: Endpoint,
    socket: TcpListener,
    addr: SocketAddr,
}

/// A bound reactor server: the poll, the listener, every connection, and the
/// deadlines the loop sleeps until.
pub struct Reactor {
    poll: Poll,
    /// Emptied when a shutdown begins: no more accepts.
    listeners: Vec<Listening>,
    conns: Slab<Connection>,
    core: Core,
    config: Config,
    opts: session::Options,
    workers: Option<WorkerPool>,
    signals: Option<Signals>,
    shutdown: ShutdownHandle,
    timers: Deadlines,
    /// Frame deadlines: one entry per frame that began without completing.
    frame_timers: Deadlines,
    /// Connections whose heavy request found the job queue full.
    stalled: Vec<(usize, u64)>,
    /// Connections that used up their turn with work left: driven again
    /// before the next poll, which then does not sleep.
    yielded: Vec<(usize, u64)>,
    now: Instant,
    housekeeping: Housekeeping,
    accept_paused_until: Option<Instant>,
    /// Set once shutdown starts: the moment it must be over.
    shutdown_deadline: Option<Instant>,
    next_conn_id: u64,
    /// Connections served per listener (`--max-conns`, `--metrics-max-conns`).
    slots: Slots,
    /// Open client connections per address (`--max-conns-per-ip`).
    per_ip: PerIp,
    /// Refused connections in the slab, lingering after their `overloaded`.
    refusals: usize,
    /// Pending output of every connection together.
    output: OutputTotal,
    /// Input not yet answered of every connection together, by slab key
    /// (`--max-input-total`).
    input: InputTotal<usize, ()>,
    /// Connections another client closed with `CLIENT KILL`.
    kills: Arc<Kills>,
    refused_log: RateLimitedLog,
    accept_log: RateLimitedLog,
}

impl Reactor {
    pub fn bind(config: Config, core: Core, sockets: Listeners) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        for (i, (endpoint, socket)) in sockets.into_vec().into_iter().enumerate() {
            socket.set_nonblocking(true)?;
            let mut socket = TcpListener::from_std(socket);
            let token = Token(FIRST_LISTENER - i);
            poll.registry()
                .register(&mut socket, token, Interest::READABLE)?;
            let addr = socket.local_addr()?;
            listeners.push(Listening {
                endpoint,
                socket,
                addr,
            });
        }
        let signals = if config.signals {
            let terminate = Terminate::SIGNALS.map(|(signal, _)| signal);
            let mut signals = Signals::new(terminate.into_iter().chain([SIGHUP]))?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)?;
            Some(signals)
        } else {
            None
        };
        // One waker per Poll: shared by the shutdown handle and the workers.
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let shutdown = {
            let waker = waker.clone();
            // The loop reads the handle for how soon (`on_wake`).
            ShutdownHandle::new(move |_| {
                if let Err(e) = waker.wake() {
                    error!("cannot wake the event loop for shutdown: {e}");
                }
            })
        };
        let kills = Kills::new(waker.clone());
        let workers = if config.offload {
            Some(WorkerPool::start(
                config.workers.max(1),
                core.service.clone(),
                waker,
            )?)
        } else {
            None
        };
        let opts = config.limits.session_options(workers.is_some());
        let now = Instant::now();
        let per_ip = PerIp::new(config.limits.max_conns_per_ip);
        let slots = Slots::new(config.limits.max_conns, config.limits.metrics_max_conns);
        let input = InputTotal::new(config.limits.max_input_total);
        Ok(Reactor {
            poll,
            listeners,
            conns: Slab::new(),
            core,
            config,
            opts,
            workers,
            signals,
            shutdown,
            timers: Deadlines::default(),
            frame_timers: Deadlines::default(),
            stalled: Vec::new(),
            yielded: Vec::new(),
            now,
            housekeeping: Housekeeping::new(now),
            accept_paused_until: None,
            shutdown_deadline: None,
            next_conn_id: 0,
            slots,
            per_ip,
            refusals: 0,
            output: OutputTotal::default(),
            input,
            kills,
            refused_log: RateLimitedLog::new(Duration::from_secs(1)),
            accept_log: RateLimitedLog::new(Duration::from_secs(1)),
        })
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The event loop. Returns after a graceful shutdown.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.finished() {
            let timeout = if self.yielded.is_empty() {
                self.next_timeout()
            } else {
                Some(Duration::ZERO) // work is waiting: only look for new events
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue; // a signal, or a tracer attaching: not an error
                }
                return Err(e);
            }
            self.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.on_signal(),
                    WAKER => self.on_wake(),
                    Token(t) if t > FIRST_LISTENER - MAX_LISTENERS => {
                        self.accept(FIRST_LISTENER - t)
                    }
                    Token(key) => self.on_ready(key, Readiness::of(event)),
                }
            }
            self.resume_yielded();
            self.on_timers();
        }
        self.close_all();
        if let Some(workers) = self.workers.take() {
            workers.stop();
        }
        info!("stopped");
        Ok(())
    }

    /// Readiness on a client socket. The key may belong to a connection closed
    /// earlier in this batch, or even to a new one that reused it: events are
    /// hints, and `drive` copes with a socket that has nothing to say.
    fn on_ready(&mut self, key: usize, readiness: Readiness) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.ready(readiness);
        self.drive(key);
    }

    fn drive(&mut self, key: usize) {
        self.with_conn(key, Connection::drive);
    }

    /// Runs one step `f` of a connection's cycle, then acts on its outcome.
    fn with_conn(&mut self, key: usize, f: impl FnOnce(&mut Connection, &Turn<'_>) -> Next) {
        let mut opts = self.opts;
        opts.max_output = self
            .output
            .high_water(opts.max_output, self.config.limits.max_output_total);
        let turn = Turn {
            env: self.core.env(opts),
            workers: self.workers.as_ref(),
            now: self.now,
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let id = conn.id;
        let framing = conn.framing();
        let next = f(conn, &turn);
        self.output.recount(conn);
        let held = conn.held_input();
        let input_moved = held != conn.counted_input;
        if input_moved {
            conn.counted_input = held;
            self.input.hold(key, held, conn.peer, || ());
        }
        if let Framing::Partial(since) = conn.framing() {
            if framing != Framing::Partial(since) {
                let timeout = self.config.limits.frame_timeout;
                self.frame_timers.arm(since + timeout, key, id);
            }
        }
        self.settle(key, id, next);
        if input_moved {
            self.evict_input();
        }
    }

    /// Over `--max-input-total`: closes the connections holding the most
    /// input until the total is within it (see [`InputTotal`]).
    fn evict_input(&mut self) {
        while let Some(evicted) = self.input.evict(self.now) {
            self.core.service.stats().client_evicted();
            self.close(evicted.key, CloseReason::InputTotal);
        }
        // Each close above set the figure too (one loop: nobody reads it meanwhile).
        self.core.service.stats().set_input_held(self.input.bytes());
    }

    /// Acts on what a connection said: close it, or remember to come back.
    fn settle(&mut self, key: usize, id: u64, next: Next) {
        match next {
            Next::Keep => {}
            Next::Yield => self.yielded.push((key, id)),
            Next::Stalled => self.stalled.push((key, id)),
            Next::Linger(until) => self.timers.arm(until, key, id),
            Next::Close(why) => self.close(key, why),
        }
    }

    /// Gives the connections that yielded their turn another one, the first
    /// [`RESUME_PER_PASS`] of them; the rest wait for the next pass, after a
    /// look for new events, in the order they yielded.
    fn resume_yielded(&mut self) {
        let mut now = std::mem::take(&mut self.yielded);
        if now.len() > RESUME_PER_PASS {
            self.yielded = now.split_off(RESUME_PER_PASS);
        }
        for (key, id) in now {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.drive(key);
            }
        }
    }

    /// Accepts every pending connection of listener `i`.
    fn accept(&mut self, i: usize) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners.get(i) else {
                return; // shutting down
            };
            let (endpoint, local) = (listener.endpoint, listener.addr);
            match listener.socket.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, endpoint, local),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if transient_accept_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors (or worse): the pending connection stays in
                    // the backlog and would raise no new edge, so pause and retry on a
                    // timer instead of spinning.
                    if let Some(held) = self.accept_log.allow(self.now) {
                        let what = if out_of_descriptors(&e) {
                            "out of descriptors"
                        } else {
                            "error"
                        };
                        warn!("accept failed ({what}: {e}); pausing accepts for {ACCEPT_BACKOFF:?} ({held} more since last report)");
                    }
                    self.accept_paused_until = Some(self.now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn admit(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        endpoint: Endpoint,
        local: SocketAddr,
    ) {
        let role = endpoint.role;
        let protected = ProtectedMode(self.config.security.protected_mode);
        if let Err(why) = protected.admit(&self.core.service, peer) {
            self.refuse(stream, peer, endpoint, why);
            return;
        }
        if let Err(refusal) = self.slots.admit(role) {
            self.refuse(stream, peer, endpoint, refusal);
            return;
        }
        if counts_per_ip(role) {
            if let Err(refusal) = self.per_ip.admit(peer.ip()) {
                self.slots.release(role);
                self.refuse(stream, peer, endpoint, refusal);
                return;
            }
        }
        if let Err(e) = stream.set_nodelay(true) {
            debug!("{peer}: cannot set TCP_NODELAY: {e}");
        }
        if role == Role::Metrics {
            crate::net::cap_send_buffer(&stream);
        }
        let tls = match self.tls_for(endpoint, &peer) {
            Ok(tls) => tls,
            Err(()) => {
                self.slots.release(role);
                if counts_per_ip(role) {
                    self.per_ip.release(peer.ip());
                }
                return;
            }
        };
        let session = Session::accepted(role, local, peer);
        let handshake = tls.is_some();
        let (key, id) = match self.insert(stream, peer, session, tls) {
            Ok(slot) => slot,
            Err(e) => {
                warn!("{peer}: cannot register connection: {e}");
                self.slots.release(role);
                if counts_per_ip(role) {
                    self.per_ip.release(peer.ip());
                }
                return;
            }
        };
        self.housekeeping.count_conns(self.conns.len());
        if let Some(timeout) = self.config.limits.idle_timeout {
            self.timers.arm(self.now + timeout, key, id);
        }
        if handshake {
            // The handshake must be done within the frame timeout.
            let timeout = self.config.limits.frame_timeout;
            self.frame_timers.arm(self.now + timeout, key, id);
        }
        self.core.service.stats().connection_opened(role);
        log_comes(Level::Info, &peer);
    }

    /// Over `--max-conns`, `--metrics-max-conns` or `--max-conns-per-ip`: one
    /// refusal in the listener's protocol (JSON: `overloaded`),
    /// then a lingering close like the one after `frame_too_large`, in the
    /// slab as a connection that only writes that frame and discards input,
    /// so a client still sending its request reads the frame, not a reset.
    /// Beyond [`LINGERING_REFUSALS`] lingering at once, a best-effort turn-away.
    fn refuse(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        endpoint: Endpoint,
        why: Refusal,
    ) {
        self.core.service.stats().connection_rejected(endpoint.role);
        if let Some(held) = self.refused_log.allow(self.now) {
            warn!("refused {peer}: {why} ({held} more refused since last report)");
        }
        // A TLS client cannot read a plaintext refusal, and a handshake for
        // a connection over a limit is work an attacker would enjoy: it gets
        // a plain close instead.
        let response = match endpoint.tls {
            false => why.response(endpoint.role),
            true => Vec::new(),
        };
        if self.refusals >= LINGERING_REFUSALS {
            turn_away(&mut stream, &response, |s| s.shutdown(Shutdown::Write));
            return;
        }
        let session = Session::new(endpoint.role, 0);
        let key = match self.insert(stream, peer, session, None) {
            Ok((key, _)) => key,
            Err(e) => {
                debug!("{peer}: cannot register a refused connection: {e}");
                return;
            }
        };
        self.conns[key].refuse(&response);
        self.refusals += 1;
        self.drive(key);
    }

    /// Registers `stream` for both directions, once (no reregister per
    /// request), and puts its connection in the slab: its key and id.
    fn insert(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        mut session: Session,
        tls: Option<ServerConnection>,
    ) -> io::Result<(usize, u64)> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(key), interest)?;
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        session.on_kill(|| self.kills.hook(key, id));
        entry.insert(Connection::new(
            stream, peer, key, id, self.now, session, tls,
        ));
        Ok((key, id))
    }

    /// A TLS server connection for a client of a TLS endpoint (`None` for a
    /// plaintext one); `Err` if rustls cannot make one (logged).
    fn tls_for(
        &self,
        endpoint: Endpoint,
        peer: &SocketAddr,
    ) -> Result<Option<ServerConnection>, ()> {
        if !endpoint.tls {
            return Ok(None);
        }
        let Some(source) = &self.config.security.tls else {
            // Server::bind refuses a TLS endpoint without certificates.
            return Err(());
        };
        source.accept().map(Some).map_err(|e| {
            warn!("{peer}: cannot start TLS: {e}");
        })
    }

    fn close(&mut self, key: usize, why: CloseReason) {
        if !self.conns.contains(key) {
            return;
        }
        // Dropping the socket closes it, which also removes it from epoll: no
        // deregister syscall needed.
        let mut conn = self.conns.remove(key);
        if conn.counted_input > 0 {
            self.input.release(key);
            let held = self.input.bytes();
            self.core.service.stats().set_input_held(held);
        }
        conn.forget_output();
        self.output.recount(&mut conn);
        if conn.refused() {
            self.refusals -= 1;
            debug!("{} refused: closed", conn.peer);
            return;
        }
        let role = conn.role();
        self.slots.release(role);
        if counts_per_ip(role) {
            self.per_ip.release(conn.peer.ip());
        }
        self.core.service.stats().connection_closed(role);
        log_bye(why, Level::Info, &conn.peer);
    }

    fn on_signal(&mut self) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        let mut hangup = false;
        let mut terminate = Vec::new();
        for signal in signals.pending() {
            if signal == SIGHUP {
                debug!("signal SIGHUP");
                hangup = true;
            } else if let Some(t) = Terminate::of(signal) {
                terminate.push(t);
            }
        }
        if hangup {
            self.config.hooks.hangup();
        }
        // The hook (or the default) answers through the shutdown handle,
        // whose wake-up `on_wake` acts on.
        for t in terminate {
            self.config.hooks.terminate(t, &self.shutdown);
        }
    }

    /// Worker results, `CLIENT KILL`s, or a shutdown request from a
    /// [`ShutdownHandle`] (a forced one closes every connection now).
    fn on_wake(&mut self) {
        if self.shutdown.is_requested() && self.shutdown_deadline.is_none() {
            self.begin_shutdown();
        }
        if self.shutdown.is_forced() {
            self.shutdown_deadline = Some(self.now);
        }
        for (key, id) in self.kills.take() {
            if self.conns.get(key).is_some_and(|conn| conn.id == id) {
                self.close(key, CloseReason::Killed);
            }
        }
        let mut finished = 0;
        while let Some(done) = self.workers.as_ref().and_then(WorkerPool::try_done) {
            finished += 1;
            // The connection may have gone, or its key been reused: match the id.
            match self.conns.get_mut(done.key) {
                Some(conn) if conn.id == done.conn_id => {
                    conn.job_done(done.finished);
                    self.drive(done.key);
                }
                _ => debug!("dropping a result for a closed connection"),
            }
        }
        if finished > 0 {
            for (key, id) in std::mem::take(&mut self.stalled) {
                match self.conns.get_mut(key) {
                    Some(conn) if conn.id == id => {
                        conn.unstall();
                        self.drive(key);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Stop accepting, answer what has arrived, and let the loop drain.
    fn begin_shutdown(&mut self) {
        info!(
            "shutting down: {} connections, up to {:?} to deliver responses",
            self.conns.len(),
            self.config.shutdown_grace
        );
        self.config.hooks.shutdown();
        for mut listener in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        self.shutdown_deadline = Some(self.now + self.config.shutdown_grace);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.with_conn(key, Connection::start_draining);
        }
    }

    fn finished(&self) -> bool {
        match self.shutdown_deadline {
            Some(deadline) => self.conns.is_empty() || self.now >= deadline,
            None => false,
        }
    }

    fn close_all(&mut self) {
        if !self.conns.is_empty() {
            warn!(
                "shutdown grace over: closing {} connections",
                self.conns.len()
            );
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, CloseReason::Shutdown);
        }
    }

    /// Sleep until the nearest deadline.
    fn next_timeout(&self) -> Option<Duration> {
        let nearest = [
            Some(self.housekeeping.next_tick()),
            self.timers.next(),
            self.frame_timers.next(),
            self.accept_paused_until,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(nearest.saturating_duration_since(Instant::now()))
    }

    /// Resumes accepting after a back-off, and runs what came due.
    fn on_timers(&mut self) {
        let now = self.now;
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
        self.expire(now);
        self.tick(now);
    }
}
