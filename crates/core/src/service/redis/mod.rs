//! The Redis commands: what a RESP request means.
//!
//! The JSON methods and these commands share one [`Service`]: one keyspace,
//! one set of counters. This layer exists so that Redis clients
//! (redis-cli, redis-py, redis-benchmark, twemproxy, cache backends) get the
//! replies they expect, with Redis 7.0's reply types and error texts, while
//! the parsing stays in [`protocol::resp`](reactor_rpc_protocol::resp) and the
//! connection loop in [`session::resp`](crate::session::resp).
//!
//! [`execute`] runs one command for one connection's [`Session`] and appends
//! its reply. Commands are looked up case-insensitively in one table with
//! their arity, a container's subcommand in its own table, as Redis's
//! `processCommand` does, so unknown commands and subcommands and arity
//! errors are answered in one place, worded as Redis words them, before a
//! transaction decides whether to queue the command.
//!
//! * [`connection`]: PING ECHO SELECT HELLO AUTH CLIENT QUIT
//! * [`strings`]: GET SET and its relatives, the INCR family, MGET MSET, ranges
//! * [`keyspace`]: DEL EXISTS TYPE RENAME expiry KEYS SCAN DBSIZE FLUSH*
//! * [`server`]: INFO CONFIG TIME MEMORY OBJECT WAIT
//! * [`docs`]: COMMAND and its subcommands (from `table`, copied from Redis)
//! * [`transaction`]: MULTI EXEC DISCARD WATCH UNWATCH
//! * [`persistence`]: SAVE BGSAVE LASTSAVE, and `-MISCONF` after a failed save
//! * [`glob`]: Redis's glob patterns; [`longdouble`]: INCRBYFLOAT's arithmetic
//! * [`heavy`]: which calls are heavy enough to run off the event loop

pub mod clients;
pub mod connection;
pub mod docs;
pub mod glob;
pub mod heavy;
pub mod keyspace;
pub mod longdouble;
pub mod persistence;
pub mod server;
pub mod strings;
mod table;
pub mod transaction;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::auth::{Denied, Login};
use super::Service;
use crate::metrics::MethodId;
use crate::output::{Output, Splicer};
use reactor_rpc_protocol::resp::{Reply, Version};
use reactor_rpc_protocol::ErrorCode;

pub use clients::KillHook;
pub use docs::{categories, categories_of};
pub use heavy::{is_heavy, is_heavy_by_head};

/// One connection's state, as far as commands are concerned.
pub struct Session {
    /// RESP2 until `HELLO 3`.
    pub protocol: Version,
    /// What `CLIENT ID` and `HELLO` report; unique in this process.
    pub id: u64,
    /// Set by `CLIENT SETNAME` or `HELLO ... SETNAME`.
    pub name: Option<Vec<u8>>,
    /// Set by `CLIENT SETINFO LIB-NAME` / `LIB-VER`.
    pub lib_name: Option<Vec<u8>>,
    /// The client library's version (`CLIENT SETINFO LIB-VER`).
    pub lib_ver: Option<Vec<u8>>,
    /// The port the connection came in on, for `INFO` (`tcp_port`).
    pub tcp_port: u16,
    /// The client's address (`CLIENT LIST`'s `addr`).
    pub peer: SocketAddr,
    /// The address the connection came in on (`laddr`).
    pub local: SocketAddr,
    /// The commands queued since `MULTI`, if a transaction is open.
    pub(crate) multi: Option<Box<transaction::Multi>>,
    /// The keys `WATCH`ed, and the flag a change to any of them sets.
    pub(crate) watch: Option<transaction::Watch>,
    /// Who the connection logged in as (`AUTH`, `HELLO ... AUTH`).
    pub(crate) login: Login,
    /// The session's entry in the client registry, from its first command.
    registration: Option<clients::Registration>,
    /// Closes this connection (`CLIENT KILL` from another client), until
    /// registration moves it into the registry entry.
    kill_hook: Option<KillHook>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("protocol", &self.protocol)
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("multi", &self.multi.as_ref().map(|m| m.len()))
            .finish_non_exhaustive()
    }
}

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

