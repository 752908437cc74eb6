//! The snapshot's safety and persistence health against the real binary:
//! planted links at every name the server writes are never followed; a
//! save over `ulimit -f` fails cleanly and the daemon keeps serving; writes
//! are refused after a failed save (`save_failed`, `-MISCONF`) and resume
//! after a successful one; stale temporary files go at start; records the
//! server would not accept refuse the start (exit 2, one line naming the
//! file and the record) or are moved aside; a missing or unwritable
//! directory refuses the start; health is in `stats`, `INFO persistence`
//! and `/metrics`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{binary, wait_until, ServerProcess, TIMEOUT};
use serde_json::{json, Value};

/// Redis 7.0's `-MISCONF` reply (`shared.bgsaveerr` in server.c).
const MISCONF: &str = "-MISCONF Redis is configured to save RDB snapshots, but it's currently \
unable to persist to disk. Commands that may modify the data set are disabled, because this \
instance is configured to report errors during writes if RDB snapshotting fails \
(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB \
error.\r\n";

/// The binary with a RESP and a metrics listener and `extra` flags; returns
/// it and the two addresses.
fn spawn_with_ports(extra: &[&str]) -> (ServerProcess, SocketAddr, SocketAddr) {
    let mut args = vec![
        "--resp-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut server = ServerProcess::spawn(&args);
    let resp_addr = server.listener_addr("resp");
    let metrics_addr = server.listener_addr("metrics");
    (server, resp_addr, metrics_addr)
}

/// One RESP command and its reply, as text: a simple string, error or
/// integer with its `\r\n`, or a bulk string's contents.
fn resp(s: &mut TcpStream, args: &[&str]) -> String {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).expect("write");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    if let Some(len) = line.strip_prefix('$').filter(|l| !l.starts_with('-')) {
        let len: usize = len.trim().parse().expect("bulk length");
        let mut body = vec![0u8; len + 2];
        r.read_exact(&mut body).expect("bulk");
        body.truncate(len);
        return String::from_utf8(body).expect("utf-8");
    }
    line
}

fn resp_connect(addr: SocketAddr) -> TcpStream {
    crate::support::raw_connect(addr)
}

/// `serve ARGS` run to its end: (exit code, the `reactor-rpc:` lines of stderr).
fn refused_start(args: &[&str]) -> (Option<i32>, Vec<String>) {
    let out = Command::new(binary())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr
        .lines()
        .filter(|l| l.starts_with("reactor-rpc:"))
        .map(String::from)
        .collect();
    (out.status.code(), lines)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn persistence(server: &ServerProcess) -> Value {
    server.client().call("stats", &Value::Null).expect("stats")["persistence"].clone()
}

/// Sets `n` keys of `size` bytes each.
fn fill(server: &ServerProcess, n: usize, size: usize) {
    let mut c = server.client();
    let value = "v".repeat(size);
    for i in 0..n {
        c.call("set", &json!({"key": format!("big{i}"), "value": value}))
            .expect("set");
    }
}

#[test]
fn planted_links_at_every_written_name_are_never_followed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious\n").expect("write");
    let snap = dir.path().join("cache.snap");
    let snap_s = path_str(&snap);

    // The pid file: a planted link refuses the start (exit 2, one line).
    let pid_link = dir.path().join("reactor-rpc.pid");
    symlink(&victim, &pid_link).expect("symlink");
    let (code, lines) = refused_start(&["--snapshot", snap_s, "--pidfile", path_str(&pid_link)]);
    assert_eq!(code, Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("reactor-rpc.pid") && lines[0].contains("symbolic link"));

    // The move-aside names are predictable: links at them are skipped.
    fs::write(&snap, b"not a snapshot").expect("write");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for s in secs..secs + 5 {
        symlink(&victim, dir.path().join(format!("cache.snap.corrupt-{s}"))).expect("symlink");
    }
    // Links with the temporary files' prefix (whose names no one can
    // predict) and at the old fixed temporary name.
    let planted_tmp: Vec<PathBuf> = (0..32)
        .map(|i| dir.path().join(format!("cache.snap.tmp-{i:016x}")))
        .chain([dir.path().join("cache.snap.tmp")])
        .collect();
    for p in &planted_tmp {
        symlink(&victim, p).expect("symlink");
    }
    let pidfile = dir.path().join("real.pid");
    let mut server = ServerProcess::spawn(&[
        "--snapshot",
        snap_s,
        "--snapshot-discard-corrupt",
        "--pidfile",
        path_str(&pidfile),
    ]);
    let moved = server.wait_for_line("the move-aside warning", |l| l.contains("moved it to"));
    let to = moved
        .split("moved it to ")
        .nth(1)
        .and_then(|r| r.split(" and starting").next())
        .expect("a path");
    assert!(to.ends_with("-1"), "moved onto a planted name: {moved}");
    assert!(fs::symlink_metadata(to).expect("moved").is_file());
    // The start-up cleaner removed the links with temporary names, not
    // their target.
    server.wait_for_line("the cleanup line", |l| {
        l.contains("removed 33 temporary file(s)")
    });
    for p in &planted_tmp {
        assert!(
            fs::symlink_metadata(p).is_err(),
            "{} is still there",
            p.display()
        );
    }

    // PATH itself, planted while the server runs: a save replaces the link.
    symlink(&victim, &snap).expect("symlink");
    server
        .client()
        .call("set", &json!({"key": "k", "value": 1}))
        .expect("set");
    server.client().call("save", &Value::Null).expect("save");
    assert!(fs::symlink_metadata(&snap).expect("snapshot").is_file());
    server.terminate();

    assert_eq!(fs::read(&victim).expect("victim"), b"precious\n");
    for s in secs..secs + 5 {
        let link = dir.path().join(format!("cache.snap.corrupt-{s}"));
        assert!(fs::symlink_metadata(&link).expect("link").is_symlink());
    }
    assert!(fs::symlink_metadata(&pid_link).expect("link").is_symlink());
    assert!(!pidfile.exists(), "the pid file outlived a clean exit");
}

