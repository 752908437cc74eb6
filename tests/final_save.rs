//! SIGTERM with `--snapshot`, against the real binary in every model: the
//! first terminate signal saves while the server still serves; a save that
//! fails (here: over `ulimit -f`) leaves the server serving every listener
//! with one error line saying why and how to force the exit; a second
//! SIGTERM, or SIGQUIT, forces it (exit 1: changes are lost); after a later
//! save succeeded, SIGTERM saves and stops again; the normal path saves,
//! skips an unchanged second save and exits 0. SIGQUIT without
//! `--snapshot` is a graceful shutdown, not a core dump, and a second
//! request during a shutdown (what a second signal makes) closes every
//! connection now instead of waiting out the grace period.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

use crate::support::*;

/// `--model M` (and the pool's size) with `extra`.
fn args<'a>(model: Model, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--model", model.name()];
    if model == Model::Pool {
        args.extend(["--pool-size", "8"]);
    }
    args.extend_from_slice(extra);
    args
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One RESP command on a new connection to `addr`, and the reply's first line.
fn resp_line(addr: SocketAddr, command: &[u8]) -> String {
    let mut s = raw_connect(addr);
    s.write_all(command).expect("write");
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        s.read_exact(&mut byte).expect("read a reply");
        reply.push(byte[0]);
    }
    String::from_utf8(reply).expect("utf-8")
}

/// The server answers on every listener, each on a new connection: JSON
/// `ping`, RESP `PING`, and a metrics scrape.
fn assert_serving(server: &mut ServerProcess, resp: SocketAddr, metrics: SocketAddr) {
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the server exited"
    );
    let mut c = server.client();
    assert_eq!(
        c.call("ping", &json!("still here")).expect("ping"),
        "still here"
    );
    assert_eq!(resp_line(resp, b"*1\r\n$4\r\nPING\r\n"), "+PONG\r\n");
    assert!(scrape_metrics(metrics).contains("reactor_rpc_"));
}

