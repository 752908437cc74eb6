//! The cache over the JSON protocol, through `Service::handle` (the request
//! path every server model shares): the new error codes, values set by the
//! other protocol, and the memory figures in `stats`.

use bytes::Bytes;
use serde_json::{json, Value as Json};

use reactor_rpc::protocol::frame::HEADER_LEN;
use reactor_rpc::service::cache::{CacheConfig, EvictionPolicy, SetOptions, Value};
use reactor_rpc::service::{Registry, Service};

fn call(service: &Service, method: &str, params: Json) -> Json {
    let body = serde_json::to_vec(&json!({"in": method, "params": params})).unwrap();
    let mut out = Vec::new();
    service.handle(&"test", &body, &mut out, false);
    serde_json::from_slice(&out[HEADER_LEN..]).expect("one JSON response frame")
}

fn error_code(response: &Json) -> &str {
    assert_eq!(response["out"], "error", "{response}");
    response["result"]["code"].as_str().expect("a code")
}

#[test]
fn writes_past_maxmemory_with_noeviction_answer_oom() {
    let service = Service::with_cache_config(
        Registry::builtin(),
        CacheConfig {
            maxmemory: 64 * 1024,
            policy: EvictionPolicy::NoEviction,
        },
    );
    let mut stored = 0;
    let refused = loop {
        let r = call(
            &service,
            "set",
            json!({"key": format!("k{stored}"), "value": "some text"}),
        );
        if r["out"] == "error" {
            break r;
        }
        stored += 1;
        assert!(stored < 10_000, "never refused");
    };
    assert_eq!(error_code(&refused), "oom");
    let message = refused["result"]["message"].as_str().unwrap();
    assert!(message.contains("--maxmemory (65536 bytes)"), "{message}");
    assert_eq!(
        error_code(&call(&service, "incr", json!({"key": "n"}))),
        "oom"
    );
    // Reads and deletes still work, and a delete makes room.
    assert_eq!(
        call(&service, "get", json!({"key": "k0"}))["result"],
        "some text"
    );
    assert_eq!(call(&service, "del", json!({"key": "k0"}))["result"], 1);
    assert_eq!(
        call(&service, "set", json!({"key": "x", "value": 1}))["result"],
        true
    );

    let stats = call(&service, "stats", json!(null))["result"].clone();
    assert_eq!(stats["maxmemory"], 64 * 1024, "{stats}");
    assert_eq!(stats["maxmemory_policy"], "noeviction");
    assert!(
        stats["used_memory"].as_u64().unwrap() <= 64 * 1024,
        "{stats}"
    );
    assert_eq!(stats["evicted_keys"], 0);
    assert_eq!(stats["keys"], stored);
}

#[test]
fn stats_report_memory_eviction_and_expiry() {
    let service = Service::with_cache_config(
        Registry::builtin(),
        CacheConfig {
            maxmemory: 64 * 1024,
            policy: EvictionPolicy::AllKeysLru,
        },
    );
    let empty = call(&service, "stats", json!(null))["result"].clone();
    assert_eq!(empty["used_memory"], 0, "{empty}");
    assert_eq!(empty["maxmemory_policy"], "allkeys-lru");
    for i in 0..2000 {
        let r = call(&service, "set", json!({"key": format!("k{i}"), "value": i}));
        assert_eq!(r["result"], true, "{r}");
    }
    call(&service, "get", json!({"key": "k1999"}));
    call(&service, "get", json!({"key": "nope"}));
    let full = call(&service, "stats", json!(null))["result"].clone();
    let keys = full["keys"].as_u64().unwrap();
    assert_eq!(
        full["evicted_keys"].as_u64().unwrap() + keys,
        2000,
        "{full}"
    );
    assert!(full["used_memory"].as_u64().unwrap() <= 64 * 1024, "{full}");
    assert_eq!(full["keyspace_hits"], 1, "{full}");
    assert_eq!(full["keyspace_misses"], 1, "{full}");
    assert_eq!(full["expired_keys"], 0, "{full}");
    // The default: 1 GiB, allkeys-lru.
    let default = call(&Service::new(), "stats", json!(null))["result"].clone();
    assert_eq!(default["maxmemory"], 1u64 << 30, "{default}");
    assert_eq!(default["maxmemory_policy"], "allkeys-lru");
}

#[test]
fn values_set_over_resp_read_back_over_json() {
    let service = Service::new();
    let cache = service.cache();
    let opt = SetOptions::default();
    cache
        .set(
            b"text",
            Value::Raw(Bytes::from_static(b"caf\xc3\xa9 \"q\"")),
            opt,
        )
        .unwrap();
    cache
        .set(b"binary", Value::Raw(Bytes::from_static(b"\xff\x00")), opt)
        .unwrap();
    cache
        .set(b"number", Value::Raw(Bytes::from_static(b"41")), opt)
        .unwrap();
    assert_eq!(
        call(&service, "get", json!({"key": "text"}))["result"],
        "café \"q\""
    );
    let binary = call(&service, "get", json!({"key": "binary"}));
    assert_eq!(error_code(&binary), "wrong_type");
    // The key is still there, and other methods work on it.
    assert_eq!(
        call(&service, "exists", json!({"key": "binary"}))["result"],
        true
    );
    assert_eq!(
        error_code(&call(&service, "incr", json!({"key": "binary"}))),
        "bad_params"
    );
    // RESP's "41" is an integer to incr.
    assert_eq!(
        call(&service, "incr", json!({"key": "number"}))["result"],
        42
    );
    // And a JSON set reads back over RESP as Redis would show it.
    call(&service, "set", json!({"key": "s", "value": "abc"}));
    call(&service, "set", json!({"key": "a", "value": [1, 2]}));
    assert_eq!(
        cache.get(b"s").unwrap().to_resp(),
        Bytes::from_static(b"abc")
    );
    assert_eq!(
        cache.get(b"a").unwrap().to_resp(),
        Bytes::from_static(b"[1,2]")
    );
}

#[test]
fn incr_errors_name_no_parser_positions() {
    let service = Service::new();
    for (value, message) in [
        (json!("abc"), "value is not an integer"),
        (json!(1.5), "value is not an integer"),
        (json!(1e30), "value is out of the i64 range"),
        (json!(u64::MAX), "value is out of the i64 range"),
    ] {
        call(&service, "set", json!({"key": "k", "value": value}));
        let r = call(&service, "incr", json!({"key": "k"}));
        assert_eq!(error_code(&r), "bad_params");
        assert_eq!(r["result"]["message"], message, "{value}");
    }
    call(&service, "set", json!({"key": "k", "value": i64::MAX}));
    let r = call(&service, "incr", json!({"key": "k"}));
    assert_eq!(r["result"]["message"], "increment would overflow");
    // A big integer stored as text is out of range, stated plainly.
    let body = br#"{"in":"set","params":{"key":"big","value":99999999999999999999}}"#;
    service.handle(&"test", body, &mut Vec::new(), false);
    let r = call(&service, "incr", json!({"key": "big"}));
    assert_eq!(r["result"]["message"], "value is out of the i64 range");
}
