//! The method registry and the [`Method`] trait: how the service is extended.
//!
//! A method reads its params from a borrowed, validated [`Json`] slice and writes its result
//! JSON into the response buffer, so cheap methods allocate nothing. See
//! [`Registry::insert`], and `examples/custom_method.rs`, for adding one.

use std::sync::Arc;

use serde::Deserialize;

use super::{cache, fib, persistence, ping, stats, Access, Cache, Persistence, Stats};
use crate::output::Output;
use reactor_rpc_protocol::message::write_json;
use reactor_rpc_protocol::{Json, RpcError};

/// What a method may touch: the shared state of the service.
///
/// Every call gets one: the cache ([`Context::cache`]), and counters that
/// stay private for now; later versions may give methods more through it.
pub struct Context<'a> {
    pub(crate) cache: &'a Cache,
    pub(crate) stats: &'a Stats,
    pub(crate) persistence: &'a Persistence,
    pub(crate) auth: &'a super::auth::Auth,
    pub(crate) max_reply: usize,
}

impl<'a> Context<'a> {
    /// The key-value store the cache methods (JSON and RESP) share.
    pub fn cache(&self) -> &'a Cache {
        self.cache
    }

    /// The largest result a call may write (`--max-reply`, in bytes): a
    /// method whose result grows with what it is asked for (`mget`, `scan`)
    /// checks it as it writes, and answers [`Context::reply_too_large`]
    /// instead of going on.
    pub fn max_reply(&self) -> usize {
        self.max_reply
    }

    /// The `reply_too_large` error for a result over [`Context::max_reply`].
    pub fn reply_too_large(&self) -> RpcError {
        RpcError::new(
            reactor_rpc_protocol::ErrorCode::ReplyTooLarge,
            format!(
                "the result would be larger than {} bytes (--max-reply): ask for fewer keys at a time",
                self.max_reply
            ),
        )
    }
}

/// Whether a call is cheap enough to run inline on an event loop.
///
/// `#[non_exhaustive]`: later versions may grade costs more finely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cost {
    /// Microseconds: run it where it arrived.
    Cheap,
    /// Long enough to stall other clients: run it on a worker if there is one.
    Heavy,
}

/// One RPC method.
///
/// Implement it directly to write the result JSON yourself (as the built-in
/// `ping` does, allocating nothing), or build one from a closure with
/// [`method_fn`]. Register it with [`Registry::insert`].
///
/// ```
/// use reactor_rpc_protocol::{Json, RpcError};
/// use reactor_rpc_core::service::{Context, Cost, Method};
///
/// /// `len`: the length of its params' JSON text, in bytes.
/// struct Len;
///
/// impl Method for Len {
///     fn call(&self, _cx: &Context<'_>, params: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
///         out.extend_from_slice(params.get().len().to_string().as_bytes());
///         Ok(())
///     }
///
///     fn cost(&self, params: Json<'_>) -> Cost {
///         if params.get().len() > 1 << 16 { Cost::Heavy } else { Cost::Cheap }
///     }
/// }
/// ```
pub trait Method: Send + Sync + 'static {
    /// Writes the result JSON for `params` into `out`, or fails with an error
    /// (whatever was written is then discarded).
    fn call(&self, cx: &Context<'_>, params: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError>;

    /// Like [`Method::call`], into an [`Output`] that can also hold large
    /// shared values by reference ([`Output::share`]); this is what the
    /// server calls. The default writes through [`Method::call`]; the cache's
    /// `get` overrides it to queue a large value without copying it.
    fn call_output(
        &self,
        cx: &Context<'_>,
        params: Json<'_>,
        out: &mut Output,
    ) -> Result<(), RpcError> {
        self.call(cx, params, out)
    }

    /// How expensive this call is; the default is cheap.
    fn cost(&self, _params: Json<'_>) -> Cost {
        Cost::Cheap
    }

    /// What a caller needs to be allowed to call it. The default is
    /// [`Access::Write`]: a method that does not say is assumed to change
    /// something.
    fn access(&self) -> Access {
        Access::Write
    }
}

/// Parses params into `T`; any mismatch is `bad_params`.
///
/// ```
/// use reactor_rpc_protocol::{ErrorCode, Json};
/// use reactor_rpc_core::service::params;
///
/// let (a, b): (i64, i64) = params(Json::new("[2, 3]").unwrap()).unwrap();
/// assert_eq!(a + b, 5);
/// let err = params::<(i64, i64)>(Json::new(r#""two""#).unwrap()).unwrap_err();
/// assert_eq!(err.code, ErrorCode::BadParams);
/// ```
pub fn params<'a, T: Deserialize<'a>>(raw: Json<'a>) -> Result<T, RpcError> {
    raw.parse()
        .map_err(|e| RpcError::bad_params(serde_message(&e)))
}

/// serde's message without its " at line 1 column N": params are one line
/// of a frame, and a position inside it means nothing to the caller.
pub(crate) fn serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_string(),
        None => text,
    }
}

