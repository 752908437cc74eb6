//! Reply for reply against a live `redis-server` 7.0: the same command
//! scripts go to Redis and to our `--resp-addr`, in every server model, in
//! RESP2 and RESP3, and the raw reply bytes must be equal.
//!
//! Only what must differ is normalised: replies that carry times, ids,
//! our own figures or server-wide lists (TIME, CLIENT ID / INFO / LIST,
//! INFO, HELLO, MEMORY USAGE, RANDOMKEY) are compared by reply type; TTLs
//! within a second; replies whose order is a hash table's (KEYS, CONFIG GET
//! with a pattern) as sets; SCAN as the set of keys of a full iteration.
//! Everything else, errors included, byte for byte.
//!
//! `redis-server` must be installed (`.ci/run` installs it): this suite
//! fails, never skips, without it. Redis listens on a Unix socket only
//! (`--port 0`), so no TCP port can race.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::redis::{compare, scan_all, start_ours, Conn, Mode, Redis};
use crate::support::Model;

/// A step of a script.
enum Step {
    /// A command on the main connection.
    Call(Vec<Vec<u8>>, Mode),
    /// A command on the second connection (another client).
    Other(Vec<Vec<u8>>),
    /// A full SCAN iteration with these options: the sets of keys must match.
    ScanAll(Vec<Vec<u8>>),
}