/// A server under `ulimit -f 64` (32 KiB with dash's 512-byte blocks, 64
/// KiB with bash's; the log goes to a pipe, which the limit does not apply
/// to) holding 256 KiB of values, whose `save` has just failed: answered
/// `save_failed`, logged, and the daemon still serving, with no file left
/// behind. Returns it and its RESP address.
fn failed_save_under_a_size_limit(dir: &Path, extra: &[&str]) -> (ServerProcess, SocketAddr) {
    let snap = dir.join("cache.snap");
    let mut args = vec!["--snapshot", path_str(&snap), "--resp-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut server = ServerProcess::spawn_with_shell_prefix("ulimit -f 64;", &args);
    let resp_addr = server.listener_addr("resp");
    fill(&server, 64, 4096);

    let mut s = server.raw();
    let r = crate::support::roundtrip(&mut s, &crate::support::request("save", Value::Null));
    crate::support::assert_error(&r, "save_failed");
    let message = r["result"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("File too large"), "{r}");
    server.wait_for_line("the error line", |l| {
        l.contains("cannot save the snapshot") && l.contains("File too large")
    });
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the server died"
    );
    crate::support::assert_usable(&mut s);
    assert!(!snap.exists(), "a partial snapshot was left at PATH");
    assert!(
        fs::read_dir(dir).expect("dir").next().is_none(),
        "a temporary file was left behind"
    );
    (server, resp_addr)
}

