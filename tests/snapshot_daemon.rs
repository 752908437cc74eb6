//! `--snapshot` against the real binary: a restart keeps keys and their
//! TTLs and drops keys that expired while down; the `save` method and its
//! `busy`; a damaged snapshot refuses the start (exit 2, one line) or, with
//! `--snapshot-discard-corrupt`, is moved aside; `kill -9` in the middle of
//! saves always leaves a loadable snapshot.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{binary, wait_until, ServerProcess, TIMEOUT};
use serde_json::{json, Value};

fn spawn(snapshot: &Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--snapshot", snapshot.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    ServerProcess::spawn(&args)
}

/// Sets `n` keys `k0..` over one connection, pipelined.
fn fill(server: &ServerProcess, n: usize) {
    let mut s = server.raw();
    let mut writer = s.try_clone().expect("clone");
    let sender = thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..n {
            batch.extend(crate::support::request(
                "set",
                json!({"key": format!("k{i}"), "value": format!("value of key number {i}")}),
            ));
            if batch.len() > 1 << 16 {
                writer.write_all(&batch).expect("write");
                batch.clear();
            }
        }
        writer.write_all(&batch).expect("write");
    });
    for _ in 0..n {
        let r = crate::support::read_response(&mut s);
        assert!(r.get("error").is_none(), "{r}");
    }
    sender.join().expect("sender");
}

#[test]
fn a_restart_keeps_keys_and_ttls_and_drops_what_expired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let mut server = spawn(&snap, &[]);
    let mut c = server.client();
    c.call("set", &json!({"key": "forever", "value": {"a": [1, 2]}}))
        .expect("set");
    c.call("set", &json!({"key": "counter", "value": 41}))
        .expect("set");
    c.call("incr", &json!({"key": "counter"})).expect("incr");
    c.call(
        "set",
        &json!({"key": "long", "value": "x", "ttl_ms": 100_000}),
    )
    .expect("set");
    let short_set = Instant::now();
    c.call("set", &json!({"key": "short", "value": "y", "ttl_ms": 500}))
        .expect("set");
    drop(c);
    server.terminate();
    assert!(snap.exists(), "no snapshot after SIGTERM");
    // `short` expires while the server is down.
    wait_until("the short TTL to pass", TIMEOUT, || {
        short_set.elapsed() > Duration::from_millis(600)
    });

    let mut server = spawn(&snap, &[]);
    server.wait_for_line("the load line", |l| l.contains("loaded 3 keys (1 expired"));
    let mut c = server.client();
    assert_eq!(
        c.call("get", &json!({"key": "forever"})).expect("get"),
        json!({"a": [1, 2]})
    );
    assert_eq!(c.call("get", &json!({"key": "counter"})).expect("get"), 42);
    assert_eq!(
        c.call("get", &json!({"key": "short"})).expect("get"),
        Value::Null
    );
    let ttl = c.call("ttl", &json!({"key": "long"})).expect("ttl");
    let ttl = ttl.as_i64().expect("a ttl in ms");
    assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
    assert_eq!(c.call("ttl", &json!({"key": "forever"})).expect("ttl"), -1);
    drop(c);
    server.terminate();
}

#[test]
fn save_answers_keys_bytes_ms_and_busy_while_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let mut server = spawn(&snap, &[]);
    fill(&server, 200_000);
    let r = server.client().call("save", &Value::Null).expect("save");
    assert_eq!(r["keys"], 200_000, "{r}");
    assert!(r["bytes"].as_u64() > Some(200_000 * 20), "{r}");
    assert!(r["ms"].is_u64(), "{r}");
    assert_eq!(fs::metadata(&snap).expect("file").len(), r["bytes"]);

    // Several at once: one saves, the others are told `busy`.
    let addr = server.addr;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let mut s = crate::support::raw_connect(addr);
                crate::support::roundtrip(&mut s, &crate::support::request("save", Value::Null))
            })
        })
        .collect();
    let answers: Vec<Value> = calls.into_iter().map(|t| t.join().expect("call")).collect();
    let busy = answers
        .iter()
        .filter(|a| a["out"] == "error" && a["result"]["code"] == "busy")
        .count();
    let saved = answers
        .iter()
        .filter(|a| a["result"]["keys"] == 200_000)
        .count();
    assert!(saved >= 1 && busy >= 1 && saved + busy == 4, "{answers:?}");
    server.terminate();
}

