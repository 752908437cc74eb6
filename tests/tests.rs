//! The system tests: one binary, a module per suite, so that the shared
//! harness (`support/`) and the library compile and link once.
//!
//! Every suite drives real sockets on 127.0.0.1 and port 0 and waits on
//! events with deadlines, never on fixed sleeps. `model_tests!` (in
//! `support`) runs a list of tests once per server model. Run one suite with
//! `cargo test --test tests SUITE::`, e.g. `cargo test --test tests conformance::`.
//! Three suites stay binaries of their own because they measure the whole
//! process: `alloc_count` and `tls_memory` (a counting global allocator) and
//! `cache_memory` (the process's resident memory).

#[macro_use]
mod support;
mod auth;
mod bench_harness;
mod cache_eviction;
mod cache_expiry;
mod cache_json;
mod cache_scan;
mod cli;
mod client_kill;
mod cluster;
mod codec_props;
mod conformance;
mod daemon;
mod dispatch_props;
mod final_save;
mod hostile;
mod http_props;
mod input_bounds;
mod json_redis_methods;
mod json_scan;
mod memory_bounds;
mod metrics_scrape;
mod minimal_reactor;
mod offload;
mod ops_metrics;
mod ops_pidfile;
mod ops_snapshot;
mod ops_systemd;
mod process;
mod redis_diff;
mod redis_props;
mod redis_tools;
mod reply_bounds;
mod resp_clients;
mod resp_commands;
mod resp_props;
mod resp_watch_bounds;
mod security;
mod shared_output;
mod slow_clients;
mod snapshot_daemon;
mod snapshot_safety;
mod soak;
mod threaded_models;
mod tls;
mod two_write;