#[test]
fn a_save_over_the_file_size_limit_fails_cleanly_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let (mut server, resp_addr) = failed_save_under_a_size_limit(
        dir.path(),
        &["--metrics-addr", "127.0.0.1:0", "--save-interval", "0"],
    );
    let metrics_addr = server.listener_addr("metrics");
    let mut s = server.raw();

    // Health, in all three places.
    let p = persistence(&server);
    assert_eq!(p["last_save_status"], "err", "{p}");
    assert_eq!(p["writes_refused"], true, "{p}");
    assert!(p["last_save_error"]
        .as_str()
        .is_some_and(|e| e.contains("File too large")));
    assert_eq!(p["changes_since_last_save"], 64, "{p}");
    let mut r = resp_connect(resp_addr);
    let info = resp(&mut r, &["INFO", "persistence"]);
    for line in [
        "rdb_last_bgsave_status:err\r\n",
        "writes_refused:1\r\n",
        "rdb_changes_since_last_save:64\r\n",
    ] {
        assert!(info.contains(line), "{line:?} not in {info}");
    }
    let metrics = crate::support::scrape_metrics_with(
        metrics_addr,
        &[
            "reactor_rpc_last_save_status 0\n",
            "reactor_rpc_writes_refused 1\n",
            "reactor_rpc_changes_since_last_save 64\n",
        ],
    );
    assert!(metrics.contains("reactor_rpc_last_save_error_info{error=\"File too large"));

    // Writes are refused in both protocols; reads and admin commands run.
    let r2 = crate::support::roundtrip(
        &mut s,
        &crate::support::request("set", json!({"key": "n", "value": 1})),
    );
    crate::support::assert_error(&r2, "save_failed");
    let r2 = crate::support::roundtrip(
        &mut s,
        &crate::support::request("incr", json!({"key": "n"})),
    );
    crate::support::assert_error(&r2, "save_failed");
    let r2 = crate::support::roundtrip(
        &mut s,
        &crate::support::request("get", json!({"key": "big0"})),
    );
    assert_eq!(r2["result"].as_str().map(str::len), Some(4096), "{r2}");
    assert_eq!(resp(&mut r, &["SET", "n", "1"]), MISCONF);
    assert_eq!(resp(&mut r, &["DEL", "big0"]), MISCONF);
    assert_eq!(resp(&mut r, &["SAVE"]), "-ERR\r\n");
    assert_eq!(resp(&mut r, &["GET", "n"]), "$-1\r\n");
    // A flush is how an operator gets out of it: the next save is small.
    assert_eq!(resp(&mut r, &["FLUSHALL"]), "+OK\r\n");
    assert_eq!(resp(&mut r, &["BGSAVE"]), "+Background saving started\r\n");
    wait_until("the background save to succeed", TIMEOUT, || {
        persistence(&server)["last_save_status"] == "ok"
    });

    // Writes resume.
    assert_eq!(resp(&mut r, &["SET", "n", "1"]), "+OK\r\n");
    let r2 = crate::support::roundtrip(
        &mut s,
        &crate::support::request("set", json!({"key": "m", "value": 2})),
    );
    assert_eq!(r2["result"], true, "{r2}");
    let p = persistence(&server);
    assert_eq!(
        (p["writes_refused"].clone(), p["last_save_error"].clone()),
        (json!(false), Value::Null)
    );
    let lastsave = resp(&mut r, &["LASTSAVE"]);
    let lastsave: u64 = lastsave[1..].trim().parse().expect("an integer");
    assert_eq!(json!(lastsave), p["last_save_time"], "{p}");
    crate::support::scrape_metrics_with(metrics_addr, &["reactor_rpc_last_save_status 1\n"]);
    drop((s, r));
    server.terminate();
    assert!(snap.exists());
}

#[test]
fn with_stop_writes_off_a_failed_save_refuses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, resp_addr) =
        failed_save_under_a_size_limit(dir.path(), &["--stop-writes-on-save-error", "no"]);
    let p = persistence(&server);
    assert_eq!(
        (p["last_save_status"].clone(), p["writes_refused"].clone()),
        (json!("err"), json!(false))
    );
    let mut r = resp_connect(resp_addr);
    assert_eq!(resp(&mut r, &["SET", "n", "1"]), "+OK\r\n");
    assert!(resp(&mut r, &["INFO", "persistence"]).contains("stop_writes_on_save_error:0\r\n"));
    // The final save fails too (the data is still over the limit): the
    // server refuses to stop; a second SIGTERM forces the exit, 1.
    server.sigterm();
    server.wait_for_line("the refusal", |l| l.contains("not shutting down"));
    crate::support::assert_usable(&mut server.raw());
    server.sigterm();
    let status = server.wait_exit(crate::support::SHUTDOWN_BOUND);
    assert_eq!(status.code(), Some(1));

    let (code, lines) = refused_start(&["--stop-writes-on-save-error", "maybe"]);
    assert_eq!(code, Some(2), "{lines:?}");
}

#[test]
fn stale_temporary_files_are_removed_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let stale = [
        dir.path().join("cache.snap.tmp-0123456789abcdef"),
        dir.path().join("cache.snap.tmp-fedcba9876543210"),
        dir.path().join("cache.snap.tmp"),
    ];
    for p in &stale {
        fs::write(p, b"half a save").expect("write");
    }
    // Not ours: another snapshot's, and a name that only looks alike.
    let others = [
        dir.path().join("other.snap.tmp-0123456789abcdef"),
        dir.path().join("cache.snap.tmp-notarandomname!"),
    ];
    for p in &others {
        fs::write(p, b"keep").expect("write");
    }
    let mut server = ServerProcess::spawn(&["--snapshot", path_str(&snap)]);
    server.wait_for_line("the cleanup line", |l| {
        l.contains("removed 3 temporary file(s)")
    });
    for p in &stale {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    for p in &others {
        assert_eq!(fs::read(p).expect("kept"), b"keep");
    }
    server.terminate();
}

