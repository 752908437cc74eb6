//! The benchmark harness itself, at small scale: a few connections for about
//! a second, against a spawned server or a tiny in-test server that can
//! misbehave on purpose. Checks that counts add up, that every kind of wrong
//! answer is caught and fails the command, that `--json` has every figure and
//! that a sweep writes its CSV, JSON and SVG. Nothing here asserts on speed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use reactor_rpc::protocol::{decode, Decoded, HEADER_LEN};
use reactor_rpc::service::Service;
use reactor_rpc::session::json::process;
use reactor_rpc::session::Options;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_reactor-rpc");

/// How the in-test server misbehaves.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// Swaps the responses of every second pair of requests.
    Reorder,
    /// Answers `n` requests on each connection, then closes it.
    CloseAfter(usize),
    /// Answers with `"out":"pang"` instead of `"pong"`.
    WrongOut,
}

/// A thread-per-connection server running the real request path
/// (`json::process`), with an optional fault. Returns its address.
fn fake_server(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = Arc::new(Service::new());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let service = service.clone();
            std::thread::spawn(move || serve(stream, &service, fault));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, service: &Service, fault: Fault) {
    stream.set_nodelay(true).unwrap();
    let opt = Options {
        max_frame: 1 << 20,
        offload: false,
        max_output: usize::MAX,
        max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
    };
    let (mut input, mut chunk, mut answered) = (Vec::new(), vec![0; 65536], 0);
    let mut held: Option<Vec<u8>> = None;
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&chunk[..n]);
        // One response at a time, so faults can act per response.
        let mut out = Vec::new();
        let mut consumed = 0;
        while let Decoded::Frame { body_len } = decode(&input[consumed..], u32::MAX) {
            let frame = &input[consumed..consumed + HEADER_LEN + body_len];
            consumed += frame.len();
            let mut resp = Vec::new();
            process(service, &"fake", frame, &mut resp, opt);
            answered += 1;
            match fault {
                Fault::CloseAfter(k) if answered > k => {
                    let _ = stream.write_all(&out);
                    return;
                }
                Fault::WrongOut => {
                    let s = String::from_utf8(resp[HEADER_LEN..].to_vec()).unwrap();
                    let s = s.replace("\"pong\"", "\"pang\"");
                    resp = (s.len() as u32).to_le_bytes().to_vec();
                    resp.extend_from_slice(s.as_bytes());
                }
                Fault::Reorder if answered % 4 == 1 => {
                    held = Some(resp);
                    continue;
                }
                Fault::Reorder if answered % 4 == 2 => {
                    out.extend_from_slice(&resp);
                    resp = held.take().unwrap();
                }
                _ => {}
            }
            out.extend_from_slice(&resp);
        }
        input.drain(..consumed);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-harness-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `reactor-rpc bench ARGS --json FILE`; returns the output and the parsed JSON.
fn bench(name: &str, args: &[&str]) -> (Output, Value) {
    let json = scratch(name).join("out.json");
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, serde_json::from_str(&text).unwrap())
}

fn n(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no integer at {path} in {v:#}"))
}

/// The run succeeded, and its counts add up.
fn assert_success(out: &Output, v: &Value) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_counts_add_up(v);
}

/// `sent == ok + every failure` in both phases.
fn assert_counts_add_up(v: &Value) {
    for phase in ["/measured", "/warmup"] {
        let c = &v[&phase[1..]];
        let failures: u64 = [
            "error_responses",
            "wrong_out",
            "wrong_result",
            "out_of_order",
            "malformed",
            "lost_on_close",
            "unanswered",
        ]
        .iter()
        .map(|k| n(c, &format!("/{k}")))
        .sum();
        assert_eq!(n(c, "/sent"), n(c, "/ok") + failures, "{phase} in {v:#}");
    }
}

