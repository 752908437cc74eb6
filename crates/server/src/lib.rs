//! The I/O models of reactor-rpc: five ways of waiting for sockets, one
//! request path.
//!
//! Every model accepts on the same listeners, keeps the same limits, logs the
//! same lines, and hands every byte it reads to the core crate's
//! [`Session`](reactor_rpc_core::Session), which it never looks inside: a
//! benchmark that compares them compares I/O models and nothing else.
//!
//! ```text
//!                        listeners (net::listen): rpc · resp · metrics
//!                                        │
//!     ┌──────────────┬───────────────────┼──────────────┬──────────────────┐
//!  reactor        threaded              pool          tokio            tokio-mt
//!  one thread,    a thread per          N threads,    a task per       a task per
//!  mio Poll,      connection            each one      connection,      connection,
//!  slab           (the seed's)          connection    current_thread   multi_thread
//!     └──────────────┴───────────────────┼──────────────┴──────────────────┘
//!                                        │
//!             Session::process ─► Stop / Progress  (reactor-rpc-core)
//! ```
//!
//! # Layout
//!
//! * [`reactor`](crate::Server) (`reactor/`): the hand-written mio event loop;
//!   the only module that touches mio. `mod.rs` is the loop, `connection.rs`
//!   one connection's read → answer → write cycle, `deadlines.rs` the
//!   timers, `housekeeping.rs` the periodic chores, `workers.rs` the offload
//!   pool.
//! * `threaded/`: the `threaded` (thread per connection) and `pool` models on
//!   blocking `std::net`.
//! * `tokio_model/` (feature `tokio-model`): the `tokio` and `tokio-mt`
//!   models, written as a tokio user writes a server.
//! * [`net`]: what every model does with sockets apart from reading them:
//!   listeners by [`Role`](reactor_rpc_core::Role), accept errors and
//!   back-off, connection limits, the `comes`/`bye` log lines.
//! * [`config`]: [`Config`], [`Limits`], [`Model`].
//! * [`server`](Server): [`Server`], the one front door: bind, run, shut
//!   down, whatever the model.
//! * [`shutdown`](ShutdownHandle): the handle that stops a running server from
//!   any thread.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
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
