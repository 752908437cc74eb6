//! What a server is told at start: the model, the address, and the limits.
//!
//! A leaf module: the server models import it, and it imports none of them,
//! so a model never depends on another (only `server.rs` knows them all).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reactor_rpc_core::service::ServerInfo;
use reactor_rpc_core::{Endpoint, Role};
use reactor_rpc_protocol::DEFAULT_MAX_FRAME;

use crate::shutdown::ShutdownHandle;

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
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio-model")))]
    Tokio,
    /// A task per connection on tokio's multi_thread runtime (a worker thread per CPU).
    #[cfg(feature = "tokio-model")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio-model")))]
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
    /// Client connections (the RPC and RESP ports together) served at once;
    /// one more gets `overloaded` (RESP: `max number of clients reached`)
    /// and a close. Metrics connections never count here.
    pub max_conns: usize,
    /// Metrics connections served at once, a limit of their own; one more
    /// gets a 503 and a close. In the threaded models each is served by a
    /// thread of its own, so that one idle keep-alive scraper holds no other.
    pub metrics_max_conns: usize,
    /// Close a connection that sends nothing for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Pending output per connection above which its input is no longer read.
    pub max_output: usize,
    /// A frame whose first byte arrived must be complete within this, or the
    /// connection is closed ("frame timeout"): dribbling bytes into a frame
    /// does not keep a connection alive.
    pub frame_timeout: Duration,
    /// Client connections (RPC and RESP) one IP address may hold at once;
    /// one more gets `overloaded` and a close (0: no limit). Metrics
    /// connections have `metrics_max_conns` instead.
    pub max_conns_per_ip: usize,
    /// Pending output of all connections together above which the reactor
    /// and the tokio models stop adding output: a connection holding output
    /// decodes at most one response more until the total drains below it.
    /// The threaded models have no total (a thread blocks on its own write).
    pub max_output_total: usize,
    /// The largest reply one request may build (bytes owned, plus a fixed
    /// cost per shared cached value); a larger one is answered with an
    /// error instead (JSON `reply_too_large`, RESP `-ERR reply too large`).
    pub max_reply: usize,
    /// Largest RESP command: its arguments' lengths plus 32 bytes each
    /// (`--max-command`). Larger gets `-ERR Protocol error: too big
    /// multibulk request` and a close, as soon as a header shows it; so a
    /// client's unconsumed input is at most one command below this, plus
    /// one read (a JSON client's: `max_frame` plus one read).
    pub max_command: usize,
    /// Unconsumed input of all connections together, every protocol
    /// (`--max-input-total`): above it, the connection holding the most is
    /// closed (logged at warn, `bye (input total)`), until the total is
    /// within it again. Every model enforces it.
    pub max_input_total: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_conns: 10_000,
            metrics_max_conns: 16,
            idle_timeout: Some(Duration::from_secs(300)),
            max_output: 4 << 20,
            frame_timeout: Duration::from_secs(30),
            max_conns_per_ip: 0,
            max_output_total: 256 << 20,
            max_reply: reactor_rpc_core::session::DEFAULT_MAX_REPLY,
            max_command: reactor_rpc_protocol::resp::DEFAULT_MAX_COMMAND,
            max_input_total: 256 << 20,
        }
    }
}

impl Limits {
    /// The options every connection's session runs with; `offload`: whether
    /// heavy requests stop for a worker.
    pub(crate) fn session_options(&self, offload: bool) -> reactor_rpc_core::session::Options {
        let mut opts = reactor_rpc_core::session::Options::new(self.max_frame);
        opts.offload = offload;
        opts.max_output = self.max_output;
        opts.max_command = self.max_command;
        opts.max_reply = self.max_reply;
        opts
    }
}