impl Session {
    /// The keys this connection watches (`WATCH`), if any.
    pub fn watched(&self) -> Option<&transaction::Watch> {
        self.watch.as_ref()
    }

    /// A new connection's session, with a fresh client id, for a connection
    /// whose addresses are not known (tests): the local port is `tcp_port`.
    pub fn new(tcp_port: u16) -> Session {
        Session::with_addrs(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, tcp_port)),
        )
    }

    /// A new connection's session: the client at `peer` came in on `local`.
    pub fn with_addrs(peer: SocketAddr, local: SocketAddr) -> Session {
        Session {
            protocol: Version::Resp2,
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            name: None,
            lib_name: None,
            lib_ver: None,
            tcp_port: local.port(),
            peer,
            local,
            multi: None,
            watch: None,
            login: Login::new(Some(peer.ip())),
            registration: None,
            kill_hook: None,
        }
    }

    /// Sets what closes this connection when another client sends `CLIENT
    /// KILL` for it. Without one, `CLIENT KILL` of another connection
    /// counts it but cannot close it.
    pub fn set_kill_hook(&mut self, hook: KillHook) {
        match &self.registration {
            Some(r) => r.entry().set_kill_hook(hook),
            None => self.kill_hook = Some(hook),
        }
    }

    /// Registers the session on its first command.
    #[inline]
    fn registered(&mut self, service: &Service) -> &clients::ClientEntry {
        let (id, peer, local) = (self.id, self.peer, self.local);
        let kill_hook = &mut self.kill_hook;
        let r = self.registration.get_or_insert_with(|| {
            let now = service.cache().coarse_seconds();
            let r = service.clients().register(id, peer, local, now);
            if let Some(hook) = kill_hook.take() {
                r.entry().set_kill_hook(hook);
            }
            r
        });
        r.entry()
    }

    /// Publishes the name and library attributes to the registry.
    pub(crate) fn names_changed(&self) {
        if let Some(r) = &self.registration {
            r.entry()
                .set_names(&self.name, &self.lib_name, &self.lib_ver);
        }
    }

    /// The registry entry, once registered.
    pub(crate) fn entry(&self) -> Option<&clients::ClientEntry> {
        self.registration.as_ref().map(|r| &**r.entry())
    }
}

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading commands.
    Continue,
    /// `QUIT`: close once the reply is written.
    Close,
}

/// Runs one command (`args[0]` is its name) and appends exactly one reply to
/// `out`. An empty `args` writes nothing (Redis ignores empty requests).
///
/// The command is counted in the metrics, timed from this call to its reply
/// being appended.
pub fn execute(
    service: &Service,
    session: &mut Session,
    args: &[&[u8]],
    out: &mut Vec<u8>,
) -> Flow {
    let started = std::time::Instant::now();
    let mut output = Output::from_vec(std::mem::take(out));
    let (flow, label) = execute_labelled(
        service,
        session,
        args,
        &mut output,
        crate::service::DEFAULT_MAX_REPLY,
    );
    *out = output.into_vec();
    if let Some((method, code)) = label {
        service.metrics().observe(method, code, started.elapsed());
    }
    flow
}

/// A command found in the table, with its subcommand for a container.
#[derive(Clone, Copy)]
pub(crate) struct Resolved {
    /// Its index in [`COMMANDS`].
    pub top: usize,
    /// The subcommand's index in its container's table.
    pub sub: Option<usize>,
}

impl Resolved {
    /// The command that runs: the subcommand, or the command itself.
    pub fn command(self) -> &'static Command {
        let top = &COMMANDS[self.top];
        match self.sub {
            Some(s) => &top.subcommands[s],
            None => top,
        }
    }
}

