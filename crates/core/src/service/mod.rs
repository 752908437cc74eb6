//! The service layer: what each method means.
//!
//! Pure code, like the protocol: [`Service::handle`] takes one frame body and
//! appends one response frame to an output buffer, and [`redis::execute`]
//! does the same for one RESP command. It knows nothing of sockets or
//! threads, so every server model, the worker threads, the fuzzer and the
//! benchmarks all drive exactly the same request path.
//!
//! Methods live in a [`Registry`]; the built-in ones are `ping`, `fib`, the
//! cache (`set get del exists incr expire ttl mget mset getdel scan flush`,
//! in [`cache::methods`]), `stats` and `save`; `auth` is answered by the
//! service itself ([`auth::METHOD`]). A method can say that a given call is
//! [`Cost::Heavy`] (RESP commands: [`redis::is_heavy`]), and a server model
//! with workers then runs it off its event loop (the session's
//! [`Stop::Offload`](crate::session::Stop::Offload)).
//!
//! * [`auth`]: users, roles, the per-connection [`Login`](auth::Login), the
//!   brute-force lockout, the metrics token.
//! * [`cache`]: the keyspace both protocols share, and the JSON cache methods.
//! * [`redis`]: the Redis commands over the same cache.
//! * [`fib`], `ping.rs`: the seed's two methods.
//! * [`stats`]: the counters every model updates, and the `stats` method.
//! * [`persistence`]: save health, the write refusal after a failed save,
//!   `save`, and the [`Saver`] ops installs.
//! * `registry.rs`: the [`Registry`] and the [`Method`] trait; `access.rs`:
//!   the [`Access`] class of every method and command; `response.rs`: the
//!   JSON response envelope, written into an [`Output`].

mod access;
pub mod auth;
pub mod cache;
pub mod fib;
pub mod persistence;
pub(crate) mod ping;
pub mod redis;
pub(crate) mod registry;
mod response;
pub mod stats;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use log::{debug, log_enabled, Level};

use crate::metrics::{CodeId, MethodId, Metrics};
use crate::output::Output;

pub use access::Access;
pub use cache::{Cache, CacheConfig, EvictionPolicy};
pub use persistence::{Persistence, PersistenceStatus, SaveFailure, SaveReport, Saver};
use reactor_rpc_protocol::message::write_error_frame;
use reactor_rpc_protocol::parse_request;
pub use registry::{method_fn, params, Context, Cost, Method, Registry};
use response::ResponseWriter;
pub use stats::{ServerInfo, Stats};

/// `--max-reply`'s default: 64 MiB (see
/// [`Options::max_reply`](crate::session::Options::max_reply)).
pub const DEFAULT_MAX_REPLY: usize = 64 << 20;

/// Whether [`Service::handle`] answered, or left a heavy request for a worker.
///
/// Deliberately exhaustive, like [`Stop`](crate::session::Stop): a caller
/// must handle both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A response frame was appended to the output buffer.
    Done,
    /// Nothing was written: the request is heavy and should run on a worker,
    /// which calls [`Service::handle`] again with `offload = false`.
    Offload,
}

/// Methods plus the state they share: one per server, shared by every connection.
pub struct Service {
    registry: Registry,
    cache: Cache,
    stats: Stats,
    persistence: Persistence,
    metrics: Metrics,
    /// The metrics row of each Redis command, by its index in the command table.
    resp_rows: Box<[MethodId]>,
    /// The RESP clients connected now (`CLIENT LIST`).
    clients: redis::clients::Clients,
    /// What the RESP clients hold for transactions: queued commands and
    /// watched keys, and how many hold some (their total bound and shares).
    transactions: Arc<redis::transaction::Ledger>,
    /// Users and the brute-force bound, installed by the server at bind
    /// ([`Service::install_auth`]); none: authentication off.
    auth: OnceLock<Arc<auth::Auth>>,
    /// The bearer token `GET /metrics` needs, if any.
    metrics_token: OnceLock<auth::BearerToken>,
}

