//! The bounds a model keeps on what clients can make it hold: connections per
//! listener and per address, pending output in total, how long a refusal
//! lingers, and memory handed back to the OS after a crowd left.

use std::time::Duration;

use reactor_rpc_core::session::{Refusal, Role};

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

/// Connections served per listener, against their limits: the client ports
/// (RPC and RESP) together against `--max-conns`, the metrics port against
/// `--metrics-max-conns` of its own, so that scrapers never take a client's
/// slot and clients never starve the scrapers. A model that admits under
/// one thread or one lock keeps one of these (the tokio models keep a
/// semaphore per limit instead).
#[derive(Debug)]
pub(crate) struct Slots {
    max_conns: usize,
    metrics_max_conns: usize,
    /// Connections served now, by [`Role`] (its discriminant).
    open: [usize; 3],
}

impl Slots {
    pub(crate) fn new(max_conns: usize, metrics_max_conns: usize) -> Slots {
        Slots {
            max_conns,
            metrics_max_conns,
            open: [0; 3],
        }
    }

    /// Takes a slot for a connection to `role`'s listener, or says which
    /// limit it runs into.
    pub(crate) fn admit(&mut self, role: Role) -> Result<(), Refusal> {
        let full = match role {
            Role::Metrics => (self.open[role as usize] >= self.metrics_max_conns)
                .then_some(Refusal::MetricsMaxConns(self.metrics_max_conns)),
            Role::Rpc | Role::Resp => {
                (self.clients() >= self.max_conns).then_some(Refusal::MaxConns(self.max_conns))
            }
        };
        match full {
            Some(refusal) => Err(refusal),
            None => {
                self.open[role as usize] += 1;
                Ok(())
            }
        }
    }

    /// Gives back the slot of a connection to `role`'s listener.
    pub(crate) fn release(&mut self, role: Role) {
        let open = &mut self.open[role as usize];
        *open = open.saturating_sub(1);
    }

    /// Client connections (RPC and RESP) served now.
    pub(crate) fn clients(&self) -> usize {
        self.open[Role::Rpc as usize] + self.open[Role::Resp as usize]
    }
}

/// Whether `--max-conns-per-ip` counts a connection to `role`'s listener:
/// the client ports' connections, not the scrapers' (a Prometheus on the
/// host of a client must not take that client's share).
#[inline]
pub(crate) fn counts_per_ip(role: Role) -> bool {
    role != Role::Metrics
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

/// Gives the heap's free memory back to the operating system.
///
/// Connection buffers are most of a server's memory. When thousands of
/// connections close, glibc keeps their freed buffers in the heap (only the
/// top of the heap is returned by itself), so RSS stays at its peak. Servers
/// call this after such a drop, never per request.
pub(crate) fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapers_and_clients_have_their_own_slots() {
        let mut slots = Slots::new(2, 1);
        assert_eq!(slots.admit(Role::Metrics), Ok(()));
        assert_eq!(slots.admit(Role::Metrics), Err(Refusal::MetricsMaxConns(1)));
        // The scraper took no client slot.
        assert_eq!(slots.admit(Role::Rpc), Ok(()));
        assert_eq!(slots.admit(Role::Resp), Ok(()));
        assert_eq!(slots.admit(Role::Rpc), Err(Refusal::MaxConns(2)));
        assert_eq!(slots.clients(), 2);
        slots.release(Role::Metrics);
        assert_eq!(slots.admit(Role::Metrics), Ok(()));
        slots.release(Role::Resp);
        assert_eq!(slots.admit(Role::Rpc), Ok(()));
        assert!(counts_per_ip(Role::Rpc) && counts_per_ip(Role::Resp));
        assert!(!counts_per_ip(Role::Metrics));
    }
}
