//! Commands on keys whatever their value: DEL UNLINK EXISTS TOUCH TYPE,
//! RENAME RENAMENX RANDOMKEY, expiry (EXPIRE PEXPIRE EXPIREAT PEXPIREAT with
//! NX/XX/GT/LT, EXPIRETIME PEXPIRETIME TTL PTTL PERSIST), KEYS and SCAN,
//! DBSIZE, FLUSHALL and FLUSHDB. One keyspace (database 0) is shared with
//! the JSON protocol, and every value is a string to Redis's eyes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::glob;
use super::{cache_error, command, integer_arg, Command, Cx, ERR_SYNTAX};
use crate::service::cache::{ExpireIf, Rename, Ttl, SCAN_MAX_WORK};
use crate::service::Access;

pub(crate) const DEL: Command = command("del", Access::Write, -2, delete);

/// `UNLINK`: as `DEL` (values are freed at once either way: a large one is
/// shared bytes, freed when the last reader lets go).
pub(crate) const UNLINK: Command = command("unlink", Access::Write, -2, delete);

fn delete(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let cache = cx.service.cache();
    let n = args[1..].iter().filter(|k| cache.del(k)).count();
    cx.reply.integer(n as i64);
}

/// A key named twice counts twice, as in Redis.
pub(crate) const EXISTS: Command = command("exists", Access::Read, -2, |cx, args| {
    let cache = cx.service.cache();
    let n = args[1..].iter().filter(|k| cache.exists(k)).count();
    cx.reply.integer(n as i64);
});

/// `TOUCH`: counts the keys that exist, and marks them used (LRU).
pub(crate) const TOUCH: Command = command("touch", Access::Read, -2, |cx, args| {
    let cache = cx.service.cache();
    let n = args[1..]
        .iter()
        .filter(|k| cache.get_with(k, |_| ()).is_some())
        .count();
    cx.reply.integer(n as i64);
});

/// `TYPE`: every value is a string; `none` for a missing key.
pub(crate) const TYPE: Command = command("type", Access::Read, 2, |cx, args| {
    if cx.service.cache().exists(args[1]) {
        cx.reply.simple(b"string");
    } else {
        cx.reply.simple(b"none");
    }
});

pub(crate) const RENAME: Command = command("rename", Access::Write, 3, |cx, args| {
    rename(cx, args, false)
});

pub(crate) const RENAMENX: Command = command("renamenx", Access::Write, 3, |cx, args| {
    rename(cx, args, true)
});

fn rename(cx: &mut Cx<'_>, args: &[&[u8]], nx: bool) {
    match cx.service.cache().rename(args[1], args[2], nx) {
        Ok(Rename::NoSuchKey) => cx.reply.error(b"ERR no such key"),
        Ok(Rename::DestinationExists) => cx.reply.integer(0),
        Ok(Rename::Done) if nx => cx.reply.integer(1),
        Ok(Rename::Done) => cx.reply.ok(),
        Err(e) => cache_error(&mut cx.reply, if nx { "renamenx" } else { "rename" }, e),
    }
}

pub(crate) const RANDOMKEY: Command = command("randomkey", Access::Read, 1, |cx, _| {
    match cx.service.cache().random_key() {
        Some(key) => cx.reply.bulk(&key),
        None => cx.reply.null(),
    }
});

pub(crate) const EXPIRE: Command = command("expire", Access::Write, -3, |cx, args| {
    expire(cx, args, "expire", Unit::Seconds, true)
});

pub(crate) const PEXPIRE: Command = command("pexpire", Access::Write, -3, |cx, args| {
    expire(cx, args, "pexpire", Unit::Millis, true)
});

pub(crate) const EXPIREAT: Command = command("expireat", Access::Write, -3, |cx, args| {
    expire(cx, args, "expireat", Unit::Seconds, false)
});

