//! Authentication and protected mode, the same rules in every
//! model: an unauthenticated client may only `ping`, `auth` and `HELLO`;
//! each role does exactly what its list says, over JSON and RESP, with
//! Redis 7's texts; ten failures lock an address out; the metrics port wants
//! its bearer token; protected mode refuses a non-loopback peer, reached
//! through a non-loopback address of this machine.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reactor_rpc::protocol::ErrorCode;
use reactor_rpc::service::auth::{hash_password, Auth, BearerToken, Users};
use reactor_rpc::{Config, Model};
use serde_json::{json, Value};

use crate::support::redis::Conn;
use crate::support::*;

model_tests! {
    every_model: [
        an_unauthenticated_client_may_only_ping_and_auth,
        each_role_calls_exactly_its_json_methods,
        each_role_runs_exactly_its_redis_commands,
        auth_and_hello_log_in_as_redis_does,
        before_login_a_command_is_bounded_as_redis_bounds_it,
        ten_failures_lock_the_address_out,
        the_metrics_port_wants_its_token,
        protected_mode_refuses_a_peer_that_is_not_on_loopback,
    ],
    not_pool: [],
}

const PASSWORD: &str = "correct horse battery staple";

/// `reader` (read), `writer` (write), `admin` (admin), and `default`
/// (admin, as a requirepass sets it), all with [`PASSWORD`].
fn users() -> Users {
    let hash = hash_password(PASSWORD.as_bytes());
    Users::parse(&format!(
        "reader {hash} read\nwriter {hash} write\nadmin {hash} admin\n"
    ))
    .expect("users")
    .with_requirepass(PASSWORD.as_bytes())
    .expect("requirepass")
}

/// A server with [`users`], a RESP port and whatever `tweak` adds.
fn server(model: Model, tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::with(model, |c| {
        c.security.auth = Arc::new(Auth::new(users()));
        c.resp_addr = Some("127.0.0.1:0".parse().expect("addr"));
        tweak(c);
    })
}

fn error_code(r: Result<Value, reactor_rpc::client::Error>) -> Option<ErrorCode> {
    r.err().and_then(|e| e.code())
}

fn text(reply: Vec<u8>) -> String {
    String::from_utf8(reply).expect("an ASCII reply")
}

