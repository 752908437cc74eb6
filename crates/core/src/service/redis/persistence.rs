//! Persistence on RESP: SAVE, BGSAVE, LASTSAVE, the `# Persistence` section
//! of INFO, and `-MISCONF` for writes after a failed save.
//!
//! Redis users and tools expect these: `redis-cli SAVE` before a risky
//! change, monitoring that reads `rdb_last_bgsave_status`, clients that
//! recognise `-MISCONF`. They map onto the snapshot the JSON `save` method
//! writes, through the service's [`Persistence`](crate::service::Persistence)
//! (which reaches the file through the `Saver` that `ops::persist` installs),
//! so this file knows nothing of files either.
//!
//! `SAVE` is heavy ([`is_heavy`](super::is_heavy)): a model with workers
//! runs it on one, so a large cache does not stall the event loop for the
//! save's duration, as Redis's `SAVE` stalls its server. `BGSAVE` returns at
//! once wherever it runs.

use super::{command, Command, Cx, Resolved};
use crate::service::{Access, PersistenceStatus, SaveFailure};

/// Redis 7.0's reply to a write while the last save failed and
/// `stop-writes-on-bgsave-error` is on (`shared.bgsaveerr` in `server.c`),
/// byte for byte, so clients that recognise it do.
pub(crate) const MISCONF: &[u8] = b"MISCONF Redis is configured to save RDB snapshots, but it's \
currently unable to persist to disk. Commands that may modify the data set are disabled, because \
this instance is configured to report errors during writes if RDB snapshotting fails \
(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// SAVE or BGSAVE on a server without `--snapshot` (Redis always has a dump
/// file; we may not).
const ERR_NO_SNAPSHOT: &[u8] =
    b"ERR no snapshot file is configured (start the server with --snapshot PATH)";

/// Redis's reply to SAVE or BGSAVE while a save runs.
const ERR_IN_PROGRESS: &[u8] = b"ERR Background save already in progress";

/// Answers a write with `-MISCONF` when writes are refused (the caller has
/// checked [`Persistence::writes_refused`](crate::service::Persistence::writes_refused));
/// returns whether it answered. As in Redis, a refused command inside
/// `MULTI` makes `EXEC` fail, and `EXEC` of a transaction holding a write is
/// refused whole (`-EXECABORT Transaction discarded because of: MISCONF ...`).
/// Unknown commands and wrong arities are left to the usual errors.
pub(super) fn refuse_write(cx: &mut Cx<'_>, resolved: Resolved) -> bool {
    let cmd = resolved.command();
    if cmd.name == "exec" {
        if !cx.session.multi.as_ref().is_some_and(|m| m.writes()) {
            return false;
        }
        cx.session.multi = None;
        let mut m = b"EXECABORT Transaction discarded because of: ".to_vec();
        m.extend_from_slice(MISCONF);
        cx.reply.error(&m);
        return true;
    }
    if cmd.access != Access::Write {
        return false;
    }
    if let Some(multi) = cx.session.multi.as_mut() {
        multi.abort();
    }
    cx.reply.error(MISCONF);
    true
}

pub(crate) const SAVE: Command = command("save", Access::Admin, 1, save);

/// `SAVE`: saves now and answers `+OK`; Redis's bare `-ERR` when the save
/// fails (the log and `INFO persistence` say why).
fn save(cx: &mut Cx<'_>, _: &[&[u8]]) {
    let service = cx.service;
    match service.persistence().save(service.cache()) {
        Ok(_) => cx.reply.ok(),
        Err(SaveFailure::NotConfigured) => cx.reply.error(ERR_NO_SNAPSHOT),
        Err(SaveFailure::Busy) => cx.reply.error(ERR_IN_PROGRESS),
        Err(SaveFailure::Failed(_)) => cx.reply.error(b"ERR"),
    }
}

pub(crate) const BGSAVE: Command = command("bgsave", Access::Admin, -1, bgsave);

/// `BGSAVE [SCHEDULE]`: starts a save on the background thread and answers
/// `+Background saving started` at once (`SCHEDULE` changes nothing: no
/// other background job could be in the way).
fn bgsave(cx: &mut Cx<'_>, args: &[&[u8]]) {
    match args {
        [_] => {}
        [_, opt] if opt.eq_ignore_ascii_case(b"schedule") => {}
        _ => return cx.reply.error(super::ERR_SYNTAX),
    }
    match cx.service.persistence().save_in_background() {
        Ok(()) => cx.reply.simple(b"Background saving started"),
        Err(SaveFailure::NotConfigured) => cx.reply.error(ERR_NO_SNAPSHOT),
        Err(SaveFailure::Busy) => cx.reply.error(ERR_IN_PROGRESS),
        Err(SaveFailure::Failed(why)) => cx.reply.error(format!("ERR {why}").as_bytes()),
    }
}

pub(crate) const LASTSAVE: Command = command("lastsave", Access::Admin, 1, |cx, _| {
    let at = cx.service.persistence().last_save_time();
    cx.reply.integer(i64::try_from(at).unwrap_or(i64::MAX));
});