/// Looks `args` up as Redis's `lookupCommand`, `commandCheckExistence` and
/// `commandCheckArity` do: the command, then (for a container given more
/// than its name) the subcommand, then the arity. `Err` is the error text
/// (after `-`), and the index of the top-level command if it was known.
pub(crate) fn resolve(args: &[&[u8]]) -> Result<Resolved, (Vec<u8>, Option<usize>)> {
    let Some(top) = command_index(args[0]) else {
        return Err((unknown_command_text(args), None));
    };
    let cmd = &COMMANDS[top];
    if !cmd.subcommands.is_empty() && args.len() >= 2 {
        let Some(sub) = position(cmd.subcommands, args[1]) else {
            let mut m = b"ERR unknown subcommand '".to_vec();
            m.extend_from_slice(c_str(args[1], 128));
            m.extend_from_slice(b"'. Try ");
            m.extend_from_slice(&args[0].to_ascii_uppercase());
            m.extend_from_slice(b" HELP.");
            return Err((m, Some(top)));
        };
        let sc = &cmd.subcommands[sub];
        if !arity_ok(sc.arity, args.len()) {
            return Err((wrong_arity_text(sc.name), Some(top)));
        }
        return Ok(Resolved {
            top,
            sub: Some(sub),
        });
    }
    if !arity_ok(cmd.arity, args.len()) {
        return Err((wrong_arity_text(cmd.name), Some(top)));
    }
    Ok(Resolved { top, sub: None })
}

/// [`execute`] without the metrics: returns what to count. A command is
/// counted under its own name with `protocol="resp"` (its row resolved at
/// start, see [`metric_rows`]), an unknown one as RESP's `other`; its code
/// is `ok`, or the error class its reply starts with.
pub(crate) fn execute_labelled(
    service: &Service,
    session: &mut Session,
    args: &[&[u8]],
    out: &mut Output,
    max_reply: usize,
) -> (Flow, Option<crate::service::Label>) {
    if args.is_empty() {
        return (Flow::Continue, None);
    }
    let start = out.len();
    let mark = out.mark();
    service.stats().count_request();
    let metrics = service.metrics();
    let resolved = resolve(args);
    let now_s = service.cache().coarse_seconds();
    let entry = session.registered(service);
    if let Ok(r) = &resolved {
        entry.saw(r.top, r.sub, now_s);
    }
    let (buf, splicer) = out.split_mut();
    let mut cx = Cx {
        service,
        reply: Reply::new(buf, session.protocol),
        splicer,
        session,
        close: false,
        budget: Budget {
            start: mark,
            max: max_reply,
        },
    };
    let method = match resolved {
        Err((message, top)) => {
            transaction::rejected(&mut cx, top, &message);
            top.map_or_else(|| metrics.other_command(), |i| service.resp_metric_row(i))
        }
        Ok(r) => {
            // Once logged in, one comparison (see `Login::check`).
            let denied = match cx.session.login.check(service.auth(), r.command().access) {
                Ok(()) => false,
                Err(denied) => {
                    let message = denied_text(denied, &cx.session.login, r.command().name);
                    transaction::rejected(&mut cx, Some(r.top), &message);
                    true
                }
            };
            // After a failed save (--stop-writes-on-save-error): one relaxed
            // load while all is well.
            let refused = denied
                || service.persistence().writes_refused() && persistence::refuse_write(&mut cx, r);
            if !refused && !transaction::queued(&mut cx, r, args) {
                (r.command().run)(&mut cx, args);
            }
            service.resp_metric_row(r.top)
        }
    };
    let too_large = cx.over_budget();
    let protocol = cx.session.protocol;
    let flow = if cx.close {
        Flow::Close
    } else {
        Flow::Continue
    };
    if too_large {
        // What was built is dropped whole (a command that walks stops
        // early, so little was); the client hears why.
        out.rollback(mark);
        Reply::new(out, protocol).error(&reply_too_large_text(max_reply));
    }
    let code = match out.get(start..) {
        Some([b'-' | b'!', reply @ ..]) => metrics.code_id(reply_error_code(reply)),
        _ => crate::metrics::CodeId::OK,
    };
    (flow, Some((method, code)))
}

/// Redis 7's `-NOAUTH`, and 7.2's `-NOPERM` wording, for a command the
/// connection may not run.
fn denied_text(denied: Denied, login: &Login, command: &str) -> Vec<u8> {
    match denied {
        Denied::Unauthenticated => b"NOAUTH Authentication required.".to_vec(),
        Denied::Forbidden => format!(
            "NOPERM User {} has no permissions to run the '{command}' command",
            login.name()
        )
        .into_bytes(),
    }
}

