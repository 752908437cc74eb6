//! `reactor-rpc serve`: flags (each also readable from `REACTOR_RPC_<FLAG>`),
//! their validation, and starting the server.
//!
//! A flag with a value that cannot work (`--max-conns 0`, `--max-output 0`,
//! a size that is not a size) is refused by the parser with one line naming
//! the flag and the allowed range, and exit status 2, before anything is bound.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use log::error;

use crate::final_save::FinalSave;
use crate::logging;
use crate::size::parse_size;
use reactor_rpc::ops::persist::{self, PersistConfig};
use reactor_rpc::ops::pidfile::Pidfile;
use reactor_rpc::ops::secrets;
use reactor_rpc::ops::snapshot::LoadLimits;
use reactor_rpc::ops::systemd::{self, Inherited};
use reactor_rpc::service::auth::Auth;
use reactor_rpc::service::{CacheConfig, EvictionPolicy, Registry};
use reactor_rpc::tls::{TlsFiles, TlsSource};
use reactor_rpc::{cpus, Config, Model, Security, Server, Service};

/// Flags of `reactor-rpc serve`.
#[derive(clap::Args)]
#[command(version)]
pub struct ServeArgs {
    /// Address to listen on, host:port (port 0 picks a free port; the log
    /// says which), or `none`: no plaintext JSON port (with --tls-addr).
    #[arg(long, env = "REACTOR_RPC_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Server model: reactor, threaded, pool, tokio or tokio-mt (the last two with
    /// the `tokio-model` feature, on by default).
    #[arg(long, env = "REACTOR_RPC_MODEL", default_value_t = Model::Reactor)]
    model: Model,
    /// Largest request body (bytes, or with k/m/g); a larger length prefix gets
    /// frame_too_large and a close. 1 to 4g-1.
    #[arg(long, env = "REACTOR_RPC_MAX_FRAME", default_value = "1m", value_parser = max_frame)]
    max_frame: u32,
    /// Most client connections (the RPC and RESP ports together) served at
    /// once; one more gets `overloaded` and is closed. Metrics connections
    /// do not count (see --metrics-max-conns).
    #[arg(long, env = "REACTOR_RPC_MAX_CONNS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_conns: u64,
    /// Most metrics-port connections served at once, a limit of their own;
    /// one more gets HTTP 503 and is closed.
    #[arg(long, env = "REACTOR_RPC_METRICS_MAX_CONNS", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    metrics_max_conns: u64,
    /// Close connections that send nothing for this many seconds (0: never).
    #[arg(long, env = "REACTOR_RPC_IDLE_TIMEOUT", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    idle_timeout: u64,
    /// Pending output per connection (bytes, or with k/m/g) above which its
    /// requests are no longer read. At least 1.
    #[arg(long, env = "REACTOR_RPC_MAX_OUTPUT", default_value = "4m", value_parser = nonzero_size)]
    max_output: u64,
    /// The largest reply one request may build (bytes, or with k/m/g): a
    /// larger one is answered with an error (`reply_too_large`, RESP `-ERR
    /// reply too large`). At least 1.
    #[arg(long, env = "REACTOR_RPC_MAX_REPLY", default_value = "64m", value_parser = nonzero_size)]
    max_reply: u64,
    /// A frame whose first byte has arrived must be complete within this many
    /// seconds, or the connection is closed ("frame timeout").
    #[arg(long, env = "REACTOR_RPC_FRAME_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    frame_timeout: u64,
    /// Most client connections (RPC and RESP) one IP address may hold; one
    /// more gets `overloaded` and is closed (0: no limit).
    #[arg(long, env = "REACTOR_RPC_MAX_CONNS_PER_IP", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    max_conns_per_ip: u64,
    /// Pending output of all connections together (bytes, or with k/m/g) above
    /// which every connection still holding output stops being read until it
    /// drains; reactor and tokio models (default: a quarter of --maxmemory,
    /// 256m when that is unlimited). At least 1.
    #[arg(long, env = "REACTOR_RPC_MAX_OUTPUT_TOTAL", value_parser = nonzero_size)]
    max_output_total: Option<u64>,
    /// Largest RESP command (bytes, or with k/m/g): its arguments' lengths
    /// plus 32 bytes each. Larger gets `-ERR Protocol error: too big
    /// multibulk request` and a close, as soon as a header shows it. At
    /// least 1k.
    #[arg(long, env = "REACTOR_RPC_MAX_COMMAND", default_value = "64m", value_parser = max_command)]
    max_command: u64,
    /// Input received and not yet answered, of all connections together
    /// (bytes, or with k/m/g): above it, the connection holding the most is
    /// closed (default: a quarter of --maxmemory, 256m when that is
    /// unlimited). At least --max-command and --max-frame, so that a request
    /// of the largest size fits.
    #[arg(long, env = "REACTOR_RPC_MAX_INPUT_TOTAL", value_parser = nonzero_size)]
    max_input_total: Option<u64>,
    /// Memory the cache's keys and values may use (bytes, or with k/m/g; 0:
    /// unlimited). At the bound, writes evict per --maxmemory-policy or get `oom`.
    #[arg(long, env = "REACTOR_RPC_MAXMEMORY", default_value = "1g", value_parser = parse_size)]
    maxmemory: u64,
    /// What a write does at --maxmemory: allkeys-lru, volatile-lru,
    /// allkeys-random, volatile-ttl or noeviction (answer `oom`).
    #[arg(long, env = "REACTOR_RPC_MAXMEMORY_POLICY", default_value = "allkeys-lru",
          value_parser = policy)]
    maxmemory_policy: EvictionPolicy,
    /// Threads in the pool model (default: 4 × CPUs), per port; a connection
    /// that finds them all busy for 250 ms is refused `overloaded`.
    #[arg(long, env = "REACTOR_RPC_POOL_SIZE",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pool_size: Option<u64>,
    /// Worker threads for heavy requests in the reactor and tokio models (default: CPUs).
    #[arg(long, env = "REACTOR_RPC_WORKERS",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    workers: Option<u64>,
    /// Run every request inline on the event loop, heavy or not (for comparison).
    #[arg(long, env = "REACTOR_RPC_NO_OFFLOAD")]
    no_offload: bool,
    /// Also serve the Redis protocol (RESP2/RESP3) on this host:port, on the
    /// same cache: redis-cli, redis-py, redis-benchmark and twemproxy work.
    #[arg(long, env = "REACTOR_RPC_RESP_ADDR")]
    resp_addr: Option<String>,
    /// Serve `GET /metrics` (Prometheus text format) on this host:port.
    #[arg(long, env = "REACTOR_RPC_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// Write this process's pid to this file at start and hold a lock on it
    /// (flock) while running; removed at a clean exit. A file another
    /// process holds the lock of stops the server (exit 2); an unlocked one
    /// is stale, whatever pid it names.
    #[arg(long, env = "REACTOR_RPC_PIDFILE")]
    pidfile: Option<PathBuf>,
    /// Keep the cache in this snapshot file: loaded at start, written at a
    /// graceful shutdown, every --save-interval, and by the `save` method
    /// (RESP: SAVE, BGSAVE). Its directory must exist and be writable.
    #[arg(long, env = "REACTOR_RPC_SNAPSHOT")]
    snapshot: Option<PathBuf>,
    /// With --snapshot: seconds between saves, each only if the cache changed
    /// or the last save failed (0: never).
    #[arg(long, env = "REACTOR_RPC_SAVE_INTERVAL", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    save_interval: u64,
    /// With --snapshot: move a snapshot that does not load aside to
    /// PATH.corrupt-<unix time> and start empty, instead of refusing to start.
    #[arg(long, env = "REACTOR_RPC_SNAPSHOT_DISCARD_CORRUPT")]
    snapshot_discard_corrupt: bool,
    /// With --snapshot: after a failed save, refuse writes (JSON `save_failed`,
    /// RESP `-MISCONF`) until a save succeeds, as Redis's
    /// stop-writes-on-bgsave-error: yes or no.
    #[arg(long, env = "REACTOR_RPC_STOP_WRITES_ON_SAVE_ERROR", default_value = "yes",
          action = clap::ArgAction::Set, value_parser = yes_no)]
    stop_writes_on_save_error: bool,
    /// Log level.
    #[arg(long, env = "REACTOR_RPC_LOG_LEVEL", default_value = "info",
          value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
    log_level: String,
    /// Write the log to this file instead of stderr (SIGHUP reopens it).
    #[arg(long, env = "REACTOR_RPC_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// The password of the user `default` (role admin), as Redis's
    /// requirepass, read from this file: not readable by every user; one
    /// trailing newline is not part of it. Or give the password itself in
    /// the environment variable REACTOR_RPC_REQUIREPASS (removed from the
    /// environment at start). Never a command-line value.
    #[arg(long, env = "REACTOR_RPC_REQUIREPASS_FILE", value_name = "PATH")]
    requirepass_file: Option<PathBuf>,
    /// Users, one per line: NAME sha256:HEX ROLE (read, write or admin); `#`
    /// starts a comment. `reactor-rpc hash-password` makes the hash. Not
    /// readable by every user.
    #[arg(long, env = "REACTOR_RPC_USERS_FILE", value_name = "PATH")]
    users_file: Option<PathBuf>,
    /// GET /metrics needs `Authorization: Bearer TOKEN`, TOKEN read from
    /// this file (as Prometheus's authorization.credentials_file sends it).
    #[arg(long, env = "REACTOR_RPC_METRICS_TOKEN_FILE", value_name = "PATH")]
    metrics_token_file: Option<PathBuf>,
    /// yes: with no user and no password configured, refuse peers that are
    /// not loopback (as Redis's protected mode).
    #[arg(long, env = "REACTOR_RPC_PROTECTED_MODE", default_value = "yes",
          value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set)]
    protected_mode: bool,
    /// The server's certificate chain, PEM, leaf first (TLS listeners).
    #[arg(long, env = "REACTOR_RPC_TLS_CERT_FILE", value_name = "PATH")]
    tls_cert_file: Option<PathBuf>,
    /// The certificate's private key, PEM; not readable by every user.
    #[arg(long, env = "REACTOR_RPC_TLS_KEY_FILE", value_name = "PATH")]
    tls_key_file: Option<PathBuf>,
    /// CA certificates, PEM: TLS clients must present a certificate that
    /// chains to one of them (mutual TLS).
    #[arg(long, env = "REACTOR_RPC_TLS_CA_CERT_FILE", value_name = "PATH")]
    tls_ca_cert_file: Option<PathBuf>,
    /// Serve the JSON protocol over TLS on this host:port (TLS 1.2 and 1.3).
    #[arg(long, env = "REACTOR_RPC_TLS_ADDR", value_name = "HOST:PORT")]
    tls_addr: Option<String>,
    /// Serve the Redis protocol over TLS on this host:port (redis-cli --tls).
    #[arg(long, env = "REACTOR_RPC_RESP_TLS_ADDR", value_name = "HOST:PORT")]
    resp_tls_addr: Option<String>,
    /// The metrics port (--metrics-addr) speaks HTTPS.
    #[arg(long, env = "REACTOR_RPC_METRICS_TLS")]
    metrics_tls: bool,
}

