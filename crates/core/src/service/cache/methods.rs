//! The JSON protocol's cache methods: `set get del exists incr expire ttl`.
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
        .insert("ttl", TtlMethod);
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
