//! The counters a server keeps for its metrics: cheap enough for the hot
//! path, with a label set fixed at start.
//!
//! Why this shape:
//!
//! - **Cost.** Counting a request ([`Metrics::observe`]) is one relaxed
//!   `fetch_add` on the `(method, code)` counter, one on the latency bucket,
//!   one on the latency sum, plus a linear search of 16 bucket bounds that
//!   stops at the first match (a fast request stops after two or three
//!   comparisons). No lock, no allocation, no hashing. A pipelined batch
//!   counts its runs of equal labels together ([`Metrics::observe_n`]), so
//!   16 pipelined pings cost three atomic adds in all.
//! - **A bounded label set, per protocol.** Method names come from clients.
//!   Labels are fixed at construction ([`Metrics::with_commands`]): one
//!   table per [`Protocol`], the server's JSON method names (its
//!   registry's, at most [`MAX_METHODS`]) and its Redis commands' names (at
//!   most [`MAX_COMMANDS`]), each ending in an `other` slot, and every
//!   [`ErrorCode`]. A name not in its table is counted as that protocol's
//!   `other`, so a client sending a million random method names adds no
//!   series and no memory. Resolve a name once with [`Metrics::method_id`]
//!   or [`Metrics::command_id`] (a short linear search, no allocation) and
//!   pass the small [`MethodId`] around: the request path only ever indexes
//!   rows it resolved at start. Because the code labels are
//!   [`ErrorCode::ALL`], a new code is labelled the day it is added.
//! - **Independence.** Gauges whose state lives elsewhere (connections,
//!   cache keys and memory, jobs, persistence) are read by the service
//!   (`service::stats::Readings`). Rendering the Prometheus text is not done
//!   here: it is the ops crate's exposition, which reads these counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use reactor_rpc_protocol::ErrorCode;

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
pub const N_BUCKETS: usize = BUCKETS_NS.len() + 1;

/// The label value for a name that is not in the table.
pub const OTHER: &str = "other";

/// Most JSON method labels a [`Metrics`] keeps (besides `other`).
pub const MAX_METHODS: usize = 64;
/// Most RESP command labels a [`Metrics`] keeps (besides `other`): room for
/// the whole Redis command table as it grows.
pub const MAX_COMMANDS: usize = 256;
/// Most error-code labels a [`Metrics`] keeps (besides `ok` and `other`).
pub const MAX_CODES: usize = 32;

/// The protocol a request came in: the `protocol` label, and which label
/// table its method name is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The JSON RPC port (`protocol="json"`): the registry's method names.
    Json,
    /// The Redis protocol port (`protocol="resp"`): the command table's names.
    Resp,
}

