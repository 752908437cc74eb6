//! Commands about the server: INFO, CONFIG (GET, SET, HELP), TIME, WAIT,
//! MEMORY USAGE and OBJECT. Tools read these on their own (redis-benchmark
//! asks `CONFIG GET save`, `redis-cli --stat` polls `INFO`, Sidekiq and
//! Bull read `maxmemory-policy`), so they answer in Redis's shapes, with our
//! own numbers: connections and commands from the service's stats, memory
//! and keyspace counters from the cache.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{command, docs::help, glob, integer_arg, Command, Cx};
use crate::service::cache::EvictionPolicy;
use crate::service::Access;

/// The Redis version we answer like.
pub const REDIS_VERSION: &str = "7.0.0";

pub(crate) const INFO: Command = command("info", Access::Read, -1, info);

/// The sections, in the order Redis prints them.
const SECTIONS: [&str; 7] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "keyspace",
];

/// `INFO [section ...]`: every section by default (and for `all`, `default`,
/// `everything`); an unknown section name adds nothing, as in Redis.
fn info(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let mut wanted = [args.len() == 1; SECTIONS.len()];
    for arg in &args[1..] {
        let arg = arg.to_ascii_lowercase();
        if matches!(arg.as_slice(), b"all" | b"default" | b"everything") {
            wanted = [true; SECTIONS.len()];
        } else if let Some(i) = SECTIONS.iter().position(|s| s.as_bytes() == arg) {
            wanted[i] = true;
        }
    }
    let text = info_text(cx, &wanted);
    cx.reply.verbatim(text.as_bytes());
}

fn info_text(cx: &Cx<'_>, wanted: &[bool; SECTIONS.len()]) -> String {
    let service = cx.service;
    let cache = service.cache().info();
    let persistence = service.persistence_status();
    let stats = service.stats().snapshot(&cache, &persistence);
    let num = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let mut s = String::new();
    for (i, section) in SECTIONS.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        if !s.is_empty() {
            s.push_str("\r\n");
        }
        let mut title = section.to_string();
        title[..1].make_ascii_uppercase();
        let _ = write!(s, "# {title}\r\n");
        let mut field = |name: &str, value: &dyn std::fmt::Display| {
            let _ = write!(s, "{name}:{value}\r\n");
        };
        match *section {
            "server" => {
                let uptime = num(&stats["uptime_ms"]) / 1000;
                field("redis_version", &REDIS_VERSION);
                field("redis_mode", &"standalone");
                field("reactor_rpc_version", &env!("CARGO_PKG_VERSION"));
                field(
                    "reactor_rpc_model",
                    &stats["model"].as_str().unwrap_or("none"),
                );
                field(
                    "os",
                    &format_args!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
                );
                field("arch_bits", &(usize::BITS));
                field("process_id", &std::process::id());
                field("tcp_port", &cx.session.tcp_port);
                field("uptime_in_seconds", &uptime);
                field("uptime_in_days", &(uptime / 86400));
            }
            "clients" => {
                field("connected_clients", &num(&stats["connections"]));
                field("maxclients", &num(&stats["limits"]["max_conns"]));
                // No blocking commands: `redis-cli --stat` reads it.
                field("blocked_clients", &0);
                field("tracking_clients", &0);
            }
            "memory" => {
                field("used_memory", &cache.used_memory);
                field("used_memory_human", &human(cache.used_memory as u64));
                field("maxmemory", &cache.maxmemory);
                field("maxmemory_human", &human(cache.maxmemory as u64));
                field("maxmemory_policy", &cache.policy);
                field("lazyfree_pending_objects", &service.cache().garbage_len());
            }
            // Redis's fields where it has the figure (`redis-cli --stat` reads
            // `loading`, `bgsave_in_progress`, `aof_rewrite_in_progress`), then ours.
            "persistence" => super::persistence::info_fields(&persistence, &mut field),
            "stats" => {
                field(
                    "total_connections_received",
                    &num(&stats["connections_total"]),
                );
                field("total_commands_processed", &num(&stats["requests"]));
                field("rejected_connections", &num(&stats["connections_rejected"]));
                field("expired_keys", &cache.expired_keys);
                field("evicted_keys", &cache.evicted_keys);
                field("evicted_clients", &num(&stats["evicted_clients"]));
                field("keyspace_hits", &cache.keyspace_hits);
                field("keyspace_misses", &cache.keyspace_misses);
            }
            "replication" => {
                field("role", &"master");
                field("connected_slaves", &0);
            }
            // Redis leaves out an empty database.
            "keyspace" if cache.keys > 0 => {
                let _ = write!(
                    s,
                    "db0:keys={},expires={},avg_ttl=0\r\n",
                    cache.keys, cache.expires
                );
            }
            _ => {}
        }
    }
    s
}

