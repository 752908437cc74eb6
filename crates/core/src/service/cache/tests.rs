//! The typed API, in-process: semantics, accounting, eviction choices.

use std::collections::HashMap;
use std::time::Instant;

use super::*;

fn cache() -> Cache {
    Cache::new(CacheConfig {
        maxmemory: 0,
        policy: EvictionPolicy::AllKeysLru,
    })
}

fn raw(s: &str) -> Value {
    Value::Raw(Bytes::copy_from_slice(s.as_bytes()))
}

fn json(s: &str) -> Value {
    Value::Json(Bytes::copy_from_slice(s.as_bytes()))
}

const ALWAYS: SetOptions = SetOptions {
    ttl: None,
    cond: SetCond::Always,
    keep_ttl: false,
    at_unix_ms: None,
};

/// Waits until the cache's millisecond clock has moved `ms` past now (an
/// event: the clock itself, not a sleep).
fn wait_for_clock(c: &Cache, ms: u64) {
    let due = c.clock.now_ms() + ms;
    let give_up = Instant::now() + Duration::from_secs(5);
    while c.clock.now_ms() < due {
        assert!(Instant::now() < give_up, "clock stuck");
        std::thread::yield_now();
    }
}

/// Every shard's index, items and deadlines agree, and the memory estimate adds up.
fn check(c: &Cache) {
    let mut used = 0;
    for shard in c.shards.iter() {
        let shard = lock(shard);
        shard.check_consistency();
        used += shard.used();
    }
    assert_eq!(used, c.used_memory());
}

#[test]
fn set_get_del_exists() {
    let c = cache();
    assert_eq!(c.get(b"k"), None);
    assert!(!c.exists(b"k"));
    assert_eq!(c.set(b"k", raw("v"), ALWAYS), Ok(true));
    assert_eq!(c.get(b"k"), Some(raw("v")));
    assert!(c.exists(b"k"));
    assert_eq!(c.set(b"k", Value::Int(5), ALWAYS), Ok(true));
    assert_eq!(c.get(b"k"), Some(Value::Int(5)));
    assert!(c.del(b"k"));
    assert!(!c.del(b"k"));
    assert_eq!(c.get(b"k"), None);
    // Keys are bytes.
    let key = b"\x00\xff binary";
    c.set(key, json("[1]"), ALWAYS).unwrap();
    assert_eq!(c.get(key), Some(json("[1]")));
    c.set(b"", raw(""), ALWAYS).unwrap();
    assert_eq!(c.get(b""), Some(raw("")));
    check(&c);
    let info = c.info();
    assert_eq!((info.keyspace_hits, info.keyspace_misses), (4, 2));
}

#[test]
fn nx_and_xx() {
    let c = cache();
    let nx = SetOptions {
        cond: SetCond::IfAbsent,
        ..ALWAYS
    };
    let xx = SetOptions {
        cond: SetCond::IfPresent,
        ..ALWAYS
    };
    assert_eq!(c.set(b"k", raw("1"), xx), Ok(false));
    assert_eq!(c.get(b"k"), None);
    assert_eq!(c.set(b"k", raw("1"), nx), Ok(true));
    assert_eq!(c.set(b"k", raw("2"), nx), Ok(false));
    assert_eq!(c.get(b"k"), Some(raw("1")));
    assert_eq!(c.set(b"k", raw("3"), xx), Ok(true));
    assert_eq!(c.get(b"k"), Some(raw("3")));
}