pub(crate) const PEXPIREAT: Command = command("pexpireat", Access::Write, -3, |cx, args| {
    expire(cx, args, "pexpireat", Unit::Millis, false)
});

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// Redis 7.0's `expireGenericCommand`: options first, then the number,
/// then overflow checks; a missing key answers 0; the conditions compare
/// absolute times; a time at or before now deletes the key (reply 1).
/// Atomic: the conditions are checked and the expiry set under one lock.
fn expire(cx: &mut Cx<'_>, args: &[&[u8]], name: &str, unit: Unit, relative: bool) {
    let mut when = ExpireIf::default();
    for opt in &args[3..] {
        let flag = match opt.to_ascii_lowercase().as_slice() {
            b"nx" => &mut when.nx,
            b"xx" => &mut when.xx,
            b"gt" => &mut when.gt,
            b"lt" => &mut when.lt,
            _ => {
                let mut m = b"ERR Unsupported option ".to_vec();
                m.extend_from_slice(super::c_str(opt, usize::MAX));
                return cx.reply.error(&m);
            }
        };
        *flag = true;
    }
    if when.nx && (when.xx || when.gt || when.lt) {
        return cx
            .reply
            .error(b"ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if when.gt && when.lt {
        return cx
            .reply
            .error(b"ERR GT and LT options at the same time are not compatible");
    }
    let Some(n) = integer_arg(&mut cx.reply, args[2]) else {
        return;
    };
    let cache = cx.service.cache();
    let base = if relative {
        i64::try_from(cache.unix_now_ms()).unwrap_or(i64::MAX)
    } else {
        0
    };
    let ms = match unit {
        Unit::Seconds => n.checked_mul(1000),
        Unit::Millis => Some(n),
    };
    let Some(at) = ms.and_then(|ms| ms.checked_add(base)) else {
        return cx
            .reply
            .error(format!("ERR invalid expire time in '{name}' command").as_bytes());
    };
    let set = cache.expire_at(args[1], at, when);
    cx.reply.integer(i64::from(set));
}

pub(crate) const EXPIRETIME: Command = command("expiretime", Access::Read, 2, |cx, args| {
    expire_time(cx, args[1], |ms| (ms + 500) / 1000)
});

pub(crate) const PEXPIRETIME: Command = command("pexpiretime", Access::Read, 2, |cx, args| {
    expire_time(cx, args[1], |ms| ms)
});

fn expire_time(cx: &mut Cx<'_>, key: &[u8], scale: fn(i64) -> i64) {
    let n = match cx.service.cache().expire_time(key) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => scale(i64::try_from(at).unwrap_or(i64::MAX)),
    };
    cx.reply.integer(n);
}

/// Whether `now + ms`, as Unix time in milliseconds, leaves 64 bits, which
/// Redis refuses as an invalid expire time.
pub(crate) fn expire_overflows(ms: i64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    ms.checked_add(now).is_none()
}

