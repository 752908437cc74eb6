//! In-process checks (no sockets) of what the differential suite cannot
//! provoke in Redis the same way: WATCH fired by JSON writes and by
//! eviction, the fair share of the transaction bound, the string size and
//! memory bounds of APPEND/SETRANGE, the client registry and CLIENT KILL's
//! hook, and which calls are heavy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reactor_rpc::service::redis::{is_heavy, transaction};
use reactor_rpc::service::{CacheConfig, EvictionPolicy};
use reactor_rpc::session::resp::{process, RespSession as Connection};
use reactor_rpc::session::Options;
use reactor_rpc::{Registry, Service};

const OPTIONS: Options = Options {
    max_frame: 4 << 20,
    offload: false,
    max_output: usize::MAX,
    max_reply: reactor_rpc::session::DEFAULT_MAX_REPLY,
    max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
};

fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut b = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        b.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        b.extend_from_slice(a);
        b.extend_from_slice(b"\r\n");
    }
    b
}

fn call(s: &Service, c: &mut Connection, args: &[&[u8]]) -> String {
    let mut out = Vec::new();
    let input = cmd(args);
    let p = process(s, c, &input, &mut out, OPTIONS);
    assert_eq!(p.consumed, input.len());
    String::from_utf8_lossy(&out).into_owned()
}

fn run(s: &Service, c: &mut Connection, line: &str) -> String {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    call(s, c, &args)
}

fn json(s: &Service, body: &str) -> String {
    let mut out = Vec::new();
    s.handle(&"test", body.as_bytes(), &mut out, false);
    String::from_utf8_lossy(&out[4..]).into_owned()
}

