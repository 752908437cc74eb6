//! `COMMAND`, `COMMAND COUNT / LIST / INFO / DOCS / HELP`, and the ACL
//! categories of each command, from the table copied out of Redis 7.0
//! (`table.rs`, written by `scripts/gen_command_table.py`).
//!
//! Why a copied table: what these answer is what clients and proxies route
//! and document by (redis-cli's `help SET`, a cluster client's key
//! positions), so it must be Redis's own answer, for exactly the commands
//! that exist here. A unit test checks that the table and the command table
//! in the command table (`COMMANDS`) name the same commands with the same arity.

use super::{Command, Cx};
use crate::service::Access;
use reactor_rpc_protocol::resp::Version;

/// What Redis says about one command (or subcommand), in both protocols.
pub(crate) struct Entry {
    /// Lower case, `container|sub` for a subcommand.
    pub name: &'static str,
    /// The `COMMAND INFO` entry: RESP2, RESP3.
    pub info: [&'static [u8]; 2],
    /// The `COMMAND DOCS` value (the map after the name): RESP2, RESP3;
    /// empty for subcommands (their docs are inside their container's).
    pub docs: [&'static [u8]; 2],
    /// Redis's command flags (`write`, `readonly`, `denyoom`, ...).
    pub flags: &'static [&'static str],
    /// ACL categories (`@read`, `@write`, `@admin`, `@dangerous`, ...).
    pub categories: &'static [&'static str],
    /// The subcommands we implement, for a container.
    pub subcommands: &'static [Entry],
}

fn slot(version: Version) -> usize {
    match version {
        Version::Resp2 => 0,
        Version::Resp3 => 1,
    }
}

/// The table entry of a command (`get`) or subcommand (`client|list`),
/// whatever its case.
pub(crate) fn entry(name: &[u8]) -> Option<&'static Entry> {
    let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    let (top, sub) = match name.split_once('|') {
        Some((top, _)) => (top.to_owned(), Some(name.clone())),
        None => (name.clone(), None),
    };
    let e = super::table::TABLE.iter().find(|e| e.name == top)?;
    match sub {
        None => Some(e),
        Some(full) => e.subcommands.iter().find(|s| s.name == full),
    }
}

/// The ACL categories Redis gives a command or subcommand (`get` →
/// `@read @string @fast`; `client|kill` → `@admin @slow @dangerous
/// @connection`), for deciding who may run what. `None` for a command that
/// does not exist here.
pub fn categories(name: &str) -> Option<&'static [&'static str]> {
    entry(name.as_bytes()).map(|e| e.categories)
}

/// Redis's flags for a command or subcommand (`write`, `denyoom`, `fast`...).
pub fn flags(name: &str) -> Option<&'static [&'static str]> {
    entry(name.as_bytes()).map(|e| e.flags)
}

/// The ACL categories of the command a request would run (the
/// subcommand's, for a container command with one).
pub fn categories_of(args: &[&[u8]]) -> Option<&'static [&'static str]> {
    let top = entry(args.first()?)?;
    if top.subcommands.is_empty() {
        return Some(top.categories);
    }
    match args.get(1) {
        None => Some(top.categories),
        Some(sub) => {
            let mut full = top.name.as_bytes().to_vec();
            full.push(b'|');
            full.extend_from_slice(sub);
            entry(&full).map(|e| e.categories)
        }
    }
}

fn info_bytes(cx: &mut Cx<'_>, e: &Entry) {
    let bytes = e.info[slot(cx.reply.version())];
    cx.reply.out().extend_from_slice(bytes);
}

/// `COMMAND`: every command's info.
pub(crate) fn command_all(cx: &mut Cx<'_>) {
    let table = super::table::TABLE;
    cx.reply.array(table.len());
    for e in table {
        info_bytes(cx, e);
    }
}

fn command_count(cx: &mut Cx<'_>, _: &[&[u8]]) {
    cx.reply.integer(super::table::TABLE.len() as i64);
}

fn command_list(cx: &mut Cx<'_>, args: &[&[u8]]) {
    // `COMMAND LIST [FILTERBY ...]`: filters are not offered.
    if args.len() > 2 {
        return cx.reply.error(super::ERR_SYNTAX);
    }
    let table = super::table::TABLE;
    cx.reply.array(table.len());
    for e in table {
        cx.reply.bulk(e.name.as_bytes());
    }
}

