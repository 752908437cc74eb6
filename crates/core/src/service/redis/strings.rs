//! String commands: GET, SET and the INCR family. A RESP `SET` stores the
//! bytes as given ([`Value::Raw`](crate::service::cache::Value::Raw)); `GET` answers any stored value in its RESP
//! form (see the cache's value conversions), so keys set over JSON read back
//! too, and integers are shared with the JSON `incr`.

use std::time::Duration;

use super::{cache_error, integer_arg, keyspace::expire_overflows, Command, Cx, ERR_SYNTAX};
use crate::output::SHARE_MIN;
use crate::service::cache::{SetCond, SetOptions, Shown, ValueRef};
use crate::service::Access;

pub(crate) const GET: Command = Command {
    name: "get",
    access: Access::Read,
    arity: 2,
    flags: &["readonly", "fast"],
    keys: (1, 1, 1),
    // A small value is copied into the reply while it is borrowed; a large
    // one is spliced in by reference: no copy of it either way.
    subcommands: &[],
    run: |cx, args| {
        let reply = &mut cx.reply;
        let found = cx
            .service
            .cache()
            .get_shared_or_with(args[1], |value| reply.bulk(&value.resp_bytes()));
        match found {
            None => cx.reply.null(),
            Some(Shown::InPlace(())) => {}
            Some(Shown::Shared(value)) => {
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
    },
};

pub(crate) const SET: Command = Command {
    name: "set",
    access: Access::Write,
    arity: -3,
    flags: &["write", "denyoom"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: set,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// `SET key value [NX|XX] [EX s|PX ms|KEEPTTL]`, options parsed as Redis 7's
/// `parseExtendedStringArgumentsOrReply` does (the last EX wins; EX with PX
/// or KEEPTTL, or NX with XX, is a syntax error). GET, EXAT and PXAT are not
/// supported and are syntax errors.
fn set(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let (key, value) = (args[1], args[2]);
    let (mut nx, mut xx, mut keep_ttl) = (false, false, false);
    let mut expire: Option<(&[u8], Unit)> = None;
    let mut j = 3;
    while j < args.len() {
        let opt = args[j];
        let next = args.get(j + 1).copied();
        let unit = expire.map(|(_, unit)| unit);
        if opt.eq_ignore_ascii_case(b"NX") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") && !nx {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"KEEPTTL") && unit.is_none() {
            keep_ttl = true;
        } else if let (true, false, Some(n)) = (
            opt.eq_ignore_ascii_case(b"EX"),
            keep_ttl || unit == Some(Unit::Millis),
            next,
        ) {
            expire = Some((n, Unit::Seconds));
            j += 1;
        } else if let (true, false, Some(n)) = (
            opt.eq_ignore_ascii_case(b"PX"),
            keep_ttl || unit == Some(Unit::Seconds),
            next,
        ) {
            expire = Some((n, Unit::Millis));
            j += 1;
        } else {
            return cx.reply.error(ERR_SYNTAX);
        }
        j += 1;
    }
    let ttl = match expire {
        None => None,
        Some((arg, unit)) => match expire_millis(cx, arg, unit) {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => return,
        },
    };
    let cond = match (nx, xx) {
        (true, _) => SetCond::IfAbsent,
        (_, true) => SetCond::IfPresent,
        _ => SetCond::Always,
    };
    let options = SetOptions {
        ttl,
        cond,
        keep_ttl,
    };
    match cx
        .service
        .cache()
        .set_ref(key, ValueRef::Raw(value), options)
    {
        Ok(true) => cx.reply.ok(),
        Ok(false) => cx.reply.null(),
        Err(e) => cache_error(&mut cx.reply, "set", e),
    }
}

/// The relative expiry of SET's EX/PX in milliseconds, or the error Redis
/// replies with: not an integer, not positive, or so far away that the
/// absolute time in milliseconds would overflow.
fn expire_millis(cx: &mut Cx<'_>, arg: &[u8], unit: Unit) -> Option<u64> {
    let n = integer_arg(&mut cx.reply, arg)?;
    let ms = match unit {
        Unit::Seconds if n <= i64::MAX / 1000 => n * 1000,
        Unit::Seconds => 0,
        Unit::Millis => n,
    };
    if ms <= 0 || expire_overflows(ms) {
        cx.reply.error(b"ERR invalid expire time in 'set' command");
        return None;
    }
    u64::try_from(ms).ok()
}

pub(crate) const INCR: Command = Command {
    name: "incr",
    access: Access::Write,
    arity: 2,
    flags: &["write", "denyoom", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| incr_by(cx, args[1], 1),
};

pub(crate) const DECR: Command = Command {
    name: "decr",
    access: Access::Write,
    arity: 2,
    flags: &["write", "denyoom", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| incr_by(cx, args[1], -1),
};

pub(crate) const INCRBY: Command = Command {
    name: "incrby",
    access: Access::Write,
    arity: 3,
    flags: &["write", "denyoom", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| {
        if let Some(by) = integer_arg(&mut cx.reply, args[2]) {
            incr_by(cx, args[1], by);
        }
    },
};

pub(crate) const DECRBY: Command = Command {
    name: "decrby",
    access: Access::Write,
    arity: 3,
    flags: &["write", "denyoom", "fast"],
    keys: (1, 1, 1),
    subcommands: &[],
    run: |cx, args| match integer_arg(&mut cx.reply, args[2]) {
        None => {}
        // Negating i64::MIN overflows; Redis 7 says so before touching the key.
        Some(i64::MIN) => cx.reply.error(b"ERR decrement would overflow"),
        Some(by) => incr_by(cx, args[1], -by),
    },
};

fn incr_by(cx: &mut Cx<'_>, key: &[u8], by: i64) {
    match cx.service.cache().incr_by(key, by) {
        Ok(n) => cx.reply.integer(n),
        Err(e) => cache_error(&mut cx.reply, "incrby", e),
    }
}