/// Authentication off: what [`Service::auth`] answers until a server
/// installs its users.
static NO_AUTH: std::sync::LazyLock<auth::Auth> = std::sync::LazyLock::new(auth::Auth::default);

impl Service {
    /// A service with the built-in methods.
    pub fn new() -> Service {
        Service::with_registry(Registry::builtin())
    }

    /// A service with a custom registry (start from [`Registry::builtin`] to extend it).
    pub fn with_registry(registry: Registry) -> Service {
        Service::with_cache_config(registry, CacheConfig::default())
    }

    /// A service with a custom registry and cache bound (`--maxmemory`, eviction policy).
    pub fn with_cache_config(mut registry: Registry, cache: CacheConfig) -> Service {
        // The label tables are this registry's names and `auth` (protocol
        // "json") and the Redis command table's (protocol "resp"): fixed
        // sets, whatever names clients send (those count as their
        // protocol's `other`).
        let mut names = registry.names();
        if !names.contains(&auth::METHOD) {
            names.push(auth::METHOD);
        }
        let commands: Vec<&str> = redis::COMMANDS.iter().map(|c| c.name).collect();
        let metrics = Metrics::with_commands(&names, &commands);
        registry.label(&metrics);
        Service {
            registry,
            cache: Cache::new(cache),
            stats: Stats::new(),
            persistence: Persistence::new(),
            resp_rows: redis::metric_rows(&metrics),
            metrics,
            clients: redis::clients::Clients::default(),
            transactions: Arc::default(),
            auth: OnceLock::new(),
            metrics_token: OnceLock::new(),
        }
    }

    /// Installs the users every connection authenticates against, and the
    /// metrics port's token: what a server does at bind, from its
    /// configuration. Only the first call counts (a service shared by two
    /// servers has one set of users); a later one with other users is
    /// refused, and returns `false`.
    pub fn install_auth(
        &self,
        auth: Arc<auth::Auth>,
        metrics_token: Option<auth::BearerToken>,
    ) -> bool {
        let same = Arc::ptr_eq(self.auth.get_or_init(|| auth.clone()), &auth);
        let token_same = match metrics_token {
            Some(token) => self.metrics_token.get_or_init(|| token.clone()) == &token,
            None => self.metrics_token.get().is_none(),
        };
        same && token_same
    }

    /// The users and the brute-force bound (authentication off until a
    /// server installs them).
    #[inline]
    pub fn auth(&self) -> &auth::Auth {
        self.auth.get().map_or(&NO_AUTH, |a| a)
    }

    /// The bearer token `GET /metrics` needs, if one is configured.
    pub fn metrics_token(&self) -> Option<&auth::BearerToken> {
        self.metrics_token.get()
    }

    /// The metrics row of the Redis command at `index` in its table.
    pub(crate) fn resp_metric_row(&self, index: usize) -> MethodId {
        self.resp_rows
            .get(index)
            .copied()
            .unwrap_or_else(|| self.metrics.other_command())
    }

    /// The request and byte counters `GET /metrics` reports; the connection
    /// loops add the bytes they read and write.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The key-value store the cache methods (JSON and RESP) share; its
    /// typed API is what a snapshot or an embedding program uses.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Persistence health and the installed [`Saver`]: `ops::persist` installs
    /// one and records each save's outcome; `stats`, `INFO`, the metrics and
    /// the write refusal after a failed save read it.
    pub fn persistence(&self) -> &Persistence {
        &self.persistence
    }

    /// The persistence figures now, as `stats`, `INFO persistence` and the
    /// metrics report them.
    pub fn persistence_status(&self) -> PersistenceStatus {
        self.persistence
            .status(self.cache.dirty(), persistence::unix_ms_now())
    }

    /// Requests answered so far (JSON and RESP), as `stats` reports them.
    pub fn requests(&self) -> u64 {
        self.stats.requests()
    }

