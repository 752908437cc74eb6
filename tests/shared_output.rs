//! Large cached values are queued by reference (`reactor_rpc::output`), and
//! the bytes on the wire are exactly what copying them produced: JSON `get`
//! and RESP `GET`, values on both sides of the splice threshold, pipelined
//! mixes, in process and over sockets in every model (the reactor writes the
//! splices with `write_vectored`, across partial writes; the threaded models
//! write them chunk by chunk; tokio flattens them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use reactor_rpc::output::{Output, SHARE_MIN};
use reactor_rpc::session::{json, resp, Options, Stop};
use serde_json::{json, Value};

use crate::support::*;

/// Lengths of the stored JSON text (quotes included) or RESP bytes: under,
/// at and over the splice threshold, and 1 MiB.
const SIZES: [usize; 6] = [
    10,
    SHARE_MIN - 1,
    SHARE_MIN,
    SHARE_MIN + 1,
    100_000,
    1 << 20,
];

/// A JSON string whose text is `len` bytes long, quotes included.
fn json_string(len: usize, fill: char) -> String {
    fill.to_string().repeat(len - 2)
}

/// The JSON sets, and the pipelined gets with the exact bytes they must
/// produce: every key, a missing key, a ping, and an array value.
fn json_case() -> (Vec<u8>, usize, Vec<u8>, Vec<u8>) {
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    let mut expect = Vec::new();
    let mut id = 0;
    let mut get = |key: &str, text: &str, gets: &mut Vec<u8>, expect: &mut Vec<u8>| {
        gets.extend(request_with_id("get", json!({"key": key}), json!(id)));
        let body = format!(r#"{{"out":"get","result":{text},"id":{id}}}"#);
        expect.extend(frame(body.as_bytes()));
        id += 1;
    };
    for (i, &len) in SIZES.iter().enumerate() {
        let value = json_string(len, char::from(b'a' + i as u8));
        sets.extend(request(
            "set",
            json!({"key": format!("s{i}"), "value": value}),
        ));
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(text.len(), len);
        get(&format!("s{i}"), &text, &mut gets, &mut expect);
    }
    let array: Vec<u32> = vec![7; 20_000];
    sets.extend(request("set", json!({"key": "arr", "value": array})));
    let array_text = serde_json::to_string(&array).unwrap();
    get("arr", &array_text, &mut gets, &mut expect);
    get("missing", "null", &mut gets, &mut expect);
    gets.extend(request_with_id("ping", json!("p"), json!("x")));
    expect.extend(frame(br#"{"out":"pong","result":"p","id":"x"}"#));
    // The largest once more, after the others: the same bytes queued twice.
    let last = SIZES.len() - 1;
    let text = serde_json::to_string(&json_string(SIZES[last], 'f')).unwrap();
    get(&format!("s{last}"), &text, &mut gets, &mut expect);
    let spliced = SIZES.iter().filter(|&&n| n >= SHARE_MIN).count() + 2;
    (sets, spliced, gets, expect)
}

fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).into_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bulk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// RESP sets of raw bytes, and pipelined GETs of them, of a missing key, and
/// of the JSON-set strings (read as their content, without the quotes).
fn resp_case() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    let mut expect = Vec::new();
    for (i, &len) in SIZES.iter().enumerate() {
        let key = format!("r{i}");
        let value: Vec<u8> = (0..len).map(|j| (j % 251) as u8).collect();
        sets.extend(resp_command(&[b"SET", key.as_bytes(), &value]));
        gets.extend(resp_command(&[b"GET", key.as_bytes()]));
        expect.extend(bulk(&value));
        gets.extend(resp_command(&[b"GET", format!("s{i}").as_bytes()]));
        expect.extend(bulk(
            json_string(len, char::from(b'a' + i as u8)).as_bytes(),
        ));
    }
    gets.extend(resp_command(&[b"GET", b"nope"]));
    expect.extend_from_slice(b"$-1\r\n");
    gets.extend(resp_command(&[b"PING"]));
    expect.extend_from_slice(b"+PONG\r\n");
    (sets, gets, expect)
}

const OPTS: Options = Options {
    max_frame: 4 << 20,
    offload: false,
    max_output: usize::MAX,
    max_reply: reactor_rpc::session::DEFAULT_MAX_REPLY,
    max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
};

#[test]
fn spliced_responses_are_byte_identical_in_process() {
    let service = Service::new();
    let (sets, spliced, gets, expect) = json_case();
    let mut out = Vec::new();
    let p = json::process(
        &service,
        &mut Default::default(),
        &"t",
        &sets,
        &mut out,
        OPTS,
    );
    assert_eq!(p.consumed, sets.len());

    // Copied into a vector, as before.
    let mut flat = Vec::new();
    json::process(
        &service,
        &mut Default::default(),
        &"t",
        &gets,
        &mut flat,
        OPTS,
    );
    assert!(
        flat == expect,
        "JSON responses differ from the expected bytes"
    );
    // Queued by reference: the same bytes once flattened.
    let mut output = Output::new();
    let p = json::process_output(
        &service,
        &mut Default::default(),
        &"t",
        &gets,
        &mut output,
        OPTS,
    );
    assert_eq!(p.consumed, gets.len());
    assert_eq!(output.splices(), spliced);
    assert_eq!(output.total_len(), expect.len());
    assert!(output.len() < 64 * 1024, "owned {} bytes", output.len());
    assert!(output.into_vec() == expect, "spliced JSON responses differ");

    let (sets, gets, expect) = resp_case();
    let mut conn = resp::RespSession::new(6379);
    let opt = Options {
        max_frame: 4 << 20,
        offload: false,
        max_output: usize::MAX,
        max_reply: reactor_rpc::session::DEFAULT_MAX_REPLY,
        max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
    };
    let mut out = Vec::new();
    let p = resp::process(&service, &mut conn, &sets, &mut out, opt);
    assert_eq!(p.consumed, sets.len());
    let mut flat = Vec::new();
    resp::process(&service, &mut conn, &gets, &mut flat, opt);
    assert!(
        flat == expect,
        "RESP replies differ from the expected bytes"
    );
    let mut output = Output::new();
    resp::process_output(&service, &mut conn, &gets, &mut output, opt);
    let large = SIZES.iter().filter(|&&n| n >= SHARE_MIN).count();
    // Raw values at the threshold are spliced; a JSON string's content is two
    // bytes shorter than its text, so the ones at SHARE_MIN and one over are
    // copied.
    assert_eq!(output.splices(), large + large - 2);
    assert!(output.into_vec() == expect, "spliced RESP replies differ");
}

/// `max_output` counts spliced bytes at full size: pipelined gets of a 1 MiB
/// value stop once 4 MiB are queued, as they did when each was copied.
#[test]
fn the_per_connection_stop_counts_spliced_bytes_in_full() {
    let service = Service::new();
    let value = json_string(1 << 20, 'v');
    let mut out = Vec::new();
    let set = request("set", json!({"key": "big", "value": value}));
    json::process(
        &service,
        &mut Default::default(),
        &"t",
        &set,
        &mut out,
        OPTS,
    );
    let mut gets = Vec::new();
    for i in 0..100 {
        gets.extend(request_with_id("get", json!({"key": "big"}), json!(i)));
    }
    let opt = Options {
        max_output: 4 << 20,
        ..OPTS
    };
    let mut output = Output::new();
    let p = json::process_output(
        &service,
        &mut Default::default(),
        &"t",
        &gets,
        &mut output,
        opt,
    );
    assert_eq!(p.stop, Stop::OutputFull);
    assert_eq!((p.answered, output.splices()), (4, 4));
    assert!(output.total_len() >= 4 << 20);
}

/// Reads exactly `n` bytes in small pieces, so the server meets a full
/// socket buffer and resumes partway through a value many times.
fn read_slowly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    let mut at = 0;
    while at < n {
        let end = (at + 7_777).min(n);
        s.read_exact(&mut got[at..end]).expect("the expected bytes");
        at = end;
    }
    got
}

