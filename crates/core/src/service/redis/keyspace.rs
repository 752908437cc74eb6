//! Commands on keys whatever their value: DEL, EXISTS, expiry (EXPIRE,
//! PEXPIRE, TTL, PTTL, PERSIST), DBSIZE and FLUSHALL. One keyspace (database
//! 0) is shared with the JSON protocol.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{cache_error, integer_arg, Command, Cx, ERR_SYNTAX};
use crate::service::cache::Ttl;
use crate::service::Access;

pub(crate) const DEL: Command = Command {
    name: "del",
    access: Access::Write,
    arity: -2,
    flags: &["write"],
    keys: (1, -1, 1),
    subcommands: &[],
    run: |cx, args| {
        let cache = cx.service.cache();
        let n = args[1..].iter().filter(|k| cache.del(k)).count();
        cx.reply.integer(n as i64);
    },
};

pub(crate) const EXISTS: Command = Command {
    name: "exists",
    access: Access::Read,
    arity: -2,
    flags: &["readonly", "fast"],
    keys: (1, -1, 1),
    // A key named twice counts twice, as in Redis.
    subcommands: &[],
    run: |cx, args| {
        let cache = cx.service.cache();
        let n = args[1..].iter().filter(|k| cache.exists(k)).count();
        cx.reply.integer(n as i64);
    },
};

pub(crate) const EXPIRE: Command = Command {
    name: "expire",
    access: Access::Write,
    arity: -3,
    flags: &["write", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| expire(cx, args, Unit::Seconds),
};

pub(crate) const PEXPIRE: Command = Command {
    name: "pexpire",
    access: Access::Write,
    arity: -3,
    flags: &["write", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| expire(cx, args, Unit::Millis),
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// Which of EXPIRE's NX / XX / GT / LT options were given.
#[derive(Default)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` and `PEXPIRE`, as Redis 7's
/// `expireGenericCommand`: a time at or before now deletes the key (reply 1
/// if it existed). The conditions read the TTL, then set it: atomic on the
/// reactor, which runs one command at a time, but two threads of the threaded
/// models may interleave between the two steps.
fn expire(cx: &mut Cx<'_>, args: &[&[u8]], unit: Unit) {
    let mut when = Conditions::default();
    for opt in &args[3..] {
        let flag = match opt.to_ascii_lowercase().as_slice() {
            b"nx" => &mut when.nx,
            b"xx" => &mut when.xx,
            b"gt" => &mut when.gt,
            b"lt" => &mut when.lt,
            _ => {
                let mut m = b"ERR Unsupported option ".to_vec();
                m.extend_from_slice(opt);
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
    let ms = match unit {
        Unit::Seconds => n.checked_mul(1000),
        Unit::Millis => Some(n),
    };
    let Some(ms) = ms.filter(|&ms| !expire_overflows(ms)) else {
        let name = if unit == Unit::Seconds {
            "expire"
        } else {
            "pexpire"
        };
        return cx
            .reply
            .error(format!("ERR invalid expire time in '{name}' command").as_bytes());
    };
    let key = args[1];
    let cache = cx.service.cache();
    if when.nx || when.xx || when.gt || when.lt {
        let current = match cache.ttl(key) {
            Ttl::Missing => return cx.reply.integer(0),
            Ttl::Persistent => None,
            Ttl::Remaining(d) => Some(millis_ceil(d)),
        };
        let refused = match current {
            None => when.xx || when.gt,
            Some(cur) => when.nx || (when.gt && ms <= cur) || (when.lt && ms >= cur),
        };
        if refused {
            return cx.reply.integer(0);
        }
    }
    if ms <= 0 {
        // Already in the past: Redis deletes the key.
        return cx.reply.integer(i64::from(cache.del(key)));
    }
    match cache.expire(key, Duration::from_millis(ms.unsigned_abs())) {
        Ok(set) => cx.reply.integer(i64::from(set)),
        Err(e) => cache_error(&mut cx.reply, "expire", e),
    }
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

pub(crate) const TTL: Command = Command {
    name: "ttl",
    access: Access::Read,
    arity: 2,
    flags: &["readonly", "fast"],
    keys: (1, 1, 1),
    // Redis rounds to the nearest second.
    subcommands: &[],
    run: |cx, args| ttl(cx, args[1], |ms| (ms + 500) / 1000),
};

pub(crate) const PTTL: Command = Command {
    name: "pttl",
    access: Access::Read,
    arity: 2,
    flags: &["readonly", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| ttl(cx, args[1], |ms| ms),
};

fn ttl(cx: &mut Cx<'_>, key: &[u8], scale: fn(i64) -> i64) {
    let n = match cx.service.cache().ttl(key) {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::Remaining(d) => scale(millis_ceil(d)),
    };
    cx.reply.integer(n);
}

pub(crate) const PERSIST: Command = Command {
    name: "persist",
    access: Access::Write,
    arity: 2,
    flags: &["write", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| {
        let removed = cx.service.cache().persist(args[1]);
        cx.reply.integer(i64::from(removed));
    },
};

pub(crate) const DBSIZE: Command = Command {
    name: "dbsize",
    access: Access::Read,
    arity: 1,
    flags: &["readonly", "fast"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: |cx, _| {
        let n = cx.service.cache().len();
        cx.reply.integer(i64::try_from(n).unwrap_or(i64::MAX));
    },
};

pub(crate) const FLUSHALL: Command = Command {
    name: "flushall",
    access: Access::Admin,
    arity: -1,
    flags: &["write"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: |cx, args| match args {
        [_] => flush_all(cx),
        [_, mode] if mode.eq_ignore_ascii_case(b"SYNC") || mode.eq_ignore_ascii_case(b"ASYNC") => {
            flush_all(cx)
        }
        _ => cx.reply.error(ERR_SYNTAX),
    },
};

fn flush_all(cx: &mut Cx<'_>) {
    cx.service.cache().flush_all();
    cx.reply.ok();
}
