//! The JSON protocol's cache methods: `set get del exists incr expire ttl`,
//! and the counterparts of Redis commands a cache client wants over JSON
//! too: `mget mset getdel scan flush`.
//!
//! Each one parses its params by borrowing from the request, makes one call on
//! the typed [`Cache`](super::Cache) API, and writes its result straight into the response
//! buffer. The wire behaviour is specified in `PROTOCOL.md`.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{SetOptions, Shown, Ttl, Value, ValueRef};
use crate::output::Output;
use crate::service::{Access, Context, Method, Registry};
use reactor_rpc_protocol::message::write_int;
use reactor_rpc_protocol::{Json, RpcError};

/// Adds the cache methods to a registry.
pub fn register(r: &mut Registry) {
    r.insert("set", Set)
        .insert("get", Get)
        .insert("del", Del)
        .insert("exists", Exists)
        .insert("incr", Incr)
        .insert("expire", Expire)
        .insert("ttl", TtlMethod)
        .insert("mget", MGet)
        .insert("mset", MSet)
        .insert("getdel", GetDel)
        .insert("scan", Scan)
        .insert("flush", Flush);
}

/// Keys at which `mget` / `mset` are heavy (run off the loop where a
/// server has workers), as RESP's `MGET` / `MSET` are.
const MANY_KEYS: usize = crate::service::redis::heavy::MANY_KEYS;

#[derive(Deserialize)]
struct KeysParams<'a> {
    #[serde(borrow)]
    keys: Vec<Cow<'a, str>>,
}

/// `mset`'s `values`: an object whose members are kept in order, so that a
/// key given twice ends with its last value, as Redis's `MSET` does.
struct Pairs<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pairs<'a>, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Pairs<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of keys and values")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Pairs<'a>, M::Error> {
                // Grows with the members present, never with a count announced.
                let mut pairs = Vec::new();
                while let Some(entry) = map.next_entry::<Cow<'a, str>, &'a RawValue>()? {
                    pairs.push(entry);
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct MSetParams<'a> {
    #[serde(borrow)]
    values: Pairs<'a>,
}

#[derive(Deserialize)]
struct ScanParams<'a> {
    cursor: Option<serde_json::Value>,
    #[serde(borrow, rename = "match")]
    pattern: Option<Cow<'a, str>>,
    count: Option<u64>,
}

#[derive(Deserialize, Default)]
struct FlushParams {
    #[serde(rename = "async", default)]
    asynchronous: bool,
}

struct MGet;
struct MSet;
struct GetDel;
struct Scan;
struct Flush;

impl Method for MGet {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeysParams = params(raw)?;
        let start = out.len();
        out.push(b'[');
        for (i, key) in p.keys.iter().enumerate() {
            // A key named many times must not be copied many times: past
            // --max-reply the call is refused (the frame is rolled back).
            if out.len() - start > cx.max_reply() {
                return Err(cx.reply_too_large());
            }
            if i > 0 {
                out.push(b',');
            }
            match cx.cache.get_with(key.as_bytes(), |v| v.write_json(out)) {
                Some(written) => written?,
                None => out.extend_from_slice(b"null"),
            }
        }
        if out.len() - start > cx.max_reply() {
            return Err(cx.reply_too_large());
        }
        out.push(b']');
        Ok(())
    }

    fn cost(&self, raw: Json<'_>) -> crate::service::Cost {
        // A cheap over-estimate: a key costs at least 3 bytes (`"",`).
        if raw.get().len() / 3 > MANY_KEYS {
            crate::service::Cost::Heavy
        } else {
            crate::service::Cost::Cheap
        }
    }

    fn access(&self) -> Access {
        Access::Read
    }
}

impl Method for MSet {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: MSetParams = params(raw)?;
        for (key, value) in &p.values.0 {
            let value = ValueRef::from_json(value.get());
            cx.cache
                .set_ref(key.as_bytes(), value, SetOptions::default())?;
        }
        write_bool(out, true);
        Ok(())
    }

    fn cost(&self, raw: Json<'_>) -> crate::service::Cost {
        // A pair costs at least 6 bytes (`"":0,`).
        if raw.get().len() / 6 > MANY_KEYS {
            crate::service::Cost::Heavy
        } else {
            crate::service::Cost::Cheap
        }
    }

    fn access(&self) -> Access {
        Access::Write
    }
}

impl Method for GetDel {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        match cx.cache.get_del(p.key.as_bytes()) {
            Some(value) => value.write_json(out)?,
            None => out.extend_from_slice(b"null"),
        }
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Write
    }
}

