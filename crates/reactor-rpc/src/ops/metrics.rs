//! Server metrics: counters cheap enough for the hot path, and their
//! rendering in the Prometheus text exposition format 0.0.4.
//!
//! Why this shape:
//!
//! - **Cost.** Counting a request ([`Metrics::observe`]) is one relaxed
//!   `fetch_add` on the `(method, code)` counter, one on the latency bucket,
//!   one on the latency sum, plus a linear search of 16 bucket bounds that
//!   stops at the first match (a fast request stops after two or three
//!   comparisons). No lock, no allocation, no hashing. Where even that
//!   matters (the reactor at pipeline depth 16 spends well under a
//!   microsecond per request), a thread counts into its own [`LocalCounts`]
//!   with plain adds and publishes them with [`Metrics::absorb`] once per
//!   event-loop turn: a few `fetch_add`s per turn instead of three per
//!   request.
//! - **A bounded label set.** Method names come from clients. Labels are
//!   fixed at construction ([`Metrics::new`]): the server's method names and
//!   error codes, each table ending in an `other` slot. A name not in the
//!   table is counted as `other`, so a client sending a million random method
//!   names adds no series and no memory. Resolve a name once with
//!   [`Metrics::method_id`] (a short linear search, no allocation) and pass
//!   the small [`MethodId`] around.
//! - **Independence.** Gauges whose state lives elsewhere (connections,
//!   cache keys and memory, jobs) are passed to the renderer as plain numbers
//!   in [`Readings`], so this module knows nothing of the cache's types.
//!
//! The metric names are fixed: dashboards rely on them.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `reactor_rpc_requests_total` | counter | `method`, `code` (`ok` or an error code) |
//! | `reactor_rpc_request_duration_seconds` | histogram | `method` |
//! | `reactor_rpc_connections` | gauge | |
//! | `reactor_rpc_connections_total` | counter | |
//! | `reactor_rpc_connections_rejected_total` | counter | |
//! | `reactor_rpc_bytes_received_total`, `reactor_rpc_bytes_sent_total` | counter | |
//! | `reactor_rpc_keys` | gauge | |
//! | `reactor_rpc_jobs` | gauge | `state` (`queued`, `running`, `completed`) |
//! | `reactor_rpc_used_memory_bytes` | gauge | |
//! | `reactor_rpc_evicted_keys_total`, `reactor_rpc_expired_keys_total` | counter | |
//! | `reactor_rpc_build_info` | gauge (always 1) | `version`, `model` |
//! | `reactor_rpc_last_save_status` (1 ok, 0 err), `reactor_rpc_last_save_time_seconds`, `reactor_rpc_last_save_duration_seconds`, `reactor_rpc_changes_since_last_save`, `reactor_rpc_save_in_progress`, `reactor_rpc_writes_refused` | gauge | |
//! | `reactor_rpc_saves_total` | counter | |
//! | `reactor_rpc_last_save_error_info` (1, only while the last save failed) | gauge | `error` |
//! | `process_resident_memory_bytes`, `process_open_fds` | gauge | |
//! | `process_cpu_seconds_total` | counter | |
//! | `process_start_time_seconds` | gauge | |
//!
//! The `process_*` metrics are read from `/proc` at each render; one that
//! cannot be read is left out of that scrape rather than reported as 0. The
//! persistence figures are there only with a snapshot file (`--snapshot`);
//! the duration only once a save has run.

use std::fmt::{self, Write as _};
use std::fs;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::service::PersistenceStatus;

/// Upper bounds (`le`, in seconds) of the request duration histogram's
/// buckets, from 10 µs to 1 s; a `+Inf` bucket follows.
pub const DURATION_BUCKETS: [f64; 16] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0,
];

/// [`DURATION_BUCKETS`] in nanoseconds, for the hot path.
const BUCKETS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// Buckets per histogram, `+Inf` included.
const N_BUCKETS: usize = BUCKETS_NS.len() + 1;

/// The built-in methods' names (the `method` label values of a default server).
pub const BUILTIN_METHODS: &[&str] = &[
    "ping", "fib", "set", "get", "del", "exists", "incr", "expire", "ttl", "stats", "save",
];

/// The error codes a default server answers with (the `code` label values
/// besides `ok` and `other`).
pub const DEFAULT_CODES: &[&str] = &[
    "bad_json",
    "bad_request",
    "unknown_method",
    "bad_params",
    "frame_too_large",
    "overloaded",
    "internal",
    "oom",
    "wrong_type",
    "busy",
    "save_failed",
];

/// The label value for a name that is not in the table.
pub const OTHER: &str = "other";

/// Most method labels a [`Metrics`] keeps (besides `other`).
pub const MAX_METHODS: usize = 64;
/// Most error-code labels a [`Metrics`] keeps (besides `ok` and `other`).
pub const MAX_CODES: usize = 32;

