//! Transactions: MULTI, EXEC, DISCARD, and WATCH / UNWATCH, as Redis 7.0
//! runs them.
//!
//! redis-py's `pipeline()` is a transaction unless told otherwise, and its
//! `transaction()` helper is `WATCH` + `MULTI` + `EXEC` retried until it
//! commits, so both must behave exactly as Redis does:
//!
//! * After `MULTI`, a command that passes the checks every command passes
//!   (known, known subcommand, right arity; see `resolve`) is
//!   answered `+QUEUED` and kept, except `EXEC`, `DISCARD`, `MULTI`,
//!   `WATCH` and `QUIT`, which run at once (a nested `MULTI` and a `WATCH`
//!   are errors that do not abort the transaction).
//! * A command refused by those checks (or by a bound, below) is answered
//!   with its error and marks the transaction: `EXEC` then answers
//!   `-EXECABORT Transaction discarded because of previous errors.` An
//!   `EXEC` refused itself (`EXEC x`) aborts at once with
//!   `-EXECABORT Transaction discarded because of: <its error>`, even
//!   outside a transaction, as Redis's `rejectCommand` does; a refused
//!   `DISCARD x` only marks the transaction.
//! * `EXEC` runs the queue back to back and answers an array of the
//!   replies (a command that fails at run time is one error in it). If a
//!   watched key changed since `WATCH` (a write from either protocol, a
//!   delete, an expiry, an eviction, a flush, a rename; see
//!   `cache::watch`), it answers a null array instead and runs nothing.
//!   `EXEC` and `DISCARD` forget the watched keys, as `UNWATCH` does.
//!
//! Isolation: the commands of one `EXEC` run one after the other inside a
//! single call. In the reactor and the tokio current_thread model no other
//! client's command runs in between (one thread serves them all); in the
//! threaded, pool and tokio-mt models other connections' commands may
//! interleave with them (and a write that lands between the `WATCH` check
//! and the queue's own writes is not detected there).
//!
//! Bounds, since a queue is memory a client commits. Each queued command is
//! counted at what it holds: its arguments' bytes plus
//! [`QUEUED_ARG_OVERHEAD`] per argument and [`QUEUED_COMMAND_OVERHEAD`] per
//! command (the vectors that keep them). Redis bounds a transaction by
//! nothing but memory, and clients rely on that (redis-py's default
//! `pipeline()` is a transaction, of any length), so there is no count
//! bound: a transaction may queue up to [`MAX_QUEUED_TOTAL`] (T) on its
//! own, and T, the total of a service's clients ([`Ledger`]), is shared
//! fairly: a command is admitted if the total stays within T, *or* if its
//! transaction stays within T / n, n being the number of holders (open
//! transactions, and sessions watching keys). So a client within its share is never refused
//! because of what others hold, and the total never passes 2T. Past a bound
//! the command is refused (`-ERR`) and the transaction marked, so `EXEC`
//! answers `-EXECABORT`. A transaction already marked (or whose watched keys
//! changed) keeps nothing more: its commands are answered `+QUEUED` and
//! dropped, as in Redis. `EXEC`'s reply is bounded by `--max-reply` like any
//! reply: past it the rest of the transaction still runs, and the reply is
//! the error. A session's watched keys are a holder of the same total too,
//! each key counted at its bytes plus [`WATCHED_KEY_OVERHEAD`]: past a bound
//! `WATCH` answers an error and the keys before stay watched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{resolve, Command, Cx, Resolved, COMMANDS};
use crate::service::cache::watch::Flag;
use crate::service::Access;

/// What a queued argument is counted at beyond its bytes: its vector and
/// the allocator's rounding.
pub const QUEUED_ARG_OVERHEAD: usize = 48;
/// What a queued command is counted at beyond its arguments: its slot in
/// the queue and its vector of arguments.
pub const QUEUED_COMMAND_OVERHEAD: usize = 64;
/// Bytes all of a service's transactions and watched keys together may
/// hold (T; see the module docs for how it is shared), and one transaction
/// or one session's watched keys on its own.
pub const MAX_QUEUED_TOTAL: usize = 64 << 20;