/// Bytes as Redis's `bytesToHuman` prints them: `512B`, `1.50K`, `2.00M`.
fn human(n: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (1 << 50, "P"),
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            return format!("{:.2}{unit}", n as f64 / size as f64);
        }
    }
    format!("{n}B")
}

/// `TIME`: Unix time as two bulk strings, seconds and microseconds.
pub(crate) const TIME: Command = command("time", Access::Read, 1, |cx, _| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    cx.reply.array(2);
    cx.reply.bulk(now.as_secs().to_string().as_bytes());
    cx.reply.bulk(now.subsec_micros().to_string().as_bytes());
});

/// `WAIT numreplicas timeout`: there are no replicas, so it answers 0 at
/// once (Redis would block until the timeout when asked for more than 0).
pub(crate) const WAIT: Command = command("wait", Access::Read, 3, |cx, args| {
    if integer_arg(&mut cx.reply, args[1]).is_none() {
        return;
    }
    match reactor_rpc_protocol::resp::parse_i64(args[2]) {
        None => cx
            .reply
            .error(b"ERR timeout is not an integer or out of range"),
        Some(t) if t < 0 => cx.reply.error(b"ERR timeout is negative"),
        Some(_) => cx.reply.integer(0),
    }
});

const fn sub(
    name: &'static str,
    access: Access,
    arity: i32,
    run: fn(&mut Cx<'_>, &[&[u8]]),
) -> Command {
    command(name, access, arity, run)
}

pub(crate) const CONFIG: Command = Command {
    name: "config",
    access: Access::Read,
    arity: -2,
    subcommands: CONFIG_SUBCOMMANDS,
    run: |cx, _| super::wrong_arity(&mut cx.reply, "config"),
};

const CONFIG_SUBCOMMANDS: &[Command] = &[
    sub("config|get", Access::Read, -3, config_get),
    sub("config|set", Access::Admin, -4, config_set),
    sub("config|help", Access::Read, 2, |cx, args| {
        help(cx, args[0], CONFIG_HELP)
    }),
];

const CONFIG_HELP: &[&str] = &[
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
];

/// The parameters `CONFIG GET` answers: what client libraries and tools
/// read when they connect, with the values in force here.
fn config_params(cx: &Cx<'_>) -> Vec<(&'static str, String)> {
    let service = cx.service;
    let cache = service.cache().config();
    let stats = service
        .stats()
        .snapshot(&service.cache().info(), &service.persistence_status());
    let limit = |name: &str| stats["limits"][name].as_u64().unwrap_or(0).to_string();
    let bind = cx.session.local.ip().to_string();
    vec![
        ("maxmemory", cache.maxmemory.to_string()),
        ("maxmemory-policy", cache.policy.to_string()),
        ("maxmemory-samples", "5".into()),
        ("maxclients", limit("max_conns")),
        ("timeout", limit("idle_timeout_s")),
        ("proto-max-bulk-len", limit("max_frame")),
        ("client-query-buffer-limit", "1073741824".into()),
        ("databases", "1".into()),
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("appendfsync", "everysec".into()),
        ("port", cx.session.tcp_port.to_string()),
        ("bind", bind),
        ("protected-mode", "no".into()),
        ("tcp-keepalive", "0".into()),
        ("hz", "10".into()),
        ("io-threads", "1".into()),
        ("cluster-enabled", "no".into()),
        ("replica-read-only", "yes".into()),
        ("slave-read-only", "yes".into()),
        ("notify-keyspace-events", String::new()),
        ("lazyfree-lazy-user-flush", "no".into()),
        ("lazyfree-lazy-eviction", "no".into()),
        ("lazyfree-lazy-expire", "no".into()),
        ("active-expire-effort", "1".into()),
        ("maxmemory-clients", "0".into()),
        ("min-replicas-to-write", "0".into()),
        ("requirepass", String::new()),
        ("daemonize", "no".into()),
        ("loglevel", "notice".into()),
    ]
}

/// `CONFIG GET parameter ...` as Redis 7.0's `configGetCommand`: a name
/// without `[`, `*` or `?` is looked up exactly (any case; the reply names
/// it as asked), a pattern is matched without case against every name;
/// each parameter is answered once. A map (a flat array in RESP2).
fn config_get(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let params = config_params(cx);
    let mut matched: Vec<(Vec<u8>, &str)> = Vec::new();
    let seen = |matched: &Vec<(Vec<u8>, &str)>, name: &str| {
        matched
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    };
    for p in &args[2..] {
        let is_pattern = p.iter().any(|b| matches!(b, b'[' | b'*' | b'?'));
        for (name, value) in &params {
            let hit = if is_pattern {
                glob::matches(p, name.as_bytes(), true)
            } else {
                p.eq_ignore_ascii_case(name.as_bytes())
            };
            if hit && !seen(&matched, name) {
                let shown = if is_pattern {
                    name.as_bytes().to_vec()
                } else {
                    p.to_vec()
                };
                matched.push((shown, value));
            }
        }
    }
    cx.reply.map(matched.len());
    for (name, value) in matched {
        cx.reply.bulk(&name);
        cx.reply.bulk(value.as_bytes());
    }
}

/// Redis's `memtoull`: digits with an optional unit (`b`, `k` = 1000, `kb`
/// = 1024, `m`, `mb`, `g`, `gb`, any case); no sign, no fraction.
fn parse_memory(s: &[u8]) -> Option<usize> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let unit: u64 = match s[digits..].to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1 << 20,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1 << 30,
        _ => return None,
    };
    let n: u64 = std::str::from_utf8(&s[..digits]).ok()?.parse().ok()?;
    usize::try_from(n.checked_mul(unit)?).ok()
}

