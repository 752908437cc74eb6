//! Active expiry, in-process and on real time: keys nobody touches again are
//! removed by the housekeeping cycle alone, within its time budget per tick.

use std::time::{Duration, Instant};

use reactor_rpc::service::cache::{Cache, CacheConfig, SetOptions, Value, EXPIRE_BUDGET};
use reactor_rpc::service::HOUSEKEEPING_INTERVAL;

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass; this clock always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs the cycle on the server's schedule (every `HOUSEKEEPING_INTERVAL`,
/// with `EXPIRE_BUDGET`) until the cache is empty or `limit` has passed;
/// returns how long it took and how many ticks, or `None` on timeout.
fn expire_on_schedule(cache: &Cache, start: Instant, limit: Duration) -> Option<(Duration, u32)> {
    let mut ticks = 0;
    let mut next_tick = Instant::now();
    while start.elapsed() < limit {
        if cache.is_empty() {
            return Some((start.elapsed(), ticks));
        }
        // Wait for the next tick, as the server's timer would.
        if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next_tick += HOUSEKEEPING_INTERVAL;
        let cycle = thread_cpu_time();
        cache.active_expire_cycle(EXPIRE_BUDGET);
        let spent = thread_cpu_time().saturating_sub(cycle);
        // A cycle keeps to its budget, give or take the 16 samples between
        // clock reads. Measured in this thread's CPU time, which a busy
        // machine's scheduler cannot inflate as it can wall time.
        assert!(
            spent < EXPIRE_BUDGET + Duration::from_millis(10),
            "a cycle used {spent:?} of CPU"
        );
        ticks += 1;
    }
    cache.is_empty().then(|| (start.elapsed(), ticks))
}

/// 200 000 keys in an optimised build (`cargo test --release --test
/// cache_expiry`). An unoptimised build removes keys about eight times more
/// slowly, so it checks the same schedule with a fifth of the keys.
const KEYS: usize = if cfg!(debug_assertions) {
    40_000
} else {
    200_000
};

#[test]
fn short_lived_keys_are_gone_within_three_seconds() {
    let cache = Cache::new(CacheConfig {
        maxmemory: 0,
        ..CacheConfig::default()
    });
    let ttl = SetOptions::ttl(Duration::from_millis(1));
    let start = Instant::now();
    for i in 0..KEYS {
        cache
            .set(format!("key:{i:08}").as_bytes(), Value::Int(i as i64), ttl)
            .unwrap();
    }
    let filled = start.elapsed();
    assert_eq!(cache.expires_len(), KEYS);
    assert!(cache.used_memory() > KEYS * 64);

    // The 3 s count from the last write: that is when the last key was set
    // to expire, and on a busy machine the fill alone can take a while.
    let after_fill = Instant::now();
    let outcome = expire_on_schedule(&cache, after_fill, Duration::from_secs(3));
    let info = cache.info();
    let Some((took, ticks)) = outcome else {
        panic!(
            "{} of {KEYS} keys left after 3 s (fill took {filled:?}): {info:?}",
            cache.len()
        );
    };
    eprintln!(
        "{KEYS} keys (filled in {filled:?}) expired by the cycle in {took:?}, {ticks} ticks \
         of {EXPIRE_BUDGET:?} every {HOUSEKEEPING_INTERVAL:?}"
    );
    assert_eq!(info.expired_keys, KEYS as u64, "{info:?}");
    assert_eq!(info.expires, 0);
    // Every byte the keys held is accounted back.
    assert_eq!(cache.used_memory(), 0, "{info:?}");
}

#[test]
fn the_cycle_leaves_live_keys_alone_and_stops_at_a_mostly_live_keyspace() {
    let cache = Cache::default();
    let long = SetOptions::ttl(Duration::from_secs(3600));
    let short = SetOptions::ttl(Duration::from_millis(1));
    for i in 0..10_000 {
        let key = format!("live:{i}");
        cache.set(key.as_bytes(), Value::Int(i), long).unwrap();
        cache
            .set(
                format!("persistent:{i}").as_bytes(),
                Value::Int(i),
                SetOptions::default(),
            )
            .unwrap();
    }
    for i in 0..1_000 {
        cache
            .set(format!("dead:{i}").as_bytes(), Value::Int(i), short)
            .unwrap();
    }
    let outcome = {
        // Only the dead keys may go: wait for len to reach the live count.
        let start = Instant::now();
        loop {
            if cache.len() == 20_000 {
                break Some(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(30) {
                break None;
            }
            cache.active_expire_cycle(Duration::from_millis(5));
        }
    };
    // With 1 dead key in 11 among the volatile ones, a sample is rarely more
    // than 25% dead, so the cycle moves on after a round per shard: the last
    // few dead keys take many calls, which is the point (bounded work).
    assert!(outcome.is_some(), "{} keys left", cache.len());
    assert_eq!(cache.expires_len(), 10_000);
    assert!(cache.exists(b"live:9999"));
    assert!(cache.exists(b"persistent:0"));
    // Nothing left to do: a cycle finds nothing and returns early.
    assert_eq!(cache.active_expire_cycle(Duration::from_millis(5)), 0);
}