fn an_unauthenticated_client_may_only_ping_and_auth(model: Model) {
    let server = server(model, |_| {});
    let mut c = server.client();
    assert_eq!(c.call("ping", &"before").unwrap(), "before");
    for (method, params) in [
        ("get", json!({"key": "k"})),
        ("set", json!({"key": "k", "value": 1})),
        ("fib", json!(10)),
        ("stats", Value::Null),
        ("flush", Value::Null),
    ] {
        assert_eq!(
            error_code(c.call(method, &params)),
            Some(ErrorCode::Unauthenticated),
            "{method}"
        );
    }
    // An unknown method is unknown whoever asks.
    assert_eq!(
        error_code(c.call("nope", &Value::Null)),
        Some(ErrorCode::UnknownMethod)
    );
    let wrong = c.auth(Some("writer"), "wrong").unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::WrongPassword));
    let nobody = c.auth(Some("nobody"), PASSWORD).unwrap_err();
    assert_eq!(
        nobody.code(),
        Some(ErrorCode::WrongPassword),
        "one code for both"
    );
    c.auth(Some("writer"), PASSWORD).unwrap();
    assert_eq!(c.call("fib", &10).unwrap(), 55);

    let mut r = Conn::tcp(server.resp_addr());
    assert_eq!(r.call(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(
        text(r.call(&[b"GET", b"k"])),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        text(r.call(&[b"HELLO", b"3"])),
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
         HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
         select the RESP protocol version at the same time\r\n"
    );
    // Unknown commands and wrong arities come first, as in Redis.
    assert!(text(r.call(&[b"NOPE"])).starts_with("-ERR unknown command 'NOPE'"));
    // A command refused inside MULTI makes EXEC fail, as any refused command does.
    assert_eq!(r.call(&[b"MULTI"]), b"-NOAUTH Authentication required.\r\n");
}

fn each_role_calls_exactly_its_json_methods(model: Model) {
    let server = server(model, |_| {});
    let reads: [(&str, Value); 6] = [
        ("ping", json!(1)),
        ("fib", json!(10)),
        ("get", json!({"key": "k"})),
        ("exists", json!({"key": "k"})),
        ("ttl", json!({"key": "k"})),
        ("stats", Value::Null),
    ];
    let writes: [(&str, Value); 4] = [
        ("set", json!({"key": "k", "value": 1})),
        ("incr", json!({"key": "n"})),
        ("expire", json!({"key": "k", "ttl_ms": 100_000})),
        ("del", json!({"key": "k"})),
    ];
    let admin: [(&str, Value); 1] = [("flush", Value::Null)];
    for (user, may_write, may_admin) in [
        ("reader", false, false),
        ("writer", true, false),
        ("admin", true, true),
    ] {
        let mut c = server.client();
        c.auth(Some(user), PASSWORD).unwrap();
        for (method, params) in &reads {
            assert!(c.call(method, params).is_ok(), "{user} {method}");
        }
        for (method, params) in &writes {
            let r = c.call(method, params);
            if may_write {
                assert!(r.is_ok(), "{user} {method}: {r:?}");
            } else {
                assert_eq!(error_code(r), Some(ErrorCode::Forbidden), "{user} {method}");
            }
        }
        for (method, params) in &admin {
            let r = c.call(method, params);
            if may_admin {
                assert!(r.is_ok(), "{user} {method}: {r:?}");
            } else {
                assert_eq!(error_code(r), Some(ErrorCode::Forbidden), "{user} {method}");
            }
        }
    }
}

fn each_role_runs_exactly_its_redis_commands(model: Model) {
    let server = server(model, |_| {});
    let login = |user: &str| {
        let mut r = Conn::tcp(server.resp_addr());
        assert_eq!(
            r.call(&[b"AUTH", user.as_bytes(), PASSWORD.as_bytes()]),
            b"+OK\r\n"
        );
        r
    };
    let noperm = |user: &str, cmd: &str| {
        format!("-NOPERM User {user} has no permissions to run the '{cmd}' command\r\n")
    };

    let mut reader = login("reader");
    assert_eq!(reader.call(&[b"GET", b"k"]), b"$-1\r\n");
    assert_eq!(reader.call(&[b"DBSIZE"]), b":0\r\n");
    assert_eq!(
        text(reader.call(&[b"SET", b"k", b"v"])),
        noperm("reader", "set")
    );
    assert_eq!(text(reader.call(&[b"DEL", b"k"])), noperm("reader", "del"));
    // A refused command inside MULTI makes its EXEC fail, as in Redis.
    assert_eq!(reader.call(&[b"MULTI"]), b"+OK\r\n");
    assert_eq!(
        text(reader.call(&[b"INCR", b"n"])),
        noperm("reader", "incr")
    );
    assert_eq!(
        text(reader.call(&[b"EXEC"])),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );

    let mut writer = login("writer");
    assert_eq!(writer.call(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    assert_eq!(writer.call(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    assert_eq!(
        text(writer.call(&[b"FLUSHALL"])),
        noperm("writer", "flushall")
    );
    assert_eq!(
        text(writer.call(&[b"FLUSHDB"])),
        noperm("writer", "flushdb")
    );
    assert_eq!(
        text(writer.call(&[b"CONFIG", b"SET", b"maxmemory", b"0"])),
        noperm("writer", "config|set")
    );
    assert_eq!(
        text(writer.call(&[b"CLIENT", b"KILL", b"ID", b"1"])),
        noperm("writer", "client|kill")
    );
    assert!(text(writer.call(&[b"CONFIG", b"GET", b"maxmemory"])).starts_with('*'));

    let mut admin = login("admin");
    assert_eq!(admin.call(&[b"FLUSHALL"]), b"+OK\r\n");
    assert_eq!(
        admin.call(&[b"CONFIG", b"SET", b"maxmemory", b"0"]),
        b"+OK\r\n"
    );
    assert_eq!(admin.call(&[b"DBSIZE"]), b":0\r\n");
}

/// Redis 7.0's `authRequired` bounds: before logging in, more than 10
/// arguments or a bulk string of more than 16 384 bytes is a protocol error
/// and a close, so a client without the password cannot make the server
/// hold much of its input; once logged in, both are ordinary commands.
fn before_login_a_command_is_bounded_as_redis_bounds_it(model: Model) {
    let server = server(model, |_| {});
    let eleven: Vec<&[u8]> = [&b"MSET"[..]]
        .into_iter()
        .chain([&b"k"[..], b"v"].repeat(5))
        .collect();
    let big = vec![b'x'; 16385];
    let mut c = Conn::tcp(server.resp_addr());
    assert_eq!(
        text(c.call(&eleven)),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    assert!(c.closed(), "{model}: closed after the error");
    let mut c = Conn::tcp(server.resp_addr());
    assert_eq!(
        text(c.call(&[b"ECHO", &big])),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    assert!(c.closed(), "{model}: closed after the error");
    // Ten arguments and 16 384 bytes pass the parser (and meet NOAUTH).
    let mut c = Conn::tcp(server.resp_addr());
    assert_eq!(
        text(c.call(&eleven[..9])),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        text(c.call(&[b"ECHO", &big[..16384]])),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(c.call(&[b"AUTH", PASSWORD.as_bytes()]), b"+OK\r\n");
    assert_eq!(c.call(&eleven), b"+OK\r\n");
    let echoed = c.call(&[b"ECHO", &big]);
    assert!(echoed.starts_with(b"$16385\r\nxxx"), "{model}");
}

fn auth_and_hello_log_in_as_redis_does(model: Model) {
    let server = server(model, |_| {});
    let mut r = Conn::tcp(server.resp_addr());
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(text(r.call(&[b"AUTH", b"wrong"])), wrongpass);
    assert_eq!(text(r.call(&[b"AUTH", b"writer", b"wrong"])), wrongpass);
    assert_eq!(text(r.call(&[b"AUTH", b"nobody", b"x"])), wrongpass);
    assert_eq!(
        text(r.call(&[b"ACL", b"WHOAMI"])),
        "-NOAUTH Authentication required.\r\n"
    );
    // `AUTH password` is the user `default` (the requirepass).
    assert_eq!(r.call(&[b"AUTH", PASSWORD.as_bytes()]), b"+OK\r\n");
    assert_eq!(r.call(&[b"ACL", b"WHOAMI"]), b"$7\r\ndefault\r\n");
    assert_eq!(
        r.call(&[b"AUTH", b"reader", PASSWORD.as_bytes()]),
        b"+OK\r\n"
    );
    assert_eq!(r.call(&[b"ACL", b"WHOAMI"]), b"$6\r\nreader\r\n");

    // HELLO 3 AUTH logs in and switches protocol in one step; a wrong
    // password leaves the protocol as it was.
    let mut h = Conn::tcp(server.resp_addr());
    assert_eq!(
        text(h.call(&[b"HELLO", b"3", b"AUTH", b"writer", b"nope"])),
        wrongpass
    );
    let hello = text(h.call(&[
        b"HELLO",
        b"3",
        b"AUTH",
        b"writer",
        PASSWORD.as_bytes(),
        b"SETNAME",
        b"w",
    ]));
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"), "{hello}");
    assert_eq!(h.call(&[b"ACL", b"WHOAMI"]), b"$6\r\nwriter\r\n");
    assert_eq!(h.call(&[b"CLIENT", b"GETNAME"]), b"$1\r\nw\r\n");
    assert_eq!(h.call(&[b"SET", b"k", b"v"]), b"+OK\r\n");

    // Without users, AUTH behaves as on a Redis without requirepass.
    let open = TestServer::with(model, |c| {
        c.resp_addr = Some("127.0.0.1:0".parse().expect("addr"));
    });
    let mut o = Conn::tcp(open.resp_addr());
    assert!(text(o.call(&[b"AUTH", b"x"])).starts_with("-ERR AUTH <password> called without"));
    assert_eq!(o.call(&[b"AUTH", b"default", b"anything"]), b"+OK\r\n");
    assert_eq!(text(o.call(&[b"AUTH", b"alice", b"x"])), wrongpass);
    assert_eq!(o.call(&[b"ACL", b"WHOAMI"]), b"$7\r\ndefault\r\n");
    let mut j = open.client();
    j.auth(None, "anything").unwrap();
    assert_eq!(
        j.auth(Some("alice"), "x").unwrap_err().code(),
        Some(ErrorCode::WrongPassword)
    );
}

fn ten_failures_lock_the_address_out(model: Model) {
    let server = server(model, |c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"));
    });
    let mut c = server.client();
    for i in 0..10 {
        let e = c.auth(Some("writer"), &format!("guess {i}")).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::WrongPassword), "attempt {i}");
    }
    // Locked out: even the right password is refused, unchecked, on every
    // connection and protocol from this address.
    let e = c.auth(Some("writer"), PASSWORD).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TooManyAttempts));
    let mut other = server.client();
    let e = other.auth(Some("writer"), PASSWORD).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TooManyAttempts));
    let mut r = Conn::tcp(server.resp_addr());
    assert_eq!(
        text(r.call(&[b"AUTH", b"writer", PASSWORD.as_bytes()])),
        "-ERR too many failed AUTH attempts\r\n"
    );
    // The connection is still usable, and ping still answers.
    assert_eq!(c.call("ping", &1).unwrap(), 1);
    let page = scrape_metrics_with(
        server.metrics_addr(),
        &["reactor_rpc_auth_failures_total 10\n"],
    );
    assert!(
        page.contains("reactor_rpc_auth_refused_total 3\n"),
        "{page}"
    );
}

/// `GET /metrics` with `authorization` as its `Authorization` header (none
/// if `None`): the status line and the body.
fn scrape(addr: SocketAddr, authorization: Option<&str>) -> (String, String) {
    let mut s = raw_connect(addr);
    let header = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (head.to_owned(), body.to_owned())
}

fn the_metrics_port_wants_its_token(model: Model) {
    let server = server(model, |c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"));
        c.security.metrics_token = Some(BearerToken::new(b"scrape-token-0123"));
    });
    let addr = server.metrics_addr();
    let (head, _) = scrape(addr, None);
    assert!(head.starts_with("HTTP/1.1 401 Unauthorized"), "{head}");
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    let (head, _) = scrape(addr, Some("Bearer wrong"));
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    let (head, _) = scrape(addr, Some("Basic c2NyYXBlOg=="));
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    let (head, body) = scrape(addr, Some("bearer  scrape-token-0123"));
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        body.contains("reactor_rpc_auth_failures_total 3\n"),
        "{body}"
    );
}

