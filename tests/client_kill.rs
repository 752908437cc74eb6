//! `CLIENT KILL` closes the other connection, in every model: the hook each
//! model gives a RESP session reaches the connection wherever it waits (the
//! reactor's loop, a blocked thread, a tokio task), and only that one.

use crate::support::redis::{start_ours, Conn};
use crate::support::*;

model_tests! {
    every_model: [client_kill_closes_the_named_connection_only],
    not_pool: [],
}

fn integer(reply: &[u8]) -> i64 {
    let text = std::str::from_utf8(reply).expect("an ASCII reply");
    text.strip_prefix(':')
        .and_then(|n| n.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {text:?}"))
}

fn client_kill_closes_the_named_connection_only(model: Model) {
    let server = start_ours(model);
    let mut victim = Conn::tcp(server.resp_addr());
    let mut bystander = Conn::tcp(server.resp_addr());
    let id = integer(&victim.call(&[b"CLIENT", b"ID"]));
    assert_eq!(bystander.call(&[b"PING"]), b"+PONG\r\n");

    // Twice in one pipeline: the second finds it already on its way out.
    let mut killer = Conn::tcp(server.resp_addr());
    let id = id.to_string();
    let kill: &[&[u8]] = &[b"CLIENT", b"KILL", b"ID", id.as_bytes()];
    killer.send(&[kill, kill]);
    assert_eq!(integer(&killer.reply()), 1, "the first kill finds it");
    let second = integer(&killer.reply());
    assert!(second <= 1, "at most one connection has that id: {second}");

    assert!(victim.closed(), "the killed connection is closed");
    assert_eq!(bystander.call(&[b"PING"]), b"+PONG\r\n", "others go on");
    assert_eq!(killer.call(&[b"PING"]), b"+PONG\r\n");
    let mut c = server.client();
    wait_for_connections(&mut c, 3);
}
