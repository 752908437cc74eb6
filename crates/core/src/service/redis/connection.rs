//! Commands about the connection itself rather than the data: PING, ECHO,
//! SELECT, HELLO (the RESP3 switch), AUTH, ACL WHOAMI, CLIENT and QUIT. Clients send most
//! of these on their own when they connect (redis-py 8 opens with `HELLO 3`
//! and `CLIENT SETINFO`), so they must answer exactly as Redis does.

use std::time::Instant;

use super::{command, docs::help, wrong_arity, Command, Cx, ERR_SYNTAX};
use crate::service::auth::{AuthError, DEFAULT_USER};
use crate::service::Access;
use reactor_rpc_protocol::resp::{parse_i64, Version};

pub(crate) const PING: Command = Command {
    name: "ping",
    access: Access::Open,
    arity: -1,
    subcommands: &[],
    run: ping,
};

fn ping(cx: &mut Cx<'_>, args: &[&[u8]]) {
    match args {
        [_] => cx.reply.simple(b"PONG"),
        [_, message] => cx.reply.bulk(message),
        _ => wrong_arity(&mut cx.reply, "ping"),
    }
}

pub(crate) const ECHO: Command = Command {
    name: "echo",
    access: Access::Read,
    arity: 2,
    subcommands: &[],
    run: |cx, args| cx.reply.bulk(args[1]),
};

pub(crate) const SELECT: Command = Command {
    name: "select",
    access: Access::Read,
    arity: 2,
    subcommands: &[],
    run: select,
};

/// One database, number 0. Errors as Redis 7.0's `getIntFromObjectOrReply`.
fn select(cx: &mut Cx<'_>, args: &[&[u8]]) {
    match parse_i64(args[1]).map(i32::try_from) {
        Some(Ok(0)) => cx.reply.ok(),
        Some(Ok(_)) => cx.reply.error(b"ERR DB index is out of range"),
        Some(Err(_)) => cx
            .reply
            .error(b"ERR value is out of range, value must between -2147483648 and 2147483647"),
        None => cx.reply.error(super::ERR_NOT_INTEGER),
    }
}

pub(crate) const QUIT: Command = Command {
    name: "quit",
    access: Access::Open,
    arity: -1,
    subcommands: &[],
    run: |cx, _| {
        cx.reply.ok();
        cx.close = true;
    },
};

pub(crate) const AUTH: Command = Command {
    name: "auth",
    access: Access::Open,
    arity: -2,
    subcommands: &[],
    run: auth,
};

/// `AUTH password` (the user `default`) or `AUTH user password`.
fn auth(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let logged_in = match args {
        [_, password] => log_in(cx, DEFAULT_USER.as_bytes(), password, true),
        [_, user, password] => log_in(cx, user, password, false),
        _ => return cx.reply.error(ERR_SYNTAX),
    };
    if logged_in {
        cx.reply.ok();
    }
}

/// Redis's reply to a wrong user or password (one answer for both).
pub(crate) const WRONGPASS: &[u8] =
    b"WRONGPASS invalid username-password pair or user is disabled.";

/// Logs the connection in as `user`, or answers why not (`AUTH`, `HELLO
/// ... AUTH`); returns whether it did. With authentication off, as a Redis
/// without `requirepass`: the user `default` is accepted whatever the
/// password, except in the one-argument form, which Redis refuses.
fn log_in(cx: &mut Cx<'_>, user: &[u8], password: &[u8], password_only: bool) -> bool {
    let auth = cx.service.auth();
    if !auth.is_enabled() {
        if password_only {
            cx.reply.error(
                b"ERR AUTH <password> called without any password configured for the default \
                  user. Are you sure your configuration is correct?",
            );
            return false;
        }
        if user == DEFAULT_USER.as_bytes() {
            return true;
        }
        cx.reply.error(WRONGPASS);
        return false;
    }
    // A name that is not UTF-8 matches nobody, and fails like any other.
    let user = String::from_utf8_lossy(user);
    match auth.login(&mut cx.session.login, &user, password, Instant::now()) {
        Ok(()) => true,
        Err(AuthError::WrongPassword) => {
            cx.reply.error(WRONGPASS);
            false
        }
        Err(AuthError::TooManyAttempts { .. }) => {
            cx.reply.error(b"ERR too many failed AUTH attempts");
            false
        }
    }
}

