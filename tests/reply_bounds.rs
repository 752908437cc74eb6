//! `--max-reply`: a request whose reply would be larger than the bound is
//! answered with an error instead, so that a few bytes sent cannot make the
//! server build gigabytes (an `MGET`/`mget` naming one key a million times,
//! `KEYS *`, a `SCAN` step over huge keys, an `EXEC` of such commands). The
//! reply is measured as it is built: bytes owned, plus a fixed cost per
//! shared cached value. In-process through the sessions, and over the wire
//! in every model.

use std::io::Write;

use reactor_rpc::output::Output;
use reactor_rpc::session::json::{self, JsonSession};
use reactor_rpc::session::resp::{self, RespSession};
use reactor_rpc::session::Options;
use reactor_rpc::Service;
use serde_json::{json, Value};

use crate::support::redis::Conn;
use crate::support::*;

model_tests! {
    every_model: [an_amplifying_request_is_refused_over_the_wire],
    not_pool: [],
}

/// A bound small enough to test: 1 MiB.
const MAX_REPLY: usize = 1 << 20;

fn opts() -> Options {
    Options {
        max_reply: MAX_REPLY,
        ..Options::new(64 << 20)
    }
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut b = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        b.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        b.extend_from_slice(a);
        b.extend_from_slice(b"\r\n");
    }
    b
}

/// Runs one RESP command in `conn`; the reply, flattened.
fn run(s: &Service, conn: &mut RespSession, args: &[&[u8]]) -> Vec<u8> {
    let mut out = Output::new();
    let input = command(args);
    let p = resp::process_output(s, conn, &input, &mut out, opts());
    assert_eq!(p.consumed, input.len());
    out.into_vec()
}

fn too_large(reply: &[u8]) -> bool {
    reply.starts_with(b"-ERR reply too large: more than 1048576 bytes (--max-reply)")
}

#[test]
fn mget_of_one_key_named_many_times_is_refused() {
    let s = Service::new();
    let mut c = RespSession::new(6379);
    let value = vec![b'v'; 8 * 1024]; // copied, not shared
    assert_eq!(run(&s, &mut c, &[b"SET", b"k", &value]), b"+OK\r\n");
    // 100 copies of 8 KiB (800 KiB) fit in 1 MiB; 100 100 do not.
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(std::iter::repeat_n(b"k".as_slice(), 100));
    let reply = run(&s, &mut c, &mget);
    assert!(
        reply.starts_with(b"*100\r\n$8192\r\n"),
        "{:?}",
        &reply[..20]
    );
    mget.extend(std::iter::repeat_n(b"k".as_slice(), 100_000));
    let reply = run(&s, &mut c, &mget);
    assert!(too_large(&reply), "{:?}", String::from_utf8_lossy(&reply));
    // The connection goes on.
    assert_eq!(run(&s, &mut c, &[b"PING"]), b"+PONG\r\n");
    // Shared values count at their bookkeeping cost, not their size.
    let big = vec![b'b'; 64 * 1024];
    assert_eq!(run(&s, &mut c, &[b"SET", b"big", &big]), b"+OK\r\n");
    let mut shared: Vec<&[u8]> = vec![b"MGET"];
    shared.extend(std::iter::repeat_n(b"big".as_slice(), 1000));
    let mut out = Output::new();
    let input = command(&shared);
    resp::process_output(&s, &mut c, &input, &mut out, opts());
    assert_eq!(out.splices(), 1000, "each copy shared, none copied");
    assert_eq!(out.total_len(), 1000 * (64 * 1024 + 10) + 7);
    shared.extend(std::iter::repeat_n(b"big".as_slice(), 100_000));
    assert!(too_large(&run(&s, &mut c, &shared)));
}

#[test]
fn keys_and_scan_over_the_bound_are_refused() {
    let s = Service::new();
    let mut c = RespSession::new(6379);
    let long = |i: usize| format!("{i:0>4096}");
    for i in 0..300 {
        assert_eq!(
            run(&s, &mut c, &[b"SET", long(i).as_bytes(), b"v"]),
            b"+OK\r\n"
        );
    }
    // 300 keys of 4 KiB: 1.2 MiB of names.
    assert!(too_large(&run(&s, &mut c, &[b"KEYS", b"*"])));
    let reply = run(&s, &mut c, &[b"KEYS", b"00000000001*"]);
    assert!(reply.starts_with(b"*"), "a small KEYS is answered");
    assert!(too_large(&run(
        &s,
        &mut c,
        &[b"SCAN", b"0", b"COUNT", b"1000"]
    )));
    let reply = run(&s, &mut c, &[b"SCAN", b"0", b"COUNT", b"10"]);
    assert!(reply.starts_with(b"*2\r\n"), "a small step is answered");
}

