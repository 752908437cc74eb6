//! The command line as an operator meets it: flag validation (one line, exit
//! status 2, nothing bound), flags from the environment, host names, versions,
//! a busy port (exit 2, like every refusal to start), the client's timeout
//! and its words for a wrong port, and the benchmark script's flag checks.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use crate::support::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the binary")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bad_configuration_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--max-output", "0"], "--max-output", "1..="),
        (&["--max-frame", "0"], "--max-frame", "1..="),
        (&["--max-frame", "5g"], "--max-frame", "1..="),
        (&["--max-conns", "0"], "--max-conns", "1..="),
        (&["--metrics-max-conns", "0"], "--metrics-max-conns", "1..="),
        (&["--workers", "0"], "--workers", "1..="),
        (&["--pool-size", "0"], "--pool-size", "1..="),
        (&["--max-output", "abc"], "--max-output", "not a size"),
        (&["--idle-timeout", "soon"], "--idle-timeout", ""),
        (&["--model", "fibers"], "--model", "reactor"),
        (&["--frame-timeout", "0"], "--frame-timeout", "1..="),
        (&["--maxmemory", "abc"], "--maxmemory", "not a size"),
        (
            &["--maxmemory-policy", "lfu"],
            "--maxmemory-policy",
            "allkeys-lru",
        ),
        (&["--max-output-total", "0"], "--max-output-total", "1..="),
        (&["--max-command", "1000"], "--max-command", "1024..="),
        (&["--max-input-total", "0"], "--max-input-total", "1..="),
        (
            &["--max-input-total", "1m", "--max-command", "2m"],
            "--max-input-total",
            "below --max-command",
        ),
        (
            &[
                "--max-input-total",
                "2m",
                "--max-command",
                "1m",
                "--max-frame",
                "2m",
            ],
            "--max-input-total",
            "below --max-frame",
        ),
    ];
    for (flags, flag, range) in cases {
        // Port 0 would bind if validation were skipped: then the run would hang
        // until the test harness timed out, not fail quietly.
        let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let out = run(&args, &[]);
        let lines = stderr_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{flags:?}: one line, got {lines:?}");
        assert!(lines[0].contains(flag), "{flags:?}: {lines:?}");
        assert!(lines[0].contains(range), "{flags:?}: {lines:?}");
    }
}

#[test]
fn every_serve_flag_reads_the_environment_and_the_flag_wins() {
    // A bad value from the environment is refused like a bad flag...
    let out = run(&["serve"], &[("REACTOR_RPC_MAX_CONNS", "0")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_lines(&out)[0].contains("--max-conns"));
    // ...and a flag given on the command line wins over the environment.
    let out = run(
        &["serve", "--max-conns", "0"],
        &[("REACTOR_RPC_MAX_CONNS", "10")],
    );
    assert_eq!(out.status.code(), Some(2));
    // The server really uses what the environment says.
    let mut server = ServerProcess::spawn_with_shell_prefix(
        "REACTOR_RPC_MAX_CONNS=3 REACTOR_RPC_MODEL=threaded REACTOR_RPC_METRICS_MAX_CONNS=5",
        &[],
    );
    let stats = stats(&mut client_for(server.addr));
    assert_eq!(stats["model"], "threaded");
    assert_eq!(stats["limits"]["max_conns"], 3);
    assert_eq!(stats["limits"]["metrics_max_conns"], 5);
    server.terminate();
    // Every serve flag documents its variable.
    let help = String::from_utf8_lossy(&run(&["serve", "--help"], &[]).stdout).to_string();
    for flag in help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
    {
        let name = flag.split([' ', '<']).next().unwrap_or_default();
        if name == "help" || name == "version" {
            continue;
        }
        let var = format!("REACTOR_RPC_{}", name.to_uppercase().replace('-', "_"));
        assert!(
            help.contains(&var),
            "--{name} has no {var} in --help:\n{help}"
        );
    }
}

/// The flags `serve --help` lists, in its order (`--help`, `--version` aside).
fn serve_flags() -> Vec<String> {
    let help = String::from_utf8_lossy(&run(&["serve", "--help"], &[]).stdout).to_string();
    help.lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|f| f.split([' ', '<']).next().unwrap_or_default().to_string())
        .filter(|name| name != "help" && name != "version")
        .collect()
}

/// Every `--flag` named in `text`, in order, each once.
fn flags_in(text: &str) -> Vec<String> {
    let mut flags: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("--") {
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let starts_a_word = name.starts_with(|c: char| c.is_ascii_lowercase());
        if starts_a_word && !flags.contains(&name) {
            flags.push(name);
        }
    }
    flags
}

#[test]
fn the_readme_lists_exactly_the_flags_serve_has() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("reactor-rpc serve [")
        .expect("README's serve synopsis");
    let end = start
        + readme[start..]
            .find("\nreactor-rpc hash-password")
            .expect("its end");
    assert_eq!(
        flags_in(&readme[start..end]),
        serve_flags(),
        "README.md's `reactor-rpc serve` synopsis and `serve --help` differ"
    );
    // Every flag PROTOCOL.md's limits table names is one serve has.
    let protocol = include_str!("../PROTOCOL.md");
    let start = protocol.find("## Limits").expect("PROTOCOL.md's limits");
    let end = start + protocol[start..].find("\n## ").expect("the next section");
    let known = serve_flags();
    for flag in flags_in(&protocol[start..end]) {
        assert!(
            known.contains(&flag),
            "PROTOCOL.md's limits name --{flag}, which serve has not"
        );
    }
}

