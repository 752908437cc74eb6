//! How the threaded models stop. Their threads block in `accept` and `read`,
//! so a stop has to reach into those calls: blocked acceptors are woken by
//! connecting to the listener, blocked reads by shutting down the read side
//! of every live socket, so responses already produced still leave. After
//! the grace period every socket is shut down for good. SIGINT, SIGTERM,
//! SIGQUIT and SIGHUP arrive on a thread of their own.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;

use super::{Shared, Threaded};
use crate::config::Terminate;
use crate::shutdown::{ShutdownHandle, Urgency};

/// How often a shutdown checks for acceptors still blocked in `accept`.
const WAKE_RETRY: Duration = Duration::from_millis(100);

/// After the grace period, how long to wait for threads once their sockets are closed.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);

impl Threaded {
    /// Stops accepting, lets connections finish what they received, and after
    /// the grace period closes whatever is left. Returns whether every
    /// connection and acceptor finished.
    pub(super) fn stop(&self) -> bool {
        info!(
            "shutting down: {} connections, up to {:?} to deliver responses",
            self.shared.lock().conns.len(),
            self.grace
        );
        // Clients still in the backlog may have sent requests already: from
        // now on acceptors take them without blocking, serve them like the
        // others (read side shut down), and leave at the first `WouldBlock`.
        self.shared.hooks.shutdown();
        for listening in &self.listeners {
            if let Err(e) = listening.socket.set_nonblocking(true) {
                warn!(
                    "cannot drain the {} accept backlog: {e}",
                    listening.endpoint
                );
            }
        }
        self.shared.shutdown_conns(Shutdown::Read);
        if self.wait_for_drain(Instant::now() + self.grace) {
            return true;
        }
        warn!(
            "shutdown grace over: closing {} connections",
            self.shared.lock().conns.len()
        );
        self.shared.shutdown_conns(Shutdown::Both);
        self.shared.wait_drained(FORCED_CLOSE_WAIT)
    }

    /// Waits until every connection and acceptor finished, or `deadline`,
    /// waking acceptors blocked in `accept` meanwhile.
    fn wait_for_drain(&self, deadline: Instant) -> bool {
        loop {
            // An acceptor that blocked in `accept` before the listener turned
            // non-blocking returns only with a connection: make one per such
            // acceptor (checked again, in case another took it).
            let blocked = self.shared.lock().in_accept;
            for (index, listening) in self.listeners.iter().enumerate() {
                let wake = wake_addr(listening.addr);
                for _ in 0..blocked.get(index).copied().unwrap_or(0) {
                    if let Err(e) = TcpStream::connect_timeout(&wake, WAKE_RETRY) {
                        debug!("cannot wake an acceptor through {wake}: {e}");
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.shared.wait_drained(left.min(WAKE_RETRY)) {
                return true;
            }
            if left.is_zero() {
                return false;
            }
        }
    }
}

impl Shared {
    /// What the [`ShutdownHandle`] does: asks for the stop, and for a
    /// forced one shuts every live socket down for good (their threads,
    /// blocked or not, then see the end).
    pub(super) fn wake(&self, urgency: Urgency) {
        self.request_stop();
        if urgency == Urgency::Now {
            self.shutdown_conns(Shutdown::Both);
        }
    }

    pub(super) fn request_stop(&self) {
        self.lock().stopping = true;
        self.stop.notify_all();
        self.drained.notify_all();
    }

    pub(super) fn wait_for_stop(&self) {
        let mut live = self.lock();
        while !live.stopping {
            live = self.stop.wait(live).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Sleeps for `d` or until a stop is requested; returns whether stopping.
    pub(super) fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let live = self.lock();
        let (live, _) = self
            .stop
            .wait_timeout_while(live, d, |l| !l.stopping)
            .unwrap_or_else(PoisonError::into_inner);
        live.stopping
    }

    /// Waits up to `timeout` for every connection and acceptor to finish.
    fn wait_drained(&self, timeout: Duration) -> bool {
        let live = self.lock();
        let (live, _) = self
            .drained
            .wait_timeout_while(live, timeout, |l| !l.conns.is_empty() || l.acceptors > 0)
            .unwrap_or_else(PoisonError::into_inner);
        live.conns.is_empty() && live.acceptors == 0
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

pub(super) type SignalThread = (signal_hook::iterator::Handle, JoinHandle<()>);

/// A thread that hands SIGINT, SIGTERM and SIGQUIT to the terminate hook
/// (by default: a shutdown request, and a second one closes every
/// connection at once instead of waiting out the grace period) and SIGHUP
/// to the hangup hook.
pub(super) fn spawn_signal_thread(
    mut signals: Signals,
    shutdown: ShutdownHandle,
    shared: Arc<Shared>,
) -> io::Result<SignalThread> {
    let handle = signals.handle();
    let thread = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    debug!("signal SIGHUP");
                    shared.hooks.hangup();
                } else if let Some(t) = Terminate::of(signal) {
                    shared.hooks.terminate(t, &shutdown);
                }
            }
        })?;
    Ok((handle, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

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