/// A method from a closure over parsed params, returning any serialisable value.
/// Convenient for extensions; built-ins implement [`Method`] directly to avoid
/// building a `Value`. Params that do not deserialise into `P` are answered
/// with `bad_params` before the closure runs; see [`Registry::insert`] for a
/// whole example.
pub fn method_fn<F, P, R>(f: F) -> impl Method
where
    F: Fn(&Context<'_>, P) -> Result<R, RpcError> + Send + Sync + 'static,
    P: for<'de> Deserialize<'de> + 'static,
    R: serde::Serialize + 'static,
{
    struct FnMethod<F, P, R>(F, std::marker::PhantomData<fn(P) -> R>);
    impl<F, P, R> Method for FnMethod<F, P, R>
    where
        F: Fn(&Context<'_>, P) -> Result<R, RpcError> + Send + Sync + 'static,
        P: for<'de> Deserialize<'de> + 'static,
        R: serde::Serialize + 'static,
    {
        fn call(&self, cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
            let result = (self.0)(cx, params(raw)?)?;
            write_json(out, &result)
        }
    }
    FnMethod(f, std::marker::PhantomData)
}

struct Entry {
    /// The response's `out` field: the method name, except `pong` for `ping`.
    out: Box<str>,
    method: Arc<dyn Method>,
    /// The method's row in the service's metrics, set by [`Registry::label`].
    metric: crate::metrics::MethodId,
}

/// Method name → method: what a [`Service`](crate::Service) can answer.
///
/// Start from [`Registry::builtin`] to extend the built-in methods, or from
/// [`Registry::empty`] to serve only your own.
pub struct Registry {
    /// foldhash: method names are short, and the map is never written from the network.
    methods: foldhash::HashMap<Box<str>, Entry>,
}

impl Registry {
    /// No methods at all.
    pub fn empty() -> Registry {
        Registry {
            methods: foldhash::HashMap::default(),
        }
    }

    /// The built-in methods: `ping`, `fib`, the cache, `stats` and `save`
    /// (which answers `unknown_method` unless a snapshot file is configured).
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        r.insert_named("ping", "pong", ping::Ping);
        r.insert("fib", fib::Fib);
        cache::register(&mut r);
        r.insert("stats", stats::StatsMethod);
        r.insert("save", persistence::SaveMethod);
        r
    }

    /// Adds (or replaces) a method whose response `out` is its own name.
    ///
    /// A service with one more method, called in-process (over TCP it is
    /// the same call: the facade crate `reactor-rpc` shows it with a server
    /// and a client):
    ///
    /// ```
    /// use reactor_rpc_core::service::{method_fn, Context};
    /// use reactor_rpc_core::{Registry, Service};
    /// use reactor_rpc_protocol::{RpcError, HEADER_LEN};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct Add {
    ///     a: i64,
    ///     b: i64,
    /// }
    ///
    /// let mut registry = Registry::builtin(); // keep ping, fib, the cache and stats
    /// registry.insert(
    ///     "add",
    ///     method_fn(|_cx: &Context<'_>, p: Add| {
    ///         p.a.checked_add(p.b)
    ///             .ok_or_else(|| RpcError::bad_params("the sum overflows"))
    ///     }),
    /// );
    /// let service = Service::with_registry(registry);
    ///
    /// let call = |body: &str| {
    ///     let mut frame = Vec::new();
    ///     service.handle(&"doc", body.as_bytes(), &mut frame, false);
    ///     String::from_utf8(frame[HEADER_LEN..].to_vec()).unwrap()
    /// };
    /// assert_eq!(call(r#"{"in":"add","params":{"a":2,"b":40}}"#), r#"{"out":"add","result":42}"#);
    /// assert!(call(r#"{"in":"add","params":{"a":9223372036854775807,"b":1}}"#).contains("bad_params"));
    /// assert!(call(r#"{"in":"add","params":{"a":"two"}}"#).contains("bad_params")); // rejected by serde
    /// ```
    pub fn insert(&mut self, name: &str, method: impl Method) -> &mut Registry {
        self.insert_named(name, name, method)
    }

    /// Adds (or replaces) a method whose response carries a different `out` name.
    pub fn insert_named(&mut self, name: &str, out: &str, method: impl Method) -> &mut Registry {
        let entry = Entry {
            out: out.into(),
            method: Arc::new(method),
            metric: crate::metrics::MethodId::default(),
        };
        self.methods.insert(name.into(), entry);
        self
    }

    /// Looks a method up: its `out` name and the method.
    #[inline]
    pub fn get(&self, name: &str) -> Option<(&str, &dyn Method)> {
        self.methods.get(name).map(|e| (&*e.out, &*e.method))
    }

    /// Looks a method up with its metrics row, for the request path.
    #[inline]
    pub(crate) fn get_labelled(
        &self,
        name: &str,
    ) -> Option<(&str, &dyn Method, crate::metrics::MethodId)> {
        self.methods
            .get(name)
            .map(|e| (&*e.out, &*e.method, e.metric))
    }

    /// Resolves every method's metrics row once, so the request path never
    /// searches the label table.
    pub(crate) fn label(&mut self, metrics: &crate::metrics::Metrics) {
        for (name, entry) in self.methods.iter_mut() {
            entry.metric = metrics.method_id(name);
        }
    }

    /// The registered method names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.methods.keys().map(|k| &**k).collect();
        names.sort_unstable();
        names
    }
}