/// Remaining time in milliseconds, rounded up, so a key set with `PX 100`
/// reads back as 100 at once (Redis computes in whole milliseconds).
fn millis_ceil(d: Duration) -> i64 {
    i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// Redis rounds to the nearest second.
pub(crate) const TTL: Command = command("ttl", Access::Read, 2, |cx, args| {
    ttl(cx, args[1], |ms| (ms + 500) / 1000)
});

pub(crate) const PTTL: Command = command("pttl", Access::Read, 2, |cx, args| {
    ttl(cx, args[1], |ms| ms)
});

fn ttl(cx: &mut Cx<'_>, key: &[u8], scale: fn(i64) -> i64) {
    let n = match cx.service.cache().ttl(key) {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::Remaining(d) => scale(millis_ceil(d)),
    };
    cx.reply.integer(n);
}

pub(crate) const PERSIST: Command = command("persist", Access::Write, 2, |cx, args| {
    let removed = cx.service.cache().persist(args[1]);
    cx.reply.integer(i64::from(removed));
});

pub(crate) const DBSIZE: Command = command("dbsize", Access::Read, 1, |cx, _| {
    let n = cx.service.cache().len();
    cx.reply.integer(i64::try_from(n).unwrap_or(i64::MAX));
});

/// `KEYS pattern`: walked shard by shard (one shard lock at a time); the
/// reply is built aside, then written with its length. A reply that would
/// pass `--max-reply` stops the walk and is answered with the error.
pub(crate) const KEYS: Command = command("keys", Access::Read, 2, |cx, args| {
    let pattern = args[1];
    let all = glob::is_match_all(pattern);
    let mut body = Vec::new();
    let mut n = 0usize;
    let version = cx.reply.version();
    // The array's header is written after the walk: room for it.
    let left = cx.budget_left().saturating_sub(24);
    let whole = {
        let mut r = reactor_rpc_protocol::resp::Reply::new(&mut body, version);
        cx.service.cache().for_each_key_while(|key| {
            if all || glob::matches(pattern, key, false) {
                r.bulk(key);
                n += 1;
            }
            r.out().len() <= left
        })
    };
    if !whole || body.len() > left {
        return cx.reply_too_large();
    }
    cx.reply.array(n);
    cx.reply.out().extend_from_slice(&body);
});

/// C's `strtoul(s, &end, 10)` as Redis's `parseScanCursorOrReply` uses it:
/// no leading blank, the whole string taken, no overflow (a `-` negates,
/// modulo 2^64, as strtoul does; an empty string is 0).
fn scan_cursor(s: &[u8]) -> Option<u64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s.is_empty() {
        return Some(0);
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`. `COUNT` is a
/// hint of the items looked at, capped at [`SCAN_MAX_WORK`] per call; the
/// guarantee is the cache's (see `cache::scan`).
pub(crate) const SCAN: Command = command("scan", Access::Read, -2, |cx, args| {
    let Some(cursor) = scan_cursor(args[1]) else {
        return cx.reply.error(b"ERR invalid cursor");
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut type_name: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i >= 2;
        let opt = args[i];
        if opt.eq_ignore_ascii_case(b"count") && more {
            let Some(n) = integer_arg(&mut cx.reply, args[i + 1]) else {
                return;
            };
            if n < 1 {
                return cx.reply.error(ERR_SYNTAX);
            }
            count = n;
        } else if opt.eq_ignore_ascii_case(b"match") && more {
            let p = args[i + 1];
            pattern = (!glob::is_match_all(p)).then_some(p);
        } else if opt.eq_ignore_ascii_case(b"type") && more {
            type_name = Some(args[i + 1]);
        } else {
            return cx.reply.error(ERR_SYNTAX);
        }
        i += 2;
    }
    // Every value is a string: another type matches nothing.
    let any_type = type_name.is_none_or(|t| t.eq_ignore_ascii_case(b"string"));
    let budget = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(SCAN_MAX_WORK);
    let mut keys: Vec<Vec<u8>> = Vec::new();
    // Keys are collected up to --max-reply (each with its bulk header);
    // past it the step still completes (the cursor must), unanswered.
    let left = cx.budget_left();
    let (mut size, mut over) = (0usize, false);
    let next = cx.service.cache().scan(cursor, budget, |key| {
        if any_type && pattern.is_none_or(|p| glob::matches(p, key, false)) {
            size = size.saturating_add(key.len() + 16);
            over |= size > left;
            if !over {
                keys.push(key.to_vec());
            }
        }
    });
    if over {
        return cx.reply_too_large();
    }
    cx.reply.array(2);
    cx.reply.bulk(next.to_string().as_bytes());
    cx.reply.array(keys.len());
    for key in &keys {
        cx.reply.bulk(key);
    }
});

/// Redis's `getFlushCommandFlags`: nothing, `SYNC` or `ASYNC`.
fn flush(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let cache = cx.service.cache();
    match args {
        [_] => cache.flush_all(),
        [_, mode] if mode.eq_ignore_ascii_case(b"SYNC") => cache.flush_all(),
        [_, mode] if mode.eq_ignore_ascii_case(b"ASYNC") => cache.flush_all_async(),
        _ => return cx.reply.error(ERR_SYNTAX),
    }
    cx.reply.ok();
}

/// `FLUSHALL [ASYNC|SYNC]`: every key goes; `ASYNC` detaches each shard in
/// O(1) and the housekeeping frees the keys in bounded steps.
pub(crate) const FLUSHALL: Command = command("flushall", Access::Admin, -1, flush);

/// `FLUSHDB [ASYNC|SYNC]`: there is one database, so as `FLUSHALL`.
pub(crate) const FLUSHDB: Command = command("flushdb", Access::Admin, -1, flush);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_cursors_parse_as_strtoul() {
        assert_eq!(scan_cursor(b"0"), Some(0));
        assert_eq!(scan_cursor(b""), Some(0));
        assert_eq!(scan_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(scan_cursor(b"18446744073709551616"), None);
        assert_eq!(scan_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(scan_cursor(b"+7"), Some(7));
        assert_eq!(scan_cursor(b" 1"), None);
        assert_eq!(scan_cursor(b"1 "), None);
        assert_eq!(scan_cursor(b"-"), None);
        assert_eq!(scan_cursor(b"x"), None);
    }
}