fn yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{s:?} is not yes or no")),
    }
}

/// The environment variable holding the requirepass password itself.
const REQUIREPASS_ENV: &str = "REACTOR_RPC_REQUIREPASS";

/// Takes the requirepass password out of the environment (see
/// [`secrets::take_env_secret`]). Call before any thread starts.
pub fn take_env_requirepass() -> Option<Vec<u8>> {
    secrets::take_env_secret(REQUIREPASS_ENV)
}

/// The security flags that must come together, checked before any file is
/// read: one line naming what is missing.
fn check_security_flags(args: &ServeArgs, env_password: bool) -> Result<(), String> {
    let cert = args.tls_cert_file.is_some();
    let key = args.tls_key_file.is_some();
    if cert != key {
        return Err("--tls-cert-file and --tls-key-file go together".into());
    }
    let listeners = [
        ("--tls-addr", args.tls_addr.is_some()),
        ("--resp-tls-addr", args.resp_tls_addr.is_some()),
        ("--metrics-tls", args.metrics_tls),
    ];
    if let Some((flag, _)) = listeners.iter().find(|(_, on)| *on).filter(|_| !cert) {
        return Err(format!("{flag} needs --tls-cert-file and --tls-key-file"));
    }
    if args.tls_ca_cert_file.is_some() && !cert {
        return Err("--tls-ca-cert-file needs --tls-cert-file and --tls-key-file".into());
    }
    if cert && !listeners.iter().any(|(_, on)| *on) {
        return Err("--tls-cert-file is given but no listener speaks TLS \
                    (--tls-addr, --resp-tls-addr or --metrics-tls)"
            .into());
    }
    if args.metrics_addr.is_none() {
        if args.metrics_tls {
            return Err("--metrics-tls needs --metrics-addr".into());
        }
        if args.metrics_token_file.is_some() {
            return Err("--metrics-token-file needs --metrics-addr".into());
        }
    }
    if args.requirepass_file.is_some() && env_password {
        return Err(format!(
            "give the password once: --requirepass-file or {REQUIREPASS_ENV}, not both"
        ));
    }
    if args.addr == "none"
        && args.tls_addr.is_none()
        && args.resp_addr.is_none()
        && args.resp_tls_addr.is_none()
    {
        return Err("--addr none leaves nothing to serve \
                    (add --tls-addr, --resp-addr or --resp-tls-addr)"
            .into());
    }
    Ok(())
}

