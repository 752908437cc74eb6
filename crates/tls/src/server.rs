//! The server's TLS configuration: certificate, key and client CA from PEM
//! files, TLS 1.2 and 1.3 only, and a holder that reloads them without a
//! restart.
//!
//! Every listener serves TLS in every model, and certificates rotate on
//! SIGHUP. This module is the part every model shares: it builds the `rustls::ServerConfig` from the operator's files,
//! checks them at start (a bad file stops the start with one line naming
//! it), and keeps the config current. The models (the reactor drives
//! rustls's `ServerConnection` on mio, as rustls's `tlsserver-mio` example
//! does; the threaded models use rustls streams, the tokio models
//! `tokio-rustls`) take a connection from [`TlsSource::accept`].
//!
//! # Rotation
//!
//! [`TlsSource::reload`] re-reads the three files and swaps the config only
//! if all of them load and agree (the key matches the certificate): on a bad
//! file the previous config stays in use and the error is returned (and
//! counted, [`TlsSource::reload_failures`]). A connection keeps the config
//! it was accepted with (it holds an `Arc` of it), so a reload never
//! disturbs one already open.
//!
//! # What a connection holds
//!
//! rustls bounds each buffer of a connection; [`TlsSource::accept`] sets the
//! one it lets us choose:
//!
//! * outgoing: plaintext written before the handshake ends, and encrypted
//!   records not yet written to the socket, each at most [`BUFFER_LIMIT`]
//!   (rustls's default is 64 KiB). A model writes its output through
//!   `writer()`, which takes what fits and says how much; the rest stays in
//!   the model's own output buffer, which `--max-output` already bounds.
//!   Handshake messages are not counted against it: they are bounded by the
//!   certificate chain's size;
//! * incoming: decrypted plaintext not yet read by the model, at most
//!   16 KiB (rustls 0.23's fixed `DEFAULT_RECEIVED_PLAINTEXT_LIMIT`:
//!   `read_tls` refuses to read more until it is drained), and the record
//!   being deframed, at most one record (16 KiB + 2 KiB of overhead), or
//!   64 KiB while a handshake message is being joined.
//!
//! So a connection holds at most about 16 + 18 + 32 + 32 ≈ 100 KiB of TLS
//! buffers while busy (received plaintext, the record being deframed, and
//! the two outgoing buffers at [`BUFFER_LIMIT`]), plus its fixed state. Idle
//! after its handshake it holds far less: `tests/tls_memory.rs` measures
//! 6.6 KiB of heap and 1.2 KiB inline (`size_of::<ServerConnection>()`) for
//! a TLS 1.3 connection with an ECDSA P-256 certificate (rustls 0.23.48),
//! session tickets included. The reactor counts the records a connection
//! holds unwritten (up to [`BUFFER_LIMIT`]) in its `--max-output-total`
//! charge.
//!
//! Session resumption: rustls's default server-side cache of 256 sessions
//! (TLS 1.3 tickets are stateful, kept in it), so resumption costs a
//! bounded amount of memory too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection};

use crate::pem::{self, provider, PemError};
use crate::secret_file::{self as secrets, MAX_SECRET};

/// The limit set on each outgoing buffer of a connection
/// (`ServerConnection::set_buffer_limit`): two full TLS records of
/// plaintext, and as much encrypted, then backpressure to the model.
pub const BUFFER_LIMIT: usize = 32 << 10;

/// Received plaintext a connection holds at most (rustls 0.23's fixed limit).
pub const RECEIVED_PLAINTEXT_LIMIT: usize = 16 << 10;

/// Where the server's TLS identity comes from: the operator's PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`--tls-cert-file`).
    pub cert: PathBuf,
    /// The certificate's private key (`--tls-key-file`); a file only the
    /// server's user may read, like every secret (`ops::secrets`).
    pub key: PathBuf,
    /// When set, clients must present a certificate chaining to one of
    /// these CA certificates: mutual TLS (`--tls-ca-cert-file`).
    pub client_ca: Option<PathBuf>,
}

/// A TLS configuration that cannot be built: one line naming the file at fault.
#[derive(Debug)]
pub struct TlsError(String);

impl TlsError {
    fn file(path: &Path, what: impl fmt::Display) -> TlsError {
        TlsError(format!("{}: {what}", path.display()))
    }
}

impl From<PemError> for TlsError {
    fn from(e: PemError) -> TlsError {
        TlsError(e.to_string())
    }
}

impl From<secrets::SecretError> for TlsError {
    fn from(e: secrets::SecretError) -> TlsError {
        TlsError(e.to_string())
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The protocol versions served: TLS 1.3 and 1.2, nothing older.
pub const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Builds a server config from the files: reads and checks all of them.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = pem::read_certs(&files.cert)?;
    // The key is a secret: private, regular, bounded (ops::secrets' rules).
    let key_text = secrets::read_protected(&files.key, MAX_SECRET)?;
    let key = pem::private_key(&files.key, &key_text)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = pem::read_roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::file(ca, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(certs, key).map_err(|e| {
        TlsError(format!(
            "{} and {}: the key does not fit the certificate, or is of an unsupported kind: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })
}

/// The server's current TLS configuration, reloadable.
///
/// One per server, shared by every listener and model: [`current`] for
/// each new connection (a read lock and an `Arc` clone, some tens of
/// nanoseconds, against a handshake's hundreds of microseconds), and
/// [`reload`] on SIGHUP.
///
/// [`current`]: TlsSource::current
/// [`reload`]: TlsSource::reload
#[derive(Debug)]
pub struct TlsSource {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl TlsSource {
    /// Loads the files; an error stops the start.
    pub fn load(files: TlsFiles) -> Result<TlsSource, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsSource {
            files,
            current: RwLock::new(Arc::new(config)),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// The files it loads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        // A panic while the lock was held cannot leave a half-swapped Arc.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files. Swaps the configuration only if all of them load
    /// and agree; otherwise the previous one stays in use, the failure is
    /// counted, and the error (naming the file) is returned for the log.
    /// Connections already open keep the configuration they started with.
    pub fn reload(&self) -> Result<(), TlsError> {
        match server_config(&self.files) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Successful reloads so far.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Failed reloads so far (`tls_reload_failures` in `stats` and the metrics).
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// A server connection for a newly accepted socket, on the current
    /// configuration, with its outgoing buffers limited to [`BUFFER_LIMIT`].
    pub fn accept(&self) -> Result<ServerConnection, rustls::Error> {
        let mut conn = ServerConnection::new(self.current())?;
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(conn)
    }
}

#[cfg(test)]
mod tests;
