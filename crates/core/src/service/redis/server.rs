//! Commands about the server: INFO, COMMAND and CONFIG GET. Tools read these
//! on their own (redis-cli asks `COMMAND DOCS` when it starts, redis-benchmark
//! `CONFIG GET save`), so they answer in Redis's shapes, with our own numbers:
//! connections and commands from the service's stats, memory and keyspace
//! counters from the cache.

use std::fmt::Write as _;

use super::{lookup, run_subcommand, Command, Cx, COMMANDS};
use crate::service::Access;

/// The Redis version we answer like.
pub const REDIS_VERSION: &str = "7.0.0";

pub(crate) const INFO: Command = Command {
    name: "info",
    access: Access::Read,
    arity: -1,
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: info,
};

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
            }
            "memory" => {
                field("used_memory", &cache.used_memory);
                field("used_memory_human", &human(cache.used_memory as u64));
                field("maxmemory", &cache.maxmemory);
                field("maxmemory_human", &human(cache.maxmemory as u64));
                field("maxmemory_policy", &cache.policy);
            }
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

pub(crate) const COMMAND: Command = Command {
    name: "command",
    access: Access::Read,
    arity: -1,
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
    subcommands: COMMAND_SUBCOMMANDS,
    run: |cx, args| {
        if args.len() == 1 {
            cx.reply.array(COMMANDS.len());
            for c in COMMANDS {
                command_entry(cx, c);
            }
        } else {
            run_subcommand(cx, "command", COMMAND_SUBCOMMANDS, args);
        }
    },
};

const COMMAND_SUBCOMMANDS: &[Command] = &[
    Command {
        name: "command|count",
        access: Access::Read,
        arity: 2,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        subcommands: &[],
        run: |cx, _| cx.reply.integer(COMMANDS.len() as i64),
    },
    Command {
        name: "command|docs",
        access: Access::Read,
        arity: -2,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        // No documentation: an empty map, which redis-cli accepts quietly.
        subcommands: &[],
        run: |cx, _| cx.reply.map(0),
    },
    Command {
        name: "command|info",
        access: Access::Read,
        arity: -2,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        subcommands: &[],
        run: |cx, args| {
            cx.reply.array(args.len() - 2);
            for name in &args[2..] {
                match lookup(COMMANDS, name) {
                    Some(c) => command_entry(cx, c),
                    None => cx.reply.null(),
                }
            }
        },
    },
    Command {
        name: "command|list",
        access: Access::Read,
        arity: -2,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        subcommands: &[],
        run: |cx, _| {
            cx.reply.array(COMMANDS.len());
            for c in COMMANDS {
                cx.reply.bulk(c.name.as_bytes());
            }
        },
    },
];

/// One command as `COMMAND` describes it in Redis 7: name, arity, flags,
/// first key, last key, step, ACL categories, tips, key specs, subcommands
/// (the last four empty).
fn command_entry(cx: &mut Cx<'_>, c: &Command) {
    let r = &mut cx.reply;
    r.array(10);
    r.bulk(c.name.as_bytes());
    r.integer(i64::from(c.arity));
    r.array(c.flags.len());
    for flag in c.flags {
        r.simple(flag.as_bytes());
    }
    r.integer(c.keys.0);
    r.integer(c.keys.1);
    r.integer(c.keys.2);
    for _ in 0..4 {
        r.array(0);
    }
}

pub(crate) const CONFIG: Command = Command {
    name: "config",
    access: Access::Read,
    arity: -2,
    flags: &[],
    keys: (0, 0, 0),
    subcommands: CONFIG_SUBCOMMANDS,
    run: |cx, args| run_subcommand(cx, "config", CONFIG_SUBCOMMANDS, args),
};

const CONFIG_SUBCOMMANDS: &[Command] = &[Command {
    name: "config|get",
    access: Access::Read,
    arity: -3,
    flags: &["admin", "noscript", "loading", "stale"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: config_get,
}];

/// `CONFIG GET parameter ...`: the few parameters tools ask about, as a map
/// (a flat array in RESP2). A parameter is matched exactly (any case) or by
/// `*`; unknown ones are left out, as in Redis.
fn config_get(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let cache = cx.service.cache().info();
    let params: [(&str, String); 6] = [
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("databases", "1".into()),
        ("port", cx.session.tcp_port.to_string()),
        ("maxmemory", cache.maxmemory.to_string()),
        ("maxmemory-policy", cache.policy.to_string()),
    ];
    let matched: Vec<&(&str, String)> = params
        .iter()
        .filter(|(name, _)| {
            args[2..]
                .iter()
                .any(|p| p == b"*" || p.eq_ignore_ascii_case(name.as_bytes()))
        })
        .collect();
    cx.reply.map(matched.len());
    for (name, value) in matched {
        cx.reply.bulk(name.as_bytes());
        cx.reply.bulk(value.as_bytes());
    }
}
