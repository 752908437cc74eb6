//! Running reactor-rpc as a daemon: the pieces an operator needs around the
//! request path, each self-contained so that every server model can use it.
//!
//! ```text
//!   metrics   counters bumped on the hot path (relaxed atomics, fixed label set)
//!             and the Prometheus text exposition (format 0.0.4)
//!   http      a pure, incremental HTTP/1.x request reader for the metrics port
//!   snapshot  the cache's crash-safe snapshot file: writer, validating loader,
//!             temporary files no planted link redirects, move-aside
//!   persist   a live cache's snapshots: the start-up, the Saver the service
//!             saves through, periodic and background saves, health recorded
//!   pidfile   one pid file per running server, held with flock
//!   systemd   readiness notification and socket activation
//! ```
//!
//! Like `protocol` and `service`, none of these owns a socket loop: a server
//! model calls them. They depend on nothing else in the crate but the
//! service layer (`persist` joins the cache to the snapshot file, and
//! `metrics` renders the service's persistence figures), never the other
//! way round, so the reactor and the threaded models can change without
//! touching them.

pub mod http;
pub mod metrics;
pub mod persist;
pub mod pidfile;
pub mod snapshot;
pub mod systemd;

/// Milliseconds since the Unix epoch, by the wall clock (0 if the clock is
/// set before 1970, saturating far in the future).
pub fn unix_ms_now() -> u64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}
