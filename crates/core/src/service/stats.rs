//! Counters every model updates, and the `stats` method that reports them.
//!
//! Plain relaxed atomics: a counter bump costs about a nanosecond on the
//! reactor's hot path, and nobody needs the counters to agree with each other
//! to the request.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{json, Value};

use super::cache::CacheInfo;
use super::persistence::{unix_ms_now, PersistenceStatus};
use super::{Access, Context, Method};
use reactor_rpc_protocol::message::write_json;
use reactor_rpc_protocol::{Json, RpcError};

/// What a server says about itself in `stats`: its model, limits and threads.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The model's name (`reactor`, `threaded`, `pool`).
    pub model: &'static str,
    /// `--max-frame`.
    pub max_frame: u32,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--idle-timeout` in seconds (0: off).
    pub idle_timeout_s: u64,
    /// `--max-output`.
    pub max_output: usize,
    /// `--frame-timeout` in seconds.
    pub frame_timeout_s: u64,
    /// `--max-conns-per-ip` (0: off).
    pub max_conns_per_ip: usize,
    /// `--max-output-total`, in the models that enforce it.
    pub max_output_total: Option<usize>,
    /// `--max-command`.
    pub max_command: usize,
    /// `--max-input-total`.
    pub max_input_total: usize,
    /// Threads of the pool model.
    pub pool_size: Option<usize>,
    /// Offload workers of the reactor model (0 with `--no-offload`).
    pub workers: Option<usize>,
}

impl ServerInfo {
    fn to_json(&self) -> Value {
        let mut info = json!({
            "model": self.model,
            "limits": {
                "max_frame": self.max_frame,
                "max_conns": self.max_conns,
                "idle_timeout_s": self.idle_timeout_s,
                "max_output": self.max_output,
                "frame_timeout_s": self.frame_timeout_s,
                "max_conns_per_ip": self.max_conns_per_ip,
                "max_command": self.max_command,
                "max_input_total": self.max_input_total,
            },
        });
        if let Some(n) = self.max_output_total {
            info["limits"]["max_output_total"] = json!(n);
        }
        if let Some(n) = self.pool_size {
            info["pool_size"] = json!(n);
        }
        if let Some(n) = self.workers {
            info["workers"] = json!(n);
        }
        info
    }
}

/// Gauges and counters whose state lives elsewhere (the server model, the
/// cache, the worker pool), read just before a render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings {
    /// Server model name for `reactor_rpc_build_info{model}`.
    pub model: &'static str,
    /// Connections open now (`reactor_rpc_connections`).
    pub connections: u64,
    /// Connections accepted since start (`reactor_rpc_connections_total`).
    pub connections_total: u64,
    /// Connections refused at the limit (`reactor_rpc_connections_rejected_total`).
    pub connections_rejected: u64,
    /// Keys in the cache (`reactor_rpc_keys`).
    pub keys: u64,
    /// Heavy jobs waiting for a worker (`reactor_rpc_jobs{state="queued"}`).
    pub jobs_queued: u64,
    /// Heavy jobs on a worker now (`reactor_rpc_jobs{state="running"}`).
    pub jobs_running: u64,
    /// Heavy jobs finished since start (`reactor_rpc_jobs{state="completed"}`).
    pub jobs_completed: u64,
    /// The cache's accounted memory (`reactor_rpc_used_memory_bytes`).
    pub used_memory_bytes: u64,
    /// Keys evicted under maxmemory (`reactor_rpc_evicted_keys_total`).
    pub evicted_keys_total: u64,
    /// Keys removed because their TTL passed (`reactor_rpc_expired_keys_total`).
    pub expired_keys_total: u64,
    /// Failed reloads of the TLS files (`reactor_rpc_tls_reload_failures_total`).
    pub tls_reload_failures: u64,
    /// The persistence figures (`reactor_rpc_last_save_*` and the like);
    /// `None` without a snapshot file, and they are left out.
    pub persistence: Option<PersistenceStatus>,
}

/// Server-wide counters.
pub struct Stats {
    started: Instant,
    requests: AtomicU64,
    connections: AtomicU64,
    connections_total: AtomicU64,
    rejected: AtomicU64,
    evicted: AtomicU64,
    input_held: AtomicU64,
    jobs_queued: AtomicU64,
    jobs_running: AtomicU64,
    jobs_completed: AtomicU64,
    tls_reload_failures: AtomicU64,
    /// What the server says about itself (model, limits), set once at start.
    server: OnceLock<Value>,
    /// The model's name, for the metrics' `build_info`.
    model: OnceLock<&'static str>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    /// Counters at zero, the clock started now.
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            input_held: AtomicU64::new(0),
            jobs_queued: AtomicU64::new(0),
            jobs_running: AtomicU64::new(0),
            jobs_completed: AtomicU64::new(0),
            tls_reload_failures: AtomicU64::new(0),
            server: OnceLock::new(),
            model: OnceLock::new(),
        }
    }

    /// Records the model name and limits a server runs with; the first call wins.
    pub fn set_server_info(&self, info: ServerInfo) {
        let _ = self.model.set(info.model);
        let _ = self.server.set(info.to_json());
    }

    /// The figures the metrics render that live here and in the cache.
    pub(crate) fn readings(&self, cache: &CacheInfo, persistence: PersistenceStatus) -> Readings {
        Readings {
            persistence: persistence.enabled.then_some(persistence),
            model: self.model.get().copied().unwrap_or(""),
            connections: self.connections(),
            connections_total: self.connections_total.load(Relaxed),
            connections_rejected: self.rejected.load(Relaxed),
            keys: cache.keys as u64,
            jobs_queued: self.jobs_queued.load(Relaxed),
            jobs_running: self.jobs_running.load(Relaxed),
            jobs_completed: self.jobs_completed.load(Relaxed),
            used_memory_bytes: cache.used_memory as u64,
            evicted_keys_total: cache.evicted_keys,
            expired_keys_total: cache.expired_keys,
            tls_reload_failures: self.tls_reload_failures(),
        }
    }

    /// One request answered (JSON or RESP).
    #[inline]
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// Requests answered since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// A connection was accepted and is served.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// A served connection closed.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// Connections served now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }

    /// A reload of the TLS certificate, key and CA (on SIGHUP) failed; the
    /// old ones stay in use.
    pub fn tls_reload_failed(&self) {
        self.tls_reload_failures.fetch_add(1, Relaxed);
    }

    /// Failed TLS reloads since start.
    pub fn tls_reload_failures(&self) -> u64 {
        self.tls_reload_failures.load(Relaxed)
    }

    /// A connection refused by a connection limit.
    pub fn connection_rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// A connection closed because all connections together held more input
    /// than `--max-input-total` and it held the most (Redis's
    /// `evicted_clients`).
    pub fn client_evicted(&self) {
        self.evicted.fetch_add(1, Relaxed);
    }

    /// Input received and not yet answered, all connections together, now
    /// (what `--max-input-total` bounds).
    pub fn set_input_held(&self, bytes: usize) {
        self.input_held.store(bytes as u64, Relaxed);
    }

    /// A heavy request was queued for a worker.
    pub fn job_queued(&self) {
        self.jobs_queued.fetch_add(1, Relaxed);
    }

    /// Undoes [`Stats::job_queued`] for a job the full queue did not take.
    pub fn job_not_queued(&self) {
        self.jobs_queued.fetch_sub(1, Relaxed);
    }

    /// A worker took a queued request.
    pub fn job_started(&self) {
        self.jobs_queued.fetch_sub(1, Relaxed);
        self.jobs_running.fetch_add(1, Relaxed);
    }

    /// A worker finished a request.
    pub fn job_finished(&self) {
        self.jobs_running.fetch_sub(1, Relaxed);
        self.jobs_completed.fetch_add(1, Relaxed);
    }

    /// Everything, as the `stats` method reports it, with the cache's figures
    /// (named as Redis's `INFO` names them) next to `keys`, and the
    /// persistence figures under `persistence`.
    pub fn snapshot(&self, cache: &CacheInfo, persistence: &PersistenceStatus) -> Value {
        let mut v = json!({
            "connections": self.connections(),
            "connections_total": self.connections_total.load(Relaxed),
            "connections_rejected": self.rejected.load(Relaxed),
            "evicted_clients": self.evicted.load(Relaxed),
            "input_held": self.input_held.load(Relaxed),
            "requests": self.requests(),
            "keys": cache.keys,
            "expires": cache.expires,
            "used_memory": cache.used_memory,
            "maxmemory": cache.maxmemory,
            "maxmemory_policy": cache.policy.as_str(),
            "evicted_keys": cache.evicted_keys,
            "expired_keys": cache.expired_keys,
            "keyspace_hits": cache.keyspace_hits,
            "keyspace_misses": cache.keyspace_misses,
            "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "jobs": {
                "queued": self.jobs_queued.load(Relaxed),
                "running": self.jobs_running.load(Relaxed),
                "completed": self.jobs_completed.load(Relaxed),
            },
            "persistence": persistence.to_json(),
            "tls_reload_failures": self.tls_reload_failures(),
        });
        if let (Some(Value::Object(server)), Value::Object(out)) = (self.server.get(), &mut v) {
            out.extend(server.clone());
        }
        v
    }
}

/// The `stats` method: counters, cache size, model and limits.
pub(crate) struct StatsMethod;

impl Method for StatsMethod {
    fn call(&self, cx: &Context<'_>, _params: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let persistence = cx.persistence.status(cx.cache.dirty(), unix_ms_now());
        write_json(out, &cx.stats.snapshot(&cx.cache.info(), &persistence))
    }

    fn access(&self) -> Access {
        Access::Read
    }
}
