//! The method registry and the [`Method`] trait: how the service is extended.
//!
//! A method reads its params from a borrowed, validated [`Json`] slice and writes its result
//! JSON into the response buffer, so cheap methods allocate nothing. See
//! `examples/custom_method.rs` for adding one.

use std::sync::Arc;

use serde::Deserialize;

use super::{cache, fib, ping, stats, Cache, Stats};
use crate::protocol::message::write_json;
use crate::protocol::{Json, RpcError};

/// What a method may touch: the shared state of the service.
pub struct Context<'a> {
    pub cache: &'a Cache,
    pub stats: &'a Stats,
}

/// Whether a call is cheap enough to run inline on an event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Microseconds: run it where it arrived.
    Cheap,
    /// Long enough to stall other clients: run it on a worker if there is one.
    Heavy,
}

/// One RPC method.
pub trait Method: Send + Sync + 'static {
    /// Writes the result JSON for `params` into `out`, or fails with an error
    /// (whatever was written is then discarded).
    fn call(&self, cx: &Context<'_>, params: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError>;

    /// How expensive this call is; the default is cheap.
    fn cost(&self, _params: Json<'_>) -> Cost {
        Cost::Cheap
    }
}

/// Parses params into `T`; any mismatch is `bad_params`.
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
/// building a `Value`.
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
}

/// Method name → method.
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

    /// The built-in methods: `ping`, `fib`, the cache and `stats`.
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        r.insert_named("ping", "pong", ping::Ping);
        r.insert("fib", fib::Fib);
        cache::register(&mut r);
        r.insert("stats", stats::StatsMethod);
        r
    }

    /// Adds (or replaces) a method whose response `out` is its own name.
    pub fn insert(&mut self, name: &str, method: impl Method) -> &mut Registry {
        self.insert_named(name, name, method)
    }

    /// Adds (or replaces) a method whose response carries a different `out` name.
    pub fn insert_named(&mut self, name: &str, out: &str, method: impl Method) -> &mut Registry {
        let entry = Entry {
            out: out.into(),
            method: Arc::new(method),
        };
        self.methods.insert(name.into(), entry);
        self
    }

    /// Looks a method up: its `out` name and the method.
    #[inline]
    pub fn get(&self, name: &str) -> Option<(&str, &dyn Method)> {
        self.methods.get(name).map(|e| (&*e.out, &*e.method))
    }

    /// The registered method names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.methods.keys().map(|k| &**k).collect();
        names.sort_unstable();
        names
    }
}