/// A snapshot file of `records` (each already encoded), with a valid CRC:
/// what someone who can write the file could make.
fn craft(path: &Path, records: &[Vec<u8>]) {
    let body: Vec<u8> = records.concat();
    let len = 36 + body.len() as u64 + 4;
    let mut b = b"RRPCSNAP".to_vec();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(records.len() as u64).to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    let crc = crc32(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    fs::write(path, b).expect("write");
}

/// CRC-32 (IEEE), bit by bit: slow and obviously right.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One record: kind 0 Int, 1 Raw, 2 JSON. `value_len` may claim more bytes
/// than `value` has (a length over the limit is refused before it is read).
fn record(
    key: &[u8],
    key_len: u32,
    kind: u8,
    expiry: Option<u64>,
    value: &[u8],
    value_len: u32,
) -> Vec<u8> {
    let mut b = key_len.to_le_bytes().to_vec();
    b.extend_from_slice(key);
    b.push(kind);
    match expiry {
        Some(t) => {
            b.push(1);
            b.extend_from_slice(&t.to_le_bytes());
        }
        None => b.push(0),
    }
    b.extend_from_slice(&value_len.to_le_bytes());
    b.extend_from_slice(value);
    b
}

#[test]
fn records_the_server_would_not_accept_refuse_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let snap_s = path_str(&snap);
    let good = record(b"ok", 2, 0, None, &7i64.to_le_bytes(), 8);
    let over = 600 << 20; // past --max-frame 1m and Redis's 512 MiB
                          // (what, the bad record, where the line says it is, what it says is wrong)
    let cases: [(&str, Vec<u8>, &str, &str); 5] = [
        (
            "forged JSON",
            record(b"f", 1, 2, None, br#"1,"out":"forged""#, 16),
            "corrupt record 1 (key \"f\") at byte 67: ",
            "JSON value that is not exactly one JSON value",
        ),
        (
            "an expiry past i64",
            record(b"t", 1, 1, Some(u64::MAX), b"v", 1),
            "corrupt record 1 (key \"t\") at byte 63: ",
            "expiry 18446744073709551615 is beyond the latest the server can keep",
        ),
        (
            "a key over the limit",
            record(b"", over, 1, None, b"", 0),
            "corrupt record 1 at byte 56: ",
            "key of 629145600 bytes, over the limit of 536870912",
        ),
        (
            "a value over the limit",
            record(b"v", 1, 1, None, b"", over),
            "corrupt record 1 (key \"v\") at byte 63: ",
            "value of 629145600 bytes, over the limit of 536870912",
        ),
        (
            "JSON nested deeper than a request may be",
            record(b"d", 1, 2, None, &[b'['; 200], 200),
            "corrupt record 1 (key \"d\") at byte 67: ",
            "JSON value that is not exactly one JSON value",
        ),
    ];
    for (what, bad, at, fault) in &cases {
        craft(&snap, &[good.clone(), bad.clone()]);
        let before = fs::read(&snap).expect("read");
        let (code, lines) = refused_start(&["--snapshot", snap_s]);
        assert_eq!(code, Some(2), "{what}: {lines:?}");
        assert_eq!(lines.len(), 1, "{what}: {lines:?}");
        let want = format!("reactor-rpc: snapshot {snap_s}: {at}{fault}");
        assert!(
            lines[0].starts_with(&want),
            "{what}: {}\nwanted {want}",
            lines[0]
        );
        assert_eq!(
            fs::read(&snap).expect("kept"),
            before,
            "{what}: file changed"
        );
    }

    // With --snapshot-discard-corrupt: moved aside, and the server starts empty.
    let (_, bad, _, _) = &cases[0];
    craft(&snap, &[good.clone(), bad.clone()]);
    let mut server = ServerProcess::spawn(&["--snapshot", snap_s, "--snapshot-discard-corrupt"]);
    let warning = server.wait_for_line("the warning", |l| l.contains("moved it to"));
    assert!(warning.contains("record 1 (key \"f\")"), "{warning}");
    assert_eq!(
        server.client().call("stats", &Value::Null).expect("stats")["keys"],
        0
    );
    let aside = fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("cache.snap.corrupt-"))
        .count();
    assert_eq!(aside, 1);
    server.terminate();
}