/// The JSON error code closest to a RESP error reply (after its `-`).
fn reply_error_code(reply: &[u8]) -> ErrorCode {
    // A RESP3 blob error starts with its length line.
    let text = match reply.iter().position(|&b| b == b'\n') {
        Some(i) if reply.first().is_some_and(u8::is_ascii_digit) => &reply[i + 1..],
        _ => reply,
    };
    if text.starts_with(b"WRONGTYPE") {
        ErrorCode::WrongType
    } else if text.starts_with(b"OOM") {
        ErrorCode::Oom
    } else if text.starts_with(b"MISCONF") {
        ErrorCode::SaveFailed
    } else if text.starts_with(b"BUSY") {
        ErrorCode::Busy
    } else if text.starts_with(b"ERR unknown command") {
        ErrorCode::UnknownMethod
    } else if text.starts_with(b"NOAUTH") {
        ErrorCode::Unauthenticated
    } else if text.starts_with(b"NOPERM") {
        ErrorCode::Forbidden
    } else if text.starts_with(b"WRONGPASS") {
        ErrorCode::WrongPassword
    } else if text.starts_with(b"ERR too many failed AUTH") {
        ErrorCode::TooManyAttempts
    } else if text.starts_with(b"ERR reply too large") {
        ErrorCode::ReplyTooLarge
    } else {
        ErrorCode::BadRequest
    }
}

/// What a command runs with.
pub(crate) struct Cx<'a> {
    pub service: &'a Service,
    pub session: &'a mut Session,
    pub reply: Reply<'a>,
    /// Splices a large value into the reply by reference (`GET`).
    pub splicer: Splicer<'a>,
    /// Set by `QUIT`.
    pub close: bool,
    /// How large the reply may grow (`--max-reply`), from where it began.
    pub budget: Budget,
}

/// A reply's size bound: where it began in the output, and `--max-reply`.
#[derive(Clone, Copy)]
pub(crate) struct Budget {
    start: crate::output::Mark,
    max: usize,
}

impl Cx<'_> {
    /// Whether the reply built so far is over `--max-reply`: a command that
    /// appends in a loop (`MGET`, `EXEC`) checks it as it goes and stops;
    /// the reply is then replaced by the error ([`execute_labelled`]).
    pub(crate) fn over_budget(&mut self) -> bool {
        let owned = self.reply.out().len();
        self.budget.start.cost_to(owned, self.splicer.len()) > self.budget.max
    }

    /// What the reply may still take, for a command that builds its reply
    /// aside first (`KEYS`, `SCAN`) and so must stop on its own.
    pub(crate) fn budget_left(&mut self) -> usize {
        let owned = self.reply.out().len();
        let used = self.budget.start.cost_to(owned, self.splicer.len());
        self.budget.max.saturating_sub(used)
    }

    /// Answers the error for a reply over `--max-reply` (for a command that
    /// noticed before appending anything).
    pub(crate) fn reply_too_large(&mut self) {
        let text = reply_too_large_text(self.budget.max);
        self.reply.error(&text);
    }
}

/// The error for a reply over `--max-reply`.
fn reply_too_large_text(max: usize) -> Vec<u8> {
    format!(
        "ERR reply too large: more than {max} bytes (--max-reply); ask for less at a time \
         (SCAN instead of KEYS, fewer keys per MGET)"
    )
    .into_bytes()
}

