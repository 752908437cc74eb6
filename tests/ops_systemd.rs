//! systemd simulated without systemd: a datagram socket plays the
//! notification socket, and a parent process hands listening sockets to a
//! child as fds 3, 4, … the way systemd does.
//!
//! The environment and descriptors are process-wide, so the code under test
//! runs in a child: this test binary re-executed with
//! `REACTOR_RPC_OPS_SYSTEMD_CHILD` set, which makes `systemd_child` (a no-op
//! otherwise) do one thing and print what it saw.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use reactor_rpc::ops::systemd;
use reactor_rpc::session::{Endpoint, Role};

const MODE_VAR: &str = "REACTOR_RPC_OPS_SYSTEMD_CHILD";

/// The child side. Modes: `notify` (READY then STOPPING), `activate` (report
/// the inherited listeners, then answer one connection on each with its pid).
#[test]
fn systemd_child() {
    let Ok(mode) = std::env::var(MODE_VAR) else {
        return;
    };
    match mode.as_str() {
        "notify" => {
            systemd::notify_ready().expect("READY");
            systemd::notify_status("serving 0 connections").expect("STATUS");
            systemd::notify_stopping().expect("STOPPING");
            println!("child: notified");
        }
        "activate" => {
            let mut inherited = match systemd::inherited_listeners() {
                Ok(i) => i,
                Err(e) => {
                    println!("child: error {e}");
                    return;
                }
            };
            let mut got = Vec::new();
            for role in Role::ALL {
                if let Some(listener) = inherited.take(Endpoint::plain(role)) {
                    let port = listener.local_addr().expect("addr").port();
                    println!("child: {role} {port}");
                    got.push(listener);
                }
            }
            if got.is_empty() {
                println!("child: none");
            }
            // A second call finds nothing: the descriptors are owned once.
            assert!(systemd::inherited_listeners().expect("again").is_empty());
            println!("child: listed");
            for listener in got {
                let (mut conn, _) = listener.accept().expect("accept");
                let _ = writeln!(conn, "{}", std::process::id());
            }
        }
        other => panic!("unknown mode {other}"),
    }
}

fn child_command(mode: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        crate::support::test_name(module_path!(), "systemd_child").as_str(),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(MODE_VAR, mode)
    .env_remove("NOTIFY_SOCKET")
    .env_remove("LISTEN_PID")
    .env_remove("LISTEN_FDS")
    .env_remove("LISTEN_FDNAMES");
    cmd
}

/// Lines the child printed about itself.
fn child_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_once("child: ").map(|(_, rest)| rest.to_string()))
        .collect()
}

#[test]
fn notify_sends_ready_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    // A bound on a broken run, not a synchronisation: recv returns as soon
    // as the datagram arrives.
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let out = child_command("notify")
        .env("NOTIFY_SOCKET", &sock_path)
        .output()
        .expect("run child");
    assert!(out.status.success(), "{out:?}");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        let n = sock.recv(&mut buf).expect("a notification");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(
        got,
        [
            "READY=1\n",
            "STATUS=serving 0 connections\n",
            "STOPPING=1\n"
        ]
    );
}

#[test]
fn notify_is_a_no_op_without_systemd() {
    let out = child_command("notify").output().expect("run child");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(child_lines(&out.stdout), ["notified"]);
}

/// What an `activate` child did.
struct Activated {
    status: std::process::ExitStatus,
    /// Its `child: …` lines.
    lines: Vec<String>,
    /// What each connection to `ports` read: the pid of the process that
    /// accepted it.
    answers: Vec<u32>,
    /// The child's pid.
    pid: u32,
}