#[test]
fn ttls_set_kept_cleared_and_persisted() {
    let c = cache();
    let hour = Duration::from_secs(3600);
    assert_eq!(c.ttl(b"k"), Ttl::Missing);
    c.set(b"k", raw("v"), SetOptions::ttl(hour)).unwrap();
    let Ttl::Remaining(left) = c.ttl(b"k") else {
        panic!("{:?}", c.ttl(b"k"))
    };
    assert!(
        left <= hour && left > hour - Duration::from_secs(60),
        "{left:?}"
    );
    assert_eq!(c.expires_len(), 1);
    // keep_ttl keeps it; a plain set clears it.
    let keep = SetOptions {
        keep_ttl: true,
        ..ALWAYS
    };
    c.set(b"k", raw("w"), keep).unwrap();
    assert!(matches!(c.ttl(b"k"), Ttl::Remaining(_)));
    c.set(b"k", raw("x"), ALWAYS).unwrap();
    assert_eq!(c.ttl(b"k"), Ttl::Persistent);
    assert_eq!(c.expires_len(), 0);
    // expire and persist.
    assert_eq!(c.expire(b"nope", hour), Ok(false));
    assert_eq!(c.expire(b"k", hour), Ok(true));
    assert!(c.persist(b"k"));
    assert!(!c.persist(b"k"), "no TTL left to remove");
    assert!(!c.persist(b"nope"));
    assert_eq!(c.ttl(b"k"), Ttl::Persistent);
    // incr keeps the TTL.
    c.set(b"n", Value::Int(1), SetOptions::ttl(hour)).unwrap();
    assert_eq!(c.incr_by(b"n", 1), Ok(2));
    assert!(matches!(c.ttl(b"n"), Ttl::Remaining(_)));
    // A zero TTL: refused by set, a delete for expire (as in Redis).
    assert_eq!(
        c.set(b"z", raw("v"), SetOptions::ttl(Duration::ZERO)),
        Err(CacheError::InvalidExpireTime)
    );
    assert!(!c.exists(b"z"));
    assert_eq!(c.expire(b"k", Duration::ZERO), Ok(true));
    assert!(!c.exists(b"k"));
    // A TTL beyond the clock's range is the end of time.
    assert_eq!(c.expire(b"n", Duration::MAX), Ok(true));
    assert!(matches!(c.ttl(b"n"), Ttl::Remaining(d) if d > Duration::from_secs(1 << 40)));
    check(&c);
}

#[test]
fn expired_keys_are_gone_when_touched() {
    let c = cache();
    for (i, op) in ["get", "exists", "del", "ttl", "incr", "set-nx", "expire"]
        .iter()
        .enumerate()
    {
        let key = format!("k{i}");
        let key = key.as_bytes();
        c.set(
            key,
            Value::Int(10),
            SetOptions::ttl(Duration::from_millis(1)),
        )
        .unwrap();
        // The deadline is at most this; wait for the millisecond clock to pass it.
        wait_for_clock(&c, 1);
        match *op {
            "get" => assert_eq!(c.get(key), None),
            "exists" => assert!(!c.exists(key)),
            "del" => assert!(!c.del(key)),
            "ttl" => assert_eq!(c.ttl(key), Ttl::Missing),
            "incr" => assert_eq!(c.incr_by(key, 1), Ok(1), "counts from 0"),
            "set-nx" => {
                let nx = SetOptions {
                    cond: SetCond::IfAbsent,
                    ..ALWAYS
                };
                assert_eq!(c.set(key, raw("new"), nx), Ok(true));
            }
            "expire" => assert_eq!(c.expire(key, Duration::from_secs(1)), Ok(false)),
            _ => unreachable!(),
        }
    }
    assert!(c.info().expired_keys >= 7);
    check(&c);
}

#[test]
fn incr_on_every_kind() {
    let c = cache();
    assert_eq!(c.incr_by(b"n", 5), Ok(5));
    assert_eq!(c.incr_by(b"n", -7), Ok(-2));
    assert_eq!(c.get(b"n"), Some(Value::Int(-2)));
    c.set(b"r", raw("41"), ALWAYS).unwrap();
    assert_eq!(c.incr_by(b"r", 1), Ok(42));
    assert_eq!(c.get(b"r"), Some(Value::Int(42)), "now an integer");
    c.set(b"js", json("\"9\""), ALWAYS).unwrap();
    assert_eq!(c.incr_by(b"js", 1), Ok(10));
    c.set(b"jn", json("1e2"), ALWAYS).unwrap();
    assert_eq!(c.incr_by(b"jn", 1), Ok(101));
    for (key, value, err) in [
        (&b"a"[..], raw("abc"), CacheError::NotInteger),
        (b"b", raw(" 1"), CacheError::NotInteger),
        (b"c", json("1.5"), CacheError::NotInteger),
        (b"d", json("[1]"), CacheError::NotInteger),
        (b"e", json("1e30"), CacheError::OutOfRange),
        (b"f", raw("99999999999999999999"), CacheError::OutOfRange),
    ] {
        c.set(key, value.clone(), ALWAYS).unwrap();
        assert_eq!(c.incr_by(key, 1), Err(err));
        assert_eq!(c.get(key), Some(value), "unchanged");
    }
    c.set(b"max", Value::Int(i64::MAX), ALWAYS).unwrap();
    assert_eq!(c.incr_by(b"max", 1), Err(CacheError::Overflow));
    assert_eq!(c.incr_by(b"min", i64::MIN), Ok(i64::MIN));
    assert_eq!(c.incr_by(b"min", -1), Err(CacheError::Overflow));
    assert_eq!(c.get(b"max"), Some(Value::Int(i64::MAX)));
    check(&c);
}

