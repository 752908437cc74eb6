//! The classic threaded servers, kept beside the reactor for comparison.
//!
//! * `threaded`: one acceptor thread; every accepted connection gets its own
//!   thread, which blocks in `read` until the peer speaks (the seed's model).
//! * `pool`: `pool_size` threads that each serve one connection at a time,
//!   until it closes, taken from a queue one acceptor fills (`pool.rs`).
//!   Connection N+1 waits for one of the first N to leave, for at most
//!   `pool_wait` (250 ms), and is then refused with `overloaded`: the pool
//!   serves N at once, the limitation the comparison is about, and the others
//!   hear so instead of waiting unanswered until the idle timeout.
//!
//! Both run the same blocking loop ([`connection::serve`]) over the shared
//! request path (the connection's [`Session`](reactor_rpc_core::Session)), and the same limits:
//! `max_conns` (refused with `overloaded`), the idle timeout (socket timeouts),
//! `max_frame` and `max_output` (in the session). The metrics port, in both,
//! has one acceptor that gives each scraper a thread of its own, up to
//! `metrics_max_conns` (refused with a 503), so that scrapers are served
//! concurrently and never take a pool thread. Shutdown wakes blocked `accept`
//! calls by connecting to the listener, and blocked reads by shutting down the
//! read side of every live socket, so responses already produced still leave.
//!
//! This file binds and runs the server; the acceptor loop is in `acceptor.rs`,
//! the pool's queue in `pool.rs`, a connection's blocking loop in
//! `connection.rs`, the live connections in `registry.rs`, and stopping in
//! `shutdown.rs`.

mod acceptor;
mod connection;
mod pool;
mod registry;
mod shutdown;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::info;
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;

use crate::config::{Config, Hooks, Limits, Model, Terminate};
use crate::env::Core;
use crate::net::{Listeners, RateLimitedLog};
use crate::shutdown::ShutdownHandle;
use acceptor::AcceptorAlive;
use pool::Handoff;
use reactor_rpc_core::service::HOUSEKEEPING_INTERVAL;
use reactor_rpc_core::session::{Endpoint, Role};
use registry::Live;
use shutdown::spawn_signal_thread;

/// Stack of every thread that serves connections. Measured on the deepest
/// request path (a 127-level nested `ping` and cached value, `fib 100000`,
/// `stats`, trace logging on): under 48 KiB in a debug build, within glibc's
/// 16 KiB minimum in release. 128 KiB keeps more than 2x headroom in debug
/// builds (`stack_headroom` below runs that path on half of it) and reserves
/// 16x less address space per idle client than std's 2 MiB default; only the
/// pages touched count toward RSS either way.
pub const STACK_SIZE: usize = 128 * 1024;

/// A `threaded` or `pool` server, bound and ready to run.
pub struct Threaded {
    /// Every listener with its endpoint and address, in `Endpoint::ALL` order.
    listeners: Vec<Listening>,
    /// SIGINT, SIGTERM, SIGQUIT and SIGHUP, registered at bind so none is
    /// missed before `run`.
    signals: Option<Signals>,
    grace: Duration,
    shared: Arc<Shared>,
    shutdown: ShutdownHandle,
}

