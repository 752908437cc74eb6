//! What a cache key really costs: the process's resident memory (RSS) growth
//! for N keys, next to the cache's own estimate (`used_memory`, what
//! `--maxmemory` bounds).
//!
//! `cargo run --release --example cache_memory -- [KEYS] [KEY_BYTES] [VALUE_BYTES] [TTL]`
//! (defaults: 1000000 16 16; a fourth argument `ttl` gives every key a TTL).
//! Redis needs about 130 bytes a key for 1M keys of 16 bytes with 16-byte
//! values.

use std::time::{Duration, Instant};

use reactor_rpc::ops::procfs::{self, Pid};
use reactor_rpc::service::cache::{Cache, CacheConfig, SetOptions, ValueRef};

fn rss_bytes() -> usize {
    let memory = procfs::memory(Pid::This).expect("/proc/self/status");
    usize::try_from(memory.rss_kb).unwrap_or(usize::MAX) * 1024
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let keys = arg(1, 1_000_000);
    let key_len = arg(2, 16).max(8);
    let value_len = arg(3, 16);
    let ttl = std::env::args().nth(4).is_some_and(|a| a == "ttl");
    let cache = Cache::new(CacheConfig {
        maxmemory: 0,
        ..CacheConfig::default()
    });
    let opt = SetOptions {
        ttl: ttl.then_some(Duration::from_secs(3600)),
        ..SetOptions::default()
    };
    let value = vec![b'v'; value_len];
    let mut key = vec![b'k'; key_len];
    let before = rss_bytes();
    let start = Instant::now();
    for i in 0..keys {
        // The key's last 8 bytes are the index, in hex.
        let tail = format!("{:08x}", i as u32);
        key[key_len - 8..].copy_from_slice(tail.as_bytes());
        cache
            .set_ref(&key, ValueRef::Raw(&value), opt)
            .expect("unbounded cache");
    }
    let elapsed = start.elapsed();
    let grown = rss_bytes().saturating_sub(before);
    let used = cache.used_memory();
    println!(
        "{keys} keys of {key_len} bytes, values of {value_len} bytes{}: \
         RSS +{grown} bytes = {:.1} bytes/key; estimate {used} = {:.1} bytes/key \
         ({:+.1}% of RSS); {:.0} ns/set",
        if ttl { ", with a TTL" } else { "" },
        grown as f64 / keys as f64,
        used as f64 / keys as f64,
        (used as f64 - grown as f64) * 100.0 / grown as f64,
        elapsed.as_nanos() as f64 / keys as f64,
    );
    assert_eq!(cache.len(), keys);
}