#[test]
fn large_values_are_shared_not_copied() {
    let c = cache();
    let big = Bytes::from(vec![b'x'; SHARED_MIN]);
    c.set(b"big", Value::Raw(big.clone()), ALWAYS).unwrap();
    let Some(Value::Raw(got)) = c.get(b"big") else {
        panic!("not raw")
    };
    assert_eq!(got.as_ptr(), big.as_ptr(), "the stored bytes, by reference");
    let again = c.get(b"big");
    assert_eq!(again, Some(Value::Raw(big.clone())));
    // Borrowed input is copied once, then shared.
    let text = format!("\"{}\"", "y".repeat(SHARED_MIN));
    c.set_ref(b"bigjson", ValueRef::from_json(&text), ALWAYS)
        .unwrap();
    let (Some(Value::Json(a)), Some(Value::Json(b))) = (c.get(b"bigjson"), c.get(b"bigjson"))
    else {
        panic!("not json")
    };
    assert_eq!(a.as_ptr(), b.as_ptr());
    // Just under the threshold: inline, so each get is its own copy.
    let small = Bytes::from(vec![b'z'; SHARED_MIN - 1]);
    c.set(b"small", Value::Raw(small.clone()), ALWAYS).unwrap();
    let Some(Value::Raw(got)) = c.get(b"small") else {
        panic!()
    };
    assert_ne!(got.as_ptr(), small.as_ptr());
    assert_eq!(got, small);
    check(&c);
}

#[test]
fn json_and_resp_views_of_one_value() {
    let c = cache();
    let mut out = Vec::new();
    c.set_ref(b"s", ValueRef::from_json("\"abc\""), ALWAYS)
        .unwrap();
    c.get_with(b"s", |v| v.write_json(&mut out))
        .unwrap()
        .unwrap();
    assert_eq!(out, b"\"abc\"");
    assert_eq!(c.get(b"s").unwrap().to_resp(), Bytes::from_static(b"abc"));
    assert_eq!(
        c.get_with(b"s", |v| v.resp_bytes().into_owned()),
        Some(b"abc".to_vec())
    );
    c.set(b"bin", Value::Raw(Bytes::from_static(b"\xff")), ALWAYS)
        .unwrap();
    assert_eq!(
        c.get_with(b"bin", |v| v.write_json(&mut Vec::new())),
        Some(Err(CacheError::WrongType))
    );
    c.set_ref(b"i", ValueRef::from_json("12"), ALWAYS).unwrap();
    assert_eq!(c.get(b"i"), Some(Value::Int(12)));
    assert_eq!(c.get(b"i").unwrap().to_resp(), Bytes::from_static(b"12"));
}

#[test]
fn flush_len_info_and_dirty() {
    let c = cache();
    let d0 = c.dirty();
    for i in 0..100 {
        let ttl = (i % 4 == 0).then_some(Duration::from_secs(60));
        let opt = SetOptions { ttl, ..ALWAYS };
        c.set(format!("k{i}").as_bytes(), Value::Int(i), opt)
            .unwrap();
    }
    assert_eq!(c.dirty(), d0 + 100);
    assert_eq!(c.len(), 100);
    assert_eq!(c.expires_len(), 25);
    let info = c.info();
    assert_eq!((info.keys, info.expires), (100, 25));
    assert!(info.used_memory > 100 * 40, "{info:?}");
    assert_eq!(info.policy.as_str(), "allkeys-lru");
    let d1 = c.dirty();
    assert_eq!(c.get(b"k1"), Some(Value::Int(1)));
    assert!(c.exists(b"k1"));
    assert_eq!(c.dirty(), d1, "reads are not writes");
    c.flush_all();
    assert!(c.dirty() > d1);
    assert_eq!(c.len(), 0);
    assert_eq!(c.expires_len(), 0);
    assert_eq!(c.used_memory(), 0);
    check(&c);
}

