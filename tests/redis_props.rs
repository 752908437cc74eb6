//! A property test against a live `redis-server` 7.0: random sequences of
//! the string and keyspace commands (a few keys, so they collide), sent to
//! Redis and to us, must get the same replies. Time is kept out of it: no
//! TTL value is compared exactly (TTL/PTTL within a tolerance), and expiries
//! are long.
//!
//! Fails, never skips, without `redis-server`.

use crate::support::redis::{compare, start_ours, Conn, Mode, Redis};
use crate::support::Model;
use proptest::prelude::*;

const KEYS: [&str; 4] = ["a", "b", "c", "{a}x"];
const VALUES: [&str; 7] = ["1", "-7", "0.5", "abc", "", "10e2", "9223372036854775807"];

fn key() -> impl Strategy<Value = String> {
    proptest::sample::select(&KEYS[..]).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    proptest::sample::select(&VALUES[..]).prop_map(str::to_owned)
}

/// One command and how its reply is compared.
fn command() -> impl Strategy<Value = (Vec<String>, Mode)> {
    let exact = |v: Vec<String>| (v, Mode::Exact);
    prop_oneof![
        (key(), value()).prop_map(move |(k, v)| exact(vec!["SET".into(), k, v])),
        (
            key(),
            value(),
            proptest::sample::select(&["NX", "XX", "GET", "KEEPTTL", "EX 1000", "PX 900000"][..])
        )
            .prop_map(move |(k, v, o)| {
                let mut c = vec!["SET".into(), k, v];
                c.extend(o.split(' ').map(str::to_owned));
                exact(c)
            }),
        key().prop_map(move |k| exact(vec!["GET".into(), k])),
        (key(), key()).prop_map(move |(a, b)| exact(vec!["MGET".into(), a, b])),
        (key(), value(), key(), value()).prop_map(move |(a, x, b, y)| exact(vec![
            "MSET".into(),
            a,
            x,
            b,
            y
        ])),
        (key(), value(), key(), value()).prop_map(move |(a, x, b, y)| exact(vec![
            "MSETNX".into(),
            a,
            x,
            b,
            y
        ])),
        (key(), value()).prop_map(move |(k, v)| exact(vec!["SETNX".into(), k, v])),
        (key(), value()).prop_map(move |(k, v)| exact(vec!["GETSET".into(), k, v])),
        key().prop_map(move |k| exact(vec!["GETDEL".into(), k])),
        (
            key(),
            proptest::sample::select(&["", "PERSIST", "EX 500", "PX 700000"][..])
        )
            .prop_map(move |(k, o)| {
                let mut c = vec!["GETEX".into(), k];
                c.extend(o.split(' ').filter(|w| !w.is_empty()).map(str::to_owned));
                exact(c)
            }),
        (key(), value()).prop_map(move |(k, v)| exact(vec!["APPEND".into(), k, v])),
        key().prop_map(move |k| exact(vec!["STRLEN".into(), k])),
        (key(), -5i64..5, -5i64..5).prop_map(move |(k, a, b)| exact(vec![
            "GETRANGE".into(),
            k,
            a.to_string(),
            b.to_string()
        ])),
        (key(), 0i64..6, value()).prop_map(move |(k, o, v)| exact(vec![
            "SETRANGE".into(),
            k,
            o.to_string(),
            v
        ])),
        key().prop_map(move |k| exact(vec!["INCR".into(), k])),
        (key(), -3i64..3).prop_map(move |(k, n)| exact(vec!["INCRBY".into(), k, n.to_string()])),
        (key(), value()).prop_map(move |(k, v)| exact(vec!["INCRBYFLOAT".into(), k, v])),
        (key(), key()).prop_map(move |(a, b)| exact(vec!["DEL".into(), a, b])),
        (key(), key()).prop_map(move |(a, b)| exact(vec!["EXISTS".into(), a, b])),
        key().prop_map(move |k| exact(vec!["TYPE".into(), k])),
        (key(), key()).prop_map(move |(a, b)| exact(vec!["RENAME".into(), a, b])),
        (key(), key()).prop_map(move |(a, b)| exact(vec!["RENAMENX".into(), a, b])),
        // Absolute times fixed for the whole run, so that GT / LT never
        // compare two times a few milliseconds apart.
        (
            key(),
            proptest::sample::select(&[1500u64, 2500][..]),
            proptest::sample::select(&["", "NX", "XX", "GT", "LT"][..])
        )
            .prop_map(move |(k, offset, o)| {
                let at = (base_seconds() + offset).to_string();
                let mut c = vec!["EXPIREAT".into(), k, at];
                if !o.is_empty() {
                    c.push(o.into());
                }
                exact(c)
            }),
        key().prop_map(move |k| exact(vec!["PERSIST".into(), k])),
        key().prop_map(|k| (vec!["TTL".into(), k], Mode::Near(1))),
        key().prop_map(|k| (vec!["PTTL".into(), k], Mode::Near(1000))),
        key().prop_map(move |k| exact(vec!["OBJECT".into(), "ENCODING".into(), k])),
        // Patterns that match one key at most: inside MULTI the reply is
        // compared byte for byte, and several keys come in hash order.
        proptest::sample::select(&["a", "{a}?", "[b]", "c*"][..])
            .prop_map(|p| (vec!["KEYS".into(), p.to_owned()], Mode::Exact)),
        Just((vec!["DBSIZE".into()], Mode::Exact)),
        Just((vec!["MULTI".into()], Mode::Exact)),
        Just((vec!["EXEC".into()], Mode::Exact)),
        Just((vec!["DISCARD".into()], Mode::Exact)),
    ]
}

