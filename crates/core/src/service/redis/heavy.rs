//! Which calls are heavy: enough work that a server with workers should run
//! them off its event loop, so that other connections' pings stay fast.
//!
//! Pure: it looks at the arguments and at sizes the service can tell at
//! once (the key count, the queued transaction), and never runs anything.
//! The RESP session asks [`is_heavy`] before running a command, and a heavy
//! one stops it with `Stop::Offload` for the server model's workers;
//! everything below the thresholds costs well under a millisecond.

use super::Session;
use crate::service::Service;

/// Keys at which a multi-key command (`MGET`, `MSET`, `DEL`, `UNLINK`,
/// `EXISTS`, `TOUCH`, `MSETNX`, `WATCH`) counts as heavy.
pub const MANY_KEYS: usize = 256;

/// Keys at which `KEYS` (which walks them all) counts as heavy.
pub const KEYS_HEAVY: usize = 4096;

/// Keys at which a synchronous `FLUSHALL`/`FLUSHDB` counts as heavy (an
/// async one only detaches, but is marked too once the keyspace is large,
/// since detaching still visits every shard).
pub const FLUSH_HEAVY: usize = 65_536;

/// Watched keys at which `EXEC`, `DISCARD` and `UNWATCH`, which walk them,
/// count as heavy.
pub const WATCHED_HEAVY: usize = 4096;

/// `SCAN ... COUNT n` at which a call counts as heavy.
pub const SCAN_HEAVY: i64 = 4096;

/// Whether running `args` for `session` is heavy (see the module docs). An
/// unknown command is not heavy (it is answered with an error), nor is one
/// the connection may not run (refused at once), nor one queued inside `MULTI` (only its `EXEC` runs it). `SAVE` always is: it
/// writes the whole cache to disk before answering.
pub fn is_heavy(service: &Service, session: &Session, args: &[&[u8]]) -> bool {
    is_heavy_by_head(service, session, args, args.len())
}

/// [`is_heavy`] from the first arguments of a command of `count`: `head`
/// must hold at least the name and a subcommand (a session passes up to 16),
/// so that a command of a million arguments can be sent to a worker without
/// listing them all on the loop first.
pub fn is_heavy_by_head(
    service: &Service,
    session: &Session,
    head: &[&[u8]],
    count: usize,
) -> bool {
    let Some(name) = command_name(head) else {
        return false;
    };
    // A command the connection may not run is refused at once, on the loop.
    let allowed = super::access(head)
        .is_some_and(|access| session.login.check(service.auth(), access).is_ok());
    if !allowed {
        return false;
    }
    // These walk the session's watched keys, a shard lock each.
    let watched = session.watch.as_ref().map_or(0, |w| w.len());
    if watched > WATCHED_HEAVY && matches!(name, "exec" | "discard" | "unwatch") {
        return true;
    }
    match (&session.multi, name) {
        (Some(multi), "exec") => {
            multi.len() > MANY_KEYS
                || multi.commands().any(|c| {
                    command_name(&c)
                        .is_some_and(|name| heavy_on_its_own(service, name, &c, c.len()))
                })
        }
        (Some(_), _) => false, // queued, not run
        (None, name) => heavy_on_its_own(service, name, head, count),
    }
}

/// The commands that can be heavy: [`heavy_on_its_own`]'s and `EXEC`.
const CANDIDATES: &[&str] = &[
    "exec", "discard", "unwatch", "watch", "save", "keys", "flushall", "flushdb", "mget", "del",
    "unlink", "exists", "touch", "mset", "msetnx", "scan",
];

/// The name of `args`'s command if it is one of the [`CANDIDATES`], whatever
/// its case. Every command asks, so this compares a handful of short names
/// instead of looking the command up.
fn command_name(args: &[&[u8]]) -> Option<&'static str> {
    let name = args.first()?;
    CANDIDATES
        .iter()
        .find(|c| c.len() == name.len() && c.as_bytes().eq_ignore_ascii_case(name))
        .copied()
}

/// Whether the command `name` of `count` arguments, `args` the first of
/// them, is heavy when it runs.
fn heavy_on_its_own(service: &Service, name: &str, args: &[&[u8]], count: usize) -> bool {
    match name {
        "save" => true,
        "keys" => service.cache().len() >= KEYS_HEAVY,
        "flushall" | "flushdb" => service.cache().len() >= FLUSH_HEAVY,
        "mget" | "del" | "unlink" | "exists" | "touch" | "watch" => count > MANY_KEYS,
        "mset" | "msetnx" => count > 2 * MANY_KEYS,
        "scan" => args.windows(2).any(|w| {
            w[0].eq_ignore_ascii_case(b"count")
                && reactor_rpc_protocol::resp::parse_i64(w[1]).is_some_and(|n| n >= SCAN_HEAVY)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_candidate_is_a_command_and_is_found_whatever_its_case() {
        for name in CANDIDATES {
            assert!(
                super::super::command_index(name.as_bytes()).is_some(),
                "{name}"
            );
            let upper = name.to_ascii_uppercase();
            assert_eq!(command_name(&[upper.as_bytes()]), Some(*name));
        }
        assert_eq!(command_name(&[b"get"]), None);
        assert_eq!(command_name(&[b"execx"]), None);
    }

    #[test]
    fn a_long_command_is_judged_by_its_head_and_count() {
        let service = Service::new();
        let session = Session::new(6379);
        let head: Vec<&[u8]> = std::iter::once(&b"MSET"[..])
            .chain(std::iter::repeat_n(&b"k"[..], 15))
            .collect();
        assert!(is_heavy_by_head(
            &service,
            &session,
            &head,
            2 * MANY_KEYS + 2
        ));
        assert!(!is_heavy_by_head(&service, &session, &head, 16));
        assert!(!is_heavy(&service, &session, &head));
    }
}