impl Method for Scan {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: ScanParams = if raw.get() == "null" {
            ScanParams {
                cursor: None,
                pattern: None,
                count: None,
            }
        } else {
            params(raw)?
        };
        let bad_cursor =
            || RpcError::bad_params("cursor must be a string of digits from a previous scan, or 0");
        let cursor = match &p.cursor {
            None => 0,
            Some(serde_json::Value::Number(n)) => n.as_u64().ok_or_else(bad_cursor)?,
            Some(serde_json::Value::String(s)) => s.parse::<u64>().map_err(|_| bad_cursor())?,
            Some(_) => return Err(bad_cursor()),
        };
        let count = usize::try_from(p.count.unwrap_or(10)).unwrap_or(usize::MAX);
        if count == 0 {
            return Err(RpcError::bad_params("count must be an integer > 0"));
        }
        let pattern = p.pattern.as_deref().map(str::as_bytes);
        let mut keys: Vec<String> = Vec::new();
        // Keys are collected up to --max-reply (JSON may escape a byte into
        // six); past it the step completes (the cursor must), unanswered.
        let (mut size, mut over) = (0usize, false);
        let next = cx.cache.scan(cursor, count, |key| {
            let wanted = pattern.is_none_or(|p| {
                crate::service::redis::glob::is_match_all(p)
                    || crate::service::redis::glob::matches(p, key, false)
            });
            if wanted {
                size = size.saturating_add(key.len().saturating_mul(6) + 4);
                over |= size > cx.max_reply();
                if !over {
                    keys.push(String::from_utf8_lossy(key).into_owned());
                }
            }
        });
        if over {
            return Err(cx.reply_too_large());
        }
        reactor_rpc_protocol::message::write_json(
            out,
            &serde_json::json!({"cursor": next.to_string(), "keys": keys}),
        )
    }

    fn access(&self) -> Access {
        Access::Read
    }
}

impl Method for Flush {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: FlushParams = if raw.get() == "null" {
            FlushParams::default()
        } else {
            crate::service::params(raw)?
        };
        if p.asynchronous {
            cx.cache.flush_all_async();
        } else {
            cx.cache.flush_all();
        }
        write_bool(out, true);
        Ok(())
    }

    fn cost(&self, _raw: Json<'_>) -> crate::service::Cost {
        crate::service::Cost::Cheap
    }

    fn access(&self) -> Access {
        Access::Admin
    }
}

/// Parses cache params, which are always an object (serde alone would also
/// take `["k"]` as `{"key": "k"}`).
fn params<'a, T: Deserialize<'a>>(raw: Json<'a>) -> Result<T, RpcError> {
    if !raw.get().starts_with('{') {
        return Err(RpcError::bad_params(
            "params must be an object with a string \"key\"",
        ));
    }
    crate::service::params(raw)
}

fn ttl_ms(ms: u64) -> Result<Duration, RpcError> {
    if ms == 0 {
        return Err(RpcError::bad_params("ttl_ms must be an integer > 0"));
    }
    Ok(Duration::from_millis(ms))
}

fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

#[derive(Deserialize)]
struct KeyParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
}

#[derive(Deserialize)]
struct SetParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: &'a RawValue,
    ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
struct IncrParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    by: Option<i64>,
}

#[derive(Deserialize)]
struct ExpireParams<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    ttl_ms: u64,
}

struct Set;
struct Get;
struct Del;
struct Exists;
struct Incr;
struct Expire;
struct TtlMethod;

impl Method for Set {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: SetParams = params(raw)?;
        let opt = SetOptions {
            ttl: p.ttl_ms.map(ttl_ms).transpose()?,
            ..SetOptions::default()
        };
        let value = ValueRef::from_json(p.value.get());
        cx.cache.set_ref(p.key.as_bytes(), value, opt)?;
        write_bool(out, true);
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Write
    }
}

impl Method for Get {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        match cx.cache.get_with(p.key.as_bytes(), |v| v.write_json(out)) {
            Some(written) => written?,
            None => out.extend_from_slice(b"null"),
        }
        Ok(())
    }

    /// Stored JSON text of [`SHARE_MIN`](crate::output::SHARE_MIN) bytes or
    /// more is queued by reference (the response is the text verbatim);
    /// anything else is written as [`Get::call`] writes it.
    fn call_output(
        &self,
        cx: &Context<'_>,
        raw: Json<'_>,
        out: &mut Output,
    ) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        match cx
            .cache
            .get_shared_or_with(p.key.as_bytes(), |v| v.write_json(out))
        {
            None => out.extend_from_slice(b"null"),
            Some(Shown::InPlace(written)) => written?,
            Some(Shown::Shared(Value::Json(text))) => out.share(&text),
            Some(Shown::Shared(value)) => value.write_json(out)?,
        }
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Read
    }
}

impl Method for Del {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        out.push(if cx.cache.del(p.key.as_bytes()) {
            b'1'
        } else {
            b'0'
        });
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Write
    }
}

impl Method for Exists {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        write_bool(out, cx.cache.exists(p.key.as_bytes()));
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Read
    }
}

impl Method for Incr {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: IncrParams = params(raw)?;
        let n = cx.cache.incr_by(p.key.as_bytes(), p.by.unwrap_or(1))?;
        write_int(out, n);
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Write
    }
}

impl Method for Expire {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: ExpireParams = params(raw)?;
        let ttl = ttl_ms(p.ttl_ms)?;
        write_bool(out, cx.cache.expire(p.key.as_bytes(), ttl)?);
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Write
    }
}

impl Method for TtlMethod {
    fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let p: KeyParams = params(raw)?;
        let ms = match cx.cache.ttl(p.key.as_bytes()) {
            Ttl::Missing => -2,
            Ttl::Persistent => -1,
            Ttl::Remaining(left) => i64::try_from(left.as_millis()).unwrap_or(i64::MAX),
        };
        write_int(out, ms);
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Read
    }
}
