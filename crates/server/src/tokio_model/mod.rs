//! The tokio models: the same server on tokio, so that "why not just use
//! tokio?" gets an answer in numbers rather than in opinions.
//!
//! * `tokio`: a current_thread runtime. One thread does everything, like the
//!   reactor: the closest comparison of a hand-written loop with tokio's.
//! * `tokio-mt`: a multi_thread runtime with a worker thread per CPU (the
//!   `#[tokio::main]` default), tasks stolen between workers.
//!
//! Written as a tokio user would write it: an accept task per listener, a
//! task per connection ([`connection`]), `tokio::time::timeout_at` for the
//! idle and frame timeouts, a [`Semaphore`] for `max_conns` (and one for
//! `metrics_max_conns`), a
//! [`CancellationToken`] for shutdown and a [`TaskTracker`] to wait for the
//! connections, tokio's own signal handling, `spawn_blocking` for heavy
//! requests, an `interval` for housekeeping. Only the request path is shared
//! with the other models: each connection speaks the protocol of the listener
//! that accepted it (JSON RPC, RESP or metrics HTTP) through
//! [`Session::process`], and nothing here knows what a method means.
//!
//! The limits are the other models', from the same code in [`crate::net`]:
//! `--max-conns-per-ip` counts open connections per address in a
//! [`net::PerIp`] behind a mutex (taken once at accept and once at close); a
//! refusal (either limit) is a lingering close on a short task of its own, at
//! most [`net::LINGERING_REFUSALS`] at once, beyond which it is a best-effort
//! [`net::turn_away`]; the `comes`/`bye` lines go through the shared
//! per-second limiter. `--frame-timeout` and `--max-output-total` are kept by
//! each connection ([`connection`]).
//!
//! ```text
//!  accept task, one per listener (rpc, resp, metrics):
//!      accept ─► try_acquire a permit: max_conns (one pool for rpc and resp),
//!                or metrics_max_conns (the metrics port's own)
//!             ─► count the address (max_conns_per_ip; not for the metrics port)
//!             ─► spawn(connection task with Session::new(role, port))
//!             └─ over either limit: spawn(write `overloaded`, FIN, discard input
//!                until EOF or LINGER), at most 1 024 at once; beyond, a turn-away
//!  connection task: read ─► Session::process ─► one write per batch ─► read ...
//!                   each read waits until min(idle deadline, frame deadline)
//!                   half a request buffered ─► TCP_QUICKACK before reading on
//!                   Stop::Offload ─► spawn_blocking (≤ workers) ─► await, in order
//!                   Stop::Close(why) ─► flush, FIN, discard input up to LINGER, close
//!  signal task: SIGINT/SIGTERM/SIGQUIT ─► the terminate hook (by default
//!               ShutdownHandle::shutdown, a second one: close now)
//!               SIGHUP ─► the hangup hook (the binary reopens its log); never a stop
//!  housekeeping task: every 100 ms the cache sweep, the pending output published
//!                     for the metrics, and memory back after a crowd left
//!  shutdown: the shutdown hook runs; the accept tasks end, the listeners close; each
//!            connection answers what had arrived and closes; after `shutdown_grace` the
//!            runtime drops whatever is left
//! ```

mod connection;

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use log::{debug, info, warn, Level};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{cpus, Config, Hooks, Model, Terminate};
use crate::env::Core;
use crate::net::{
    self, counts_per_ip, CloseReason, InputTotal, PerIp, RateLimitedLog, Refusal, ACCEPT_BACKOFF,
};
use crate::shutdown::{ShutdownHandle, Urgency};
use connection::{Connection, Transport};
use reactor_rpc_core::service::HOUSEKEEPING_INTERVAL;
use reactor_rpc_core::session;
use reactor_rpc_core::session::{Endpoint, Role, Session};
use reactor_rpc_tls::TlsSource;

