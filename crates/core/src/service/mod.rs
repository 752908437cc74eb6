//! The service layer: what each method means.
//!
//! Pure code, like the protocol: [`Service::handle`] takes one frame body and
//! appends one response frame to an output buffer. It knows nothing of sockets
//! or threads, so the reactor, the threaded models, the worker pool, the fuzzer
//! and the benchmarks all drive exactly the same request path.
//!
//! Methods live in a [`Registry`]; the built-in ones are `ping`, `fib`, the
//! cache (`set get del exists incr expire ttl`) and `stats`. A method can say
//! that a given call is [`Cost::Heavy`], and a server that has a worker pool
//! then runs it off the event loop (see `reactor::workers`).

mod access;
pub mod auth;
pub mod cache;
pub mod fib;
pub mod persistence;
pub(crate) mod ping;
pub mod redis;
pub(crate) mod registry;
mod response;
pub mod stats;

use std::fmt;
use std::time::Instant;

use log::{debug, log_enabled, Level};

use crate::metrics::{CodeId, MethodId, Metrics};
use crate::output::Output;

pub use access::Access;
pub use cache::{Cache, CacheConfig, EvictionPolicy};
pub use persistence::{Persistence, PersistenceStatus, SaveFailure, SaveReport, Saver};
use reactor_rpc_protocol::message::write_error_frame;
use reactor_rpc_protocol::parse_request;
pub use registry::{method_fn, params, Context, Cost, Method, Registry};
use response::ResponseWriter;
pub use stats::{ServerInfo, Stats};

/// Whether [`Service::handle`] answered, or left a heavy request for a worker.
///
/// Deliberately exhaustive, like [`Stop`](crate::session::Stop): a caller
/// must handle both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A response frame was appended to the output buffer.
    Done,
    /// Nothing was written: the request is heavy and should run on a worker,
    /// which calls [`Service::handle`] again with `offload = false`.
    Offload,
}

/// Methods plus the state they share: one per server, shared by every connection.
pub struct Service {
    registry: Registry,
    cache: Cache,
    stats: Stats,
    persistence: Persistence,
    metrics: Metrics,
    /// The metrics row of each Redis command, by its index in the command table.
    resp_rows: Box<[MethodId]>,
}

impl Service {
    /// A service with the built-in methods.
    pub fn new() -> Service {
        Service::with_registry(Registry::builtin())
    }

    /// A service with a custom registry (start from [`Registry::builtin`] to extend it).
    pub fn with_registry(registry: Registry) -> Service {
        Service::with_cache_config(registry, CacheConfig::default())
    }

    /// A service with a custom registry and cache bound (`--maxmemory`, eviction policy).
    pub fn with_cache_config(mut registry: Registry, cache: CacheConfig) -> Service {
        // The label tables are this registry's names (protocol "json") and
        // the Redis command table's (protocol "resp"): fixed sets, whatever
        // names clients send (those count as their protocol's `other`).
        let commands: Vec<&str> = redis::COMMANDS.iter().map(|c| c.name).collect();
        let metrics = Metrics::with_commands(&registry.names(), &commands);
        registry.label(&metrics);
        Service {
            registry,
            cache: Cache::new(cache),
            stats: Stats::new(),
            persistence: Persistence::new(),
            resp_rows: redis::metric_rows(&metrics),
            metrics,
        }
    }

    /// The metrics row of the Redis command at `index` in its table.
    pub(crate) fn resp_metric_row(&self, index: usize) -> MethodId {
        self.resp_rows
            .get(index)
            .copied()
            .unwrap_or_else(|| self.metrics.other_command())
    }

    /// The request and byte counters `GET /metrics` reports; the connection
    /// loops add the bytes they read and write.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The key-value store the cache methods (JSON and RESP) share; its
    /// typed API is what a snapshot or an embedding program uses.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Persistence health and the installed [`Saver`]: `ops::persist` installs
    /// one and records each save's outcome; `stats`, `INFO`, the metrics and
    /// the write refusal after a failed save read it.
    pub fn persistence(&self) -> &Persistence {
        &self.persistence
    }

    /// The persistence figures now, as `stats`, `INFO persistence` and the
    /// metrics report them.
    pub fn persistence_status(&self) -> PersistenceStatus {
        self.persistence
            .status(self.cache.dirty(), persistence::unix_ms_now())
    }

    /// Requests answered so far (JSON and RESP), as `stats` reports them.
    pub fn requests(&self) -> u64 {
        self.stats.requests()
    }

    /// The gauges and counters kept outside [`Metrics`] (connections, keys,
    /// memory, jobs, persistence), read now, for the metrics exposition.
    pub fn readings(&self) -> stats::Readings {
        self.stats
            .readings(&self.cache.info(), self.persistence_status())
    }

    /// The counters every model updates and `stats` reports.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handles one frame body and appends exactly one response frame to `out`,
    /// unless `offload` is allowed and the call is heavy ([`Handled::Offload`]).
    /// `peer` only labels the debug log line.
    ///
    /// The request is counted in the metrics, timed from this call to its
    /// response being appended (`dispatch::process` times each batch as a
    /// whole instead).
    pub fn handle(
        &self,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Vec<u8>,
        offload: bool,
    ) -> Handled {
        let mut output = Output::from_vec(std::mem::take(out));
        let handled = self.handle_output(peer, body, &mut output, offload);
        *out = output.into_vec();
        handled
    }

