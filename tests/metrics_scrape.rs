//! `GET /metrics` from real servers, parsed by a real exposition-format
//! parser (Python's `prometheus_client.parser`), in every model: no two
//! families share a name as the parser reads them, every figure an operator
//! expects is there (requests by protocol and method, connections by
//! listener, keyspace hits and misses, `maxmemory`, keys with an expiry,
//! pending output, persistence, `process_max_fds`), and the metrics port is a
//! fair citizen: its connections have their own limit, scrapers are served
//! concurrently, scrapers that pipeline and never read leave the RPC port
//! answering, and `HEAD` answers as `GET` does without the body.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use reactor_rpc::Model;
use serde_json::{json, Map, Value};

use crate::support::{
    assert_error, assert_usable, raw_connect, read_response, request, scrape_metrics as scrape,
    stats, wait_until, ServerProcess, TestServer, TIMEOUT,
};

model_tests! {
    every_model: [
        a_full_page_parses_with_every_figure,
        metrics_connections_have_their_own_limit,
        pipelining_scrapers_leave_a_ping_answered,
        head_answers_as_get_without_the_body,
        pending_output_is_reported,
    ],
    not_pool: [],
}

/// One sample: its name, labels and value.
type Sample = (String, Map<String, Value>, f64);

/// One metric family as the parser reads it: its name (a counter's without
/// `_total`), its type, and its samples.
struct Family {
    name: String,
    kind: String,
    samples: Vec<Sample>,
}

/// Every family of an exposition, through prometheus_client's parser.
fn parse_families(body: &str) -> Vec<Family> {
    const PARSER: &str = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    out.append([family.name, family.type, [[s.name, s.labels, s.value] for s in family.samples]])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<(String, String, Vec<Sample>)> =
        serde_json::from_slice(&out.stdout).expect("json");
    families
        .into_iter()
        .map(|(name, kind, samples)| Family {
            name,
            kind,
            samples,
        })
        .collect()
}

/// Every sample of an exposition, through prometheus_client's parser.
fn parse(body: &str) -> Vec<Sample> {
    parse_families(body)
        .into_iter()
        .flat_map(|f| f.samples)
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(v))
        })
        .map(|s| s.2)
}

/// Scrapes until a page satisfies `ready` (a page is rendered at most once a
/// second and shared within it, so a change shows in a later page).
fn scrape_until(addr: SocketAddr, what: &str, ready: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let mut page = parse(&scrape(addr));
    wait_until(what, TIMEOUT, || {
        if ready(&page) {
            return true;
        }
        page = parse(&scrape(addr));
        false
    });
    page
}

/// One RESP command and its reply's first line (a bulk string's contents).
fn resp(s: &mut BufReader<TcpStream>, args: &[&str]) -> String {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.get_mut().write_all(cmd.as_bytes()).expect("write");
    let mut line = String::new();
    s.read_line(&mut line).expect("read");
    if let Some(len) = line.strip_prefix('$').and_then(|l| l.trim().parse().ok()) {
        let mut body = vec![0u8; len + 2];
        s.read_exact(&mut body).expect("bulk");
        body.truncate(len);
        return String::from_utf8(body).expect("utf-8");
    }
    line
}

/// An HTTP response: its status, `Content-Length` and body.
struct Response {
    status: u16,
    content_length: usize,
    body: Vec<u8>,
}