#[test]
fn snapshots_round_trip_and_skip_the_expired() {
    let c = cache();
    c.set(b"int", Value::Int(-1), ALWAYS).unwrap();
    c.set(b"raw", raw("bytes"), ALWAYS).unwrap();
    c.set(
        b"json",
        json("{\"a\":[1]}"),
        SetOptions::ttl(Duration::from_secs(600)),
    )
    .unwrap();
    let big = Bytes::from(vec![1u8; SHARED_MIN * 2]);
    c.set(b"big", Value::Raw(big.clone()), ALWAYS).unwrap();
    let mut records: Vec<Record> = (0..c.shard_count())
        .flat_map(|i| c.export_shard(i))
        .collect();
    assert_eq!(records.len(), 4);
    assert!(c.export_shard(c.shard_count()).is_empty(), "no such shard");
    let json_record = records.iter().find(|r| &r.key[..] == b"json").unwrap();
    let at = json_record.expires_at_unix_ms.expect("has a deadline");
    let in_10_min = unix_ms() + 600_000;
    assert!(at <= in_10_min && at + 60_000 > in_10_min, "{at}");
    // One more, already expired, and one that replaces a key.
    records.push(Record {
        key: Bytes::from_static(b"old"),
        value: Value::Int(0),
        expires_at_unix_ms: Some(unix_ms() - 1),
    });
    let fresh = Cache::default();
    fresh.set(b"int", Value::Int(99), ALWAYS).unwrap();
    assert_eq!(fresh.import(records), 4);
    assert_eq!(fresh.len(), 4);
    assert_eq!(fresh.get(b"int"), Some(Value::Int(-1)));
    assert_eq!(fresh.get(b"raw"), Some(raw("bytes")));
    assert_eq!(fresh.get(b"json"), Some(json("{\"a\":[1]}")));
    assert!(matches!(fresh.ttl(b"json"), Ttl::Remaining(d) if d > Duration::from_secs(500)));
    assert_eq!(fresh.get(b"big"), Some(Value::Raw(big)));
    assert!(!fresh.exists(b"old"));
    check(&fresh);
}

/// Random operations against a plain map: the store agrees with it, and its
/// structures stay consistent through every kind of move.
#[test]
fn random_operations_agree_with_a_model() {
    let c = cache();
    let mut model: HashMap<Vec<u8>, (Value, bool)> = HashMap::new();
    let mut rng = fastrand::Rng::with_seed(7);
    let hour = Duration::from_secs(3600);
    for step in 0..20_000 {
        let key = format!("k{}", rng.usize(..300)).into_bytes();
        match rng.u8(..7) {
            0 | 1 => {
                let value = match rng.u8(..3) {
                    0 => Value::Int(rng.i64(..)),
                    1 => raw(&"r".repeat(rng.usize(..40))),
                    _ => Value::Raw(Bytes::from(vec![7; SHARED_MIN + rng.usize(..10)])),
                };
                let ttl = rng.bool().then_some(hour);
                c.set(&key, value.clone(), SetOptions { ttl, ..ALWAYS })
                    .unwrap();
                model.insert(key, (value, ttl.is_some()));
            }
            2 => assert_eq!(c.del(&key), model.remove(&key).is_some()),
            3 => {
                let want = model.get(&key).map(|(v, _)| v.clone());
                assert_eq!(c.get(&key), want, "step {step}");
            }
            4 => {
                let existed = model.contains_key(&key);
                assert_eq!(c.expire(&key, hour), Ok(existed));
                if let Some(entry) = model.get_mut(&key) {
                    entry.1 = true;
                }
            }
            5 => {
                let had = model.get(&key).is_some_and(|(_, ttl)| *ttl);
                assert_eq!(c.persist(&key), had);
                if let Some(entry) = model.get_mut(&key) {
                    entry.1 = false;
                }
            }
            _ => {
                let by = rng.i64(-5..5);
                let got = c.incr_by(&key, by);
                match model.get_mut(&key) {
                    None => {
                        assert_eq!(got, Ok(by));
                        model.insert(key, (Value::Int(by), false));
                    }
                    Some((value, _)) => {
                        let want = value
                            .to_i64()
                            .and_then(|n| n.checked_add(by).ok_or(CacheError::Overflow));
                        assert_eq!(got, want);
                        if let Ok(n) = want {
                            *value = Value::Int(n);
                        }
                    }
                }
            }
        }
        if step % 2000 == 0 {
            check(&c);
        }
    }
    assert_eq!(c.len(), model.len());
    assert_eq!(c.expires_len(), model.values().filter(|(_, t)| *t).count());
    check(&c);
    for key in model.keys() {
        c.del(key);
    }
    assert_eq!(c.used_memory(), 0);
}