/// Heavy requests that may wait for a blocking thread, per worker: the
/// reactor's job queue bound (`reactor::workers::QUEUE_PER_WORKER`). Beyond
/// it a connection waits for room before queueing its heavy request.
const QUEUE_PER_WORKER: usize = 16;

/// After the grace period, how long the runtime may take to drop what is left
/// (a heavy request still running on a blocking thread, say).
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A bound `tokio` or `tokio-mt` server.
pub struct TokioServer {
    rt: Runtime,
    /// Every listener (JSON RPC first) with its endpoint.
    listeners: Vec<Listening>,
    grace: Duration,
    hooks: Hooks,
    shared: Arc<Shared>,
    shutdown: ShutdownHandle,
    /// Cancelled by the [`ShutdownHandle`]: the graceful shutdown starts.
    stopping: CancellationToken,
    /// Cancelled by [`ShutdownHandle::force`]: every connection closes now.
    now: CancellationToken,
    /// Registered at bind so that none is missed before `run`.
    signals: Option<Signals>,
}

/// A listening socket and the endpoint it is.
struct Listening {
    endpoint: Endpoint,
    socket: TcpListener,
    addr: SocketAddr,
}

/// The signals the server handles (only with `config.signals`).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    quit: Signal,
    hangup: Signal,
}

/// What every connection task shares.
struct Shared {
    core: Core,
    opts: session::Options,
    idle_timeout: Option<Duration>,
    /// A frame begun must be complete within this (`--frame-timeout`).
    frame_timeout: Duration,
    max_conns: usize,
    /// One permit per client connection (RPC, RESP) served: `max_conns` of them.
    slots: Arc<Semaphore>,
    metrics_max_conns: usize,
    /// One permit per metrics connection served: `metrics_max_conns` of them.
    metrics_slots: Arc<Semaphore>,
    /// Open client connections per address (`--max-conns-per-ip`).
    per_ip: Mutex<PerIp>,
    /// Refused connections lingering on tasks of their own now.
    refusals: AtomicUsize,
    /// Output of all connections together in batches a write could not hand
    /// to the kernel whole, and its bound (`--max-output-total`).
    output: OutputTotal,
    /// Input not yet answered, by connection, and what closes each
    /// (`--max-input-total`).
    input: Mutex<InputTotal<u64, CancellationToken>>,
    /// The next connection's id (for `input`).
    next_id: AtomicU64,
    /// Heavy requests waiting for a blocking thread (`workers × 16` permits).
    job_queue: Semaphore,
    /// Heavy requests running on blocking threads (`workers` permits), so that
    /// heavy requests never take every blocking thread tokio has.
    job_running: Semaphore,
    /// The certificates of the TLS endpoints.
    tls: Option<Arc<TlsSource>>,
    /// Refuses non-loopback peers while no user or password is configured.
    protected: net::ProtectedMode,
}

impl Shared {
    /// Connections being served.
    fn live(&self) -> usize {
        self.max_conns - self.slots.available_permits() + self.metrics_max_conns
            - self.metrics_slots.available_permits()
    }