    /// The gauges and counters kept outside [`Metrics`] (connections, keys,
    /// memory, jobs, persistence), read now, for the metrics exposition.
    pub fn readings(&self) -> stats::Readings {
        self.stats.readings(
            &self.cache.info(),
            self.persistence_status(),
            self.auth().counts(),
        )
    }

    /// The RESP clients connected now (`CLIENT LIST`, `CLIENT KILL`).
    pub fn clients(&self) -> &redis::clients::Clients {
        &self.clients
    }

    /// What the RESP clients hold for transactions (`MULTI` queues and
    /// `WATCH`ed keys), bounded in total.
    pub fn transactions(&self) -> &Arc<redis::transaction::Ledger> {
        &self.transactions
    }

    /// The counters every model updates and `stats` reports.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handles one frame body and appends exactly one response frame to `out`,
    /// unless `offload` is allowed and the call is heavy ([`Handled::Offload`]).
    /// `peer` only labels the debug log line.
    ///
    /// Runs with every permission: authentication belongs to a connection,
    /// and a server's sessions go through [`Service::handle_as`] with theirs.
    /// This is the entry point for an embedding program, and for a worker
    /// running a request its connection was already allowed to make.
    ///
    /// The request is counted in the metrics, timed from this call to its
    /// response being appended (`session::json::process` times each batch as
    /// a whole instead).
    pub fn handle(
        &self,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Vec<u8>,
        offload: bool,
    ) -> Handled {
        let mut output = Output::from_vec(std::mem::take(out));
        let handled = self.handle_output(peer, body, &mut output, offload);
        *out = output.into_vec();
        handled
    }

    /// [`Service::handle`] into an [`Output`]: a large cached value is
    /// queued by reference rather than copied (see [`crate::output`]).
    pub fn handle_output(
        &self,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Output,
        offload: bool,
    ) -> Handled {
        let max_reply = DEFAULT_MAX_REPLY;
        self.handle_timed(None, peer, body, out, offload, max_reply)
    }

    /// [`Service::handle_output`] for a heavy request a worker runs (its
    /// connection was allowed to make it), with the server's `--max-reply`.
    pub fn handle_job(
        &self,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Output,
        max_reply: usize,
    ) -> Handled {
        self.handle_timed(None, peer, body, out, false, max_reply)
    }

    /// [`Service::handle_output`] for a connection that has logged in as
    /// `login` (or not): a method its permission does not allow is answered
    /// `unauthenticated` or `forbidden`, and `auth` logs it in.
    pub fn handle_as(
        &self,
        login: &mut auth::Login,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Output,
        offload: bool,
    ) -> Handled {
        let max_reply = DEFAULT_MAX_REPLY;
        self.handle_timed(Some(login), peer, body, out, offload, max_reply)
    }

    fn handle_timed(
        &self,
        login: Option<&mut auth::Login>,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Output,
        offload: bool,
        max_reply: usize,
    ) -> Handled {
        let started = Instant::now();
        let (handled, label) = self.handle_labelled(login, peer, body, out, offload, max_reply);
        if let Some((method, code)) = label {
            self.metrics.observe(method, code, started.elapsed());
        }
        handled
    }