fn serve_output(snapshot: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(["serve", "--addr", "127.0.0.1:0", "--snapshot"])
        .arg(snapshot)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run the server")
}

#[test]
fn a_damaged_snapshot_refuses_the_start_or_is_moved_aside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    // A good snapshot, then damaged three ways.
    let mut server = spawn(&snap, &[]);
    server
        .client()
        .call("set", &json!({"key": "k", "value": 1}))
        .expect("set");
    server.terminate();
    let good = fs::read(&snap).expect("snapshot");
    let mut flipped = good.clone();
    let last = flipped.len() - 6;
    flipped[last] ^= 0xff;
    let mut future = good.clone();
    future[8] = 9;
    for (what, bytes, expect) in [
        ("truncated", good[..good.len() - 3].to_vec(), "truncated"),
        ("corrupt", flipped, "CRC mismatch"),
        ("unknown version", future, "unknown format version 9"),
    ] {
        fs::write(&snap, &bytes).expect("write");
        let out = serve_output(&snap, &[]);
        assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("reactor-rpc:"))
            .collect();
        assert_eq!(lines.len(), 1, "{what}: {stderr}");
        assert!(
            lines[0].contains(snap.to_str().unwrap()) && lines[0].contains(expect),
            "{what}: {stderr}"
        );
        assert_eq!(
            fs::read(&snap).expect("kept"),
            bytes,
            "{what}: file changed"
        );
    }

    let mut server = spawn(&snap, &["--snapshot-discard-corrupt"]);
    let warning = server.wait_for_line("the warning", |l| l.contains("moved it to"));
    assert!(warning.contains("WARN"), "{warning}");
    let aside: Vec<String> = fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("cache.snap.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        server.client().call("stats", &Value::Null).expect("stats")["keys"],
        0
    );
    server.terminate();
}

#[test]
fn kill_9_during_saves_leaves_a_loadable_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let mut server = spawn(&snap, &[]);
    fill(&server, 50_000);
    server.terminate();
    for round in 0..10u64 {
        let mut server = spawn(&snap, &[]);
        server.wait_for_line("the load line", |l| l.contains("loaded 50000 keys"));
        let addr = server.addr;
        // Saves back to back, killed at a different moment each round.
        let saver = thread::spawn(move || {
            let mut c = crate::support::client_for(addr);
            while c.call_raw("save", &Value::Null).is_ok() {}
        });
        thread::sleep(Duration::from_millis(5 + 13 * round));
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reap");
        saver.join().expect("saver");
    }
    let mut server = spawn(&snap, &[]);
    server.wait_for_line("the load line", |l| l.contains("loaded 50000 keys"));
    server.terminate();
}

#[test]
fn save_interval_saves_only_when_the_cache_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let mut server = spawn(&snap, &["--save-interval", "1"]);
    server
        .client()
        .call("set", &json!({"key": "k", "value": 1}))
        .expect("set");
    server.wait_for_line("a periodic save", |l| l.contains("saved 1 keys"));
    let saved = fs::metadata(&snap)
        .expect("snapshot")
        .modified()
        .expect("mtime");
    // An unchanged cache is not saved again: no second `saved 1 keys` line
    // appears before the save that follows the next write.
    let log_len = server.log.len();
    server
        .client()
        .call("set", &json!({"key": "k2", "value": 2}))
        .expect("set");
    server.wait_for_line("the second periodic save", |l| l.contains("saved 2 keys"));
    assert!(server.log[log_len..]
        .iter()
        .all(|l| !l.contains("saved 1 keys")));
    assert!(
        fs::metadata(&snap)
            .expect("snapshot")
            .modified()
            .expect("mtime")
            >= saved
    );
    server.terminate();
}

#[test]
fn without_snapshot_there_is_no_save_method() {
    let mut server = ServerProcess::spawn(&[]);
    let mut s = server.raw();
    let r = crate::support::roundtrip(&mut s, &crate::support::request("save", Value::Null));
    crate::support::assert_error(&r, "unknown_method");
    server.terminate();
}
