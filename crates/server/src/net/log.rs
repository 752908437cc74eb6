//! The connection log lines every model writes, and the limits on them.
//!
//! Every model logs a connection's life the same way: `PEER comes` when it
//! is accepted, `PEER bye (REASON)` when it ends, with the one close
//! vocabulary ([`CloseReason`]). A connect/reset storm must not fill a disk,
//! so these lines share a per-second budget for the whole process, and the
//! repeated warnings (refusals, accept errors) go through a
//! [`RateLimitedLog`].

use std::time::Duration;

use reactor_rpc_core::session::CloseReason;

/// Logs the `bye` line of a connection that ended for `why`, at `level`
/// (within [`CONN_LINES_PER_SEC`]): `PEER bye` for a client that left,
/// `PEER bye (REASON)` otherwise.
pub(crate) fn log_bye(why: CloseReason, level: log::Level, peer: &dyn std::fmt::Display) {
    if !conn_line_allowed(level) {
        return;
    }
    match why {
        CloseReason::Bye => log::log!(level, "{peer} bye"),
        why => log::log!(level, "{peer} bye ({why})"),
    }
}

/// Per-connection lines (`comes`, `bye`) logged per second at most; beyond
/// it they are counted and one summary line says how many were held back, so
/// a connect/reset storm cannot fill a disk with its log.
pub(crate) const CONN_LINES_PER_SEC: u32 = 100;

/// The current second's budget of per-connection lines, for the whole process.
struct ConnLines {
    /// When the current one-second window began (`None`: no line yet).
    since: Option<std::time::Instant>,
    logged: u32,
    held: u64,
}

static CONN_LINES: std::sync::Mutex<ConnLines> = std::sync::Mutex::new(ConnLines {
    since: None,
    logged: 0,
    held: 0,
});

/// Whether a per-connection line may be logged now; reports the lines held
/// back once their second is over. Lines below the enabled level cost nothing.
fn conn_line_allowed(level: log::Level) -> bool {
    if !log::log_enabled!(level) {
        return false;
    }
    let now = std::time::Instant::now();
    let mut lines = CONN_LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    roll_conn_lines(&mut lines, now);
    if lines.logged < CONN_LINES_PER_SEC {
        lines.logged += 1;
        true
    } else {
        lines.held += 1;
        false
    }
}

/// Starts a new window once a second has passed, reporting what the last held back.
fn roll_conn_lines(lines: &mut ConnLines, now: std::time::Instant) {
    match lines.since {
        Some(since) if now.duration_since(since) < Duration::from_secs(1) => {}
        _ => {
            if lines.held > 0 {
                log::warn!(
                    "{} connection log lines (comes/bye) held back in the last second (at most {CONN_LINES_PER_SEC} a second)",
                    lines.held
                );
            }
            *lines = ConnLines {
                since: Some(now),
                logged: 0,
                held: 0,
            };
        }
    }
}

/// Reports held-back connection lines whose second is over, even when no
/// connection comes to trigger it (called by each model's housekeeping).
pub(crate) fn flush_conn_lines() {
    let mut lines = CONN_LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if lines.held > 0 {
        roll_conn_lines(&mut lines, std::time::Instant::now());
    }
}

/// Logs the `comes` line of a connection at `level` (within [`CONN_LINES_PER_SEC`]).
pub(crate) fn log_comes(level: log::Level, peer: &dyn std::fmt::Display) {
    if conn_line_allowed(level) {
        log::log!(level, "{peer} comes");
    }
}

/// Lets a repeated warning through at most once per interval, counting the
/// ones it held back, so a flood of refused clients costs one log line a second.
pub(crate) struct RateLimitedLog {
    every: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub(crate) const fn new(every: std::time::Duration) -> RateLimitedLog {
        RateLimitedLog {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Returns `Some(n)` when a line may be logged now, `n` being how many were
    /// held back since the last one; `None` when this one should be dropped.
    pub(crate) fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}