#[test]
fn watch_is_fired_by_json_writes_and_deletes() {
    let s = Service::new();
    let mut c = Connection::new(6379);
    for body in [
        r#"{"in":"set","params":{"key":"k","value":1}}"#,
        r#"{"in":"incr","params":{"key":"k"}}"#,
        r#"{"in":"del","params":{"key":"k"}}"#,
        r#"{"in":"mset","params":{"values":{"k":2}}}"#,
        r#"{"in":"expire","params":{"key":"k","ttl_ms":100000}}"#,
        r#"{"in":"getdel","params":{"key":"k"}}"#,
        r#"{"in":"flush"}"#,
    ] {
        assert_eq!(run(&s, &mut c, "SET k 1"), "+OK\r\n");
        assert_eq!(run(&s, &mut c, "WATCH k"), "+OK\r\n");
        assert!(json(&s, body).contains("\"result\""), "{body}");
        assert_eq!(run(&s, &mut c, "MULTI"), "+OK\r\n");
        assert_eq!(run(&s, &mut c, "SET k 3"), "+QUEUED\r\n");
        assert_eq!(run(&s, &mut c, "EXEC"), "*-1\r\n", "{body} aborts EXEC");
    }
    // A JSON read does not.
    assert_eq!(run(&s, &mut c, "SET k 1"), "+OK\r\n");
    assert_eq!(run(&s, &mut c, "WATCH k"), "+OK\r\n");
    json(&s, r#"{"in":"get","params":{"key":"k"}}"#);
    json(&s, r#"{"in":"set","params":{"key":"other","value":1}}"#);
    assert_eq!(run(&s, &mut c, "MULTI"), "+OK\r\n");
    assert_eq!(run(&s, &mut c, "GET k"), "+QUEUED\r\n");
    assert_eq!(run(&s, &mut c, "EXEC"), "*1\r\n$1\r\n1\r\n");
}

#[test]
fn watch_is_fired_by_eviction() {
    let s = Service::with_cache_config(
        Registry::builtin(),
        CacheConfig {
            maxmemory: 64 * 1024,
            policy: EvictionPolicy::AllKeysRandom,
        },
    );
    let mut c = Connection::new(6379);
    assert_eq!(run(&s, &mut c, "SET watched 1"), "+OK\r\n");
    assert_eq!(run(&s, &mut c, "WATCH watched"), "+OK\r\n");
    let mut other = Connection::new(6379);
    let mut n = 0;
    while run(&s, &mut other, "EXISTS watched") == ":1\r\n" {
        run(
            &s,
            &mut other,
            &format!("SET filler:{n} {}", "x".repeat(100)),
        );
        n += 1;
        assert!(n < 100_000, "the watched key was never evicted");
    }
    assert_eq!(run(&s, &mut c, "MULTI"), "+OK\r\n");
    assert_eq!(run(&s, &mut c, "PING"), "+QUEUED\r\n");
    assert_eq!(run(&s, &mut c, "EXEC"), "*-1\r\n");
}

#[test]
fn a_client_within_its_share_can_always_queue() {
    let s = Service::new();
    let big = vec![b'x'; 1020 * 1024];
    // 64 transactions of 1020 KiB each: within their own 1 MiB, 63.75 MiB in all.
    let mut hogs: Vec<Connection> = (0..65).map(|_| Connection::new(6379)).collect();
    for c in &mut hogs[..64] {
        assert_eq!(run(&s, c, "MULTI"), "+OK\r\n");
        assert_eq!(call(&s, c, &[b"SET", b"k", &big]), "+QUEUED\r\n");
    }
    assert!(s.transactions().total() >= 64 * 1020 * 1024);
    // A 65th would take the total past T = 64 MiB with more than its share
    // (T / 65 = 1008 KiB): refused.
    assert_eq!(run(&s, &mut hogs[64], "MULTI"), "+OK\r\n");
    let refused = call(&s, &mut hogs[64], &[b"SET", b"k", &big]);
    assert!(refused.starts_with("-ERR too many queued"), "{refused}");
    assert!(run(&s, &mut hogs[64], "EXEC").starts_with("-EXECABORT"));
    // Another client within its share (T / 65 again) still queues, although
    // the total passes T: no set of clients can make it fail.
    let mut fair = Connection::new(6379);
    assert_eq!(run(&s, &mut fair, "MULTI"), "+OK\r\n");
    assert_eq!(
        call(&s, &mut fair, &[b"SET", b"k", &big[..900 * 1024]]),
        "+QUEUED\r\n"
    );
    assert!(s.transactions().total() > 64 << 20);
    assert_eq!(run(&s, &mut fair, "EXEC"), "*1\r\n+OK\r\n");
    // No bound of its own below T: one more command past 1 MiB is queued
    // while the total allows it, as Redis queues it.
    assert_eq!(
        call(&s, &mut hogs[0], &[b"SET", b"k", &big[..10 * 1024]]),
        "+QUEUED\r\n"
    );
    drop(hogs);
    assert_eq!(s.transactions().total(), 0);
    // Alone, a transaction may queue up to T (here 2 000 PINGs and 64 SETs of
    // 1020 KiB, just under 64 MiB as counted), and no count bounds it.
    let mut c = Connection::new(6379);
    assert_eq!(run(&s, &mut c, "MULTI"), "+OK\r\n");
    for _ in 0..2000 {
        assert_eq!(run(&s, &mut c, "PING"), "+QUEUED\r\n");
    }
    for _ in 0..64 {
        assert_eq!(call(&s, &mut c, &[b"SET", b"k", &big]), "+QUEUED\r\n");
    }
    let too_much = call(&s, &mut c, &[b"SET", b"k", &big]);
    assert!(
        too_much.starts_with("-ERR transaction too large: more than 64 MiB"),
        "{too_much}"
    );
    assert!(run(&s, &mut c, "EXEC").starts_with("-EXECABORT"));
    assert_eq!(s.transactions().total(), 0);
}

#[test]
fn string_bounds_are_checked_before_allocating() {
    let s = Service::with_cache_config(
        Registry::builtin(),
        CacheConfig {
            maxmemory: 1 << 20,
            policy: EvictionPolicy::NoEviction,
        },
    );
    let mut c = Connection::new(6379);
    assert_eq!(
        run(&s, &mut c, "SETRANGE k 536870912 x"),
        "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
    );
    assert_eq!(run(&s, &mut c, "EXISTS k"), ":0\r\n");
    // Within 512 MiB but far past maxmemory: OOM, before 500 MiB are allocated.
    assert_eq!(
        run(&s, &mut c, "SETRANGE k 500000000 x"),
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    let chunk = vec![b'a'; 256 * 1024];
    let mut refused = false;
    for _ in 0..8 {
        let r = call(&s, &mut c, &[b"APPEND", b"k", &chunk]);
        if r.starts_with("-OOM") {
            refused = true;
            break;
        }
    }
    assert!(refused, "APPEND past maxmemory is refused");
    assert!(s.cache().used_memory() <= 1 << 20);
}

#[test]
fn the_registry_lists_clients_and_kill_calls_the_hook() {
    let s = Service::new();
    let killed = Arc::new(AtomicUsize::new(0));
    let mut a = Connection::with_addrs(
        "10.0.0.1:5000".parse().unwrap(),
        "127.0.0.1:6379".parse().unwrap(),
    );
    let mut b = Connection::with_addrs(
        "10.0.0.2:6000".parse().unwrap(),
        "127.0.0.1:6379".parse().unwrap(),
    );
    let hook = killed.clone();
    b.session_mut()
        .expect("no job holds it")
        .set_kill_hook(Box::new(move || {
            hook.fetch_add(1, Ordering::Relaxed);
        }));
    assert_eq!(run(&s, &mut a, "CLIENT SETNAME alice"), "+OK\r\n");
    assert_eq!(run(&s, &mut b, "CLIENT SETNAME bob"), "+OK\r\n");
    let list = run(&s, &mut a, "CLIENT LIST");
    assert!(
        list.contains("addr=10.0.0.1:5000 laddr=127.0.0.1:6379"),
        "{list}"
    );
    assert!(
        list.contains("name=alice") && list.contains("name=bob"),
        "{list}"
    );
    assert!(list.contains("cmd=client|list"), "{list}");
    assert!(list.contains("cmd=client|setname"), "{list}");
    let info = run(&s, &mut b, "CLIENT INFO");
    assert!(
        info.contains("name=bob") && !info.contains("alice"),
        "{info}"
    );
    let id_b = b.session().expect("no job holds it").id;
    assert_eq!(run(&s, &mut a, &format!("CLIENT KILL ID {id_b}")), ":1\r\n");
    assert_eq!(killed.load(Ordering::Relaxed), 1);
    // Found again (the model has not closed it yet), but closed only once.
    assert_eq!(run(&s, &mut a, "CLIENT KILL 10.0.0.2:6000"), "+OK\r\n");
    assert_eq!(killed.load(Ordering::Relaxed), 1, "the hook runs once");
    // Its own id is skipped unless SKIPME no; then it closes after the reply.
    let id_a = a.session().expect("no job holds it").id;
    assert_eq!(run(&s, &mut a, &format!("CLIENT KILL ID {id_a}")), ":0\r\n");
    let mut out = Vec::new();
    let input = cmd(&[
        b"CLIENT",
        b"KILL",
        b"ID",
        id_a.to_string().as_bytes(),
        b"SKIPME",
        b"no",
    ]);
    let p = process(&s, &mut a, &input, &mut out, OPTIONS);
    assert_eq!(out, b":1\r\n");
    assert_eq!(
        p.stop,
        reactor_rpc::session::Stop::Close(reactor_rpc::session::CloseReason::Bye)
    );
    assert_eq!(s.clients().len(), 2);
    drop(b);
    assert_eq!(
        s.clients().len(),
        1,
        "a dropped session leaves the registry"
    );
}

#[test]
fn heavy_calls_are_marked() {
    let s = Service::new();
    let c = Connection::new(6379);
    let heavy = |args: &[&str]| {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        is_heavy(&s, c.session().expect("no job holds it"), &args)
    };
    assert!(!heavy(&["GET", "k"]));
    assert!(!heavy(&["KEYS", "*"]), "an empty keyspace");
    let many: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let mut mget = vec!["MGET"];
    mget.extend(many.iter().map(String::as_str));
    assert!(heavy(&mget));
    assert!(!heavy(&mget[..10]));
    assert!(heavy(&["SCAN", "0", "COUNT", "100000"]));
    assert!(!heavy(&["SCAN", "0", "COUNT", "10"]));
    for i in 0..5000 {
        s.cache()
            .set_ref(
                format!("k{i}").as_bytes(),
                reactor_rpc::service::cache::ValueRef::Int(i),
                Default::default(),
            )
            .unwrap();
    }
    assert!(heavy(&["KEYS", "*"]));
    assert!(heavy(&["keys", "x*"]));
    assert!(heavy(&["SAVE"]), "a save writes the whole cache");
    let mut watch = vec!["WATCH"];
    watch.extend(many.iter().map(String::as_str));
    assert!(heavy(&watch));
    assert!(!heavy(&watch[..10]));
}

/// Watched keys are memory a client commits, like a queue: counted in the
/// transactions' total at their bytes plus an overhead each, once however
/// often a key is watched, released by `UNWATCH`, `EXEC` or the connection's
/// end; past the bound `WATCH` answers an error. A session watching
/// thousands of keys has its `EXEC`, `DISCARD` and `UNWATCH` run off the loop.
#[test]
fn watched_keys_are_bounded_like_a_queue() {
    let s = Service::new();
    let mut c = Connection::new(6379);
    let bytes = |c: &Connection| {
        let session = c.session().expect("no job holds it");
        session.watched().map_or(0, |w| w.bytes())
    };
    assert_eq!(run(&s, &mut c, "WATCH alpha beta"), "+OK\r\n");
    let two = 9 + 2 * transaction::WATCHED_KEY_OVERHEAD;
    assert_eq!(bytes(&c), two);
    for _ in 0..3 {
        assert_eq!(run(&s, &mut c, "WATCH alpha beta alpha"), "+OK\r\n");
    }
    assert_eq!(bytes(&c), two, "each key counted once");
    assert_eq!(run(&s, &mut c, "UNWATCH"), "+OK\r\n");
    assert_eq!(bytes(&c), 0);

    // Past 64 MiB of watched keys: an error, and what was watched stays.
    let big = vec![b'k'; 900 * 1024];
    let mut refused = None;
    for i in 0..100u32 {
        let mut key = big.clone();
        key.extend_from_slice(&i.to_be_bytes());
        let reply = call(&s, &mut c, &[b"WATCH", &key]);
        if reply != "+OK\r\n" {
            refused = Some((i, reply));
            break;
        }
    }
    let (at, reply) = refused.expect("refused past 64 MiB");
    assert_eq!(at, 72, "64 MiB / (900 KiB + 4 + the overhead)");
    assert_eq!(
        reply,
        "-ERR too many watched keys: more than 64 MiB of them\r\n"
    );
    let session = c.session().expect("no job holds it");
    assert_eq!(session.watched().map(|w| w.len()), Some(72));
    assert!(s.transactions().total() >= 72 * 900 * 1024);
    drop(c);
    assert_eq!(s.transactions().total(), 0, "released with the connection");

    let mut c = Connection::new(6379);
    let keys: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
    let mut watch = vec![&b"WATCH"[..]];
    watch.extend(keys.iter().map(String::as_bytes));
    assert_eq!(call(&s, &mut c, &watch), "+OK\r\n");
    let session = c.session().expect("no job holds it");
    for walks in ["EXEC", "DISCARD", "UNWATCH"] {
        assert!(is_heavy(&s, session, &[walks.as_bytes()]), "{walks}");
    }
    assert!(!is_heavy(&s, session, &[b"GET", b"k"]));
}

#[test]
fn inside_multi_only_exec_can_be_heavy() {
    let s = Service::new();
    for i in 0..5000 {
        s.cache()
            .set_ref(
                format!("k{i}").as_bytes(),
                reactor_rpc::service::cache::ValueRef::Int(i),
                Default::default(),
            )
            .unwrap();
    }
    let mut c = Connection::new(6379);
    let opt = reactor_rpc::session::Options {
        offload: true,
        ..OPTIONS
    };
    let mut out = Vec::new();
    let input = b"MULTI\r\nKEYS *\r\nEXEC\r\n";
    let p = process(&s, &mut c, input, &mut out, opt);
    // MULTI and the queued KEYS are answered on the loop; EXEC, which runs
    // the KEYS, stops for a worker, unconsumed.
    assert_eq!(out, b"+OK\r\n+QUEUED\r\n");
    assert_eq!(p.consumed, b"MULTI\r\nKEYS *\r\n".len());
    assert_eq!(
        p.stop,
        reactor_rpc::session::Stop::Offload {
            len: b"EXEC\r\n".len()
        }
    );
}