/// Runs the `activate` child with `fds` as its fds 3, 4, … the way systemd
/// passes them, with `LISTEN_PID` set to the child's own pid unless
/// `listen_pid` overrides it; connects once to each of `ports` once the
/// child has listed its listeners.
fn activate(
    fds: &[RawFd],
    names: Option<&str>,
    listen_pid: Option<u32>,
    ports: &[u16],
) -> Activated {
    let cmd = child_command("activate");
    // The child's pid is known only after fork; systemd sets LISTEN_PID
    // between fork and exec. Setting an environment variable there is not
    // async-signal-safe in a threaded parent (this test harness), so a
    // shell does it: `$$` is the shell's pid, which `exec` keeps.
    let mut shell = Command::new("/bin/sh");
    shell.arg("-c");
    match listen_pid {
        None => shell.arg(r#"LISTEN_PID=$$ exec "$0" "$@""#),
        Some(pid) => shell.arg(format!(r#"LISTEN_PID={pid} exec "$0" "$@""#)),
    };
    shell.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => shell.env(k, v),
            None => shell.env_remove(k),
        };
    }
    shell.env("LISTEN_FDS", fds.len().to_string());
    if let Some(names) = names {
        shell.env("LISTEN_FDNAMES", names);
    }
    crate::support::hand_over_fds(&mut shell, fds);
    let mut child = shell
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let pid = child.id();
    // Wait until the child has listed its listeners (an event).
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let listed = loop {
        let text = String::from_utf8_lossy(&seen);
        if text.contains("child: listed") {
            break true;
        }
        if text.contains("child: error") {
            break false;
        }
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    };
    let mut answers = Vec::new();
    if listed {
        for &port in ports {
            let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            // A bound on a broken run: the answer comes as soon as the child
            // accepts.
            conn.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let mut answer = String::new();
            conn.read_to_string(&mut answer).expect("answer");
            answers.push(answer.trim().parse().expect("a pid"));
        }
    }
    let _ = stdout.read_to_end(&mut seen);
    let status = child.wait().expect("wait");
    Activated {
        status,
        lines: child_lines(&seen),
        answers,
        pid,
    }
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

#[test]
fn fd_3_without_names_is_the_rpc_listener() {
    let (l, port) = listener();
    let run = activate(&[l.as_raw_fd()], None, None, &[port]);
    assert!(run.status.success(), "{:?}", run.lines);
    assert_eq!(run.lines, [format!("rpc {port}"), "listed".to_string()]);
    // The child itself accepted on the handed-over socket.
    assert_eq!(run.answers, [run.pid]);
}

#[test]
fn named_descriptors_get_their_roles() {
    let (a, pa) = listener();
    let (b, pb) = listener();
    let (c, pc) = listener();
    let fds = [a.as_raw_fd(), b.as_raw_fd(), c.as_raw_fd()];
    let run = activate(&fds, Some("metrics:rpc:resp"), None, &[pb, pc, pa]);
    assert!(run.status.success(), "{:?}", run.lines);
    assert_eq!(
        run.lines,
        [
            format!("rpc {pb}"),
            format!("resp {pc}"),
            format!("metrics {pa}"),
            "listed".to_string()
        ]
    );
    assert_eq!(run.answers, [run.pid; 3]);
}

#[test]
fn descriptors_for_another_process_are_ignored() {
    let (l, _port) = listener();
    // LISTEN_PID names this (the parent) process, not the child.
    let run = activate(&[l.as_raw_fd()], None, Some(std::process::id()), &[]);
    assert!(run.status.success(), "{:?}", run.lines);
    assert_eq!(run.lines, ["none", "listed"]);
}

#[test]
fn a_descriptor_that_is_not_a_tcp_listener_is_an_error() {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let run = activate(&[udp.as_raw_fd()], Some("rpc"), None, &[]);
    assert_eq!(
        run.lines,
        ["error socket activation: fd 3 (rpc) is not a listening TCP socket: not a stream socket"]
    );
}

#[test]
fn unnamed_extra_descriptors_are_an_error() {
    let (a, _) = listener();
    let (b, _) = listener();
    let fds = [a.as_raw_fd(), b.as_raw_fd()];
    let run = activate(&fds, Some("rpc:reactor-rpc.socket"), None, &[]);
    assert_eq!(run.lines.len(), 1, "{:?}", run.lines);
    assert!(
        run.lines[0].starts_with("error socket activation: fd 4 is named \"reactor-rpc.socket\""),
        "{:?}",
        run.lines
    );
}
