//! Tests of the built binary as a user runs it: the log lines, SIGTERM, the
//! `call` command, the Python example client, descriptor exhaustion under a
//! low `ulimit -n`, and the server's memory under a client that never reads.
//!
//! Servers start with `--addr 127.0.0.1:0`; the port comes from the
//! `listening on` log line, and every step waits for an event (a log line, a
//! response, the process exiting) with a deadline.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// Extra flags so that the pool can hold the connections a test opens.
fn model_args(model: Model) -> Vec<String> {
    let mut args = vec!["--model".to_string(), model.name().to_string()];
    if model == Model::Pool {
        args.extend(["--pool-size".to_string(), POOL_SIZE.to_string()]);
    }
    args
}

fn spawn(model: Model, extra: &[&str]) -> ServerProcess {
    let mut args = model_args(model);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::spawn(&args)
}

/// Runs `reactor-rpc call --addr ADDR ARGS...`.
fn call(addr: &str, args: &[&str]) -> Output {
    Command::new(binary())
        .args(["call", "--addr", addr])
        .args(args)
        .output()
        .expect("run reactor-rpc call")
}

/// Runs the Python example client with `args`.
fn python(args: &[&str]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed_client.py");
    Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed to run the seed's client")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An address where nothing listens (a port just released).
fn closed_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

/// Reads the pong for request `i`; if the server closed the connection
/// instead, fails with the server's log (minus the `comes` lines).
fn expect_pong(server: &mut ServerProcess, s: &mut TcpStream, i: usize) {
    let Some(body) = read_frame(s) else {
        server.drain_log();
        let log: Vec<&String> = server
            .log
            .iter()
            .filter(|l| !l.contains(" comes"))
            .collect();
        panic!("client {i} was closed unanswered; server log without `comes`: {log:#?}");
    };
    let response: Value = serde_json::from_slice(&body).unwrap();
    assert_result(&response, "pong", &json!(i));
    assert_eq!(response["id"], i, "{response}");
}

model_tests! {
    every_model: [
        logs_the_real_port_and_peers_and_exits_0_on_sigterm,
        the_python_seed_client_works,
        descriptor_exhaustion_does_not_stop_or_spin_the_server,
        a_greedy_client_does_not_grow_server_memory,
    ],
    not_pool: [],
}

fn logs_the_real_port_and_peers_and_exits_0_on_sigterm(model: Model) {
    let mut server = spawn(model, &[]);
    let line = server.wait_for_line("listening", |l| l.contains("listening on "));
    assert_ne!(server.addr.port(), 0, "{line}");
    assert!(
        line.contains(&format!(
            "listening on {} (model {})",
            server.addr,
            model.name()
        )),
        "{line}"
    );

    let mut c = server.client();
    assert_eq!(c.call("ping", &"hi").unwrap(), json!("hi"));
    let peer = c.stream().local_addr().unwrap();
    server.wait_for_line("comes", |l| l.ends_with(&format!("{peer} comes")));
    drop(c);
    server.wait_for_line("bye", |l| l.ends_with(&format!("{peer} bye")));

    // Clients that stay connected must not hold the shutdown up: one idle,
    // one halfway through a frame, one that was just answered.
    let mut idle = server.raw();
    let mut half = server.raw();
    half.write_all(&request("ping", json!(1))[..6]).unwrap();
    let mut answered = server.raw();
    assert_usable(&mut answered);
    let mut watcher = server.client();
    wait_for_connections(&mut watcher, 4);

    let signalled = Instant::now();
    server.terminate();
    let took = signalled.elapsed();
    eprintln!("{model}: exited {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(8),
        "{model}: took {took:?} to stop"
    );
    for s in [&mut idle, &mut half, &mut answered] {
        expect_closed(s);
    }
}

fn the_python_seed_client_works(model: Model) {
    let server = spawn(model, &[]);
    let addr = server.addr.to_string();
    let out = python(&[&addr]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: String = (0..10).map(|i| format!("pong ireader {i}\n")).collect();
    assert_eq!(stdout(&out), expected);

    // Python's json reads F(100 000) as an exact int: printed back, every digit survives.
    let out = python(&[&addr, "--method", "fib", "--params", "100000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim_end(), fib_decimal(100_000));

    let out = python(&[
        &addr,
        "--method",
        "set",
        "--params",
        r#"{"key": "π", "value": [1, "ü"]}"#,
    ]);
    assert_eq!(stdout(&out).trim_end(), "true", "{}", stderr(&out));
    let out = python(&[&addr, "--method", "get", "--params", r#"{"key": "π"}"#]);
    assert_eq!(stdout(&out).trim_end(), r#"[1, "ü"]"#, "{}", stderr(&out));

    let out = python(&[&addr, "--method", "fib", "--params", "-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: bad_params: "),
        "{}",
        stderr(&out)
    );
}

fn descriptor_exhaustion_does_not_stop_or_spin_the_server(model: Model) {
    const CLIENTS: usize = 100;
    const SURELY_ACCEPTED: usize = 20;
    let mut args = model_args(model);
    if model == Model::Pool {
        // More workers than free descriptors, so the pool meets EMFILE too.
        args = vec![
            "--model".into(),
            "pool".into(),
            "--pool-size".into(),
            "80".into(),
        ];
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerProcess::spawn_with_shell_prefix("ulimit -n 64;", &args);
    let mut first = server.client();
    assert_eq!(first.call("ping", &"first").unwrap(), json!("first"));

    // More clients than the server has descriptors: the extra ones wait in
    // the accept backlog (connect succeeds there) while accept fails.
    let mut conns: Vec<Option<TcpStream>> = (0..CLIENTS)
        .map(|i| {
            let mut s = server.raw();
            s.write_all(&request_with_id("ping", json!(i), json!(i)))
                .unwrap();
            Some(s)
        })
        .collect();
    // The first ones are surely accepted (64 descriptors, minus a dozen for
    // the server itself, even at two per connection): wait for their answers.
    for (i, s) in conns.iter_mut().take(SURELY_ACCEPTED).enumerate() {
        expect_pong(&mut server, s.as_mut().unwrap(), i);
    }
    // Out of descriptors now, the server must not spin on accept.
    let before = cpu_time(server.pid());
    let window = Instant::now();
    thread::sleep(Duration::from_millis(1000));
    let used = cpu_time(server.pid()) - before;
    let elapsed = window.elapsed();
    eprintln!("{model}: {used:?} of CPU in {elapsed:?} while out of descriptors");
    assert!(
        used < elapsed / 4,
        "{model}: spinning: {used:?} of CPU in {elapsed:?}"
    );
    // Existing clients are still served.
    assert_eq!(first.call("ping", &"still").unwrap(), json!("still"));

    // Free descriptors: everyone waiting is accepted and answered.
    for s in conns.iter_mut().take(SURELY_ACCEPTED) {
        drop(s.take());
    }
    for (i, s) in conns.iter_mut().enumerate().skip(SURELY_ACCEPTED) {
        expect_pong(&mut server, s.as_mut().unwrap(), i);
        drop(s.take());
    }
    wait_for_connections(&mut first, 1);
}

fn a_greedy_client_does_not_grow_server_memory(model: Model) {
    const MAX_OUTPUT: usize = 256 * 1024;
    let server = spawn(model, &["--max-output", &MAX_OUTPUT.to_string()]);
    let mut watcher = server.client();
    // Warm up the allocator with some ordinary traffic first.
    let calls: Vec<(&str, Value)> = (0..200)
        .map(|i| ("ping", json!("x".repeat(i * 100))))
        .collect();
    watcher.pipeline(&calls).unwrap();
    let baseline = rss_kib(server.pid());

    // 64 KiB pings, never reading a response, until writes stop going through.
    let one = request("ping", Value::String("x".repeat(64 * 1024)));
    let mut greedy = server.raw();
    greedy.set_nonblocking(true).unwrap();
    let (mut written, mut last_progress) = (0usize, Instant::now());
    while written < 512 << 20 && last_progress.elapsed() < Duration::from_secs(1) {
        match greedy.write(&one[written % one.len()..]) {
            Ok(n) => {
                written += n;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let during = rss_kib(server.pid());
    eprintln!(
        "{model}: wrote {} KiB unread; server RSS {baseline} KiB before, {during} KiB during",
        written >> 10
    );
    assert!(
        written < 64 << 20,
        "{model}: the server kept reading ({} MiB)",
        written >> 20
    );
    assert!(
        during < baseline + 32 * 1024,
        "{model}: RSS grew from {baseline} KiB to {during} KiB"
    );
    assert_eq!(stats(&mut watcher)["connections"], 2);
}

/// `call` against one reactor server: output and exit codes as README.md says.
#[test]
fn call_prints_results_and_exits_by_outcome() {
    let server = spawn(Model::Reactor, &[]);
    let addr = server.addr.to_string();

    let out = call(&addr, &["ping", r#"{"a":[1,"ü"]}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed, json!({"a": [1, "ü"]}));

    let out = call(&addr, &["ping"]);
    assert_eq!(stdout(&out).trim_end(), "null", "missing params are null");

    let out = call(&addr, &["fib", "100000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim_end(),
        fib_decimal(100_000),
        "exact digits"
    );

    assert_eq!(
        stdout(&call(&addr, &["set", r#"{"key":"a","value":[1,2]}"#])).trim_end(),
        "true"
    );
    assert_eq!(
        stdout(&call(&addr, &["get", r#"{"key":"a"}"#])).trim_end(),
        "[1,2]"
    );
    let out = call(&addr, &["stats"]);
    let st: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(st["model"], "reactor");

    // Invalid PARAMS_JSON and an unreachable server: exit 2.
    let out = call(&addr, &["ping", "{not json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = call(&closed_addr(), &["ping"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).is_empty());

    // An error response: code and message on stderr, exit 1, nothing on stdout.
    for (args, code) in [
        (&["fib", "100001"][..], "bad_params"),
        (&["nope"][..], "unknown_method"),
        (&["get", "[]"][..], "bad_params"),
        // README's own example: a negative number is PARAMS_JSON, not a flag.
        (&["fib", "-1"][..], "bad_params"),
    ] {
        let out = call(&addr, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&format!("error: {code}: ")),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
