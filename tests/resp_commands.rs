//! Every Redis command, reply type and error text we promise, driven through
//! [`resp::process`] in-process (it is pure: no sockets), in RESP2
//! and RESP3 sessions; plus pipelined and split input, protocol errors, QUIT,
//! backpressure, request counting, and the keyspace shared with the JSON
//! protocol.

use reactor_rpc::protocol::frame;
use reactor_rpc::session::resp::{process, RespSession as Connection};
use reactor_rpc::session::{CloseReason, Options, Progress, Stop};
use reactor_rpc::Service;

const OPTIONS: Options = Options {
    max_frame: 1 << 20,
    offload: false,
    max_output: usize::MAX,
    max_reply: reactor_rpc::session::DEFAULT_MAX_REPLY,
    max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
};

/// One decoded reply, keeping the RESP type apart.
#[derive(Debug, Clone, PartialEq)]
enum R {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1` (RESP2 null bulk).
    NullBulk,
    /// `_` (RESP3 null).
    Null,
    Array(Vec<R>),
    Map(Vec<(R, R)>),
    Verbatim(String),
}

fn bulk(s: &str) -> R {
    R::Bulk(s.as_bytes().to_vec())
}

fn ok() -> R {
    R::Simple("OK".into())
}

fn err(s: &str) -> R {
    R::Error(s.into())
}

/// Decodes one reply at the front of `b`: the reply and its length.
fn decode(b: &[u8]) -> Option<(R, usize)> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[1..line_end]).ok()?.to_owned();
    let mut at = line_end + 2;
    let reply = match b[0] {
        b'+' => R::Simple(line),
        b'-' => R::Error(line),
        b':' => R::Int(line.parse().ok()?),
        b'_' => R::Null,
        b'$' if line == "-1" => R::NullBulk,
        b'$' | b'=' => {
            let len: usize = line.parse().ok()?;
            let body = b.get(at..at + len)?.to_vec();
            assert_eq!(b.get(at + len..at + len + 2)?, b"\r\n");
            at += len + 2;
            if b[0] == b'=' {
                assert_eq!(&body[..4], b"txt:");
                R::Verbatim(String::from_utf8(body[4..].to_vec()).unwrap())
            } else {
                R::Bulk(body)
            }
        }
        b'*' | b'%' | b'~' => {
            let n: usize = line.parse().ok()?;
            let mut items = Vec::new();
            for _ in 0..n * if b[0] == b'%' { 2 } else { 1 } {
                let (item, len) = decode(&b[at..])?;
                items.push(item);
                at += len;
            }
            if b[0] == b'%' {
                let mut pairs = Vec::new();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                R::Map(pairs)
            } else {
                R::Array(items)
            }
        }
        other => panic!("unknown reply type {:?}", other as char),
    };
    Some((reply, at))
}

/// Every reply in `out`; panics on trailing bytes.
fn decode_all(mut out: &[u8]) -> Vec<R> {
    let mut replies = Vec::new();
    while !out.is_empty() {
        let (r, n) = decode(out).unwrap_or_else(|| panic!("partial reply: {out:?}"));
        replies.push(r);
        out = &out[n..];
    }
    replies
}

/// A multibulk command.
fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut b = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        b.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        b.extend_from_slice(a);
        b.extend_from_slice(b"\r\n");
    }
    b
}

/// One client on a service of its own (or a shared one).
struct Client<'s> {
    service: &'s Service,
    conn: Connection,
}

impl<'s> Client<'s> {
    fn new(service: &'s Service) -> Client<'s> {
        Client {
            service,
            conn: Connection::new(6379),
        }
    }

    /// A client whose id is fixed, so its output can be compared with another's.
    fn with_id(service: &'s Service, id: u64) -> Client<'s> {
        let mut c = Client::new(service);
        c.conn.session_mut().expect("no job holds it").id = id;
        c
    }

    /// Sends raw bytes (which must end on a command boundary): the output and
    /// what `process` said.
    fn raw(&mut self, input: &[u8]) -> (Vec<u8>, Progress) {
        let mut out = Vec::new();
        let p = process(self.service, &mut self.conn, input, &mut out, OPTIONS);
        (out, p)
    }

    /// Runs one command (words split on spaces) and returns its one reply.
    fn run(&mut self, line: &str) -> R {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.call(&args)
    }

    fn call(&mut self, args: &[&[u8]]) -> R {
        let input = cmd(args);
        let (out, p) = self.raw(&input);
        assert_eq!(p.consumed, input.len(), "{args:?}");
        assert_eq!(p.answered, 1);
        let mut replies = decode_all(&out);
        assert_eq!(replies.len(), 1, "{args:?}: {replies:?}");
        replies.pop().unwrap()
    }

    fn resp3(service: &'s Service) -> Client<'s> {
        let mut c = Client::new(service);
        assert!(matches!(c.run("HELLO 3"), R::Map(_)));
        c
    }
}

fn int(r: R) -> i64 {
    match r {
        R::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

#[test]
fn ping_and_echo() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(c.run("PING"), R::Simple("PONG".into()));
    assert_eq!(c.run("ping hello"), bulk("hello"));
    assert_eq!(
        c.run("PING a b"),
        err("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(
        c.call(&[b"ECHO", b"a\r\nb\0"]),
        R::Bulk(b"a\r\nb\0".to_vec())
    );
    assert_eq!(
        c.run("echo"),
        err("ERR wrong number of arguments for 'echo' command")
    );
}

#[test]
fn get_set_in_both_protocols() {
    let s = Service::new();
    let mut c2 = Client::new(&s);
    let mut c3 = Client::resp3(&s);
    assert_eq!(c2.run("GET k"), R::NullBulk);
    assert_eq!(c3.run("GET k"), R::Null);
    assert_eq!(c2.call(&[b"SET", b"k", b"\x00\xff bin"]), ok());
    assert_eq!(c3.run("GET k"), R::Bulk(b"\x00\xff bin".to_vec()));
    assert_eq!(c2.call(&[b"SET", b"k", b""]), ok());
    assert_eq!(c2.run("GET k"), bulk(""));
    assert_eq!(
        c2.run("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c2.run("SET k"),
        err("ERR wrong number of arguments for 'set' command")
    );
}

#[test]
fn set_options() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(c.run("SET k 1 XX"), R::NullBulk);
    assert_eq!(c.run("GET k"), R::NullBulk);
    assert_eq!(c.run("SET k 1 NX"), ok());
    assert_eq!(c.run("SET k 2 nx"), R::NullBulk);
    assert_eq!(c.run("GET k"), bulk("1"));
    assert_eq!(c.run("SET k 3 XX"), ok());
    assert_eq!(c.run("GET k"), bulk("3"));
    let mut c3 = Client::resp3(&s);
    assert_eq!(c3.run("SET k 4 NX"), R::Null);

    assert_eq!(c.run("SET k v EX 100"), ok());
    assert_eq!(int(c.run("TTL k")), 100);
    assert_eq!(c.run("SET k v2 KEEPTTL"), ok());
    assert_eq!(int(c.run("TTL k")), 100);
    assert_eq!(c.run("GET k"), bulk("v2"));
    assert_eq!(c.run("SET k v3"), ok());
    assert_eq!(int(c.run("TTL k")), -1, "a plain SET clears the TTL");
    assert_eq!(c.run("SET k v px 1500"), ok());
    let pttl = int(c.run("PTTL k"));
    assert!((1400..=1500).contains(&pttl), "{pttl}");
    assert_eq!(c.run("SET k v EX 1 EX 200"), ok(), "the last EX wins");
    assert_eq!(int(c.run("TTL k")), 200);

    for bad in [
        "SET k v NX XX",
        "SET k v XX NX",
        "SET k v EX 1 PX 1",
        "SET k v EX 1 KEEPTTL",
        "SET k v KEEPTTL PX 1",
        "SET k v EX",
        "SET k v FOO",
        "SET k v KEEPTTL EXAT 1",
        "SET k v PXAT 1 EX 1",
    ] {
        assert_eq!(c.run(bad), err("ERR syntax error"), "{bad}");
    }
    for bad in [
        "SET k v EX 0",
        "SET k v PX -5",
        "SET k v EX 9223372036854775807",
    ] {
        assert_eq!(
            c.run(bad),
            err("ERR invalid expire time in 'set' command"),
            "{bad}"
        );
    }
    assert_eq!(
        c.run("SET k v PX 9223372036854775807"),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        c.run("SET k v EX 1.5"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.run("GET k"), bulk("v"), "failed SETs change nothing");
}

#[test]
fn del_and_exists_count_keys() {
    let s = Service::new();
    let mut c = Client::new(&s);
    c.run("SET a 1");
    c.run("SET b 2");
    assert_eq!(int(c.run("EXISTS a b c a")), 3);
    assert_eq!(int(c.run("DEL a c")), 1);
    assert_eq!(int(c.run("DEL a b")), 1);
    assert_eq!(int(c.run("EXISTS a b")), 0);
    assert_eq!(
        c.run("DEL"),
        err("ERR wrong number of arguments for 'del' command")
    );
    assert_eq!(
        c.run("EXISTS"),
        err("ERR wrong number of arguments for 'exists' command")
    );
}

#[test]
fn incr_family() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(int(c.run("INCR n")), 1);
    assert_eq!(int(c.run("INCRBY n 10")), 11);
    assert_eq!(int(c.run("DECR n")), 10);
    assert_eq!(int(c.run("DECRBY n 15")), -5);
    assert_eq!(c.run("GET n"), bulk("-5"));
    c.run("SET n 41");
    assert_eq!(int(c.run("incr n")), 42);

    let not_int = err("ERR value is not an integer or out of range");
    c.run("SET s abc");
    assert_eq!(c.run("INCR s"), not_int);
    for v in [" 1", "1 ", "+1", "01", "1.0", ""] {
        c.call(&[b"SET", b"s", v.as_bytes()]);
        assert_eq!(c.run("INCR s"), not_int, "{v:?}");
    }
    c.run("SET big 99999999999999999999");
    assert_eq!(c.run("INCR big"), not_int);
    assert_eq!(c.run("INCRBY n x"), not_int);
    assert_eq!(c.run("INCRBY n 1.5"), not_int);
    assert_eq!(c.run("DECRBY n 9223372036854775808"), not_int);

    c.run("SET m 9223372036854775807");
    assert_eq!(
        c.run("INCR m"),
        err("ERR increment or decrement would overflow")
    );
    c.run("SET m -9223372036854775808");
    assert_eq!(
        c.run("DECR m"),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(
        c.run("DECRBY m -9223372036854775808"),
        err("ERR decrement would overflow")
    );
    assert_eq!(
        c.run("INCR"),
        err("ERR wrong number of arguments for 'incr' command")
    );
    assert_eq!(
        c.run("INCRBY n"),
        err("ERR wrong number of arguments for 'incrby' command")
    );
}

#[test]
fn expiry_commands() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(int(c.run("EXPIRE nope 10")), 0);
    assert_eq!(int(c.run("TTL nope")), -2);
    assert_eq!(int(c.run("PTTL nope")), -2);
    assert_eq!(int(c.run("PERSIST nope")), 0);

    c.run("SET k v");
    assert_eq!(int(c.run("TTL k")), -1);
    assert_eq!(int(c.run("PTTL k")), -1);
    assert_eq!(int(c.run("PERSIST k")), 0);
    assert_eq!(int(c.run("EXPIRE k 100")), 1);
    assert_eq!(int(c.run("TTL k")), 100);
    let pttl = int(c.run("PTTL k"));
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    assert_eq!(int(c.run("PEXPIRE k 2500")), 1);
    assert_eq!(int(c.run("TTL k")), 3, "TTL rounds to the nearest second");
    assert_eq!(int(c.run("PERSIST k")), 1);
    assert_eq!(int(c.run("TTL k")), -1);

    // Conditions.
    assert_eq!(int(c.run("EXPIRE k 100 XX")), 0, "XX: no TTL yet");
    assert_eq!(int(c.run("EXPIRE k 100 GT")), 0, "GT: no TTL is infinite");
    assert_eq!(int(c.run("EXPIRE k 100 NX")), 1);
    assert_eq!(int(c.run("EXPIRE k 200 NX")), 0);
    assert_eq!(int(c.run("EXPIRE k 50 GT")), 0);
    assert_eq!(int(c.run("EXPIRE k 200 gt")), 1);
    assert_eq!(int(c.run("EXPIRE k 300 LT")), 0);
    assert_eq!(int(c.run("EXPIRE k 150 LT")), 1);
    assert_eq!(int(c.run("TTL k")), 150);
    assert_eq!(int(c.run("EXPIRE k 150 XX")), 1);
    assert_eq!(
        c.run("EXPIRE k 1 NX XX"),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        c.run("EXPIRE k 1 GT LT"),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(c.run("EXPIRE k 1 FOO"), err("ERR Unsupported option FOO"));

    assert_eq!(
        c.run("EXPIRE k abc"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.run("EXPIRE k 9223372036854775807"),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        c.run("PEXPIRE k 9223372036854775807"),
        err("ERR invalid expire time in 'pexpire' command")
    );
    assert_eq!(
        c.run("TTL"),
        err("ERR wrong number of arguments for 'ttl' command")
    );
    assert_eq!(
        c.run("EXPIRE k"),
        err("ERR wrong number of arguments for 'expire' command")
    );

    // A time in the past deletes the key.
    assert_eq!(int(c.run("EXPIRE k -1")), 1);
    assert_eq!(c.run("GET k"), R::NullBulk);
    assert_eq!(int(c.run("EXPIRE k -1")), 0);
    c.run("SET k v");
    assert_eq!(int(c.run("PEXPIRE k 0")), 1);
    assert_eq!(int(c.run("EXISTS k")), 0);

    // And a short one expires.
    c.run("SET k v PX 30");
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(c.run("GET k"), R::NullBulk);
    assert_eq!(int(c.run("TTL k")), -2);
}

#[test]
fn dbsize_and_flushall() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(int(c.run("DBSIZE")), 0);
    c.run("SET a 1");
    c.run("SET b 1");
    assert_eq!(int(c.run("dbsize")), 2);
    assert_eq!(c.run("FLUSHALL"), ok());
    assert_eq!(int(c.run("DBSIZE")), 0);
    c.run("SET a 1");
    assert_eq!(c.run("FLUSHALL ASYNC"), ok());
    assert_eq!(c.run("FLUSHALL sync"), ok());
    assert_eq!(int(c.run("DBSIZE")), 0);
    assert_eq!(c.run("FLUSHALL NOW"), err("ERR syntax error"));
    assert_eq!(c.run("FLUSHALL SYNC SYNC"), err("ERR syntax error"));
    assert_eq!(
        c.run("DBSIZE x"),
        err("ERR wrong number of arguments for 'dbsize' command")
    );
}

/// `field:value` lines of an INFO text, by field.
fn info_fields(text: &str) -> std::collections::HashMap<String, String> {
    text.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn info_text(r: R) -> String {
    match r {
        R::Bulk(b) => String::from_utf8(b).unwrap(),
        R::Verbatim(s) => s,
        other => panic!("INFO replied {other:?}"),
    }
}

#[test]
fn info_sections_and_fields() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let text = info_text(c.run("INFO"));
    assert!(
        text.starts_with("# Server\r\nredis_version:7.0.0\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n"));
    for header in ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"] {
        assert!(
            text.contains(&format!("{header}\r\n")),
            "{header} in {text}"
        );
    }
    assert!(
        text.contains("\r\n\r\n# Clients\r\n"),
        "a blank line between sections"
    );
    assert!(!text.contains("db0:"), "an empty keyspace has no db0 line");
    let f = info_fields(&text);
    for field in [
        "redis_version",
        "reactor_rpc_version",
        "process_id",
        "tcp_port",
        "uptime_in_seconds",
        "connected_clients",
        "used_memory",
        "used_memory_human",
        "maxmemory",
        "maxmemory_policy",
        "total_commands_processed",
        "total_connections_received",
        "keyspace_hits",
        "keyspace_misses",
        "expired_keys",
        "evicted_keys",
    ] {
        assert!(f.contains_key(field), "{field} missing from {text}");
    }
    assert_eq!(f["tcp_port"], "6379");
    assert_eq!(f["process_id"], std::process::id().to_string());
    assert_eq!(f["reactor_rpc_version"], env!("CARGO_PKG_VERSION"));

    c.run("SET a 1");
    c.run("SET b 1 EX 100");
    c.run("GET a");
    c.run("GET nope");
    let text = info_text(c.run("INFO keyspace"));
    assert_eq!(text, "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n");
    let f = info_fields(&info_text(c.run("info STATS")));
    assert!(f["keyspace_hits"].parse::<u64>().unwrap() >= 1);
    assert!(f["keyspace_misses"].parse::<u64>().unwrap() >= 1);
    let before: u64 = f["total_commands_processed"].parse().unwrap();
    let f = info_fields(&info_text(c.run("INFO stats")));
    assert_eq!(
        f["total_commands_processed"].parse::<u64>().unwrap(),
        before + 1
    );

    let two = info_text(c.run("INFO server memory"));
    assert!(two.starts_with("# Server\r\n") && two.contains("\r\n\r\n# Memory\r\n"));
    assert!(!two.contains("# Clients"));
    assert_eq!(info_text(c.run("INFO nosuchsection")), "");
    let names = |text: String| {
        let mut k: Vec<String> = info_fields(&text).into_keys().collect();
        k.sort();
        k
    };
    assert_eq!(
        names(info_text(c.run("INFO all"))),
        names(info_text(c.run("INFO default")))
    );
    assert_eq!(
        names(info_text(c.run("INFO everything"))),
        names(info_text(c.run("INFO")))
    );

    // RESP3: a verbatim string.
    let mut c3 = Client::resp3(&s);
    let text = match c3.run("INFO server") {
        R::Verbatim(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(text.starts_with("# Server\r\n"));
}

#[test]
fn command_introspection() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let count = int(c.run("COMMAND COUNT"));
    assert!(count >= 20);
    match c.run("COMMAND") {
        R::Array(entries) => {
            assert_eq!(entries.len() as i64, count);
            // Redis's own description: name, arity, flags, first/last key,
            // step, ACL categories, tips, key specs, subcommands.
            let get = entries
                .iter()
                .find_map(|e| match e {
                    R::Array(v) if v[0] == bulk("get") => Some(v.clone()),
                    _ => None,
                })
                .expect("GET is described");
            assert_eq!(get.len(), 10);
            assert_eq!(get[1], R::Int(2));
            assert_eq!(
                get[2],
                R::Array(vec![R::Simple("readonly".into()), R::Simple("fast".into())])
            );
            assert_eq!(&get[3..6], &[R::Int(1), R::Int(1), R::Int(1)]);
            assert_eq!(
                get[6],
                R::Array(vec![
                    R::Simple("@read".into()),
                    R::Simple("@string".into()),
                    R::Simple("@fast".into())
                ])
            );
        }
        other => panic!("{other:?}"),
    }
    match c.run("COMMAND DOCS") {
        R::Array(v) => assert_eq!(v.len() as i64, 2 * count),
        other => panic!("{other:?}"),
    }
    match c.run("COMMAND DOCS get") {
        R::Array(v) => {
            assert_eq!(v[0], bulk("get"));
            assert!(matches!(&v[1], R::Array(d) if d[0] == bulk("summary")));
        }
        other => panic!("{other:?}"),
    }
    match c.run("COMMAND INFO get nosuch") {
        R::Array(v) => {
            assert_eq!(v.len(), 2);
            assert_eq!(v[1], R::NullBulk);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.run("COMMAND nope"),
        err("ERR unknown subcommand 'nope'. Try COMMAND HELP.")
    );
    assert_eq!(
        c.run("COMMAND COUNT x"),
        err("ERR wrong number of arguments for 'command|count' command")
    );
    let mut c3 = Client::resp3(&s);
    assert!(matches!(c3.run("COMMAND DOCS"), R::Map(m) if m.len() as i64 == count));
}

#[test]
fn config_get_for_tools() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(
        c.run("CONFIG GET save"),
        R::Array(vec![bulk("save"), bulk("")])
    );
    assert_eq!(
        c.run("CONFIG GET appendonly"),
        R::Array(vec![bulk("appendonly"), bulk("no")])
    );
    assert_eq!(c.run("CONFIG GET nosuch"), R::Array(vec![]));
    let mut c3 = Client::resp3(&s);
    assert_eq!(
        c3.run("CONFIG GET SAVE"),
        // The name as asked, as Redis answers an exact (non-pattern) name.
        R::Map(vec![(bulk("SAVE"), bulk(""))])
    );
    assert_eq!(
        c.run("CONFIG SET save x"),
        err("ERR Unknown option or number of arguments for CONFIG SET - 'save'")
    );
    assert_eq!(
        c.run("CONFIG GET"),
        err("ERR wrong number of arguments for 'config|get' command")
    );
}

#[test]
fn client_subcommands() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let mut other = Client::new(&s);
    let id = int(c.run("CLIENT ID"));
    assert!(id > 0);
    assert_ne!(int(other.run("CLIENT ID")), id);
    assert_eq!(c.run("CLIENT GETNAME"), R::NullBulk);
    assert_eq!(c.run("CLIENT SETNAME worker-1"), ok());
    assert_eq!(c.run("client getname"), bulk("worker-1"));
    assert_eq!(
        c.call(&[b"CLIENT", b"SETNAME", b"a b"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(c.call(&[b"CLIENT", b"SETNAME", b""]), ok());
    assert_eq!(c.run("CLIENT GETNAME"), R::NullBulk);
    // A name is memory every connection may hold: at most 512 bytes kept.
    let long = vec![b'n'; 513];
    let too_long = err("ERR Client names and library attributes are limited to 512 bytes.");
    assert_eq!(c.call(&[b"CLIENT", b"SETNAME", &long]), too_long);
    assert_eq!(
        c.call(&[b"CLIENT", b"SETINFO", b"LIB-VER", &long]),
        too_long
    );
    assert_eq!(c.call(&[b"HELLO", b"2", b"SETNAME", &long]), too_long);
    assert_eq!(c.call(&[b"CLIENT", b"SETNAME", &long[..512]]), ok());
    assert_eq!(c.call(&[b"CLIENT", b"SETNAME", b""]), ok());
    assert_eq!(c.run("CLIENT SETINFO LIB-NAME redis-py"), ok());
    assert_eq!(c.run("CLIENT SETINFO lib-ver 8.0.0"), ok());
    assert_eq!(
        c.run("CLIENT SETINFO color red"),
        err("ERR Unrecognized option 'color'")
    );
    assert_eq!(
        c.call(&[b"CLIENT", b"SETINFO", b"lib-name", b"a\nb"]),
        err("ERR lib-name cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(
        c.run("CLIENT"),
        err("ERR wrong number of arguments for 'client' command")
    );
    assert_eq!(c.run("CLIENT KILL x"), err("ERR No such client"));
    let mut c3 = Client::resp3(&s);
    assert_eq!(c3.run("CLIENT GETNAME"), R::Null);
}

#[test]
fn select_and_auth() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(c.run("SELECT 0"), ok());
    assert_eq!(c.run("SELECT 1"), err("ERR DB index is out of range"));
    assert_eq!(c.run("SELECT -1"), err("ERR DB index is out of range"));
    assert_eq!(
        c.run("SELECT x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.run("SELECT 99999999999"),
        err("ERR value is out of range, value must between -2147483648 and 2147483647")
    );
    assert_eq!(c.run("AUTH default anything"), ok());
    assert_eq!(
        c.run("AUTH bob pw"),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        c.run("AUTH pw"),
        err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
    );
}

fn hello_map(proto: i64, id: i64) -> Vec<(R, R)> {
    vec![
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk("7.0.0")),
        (bulk("proto"), R::Int(proto)),
        (bulk("id"), R::Int(id)),
        (bulk("mode"), bulk("standalone")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), R::Array(vec![])),
    ]
}

#[test]
fn hello_switches_protocols() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let id = int(c.run("CLIENT ID"));
    // Without a version: RESP2 stays, and the map is a flat array.
    let flat: Vec<R> = hello_map(2, id)
        .into_iter()
        .flat_map(|(k, v)| [k, v])
        .collect();
    assert_eq!(c.run("HELLO"), R::Array(flat.clone()));
    assert_eq!(c.run("HELLO 2"), R::Array(flat));
    assert_eq!(c.run("HELLO 3"), R::Map(hello_map(3, id)));
    assert_eq!(c.run("GET nope"), R::Null);
    assert_eq!(
        c.run("HELLO"),
        R::Map(hello_map(3, id)),
        "HELLO alone keeps RESP3"
    );
    assert_eq!(
        c.run("SET k v"),
        ok(),
        "other replies keep their RESP2 forms"
    );
    assert_eq!(int(c.run("DEL k")), 1);
    assert_eq!(
        c.run("HELLO 2"),
        R::Array(
            hello_map(2, id)
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .collect()
        )
    );
    assert_eq!(c.run("GET nope"), R::NullBulk);

    assert_eq!(
        c.run("HELLO 4"),
        err("NOPROTO unsupported protocol version")
    );
    assert_eq!(
        c.run("HELLO 1"),
        err("NOPROTO unsupported protocol version")
    );
    assert_eq!(
        c.run("HELLO three"),
        err("ERR Protocol version is not an integer or out of range")
    );
    assert_eq!(
        c.run("HELLO 3 FOO"),
        err("ERR Syntax error in HELLO option 'FOO'")
    );
    assert_eq!(
        c.run("HELLO 3 AUTH default"),
        err("ERR Syntax error in HELLO option 'AUTH'")
    );
    assert_eq!(
        c.run("HELLO 3 AUTH bob pw"),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        c.run("GET nope"),
        R::NullBulk,
        "failed HELLOs change nothing"
    );
    assert_eq!(
        c.run("HELLO 3 AUTH default pw SETNAME app"),
        R::Map(hello_map(3, id))
    );
    assert_eq!(c.run("CLIENT GETNAME"), bulk("app"));
    assert_eq!(
        c.call(&[b"HELLO", b"3", b"SETNAME", b"a b"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
}

#[test]
fn unknown_commands_and_case() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(
        c.run("FOO a b"),
        err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        c.run("nosuch"),
        err("ERR unknown command 'nosuch', with args beginning with: ")
    );
    assert_eq!(c.run("sEt K v"), ok());
    assert_eq!(c.run("gEt K"), bulk("v"));
    assert_eq!(c.run("get k"), R::NullBulk, "keys are case-sensitive");
    assert_eq!(
        c.run("GeT"),
        err("ERR wrong number of arguments for 'get' command")
    );
}

#[test]
fn quit_replies_then_closes() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let mut input = cmd(&[b"PING"]);
    input.extend_from_slice(&cmd(&[b"QUIT"]));
    let quit_end = input.len();
    input.extend_from_slice(&cmd(&[b"SET", b"after", b"quit"]));
    let (out, p) = c.raw(&input);
    assert_eq!(decode_all(&out), [R::Simple("PONG".into()), ok()]);
    assert_eq!(
        (p.consumed, p.answered, p.stop),
        (quit_end, 2, Stop::Close(CloseReason::Bye))
    );
    assert_eq!(s.cache().len(), 0, "nothing after QUIT runs");
}

#[test]
fn protocol_errors_reply_then_close() {
    let s = Service::new();
    for (input, message) in [
        (
            &b"*1\r\n$4\r\nPING\r\n*x\r\n"[..],
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            b"*2147483648\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (b"*1\r\n$-3\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n:3\r\n", "ERR Protocol error: expected '$', got ':'"),
        (
            b"SET a \"b\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"*1\r\n$2000000\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
    ] {
        let mut c = Client::new(&s);
        let (out, p) = c.raw(input);
        let replies = decode_all(&out);
        assert_eq!(replies.last(), Some(&err(message)), "{input:?}");
        assert_eq!(p.stop, Stop::Close(CloseReason::ProtocolError));
        assert_eq!(p.answered, replies.len());
    }
    let mut c = Client::new(&s);
    let (out, p) = c.raw(&vec![b'x'; 70_000]);
    assert_eq!(
        decode_all(&out),
        [err("ERR Protocol error: too big inline request")]
    );
    assert_eq!(p.stop, Stop::Close(CloseReason::ProtocolError));
}

#[test]
fn inline_commands_work_like_multibulk() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let (out, p) =
        c.raw(b"PING\r\nset greeting \"hello world\"\nGET greeting\r\n\r\nget 'greeting'\n");
    assert_eq!(
        decode_all(&out),
        [
            R::Simple("PONG".into()),
            ok(),
            bulk("hello world"),
            bulk("hello world")
        ]
    );
    assert_eq!(p.answered, 4, "a blank line gets no reply");
    assert_eq!(p.stop, Stop::NeedMore { needed: 1 });
}

/// A script touching every reply type, pipelined.
fn script() -> Vec<u8> {
    let mut input = Vec::new();
    for line in [
        "PING",
        "SET k 10",
        "INCR k",
        "GET k",
        "GET missing",
        "DEL k missing",
        "HELLO 3",
        "GET missing",
        "CLIENT GETNAME",
        "COMMAND DOCS",
        "NOPE x",
        "EXISTS k",
        "HELLO 2",
        "GET missing",
    ] {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        input.extend_from_slice(&cmd(&args));
    }
    input.extend_from_slice(b"ECHO inline\r\n");
    input
}

#[test]
fn pipelined_input_is_answered_in_order() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let input = script();
    let before = s.requests();
    let (out, p) = c.raw(&input);
    assert_eq!(p.consumed, input.len());
    assert_eq!(p.answered, 15);
    assert_eq!(s.requests() - before, 15, "one request per command");
    let replies = decode_all(&out);
    assert_eq!(replies[0], R::Simple("PONG".into()));
    assert_eq!(replies[2], R::Int(11));
    assert_eq!(replies[3], bulk("11"));
    assert_eq!(replies[4], R::NullBulk);
    assert_eq!(replies[5], R::Int(1));
    assert_eq!(replies[7], R::Null);
    assert_eq!(replies[8], R::Null);
    assert!(matches!(&replies[9], R::Map(m) if !m.is_empty()));
    assert_eq!(
        replies[10],
        err("ERR unknown command 'NOPE', with args beginning with: 'x' ")
    );
    assert_eq!(replies[11], R::Int(0));
    assert_eq!(replies[13], R::NullBulk);
    assert_eq!(replies[14], bulk("inline"));
}

#[test]
fn split_input_gives_the_same_output() {
    let input = script();
    let whole = {
        let s = Service::new();
        Client::with_id(&s, 1).raw(&input).0
    };
    for at in 0..=input.len() {
        let s = Service::new();
        let mut c = Client::with_id(&s, 1);
        let mut out = Vec::new();
        let first = process(&s, &mut c.conn, &input[..at], &mut out, OPTIONS);
        assert!(matches!(first.stop, Stop::NeedMore { .. }));
        let rest = &input[first.consumed..];
        let second = process(&s, &mut c.conn, rest, &mut out, OPTIONS);
        assert_eq!(first.consumed + second.consumed, input.len(), "cut at {at}");
        assert_eq!(out, whole, "cut at {at}");
    }
    // One byte at a time, as a server would feed it.
    let s = Service::new();
    let mut c = Client::with_id(&s, 1);
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    for &b in &input {
        buffer.push(b);
        let p = process(&s, &mut c.conn, &buffer, &mut out, OPTIONS);
        if let Stop::NeedMore { needed } = p.stop {
            assert!(needed > buffer.len() - p.consumed);
        }
        buffer.drain(..p.consumed);
    }
    assert!(buffer.is_empty());
    assert_eq!(out, whole);
}

#[test]
fn output_full_stops_and_resumes() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let input = script();
    let opt = Options {
        max_output: 1,
        ..OPTIONS
    };
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut rounds = 0;
    loop {
        let p = process(&s, &mut c.conn, &input[consumed..], &mut out, opt);
        consumed += p.consumed;
        rounds += 1;
        match p.stop {
            Stop::OutputFull => {
                assert_eq!(p.answered, 1, "one reply per round at max_output 1");
                out.clear();
            }
            Stop::NeedMore { .. } => break,
            Stop::Close(_) | Stop::Offload { .. } => panic!("{:?}", p.stop),
        }
    }
    assert_eq!(consumed, input.len());
    assert_eq!(rounds, 16);
}

#[test]
fn empty_commands_are_skipped_without_counting() {
    let s = Service::new();
    let mut c = Client::new(&s);
    let (out, p) = c.raw(b"*0\r\n\r\n   \n*-1\r\n");
    assert!(out.is_empty());
    assert_eq!((p.consumed, p.answered), (15, 0));
    assert_eq!(s.requests(), 0);
}

/// Sends one JSON request frame and returns the response body.
fn json(s: &Service, body: &str) -> serde_json::Value {
    let mut out = Vec::new();
    s.handle(&"test", body.as_bytes(), &mut out, false);
    serde_json::from_slice(&out[frame::HEADER_LEN..]).unwrap()
}

#[test]
fn one_keyspace_for_json_and_resp() {
    let s = Service::new();
    let mut c = Client::new(&s);
    // RESP SET stores bytes: JSON reads UTF-8 as a string...
    c.run("SET r héllo");
    let v = json(&s, r#"{"in":"get","params":{"key":"r"}}"#);
    assert_eq!(v["result"], "héllo");
    // ... and refuses bytes that are not UTF-8.
    c.call(&[b"SET", b"bin", b"\xff\xfe"]);
    let v = json(&s, r#"{"in":"get","params":{"key":"bin"}}"#);
    assert_eq!(v["out"], "error", "{v}");
    assert_eq!(v["result"]["code"], "wrong_type", "{v}");

    // A JSON string reads as its content; any other JSON value as its text.
    json(
        &s,
        r#"{"in":"set","params":{"key":"js","value":"a \"q\" \u00e9"}}"#,
    );
    assert_eq!(c.run("GET js"), bulk("a \"q\" é"));
    json(
        &s,
        r#"{"in":"set","params":{"key":"jv","value":[1, {"a":null}]}}"#,
    );
    assert_eq!(c.run("GET jv"), bulk(r#"[1, {"a":null}]"#));

    // Integers are shared by INCR and incr.
    json(&s, r#"{"in":"set","params":{"key":"n","value":5}}"#);
    assert_eq!(int(c.run("INCR n")), 6);
    let v = json(&s, r#"{"in":"incr","params":{"key":"n","by":10}}"#);
    assert_eq!(v["result"], 16);
    assert_eq!(c.run("GET n"), bulk("16"));
    c.run("SET m 41");
    let v = json(&s, r#"{"in":"incr","params":{"key":"m"}}"#);
    assert_eq!(v["result"], 42);

    // Expiry and deletion are shared.
    c.run("EXPIRE n 100");
    let v = json(&s, r#"{"in":"ttl","params":{"key":"n"}}"#);
    assert!(v["result"].as_i64().unwrap() > 99_000);
    json(&s, r#"{"in":"del","params":{"key":"n"}}"#);
    assert_eq!(int(c.run("EXISTS n")), 0);
}

#[test]
fn oom_when_the_cache_cannot_evict() {
    use reactor_rpc::service::cache::{CacheConfig, EvictionPolicy};
    use reactor_rpc::Registry;
    let config = CacheConfig {
        maxmemory: 64 * 1024,
        policy: EvictionPolicy::NoEviction,
    };
    let s = Service::with_cache_config(Registry::builtin(), config);
    let mut c = Client::new(&s);
    let value = vec![b'v'; 4096];
    let mut replies = Vec::new();
    for i in 0..64 {
        let key = format!("k{i}");
        replies.push(c.call(&[b"SET", key.as_bytes(), &value]));
    }
    let oom = err("OOM command not allowed when used memory > 'maxmemory'.");
    assert!(replies.contains(&ok()));
    assert!(replies.contains(&oom), "{replies:?}");
    assert_eq!(replies.last(), Some(&oom));
    let f = info_fields(&info_text(c.run("INFO memory")));
    assert_eq!(f["maxmemory"], "65536");
    assert_eq!(f["maxmemory_human"], "64.00K");
    assert_eq!(f["maxmemory_policy"], "noeviction");
    assert_eq!(
        c.run("CONFIG GET maxmemory-policy"),
        R::Array(vec![bulk("maxmemory-policy"), bulk("noeviction")])
    );
}

#[test]
fn multi_exec_queues_then_runs_in_order() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(c.run("EXEC"), err("ERR EXEC without MULTI"));
    assert_eq!(c.run("DISCARD"), err("ERR DISCARD without MULTI"));
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(c.run("MULTI"), err("ERR MULTI calls can not be nested"));
    let queued = R::Simple("QUEUED".into());
    assert_eq!(c.run("SET k 1"), queued);
    assert_eq!(c.run("INCR k"), queued);
    assert_eq!(c.run("GET k"), queued);
    assert_eq!(c.run("GET missing"), queued);
    // Nothing ran yet: another client still sees no key.
    assert_eq!(Client::new(&s).run("GET k"), R::NullBulk);
    assert_eq!(
        c.run("EXEC"),
        R::Array(vec![ok(), R::Int(2), bulk("2"), R::NullBulk])
    );
    assert_eq!(c.run("GET k"), bulk("2"), "the transaction is over");
    // DISCARD drops what was queued.
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(c.run("SET k 99"), queued);
    assert_eq!(c.run("DISCARD"), ok());
    assert_eq!(c.run("GET k"), bulk("2"));
    // A runtime error is one reply in the array; the rest still runs.
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(c.run("SET s abc"), queued);
    assert_eq!(c.run("INCR s"), queued);
    assert_eq!(c.run("INCR k"), queued);
    assert_eq!(
        c.run("EXEC"),
        R::Array(vec![
            ok(),
            err("ERR value is not an integer or out of range"),
            R::Int(3)
        ])
    );
    // RESP3 sessions queue the same way.
    let mut c3 = Client::resp3(&s);
    assert_eq!(c3.run("MULTI"), ok());
    assert_eq!(c3.run("GET nope"), queued);
    assert_eq!(c3.run("EXEC"), R::Array(vec![R::Null]));
}

#[test]
fn a_command_refused_while_queuing_aborts_the_exec() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(c.run("SET a 1"), R::Simple("QUEUED".into()));
    assert!(
        matches!(c.run("NOSUCH x"), R::Error(e) if e.starts_with("ERR unknown command 'NOSUCH'"))
    );
    assert_eq!(
        c.run("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.run("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.run("GET a"), R::NullBulk, "nothing of it ran");
}

/// A queue is memory a client commits, bounded by bytes as Redis bounds it
/// by memory, not by a count: a transaction of 2 000 commands runs (redis-py's
/// default `pipeline()` of any length is one); past 64 MiB queued a command is
/// refused and the transaction aborts; what the queues hold is released when
/// they end.
#[test]
fn a_transaction_is_bounded_by_bytes_not_by_count() {
    let s = Service::new();
    let mut c = Client::new(&s);
    assert_eq!(c.run("MULTI"), ok());
    for _ in 0..2000 {
        assert_eq!(c.run("INCR n"), R::Simple("QUEUED".into()));
    }
    assert!(s.transactions().total() > 0);
    match c.run("EXEC") {
        R::Array(replies) => {
            assert_eq!(replies.len(), 2000);
            assert_eq!(replies[1999], R::Int(2000));
        }
        other => panic!("EXEC answered {other:?}"),
    }
    let big = "x".repeat(600 << 10);
    assert_eq!(c.run("MULTI"), ok());
    let mut refused = None;
    for i in 0..120 {
        let reply = c.run(&format!("SET a{i} {big}"));
        if reply != R::Simple("QUEUED".into()) {
            refused = Some((i, reply));
            break;
        }
    }
    let (at, reply) = refused.expect("a transaction past 64 MiB is refused");
    assert_eq!(
        reply,
        err("ERR transaction too large: more than 64 MiB of queued commands")
    );
    // 64 MiB over 600 KiB and what each SET is counted at beyond it (its
    // name, key, 3 × 48 and 64).
    assert_eq!(at, 109);
    assert_eq!(
        c.run("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    drop(c);
    assert_eq!(s.transactions().total(), 0, "released with the client");
}
