//! The acceptor loop of the threaded models: accept, admit or refuse, and
//! back off instead of spinning when accepting fails. In `threaded` each
//! admitted connection gets a new thread; in `pool` the acceptor hands it
//! to the listener's fixed set of threads (`pool.rs`), which admit and
//! serve it. The metrics port's acceptor gives each scraper a new thread in
//! both models.

use std::io;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use log::{debug, error, warn};

use super::pool::CloseOnDrop;
use super::registry::Connection;
use super::{Accepting, Shared, STACK_SIZE};
use crate::net::{self, RateLimitedLog, ACCEPT_BACKOFF};
use reactor_rpc_core::session::{Endpoint, Session};
use rustls::ServerConnection;

impl Shared {
    /// Accepts until stopped; hands each connection to the listener's
    /// threads (`inline`: the pool's client ports) or serves it, speaking
    /// its endpoint's protocol, on a new thread (`threaded`, and the metrics
    /// port).
    pub(super) fn accept_loop(self: &Arc<Self>, listener: &TcpListener, at: Accepting) {
        let index = at.index;
        // The listener's threads leave once this acceptor has stopped.
        let _close = CloseOnDrop(&self.handoffs[index]);
        loop {
            self.lock().in_accept[index] += 1;
            let accepted = listener.accept();
            let stopping = {
                let mut live = self.lock();
                live.in_accept[index] -= 1;
                live.stopping
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
            if at.inline {
                self.hand_off(stream, peer, at);
            } else {
                self.serve_accepted(stream, peer, at);
            }
        }
    }

    /// Admits an accepted connection (or refuses it) and serves it, right
    /// here (`inline`: a pool thread) or on a new thread.
    pub(super) fn serve_accepted(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        at: Accepting,
    ) {
        let Some(conn) = self.admit(stream, peer, at.endpoint) else {
            return;
        };
        let tls = match self.tls_for(at.endpoint, &peer) {
            Ok(tls) => tls,
            Err(()) => return, // dropping the connection closes it
        };
        let session = Session::accepted(at.endpoint.role, at.local, peer);
        self.start_serving(conn, session, tls, at.inline);
    }

    /// Serves a connection right here (`inline`) or on a new thread.
    fn start_serving(
        &self,
        conn: Connection,
        session: Session,
        tls: Option<ServerConnection>,
        inline: bool,
    ) {
        if inline {
            let peer = conn.peer;
            // A bug in a method must not cost the pool a thread for good.
            if panic::catch_unwind(AssertUnwindSafe(|| conn.serve(session, tls))).is_err() {
                error!("{peer}: connection handler panicked");
            }
            return;
        }
        let spawned = thread::Builder::new()
            .name(format!("conn-{}", conn.id))
            .stack_size(STACK_SIZE)
            .spawn(move || conn.serve(session, tls));
        if let Err(e) = spawned {
            // The closure, and with it the connection, is dropped: closed.
            self.back_off("cannot start a connection thread", &e);
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
        let Some(source) = &self.tls else {
            return Err(()); // Server::bind refuses a TLS endpoint without certificates
        };
        source.accept().map(Some).map_err(|e| {
            warn!("{peer}: cannot start TLS: {e}");
        })
    }

    /// Registers a new connection, or refuses it in its protocol: protected
    /// mode, or beyond its listener's limit (`max_conns`,
    /// `metrics_max_conns`, `max_conns_per_ip`).
    fn admit(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        endpoint: Endpoint,
    ) -> Option<Connection> {
        if let Err(why) = self.protected.admit(&self.core.service, peer) {
            self.refuse(stream, peer, why, endpoint);
            return None;
        }
        match self.register(stream, peer, endpoint.role) {
            Ok(conn) => Some(conn),
            Err((stream, why)) => {
                self.refuse(stream, peer, why, endpoint);
                None
            }
        }
    }

    /// Answers one `overloaded` error and closes, without ever blocking the
    /// acceptor. A TLS client cannot read a plaintext refusal (and a
    /// handshake for a refused client is work an attacker would enjoy): it
    /// gets a plain close.
    pub(super) fn refuse(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        why: net::Refusal,
        endpoint: Endpoint,
    ) {
        self.core.service.stats().connection_rejected(endpoint.role);
        if let Some(held) = allow(&self.refused_log) {
            warn!("refused {peer}: {why} ({held} more refused since last report)");
        }
        // A lingering close on a short-lived thread of its own, so a client
        // still sending its request reads the frame rather than a reset; past
        // MAX_REFUSALS at once (or without a thread), a best-effort turn-away.
        let frame = match endpoint.tls {
            false => why.response(endpoint.role),
            true => Vec::new(),
        };
        let lingering = Arc::clone(&self.refusals);
        if lingering.fetch_add(1, Ordering::AcqRel) < MAX_REFUSALS {
            let spawned = thread::Builder::new()
                .name("refused".into())
                .stack_size(STACK_SIZE)
                .spawn(move || {
                    let _ = stream.set_write_timeout(Some(net::LINGER));
                    if stream.write_all(&frame).is_ok() {
                        super::connection::linger(&stream);
                    }
                    lingering.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_ok() {
                return;
            }
            self.refusals.fetch_sub(1, Ordering::AcqRel);
            return; // the stream went with the closure: closed
        }
        self.refusals.fetch_sub(1, Ordering::AcqRel);
        if stream.set_nonblocking(true).is_ok() {
            net::turn_away(&mut stream, &frame, |s| s.shutdown(Shutdown::Write));
        }
    }
}

/// Refused connections lingering on their own threads at once.
const MAX_REFUSALS: usize = 64;

/// Counts a running acceptor for the shutdown, even if it ends by a panic.
pub(super) struct AcceptorAlive(pub(super) Arc<Shared>);

impl AcceptorAlive {
    pub(super) fn new(shared: Arc<Shared>) -> AcceptorAlive {
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

fn allow(log: &Mutex<RateLimitedLog>) -> Option<u64> {
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allow(Instant::now())
}
