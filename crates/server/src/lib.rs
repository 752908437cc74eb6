//! The I/O models of reactor-rpc: five ways of waiting for sockets, one
//! request path.
//!
//! Every model accepts on the same listeners, keeps the same limits, logs the
//! same lines, and hands every byte it reads to the core crate's
//! [`Session`](reactor_rpc_core::Session), which it never looks inside: a
//! benchmark that compares them compares I/O models and nothing else.
//!
//! ```text
//!   listeners (net/): rpc · resp · metrics, each plaintext or TLS (rustls)
//!   protected mode and the connection limits decided at accept
//!                                        │
//!     ┌──────────────┬───────────────────┼──────────────┬──────────────────┐
//!  reactor        threaded              pool          tokio            tokio-mt
//!  one thread,    a thread per          N threads per  a task per       a task per
//!  mio Poll,      connection            port, each     connection,      connection,
//!  slab; TLS by   (the seed's);         serving one    current_thread;  multi_thread;
//!  hand on mio    rustls::Stream        connection     tokio-rustls     tokio-rustls
//!  + workers                                           + spawn_blocking + spawn_blocking
//!     └──────────────┴───────────────────┼──────────────┴──────────────────┘
//!                                        │  plaintext bytes
//!             Session::process ─► Stop / Progress  (reactor-rpc-core)
//!               JSON frames · RESP2/3 · metrics HTTP
//! ```
//!
//! # Layout
//!
//! * `reactor/`: the hand-written mio event loop ([`Model::Reactor`]); the
//!   only module that touches mio.
//!   * `mod.rs`: the loop: poll, accept, events by token, signals, the
//!     waker, shutdown.
//!   * `connection.rs`: one connection's state and its read → answer →
//!     write cycle.
//!   * `tls.rs`: rustls's `ServerConnection` between the socket and the
//!     connection's buffers.
//!   * `deadlines.rs`: idle, frame and lingering-close deadlines (lazy
//!     min-heaps).
//!   * `housekeeping.rs`: the periodic chores (idle expiry, buffer trimming,
//!     memory back to the OS, the cache sweep).
//!   * `workers.rs`: the offload pool for heavy requests.
//!   * `kills.rs`: `CLIENT KILL` of a connection, done by the loop.
//! * `threaded/`: the `threaded` (thread per connection) and `pool` models on
//!   blocking `std::net`.
//!   * `mod.rs`: binding, the threads, housekeeping; `acceptor.rs`: the
//!     accept loop, admission and refusals; `pool.rs`: the pool's hand-off
//!     queue; `connection.rs`: one connection's blocking loop (plaintext or
//!     TLS); `registry.rs`: the live connections and their limits;
//!     `shutdown.rs`: stopping threads blocked in `accept` and `read`.
//! * `tokio_model/` (feature `tokio-model`): the `tokio` and `tokio-mt`
//!   models, written as a tokio user writes a server: `mod.rs` (runtime,
//!   accept tasks, signals, housekeeping, shutdown) and `connection.rs` (the
//!   task per connection).
//! * [`net`]: what every model does with sockets apart from reading them:
//!   [`net::listen`] (listeners by
//!   [`Endpoint`](reactor_rpc_core::Endpoint), bound or inherited), accept
//!   errors and back-off, connection limits, protected mode, the
//!   `comes`/`bye` log lines.
//! * [`config`]: [`Config`], [`Limits`], [`Model`], [`Security`], [`Hooks`].
//! * `server.rs`: [`Server`], the one front door: bind, run, shut down,
//!   whatever the model.
//! * `env.rs`: what every model hands its sessions (the service and the
//!   metrics exposition), a leaf the models and `server.rs` share.
//! * `shutdown.rs`: [`ShutdownHandle`], which stops a running server from
//!   any thread.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
mod env;
pub mod net;
mod reactor;
mod server;
mod shutdown;
mod threaded;
#[cfg(feature = "tokio-model")]
mod tokio_model;

pub use config::{
    cpus, Config, Hook, Hooks, Limits, Model, Security, Terminate, TerminateHook, UnknownModel,
};
pub use server::Server;
pub use shutdown::ShutdownHandle;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
