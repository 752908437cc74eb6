//! The binary as a daemon: SIGHUP and logrotate, the pid file, `stats`'
//! pid and version, systemd readiness and socket activation, all against
//! the real `reactor-rpc serve` process, synchronised on log lines, files
//! and sockets rather than sleeps.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{binary, client_for, wait_until, ServerProcess, SHUTDOWN_BOUND, TIMEOUT};
use serde_json::Value;

fn ping(addr: SocketAddr) {
    let mut client = client_for(addr);
    let pong = client.call("ping", "hup").expect("ping");
    assert_eq!(pong, "hup");
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill(2) on a child of this test.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
}

#[test]
fn sighup_reopens_the_log_file_after_logrotate_renamed_it() {
    for model in ["reactor", "threaded", "pool"] {
        hup_under_logrotate(model);
    }
}

/// A server of `model` logging to `log`, once it has logged where it listens.
fn spawn_logging_to(log: &Path, model: &str) -> (std::process::Child, SocketAddr) {
    let child = Command::new(binary())
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--model",
            model,
            "--log-file",
        ])
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_until("the listening line in the log file", TIMEOUT, || {
        read(log).contains("listening on ")
    });
    let text = read(log);
    let line = text
        .lines()
        .find(|l| l.contains("listening on "))
        .expect("line");
    let addr = crate::support::parse_listening(line).expect("address");
    (child, addr)
}

fn hup_under_logrotate(model: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let rotated = dir.path().join("server.log.1");
    let (mut child, addr) = spawn_logging_to(&log, model);
    // logrotate without copytruncate: rename, then HUP.
    fs::rename(&log, &rotated).expect("rename the log");
    signal(child.id(), libc::SIGHUP);
    wait_until("a new log file saying it was reopened", TIMEOUT, || {
        read(&log).contains("reopened log file")
    });
    // Twice, to show it is not a one-off, and the server keeps serving.
    ping(addr);
    fs::rename(&log, dir.path().join("server.log.2")).expect("rename again");
    signal(child.id(), libc::SIGHUP);
    wait_until("the second reopened log file", TIMEOUT, || {
        read(&log).contains("reopened log file")
    });
    ping(addr);
    assert!(read(&rotated).contains("listening on "));
    assert_eq!(child.try_wait().expect("try_wait"), None, "HUP stopped it");
    signal(child.id(), libc::SIGTERM);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
}

/// A link planted at `--log-file`'s name is never written through: at start
/// it refuses the start (exit 2, one line); planted between a logrotate and
/// the SIGHUP, the reopen fails, the old file keeps the log and says why, and
/// the server goes on serving.
#[test]
fn a_link_planted_at_the_log_file_is_never_written_through() {
    let dir = tempfile::tempdir().expect("temp dir");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious\n").expect("write");
    let log = dir.path().join("server.log");
    std::os::unix::fs::symlink(&victim, &log).expect("symlink");
    let out = Command::new(binary())
        .args(["serve", "--addr", "127.0.0.1:0", "--log-file"])
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .expect("run the server");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("server.log") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    fs::remove_file(&log).expect("remove the link");

    let rotated = dir.path().join("server.log.1");
    let (mut child, addr) = spawn_logging_to(&log, "reactor");
    fs::rename(&log, &rotated).expect("rename the log");
    std::os::unix::fs::symlink(&victim, &log).expect("symlink");
    signal(child.id(), libc::SIGHUP);
    wait_until("the reopen refused, in the old file", TIMEOUT, || {
        read(&rotated).contains("cannot reopen the log file")
    });
    ping(addr);
    assert_eq!(fs::read(&victim).expect("victim"), b"precious\n");
    assert!(fs::symlink_metadata(&log).expect("link").is_symlink());
    signal(child.id(), libc::SIGTERM);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert_eq!(fs::read(&victim).expect("victim"), b"precious\n");
}

