//! The bounds on input received and not yet answered, in
//! every model: a RESP command as a whole (`--max-command`), refused from the
//! header that shows it is too big, with Redis's protocol error and a close;
//! and all connections together (`--max-input-total`), over which the
//! connection holding the most is closed, whatever its protocol. Asserted by
//! what the clients see and by `stats` (`input_held`, `evicted_clients`),
//! never by timing.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;

use reactor_rpc::{Client, Model};
use serde_json::Value;

use crate::support::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

model_tests! {
    every_model: [
        a_command_past_max_command_is_refused_at_its_header,
        the_json_port_counts_in_the_same_total,
    ],
    not_pool: [eight_attackers_never_hold_more_than_the_input_total],
}

/// A server with a RESP port and the given input bounds.
fn server(model: Model, max_command: usize, max_input_total: usize) -> TestServer {
    TestServer::with(model, |c| {
        c.resp_addr = Some("127.0.0.1:0".parse().unwrap());
        c.limits.max_command = max_command;
        c.limits.max_input_total = max_input_total;
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = raw_connect(addr);
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one line (a RESP error or status reply) of at most 200 bytes.
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") && line.len() < 200 {
        match s.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            other => panic!("no whole line ({other:?}) after {line:?}"),
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Whether the server has closed `s`: a read finds its end or a reset.
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false, // the read timeout: still open
        }
    }
}

fn ping(addr: SocketAddr) {
    let mut s = connect(addr);
    s.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_line(&mut s), "+PONG\r\n");
}

