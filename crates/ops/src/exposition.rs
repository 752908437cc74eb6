//! The Prometheus text exposition (format 0.0.4) of a server's metrics.
//!
//! The counters live in the core crate ([`Metrics`], bumped on the hot path);
//! the gauges whose state lives elsewhere come in [`Readings`]; this module
//! only writes them out, with this process's `/proc` figures
//! ([`crate::procfs`]). A scrape renders into a `String`; nothing here runs on
//! the request path.
//!
//! The metric names are fixed: dashboards rely on them (CHANGELOG.md lists
//! the renames of 0.3.0, made so that a Prometheus parser reads every family
//! apart and units come last, as Prometheus's naming guide asks).
//!
//! | name | type | labels |
//! |---|---|---|
//! | `reactor_rpc_requests_total` | counter | `protocol` (`json`, `resp`), `method` (a JSON method, a RESP command, or `other`), `code` (`ok` or an error code) |
//! | `reactor_rpc_request_duration_seconds` | histogram | `protocol`, `method` |
//! | `reactor_rpc_open_connections` | gauge | `listener` (`rpc`, `resp`, `metrics`) |
//! | `reactor_rpc_connections_total` | counter | `listener` |
//! | `reactor_rpc_connections_rejected_total` | counter | `listener` |
//! | `reactor_rpc_received_bytes_total`, `reactor_rpc_sent_bytes_total` | counter | |
//! | `reactor_rpc_pending_output_bytes`, `reactor_rpc_input_held_bytes` | gauge | |
//! | `reactor_rpc_evicted_clients_total` | counter | |
//! | `reactor_rpc_keys`, `reactor_rpc_expiring_keys` | gauge | |
//! | `reactor_rpc_keyspace_hits_total`, `reactor_rpc_keyspace_misses_total` | counter | |
//! | `reactor_rpc_jobs` | gauge | `state` (`queued`, `running`) |
//! | `reactor_rpc_jobs_completed_total` | counter | |
//! | `reactor_rpc_used_memory_bytes`, `reactor_rpc_maxmemory_bytes` | gauge | |
//! | `reactor_rpc_evicted_keys_total`, `reactor_rpc_expired_keys_total` | counter | |
//! | `reactor_rpc_build_info` | gauge (always 1) | `version`, `model` |
//! | `reactor_rpc_last_save_status`, `reactor_rpc_last_save_time_seconds`, `reactor_rpc_last_save_duration_seconds`, `reactor_rpc_changes_since_last_save`, `reactor_rpc_save_in_progress`, `reactor_rpc_writes_refused` (with a snapshot file) | gauge | |
//! | `reactor_rpc_saves_total` (with a snapshot file) | counter | |
//! | `reactor_rpc_last_save_error_info` (while the last save failed) | gauge (always 1) | `error` |
//! | `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds` | gauge | |
//! | `process_cpu_seconds_total` | counter | |
//! | `process_start_time_seconds` | gauge | |
//!
//! The label sets are fixed at start: `method` takes the registry's method
//! names for `json` and the Redis command table's names for `resp`, a name
//! outside them counts as `other`. A JSON method has its `ok` series from
//! the start; a RESP command, like `INFO commandstats`, appears once it is
//! first counted. Connections are shown for every listener, 0 for one the
//! server does not have; the metrics port's are not client connections
//! (`stats` and `INFO` count the RPC and RESP ports').
//!
//! The `process_*` metrics are read from `/proc` at each render; one that
//! cannot be read is left out of that scrape rather than reported as 0.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reactor_rpc_core::metrics::{Metrics, Protocol, DURATION_BUCKETS};
use reactor_rpc_core::service::stats::{ListenerCounts, Readings};
use reactor_rpc_core::service::PersistenceStatus;
use reactor_rpc_core::session::{Exposition, Role};
use reactor_rpc_core::Service;

use crate::procfs::ProcessStats;

