//! `GET /metrics` from the real binary, parsed by a real exposition-format
//! parser (Python's `prometheus_client.parser`): every fixed metric name is
//! there, requests are counted by method and code, the duration histogram
//! has its buckets, and bytes are counted.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::support::{scrape_metrics as scrape, ServerProcess, TIMEOUT};
use serde_json::Value;

/// Every sample as `[name, labels, value]`, through prometheus_client's parser.
fn parse(body: &str) -> Vec<(String, serde_json::Map<String, Value>, f64)> {
    const PARSER: &str = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
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
    let samples: Vec<(String, serde_json::Map<String, Value>, f64)> =
        serde_json::from_slice(&out.stdout).expect("json");
    samples
}

fn value(
    samples: &[(String, serde_json::Map<String, Value>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
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

#[test]
fn scrape_parses_and_counts_requests() {
    let mut server = ServerProcess::spawn(&["--metrics-addr", "127.0.0.1:0"]);
    let line = server.wait_for_line("the metrics port", |l| l.contains("metrics listening on "));
    let metrics_addr: SocketAddr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let mut client = server.client();
    client.set_timeout(Some(TIMEOUT)).expect("timeout");

    let before = parse(&scrape(metrics_addr));
    for name in [
        "reactor_rpc_connections",
        "reactor_rpc_connections_total",
        "reactor_rpc_connections_rejected_total",
        "reactor_rpc_bytes_received_total",
        "reactor_rpc_bytes_sent_total",
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
    let pings_before = value(
        &before,
        "reactor_rpc_requests_total",
        &[("method", "ping"), ("code", "ok")],
    )
    .unwrap_or(0.0);
    let received_before = value(&before, "reactor_rpc_bytes_received_total", &[]).unwrap_or(0.0);

    for i in 0..5 {
        let pong: Value = client.call("ping", &i).expect("ping");
        assert_eq!(pong, i);
    }
    let err = client.call("no_such_method", &Value::Null);
    assert!(err.is_err());
    let err = client.call("incr", &serde_json::json!({"key": 1}));
    assert!(err.is_err());

    // A page is rendered at most once a second and shared within it: scrape
    // until one rendered after the requests comes.
    let ping_count = |page: &[(String, serde_json::Map<String, Value>, f64)]| {
        value(
            page,
            "reactor_rpc_requests_total",
            &[("method", "ping"), ("code", "ok")],
        )
        .expect("ping counted")
    };
    let mut after = parse(&scrape(metrics_addr));
    let deadline = std::time::Instant::now() + TIMEOUT;
    while ping_count(&after) == pings_before && std::time::Instant::now() < deadline {
        after = parse(&scrape(metrics_addr));
    }
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
            &[("method", "other"), ("code", "unknown_method")]
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
    let buckets: Vec<&(String, serde_json::Map<String, Value>, f64)> = after
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
        &[("method", "ping")],
    );
    assert_eq!(inf, count);
    assert!(count >= Some(5.0));
    assert!(
        buckets.windows(2).all(|w| w[0].2 <= w[1].2),
        "not cumulative"
    );
    let received = value(&after, "reactor_rpc_bytes_received_total", &[]).expect("bytes");
    assert!(
        received > received_before,
        "{received} after {received_before}"
    );
    assert!(value(&after, "reactor_rpc_bytes_sent_total", &[]) > Some(0.0));
    drop(client);
    server.terminate();
}
