//! Micro-benchmarks of the request path every server model shares: decode a
//! frame, dispatch it to its method, encode the response — `dispatch::process`
//! on an in-memory buffer, no sockets. Reported per request (ns), for `ping`,
//! `get` and `set`.
//!
//! Run: `cargo bench --bench dispatch` (criterion prints time per iteration;
//! each iteration answers one request).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use reactor_rpc::dispatch::{process, Options};
use reactor_rpc::protocol::frame::encode;
use reactor_rpc::service::Service;

const OPT: Options = Options {
    max_frame: 1 << 20,
    offload: true,
    max_output: usize::MAX,
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
            let p = process(service, &"bench", black_box(&input), &mut out, OPT);
            debug_assert_eq!(p.answered, 1);
            black_box(out.len())
        })
    });
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let service = Service::new();
    let value = "x".repeat(32);
    let set =
        format!(r#"{{"in":"set","params":{{"key":"k42","value":"{value}"}},"id":1000000000001}}"#);
    one_request(
        c,
        "ping",
        &service,
        r#"{"in":"ping","params":"hello","id":1000000000001}"#,
    );
    // The key exists from here on, so get hits.
    one_request(c, "set", &service, &set);
    one_request(
        c,
        "get",
        &service,
        r#"{"in":"get","params":{"key":"k42"},"id":1000000000001}"#,
    );
}

/// What F(n) costs on whichever thread computes it (fast doubling plus the
/// decimal conversion): the data behind `fib::HEAVY_FROM`, the n from which
/// `fib` leaves the event loop for a worker.
fn fib(c: &mut Criterion) {
    let mut group = c.benchmark_group("fib");
    for n in [1_000u64, 2_000, 5_000, 10_000, 100_000] {
        group.bench_function(n.to_string(), |b| {
            b.iter(|| reactor_rpc::service::fib::fib(black_box(n)).to_str_radix(10))
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch, fib);
criterion_main!(benches);