pub(crate) const HELLO: Command = Command {
    name: "hello",
    access: Access::Open,
    arity: -1,
    subcommands: &[],
    run: hello,
};

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches the protocol
/// and answers, as a map in the new protocol, who we are.
fn hello(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let mut version = None;
    let mut next = 1;
    if let Some(v) = args.get(1) {
        match parse_i64(v) {
            Some(2) => version = Some(Version::Resp2),
            Some(3) => version = Some(Version::Resp3),
            Some(_) => return cx.reply.error(b"NOPROTO unsupported protocol version"),
            None => {
                return cx
                    .reply
                    .error(b"ERR Protocol version is not an integer or out of range")
            }
        }
        next = 2;
    }
    let mut user = None;
    let mut name = None;
    let mut j = next;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = args[j];
        if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            user = Some((args[j + 1], args[j + 2]));
            j += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            name = Some(args[j + 1]);
            j += 2;
        } else {
            let mut m = b"ERR Syntax error in HELLO option '".to_vec();
            m.extend_from_slice(opt);
            m.push(b'\'');
            return cx.reply.error(&m);
        }
    }
    if let Some((user, password)) = user {
        if !log_in(cx, user, password, false) {
            return;
        }
    }
    if cx
        .session
        .login
        .check(cx.service.auth(), Access::Read)
        .is_err()
    {
        return cx.reply.error(
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise the \
              HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
              select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = name {
        if let Err(e) = check_name(name) {
            return cx.reply.error(e);
        }
        cx.session.name = (!name.is_empty()).then(|| name.to_vec());
        cx.session.names_changed();
    }
    if let Some(v) = version {
        cx.session.protocol = v;
        if let Some(e) = cx.session.entry() {
            e.set_resp(v.number());
        }
        // The reply is in the protocol just chosen.
        cx.reply.set_version(v);
    }
    let reply = &mut cx.reply;
    reply.map(7);
    reply.bulk(b"server");
    reply.bulk(b"redis");
    reply.bulk(b"version");
    reply.bulk(super::server::REDIS_VERSION.as_bytes());
    reply.bulk(b"proto");
    reply.integer(cx.session.protocol.number());
    reply.bulk(b"id");
    reply.integer(i64::try_from(cx.session.id).unwrap_or(i64::MAX));
    reply.bulk(b"mode");
    reply.bulk(b"standalone");
    reply.bulk(b"role");
    reply.bulk(b"master");
    reply.bulk(b"modules");
    reply.array(0);
}

const ERR_BAD_NAME: &[u8] =
    b"ERR Client names cannot contain spaces, newlines or special characters.";

/// The longest client name or library attribute kept. Redis keeps any; here
/// each connection holds up to three of them twice (its session and the
/// client list), so that 10 000 connections cannot hold gigabytes of names.
pub const MAX_CLIENT_NAME: usize = 512;

const ERR_LONG_NAME: &[u8] = b"ERR Client names and library attributes are limited to 512 bytes.";

/// Redis's rule for client names and library attributes: printable ASCII
/// without blanks (`!` to `~`); and at most [`MAX_CLIENT_NAME`] bytes.
/// The error to answer otherwise.
fn check_name(name: &[u8]) -> Result<(), &'static [u8]> {
    if name.len() > MAX_CLIENT_NAME {
        Err(ERR_LONG_NAME)
    } else if !name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Err(ERR_BAD_NAME)
    } else {
        Ok(())
    }
}

pub(crate) const CLIENT: Command = Command {
    name: "client",
    access: Access::Read,
    arity: -2,
    subcommands: CLIENT_SUBCOMMANDS,
    run: |cx, _| wrong_arity(&mut cx.reply, "client"),
};