/// A method's row in the table, from [`Metrics::method_id`] (the default
/// is row 0; use it only as a placeholder before resolving a name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MethodId(u8);

/// An outcome's column in the table: [`CodeId::OK`] or from [`Metrics::code_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeId(u8);

impl CodeId {
    /// The request succeeded (`code="ok"`).
    pub const OK: CodeId = CodeId(0);
}

/// Where each counter lives in the flat table that [`Metrics`] and
/// [`LocalCounts`] share:
///
/// ```text
/// [ requests: method × code ][ buckets: method × N_BUCKETS ][ sum_ns: method ]
/// ```
///
/// Bucket counts are per bucket (not cumulative), so that an observation
/// touches one; the renderer accumulates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    methods: usize,
    codes: usize,
}

impl Shape {
    fn len(self) -> usize {
        self.methods * (self.codes + N_BUCKETS + 1)
    }

    /// Clamps ids from another table into `other` rather than out of bounds.
    #[inline]
    fn clamp(self, method: MethodId, code: CodeId) -> (usize, usize) {
        (
            usize::from(method.0).min(self.methods - 1),
            usize::from(code.0).min(self.codes - 1),
        )
    }

    #[inline]
    fn request(self, m: usize, c: usize) -> usize {
        m * self.codes + c
    }

    #[inline]
    fn bucket(self, m: usize, b: usize) -> usize {
        self.methods * self.codes + m * N_BUCKETS + b
    }

    #[inline]
    fn sum(self, m: usize) -> usize {
        self.methods * (self.codes + N_BUCKETS) + m
    }
}

