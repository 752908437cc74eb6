//! The reactor's housekeeping, kept apart from the event loop (as Redis keeps
//! `clientsCron` apart from `ae.c`): the loop only calls in when a deadline
//! is due, and the policy of what to close or free lives here.
//!
//! * idle expiry: close connections quiet for `--idle-timeout`, and those done
//!   lingering after an answer that ends the connection;
//! * every [`HOUSEKEEPING_INTERVAL`]: the service's own sweep (cache expiry),
//!   the pending output published for the metrics, trimming the buffers of
//!   quiet connections, and giving memory back to the OS after a mass
//!   disconnect.

use std::time::{Duration, Instant};

use log::debug;

use super::Reactor;
use crate::net::CloseReason;
use reactor_rpc_core::service::HOUSEKEEPING_INTERVAL;

/// A connection quiet for this long gives its buffers back.
const TRIM_AFTER: Duration = Duration::from_secs(2);

/// Connections looked at per housekeeping tick for buffer trimming.
const TRIM_PER_TICK: usize = 1024;

/// Where the periodic housekeeping stands.
pub(super) struct Housekeeping {
    next_tick: Instant,
    /// The slab slot where buffer trimming goes on at the next tick.
    trim_cursor: usize,
    /// Most connections open at once since memory was last given back.
    conns_peak: usize,
}

impl Housekeeping {
    pub(super) fn new(now: Instant) -> Housekeeping {
        Housekeeping {
            next_tick: now + HOUSEKEEPING_INTERVAL,
            trim_cursor: 0,
            conns_peak: 0,
        }
    }

    /// When the next tick is due.
    pub(super) fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// Notes how many connections are open, after one more came.
    pub(super) fn count_conns(&mut self, live: usize) {
        self.conns_peak = self.conns_peak.max(live);
    }
}

impl Reactor {
    /// Closes connections whose deadline passed: a frame begun and not complete
    /// within the frame timeout, quiet for the idle timeout
    /// (including ones stuck mid-frame or with output the peer never reads),
    /// or done lingering after an answer that ends the connection.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some((key, id)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get(key).filter(|c| c.id == id) else {
                continue;
            };
            if let Some((until, why)) = conn.linger_deadline() {
                if until <= now {
                    self.close(key, why);
                } else {
                    self.timers.arm(until, key, id);
                }
                continue;
            }
            let Some(timeout) = self.config.limits.idle_timeout else {
                continue;
            };
            let deadline = conn.last_active + timeout;
            if deadline > now {
                self.timers.arm(deadline, key, id);
            } else if conn.job_running() {
                self.timers.arm(now + timeout, key, id); // waiting on us, not idle
            } else if conn.pending_output() > 0 {
                self.close(key, CloseReason::OutputNotRead);
            } else {
                self.close(key, CloseReason::IdleTimeout);
            }
        }
        let timeout = self.config.limits.frame_timeout;
        while let Some((key, id)) = self.frame_timers.pop_due(now) {
            // A later frame, or none, leaves the entry stale: its own is armed.
            let overdue = self
                .conns
                .get(key)
                .filter(|c| c.id == id)
                .and_then(|c| c.frame_deadline(timeout))
                .is_some_and(|deadline| deadline <= now);
            if overdue {
                self.close(key, CloseReason::FrameTimeout);
            }
        }
        let conns = &self.conns;
        let live = |key, id| {
            conns
                .get(key)
                .is_some_and(|c: &super::Connection| c.id == id)
        };
        self.timers.compact(conns.len(), live);
        self.frame_timers.compact(conns.len(), live);
    }

    /// Every [`HOUSEKEEPING_INTERVAL`]: the service's sweep, the pending
    /// output published, buffer trimming, and memory given back after a
    /// mass disconnect.
    pub(super) fn tick(&mut self, now: Instant) {
        if self.housekeeping.next_tick > now {
            return;
        }
        self.housekeeping.next_tick = now + HOUSEKEEPING_INTERVAL;
        self.core.service.housekeeping(now);
        // The running total kept for --max-output-total, for the metrics.
        let pending = self.output.total() as u64;
        self.core.service.stats().set_pending_output(pending);
        crate::net::flush_conn_lines();
        self.trim_buffers(now);
        self.release_memory();
    }

    /// After a mass disconnect (live connections down to half of the peak, and
    /// at least 1024 fewer), shrinks the slab and returns free heap memory to
    /// the OS, so RSS comes back near its baseline instead of staying at the peak.
    fn release_memory(&mut self) {
        let live = self.conns.len();
        let peak = self.housekeeping.conns_peak;
        if peak >= live + 1024 && live * 2 <= peak {
            self.conns.shrink_to_fit();
            crate::net::return_free_memory();
            debug!("connections down from {peak} to {live}: memory returned to the OS");
            self.housekeeping.conns_peak = live;
        }
    }

    /// Gives back the buffers of connections that went quiet, a slice per tick
    /// (like Redis's clientsCron), so idle connections cost little memory.
    fn trim_buffers(&mut self, now: Instant) {
        let capacity = self.conns.capacity();
        if capacity == 0 {
            return;
        }
        let cursor = &mut self.housekeeping.trim_cursor;
        for _ in 0..TRIM_PER_TICK.min(capacity) {
            *cursor = (*cursor + 1) % capacity;
            if let Some(conn) = self.conns.get_mut(*cursor) {
                if now.duration_since(conn.last_active) >= TRIM_AFTER {
                    conn.release_buffers();
                }
            }
        }
    }
}