/// Reads one response from `s` (`pending` holds what was read beyond the
/// last one); `head` means the request was a HEAD: no body follows.
fn read_http(s: &mut TcpStream, pending: &mut Vec<u8>, head: bool) -> Response {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(pending) {
            let content_length = parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .expect("Content-Length");
            let status = parsed.code.expect("status");
            let body_len = if head { 0 } else { content_length };
            if pending.len() >= head_len + body_len {
                let body = pending[head_len..head_len + body_len].to_vec();
                pending.drain(..head_len + body_len);
                return Response {
                    status,
                    content_length,
                    body,
                };
            }
        }
        let n = s.read(&mut buf).expect("read a response");
        assert!(n > 0, "closed mid-response");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// A scraper with one keep-alive scrape answered: (its socket, the page).
fn keep_alive_scrape(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = raw_connect(addr);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let r = read_http(&mut s, &mut Vec::new(), false);
    assert_eq!(r.status, 200);
    (s, String::from_utf8(r.body).expect("utf-8"))
}

/// The families a page has, named as the parser names them, with their
/// types; present in every model (the persistence ones with a snapshot file).
const FAMILIES: &[(&str, &str)] = &[
    ("reactor_rpc_requests", "counter"),
    ("reactor_rpc_request_duration_seconds", "histogram"),
    ("reactor_rpc_open_connections", "gauge"),
    ("reactor_rpc_connections", "counter"),
    ("reactor_rpc_connections_rejected", "counter"),
    ("reactor_rpc_received_bytes", "counter"),
    ("reactor_rpc_sent_bytes", "counter"),
    ("reactor_rpc_pending_output_bytes", "gauge"),
    ("reactor_rpc_input_held_bytes", "gauge"),
    ("reactor_rpc_evicted_clients", "counter"),
    ("reactor_rpc_keys", "gauge"),
    ("reactor_rpc_expiring_keys", "gauge"),
    ("reactor_rpc_keyspace_hits", "counter"),
    ("reactor_rpc_keyspace_misses", "counter"),
    ("reactor_rpc_jobs", "gauge"),
    ("reactor_rpc_jobs_completed", "counter"),
    ("reactor_rpc_used_memory_bytes", "gauge"),
    ("reactor_rpc_maxmemory_bytes", "gauge"),
    ("reactor_rpc_evicted_keys", "counter"),
    ("reactor_rpc_expired_keys", "counter"),
    ("reactor_rpc_build_info", "gauge"),
    ("reactor_rpc_last_save_status", "gauge"),
    ("reactor_rpc_last_save_time_seconds", "gauge"),
    ("reactor_rpc_last_save_duration_seconds", "gauge"),
    ("reactor_rpc_changes_since_last_save", "gauge"),
    ("reactor_rpc_save_in_progress", "gauge"),
    ("reactor_rpc_writes_refused", "gauge"),
    ("reactor_rpc_saves", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
];

/// The real binary in `model`, with a RESP port, a snapshot file and
/// `--maxmemory 64m`: JSON and RESP traffic, then one page parsed whole.
fn a_full_page_parses_with_every_figure(model: Model) {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("metrics.snap");
    let mut server = ServerProcess::spawn(&[
        "--model",
        model.name(),
        "--resp-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--snapshot",
        snap.to_str().expect("utf-8 path"),
        "--maxmemory",
        "64m",
        "--pool-size",
        "8",
    ]);
    let resp_addr = server.listener_addr("resp");
    let metrics_addr = server.listener_addr("metrics");
    let mut client = server.client();
    client.set_timeout(Some(TIMEOUT)).expect("timeout");
    client
        .call("set", &json!({"key": "j", "value": 1}))
        .expect("set");
    assert_eq!(
        client.call("get", &json!({"key": "j"})).ok(),
        Some(json!(1))
    );
    assert_eq!(
        client.call("get", &json!({"key": "nope"})).ok(),
        Some(Value::Null)
    );
    client.call("save", &Value::Null).expect("save");

    let mut r = BufReader::new(raw_connect(resp_addr));
    assert_eq!(resp(&mut r, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(resp(&mut r, &["GET", "k"]), "v");
    assert_eq!(resp(&mut r, &["GET", "missing"]), "$-1\r\n");
    assert_eq!(resp(&mut r, &["SET", "e", "v", "EX", "100"]), "+OK\r\n");
    assert!(resp(&mut r, &["NOSUCHCOMMAND", "x"]).starts_with("-ERR unknown command"));

    let resp_gets = |page: &[Sample]| {
        value(
            page,
            "reactor_rpc_requests_total",
            &[("protocol", "resp"), ("method", "get"), ("code", "ok")],
        )
    };
    let samples = scrape_until(metrics_addr, "a page with the RESP GETs", |p| {
        resp_gets(p) == Some(2.0)
    });
    // The same page's families: no two share a name, each has its type.
    let body = scrape(metrics_addr);
    let families = parse_families(&body);
    let mut seen = HashSet::new();
    for f in &families {
        assert!(
            seen.insert(f.name.as_str()),
            "two families named {}",
            f.name
        );
    }
    for (name, kind) in FAMILIES {
        let family = families.iter().find(|f| f.name == *name);
        let family = family.unwrap_or_else(|| panic!("{model}: no family {name} in\n{body}"));
        assert_eq!(family.kind, *kind, "{name}");
        assert!(!family.samples.is_empty(), "{name} has no sample");
    }
    for old in [
        "reactor_rpc_bytes_received_total",
        "reactor_rpc_bytes_sent_total",
        "state=\"completed\"",
        "reactor_rpc_connections ",
    ] {
        assert!(!body.contains(old), "{old} is still on the page");
    }

    let v = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("{model}: no {name}{labels:?}"))
    };
    // Commands under their own names, apart from the JSON methods.
    let req = "reactor_rpc_requests_total";
    assert_eq!(
        v(
            req,
            &[("protocol", "resp"), ("method", "set"), ("code", "ok")]
        ),
        2.0
    );
    assert_eq!(
        v(
            req,
            &[("protocol", "json"), ("method", "get"), ("code", "ok")]
        ),
        2.0
    );
    assert_eq!(
        v(
            req,
            &[
                ("protocol", "resp"),
                ("method", "other"),
                ("code", "unknown_method")
            ]
        ),
        1.0
    );
    assert_eq!(
        v(
            "reactor_rpc_request_duration_seconds_count",
            &[("protocol", "resp"), ("method", "get")]
        ),
        2.0
    );
    assert!(samples
        .iter()
        .filter(|(n, _, _)| n.starts_with("reactor_rpc_request"))
        .all(|(_, l, _)| l.get("method").and_then(Value::as_str) != Some("nosuchcommand")));
    // Connections by listener: the scrape's own is the metrics port's.
    let open = "reactor_rpc_open_connections";
    assert_eq!(v(open, &[("listener", "rpc")]), 1.0);
    assert_eq!(v(open, &[("listener", "resp")]), 1.0);
    assert!(v(open, &[("listener", "metrics")]) >= 1.0);
    assert!(v("reactor_rpc_connections_total", &[("listener", "metrics")]) >= 1.0);
    assert_eq!(
        v(
            "reactor_rpc_connections_rejected_total",
            &[("listener", "rpc")]
        ),
        0.0
    );
    // The cache, as redis_exporter users read it.
    assert!(v("reactor_rpc_keyspace_hits_total", &[]) >= 2.0);
    assert!(v("reactor_rpc_keyspace_misses_total", &[]) >= 2.0);
    assert_eq!(
        v("reactor_rpc_maxmemory_bytes", &[]),
        64.0 * 1024.0 * 1024.0
    );
    assert_eq!(v("reactor_rpc_expiring_keys", &[]), 1.0);
    assert_eq!(v("reactor_rpc_keys", &[]), 3.0);
    assert!(v("reactor_rpc_pending_output_bytes", &[]) >= 0.0);
    assert!(v("reactor_rpc_input_held_bytes", &[]) >= 0.0);
    assert_eq!(v("reactor_rpc_evicted_clients_total", &[]), 0.0);
    assert!(v("reactor_rpc_received_bytes_total", &[]) > 0.0);
    assert!(v("reactor_rpc_sent_bytes_total", &[]) > 0.0);
    assert_eq!(v("reactor_rpc_jobs", &[("state", "queued")]), 0.0);
    assert!(value(&samples, "reactor_rpc_jobs", &[("state", "completed")]).is_none());
    // Persistence, and the process.
    assert_eq!(v("reactor_rpc_last_save_status", &[]), 1.0);
    assert!(v("reactor_rpc_saves_total", &[]) >= 1.0);
    assert!(v("process_max_fds", &[]) >= v("process_open_fds", &[]));
    assert_eq!(v("reactor_rpc_build_info", &[("model", model.name())]), 1.0);
    drop((client, r));
    server.terminate();
}

/// `--metrics-max-conns` is the metrics port's own limit: scrapers beyond
/// it get a 503, and they take none of the client ports' `--max-conns`.
/// Two idle keep-alive scrapers are served at once (one held the threaded
/// models' single metrics thread before).
fn metrics_connections_have_their_own_limit(model: Model) {
    let server = TestServer::with(model, |c| {
        c.limits.max_conns = 3;
        c.limits.metrics_max_conns = 2;
        c.resp_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let metrics = server.metrics_addr();
    let (_first, _) = keep_alive_scrape(metrics);
    // Answered while the first scraper sits idle on its keep-alive connection.
    let (_second, page) = keep_alive_scrape(metrics);
    assert!(page.contains("reactor_rpc_build_info"), "{page}");
    let mut third = raw_connect(metrics);
    let r = read_http(&mut third, &mut Vec::new(), false);
    assert_eq!(r.status, 503);
    assert_eq!(r.body, b"at metrics-max-conns 2\n");

    // All three client slots are still free: one per client below.
    let mut rpc = server.raw();
    assert_usable(&mut rpc);
    let mut redis = BufReader::new(raw_connect(server.resp_addr()));
    assert_eq!(resp(&mut redis, &["PING"]), "+PONG\r\n");
    let mut client = server.client();
    let st = stats(&mut client);
    assert_eq!(st["connections"], 3, "{st}");
    assert_eq!(st["connections_rejected"], 0, "{st}");
    assert_eq!(st["listeners"]["rpc"]["connections"], 2, "{st}");
    assert_eq!(st["listeners"]["resp"]["connections"], 1, "{st}");
    assert_eq!(st["listeners"]["metrics"]["connections"], 2, "{st}");
    assert_eq!(
        st["listeners"]["metrics"]["connections_rejected"], 1,
        "{st}"
    );
    assert_eq!(st["limits"]["metrics_max_conns"], 2, "{st}");

    // The fourth client is over --max-conns, on either port.
    let mut over = server.raw();
    assert_error(&read_response(&mut over), "overloaded");
    let mut over = BufReader::new(raw_connect(server.resp_addr()));
    let mut line = String::new();
    over.read_line(&mut line).expect("read");
    assert_eq!(line, "-ERR max number of clients reached\r\n");
}

/// Scrapers that pipeline a thousand scrapes each and never read hold
/// their replies one at a time (more than the socket buffers take), while a
/// ping on the RPC port and a scrape on a fresh connection are answered;
/// once they read, each gets every reply, whole and in order.
fn pipelining_scrapers_leave_a_ping_answered(model: Model) {
    const SCRAPES: usize = 1000;
    let server = TestServer::with(model, |c| {
        c.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let metrics = server.metrics_addr();
    let mut burst = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(SCRAPES - 1);
    burst.extend_from_slice(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    let mut scrapers: Vec<TcpStream> = (0..3).map(|_| raw_connect(metrics)).collect();
    for s in &mut scrapers {
        s.write_all(&burst).expect("pipeline the scrapes");
    }
    let mut rpc = server.raw();
    assert_usable(&mut rpc);
    let (_other, page) = keep_alive_scrape(metrics);
    assert!(page.contains("reactor_rpc_build_info"));
    assert_usable(&mut rpc);
    for s in &mut scrapers {
        let mut pending = Vec::new();
        for i in 0..SCRAPES {
            let r = read_http(s, &mut pending, false);
            assert_eq!(r.status, 200, "reply {i}");
            assert_eq!(r.body.len(), r.content_length);
            assert!(r.body.ends_with(b"\n"), "reply {i}");
        }
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("the close");
        assert!(
            rest.is_empty() && pending.is_empty(),
            "bytes after the last reply"
        );
    }
}

/// `HEAD /metrics` gets the head a `GET` gets, with the `Content-Length` of
/// the page, and no body: the next reply follows the head at once.
fn head_answers_as_get_without_the_body(model: Model) {
    let server = TestServer::with(model, |c| {
        c.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    // A page is shared for a second: both replies of one attempt have the
    // same page unless a new one was rendered between them (then try again).
    let mut same = false;
    for _ in 0..5 {
        let mut s = raw_connect(server.metrics_addr());
        s.write_all(
            b"HEAD /metrics HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
        let mut pending = Vec::new();
        let head = read_http(&mut s, &mut pending, true);
        assert_eq!(head.status, 200);
        assert!(head.content_length > 1000, "{}", head.content_length);
        let get = read_http(&mut s, &mut pending, false);
        assert_eq!(get.status, 200);
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("the close");
        assert!(rest.is_empty() && pending.is_empty());
        if head.content_length == get.body.len() {
            same = true;
            break;
        }
    }
    assert!(same, "HEAD's Content-Length never matched GET's body");
}

/// Clients that never read their responses show as pending output, and it
/// goes back to 0 once they are gone.
fn pending_output_is_reported(model: Model) {
    let server = TestServer::with(model, |c| {
        c.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let metrics = server.metrics_addr();
    let mut client = server.client();
    let value_512k = "v".repeat(512 * 1024);
    client
        .call("set", &json!({"key": "big", "value": value_512k}))
        .expect("set");
    drop(client);
    // 16 MiB of answers per client that never reads: more than the
    // kernel's socket buffers take (loopback autotuning reaches about 10 MiB
    // between both ends), so some stays pending in the server.
    let gets: Vec<u8> = (0..32)
        .flat_map(|_| request("get", json!({"key": "big"})))
        .collect();
    let readers: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = server.raw();
            s.write_all(&gets).expect("write");
            s
        })
        .collect();
    let pending = |page: &[Sample]| value(page, "reactor_rpc_pending_output_bytes", &[]);
    let page = scrape_until(metrics, "pending output", |p| pending(p) > Some(0.0));
    assert!(pending(&page) > Some(0.0));
    for s in readers {
        crate::support::reset(s);
    }
    scrape_until(metrics, "no pending output", |p| pending(p) == Some(0.0));
}

#[test]
fn scrape_parses_and_counts_requests() {
    let mut server = ServerProcess::spawn(&["--metrics-addr", "127.0.0.1:0"]);
    let metrics_addr = server.listener_addr("metrics");
    let mut client = server.client();
    client.set_timeout(Some(TIMEOUT)).expect("timeout");

    let before = parse(&scrape(metrics_addr));
    for name in [
        "reactor_rpc_open_connections",
        "reactor_rpc_connections_total",
        "reactor_rpc_connections_rejected_total",
        "reactor_rpc_received_bytes_total",
        "reactor_rpc_sent_bytes_total",
        "reactor_rpc_keys",
        "reactor_rpc_used_memory_bytes",
        "reactor_rpc_evicted_keys_total",
        "reactor_rpc_expired_keys_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            before.iter().any(|(n, _, _)| n == name),
            "{name} missing from {before:?}"
        );
    }
    assert_eq!(
        value(&before, "reactor_rpc_build_info", &[("model", "reactor")]),
        Some(1.0)
    );
    assert!(value(&before, "reactor_rpc_jobs", &[("state", "queued")]).is_some());
    let ping = [("protocol", "json"), ("method", "ping"), ("code", "ok")];
    let pings_before = value(&before, "reactor_rpc_requests_total", &ping).unwrap_or(0.0);
    let received_before = value(&before, "reactor_rpc_received_bytes_total", &[]).unwrap_or(0.0);

    for i in 0..5 {
        let pong = client.call("ping", &i).expect("ping");
        assert_eq!(pong, i);
    }
    let err = client.call("no_such_method", &Value::Null);
    assert!(err.is_err());
    let err = client.call("incr", &serde_json::json!({"key": 1}));
    assert!(err.is_err());

    let ping_count =
        |page: &[Sample]| value(page, "reactor_rpc_requests_total", &ping).expect("ping counted");
    let after = scrape_until(metrics_addr, "the pings counted", |p| {
        ping_count(p) != pings_before
    });
    let pings = ping_count(&after);
    assert_eq!(pings - pings_before, 5.0, "{after:?}");
    // A client-supplied name never becomes a label.
    assert!(after
        .iter()
        .all(|(_, l, _)| l.get("method").and_then(Value::as_str) != Some("no_such_method")));
    assert_eq!(
        value(
            &after,
            "reactor_rpc_requests_total",
            &[
                ("protocol", "json"),
                ("method", "other"),
                ("code", "unknown_method")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "reactor_rpc_requests_total",
            &[("method", "incr"), ("code", "bad_params")]
        ),
        Some(1.0)
    );
    // The histogram: 16 finite buckets 10 µs .. 1 s, +Inf = _count.
    let buckets: Vec<&Sample> = after
        .iter()
        .filter(|(n, l, _)| {
            n == "reactor_rpc_request_duration_seconds_bucket"
                && l.get("method").and_then(Value::as_str) == Some("ping")
        })
        .collect();
    assert_eq!(buckets.len(), 17, "{buckets:?}");
    let le: Vec<f64> = buckets
        .iter()
        .map(|b| b.1["le"].as_str().and_then(|s| s.parse().ok()).expect("le"))
        .collect();
    assert_eq!(le[0], 1e-5);
    assert_eq!(le[15], 1.0);
    assert!(le[16].is_infinite());
    let inf = value(
        &after,
        "reactor_rpc_request_duration_seconds_bucket",
        &[("method", "ping"), ("le", "+Inf")],
    );
    let count = value(
        &after,
        "reactor_rpc_request_duration_seconds_count",
        &[("protocol", "json"), ("method", "ping")],
    );
    assert_eq!(inf, count);
    assert!(count >= Some(5.0));
    assert!(
        buckets.windows(2).all(|w| w[0].2 <= w[1].2),
        "not cumulative"
    );
    let received = value(&after, "reactor_rpc_received_bytes_total", &[]).expect("bytes");
    assert!(
        received > received_before,
        "{received} after {received_before}"
    );
    assert!(value(&after, "reactor_rpc_sent_bytes_total", &[]) > Some(0.0));
    drop(client);
    server.terminate();
}