#[test]
fn pidfile_is_written_refuses_a_second_server_and_is_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("reactor-rpc.pid");
    let path = pidfile.to_str().expect("utf-8 path");
    let mut first = ServerProcess::spawn(&["--pidfile", path]);
    // Written after the listener is bound: the `listening on` line came
    // first, so wait for the file itself.
    wait_until("the pid file", TIMEOUT, || !read(&pidfile).is_empty());
    assert_eq!(read(&pidfile).trim(), first.pid().to_string());

    let second = Command::new(binary())
        .args(["serve", "--addr", "127.0.0.1:0", "--pidfile", path])
        .stdin(Stdio::null())
        .output()
        .expect("run a second server");
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(path) && last.contains(&first.pid().to_string()),
        "{stderr}"
    );
    // The refused server left the file alone.
    assert_eq!(read(&pidfile).trim(), first.pid().to_string());

    first.terminate();
    assert!(!pidfile.exists(), "the pid file outlived a clean exit");
}

#[test]
fn stats_reports_pid_and_version() {
    let mut server = ServerProcess::spawn(&[]);
    let stats: Value = server.client().call("stats", &Value::Null).expect("stats");
    assert_eq!(stats["pid"].as_u64(), Some(u64::from(server.pid())));
    assert_eq!(stats["version"], env!("CARGO_PKG_VERSION"));
    server.terminate();
}

#[test]
fn notify_socket_gets_ready_then_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut server = ServerProcess::spawn_with_shell_prefix(
        &format!("NOTIFY_SOCKET='{}'", sock_path.display()),
        &[],
    );
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("READY=1");
    assert_eq!(&buf[..n], b"READY=1\n");
    // Ready means serving.
    ping(server.addr);
    server.sigterm();
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    let status = server.wait_exit(SHUTDOWN_BOUND);
    assert!(status.success(), "{status}");
}

/// `reactor-rpc serve ARGS` with `fds` as its fds 3, 4, … and `LISTEN_PID`,
/// `LISTEN_FDS` (and `LISTEN_FDNAMES` if given) set as systemd does.
fn spawn_activated(fds: &[RawFd], names: Option<&str>, args: &[&str]) -> std::process::Child {
    let mut shell = Command::new("/bin/sh");
    // `$$` is the shell's pid, which `exec` keeps: the server's pid.
    shell
        .arg("-c")
        .arg(format!(
            r#"LISTEN_PID=$$ LISTEN_FDS={} exec "$0" "$@""#,
            fds.len()
        ))
        .arg(binary())
        .args(["serve", "--addr", "127.0.0.1:1"])
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(names) = names {
        shell.env("LISTEN_FDNAMES", names);
    }
    crate::support::hand_over_fds(&mut shell, fds);
    shell.spawn().expect("spawn the activated server")
}

#[test]
fn socket_activation_serves_the_inherited_fd_3() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // `--addr 127.0.0.1:1` is never bound: the inherited socket wins.
    let mut child = spawn_activated(&[listener.as_raw_fd()], None, &[]);
    drop(listener);
    // The connection waits in the backlog until the server accepts it.
    ping(addr);
    signal(child.id(), libc::SIGTERM);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
}

#[test]
fn socket_activation_matches_roles_by_name() {
    let rpc = TcpListener::bind("127.0.0.1:0").expect("bind");
    let metrics = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (rpc_addr, metrics_addr) = (rpc.local_addr().unwrap(), metrics.local_addr().unwrap());
    // Handed over in the other order: names, not positions, decide.
    let mut child = spawn_activated(
        &[metrics.as_raw_fd(), rpc.as_raw_fd()],
        Some("metrics:rpc"),
        &["--metrics-addr", "127.0.0.1:1"],
    );
    drop((rpc, metrics));
    ping(rpc_addr);
    let body = http_get(metrics_addr, "/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("reactor_rpc_build_info"), "{body}");
    signal(child.id(), libc::SIGTERM);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
}

/// One `GET` with `Connection: close`; the whole response.
fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = crate::support::raw_connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn a_bad_activation_environment_is_exit_2() {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut child = spawn_activated(&[a.as_raw_fd(), b.as_raw_fd()], Some("rpc:bogus"), &[]);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(2), "{status}");
}