fn bounded(maxmemory: usize, policy: EvictionPolicy) -> Cache {
    Cache::new(CacheConfig { maxmemory, policy })
}

#[test]
fn noeviction_refuses_writes_but_not_reads_or_deletes() {
    let c = bounded(64 * 1024, EvictionPolicy::NoEviction);
    let mut stored = 0;
    let err = loop {
        match c.set(format!("key{stored}").as_bytes(), raw("value"), ALWAYS) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(
        err,
        CacheError::Oom {
            maxmemory: 64 * 1024
        }
    );
    let message = err.to_string();
    assert!(message.contains("--maxmemory (65536 bytes)"), "{message}");
    assert!(stored > 100, "{stored}");
    assert!(c.used_memory() <= 64 * 1024);
    assert_eq!(c.incr_by(b"counter", 1), Err(err));
    assert_eq!(c.get(b"key0"), Some(raw("value")));
    assert!(c.del(b"key0"));
    assert_eq!(
        c.set(b"again", raw("value"), ALWAYS),
        Ok(true),
        "room again"
    );
    assert_eq!(c.info().evicted_keys, 0);
    let rpc = RpcError::from(err);
    assert_eq!(rpc.code, ErrorCode::Oom);
}

#[test]
fn a_value_larger_than_maxmemory_evicts_nothing() {
    let c = bounded(64 * 1024, EvictionPolicy::AllKeysLru);
    c.set(b"small", raw("v"), ALWAYS).unwrap();
    let huge = Value::Raw(Bytes::from(vec![0; 64 * 1024]));
    assert!(matches!(
        c.set(b"huge", huge, ALWAYS),
        Err(CacheError::Oom { .. })
    ));
    assert!(c.exists(b"small"));
}

#[test]
fn volatile_policies_only_evict_keys_with_a_ttl() {
    for policy in [EvictionPolicy::VolatileLru, EvictionPolicy::VolatileTtl] {
        let c = bounded(256 * 1024, policy);
        for i in 0..500 {
            c.set(format!("persistent{i}").as_bytes(), raw("value"), ALWAYS)
                .unwrap();
        }
        // Twice what fits: the volatile keys make room by evicting each other.
        for i in 0..5000 {
            let ttl = Duration::from_secs(60) + Duration::from_millis(i);
            c.set(
                format!("volatile{i}").as_bytes(),
                raw("value"),
                SetOptions::ttl(ttl),
            )
            .unwrap();
        }
        assert!(c.info().evicted_keys > 1000, "{policy}: {:?}", c.info());
        // Persistent writes push the rest of the volatile keys out, then fail.
        let mut i = 0;
        let err = loop {
            match c.set(format!("more{i}").as_bytes(), raw("value"), ALWAYS) {
                Ok(_) => i += 1,
                Err(e) => break e,
            }
            assert!(i < 100_000, "{policy}: never ran out of room");
        };
        assert!(matches!(err, CacheError::Oom { .. }), "{policy}: {err}");
        assert_eq!(c.expires_len(), 0, "{policy}: volatile keys left");
        for i in 0..500 {
            assert!(c.exists(format!("persistent{i}").as_bytes()), "{policy}");
        }
        check(&c);
    }
}

#[test]
fn volatile_ttl_evicts_the_soonest_to_expire() {
    let c = bounded(128 * 1024, EvictionPolicy::VolatileTtl);
    // Each key expires a second sooner than the one before it.
    let mut n = 0;
    while c.used_memory() < 100 * 1024 {
        let ttl = Duration::from_secs(100_000 - n);
        c.set(
            format!("k{n}").as_bytes(),
            raw("value"),
            SetOptions::ttl(ttl),
        )
        .unwrap();
        n += 1;
    }
    // Later keys expire sooner. Push in as many more, each expiring latest.
    for i in 0..n {
        let ttl = Duration::from_secs(200_000 + i);
        c.set(
            format!("late{i}").as_bytes(),
            raw("value"),
            SetOptions::ttl(ttl),
        )
        .unwrap();
    }
    let evicted = c.info().evicted_keys;
    assert!(evicted > 0);
    // The survivors among the first batch are mostly the ones expiring latest:
    // the early keys (k0, k1, ... expire last).
    let survivors: Vec<u64> = (0..n)
        .filter(|i| c.exists(format!("k{i}").as_bytes()))
        .collect();
    let early_half = survivors.iter().filter(|&&i| i < n / 2).count();
    assert!(
        early_half * 10 >= survivors.len() * 8,
        "{early_half} of {} survivors expire last",
        survivors.len()
    );
}

#[test]
fn allkeys_random_evicts_something() {
    let c = bounded(64 * 1024, EvictionPolicy::AllKeysRandom);
    for i in 0..5000 {
        c.set(format!("k{i}").as_bytes(), raw("value"), ALWAYS)
            .unwrap();
    }
    assert!(c.used_memory() <= 64 * 1024);
    let info = c.info();
    assert_eq!(info.keys as u64 + info.evicted_keys, 5000);
    check(&c);
}

#[test]
fn json_errors_map_to_codes() {
    let cases = [
        (CacheError::Oom { maxmemory: 1 }, ErrorCode::Oom),
        (CacheError::WrongType, ErrorCode::WrongType),
        (CacheError::NotInteger, ErrorCode::BadParams),
        (CacheError::OutOfRange, ErrorCode::BadParams),
        (CacheError::Overflow, ErrorCode::BadParams),
    ];
    for (e, code) in cases {
        let rpc = RpcError::from(e);
        assert_eq!(rpc.code, code);
        assert_eq!(rpc.message, e.to_string());
    }
    assert_eq!(
        RpcError::from(CacheError::Oom {
            maxmemory: 268435456
        })
        .message,
        "out of memory: used memory would go above --maxmemory (268435456 bytes) and nothing can be evicted"
    );
}

/// The active expiry cycle runs on the event loop: a shard another thread
/// holds (a snapshot copying it out) is skipped, never waited for. Holding a
/// shard here, on the same thread, would deadlock a waiting cycle.
#[test]
fn active_expiry_skips_a_shard_held_elsewhere() {
    let c = cache();
    for i in 0..2_000 {
        let key = format!("k{i}");
        c.set(
            key.as_bytes(),
            raw("v"),
            SetOptions::ttl(Duration::from_millis(1)),
        )
        .unwrap();
    }
    wait_for_clock(&c, 2);
    let held_keys = c.shards[0].lock().unwrap().items().len();
    assert!(held_keys > 0, "no key landed in shard 0");
    let held = c.shards[0].lock().unwrap();
    let mut removed = 0;
    for _ in 0..1_000 {
        removed += c.active_expire_cycle(Duration::from_millis(50));
        if removed == 2_000 - held_keys {
            break;
        }
    }
    assert_eq!(removed, 2_000 - held_keys, "every other shard is cleared");
    assert_eq!(held.items().len(), held_keys, "the held shard is untouched");
    drop(held);
    let give_up = Instant::now() + Duration::from_secs(5);
    while removed < 2_000 {
        removed += c.active_expire_cycle(Duration::from_millis(50));
        assert!(
            Instant::now() < give_up,
            "the released shard is never cleared"
        );
    }
    assert_eq!(c.len(), 0);
}