    /// Applies protected mode, takes a slot of `role`'s limit (`max_conns`,
    /// or `metrics_max_conns` for the metrics port) and counts a client's
    /// address, or says which rule the connection from `peer` runs into.
    fn admit(&self, role: Role, peer: SocketAddr) -> Result<OwnedSemaphorePermit, Refusal> {
        self.protected.admit(&self.core.service, peer)?;
        let permit = match role {
            Role::Metrics => self
                .metrics_slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| Refusal::MetricsMaxConns(self.metrics_max_conns))?,
            Role::Rpc | Role::Resp => self
                .slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| Refusal::MaxConns(self.max_conns))?,
        };
        if counts_per_ip(role) {
            self.per_ip_count().admit(peer.ip())?;
        }
        Ok(permit)
    }

    fn per_ip_count(&self) -> std::sync::MutexGuard<'_, PerIp> {
        self.per_ip.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn input_total(&self) -> std::sync::MutexGuard<'_, InputTotal<u64, CancellationToken>> {
        self.input.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that connection `id` (from `peer`, closed by cancelling
    /// `evict`) holds `bytes` of input not yet answered. Over
    /// `--max-input-total`, the connections holding the most are cancelled
    /// (their tasks end at their next await) until the total is within it.
    fn hold_input(&self, id: u64, peer: SocketAddr, bytes: usize, evict: &CancellationToken) {
        let mut total = self.input_total();
        total.hold(id, bytes, peer, || evict.clone());
        let now = Instant::now();
        let mut evicted = Vec::new();
        while let Some(e) = total.evict(now) {
            evicted.push(e.handle);
        }
        // The figures first: whoever sees a connection closed sees them.
        let stats = self.core.service.stats();
        stats.set_input_held(total.bytes());
        for token in evicted {
            stats.client_evicted();
            token.cancel();
        }
    }
}

/// Pending output of all connections together, for `--max-output-total`.
///
/// A connection writes each batch before it decodes more, so only a batch
/// whose first write did not take it whole is pending; all of it (it stays
/// allocated until written) is counted from then until it is written or the
/// connection ends ([`Pending`]). Before decoding a batch a connection reads
/// the total: above the bound, its high-water mark is one byte (one
/// response), as in the reactor ([`net::output_high_water`]). A batch written
/// whole at once (nearly every batch of a client that reads its responses)
/// touches no shared counter. The figures of the bound under attack are in
/// BENCHMARKS.md ("Memory: bytes per key, and RSS under each attack").
struct OutputTotal {
    bytes: AtomicUsize,
    bound: usize,
}

impl OutputTotal {
    /// The per-connection high-water mark for a connection's next batch.
    fn high_water(&self, per_conn: usize) -> usize {
        net::output_high_water(self.bytes.load(Ordering::Relaxed), per_conn, self.bound)
    }

    /// Counts `bytes` of pending output until the guard is dropped.
    fn hold(&self, bytes: usize) -> Pending<'_> {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Pending { total: self, bytes }
    }
}

