//! Counters every model updates, and the `stats` method that reports them.
//!
//! Plain relaxed atomics: a counter bump costs about a nanosecond on the
//! reactor's hot path, and nobody needs the counters to agree with each other
//! to the request. Connections are counted per listener ([`Role`]): the
//! client figures (`connections`, what `--max-conns` bounds and `INFO`'s
//! `connected_clients` reports) are the RPC and RESP ports', and scrapes of
//! the metrics port are counted apart.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{json, Value};

use super::cache::CacheInfo;
use super::persistence::{unix_ms_now, PersistenceStatus};
use super::{Access, Context, Method};
use crate::listener::Role;
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
    /// `--metrics-max-conns`.
    pub metrics_max_conns: usize,
    /// `--idle-timeout` in seconds (0: off).
    pub idle_timeout_s: u64,
    /// `--max-output`.
    pub max_output: usize,
    /// `--max-reply`.
    pub max_reply: usize,
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
                "metrics_max_conns": self.metrics_max_conns,
                "idle_timeout_s": self.idle_timeout_s,
                "max_output": self.max_output,
                "max_reply": self.max_reply,
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

/// One listener's connection figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerCounts {
    /// Connections served now (`reactor_rpc_open_connections{listener}`).
    pub open: u64,
    /// Connections accepted and served since start (`reactor_rpc_connections_total{listener}`).
    pub accepted: u64,
    /// Connections refused at a limit (`reactor_rpc_connections_rejected_total{listener}`).
    pub rejected: u64,
}

impl ListenerCounts {
    fn to_json(self) -> Value {
        json!({
            "connections": self.open,
            "connections_total": self.accepted,
            "connections_rejected": self.rejected,
        })
    }
}

/// Gauges and counters whose state lives elsewhere (the server model, the
/// cache, the worker pool), read just before a render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings {
    /// Server model name for `reactor_rpc_build_info{model}`.
    pub model: &'static str,
    /// Each listener's connections, in [`Role::ALL`]'s order (`listener`
    /// label `rpc`, `resp`, `metrics`).
    pub listeners: [ListenerCounts; 3],
    /// Keys in the cache (`reactor_rpc_keys`).
    pub keys: u64,
    /// Keys with a TTL (`reactor_rpc_expiring_keys`).
    pub expiring_keys: u64,
    /// Heavy jobs waiting for a worker (`reactor_rpc_jobs{state="queued"}`).
    pub jobs_queued: u64,
    /// Heavy jobs on a worker now (`reactor_rpc_jobs{state="running"}`).
    pub jobs_running: u64,
    /// Heavy jobs finished since start (`reactor_rpc_jobs_completed_total`).
    pub jobs_completed: u64,
    /// The cache's accounted memory (`reactor_rpc_used_memory_bytes`).
    pub used_memory_bytes: u64,
    /// `--maxmemory`, 0 for no limit (`reactor_rpc_maxmemory_bytes`).
    pub maxmemory_bytes: u64,
    /// Keys evicted under maxmemory (`reactor_rpc_evicted_keys_total`).
    pub evicted_keys_total: u64,
    /// Keys removed because their TTL passed (`reactor_rpc_expired_keys_total`).
    pub expired_keys_total: u64,
    /// Failed reloads of the TLS files (`reactor_rpc_tls_reload_failures_total`).
    pub tls_reload_failures: u64,
    /// Failed password and metrics-token checks (`reactor_rpc_auth_failures_total`).
    pub auth_failures: u64,
    /// Attempts refused, their address locked out (`reactor_rpc_auth_refused_total`).
    pub auth_refused: u64,
    /// Reads that found their key (`reactor_rpc_keyspace_hits_total`).
    pub keyspace_hits_total: u64,
    /// Reads that did not (`reactor_rpc_keyspace_misses_total`).
    pub keyspace_misses_total: u64,
    /// Responses produced and not yet taken by the kernel, all connections
    /// together, as the model last reported (`reactor_rpc_pending_output_bytes`).
    pub pending_output_bytes: u64,
    /// Input received and not yet answered, all connections together
    /// (`reactor_rpc_input_held_bytes`; bounded by `--max-input-total`).
    pub input_held_bytes: u64,
    /// Connections closed because all together held more input than
    /// `--max-input-total` (`reactor_rpc_evicted_clients_total`).
    pub evicted_clients_total: u64,
    /// The persistence figures (`reactor_rpc_last_save_*` and the like);
    /// `None` without a snapshot file, and they are left out.
    pub persistence: Option<PersistenceStatus>,
}

