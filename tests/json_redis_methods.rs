//! The JSON counterparts of Redis's multi-key and keyspace commands
//! (`mget`, `mset`, `getdel`, `scan`, `flush`), in-process: results, errors,
//! and the one keyspace they share with RESP.

use std::collections::BTreeSet;

use reactor_rpc::session::resp::{process, RespSession as Connection};
use reactor_rpc::session::Options;
use reactor_rpc::Service;
use serde_json::{json, Value};

fn call(s: &Service, method: &str, params: Value) -> Value {
    let body = json!({"in": method, "params": params}).to_string();
    let mut out = Vec::new();
    s.handle(&"test", body.as_bytes(), &mut out, false);
    serde_json::from_slice(&out[4..]).expect("a JSON response")
}

fn result(s: &Service, method: &str, params: Value) -> Value {
    let r = call(s, method, params);
    assert_eq!(r["out"], method, "{r}");
    r["result"].clone()
}

fn error_code(s: &Service, method: &str, params: Value) -> String {
    let r = call(s, method, params);
    assert_eq!(r["out"], "error", "{r}");
    r["result"]["code"].as_str().unwrap().to_owned()
}

fn resp(s: &Service, c: &mut Connection, line: &str) -> String {
    let mut input = Vec::new();
    let words: Vec<&str> = line.split(' ').collect();
    input.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
    for w in words {
        input.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    let mut out = Vec::new();
    let opt = Options {
        max_frame: 1 << 20,
        offload: false,
        max_output: usize::MAX,
        max_reply: reactor_rpc::session::DEFAULT_MAX_REPLY,
        max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
    };
    process(s, c, &input, &mut out, opt);
    String::from_utf8(out).unwrap()
}

#[test]
fn mset_mget_getdel() {
    let s = Service::new();
    assert_eq!(
        result(
            &s,
            "mset",
            json!({"values": {"a": 1, "b": [2, 3], "c": "x", "a": 4}})
        ),
        json!(true)
    );
    assert_eq!(
        result(&s, "mget", json!({"keys": ["a", "b", "c", "nope"]})),
        json!([4, [2, 3], "x", null])
    );
    assert_eq!(result(&s, "getdel", json!({"key": "c"})), json!("x"));
    assert_eq!(result(&s, "getdel", json!({"key": "c"})), json!(null));
    assert_eq!(result(&s, "mget", json!({"keys": []})), json!([]));
    for bad in [
        json!({"keys": "a"}),
        json!({"keys": [1]}),
        json!(["a"]),
        json!(null),
    ] {
        assert_eq!(error_code(&s, "mget", bad.clone()), "bad_params", "{bad}");
    }
    for bad in [json!({"values": [1]}), json!({}), json!({"values": 3})] {
        assert_eq!(error_code(&s, "mset", bad.clone()), "bad_params", "{bad}");
    }
    // One keyspace: RESP sees JSON keys and the other way round.
    let mut c = Connection::new(6379);
    assert_eq!(
        resp(&s, &mut c, "MGET a b"),
        "*2\r\n$1\r\n4\r\n$5\r\n[2,3]\r\n"
    );
    assert_eq!(resp(&s, &mut c, "TYPE b"), "+string\r\n");
    assert_eq!(resp(&s, &mut c, "MSET r 1 q hello"), "+OK\r\n");
    // RESP stores bytes: JSON reads them as strings (PROTOCOL.md's value table).
    assert_eq!(
        result(&s, "mget", json!({"keys": ["r", "q"]})),
        json!(["1", "hello"])
    );
}

#[test]
fn scan_walks_every_key_and_flush_empties() {
    let s = Service::new();
    let values: serde_json::Map<String, Value> =
        (0..300).map(|i| (format!("k{i}"), json!(i))).collect();
    result(&s, "mset", json!({"values": values}));
    let mut c = Connection::new(6379);
    assert_eq!(resp(&s, &mut c, "SET resp:key 1"), "+OK\r\n");
    let mut seen = BTreeSet::new();
    let mut cursor = json!("0");
    loop {
        let r = result(&s, "scan", json!({"cursor": cursor, "count": 25}));
        for k in r["keys"].as_array().unwrap() {
            seen.insert(k.as_str().unwrap().to_owned());
        }
        cursor = r["cursor"].clone();
        if cursor == json!("0") {
            break;
        }
    }
    assert_eq!(seen.len(), 301);
    assert!(seen.contains("resp:key"));
    let r = result(&s, "scan", json!({"match": "k1?", "count": 100000}));
    let keys: BTreeSet<&str> = r["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        keys.len() <= 10 && keys.iter().all(|k| k.len() == 3 && k.starts_with("k1")),
        "{keys:?}"
    );
    assert!(result(&s, "scan", Value::Null)["keys"].is_array());
    assert_eq!(error_code(&s, "scan", json!({"cursor": "x"})), "bad_params");
    assert_eq!(error_code(&s, "scan", json!({"cursor": -1})), "bad_params");
    assert_eq!(error_code(&s, "scan", json!({"count": 0})), "bad_params");
    assert_eq!(result(&s, "flush", json!({"async": true})), json!(true));
    assert_eq!(resp(&s, &mut c, "DBSIZE"), ":0\r\n");
    result(&s, "mset", json!({"values": {"a": 1}}));
    assert_eq!(result(&s, "flush", Value::Null), json!(true));
    assert_eq!(resp(&s, &mut c, "DBSIZE"), ":0\r\n");
    assert_eq!(
        error_code(&s, "flush", json!({"async": "yes"})),
        "bad_params"
    );
}
