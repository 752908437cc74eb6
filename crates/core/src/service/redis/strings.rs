//! String commands: GET, SET (with all of Redis 7.0's options) and its
//! relatives (SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX), the
//! INCR family and INCRBYFLOAT, and APPEND STRLEN GETRANGE SETRANGE.
//!
//! A RESP `SET` stores the bytes as given
//! ([`Value::Raw`]); every command reads
//! any stored value in its RESP form (see the cache's value conversions), so
//! keys set over JSON work too, and integers are shared with the JSON `incr`.
//! Options are parsed, and errors chosen, in the order Redis 7.0's
//! `t_string.c` does, so that a command with several faults gets the same
//! error.

use std::time::Duration;

use super::{
    cache_error, command, integer_arg, keyspace::expire_overflows, Command, Cx, ERR_SYNTAX,
};
use crate::output::SHARE_MIN;
use crate::service::cache::{SetCond, SetOptions, Shown, Value, ValueRef};
use crate::service::Access;

/// Writes a value as a bulk string: large shared values by reference.
fn reply_value(cx: &mut Cx<'_>, value: Option<Value>) {
    match value {
        None => cx.reply.null(),
        Some(value) => {
            let bytes = value.to_resp();
            if bytes.len() >= SHARE_MIN {
                cx.reply.bulk_header(bytes.len());
                let at = cx.reply.out().len();
                cx.splicer.splice(at, &bytes);
                cx.reply.out().extend_from_slice(b"\r\n");
            } else {
                cx.reply.bulk(&bytes);
            }
        }
    }
}

/// `GET key`: a small value is copied into the reply while it is borrowed;
/// a large one is spliced in by reference: no copy of it either way.
fn get_into(cx: &mut Cx<'_>, key: &[u8]) {
    let reply = &mut cx.reply;
    let found = cx
        .service
        .cache()
        .get_shared_or_with(key, |value| reply.bulk(&value.resp_bytes()));
    match found {
        None => cx.reply.null(),
        Some(Shown::InPlace(())) => {}
        Some(Shown::Shared(value)) => reply_value(cx, Some(value)),
    }
}

pub(crate) const GET: Command = command("get", Access::Read, 2, |cx, args| get_into(cx, args[1]));

/// `MGET key ...`: stops once the reply passes `--max-reply` (then answered
/// with the error): a key named a million times must not be copied a
/// million times.
pub(crate) const MGET: Command = command("mget", Access::Read, -2, |cx, args| {
    cx.reply.array(args.len() - 1);
    for key in &args[1..] {
        if cx.over_budget() {
            return;
        }
        get_into(cx, key);
    }
});

/// Which of SET's / GETEX's options were given (Redis's `OBJ_*` flags).
#[derive(Default, Clone, Copy)]
struct Flags {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    /// EX, PX, EXAT or PXAT.
    expire: Option<Expire>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expire {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Redis 7.0's `parseExtendedStringArgumentsOrReply`: options from `args[from..]`
/// for SET (`set = true`) or GETEX; the expiry's argument is returned too.
fn parse_flags<'a>(args: &[&'a [u8]], from: usize, set: bool) -> Option<(Flags, Option<&'a [u8]>)> {
    let mut f = Flags::default();
    let mut value = None;
    let mut j = from;
    while j < args.len() {
        let opt = args[j];
        let next = args.get(j + 1).copied();
        let is = |name: &[u8]| opt.eq_ignore_ascii_case(name);
        let other_expire = |e: Expire| f.expire.is_some_and(|x| x != e);
        if is(b"NX") && !f.xx && set {
            f.nx = true;
        } else if is(b"XX") && !f.nx && set {
            f.xx = true;
        } else if is(b"GET") && set {
            f.get = true;
        } else if is(b"KEEPTTL") && !f.persist && f.expire.is_none() && set {
            f.keep_ttl = true;
        } else if is(b"PERSIST") && !set && f.expire.is_none() && !f.keep_ttl {
            f.persist = true;
        } else if let (Some(e), Some(n)) = (
            [
                (&b"EX"[..], Expire::Ex),
                (b"PX", Expire::Px),
                (b"EXAT", Expire::ExAt),
                (b"PXAT", Expire::PxAt),
            ]
            .iter()
            .find(|(name, _)| is(name))
            .map(|&(_, e)| e),
            next,
        ) {
            if f.keep_ttl || f.persist || other_expire(e) {
                return None;
            }
            f.expire = Some(e);
            value = Some(n);
            j += 1;
        } else {
            return None;
        }
        j += 1;
    }
    Some((f, value))
}