/// Connection counters of one listener.
#[derive(Default)]
struct ListenerStats {
    open: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

impl ListenerStats {
    fn read(&self) -> ListenerCounts {
        ListenerCounts {
            open: self.open.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
        }
    }
}

/// Server-wide counters.
pub struct Stats {
    started: Instant,
    requests: AtomicU64,
    /// By listener, in [`Role::ALL`]'s order.
    listeners: [ListenerStats; 3],
    /// Pending output of every connection, as the model reports it.
    pending_output: AtomicU64,
    /// Connections closed because the input they held passed the total.
    evicted: AtomicU64,
    /// Input held (unanswered, incomplete requests), all connections.
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
            listeners: Default::default(),
            pending_output: AtomicU64::new(0),
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
    pub(crate) fn readings(
        &self,
        cache: &CacheInfo,
        persistence: PersistenceStatus,
        auth: super::auth::AuthCounts,
    ) -> Readings {
        Readings {
            persistence: persistence.enabled.then_some(persistence),
            model: self.model.get().copied().unwrap_or(""),
            listeners: Role::ALL.map(|role| self.listener(role)),
            keys: cache.keys as u64,
            expiring_keys: cache.expires as u64,
            jobs_queued: self.jobs_queued.load(Relaxed),
            jobs_running: self.jobs_running.load(Relaxed),
            jobs_completed: self.jobs_completed.load(Relaxed),
            used_memory_bytes: cache.used_memory as u64,
            maxmemory_bytes: cache.maxmemory as u64,
            evicted_keys_total: cache.evicted_keys,
            expired_keys_total: cache.expired_keys,
            tls_reload_failures: self.tls_reload_failures(),
            auth_failures: auth.failures,
            auth_refused: auth.refused,
            keyspace_hits_total: cache.keyspace_hits,
            keyspace_misses_total: cache.keyspace_misses,
            pending_output_bytes: self.pending_output(),
            input_held_bytes: self.input_held.load(Relaxed),
            evicted_clients_total: self.evicted.load(Relaxed),
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

    fn of(&self, role: Role) -> &ListenerStats {
        // `Role`'s discriminants are its index in `Role::ALL`.
        &self.listeners[role as usize]
    }

    /// A connection was accepted on `role`'s listener and is served.
    pub fn connection_opened(&self, role: Role) {
        let l = self.of(role);
        l.open.fetch_add(1, Relaxed);
        l.accepted.fetch_add(1, Relaxed);
    }

    /// A served connection of `role`'s listener closed.
    pub fn connection_closed(&self, role: Role) {
        self.of(role).open.fetch_sub(1, Relaxed);
    }

    /// Client connections served now: the RPC and RESP ports' (what
    /// `--max-conns` bounds); the metrics port's are not clients.
    pub fn connections(&self) -> u64 {
        self.clients().open
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

    /// A connection to `role`'s listener refused (a connection limit, or
    /// protected mode).
    pub fn connection_rejected(&self, role: Role) {
        self.of(role).rejected.fetch_add(1, Relaxed);
    }

    /// `role`'s listener's connection figures now.
    pub fn listener(&self, role: Role) -> ListenerCounts {
        self.of(role).read()
    }

    /// The client ports' figures together (RPC and RESP).
    fn clients(&self) -> ListenerCounts {
        let (rpc, resp) = (self.listener(Role::Rpc), self.listener(Role::Resp));
        ListenerCounts {
            open: rpc.open + resp.open,
            accepted: rpc.accepted + resp.accepted,
            rejected: rpc.rejected + resp.rejected,
        }
    }

    /// Sets the pending output of every connection together: the reactor
    /// and the tokio models keep that running total anyway (for
    /// `--max-output-total`) and publish it here at their housekeeping tick.
    pub fn set_pending_output(&self, bytes: u64) {
        self.pending_output.store(bytes, Relaxed);
    }

    /// `bytes` more output pending (the threaded models count a batch the
    /// kernel did not take at once, while they block writing it).
    pub fn add_pending_output(&self, bytes: u64) {
        self.pending_output.fetch_add(bytes, Relaxed);
    }

    /// Undoes [`Stats::add_pending_output`] once the batch is written (or
    /// the connection gone).
    pub fn sub_pending_output(&self, bytes: u64) {
        self.pending_output.fetch_sub(bytes, Relaxed);
    }

    /// Pending output of every connection, as last reported.
    pub fn pending_output(&self) -> u64 {
        self.pending_output.load(Relaxed)
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

    /// Everything, as the `stats` method reports it: the client connections
    /// (RPC and RESP ports) as `connections*`, each listener's under
    /// `listeners`, the cache's figures (named as Redis's `INFO` names them)
    /// next to `keys`, and the persistence figures under `persistence`.
    pub fn snapshot(&self, cache: &CacheInfo, persistence: &PersistenceStatus) -> Value {
        let clients = self.clients();
        let listeners: serde_json::Map<String, Value> = Role::ALL
            .iter()
            .map(|&role| (role.name().to_string(), self.listener(role).to_json()))
            .collect();
        let mut v = json!({
            "connections": clients.open,
            "connections_total": clients.accepted,
            "connections_rejected": clients.rejected,
            "listeners": listeners,
            "pending_output": self.pending_output(),
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
        let mut v = cx.stats.snapshot(&cx.cache.info(), &persistence);
        let auth = cx.auth.counts();
        v["auth"] = json!({
            "enabled": cx.auth.is_enabled(),
            "successes": auth.successes,
            "failures": auth.failures,
            "refused": auth.refused,
            "lockouts": auth.lockouts,
        });
        v["auth_failures"] = json!(auth.failures);
        write_json(out, &v)
    }

    fn access(&self) -> Access {
        Access::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::cache::{Cache, CacheConfig};

    #[test]
    fn connections_are_counted_per_listener_and_scrapes_are_not_clients() {
        let stats = Stats::new();
        stats.connection_opened(Role::Rpc);
        stats.connection_opened(Role::Resp);
        stats.connection_opened(Role::Metrics);
        stats.connection_opened(Role::Metrics);
        stats.connection_closed(Role::Metrics);
        stats.connection_rejected(Role::Metrics);
        stats.connection_rejected(Role::Rpc);
        assert_eq!(stats.connections(), 2);
        assert_eq!(
            stats.listener(Role::Metrics),
            ListenerCounts {
                open: 1,
                accepted: 2,
                rejected: 1
            }
        );
        stats.add_pending_output(100);
        stats.add_pending_output(20);
        stats.sub_pending_output(100);
        assert_eq!(stats.pending_output(), 20);

        let cache = Cache::new(CacheConfig::default());
        let v = stats.snapshot(&cache.info(), &PersistenceStatus::default());
        assert_eq!(v["connections"], 2, "{v}");
        assert_eq!(v["connections_total"], 2, "{v}");
        assert_eq!(v["connections_rejected"], 1, "{v}");
        assert_eq!(v["pending_output"], 20, "{v}");
        let metrics = &v["listeners"]["metrics"];
        assert_eq!(metrics["connections"], 1, "{v}");
        assert_eq!(metrics["connections_total"], 2, "{v}");
        assert_eq!(metrics["connections_rejected"], 1, "{v}");
        assert_eq!(v["listeners"]["resp"]["connections"], 1, "{v}");

        let r = stats.readings(
            &cache.info(),
            PersistenceStatus::default(),
            Default::default(),
        );
        assert_eq!(r.listeners[Role::Rpc as usize].open, 1);
        assert_eq!(r.listeners[Role::Metrics as usize].rejected, 1);
        assert_eq!(r.pending_output_bytes, 20);
        assert_eq!(r.persistence, None);
    }
}
