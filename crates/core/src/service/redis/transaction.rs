//! Transactions: MULTI, EXEC and DISCARD.
//!
//! redis-py's `pipeline()` is a transaction unless told otherwise
//! (`transaction=False`), so without these a plain `r.pipeline()...execute()`
//! fails. After `MULTI` every command is checked (known, right arity),
//! answered `+QUEUED` and kept; `EXEC` runs them back to back and answers an
//! array of their replies; `DISCARD` drops them. A command refused while
//! queuing makes `EXEC` answer `-EXECABORT`, as in Redis.
//!
//! Isolation: the commands of one `EXEC` run one after the other inside a
//! single call. In the reactor and the tokio current_thread model no other
//! client's command runs in between (one thread serves them all); in the
//! threaded, pool and tokio-mt models other connections' commands may
//! interleave with them. `WATCH` is not offered.
//!
//! Bounds, since a queue is memory a client commits: at most
//! [`MAX_QUEUED`] commands and [`MAX_QUEUED_BYTES`] of arguments per
//! transaction, and [`MAX_QUEUED_TOTAL`] over all connections together.
//! Past any of them the command is refused (`-ERR`) and the transaction is
//! aborted, so `EXEC` answers `-EXECABORT`. The count bound also bounds what
//! one `EXEC` can write in one go: its reply is written whole, like any one
//! reply, so it may take a connection past `--max-output` once, by at most
//! 1 024 replies (a `GET` copies under 16 KiB; larger values go by
//! reference), before the connection stops decoding.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Command, Cx};
use crate::service::Access;

/// Commands one transaction may queue.
pub const MAX_QUEUED: usize = 1024;
/// Bytes of arguments one transaction may queue.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;
/// Bytes of arguments queued by all connections together.
pub const MAX_QUEUED_TOTAL: usize = 64 << 20;

/// Bytes held by every open transaction in the process.
static QUEUED_TOTAL: AtomicUsize = AtomicUsize::new(0);

/// A transaction being queued, between `MULTI` and `EXEC` or `DISCARD`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Multi {
    /// Each command's index in [`COMMANDS`](super::COMMANDS) and its arguments.
    queued: Vec<(usize, Vec<Vec<u8>>)>,
    /// Bytes of arguments queued, counted in [`QUEUED_TOTAL`] too.
    bytes: usize,
    /// A command was refused while queuing: `EXEC` aborts.
    failed: bool,
}

impl Multi {
    /// Keeps `args` (a known command with a valid arity) for `EXEC`, or says
    /// which bound it would cross.
    fn queue(&mut self, index: usize, args: &[&[u8]]) -> Result<(), &'static [u8]> {
        if self.queued.len() >= MAX_QUEUED {
            return Err(b"ERR transaction too long: at most 1024 queued commands");
        }
        let size: usize = args.iter().map(|a| a.len() + 16).sum();
        if self.bytes + size > MAX_QUEUED_BYTES {
            return Err(b"ERR transaction too large: at most 1 MiB of queued arguments");
        }
        let reserved = QUEUED_TOTAL.fetch_add(size, Ordering::Relaxed) + size;
        if reserved > MAX_QUEUED_TOTAL {
            QUEUED_TOTAL.fetch_sub(size, Ordering::Relaxed);
            return Err(b"ERR too many queued transaction commands in the server, try again later");
        }
        self.bytes += size;
        self.queued
            .push((index, args.iter().map(|a| a.to_vec()).collect()));
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
        self.queued
            .iter()
            .any(|(index, _)| super::COMMANDS[*index].access == Access::Write)
    }
}

impl Clone for Multi {
    fn clone(&self) -> Multi {
        QUEUED_TOTAL.fetch_add(self.bytes, Ordering::Relaxed);
        Multi {
            queued: self.queued.clone(),
            bytes: self.bytes,
            failed: self.failed,
        }
    }
}

impl Drop for Multi {
    fn drop(&mut self) {
        QUEUED_TOTAL.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Bytes queued by all open transactions (for tests and the curious).
pub fn queued_total() -> usize {
    QUEUED_TOTAL.load(Ordering::Relaxed)
}

/// What [`super::execute`] does with a command while a transaction is open:
/// `None` if it runs now (`EXEC`, `DISCARD`, `MULTI`, `QUIT`), else it was
/// answered here: queued, or refused (and the transaction marked failed).
pub(super) fn intercept(cx: &mut Cx<'_>, found: Option<usize>, args: &[&[u8]]) -> Option<()> {
    let multi = cx.session.multi.as_mut()?;
    let Some(index) = found else {
        multi.failed = true;
        super::unknown_command(&mut cx.reply, args);
        return Some(());
    };
    let cmd = &super::COMMANDS[index];
    if matches!(cmd.name, "exec" | "discard" | "multi" | "quit") {
        return None;
    }
    if !super::arity_ok(cmd.arity, args.len()) {
        multi.failed = true;
        super::wrong_arity(&mut cx.reply, cmd.name);
        return Some(());
    }
    match multi.queue(index, args) {
        Ok(()) => cx.reply.simple(b"QUEUED"),
        Err(message) => {
            multi.failed = true;
            cx.reply.error(message);
        }
    }
    Some(())
}

pub(crate) const MULTI: Command = Command {
    name: "multi",
    access: Access::Read,
    arity: 1,
    flags: &["noscript", "loading", "stale", "fast", "allow_busy"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: |cx, _| {
        if cx.session.multi.is_some() {
            cx.reply.error(b"ERR MULTI calls can not be nested");
        } else {
            cx.session.multi = Some(Box::default());
            cx.reply.ok();
        }
    },
};

pub(crate) const EXEC: Command = Command {
    name: "exec",
    access: Access::Read,
    arity: 1,
    flags: &["noscript", "loading", "stale", "skip_slowlog"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: exec,
};

fn exec(cx: &mut Cx<'_>, _: &[&[u8]]) {
    let Some(multi) = cx.session.multi.take() else {
        return cx.reply.error(b"ERR EXEC without MULTI");
    };
    if multi.failed {
        return cx
            .reply
            .error(b"EXECABORT Transaction discarded because of previous errors.");
    }
    cx.reply.array(multi.queued.len());
    for (index, args) in &multi.queued {
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        (super::COMMANDS[*index].run)(cx, &args);
    }
}

pub(crate) const DISCARD: Command = Command {
    name: "discard",
    access: Access::Read,
    arity: 1,
    flags: &["noscript", "loading", "stale", "fast", "allow_busy"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: |cx, _| {
        if cx.session.multi.take().is_some() {
            cx.reply.ok();
        } else {
            cx.reply.error(b"ERR DISCARD without MULTI");
        }
    },
};
