//! Hostile and broken clients, and the limits that protect the
//! server from them, against every server model.
//!
//! Every bad input gets its answer (or a clean close) and the server stays
//! healthy for everyone else; every limit (`max_frame`, `max_conns`,
//! `idle_timeout`, `max_output`) is set low in the config and provoked.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// Writes bad `body` frames one at a time, asserting each gets `code` and the
/// connection stays usable.
#[track_caller]
fn assert_each(s: &mut TcpStream, bodies: &[&[u8]], code: &str) {
    for body in bodies {
        let response = roundtrip(s, &frame(body));
        assert_eq!(
            response["result"]["code"],
            code,
            "{:?} -> {response}",
            String::from_utf8_lossy(body)
        );
        assert_error(&response, code);
        assert_usable(s);
    }
}

/// A frame body `{"in":"ping","params":"xxx…","id":N}` of about `size` bytes.
fn big_ping(size: usize, id: u64) -> Vec<u8> {
    request_with_id("ping", Value::String("x".repeat(size)), json!(id))
}

/// What [`flood_until_blocked`] managed to write.
struct Flood {
    /// Bytes the kernel accepted before writes stopped making progress.
    written: usize,
    /// Whole frames among them.
    frames: usize,
}

/// Writes `frame` over and over on a non-blocking socket, never reading,
/// until no byte has been accepted for `stall` (the server stopped reading)
/// or `cap` bytes went through (it did not).
fn flood_until_blocked(s: &mut TcpStream, frame: &[u8], stall: Duration, cap: usize) -> Flood {
    s.set_nonblocking(true).unwrap();
    let (mut written, mut last_progress) = (0usize, Instant::now());
    while written < cap {
        let at = written % frame.len();
        match s.write(&frame[at..]) {
            Ok(n) => {
                written += n;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if last_progress.elapsed() >= stall {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("flood write failed after {written} bytes: {e}"),
        }
    }
    s.set_nonblocking(false).unwrap();
    Flood {
        written,
        frames: written / frame.len(),
    }
}

model_tests! {
    every_model: [
        zero_length_prefix_is_bad_json_and_the_connection_stays_usable,
        length_prefix_of_0xffffffff_is_refused_and_closed,
        one_byte_over_a_small_max_frame,
        an_oversized_frame_sent_whole_gets_its_answer_and_a_clean_close,
        invalid_utf8_is_bad_json,
        json_nested_100000_deep_is_bad_json,
        huge_numbers,
        a_1_mib_key_exceeds_the_default_max_frame,
        a_1_mib_key_works_under_a_larger_max_frame,
        duplicate_fields,
        valid_json_followed_by_trailing_garbage_is_bad_json,
        method_names_with_nul_bytes,
        half_close_after_requests_still_gets_every_response,
        reset_while_responses_are_queued,
        a_burst_of_5000_connections_opened_and_dropped,
        a_client_flooding_pipelined_requests_does_not_starve_others,
        max_conns_refuses_the_extra_connection_with_overloaded,
        idle_timeout_closes_idle_and_half_sent_connections,
        a_client_that_never_reads_is_stopped_by_max_output,
        a_client_stuck_above_max_output_is_closed_after_the_idle_timeout,
    ],
    // Every hostile input and limit applies to every model: none excluded.
    not_pool: [],
}

fn zero_length_prefix_is_bad_json_and_the_connection_stays_usable(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    for _ in 0..3 {
        assert_error(&roundtrip(&mut s, &[0, 0, 0, 0]), "bad_json");
        assert_usable(&mut s);
    }
    // Several empty frames and a request in one write: three answers, in order.
    let mut bytes = vec![0u8; 8];
    bytes.extend_from_slice(&request("ping", json!(1)));
    s.write_all(&bytes).unwrap();
    assert_error(&read_response(&mut s), "bad_json");
    assert_error(&read_response(&mut s), "bad_json");
    assert_result(&read_response(&mut s), "pong", &json!(1));
}

fn length_prefix_of_0xffffffff_is_refused_and_closed(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    assert_usable(&mut s);
    s.write_all(&[0xff; 4]).unwrap();
    assert_error(&read_response(&mut s), "frame_too_large");
    expect_closed(&mut s);
    // With garbage following it in the same write, the same.
    let mut s = server.raw();
    let mut bytes = vec![0xff; 4];
    bytes.extend_from_slice(&[b'z'; 10_000]);
    s.write_all(&bytes).unwrap();
    assert_error(&read_response(&mut s), "frame_too_large");
    expect_closed(&mut s);
    let mut c = server.client();
    assert_eq!(c.call("ping", &"fine").unwrap(), json!("fine"));
    wait_for_connections(&mut c, 1);
}

fn one_byte_over_a_small_max_frame(model: Model) {
    const MAX: usize = 64;
    let server = TestServer::with(model, |cfg| cfg.limits.max_frame = MAX as u32);
    let mut s = server.raw();
    let head = br#"{"in":"ping","params":""#;
    let mut body = head.to_vec();
    body.resize(MAX - 2, b'y');
    body.extend_from_slice(br#""}"#);
    assert_eq!(body.len(), MAX);
    assert_eq!(
        roundtrip(&mut s, &frame(&body))["out"],
        "pong",
        "exactly max_frame is fine"
    );
    // One byte more: refused from the header alone (no body is sent).
    s.write_all(&(MAX as u32 + 1).to_le_bytes()).unwrap();
    let response = read_response(&mut s);
    assert_error(&response, "frame_too_large");
    expect_closed(&mut s);
    // The limit is reported, and others are served.
    let mut c = server.client();
    assert_eq!(stats(&mut c)["limits"]["max_frame"], MAX);
}

fn invalid_utf8_is_bad_json(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    assert_each(
        &mut s,
        &[
            b"\xff",
            b"\x80\x80",
            b"{\"in\":\"ping\",\"params\":\"\xc0\xaf\"}", // overlong '/'
            b"{\"in\":\"ping\",\"params\":\"\xed\xa0\x80\"}", // a UTF-16 surrogate
            b"{\"in\":\"ping\",\"params\":\"\xe6\x97\"}", // truncated sequence
            b"{\"in\":\"p\xfeing\"}",
            b"{\"in\":\"ping\"}\xf8",
            // Lone surrogates as escapes: never stored or echoed as invalid Unicode.
            b"{\"in\":\"ping\",\"params\":\"\\ud800\"}",
            b"{\"in\":\"ping\",\"params\":\"\\udfff x\"}",
            b"{\"in\":\"ping\",\"params\":[\"\\ud83d\\u0041\"]}",
            b"{\"in\":\"set\",\"params\":{\"key\":\"k\",\"value\":{\"a\":\"\\ud83d\"}}}",
            b"{\"in\":\"set\",\"params\":{\"key\":\"\\udc00\",\"value\":1}}",
        ],
        "bad_json",
    );
    // A proper pair is fine.
    let r = roundtrip(&mut s, &request("ping", json!("\u{1F600}")));
    assert_result(&r, "pong", &json!("\u{1F600}"));
    let pair = frame(br#"{"in":"ping","params":"\ud83d\ude00"}"#);
    assert_result(&roundtrip(&mut s, &pair), "pong", &json!("\u{1F600}"));
}

fn json_nested_100000_deep_is_bad_json(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let deep = |open: &str, close: &str| (open.repeat(100_000), close.repeat(100_000));
    let (arrays_open, arrays_close) = deep("[", "]");
    let (objects_open, objects_close) = deep(r#"{"a":"#, "}");
    let bodies = [
        format!(r#"{{"in":"ping","params":{arrays_open}{arrays_close}}}"#),
        format!(r#"{{"in":"ping","params":{objects_open}1{objects_close}}}"#),
        format!(r#"{{"in":"ping","id":{arrays_open}{arrays_close}}}"#),
        format!("{arrays_open}{arrays_close}"),
        // Unbalanced: only opening brackets.
        format!(r#"{{"in":"ping","params":{arrays_open}"#),
    ];
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    assert_each(&mut s, &refs, "bad_json");
    // Reasonable nesting is still accepted.
    let ok = json!([[[[[[[[[[[[[[[[[[[[{"deep": [[[[[[[[[[1]]]]]]]]]]}]]]]]]]]]]]]]]]]]]]]);
    assert_result(
        &roundtrip(&mut s, &request("ping", ok.clone())),
        "pong",
        &ok,
    );
    let mut other = server.client();
    assert_eq!(other.call("ping", &"alive").unwrap(), json!("alive"));
}

fn huge_numbers(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let digits = "9".repeat(10_000);
    // ping echoes any number exactly, however large.
    for number in [
        digits.clone(),
        format!("-{digits}"),
        "1e400".into(),
        "-1.5e-400".into(),
        format!("{digits}.{digits}E+99999"),
    ] {
        let body = format!(r#"{{"in":"ping","params":{number}}}"#);
        s.write_all(&frame(body.as_bytes())).unwrap();
        let text = String::from_utf8(read_frame(&mut s).unwrap()).unwrap();
        assert_eq!(text, format!(r#"{{"out":"pong","result":{number}}}"#));
        // As an id, too.
        let body = format!(r#"{{"in":"ping","params":0,"id":{number}}}"#);
        s.write_all(&frame(body.as_bytes())).unwrap();
        let text = String::from_utf8(read_frame(&mut s).unwrap()).unwrap();
        assert!(text.ends_with(&format!(r#","id":{number}}}"#)), "{text}");
    }
    // Methods that want machine integers refuse them.
    let refused = [
        format!(r#"{{"in":"fib","params":{digits}}}"#),
        r#"{"in":"fib","params":1e400}"#.into(),
        r#"{"in":"fib","params":18446744073709551616}"#.into(),
        format!(r#"{{"in":"incr","params":{{"key":"n","by":{digits}}}}}"#),
        r#"{"in":"incr","params":{"key":"n","by":9223372036854775808}}"#.into(),
        format!(r#"{{"in":"set","params":{{"key":"n","value":1,"ttl_ms":{digits}}}}}"#),
        format!(r#"{{"in":"expire","params":{{"key":"n","ttl_ms":{digits}}}}}"#),
    ];
    let refs: Vec<&[u8]> = refused.iter().map(|b| b.as_bytes()).collect();
    assert_each(&mut s, &refs, "bad_params");
    // A cache value keeps its digits.
    let body = format!(r#"{{"in":"set","params":{{"key":"big","value":{digits}}}}}"#);
    assert_result(
        &roundtrip(&mut s, &frame(body.as_bytes())),
        "set",
        &json!(true),
    );
    s.write_all(&request("get", json!({"key": "big"}))).unwrap();
    let text = String::from_utf8(read_frame(&mut s).unwrap()).unwrap();
    assert_eq!(text, format!(r#"{{"out":"get","result":{digits}}}"#));
    // And incr refuses it as a non-integer.
    let response = roundtrip(&mut s, &request("incr", json!({"key": "big"})));
    assert_error(&response, "bad_params");
}

fn a_client_flooding_pipelined_requests_does_not_starve_others(model: Model) {
    // A greedy client writes pipelined pings as fast as the server takes them
    // and reads every answer, so its socket never runs dry. Others must still
    // get their turn (the reactor bounds the work per connection per turn).
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let server = TestServer::start(model);
    let flood = server.raw();
    let (stop, received) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut chunk = Vec::new();
    for _ in 0..4096 {
        chunk.extend_from_slice(&request("ping", json!("flood")));
    }
    let writer = {
        let (mut w, stop) = (flood.try_clone().unwrap(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = w.shutdown(Shutdown::Write);
        })
    };
    let reader = {
        let (mut r, received) = (flood, received.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n @ 1..) = r.read(&mut buf) {
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    wait_until("the flood to be answered", TIMEOUT, || {
        received.load(Ordering::Relaxed) > 1 << 20
    });
    let mut other = server.client();
    for i in 0..20 {
        assert_eq!(other.call("ping", &i).unwrap(), json!(i), "starved");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    reader.join().unwrap();
}

fn an_oversized_frame_sent_whole_gets_its_answer_and_a_clean_close(model: Model) {
    // The body behind a refused header is never decoded. Closing with it
    // unread would send a reset that can destroy the error response, so the
    // server sends FIN after the response and discards input for a while: the
    // client reads the answer and then a clean end of stream.
    let server = TestServer::with(model, |cfg| cfg.limits.max_frame = 1024);
    let mut s = server.raw();
    s.write_all(&frame(&vec![b' '; 256 * 1024])).unwrap();
    assert_error(&read_response(&mut s), "frame_too_large");
    let mut rest = [0u8; 16];
    match s.read(&mut rest) {
        Ok(0) => {}
        other => panic!("expected a clean end of stream after frame_too_large, got {other:?}"),
    }
}

fn a_1_mib_key_exceeds_the_default_max_frame(model: Model) {
    // A request carrying a 1 MiB key is more than 1 MiB of JSON: with the
    // default --max-frame it is refused as frame_too_large and closed.
    let server = TestServer::start(model);
    let mut s = server.raw();
    let key = "k".repeat(1 << 20);
    // The server may answer and close before the whole megabyte is written,
    // so a failed write is expected here; the answer is what counts.
    let _ = s.write_all(&request("set", json!({"key": key, "value": 1})));
    assert_error(&read_response(&mut s), "frame_too_large");
    // The server stopped at the header; the rest of the body is never read,
    // so the close may come as a reset.
    expect_closed(&mut s);
    let mut c = server.client();
    assert_eq!(stats(&mut c)["keys"], 0);
}

fn a_1_mib_key_works_under_a_larger_max_frame(model: Model) {
    let server = TestServer::with(model, |cfg| cfg.limits.max_frame = 4 << 20);
    let mut c = server.client();
    let key = "k".repeat(1 << 20);
    let other = format!("{key}!");
    assert_eq!(
        c.call("set", &json!({"key": key, "value": "v"})).unwrap(),
        json!(true)
    );
    assert_eq!(c.call("get", &json!({"key": key})).unwrap(), json!("v"));
    assert_eq!(c.call("get", &json!({"key": other})).unwrap(), json!(null));
    assert_eq!(c.call("exists", &json!({"key": key})).unwrap(), json!(true));
    assert_eq!(c.call("ttl", &json!({"key": key})).unwrap(), json!(-1));
    assert_eq!(c.call("incr", &json!({"key": other})).unwrap(), json!(1));
    assert_eq!(stats(&mut c)["keys"], 2);
    assert_eq!(c.call("del", &json!({"key": key})).unwrap(), json!(1));
    assert_eq!(c.call("del", &json!({"key": other})).unwrap(), json!(1));
    assert_eq!(stats(&mut c)["keys"], 0);
}

fn duplicate_fields(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    assert_each(
        &mut s,
        &[
            br#"{"in":"ping","in":"fib"}"#,
            br#"{"in":"ping","in":"ping"}"#,
            br#"{"in":"ping","params":1,"params":2}"#,
            br#"{"in":"ping","id":1,"id":2}"#,
        ],
        "bad_request",
    );
    // Inside params it is the method's business: the cache refuses them...
    assert_each(
        &mut s,
        &[
            br#"{"in":"set","params":{"key":"a","key":"b","value":1}}"#,
            br#"{"in":"get","params":{"key":"a","key":"a"}}"#,
        ],
        "bad_params",
    );
    // ...and ping echoes its params untouched.
    let body = br#"{"in":"ping","params":{"a":1,"a":2}}"#;
    s.write_all(&frame(body)).unwrap();
    let text = String::from_utf8(read_frame(&mut s).unwrap()).unwrap();
    assert_eq!(text, r#"{"out":"pong","result":{"a":1,"a":2}}"#);
}

fn valid_json_followed_by_trailing_garbage_is_bad_json(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    assert_each(
        &mut s,
        &[
            br#"{"in":"ping"} x"#,
            br#"{"in":"ping"}{"in":"ping"}"#,
            br#"{"in":"ping"}]"#,
            b"{\"in\":\"ping\"}\0",
            br#"{"in":"ping","params":1}1"#,
        ],
        "bad_json",
    );
    // Trailing whitespace is still JSON.
    let body = b"{\"in\":\"ping\",\"params\":2} \n\t\r ";
    assert_result(&roundtrip(&mut s, &frame(body)), "pong", &json!(2));
}

fn method_names_with_nul_bytes(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    assert_each(
        &mut s,
        &[
            br#"{"in":"ping\u0000"}"#,
            br#"{"in":"\u0000ping"}"#,
            br#"{"in":"pi\u0000ng"}"#,
            br#"{"in":"\u0000"}"#,
        ],
        "unknown_method",
    );
    // A raw NUL byte inside a string is not JSON at all.
    assert_each(&mut s, &[b"{\"in\":\"ping\0\"}"], "bad_json");
}

fn half_close_after_requests_still_gets_every_response(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for i in 0..50u64 {
        let (method, params) = match i % 5 {
            0 => ("fib", json!(20_000 + i)), // heavy: the reactor's workers take it
            1 => ("incr", json!({"key": "n"})),
            _ => ("ping", json!(i)),
        };
        bytes.extend_from_slice(&request_with_id(method, params, json!(i)));
    }
    s.write_all(&bytes).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    for i in 0..50u64 {
        let body = read_frame(&mut s).unwrap_or_else(|| panic!("closed before response {i}"));
        let response: Value = if i % 5 == 0 {
            // F(20000+) is beyond f64: check the envelope only.
            let text = String::from_utf8(body).unwrap();
            assert!(
                text.starts_with(r#"{"out":"fib","result":"#),
                "{}",
                &text[..40]
            );
            assert!(text.ends_with(&format!(r#","id":{i}}}"#)));
            continue;
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        assert_eq!(response["id"], i, "{response}");
        if i % 5 == 1 {
            assert_result(&response, "incr", &json!(i / 5 + 1));
        } else {
            assert_result(&response, "pong", &json!(i));
        }
    }
    // Everything answered: now the server closes its side too.
    expect_closed(&mut s);
    let mut c = server.client();
    wait_for_connections(&mut c, 1);
}

fn reset_while_responses_are_queued(model: Model) {
    let server = TestServer::start(model);
    let mut watcher = server.client();
    let big = "v".repeat(512 * 1024);
    watcher
        .call("set", &json!({"key": "big", "value": big}))
        .unwrap();
    // Large responses queued behind a socket nobody reads, then a RST.
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for i in 0..40 {
        bytes.extend_from_slice(&request_with_id("get", json!({"key": "big"}), json!(i)));
    }
    s.write_all(&bytes).unwrap();
    reset(s);
    // Many small pipelined responses, then a RST.
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for i in 0..5000 {
        bytes.extend_from_slice(&request("ping", json!(i)));
    }
    s.write_all(&bytes).unwrap();
    reset(s);
    wait_for_connections(&mut watcher, 1);
    assert_eq!(watcher.call("ping", &"alive").unwrap(), json!("alive"));
    let mut fresh = server.client();
    let got = fresh.call("get", &json!({"key": "big"})).unwrap();
    assert_eq!(got.as_str().map(str::len), Some(512 * 1024));
}

fn a_burst_of_5000_connections_opened_and_dropped(model: Model) {
    let server = TestServer::start(model);
    let mut watcher = server.client();
    // In waves of 500 held at once; half leave with a FIN, half with a RST.
    for _ in 0..10 {
        let wave: Vec<TcpStream> = (0..500).map(|_| server.raw()).collect();
        for (i, s) in wave.into_iter().enumerate() {
            if i % 2 == 0 {
                drop(s);
            } else {
                reset(s);
            }
        }
    }
    assert_eq!(watcher.call("ping", &"alive").unwrap(), json!("alive"));
    wait_for_connections(&mut watcher, 1);
    let mut fresh = server.client();
    assert_eq!(fresh.call("fib", &30).unwrap(), json!(832040));
}

fn max_conns_refuses_the_extra_connection_with_overloaded(model: Model) {
    let server = TestServer::with(model, |cfg| cfg.limits.max_conns = 3);
    let mut served: Vec<Client> = (0..3).map(|_| server.client()).collect();
    for (i, c) in served.iter_mut().enumerate() {
        assert_eq!(
            c.call("ping", &i).unwrap(),
            json!(i),
            "client {i} is served"
        );
    }
    // The fourth gets one overloaded response and is closed, without asking.
    let mut extra = server.raw();
    assert_error(&read_response(&mut extra), "overloaded");
    expect_closed(&mut extra);
    // Again, having sent a request this time.
    let mut extra = server.raw();
    extra.write_all(&request("ping", json!(1))).unwrap();
    assert_error(&read_response(&mut extra), "overloaded");
    expect_closed(&mut extra);

    let st = stats(&mut served[0]);
    assert_eq!(st["connections"], 3, "{st}");
    assert_eq!(st["limits"]["max_conns"], 3, "{st}");
    assert!(st["connections_rejected"].as_u64().unwrap() >= 2, "{st}");
    // When one leaves, a newcomer is served again.
    drop(served.pop());
    wait_for_connections(&mut served[0], 2);
    let mut newcomer = server.client();
    assert_eq!(newcomer.call("ping", &"in").unwrap(), json!("in"));
}

fn idle_timeout_closes_idle_and_half_sent_connections(model: Model) {
    let server = TestServer::with(model, |cfg| {
        cfg.limits.idle_timeout = Some(Duration::from_secs(1));
    });
    let start = Instant::now();
    let mut silent = server.raw();
    let mut answered = server.raw();
    assert_usable(&mut answered);
    let mut slowloris = server.raw();
    let half = request("ping", json!("never finished"));
    slowloris.write_all(&half[..half.len() / 2]).unwrap();
    // A client that keeps talking outlives the timeout.
    let mut talker = server.client();
    while start.elapsed() < Duration::from_millis(2500) {
        assert_eq!(talker.call("ping", &1).unwrap(), json!(1));
        thread::sleep(Duration::from_millis(200));
    }
    // The silent ones were closed meanwhile (reads give EOF at once now).
    for (name, s) in [
        ("silent", &mut silent),
        ("answered", &mut answered),
        ("half a frame", &mut slowloris),
    ] {
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("{name} connection not closed by the idle timeout: {other:?}"),
        }
    }
    assert_eq!(stats(&mut talker)["connections"], 1);
    assert_eq!(stats(&mut talker)["limits"]["idle_timeout_s"], 1);
    // Not closed too early either: a fresh idle connection lives ~1 s.
    let opened = Instant::now();
    let mut fresh = server.raw();
    expect_closed(&mut fresh);
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(900),
        "closed after {lived:?}"
    );
    assert!(lived < Duration::from_secs(5), "closed after {lived:?}");
}

fn a_client_that_never_reads_is_stopped_by_max_output(model: Model) {
    const MAX_OUTPUT: usize = 256 * 1024;
    let server = TestServer::with(model, |cfg| cfg.limits.max_output = MAX_OUTPUT);
    let mut watcher = server.client();
    let mut greedy = server.raw();
    let one = big_ping(64 * 1024, 0);
    // If the server kept reading, the kernel would take all 512 MiB.
    let flood = flood_until_blocked(&mut greedy, &one, Duration::from_secs(1), 512 << 20);
    eprintln!(
        "{model}: the greedy client wrote {} KiB before being blocked",
        flood.written >> 10
    );
    assert!(
        flood.written < 64 << 20,
        "{model}: the server kept reading a client that never reads ({} MiB)",
        flood.written >> 20
    );
    // Meanwhile everyone else is served.
    let st = stats(&mut watcher);
    assert_eq!(st["connections"], 2, "{st}");
    assert_eq!(st["limits"]["max_output"], MAX_OUTPUT, "{st}");
    assert_eq!(
        watcher.call("fib", &90).unwrap(),
        json!(2880067194370816120u64)
    );
    // Once the client reads, every response arrives, in order.
    let partial = flood.written % one.len();
    thread::scope(|scope| {
        let mut reader = greedy.try_clone().unwrap();
        let expected = flood.frames + usize::from(partial > 0);
        let reading = scope.spawn(move || {
            for i in 0..expected {
                let body = read_frame(&mut reader).unwrap_or_else(|| panic!("closed at {i}"));
                let response: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(response["out"], "pong");
                assert_eq!(
                    response["result"].as_str().map(str::len),
                    Some(64 * 1024),
                    "pong {i}"
                );
            }
        });
        if partial > 0 {
            greedy.write_all(&one[partial..]).unwrap();
        }
        reading.join().unwrap();
    });
    assert_usable(&mut greedy);
}

fn a_client_stuck_above_max_output_is_closed_after_the_idle_timeout(model: Model) {
    let server = TestServer::with(model, |cfg| {
        cfg.limits.max_output = 64 * 1024;
        cfg.limits.idle_timeout = Some(Duration::from_secs(1));
    });
    let mut greedy = server.raw();
    let flood = flood_until_blocked(
        &mut greedy,
        &big_ping(64 * 1024, 0),
        Duration::from_millis(500),
        512 << 20,
    );
    assert!(
        flood.written < 64 << 20,
        "never blocked: {} MiB",
        flood.written >> 20
    );
    // The watcher keeps asking (so it is not idle) until the stuck one is
    // gone; connected only now, so the flood's time does not idle it out.
    let mut watcher = server.client();
    wait_for_connections(&mut watcher, 1);
    drop(greedy);
}