fn words(s: &str) -> Vec<Vec<u8>> {
    s.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

fn c(s: &str) -> Step {
    Step::Call(words(s), Mode::Exact)
}

fn m(s: &str, mode: Mode) -> Step {
    Step::Call(words(s), mode)
}

fn raw(args: &[&[u8]]) -> Step {
    Step::Call(args.iter().map(|a| a.to_vec()).collect(), Mode::Exact)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The command scripts: every command, option and error we promise.
fn script() -> Vec<Step> {
    let later = now_s() + 1000;
    let later_ms = later * 1000 + 123;
    let mut s = vec![
        c("FLUSHALL"),
        // Strings.
        c("SET k v"),
        c("GET k"),
        c("GET nope"),
        c("SET k v2 GET"),
        c("SET nope2 v GET"),
        c("SET k v3 NX"),
        c("SET k v3 NX GET"),
        c("SET k v4 XX GET"),
        c("SET fresh v XX"),
        c("SET k v NX XX"),
        c("SET k v EX 10 PX 100"),
        c("SET k v EX 10 KEEPTTL"),
        c("SET k v KEEPTTL EX 10"),
        c("SET k v EX"),
        c("SET k v EX 0"),
        c("SET k v EX -5"),
        c("SET k v EX abc"),
        c("SET k v PX 9223372036854775807"),
        c("SET k v EX 9223372036854775"),
        c("SET k v BOGUS"),
        c("SET k v ex 100"),
        m("TTL k", Mode::Near(1)),
        c("SET k v KEEPTTL"),
        m("TTL k", Mode::Near(1)),
        c("SET k v"),
        c("TTL k"),
        Step::Call(words(&format!("SET k v EXAT {later}")), Mode::Exact),
        c("EXPIRETIME k"),
        Step::Call(words(&format!("SET k v PXAT {later_ms}")), Mode::Exact),
        c("PEXPIRETIME k"),
        c("EXPIRETIME k"),
        c("SET past v PXAT 1"),
        c("GET past"),
        c("EXISTS past"),
        c("SET k v EXAT 0"),
        c("SETNX k x"),
        c("SETNX sn x"),
        c("GET sn"),
        c("SETNX sn"),
        c("SETEX se 100 v"),
        m("TTL se", Mode::Near(1)),
        c("SETEX se 0 v"),
        c("SETEX se -1 v"),
        c("SETEX se x v"),
        c("PSETEX pse 100000 v"),
        m("PTTL pse", Mode::Near(1000)),
        c("PSETEX pse 0 v"),
        c("GETSET k new"),
        c("GETSET gsnope new"),
        c("TTL gsnope"),
        c("GETDEL k"),
        c("GETDEL k"),
        c("SET k v"),
        c("GETEX k"),
        c("GETEX k EX 100"),
        m("TTL k", Mode::Near(1)),
        c("GETEX k PERSIST"),
        c("TTL k"),
        c("GETEX k PX 100000"),
        m("PTTL k", Mode::Near(1000)),
        Step::Call(words(&format!("GETEX k EXAT {later}")), Mode::Exact),
        c("EXPIRETIME k"),
        c("GETEX k PXAT 1"),
        c("EXISTS k"),
        c("GETEX nope EX abc"),
        c("SET k v"),
        c("GETEX k EX abc"),
        c("GETEX k EX 0"),
        c("GETEX k EX 10 PX 10"),
        c("GETEX k PERSIST EX 10"),
        c("GETEX k NX"),
        c("GETEX k KEEPTTL"),
        c("MSET a 1 b 2 c 3"),
        c("MGET a b c nope"),
        c("MSET a"),
        c("MSET a 1 b"),
        c("MSETNX a 9 z 9"),
        c("GET z"),
        c("MSETNX y 1 z 2"),
        c("MGET y z"),
        c("MSETNX y"),
        c("APPEND ap hello"),
        c("APPEND ap world"),
        c("GET ap"),
        c("STRLEN ap"),
        c("STRLEN nope"),
        c("APPEND a 23"),
        c("GET a"),
        c("GETRANGE ap 0 4"),
        c("GETRANGE ap -5 -1"),
        c("GETRANGE ap 5 2"),
        c("GETRANGE ap -1 -5"),
        c("GETRANGE ap 0 100"),
        c("GETRANGE ap -100 2"),
        c("GETRANGE nope 0 1"),
        c("GETRANGE ap x 1"),
        c("SETRANGE sr 5 hi"),
        c("GET sr"),
        c("SETRANGE sr 0 HE"),
        c("GET sr"),
        c("SETRANGE sr 1 \u{0}"),
        c("SETRANGE sr -1 x"),
        c("SETRANGE sr x x"),
        c("SETRANGE srnope 3 "),
        c("EXISTS srnope"),
        c("SETRANGE sr 536870912 x"),
        c("SETRANGE sr 536870911 x2"),
        c("STRLEN sr"),
        c("SET n 10"),
        c("INCR n"),
        c("DECR n"),
        c("INCRBY n 5"),
        c("DECRBY n 3"),
        c("INCRBY n x"),
        c("DECRBY n -9223372036854775808"),
        c("SET big 9223372036854775807"),
        c("INCR big"),
        c("INCR ap"),
        c("INCRBYFLOAT f 0.1"),
        c("INCRBYFLOAT f 0.2"),
        c("INCRBYFLOAT f 10.5e3"),
        c("INCRBYFLOAT f -10500.3"),
        c("INCRBYFLOAT f 1.1"),
        c("INCRBYFLOAT f 3.3333333333333333333"),
        c("INCRBYFLOAT f abc"),
        c("INCRBYFLOAT f inf"),
        c("INCRBYFLOAT f 1e4950"),
        c("INCRBYFLOAT ap 1"),
        c("SET f 5.0e3"),
        c("INCRBYFLOAT f 2.0e2"),
        c("SET f 1e300"),
        c("INCRBYFLOAT f 1e300"),
        c("SET f 0x10"),
        c("INCRBYFLOAT f 0x1p-3"),
        c("INCRBYFLOAT n 0.5"),
        c("SET e 10"),
        c("INCRBYFLOAT e 0.0000000000000000001"),
        c("INCRBYFLOAT e -10"),
        c("OBJECT ENCODING n"),
        c("OBJECT ENCODING e"),
        c("OBJECT ENCODING ap"),
        c("OBJECT ENCODING sr"),
        c("SET emb 12345678901234567890123456789012345678901234"),
        c("OBJECT ENCODING emb"),
        c("SET rw 123456789012345678901234567890123456789012345"),
        c("OBJECT ENCODING rw"),
        c("SET i 12345"),
        c("OBJECT ENCODING i"),
        c("SET i -0"),
        c("OBJECT ENCODING i"),
        c("SET i 007"),
        c("OBJECT ENCODING i"),
        c("OBJECT ENCODING nope"),
        m("OBJECT IDLETIME i", Mode::Near(1)),
        c("OBJECT IDLETIME nope"),
        c("OBJECT FREQ i"),
        c("OBJECT FREQ nope"),
        c("OBJECT nope i"),
        c("OBJECT ENCODING"),
        c("OBJECT"),
        m("OBJECT HELP", Mode::Kind),
        m("MEMORY USAGE i", Mode::Kind),
        c("MEMORY USAGE nope"),
        c("MEMORY USAGE i SAMPLES x"),
        c("MEMORY USAGE i SAMPLES -1"),
        c("MEMORY USAGE i BOGUS"),
        m("MEMORY HELP", Mode::Kind),
        // Keyspace.
        c("FLUSHALL"),
        c("MSET a 1 b 2 c 3 d 4"),
        c("DEL a a nope b"),
        c("UNLINK c nope"),
        c("EXISTS a b c d d nope"),
        c("TOUCH d d nope"),
        c("TYPE d"),
        c("TYPE nope"),
        c("RENAME d e"),
        c("GET e"),
        c("RENAME nope x"),
        c("RENAME e e"),
        c("RENAME nope nope"),
        c("SET t 1 EX 100"),
        c("RENAME t t2"),
        m("TTL t2", Mode::Near(1)),
        c("SET x 1"),
        c("RENAMENX t2 x"),
        c("RENAMENX t2 y"),
        c("RENAMENX y y"),
        c("RENAMENX nope z"),
        c("RENAME y x"),
        c("GET x"),
        m("TTL x", Mode::Near(1)),
        m("RANDOMKEY", Mode::Kind),
        c("EXPIRE x 100"),
        c("EXPIRE x 50 GT"),
        c("EXPIRE x 500 GT"),
        c("EXPIRE x 1000 LT"),
        c("EXPIRE x 50 LT"),
        m("TTL x", Mode::Near(1)),
        c("EXPIRE x 10 NX"),
        c("EXPIRE x 10 XX"),
        c("PERSIST x"),
        c("EXPIRE x 10 XX"),
        c("EXPIRE x 10 GT"),
        c("EXPIRE x 10 LT"),
        c("PERSIST x"),
        c("EXPIRE x 10 NX XX"),
        c("EXPIRE x 10 GT LT"),
        c("EXPIRE x 10 NX GT"),
        c("EXPIRE x 10 XX GT"),
        c("EXPIRE x 10 BOGUS"),
        c("EXPIRE x abc"),
        c("EXPIRE x 9223372036854775807"),
        c("PEXPIRE x 9223372036854775807"),
        c("EXPIRE nope 10"),
        c("EXPIRE x -1"),
        c("EXISTS x"),
        c("SET x 1"),
        Step::Call(words(&format!("EXPIREAT x {later}")), Mode::Exact),
        c("EXPIRETIME x"),
        c("PEXPIRETIME x"),
        Step::Call(words(&format!("PEXPIREAT x {later_ms}")), Mode::Exact),
        c("PEXPIRETIME x"),
        c("EXPIRETIME x"),
        m("TTL x", Mode::Near(1)),
        Step::Call(words(&format!("EXPIREAT x {} GT", later + 5)), Mode::Exact),
        Step::Call(words(&format!("EXPIREAT x {} GT", later - 5)), Mode::Exact),
        c("EXPIREAT x 1"),
        c("EXISTS x"),
        c("PEXPIREAT nope 1"),
        c("EXPIRETIME nope"),
        c("PEXPIRETIME nope"),
        c("SET x 1"),
        c("EXPIRETIME x"),
        c("PEXPIRETIME x"),
        c("EXPIREAT x 9223372036854775807"),
        c("PEXPIREAT x 9223372036854775807"),
        m("PEXPIRETIME x", Mode::Exact),
        c("TTL nope"),
        c("PTTL nope"),
        c("PERSIST nope"),
        c("FLUSHALL"),
        c("MSET hello 1 hallo 2 hillo 3 hllo 4 heeeello 5 h*llo 6 a[b 7 ab 8 x 9"),
        m("KEYS *", Mode::Unordered),
        m("KEYS h?llo", Mode::Unordered),
        m("KEYS h*llo", Mode::Unordered),
        m("KEYS h[ae]llo", Mode::Unordered),
        m("KEYS h[^e]llo", Mode::Unordered),
        m("KEYS h[a-b]llo", Mode::Unordered),
        m("KEYS h\\*llo", Mode::Unordered),
        m("KEYS a[b", Mode::Unordered),
        m("KEYS a\\[b", Mode::Unordered),
        m("KEYS [", Mode::Unordered),
        m("KEYS **", Mode::Unordered),
        m("KEYS *[", Mode::Unordered),
        m("KEYS nomatch", Mode::Unordered),
        c("KEYS"),
        Step::ScanAll(vec![]),
        Step::ScanAll(words("MATCH h*")),
        Step::ScanAll(words("COUNT 1")),
        Step::ScanAll(words("COUNT 1000 MATCH *llo TYPE string")),
        Step::ScanAll(words("TYPE STRING")),
        Step::ScanAll(words("TYPE list")),
        Step::ScanAll(words("TYPE nosuchtype")),
        c("SCAN x"),
        c("SCAN -"),
        c("SCAN 0 COUNT 0"),
        c("SCAN 0 COUNT x"),
        c("SCAN 0 MATCH"),
        c("SCAN 0 BOGUS 1"),
        c("SCAN 0 COUNT 10 TYPE"),
        c("DBSIZE"),
        c("DBSIZE x"),
        c("FLUSHDB"),
        c("DBSIZE"),
        c("SET a 1"),
        c("FLUSHDB ASYNC"),
        c("DBSIZE"),
        c("FLUSHDB SYNC"),
        c("FLUSHDB BOGUS"),
        c("FLUSHDB SYNC ASYNC"),
        c("FLUSHALL BOGUS"),
        c("SET a 1"),
        c("FLUSHALL async"),
        c("GET a"),
        // Server and connection.
        c("ECHO hi"),
        c("ECHO"),
        m("TIME", Mode::Kind),
        c("TIME x"),
        c("WAIT 0 0"),
        c("WAIT 1 x"),
        c("WAIT x 0"),
        c("WAIT 0 -1"),
        m("CLIENT ID", Mode::Kind),
        m("CLIENT INFO", Mode::Kind),
        m("CLIENT LIST", Mode::Kind),
        m("CLIENT LIST ID 1", Mode::Kind),
        c("CLIENT LIST TYPE bogus"),
        c("CLIENT LIST BOGUS"),
        c("CLIENT KILL ID 999999999"),
        c("CLIENT KILL ID 0"),
        c("CLIENT KILL ID x"),
        c("CLIENT KILL 1.2.3.4:5"),
        c("CLIENT KILL SKIPME maybe"),
        c("CLIENT KILL BOGUS x"),
        c("CLIENT NOPE"),
        c("CLIENT"),
        c("CLIENT SETNAME me"),
        c("CLIENT GETNAME"),
        c("CONFIG GET maxmemory"),
        c("CONFIG GET MAXMEMORY-policy"),
        m("CONFIG GET save appendonly", Mode::Unordered),
        c("CONFIG GET nosuchparam"),
        m("CONFIG GET maxmemory maxmemory-policy", Mode::Unordered),
        c("CONFIG SET maxmemory 100mb maxmemory-policy noeviction"),
        c("CONFIG GET maxmemory"),
        c("CONFIG GET maxmemory-policy"),
        c("CONFIG SET maxmemory 0"),
        c("CONFIG SET maxmemory-policy allkeys-lru"),
        c("CONFIG SET maxmemory abc"),
        c("CONFIG SET maxmemory -1"),
        c("CONFIG SET nosuch 1"),
        c("CONFIG SET maxmemory"),
        c("CONFIG GET"),
        c("CONFIG NOPE"),
        c("CONFIG"),
        c("SELECT 0"),
        c("SELECT 1"),
        c("NOSUCHCOMMAND a b"),
        c("PING"),
        c("PING hello"),
        c("PING a b"),
        // COMMAND: exactly Redis's descriptions of these commands.
        c("COMMAND INFO get set mget mset del keys scan nosuch"),
        c("COMMAND INFO incrbyfloat getex expire expiretime flushall"),
        c("COMMAND INFO client|list config|get object|encoding memory|usage"),
        c("COMMAND DOCS get set scan"),
        c("COMMAND DOCS expire flushall nosuch"),
        // Containers list only the subcommands that exist here.
        m("COMMAND INFO client config object memory", Mode::Kind),
        m("COMMAND DOCS object config memory", Mode::Kind),
        c("COMMAND NOPE"),
        c("COMMAND COUNT x"),
        // Transactions.
        c("MULTI"),
        c("SET a 1"),
        c("INCR a"),
        c("GET a"),
        c("EXEC"),
        c("MULTI"),
        c("MULTI"),
        c("SET a 2"),
        c("EXEC"),
        c("GET a"),
        c("MULTI"),
        c("SET a 3"),
        c("DISCARD x"),
        c("EXEC"),
        c("GET a"),
        c("MULTI"),
        c("SET a 4"),
        c("EXEC x"),
        c("EXEC"),
        c("GET a"),
        c("EXEC x"),
        c("DISCARD x"),
        c("DISCARD"),
        c("EXEC"),
        c("MULTI"),
        c("NOSUCH"),
        c("SET a 5"),
        c("EXEC"),
        c("MULTI"),
        c("CLIENT NOPE"),
        c("EXEC"),
        c("MULTI"),
        c("GET"),
        c("EXEC"),
        c("MULTI"),
        c("WATCH a"),
        c("UNWATCH"),
        c("INCR a"),
        c("SET b x"),
        c("INCR b"),
        c("EXEC"),
        c("MULTI"),
        c("SET c 1"),
        c("DISCARD"),
        c("GET c"),
        c("WATCH"),
        c("UNWATCH x"),
        c("MULTI x"),
        // WATCH: another client's write to the key aborts EXEC; to another key does not.
        c("SET w 1"),
        c("WATCH w"),
        Step::Other(words("SET w 2")),
        c("MULTI"),
        c("SET w 3"),
        c("EXEC"),
        c("GET w"),
        c("WATCH w"),
        Step::Other(words("SET other 2")),
        c("MULTI"),
        c("SET w 4"),
        c("EXEC"),
        c("GET w"),
        c("WATCH w"),
        c("UNWATCH"),
        Step::Other(words("SET w 5")),
        c("MULTI"),
        c("GET w"),
        c("EXEC"),
        c("WATCH w nope"),
        Step::Other(words("DEL w")),
        c("MULTI"),
        c("PING"),
        c("EXEC"),
        c("WATCH nope"),
        Step::Other(words("SET nope 1")),
        c("MULTI"),
        c("PING"),
        c("EXEC"),
        c("SET w 1"),
        c("WATCH w"),
        Step::Other(words("EXPIRE w 100")),
        c("MULTI"),
        c("PING"),
        c("EXEC"),
        c("WATCH w"),
        Step::Other(words("FLUSHALL")),
        c("MULTI"),
        c("PING"),
        c("EXEC"),
        c("SET w 1"),
        c("WATCH w"),
        Step::Other(words("RENAME w w2")),
        c("MULTI"),
        c("PING"),
        c("EXEC"),
        c("SET w 1"),
        c("WATCH w"),
        c("SET w 2"),
        c("MULTI"),
        c("GET w"),
        c("EXEC"),
        c("WATCH w"),
        Step::Other(words("GET w")),
        c("MULTI"),
        c("GET w"),
        c("EXEC"),
        c("SET w 1 PX 1"),
        raw(&[b"DEBUG-WAIT-2MS"]),
        c("WATCH w"),
        c("MULTI"),
        c("PING"),
        c("EXEC"),
        c("SET w 1 PX 30"),
        c("WATCH w"),
        raw(&[b"DEBUG-WAIT-50MS"]),
        c("MULTI"),
        c("PING"),
        c("EXEC"),
        c("FLUSHALL"),
    ];
    // Binary keys and values.
    s.push(raw(&[b"SET", b"b\x00in\r\n", b"\xff\x00\x01"]));
    s.push(raw(&[b"GET", b"b\x00in\r\n"]));
    s.push(raw(&[b"APPEND", b"b\x00in\r\n", b"\x00"]));
    s.push(raw(&[b"GETRANGE", b"b\x00in\r\n", b"1", b"-1"]));
    s.push(raw(&[b"KEYS", b"b\x00*"]));
    s.push(raw(&[b"KEYS", b"[a-\xff]*"]));
    s.push(raw(&[b"KEYS", b"[\xff-a]*"]));
    s
}

/// Runs a script against both servers (`HELLO 3` first when `resp3`).
fn run_script(redis: &Redis, ours: std::net::SocketAddr, resp3: bool) -> Vec<String> {
    let mut theirs = redis.connect();
    let mut mine = Conn::tcp(ours);
    let mut theirs_other = redis.connect();
    let mut mine_other = Conn::tcp(ours);
    let mut failures = Vec::new();
    if resp3 {
        let (a, b) = (theirs.call(&[b"HELLO", b"3"]), mine.call(&[b"HELLO", b"3"]));
        if let Err(e) = compare(&[b"HELLO", b"3"], Mode::Kind, &a, &b) {
            failures.push(e);
        }
    }
    for step in script() {
        match step {
            Step::Call(args, _) if args[0].starts_with(b"DEBUG-WAIT-") => {
                let ms: u64 = std::str::from_utf8(&args[0][11..])
                    .unwrap()
                    .trim_end_matches("MS")
                    .parse()
                    .unwrap();
                // Letting a key's TTL pass is the point here: time is the event.
                let until = Instant::now() + Duration::from_millis(ms);
                while Instant::now() < until {
                    std::thread::yield_now();
                }
            }
            Step::Call(args, mode) => {
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let (a, b) = (theirs.call(&args), mine.call(&args));
                if let Err(e) = compare(&args, mode, &a, &b) {
                    failures.push(e);
                }
            }
            Step::Other(args) => {
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let (a, b) = (theirs_other.call(&args), mine_other.call(&args));
                if let Err(e) = compare(&args, Mode::Exact, &a, &b) {
                    failures.push(format!("(other client) {e}"));
                }
            }
            Step::ScanAll(opts) => {
                let a = scan_all(&mut theirs, &opts);
                let b = scan_all(&mut mine, &opts);
                if a != b {
                    failures.push(format!(
                        "SCAN {:?}: redis {:?}, ours {:?}",
                        opts.iter()
                            .map(|o| String::from_utf8_lossy(o))
                            .collect::<Vec<_>>(),
                        a,
                        b
                    ));
                }
            }
        }
    }
    failures
}

fn same_replies_as_redis(model: Model) {
    let redis = Redis::start();
    let server = start_ours(model);
    let mut failures = run_script(&redis, server.resp_addr(), false);
    failures.extend(
        run_script(&redis, server.resp_addr(), true)
            .into_iter()
            .map(|f| format!("(RESP3) {f}")),
    );
    assert!(
        failures.is_empty(),
        "{model}: {} differences from redis-server:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

model_tests! {
    every_model: [same_replies_as_redis],
    not_pool: [],
}
