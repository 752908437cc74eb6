//! Eviction under `maxmemory`, in-process: approximate LRU keeps what is used.

use std::time::Duration;

use reactor_rpc::service::cache::{
    Cache, CacheConfig, CacheError, EvictionPolicy, SetOptions, Value, ValueRef,
};

const MAXMEMORY: usize = 256 * 1024;

fn bounded(policy: EvictionPolicy) -> Cache {
    Cache::new(CacheConfig {
        maxmemory: MAXMEMORY,
        policy,
    })
}

fn fill_reading_hot_keys(cache: &Cache, hot: usize, batches: usize, batch: usize) {
    let value = [b'v'; 32];
    for i in 0..hot {
        cache
            .set_ref(
                format!("hot:{i}").as_bytes(),
                ValueRef::Raw(&value),
                SetOptions::default(),
            )
            .unwrap();
    }
    for b in 0..batches {
        for i in 0..batch {
            cache
                .set_ref(
                    format!("cold:{}", b * batch + i).as_bytes(),
                    ValueRef::Raw(&value),
                    SetOptions::default(),
                )
                .unwrap();
        }
        for i in 0..hot {
            assert!(
                cache.get(format!("hot:{i}").as_bytes()).is_some(),
                "hot:{i} was evicted after batch {b}"
            );
        }
        assert!(cache.used_memory() <= MAXMEMORY, "{:?}", cache.info());
    }
}

#[test]
fn keys_read_often_survive_a_fill_that_evicts_most_cold_ones() {
    let cache = bounded(EvictionPolicy::AllKeysLru);
    // ~2 000 keys fit; 20 000 cold ones go through, 100 at a time, and the
    // 100 hot keys are read between batches.
    let (hot, batches, batch) = (100, 200, 100);
    fill_reading_hot_keys(&cache, hot, batches, batch);
    let info = cache.info();
    let cold_left = (0..batches * batch)
        .filter(|i| cache.exists(format!("cold:{i}").as_bytes()))
        .count();
    eprintln!("{info:?}; {cold_left} cold keys left");
    assert!(
        info.evicted_keys as usize >= batches * batch - info.keys,
        "{info:?}"
    );
    assert!(
        cold_left * 5 < batches * batch,
        "most cold keys are gone: {cold_left}"
    );
    // The survivors are mostly the recent ones: approximate LRU, not random.
    let recent = (batches * batch * 3 / 4..batches * batch)
        .filter(|i| cache.exists(format!("cold:{i}").as_bytes()))
        .count();
    assert!(
        recent * 10 >= cold_left * 8,
        "{recent} of {cold_left} survivors are recent"
    );
}

#[test]
fn volatile_lru_keeps_hot_volatile_keys_and_every_persistent_one() {
    let cache = bounded(EvictionPolicy::VolatileLru);
    let hour = SetOptions::ttl(Duration::from_secs(3600));
    for i in 0..200 {
        cache
            .set(
                format!("persistent:{i}").as_bytes(),
                Value::Int(i),
                SetOptions::default(),
            )
            .unwrap();
    }
    let value = [b'v'; 32];
    for i in 0..50 {
        cache
            .set_ref(format!("hot:{i}").as_bytes(), ValueRef::Raw(&value), hour)
            .unwrap();
    }
    for b in 0..100 {
        for i in 0..100 {
            let key = format!("cold:{}", b * 100 + i);
            cache
                .set_ref(key.as_bytes(), ValueRef::Raw(&value), hour)
                .unwrap();
        }
        for i in 0..50 {
            assert!(cache.exists(format!("hot:{i}").as_bytes()));
            cache.get(format!("hot:{i}").as_bytes());
        }
    }
    assert!(cache.info().evicted_keys > 5000);
    for i in 0..200 {
        assert_eq!(
            cache.get(format!("persistent:{i}").as_bytes()),
            Some(Value::Int(i))
        );
    }
}

#[test]
fn noeviction_fails_writes_with_a_message_naming_maxmemory() {
    let cache = bounded(EvictionPolicy::NoEviction);
    let value = [b'v'; 32];
    let mut i = 0;
    let err = loop {
        match cache.set_ref(
            format!("k{i}").as_bytes(),
            ValueRef::Raw(&value),
            SetOptions::default(),
        ) {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(
        err,
        CacheError::Oom {
            maxmemory: MAXMEMORY
        }
    );
    assert_eq!(
        err.to_string(),
        "out of memory: used memory would go above --maxmemory (262144 bytes) and nothing can be evicted"
    );
    // Reads, deletes and TTL changes still work.
    assert!(cache.get(b"k0").is_some());
    assert_eq!(cache.expire(b"k1", Duration::from_secs(60)), Ok(true));
    assert!(cache.del(b"k0"));
    assert_eq!(cache.info().evicted_keys, 0);
}