/// The fields of `INFO persistence`: Redis's names where Redis has the
/// figure (the RDB ones stand for our snapshot; AOF is never on), then ours.
pub(super) fn info_fields(
    p: &PersistenceStatus,
    field: &mut dyn FnMut(&str, &dyn std::fmt::Display),
) {
    let secs = |ms: Option<u64>| ms.map_or(-1, |ms| i64::try_from(ms / 1000).unwrap_or(i64::MAX));
    field("loading", &0);
    field("async_loading", &0);
    field("rdb_changes_since_last_save", &p.changes_since_last_save);
    field("rdb_bgsave_in_progress", &u8::from(p.save_in_progress));
    field("rdb_last_save_time", &p.last_save_time);
    field("rdb_last_bgsave_status", &p.last_save_status());
    field("rdb_last_bgsave_time_sec", &secs(p.last_save_duration_ms));
    field("rdb_current_bgsave_time_sec", &secs(p.current_save_ms));
    field("rdb_saves", &p.saves);
    field("rdb_last_load_keys_expired", &p.expired_on_load);
    field("rdb_last_load_keys_loaded", &p.loaded_keys);
    field("aof_enabled", &0);
    field("aof_rewrite_in_progress", &0);
    field("snapshot_enabled", &u8::from(p.enabled));
    field(
        "stop_writes_on_save_error",
        &u8::from(p.stop_writes_on_error),
    );
    field("writes_refused", &u8::from(p.writes_refused));
    field(
        "last_save_duration_ms",
        &p.last_save_duration_ms
            .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
    );
    field(
        "last_save_error",
        &p.last_save_error.as_deref().unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::service::redis::{execute, Session};
    use crate::service::{Cache, Persistence, SaveReport, Saver, Service};

    /// Fails every save, as a full disk would.
    struct Full;

    impl Saver for Full {
        fn save(&self, _: &Cache, p: &Persistence) -> Result<SaveReport, SaveFailure> {
            p.save_started(0);
            p.save_failed("No space left on device", 1);
            Err(SaveFailure::Failed("No space left on device".into()))
        }
        fn save_in_background(&self) -> Result<(), SaveFailure> {
            Err(SaveFailure::Busy)
        }
    }

    fn run(service: &Service, session: &mut Session, cmd: &str) -> String {
        let args: Vec<&[u8]> = cmd.split(' ').map(str::as_bytes).collect();
        let mut out = Vec::new();
        execute(service, session, &args, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn misconf_refuses_writes_only_and_aborts_transactions() {
        let service = Service::new();
        let s = &mut Session::new(6379);
        assert_eq!(
            run(&service, s, "SAVE"),
            format!("-{}\r\n", String::from_utf8_lossy(ERR_NO_SNAPSHOT))
        );
        assert!(service.persistence().install(Arc::new(Full)));
        assert_eq!(run(&service, s, "SET k v"), "+OK\r\n");
        run(&service, s, "MULTI");
        assert_eq!(run(&service, s, "SET k w"), "+QUEUED\r\n");
        assert_eq!(run(&service, s, "SAVE"), "+QUEUED\r\n");
        // The save fails while a transaction with a write is open.
        assert!(service.persistence().save(service.cache()).is_err());
        let misconf = format!("-{}\r\n", String::from_utf8_lossy(MISCONF));
        assert_eq!(
            run(&service, s, "EXEC"),
            format!(
                "-EXECABORT Transaction discarded because of: {}\r\n",
                String::from_utf8_lossy(MISCONF)
            )
        );
        assert_eq!(run(&service, s, "SET k w"), misconf);
        assert_eq!(run(&service, s, "INCR n"), misconf);
        assert_eq!(run(&service, s, "DEL k"), misconf);
        // Wrong arity and unknown commands keep their own errors.
        assert!(run(&service, s, "SET k").starts_with("-ERR wrong number"));
        assert_eq!(run(&service, s, "GET k"), "$1\r\nv\r\n");
        assert_eq!(run(&service, s, "PING"), "+PONG\r\n");
        assert_eq!(run(&service, s, "SAVE"), "-ERR\r\n");
        // A write queued in MULTI is refused, and EXEC then aborts.
        run(&service, s, "MULTI");
        assert_eq!(run(&service, s, "SET k w"), misconf);
        assert_eq!(run(&service, s, "GET k"), "+QUEUED\r\n");
        assert_eq!(
            run(&service, s, "EXEC"),
            "-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
        // FLUSHALL is admin: it runs.
        assert_eq!(run(&service, s, "FLUSHALL"), "+OK\r\n");
        let info = run(&service, s, "INFO persistence");
        for line in [
            "# Persistence\r\n",
            "rdb_last_bgsave_status:err\r\n",
            "writes_refused:1\r\n",
            "snapshot_enabled:1\r\n",
            "last_save_error:No space left on device\r\n",
            "rdb_saves:2\r\n",
        ] {
            assert!(info.contains(line), "{line:?} not in {info}");
        }
        // Off: writes run again.
        service.persistence().set_stop_writes_on_error(false);
        assert_eq!(run(&service, s, "SET k w"), "+OK\r\n");
    }

    #[test]
    fn bgsave_arguments_and_lastsave() {
        let service = Service::new();
        let s = &mut Session::new(6379);
        assert_eq!(run(&service, s, "BGSAVE x"), "-ERR syntax error\r\n");
        assert_eq!(
            run(&service, s, "BGSAVE schedule extra"),
            "-ERR syntax error\r\n"
        );
        assert!(run(&service, s, "BGSAVE SCHEDULE").starts_with("-ERR no snapshot file"));
        let at = run(&service, s, "LASTSAVE");
        let at: u64 = at
            .strip_prefix(':')
            .and_then(|r| r.strip_suffix("\r\n"))
            .and_then(|n| n.parse().ok())
            .expect("an integer");
        // The start counts as saved, as in Redis.
        assert!(at > 1_600_000_000, "{at}");
        assert!(service.persistence().install(Arc::new(Full)));
        assert_eq!(
            run(&service, s, "BGSAVE"),
            "-ERR Background save already in progress\r\n"
        );
    }
}