impl Protocol {
    /// The label value: `json` or `resp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::Resp => "resp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A method's (or RESP command's) row in the table, from
/// [`Metrics::method_id`] or [`Metrics::command_id`] (the default is row 0;
/// use it only as a placeholder before resolving a name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MethodId(u16);

/// An outcome's column in the table: [`CodeId::OK`] or from [`Metrics::code_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeId(u8);

impl CodeId {
    /// The request succeeded (`code="ok"`).
    pub const OK: CodeId = CodeId(0);
}

/// Where each counter lives in the flat table of [`Metrics`]:
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
    /// Method label values: the JSON rows, the last of them [`OTHER`], then
    /// the RESP rows from `resp_start`, the last of them [`OTHER`].
    methods: Box<[Box<str>]>,
    /// The first RESP row.
    resp_start: usize,
    /// Code label values; the first is `ok`, the last [`OTHER`].
    codes: Box<[Box<str>]>,
    shape: Shape,
    /// Request counters and latency histograms, laid out by [`Shape`].
    cells: Box<[AtomicU64]>,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("methods", &self.methods)
            .field("resp_start", &self.resp_start)
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

/// The id of row `i`: the tables hold at most `MAX_METHODS + MAX_COMMANDS
/// + 2` rows, well within `u16`.
fn row(i: usize) -> MethodId {
    MethodId(u16::try_from(i).unwrap_or(u16::MAX))
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
    /// Counters labelled with these JSON method names and no RESP command
    /// but `other`: [`Metrics::with_commands`] with no commands.
    pub fn new(methods: &[&str]) -> Metrics {
        Metrics::with_commands(methods, &[])
    }

    /// Counters labelled with these JSON method names (in this order, then
    /// `other`), these RESP command names (likewise), and every
    /// [`ErrorCode`] (after `ok`, then `other`). Duplicates, empty names and
    /// names beyond [`MAX_METHODS`] (JSON) or [`MAX_COMMANDS`] (RESP) are
    /// dropped: they count as their protocol's `other`.
    pub fn with_commands(methods: &[&str], commands: &[&str]) -> Metrics {
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let json = label_table(None, methods, MAX_METHODS);
        let resp = label_table(None, commands, MAX_COMMANDS);
        let resp_start = json.len();
        let methods: Box<[Box<str>]> = json.into_vec().into_iter().chain(resp.into_vec()).collect();
        let codes = label_table(Some("ok"), &codes, MAX_CODES);
        let shape = Shape {
            methods: methods.len(),
            codes: codes.len(),
        };
        let cells = (0..shape.len()).map(|_| AtomicU64::new(0)).collect();
        Metrics {
            methods,
            resp_start,
            codes,
            shape,
            cells,
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }

    /// The row of a JSON method name; any name not in the table is the
    /// JSON `other`. Compares against at most [`MAX_METHODS`] short strings
    /// and never allocates; a caller that knows its methods up front can
    /// keep the ids.
    pub fn method_id(&self, name: &str) -> MethodId {
        row(position(&self.methods[..self.resp_start], name))
    }

    /// The row of a RESP command name (lower case, as the command table
    /// names it); any name not in the table is the RESP `other`. Resolved
    /// once per command at start: the request path indexes the rows.
    pub fn command_id(&self, name: &str) -> MethodId {
        row(self.resp_start + position(&self.methods[self.resp_start..], name))
    }

    /// The column for an error code.
    pub fn code_id(&self, code: ErrorCode) -> CodeId {
        // The code table is capped well below 256 entries.
        CodeId(position(&self.codes, code.as_str()) as u8)
    }

    /// The JSON `other` row, for requests with no usable method name.
    pub fn other_method(&self) -> MethodId {
        row(self.resp_start - 1)
    }

    /// The RESP `other` row, for commands not in the command table.
    pub fn other_command(&self) -> MethodId {
        row(self.methods.len() - 1)
    }

    /// The protocol of a row (an id from a bigger table is RESP's `other`).
    pub fn protocol(&self, id: MethodId) -> Protocol {
        if usize::from(id.0) < self.resp_start {
            Protocol::Json
        } else {
            Protocol::Resp
        }
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
    /// `fetch_add`s.
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

    /// Every row's protocol and method label value, in row order: the JSON
    /// methods, their `other`, the RESP commands, their `other`.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = (Protocol, &str)> {
        let resp_start = self.resp_start;
        self.methods.iter().enumerate().map(move |(i, m)| {
            let protocol = if i < resp_start {
                Protocol::Json
            } else {
                Protocol::Resp
            };
            (protocol, &**m)
        })
    }

    /// Whether row `i` of [`Metrics::rows`] is its protocol's `other`.
    pub fn is_other(&self, i: usize) -> bool {
        i + 1 == self.resp_start || i + 1 == self.methods.len()
    }

    /// The code label values, in column order (`ok` first, [`OTHER`] last).
    pub fn codes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.codes.iter().map(|c| &**c)
    }

    /// Row `m`'s latency histogram: the count of each bucket (not
    /// cumulative; the last is `+Inf`) and the sum of the durations in
    /// nanoseconds. An out-of-range row reads as `other`'s.
    pub fn histogram(&self, method: MethodId) -> ([u64; N_BUCKETS], u64) {
        let (m, _) = self.shape.clamp(method, CodeId::OK);
        let counts = std::array::from_fn(|b| self.load(self.shape.bucket(m, b)));
        (counts, self.load(self.shape.sum(m)))
    }

    /// The id of row `i` of [`Metrics::rows`].
    pub fn method_at(&self, i: usize) -> MethodId {
        row(i.min(self.methods.len() - 1))
    }

    /// The id of column `i` of [`Metrics::codes`].
    pub fn code_at(&self, i: usize) -> CodeId {
        CodeId(i.min(self.codes.len() - 1) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Metrics {
        Metrics::new(&[
            "ping", "fib", "set", "get", "del", "exists", "incr", "expire", "ttl", "stats",
        ])
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
        let m = builtin();
        let other = m.method_id("no-such-method");
        assert_eq!(other, m.other_method());
        assert_eq!(m.method_name(other), "other");
        assert_eq!(m.method_id("other"), other);
        let unknown = m.code_id(ErrorCode::UnknownMethod);
        for i in 0..1000 {
            let id = m.method_id(&format!("random{i}"));
            m.observe(id, unknown, Duration::from_micros(3));
        }
        assert_eq!(m.requests(other, unknown), 1000);
        let json = m.rows().filter(|r| r.0 == Protocol::Json).count();
        assert_eq!(json, 11);
        assert_eq!(m.code_name(CodeId::OK), "ok");
        assert_eq!(m.code_name(m.code_id(ErrorCode::Oom)), "oom");
    }

    #[test]
    fn every_error_code_has_its_own_label() {
        let m = builtin();
        for &code in ErrorCode::ALL {
            assert_eq!(m.code_name(m.code_id(code)), code.as_str());
        }
        let codes: Vec<&str> = m.codes().collect();
        assert_eq!(codes.first(), Some(&"ok"));
        assert_eq!(codes.last(), Some(&OTHER));
        assert_eq!(codes.len(), ErrorCode::ALL.len() + 2);
    }

    #[test]
    fn label_tables_are_bounded_and_deduplicated() {
        let names: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
        let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
        refs.insert(1, "m0");
        refs.insert(2, "");
        refs.insert(3, "other");
        let m = Metrics::with_commands(&refs, &refs);
        assert_eq!(m.rows().len(), MAX_METHODS + 1 + 200 + 1);
        assert_eq!(m.method_name(m.method_id("m63")), "m63");
        assert_eq!(m.method_id("m64"), m.other_method());
        assert_eq!(m.method_name(m.command_id("m199")), "m199");
        let many: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let wide = Metrics::with_commands(&[], &many);
        assert_eq!(wide.rows().len(), 1 + MAX_COMMANDS + 1);
        assert_eq!(wide.method_name(wide.command_id("c255")), "c255");
        assert_eq!(wide.command_id("c256"), wide.other_command());
        // An id from a bigger table lands in the last row (RESP's `other`),
        // never out of bounds.
        let small = Metrics::new(&["ping"]);
        small.observe(m.command_id("m199"), CodeId::OK, Duration::ZERO);
        assert_eq!(small.requests(small.other_command(), CodeId::OK), 1);
    }

    #[test]
    fn each_protocol_has_its_own_table_and_other() {
        let m = Metrics::with_commands(&["ping", "get"], &["ping", "get", "client"]);
        let (json, resp) = (m.method_id("get"), m.command_id("get"));
        assert_ne!(json, resp);
        assert_eq!(m.protocol(json), Protocol::Json);
        assert_eq!(m.protocol(resp), Protocol::Resp);
        assert_eq!(m.method_name(resp), "get");
        // A JSON method name unknown to RESP is RESP's `other`, and back.
        assert_eq!(m.command_id("stats"), m.other_command());
        assert_eq!(m.method_id("client"), m.other_method());
        assert_ne!(m.other_method(), m.other_command());
        assert_eq!(m.protocol(m.other_method()), Protocol::Json);
        assert_eq!(m.protocol(m.other_command()), Protocol::Resp);
        m.observe_n(resp, CodeId::OK, Duration::from_micros(3), 4);
        assert_eq!(m.requests(resp, CodeId::OK), 4);
        assert_eq!(m.requests(json, CodeId::OK), 0);
        let rows: Vec<(Protocol, &str)> = m.rows().collect();
        assert_eq!(
            rows,
            [
                (Protocol::Json, "ping"),
                (Protocol::Json, "get"),
                (Protocol::Json, "other"),
                (Protocol::Resp, "ping"),
                (Protocol::Resp, "get"),
                (Protocol::Resp, "client"),
                (Protocol::Resp, "other"),
            ]
        );
        let others: Vec<usize> = (0..rows.len()).filter(|&i| m.is_other(i)).collect();
        assert_eq!(others, [2, 6]);
    }

    #[test]
    fn a_batch_counts_as_its_requests() {
        let m = builtin();
        let ping = m.method_id("ping");
        m.observe_n(ping, CodeId::OK, Duration::from_micros(20), 16);
        m.observe(ping, CodeId::OK, Duration::from_secs(5));
        assert_eq!(m.requests(ping, CodeId::OK), 17);
        let (buckets, sum_ns) = m.histogram(ping);
        assert_eq!(buckets[1], 16);
        assert_eq!(buckets[N_BUCKETS - 1], 1);
        assert_eq!(sum_ns, 16 * 20_000 + 5_000_000_000);
    }
}