/// Reads every security file (users, password, token, certificate, key,
/// CA) and builds what the server will hold. An error is one line naming
/// the file, and never contains a secret.
fn load_security(
    args: &ServeArgs,
    env_password: Option<Vec<u8>>,
    addrs: &SecurityAddrs,
) -> Result<Security, String> {
    check_security_flags(args, env_password.is_some())?;
    let requirepass = match (&args.requirepass_file, env_password) {
        (Some(path), _) => Some(secrets::read_secret(path).map_err(|e| e.to_string())?),
        (None, Some(password)) if password.is_empty() => {
            return Err(format!("{REQUIREPASS_ENV} is empty"));
        }
        (None, password) => password,
    };
    let users = secrets::load_users(args.users_file.as_deref(), requirepass.as_deref())
        .map_err(|e| e.to_string())?;
    let mut security = Security::default();
    security.auth = Arc::new(Auth::new(users));
    security.protected_mode = args.protected_mode;
    security.metrics_token = args
        .metrics_token_file
        .as_deref()
        .map(secrets::read_token_file)
        .transpose()
        .map_err(|e| e.to_string())?;
    if let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) {
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_ca_cert_file.clone(),
        };
        security.tls = Some(Arc::new(TlsSource::load(files).map_err(|e| e.to_string())?));
    }
    security.tls_addr = addrs.tls;
    security.resp_tls_addr = addrs.resp_tls;
    security.metrics_tls = args.metrics_tls;
    security.plaintext_rpc = args.addr != "none";
    Ok(security)
}