    /// [`Service::handle`] into an [`Output`]: a large cached value is
    /// queued by reference rather than copied (see [`crate::output`]).
    pub fn handle_output(
        &self,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Output,
        offload: bool,
    ) -> Handled {
        let started = Instant::now();
        let (handled, label) = self.handle_labelled(peer, body, out, offload);
        if let Some((method, code)) = label {
            self.metrics.observe(method, code, started.elapsed());
        }
        handled
    }

    /// [`Service::handle`] without the metrics: returns what to count (no
    /// label for a request left to a worker, which counts it when it runs).
    #[inline]
    pub(crate) fn handle_labelled(
        &self,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Output,
        offload: bool,
    ) -> (Handled, Option<Label>) {
        let request = match parse_request(body) {
            Ok(request) => request,
            Err((err, id)) => {
                debug!("{peer} sent a bad request: {err}");
                self.stats.count_request();
                write_error_frame(out, &err, id);
                let code = self.metrics.code_id(err.code);
                return (Handled::Done, Some((self.metrics.other_method(), code)));
            }
        };
        let Some((name, method, metric)) = self.registry.get_labelled(&request.method) else {
            debug!("{peer} called unknown method {:?}", request.method);
            self.stats.count_request();
            let err = reactor_rpc_protocol::RpcError::new(
                reactor_rpc_protocol::ErrorCode::UnknownMethod,
                format!("no method named {:?}", request.method),
            );
            write_error_frame(out, &err, request.id);
            let code = self.metrics.code_id(err.code);
            return (Handled::Done, Some((self.metrics.other_method(), code)));
        };
        // After a failed save (--stop-writes-on-save-error): one relaxed
        // load while all is well; the method's class is asked only then.
        if self.persistence.writes_refused() && method.access() == Access::Write {
            self.stats.count_request();
            let err = reactor_rpc_protocol::RpcError::new(
                reactor_rpc_protocol::ErrorCode::SaveFailed,
                persistence::WRITES_REFUSED,
            );
            let code = self.metrics.code_id(err.code);
            write_error_frame(out, &err, request.id);
            return (Handled::Done, Some((metric, code)));
        }
        let params = request.params();
        if offload && method.cost(params) == Cost::Heavy {
            return (Handled::Offload, None);
        }
        if log_enabled!(Level::Debug) {
            debug!("{peer} {} {}", request.method, truncate(params.get(), 80));
        }
        self.stats.count_request();
        let cx = Context {
            cache: &self.cache,
            stats: &self.stats,
            persistence: &self.persistence,
        };
        let code = match ResponseWriter::begin(out, name)
            .result(request.id, |o| method.call_output(&cx, params, o))
        {
            Ok(()) => CodeId::OK,
            Err(err) => self.metrics.code_id(err.code),
        };
        (Handled::Done, Some((metric, code)))
    }

    /// Periodic upkeep with bounded work: an active expiry cycle of at most
    /// [`cache::EXPIRE_BUDGET`] removes expired keys nobody touches. Server
    /// models call it every [`HOUSEKEEPING_INTERVAL`]; the cycle times itself,
    /// so `_now` (the caller's tick time) is not needed.
    pub fn housekeeping(&self, _now: Instant) {
        self.cache.active_expire_cycle(cache::EXPIRE_BUDGET);
    }
}

impl Default for Service {
    fn default() -> Service {
        Service::new()
    }
}

/// What a request is counted as: its method's row and its outcome.
pub(crate) type Label = (MethodId, CodeId);

/// Counts the requests that one call of a dispatch loop answers, cheaply.
///
/// The clock is read once when the loop starts (every frame in hand was
/// complete by then) and once when it ends, and that duration is observed
/// for each request of the batch: exact at pipeline depth 1, an upper bound
/// for each request inside a pipelined batch. Consecutive requests with the
/// same labels are counted together, so a batch of 16 pings costs three
/// atomic adds in all rather than three each.
pub(crate) struct Batch<'a> {
    metrics: &'a Metrics,
    started: Instant,
    runs: [(Label, u64); 8],
    len: usize,
}

impl<'a> Batch<'a> {
    /// A batch starting now.
    #[inline]
    pub(crate) fn new(service: &'a Service) -> Batch<'a> {
        Batch {
            metrics: &service.metrics,
            started: Instant::now(),
            runs: [((MethodId::default(), CodeId::OK), 0); 8],
            len: 0,
        }
    }

    /// One more request answered.
    #[inline]
    pub(crate) fn push(&mut self, label: Label) {
        if let Some(last) = self.len.checked_sub(1).and_then(|i| self.runs.get_mut(i)) {
            if last.0 == label {
                last.1 += 1;
                return;
            }
        }
        if self.len == self.runs.len() {
            self.flush();
        }
        self.runs[self.len] = (label, 1);
        self.len += 1;
    }

    /// Bytes of requests taken and responses queued by the batch.
    #[inline]
    pub(crate) fn bytes(&self, received: usize, sent: usize) {
        if received > 0 {
            self.metrics.add_bytes_received(received);
        }
        if sent > 0 {
            self.metrics.add_bytes_sent(sent);
        }
    }

    fn flush(&mut self) {
        let elapsed = self.started.elapsed();
        for &((method, code), n) in &self.runs[..self.len] {
            self.metrics.observe_n(method, code, elapsed, n);
        }
        self.len = 0;
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.flush();
        }
    }
}

/// How often server models call [`Service::housekeeping`].
pub const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
