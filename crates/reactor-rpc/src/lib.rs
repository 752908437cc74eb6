//! reactor-rpc: a small, fast length-prefixed JSON RPC server built on a
//! hand-written mio reactor, with the classic threaded models beside it for
//! comparison, and a blocking client.
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
//! compares I/O models and nothing else. Start a server with [`Server`], talk
//! to it with [`Client`]. The wire format is in `PROTOCOL.md`, the design in
//! `ARCHITECTURE.md`, and `examples/minimal_reactor.rs` is the reactor pattern
//! in under 150 lines.
//!
//! # Features
//!
//! * `server` (default): the service layer and the server models. Without it
//!   the crate is the protocol and the [`Client`], with no mio, signal-hook,
//!   libc, num-bigint or foldhash. It brings `tls` with it.
//! * `tls` (default): TLS in the client ([`client::TlsConnector`]) and, with
//!   `server`, the server's certificates ([`tls`]): rustls on *ring*.
//! * `tokio-model`: the `tokio` and `tokio-mt` models, the same request path
//!   on tokio's runtimes, for comparison with the hand-written reactor.
//! * `testing`: the stream driver the property tests and the fuzzer share
//!   (the `testing` module; it needs `server` too).
//!
//! # Where to start
//!
//! * Serving: [`Server::bind`] with a [`Config`], and [`Server::local_addr`] /
//!   [`Server::shutdown_handle`]; the example on [`Server`] runs one on a free port.
//! * Adding methods: [`Registry::insert`], with [`service::method_fn`] or an
//!   implementation of [`service::Method`].
//! * Calling: [`Client::call`], and [`Client::pipeline`] or
//!   [`Client::send`]/[`Client::recv`] to pipeline.
//! * Driving the request path yourself: [`dispatch::process`] and the framing
//!   in [`protocol::frame`].
//!
//! # Calling a server
//!
//! ```no_run
//! use reactor_rpc::Client;
//!
//! let mut client = Client::connect("127.0.0.1:8080")?;
//! let pong = client.call("ping", "hello")?; // a serde_json::Value
//! assert_eq!(pong, "hello");
//! # Ok::<(), reactor_rpc::client::Error>(())
//! ```
#![warn(missing_docs)]

pub mod buffer;
pub mod client;
#[cfg(feature = "tls")]
pub mod pem;
pub mod protocol;

#[cfg(feature = "server")]
mod config;
#[cfg(feature = "server")]
pub mod dispatch;
// `LINGER`, `ACCEPT_BACKOFF` and `CloseReason` wait for the models to adopt them.
#[cfg(feature = "server")]
#[allow(dead_code)]
mod net;
#[cfg(feature = "server")]
pub mod ops;
#[cfg(feature = "server")]
pub mod output;
#[cfg(feature = "server")]
mod reactor;
#[cfg(feature = "server")]
pub mod resp_dispatch;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
mod shutdown;
#[cfg(all(feature = "server", feature = "testing"))]
pub mod testing;
#[cfg(feature = "server")]
mod threaded;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "tokio-model")]
mod tokio_model;
#[cfg(feature = "server")]
mod wire;

pub use client::Client;
#[cfg(feature = "server")]
pub use config::{cpus, Config, Hook, Hooks, Inherited, Limits, Model, Security, UnknownModel};
#[cfg(feature = "server")]
pub use server::Server;
#[cfg(feature = "server")]
pub use service::{Registry, Service};
#[cfg(feature = "server")]
pub use shutdown::ShutdownHandle;

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