/// The counters a server keeps; share one per server (`Arc<Metrics>`) and
/// bump it from any thread.
pub struct Metrics {
    /// Method label values; the last one is [`OTHER`].
    methods: Box<[Box<str>]>,
    /// Code label values; the first is `ok`, the last [`OTHER`].
    codes: Box<[Box<str>]>,
    shape: Shape,
    /// Request counters and latency histograms, laid out by [`Shape`].
    cells: Box<[AtomicU64]>,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Default for Metrics {
    /// Labels for the built-in methods and error codes.
    fn default() -> Metrics {
        Metrics::new(BUILTIN_METHODS, DEFAULT_CODES)
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("methods", &self.methods)
            .field("codes", &self.codes)
            .finish_non_exhaustive()
    }
}

/// Builds a label table: `names` in order, without duplicates, empty names or
/// `other`/`ok`, at most `max` of them, between `first` and `other`.
fn label_table(first: Option<&str>, names: &[&str], max: usize) -> Box<[Box<str>]> {
    let mut table: Vec<Box<str>> = Vec::with_capacity(names.len().min(max) + 2);
    table.extend(first.map(Box::from));
    let mut taken = 0;
    for &name in names {
        if taken == max {
            break;
        }
        if name.is_empty() || name == OTHER || Some(name) == first {
            continue;
        }
        if table.iter().any(|t| &**t == name) {
            continue;
        }
        table.push(name.into());
        taken += 1;
    }
    table.push(OTHER.into());
    table.into_boxed_slice()
}

fn position(table: &[Box<str>], name: &str) -> usize {
    let last = table.len() - 1;
    table[..last]
        .iter()
        .position(|t| &**t == name)
        .unwrap_or(last)
}

/// Saturating nanoseconds of a duration, without a 128-bit multiply.
#[inline]
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// The histogram bucket a duration falls in (`le` is inclusive).
#[inline]
fn bucket_index(ns: u64) -> usize {
    let mut i = 0;
    while i < BUCKETS_NS.len() && ns > BUCKETS_NS[i] {
        i += 1;
    }
    i
}

impl Metrics {
    /// Counters labelled with these method names and error codes (in this
    /// order), each table followed by `other`. Duplicates, empty names and
    /// names beyond [`MAX_METHODS`] / [`MAX_CODES`] are dropped: they count
    /// as `other`.
    pub fn new(methods: &[&str], codes: &[&str]) -> Metrics {
        let methods = label_table(None, methods, MAX_METHODS);
        let codes = label_table(Some("ok"), codes, MAX_CODES);
        let shape = Shape {
            methods: methods.len(),
            codes: codes.len(),
        };
        let cells = (0..shape.len()).map(|_| AtomicU64::new(0)).collect();
        Metrics {
            methods,
            codes,
            shape,
            cells,
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }

    /// The row for a method name; any name not in the table is `other`.
    /// Compares against at most [`MAX_METHODS`] short strings and never
    /// allocates; a caller that knows its methods up front can keep the ids.
    pub fn method_id(&self, name: &str) -> MethodId {
        // Both tables are capped well below 256 entries.
        MethodId(position(&self.methods, name) as u8)
    }

    /// The column for an error code (as on the wire, e.g. `"bad_params"`);
    /// `"ok"` is [`CodeId::OK`], an unknown code is `other`.
    pub fn code_id(&self, code: &str) -> CodeId {
        if code == "ok" {
            return CodeId::OK;
        }
        CodeId(position(&self.codes, code) as u8)
    }

    /// The `other` method row, for requests with no usable method name.
    pub fn other_method(&self) -> MethodId {
        MethodId((self.methods.len() - 1) as u8)
    }

    /// Label value of a method id (`other` for an id from another table).
    pub fn method_name(&self, id: MethodId) -> &str {
        self.methods.get(usize::from(id.0)).map_or(OTHER, |s| s)
    }

    /// Label value of a code id (`other` for an id from another table).
    pub fn code_name(&self, id: CodeId) -> &str {
        self.codes.get(usize::from(id.0)).map_or(OTHER, |s| s)
    }

    /// Counts one answered request: its outcome, and the time from its
    /// frame being complete to its response being queued. Three relaxed
    /// `fetch_add`s; a thread answering many requests per turn can count
    /// into a [`LocalCounts`] instead and [`Metrics::absorb`] it per turn.
    #[inline]
    pub fn observe(&self, method: MethodId, code: CodeId, elapsed: Duration) {
        let shape = self.shape;
        let (m, c) = shape.clamp(method, code);
        let ns = nanos(elapsed);
        self.add(shape.request(m, c), 1);
        self.add(shape.bucket(m, bucket_index(ns)), 1);
        self.add(shape.sum(m), ns);
    }

    /// [`Metrics::observe`] for `n` requests of one method and outcome that
    /// each took `elapsed`: still three `fetch_add`s, whatever `n`.
    #[inline]
    pub fn observe_n(&self, method: MethodId, code: CodeId, elapsed: Duration, n: u64) {
        let shape = self.shape;
        let (m, c) = shape.clamp(method, code);
        let ns = nanos(elapsed);
        self.add(shape.request(m, c), n);
        self.add(shape.bucket(m, bucket_index(ns)), n);
        self.add(shape.sum(m), ns.saturating_mul(n));
    }

    #[inline]
    fn add(&self, cell: usize, n: u64) {
        if let Some(a) = self.cells.get(cell) {
            a.fetch_add(n, Relaxed);
        }
    }

    fn load(&self, cell: usize) -> u64 {
        self.cells.get(cell).map_or(0, |a| a.load(Relaxed))
    }

    /// An empty accumulator for one thread, shaped like this table.
    pub fn local(&self) -> LocalCounts {
        LocalCounts {
            shape: self.shape,
            counts: vec![0; self.shape.len()].into_boxed_slice(),
            touched: Vec::with_capacity(16),
        }
    }

    /// Adds what `local` counted (one `fetch_add` per counter it touched)
    /// and empties it. An accumulator from a differently shaped table is
    /// emptied without being added.
    pub fn absorb(&self, local: &mut LocalCounts) {
        let same = local.shape == self.shape;
        for &cell in &local.touched {
            let cell = cell as usize;
            if let Some(n) = local.counts.get_mut(cell) {
                if same && *n > 0 {
                    self.add(cell, *n);
                }
                *n = 0;
            }
        }
        local.touched.clear();
    }

    /// Bytes of requests taken from clients (JSON and RESP).
    #[inline]
    pub fn add_bytes_received(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Relaxed);
    }