#[test]
fn an_exec_over_the_bound_runs_whole_and_answers_the_error() {
    let s = Service::new();
    let mut c = RespSession::new(6379);
    let value = vec![b'v'; 8 * 1024];
    assert_eq!(run(&s, &mut c, &[b"SET", b"k", &value]), b"+OK\r\n");
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(std::iter::repeat_n(b"k".as_slice(), 100));
    assert_eq!(run(&s, &mut c, &[b"MULTI"]), b"+OK\r\n");
    for _ in 0..3 {
        assert_eq!(run(&s, &mut c, &mget), b"+QUEUED\r\n");
    }
    assert_eq!(run(&s, &mut c, &[b"INCR", b"n"]), b"+QUEUED\r\n");
    assert!(too_large(&run(&s, &mut c, &[b"EXEC"])));
    // The transaction ran whole: its last command too.
    assert_eq!(run(&s, &mut c, &[b"GET", b"n"]), b"$1\r\n1\r\n");
    assert_eq!(run(&s, &mut c, &[b"EXEC"]), b"-ERR EXEC without MULTI\r\n");
}

#[test]
fn getrange_of_a_large_value_shares_it() {
    let s = Service::new();
    let mut c = RespSession::new(6379);
    let value = vec![b'x'; 256 * 1024];
    assert_eq!(run(&s, &mut c, &[b"SET", b"k", &value]), b"+OK\r\n");
    let mut out = Output::new();
    let input = command(&[b"GETRANGE", b"k", b"1", b"-2"]);
    resp::process_output(&s, &mut c, &input, &mut out, opts());
    assert_eq!(out.splices(), 1, "the range is a slice of the cached bytes");
    let flat = out.into_vec();
    assert!(flat.starts_with(b"$262142\r\nxxx"));
    assert!(flat.ends_with(b"xx\r\n"));
    assert_eq!(
        run(&s, &mut c, &[b"GETRANGE", b"k", b"0", b"2"]),
        b"$3\r\nxxx\r\n"
    );
}

/// One JSON request through a session with [`opts`]: the response's result.
fn call(s: &Service, method: &str, params: Value) -> Value {
    let mut out = Vec::new();
    let frame = request(method, params);
    json::process(
        s,
        &mut JsonSession::default(),
        &"t",
        &frame,
        &mut out,
        opts(),
    );
    let body = &out[reactor_rpc::protocol::HEADER_LEN..];
    serde_json::from_slice::<Value>(body).expect("a response")["result"].clone()
}

#[test]
fn json_mget_and_scan_over_the_bound_are_refused() {
    let s = Service::new();
    let value = "v".repeat(8 * 1024);
    call(&s, "set", json!({"key": "k", "value": value}));
    let few: Vec<&str> = vec!["k"; 100];
    assert_eq!(
        call(&s, "mget", json!({"keys": few}))
            .as_array()
            .map(Vec::len),
        Some(100)
    );
    let many: Vec<&str> = vec!["k"; 10_000];
    let refused = call(&s, "mget", json!({"keys": many}));
    assert_eq!(refused["code"], "reply_too_large", "{refused}");
    for i in 0..300 {
        call(&s, "set", json!({"key": format!("{i:0>4096}"), "value": 1}));
    }
    let refused = call(&s, "scan", json!({"count": 1000}));
    assert_eq!(refused["code"], "reply_too_large", "{refused}");
    assert!(call(&s, "scan", json!({"count": 10}))["keys"].is_array());
}

fn an_amplifying_request_is_refused_over_the_wire(model: Model) {
    let server = TestServer::with(model, |c| {
        c.limits.max_reply = MAX_REPLY;
        c.resp_addr = Some("127.0.0.1:0".parse().expect("addr"));
    });
    let mut r = Conn::tcp(server.resp_addr());
    let value = vec![b'v'; 8 * 1024];
    assert_eq!(r.call(&[b"SET", b"k", &value]), b"+OK\r\n");
    // About 700 KB sent, a 1.6 GB reply asked for.
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(std::iter::repeat_n(b"k".as_slice(), 200_000));
    assert!(too_large(&r.call(&mget)));
    assert_eq!(r.call(&[b"PING"]), b"+PONG\r\n");

    let mut c = server.client();
    let many: Vec<&str> = vec!["k"; 200_000];
    let refused = c.call("mget", &json!({"keys": many})).unwrap_err();
    assert_eq!(
        refused.code(),
        Some(reactor_rpc::protocol::ErrorCode::ReplyTooLarge)
    );
    assert_eq!(c.call("ping", &1).unwrap(), 1);
    assert_eq!(stats(&mut c)["limits"]["max_reply"], MAX_REPLY);
    let mut raw = server.raw();
    raw.write_all(&request("ping", json!(2))).unwrap();
    assert_eq!(read_response(&mut raw)["result"], 2);
}
