//! The Redis tools and client APIs a cache user points at us, run for real
//! against `--resp-addr` in every model: redis-py's high-level API (mget,
//! mset, scan_iter, getex, set(get=True), flushdb, pipelines and the
//! `transaction()` helper with WATCH retries), and redis-cli's `--scan`,
//! `--bigkeys`, `--memkeys` and `--stat`. Fails, never skips, when a tool
//! is missing (`.ci/run` installs them).

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use crate::support::redis::start_ours;
use crate::support::Model;

#[track_caller]
fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn redis_cli(addr: SocketAddr, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["30", "redis-cli", "-h", "127.0.0.1", "-p"])
        .arg(addr.port().to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (apt-get install -y redis-tools)")
}

const REDIS_PY: &str = r#"
import sys, threading
try:
    import redis
except ImportError:
    sys.exit("redis-py is not installed: pip install redis")
port = int(sys.argv[1])
for kwargs in ({}, {"protocol": 3}):
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **kwargs)
    other = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    assert r.flushdb() is True
    assert r.mset({"a": 1, "b": "two", "c": b"\xff"}) is True
    assert r.mget("a", "b", "c", "nope") == [b"1", b"two", b"\xff", None]
    assert r.mget(["a", "b"]) == [b"1", b"two"]
    assert r.msetnx({"a": 9, "z": 9}) is False and r.get("z") is None
    assert r.set("a", "new", get=True) == b"1"
    assert r.set("fresh", "v", get=True) is None
    assert r.getex("a", ex=100) == b"new"
    assert 99 <= r.ttl("a") <= 100
    assert r.getex("a", persist=True) == b"new" and r.ttl("a") == -1
    assert r.getdel("b") == b"two" and r.exists("b") == 0
    assert r.incrbyfloat("f", 0.1) == 0.1 and r.incrbyfloat("f", 0.2) == 0.3
    assert r.get("f") == b"0.3"
    assert r.append("s", "hello") == 5 and r.setrange("s", 0, "J") == 5
    assert r.getrange("s", 0, -1) == b"Jello" and r.strlen("s") == 5
    for i in range(500):
        r.set(f"scan:{i}", i)
    got = set(r.scan_iter(match="scan:*", count=37))
    assert got == {f"scan:{i}".encode() for i in range(500)}, len(got)
    assert set(r.scan_iter(match="scan:1?", _type="string")) == {f"scan:{i}".encode() for i in range(10, 20)}
    assert len(r.keys("scan:4*")) == 111
    assert r.type("a") == b"string"
    assert r.rename("a", "a2") is True and r.get("a2") == b"new"
    assert r.expireat("a2", 4102444800) is True and r.expiretime("a2") == 4102444800
    assert r.expire("a2", 10, gt=True) is False
    # Pipelines, with and without a transaction.
    p = r.pipeline(transaction=False)
    p.mset({"p1": 1, "p2": 2}).mget("p1", "p2").incr("p1")
    assert p.execute() == [True, [b"1", b"2"], 2]
    t = r.pipeline()
    t.set("t", 5).incrby("t", 2).get("t")
    assert t.execute() == [True, 7, b"7"]
    # transaction(): WATCH, read, MULTI/EXEC, retried when another client
    # writes a watched key between the read and the EXEC.
    r.set("counter", 10)
    attempts = []
    def bump(pipe):
        value = int(pipe.get("counter"))
        if not attempts:
            other.set("counter", 100)  # makes the first EXEC fail
        attempts.append(value)
        pipe.multi()
        pipe.set("counter", value + 1)
    assert r.transaction(bump, "counter") == [True]
    assert attempts == [10, 100], attempts
    assert r.get("counter") == b"101"
    # A write to another key does not abort.
    attempts.clear()
    def bump2(pipe):
        value = int(pipe.get("counter"))
        other.set("unrelated", 1)
        attempts.append(value)
        pipe.multi()
        pipe.set("counter", value + 1)
    r.transaction(bump2, "counter")
    assert attempts == [101], attempts
    assert r.config_get("maxmemory*")["maxmemory-policy"] == "allkeys-lru"
    assert r.object("encoding", "counter") == b"int" or r.object("encoding", "counter") == "int"
    assert r.flushdb(asynchronous=True) is True and r.dbsize() == 0
    assert r.flushall() is True
    r.close()
    other.close()
print("ok", redis.__version__)
"#;

fn redis_py_high_level_api(model: Model) {
    let server = start_ours(model);
    let out = Command::new("timeout")
        .args(["90", "python3", "-c", REDIS_PY])
        .arg(server.resp_addr().port().to_string())
        .output()
        .expect("run python3");
    check(&out, "the redis-py script");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
}

fn redis_cli_scan_bigkeys_memkeys_stat(model: Model) {
    let server = start_ours(model);
    let a = server.resp_addr();
    let mut setup = vec!["MSET".to_owned()];
    for i in 0..300 {
        setup.push(format!("user:{i}"));
        setup.push("x".repeat(i));
    }
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    check(&redis_cli(a, &setup), "MSET");

    let out = redis_cli(a, &["--scan", "--pattern", "user:1*"]);
    check(&out, "redis-cli --scan");
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 111, "{keys:?}");

    let out = redis_cli(a, &["--bigkeys"]);
    check(&out, "redis-cli --bigkeys");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Biggest string found '\"user:299\"' has 299 bytes"),
        "{text}"
    );
    assert!(text.contains("300 strings with"), "{text}");

    let out = redis_cli(a, &["--memkeys"]);
    check(&out, "redis-cli --memkeys");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Biggest string found '\"user:"), "{text}");
    assert!(text.contains("300 strings with"), "{text}");

    // --stat polls INFO until stopped: a bounded run of a few rows
    // (unbuffered, since the timeout ends it with a signal).
    let out = Command::new("timeout")
        .args(["2", "stdbuf", "-o0", "redis-cli", "-h", "127.0.0.1", "-p"])
        .arg(a.port().to_string())
        .args(["--stat", "-i", "0.3"])
        .output()
        .expect("redis-cli --stat");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("300 "))
        .collect();
    assert!(!rows.is_empty(), "--stat printed no data row:\n{text}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        // keys mem clients blocked requests connections
        assert_eq!(cols[0], "300", "{row}");
        assert_eq!(cols[3], "0", "the blocked column: {row}");
        assert!(!row.contains("-9223372036854775808"), "{row}");
    }
}

model_tests! {
    every_model: [redis_py_high_level_api, redis_cli_scan_bigkeys_memkeys_stat],
    not_pool: [],
}