#[test]
fn a_missing_or_unwritable_snapshot_directory_refuses_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    fs::write(&file, b"").expect("write");
    let cases = [
        (dir.path().join("missing/cache.snap"), "missing"),
        // A file where the directory should be.
        (file.join("cache.snap"), "is not a directory"),
        // No one, root included, creates files in /proc.
        (
            PathBuf::from("/proc/cache.snap"),
            "directory /proc is not writable",
        ),
    ];
    for (snap, expect) in &cases {
        let snap_s = path_str(snap);
        let (code, lines) = refused_start(&["--snapshot", snap_s]);
        assert_eq!(code, Some(2), "{snap_s}: {lines:?}");
        assert_eq!(lines.len(), 1, "{snap_s}: {lines:?}");
        assert!(
            lines[0].contains(snap_s) && lines[0].contains(expect),
            "{snap_s}: {}",
            lines[0]
        );
    }
}

#[test]
fn persistence_health_in_stats_info_and_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("cache.snap");
    let (mut server, resp_addr, metrics_addr) = spawn_with_ports(&["--snapshot", path_str(&snap)]);
    let p = persistence(&server);
    assert_eq!(p["enabled"], true, "{p}");
    assert_eq!(p["last_save_status"], "ok", "{p}");
    assert_eq!(p["changes_since_last_save"], 0, "{p}");
    assert_eq!(p["last_save_duration_ms"], Value::Null, "{p}");
    assert_eq!(p["stop_writes_on_save_error"], true, "{p}");
    let started = p["last_save_time"].as_u64().expect("a time");

    let mut c = server.client();
    for i in 0..3 {
        c.call("set", &json!({"key": format!("k{i}"), "value": i}))
            .expect("set");
    }
    assert_eq!(persistence(&server)["changes_since_last_save"], 3);
    let mut r = resp_connect(resp_addr);
    assert_eq!(resp(&mut r, &["SAVE"]), "+OK\r\n");
    let p = persistence(&server);
    assert_eq!(p["changes_since_last_save"], 0, "{p}");
    assert!(p["last_save_duration_ms"].is_u64(), "{p}");
    assert!(p["last_save_time"].as_u64() >= Some(started), "{p}");
    assert_eq!(p["saves"], 1, "{p}");

    let info = resp(&mut r, &["INFO", "persistence"]);
    assert!(info.starts_with("# Persistence\r\n"), "{info}");
    for line in [
        "rdb_changes_since_last_save:0\r\n",
        "rdb_bgsave_in_progress:0\r\n",
        "rdb_last_bgsave_status:ok\r\n",
        "rdb_saves:1\r\n",
        "aof_enabled:0\r\n",
        "snapshot_enabled:1\r\n",
        "writes_refused:0\r\n",
        "last_save_error:\r\n",
    ] {
        assert!(info.contains(line), "{line:?} not in {info}");
    }
    assert!(info.contains(&format!("rdb_last_save_time:{}\r\n", p["last_save_time"])));
    // The default INFO has the section, between memory and stats as in Redis.
    let all = resp(&mut r, &["INFO"]);
    let at = |h: &str| all.find(h).unwrap_or_else(|| panic!("{h} not in {all}"));
    assert!(at("# Memory") < at("# Persistence") && at("# Persistence") < at("# Stats"));

    let save_time = format!(
        "reactor_rpc_last_save_time_seconds {}\n",
        p["last_save_time"]
    );
    let metrics = crate::support::scrape_metrics_with(
        metrics_addr,
        &[
            "reactor_rpc_last_save_status 1\n",
            "reactor_rpc_changes_since_last_save 0\n",
            "reactor_rpc_save_in_progress 0\n",
            "reactor_rpc_writes_refused 0\n",
            "reactor_rpc_saves_total 1\n",
            &save_time,
        ],
    );
    assert!(metrics.contains("reactor_rpc_last_save_duration_seconds "));
    assert!(!metrics.contains("last_save_error_info"));
    drop((c, r));
    server.terminate();

    // Without a snapshot: reported as off, and SAVE says why.
    let (mut server, resp_addr, metrics_addr) = spawn_with_ports(&[]);
    assert_eq!(persistence(&server)["enabled"], false);
    let mut r = resp_connect(resp_addr);
    assert!(resp(&mut r, &["INFO", "persistence"]).contains("snapshot_enabled:0\r\n"));
    assert_eq!(
        resp(&mut r, &["SAVE"]),
        "-ERR no snapshot file is configured (start the server with --snapshot PATH)\r\n"
    );
    assert!(!crate::support::scrape_metrics(metrics_addr).contains("reactor_rpc_last_save"));
    drop(r);
    server.terminate();
}
