//! The reactor pattern in one screen: read this first.
//!
//! One thread, one `mio::Poll`, a `Slab` of connections, each with a read and
//! a write buffer, and the JSON session (`session::json::process`) to turn
//! complete frames into responses. It serves the real protocol (try `reactor-rpc call --addr
//! 127.0.0.1:8081 ping '"hi"'` or `examples/seed_client.py`), but leaves out
//! everything a production server adds: limits, timers, workers, signals,
//! graceful shutdown, fairness. ARCHITECTURE.md walks through it, then shows
//! where the real reactor (crates/server/src/reactor/) adds each of those.
//!
//! Run: `cargo run --example minimal_reactor [ADDR]` (default 127.0.0.1:8081).

use std::io::{self, ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use reactor_rpc::session::json::{process, JsonSession};
use reactor_rpc::session::{CloseReason, Options, Stop};
use reactor_rpc::Service;
use slab::Slab;

/// The listener's token; connections use their slab key as token.
const LISTENER: Token = Token(usize::MAX);

/// One client: its socket, its session (who it logged in as), the bytes it
/// sent that are not yet answered, and the answers it has not yet taken.
struct Connection {
    stream: TcpStream,
    session: JsonSession,
    input: Vec<u8>,
    output: Vec<u8>,
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8081".into());
    let addr = addr.parse().map_err(io::Error::other)?;
    let service = Service::new();
    let opts = Options::new(1 << 20); // the largest frame we accept

    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Connection> = Slab::new();
    let mut events = Events::with_capacity(1024);
    println!("listening on {}", listener.local_addr()?);

    loop {
        // 1. Wait until the kernel says some socket is ready.
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue; // a signal, or a debugger attaching
            }
            return Err(e);
        }
        // 2. Dispatch each event to its handler, by token.
        for event in events.iter() {
            match event.token() {
                LISTENER => accept(&poll, &listener, &mut conns)?,
                Token(key) => {
                    let Some(conn) = conns.get_mut(key) else {
                        continue; // closed earlier in this batch: events are hints
                    };
                    if !serve(conn, &service, opts) {
                        conns.remove(key); // dropping the socket closes it
                    }
                }
            }
        }
    }
}

/// Accepts every pending connection (edge-triggered: until `WouldBlock`).
fn accept(poll: &Poll, listener: &TcpListener, conns: &mut Slab<Connection>) -> io::Result<()> {
    loop {
        let (mut stream, _peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        let entry = conns.vacant_entry();
        // Registered once for both directions: no syscall per request to change it.
        let interest = Interest::READABLE | Interest::WRITABLE;
        poll.registry()
            .register(&mut stream, Token(entry.key()), interest)?;
        entry.insert(Connection {
            stream,
            session: JsonSession::default(),
            input: Vec::new(),
            output: Vec::new(),
        });
    }
}

/// Reads what arrived, answers every complete frame, writes the answers.
/// Returns false when the connection is finished.
fn serve(conn: &mut Connection, service: &Service, opts: Options) -> bool {
    // Read until the socket is empty: an edge is reported once.
    let mut open = true;
    let mut chunk = [0u8; 4096];
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => {
                open = false; // the peer closed its side
                break;
            }
            Ok(n) => conn.input.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    // Decode every complete frame and append every response: the pure request
    // path that every server model shares.
    let progress = process(
        service,
        &mut conn.session,
        &"client",
        &conn.input,
        &mut conn.output,
        opts,
    );
    conn.input.drain(..progress.consumed);
    if progress.stop == Stop::Close(CloseReason::FrameTooLarge) {
        open = false; // frame_too_large was answered; close once it is written
    }
    // One write for the whole batch; keep what the socket would not take, and
    // the next writable event brings us back here.
    while !conn.output.is_empty() {
        match conn.stream.write(&conn.output) {
            Ok(0) => return false,
            Ok(n) => {
                conn.output.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    open
}