    /// Bytes of responses queued for clients (JSON and RESP).
    #[inline]
    pub fn add_bytes_sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Relaxed);
    }

    /// Requests counted so far for a method and outcome.
    pub fn requests(&self, method: MethodId, code: CodeId) -> u64 {
        let (m, c) = self.shape.clamp(method, code);
        self.load(self.shape.request(m, c))
    }

    /// Bytes read from clients so far, on every port.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Relaxed)
    }

    /// Bytes written to clients so far, on every port.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Relaxed)
    }

    /// Appends the whole exposition (this process's `/proc` figures
    /// included) to `out`.
    pub fn render(&self, readings: &Readings<'_>, out: &mut String) {
        self.render_with(readings, &ProcessStats::read(), out);
    }

    /// [`Metrics::render`] with the process figures given (for tests).
    pub fn render_with(&self, r: &Readings<'_>, process: &ProcessStats, out: &mut String) {
        let mut w = Writer { out };
        self.render_requests(&mut w);
        self.render_durations(&mut w);

        w.single(
            "reactor_rpc_connections",
            "Connections open now.",
            "gauge",
            r.connections,
        );
        w.single(
            "reactor_rpc_connections_total",
            "Connections accepted since start.",
            "counter",
            r.connections_total,
        );
        w.single(
            "reactor_rpc_connections_rejected_total",
            "Connections refused at the connection limit (--max-conns).",
            "counter",
            r.connections_rejected,
        );
        w.single(
            "reactor_rpc_bytes_received_total",
            "Bytes read from RPC clients.",
            "counter",
            self.bytes_received(),
        );
        w.single(
            "reactor_rpc_bytes_sent_total",
            "Bytes written to RPC clients.",
            "counter",
            self.bytes_sent(),
        );
        w.single(
            "reactor_rpc_keys",
            "Keys in the cache (expired keys not yet swept included).",
            "gauge",
            r.keys,
        );
        w.header(
            "reactor_rpc_jobs",
            "Heavy requests handed to worker threads, by state.",
            "gauge",
        );
        for (state, value) in [
            ("queued", r.jobs_queued),
            ("running", r.jobs_running),
            ("completed", r.jobs_completed),
        ] {
            w.sample("reactor_rpc_jobs", &[("state", state)], value);
        }
        w.single(
            "reactor_rpc_used_memory_bytes",
            "Bytes the cache accounts for (keys, values, overhead).",
            "gauge",
            r.used_memory_bytes,
        );
        w.single(
            "reactor_rpc_evicted_keys_total",
            "Keys evicted to stay within the memory limit.",
            "counter",
            r.evicted_keys_total,
        );
        w.single(
            "reactor_rpc_expired_keys_total",
            "Keys removed because their TTL passed.",
            "counter",
            r.expired_keys_total,
        );
        w.header(
            "reactor_rpc_build_info",
            "Always 1; the labels say which build and server model this is.",
            "gauge",
        );
        w.sample(
            "reactor_rpc_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("model", r.model)],
            1u64,
        );

        if let Some(p) = r.persistence {
            render_persistence(&mut w, p);
        }

        if let Some(v) = process.resident_memory_bytes {
            w.single(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                v,
            );
        }
        if let Some(v) = process.cpu_seconds {
            w.single(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                Float(v),
            );
        }
        if let Some(v) = process.open_fds {
            w.single(
                "process_open_fds",
                "Number of open file descriptors.",
                "gauge",
                v,
            );
        }
        if let Some(v) = process.start_time_seconds {
            w.single(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                Float(v),
            );
        }
    }

    fn render_requests(&self, w: &mut Writer<'_>) {
        const NAME: &str = "reactor_rpc_requests_total";
        w.header(
            NAME,
            "Requests answered, by method and outcome (ok or the error code).",
            "counter",
        );
        let last_method = self.methods.len() - 1;
        for (m, method) in self.methods.iter().enumerate() {
            for (c, code) in self.codes.iter().enumerate() {
                let value = self.load(self.shape.request(m, c));
                // Every named method has its `ok` series from the start, so
                // rate() works at once; the rest appear when first counted.
                if value == 0 && (c != 0 || m == last_method) {
                    continue;
                }
                w.sample(NAME, &[("method", method), ("code", code)], value);
            }
        }
    }

    fn render_durations(&self, w: &mut Writer<'_>) {
        const NAME: &str = "reactor_rpc_request_duration_seconds";
        w.header(
            NAME,
            "Time from a request's complete frame to its response being queued.",
            "histogram",
        );
        let last_method = self.methods.len() - 1;
        for (m, method) in self.methods.iter().enumerate() {
            let counts: [u64; N_BUCKETS] =
                std::array::from_fn(|b| self.load(self.shape.bucket(m, b)));
            let sum_ns = self.load(self.shape.sum(m));
            let count: u64 = counts.iter().sum();
            if count == 0 && m == last_method {
                continue;
            }
            let mut cumulative = 0u64;
            for (i, n) in counts.iter().enumerate() {
                cumulative += n;
                let le = match DURATION_BUCKETS.get(i) {
                    Some(le) => LeLabel::Bound(*le),
                    None => LeLabel::Inf,
                };
                w.bucket(NAME, method, le, cumulative);
            }
            w.suffixed(
                NAME,
                "_sum",
                &[("method", method)],
                Float(sum_ns as f64 / 1e9),
            );
            w.suffixed(NAME, "_count", &[("method", method)], count);
        }
    }
}

/// Request counts gathered by one thread with plain (non-atomic) adds, for
/// [`Metrics::absorb`] to publish in one go: the reactor counts each request
/// here (about a nanosecond) and absorbs once per event-loop turn, so a
/// pipelined batch of requests costs a few `fetch_add`s in all. Values show
/// up in a scrape after the absorb.
#[derive(Debug, Clone)]
pub struct LocalCounts {
    shape: Shape,
    counts: Box<[u64]>,
    /// Cells that went from zero to non-zero since the last absorb.
    touched: Vec<u32>,
}

