//! What an operator needs around reactor-rpc's request path, each piece
//! self-contained so that every server model, the binary and an embedding
//! program can use it.
//!
//! None of these owns a socket loop: a server model or the binary calls them.
//! They depend on the core crate (the cache to snapshot, the counters to
//! expose), never the other way round.
//!
//! # Layout
//!
//! * [`exposition`]: the Prometheus text exposition (format 0.0.4) of the
//!   core crate's counters, rendered at most once a second and shared by
//!   every scraper ([`Scrapes`](exposition::Scrapes)).
//! * [`procfs`]: the one reader of `/proc` in the project: CPU time, memory,
//!   descriptors, for the exposition, the benchmark, the tests and examples.
//! * [`snapshot`]: the cache's snapshot file: crash-safe writer, paranoid
//!   loader, move-aside.
//! * [`persist`]: a live cache's snapshots: load at start, save on demand
//!   (the `save` method), periodically and at shutdown.
//! * [`secrets`]: the password of `default`, the users file and the metrics
//!   token, read from files only the server's user may read.
//! * [`pidfile`]: one pid file per running server.
//! * [`logfile`]: the log file, opened so that a planted link cannot redirect it.
//! * [`systemd`]: readiness notification and socket activation.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod exposition;
pub mod logfile;
pub mod persist;
pub mod pidfile;
pub mod procfs;
pub mod secrets;
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

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
