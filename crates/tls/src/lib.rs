//! TLS for reactor-rpc, with rustls on the *ring* provider (no OpenSSL, no
//! aws-lc: a C compiler is all the build needs).
//!
//! Both ends need it and neither should depend on the other: the client
//! (feature `tls` of `reactor-rpc-client`) reads a CA and its identity from
//! PEM files; the server reads its certificate, key and client CA, and
//! reloads them on SIGHUP. A TLS connection is a rustls state machine that
//! never touches a socket, so each server model wraps it in its own I/O (the
//! reactor drives `ServerConnection` on mio, as rustls's `tlsserver-mio`
//! example does), and the request path under it is unchanged.
//!
//! # Layout
//!
//! * [`pem`]: certificates and private keys from PEM files, and the crypto
//!   [`provider`](pem::provider) both ends use.
//! * [`server`]: the server's `rustls::ServerConfig` (TLS 1.2 and 1.3 only,
//!   optional mutual TLS), and [`TlsSource`], which
//!   reloads it without a restart and keeps the old one on bad files.
//! * [`secret_file`]: the one reader of files holding a secret (a private
//!   key here; passwords, users and tokens in the ops crate): private,
//!   regular, bounded, never quoted in an error.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod pem;
pub mod secret_file;
pub mod server;

pub use server::{TlsError, TlsFiles, TlsSource};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