/// Output counted in the [`OutputTotal`]; dropping it (written, or the
/// connection gone) takes it back out.
struct Pending<'a> {
    total: &'a OutputTotal,
    bytes: usize,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.total.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl TokioServer {
    /// Builds the runtime and binds the listener (`config.model` picks the runtime).
    pub fn bind(config: Config, core: Core, sockets: net::Listeners) -> io::Result<TokioServer> {
        let rt = match config.model {
            Model::TokioMt => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cpus())
                .enable_all()
                .build()?,
            _ => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        };
        // Registering sockets and signals needs the runtime's context.
        let context = rt.enter();
        let mut listeners = Vec::new();
        for (endpoint, socket) in sockets.into_vec() {
            socket.set_nonblocking(true)?;
            let socket = TcpListener::from_std(socket)?;
            let addr = socket.local_addr()?;
            listeners.push(Listening {
                endpoint,
                socket,
                addr,
            });
        }
        let signals = if config.signals {
            Some(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                quit: signal(SignalKind::quit())?,
                hangup: signal(SignalKind::hangup())?,
            })
        } else {
            None
        };
        let stopping = CancellationToken::new();
        let now = CancellationToken::new();
        let shutdown = {
            let (stopping, now) = (stopping.clone(), now.clone());
            ShutdownHandle::new(move |urgency| {
                stopping.cancel();
                if urgency == Urgency::Now {
                    now.cancel();
                }
            })
        };
        let workers = config.workers.max(1);
        let max_conns = config.limits.max_conns.min(Semaphore::MAX_PERMITS);
        let metrics_max_conns = config.limits.metrics_max_conns.min(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            core,
            opts: config.limits.session_options(config.offload),
            idle_timeout: config.limits.idle_timeout,
            frame_timeout: config.limits.frame_timeout,
            max_conns,
            slots: Arc::new(Semaphore::new(max_conns)),
            metrics_max_conns,
            metrics_slots: Arc::new(Semaphore::new(metrics_max_conns)),
            per_ip: Mutex::new(PerIp::new(config.limits.max_conns_per_ip)),
            refusals: AtomicUsize::new(0),
            output: OutputTotal {
                bytes: AtomicUsize::new(0),
                bound: config.limits.max_output_total,
            },
            input: Mutex::new(InputTotal::new(config.limits.max_input_total)),
            next_id: AtomicU64::new(0),
            job_queue: Semaphore::new(workers * QUEUE_PER_WORKER),
            job_running: Semaphore::new(workers),
            tls: config.security.tls.clone(),
            protected: net::ProtectedMode(config.security.protected_mode),
        });
        drop(context);
        Ok(TokioServer {
            rt,
            listeners,
            grace: config.shutdown_grace,
            hooks: config.hooks,
            shared,
            shutdown,
            stopping,
            now,
            signals,
        })
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shut down; returns once every connection is closed (or
    /// the grace period is over).
    pub fn run(self) -> io::Result<()> {
        let TokioServer {
            rt,
            listeners,
            grace,
            hooks,
            shared,
            shutdown,
            stopping,
            now,
            signals,
        } = self;
        rt.block_on(async move {
            let signal_task =
                signals.map(|s| tokio::spawn(watch_signals(s, shutdown.clone(), hooks.clone())));
            let housekeeping = tokio::spawn(housekeeping(shared.clone()));
            let tracker = TaskTracker::new();
            let accept_tasks: Vec<_> = listeners
                .into_iter()
                .map(|l| {
                    tokio::spawn(accept_loop(
                        l,
                        shared.clone(),
                        tracker.clone(),
                        stopping.clone(),
                    ))
                })
                .collect();
            stopping.cancelled().await;
            info!(
                "shutting down: {} connections, up to {grace:?} to deliver responses",
                tracker.len()
            );
            hooks.shutdown();
            for task in accept_tasks {
                if let Err(e) = task.await {
                    warn!("an accept task failed: {e}");
                }
            }
            // Every listener is closed: nobody new gets in.
            tracker.close();
            tokio::select! {
                () = tracker.wait() => {}
                () = tokio::time::sleep(grace) => {}
                () = now.cancelled() => {}
            }
            if !tracker.is_empty() {
                warn!("shutdown grace over: closing {} connections", tracker.len());
            }
            housekeeping.abort();
            if let Some(task) = signal_task {
                task.abort();
            }
        });
        // Drops every task left (their sockets close, their `bye` is logged) and
        // waits a little for heavy requests still on blocking threads.
        rt.shutdown_timeout(FORCED_CLOSE_WAIT);
        info!("stopped");
        Ok(())
    }
}