/// One entry of the command table, with what `COMMAND` reports about it.
pub(crate) struct Command {
    /// Lower case, as Redis names commands in its errors (`client|setname`
    /// for a subcommand).
    pub name: &'static str,
    /// What a client needs to be allowed to run it (authentication, and
    /// refusing writes after a failed save, ask this).
    pub access: crate::service::Access,
    /// Redis's convention: N means exactly N arguments (the name included),
    /// -N means at least N.
    pub arity: i32,
    /// A container's subcommands (`CLIENT`, `COMMAND`, `CONFIG`), named
    /// `container|sub`; empty for a plain command.
    pub subcommands: &'static [Command],
    pub run: fn(&mut Cx<'_>, &[&[u8]]),
}

/// A table entry (the access class decides who may run it).
pub(crate) const fn command(
    name: &'static str,
    access: crate::service::Access,
    arity: i32,
    run: fn(&mut Cx<'_>, &[&[u8]]),
) -> Command {
    Command {
        name,
        access,
        arity,
        subcommands: &[],
        run,
    }
}

/// Every top-level command. The order is `COMMAND`'s (the generated table
/// follows it) and the metrics rows'.
pub(crate) const COMMANDS: &[Command] = &[
    connection::PING,
    connection::ECHO,
    connection::SELECT,
    connection::HELLO,
    connection::AUTH,
    connection::QUIT,
    connection::ACL,
    connection::CLIENT,
    strings::GET,
    strings::SET,
    strings::INCR,
    strings::DECR,
    strings::INCRBY,
    strings::DECRBY,
    strings::INCRBYFLOAT,
    strings::MGET,
    strings::MSET,
    strings::MSETNX,
    strings::SETNX,
    strings::SETEX,
    strings::PSETEX,
    strings::GETSET,
    strings::GETDEL,
    strings::GETEX,
    strings::APPEND,
    strings::STRLEN,
    strings::GETRANGE,
    strings::SETRANGE,
    keyspace::DEL,
    keyspace::UNLINK,
    keyspace::EXISTS,
    keyspace::TOUCH,
    keyspace::TYPE,
    keyspace::RENAME,
    keyspace::RENAMENX,
    keyspace::RANDOMKEY,
    keyspace::EXPIRE,
    keyspace::PEXPIRE,
    keyspace::EXPIREAT,
    keyspace::PEXPIREAT,
    keyspace::EXPIRETIME,
    keyspace::PEXPIRETIME,
    keyspace::TTL,
    keyspace::PTTL,
    keyspace::PERSIST,
    keyspace::KEYS,
    keyspace::SCAN,
    keyspace::DBSIZE,
    keyspace::FLUSHALL,
    keyspace::FLUSHDB,
    server::INFO,
    server::TIME,
    server::WAIT,
    docs::COMMAND,
    server::CONFIG,
    server::MEMORY,
    server::OBJECT,
    transaction::MULTI,
    transaction::EXEC,
    transaction::DISCARD,
    transaction::WATCH,
    transaction::UNWATCH,
    persistence::SAVE,
    persistence::BGSAVE,
    persistence::LASTSAVE,
];

/// What running `args` (a command and its arguments) needs, as the command
/// table says: the subcommand's class for a container command (`CLIENT
/// KILL` is [`Access::Admin`](crate::service::Access::Admin), `CLIENT ID`
/// is not). `None` for an unknown command or subcommand, which is answered
/// with an error whoever asks.
pub fn access(args: &[&[u8]]) -> Option<crate::service::Access> {
    let cmd = &COMMANDS[command_index(args.first()?)?];
    if cmd.subcommands.is_empty() {
        return Some(cmd.access);
    }
    match args.get(1) {
        Some(sub) => lookup(cmd.subcommands, sub).map(|c| c.access),
        None => Some(cmd.access),
    }
}

/// The entry of `table` named `name`, whatever its case. For a subcommand
/// table the entries are named `container|sub`; `name` is then the `sub` part.
pub(crate) fn lookup<'t>(table: &'t [Command], name: &[u8]) -> Option<&'t Command> {
    position(table, name).map(|i| &table[i])
}

/// The index in `table` of the entry named `name` (see [`lookup`]): for a
/// subcommand table (a dozen entries at most), searched with lengths compared
/// before bytes. The top-level table has [`command_index`].
pub(crate) fn position(table: &[Command], name: &[u8]) -> Option<usize> {
    table.iter().position(|c| {
        let full = c.name.as_bytes();
        let Some(cut) = full.len().checked_sub(name.len()) else {
            return false;
        };
        (cut == 0 || full[cut - 1] == b'|') && full[cut..].eq_ignore_ascii_case(name)
    })
}

/// Slots of [`command_index`]'s table: a power of two, about four per command.
const SLOTS: usize = 512;