/// `CONFIG SET parameter value [parameter value ...]`: `maxmemory` and
/// `maxmemory-policy` change at run time and take effect on the next write;
/// every pair is checked before any is applied, as in Redis 7.0.
fn config_set(cx: &mut Cx<'_>, args: &[&[u8]]) {
    if args.len() % 2 != 0 {
        return super::wrong_arity(&mut cx.reply, "config|set");
    }
    let mut maxmemory = None;
    let mut policy = None;
    for pair in args[2..].chunks_exact(2) {
        let (name, value) = (pair[0], pair[1]);
        let failed = |what: &str| {
            format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {what}",
                String::from_utf8_lossy(name)
            )
        };
        if name.eq_ignore_ascii_case(b"maxmemory") {
            match parse_memory(value) {
                Some(n) => maxmemory = Some(n),
                None => {
                    return cx
                        .reply
                        .error(failed("argument must be a memory value").as_bytes())
                }
            }
        } else if name.eq_ignore_ascii_case(b"maxmemory-policy") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.to_ascii_lowercase().parse::<EvictionPolicy>().ok());
            match parsed {
                Some(p) => policy = Some(p),
                None => {
                    let names: Vec<&str> = EvictionPolicy::ALL.iter().map(|p| p.as_str()).collect();
                    let what = format!(
                        "argument(s) must be one of the following: {}",
                        names.join(", ")
                    );
                    return cx.reply.error(failed(&what).as_bytes());
                }
            }
        } else {
            let mut m = b"ERR Unknown option or number of arguments for CONFIG SET - '".to_vec();
            m.extend_from_slice(super::c_str(name, usize::MAX));
            m.push(b'\'');
            return cx.reply.error(&m);
        }
    }
    let cache = cx.service.cache();
    if let Some(n) = maxmemory {
        cache.set_maxmemory(n);
    }
    if let Some(p) = policy {
        cache.set_policy(p);
    }
    cx.reply.ok();
}

