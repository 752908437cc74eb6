//! The seed's client writes the 4-byte length and the body in two `sendall`
//! calls without TCP_NODELAY. Without help from the server, Nagle's algorithm
//! holds the body until the header is ACKed, and the server's kernel delays
//! that ACK (about 40 ms) hoping to piggyback it on a response that cannot come
//! before the body. Every model sets TCP_QUICKACK after a read that leaves a
//! frame incomplete, so such a client gets its answer at once.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

model_tests! {
    every_model: [a_two_write_client_without_nodelay_is_not_delayed],
    not_pool: [],
}

/// 50 pings written as the seed writes them; the median round trip must be
/// far below the 40 ms of a delayed ACK (about 0.1 ms on loopback with
/// QUICKACK; 20 ms leaves room for a loaded CI machine).
fn a_two_write_client_without_nodelay_is_not_delayed(model: Model) {
    let server = TestServer::start(model);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_nodelay(false).unwrap(); // the seed's socket: Nagle on
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let frame = request("ping", json!("seed"));
    let mut rtts = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        s.write_all(&frame[..4]).unwrap();
        s.write_all(&frame[4..]).unwrap();
        let response = read_response(&mut s);
        rtts.push(start.elapsed());
        assert_result(&response, "pong", &json!("seed"));
    }
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median round trip {median:?} (all: {rtts:?})"
    );
}