/// Everything a server needs to start. Build it from [`Config::default`] and
/// change the fields you need:
///
/// ```
/// use reactor_rpc_server::{Config, Model};
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
    /// How long a connection waits for a free thread of the `pool` model
    /// before it is refused with `overloaded` (a Redis client reads `-ERR
    /// max number of clients reached`). The metrics port never waits: each
    /// scraper gets a thread of its own, up to `metrics_max_conns`.
    pub pool_wait: Duration,
    /// Worker threads for heavy requests in the `reactor`, `tokio` and
    /// `tokio-mt` models (the threaded models run every request on the
    /// connection's own thread).
    pub workers: usize,
    /// Whether the models with workers run heavy requests on them
    /// (`--no-offload` clears it).
    pub offload: bool,
    /// Whether to stop on SIGINT, SIGTERM and SIGQUIT (as
    /// [`Hooks::on_terminate`] says) and call the hangup hook on SIGHUP (the
    /// binary sets it; tests use a [`ShutdownHandle`]).
    pub signals: bool,
    /// How long a shutdown may spend delivering responses already produced.
    pub shutdown_grace: Duration,
    /// A second port speaking the Redis protocol (RESP) on the same cache.
    pub resp_addr: Option<SocketAddr>,
    /// A port serving `GET /metrics` (Prometheus text format).
    pub metrics_addr: Option<SocketAddr>,
    /// What the binary wants done on SIGHUP and when a shutdown begins.
    pub hooks: Hooks,
    /// Users, protected mode, the metrics token and TLS, in every model and
    /// on every listener.
    pub security: Security,
}

/// Who may connect and what they may do: authentication, protected mode,
/// the metrics token, and TLS listeners.
///
/// `serve` fills it from `--users-file`, `--requirepass-file` /
/// `REACTOR_RPC_REQUIREPASS`, `--protected-mode`, `--metrics-token-file`,
/// the `--tls-*` flags and `--addr none`, after checking every file.
/// [`Server::bind`](crate::Server::bind) gives `auth` and `metrics_token` to
/// the service, opens a listener for each TLS address, and every model
/// applies protected mode at accept.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Security {
    /// Users, passwords and the brute-force bound; no users: authentication off.
    pub auth: Arc<reactor_rpc_core::service::auth::Auth>,
    /// With authentication off, refuse non-loopback peers (`--protected-mode`, default yes).
    pub protected_mode: bool,
    /// The bearer token `GET /metrics` needs (`--metrics-token-file`).
    pub metrics_token: Option<reactor_rpc_core::service::auth::BearerToken>,
    /// The certificate, key and client CA, loaded and reloadable
    /// (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`).
    pub tls: Option<Arc<reactor_rpc_tls::TlsSource>>,
    /// The JSON protocol over TLS (`--tls-addr`).
    pub tls_addr: Option<SocketAddr>,
    /// RESP over TLS (`--resp-tls-addr`).
    pub resp_tls_addr: Option<SocketAddr>,
    /// The metrics port speaks HTTPS (`--metrics-tls`).
    pub metrics_tls: bool,
    /// Whether the plaintext JSON port (`addr`) is served; `--addr none` clears it.
    pub plaintext_rpc: bool,
}

impl Default for Security {
    /// Authentication off, protected mode on, no TLS, the plaintext port served.
    fn default() -> Security {
        Security {
            auth: Arc::new(reactor_rpc_core::service::auth::Auth::default()),
            protected_mode: true,
            metrics_token: None,
            tls: None,
            tls_addr: None,
            resp_tls_addr: None,
            metrics_tls: false,
            plaintext_rpc: true,
        }
    }
}

/// A callback a server makes on an event of its life.
pub type Hook = Arc<dyn Fn() + Send + Sync>;

/// A signal that asks the server to stop (when `signals` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Terminate {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, `systemctl stop`).
    Terminate,
    /// SIGQUIT: stop without waiting for anything the binary would do first.
    Quit,
}

impl Terminate {
    /// The signals a model registers for, with what each is.
    pub(crate) const SIGNALS: [(i32, Terminate); 3] = [
        (signal_hook::consts::SIGINT, Terminate::Interrupt),
        (signal_hook::consts::SIGTERM, Terminate::Terminate),
        (signal_hook::consts::SIGQUIT, Terminate::Quit),
    ];

    /// Which terminate signal `signal` is, if it is one.
    pub(crate) fn of(signal: i32) -> Option<Terminate> {
        Terminate::SIGNALS
            .into_iter()
            .find_map(|(number, t)| (number == signal).then_some(t))
    }

    /// The signal's name: `SIGINT`, `SIGTERM`, `SIGQUIT`.
    pub fn name(self) -> &'static str {
        match self {
            Terminate::Interrupt => "SIGINT",
            Terminate::Terminate => "SIGTERM",
            Terminate::Quit => "SIGQUIT",
        }
    }
}

