//! The envelope scanner against serde_json, measured interleaved: every round
//! times a batch of each parser on the same body, in rotating order, so that
//! load from other processes on a shared machine falls on all of them alike
//! (criterion measures one after the other, so a burst of load lands on
//! whichever runs then). Prints, per body and parser, the minimum and the
//! median time per parse over the rounds, and serde_json's over the scanner's.
//!
//! Run: `cargo bench --bench envelope_interleaved -p reactor-rpc-core`.

mod serde_envelope;

use std::hint::black_box;
use std::time::Instant;

use reactor_rpc_protocol::json::MAX_DEPTH;
use reactor_rpc_protocol::parse_request;

use serde_envelope::{exceeds_depth, set_body, Envelope, GET, PING};

fn scanner(body: &[u8]) -> usize {
    let r = parse_request(body).unwrap();
    r.method.len() + r.params().get().len() + r.id.map_or(0, |id| id.get().len())
}

fn serde_raw(body: &[u8]) -> usize {
    let r: Envelope = serde_json::from_slice(body).unwrap();
    r.method.len() + r.params.map_or(0, |p| p.get().len()) + r.id.map_or(0, |id| id.get().len())
}

fn serde_raw_depth(body: &[u8]) -> usize {
    assert!(!exceeds_depth(body, MAX_DEPTH));
    serde_raw(body)
}

type Parser = fn(&[u8]) -> usize;

const PARSERS: [(&str, Parser); 3] = [
    ("scanner", scanner),
    ("serde_raw", serde_raw),
    ("serde_raw_depth", serde_raw_depth),
];

fn main() {
    // `cargo test --benches` runs this without `--bench`: one quick round.
    let measuring = std::env::args().any(|a| a == "--bench");
    let (rounds, batch) = if measuring { (400, 20_000) } else { (1, 10) };
    let set = set_body();
    if measuring {
        println!("{rounds} rounds of {batch} parses each; ns per parse");
    } else {
        println!("test mode (no --bench): one short round, not a measurement");
    }
    for (name, body) in [("ping", PING), ("get", GET), ("set", set.as_str())] {
        let body = body.as_bytes();
        let mut ns: [Vec<f64>; 3] = Default::default();
        for round in 0..rounds {
            for k in 0..PARSERS.len() {
                let i = (round + k) % PARSERS.len();
                let parse = PARSERS[i].1;
                let start = Instant::now();
                let mut sink = 0;
                for _ in 0..batch {
                    sink += parse(black_box(body));
                }
                black_box(sink);
                ns[i].push(start.elapsed().as_nanos() as f64 / f64::from(batch));
            }
        }
        let mut stats = Vec::new();
        for (i, (parser, _)) in PARSERS.iter().enumerate() {
            ns[i].sort_by(f64::total_cmp);
            let (min, median) = (ns[i][0], ns[i][ns[i].len() / 2]);
            stats.push((min, median));
            println!("{name:5} {parser:16} min {min:7.1}  median {median:7.1}");
        }
        for (i, (parser, _)) in PARSERS.iter().enumerate().skip(1) {
            println!(
                "{name:5} {parser:16} / scanner: {:.2}x by the minimum, {:.2}x by the median",
                stats[i].0 / stats[0].0,
                stats[i].1 / stats[0].1
            );
        }
    }
}
