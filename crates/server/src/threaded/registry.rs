//! The live connections of the threaded models, so that a shutdown can reach
//! every blocked thread: each connection's descriptor is registered when it
//! is admitted and unregistered (under the same lock) before its socket
//! closes, which is what makes shutting a registered descriptor down from
//! another thread sound. The registry also counts acceptors for the shutdown
//! and decides when closed connections have freed enough memory to hand back.
//! The input each connection holds (`--max-input-total`) is counted under the
//! same lock, so the connection closed for it is shut down while registered.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use reactor_rpc_core::service::redis::KillHook;
use reactor_rpc_core::Endpoint;
use std::sync::Arc;

use log::Level;

use super::Shared;
use crate::net::{counts_per_ip, CloseReason, InputTotal, Refusal, Role, Slots};

/// Memory is handed back to the OS only after at least this many connections
/// closed (and the live ones halved), so a quiet server never pays for it.
const TRIM_AFTER_CLOSES: usize = 100;

/// What the server threads share under one lock: live connections, acceptors,
/// and whether a stop was requested.
pub(super) struct Live {
    pub(super) stopping: bool,
    /// The descriptor of every live connection, to shut it down from another
    /// thread. Not a `try_clone`: that would cost each connection a second
    /// descriptor and halve how many fit under `ulimit -n`. An entry is removed
    /// (under the lock) before its socket closes, see [`Connection`]'s `Drop`.
    pub(super) conns: HashMap<u64, Registered>,
    next_id: u64,
    /// Acceptor threads still running.
    pub(super) acceptors: usize,
    /// Acceptors inside `accept`, by listener (in the server's listener
    /// order): the shutdown wakes those that block.
    pub(super) in_accept: [usize; Endpoint::ALL.len()],
    /// Most connections at once since memory was last handed back.
    peak_since_trim: usize,
    /// Connections served per listener (`--max-conns`, `--metrics-max-conns`).
    pub(super) slots: Slots,
    /// Open client connections per address (`--max-conns-per-ip`).
    pub(super) per_ip: crate::net::PerIp,
    /// Input not yet answered, by connection (`--max-input-total`).
    input: InputTotal<u64, ()>,
}

/// A live connection, as the registry knows it.
pub(super) struct Registered {
    fd: RawFd,
    /// Closed from elsewhere: by another client's `CLIENT KILL`, or for
    /// `--max-input-total` (its `bye` says so).
    closed_by: Option<CloseReason>,
}

impl Live {
    /// No connection yet; the limits are `limits`'.
    pub(super) fn new(limits: &crate::config::Limits) -> Live {
        Live {
            stopping: false,
            conns: HashMap::new(),
            next_id: 0,
            acceptors: 0,
            in_accept: [0; Endpoint::ALL.len()],
            peak_since_trim: 0,
            slots: Slots::new(limits.max_conns, limits.metrics_max_conns),
            per_ip: crate::net::PerIp::new(limits.max_conns_per_ip),
            input: InputTotal::new(limits.max_input_total),
        }
    }

    /// Shuts down one direction of a registered connection's socket; the
    /// caller holds the lock, so the socket is still open.
    fn shutdown(&self, fd: RawFd, how: Shutdown) {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: `fd` is registered and `&self` borrows the locked state, so
        // the `TcpStream` owning `fd` has not been dropped (`Connection::drop`
        // unregisters it under the lock first). shutdown(2) neither closes nor
        // frees the descriptor; its error (the peer is gone) is of no interest.
        unsafe { libc::shutdown(fd, how) };
    }

    /// Makes the close of a registered connection's socket a reset (`SO_LINGER`
    /// 0): after a shutdown from here, a client still sending would otherwise
    /// find the closed socket's window shut and block until its own timeout,
    /// where the other models' close resets it at once.
    fn reset_on_close(&self, fd: RawFd) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: as in `shutdown`, `fd` is registered and still open; the
        // option is a correctly sized `linger`. An error (the peer is gone)
        // leaves a plain close, which is also fine.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
    }

    /// Removes a closed connection; returns whether enough memory was freed
    /// since the last trim to be worth handing back.
    fn unregister(&mut self, id: u64) -> bool {
        self.conns.remove(&id);
        self.input.release(id);
        let live = self.conns.len();
        let trim =
            live <= self.peak_since_trim / 2 && self.peak_since_trim - live >= TRIM_AFTER_CLOSES;
        if trim {
            self.peak_since_trim = live;
        }
        trim
    }
}

