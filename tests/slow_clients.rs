//! Slow and crowding clients against the spawned binary: a client dribbling
//! a frame is closed by `--frame-timeout`, however often its bytes come; a
//! connect/reset storm logs a bounded number of lines; `--max-conns-per-ip`
//! and `--max-conns` refuse with `overloaded` and a lingering close. Each test
//! runs once per model (`model_tests!`): every model enforces these limits.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

model_tests! {
    every_model: [
        dribbling_a_frame_ends_with_frame_timeout,
        frames_each_complete_in_time_keep_a_connection_past_the_frame_timeout,
        a_connect_reset_storm_logs_a_bounded_number_of_lines,
        a_third_connection_from_one_address_is_refused,
        a_refused_client_writing_in_two_sends_reads_overloaded,
        a_refusal_speaks_the_protocol_of_its_listener,
    ],
    not_pool: [],
}

/// A frame header declaring 100 bytes, then one byte every 300 ms: each byte
/// would reset the idle timeout (2 s), but the frame must be complete within
/// `--frame-timeout 1`, so the connection is closed with "frame timeout"
/// (the full-scale attack: a byte every 1.5 s against the 30 s default).
fn dribbling_a_frame_ends_with_frame_timeout(model: Model) {
    let model = model.name();
    let mut server = ServerProcess::spawn(&[
        "--model",
        model,
        "--frame-timeout",
        "1",
        "--idle-timeout",
        "2",
    ]);
    let mut s = server.raw();
    let start = Instant::now();
    s.write_all(&100u32.to_le_bytes()).unwrap();
    let closed = loop {
        thread::sleep(Duration::from_millis(300));
        if s.write_all(b"{").is_err() {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("{model}: still open after 10 s of dribbling");
        }
    };
    let line = server.wait_for_line("bye (frame timeout)", |l| l.contains("bye (frame timeout)"));
    assert!(
        closed >= Duration::from_millis(900),
        "{model}: closed after {closed:?}: {line}"
    );
    // A ping on a fresh connection is still answered.
    assert_usable(&mut server.raw());
    server.terminate();
}

/// The frame deadline is per frame: five pings, each sent in two halves
/// 300 ms apart, take 1.5 s on one connection with `--frame-timeout 1`, and
/// every one is answered (the clock starts anew with each frame's first byte).
fn frames_each_complete_in_time_keep_a_connection_past_the_frame_timeout(model: Model) {
    let mut server = ServerProcess::spawn(&["--model", model.name(), "--frame-timeout", "1"]);
    let mut s = server.raw();
    let start = Instant::now();
    for i in 0..5 {
        let ping = request("ping", serde_json::json!(i));
        let (a, b) = ping.split_at(ping.len() / 2);
        s.write_all(a).unwrap();
        // Pacing, not synchronisation: the frame's halves arrive 300 ms apart.
        thread::sleep(Duration::from_millis(300));
        s.write_all(b).unwrap();
        assert_result(&read_response(&mut s), "pong", &serde_json::json!(i));
    }
    assert!(start.elapsed() >= Duration::from_millis(1500));
    drop(s);
    server.terminate();
    assert!(
        !server.log.iter().any(|l| l.contains("frame timeout")),
        "{model}: {:?}",
        server.log
    );
}

/// 3 000 clients connect and reset at once (20 000 at full scale): the
/// `comes`/`bye` lines are held to 100 a second plus a summary line per
/// second, where before every connection logged two (6 000 lines here).
fn a_connect_reset_storm_logs_a_bounded_number_of_lines(model: Model) {
    let model = model.name();
    let mut server = ServerProcess::spawn(&["--model", model]);
    let start = Instant::now();
    for _ in 0..30 {
        let batch: Vec<_> = (0..100).map(|_| server.raw()).collect();
        for s in batch {
            reset(s);
        }
    }
    let mut client = server.client();
    wait_until("the storm's connections to close", TIMEOUT, || {
        stats(&mut client)["connections_total"].as_u64() >= Some(3_001)
            && stats(&mut client)["connections"].as_u64() == Some(1)
    });
    let secs = start.elapsed().as_secs() + 2;
    // The summary of the last second arrives with the next housekeeping tick.
    server.wait_for_line("the summary line", |l| l.contains("held back"));
    drop(client);
    server.terminate();
    let lines = server.log.len() as u64;
    let bound = secs * (100 + 1) + 10;
    assert!(
        lines <= bound,
        "{model}: {lines} log lines for 3 000 connections in {secs} s (bound {bound})"
    );
    eprintln!("{model}: {lines} log lines for 3 000 connect-then-reset");
}