    /// [`Service::handle_as`] without the metrics: returns what to count (no
    /// label for a request left to a worker, which counts it when it runs).
    /// `login` is `None` for a request allowed already (see [`Service::handle`]).
    /// A reply over `max_reply` is replaced by `reply_too_large`.
    #[inline]
    pub(crate) fn handle_labelled(
        &self,
        login: Option<&mut auth::Login>,
        peer: &dyn fmt::Display,
        body: &[u8],
        out: &mut Output,
        offload: bool,
        max_reply: usize,
    ) -> (Handled, Option<Label>) {
        let request = match parse_request(body) {
            Ok(request) => request,
            Err((err, id)) => {
                debug!("{peer} sent a bad request: {err}");
                self.stats.count_request();
                write_error_frame(out, &err, id);
                let code = self.metrics.code_id(err.code);
                return (Handled::Done, Some((self.metrics.other_method(), code)));
            }
        };
        if request.method == auth::METHOD {
            self.stats.count_request();
            let mut anonymous = auth::Login::new(None);
            let login = login.unwrap_or(&mut anonymous);
            let code = match ResponseWriter::begin(out, auth::METHOD)
                .result(request.id, |o| self.auth_method(login, request.params(), o))
            {
                Ok(()) => CodeId::OK,
                Err(err) => self.metrics.code_id(err.code),
            };
            return (
                Handled::Done,
                Some((self.metrics.method_id(auth::METHOD), code)),
            );
        }
        let Some((name, method, metric)) = self.registry.get_labelled(&request.method) else {
            debug!("{peer} called unknown method {:?}", request.method);
            self.stats.count_request();
            let err = reactor_rpc_protocol::RpcError::new(
                reactor_rpc_protocol::ErrorCode::UnknownMethod,
                format!("no method named {:?}", request.method),
            );
            write_error_frame(out, &err, request.id);
            let code = self.metrics.code_id(err.code);
            return (Handled::Done, Some((self.metrics.other_method(), code)));
        };
        // One comparison for a connection that has logged in; a check of
        // whether authentication is on for one that has not.
        if let Some(login) = login {
            if let Err(denied) = login.check(self.auth(), method.access()) {
                self.stats.count_request();
                let err = auth::denied_error(denied, &request.method, login);
                let code = self.metrics.code_id(err.code);
                write_error_frame(out, &err, request.id);
                return (Handled::Done, Some((metric, code)));
            }
        }
        // After a failed save (--stop-writes-on-save-error): one relaxed
        // load while all is well; the method's class is asked only then.
        if self.persistence.writes_refused() && method.access() == Access::Write {
            self.stats.count_request();
            let err = reactor_rpc_protocol::RpcError::new(
                reactor_rpc_protocol::ErrorCode::SaveFailed,
                persistence::WRITES_REFUSED,
            );
            let code = self.metrics.code_id(err.code);
            write_error_frame(out, &err, request.id);
            return (Handled::Done, Some((metric, code)));
        }
        let params = request.params();
        if offload && method.cost(params) == Cost::Heavy {
            return (Handled::Offload, None);
        }
        if log_enabled!(Level::Debug) {
            debug!("{peer} {} {}", request.method, truncate(params.get(), 80));
        }
        self.stats.count_request();
        let cx = Context {
            cache: &self.cache,
            stats: &self.stats,
            persistence: &self.persistence,
            auth: self.auth(),
            max_reply,
        };
        let code = match ResponseWriter::begin(out, name)
            .result(request.id, |o| method.call_output(&cx, params, o))
        {
            Ok(()) => CodeId::OK,
            Err(err) => self.metrics.code_id(err.code),
        };
        (Handled::Done, Some((metric, code)))
    }

