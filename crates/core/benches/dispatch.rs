//! Micro-benchmarks of the request path every server model shares: decode a
//! frame, dispatch it to its method, encode the response — `session::json::process`
//! on an in-memory buffer, no sockets. Reported per request (ns), for `ping`,
//! `get` and `set`, and per batch for 16 pipelined pings (`ping_x16`).
//!
//! Run: `cargo bench --bench dispatch` (criterion prints time per iteration;
//! each iteration answers one request).
//!
//! `cargo bench --bench dispatch -- envelope` compares the hand-written
//! envelope scanner (`protocol::parse_request`) with serde_json's derive
//! borrowing `&RawValue`s, the obvious alternative, on the same bodies.

mod serde_envelope;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use reactor_rpc_core::service::Service;
use reactor_rpc_core::session::json::{process, JsonSession};
use reactor_rpc_core::session::Options;
use reactor_rpc_protocol::frame::encode;
use reactor_rpc_protocol::json::MAX_DEPTH;
use reactor_rpc_protocol::parse_request;

use serde_envelope::{exceeds_depth, set_body, Envelope, GET, PING};

const OPT: Options = Options {
    max_frame: 1 << 20,
    offload: true,
    max_output: usize::MAX,
    max_reply: reactor_rpc_core::session::DEFAULT_MAX_REPLY,
    max_command: reactor_rpc_protocol::resp::DEFAULT_MAX_COMMAND,
};

fn one_request(c: &mut Criterion, name: &str, service: &Service, body: &str) {
    let mut input = Vec::new();
    encode(&mut input, body.as_bytes());
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            let p = process(
                service,
                &mut JsonSession::default(),
                &"bench",
                black_box(&input),
                &mut out,
                OPT,
            );
            debug_assert_eq!(p.answered, 1);
            black_box(out.len())
        })
    });
    group.finish();
}

/// `n` pings in one buffer, answered by one `process` call: a pipelined
/// batch, where per-batch costs (the metrics' clock reads) are shared.
fn batch_of(c: &mut Criterion, name: &str, service: &Service, body: &str, n: u64) {
    let mut input = Vec::new();
    for _ in 0..n {
        encode(&mut input, body.as_bytes());
    }
    let mut out = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(n));
    group.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            let p = process(
                service,
                &mut JsonSession::default(),
                &"bench",
                black_box(&input),
                &mut out,
                OPT,
            );
            debug_assert_eq!(p.answered as u64, n);
            black_box(out.len())
        })
    });
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let service = Service::new();
    one_request(c, "ping", &service, PING);
    batch_of(c, "ping_x16", &service, PING, 16);
    // The key exists from here on, so get hits.
    one_request(c, "set", &service, &set_body());
    one_request(c, "get", &service, GET);
}

/// Parses the envelope three ways and returns something of each result, so
/// that nothing is optimised away.
fn envelope(c: &mut Criterion) {
    let set = set_body();
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    for (name, body) in [("ping", PING), ("get", GET), ("set", set.as_str())] {
        let body = body.as_bytes();
        // Both must see the same request.
        let ours = parse_request(body).unwrap();
        let theirs: Envelope = serde_json::from_slice(body).unwrap();
        assert_eq!(ours.method, theirs.method);
        assert_eq!(ours.params().get(), theirs.params.unwrap().get());
        assert_eq!(ours.id.unwrap().get(), theirs.id.unwrap().get());

        group.bench_function(format!("scanner/{name}"), |b| {
            b.iter(|| {
                let r = parse_request(black_box(body)).unwrap();
                (
                    r.method.len(),
                    r.params().get().len(),
                    r.id.map(|id| id.get().len()),
                )
            })
        });
        group.bench_function(format!("serde_raw/{name}"), |b| {
            b.iter(|| {
                let r: Envelope = serde_json::from_slice(black_box(body)).unwrap();
                (
                    r.method.len(),
                    r.params.map(|p| p.get().len()),
                    r.id.map(|id| id.get().len()),
                )
            })
        });
        group.bench_function(format!("serde_raw_depth/{name}"), |b| {
            b.iter(|| {
                let body = black_box(body);
                assert!(!exceeds_depth(body, MAX_DEPTH));
                let r: Envelope = serde_json::from_slice(body).unwrap();
                (
                    r.method.len(),
                    r.params.map(|p| p.get().len()),
                    r.id.map(|id| id.get().len()),
                )
            })
        });
    }
    group.finish();
}

/// What F(n) costs on whichever thread computes it (fast doubling plus the
/// decimal conversion): the data behind `fib::HEAVY_FROM`, the n from which
/// `fib` leaves the event loop for a worker.
fn fib(c: &mut Criterion) {
    let mut group = c.benchmark_group("fib");
    for n in [1_000u64, 2_000, 5_000, 10_000, 100_000] {
        group.bench_function(n.to_string(), |b| {
            b.iter(|| reactor_rpc_core::service::fib::fib(black_box(n)).to_str_radix(10))
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch, envelope, fib);
criterion_main!(benches);