/// Unix seconds when the run started (the base of EXPIREAT's times).
fn base_seconds() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    })
}

fn same_replies_for_random_sequences(model: Model) {
    let redis = Redis::start();
    let server = start_ours(model);
    let conns = std::cell::RefCell::new((redis.connect(), Conn::tcp(server.resp_addr())));
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&proptest::collection::vec(command(), 1..60), |script| {
            let (theirs, ours) = &mut *conns.borrow_mut();
            for conn in [&mut *theirs, &mut *ours] {
                // A clean slate: no transaction open, no keys.
                conn.call(&[b"DISCARD"]);
                conn.call(&[b"FLUSHALL"]);
            }
            let mut in_multi = false;
            for (args, mode) in &script {
                // A TTL inside a transaction would be compared exactly in the
                // EXEC array: left out there.
                if in_multi && *mode != Mode::Exact {
                    continue;
                }
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                let (a, b) = (theirs.call(&args), ours.call(&args));
                if let Err(e) = compare(&args, *mode, &a, &b) {
                    return Err(TestCaseError::fail(e));
                }
                match args[0] {
                    b"MULTI" if b == b"+OK\r\n" => in_multi = true,
                    b"EXEC" | b"DISCARD" => in_multi = false,
                    _ => {}
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{model}: {e}"));
}

model_tests! {
    every_model: [same_replies_for_random_sequences],
    not_pool: [],
}

/// KEYS with random patterns made of glob's special characters, over keys
/// made of the same bytes: our matcher must agree with Redis's
/// `stringmatchlen` on every edge case (unclosed sets, escapes at the end,
/// reversed ranges, `*` runs).
fn glob_patterns_match_as_redis(model: Model) {
    let redis = Redis::start();
    let server = start_ours(model);
    let conns = std::cell::RefCell::new((redis.connect(), Conn::tcp(server.resp_addr())));
    let alphabet =
        proptest::sample::select(&["a", "b", "*", "?", "[", "]", "^", "-", "\\", "\u{ff}"][..]);
    let keys: Vec<String> = [
        "",
        "a",
        "b",
        "ab",
        "ba",
        "aab",
        "a*b",
        "a?b",
        "[a]",
        "a-b",
        "^a",
        "\\a",
        "a\\",
        "]",
        "-",
        "\u{ff}",
        "a\u{ff}b",
        "bbbbbbbbbba",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    {
        let (theirs, ours) = &mut *conns.borrow_mut();
        for conn in [&mut *theirs, &mut *ours] {
            conn.call(&[b"FLUSHALL"]);
            for k in &keys {
                conn.call(&[b"SET", k.as_bytes(), b"1"]);
            }
        }
    }
    let config = ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&proptest::collection::vec(alphabet, 0..8), |parts| {
            let pattern = parts.concat();
            let (theirs, ours) = &mut *conns.borrow_mut();
            let args: [&[u8]; 2] = [b"KEYS", pattern.as_bytes()];
            let (a, b) = (theirs.call(&args), ours.call(&args));
            compare(&args, Mode::Unordered, &a, &b).map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{model}: {e}"));
}

mod globs {
    #[test]
    fn reactor() {
        super::glob_patterns_match_as_redis(reactor_rpc::Model::Reactor);
    }
}

/// A decimal number as people and libraries write them: sign, digits, a
/// fraction, an exponent.
fn number() -> impl Strategy<Value = String> {
    (
        proptest::bool::ANY,
        "[0-9]{0,12}",
        proptest::option::of("[0-9]{1,22}"),
        proptest::option::of(-40i32..40),
    )
        .prop_map(|(neg, int, frac, exp)| {
            let mut s = String::new();
            if neg {
                s.push('-');
            }
            s.push_str(if int.is_empty() && frac.is_none() {
                "0"
            } else {
                &int
            });
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some(e) = exp {
                s.push_str(&format!("e{e}"));
            }
            s
        })
}

/// INCRBYFLOAT of random numbers: the same text as Redis's x87 `long
/// double` sum printed with `%.17Lf`, digit for digit.
fn incrbyfloat_matches_redis_digit_for_digit(model: Model) {
    let redis = Redis::start();
    let server = start_ours(model);
    let conns = std::cell::RefCell::new((redis.connect(), Conn::tcp(server.resp_addr())));
    let config = ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&(number(), number(), number()), |(a, b, c)| {
            let (theirs, ours) = &mut *conns.borrow_mut();
            for args in [
                vec![&b"SET"[..], b"f", a.as_bytes()],
                vec![&b"INCRBYFLOAT"[..], b"f", b.as_bytes()],
                vec![&b"INCRBYFLOAT"[..], b"f", c.as_bytes()],
                vec![&b"GET"[..], b"f"],
            ] {
                let (x, y) = (theirs.call(&args), ours.call(&args));
                compare(&args, Mode::Exact, &x, &y).map_err(TestCaseError::fail)?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{model}: {e}"));
}

mod floats {
    #[test]
    fn reactor() {
        super::incrbyfloat_matches_redis_digit_for_digit(reactor_rpc::Model::Reactor);
    }
}