/// `--max-conns-per-ip 2`: a third connection from the same address gets
/// `overloaded` and a close; once one of the two leaves, a new one is served.
fn a_third_connection_from_one_address_is_refused(model: Model) {
    let (mut server, first, mut second) = at_a_limit_of_two(model, "--max-conns-per-ip");
    let mut third = server.raw();
    let response = read_response(&mut third);
    assert_error(&response, "overloaded");
    expect_closed(&mut third);
    drop(first);
    let mut client = server.client();
    wait_until("the first connection to be gone", TIMEOUT, || match client
        .call("stats", &serde_json::Value::Null)
    {
        Ok(_) => true,
        Err(_) => {
            client = server.client();
            false
        }
    });
    assert_usable(&mut second);
    drop((second, client));
    server.terminate();
}

/// `--max-conns 2`: a refused client that writes its request in two sends,
/// the second after it was refused, still reads the `overloaded` frame
/// rather than a reset: the refusal is a lingering close.
fn a_refused_client_writing_in_two_sends_reads_overloaded(model: Model) {
    let (mut server, first, second) = at_a_limit_of_two(model, "--max-conns");
    let mut refused = server.raw();
    let body = serde_json::to_vec(&serde_json::json!({"in": "ping", "params": "x"})).unwrap();
    refused
        .write_all(&u32::try_from(body.len()).unwrap().to_le_bytes())
        .unwrap();
    // Wait until the refusal has arrived (written, and in the tokio models
    // by a task of its own after the log line), then send the body into the
    // refused connection.
    server.wait_for_line("the refusal", |l| l.contains("refused"));
    refused
        .peek(&mut [0u8; 1])
        .expect("the overloaded frame arrives");
    let (a, b) = body.split_at(body.len() / 2);
    refused.write_all(a).expect("the first half of the body");
    // Not a synchronisation: time for a reset to come back, were the socket
    // closed with the first half unread, so that the second send would fail.
    thread::sleep(Duration::from_millis(100));
    refused.write_all(b).expect("the second half: no EPIPE");
    let response = read_response(&mut refused);
    assert_error(&response, "overloaded");
    drop((first, second));
    server.terminate();
}

/// `--max-conns 1` and `--metrics-max-conns 1` with the RESP and metrics
/// listeners on: a refused Redis client reads a Redis error (as Redis words
/// it), a refused scraper an HTTP 503, each followed by a close; neither is
/// sent the JSON frame. The scraper is refused by its own limit, not by the
/// client held on the RPC port.
fn a_refusal_speaks_the_protocol_of_its_listener(model: Model) {
    let mut server = ServerProcess::spawn(&[
        "--model",
        model.name(),
        "--max-conns",
        "1",
        "--metrics-max-conns",
        "1",
        "--resp-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let mut listener = |role: &str| -> std::net::SocketAddr {
        let marker = format!("{role} listening on ");
        let line = server.wait_for_line(&marker, |l| l.contains(&marker));
        line.split(&marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    };
    let resp = listener("resp");
    let metrics = listener("metrics");
    let mut held = server.raw();
    assert_usable(&mut held);
    let read_all = |addr| {
        let mut s = raw_connect(addr);
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut got).expect("a clean close");
        String::from_utf8_lossy(&got).into_owned()
    };
    assert_eq!(read_all(resp), "-ERR max number of clients reached\r\n");
    // The client on the RPC port takes no scraper's slot.
    let mut scraper = raw_connect(metrics);
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("scrape");
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut scraper, &mut head).expect("a reply");
    assert_eq!(&head, b"HTTP/1.1 200");
    let http = read_all(metrics);
    assert!(
        http.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{http}"
    );
    assert!(http.contains("Connection: close\r\n"), "{http}");
    assert!(http.ends_with("at metrics-max-conns 1\n"), "{http}");
    drop((held, scraper));
    server.terminate();
}

/// A server of `model` with `limit` (a connection-count flag) at 2, and the
/// two connections it allows, each answered once: the next one is over.
fn at_a_limit_of_two(model: Model, limit: &str) -> (ServerProcess, TcpStream, TcpStream) {
    let server = ServerProcess::spawn(&["--model", model.name(), limit, "2"]);
    let mut first = server.raw();
    let mut second = server.raw();
    assert_usable(&mut first);
    assert_usable(&mut second);
    (server, first, second)
}