/// When an expiry argument means: a relative TTL or an absolute Unix time
/// in milliseconds.
enum When {
    In(Duration),
    At(u64),
}

/// Redis 7.0's `getExpireMillisecondsOrReply` for command `name`.
fn expire_when(cx: &mut Cx<'_>, name: &str, arg: &[u8], e: Expire) -> Option<When> {
    let n = integer_arg(&mut cx.reply, arg)?;
    let seconds = matches!(e, Expire::Ex | Expire::ExAt);
    let invalid = n <= 0 || (seconds && n > i64::MAX / 1000);
    let ms = if seconds { n.saturating_mul(1000) } else { n };
    let relative = matches!(e, Expire::Ex | Expire::Px);
    if invalid || (relative && expire_overflows(ms)) {
        cx.reply
            .error(format!("ERR invalid expire time in '{name}' command").as_bytes());
        return None;
    }
    Some(if relative {
        When::In(Duration::from_millis(ms.unsigned_abs()))
    } else {
        When::At(ms.unsigned_abs())
    })
}

/// A reply writer: what SET's relatives answer when they write or not.
type ReplyFn = fn(&mut Cx<'_>);

/// The replies when NX/XX says no, and when the write happened.
type Replies = (ReplyFn, ReplyFn);

/// The write at the heart of SET and its relatives. `abort` is the reply
/// when NX/XX says no (null for SET, `:0` for SETNX), `done` the reply when
/// it wrote (`+OK`, `:1`).
fn set_generic(
    cx: &mut Cx<'_>,
    name: &str,
    f: Flags,
    key: &[u8],
    value: &[u8],
    expire: Option<&[u8]>,
    replies: Replies,
) {
    let when = match (f.expire, expire) {
        (Some(e), Some(arg)) => match expire_when(cx, name, arg, e) {
            Some(w) => Some(w),
            None => return,
        },
        _ => None,
    };
    let mut opt = SetOptions {
        cond: match (f.nx, f.xx) {
            (true, _) => SetCond::IfAbsent,
            (_, true) => SetCond::IfPresent,
            _ => SetCond::Always,
        },
        keep_ttl: f.keep_ttl,
        ..SetOptions::default()
    };
    match when {
        Some(When::In(ttl)) => opt.ttl = Some(ttl),
        Some(When::At(at)) => opt.at_unix_ms = Some(at),
        None => {}
    }
    match cx.service.cache().set_get(key, value, opt) {
        Ok((_, old)) if f.get => reply_value(cx, old),
        Ok((true, _)) => (replies.1)(cx),
        Ok((false, _)) => (replies.0)(cx),
        Err(e) => cache_error(&mut cx.reply, name, e),
    }
}

fn reply_null(cx: &mut Cx<'_>) {
    cx.reply.null();
}
fn reply_ok(cx: &mut Cx<'_>) {
    cx.reply.ok();
}
fn reply_zero(cx: &mut Cx<'_>) {
    cx.reply.integer(0);
}
fn reply_one(cx: &mut Cx<'_>) {
    cx.reply.integer(1);
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]`.
pub(crate) const SET: Command = command("set", Access::Write, -3, |cx, args| {
    let Some((f, expire)) = parse_flags(args, 3, true) else {
        return cx.reply.error(ERR_SYNTAX);
    };
    set_generic(
        cx,
        "set",
        f,
        args[1],
        args[2],
        expire,
        (reply_null, reply_ok),
    );
});

pub(crate) const SETNX: Command = command("setnx", Access::Write, 3, |cx, args| {
    let f = Flags {
        nx: true,
        ..Flags::default()
    };
    set_generic(
        cx,
        "setnx",
        f,
        args[1],
        args[2],
        None,
        (reply_zero, reply_one),
    );
});

pub(crate) const SETEX: Command = command("setex", Access::Write, 4, |cx, args| {
    let f = Flags {
        expire: Some(Expire::Ex),
        ..Flags::default()
    };
    set_generic(
        cx,
        "setex",
        f,
        args[1],
        args[3],
        Some(args[2]),
        (reply_null, reply_ok),
    );
});

pub(crate) const PSETEX: Command = command("psetex", Access::Write, 4, |cx, args| {
    let f = Flags {
        expire: Some(Expire::Px),
        ..Flags::default()
    };
    set_generic(
        cx,
        "psetex",
        f,
        args[1],
        args[3],
        Some(args[2]),
        (reply_null, reply_ok),
    );
});

pub(crate) const GETSET: Command = command("getset", Access::Write, 3, |cx, args| {
    let f = Flags {
        get: true,
        ..Flags::default()
    };
    set_generic(
        cx,
        "getset",
        f,
        args[1],
        args[2],
        None,
        (reply_null, reply_ok),
    );
});

pub(crate) const GETDEL: Command = command("getdel", Access::Write, 2, |cx, args| {
    let old = cx.service.cache().get_del(args[1]);
    reply_value(cx, old);
});

/// `GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]`: a missing key answers
/// null before the expiry is checked, as in Redis.
pub(crate) const GETEX: Command = command("getex", Access::Write, -2, |cx, args| {
    let Some((f, expire)) = parse_flags(args, 2, false) else {
        return cx.reply.error(ERR_SYNTAX);
    };
    let cache = cx.service.cache();
    if !cache.exists(args[1]) {
        cache.get(args[1]); // counts the miss
        return cx.reply.null();
    }
    let when = match (f.expire, expire) {
        (Some(e), Some(arg)) => match expire_when(cx, "getex", arg, e) {
            Some(w) => Some(w),
            None => return,
        },
        _ => None,
    };
    let cache = cx.service.cache();
    let change = match when {
        Some(When::In(ttl)) => {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            Some(Some(cache.unix_now_ms().saturating_add(ms)))
        }
        Some(When::At(at)) => Some(Some(at)),
        None if f.persist => Some(None),
        None => None,
    };
    let absolute = matches!(f.expire, Some(Expire::ExAt | Expire::PxAt));
    let value = cache.get_ex(args[1], change, absolute);
    reply_value(cx, value);
});

/// `MSET key value [key value ...]`: each pair is set as `SET` would (the
/// TTL cleared). Nothing is reserved from the argument count: the pairs are
/// already in memory, and each is stored as it comes.
pub(crate) const MSET: Command = command("mset", Access::Write, -3, |cx, args| {
    if args.len() % 2 == 0 {
        return super::wrong_arity(&mut cx.reply, "mset");
    }
    let cache = cx.service.cache();
    for pair in args[1..].chunks_exact(2) {
        if let Err(e) = cache.set_ref(pair[0], ValueRef::Raw(pair[1]), SetOptions::default()) {
            return cache_error(&mut cx.reply, "mset", e);
        }
    }
    cx.reply.ok();
});

/// `MSETNX`: sets every pair only if no key exists. Checked, then set:
/// atomic in the reactor and tokio models, where one thread runs commands.
pub(crate) const MSETNX: Command = command("msetnx", Access::Write, -3, |cx, args| {
    if args.len() % 2 == 0 {
        return super::wrong_arity(&mut cx.reply, "msetnx");
    }
    let cache = cx.service.cache();
    if args[1..].chunks_exact(2).any(|pair| cache.exists(pair[0])) {
        return cx.reply.integer(0);
    }
    for pair in args[1..].chunks_exact(2) {
        if let Err(e) = cache.set_ref(pair[0], ValueRef::Raw(pair[1]), SetOptions::default()) {
            return cache_error(&mut cx.reply, "msetnx", e);
        }
    }
    cx.reply.integer(1);
});

pub(crate) const INCR: Command =
    command("incr", Access::Write, 2, |cx, args| incr_by(cx, args[1], 1));

pub(crate) const DECR: Command = command("decr", Access::Write, 2, |cx, args| {
    incr_by(cx, args[1], -1)
});

pub(crate) const INCRBY: Command = command("incrby", Access::Write, 3, |cx, args| {
    if let Some(by) = integer_arg(&mut cx.reply, args[2]) {
        incr_by(cx, args[1], by);
    }
});

pub(crate) const DECRBY: Command = command("decrby", Access::Write, 3, |cx, args| {
    match integer_arg(&mut cx.reply, args[2]) {
        None => {}
        // Negating i64::MIN overflows; Redis 7 says so before touching the key.
        Some(i64::MIN) => cx.reply.error(b"ERR decrement would overflow"),
        Some(by) => incr_by(cx, args[1], -by),
    }
});

fn incr_by(cx: &mut Cx<'_>, key: &[u8], by: i64) {
    match cx.service.cache().incr_by(key, by) {
        Ok(n) => cx.reply.integer(n),
        Err(e) => cache_error(&mut cx.reply, "incrby", e),
    }
}

/// `INCRBYFLOAT key increment`, in x87 long double as Redis computes it
/// (see [`super::longdouble`]); the key's TTL stays.
pub(crate) const INCRBYFLOAT: Command = command("incrbyfloat", Access::Write, 3, |cx, args| {
    let by = args[2];
    let result = cx.service.cache().update_float(args[1], |current| {
        super::longdouble::incr_by_float(current.unwrap_or(b"0"), by)
    });
    match result {
        Ok(Ok(text)) => cx.reply.bulk(text.as_bytes()),
        Ok(Err(message)) => cx.reply.error(message),
        Err(e) => cache_error(&mut cx.reply, "incrbyfloat", e),
    }
});

pub(crate) const APPEND: Command = command("append", Access::Write, 3, |cx, args| {
    match cx.service.cache().append(args[1], args[2]) {
        Ok(n) => cx.reply.integer(i64::try_from(n).unwrap_or(i64::MAX)),
        Err(e) => cache_error(&mut cx.reply, "append", e),
    }
});

pub(crate) const STRLEN: Command = command("strlen", Access::Read, 2, |cx, args| {
    let n = cx.service.cache().strlen(args[1]);
    cx.reply.integer(i64::try_from(n).unwrap_or(i64::MAX));
});

pub(crate) const GETRANGE: Command = command("getrange", Access::Read, 4, |cx, args| {
    let Some(start) = integer_arg(&mut cx.reply, args[2]) else {
        return;
    };
    let Some(end) = integer_arg(&mut cx.reply, args[3]) else {
        return;
    };
    // A large range is shared from the cached value, never copied.
    let bytes = cx.service.cache().get_range(args[1], start, end);
    if bytes.len() >= SHARE_MIN {
        cx.reply.bulk_header(bytes.len());
        let at = cx.reply.out().len();
        cx.splicer.splice(at, &bytes);
        cx.reply.out().extend_from_slice(b"\r\n");
    } else {
        cx.reply.bulk(&bytes);
    }
});

/// `SETRANGE key offset value`: past 512 MiB (`proto-max-bulk-len`) it is
/// refused at once, without allocating; past `maxmemory`, `-OOM` before
/// allocating.
pub(crate) const SETRANGE: Command = command("setrange", Access::Write, 4, |cx, args| {
    let Some(offset) = integer_arg(&mut cx.reply, args[2]) else {
        return;
    };
    let Ok(offset) = usize::try_from(offset) else {
        return cx.reply.error(b"ERR offset is out of range");
    };
    match cx.service.cache().set_range(args[1], offset, args[3]) {
        Ok(n) => cx.reply.integer(i64::try_from(n).unwrap_or(i64::MAX)),
        Err(e) => cache_error(&mut cx.reply, "setrange", e),
    }
});
