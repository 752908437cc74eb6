//! SCAN's guarantee, as a property: a key present for the whole iteration
//! is returned at least once, whatever adds, deletes, expiries and
//! evictions happen between the calls. Also KEYS, RANDOMKEY, the async flush
//! and the cursor's bounds on the cache directly.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use reactor_rpc::service::cache::ValueRef;
use reactor_rpc::service::cache::{
    Cache, CacheConfig, EvictionPolicy, ExpireIf, SetOptions, SCAN_MAX_WORK,
};

#[derive(Debug, Clone)]
enum Op {
    /// Adds a key never used before.
    Add,
    /// Deletes the n-th key of those added (if still there).
    Del(usize),
    /// Gives the n-th key a 1 ms TTL: it expires while the walk goes on.
    Expire(usize),
    /// One SCAN call with this COUNT.
    Scan(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Add),
        2 => any::<usize>().prop_map(Op::Del),
        1 => any::<usize>().prop_map(Op::Expire),
        4 => (1usize..40).prop_map(Op::Scan),
    ]
}

fn key(n: usize) -> Vec<u8> {
    format!("key:{n}").into_bytes()
}

fn set(cache: &Cache, k: &[u8]) {
    // Evictions make room; with allkeys-random any key may go.
    let _ = cache.set_ref(
        k,
        ValueRef::Raw(b"value-value-value"),
        SetOptions::default(),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn scan_returns_every_key_present_throughout(
        initial in 0usize..600,
        ops in proptest::collection::vec(op(), 0..400),
        bounded in any::<bool>(),
    ) {
        let maxmemory = if bounded { 40_000 } else { 0 };
        let cache = Cache::new(CacheConfig { maxmemory, policy: EvictionPolicy::AllKeysRandom });
        let mut next = 0;
        for _ in 0..initial {
            set(&cache, &key(next));
            next += 1;
        }
        let at_start: BTreeSet<Vec<u8>> = (0..next).map(key).filter(|k| cache.exists(k)).collect();
        let mut seen = BTreeSet::new();
        let mut cursor = 0u64;
        let mut started = false;
        let mut ops = ops.into_iter();
        // Interleave the ops with SCAN calls until the walk ends.
        let mut calls = 0;
        while !started || cursor != 0 {
            match ops.next() {
                Some(Op::Add) => {
                    set(&cache, &key(next));
                    next += 1;
                }
                Some(Op::Del(n)) if next > 0 => {
                    cache.del(&key(n % next));
                }
                Some(Op::Expire(n)) if next > 0 => {
                    let at = i64::try_from(cache.unix_now_ms()).unwrap() + 1;
                    cache.expire_at(&key(n % next), at, ExpireIf::default());
                }
                Some(Op::Scan(count)) | Some(Op::Del(count)) | Some(Op::Expire(count)) => {
                    cursor = cache.scan(cursor, count.clamp(1, 40), |k| {
                        seen.insert(k.to_vec());
                    });
                    started = true;
                    calls += 1;
                }
                None => {
                    cursor = cache.scan(cursor, 7, |k| {
                        seen.insert(k.to_vec());
                    });
                    started = true;
                    calls += 1;
                }
            }
            prop_assert!(calls < 100_000, "the walk does not end");
        }
        // Keys are never re-added after a removal, so one present at the
        // start and at the end was present throughout.
        for k in &at_start {
            if cache.exists(k) {
                prop_assert!(seen.contains(k), "{} was present throughout but not returned", String::from_utf8_lossy(k));
            }
        }
    }
}

#[test]
fn a_scan_call_does_bounded_work_and_a_full_walk_returns_each_key() {
    let cache = Cache::new(CacheConfig {
        maxmemory: 0,
        policy: EvictionPolicy::AllKeysLru,
    });
    for n in 0..100_000 {
        set(&cache, &key(n));
    }
    let mut cursor = 0;
    let mut seen = BTreeSet::new();
    let mut calls = 0;
    loop {
        let mut got = 0;
        cursor = cache.scan(cursor, usize::MAX, |k| {
            seen.insert(k.to_vec());
            got += 1;
        });
        assert!(got <= SCAN_MAX_WORK, "one call returned {got}");
        calls += 1;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 100_000);
    assert!(calls >= 100_000 / SCAN_MAX_WORK);
    // A cursor from nowhere is answered, not trusted.
    let mut n = 0;
    cache.scan(u64::MAX, 10, |_| n += 1);
    assert!(n <= 10);
}

#[test]
fn keys_randomkey_and_flushes() {
    let cache = Cache::default();
    assert_eq!(cache.random_key(), None);
    for n in 0..1000 {
        set(&cache, &key(n));
    }
    let mut all = Vec::new();
    cache.for_each_key(|k| all.push(k.to_vec()));
    assert_eq!(all.len(), 1000);
    let k = cache.random_key().expect("a key");
    assert!(cache.exists(&k));
    cache.flush_all_async();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.used_memory(), 0, "memory is refunded at once");
    assert_eq!(cache.garbage_len(), 1000, "and freed later");
    assert_eq!(cache.free_garbage(600), 400);
    assert_eq!(cache.free_garbage(usize::MAX), 0);
    for n in 0..10 {
        set(&cache, &key(n));
    }
    cache.flush_all();
    assert!(cache.is_empty());
}

/// FLUSHALL ASYNC of a million keys takes each shard's lock for O(1), and
/// the housekeeping frees the keys in steps of about a millisecond.
#[test]
fn an_async_flush_of_a_million_keys_is_quick_and_freed_in_steps() {
    let cache = Cache::new(CacheConfig {
        maxmemory: 0,
        policy: EvictionPolicy::AllKeysLru,
    });
    for n in 0..1_000_000 {
        set(&cache, &key(n));
    }
    let started = Instant::now();
    cache.flush_all_async();
    let flush = started.elapsed();
    assert!(flush < Duration::from_millis(50), "flush took {flush:?}");
    let mut worst = Duration::ZERO;
    let mut steps = 0;
    loop {
        let step = Instant::now();
        let left = cache.free_garbage(16 * 1024);
        worst = worst.max(step.elapsed());
        steps += 1;
        if left == 0 {
            break;
        }
    }
    assert!(steps >= 60, "{steps} steps");
    // A 16 Ki-item step is ~1 ms in release; debug builds are ~10x slower.
    assert!(worst < Duration::from_millis(100), "worst step {worst:?}");
}