fn command_info(cx: &mut Cx<'_>, args: &[&[u8]]) {
    if args.len() == 2 {
        return command_all(cx);
    }
    cx.reply.array(args.len() - 2);
    for name in &args[2..] {
        match entry(name) {
            Some(e) => info_bytes(cx, e),
            None => cx.reply.null(),
        }
    }
}

fn command_docs(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let v = slot(cx.reply.version());
    let table = super::table::TABLE;
    let wanted: Vec<&Entry> = if args.len() == 2 {
        table.iter().collect()
    } else {
        // Unknown names are left out; a name given twice is answered twice.
        args[2..]
            .iter()
            .filter_map(|n| entry(n))
            .filter(|e| !e.docs[v].is_empty())
            .collect()
    };
    cx.reply.map(wanted.len());
    for e in wanted {
        cx.reply.bulk(e.name.as_bytes());
        cx.reply.out().extend_from_slice(e.docs[v]);
    }
}

/// Writes Redis's `addReplyHelp`: a header naming the command as the client
/// typed it (in capitals), the lines, and the `HELP` footer.
pub(crate) fn help(cx: &mut Cx<'_>, command: &[u8], lines: &[&str]) {
    cx.reply.array(lines.len() + 3);
    let mut head = command.to_ascii_uppercase();
    head.extend_from_slice(b" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    cx.reply.simple(&head);
    for line in lines {
        cx.reply.simple(line.as_bytes());
    }
    cx.reply.simple(b"HELP");
    cx.reply.simple(b"    Prints this help.");
}

const COMMAND_HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
];

const fn sub(name: &'static str, arity: i32, run: fn(&mut Cx<'_>, &[&[u8]])) -> Command {
    Command {
        name,
        access: Access::Read,
        arity,
        subcommands: &[],
        run,
    }
}

pub(crate) const COMMAND: Command = Command {
    name: "command",
    access: Access::Read,
    arity: -1,
    subcommands: COMMAND_SUBCOMMANDS,
    run: |cx, _| command_all(cx),
};

const COMMAND_SUBCOMMANDS: &[Command] = &[
    sub("command|count", 2, command_count),
    sub("command|docs", -2, command_docs),
    sub("command|info", -2, command_info),
    sub("command|list", -2, command_list),
    sub("command|help", 2, |cx, args| {
        help(cx, args[0], COMMAND_HELP)
    }),
];

/// Every command and subcommand of [`COMMANDS`], with its arity, as
/// `name`/`arity` pairs (for the test that compares them with the table).
#[cfg(test)]
pub(crate) fn all_commands() -> Vec<(&'static str, i32)> {
    let mut v = Vec::new();
    for c in super::COMMANDS {
        v.push((c.name, c.arity));
        for s in c.subcommands {
            v.push((s.name, s.arity));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arity in a `COMMAND INFO` entry (RESP2 bytes): its second element.
    fn arity_of(info: &[u8]) -> i32 {
        let text = std::str::from_utf8(info).unwrap();
        let line = text.split("\r\n").find(|l| l.starts_with(':')).unwrap();
        line[1..].parse().unwrap()
    }

    #[test]
    fn the_table_and_the_commands_agree() {
        let ours = all_commands();
        for (name, arity) in &ours {
            let e = entry(name.as_bytes()).unwrap_or_else(|| panic!("{name} has no table entry"));
            assert_eq!(arity_of(e.info[0]), *arity, "{name}");
        }
        for e in super::super::table::TABLE {
            assert!(
                ours.iter().any(|(n, _)| *n == e.name),
                "{} is not implemented",
                e.name
            );
            for s in e.subcommands {
                assert!(
                    ours.iter().any(|(n, _)| *n == s.name),
                    "{} is not implemented",
                    s.name
                );
            }
        }
        assert_eq!(
            super::super::COMMANDS.len(),
            super::super::table::TABLE.len()
        );
    }

    #[test]
    fn categories_come_from_redis() {
        assert_eq!(categories("get"), Some(&["@read", "@string", "@fast"][..]));
        assert!(categories("flushall").unwrap().contains(&"@dangerous"));
        assert!(categories("client|kill").unwrap().contains(&"@admin"));
        assert!(categories("nope").is_none());
        let args: [&[u8]; 2] = [b"CONFIG", b"set"];
        assert!(categories_of(&args).unwrap().contains(&"@admin"));
    }
}