const CLIENT_SUBCOMMANDS: &[Command] = &[
    Command {
        name: "client|setname",
        access: Access::Read,
        arity: 3,
        subcommands: &[],
        run: client_setname,
    },
    Command {
        name: "client|getname",
        access: Access::Read,
        arity: 2,
        subcommands: &[],
        run: |cx, _| match cx.session.name.clone() {
            Some(name) => cx.reply.bulk(&name),
            None => cx.reply.null(),
        },
    },
    Command {
        name: "client|id",
        access: Access::Read,
        arity: 2,
        subcommands: &[],
        run: |cx, _| {
            let id = i64::try_from(cx.session.id).unwrap_or(i64::MAX);
            cx.reply.integer(id);
        },
    },
    Command {
        name: "client|setinfo",
        access: Access::Read,
        arity: 4,
        subcommands: &[],
        run: client_setinfo,
    },
    command("client|info", Access::Read, 2, |cx, _| {
        let now = cx.service.cache().coarse_seconds();
        let mut line = match cx.session.entry() {
            Some(e) => e.line(now, dirty_cas(cx)),
            None => Vec::new(),
        };
        line.push(b'\n');
        cx.reply.verbatim(&line);
    }),
    command("client|list", Access::Admin, -2, client_list),
    command("client|kill", Access::Admin, -3, client_kill),
    command("client|help", Access::Read, 2, |cx, args| {
        help(cx, args[0], CLIENT_HELP)
    }),
];

const CLIENT_HELP: &[&str] = &[
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * ID id [id ...]",
    "      Return information about client connections with the specified IDs.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client library name or version.",
];

/// Whether this session's watched keys changed (`d` in the flags).
fn dirty_cas(cx: &Cx<'_>) -> bool {
    cx.session.watch.as_ref().is_some_and(|w| w.is_dirty())
}

/// `CLIENT LIST [TYPE normal] [ID id ...]`: one line per client, as a
/// bulk string (verbatim in RESP3).
fn client_list(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let mut ids: Option<Vec<u64>> = None;
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - j - 1;
        if args[j].eq_ignore_ascii_case(b"type") && more >= 1 {
            let t = args[j + 1].to_ascii_lowercase();
            if !matches!(
                t.as_slice(),
                b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
            ) {
                let mut m = b"ERR Unknown client type '".to_vec();
                m.extend_from_slice(args[j + 1]);
                m.push(b'\'');
                return cx.reply.error(&m);
            }
            if t != b"normal" {
                ids = Some(Vec::new());
            }
            j += 2;
        } else if args[j].eq_ignore_ascii_case(b"id") && more >= 1 {
            let mut list = ids.take().unwrap_or_default();
            for a in &args[j + 1..] {
                match reactor_rpc_protocol::resp::parse_i64(a) {
                    Some(n) if n > 0 => list.push(n.unsigned_abs()),
                    _ => return cx.reply.error(b"ERR Invalid client ID"),
                }
            }
            ids = Some(list);
            j = args.len();
        } else {
            return cx.reply.error(ERR_SYNTAX);
        }
    }
    let now = cx.service.cache().coarse_seconds();
    let own = cx.session.id;
    let own_dirty = dirty_cas(cx);
    let mut text = Vec::new();
    for e in cx.service.clients().all() {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&e.id)) {
            continue;
        }
        text.extend_from_slice(&e.line(now, e.id == own && own_dirty));
        text.push(b'\n');
    }
    cx.reply.verbatim(&text);
}