impl LocalCounts {
    /// [`Metrics::observe`], locally.
    #[inline]
    pub fn observe(&mut self, method: MethodId, code: CodeId, elapsed: Duration) {
        let shape = self.shape;
        let (m, c) = shape.clamp(method, code);
        let ns = nanos(elapsed);
        self.add(shape.request(m, c), 1);
        self.add(shape.bucket(m, bucket_index(ns)), 1);
        if ns > 0 {
            self.add(shape.sum(m), ns);
        }
    }

    #[inline]
    fn add(&mut self, cell: usize, n: u64) {
        if let Some(v) = self.counts.get_mut(cell) {
            if *v == 0 {
                // Cells number in the thousands at most (Shape::len).
                self.touched.push(cell as u32);
            }
            *v = v.saturating_add(n);
        }
    }

    /// Nothing counted since the last absorb.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }
}

/// Gauges and counters whose state lives elsewhere (the server model, the
/// cache, the worker pool), read just before a render.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readings<'a> {
    /// Server model name for `reactor_rpc_build_info{model}`.
    pub model: &'a str,
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
    /// The persistence figures (`reactor_rpc_last_save_*` and the like);
    /// `None` without a snapshot file, and they are left out.
    pub persistence: Option<&'a PersistenceStatus>,
}

/// The persistence figures: Prometheus spells the status as 1 (ok) or 0
/// (err), times and durations in seconds, and the error text as the label of
/// an info-style series present only while the last save failed.
fn render_persistence(w: &mut Writer<'_>, p: &PersistenceStatus) {
    w.single(
        "reactor_rpc_last_save_status",
        "1 if the last snapshot save succeeded (or none failed yet), 0 if it failed.",
        "gauge",
        u8::from(p.last_save_ok),
    );
    w.single(
        "reactor_rpc_last_save_time_seconds",
        "Unix time of the last successful snapshot save (or of the start).",
        "gauge",
        p.last_save_time,
    );
    if let Some(ms) = p.last_save_duration_ms {
        w.single(
            "reactor_rpc_last_save_duration_seconds",
            "How long the last snapshot save took, successful or not.",
            "gauge",
            Float(ms as f64 / 1000.0),
        );
    }
    w.single(
        "reactor_rpc_changes_since_last_save",
        "Cache writes since the last successful snapshot save.",
        "gauge",
        p.changes_since_last_save,
    );
    w.single(
        "reactor_rpc_save_in_progress",
        "1 while a snapshot save runs.",
        "gauge",
        u8::from(p.save_in_progress),
    );
    w.single(
        "reactor_rpc_writes_refused",
        "1 while writes are refused because the last save failed (--stop-writes-on-save-error).",
        "gauge",
        u8::from(p.writes_refused),
    );
    w.single(
        "reactor_rpc_saves_total",
        "Snapshot saves attempted since start.",
        "counter",
        p.saves,
    );
    if let Some(error) = &p.last_save_error {
        w.header(
            "reactor_rpc_last_save_error_info",
            "1 while the last snapshot save failed; the label says why.",
            "gauge",
        );
        // Bounded: an OS error text is short, but the label is cut anyway.
        let cut = error
            .char_indices()
            .nth(200)
            .map_or(error.as_str(), |(i, _)| &error[..i]);
        w.sample("reactor_rpc_last_save_error_info", &[("error", cut)], 1u8);
    }
}

/// An `f64` sample value as Prometheus spells it (`+Inf`, `-Inf`, `NaN`).
struct Float(f64);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            write!(f, "{v}")
        }
    }
}

enum LeLabel {
    Bound(f64),
    Inf,
}

/// Writes exposition lines into a `String` (writing to a `String` cannot fail).
struct Writer<'a> {
    out: &'a mut String,
}

impl Writer<'_> {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    fn single(&mut self, name: &str, help: &str, kind: &str, value: impl fmt::Display) {
        self.header(name, help, kind);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.suffixed(name, "", labels, value);
    }

    fn suffixed(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        value: impl fmt::Display,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label_value(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn bucket(&mut self, name: &str, method: &str, le: LeLabel, cumulative: u64) {
        self.out.push_str(name);
        self.out.push_str("_bucket{method=\"");
        escape_label_value(self.out, method);
        let _ = match le {
            LeLabel::Bound(b) => writeln!(self.out, "\",le=\"{b}\"}} {cumulative}"),
            LeLabel::Inf => writeln!(self.out, "\",le=\"+Inf\"}} {cumulative}"),
        };
    }
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label_value(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `# HELP` text escapes backslash and line feed.
fn escape_help(out: &mut String, help: &str) {
    for ch in help.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// This process's figures from `/proc` (Linux); each is `None` when it
/// cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident set size (`process_resident_memory_bytes`).
    pub resident_memory_bytes: Option<u64>,
    /// User plus system CPU time (`process_cpu_seconds_total`).
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors (`process_open_fds`).
    pub open_fds: Option<u64>,
    /// Start time as Unix seconds (`process_start_time_seconds`).
    pub start_time_seconds: Option<f64>,
}

/// The fields of `/proc/PID/stat` that the process metrics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// User CPU time, in clock ticks.
    pub utime: u64,
    /// System CPU time, in clock ticks.
    pub stime: u64,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_proc_stat(stat: &str) -> Option<ProcStat> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; fields are 1-based.
    let fields: Vec<&str> = after.split_whitespace().take(22).collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        rss_pages: field(24)?,
    })
}

