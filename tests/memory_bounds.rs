//! Memory attacks on a spawned server binary, each with the bound it must
//! keep, measured as the process's RSS via /proc. Scaled down from the
//! issue's figures so that each runs in seconds; the bounds are release-
//! and debug-independent, with margin.

#[macro_use]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::*;

const MIB: u64 = 1024;

/// Answers a ping within `bound`, measured from the write.
#[track_caller]
fn ping_within(addr: std::net::SocketAddr, bound: Duration) -> Duration {
    let mut s = raw_connect(addr);
    let start = Instant::now();
    let response = roundtrip(&mut s, &request("ping", json!("p")));
    let took = start.elapsed();
    assert_eq!(response["result"], "p", "{response}");
    assert!(took <= bound, "a ping took {took:?} (bound {bound:?})");
    took
}

/// `set` of 100 KiB values under unique keys, far past `--maxmemory 32m`:
/// eviction keeps the server's RSS within the bound plus 64 MiB, and it
/// goes on answering (the target: 256m keeps RSS ≤ 320 MiB).
#[test]
fn set_fill_of_large_values_stays_under_maxmemory() {
    let mut server = ServerProcess::spawn(&["--maxmemory", "32m"]);
    let base = rss_kib(server.pid());
    let mut s = raw_connect(server.addr);
    let value = "v".repeat(100 << 10);
    // 1 500 keys of 100 KiB: 150 MiB offered, nearly five times the bound.
    for batch in 0..50 {
        let mut bytes = Vec::new();
        for i in 0..30 {
            let key = format!("k{batch}-{i}");
            bytes.extend(request("set", json!({"key": key, "value": value})));
        }
        s.write_all(&bytes).unwrap();
        for _ in 0..30 {
            let response = read_response(&mut s);
            assert_eq!(response["result"], Value::Bool(true), "{response}");
        }
    }
    let rss = rss_kib(server.pid());
    eprintln!("set fill: RSS {base} KiB before, {rss} KiB after");
    assert!(
        rss <= 32 * MIB + 64 * MIB,
        "RSS {rss} KiB after the fill (base {base} KiB)"
    );
    let stats = stats(&mut server.client());
    assert!(stats["evicted_keys"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert_eq!(stats["maxmemory"], 32 << 20, "{stats}");
    ping_within(server.addr, Duration::from_millis(100));
    server.terminate();
}