/// An IPv4 address of this machine that is not loopback (the test fails,
/// rather than skips, on a machine without one).
fn non_loopback_address() -> IpAddr {
    let mut found = None;
    // SAFETY: getifaddrs fills a list we free with freeifaddrs; we only
    // read the entries (and the sockaddr of those whose family is AF_INET)
    // between the two calls.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        assert_eq!(libc::getifaddrs(&mut list), 0, "getifaddrs");
        let mut at = list;
        while !at.is_null() {
            let addr = (*at).ifa_addr;
            if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                let v4 = &*(addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_unspecified() {
                    found = Some(IpAddr::V4(ip));
                    break;
                }
            }
            at = (*at).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found.expect("this test needs a non-loopback IPv4 address on some interface")
}

fn protected_mode_refuses_a_peer_that_is_not_on_loopback(model: Model) {
    let outside = non_loopback_address();
    let any: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    let open = TestServer::with(model, |c| {
        c.addr = any;
        c.resp_addr = Some(any);
        c.metrics_addr = Some(any);
    });
    let via = |addr: SocketAddr| SocketAddr::new(outside, addr.port());

    // JSON: one `forbidden` frame naming the ways out, then a close.
    let mut s = raw_connect(via(open.addr()));
    s.write_all(&request("ping", json!(1))).unwrap();
    let refusal = read_response(&mut s);
    assert_eq!(refusal["result"]["code"], "forbidden", "{refusal}");
    let message = refusal["result"]["message"].as_str().unwrap_or_default();
    for way_out in ["--requirepass-file", "--users-file", "--protected-mode no"] {
        assert!(message.contains(way_out), "{message}");
    }
    expect_closed(&mut s);
    // RESP: Redis's -DENIED.
    let mut r = Conn::tcp(via(open.resp_addr()));
    assert!(text(r.reply()).starts_with("-DENIED reactor-rpc is running in protected mode"));
    assert!(r.closed());
    // Metrics: 403.
    let (head, _) = scrape(via(open.metrics_addr()), None);
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
    // Loopback peers are served.
    let mut local = client_for(SocketAddr::new([127, 0, 0, 1].into(), open.addr().port()));
    assert_eq!(local.call("ping", &"local").unwrap(), "local");
    // The JSON and RESP refusals; the metrics one counts on its own listener.
    assert_eq!(stats(&mut local)["connections_rejected"], 2);

    // With a password, or with protected mode off, the outside is served.
    for tweak in [
        (|c: &mut Config| c.security.auth = Arc::new(Auth::new(users()))) as fn(&mut Config),
        |c: &mut Config| c.security.protected_mode = false,
    ] {
        let server = TestServer::with(model, |c| {
            c.addr = any;
            tweak(c);
        });
        let mut c = client_for(via(server.addr()));
        assert_eq!(c.call("ping", &"outside").unwrap(), "outside");
    }
}
