//! The conformance suite: every method, every error code and the framing
//! rules, over real sockets, run against every server model from this one
//! source (see `model_tests!` in `support`).
//!
//! Each test starts its own server on port 0, so tests run in parallel and
//! share nothing; they synchronise on responses and closed sockets, and poll
//! `stats` with a deadline where only a counter can tell.

use std::io::{Read, Write};
use std::net::TcpStream;

use reactor_rpc::client::Error as ClientError;
use reactor_rpc::protocol::ErrorCode;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::support::*;

/// Asserts that a call failed with an error response carrying `code`.
#[track_caller]
fn assert_rpc_error<T: std::fmt::Debug>(result: Result<T, ClientError>, code: ErrorCode) {
    match result {
        Err(ClientError::Rpc(e)) => {
            assert_eq!(e.code, code, "error {e}");
            assert!(!e.message.is_empty(), "error {code} without a message");
        }
        other => panic!("expected a {code} error response, got {other:?}"),
    }
}

fn raw_json(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).unwrap()
}

/// The text of the `"result"` member of a response body, exactly as sent.
fn raw_result(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct R<'a> {
        #[serde(borrow)]
        result: &'a RawValue,
    }
    let r: R = serde_json::from_slice(body).expect("response JSON");
    r.result.get().to_string()
}

/// A key's remaining time to live, as `ttl` reports it.
fn ttl(c: &mut Client, key: &str) -> i64 {
    c.call("ttl", &json!({ "key": key }))
        .unwrap()
        .as_i64()
        .expect("ttl is an integer")
}

model_tests! {
    every_model: [
        ping_echoes_params_of_every_json_type,
        ping_without_params_answers_null,
        ping_round_trips_unicode,
        ping_of_512_kib,
        a_frame_of_exactly_max_frame_is_accepted,
        fib_is_exact,
        fib_rejects_bad_params,
        every_method_answers_with_its_out_name,
        cache_set_get_del_exists,
        cache_incr_has_redis_semantics,
        cache_ttl_and_expire,
        cache_keys_expire,
        expired_keys_nobody_touches_are_swept,
        cache_rejects_bad_params,
        duplicate_keys_are_kept_in_values_and_refused_in_params,
        cache_is_shared_across_connections,
        stats_reports_the_server,
        every_error_code_and_the_connection_stays_usable,
        frame_too_large_then_close,
        ids_are_echoed,
        a_hundred_pipelined_requests_in_one_write_answered_in_order,
        a_frame_dribbled_one_byte_at_a_time,
        a_frame_split_across_two_writes_at_every_offset,
        clients_leaving_mid_frame_leave_the_server_healthy,
        clients_leaving_while_the_server_writes_leave_it_healthy,
    ],
    // Excluded for `pool` by design: the pool serves at most
    // `pool_size` connections at once, so these tests, which need many more
    // connections served simultaneously, would wait in the accept backlog
    // forever. The pool's own test of that limitation is in `threaded_models.rs`.
    not_pool: [
        a_thousand_concurrent_connections_all_answered,
    ],
}

fn ping_echoes_params_of_every_json_type(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let all = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-17),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(-2.5e-300),
        json!(""),
        json!("ireader 0"),
        json!([]),
        json!([1, "two", [3.5], {"four": null}]),
        json!({}),
        json!({"a": {"b": [true, false, null]}, "c": "d", "e": {"f": {"g": {"h": 1}}}}),
    ];
    for params in all {
        assert_eq!(c.call("ping", &params).unwrap(), params);
    }
    // The result is the params unchanged, even a number no f64 holds.
    let exact = r#"{"n":123456789012345678901234567890,"f":1.000000000000000000001,"a":[1e400]}"#;
    assert_eq!(c.call_raw("ping", &raw_json(exact)).unwrap().get(), exact);
}

