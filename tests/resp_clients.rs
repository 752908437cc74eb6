//! The real Redis clients against `serve --resp-addr`: `redis-cli` (every
//! command we promise, in RESP2 and RESP3, plus inline commands on a bare
//! socket), redis-py (its default client, and RESP3 via HELLO 3), and
//! `redis-benchmark` with pipelining; and the one keyspace shared by the JSON
//! and Redis listeners of the same process.
//!
//! The binary is spawned (`serve --resp-addr 127.0.0.1:0`) and the RESP port is
//! read from its `resp listening on ADDR` line, in every model (redis-benchmark's
//! 50 connections not in the pool). A missing tool fails the test
//! with the command that installs it: `.ci/run` installs them all.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

/// Runs each listed test once per model; those under `not_pool` need more
/// connections at once (redis-benchmark's 50) than the pool has threads, so
/// they run in every model but the pool.
macro_rules! resp_models {
    (every_model: [$($all:ident),* $(,)?], not_pool: [$($np:ident),* $(,)?] $(,)?) => {
        resp_models!(@mod reactor, Reactor, [$($all,)* $($np,)*]);
        resp_models!(@mod threaded, Threaded, [$($all,)* $($np,)*]);
        resp_models!(@mod pool, Pool, [$($all,)*]);
        resp_models!(@mod tokio, Tokio, [$($all,)* $($np,)*]);
        resp_models!(@mod tokio_mt, TokioMt, [$($all,)* $($np,)*]);
    };
    (@mod $module:ident, $model:ident, [$($test:ident,)*]) => {
        mod $module {
            $(#[test] fn $test() { super::$test(reactor_rpc::Model::$model) })*
        }
    };
}

resp_models!(
    every_model: [
        redis_cli_every_command,
        inline_commands_on_a_bare_socket,
        redis_py_default_and_resp3,
        one_keyspace_for_json_and_resp_over_the_wire,
    ],
    not_pool: [redis_benchmark_pipelined_without_errors],
);

/// The binary serving `model` with a RESP listener; returns it and the RESP address.
fn spawn(model: Model) -> (ServerProcess, SocketAddr) {
    let name = model.to_string();
    let mut p = ServerProcess::spawn(&["--model", &name, "--resp-addr", "127.0.0.1:0"]);
    let line = p.wait_for_line("the `resp listening on` line", |l| {
        l.contains("resp listening on ")
    });
    let addr = line
        .split("resp listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the RESP address from {line:?}"));
    (p, addr)
}

/// Fails loudly when `tool` is not installed (CI installs it; skipping would
/// hide a missing client).
fn require(tool: &str, install: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "`{tool}` is not installed: {install}");
}

fn require_redis_cli() {
    require("redis-cli", "apt-get install -y redis-tools");
}

/// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` with `stdin`, failing on a
/// non-zero exit or a timeout.
fn redis_cli_with(addr: SocketAddr, args: &[&str], stdin: &str) -> String {
    let port = addr.port().to_string();
    let mut child = Command::new("timeout")
        .args(["20", "redis-cli", "-h", "127.0.0.1", "-p", &port])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("redis-cli output");
    check(&out, &format!("redis-cli {args:?}"));
    String::from_utf8(out.stdout).expect("UTF-8 from redis-cli")
}

/// One redis-cli command line; its (raw-mode) output without the final newlines.
fn cli(addr: SocketAddr, args: &[&str]) -> String {
    // (raw mode ends an error reply with a second newline)
    redis_cli_with(addr, args, "")
        .trim_end_matches('\n')
        .to_owned()
}

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