fn max_frame(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    match u32::try_from(n) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{n} is not in 1..=4294967295 bytes")),
    }
}

fn max_command(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        n if n >= 1024 => Ok(n),
        n => Err(format!("{n} is not in 1024..=18446744073709551615 bytes")),
    }
}

/// `--max-input-total`: as given, which must leave room for one request of
/// the largest size (a RESP command of `--max-command`, a JSON frame of
/// `--max-frame` and its 4-byte header); by default a quarter of
/// `--maxmemory` (256 MiB when that is unlimited), and at least that room.
fn max_input_total(args: &ServeArgs) -> Result<u64, String> {
    let frame = u64::from(args.max_frame) + 4;
    let (room, flag) = if frame > args.max_command {
        (
            frame,
            format!("--max-frame {} (plus its 4-byte header)", args.max_frame),
        )
    } else {
        (
            args.max_command,
            format!("--max-command {}", args.max_command),
        )
    };
    match args.max_input_total {
        Some(total) if total < room => Err(format!(
            "--max-input-total {total} is below {flag}: a request of the largest size could \
             never be received"
        )),
        Some(total) => Ok(total),
        None if args.maxmemory == 0 => Ok((256 << 20u64).max(room)),
        None => Ok((args.maxmemory / 4).max(room)),
    }
}