/// Where [`command_index`] starts looking for `name`: a hash of its length
/// and of its first two and last bytes, case folded (`| 0x20` maps `A`..`Z`
/// onto `a`..`z`, and other bytes onto others, which only costs a probe).
fn slot_of(name: &[u8]) -> usize {
    let fold = |i: usize| usize::from(name.get(i).map_or(0, |b| b | 0x20));
    let h = name.len().wrapping_mul(0x9e37)
        ^ fold(0).wrapping_mul(0x01f3)
        ^ fold(1).wrapping_mul(0x003b)
        ^ fold(name.len().wrapping_sub(1));
    h % SLOTS
}

/// The table behind [`command_index`], built once: open addressing with
/// linear probing, each slot 0 (empty) or an index into [`COMMANDS`] plus 1.
fn command_slots() -> &'static [u8; SLOTS] {
    static SLOTS_TABLE: OnceLock<[u8; SLOTS]> = OnceLock::new();
    SLOTS_TABLE.get_or_init(|| {
        let mut table = [0u8; SLOTS];
        for (i, c) in COMMANDS.iter().enumerate() {
            let mut slot = slot_of(c.name.as_bytes());
            while table[slot] != 0 {
                slot = (slot + 1) % SLOTS;
            }
            // COMMANDS has fewer than 255 entries (a unit test checks it).
            table[slot] = u8::try_from(i + 1).unwrap_or(0);
        }
        table
    })
}

/// The index in [`COMMANDS`] of the command named `name`, whatever its case.
/// This runs for every command, so it is one hash of four bytes and a probe
/// or two in a table built once, comparing in place; it allocates nothing.
pub(crate) fn command_index(name: &[u8]) -> Option<usize> {
    let table = command_slots();
    let mut slot = slot_of(name);
    loop {
        let i = usize::from(table[slot]).checked_sub(1)?;
        let candidate = COMMANDS[i].name.as_bytes();
        if candidate.len() == name.len() && candidate.eq_ignore_ascii_case(name) {
            return Some(i);
        }
        slot = (slot + 1) % SLOTS;
    }
}

/// The metrics row of each entry of [`COMMANDS`], in its order: resolved once
/// per service, so counting a command costs no name search.
pub(crate) fn metric_rows(metrics: &crate::metrics::Metrics) -> Box<[MethodId]> {
    COMMANDS
        .iter()
        .map(|c| metrics.command_id(c.name))
        .collect()
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// `ERR unknown command 'x', with args beginning with: 'a' 'b' `, byte for
/// byte as Redis 7 formats it (`%.128s` for the name, arguments quoted while
/// the list is under 128 bytes, each cut to what is left of those 128).
fn unknown_command_text(args: &[&[u8]]) -> Vec<u8> {
    let mut m = b"ERR unknown command '".to_vec();
    m.extend_from_slice(c_str(args[0], 128));
    m.extend_from_slice(b"', with args beginning with: ");
    let mut list: Vec<u8> = Vec::new();
    for arg in &args[1..] {
        if list.len() >= 128 {
            break;
        }
        list.push(b'\'');
        list.extend_from_slice(c_str(arg, 128 - list.len() + 1));
        list.extend_from_slice(b"' ");
    }
    m.extend_from_slice(&list);
    m
}

/// What C's `%.Ns` prints of `bytes`: up to the first NUL, at most `max` bytes.
pub(crate) fn c_str(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end.min(max)]
}

/// `-ERR wrong number of arguments for 'get' command`.
pub(crate) fn wrong_arity(reply: &mut Reply<'_>, name: &str) {
    reply.error(&wrong_arity_text(name));
}

fn wrong_arity_text(name: &str) -> Vec<u8> {
    format!("ERR wrong number of arguments for '{name}' command").into_bytes()
}

pub(crate) const ERR_SYNTAX: &[u8] = b"ERR syntax error";
pub(crate) const ERR_NOT_INTEGER: &[u8] = b"ERR value is not an integer or out of range";
pub(crate) const ERR_OVERFLOW: &[u8] = b"ERR increment or decrement would overflow";
pub(crate) const ERR_WRONGTYPE: &[u8] =
    b"WRONGTYPE Operation against a key holding the wrong kind of value";
pub(crate) const ERR_OOM: &[u8] = b"OOM command not allowed when used memory > 'maxmemory'.";