fn redis_cli_every_command(model: Model) {
    require_redis_cli();
    let (_server, a) = spawn(model);
    assert_eq!(cli(a, &["PING"]), "PONG");
    assert_eq!(cli(a, &["PING", "hello there"]), "hello there");
    assert_eq!(cli(a, &["ECHO", "héllo"]), "héllo");

    // SET and its options, GET, DEL, EXISTS.
    assert_eq!(cli(a, &["SET", "k", "v1"]), "OK");
    assert_eq!(cli(a, &["GET", "k"]), "v1");
    assert_eq!(cli(a, &["GET", "missing"]), ""); // nil prints as an empty line
    assert_eq!(cli(a, &["SET", "k", "v2", "NX"]), "");
    assert_eq!(cli(a, &["SET", "k", "v2", "XX"]), "OK");
    assert_eq!(cli(a, &["SET", "nx", "v", "XX"]), "");
    assert_eq!(cli(a, &["SET", "nx", "v", "NX"]), "OK");
    assert_eq!(cli(a, &["GET", "k"]), "v2");
    assert_eq!(cli(a, &["SET", "ex", "v", "EX", "100"]), "OK");
    let ttl: i64 = cli(a, &["TTL", "ex"]).parse().unwrap();
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(cli(a, &["SET", "px", "v", "PX", "5000"]), "OK");
    let pttl: i64 = cli(a, &["PTTL", "px"]).parse().unwrap();
    assert!((4000..=5000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(cli(a, &["EXISTS", "k", "nx", "missing"]), "2");
    assert_eq!(cli(a, &["DEL", "k", "missing"]), "1");
    assert_eq!(cli(a, &["EXISTS", "k"]), "0");

    // Counters.
    assert_eq!(cli(a, &["INCR", "n"]), "1");
    assert_eq!(cli(a, &["INCRBY", "n", "41"]), "42");
    assert_eq!(cli(a, &["DECR", "n"]), "41");
    assert_eq!(cli(a, &["DECRBY", "n", "50"]), "-9");
    assert_eq!(
        cli(a, &["INCR", "px"]),
        "ERR value is not an integer or out of range"
    );

    // Expiry.
    assert_eq!(cli(a, &["TTL", "n"]), "-1");
    assert_eq!(cli(a, &["TTL", "missing"]), "-2");
    assert_eq!(cli(a, &["PTTL", "missing"]), "-2");
    assert_eq!(cli(a, &["EXPIRE", "n", "100"]), "1");
    assert_eq!(cli(a, &["EXPIRE", "missing", "100"]), "0");
    let ttl: i64 = cli(a, &["TTL", "n"]).parse().unwrap();
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(cli(a, &["PEXPIRE", "n", "100000"]), "1");
    let pttl: i64 = cli(a, &["PTTL", "n"]).parse().unwrap();
    assert!((99_000..=100_000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(cli(a, &["PERSIST", "n"]), "1");
    assert_eq!(cli(a, &["PERSIST", "n"]), "0");
    assert_eq!(cli(a, &["TTL", "n"]), "-1");
    assert_eq!(cli(a, &["PEXPIRE", "short", "50"]), "0");
    assert_eq!(cli(a, &["SET", "short", "v", "PX", "50"]), "OK");
    let deadline = Instant::now() + TIMEOUT;
    while cli(a, &["EXISTS", "short"]) != "0" {
        assert!(Instant::now() < deadline, "PX 50 never expired");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Keyspace-wide commands.
    let keys: u64 = cli(a, &["DBSIZE"]).parse().unwrap();
    assert_eq!(keys, 4, "nx, ex, px, n");
    let info = cli(a, &["INFO"]);
    assert!(info.contains("redis_version:"), "{info}");
    assert!(
        info.contains(&format!("reactor_rpc_model:{model}")),
        "{info}"
    );
    let keyspace = cli(a, &["INFO", "keyspace"]);
    assert!(keyspace.starts_with("# Keyspace"), "{keyspace}");
    assert!(keyspace.contains("db0:keys=4,expires=2"), "{keyspace}");
    assert!(
        !keyspace.contains("# Server"),
        "one section only: {keyspace}"
    );
    assert_eq!(cli(a, &["FLUSHALL"]), "OK");
    assert_eq!(cli(a, &["DBSIZE"]), "0");

    // Introspection the clients send on connect.
    let command = cli(a, &["COMMAND"]);
    for name in ["get", "set", "incr", "hello", "client"] {
        assert!(
            command.lines().any(|l| l == name),
            "COMMAND lacks {name}: {command}"
        );
    }
    let count: u64 = cli(a, &["COMMAND", "COUNT"]).parse().unwrap();
    assert!(count >= 25, "COMMAND COUNT {count}");
    let docs = cli(a, &["COMMAND", "DOCS"]);
    assert!(!docs.starts_with("ERR"), "COMMAND DOCS: {docs}");
    let docs = cli(a, &["COMMAND", "DOCS", "get"]);
    assert!(!docs.starts_with("ERR"), "COMMAND DOCS get: {docs}");

    // Per-connection state: several commands on one connection through stdin.
    let session = redis_cli_with(
        a,
        &[],
        "CLIENT SETNAME tester\nCLIENT GETNAME\nCLIENT SETINFO lib-name reactor-test\n\
         CLIENT SETINFO lib-ver 1.0\nSELECT 0\nSELECT 1\nSET x 5\nGET x\n",
    );
    assert_eq!(
        session
            .lines()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>(),
        [
            "OK",
            "tester",
            "OK",
            "OK",
            "OK",
            "ERR DB index is out of range",
            "OK",
            "5"
        ],
        "{session}"
    );

    // HELLO 2 and HELLO 3, and redis-cli's own RESP3 mode.
    let hello2 = cli(a, &["HELLO", "2"]);
    assert!(hello2.contains("proto\n2\n"), "{hello2}");
    let hello3 = cli(a, &["-3", "HELLO", "3"]);
    assert!(hello3.contains("proto 3"), "{hello3}");
    assert_eq!(cli(a, &["-3", "SET", "r3", "v"]), "OK");
    assert_eq!(cli(a, &["-3", "GET", "r3"]), "v");
    assert_eq!(cli(a, &["-3", "INCR", "c3"]), "1");

    // QUIT answers OK, then the server closes; errors for unknown commands
    // and wrong arity.
    assert_eq!(cli(a, &["QUIT"]), "OK");
    assert_eq!(
        cli(a, &["NOSUCH", "x"]),
        "ERR unknown command 'NOSUCH', with args beginning with: 'x' "
    );
    assert_eq!(
        cli(a, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        cli(a, &["SET", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
    let bad_ex = cli(a, &["SET", "k", "v", "EX", "0"]);
    assert!(bad_ex.starts_with("ERR"), "SET EX 0: {bad_ex}");
}

/// Reads from `s` until `want` bytes have arrived.
fn read_exact_len(s: &mut std::net::TcpStream, want: usize) -> String {
    let mut got = vec![0u8; want];
    s.read_exact(&mut got).expect("the reply");
    String::from_utf8(got).unwrap()
}

/// Inline commands, as `printf 'PING\r\n' | nc` sends them.
fn inline_commands_on_a_bare_socket(model: Model) {
    let (_server, a) = spawn(model);
    let mut s = raw_connect(a);
    s.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_exact_len(&mut s, 7), "+PONG\r\n");
    // A bare \n ends a line too, and several lines may arrive at once.
    s.write_all(b"SET greeting \"hello world\"\nGET greeting\r\nINCR n\r\n")
        .unwrap();
    let want = "+OK\r\n$11\r\nhello world\r\n:1\r\n";
    assert_eq!(read_exact_len(&mut s, want.len()), want);
    s.write_all(b"NOSUCH\r\n").unwrap();
    let want = "-ERR unknown command 'NOSUCH', with args beginning with: \r\n";
    assert_eq!(read_exact_len(&mut s, want.len()), want);
    s.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(read_exact_len(&mut s, 5), "+OK\r\n");
    expect_closed(&mut s);

    // redis-cli reading a plain command line from stdin.
    require_redis_cli();
    assert_eq!(redis_cli_with(a, &[], "GET greeting\n"), "hello world\n");
}

/// redis-py's default client (it speaks RESP2), and RESP3 (HELLO 3 on
/// connect): get, set with expiry, expire/ttl, incr, a pipeline, the default
/// (transactional) pipeline, errors.
fn redis_py_default_and_resp3(model: Model) {
    let (_server, a) = spawn(model);
    let script = r#"
import sys
try:
    import redis
except ImportError:
    sys.exit("redis-py is not installed: pip install redis")
port = int(sys.argv[1])
for kwargs in ({}, {"protocol": 3}):
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **kwargs)
    tag = "resp3" if kwargs else "default"
    assert r.ping() is True
    assert r.set(tag, "v") is True
    assert r.get(tag) == b"v", r.get(tag)
    assert r.get(tag + ":missing") is None
    assert r.set(tag + ":ex", b"\xff\x00bytes", ex=100) is True
    assert r.get(tag + ":ex") == b"\xff\x00bytes"
    assert 99 <= r.ttl(tag + ":ex") <= 100, r.ttl(tag + ":ex")
    assert r.expire(tag, 50) is True
    assert 49_000 <= r.pttl(tag) <= 50_000, r.pttl(tag)
    assert r.persist(tag) is True and r.ttl(tag) == -1
    assert r.set(tag, "x", nx=True) is None
    assert r.incr(tag + ":n") == 1 and r.incrby(tag + ":n", 9) == 10
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(f"{tag}:p{i}", i)
    for i in range(100):
        p.get(f"{tag}:p{i}")
    p.incr(tag + ":n")
    out = p.execute()
    assert out[:100] == [True] * 100, out[:100]
    assert out[100:200] == [str(i).encode() for i in range(100)], out[100:200]
    assert out[200] == 11, out[200]
    # The default pipeline is a transaction (MULTI ... EXEC).
    t = r.pipeline()
    t.set(tag + ":t", 5).incrby(tag + ":t", 2).get(tag + ":t")
    assert t.execute() == [True, 7, b"7"]
    r.delete(tag + ":t")
    # Of any length, and of large values, as Redis takes it.
    t = r.pipeline()
    for i in range(2000):
        t.incr(tag + ":t")
    for i in range(20):
        t.set(tag + ":big", b"v" * 100000)
    out = t.execute()
    assert out[1999] == 2000 and out[2019] is True, out[-1]
    r.delete(tag + ":t", tag + ":big")
    try:
        r.incr(tag)
        sys.exit("INCR of a non-integer did not raise")
    except redis.ResponseError as e:
        assert "not an integer" in str(e), e
    assert r.exists(tag, tag + ":n") == 2
    assert r.delete(tag) == 1
    if kwargs:
        hello = r.execute_command("HELLO", 3)
        assert hello.get(b"proto", hello.get("proto")) == 3, hello
    r.close()
assert redis.Redis(host="127.0.0.1", port=port).dbsize() == 2 * (2 + 100)  # :ex, :n and the 100 pipelined keys
print("ok", redis.__version__)
"#;
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", script, &a.port().to_string()])
        .output()
        .expect("run python3");
    check(&out, "the redis-py script");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
}

/// `redis-benchmark -t ping,set,get,incr -n 100000 -c 50 -P 16` completes with
/// every request answered and no error line.
fn redis_benchmark_pipelined_without_errors(model: Model) {
    require("redis-benchmark", "apt-get install -y redis-tools");
    let (mut server, a) = spawn(model);
    let port = a.port().to_string();
    let out = Command::new("timeout")
        .args(["120", "redis-benchmark", "-h", "127.0.0.1", "-p", &port])
        .args([
            "-t",
            "ping,set,get,incr",
            "-n",
            "100000",
            "-c",
            "50",
            "-P",
            "16",
        ])
        .args(["-q", "--csv"])
        .output()
        .expect("run redis-benchmark");
    check(&out, "redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("ERR") && !stderr.contains("ERR") && !stderr.contains("rror"),
        "redis-benchmark reported errors:\n{stdout}\n{stderr}"
    );
    for test in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("\"{test}\"")))
            .unwrap_or_else(|| panic!("no {test} line:\n{stdout}\n{stderr}"));
        let rps: f64 = line
            .split(',')
            .nth(1)
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap();
        assert!(rps > 0.0, "{line}");
    }
    // The counter redis-benchmark incremented saw every request.
    assert_eq!(
        cli_if_installed(a, &["GET", "counter:__rand_int__"]),
        "100000"
    );
    let mut c = server.client();
    let stats = stats(&mut c);
    assert!(
        stats["requests"].as_u64().unwrap() >= 500_000,
        "requests {stats}"
    );
    server.terminate();
}

fn cli_if_installed(a: SocketAddr, args: &[&str]) -> String {
    require_redis_cli();
    cli(a, args)
}

/// The JSON and Redis listeners of one process share one keyspace.
fn one_keyspace_for_json_and_resp_over_the_wire(model: Model) {
    require_redis_cli();
    let (server, a) = spawn(model);
    let mut j = server.raw();
    let set = |j: &mut std::net::TcpStream, key: &str, value: serde_json::Value| {
        let r = roundtrip(j, &request("set", json!({"key": key, "value": value})));
        assert_result(&r, "set", &json!(true));
    };
    // A JSON string reads as its content, any other JSON value as its text.
    set(&mut j, "s", json!("abc"));
    assert_eq!(cli(a, &["GET", "s"]), "abc");
    set(&mut j, "arr", json!([1, 2]));
    assert_eq!(cli(a, &["GET", "arr"]), "[1,2]");
    // RESP bytes that are not UTF-8: JSON get refuses them.
    let mut r = raw_connect(a);
    r.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbin\r\n$2\r\n\xff\xfe\r\n")
        .unwrap();
    assert_eq!(read_exact_len(&mut r, 5), "+OK\r\n");
    let resp = roundtrip(&mut j, &request("get", json!({"key": "bin"})));
    assert_error(&resp, "wrong_type");
    let resp = roundtrip(&mut j, &request("get", json!({"key": "s"})));
    assert_result(&resp, "get", &json!("abc"));
    // INCR and JSON incr count on the same integer.
    assert_eq!(cli(a, &["INCR", "n"]), "1");
    let resp = roundtrip(&mut j, &request("incr", json!({"key": "n", "by": 10})));
    assert_result(&resp, "incr", &json!(11));
    assert_eq!(cli(a, &["INCR", "n"]), "12");
    let resp = roundtrip(&mut j, &request("get", json!({"key": "n"})));
    assert_eq!(resp["out"], "get", "{resp}");
    assert!(
        resp["result"] == json!(12) || resp["result"] == json!("12"),
        "{resp}"
    );
    assert_eq!(cli(a, &["DBSIZE"]), "4");
}