fn stat(client: &mut Client, name: &str) -> u64 {
    let stats: Value = stats(client);
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

/// `*N` whose N arguments alone pass the bound, and a `$len` that would take
/// the command past it: each is answered Redis's way before any more of the
/// command is sent (the body is never needed), then the connection closes.
/// A command just within the bound is answered.
fn a_command_past_max_command_is_refused_at_its_header(model: Model) {
    let server = server(model, MIB, 64 * MIB);
    let addr = server.resp_addr();
    let refused = "-ERR Protocol error: too big multibulk request\r\n";

    // 40 000 arguments of 32 bytes' overhead each: 1.28 MB, from `*N` alone.
    let mut s = connect(addr);
    s.write_all(b"*40000\r\n").unwrap();
    assert_eq!(read_line(&mut s), refused, "{model}: *40000");
    assert!(closed(&mut s), "{model}: closed after *40000");

    // DEL with two keys of 512 KiB: the second's header passes 1 MiB.
    let mut s = connect(addr);
    let key = vec![b'k'; 512 * KIB];
    let mut first = b"*3\r\n$3\r\nDEL\r\n$524288\r\n".to_vec();
    first.extend_from_slice(&key);
    first.extend_from_slice(b"\r\n$524288\r\n");
    s.write_all(&first).unwrap();
    assert_eq!(
        read_line(&mut s),
        refused,
        "{model}: the second key's header"
    );
    assert!(closed(&mut s), "{model}: closed after the second header");

    // Redis's own limit still comes first: a count past INT_MAX is invalid.
    let mut s = connect(addr);
    s.write_all(b"*2147483648\r\n").unwrap();
    assert_eq!(
        read_line(&mut s),
        "-ERR Protocol error: invalid multibulk length\r\n"
    );
    // A count Redis takes (it would wait for the arguments), whose overheads
    // alone pass --max-command: refused at once.
    let mut s = connect(addr);
    s.write_all(b"*1000000000\r\n").unwrap();
    assert_eq!(
        read_line(&mut s),
        "-ERR Protocol error: too big multibulk request\r\n"
    );

    // Within the bound (1 000 004 bytes plus two overheads): answered.
    let mut s = connect(addr);
    let value = vec![b'v'; 1_000_000];
    let mut echo = b"*2\r\n$4\r\nECHO\r\n$1000000\r\n".to_vec();
    echo.extend_from_slice(&value);
    echo.extend_from_slice(b"\r\n");
    s.write_all(&echo).unwrap();
    assert_eq!(
        read_line(&mut s),
        "$1000000\r\n",
        "{model}: within the bound"
    );
    let mut body = vec![0u8; 1_000_002];
    s.read_exact(&mut body).unwrap();
    assert_eq!(&body[..1_000_000], &value[..]);

    ping(addr);
}

/// Bytes of the partial JSON frame the tests hold: a header announcing
/// 1 MiB, then `body` bytes of it.
fn partial_frame(body: usize) -> Vec<u8> {
    let mut bytes = (MIB as u32).to_le_bytes().to_vec();
    bytes.resize(4 + body, b' ');
    bytes
}

/// A RESP command begun: `*2`, `ECHO`, a `$len` of `declared`, and `body`
/// bytes of it.
fn partial_echo(declared: usize, body: usize) -> Vec<u8> {
    let mut bytes = format!("*2\r\n$4\r\nECHO\r\n${declared}\r\n").into_bytes();
    bytes.resize(bytes.len() + body, b'v');
    bytes
}

/// Sends `bytes` from a thread of its own (the server may close the
/// connection midway: a failed write is the expected end then).
fn send_from_thread(mut s: TcpStream, bytes: Vec<u8>) -> thread::JoinHandle<TcpStream> {
    thread::spawn(move || {
        let _ = s.write_all(&bytes);
        s
    })
}

/// A JSON frame begun (256 KiB of a 1 MiB frame) counts in the same total
/// as RESP: with `--max-input-total 1m`, a RESP command that grows past the
/// rest is the largest holder and is closed; the frame's connection stays.
fn the_json_port_counts_in_the_same_total(model: Model) {
    let server = server(model, 64 * MIB, MIB);
    let mut observer = server.client();
    let held = partial_frame(256 * KIB);
    let mut json = connect(server.addr());
    json.write_all(&held).unwrap();
    wait_until("the frame's bytes to be held", TIMEOUT, || {
        stat(&mut observer, "input_held") == held.len() as u64
    });

    let resp = connect(server.resp_addr());
    let mut resp = send_from_thread(resp, partial_echo(MIB, 900 * KIB))
        .join()
        .unwrap();
    assert!(closed(&mut resp), "{model}: the largest holder is closed");
    wait_until("the eviction to be counted", TIMEOUT, || {
        stat(&mut observer, "evicted_clients") == 1
    });
    assert_eq!(
        stat(&mut observer, "input_held"),
        held.len() as u64,
        "{model}: the frame is still held, nothing else"
    );
    wait_for_connections(&mut observer, 2);
    json.set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .unwrap();
    assert!(!closed(&mut json), "{model}: the frame's connection stays");
    ping(server.resp_addr());
}

/// Eight connections at once each send 4 MiB of a command and wait, with
/// `--max-input-total 8m`: once every byte is read, what the survivors hold
/// is within the total (one survivor: two would hold more), the others were
/// closed, and a client that comes next is served.
fn eight_attackers_never_hold_more_than_the_input_total(model: Model) {
    let server = server(model, 64 * MIB, 8 * MIB);
    let mut observer = server.client();
    let mut attack = b"*64\r\n".to_vec();
    for _ in 0..4 {
        attack.extend_from_slice(b"$1048576\r\n");
        attack.resize(attack.len() + MIB, b'k');
        attack.extend_from_slice(b"\r\n");
    }
    let each = attack.len() as u64;
    let attackers: Vec<_> = (0..8)
        .map(|_| send_from_thread(connect(server.resp_addr()), attack.clone()))
        .collect();
    let mut attackers: Vec<TcpStream> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
    // Every attacker either closed or wholly held.
    wait_until(
        "every attacker's bytes to be read or dropped",
        TIMEOUT,
        || {
            let evicted = stat(&mut observer, "evicted_clients");
            let survivors = 8u64.saturating_sub(evicted);
            stat(&mut observer, "input_held") == survivors * each
                && stat(&mut observer, "connections") == survivors + 1
        },
    );
    let evicted = stat(&mut observer, "evicted_clients");
    let survivors = 8 - evicted;
    assert!(
        survivors * each <= 8 * MIB as u64,
        "{model}: {survivors} survivors hold {} bytes",
        survivors * each
    );
    assert!(evicted >= 7, "{model}: {evicted} closed");
    for s in &attackers {
        s.set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .unwrap();
    }
    let open = attackers
        .iter_mut()
        .map(|s| !closed(s))
        .filter(|&o| o)
        .count() as u64;
    assert_eq!(open, survivors, "{model}: the clients see who was closed");

    // A client within its share is served: its command is answered.
    let mut s = connect(server.resp_addr());
    let value = vec![b'v'; MIB];
    let mut set = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$1048576\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    s.write_all(&set).unwrap();
    assert_eq!(read_line(&mut s), "+OK\r\n", "{model}");
    ping(server.resp_addr());
}