    /// The JSON `auth` method: `{"user"?: string, "password": string}` logs
    /// `login` in and answers `true`. With authentication off, the user
    /// `default` (Redis's `nopass` default user) is accepted whatever the
    /// password, and any other name is `wrong_password`, as RESP's `AUTH`.
    fn auth_method(
        &self,
        login: &mut auth::Login,
        params: reactor_rpc_protocol::Json<'_>,
        out: &mut Output,
    ) -> Result<(), reactor_rpc_protocol::RpcError> {
        use reactor_rpc_protocol::{ErrorCode, RpcError};
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Params<'a> {
            #[serde(borrow, default)]
            user: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            password: std::borrow::Cow<'a, str>,
        }
        let p: Params<'_> = serde_json::from_str(params.get()).map_err(|_| {
            RpcError::new(
                ErrorCode::BadParams,
                "auth takes {\"user\"?: string, \"password\": string}",
            )
        })?;
        let user = p.user.as_deref().unwrap_or(auth::DEFAULT_USER);
        let auth = self.auth();
        if !auth.is_enabled() {
            return if user == auth::DEFAULT_USER {
                out.extend_from_slice(b"true");
                Ok(())
            } else {
                Err(RpcError::new(
                    ErrorCode::WrongPassword,
                    auth::WrongPassword.to_string(),
                ))
            };
        }
        match auth.login(login, user, p.password.as_bytes(), Instant::now()) {
            Ok(()) => {
                out.extend_from_slice(b"true");
                Ok(())
            }
            Err(e @ auth::AuthError::WrongPassword) => {
                Err(RpcError::new(ErrorCode::WrongPassword, e.to_string()))
            }
            Err(e @ auth::AuthError::TooManyAttempts { .. }) => {
                Err(RpcError::new(ErrorCode::TooManyAttempts, e.to_string()))
            }
        }
    }

    /// Periodic upkeep with bounded work: an active expiry cycle of at most
    /// [`cache::EXPIRE_BUDGET`] removes expired keys nobody touches; a step
    /// of freeing what `FLUSHALL ASYNC` left; the coarse clock `OBJECT
    /// IDLETIME` and `CLIENT LIST` read moves on; dead `WATCH` entries of
    /// one shard are pruned; expired brute-force entries are forgotten (at
    /// most once a second). Server models call it every
    /// [`HOUSEKEEPING_INTERVAL`]; the expiry cycle times itself.
    pub fn housekeeping(&self, now: Instant) {
        self.auth().tidy(now);
        self.cache.tick_clock();
        self.cache.active_expire_cycle(cache::EXPIRE_BUDGET);
        self.cache.tidy();
    }
}

impl Default for Service {
    fn default() -> Service {
        Service::new()
    }
}

/// What a request is counted as: its method's row and its outcome.
pub(crate) type Label = (MethodId, CodeId);

/// Counts the requests that one call of a dispatch loop answers, cheaply.
///
/// The clock is read once when the loop starts (every frame in hand was
/// complete by then) and once when it ends, and that duration is observed
/// for each request of the batch: exact at pipeline depth 1, an upper bound
/// for each request inside a pipelined batch. Consecutive requests with the
/// same labels are counted together, so a batch of 16 pings costs three
/// atomic adds in all rather than three each.
pub(crate) struct Batch<'a> {
    metrics: &'a Metrics,
    started: Instant,
    runs: [(Label, u64); 8],
    len: usize,
}

impl<'a> Batch<'a> {
    /// A batch starting now.
    #[inline]
    pub(crate) fn new(service: &'a Service) -> Batch<'a> {
        Batch {
            metrics: &service.metrics,
            started: Instant::now(),
            runs: [((MethodId::default(), CodeId::OK), 0); 8],
            len: 0,
        }
    }

    /// One more request answered.
    #[inline]
    pub(crate) fn push(&mut self, label: Label) {
        if let Some(last) = self.len.checked_sub(1).and_then(|i| self.runs.get_mut(i)) {
            if last.0 == label {
                last.1 += 1;
                return;
            }
        }
        if self.len == self.runs.len() {
            self.flush();
        }
        self.runs[self.len] = (label, 1);
        self.len += 1;
    }

    /// Bytes of requests taken and responses queued by the batch.
    #[inline]
    pub(crate) fn bytes(&self, received: usize, sent: usize) {
        if received > 0 {
            self.metrics.add_bytes_received(received);
        }
        if sent > 0 {
            self.metrics.add_bytes_sent(sent);
        }
    }

    fn flush(&mut self) {
        let elapsed = self.started.elapsed();
        for &((method, code), n) in &self.runs[..self.len] {
            self.metrics.observe_n(method, code, elapsed, n);
        }
        self.len = 0;
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.flush();
        }
    }
}

/// How often server models call [`Service::housekeeping`].
pub const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