pub(crate) const MEMORY: Command = Command {
    name: "memory",
    access: Access::Read,
    arity: -2,
    subcommands: MEMORY_SUBCOMMANDS,
    run: |cx, _| super::wrong_arity(&mut cx.reply, "memory"),
};

const MEMORY_SUBCOMMANDS: &[Command] = &[
    sub("memory|usage", Access::Read, -3, memory_usage),
    sub("memory|help", Access::Read, 2, |cx, args| {
        help(cx, args[0], MEMORY_HELP)
    }),
];

const MEMORY_HELP: &[&str] = &[
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
];

/// `MEMORY USAGE key [SAMPLES n]`: the bytes the cache counts for the key
/// against `maxmemory` (its item, index slot, allocations and deadline),
/// which is our figure, not Redis's.
fn memory_usage(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let mut j = 3;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"samples") && j + 1 < args.len() {
            let Some(n) = integer_arg(&mut cx.reply, args[j + 1]) else {
                return;
            };
            if n < 0 {
                return cx.reply.error(super::ERR_SYNTAX);
            }
            j += 2;
        } else {
            return cx.reply.error(super::ERR_SYNTAX);
        }
    }
    match cx.service.cache().key_info(args[2]) {
        Some(info) => cx
            .reply
            .integer(i64::try_from(info.memory).unwrap_or(i64::MAX)),
        None => cx.reply.null(),
    }
}

pub(crate) const OBJECT: Command = Command {
    name: "object",
    access: Access::Read,
    arity: -2,
    subcommands: OBJECT_SUBCOMMANDS,
    run: |cx, _| super::wrong_arity(&mut cx.reply, "object"),
};

const OBJECT_SUBCOMMANDS: &[Command] = &[
    sub("object|encoding", Access::Read, 3, |cx, args| {
        match cx.service.cache().key_info(args[2]) {
            Some(info) => cx.reply.bulk(info.encoding.as_bytes()),
            None => cx.reply.null(),
        }
    }),
    sub("object|idletime", Access::Read, 3, |cx, args| {
        match cx.service.cache().key_info(args[2]) {
            Some(info) => cx
                .reply
                .integer(i64::try_from(info.idle_seconds).unwrap_or(i64::MAX)),
            None => cx.reply.null(),
        }
    }),
    // There are no LFU policies, so no frequency is tracked.
    sub("object|freq", Access::Read, 3, |cx, args| {
        if cx.service.cache().key_info(args[2]).is_none() {
            return cx.reply.null();
        }
        cx.reply.error(
            b"ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
              Please note that when switching between policies at runtime LRU and LFU data \
              will take some time to adjust.",
        );
    }),
    sub("object|help", Access::Read, 2, |cx, args| {
        help(cx, args[0], OBJECT_HELP)
    }),
];

const OBJECT_HELP: &[&str] = &[
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values_parse_as_redis() {
        assert_eq!(parse_memory(b"0"), Some(0));
        assert_eq!(parse_memory(b"100mb"), Some(100 << 20));
        assert_eq!(parse_memory(b"10GB"), Some(10 << 30));
        assert_eq!(parse_memory(b"1k"), Some(1000));
        assert_eq!(parse_memory(b"-1"), None);
        assert_eq!(parse_memory(b"1.5gb"), None);
        assert_eq!(parse_memory(b"abc"), None);
        assert_eq!(parse_memory(b""), None);
    }
}
