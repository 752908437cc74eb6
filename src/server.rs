//! One front door for every server model: configuration, bind, run, shut down.
//!
//! The binary, the tests and the benchmarks start servers only through
//! [`Server`], so a model is chosen by a value ([`Model`]), never by code.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::protocol::{write_error_frame, ErrorCode, RpcError, DEFAULT_MAX_FRAME};
use crate::service::Service;
use crate::{reactor, threaded};

/// Which I/O model serves the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One thread, one mio `Poll`, every connection multiplexed on it.
    Reactor,
    /// A thread per connection (the seed's model).
    Threaded,
    /// A fixed pool of threads, each serving one connection at a time.
    Pool,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Reactor, Model::Threaded, Model::Pool];

    pub fn name(self) -> &'static str {
        match self {
            Model::Reactor => "reactor",
            Model::Threaded => "threaded",
            Model::Pool => "pool",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Limits that protect the server from its clients (see PROTOCOL.md).
#[derive(Debug, Clone, Copy)]
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

impl Limits {
    /// The one `overloaded` response a connection over `max_conns` gets.
    pub fn refusal_frame(&self) -> Vec<u8> {
        let message = format!("server is at its limit of {} connections", self.max_conns);
        let mut frame = Vec::new();
        write_error_frame(
            &mut frame,
            &RpcError::new(ErrorCode::Overloaded, message),
            None,
        );
        frame
    }
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

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub model: Model,
    pub limits: Limits,
    /// Threads in the `pool` model.
    pub pool_size: usize,
    /// Worker threads for heavy requests in the `reactor` model.
    pub workers: usize,
    /// Whether the reactor runs heavy requests on its workers (`--no-offload` clears it).
    pub offload: bool,
    /// Whether to stop on SIGINT and SIGTERM (the binary sets it; tests use a [`ShutdownHandle`]).
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
    /// What `stats` reports about the server.
    fn info(&self) -> serde_json::Value {
        let l = &self.limits;
        let mut info = json!({
            "model": self.model.name(),
            "limits": {
                "max_frame": l.max_frame,
                "max_conns": l.max_conns,
                "idle_timeout_s": l.idle_timeout.map_or(0, |d| d.as_secs()),
                "max_output": l.max_output,
            },
        });
        match self.model {
            Model::Pool => info["pool_size"] = json!(self.pool_size),
            Model::Reactor => info["workers"] = json!(if self.offload { self.workers } else { 0 }),
            Model::Threaded => {}
        }
        info
    }
}

/// Asks a running server to stop; cheap to clone and safe from any thread.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<ShutdownInner>);

struct ShutdownInner {
    requested: AtomicBool,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl ShutdownHandle {
    /// A handle that calls `wake` to get the server's attention.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> ShutdownHandle {
        ShutdownHandle(Arc::new(ShutdownInner {
            requested: AtomicBool::new(false),
            wake: Box::new(wake),
        }))
    }

    /// Starts a graceful shutdown; returns at once.
    pub fn shutdown(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        (self.0.wake)();
    }

    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }
}

enum Inner {
    Reactor(Box<reactor::Reactor>),
    Threaded(threaded::Threaded),
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    inner: Inner,
    local_addr: SocketAddr,
}

impl Server {
    /// Binds the listening socket; the port is known from here on.
    pub fn bind(config: Config, service: Arc<Service>) -> io::Result<Server> {
        service.stats().set_server_info(config.info());
        let inner = match config.model {
            Model::Reactor => Inner::Reactor(Box::new(reactor::Reactor::bind(config, service)?)),
            Model::Threaded | Model::Pool => {
                Inner::Threaded(threaded::Threaded::bind(config, service)?)
            }
        };
        let local_addr = match &inner {
            Inner::Reactor(r) => r.local_addr(),
            Inner::Threaded(t) => t.local_addr(),
        }?;
        Ok(Server { inner, local_addr })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to stop the server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        match &self.inner {
            Inner::Reactor(r) => r.shutdown_handle(),
            Inner::Threaded(t) => t.shutdown_handle(),
        }
    }

    /// Serves until shut down; returns once every connection is closed.
    pub fn run(self) -> io::Result<()> {
        match self.inner {
            Inner::Reactor(r) => r.run(),
            Inner::Threaded(t) => t.run(),
        }
    }
}