/// `CLIENT KILL addr` (old form: `+OK` or `No such client`) and `CLIENT
/// KILL [ID id] [ADDR addr] [LADDR addr] [SKIPME yes|no]` (the number
/// killed), as Redis 7.0: the own connection is skipped unless `SKIPME no`
/// (or the old form), and then closes after the reply.
fn client_kill(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let mut addr: Option<&[u8]> = None;
    let mut laddr: Option<&[u8]> = None;
    let mut id: Option<u64> = None;
    let mut skipme = true;
    if args.len() == 3 {
        addr = Some(args[2]);
        skipme = false;
    } else {
        let mut i = 2;
        while i < args.len() {
            let more = args.len() > i + 1;
            let opt = args[i];
            if opt.eq_ignore_ascii_case(b"id") && more {
                match reactor_rpc_protocol::resp::parse_i64(args[i + 1]) {
                    Some(n) if n >= 1 => id = Some(n.unsigned_abs()),
                    _ => return cx.reply.error(b"ERR client-id should be greater than 0"),
                }
            } else if opt.eq_ignore_ascii_case(b"type") && more {
                let t = args[i + 1].to_ascii_lowercase();
                if !matches!(
                    t.as_slice(),
                    b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
                ) {
                    let mut m = b"ERR Unknown client type '".to_vec();
                    m.extend_from_slice(args[i + 1]);
                    m.push(b'\'');
                    return cx.reply.error(&m);
                }
                if t != b"normal" {
                    id = Some(0); // matches nobody
                }
            } else if opt.eq_ignore_ascii_case(b"addr") && more {
                addr = Some(args[i + 1]);
            } else if opt.eq_ignore_ascii_case(b"laddr") && more {
                laddr = Some(args[i + 1]);
            } else if opt.eq_ignore_ascii_case(b"skipme") && more {
                if args[i + 1].eq_ignore_ascii_case(b"yes") {
                    skipme = true;
                } else if args[i + 1].eq_ignore_ascii_case(b"no") {
                    skipme = false;
                } else {
                    return cx.reply.error(ERR_SYNTAX);
                }
            } else {
                return cx.reply.error(ERR_SYNTAX);
            }
            i += 2;
        }
    }
    let own = cx.session.id;
    let mut killed = 0;
    let mut close_self = false;
    for e in cx.service.clients().all() {
        if addr.is_some_and(|a| a != e.addr.to_string().as_bytes())
            || laddr.is_some_and(|a| a != e.laddr.to_string().as_bytes())
            || id.is_some_and(|id| id != e.id)
            || (e.id == own && skipme)
        {
            continue;
        }
        if e.id == own {
            close_self = true;
        } else {
            e.kill();
        }
        killed += 1;
    }
    if args.len() == 3 {
        if killed == 0 {
            cx.reply.error(b"ERR No such client");
        } else {
            cx.reply.ok();
        }
    } else {
        cx.reply.integer(killed);
    }
    if close_self {
        cx.close = true;
    }
}

fn client_setname(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let name = args[2];
    if let Err(e) = check_name(name) {
        return cx.reply.error(e);
    }
    cx.session.name = (!name.is_empty()).then(|| name.to_vec());
    cx.session.names_changed();
    cx.reply.ok();
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value` (Redis 7.2; clients send it on connect).
fn client_setinfo(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let (attr, value) = (args[2], args[3]);
    let lib_name = attr.eq_ignore_ascii_case(b"lib-name");
    if !lib_name && !attr.eq_ignore_ascii_case(b"lib-ver") {
        let mut m = b"ERR Unrecognized option '".to_vec();
        m.extend_from_slice(attr);
        m.push(b'\'');
        return cx.reply.error(&m);
    }
    if let Err(e) = check_name(value) {
        if e == ERR_LONG_NAME {
            return cx.reply.error(e);
        }
        let mut m = b"ERR ".to_vec();
        m.extend_from_slice(attr);
        m.extend_from_slice(b" cannot contain spaces, newlines or special characters.");
        return cx.reply.error(&m);
    }
    let value = (!value.is_empty()).then(|| value.to_vec());
    if lib_name {
        cx.session.lib_name = value;
    } else {
        cx.session.lib_ver = value;
    }
    cx.session.names_changed();
    cx.reply.ok();
}

pub(crate) const ACL: Command = Command {
    name: "acl",
    access: Access::Read,
    arity: -2,
    subcommands: ACL_SUBCOMMANDS,
    run: |cx, _| wrong_arity(&mut cx.reply, "acl"),
};

/// Only `WHOAMI` (and `HELP`): users come from the users file, not from
/// `ACL SETUSER`, and there are no per-key rules to list.
const ACL_SUBCOMMANDS: &[Command] = &[
    command("acl|whoami", Access::Read, 2, |cx, _| {
        let name = cx.session.login.name().to_owned();
        cx.reply.bulk(name.as_bytes());
    }),
    command("acl|help", Access::Read, 2, |cx, args| {
        help(cx, args[0], ACL_HELP)
    }),
];

const ACL_HELP: &[&str] = &["WHOAMI", "    Return the current connection username."];
