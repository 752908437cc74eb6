//! Commands about the connection itself rather than the data: PING, ECHO,
//! SELECT, HELLO (the RESP3 switch), AUTH, CLIENT and QUIT. Clients send most
//! of these on their own when they connect (redis-py 8 opens with `HELLO 3`
//! and `CLIENT SETINFO`), so they must answer exactly as Redis does.

use super::{run_subcommand, wrong_arity, Command, Cx, ERR_SYNTAX};
use crate::service::Access;
use reactor_rpc_protocol::resp::{parse_i64, Version};

pub(crate) const PING: Command = Command {
    name: "ping",
    access: Access::Open,
    arity: -1,
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
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
    flags: &["fast"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: |cx, args| cx.reply.bulk(args[1]),
};

pub(crate) const SELECT: Command = Command {
    name: "select",
    access: Access::Read,
    arity: 2,
    flags: &["loading", "stale", "fast"],
    keys: (0, 0, 0),
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
    flags: &["allow_busy", "fast", "no_auth"],
    keys: (0, 0, 0),
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
    flags: &["noscript", "loading", "stale", "fast", "no_auth"],
    keys: (0, 0, 0),
    subcommands: &[],
    run: auth,
};

/// There are no passwords: the `default` user (Redis's, with `nopass`)
/// accepts any, as a Redis without `requirepass` does.
fn auth(cx: &mut Cx<'_>, args: &[&[u8]]) {
    match args {
        [_, _] => cx.reply.error(
            b"ERR AUTH <password> called without any password configured for the default user. \
              Are you sure your configuration is correct?",
        ),
        [_, user, _] => auth_user(cx, user),
        _ => cx.reply.error(ERR_SYNTAX),
    }
}

/// Whether `user` may log in; replies with the error if not.
fn check_user(cx: &mut Cx<'_>, user: &[u8]) -> bool {
    if user == b"default" {
        return true;
    }
    cx.reply
        .error(b"WRONGPASS invalid username-password pair or user is disabled.");
    false
}

fn auth_user(cx: &mut Cx<'_>, user: &[u8]) {
    if check_user(cx, user) {
        cx.reply.ok();
    }
}

pub(crate) const HELLO: Command = Command {
    name: "hello",
    access: Access::Open,
    arity: -1,
    flags: &[
        "noscript", "loading", "stale", "fast", "no_auth", "sentinel",
    ],
    keys: (0, 0, 0),
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
            user = Some(args[j + 1]);
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
    if let Some(user) = user {
        if !check_user(cx, user) {
            return;
        }
    }
    if let Some(name) = name {
        if !valid_name(name) {
            return cx.reply.error(ERR_BAD_NAME);
        }
        cx.session.name = (!name.is_empty()).then(|| name.to_vec());
    }
    if let Some(v) = version {
        cx.session.protocol = v;
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

/// Redis's rule for client names and library attributes: printable ASCII
/// without blanks (`!` to `~`).
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

pub(crate) const CLIENT: Command = Command {
    name: "client",
    access: Access::Read,
    arity: -2,
    flags: &["sentinel"],
    keys: (0, 0, 0),
    subcommands: CLIENT_SUBCOMMANDS,
    run: |cx, args| run_subcommand(cx, "client", CLIENT_SUBCOMMANDS, args),
};

const CLIENT_SUBCOMMANDS: &[Command] = &[
    Command {
        name: "client|setname",
        access: Access::Read,
        arity: 3,
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
        subcommands: &[],
        run: client_setname,
    },
    Command {
        name: "client|getname",
        access: Access::Read,
        arity: 2,
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
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
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
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
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
        subcommands: &[],
        run: client_setinfo,
    },
];

fn client_setname(cx: &mut Cx<'_>, args: &[&[u8]]) {
    let name = args[2];
    if !valid_name(name) {
        return cx.reply.error(ERR_BAD_NAME);
    }
    cx.session.name = (!name.is_empty()).then(|| name.to_vec());
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
    if !valid_name(value) {
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
    cx.reply.ok();
}