impl Threaded {
    /// Takes the bound listeners; `config.model` picks `threaded` or `pool`.
    pub fn bind(config: Config, core: Core, sockets: Listeners) -> io::Result<Threaded> {
        let mut listeners = Vec::new();
        for (endpoint, socket) in sockets.into_vec() {
            let addr = socket.local_addr()?;
            // The metrics port gets a thread per scraper, up to
            // --metrics-max-conns, in both models: an idle keep-alive scraper
            // holds only its own thread, and the pool's threads stay the
            // client ports'. JSON and RESP get the pool's threads, or in
            // `threaded` a thread per connection.
            let pool = match (endpoint.role, config.model) {
                (Role::Metrics, _) => None,
                (_, Model::Pool) => Some(config.pool_size.max(1)),
                _ => None,
            };
            listeners.push(Listening {
                endpoint,
                socket: Arc::new(socket),
                addr,
                pool,
            });
        }
        let handoffs = listeners
            .iter()
            .map(|l| Handoff::new(l.endpoint, l.pool.unwrap_or(0)))
            .collect();
        let shared = Arc::new(Shared {
            core,
            limits: config.limits,
            live: Mutex::new(Live::new(&config.limits)),
            stop: Condvar::new(),
            drained: Condvar::new(),
            refused_log: Mutex::new(RateLimitedLog::new(Duration::from_secs(1))),
            accept_log: Mutex::new(RateLimitedLog::new(Duration::from_secs(1))),
            refusals: Arc::default(),
            hooks: config.hooks.clone(),
            tls: config.security.tls.clone(),
            protected: crate::net::ProtectedMode(config.security.protected_mode),
            handoffs,
            pool_wait: config.pool_wait,
        });
        let signals = if config.signals {
            let terminate = Terminate::SIGNALS.map(|(signal, _)| signal);
            Some(Signals::new(terminate.into_iter().chain([SIGHUP]))?)
        } else {
            None
        };
        let waker = Arc::clone(&shared);
        let shutdown = ShutdownHandle::new(move |urgency| waker.wake(urgency));
        Ok(Threaded {
            listeners,
            signals,
            grace: config.shutdown_grace,
            shared,
            shutdown,
        })
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

    /// Starts the housekeeping thread, an acceptor per listener, and the
    /// threads of the listeners served by a fixed set of them.
    fn spawn_threads(&self, threads: &mut Vec<JoinHandle<()>>) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        threads.push(
            thread::Builder::new()
                .name("housekeeping".into())
                .spawn(move || shared.housekeeping())?,
        );
        for (index, listening) in self.listeners.iter().enumerate() {
            let endpoint = listening.endpoint;
            let accepting = Accepting {
                index,
                endpoint,
                local: listening.addr,
                inline: listening.pool.is_some(),
            };
            let socket = Arc::clone(&listening.socket);
            let alive = AcceptorAlive::new(Arc::clone(&self.shared));
            let spawned = thread::Builder::new()
                .name(format!("{endpoint}-accept"))
                .stack_size(STACK_SIZE)
                .spawn(move || alive.0.accept_loop(&socket, accepting));
            threads.push(spawned?);
            // Counted as acceptors: the shutdown waits for them too.
            for i in 0..listening.pool.unwrap_or(0) {
                let alive = AcceptorAlive::new(Arc::clone(&self.shared));
                let spawned = thread::Builder::new()
                    .name(match endpoint {
                        e if e == Endpoint::plain(Role::Rpc) => format!("pool-{i}"),
                        e => format!("{e}-pool-{i}"),
                    })
                    .stack_size(STACK_SIZE)
                    .spawn(move || alive.0.serve_handed_off(accepting));
                threads.push(spawned?);
            }
        }
        Ok(())
    }
}

/// A listening socket, shared by its acceptor threads.
struct Listening {
    endpoint: Endpoint,
    socket: Arc<TcpListener>,
    addr: SocketAddr,
    /// Served by this many threads taking its connections from a queue (the
    /// pool's client ports), not by a thread per connection.
    pool: Option<usize>,
}

/// State every server thread shares.
struct Shared {
    core: Core,
    limits: Limits,
    /// What the binary wants done on SIGHUP and when the shutdown begins.
    hooks: Hooks,
    live: Mutex<Live>,
    /// Notified when a stop is requested.
    stop: Condvar,
    /// Notified, while stopping, when a connection or acceptor finishes.
    drained: Condvar,
    refused_log: Mutex<RateLimitedLog>,
    accept_log: Mutex<RateLimitedLog>,
    /// Refused connections lingering on their own threads now.
    refusals: Arc<std::sync::atomic::AtomicUsize>,
    /// The certificates of the TLS endpoints.
    tls: Option<Arc<reactor_rpc_tls::TlsSource>>,
    /// Refuses non-loopback peers while no user or password is configured.
    protected: crate::net::ProtectedMode,
    /// Each listener's queue of connections waiting for a thread, in the
    /// listeners' order (used by those a fixed set of threads serves).
    handoffs: Vec<Handoff>,
    /// How long a connection may wait in a hand-off before it is refused.
    pool_wait: Duration,
}

/// What an acceptor thread accepts for: its listener's place (the
/// shutdown's count of blocked acceptors is by listener), endpoint and port,
/// and whether its connections are served by a fixed set of threads (the
/// pool's client ports: handed off) or each on a thread of its own
/// (`threaded`, and the metrics port in both models).
#[derive(Debug, Clone, Copy)]
struct Accepting {
    index: usize,
    endpoint: Endpoint,
    local: SocketAddr,
    inline: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every [`HOUSEKEEPING_INTERVAL`] until stopped: refuses the
    /// connections that waited too long for a pool thread, and sweeps
    /// expired cache keys.
    fn housekeeping(&self) {
        while !self.sleep_unless_stopped(HOUSEKEEPING_INTERVAL) {
            self.refuse_late(Instant::now());
            self.core.service.housekeeping(Instant::now());
            crate::net::flush_conn_lines();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_rpc_core::session::Options;

    /// The deepest requests fit in half of [`STACK_SIZE`], in the debug build too.
    #[test]
    fn stack_headroom() {
        use reactor_rpc_core::service::Service;
        use reactor_rpc_core::session::json::process;
        use reactor_rpc_protocol::frame::encode;
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
                let opt = Options::new(u32::MAX);
                let mut out = Vec::new();
                process(
                    &service,
                    &mut Default::default(),
                    &"test",
                    &input,
                    &mut out,
                    opt,
                )
                .answered
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(answered, bodies.len());
    }
}
