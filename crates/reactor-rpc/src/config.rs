//! What a server is told at start: the model, the address, and the limits.
//!
//! A leaf module: the server models import it, and it imports none of them,
//! so a model never depends on another (only `server.rs` knows them all).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::protocol::DEFAULT_MAX_FRAME;

/// Which I/O model serves the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Model {
    /// One thread, one mio `Poll`, every connection multiplexed on it.
    Reactor,
    /// A thread per connection (the seed's model).
    Threaded,
    /// A fixed pool of threads, each serving one connection at a time.
    Pool,
    /// A task per connection on tokio's current_thread runtime (one thread, like the reactor).
    #[cfg(feature = "tokio-model")]
    Tokio,
    /// A task per connection on tokio's multi_thread runtime (a worker thread per CPU).
    #[cfg(feature = "tokio-model")]
    TokioMt,
}

impl Model {
    /// Every model, in the order the benchmarks and tests list them.
    #[cfg(not(feature = "tokio-model"))]
    pub const ALL: [Model; 3] = [Model::Reactor, Model::Threaded, Model::Pool];

    /// Every model, in the order the benchmarks and tests list them.
    #[cfg(feature = "tokio-model")]
    pub const ALL: [Model; 5] = [
        Model::Reactor,
        Model::Threaded,
        Model::Pool,
        Model::Tokio,
        Model::TokioMt,
    ];

    /// The model's name on the command line and in logs (`reactor`, `threaded`, `pool`,
    /// `tokio`, `tokio-mt`).
    pub fn name(self) -> &'static str {
        match self {
            Model::Reactor => "reactor",
            Model::Threaded => "threaded",
            Model::Pool => "pool",
            #[cfg(feature = "tokio-model")]
            Model::Tokio => "tokio",
            #[cfg(feature = "tokio-model")]
            Model::TokioMt => "tokio-mt",
        }
    }

    /// Whether the model runs heavy requests off its I/O threads (`--workers`, `--no-offload`).
    fn offloads(self) -> bool {
        match self {
            Model::Reactor => true,
            Model::Threaded | Model::Pool => false,
            #[cfg(feature = "tokio-model")]
            Model::Tokio | Model::TokioMt => true,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModel(pub String);

impl fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
        write!(
            f,
            "unknown model {:?} (expected one of: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownModel {}

impl FromStr for Model {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Model, UnknownModel> {
        Model::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownModel(s.to_string()))
    }
}

/// Limits that protect the server from its clients (see PROTOCOL.md).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// Largest request body; a larger length prefix gets `frame_too_large` and a close.
    pub max_frame: u32,
    /// Connections served at once; one more gets `overloaded` and a close.
    pub max_conns: usize,
    /// Close a connection that sends nothing for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Pending output per connection above which its input is no longer read.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_conns: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
            max_output: 4 << 20,
        }
    }
}

/// Everything a server needs to start. Build it from [`Config::default`] and
/// change the fields you need:
///
/// ```
/// use reactor_rpc::{Config, Model};
/// let mut config = Config::default();
/// config.addr = "127.0.0.1:0".parse().unwrap();
/// config.model = Model::Threaded;
/// config.limits.max_conns = 100;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Which I/O model serves the connections.
    pub model: Model,
    /// Limits on what clients can make the server do.
    pub limits: Limits,
    /// Threads in the `pool` model.
    pub pool_size: usize,
    /// Worker threads for heavy requests in the `reactor` model.
    pub workers: usize,
    /// Whether the reactor runs heavy requests on its workers (`--no-offload` clears it).
    pub offload: bool,
    /// Whether to stop on SIGINT and SIGTERM (the binary sets it; tests use a
    /// [`ShutdownHandle`](crate::ShutdownHandle)).
    pub signals: bool,
    /// How long a shutdown may spend delivering responses already produced.
    pub shutdown_grace: Duration,
}

/// CPUs available to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            model: Model::Reactor,
            limits: Limits::default(),
            pool_size: 4 * cpus(),
            workers: cpus(),
            offload: true,
            signals: false,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// What `stats` reports about the server (model, limits, threads).
    pub(crate) fn server_info(&self) -> crate::service::ServerInfo {
        let l = &self.limits;
        crate::service::ServerInfo {
            model: self.model.name(),
            max_frame: l.max_frame,
            max_conns: l.max_conns,
            idle_timeout_s: l.idle_timeout.map_or(0, |d| d.as_secs()),
            max_output: l.max_output,
            pool_size: (self.model == Model::Pool).then_some(self.pool_size),
            workers: self
                .model
                .offloads()
                .then_some(if self.offload { self.workers } else { 0 }),
        }
    }
}
