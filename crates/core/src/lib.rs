//! The pure request path of reactor-rpc: what the bytes of a request mean,
//! and nothing about how they arrived.
//!
//! No sockets, no threads, no mio, libc or tokio: every server model (the
//! reactor, thread per connection, the pool, tokio's two runtimes), the
//! worker threads, the fuzzer, the property tests and the benchmarks drive
//! exactly this code, so a benchmark compares I/O models and nothing else,
//! and a bug fixed in a method is fixed everywhere.
//!
//! ```text
//!   bytes ─► session (one per protocol) ─► service (methods, commands, cache) ─► Output ─► bytes
//!              json · resp · http            ping fib cache stats · Redis commands
//!                       │                                   │
//!                       └── Stop / Progress ◄── metrics counters (per request, per batch)
//! ```
//!
//! # Layout
//!
//! * [`listener`]: the listeners, named once: [`Role`] (the protocol a port
//!   speaks) and [`Endpoint`] (a role, plain or TLS); a leaf every layer uses.
//! * [`session`]: what a connection speaks, one session per protocol behind
//!   one [`Stop`](session::Stop) / [`Progress`](session::Progress); the
//!   close vocabulary; offloaded [`Job`](session::Job)s.
//!   * [`session::json`]: length-prefixed JSON frames ([`JsonSession`](session::JsonSession)).
//!   * [`session::resp`]: RESP commands ([`RespSession`](session::RespSession)).
//!   * [`session::http`]: the metrics port's HTTP ([`MetricsSession`](session::MetricsSession)).
//!   * `session/refusal.rs`: what a refused client is told, in its protocol
//!     ([`Refusal`](session::Refusal)).
//! * [`service`]: what each request means: [`Service`], the method
//!   [`Registry`] and the [`Method`](service::Method) trait, and who may call
//!   what ([`Access`](service::Access)).
//!   * [`service::auth`]: users, password hashes, roles, the per-connection
//!     [`Login`](service::auth::Login), the brute-force lockout, the metrics
//!     token.
//!   * [`service::cache`]: the one keyspace both protocols share (shards,
//!     typed values, eviction, active expiry, SCAN, WATCH) and its JSON
//!     methods.
//!   * [`service::redis`]: the Redis command table and its commands, over the
//!     same cache.
//!   * [`service::fib`], `ping.rs`: the two methods of the seed.
//!   * [`service::stats`]: the counters every model updates, and `stats`.
//!   * [`service::persistence`]: save health, the write refusal after a failed
//!     save, and the [`Saver`](service::Saver) through which ops saves.
//!   * `registry.rs`, `access.rs`, `response.rs`: the registry, the access
//!     classes, the writer of the JSON response envelope.
//! * [`output`]: response bytes with large cached values queued by reference
//!   ([`Output`](output::Output)), and the write queue a connection drains
//!   with `writev` ([`OutputQueue`](output::OutputQueue)).
//! * [`metrics`]: the counters behind `GET /metrics`, cheap enough for the
//!   hot path, with a label set fixed at start.
//! * `testing` (feature `testing`): the stream drivers and oracles that the
//!   property tests and the fuzz targets share, one per protocol.
//!
//! The wire formats themselves are in the `reactor-rpc-protocol` crate; the
//! I/O models in `reactor-rpc-server`; the exposition, snapshots and the
//! rest of what an operator needs in `reactor-rpc-ops`.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod listener;
pub mod metrics;
pub mod output;
pub mod service;
pub mod session;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use service::{Registry, Service};
pub use session::{Endpoint, Role, Session};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