impl Shared {
    /// Registers a new connection to `role`'s listener, or gives the stream
    /// back with the limit it ran into (`max_conns`, `metrics_max_conns`,
    /// `max_conns_per_ip`).
    pub(super) fn register(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        role: Role,
    ) -> Result<Connection, (TcpStream, Refusal)> {
        let (id, late) = {
            let mut live = self.lock();
            if let Err(refusal) = live.slots.admit(role) {
                return Err((stream, refusal));
            }
            if counts_per_ip(role) {
                if let Err(refusal) = live.per_ip.admit(peer.ip()) {
                    live.slots.release(role);
                    return Err((stream, refusal));
                }
            }
            let fd = stream.as_raw_fd();
            live.next_id += 1;
            let id = live.next_id;
            live.conns.insert(
                id,
                Registered {
                    fd,
                    closed_by: None,
                },
            );
            live.peak_since_trim = live.peak_since_trim.max(live.conns.len());
            if live.stopping {
                live.shutdown(fd, Shutdown::Read);
            }
            (id, live.stopping)
        };
        self.core.service.stats().connection_opened(role);
        // From here on, dropping `conn` unregisters `fd` before closing it.
        let conn = Connection {
            shared: Arc::clone(self),
            id,
            stream,
            peer,
            role,
            why: CloseReason::Bye,
            log_level: if late { Level::Debug } else { Level::Info },
        };
        // Taken from the backlog during a shutdown: a client or a wake-up call.
        crate::net::log_comes(conn.log_level, &peer);
        Ok(conn)
    }

    /// Shuts down one direction of every live connection's socket.
    pub(super) fn shutdown_conns(&self, how: Shutdown) {
        let live = self.lock();
        for r in live.conns.values() {
            live.shutdown(r.fd, how);
        }
    }

    /// What closes connection `id` on `CLIENT KILL`: both directions of its
    /// socket shut down (its thread, blocked or not, then sees the end), if
    /// it is still registered. Holds the server weakly: the hook lives in
    /// the service's client registry, which the server owns.
    pub(super) fn kill_hook(self: &Arc<Self>, id: u64) -> KillHook {
        let shared = Arc::downgrade(self);
        Box::new(move || {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut live = shared.lock();
            let Some(r) = live.conns.get_mut(&id) else {
                return;
            };
            r.closed_by = Some(CloseReason::Killed);
            let fd = r.fd;
            live.shutdown(fd, Shutdown::Both);
        })
    }

    /// Records that connection `id` (from `peer`) holds `bytes` of input not
    /// yet answered. Over `--max-input-total`, the connections holding the
    /// most are shut down both ways (their threads, blocked or not, then see
    /// the end) until the total is within it.
    pub(super) fn hold_input(&self, id: u64, peer: SocketAddr, bytes: usize) {
        let mut live = self.lock();
        live.input.hold(id, bytes, peer, || ());
        let now = Instant::now();
        let mut evicted = Vec::new();
        while let Some(e) = live.input.evict(now) {
            evicted.push(e.key);
        }
        // The figures first: whoever sees a connection closed sees them.
        let stats = self.core.service.stats();
        stats.set_input_held(live.input.bytes());
        for id in evicted {
            stats.client_evicted();
            if let Some(r) = live.conns.get_mut(&id) {
                r.closed_by = Some(CloseReason::InputTotal);
                let fd = r.fd;
                live.reset_on_close(fd);
                live.shutdown(fd, Shutdown::Both);
            }
        }
    }
}

/// One client connection of the threaded models (what `Connection` is in
/// the reactor and the tokio models too): registered, and served by
/// `connection.rs` on one thread. Dropping it unregisters it and logs `bye`;
/// `Drop::drop` runs before the `stream` field is dropped, so the descriptor
/// leaves the registry while it is still open.
pub(super) struct Connection {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// The listener it came from.
    pub(super) role: Role,
    /// Why it ended, for the `bye` line.
    pub(super) why: CloseReason,
    /// Of `comes` and `bye`: debug for connections accepted while stopping.
    log_level: Level,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut live = self.shared.lock();
        let closed_by = live.conns.get(&self.id).and_then(|r| r.closed_by);
        let trim = live.unregister(self.id);
        live.slots.release(self.role);
        if counts_per_ip(self.role) {
            live.per_ip.release(self.peer.ip());
        }
        self.shared
            .core
            .service
            .stats()
            .set_input_held(live.input.bytes());
        let stopping = live.stopping;
        drop(live);
        if trim {
            // glibc keeps freed memory in its arenas, and with a thread per
            // connection a crowd's buffers are spread over many arenas, pinned by
            // the few live allocations between them: after 5 000 clients left,
            // RSS stayed at 84 MiB (peak 159 MiB); trimming brings it to 30 MiB,
            // most of it glibc's cache of thread stacks. At most log2(peak) times
            // per crowd, by the closing thread, before `stats` shows it gone.
            crate::net::return_free_memory();
        }
        self.shared
            .core
            .service
            .stats()
            .connection_closed(self.role);
        let why = match (closed_by, self.why) {
            (Some(by), _) => by,
            // EOF or a failed write after the shutdown shut the socket down.
            (None, CloseReason::Bye | CloseReason::IoError) if stopping => CloseReason::Shutdown,
            (None, why) => why,
        };
        crate::net::log_bye(why, self.log_level, &self.peer);
        if stopping {
            self.shared.drained.notify_all();
        }
    }
}
