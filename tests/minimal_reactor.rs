//! `examples/minimal_reactor.rs` must really serve the protocol: run the built
//! example on port 0 and talk to it as a client would.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::support::*;
use serde_json::json;

/// The example binary `cargo test` builds next to this test's directory.
fn example_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = target.join("examples").join("minimal_reactor");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it (or run `cargo build --example minimal_reactor`)",
        path.display()
    );
    path
}

struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Example, SocketAddr) {
    let mut child = Command::new(example_path())
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the example");
    let stdout = child.stdout.take().expect("stdout pipe");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the example's first line");
    let addr = parse_listening(&line).unwrap_or_else(|| panic!("no address in {line:?}"));
    (Example(child), addr)
}

#[test]
fn minimal_reactor_serves_ping_pipelines_and_split_frames() {
    let (_example, addr) = start();

    let mut client = client_for(addr);
    assert_eq!(client.call("ping", "hi").unwrap(), json!("hi"));
    assert_eq!(
        client.call("fib", &90).unwrap(),
        json!(2880067194370816120u64)
    );

    // A pipeline of three, answered in order.
    let mut s = raw_connect(addr);
    let mut batch = request_with_id("ping", json!(1), json!(1));
    batch.extend(request_with_id(
        "set",
        json!({"key": "k", "value": 7}),
        json!(2),
    ));
    batch.extend(request_with_id("get", json!({"key": "k"}), json!(3)));
    s.write_all(&batch).unwrap();
    for (id, result) in [(1, json!(1)), (2, json!(true)), (3, json!(7))] {
        let r = read_response(&mut s);
        assert_eq!(r["id"], json!(id));
        assert_eq!(r["result"], result);
    }

    // The seed's client writes the length and the body separately.
    let frame = request("ping", json!("split"));
    s.write_all(&frame[..4]).unwrap();
    s.write_all(&frame[4..]).unwrap();
    assert_result(&read_response(&mut s), "pong", &json!("split"));

    // Two clients at once on one thread.
    let mut other = client_for(addr);
    assert_eq!(other.call("ping", "other").unwrap(), json!("other"));
    assert_eq!(client.call("ping", "again").unwrap(), json!("again"));
}