/// What a service's clients hold for transactions: the bytes of every open
/// transaction's queue and every session's watched keys, and how many
/// holders there are. One per [`Service`](crate::service::Service).
#[derive(Debug, Default)]
pub struct Ledger {
    /// Bytes held by every holder.
    total: AtomicUsize,
    /// Holders: open transactions, and sessions watching keys.
    holders: AtomicUsize,
}

impl Ledger {
    /// Bytes held now, all holders together.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn open(&self) {
        self.holders.fetch_add(1, Ordering::Relaxed);
    }

    /// A holder of `held` bytes goes.
    fn close(&self, held: usize) {
        self.total.fetch_sub(held, Ordering::Relaxed);
        self.holders.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts `size` more bytes for a holder that holds `held`: refused
    /// with `too_large` past [`MAX_QUEUED_TOTAL`] on its own, or with
    /// `too_many` when the total would pass it and this holder its fair
    /// share of it (the module docs).
    fn admit(
        &self,
        held: &mut usize,
        size: usize,
        too_large: &'static [u8],
        too_many: &'static [u8],
    ) -> Result<(), &'static [u8]> {
        if *held + size > MAX_QUEUED_TOTAL {
            return Err(too_large);
        }
        let total = self.total.fetch_add(size, Ordering::Relaxed) + size;
        let share = MAX_QUEUED_TOTAL / self.holders.load(Ordering::Relaxed).max(1);
        if total > MAX_QUEUED_TOTAL && *held + size > share {
            self.total.fetch_sub(size, Ordering::Relaxed);
            return Err(too_many);
        }
        *held += size;
        Ok(())
    }

    /// Gives back `size` bytes counted for a holder that holds `held`.
    fn release(&self, held: &mut usize, size: usize) {
        *held -= size;
        self.total.fetch_sub(size, Ordering::Relaxed);
    }
}

/// A transaction being queued, between `MULTI` and `EXEC` or `DISCARD`.
#[derive(Debug)]
pub struct Multi {
    /// Each command's arguments.
    queued: Vec<Vec<Vec<u8>>>,
    /// Bytes of arguments queued, counted in the ledger's total too.
    bytes: usize,
    /// A command was refused while queuing: `EXEC` aborts.
    failed: bool,
    /// Where `bytes` are counted.
    ledger: Arc<Ledger>,
}

impl Multi {
    fn new(ledger: &Arc<Ledger>) -> Multi {
        ledger.open();
        Multi {
            queued: Vec::new(),
            bytes: 0,
            failed: false,
            ledger: Arc::clone(ledger),
        }
    }

    /// Commands queued.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The queued commands' arguments.
    pub(crate) fn commands(&self) -> impl Iterator<Item = Vec<&[u8]>> {
        self.queued
            .iter()
            .map(|args| args.iter().map(Vec::as_slice).collect())
    }

    /// Keeps `args` for `EXEC`, or says which bound it would cross.
    fn queue(&mut self, args: &[&[u8]]) -> Result<(), &'static [u8]> {
        let size = args
            .iter()
            .map(|a| a.len() + QUEUED_ARG_OVERHEAD)
            .sum::<usize>()
            + QUEUED_COMMAND_OVERHEAD;
        self.ledger.admit(
            &mut self.bytes,
            size,
            b"ERR transaction too large: more than 64 MiB of queued commands",
            b"ERR too many queued transaction commands in the server, try again later",
        )?;
        self.queued.push(args.iter().map(|a| a.to_vec()).collect());
        Ok(())
    }
}

impl Multi {
    /// Marks the transaction failed, so that `EXEC` aborts: a command was
    /// refused before queuing (`-MISCONF`, see `persistence.rs`).
    pub(super) fn abort(&mut self) {
        self.failed = true;
    }

    /// Whether a queued command changes keys (the command table's
    /// `Access::Write`), which makes `EXEC` refused after a failed save.
    pub(super) fn writes(&self) -> bool {
        self.queued.iter().any(|args| {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            super::resolve(&args).is_ok_and(|r| r.command().access == Access::Write)
        })
    }
}

impl Drop for Multi {
    fn drop(&mut self) {
        self.ledger.close(self.bytes);
    }
}