#[test]
fn serve_takes_host_names_and_has_a_version() {
    let out = run(&["serve", "--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let mut server = ServerProcess::spawn(&["--addr", "localhost:0"]);
    let port = server.addr.port().to_string();
    let out = run(
        &[
            "call",
            "--addr",
            &format!("localhost:{port}"),
            "ping",
            "\"hi\"",
        ],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"hi\"");
    server.terminate();
}

/// A port it cannot bind is a refusal to start like any other: one line,
/// exit status 2 (README, "Serving").
#[test]
fn a_busy_port_is_one_line_and_exit_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["serve", "--addr", &addr], &[]);
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("cannot listen on"), "{lines:?}");
}

/// `call --addr` given the RESP or the metrics port fails at once, well
/// within its timeout, and says which port it reached: the RESP port refuses
/// the frame's NUL bytes at once, the metrics port answers 400, and the
/// client reads either reply as what it is rather than as a length prefix.
#[test]
fn call_at_the_wrong_port_fails_at_once_naming_it() {
    let mut server = ServerProcess::spawn(&[
        "--resp-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let resp = server.listener_addr("resp").to_string();
    let metrics = server.listener_addr("metrics").to_string();
    let cases = [
        (&resp, "\"hi\"", "the server answered in the Redis protocol (RESP): --addr is a RESP port, not the JSON port", "NUL byte"),
        // A body of 42 bytes: its length prefix starts with `*`, as a RESP count would.
        (&resp, "\"0123456789abcdefg\"", "--addr is a RESP port, not the JSON port", "invalid multibulk length"),
        (&metrics, "\"hi\"", "the server answered in HTTP: --addr is an HTTP port (the metrics port?), not the JSON port", "400 Bad Request"),
    ];
    for (addr, params, cause, said) in cases {
        let started = std::time::Instant::now();
        let out = run(
            &["call", "--addr", addr, "--timeout", "30", "ping", params],
            &[],
        );
        let took = started.elapsed();
        let lines = stderr_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{lines:?}");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(cause), "{lines:?}");
        assert!(lines[0].contains(said), "{lines:?}");
        assert!(
            took < std::time::Duration::from_secs(10),
            "took {took:?}: waited for the timeout"
        );
    }
    // The right port still answers.
    let out = run(
        &["call", "--addr", &server.addr.to_string(), "ping", "\"hi\""],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"hi\"");
    server.terminate();
}

/// `scripts/tokio_reference.py --skip` names steps; a misspelt one would
/// run the step meant to be skipped, so it is refused before anything runs.
#[test]
fn tokio_reference_refuses_an_unknown_step() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tokio_reference.py");
    let out = Command::new("python3")
        .args([script, "--skip", "cpu,latncy", "--bin", "/nonexistent"])
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{lines:?}");
    assert_eq!(
        lines,
        ["tokio_reference.py: --skip: unknown step latncy; the steps are cpu, latency, idle"]
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn call_times_out_with_exit_2() {
    // Accepted by the kernel's backlog, never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = run(&["call", "--addr", &addr, "--timeout", "0.3", "ping"], &[]);
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("--timeout"), "{lines:?}");
}

#[test]
fn bench_without_a_target_says_what_to_give() {
    let out = run(&["bench"], &[]);
    assert_ne!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("--addr") && text.contains("--spawn"),
        "{text}"
    );
}

/// The limits given on the command line are the ones `stats` reports, with
/// the total output bound only where the model enforces it.
#[test]
fn stats_reports_the_new_limits() {
    let mut reactor = ServerProcess::spawn(&[
        "--model",
        "reactor",
        "--frame-timeout",
        "7",
        "--max-conns-per-ip",
        "5",
        "--max-output-total",
        "64m",
    ]);
    let limits = stats(&mut client_for(reactor.addr))["limits"].clone();
    assert_eq!(limits["frame_timeout_s"], 7, "{limits}");
    assert_eq!(limits["max_conns_per_ip"], 5, "{limits}");
    assert_eq!(limits["max_output_total"], 64 << 20, "{limits}");
    // The input bounds' defaults: 64 MiB a command, a quarter of the 1 GiB
    // --maxmemory in total.
    assert_eq!(limits["max_command"], 64 << 20, "{limits}");
    assert_eq!(limits["max_input_total"], 256 << 20, "{limits}");
    reactor.terminate();

    // A total below the command bound's default is raised to it; given, both are kept.
    let mut small = ServerProcess::spawn(&["--maxmemory", "64m"]);
    let limits = stats(&mut client_for(small.addr))["limits"].clone();
    assert_eq!(limits["max_input_total"], 64 << 20, "{limits}");
    small.terminate();
    let mut given = ServerProcess::spawn(&["--max-command", "1m", "--max-input-total", "3m"]);
    let limits = stats(&mut client_for(given.addr))["limits"].clone();
    assert_eq!(limits["max_command"], 1 << 20, "{limits}");
    assert_eq!(limits["max_input_total"], 3 << 20, "{limits}");
    given.terminate();

    let mut tokio = ServerProcess::spawn(&["--model", "tokio", "--max-output-total", "1m"]);
    let limits = stats(&mut client_for(tokio.addr))["limits"].clone();
    assert_eq!(limits["max_output_total"], 1 << 20, "{limits}");
    tokio.terminate();

    let mut threaded = ServerProcess::spawn(&["--model", "threaded", "--max-conns-per-ip", "2"]);
    let limits = stats(&mut client_for(threaded.addr))["limits"].clone();
    assert_eq!(limits["max_conns_per_ip"], 2, "{limits}");
    assert_eq!(limits["frame_timeout_s"], 30, "the default: {limits}");
    assert!(limits.get("max_output_total").is_none(), "{limits}");
    threaded.terminate();
}