/// Parses the `btime` line (boot time, seconds since the epoch) of `/proc/stat`.
pub fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

impl ProcessStats {
    /// Reads this process's figures; never fails, leaves out what it cannot read.
    pub fn read() -> ProcessStats {
        let stat = fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_proc_stat(&s));
        let ticks = sysconf(libc::_SC_CLK_TCK).map(|t| t as f64);
        let page = sysconf(libc::_SC_PAGESIZE);
        let btime = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_btime(&s));
        let open_fds = fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.filter(|e| e.is_ok()).count() as u64);
        ProcessStats {
            resident_memory_bytes: stat.zip(page).map(|(s, p)| s.rss_pages.saturating_mul(p)),
            cpu_seconds: stat
                .zip(ticks)
                .map(|(s, t)| s.utime.saturating_add(s.stime) as f64 / t),
            open_fds,
            start_time_seconds: stat
                .zip(ticks)
                .zip(btime)
                .map(|((s, t), b)| b as f64 + s.starttime as f64 / t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings() -> Readings<'static> {
        Readings {
            model: "reactor",
            connections: 3,
            connections_total: 10,
            connections_rejected: 1,
            keys: 42,
            jobs_queued: 2,
            jobs_running: 1,
            jobs_completed: 7,
            used_memory_bytes: 4096,
            evicted_keys_total: 5,
            expired_keys_total: 6,
            persistence: None,
        }
    }

    fn render(m: &Metrics) -> String {
        let mut out = String::new();
        let p = ProcessStats {
            resident_memory_bytes: Some(1 << 20),
            cpu_seconds: Some(1.5),
            open_fds: Some(9),
            start_time_seconds: Some(1_700_000_000.25),
        };
        m.render_with(&readings(), &p, &mut out);
        out
    }

    #[test]
    fn buckets_are_sorted_and_match_the_seconds_table() {
        for (ns, s) in BUCKETS_NS.iter().zip(DURATION_BUCKETS) {
            assert_eq!(*ns, (s * 1e9).round() as u64);
        }
        assert!(BUCKETS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bucket_bounds_are_inclusive() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(10_000), 0);
        assert_eq!(bucket_index(10_001), 1);
        assert_eq!(bucket_index(1_000_000_000), 15);
        assert_eq!(bucket_index(1_000_000_001), 16);
        assert_eq!(bucket_index(u64::MAX), 16);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn unknown_names_share_the_other_slot() {
        let m = Metrics::default();
        let other = m.method_id("no-such-method");
        assert_eq!(other, m.other_method());
        assert_eq!(m.method_name(other), "other");
        assert_eq!(m.method_id("other"), other);
        for i in 0..1000 {
            let id = m.method_id(&format!("random{i}"));
            m.observe(id, m.code_id("unknown_method"), Duration::from_micros(3));
        }
        assert_eq!(m.requests(other, m.code_id("unknown_method")), 1000);
        let text = render(&m);
        assert_eq!(text.matches("random").count(), 0);
        assert!(text.contains(
            "reactor_rpc_requests_total{method=\"other\",code=\"unknown_method\"} 1000\n"
        ));
        assert_eq!(m.code_id("ok"), CodeId::OK);
        assert_eq!(m.code_name(m.code_id("never-heard-of-it")), "other");
        assert_eq!(m.code_name(m.code_id("oom")), "oom");
    }

    #[test]
    fn label_tables_are_bounded_and_deduplicated() {
        let names: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let m = Metrics::new(&refs, &["ok", "bad_json", "bad_json", "", "other"]);
        assert_eq!(m.methods.len(), MAX_METHODS + 1);
        assert_eq!(m.method_name(m.method_id("m63")), "m63");
        assert_eq!(m.method_id("m64"), m.other_method());
        let codes: Vec<&str> = m.codes.iter().map(|c| &**c).collect();
        assert_eq!(codes, ["ok", "bad_json", "other"]);
        // An id from a bigger table lands in `other`, never out of bounds.
        let small = Metrics::new(&["ping"], &[]);
        small.observe(m.method_id("m50"), m.code_id("bad_json"), Duration::ZERO);
        assert_eq!(small.requests(small.other_method(), CodeId(1)), 1);
    }

    #[test]
    fn local_counts_add_up_to_the_same_as_direct_ones() {
        let direct = Metrics::default();
        let batched = Metrics::default();
        let mut local = batched.local();
        assert!(local.is_empty());
        let cases = [
            ("ping", "ok", 5u64),
            ("get", "ok", 40),
            ("get", "bad_params", 0),
            ("nope", "unknown_method", 2_000_000),
            ("ping", "ok", 7),
        ];
        for round in 0..3 {
            for (method, code, us) in cases {
                let (m, c) = (direct.method_id(method), direct.code_id(code));
                direct.observe(m, c, Duration::from_micros(us));
                local.observe(m, c, Duration::from_micros(us));
            }
            assert!(!local.is_empty());
            if round != 1 {
                batched.absorb(&mut local);
                assert!(local.is_empty());
            }
        }
        batched.absorb(&mut local);
        assert_eq!(render(&direct), render(&batched));
        let ping = batched.method_id("ping");
        assert_eq!(batched.requests(ping, CodeId::OK), 6);
        // Absorbing an empty or foreign accumulator changes nothing.
        batched.absorb(&mut local);
        let mut foreign = Metrics::new(&["ping"], &[]).local();
        foreign.observe(ping, CodeId::OK, Duration::from_micros(1));
        batched.absorb(&mut foreign);
        assert!(foreign.is_empty());
        assert_eq!(render(&direct), render(&batched));
    }

    #[test]
    fn renders_counters_and_a_consistent_histogram() {
        let m = Metrics::default();
        let ping = m.method_id("ping");
        m.observe(ping, CodeId::OK, Duration::from_micros(5));
        m.observe(ping, CodeId::OK, Duration::from_micros(30));
        m.observe(ping, m.code_id("bad_params"), Duration::from_secs(2));
        m.add_bytes_received(100);
        m.add_bytes_sent(250);
        let text = render(&m);
        let expect = [
            "# HELP reactor_rpc_requests_total Requests answered",
            "# TYPE reactor_rpc_requests_total counter\n",
            "reactor_rpc_requests_total{method=\"ping\",code=\"ok\"} 2\n",
            "reactor_rpc_requests_total{method=\"ping\",code=\"bad_params\"} 1\n",
            "reactor_rpc_requests_total{method=\"fib\",code=\"ok\"} 0\n",
            "# TYPE reactor_rpc_request_duration_seconds histogram\n",
            "reactor_rpc_request_duration_seconds_bucket{method=\"ping\",le=\"0.00001\"} 1\n",
            "reactor_rpc_request_duration_seconds_bucket{method=\"ping\",le=\"0.000025\"} 1\n",
            "reactor_rpc_request_duration_seconds_bucket{method=\"ping\",le=\"0.00005\"} 2\n",
            "reactor_rpc_request_duration_seconds_bucket{method=\"ping\",le=\"1\"} 2\n",
            "reactor_rpc_request_duration_seconds_bucket{method=\"ping\",le=\"+Inf\"} 3\n",
            "reactor_rpc_request_duration_seconds_sum{method=\"ping\"} 2.000035\n",
            "reactor_rpc_request_duration_seconds_count{method=\"ping\"} 3\n",
            "reactor_rpc_request_duration_seconds_count{method=\"stats\"} 0\n",
            "# TYPE reactor_rpc_connections gauge\nreactor_rpc_connections 3\n",
            "reactor_rpc_connections_total 10\n",
            "reactor_rpc_connections_rejected_total 1\n",
            "reactor_rpc_bytes_received_total 100\n",
            "reactor_rpc_bytes_sent_total 250\n",
            "reactor_rpc_keys 42\n",
            "# TYPE reactor_rpc_jobs gauge\n",
            "reactor_rpc_jobs{state=\"queued\"} 2\n",
            "reactor_rpc_jobs{state=\"running\"} 1\n",
            "reactor_rpc_jobs{state=\"completed\"} 7\n",
            "reactor_rpc_used_memory_bytes 4096\n",
            "reactor_rpc_evicted_keys_total 5\n",
            "reactor_rpc_expired_keys_total 6\n",
            concat!(
                "reactor_rpc_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\",model=\"reactor\"} 1\n"
            ),
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1048576\n",
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n",
            "process_open_fds 9\n",
            "process_start_time_seconds 1700000000.25\n",
        ];
        for e in expect {
            assert!(text.contains(e), "missing {e:?} in\n{text}");
        }
        // The unused `other` method gets no series.
        assert!(!text.contains("method=\"other\""));
        assert!(text.ends_with('\n'));
        check_exposition_syntax(&text);
    }

    #[test]
    fn persistence_figures_only_with_a_snapshot_file() {
        let m = Metrics::default();
        let mut out = String::new();
        m.render_with(&readings(), &ProcessStats::default(), &mut out);
        assert!(
            !out.contains("_last_save") && !out.contains("saves_total"),
            "{out}"
        );

        let mut status = PersistenceStatus {
            enabled: true,
            last_save_ok: false,
            last_save_time: 1_700_000_000,
            last_save_duration_ms: Some(1_250),
            changes_since_last_save: 12,
            last_save_error: Some("File too large (os error 27) \"x\"".into()),
            writes_refused: true,
            saves: 3,
            ..PersistenceStatus::default()
        };
        let r = Readings {
            persistence: Some(&status),
            ..readings()
        };
        let mut out = String::new();
        m.render_with(&r, &ProcessStats::default(), &mut out);
        for line in [
            "reactor_rpc_last_save_status 0\n",
            "reactor_rpc_last_save_time_seconds 1700000000\n",
            "reactor_rpc_last_save_duration_seconds 1.25\n",
            "reactor_rpc_changes_since_last_save 12\n",
            "reactor_rpc_save_in_progress 0\n",
            "reactor_rpc_writes_refused 1\n",
            "reactor_rpc_saves_total 3\n",
            "reactor_rpc_last_save_error_info{error=\"File too large (os error 27) \\\"x\\\"\"} 1\n",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
        check_exposition_syntax(&out);

        // A success: status 1, no error series; no duration before any save.
        status.last_save_ok = true;
        status.last_save_error = None;
        status.last_save_duration_ms = None;
        let r = Readings {
            persistence: Some(&status),
            ..readings()
        };
        let mut out = String::new();
        m.render_with(&r, &ProcessStats::default(), &mut out);
        assert!(out.contains("reactor_rpc_last_save_status 1\n"), "{out}");
        assert!(!out.contains("error_info") && !out.contains("last_save_duration"));
        check_exposition_syntax(&out);
    }

    #[test]
    fn missing_process_figures_are_left_out() {
        let m = Metrics::default();
        let mut out = String::new();
        m.render_with(&readings(), &ProcessStats::default(), &mut out);
        assert!(!out.contains("process_"));
        check_exposition_syntax(&out);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new(&["we\"ird\\na\nme"], &[]);
        let mut out = String::new();
        let r = Readings {
            model: "a\"b",
            ..Readings::default()
        };
        m.render_with(&r, &ProcessStats::default(), &mut out);
        assert!(out.contains(r#"{method="we\"ird\\na\nme",code="ok"} 0"#));
        assert!(out.contains(r#"model="a\"b"} 1"#));
        let mut help = String::new();
        escape_help(&mut help, "a\\b\nc\"");
        assert_eq!(help, "a\\\\b\\nc\"");
        check_exposition_syntax(&out);
    }

    #[test]
    fn floats_use_prometheus_spellings() {
        assert_eq!(Float(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Float(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Float(0.25).to_string(), "0.25");
    }

    #[test]
    fn parses_proc_stat_with_a_hostile_command_name() {
        // A command name may hold spaces and parentheses.
        let line = "1234 (we ird) (name) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 75 0 0 20 0 3 0 98765 123456789 4321 18446744073709551615";
        let s = parse_proc_stat(line).expect("parses");
        assert_eq!(
            s,
            ProcStat {
                utime: 250,
                stime: 75,
                starttime: 98765,
                rss_pages: 4321
            }
        );
        assert_eq!(parse_proc_stat("1234 (x) S 1 2"), None);
        assert_eq!(parse_proc_stat("no paren"), None);
        assert_eq!(parse_proc_stat(""), None);
        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1 2 3\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.resident_memory_bytes.is_some_and(|v| v > 0), "{p:?}");
        assert!(p.open_fds.is_some_and(|v| v >= 3), "{p:?}");
        assert!(p.cpu_seconds.is_some(), "{p:?}");
        let start = p.start_time_seconds.expect("start time");
        let now = crate::ops::unix_ms_now() as f64 / 1000.0;
        // Started within the last day, and not in the future (1 s of slack
        // for tick rounding).
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }

    /// Checks every line against the text format's grammar (a subset: what
    /// this renderer can produce), and that each family's samples follow its
    /// `# TYPE` line without interleaving.
    fn check_exposition_syntax(text: &str) {
        let mut families: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("");
                assert!(!families.iter().any(|f| f == name), "{name} twice");
                families.push(name.to_string());
                current = name.to_string();
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                assert_eq!(it.next(), Some(current.as_str()));
                assert!(matches!(it.next(), Some("counter" | "gauge" | "histogram")));
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            let name_end = line.find(['{', ' ']).expect("name");
            let name = &line[..name_end];
            assert!(
                name == current
                    || name
                        .strip_prefix(current.as_str())
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)),
                "{name} outside its family {current}"
            );
            assert!(name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            let value = line.rsplit(' ').next().expect("value");
            assert!(
                value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
                "{line}"
            );
        }
    }
}