/// How long a rendered page is served before the next scrape renders anew.
/// Prometheus scrapes every 15 s or so; a page a second old is as good, and
/// a hundred scrapers that pipeline requests cost one render a second, not
/// one per request.
pub const PAGE_TTL: Duration = Duration::from_secs(1);

/// The metrics page of a server, rendered at most once per [`PAGE_TTL`] and
/// shared (the same [`Bytes`]) by every scrape within it: the
/// [`Exposition`] a server's metrics port serves.
pub struct Scrapes {
    service: Arc<Service>,
    page: Mutex<Option<(Instant, Bytes)>>,
}

impl Scrapes {
    /// The exposition of `service`'s counters and readings.
    pub fn new(service: Arc<Service>) -> Scrapes {
        Scrapes {
            service,
            page: Mutex::new(None),
        }
    }

    /// Renders the page now, whatever the cache holds.
    pub fn render_now(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        render(
            self.service.metrics(),
            &self.service.readings(),
            &ProcessStats::read(),
            &mut out,
        );
        out
    }
}

impl Exposition for Scrapes {
    fn page(&self) -> Bytes {
        let now = Instant::now();
        let mut page = self.page.lock().unwrap_or_else(PoisonError::into_inner);
        match &*page {
            Some((at, bytes)) if now.duration_since(*at) < PAGE_TTL => bytes.clone(),
            _ => {
                let bytes = Bytes::from(self.render_now());
                *page = Some((now, bytes.clone()));
                bytes
            }
        }
    }
}