fn over_sockets(model: reactor_rpc::Model) {
    let server = TestServer::with(model, |c| {
        c.resp_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.limits.max_frame = 4 << 20;
    });
    let (sets, _, gets, expect) = json_case();
    let mut s = server.raw();
    s.write_all(&sets).unwrap();
    for _ in 0..SIZES.len() + 1 {
        assert_eq!(read_response(&mut s)["result"], Value::Bool(true));
    }
    // Three rounds pipelined at once: about 7 MiB, past --max-output (4 MiB)
    // and the socket buffers, so writes are partial and decoding pauses.
    let rounds = 3;
    s.write_all(&gets.repeat(rounds)).unwrap();
    let got = read_slowly(&mut s, expect.len() * rounds);
    assert!(got == expect.repeat(rounds), "{model}: JSON bytes differ");

    let (sets, gets, expect) = resp_case();
    let mut r = raw_connect(server.resp_addr());
    r.write_all(&sets).unwrap();
    let oks = read_slowly(&mut r, SIZES.len() * 5);
    assert_eq!(oks, b"+OK\r\n".repeat(SIZES.len()));
    r.write_all(&gets.repeat(rounds)).unwrap();
    let got = read_slowly(&mut r, expect.len() * rounds);
    assert!(got == expect.repeat(rounds), "{model}: RESP bytes differ");
}

model_tests! {
    every_model: [over_sockets],
    not_pool: [],
}