/// A server under `ulimit -f 64` holding 256 KiB of values (64 changes),
/// sent SIGTERM: its save fails, and it says so and goes on serving every
/// listener. Returns it with its RESP and metrics addresses.
fn refused(model: Model, snap: &Path) -> (ServerProcess, SocketAddr, SocketAddr) {
    let extra = [
        "--snapshot",
        path_str(snap),
        "--save-interval",
        "0",
        "--resp-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut server = ServerProcess::spawn_with_shell_prefix("ulimit -f 64;", &args(model, &extra));
    let resp = server.listener_addr("resp");
    let metrics = server.listener_addr("metrics");
    let mut c = server.client();
    let value = "v".repeat(4096);
    for i in 0..64 {
        c.call("set", &json!({"key": format!("k{i}"), "value": value}))
            .expect("set");
    }
    drop(c);
    server.sigterm();
    let line = server.wait_for_line("the refusal", |l| l.contains("not shutting down"));
    for part in [
        "ERROR",
        "SIGTERM",
        "File too large",
        "still serving",
        "SIGQUIT",
        "64 changes",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    assert_serving(&mut server, resp, metrics);
    (server, resp, metrics)
}

/// Waits for the exit, and returns its code with the log so far.
fn exit_code(server: &mut ServerProcess) -> Option<i32> {
    let status = server.wait_exit(SHUTDOWN_BOUND);
    server.drain_log();
    status.code()
}

fn a_failed_final_save_keeps_serving_until_a_second_sigterm(model: Model) {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let (mut server, resp, metrics) = refused(model, &snap);
    // Still a server: a write is refused (the save failed), a read is not.
    assert!(resp_line(resp, b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n").starts_with("-MISCONF"));
    assert_eq!(
        resp_line(resp, b"*2\r\n$6\r\nSTRLEN\r\n$2\r\nk0\r\n"),
        ":4096\r\n"
    );
    assert_serving(&mut server, resp, metrics);

    server.sigterm();
    assert_eq!(exit_code(&mut server), Some(1), "{}", server.log.join("\n"));
    let lost = server
        .log
        .iter()
        .find(|l| l.contains("are lost"))
        .unwrap_or_else(|| panic!("no line counting the lost changes: {:?}", server.log));
    assert!(lost.contains("64 changes"), "{lost}");
    assert!(!snap.exists(), "a snapshot appeared");
}

fn sigquit_forces_the_exit_after_a_refusal(model: Model) {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let (mut server, _, _) = refused(model, &snap);
    server.signal(libc::SIGQUIT);
    assert_eq!(exit_code(&mut server), Some(1), "{}", server.log.join("\n"));
    assert!(server
        .log
        .iter()
        .any(|l| l.contains("SIGQUIT: shutting down without the final save")));
    assert!(server
        .log
        .iter()
        .any(|l| l.contains("64 changes") && l.contains("are lost")));
}

fn after_a_refusal_a_successful_save_lets_sigterm_save_and_stop(model: Model) {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let (mut server, resp, _) = refused(model, &snap);
    // An operator's way out: less data, and a save that succeeds.
    assert_eq!(resp_line(resp, b"*1\r\n$8\r\nFLUSHALL\r\n"), "+OK\r\n");
    let r = server.client().call("save", &Value::Null).expect("save");
    assert_eq!(r["keys"], 0, "{r}");
    let mut c = server.client();
    c.call("set", &json!({"key": "small", "value": 1}))
        .expect("set");
    drop(c);
    let seen = server.log.len();
    server.sigterm();
    assert_eq!(exit_code(&mut server), Some(0), "{}", server.log.join("\n"));
    let after = &server.log[seen..];
    assert!(
        after.iter().any(|l| l.contains("saved 1 keys")),
        "{after:?}"
    );
    assert!(snap.exists());
}

fn sigterm_saves_while_serving_then_stops(model: Model) {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let mut server = ServerProcess::spawn(&args(model, &["--snapshot", path_str(&snap)]));
    let mut c = server.client();
    for key in ["a", "b", "c"] {
        c.call("set", &json!({"key": key, "value": key}))
            .expect("set");
    }
    drop(c);
    server.sigterm();
    assert_eq!(exit_code(&mut server), Some(0), "{}", server.log.join("\n"));
    let log = &server.log;
    let at = |what: &str| {
        log.iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in {log:?}"))
    };
    // Saved first, then the shutdown; nothing changed during the drain, so
    // no second save.
    assert!(at("SIGTERM: saving") < at("saved 3 keys"));
    assert!(at("saved 3 keys") < at("shutting down:"));
    assert!(at("shutting down:") < at("is up to date"));
    assert_eq!(log.iter().filter(|l| l.contains("saved 3 keys")).count(), 1);

    let mut server = ServerProcess::spawn(&args(model, &["--snapshot", path_str(&snap)]));
    server.wait_for_line("the load line", |l| l.contains("loaded 3 keys"));
    // SIGQUIT with nothing changed: no save, and nothing lost.
    server.signal(libc::SIGQUIT);
    assert_eq!(exit_code(&mut server), Some(0), "{}", server.log.join("\n"));
    assert!(server
        .log
        .iter()
        .any(|l| l.contains("nothing changed since the last save")));
}

fn sigquit_without_a_snapshot_is_a_graceful_shutdown(model: Model) {
    let mut server = ServerProcess::spawn(&args(model, &[]));
    let mut s = server.raw();
    assert_usable(&mut s);
    server.signal(libc::SIGQUIT);
    assert_eq!(exit_code(&mut server), Some(0), "{}", server.log.join("\n"));
    assert!(server.log.iter().any(|l| l.contains("shutting down:")));
    expect_closed(&mut s);
}

/// A shutdown waiting on a client that never reads its responses, with a
/// grace period far longer than any wait here: `escalate` (a second
/// signal's default) closes it now, and `run` returns.
fn a_second_request_closes_every_connection_now(model: Model) {
    let mut config = test_config(model);
    config.shutdown_grace = std::time::Duration::from_secs(120);
    let server = Server::bind(config, std::sync::Arc::new(Service::new())).expect("bind");
    let (addr, handle) = (server.local_addr(), server.shutdown_handle());
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(server.run()));
    let mut c = client_for(addr);
    c.call(
        "set",
        &json!({"key": "big", "value": "v".repeat(1000 << 10)}),
    )
    .expect("set");
    let mut stuck = raw_connect(addr);
    let gets: Vec<u8> = (0..64)
        .flat_map(|_| request("get", json!({"key": "big"})))
        .collect();
    stuck.write_all(&gets).expect("write");
    // The server has answered some: it holds output this client never reads.
    wait_until("gets answered", TIMEOUT, || {
        stats(&mut c)["keyspace_hits"].as_u64() >= Some(2)
    });
    drop(c);
    handle.shutdown();
    assert!(
        done.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "{model}: the shutdown did not wait for the client"
    );
    handle.escalate();
    assert!(handle.is_forced());
    let result = done
        .recv_timeout(TIMEOUT)
        .expect("run() returned after escalate");
    result.expect("run() failed");
}

model_tests! {
    every_model: [
        a_failed_final_save_keeps_serving_until_a_second_sigterm,
        sigquit_forces_the_exit_after_a_refusal,
        after_a_refusal_a_successful_save_lets_sigterm_save_and_stop,
        sigterm_saves_while_serving_then_stops,
        sigquit_without_a_snapshot_is_a_graceful_shutdown,
        a_second_request_closes_every_connection_now,
    ],
    not_pool: [],
}
