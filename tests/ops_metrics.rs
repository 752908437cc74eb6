//! The metrics port end to end: a scrape over real TCP served by the metrics
//! session (`session::http::process`) and the ops crate's exposition, and the
//! cost of counting a request.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reactor_rpc::metrics::{CodeId, Metrics};
use reactor_rpc::ops::exposition::render;
use reactor_rpc::ops::procfs::ProcessStats;
use reactor_rpc::output::Output;
use reactor_rpc::service::stats::Readings;
use reactor_rpc::session::{http, Exposition, Options, Stop};

/// The page of `metrics`, rendered at every scrape.
struct Page(Arc<Metrics>);

impl Exposition for Page {
    fn page(&self) -> Bytes {
        let readings = Readings {
            model: "reactor",
            keys: 7,
            ..Readings::default()
        };
        let mut body = String::new();
        render(&self.0, &readings, &ProcessStats::read(), &mut body);
        Bytes::from(body)
    }
}

fn builtin() -> Metrics {
    Metrics::new(&[
        "ping", "fib", "set", "get", "del", "exists", "incr", "expire", "ttl", "stats",
    ])
}

/// A minimal blocking metrics server: serves `conns` connections one after
/// the other, then returns.
fn serve(listener: TcpListener, metrics: Arc<Metrics>, conns: usize) {
    let page = Page(metrics);
    let auth = reactor_rpc::service::auth::Auth::default();
    let guard = http::Guard {
        token: None,
        auth: &auth,
    };
    let session = http::MetricsSession::default();
    for _ in 0..conns {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut input = Vec::new();
        let mut buf = [0u8; 1024];
        'conn: loop {
            // Answer every whole request buffered, one at a time, then read more.
            loop {
                let mut out = Output::new();
                let p = http::process(
                    &page,
                    guard,
                    &session,
                    &input,
                    &mut out,
                    Options::new(1 << 20),
                );
                input.drain(..p.consumed);
                for chunk in out.chunks() {
                    if conn.write_all(chunk).is_err() {
                        break 'conn;
                    }
                }
                match p.stop {
                    Stop::OutputFull => {}
                    Stop::NeedMore { .. } => break,
                    Stop::Close(_) | Stop::Offload { .. } => break 'conn,
                }
            }
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => input.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// Reads one response: (status, headers, body).
fn read_response(
    conn: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> (u16, Vec<(String, String)>, String) {
    let mut buf = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = resp.parse(pending) {
            let hs: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len: usize = hs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .expect("content-length");
            if pending.len() >= head + len {
                let code = resp.code.expect("status");
                let body = String::from_utf8(pending[head..head + len].to_vec()).expect("utf8");
                pending.drain(..head + len);
                return (code, hs, body);
            }
        }
        let n = conn.read(&mut buf).expect("read");
        assert!(n > 0, "connection closed mid-response");
        pending.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn scrapes_over_tcp_with_keep_alive_and_close() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics = Arc::new(builtin());
    let ping = metrics.method_id("ping");
    metrics.observe(ping, CodeId::OK, Duration::from_micros(12));
    let server = {
        let metrics = Arc::clone(&metrics);
        std::thread::spawn(move || serve(listener, metrics, 2))
    };

    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut pending = Vec::new();
    // A scrape dribbled one byte per write.
    for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" {
        conn.write_all(&[*b]).expect("write");
    }
    let (code, headers, body) = read_response(&mut conn, &mut pending);
    assert_eq!(code, 200);
    assert!(headers.contains(&(
        "Content-Type".to_string(),
        "text/plain; version=0.0.4; charset=utf-8".to_string()
    )));
    assert!(body
        .contains("reactor_rpc_requests_total{protocol=\"json\",method=\"ping\",code=\"ok\"} 1\n"));
    assert!(body.contains(
        "reactor_rpc_request_duration_seconds_bucket{protocol=\"json\",method=\"ping\",le=\"0.000025\"} 1\n"
    ));
    assert!(body.contains("reactor_rpc_keys 7\n"));
    assert!(body.contains("process_open_fds "));

    // Same connection: a 404, then a scrape that asks to close.
    conn.write_all(b"GET / HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    let (code, _, _) = read_response(&mut conn, &mut pending);
    assert_eq!(code, 404);
    let (code, headers, _) = read_response(&mut conn, &mut pending);
    assert_eq!(code, 200);
    assert!(headers.contains(&("Connection".to_string(), "close".to_string())));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("eof");
    assert!(rest.is_empty() && pending.is_empty());

    // Garbage gets a 400 and a close.
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    conn.write_all(b"\x16\x03\x01 hello\r\n\r\n")
        .expect("write");
    let mut pending = Vec::new();
    let (code, headers, _) = read_response(&mut conn, &mut pending);
    assert_eq!(code, 400);
    assert!(headers.contains(&("Connection".to_string(), "close".to_string())));
    conn.read_to_end(&mut rest).expect("eof");
    server.join().expect("server thread");
}

/// What counting a request costs. Run with
/// `cargo test --release --test tests ops_metrics:: -- --ignored --nocapture cost`.
#[test]
#[ignore = "timing; run in release"]
fn cost_of_counting_a_request() {
    const N: u32 = 20_000_000;
    let m = builtin();
    let ids: Vec<_> = ["ping", "get", "set", "fib"]
        .iter()
        .map(|n| m.method_id(n))
        .collect();
    let durations = [3u64, 8, 14, 30, 70, 400].map(Duration::from_micros);
    // The loop alone, to subtract.
    let mut base = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..N {
            let i = i as usize;
            std::hint::black_box((ids[i & 3], durations[i % durations.len()]));
        }
        base.push(t.elapsed().as_secs_f64() * 1e9 / f64::from(N));
    }
    base.sort_by(f64::total_cmp);
    println!("empty loop: {:.1} ns per iteration (median of 5)", base[2]);
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..N {
            let i = i as usize;
            m.observe(
                ids[i & 3],
                CodeId::OK,
                std::hint::black_box(durations[i % durations.len()]),
            );
        }
        runs.push(t.elapsed().as_secs_f64() * 1e9 / f64::from(N));
    }
    runs.sort_by(f64::total_cmp);
    println!("observe: {:.1} ns per request (median of 5)", runs[2]);

    let mut clock = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut last = t;
        for _ in 0..N / 4 {
            last = std::hint::black_box(Instant::now());
        }
        clock.push((last - t).as_secs_f64() * 1e9 / f64::from(N / 4));
    }
    clock.sort_by(f64::total_cmp);
    println!("Instant::now: {:.1} ns per call (median of 5)", clock[2]);

    let method_id = {
        let t = Instant::now();
        for i in 0..N {
            std::hint::black_box(m.method_id(std::hint::black_box(if i & 1 == 0 {
                "ping"
            } else {
                "stats"
            })));
        }
        t.elapsed().as_secs_f64() * 1e9 / f64::from(N)
    };
    println!("method_id (ping/stats): {method_id:.1} ns per lookup");
}