impl fmt::Display for Terminate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the binary does with a terminate signal instead of the default
/// ([`ShutdownHandle::escalate`]): called with the signal and the server's
/// handle, on the model's signal-handling thread or task (the reactor's
/// event loop itself), so it must return at once and do any slow work (a
/// save) on a thread of its own, then stop the server through the handle.
pub type TerminateHook = Arc<dyn Fn(Terminate, &ShutdownHandle) + Send + Sync>;

/// Callbacks for events of a server's life, so that the binary can reopen
/// its log file on SIGHUP, tell systemd it is stopping, or save before it
/// stops, without the models knowing about any of it.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Hooks {
    /// Called on SIGHUP (when `signals` is set), which never stops the server.
    pub on_hangup: Option<Hook>,
    /// Called once, when a graceful shutdown begins.
    pub on_shutdown: Option<Hook>,
    /// Called on SIGINT, SIGTERM and SIGQUIT (when `signals` is set) instead
    /// of the default: the first starts a graceful shutdown, any later one
    /// closes every connection now.
    pub on_terminate: Option<TerminateHook>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_hangup", &self.on_hangup.is_some())
            .field("on_shutdown", &self.on_shutdown.is_some())
            .field("on_terminate", &self.on_terminate.is_some())
            .finish()
    }
}

impl Hooks {
    /// Runs `on_terminate` for `signal`, or the default.
    pub(crate) fn terminate(&self, signal: Terminate, handle: &ShutdownHandle) {
        log::debug!("signal {signal}");
        match &self.on_terminate {
            Some(hook) => hook(signal, handle),
            None => handle.escalate(),
        }
    }

    /// Runs `on_hangup`, if any.
    pub(crate) fn hangup(&self) {
        if let Some(hook) = &self.on_hangup {
            hook();
        }
    }

    /// Runs `on_shutdown`, if any.
    pub(crate) fn shutdown(&self) {
        if let Some(hook) = &self.on_shutdown {
            hook();
        }
    }
}

/// [`Config::pool_wait`]'s default: long enough for a thread to come free
/// when a burst of short connections meets a busy pool, short enough that
/// a client of a pool held by idle connections is answered (refused, at the
/// housekeeping tick after it, 100 ms at most) well within a second.
pub const DEFAULT_POOL_WAIT: Duration = Duration::from_millis(250);

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
            pool_wait: DEFAULT_POOL_WAIT,
            workers: cpus(),
            offload: true,
            signals: false,
            shutdown_grace: Duration::from_secs(5),
            resp_addr: None,
            metrics_addr: None,
            hooks: Hooks::default(),
            security: Security::default(),
        }
    }
}

impl Config {
    /// The address configured for `endpoint`'s listener, if it has one:
    /// `addr` (unless `--addr none`), `security.tls_addr`, `resp_addr`,
    /// `security.resp_tls_addr`, and `metrics_addr` as the plaintext or the
    /// TLS metrics endpoint, as `--metrics-tls` says.
    pub fn addr_of(&self, endpoint: Endpoint) -> Option<SocketAddr> {
        let s = &self.security;
        match (endpoint.role, endpoint.tls) {
            (Role::Rpc, false) => s.plaintext_rpc.then_some(self.addr),
            (Role::Rpc, true) => s.tls_addr,
            (Role::Resp, false) => self.resp_addr,
            (Role::Resp, true) => s.resp_tls_addr,
            (Role::Metrics, tls) => self.metrics_addr.filter(|_| s.metrics_tls == tls),
        }
    }

    /// What `stats` reports about the server (model, limits, threads).
    pub(crate) fn server_info(&self) -> ServerInfo {
        let l = &self.limits;
        let mut info = ServerInfo::default();
        info.model = self.model.name();
        info.max_frame = l.max_frame;
        info.max_conns = l.max_conns;
        info.metrics_max_conns = l.metrics_max_conns;
        info.idle_timeout_s = l.idle_timeout.map_or(0, |d| d.as_secs());
        info.max_output = l.max_output;
        info.max_reply = l.max_reply;
        info.frame_timeout_s = l.frame_timeout.as_secs();
        info.max_conns_per_ip = l.max_conns_per_ip;
        info.max_output_total =
            (!matches!(self.model, Model::Threaded | Model::Pool)).then_some(l.max_output_total);
        info.max_command = l.max_command;
        info.max_input_total = l.max_input_total;
        info.pool_size = (self.model == Model::Pool).then_some(self.pool_size);
        info.workers = self
            .model
            .offloads()
            .then_some(if self.offload { self.workers } else { 0 });
        info
    }
}