/// Accepts on one listener until the shutdown starts, each connection to
/// speak the listener's protocol; the listener closes when this returns.
async fn accept_loop(
    listening: Listening,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    stopping: CancellationToken,
) {
    let Listening {
        endpoint,
        socket,
        addr,
    } = listening;
    let role = endpoint.role;
    let mut refused_log = RateLimitedLog::new(Duration::from_secs(1));
    let mut accept_log = RateLimitedLog::new(Duration::from_secs(1));
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopping.cancelled() => return,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match shared.admit(role, peer) {
                Ok(permit) => {
                    let session = Session::accepted(role, addr, peer);
                    let tls = match (endpoint.tls, &shared.tls) {
                        (false, _) => None,
                        (true, Some(source)) => Some(source.clone()),
                        // Server::bind refuses a TLS endpoint without certificates.
                        (true, None) => continue,
                    };
                    let accepted = Accepted {
                        stream,
                        peer,
                        session,
                        tls,
                        permit,
                    };
                    admit(accepted, &shared, &tracker, &stopping);
                }
                Err(why) => refuse(stream, peer, endpoint, why, &shared, &mut refused_log),
            },
            Err(e) if net::transient_accept_error(&e) => {}
            Err(e) => {
                // Out of descriptors (or worse): the listener stays readable, so
                // pause instead of spinning on it; connected clients go on.
                if let Some(held) = accept_log.allow(Instant::now()) {
                    let what = if net::out_of_descriptors(&e) {
                        "out of descriptors"
                    } else {
                        "error"
                    };
                    warn!("accept failed ({what}: {e}); pausing accepts for {ACCEPT_BACKOFF:?} ({held} more since last report)");
                }
                tokio::select! {
                    () = stopping.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// A connection just accepted and admitted: its socket, the session its
/// listener's protocol starts, the certificates if it is a TLS port, and its
/// `max_conns` slot (its address is counted already).
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    session: Session,
    tls: Option<Arc<TlsSource>>,
    permit: OwnedSemaphorePermit,
}

/// Starts the task that serves one connection, speaking its session's
/// protocol; on a TLS port the task does the handshake first, within
/// `--frame-timeout`, so the accept loop never waits for it.
fn admit(
    accepted: Accepted,
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    stopping: &CancellationToken,
) {
    let Accepted {
        stream,
        peer,
        session,
        tls,
        permit,
    } = accepted;
    if let Err(e) = stream.set_nodelay(true) {
        debug!("{peer}: cannot set TCP_NODELAY: {e}");
    }
    let role = session.role();
    if role == Role::Metrics {
        net::cap_send_buffer(&stream);
    }
    shared.core.service.stats().connection_opened(role);
    net::log_comes(Level::Info, &peer);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let served = Served {
        shared: shared.clone(),
        id,
        peer,
        role,
        why: CloseReason::Shutdown,
        _permit: permit,
    };
    let (shared, stopping) = (shared.clone(), stopping.clone());
    tracker.spawn(async move {
        let mut served = served; // the whole guard, not only the field written below
        let stream = match tls {
            None => Transport::Plain(stream),
            Some(source) => match connection::handshake(stream, &source, &shared).await {
                Ok(tls) => Transport::Tls(Box::new(tls)),
                Err(why) => {
                    served.why = why;
                    return;
                }
            },
        };
        // CLIENT KILL from another connection: the serving future is
        // dropped wherever it waits (a read, a write, a job), and the socket
        // with it.
        let killed = CancellationToken::new();
        let mut session = session;
        session.on_kill(|| {
            let killed = killed.clone();
            Box::new(move || killed.cancel())
        });
        // Over `--max-input-total`, holding the most input: the same.
        let evicted = CancellationToken::new();
        let mut conn = Connection::new(stream, peer, session, shared, stopping);
        conn.input_total_id(id, evicted.clone());
        served.why = tokio::select! {
            why = conn.serve() => why,
            () = killed.cancelled() => CloseReason::Killed,
            () = evicted.cancelled() => CloseReason::InputTotal,
        };
        drop(conn); // the socket closes before the `bye` line
        drop(served);
    });
}

/// A connection being served. Dropping it, when its task ends or when the
/// runtime drops the task at the end of a shutdown, frees its slot and its
/// count for its address, counts it closed and logs its `bye` line.
struct Served {
    shared: Arc<Shared>,
    /// Its name in `--max-input-total`.
    id: u64,
    peer: SocketAddr,
    /// The listener it came from.
    role: Role,
    /// Why it ended; a task dropped unfinished was closed by the shutdown.
    why: CloseReason,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Served {
    fn drop(&mut self) {
        if counts_per_ip(self.role) {
            self.shared.per_ip_count().release(self.peer.ip());
        }
        let mut input = self.shared.input_total();
        input.release(self.id);
        self.shared
            .core
            .service
            .stats()
            .set_input_held(input.bytes());
        drop(input);
        self.shared
            .core
            .service
            .stats()
            .connection_closed(self.role);
        net::log_bye(self.why, Level::Info, &self.peer);
    }
}

/// Over `--max-conns`, `--metrics-max-conns` or `--max-conns-per-ip`: one
/// refusal in `role`'s protocol (JSON: `overloaded`), then a lingering close
/// on a task of its own, so that a client still
/// sending its request reads the response rather than a reset, and the accept
/// loop never waits for it. Beyond [`net::LINGERING_REFUSALS`] lingering at
/// once, a best-effort [`net::turn_away`] right here (it never blocks).
fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: Endpoint,
    why: Refusal,
    shared: &Arc<Shared>,
    log: &mut RateLimitedLog,
) {
    // A TLS client cannot read a plaintext refusal (and a handshake for a
    // refused client is work an attacker would enjoy): it gets a plain close.
    let frame = match endpoint.tls {
        false => why.response(endpoint.role),
        true => Vec::new(),
    };
    shared
        .core
        .service
        .stats()
        .connection_rejected(endpoint.role);
    if let Some(held) = log.allow(Instant::now()) {
        warn!("refused {peer}: {why} ({held} more refused since last report)");
    }
    match Lingering::start(shared) {
        Some(lingering) => {
            tokio::spawn(async move {
                connection::refuse(stream, &frame, &peer).await;
                drop(lingering);
                debug!("{peer} refused: closed");
            });
        }
        // Back to a plain non-blocking socket: `turn_away` never waits.
        None => {
            if let Ok(mut stream) = stream.into_std() {
                net::turn_away(&mut stream, &frame, |s| s.shutdown(Shutdown::Write));
            }
        }
    }
}

/// One of the [`net::LINGERING_REFUSALS`] refused connections lingering at
/// once; dropping it (the task ended, or was dropped at shutdown) frees it.
struct Lingering(Arc<Shared>);

impl Lingering {
    fn start(shared: &Arc<Shared>) -> Option<Lingering> {
        if shared.refusals.fetch_add(1, Ordering::AcqRel) < net::LINGERING_REFUSALS {
            Some(Lingering(shared.clone()))
        } else {
            shared.refusals.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        self.0.refusals.fetch_sub(1, Ordering::AcqRel);
    }
}

/// SIGINT, SIGTERM and SIGQUIT go to the terminate hook (by default the
/// first starts a graceful shutdown, a second one closes every connection
/// at once). SIGHUP runs the hangup hook and stops nothing.
async fn watch_signals(mut signals: Signals, shutdown: ShutdownHandle, hooks: Hooks) {
    loop {
        let signal = tokio::select! {
            _ = signals.hangup.recv() => {
                debug!("signal SIGHUP");
                hooks.hangup();
                continue;
            }
            _ = signals.interrupt.recv() => Terminate::Interrupt,
            _ = signals.terminate.recv() => Terminate::Terminate,
            _ = signals.quit.recv() => Terminate::Quit,
        };
        hooks.terminate(signal, &shutdown);
    }
}

/// Every [`HOUSEKEEPING_INTERVAL`]: the cache's expiry sweep, the pending
/// output (the `--max-output-total` running total) published for the
/// metrics, and free heap memory back to the OS once a crowd has left (live
/// connections down to half of the peak, and at least 1024 fewer), as the
/// reactor does.
async fn housekeeping(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut peak = 0;
    loop {
        tick.tick().await;
        shared.core.service.housekeeping(Instant::now());
        let pending = shared.output.bytes.load(Ordering::Relaxed) as u64;
        shared.core.service.stats().set_pending_output(pending);
        net::flush_conn_lines();
        let live = shared.live();
        peak = peak.max(live);
        if peak >= live + 1024 && live * 2 <= peak {
            net::return_free_memory();
            debug!("connections down from {peak} to {live}: memory returned to the OS");
            peak = live;
        }
    }
}
