//! reactor-rpc: a small, fast length-prefixed JSON RPC server built on a
//! hand-written mio reactor, with threaded and tokio models beside it for
//! comparison, a Redis protocol port and a Prometheus metrics port on the
//! same cache, TLS on every listener, and a blocking client.
//!
//! This crate is the front door: it re-exports the workspace's crates, one
//! idea each, so that Cargo enforces the layering (a crate cannot import one
//! that imports it back):
//!
//! ```text
//!   reactor-rpc-protocol   wire formats: JSON frames, RESP2/3, metrics HTTP    pure
//!        ▲        ▲
//!        │   reactor-rpc-client ◄── reactor-rpc-tls (feature tls)   the blocking client
//!        │                            rustls on ring, PEM, secret files
//!   reactor-rpc-core       sessions ─► services (ping fib cache stats auth, Redis commands) ─► Output
//!        ▲                 JsonSession · RespSession · MetricsSession,       pure: no sockets
//!        │                 one Stop/Progress
//!   reactor-rpc-ops        Prometheus exposition, /proc, snapshots, secrets, pid file, systemd
//!        ▲
//!   reactor-rpc-server     reactor (mio) · threaded · pool · tokio · tokio-mt
//!                          each accepting rpc, resp and metrics listeners, plaintext or TLS,
//!                          and calling Session::process on the plaintext bytes it reads
//! ```
//!
//! Every server model drives the same [`Session::process`](session::Session::process),
//! so a benchmark compares I/O models and nothing else. Start a server with
//! [`Server`], talk to it with [`Client`]. The wire format is in `PROTOCOL.md`,
//! the design in `ARCHITECTURE.md`, and `examples/minimal_reactor.rs` is the
//! reactor pattern in under 150 lines.
//!
//! # Layout
//!
//! * [`protocol`]: the wire formats (`reactor-rpc-protocol`).
//! * [`client`]: the blocking [`Client`] (`reactor-rpc-client`).
//! * [`tls`]: certificates, keys and the server's reloadable TLS
//!   configuration (`reactor-rpc-tls`; feature `tls`).
//! * [`session`]: one session per protocol, behind one `Stop`/`Progress`
//!   (`reactor-rpc-core`; feature `server`).
//! * [`service`]: the methods, the Redis commands, the cache, users and
//!   roles (`reactor-rpc-core`; feature `server`), with [`Service`] and
//!   [`Registry`] at the top level.
//! * [`output`]: response bytes with large values queued by reference
//!   (`reactor-rpc-core`; feature `server`).
//! * [`metrics`]: the counters behind `GET /metrics` (`reactor-rpc-core`;
//!   feature `server`).
//! * [`ops`]: what an operator needs: exposition, `/proc`, snapshots,
//!   secrets, the pid file, systemd (`reactor-rpc-ops`; feature `server`).
//! * [`server`]: the I/O models and their configuration
//!   (`reactor-rpc-server`; feature `server`), with [`Server`], [`Config`],
//!   [`Limits`], [`Model`], [`Security`], [`Hooks`] and [`ShutdownHandle`]
//!   at the top level.
//! * `testing`: the stream drivers the property tests and the fuzzer share,
//!   one per protocol (`reactor-rpc-core`; feature `testing`).
//!
//! # Features
//!
//! * `server` (default): the core, ops and server crates (and `tls`: the
//!   server speaks TLS where asked to). Without it this crate is the
//!   protocol and the [`Client`], with none of the server's dependencies (no
//!   mio, signal-hook, libc, tokio, num-bigint, hashbrown).
//! * `tls` (default): TLS in the client (`client::TlsConnector`,
//!   [`Client::connect_tls`]): adds the `reactor-rpc-tls` crate (rustls on
//!   *ring*).
//! * `tokio-model`: the `tokio` and `tokio-mt` models (tokio, tokio-util,
//!   tokio-rustls); implies `server`.
//! * `testing`: the `testing` module; implies `server`.
//!
//! # Where to start
//!
//! * Serving: [`Server::bind`] with a [`Config`], and [`Server::local_addr`] /
//!   [`Server::shutdown_handle`]; the example on [`Server`] runs one on a free port.
//! * Adding methods: [`Registry::insert`], with [`service::method_fn`] or an
//!   implementation of [`service::Method`].
//! * Calling: [`Client::call`], and [`Client::pipeline`] or
//!   [`Client::send`]/[`Client::recv`] to pipeline.
//! * Driving the request path yourself: [`session::json::process`] and the
//!   framing in [`protocol::frame`].
//!
//! # Calling a server
//!
//! ```
//! # #[cfg(feature = "server")] {
//! use std::sync::Arc;
//! use reactor_rpc::{Client, Config, Server, Service};
//!
//! # let mut config = Config::default();
//! # config.addr = "127.0.0.1:0".parse()?;
//! # let server = Server::bind(config, Arc::new(Service::new()))?;
//! # let (addr, stop) = (server.local_addr(), server.shutdown_handle());
//! # let running = std::thread::spawn(move || server.run());
//! let mut client = Client::connect(addr)?;
//! let pong = client.call("ping", "hello")?; // a serde_json::Value
//! assert_eq!(pong, "hello");
//!
//! // Pipelined: one write, the answers in the order sent.
//! for i in 0..3 {
//!     client.send_with_id("ping", &format!("hello {i}"), &i)?;
//! }
//! client.flush()?;
//! for i in 0..3 {
//!     let response = client.recv()?;
//!     assert_eq!(response.id.as_ref().unwrap().get(), i.to_string());
//!     assert_eq!(response.into_result()?.get(), format!("\"hello {i}\""));
//! }
//! # stop.shutdown();
//! # running.join().unwrap()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Adding a method
//!
//! A server with one more method, called over TCP:
//!
//! ```
//! # #[cfg(feature = "server")] {
//! use std::sync::Arc;
//! use reactor_rpc::protocol::{ErrorCode, RpcError};
//! use reactor_rpc::service::{method_fn, Context};
//! use reactor_rpc::{Client, Config, Registry, Server, Service};
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize)]
//! struct Add {
//!     a: i64,
//!     b: i64,
//! }
//!
//! let mut registry = Registry::builtin(); // keep ping, fib, the cache and stats
//! registry.insert(
//!     "add",
//!     method_fn(|_cx: &Context<'_>, p: Add| {
//!         p.a.checked_add(p.b)
//!             .ok_or_else(|| RpcError::bad_params("the sum overflows"))
//!     }),
//! );
//!
//! let mut config = Config::default();
//! config.addr = "127.0.0.1:0".parse()?; // any free port
//! let server = Server::bind(config, Arc::new(Service::with_registry(registry)))?;
//! let (addr, stop) = (server.local_addr(), server.shutdown_handle());
//! let running = std::thread::spawn(move || server.run());
//!
//! let mut client = Client::connect(addr)?;
//! assert_eq!(client.call("add", &json!({"a": 2, "b": 40}))?, 42);
//! let err = client.call("add", &json!({"a": i64::MAX, "b": 1})).unwrap_err();
//! assert_eq!(err.code(), Some(ErrorCode::BadParams));
//! let err = client.call("add", &json!({"a": "two"})).unwrap_err();
//! assert_eq!(err.code(), Some(ErrorCode::BadParams)); // rejected by serde
//! assert_eq!(client.call("ping", "still here")?, "still here");
//!
//! // Pipelined, one write for all: each answer in order, an error among them.
//! let calls = [
//!     ("set", json!({"key": "hits", "value": 10})),
//!     ("incr", json!({"key": "hits"})),
//!     ("fib", json!(-1)),
//!     ("get", json!({"key": "hits"})),
//! ];
//! let results = client.pipeline(&calls)?;
//! assert_eq!(results[1].as_ref().map(|r| r.get().to_string()).ok(), Some("11".into()));
//! assert_eq!(results[2].as_ref().unwrap_err().code(), Some(ErrorCode::BadParams));
//!
//! stop.shutdown();
//! running.join().unwrap()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use reactor_rpc_client as client;
pub use reactor_rpc_client::Client;
pub use reactor_rpc_protocol as protocol;

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use reactor_rpc_tls as tls;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use reactor_rpc_core::{metrics, output, service, session, Registry, Service};

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use reactor_rpc_core::testing;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use reactor_rpc_ops as ops;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use reactor_rpc_server as server;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use reactor_rpc_server::{
    cpus, Config, Hook, Hooks, Limits, Model, Security, Server, ShutdownHandle, UnknownModel,
};

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
