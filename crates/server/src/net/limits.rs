//! The bounds a model keeps on what clients can make it hold: connections per
//! address, pending output in total, how long a refusal lingers, and memory
//! handed back to the OS after a crowd left.

use std::time::Duration;

use reactor_rpc_core::session::Refusal;

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