/// Appends the whole exposition to `out`: the counters of `metrics`, the
/// gauges in `r`, and this process's figures (`process`, from
/// [`ProcessStats::read`](crate::procfs::ProcessStats::read)).
pub fn render(metrics: &Metrics, r: &Readings, process: &ProcessStats, out: &mut String) {
    let mut w = Writer { out };
    render_requests(metrics, &mut w);
    render_durations(metrics, &mut w);
    render_connections(r, &mut w);

    w.single(
        "reactor_rpc_received_bytes_total",
        "Bytes of requests read from clients (JSON and RESP).",
        "counter",
        metrics.bytes_received(),
    );
    w.single(
        "reactor_rpc_sent_bytes_total",
        "Bytes of responses queued for clients (JSON and RESP).",
        "counter",
        metrics.bytes_sent(),
    );
    w.single(
        "reactor_rpc_pending_output_bytes",
        "Responses produced and not yet taken by the kernel, all connections together.",
        "gauge",
        r.pending_output_bytes,
    );
    w.single(
        "reactor_rpc_input_held_bytes",
        "Requests received and not yet answered, all connections together (--max-input-total).",
        "gauge",
        r.input_held_bytes,
    );
    w.single(
        "reactor_rpc_evicted_clients_total",
        "Connections closed because all together held more input than --max-input-total.",
        "counter",
        r.evicted_clients_total,
    );
    w.single(
        "reactor_rpc_keys",
        "Keys in the cache (expired keys not yet swept included).",
        "gauge",
        r.keys,
    );
    w.single(
        "reactor_rpc_expiring_keys",
        "Keys in the cache with a TTL.",
        "gauge",
        r.expiring_keys,
    );
    w.single(
        "reactor_rpc_keyspace_hits_total",
        "Key reads that found their key.",
        "counter",
        r.keyspace_hits_total,
    );
    w.single(
        "reactor_rpc_keyspace_misses_total",
        "Key reads that did not find their key.",
        "counter",
        r.keyspace_misses_total,
    );
    w.header(
        "reactor_rpc_jobs",
        "Heavy requests handed to worker threads, waiting or running now.",
        "gauge",
    );
    for (state, value) in [("queued", r.jobs_queued), ("running", r.jobs_running)] {
        w.sample("reactor_rpc_jobs", &[("state", state)], value);
    }
    w.single(
        "reactor_rpc_jobs_completed_total",
        "Heavy requests finished by worker threads.",
        "counter",
        r.jobs_completed,
    );
    w.single(
        "reactor_rpc_used_memory_bytes",
        "Bytes the cache accounts for (keys, values, overhead).",
        "gauge",
        r.used_memory_bytes,
    );
    w.single(
        "reactor_rpc_maxmemory_bytes",
        "The cache's memory limit (--maxmemory); 0 for no limit.",
        "gauge",
        r.maxmemory_bytes,
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

    w.single(
        "reactor_rpc_tls_reload_failures_total",
        "Reloads of the TLS certificate, key and CA (on SIGHUP) that failed; the old ones stayed in use.",
        "counter",
        r.tls_reload_failures,
    );
    w.single(
        "reactor_rpc_auth_failures_total",
        "Failed authentications: a wrong user or password (JSON auth, RESP AUTH and HELLO AUTH) or metrics token.",
        "counter",
        r.auth_failures,
    );
    w.single(
        "reactor_rpc_auth_refused_total",
        "Authentication attempts refused unchecked: their address was locked out after repeated failures.",
        "counter",
        r.auth_refused,
    );
    if let Some(p) = &r.persistence {
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
    if let Some(v) = process.max_fds {
        w.single(
            "process_max_fds",
            "Maximum number of open file descriptors.",
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

/// Whether a row gets its series while nothing was counted in it: a named
/// JSON method has its `ok` series from the start (so `rate()` works at
/// once); a RESP command, like Redis's `INFO commandstats`, and each
/// protocol's `other` appear when first counted (the RESP table has room
/// for hundreds of commands, most never called).
fn shown_at_zero(metrics: &Metrics, row: usize, protocol: Protocol) -> bool {
    protocol == Protocol::Json && !metrics.is_other(row)
}

fn render_requests(metrics: &Metrics, w: &mut Writer<'_>) {
    const NAME: &str = "reactor_rpc_requests_total";
    w.header(
        NAME,
        "Requests answered, by protocol (json, resp), method or command, and outcome (ok or the error code).",
        "counter",
    );
    for (m, (protocol, method)) in metrics.rows().enumerate() {
        for (c, code) in metrics.codes().enumerate() {
            let value = metrics.requests(metrics.method_at(m), metrics.code_at(c));
            if value == 0 && (c != 0 || !shown_at_zero(metrics, m, protocol)) {
                continue;
            }
            let labels = [
                ("protocol", protocol.as_str()),
                ("method", method),
                ("code", code),
            ];
            w.sample(NAME, &labels, value);
        }
    }
}

fn render_durations(metrics: &Metrics, w: &mut Writer<'_>) {
    const NAME: &str = "reactor_rpc_request_duration_seconds";
    w.header(
        NAME,
        "Time from a request's complete frame to its response being queued.",
        "histogram",
    );
    for (m, (protocol, method)) in metrics.rows().enumerate() {
        let (counts, sum_ns) = metrics.histogram(metrics.method_at(m));
        let count: u64 = counts.iter().sum();
        if count == 0 && !shown_at_zero(metrics, m, protocol) {
            continue;
        }
        let labels = [("protocol", protocol.as_str()), ("method", method)];
        let mut cumulative = 0u64;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = match DURATION_BUCKETS.get(i) {
                Some(le) => LeLabel::Bound(*le),
                None => LeLabel::Inf,
            };
            w.bucket(NAME, &labels, le, cumulative);
        }
        w.suffixed(NAME, "_sum", &labels, Float(sum_ns as f64 / 1e9));
        w.suffixed(NAME, "_count", &labels, count);
    }
}

/// Connections by listener (`rpc`, `resp`, `metrics`; 0 for a listener the
/// server does not have): the client ports' limit (`--max-conns`) and the
/// metrics port's (`--metrics-max-conns`) are apart, and so are their figures.
fn render_connections(r: &Readings, w: &mut Writer<'_>) {
    /// A family's name, help, type, and its figure of one listener.
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ListenerCounts) -> u64,
    );
    let families: [Family; 3] = [
        (
            "reactor_rpc_open_connections",
            "Connections served now, by listener.",
            "gauge",
            |l| l.open,
        ),
        (
            "reactor_rpc_connections_total",
            "Connections accepted and served since start, by listener.",
            "counter",
            |l| l.accepted,
        ),
        (
            "reactor_rpc_connections_rejected_total",
            "Connections refused at a limit (--max-conns, --max-conns-per-ip, --metrics-max-conns), by listener.",
            "counter",
            |l| l.rejected,
        ),
    ];
    for (name, help, kind, value) in families {
        w.header(name, help, kind);
        for (role, counts) in Role::ALL.iter().zip(&r.listeners) {
            w.sample(name, &[("listener", role.name())], value(counts));
        }
    }
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

    fn bucket(&mut self, name: &str, labels: &[(&str, &str)], le: LeLabel, cumulative: u64) {
        self.out.push_str(name);
        self.out.push_str("_bucket{");
        for (label, v) in labels {
            self.out.push_str(label);
            self.out.push_str("=\"");
            escape_label_value(self.out, v);
            self.out.push_str("\",");
        }
        let _ = match le {
            LeLabel::Bound(b) => writeln!(self.out, "le=\"{b}\"}} {cumulative}"),
            LeLabel::Inf => writeln!(self.out, "le=\"+Inf\"}} {cumulative}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_rpc_core::metrics::CodeId;
    use reactor_rpc_protocol::ErrorCode;

    fn builtin() -> Metrics {
        Metrics::with_commands(
            &[
                "ping", "fib", "set", "get", "del", "exists", "incr", "expire", "ttl", "stats",
            ],
            &["ping", "get", "set", "client"],
        )
    }

    fn readings() -> Readings {
        let listener = |open, accepted, rejected| ListenerCounts {
            open,
            accepted,
            rejected,
        };
        Readings {
            model: "reactor",
            listeners: [listener(3, 10, 1), listener(2, 4, 0), listener(1, 8, 5)],
            keys: 42,
            expiring_keys: 12,
            jobs_queued: 2,
            jobs_running: 1,
            jobs_completed: 7,
            used_memory_bytes: 4096,
            maxmemory_bytes: 1 << 30,
            evicted_keys_total: 5,
            expired_keys_total: 6,
            tls_reload_failures: 0,
            auth_failures: 4,
            auth_refused: 0,
            keyspace_hits_total: 30,
            keyspace_misses_total: 11,
            pending_output_bytes: 65_536,
            input_held_bytes: 4_096,
            evicted_clients_total: 2,
            persistence: None,
        }
    }

    fn render(m: &Metrics) -> String {
        let mut out = String::new();
        let p = ProcessStats {
            resident_memory_bytes: Some(1 << 20),
            cpu_seconds: Some(1.5),
            open_fds: Some(9),
            max_fds: Some(1024),
            start_time_seconds: Some(1_700_000_000.25),
        };
        super::render(m, &readings(), &p, &mut out);
        out
    }

    #[test]
    fn renders_counters_and_a_consistent_histogram() {
        let m = builtin();
        let ping = m.method_id("ping");
        m.observe(ping, CodeId::OK, Duration::from_micros(5));
        m.observe(ping, CodeId::OK, Duration::from_micros(30));
        m.observe(
            ping,
            m.code_id(ErrorCode::BadParams),
            Duration::from_secs(2),
        );
        m.add_bytes_received(100);
        m.add_bytes_sent(250);
        let get = m.command_id("get");
        m.observe_n(get, CodeId::OK, Duration::from_micros(7), 4);
        m.observe(
            m.other_command(),
            m.code_id(ErrorCode::UnknownMethod),
            Duration::ZERO,
        );
        let text = render(&m);
        let expect = [
            "# HELP reactor_rpc_requests_total Requests answered",
            "# TYPE reactor_rpc_requests_total counter\n",
            "reactor_rpc_requests_total{protocol=\"json\",method=\"ping\",code=\"ok\"} 2\n",
            "reactor_rpc_requests_total{protocol=\"json\",method=\"ping\",code=\"bad_params\"} 1\n",
            "reactor_rpc_requests_total{protocol=\"json\",method=\"fib\",code=\"ok\"} 0\n",
            "reactor_rpc_requests_total{protocol=\"resp\",method=\"get\",code=\"ok\"} 4\n",
            "reactor_rpc_requests_total{protocol=\"resp\",method=\"other\",code=\"unknown_method\"} 1\n",
            "# TYPE reactor_rpc_request_duration_seconds histogram\n",
            "reactor_rpc_request_duration_seconds_bucket{protocol=\"json\",method=\"ping\",le=\"0.00001\"} 1\n",
            "reactor_rpc_request_duration_seconds_bucket{protocol=\"json\",method=\"ping\",le=\"0.000025\"} 1\n",
            "reactor_rpc_request_duration_seconds_bucket{protocol=\"json\",method=\"ping\",le=\"0.00005\"} 2\n",
            "reactor_rpc_request_duration_seconds_bucket{protocol=\"json\",method=\"ping\",le=\"1\"} 2\n",
            "reactor_rpc_request_duration_seconds_bucket{protocol=\"json\",method=\"ping\",le=\"+Inf\"} 3\n",
            "reactor_rpc_request_duration_seconds_sum{protocol=\"json\",method=\"ping\"} 2.000035\n",
            "reactor_rpc_request_duration_seconds_count{protocol=\"json\",method=\"ping\"} 3\n",
            "reactor_rpc_request_duration_seconds_count{protocol=\"json\",method=\"stats\"} 0\n",
            "reactor_rpc_request_duration_seconds_bucket{protocol=\"resp\",method=\"get\",le=\"0.00001\"} 4\n",
            "reactor_rpc_request_duration_seconds_count{protocol=\"resp\",method=\"get\"} 4\n",
            "# TYPE reactor_rpc_open_connections gauge\n",
            "reactor_rpc_open_connections{listener=\"rpc\"} 3\n",
            "reactor_rpc_open_connections{listener=\"resp\"} 2\n",
            "reactor_rpc_open_connections{listener=\"metrics\"} 1\n",
            "# TYPE reactor_rpc_connections_total counter\n",
            "reactor_rpc_connections_total{listener=\"rpc\"} 10\n",
            "reactor_rpc_connections_total{listener=\"metrics\"} 8\n",
            "reactor_rpc_connections_rejected_total{listener=\"rpc\"} 1\n",
            "reactor_rpc_connections_rejected_total{listener=\"metrics\"} 5\n",
            "reactor_rpc_received_bytes_total 100\n",
            "reactor_rpc_sent_bytes_total 250\n",
            "# TYPE reactor_rpc_pending_output_bytes gauge\nreactor_rpc_pending_output_bytes 65536\n",
            "# TYPE reactor_rpc_input_held_bytes gauge\nreactor_rpc_input_held_bytes 4096\n",
            "# TYPE reactor_rpc_evicted_clients_total counter\nreactor_rpc_evicted_clients_total 2\n",
            "reactor_rpc_keys 42\n",
            "# TYPE reactor_rpc_expiring_keys gauge\nreactor_rpc_expiring_keys 12\n",
            "# TYPE reactor_rpc_keyspace_hits_total counter\nreactor_rpc_keyspace_hits_total 30\n",
            "# TYPE reactor_rpc_keyspace_misses_total counter\nreactor_rpc_keyspace_misses_total 11\n",
            "# TYPE reactor_rpc_jobs gauge\n",
            "reactor_rpc_jobs{state=\"queued\"} 2\n",
            "reactor_rpc_jobs{state=\"running\"} 1\n",
            "# TYPE reactor_rpc_jobs_completed_total counter\nreactor_rpc_jobs_completed_total 7\n",
            "reactor_rpc_used_memory_bytes 4096\n",
            "# TYPE reactor_rpc_maxmemory_bytes gauge\nreactor_rpc_maxmemory_bytes 1073741824\n",
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
            "# TYPE process_max_fds gauge\nprocess_max_fds 1024\n",
            "process_start_time_seconds 1700000000.25\n",
        ];
        for e in expect {
            assert!(text.contains(e), "missing {e:?} in\n{text}");
        }
        // The unused JSON `other` gets no series, nor do uncalled RESP commands.
        assert!(!text.contains("protocol=\"json\",method=\"other\""));
        assert!(!text.contains("method=\"client\""));
        assert!(!text.contains("protocol=\"resp\",method=\"ping\""));
        assert!(!text.contains("state=\"completed\""));
        assert!(text.ends_with('\n'));
        check_exposition_syntax(&text);
    }

    #[test]
    fn missing_process_figures_are_left_out() {
        let m = builtin();
        let mut out = String::new();
        super::render(&m, &readings(), &ProcessStats::default(), &mut out);
        assert!(!out.contains("process_"));
        check_exposition_syntax(&out);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new(&["we\"ird\\na\nme"]);
        let mut out = String::new();
        let r = Readings {
            model: "a\"b",
            ..Readings::default()
        };
        super::render(&m, &r, &ProcessStats::default(), &mut out);
        assert!(out.contains(r#"{protocol="json",method="we\"ird\\na\nme",code="ok"} 0"#));
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
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.resident_memory_bytes.is_some_and(|v| v > 0), "{p:?}");
        assert!(p.open_fds.is_some_and(|v| v >= 3), "{p:?}");
        assert!(p.cpu_seconds.is_some(), "{p:?}");
        let start = p.start_time_seconds.expect("start time");
        let now = crate::unix_ms_now() as f64 / 1000.0;
        // Started within the last day, and not in the future (1 s of slack
        // for tick rounding).
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }

    /// Checks every line against the text format's grammar (a subset: what
    /// this renderer can produce), that each family's samples follow its
    /// `# TYPE` line without interleaving, and that no two families share a
    /// name as a parser names them (prometheus_client strips a counter's
    /// `_total`, so a gauge `x` and a counter `x_total` would clash).
    fn check_exposition_syntax(text: &str) {
        let mut families: Vec<String> = Vec::new();
        let mut parsed: Vec<String> = Vec::new();
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
                let kind = it.next();
                assert!(matches!(kind, Some("counter" | "gauge" | "histogram")));
                if kind == Some("counter") {
                    assert!(
                        current.ends_with("_total"),
                        "counter {current} without _total"
                    );
                } else {
                    assert!(!current.ends_with("_total"), "{current} is not a counter");
                }
                let family = current
                    .strip_suffix("_total")
                    .unwrap_or(&current)
                    .to_string();
                assert!(!parsed.contains(&family), "two families parse as {family}");
                parsed.push(family);
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

    #[test]
    fn persistence_figures_only_with_a_snapshot_file() {
        let m = builtin();
        let mut out = String::new();
        super::render(&m, &readings(), &ProcessStats::default(), &mut out);
        assert!(
            !out.contains("_last_save") && !out.contains("saves_total"),
            "{out}"
        );

        let mut status = PersistenceStatus::default();
        status.enabled = true;
        status.last_save_ok = false;
        status.last_save_time = 1_700_000_000;
        status.last_save_duration_ms = Some(1_250);
        status.changes_since_last_save = 12;
        status.last_save_error = Some("File too large (os error 27) \"x\"".into());
        status.writes_refused = true;
        status.saves = 3;
        let r = Readings {
            persistence: Some(status.clone()),
            ..readings()
        };
        let mut out = String::new();
        super::render(&m, &r, &ProcessStats::default(), &mut out);
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
            persistence: Some(status.clone()),
            ..readings()
        };
        let mut out = String::new();
        super::render(&m, &r, &ProcessStats::default(), &mut out);
        assert!(out.contains("reactor_rpc_last_save_status 1\n"), "{out}");
        assert!(!out.contains("error_info") && !out.contains("last_save_duration"));
        check_exposition_syntax(&out);
    }
}