#[test]
fn counts_add_up_and_json_has_every_figure() {
    let addr = fake_server(Fault::None);
    let (out, v) = bench(
        "ok",
        &[
            "--addr",
            &addr,
            "--conns",
            "4",
            "--pipeline",
            "4",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    assert_success(&out, &v);
    assert!(n(&v, "/measured/ok") > 0);
    assert!(n(&v, "/warmup/ok") > 0);
    assert_eq!(n(&v, "/failed"), 0);
    assert_eq!(n(&v, "/connections/connected"), 4);
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_us"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(v["throughput_rps"].as_f64().unwrap() > 0.0);
    assert!(v["generator"]["cpu_us_per_request"].as_f64().is_some());
    assert_eq!(v["config"]["loop"], "closed");
    assert!(v["server"].is_null(), "no pid was given");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("throughput") && stdout.contains("p99.9"),
        "{stdout}"
    );
}

#[test]
fn a_fixed_number_of_requests_is_sent_exactly() {
    let addr = fake_server(Fault::None);
    for workload in ["ping", "fib", "cache"] {
        let (out, v) = bench(
            workload,
            &[
                "--addr",
                &addr,
                "--conns",
                "3",
                "--pipeline",
                "2",
                "--requests",
                "1000",
                "--warmup",
                "0",
                "--threads",
                "2",
                "--workload",
                workload,
                "--keys",
                "20",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(n(&v, "/measured/sent"), 1000, "{workload}");
        assert_eq!(n(&v, "/measured/ok"), 1000, "{workload}");
        assert_eq!(n(&v, "/warmup/sent"), 0, "{workload}");
        if workload == "cache" {
            let hits = n(&v, "/cache/get_hits");
            let misses = n(&v, "/cache/get_misses");
            assert!(hits > 0 && hits + misses < 1000, "{v:#}");
        }
    }
}

#[test]
fn the_server_pid_gives_server_figures() {
    let addr = fake_server(Fault::None);
    // The in-test server is this test process.
    let pid = std::process::id().to_string();
    let (out, v) = bench(
        "pid",
        &[
            "--addr",
            &addr,
            "--server-pid",
            &pid,
            "--requests",
            "2000",
            "--warmup",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(n(&v, "/server/pid").to_string(), pid);
    assert!(v["server"]["cpu_us_per_request"].as_f64().is_some());
    assert!(n(&v, "/server/peak_rss_kb") >= n(&v, "/server/rss_kb"));
}

#[test]
fn error_responses_fail_the_run() {
    let addr = fake_server(Fault::None);
    // A method the server does not have: every answer is `unknown_method`.
    let (out, v) = bench(
        "errors",
        &[
            "--addr",
            &addr,
            "--conns",
            "2",
            "--requests",
            "300",
            "--warmup",
            "0",
            "--method",
            "nosuch",
        ],
    );
    assert!(!out.status.success());
    assert_counts_add_up(&v);
    assert_eq!(n(&v, "/measured/error_responses"), 300);
    assert_eq!(n(&v, "/failed"), 300);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unknown_method"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("300 requests failed"));
}

#[test]
fn out_of_order_and_wrong_out_are_caught() {
    let addr = fake_server(Fault::Reorder);
    let (out, v) = bench(
        "reorder",
        &[
            "--addr",
            &addr,
            "--conns",
            "2",
            "--pipeline",
            "4",
            "--requests",
            "400",
            "--warmup",
            "0",
        ],
    );
    assert!(!out.status.success());
    assert_counts_add_up(&v);
    assert!(n(&v, "/measured/out_of_order") > 0, "{v:#}");
    assert!(n(&v, "/measured/ok") > 0, "{v:#}");

    let addr = fake_server(Fault::WrongOut);
    let (out, v) = bench(
        "wrongout",
        &[
            "--addr",
            &addr,
            "--conns",
            "2",
            "--requests",
            "100",
            "--warmup",
            "0",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(n(&v, "/measured/wrong_out"), 100);
}

#[test]
fn closed_connections_are_counted() {
    let addr = fake_server(Fault::CloseAfter(10));
    let (out, v) = bench(
        "close",
        &[
            "--addr",
            &addr,
            "--conns",
            "3",
            "--pipeline",
            "2",
            "--duration",
            "1",
            "--warmup",
            "0",
        ],
    );
    assert!(!out.status.success());
    assert_counts_add_up(&v);
    assert_eq!(n(&v, "/connections/closed_by_server"), 3);
    assert_eq!(n(&v, "/measured/ok"), 30);
    assert_eq!(n(&v, "/measured/lost_on_close"), 6, "{v:#}");
}

#[test]
fn a_silent_server_times_out_instead_of_hanging() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(2).collect();
        std::thread::park();
        drop(held);
    });
    let (out, v) = bench(
        "silent",
        &[
            "--addr",
            &addr,
            "--conns",
            "2",
            "--requests",
            "10",
            "--warmup",
            "0",
            "--timeout",
            "0.5",
        ],
    );
    assert!(!out.status.success());
    assert_counts_add_up(&v);
    assert_eq!(n(&v, "/measured/unanswered"), 2);
    assert_eq!(n(&v, "/connections/unserved"), 2);
}

#[test]
fn open_loop_keeps_its_schedule() {
    let addr = fake_server(Fault::None);
    let (out, v) = bench(
        "open",
        &[
            "--addr",
            &addr,
            "--conns",
            "4",
            "--rate",
            "2000",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    assert_success(&out, &v);
    assert_eq!(v["config"]["loop"], "open");
    // 2000 req/s for 1 s, give or take one request per connection at the edges.
    let sent = n(&v, "/measured/sent");
    assert!((1990..=2010).contains(&sent), "{sent}");
    assert_eq!(n(&v, "/measured/ok"), sent);
}

#[test]
fn spawned_server_is_measured_and_stopped() {
    let (out, v) = bench(
        "spawn",
        &[
            "--spawn",
            "reactor",
            "--conns",
            "4",
            "--pipeline",
            "2",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    assert_success(&out, &v);
    assert!(n(&v, "/measured/ok") > 0);
    assert_eq!(v["target"]["spawned_model"], "reactor");
    assert!(v["server"]["cpu_us_per_request"].as_f64().unwrap() > 0.0);
    assert!(n(&v, "/server/peak_rss_kb") > 0);
    let exit = v["server"]["exit"].as_str().unwrap();
    assert!(
        exit.contains("exit status: 0"),
        "server stopped by SIGTERM: {exit}"
    );
    // The spawned server is gone.
    let pid = n(&v, "/server/pid");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_tiny_sweep_writes_csv_json_and_svg() {
    let dir = scratch("sweep");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--sweep",
            "--models",
            "reactor",
            "--conns-list",
            "1,4",
        ])
        .args(["--duration", "0.5", "--warmup", "0.1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("sweep [").count(),
        2,
        "a line per cell: {stderr}"
    );
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("model,conns,"));
    assert!(lines[1].starts_with("reactor,1,") && lines[2].starts_with("reactor,4,"));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(json[1]["report"]["throughput_rps"].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for text in [
        "Throughput",
        "p99 latency",
        "Server peak RSS",
        "connections (log scale)",
        "reactor",
        "<polyline",
    ] {
        assert!(svg.contains(text), "{text} missing from the SVG");
    }
}
