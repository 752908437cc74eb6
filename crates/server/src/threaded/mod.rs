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
//! request path (the connection's [`Session`](reactor_rpc_core::Session)), and the same limits:
//! `max_conns` (refused with `overloaded`), the idle timeout (socket timeouts),
//! `max_frame` and `max_output` (in the session). Shutdown wakes blocked `accept`
//! calls by connecting to the listener, and blocked reads by shutting down the
//! read side of every live socket, so responses already produced still leave.
//!
//! This file binds and runs the server; the acceptor loop is in `acceptor.rs`,
//! a connection's blocking loop in `connection.rs`, the live connections in
//! `registry.rs`, and stopping in `shutdown.rs`.

mod acceptor;
mod connection;
mod registry;
mod shutdown;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::info;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{Config, Hooks, Limits, Model};
use crate::net::{Listeners, RateLimitedLog};
use crate::server::Core;
use crate::shutdown::ShutdownHandle;
use acceptor::AcceptorAlive;
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
    /// Every listener with its role and address, in `Role` index order.
    listeners: Vec<Listening>,
    model: Model,
    acceptors: usize,
    /// SIGINT and SIGTERM, registered at bind so none is missed before `run`.
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
            listeners.push(Listening {
                endpoint,
                socket: Arc::new(socket),
                addr,
            });
        }
        let acceptors = match config.model {
            Model::Pool => config.pool_size.max(1),
            _ => 1,
        };
        let shared = Arc::new(Shared {
            core,
            limits: config.limits,
            live: Mutex::new(Live::new(
                config.limits.max_conns_per_ip,
                config.limits.max_input_total,
            )),
            stop: Condvar::new(),
            drained: Condvar::new(),
            refused_log: Mutex::new(RateLimitedLog::new(Duration::from_secs(1))),
            accept_log: Mutex::new(RateLimitedLog::new(Duration::from_secs(1))),
            refusals: Arc::default(),
            hooks: config.hooks.clone(),
            tls: config.security.tls.clone(),
        });
        let signals = if config.signals {
            Some(Signals::new([SIGINT, SIGTERM, SIGHUP])?)
        } else {
            None
        };
        let waker = Arc::clone(&shared);
        let shutdown = ShutdownHandle::new(move || waker.request_stop());
        Ok(Threaded {
            listeners,
            model: config.model,
            acceptors,
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

    /// Starts the housekeeping thread and the acceptors.
    fn spawn_threads(&self, threads: &mut Vec<JoinHandle<()>>) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        threads.push(
            thread::Builder::new()
                .name("housekeeping".into())
                .spawn(move || shared.housekeeping())?,
        );
        for (index, listening) in self.listeners.iter().enumerate() {
            // The metrics port gets one thread that serves its scrapes itself;
            // JSON and RESP get the model's acceptors.
            let (acceptors, inline) = match listening.endpoint.role {
                Role::Metrics => (1, true),
                _ => (self.acceptors, self.model == Model::Pool),
            };
            for i in 0..acceptors {
                let shared = Arc::clone(&self.shared);
                let socket = Arc::clone(&listening.socket);
                let accepting = Accepting {
                    index,
                    endpoint: listening.endpoint,
                    local: listening.addr,
                    inline,
                };
                let alive = AcceptorAlive::new(shared);
                let spawned = thread::Builder::new()
                    .name(match (listening.endpoint, inline) {
                        (e, true) if e == Endpoint::plain(Role::Rpc) => format!("pool-{i}"),
                        (e, true) => format!("{e}-pool-{i}"),
                        (e, false) => format!("{e}-accept"),
                    })
                    .stack_size(STACK_SIZE)
                    .spawn(move || alive.0.accept_loop(&socket, accepting));
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
}

/// What an acceptor thread accepts for: its listener's place (the
/// shutdown's count of blocked acceptors is by listener), endpoint and port,
/// and whether it serves each connection itself (the pool, the metrics port)
/// or on a thread of its own.
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

    /// Sweeps expired cache keys every [`HOUSEKEEPING_INTERVAL`] until stopped.
    fn housekeeping(&self) {
        while !self.sleep_unless_stopped(HOUSEKEEPING_INTERVAL) {
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
                process(&service, &"test", &input, &mut out, opt).answered
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(answered, bodies.len());
    }
}