/// What a watched key is counted at beyond its bytes: the session's copy
/// and the shard's entry (its key, and the session's place among the
/// key's watchers).
pub const WATCHED_KEY_OVERHEAD: usize = 96;

/// The keys a session watches, and the flag a change to any sets. Its bytes
/// count with the transactions' (a holder of the same total and the same
/// fair share), so that no client can grow them without bound.
#[derive(Debug)]
pub struct Watch {
    flag: Arc<Flag>,
    keys: Vec<Vec<u8>>,
    /// Bytes counted for the keys, in the ledger's total too.
    bytes: usize,
    /// Where `bytes` are counted.
    ledger: Arc<Ledger>,
}

impl Watch {
    fn new(ledger: &Arc<Ledger>) -> Watch {
        ledger.open();
        Watch {
            flag: Arc::default(),
            keys: Vec::new(),
            bytes: 0,
            ledger: Arc::clone(ledger),
        }
    }

    /// Whether a watched key changed.
    pub fn is_dirty(&self) -> bool {
        self.flag.is_set()
    }

    /// Keys watched.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is watched.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes the keys are counted at in the transactions' total.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.ledger.close(self.bytes);
    }
}

/// Forgets the session's watched keys (`UNWATCH`, and after `EXEC` or `DISCARD`).
fn unwatch_all(cx: &mut Cx<'_>) {
    if let Some(watch) = cx.session.watch.take() {
        for key in &watch.keys {
            cx.service.cache().unwatch(key, &watch.flag);
        }
    }
}

/// Whether a watched key changed (expired ones are removed first, so that
/// their expiry counts as a change, as Redis 7.0 counts it).
fn watched_changed(cx: &Cx<'_>) -> bool {
    let Some(watch) = &cx.session.watch else {
        return false;
    };
    for key in &watch.keys {
        cx.service.cache().expire_if_due(key);
    }
    watch.flag.is_set()
}

/// Ends the transaction: the queue and the watched keys are dropped.
fn discard(cx: &mut Cx<'_>) {
    cx.session.multi = None;
    if let Some(e) = cx.session.entry() {
        e.set_multi(-1);
    }
    unwatch_all(cx);
}

/// A command refused before it ran (unknown, unknown subcommand, wrong
/// arity): marks an open transaction, and answers the error; a refused
/// `EXEC` aborts the transaction, as Redis's `rejectCommand` does.
pub(super) fn rejected(cx: &mut Cx<'_>, top: Option<usize>, message: &[u8]) {
    if let Some(multi) = cx.session.multi.as_mut() {
        multi.failed = true;
    }
    if top.is_some_and(|i| COMMANDS[i].name == "exec") {
        discard(cx);
        let reason = message.strip_prefix(b"ERR ").unwrap_or(message);
        let mut m = b"EXECABORT Transaction discarded because of: ".to_vec();
        m.extend_from_slice(reason);
        return cx.reply.error(&m);
    }
    cx.reply.error(message);
}

/// Queues the command if a transaction is open and it is one that queues;
/// `false` if it must run now.
pub(super) fn queued(cx: &mut Cx<'_>, r: Resolved, args: &[&[u8]]) -> bool {
    if cx.session.multi.is_none() {
        return false;
    }
    if matches!(
        COMMANDS[r.top].name,
        "exec" | "discard" | "multi" | "watch" | "quit"
    ) {
        return false;
    }
    let dirty = cx.session.watch.as_ref().is_some_and(|w| w.flag.is_set());
    let Some(multi) = cx.session.multi.as_mut() else {
        return false;
    };
    if multi.failed || dirty {
        // Nothing will run: keep nothing.
        cx.reply.simple(b"QUEUED");
        return true;
    }
    match multi.queue(args) {
        Ok(()) => {
            let n = multi.len() as i64;
            cx.reply.simple(b"QUEUED");
            if let Some(e) = cx.session.entry() {
                e.set_multi(n);
            }
        }
        Err(message) => {
            multi.failed = true;
            cx.reply.error(message);
        }
    }
    true
}

const fn tx(name: &'static str, arity: i32, run: fn(&mut Cx<'_>, &[&[u8]])) -> Command {
    Command {
        name,
        access: Access::Read,
        arity,
        subcommands: &[],
        run,
    }
}

