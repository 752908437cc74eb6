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
//! * [`session`]: one session type per protocol (JSON frames, RESP, the
//!   metrics port's HTTP), behind one [`Stop`](session::Stop) and
//!   [`Progress`](session::Progress); the listener [`Role`];
//!   the close vocabulary; refusals in each protocol; offloaded jobs.
//! * [`service`]: what each method and command means: the method
//!   [`Registry`], `ping`, `fib`, the cache and its JSON
//!   methods, the Redis commands, `stats`, and who may call what
//!   ([`Access`](service::Access)).
//! * [`output`]: response bytes with large cached values queued by reference
//!   ([`Output`](output::Output)), and the write queue a connection drains
//!   with `writev`.
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

pub mod metrics;
pub mod output;
pub mod service;
pub mod session;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use service::{Registry, Service};
pub use session::{Endpoint, Role, Session};
