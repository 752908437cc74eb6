//! reactor-rpc: a small, fast length-prefixed JSON RPC server built on a
//! hand-written mio reactor, with the classic threaded models beside it for
//! comparison.
//!
//! ```text
//!   bytes ──► protocol (frame, message) ──► service (methods, cache, stats) ──► bytes
//!                 pure: no sockets              pure: no sockets
//!                         ▲                               ▲
//!                         └────── dispatch::process ──────┘   (frames in, responses out)
//!                                         ▲
//!        reactor (one thread, mio)  ·  threaded (thread per conn)  ·  pool (N threads)
//! ```
//!
//! Every server model drives the same [`dispatch::process`], so a benchmark
//! compares I/O models and nothing else. Start a server with [`server::Server`],
//! talk to it with [`client::Client`]. The wire format is in `PROTOCOL.md`, the
//! design in `ARCHITECTURE.md`.

pub mod bench;
pub mod buffer;
pub mod client;
pub mod dispatch;
pub mod net;
pub mod ops;
pub mod protocol;
pub mod reactor;
pub mod server;
pub mod service;
pub mod threaded;

pub use client::Client;
pub use server::{Config, Limits, Model, Server, ShutdownHandle};
pub use service::{Registry, Service};