fn policy(s: &str) -> Result<EvictionPolicy, String> {
    s.parse::<EvictionPolicy>().map_err(|e| e.to_string())
}

fn nonzero_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("0 is not in 1..=18446744073709551615 bytes".into()),
        n => Ok(n),
    }
}

/// The first address `addr` (given as `flag`) resolves to, so `localhost:8080` works.
fn resolve(flag: &str, addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {flag} {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{flag} {addr} resolves to no address"))
}

/// Every address flag, resolved: (--addr, --resp-addr, --metrics-addr).
/// `--addr none` leaves the default address, unused.
type Addrs = (SocketAddr, Option<SocketAddr>, Option<SocketAddr>);

/// The TLS listeners' addresses, resolved.
struct SecurityAddrs {
    tls: Option<SocketAddr>,
    resp_tls: Option<SocketAddr>,
}

fn resolve_all(args: &ServeArgs) -> Result<(Addrs, SecurityAddrs), String> {
    let optional =
        |flag: &str, addr: &Option<String>| addr.as_deref().map(|a| resolve(flag, a)).transpose();
    let rpc = match args.addr.as_str() {
        "none" => Config::default().addr,
        addr => resolve("--addr", addr)?,
    };
    Ok((
        (
            rpc,
            optional("--resp-addr", &args.resp_addr)?,
            optional("--metrics-addr", &args.metrics_addr)?,
        ),
        SecurityAddrs {
            tls: optional("--tls-addr", &args.tls_addr)?,
            resp_tls: optional("--resp-tls-addr", &args.resp_tls_addr)?,
        },
    ))
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Runs `serve` until a signal stops the server.
pub fn run(args: ServeArgs) -> ExitCode {
    // First, before any thread exists: the password leaves the environment.
    let env_password = take_env_requirepass();
    let ((addr, resp_addr, metrics_addr), security_addrs) = match resolve_all(&args) {
        Ok(addrs) => addrs,
        Err(e) => {
            eprintln!("reactor-rpc: {e}");
            return ExitCode::from(2);
        }
    };
    let input_total = match max_input_total(&args) {
        Ok(total) => total,
        Err(e) => {
            eprintln!("reactor-rpc: {e}");
            return ExitCode::from(2);
        }
    };
    let log_file = match logging::init(&args.log_level, args.log_file.as_deref()) {
        Ok(log_file) => log_file,
        Err(e) => {
            eprintln!("reactor-rpc: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = Config::default();
    config.addr = addr;
    config.resp_addr = resp_addr;
    config.metrics_addr = metrics_addr;
    if let Some(log) = log_file.clone() {
        config.hooks.on_hangup = Some(Arc::new(move || match log.reopen() {
            Ok(()) => log::info!("reopened log file"),
            Err(e) => log::error!("cannot reopen the log file: {e}"),
        }));
    }
    config.model = args.model;
    config.limits.max_frame = args.max_frame;
    config.limits.max_conns = saturating_usize(args.max_conns);
    config.limits.metrics_max_conns = saturating_usize(args.metrics_max_conns);
    config.limits.idle_timeout =
        (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    config.limits.max_output = saturating_usize(args.max_output);
    config.limits.max_reply = saturating_usize(args.max_reply);
    config.limits.frame_timeout = Duration::from_secs(args.frame_timeout);
    config.limits.max_conns_per_ip = saturating_usize(args.max_conns_per_ip);
    config.limits.max_output_total = match (args.max_output_total, args.maxmemory) {
        (Some(total), _) => saturating_usize(total),
        (None, 0) => 256 << 20,
        (None, maxmemory) => saturating_usize((maxmemory / 4).max(1)),
    };
    config.limits.max_command = saturating_usize(args.max_command);
    config.limits.max_input_total = saturating_usize(input_total);
    let cache = CacheConfig {
        maxmemory: saturating_usize(args.maxmemory),
        policy: args.maxmemory_policy,
    };
    config.pool_size = args.pool_size.map_or(4 * cpus(), saturating_usize);
    config.workers = args.workers.map_or_else(cpus, saturating_usize);
    config.offload = !args.no_offload;
    config.signals = true;
    config.hooks.on_shutdown = Some(Arc::new(|| {
        if let Err(e) = systemd::notify_stopping() {
            log::warn!("cannot tell systemd STOPPING=1: {e}");
        }
    }));
    config.security = match load_security(&args, env_password, &security_addrs) {
        Ok(security) => security,
        Err(e) => return refuse(log_file.is_some(), &e),
    };
    let inherited = match inherited_listeners() {
        Ok(inherited) => inherited,
        Err(e) => return refuse(log_file.is_some(), &e),
    };
    let service = Arc::new(Service::with_cache_config(Registry::builtin(), cache));
    // With a snapshot, a terminate signal saves first (src/final_save.rs).
    let final_save = args
        .snapshot
        .is_some()
        .then(|| FinalSave::new(service.clone()));
    config.hooks.on_terminate = final_save.as_ref().map(FinalSave::hook);
    // Before the snapshot is touched: a second server on the same files
    // stops here. Held until the server has stopped; dropping it removes
    // the file.
    let _pidfile = match args.pidfile.as_deref().map(Pidfile::create).transpose() {
        Ok(pidfile) => pidfile,
        Err(e) => return refuse(log_file.is_some(), &e),
    };
    let server = match Server::bind_with(config, service.clone(), inherited) {
        Ok(server) => server,
        Err(e) => return refuse(log_file.is_some(), &format!("cannot listen on {e}")),
    };
    // Loaded after the bind, whose `listening on` line comes first (tools
    // read the port from it); no connection is served until `run`.
    let persister = match &args.snapshot {
        Some(path) => {
            let mut persist = PersistConfig::new(path);
            persist.save_interval =
                (args.save_interval > 0).then(|| Duration::from_secs(args.save_interval));
            persist.discard_corrupt = args.snapshot_discard_corrupt;
            persist.stop_writes_on_error = args.stop_writes_on_save_error;
            persist.limits = LoadLimits::for_max_frame(args.max_frame);
            match persist::start(&service, persist) {
                Ok(persister) => {
                    if let Some(final_save) = &final_save {
                        final_save.attach(&persister);
                    }
                    Some(persister)
                }
                Err(e) => return refuse(log_file.is_some(), &e),
            }
        }
        None => None,
    };
    if let Err(e) = systemd::notify_ready() {
        log::warn!("cannot tell systemd READY=1: {e}");
    }
    match (server.run(), persister, final_save) {
        (Ok(()), Some(persister), Some(final_save)) => final_save.finish(persister),
        (Ok(()), _, _) => ExitCode::SUCCESS,
        (Err(e), _, _) => {
            error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line where the operator looks (stderr, and the log file if any), and
/// exit status 2: the configuration or the environment forbids starting.
fn refuse(to_log: bool, e: &dyn std::fmt::Display) -> ExitCode {
    if to_log {
        error!("{e}");
    }
    eprintln!("reactor-rpc: {e}");
    ExitCode::from(2)
}

/// The listening sockets systemd handed over (socket activation), by role;
/// none when `LISTEN_PID` does not name this process.
fn inherited_listeners() -> Result<Inherited, systemd::ActivationError> {
    let inherited = systemd::inherited_listeners()?;
    for (role, addr) in inherited.addrs() {
        log::info!("serving the inherited {role} socket {addr} (socket activation)");
    }
    Ok(inherited)
}