pub(crate) const MULTI: Command = tx("multi", 1, |cx, _| {
    if cx.session.multi.is_some() {
        return cx.reply.error(b"ERR MULTI calls can not be nested");
    }
    cx.session.multi = Some(Box::new(Multi::new(cx.service.transactions())));
    if let Some(e) = cx.session.entry() {
        e.set_multi(0);
    }
    cx.reply.ok();
});

pub(crate) const EXEC: Command = tx("exec", 1, exec);

fn exec(cx: &mut Cx<'_>, _: &[&[u8]]) {
    if cx.session.multi.is_none() {
        return cx.reply.error(b"ERR EXEC without MULTI");
    }
    let changed = watched_changed(cx);
    let multi = cx.session.multi.take();
    discard(cx);
    let Some(multi) = multi else {
        return;
    };
    if multi.failed {
        return cx
            .reply
            .error(b"EXECABORT Transaction discarded because of previous errors.");
    }
    if changed {
        // A null array: `*-1` in RESP2, `_` in RESP3.
        let null: &[u8] = match cx.reply.version() {
            reactor_rpc_protocol::resp::Version::Resp2 => b"*-1\r\n",
            reactor_rpc_protocol::resp::Version::Resp3 => b"_\r\n",
        };
        return cx.reply.out().extend_from_slice(null);
    }
    cx.reply.array(multi.len());
    for args in multi.commands() {
        // Past --max-reply the rest still runs (a transaction runs whole),
        // unanswered: the reply becomes the error.
        if cx.over_budget() {
            run_unanswered(cx, &args);
            continue;
        }
        match resolve(&args) {
            Ok(r) => (r.command().run)(cx, &args),
            // Checked when queued; cannot happen.
            Err((message, _)) => cx.reply.error(&message),
        }
    }
}

/// Runs a queued command whose reply is not wanted (the transaction's
/// reply is already over `--max-reply`): into a scratch output, bounded like
/// any reply, then dropped.
fn run_unanswered(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let Ok(r) = resolve(args) else {
        return;
    };
    let mut scratch = crate::output::Output::new();
    let start = scratch.mark();
    let version = cx.reply.version();
    let (buf, splicer) = scratch.split_mut();
    let mut inner = Cx {
        service: cx.service,
        session: &mut *cx.session,
        reply: reactor_rpc_protocol::resp::Reply::new(buf, version),
        splicer,
        close: false,
        budget: super::Budget {
            start,
            max: cx.budget.max,
        },
    };
    (r.command().run)(&mut inner, args);
    cx.close |= inner.close;
}

pub(crate) const DISCARD: Command = tx("discard", 1, |cx, _| {
    if cx.session.multi.is_none() {
        return cx.reply.error(b"ERR DISCARD without MULTI");
    }
    discard(cx);
    cx.reply.ok();
});

pub(crate) const WATCH: Command = tx("watch", -2, |cx, args| {
    if cx.session.multi.is_some() {
        return cx.reply.error(b"ERR WATCH inside MULTI is not allowed");
    }
    let ledger = cx.service.transactions();
    let watch = cx.session.watch.get_or_insert_with(|| Watch::new(ledger));
    if watch.flag.is_set() {
        // No point in watching more: the next EXEC fails anyway.
        return cx.reply.ok();
    }
    for key in &args[1..] {
        let size = key.len() + WATCHED_KEY_OVERHEAD;
        if let Err(message) = ledger.admit(
            &mut watch.bytes,
            size,
            b"ERR too many watched keys: more than 64 MiB of them",
            b"ERR too many watched keys in the server, try again later",
        ) {
            // The keys before stay watched, as if watched by an earlier WATCH.
            return cx.reply.error(message);
        }
        // The shard knows whether this session watches the key already.
        if cx.service.cache().watch(key, &watch.flag) {
            watch.keys.push(key.to_vec());
        } else {
            ledger.release(&mut watch.bytes, size);
        }
    }
    cx.reply.ok();
});

pub(crate) const UNWATCH: Command = tx("unwatch", 1, |cx, _| {
    unwatch_all(cx);
    cx.reply.ok();
});