/// The reply for a cache error from command `name`, as Redis words each.
pub(crate) fn cache_error(reply: &mut Reply<'_>, name: &str, err: super::cache::CacheError) {
    use super::cache::CacheError;
    match err {
        CacheError::NotInteger | CacheError::OutOfRange => reply.error(ERR_NOT_INTEGER),
        CacheError::Overflow => reply.error(ERR_OVERFLOW),
        CacheError::WrongType => reply.error(ERR_WRONGTYPE),
        CacheError::Oom { .. } => reply.error(ERR_OOM),
        CacheError::InvalidExpireTime => {
            reply.error(format!("ERR invalid expire time in '{name}' command").as_bytes())
        }
        // Cannot come from RESP (bulks are far shorter); worded for a person.
        CacheError::KeyTooLong => reply.error(format!("ERR {err}").as_bytes()),
        CacheError::TooLarge => {
            reply.error(b"ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
    }
}

/// An integer argument by Redis's rules, or the error Redis replies with.
pub(crate) fn integer_arg(reply: &mut Reply<'_>, arg: &[u8]) -> Option<i64> {
    let n = reactor_rpc_protocol::resp::parse_i64(arg);
    if n.is_none() {
        reply.error(ERR_NOT_INTEGER);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> String {
        let service = Service::new();
        let mut session = Session::new(6379);
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = Vec::new();
        execute(&service, &mut session, &args, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_command_is_found_by_its_name_in_any_case_within_a_few_probes() {
        assert!(
            COMMANDS.len() < 255,
            "the slots hold an index plus 1 in a u8"
        );
        let table = command_slots();
        for (i, c) in COMMANDS.iter().enumerate() {
            let name = c.name.as_bytes();
            assert_eq!(command_index(name), Some(i), "{}", c.name);
            assert_eq!(command_index(&name.to_ascii_uppercase()), Some(i));
            let start = slot_of(name);
            let probes = (0..SLOTS)
                .position(|k| usize::from(table[(start + k) % SLOTS]) == i + 1)
                .unwrap();
            assert!(probes <= 4, "{} takes {} probes", c.name, probes + 1);
        }
        for unknown in [&b""[..], b"x", b"gett", b"ge", b"\xff\x00", &[b'a'; 100]] {
            assert_eq!(command_index(unknown), None);
        }
    }

    #[test]
    fn unknown_command_is_worded_as_redis_7() {
        assert_eq!(
            run(&["foo", "a", "b"]),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            run(&["foo"]),
            "-ERR unknown command 'foo', with args beginning with: \r\n"
        );
        let long = "x".repeat(200);
        let got = run(&[&long, &long, "y"]);
        let want = format!(
            "-ERR unknown command '{}', with args beginning with: '{}' \r\n",
            "x".repeat(128),
            "x".repeat(128)
        );
        assert_eq!(got, want);
        assert_eq!(
            run(&["fo\r\no", "a\nb"]),
            "-ERR unknown command 'fo  o', with args beginning with: 'a b' \r\n"
        );
    }

    #[test]
    fn access_comes_from_the_command_or_its_subcommand() {
        use crate::service::Access;
        let of = |args: &[&str]| {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            access(&args)
        };
        assert_eq!(of(&["PING"]), Some(Access::Open));
        assert_eq!(of(&["get", "k"]), Some(Access::Read));
        assert_eq!(of(&["SET", "k", "v"]), Some(Access::Write));
        assert_eq!(of(&["flushall"]), Some(Access::Admin));
        assert_eq!(of(&["client", "id"]), Some(Access::Read));
        assert_eq!(of(&["config", "get", "maxmemory"]), Some(Access::Read));
        assert_eq!(of(&["client", "nope"]), None);
        assert_eq!(of(&["nope"]), None);
        assert_eq!(of(&[]), None);
    }

    #[test]
    fn names_are_case_insensitive_and_arity_is_checked() {
        assert_eq!(run(&["PiNg"]), "+PONG\r\n");
        assert_eq!(
            run(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            run(&["client", "setname"]),
            "-ERR wrong number of arguments for 'client|setname' command\r\n"
        );
        assert_eq!(
            run(&["client", "nope"]),
            "-ERR unknown subcommand 'nope'. Try CLIENT HELP.\r\n"
        );
    }
}