fn ping_without_params_answers_null(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    assert_result(
        &roundtrip(&mut s, &frame(br#"{"in":"ping"}"#)),
        "pong",
        &json!(null),
    );
    // Unknown fields are ignored.
    let body = br#"{"x":[1,2],"in":"ping","params":3,"extra":{"y":null}}"#;
    assert_result(&roundtrip(&mut s, &frame(body)), "pong", &json!(3));
}

fn ping_round_trips_unicode(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let params = json!({
        "héllo wörld": "日本語のテキスト ✓ 🦀 Ω≈ç√",
        "controls": "tab\t newline\n quote\" backslash\\ nul\u{0} bell\u{7}",
        "emoji": ["👩‍👩‍👧", "\u{10FFFF}", "\u{FEFF}"],
    });
    assert_eq!(c.call("ping", &params).unwrap(), params);
    // Escapes on the wire, surrogate pairs included, decode to the same text.
    let mut s = server.raw();
    let body = r#"{"in":"ping","params":"\u00e9\ud83e\udd80\u65e5"}"#;
    let response = roundtrip(&mut s, &frame(body.as_bytes()));
    assert_result(&response, "pong", &json!("é🦀日"));
}

fn ping_of_512_kib(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let big: String = (0..512 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let params = Value::String(big);
    assert_eq!(c.call("ping", &params).unwrap(), params);
    // And the connection goes on.
    assert_eq!(c.call("ping", &json!(1)).unwrap(), json!(1));
}

fn a_frame_of_exactly_max_frame_is_accepted(model: Model) {
    let server = TestServer::start(model);
    let max = reactor_rpc::protocol::DEFAULT_MAX_FRAME as usize;
    let head = br#"{"in":"ping","params":""#;
    let tail = br#""}"#;
    let mut body = head.to_vec();
    body.resize(max - tail.len(), b'x');
    body.extend_from_slice(tail);
    assert_eq!(body.len(), max);
    let mut s = server.raw();
    let response = roundtrip(&mut s, &frame(&body));
    assert_eq!(response["out"], "pong");
    assert_eq!(
        response["result"].as_str().unwrap().len(),
        max - head.len() - tail.len()
    );
}

fn fib_is_exact(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    for n in [0u64, 1, 2, 10, 92, 93, 94, 1000, 4999, 5000, 100_000] {
        let got = c.call_raw("fib", &n).unwrap();
        assert_eq!(got.get(), fib_decimal(n), "F({n})");
    }
    assert_eq!(fib_decimal(100_000).len(), 20_899);
    assert_eq!(fib_decimal(93), "12200160415121876738");
}

fn fib_rejects_bad_params(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let bad = [
        json!(-1),
        json!(100_001),
        json!(1.5),
        json!(1e3),
        json!("7"),
        json!(null),
        json!(true),
        json!([7]),
        json!({"n": 7}),
    ];
    for params in bad {
        assert_rpc_error(c.call_raw("fib", &params), ErrorCode::BadParams);
    }
    // Beyond every integer type.
    assert_rpc_error(
        c.call_raw("fib", &raw_json("123456789012345678901234567890")),
        ErrorCode::BadParams,
    );
    assert_eq!(c.call_raw("fib", &100_000).unwrap().get().len(), 20_899);
}

fn every_method_answers_with_its_out_name(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let calls = [
        ("ping", json!(1), "pong"),
        ("fib", json!(3), "fib"),
        ("set", json!({"key": "k", "value": 1}), "set"),
        ("get", json!({"key": "k"}), "get"),
        ("exists", json!({"key": "k"}), "exists"),
        ("incr", json!({"key": "k"}), "incr"),
        ("expire", json!({"key": "k", "ttl_ms": 100_000}), "expire"),
        ("ttl", json!({"key": "k"}), "ttl"),
        ("del", json!({"key": "k"}), "del"),
        ("stats", json!(null), "stats"),
    ];
    for (method, params, out) in calls {
        let response = roundtrip(&mut s, &request(method, params));
        assert_eq!(response["out"], out, "{method}: {response}");
        assert!(
            response.get("id").is_none(),
            "no id asked, none echoed: {response}"
        );
    }
}

fn cache_set_get_del_exists(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let key = |k: &str| json!({ "key": k });
    assert_eq!(c.call("get", &key("k")).unwrap(), json!(null));
    assert_eq!(c.call("exists", &key("k")).unwrap(), json!(false));
    assert_eq!(c.call("del", &key("k")).unwrap(), json!(0));

    let value = json!({"nested": [1, "two", null], "ü": 3.25});
    assert_eq!(
        c.call("set", &json!({"key": "k", "value": value})).unwrap(),
        json!(true)
    );
    assert_eq!(c.call("get", &key("k")).unwrap(), value);
    assert_eq!(c.call("exists", &key("k")).unwrap(), json!(true));
    // set replaces.
    assert_eq!(
        c.call("set", &json!({"key": "k", "value": "v2"})).unwrap(),
        json!(true)
    );
    assert_eq!(c.call("get", &key("k")).unwrap(), json!("v2"));
    assert_eq!(c.call("del", &key("k")).unwrap(), json!(1));
    assert_eq!(c.call("del", &key("k")).unwrap(), json!(0));
    assert_eq!(c.call("get", &key("k")).unwrap(), json!(null));
    assert_eq!(c.call("exists", &key("k")).unwrap(), json!(false));

    // Values of every JSON type, and unusual keys.
    let values = [
        json!(null),
        json!(false),
        json!(-3),
        json!(2.5),
        json!("s"),
        json!([]),
        json!({}),
    ];
    for (i, v) in values.iter().enumerate() {
        for k in [
            format!("k{i}"),
            String::new(),
            format!("ключ 🔑 {i}"),
            format!("a\u{0}b{i}"),
        ] {
            c.call("set", &json!({"key": k, "value": v})).unwrap();
            assert_eq!(&c.call("get", &key(&k)).unwrap(), v, "key {k:?}");
            assert_eq!(
                c.call("exists", &key(&k)).unwrap(),
                json!(true),
                "key {k:?}"
            );
        }
    }
    // A stored big integer comes back exactly.
    let big = r#"{"key":"big","value":123456789012345678901234567890}"#;
    c.call_raw("set", &raw_json(big)).unwrap();
    let got = c.call_raw("get", &json!({"key": "big"})).unwrap();
    assert_eq!(got.get(), "123456789012345678901234567890");
}

fn cache_incr_has_redis_semantics(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let incr = |c: &mut Client, p: Value| c.call("incr", &p);
    // A missing key counts from 0.
    assert_eq!(incr(&mut c, json!({"key": "n"})).unwrap(), json!(1));
    assert_eq!(incr(&mut c, json!({"key": "n"})).unwrap(), json!(2));
    assert_eq!(
        incr(&mut c, json!({"key": "n", "by": 10})).unwrap(),
        json!(12)
    );
    assert_eq!(
        incr(&mut c, json!({"key": "n", "by": -20})).unwrap(),
        json!(-8)
    );
    assert_eq!(c.call("get", &json!({"key": "n"})).unwrap(), json!(-8));
    assert_eq!(
        incr(&mut c, json!({"key": "fresh", "by": 5})).unwrap(),
        json!(5)
    );
    // An integer stored by set can be incremented.
    c.call("set", &json!({"key": "i", "value": 41})).unwrap();
    assert_eq!(incr(&mut c, json!({"key": "i"})).unwrap(), json!(42));

    // Non-integer values are refused and left alone.
    for (k, v) in [
        ("s", json!("abc")),
        ("f", json!(1.5)),
        ("a", json!([1])),
        ("o", json!({"n": 1})),
        ("u", json!(u64::MAX)),
        ("b", json!(true)),
    ] {
        c.call("set", &json!({"key": k, "value": v})).unwrap();
        assert_rpc_error(incr(&mut c, json!({"key": k})), ErrorCode::BadParams);
        assert_eq!(c.call("get", &json!({"key": k})).unwrap(), v);
    }
    // Overflow either way is refused and leaves the value as it was.
    c.call("set", &json!({"key": "max", "value": i64::MAX}))
        .unwrap();
    assert_rpc_error(incr(&mut c, json!({"key": "max"})), ErrorCode::BadParams);
    assert_eq!(
        c.call("get", &json!({"key": "max"})).unwrap(),
        json!(i64::MAX)
    );
    c.call("set", &json!({"key": "min", "value": i64::MIN}))
        .unwrap();
    assert_rpc_error(
        incr(&mut c, json!({"key": "min", "by": -1})),
        ErrorCode::BadParams,
    );
    assert_eq!(
        c.call("get", &json!({"key": "min"})).unwrap(),
        json!(i64::MIN)
    );
    // `by` must be an integer (`null` reads as absent, like any optional field).
    for by in [json!(1.5), json!("1"), json!(u64::MAX), json!([1])] {
        assert_rpc_error(
            incr(&mut c, json!({"key": "n", "by": by})),
            ErrorCode::BadParams,
        );
    }
    assert_eq!(c.call("get", &json!({"key": "n"})).unwrap(), json!(-8));
    // Like Redis INCR, incrementing keeps the key's time to live.
    c.call("set", &json!({"key": "t", "value": 1, "ttl_ms": 100_000}))
        .unwrap();
    assert_eq!(incr(&mut c, json!({"key": "t"})).unwrap(), json!(2));
    assert!(ttl(&mut c, "t") > 0, "incr kept the TTL");
}

fn cache_ttl_and_expire(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    assert_eq!(ttl(&mut c, "k"), -2, "missing key");
    c.call("set", &json!({"key": "k", "value": 1})).unwrap();
    assert_eq!(ttl(&mut c, "k"), -1, "no expiry");

    c.call("set", &json!({"key": "k", "value": 1, "ttl_ms": 100_000}))
        .unwrap();
    let left = ttl(&mut c, "k");
    assert!(
        (50_000..=100_000).contains(&left),
        "ttl right after set: {left}"
    );
    // set without ttl_ms clears the old TTL.
    c.call("set", &json!({"key": "k", "value": 2})).unwrap();
    assert_eq!(ttl(&mut c, "k"), -1, "set cleared the TTL");
    assert_eq!(c.call("get", &json!({"key": "k"})).unwrap(), json!(2));

    assert_eq!(
        c.call("expire", &json!({"key": "nope", "ttl_ms": 1000}))
            .unwrap(),
        json!(false)
    );
    assert_eq!(ttl(&mut c, "nope"), -2, "expire does not create keys");
    assert_eq!(
        c.call("expire", &json!({"key": "k", "ttl_ms": 100_000}))
            .unwrap(),
        json!(true)
    );
    let left = ttl(&mut c, "k");
    assert!(
        (50_000..=100_000).contains(&left),
        "ttl after expire: {left}"
    );
    // A new ttl_ms on set replaces the old one.
    c.call("set", &json!({"key": "k", "value": 3, "ttl_ms": 5_000_000}))
        .unwrap();
    assert!(ttl(&mut c, "k") > 100_000);

    // ttl_ms must be an integer > 0 (optional on set, where `null` reads as absent).
    assert_rpc_error(
        c.call("expire", &json!({"key": "k", "ttl_ms": null})),
        ErrorCode::BadParams,
    );
    for bad in [json!(0), json!(-5), json!(1.5), json!("100"), json!([1])] {
        assert_rpc_error(
            c.call("expire", &json!({"key": "k", "ttl_ms": bad})),
            ErrorCode::BadParams,
        );
        assert_rpc_error(
            c.call("set", &json!({"key": "new", "value": 1, "ttl_ms": bad})),
            ErrorCode::BadParams,
        );
    }
    assert_rpc_error(c.call("expire", &json!({"key": "k"})), ErrorCode::BadParams);
    // A refused set stores nothing; a refused expire changes nothing.
    assert_eq!(
        c.call("exists", &json!({"key": "new"})).unwrap(),
        json!(false)
    );
    assert!(ttl(&mut c, "k") > 100_000);
}

fn cache_keys_expire(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    c.call("set", &json!({"key": "e", "value": "v", "ttl_ms": 50}))
        .unwrap();
    let left = ttl(&mut c, "e");
    assert!(left == -2 || (1..=50).contains(&left), "ttl {left}");
    wait_until("key e to expire", TIMEOUT, || ttl(&mut c, "e") == -2);
    assert_eq!(c.call("get", &json!({"key": "e"})).unwrap(), json!(null));
    assert_eq!(
        c.call("exists", &json!({"key": "e"})).unwrap(),
        json!(false)
    );
    assert_eq!(c.call("del", &json!({"key": "e"})).unwrap(), json!(0));
    assert_eq!(
        c.call("incr", &json!({"key": "e"})).unwrap(),
        json!(1),
        "counts from 0 again"
    );

    // expire on an existing key.
    c.call("set", &json!({"key": "e2", "value": 1})).unwrap();
    assert_eq!(
        c.call("expire", &json!({"key": "e2", "ttl_ms": 50}))
            .unwrap(),
        json!(true)
    );
    wait_until("key e2 to expire", TIMEOUT, || {
        c.call("exists", &json!({"key": "e2"})).unwrap() == json!(false)
    });
    assert_eq!(c.call("get", &json!({"key": "e2"})).unwrap(), json!(null));
}

fn expired_keys_nobody_touches_are_swept(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    for i in 0..300 {
        c.send(
            "set",
            &json!({"key": format!("sweep{i}"), "value": i, "ttl_ms": 30}),
        )
        .unwrap();
    }
    c.send("set", &json!({"key": "stays", "value": 1})).unwrap();
    c.flush().unwrap();
    for _ in 0..301 {
        assert_eq!(c.recv().unwrap().into_result().unwrap().get(), "true");
    }
    // Never read again: only the periodic sweep can remove them.
    wait_until("the sweep to drop expired keys", TIMEOUT, || {
        stats(&mut c)["keys"] == 1
    });
}

fn cache_rejects_bad_params(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let bad = [
        ("get", json!(null)),
        ("get", json!("k")),
        ("get", json!({})),
        ("get", json!({"key": 1})),
        ("get", json!({"key": null})),
        ("get", json!(["k"])),
        ("set", json!({"key": "k"})),
        ("set", json!({"value": 1})),
        ("set", json!({"key": 5, "value": 1})),
        ("del", json!([])),
        ("exists", json!({"key": true})),
        ("incr", json!({})),
        ("expire", json!({"ttl_ms": 10})),
        ("ttl", json!({"key": {"a": 1}})),
    ];
    for (method, params) in bad {
        let result = c.call(method, &params);
        match result {
            Err(ClientError::Rpc(e)) => {
                assert_eq!(e.code, ErrorCode::BadParams, "{method} {params}")
            }
            other => panic!("{method} {params}: expected bad_params, got {other:?}"),
        }
    }
    assert_eq!(
        c.call("stats", &json!(null)).unwrap()["keys"],
        0,
        "nothing was stored"
    );
}

fn cache_is_shared_across_connections(model: Model) {
    let server = TestServer::start(model);
    let mut a = server.client();
    let mut b = server.client();
    a.call("set", &json!({"key": "shared", "value": {"from": "a"}}))
        .unwrap();
    assert_eq!(
        b.call("get", &json!({"key": "shared"})).unwrap(),
        json!({"from": "a"})
    );
    assert_eq!(
        b.call("incr", &json!({"key": "counter"})).unwrap(),
        json!(1)
    );
    assert_eq!(
        a.call("incr", &json!({"key": "counter"})).unwrap(),
        json!(2)
    );
    assert_eq!(b.call("del", &json!({"key": "shared"})).unwrap(), json!(1));
    assert_eq!(
        a.call("exists", &json!({"key": "shared"})).unwrap(),
        json!(false)
    );
    drop(b);
    // A connection opened later sees the same store.
    let mut later = server.client();
    assert_eq!(
        later.call("get", &json!({"key": "counter"})).unwrap(),
        json!(2)
    );
}

fn stats_reports_the_server(model: Model) {
    let server = TestServer::start(model);
    let mut c = server.client();
    let first = stats(&mut c);
    assert_eq!(first["model"], model.name());
    assert_eq!(first["connections"], 1, "{first}");
    assert_eq!(first["requests"], 1, "the stats call itself: {first}");
    assert_eq!(first["keys"], 0, "{first}");
    let uptime = first["uptime_ms"]
        .as_u64()
        .expect("uptime_ms is an integer");
    if model == Model::Pool {
        assert_eq!(first["pool_size"], POOL_SIZE, "{first}");
    }

    for i in 0..5 {
        c.call("ping", &i).unwrap();
    }
    c.call("set", &json!({"key": "a", "value": 1})).unwrap();
    c.call("set", &json!({"key": "b", "value": 2})).unwrap();
    assert_rpc_error(c.call("nope", &json!(null)), ErrorCode::UnknownMethod);
    let mut other = server.client();
    other.call("ping", &0).unwrap();

    let second = stats(&mut c);
    // 5 pings + 2 sets + 1 error + 1 ping elsewhere + this stats.
    assert_eq!(second["requests"], 1 + 10, "{second}");
    assert_eq!(second["keys"], 2, "{second}");
    assert_eq!(second["connections"], 2, "{second}");
    assert!(second["uptime_ms"].as_u64().unwrap() >= uptime, "{second}");
    drop(other);
    wait_for_connections(&mut c, 1);
}

fn every_error_code_and_the_connection_stays_usable(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "bad_json"),
        (b"", "bad_json"),
        (b"   ", "bad_json"),
        (br#"{"in":"#, "bad_json"),
        (b"\xff\xfe\xfd", "bad_json"),
        (b"{\"in\":\"ping\",\"params\":\"caf\xe9\"}", "bad_json"),
        (b"[1,2]", "bad_request"),
        (b"42", "bad_request"),
        (br#""ping""#, "bad_request"),
        (b"null", "bad_request"),
        (b"{}", "bad_request"),
        (br#"{"in":7}"#, "bad_request"),
        (br#"{"in":null,"params":1}"#, "bad_request"),
        (br#"{"params":1}"#, "bad_request"),
        (br#"{"in":"nope"}"#, "unknown_method"),
        (br#"{"in":""}"#, "unknown_method"),
        (br#"{"in":"PING"}"#, "unknown_method"),
        (br#"{"in":"fib","params":"x"}"#, "bad_params"),
        (br#"{"in":"get","params":null}"#, "bad_params"),
    ];
    for (body, code) in cases {
        let response = roundtrip(&mut s, &frame(body));
        assert_error(&response, code);
        assert!(response.get("id").is_none(), "{response}");
        assert_usable(&mut s);
    }
}

fn frame_too_large_then_close(model: Model) {
    let server = TestServer::start(model);
    let max = reactor_rpc::protocol::DEFAULT_MAX_FRAME;
    let mut s = server.raw();
    // A good request first, then only the header of an oversized frame: the
    // refusal must come from the 4 bytes alone, without waiting for a body.
    let mut bytes = request("ping", json!("before"));
    bytes.extend_from_slice(&(max + 1).to_le_bytes());
    s.write_all(&bytes).unwrap();
    assert_result(&read_response(&mut s), "pong", &json!("before"));
    assert_error(&read_response(&mut s), "frame_too_large");
    expect_closed(&mut s);
    // Everyone else is unaffected.
    let mut c = server.client();
    assert_eq!(c.call("ping", &"after").unwrap(), json!("after"));
    wait_for_connections(&mut c, 1);
}

fn ids_are_echoed(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let ids = [
        json!(7),
        json!(-1.5),
        json!(0),
        json!("abc"),
        json!(""),
        json!(null),
        json!(true),
        json!({"a": [1, {"b": null}]}),
        json!([1, "2"]),
    ];
    for id in &ids {
        let response = roundtrip(&mut s, &request_with_id("ping", json!("p"), id.clone()));
        assert_result(&response, "pong", &json!("p"));
        assert_eq!(response.get("id"), Some(id), "{response}");
        // Errors echo the id too.
        let response = roundtrip(&mut s, &request_with_id("nope", json!(1), id.clone()));
        assert_error(&response, "unknown_method");
        assert_eq!(response.get("id"), Some(id), "{response}");
        let response = roundtrip(&mut s, &request_with_id("fib", json!(-1), id.clone()));
        assert_error(&response, "bad_params");
        assert_eq!(response.get("id"), Some(id), "{response}");
        let body = serde_json::to_vec(&json!({"in": 5, "id": id})).unwrap();
        let response = roundtrip(&mut s, &frame(&body));
        assert_error(&response, "bad_request");
        assert_eq!(response.get("id"), Some(id), "{response}");
    }
    // An id beyond f64 comes back exactly.
    let body = br#"{"in":"ping","params":1,"id":123456789012345678901234567890}"#;
    s.write_all(&frame(body)).unwrap();
    let text = String::from_utf8(read_frame(&mut s).unwrap()).unwrap();
    assert!(
        text.contains(r#""id":123456789012345678901234567890"#),
        "{text}"
    );
    // The client library's way of sending ids.
    let mut c = server.client();
    c.send_with_id("ping", &1, &json!({"corr": 42})).unwrap();
    c.flush().unwrap();
    let response = c.recv().unwrap();
    assert_eq!(response.id.unwrap().get(), r#"{"corr":42}"#);
}

fn a_hundred_pipelined_requests_in_one_write_answered_in_order(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for i in 0..100u64 {
        let (method, params) = match i % 4 {
            0 => ("ping", json!(i)),
            1 => ("incr", json!({"key": "counter"})),
            2 => ("fib", json!(i)),
            _ => ("nope", json!(null)),
        };
        bytes.extend_from_slice(&request_with_id(method, params, json!(i)));
    }
    s.write_all(&bytes).unwrap();
    for i in 0..100u64 {
        let body = read_frame(&mut s).expect("response");
        let response: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(response["id"], i, "responses in request order: {response}");
        match i % 4 {
            0 => assert_result(&response, "pong", &json!(i)),
            1 => assert_result(&response, "incr", &json!(i / 4 + 1)),
            2 => assert_eq!(raw_result(&body), fib_decimal(i), "F({i})"),
            _ => assert_error(&response, "unknown_method"),
        }
    }
    // The client's pipelining API.
    let mut c = server.client();
    let calls: Vec<(&str, Value)> = (0..100).map(|i| ("ping", json!(i))).collect();
    let results = c.pipeline(&calls).unwrap();
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().get(), i.to_string());
    }
}

fn a_frame_dribbled_one_byte_at_a_time(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let mut bytes = request_with_id("ping", json!({"slow": "ly"}), json!(1));
    bytes.extend_from_slice(&request_with_id("fib", json!(20), json!(2)));
    for b in &bytes {
        s.write_all(std::slice::from_ref(b)).unwrap();
        s.flush().unwrap();
    }
    let first = read_response(&mut s);
    assert_result(&first, "pong", &json!({"slow": "ly"}));
    assert_eq!(first["id"], 1);
    let second = read_response(&mut s);
    assert_result(&second, "fib", &json!(6765));
    assert_eq!(second["id"], 2);
}

fn a_frame_split_across_two_writes_at_every_offset(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let one = request_with_id("ping", json!("split"), json!(0));
    // Every cut of one frame, header included.
    for cut in 1..one.len() {
        s.write_all(&one[..cut]).unwrap();
        s.write_all(&one[cut..]).unwrap();
        assert_result(&read_response(&mut s), "pong", &json!("split"));
    }
    // Every cut of two frames back to back: both answered, in order.
    let mut two = request_with_id("ping", json!("a"), json!(1));
    two.extend_from_slice(&request_with_id("ping", json!("b"), json!(2)));
    for cut in 1..two.len() {
        s.write_all(&two[..cut]).unwrap();
        s.write_all(&two[cut..]).unwrap();
        let (a, b) = (read_response(&mut s), read_response(&mut s));
        assert_eq!(
            (a["id"].clone(), b["id"].clone()),
            (json!(1), json!(2)),
            "cut at {cut}"
        );
    }
}

fn clients_leaving_mid_frame_leave_the_server_healthy(model: Model) {
    let server = TestServer::start(model);
    let mut watcher = server.client();
    let full = request("ping", json!("x".repeat(1000)));
    // Half a header; a header and half a body; the same reset instead of closed.
    for (cut, rst) in [(2, false), (500, false), (2, true), (500, true)] {
        let mut s = server.raw();
        s.write_all(&full[..cut]).unwrap();
        if rst {
            reset(s);
        } else {
            drop(s);
        }
    }
    wait_for_connections(&mut watcher, 1);
    assert_eq!(watcher.call("ping", &"ok").unwrap(), json!("ok"));
    let mut fresh = server.client();
    assert_eq!(fresh.call("fib", &10).unwrap(), json!(55));
}

fn clients_leaving_while_the_server_writes_leave_it_healthy(model: Model) {
    let server = TestServer::start(model);
    let mut watcher = server.client();
    // A 512 KiB value: each small `get` produces a large response.
    let big = "v".repeat(512 * 1024);
    watcher
        .call("set", &json!({"key": "big", "value": big}))
        .unwrap();
    for rst in [false, true] {
        let mut s = server.raw();
        let mut bytes = Vec::new();
        for _ in 0..40 {
            bytes.extend_from_slice(&request("get", json!({"key": "big"})));
        }
        s.write_all(&bytes).unwrap();
        // Wait until the server is writing (the first bytes are here), read a
        // little, and leave with ~20 MiB of responses still to go.
        let mut some = [0u8; 1024];
        s.read_exact(&mut some).unwrap();
        if rst {
            reset(s);
        } else {
            drop(s);
        }
    }
    wait_for_connections(&mut watcher, 1);
    let got = watcher.call("get", &json!({"key": "big"})).unwrap();
    assert_eq!(got.as_str().map(str::len), Some(512 * 1024));
    let mut fresh = server.client();
    assert_eq!(fresh.call("ping", &"ok").unwrap(), json!("ok"));
}

fn a_thousand_concurrent_connections_all_answered(model: Model) {
    let server = TestServer::start(model);
    let mut conns: Vec<TcpStream> = (0..1000).map(|_| server.raw()).collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(&request_with_id("ping", json!(i), json!(i)))
            .unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let response = read_response(s);
        assert_result(&response, "pong", &json!(i));
        assert_eq!(response["id"], i);
    }
    // All of them are open at once, plus the one asking.
    let mut c = server.client();
    assert_eq!(stats(&mut c)["connections"], 1001);
    // And each can go on talking.
    for s in conns.iter_mut().step_by(97) {
        assert_result(&roundtrip(s, &request("fib", json!(10))), "fib", &json!(55));
    }
    drop(conns);
    wait_for_connections(&mut c, 1);
}

/// PROTOCOL.md's bad-input table: duplicate keys in a free-form value pass
/// through as sent; a duplicated field of a method's params is bad_params.
fn duplicate_keys_are_kept_in_values_and_refused_in_params(model: Model) {
    let server = TestServer::start(model);
    let mut s = server.raw();
    let echo = roundtrip(&mut s, &frame(br#"{"in":"ping","params":{"a":1,"a":2}}"#));
    assert_eq!(echo["out"], "pong");
    let set = br#"{"in":"set","params":{"key":"dup","value":{"a":1,"a":2}}}"#;
    assert_result(&roundtrip(&mut s, &frame(set)), "set", &json!(true));
    // Read back as raw bytes: the text is exactly what was sent.
    s.write_all(&request("get", json!({"key": "dup"}))).unwrap();
    let body = read_frame(&mut s).expect("a response");
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(r#""result":{"a":1,"a":2}"#), "{text}");
    let twice = br#"{"in":"get","params":{"key":"a","key":"b"}}"#;
    let r = roundtrip(&mut s, &frame(twice));
    assert_error(&r, "bad_params");
    assert!(r["result"]["message"]
        .as_str()
        .unwrap()
        .contains("duplicate field"));
}
