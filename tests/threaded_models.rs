//! Behaviour only the threaded models have: the pool's limitation (client N+1
//! waits in the accept backlog until one of the first N leaves), and a
//! shutdown that wakes threads blocked in `accept` and `read` and drains the
//! accept backlog, where the pool's extra clients wait. The suite every model
//! passes lives in the conformance tests.

use std::io;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use reactor_rpc::client::{Error, Response};
use reactor_rpc::{Client, Config, Model, Server, Service, ShutdownHandle};
use serde_json::json;

/// Long enough for any event on a loaded CI machine; the tests never wait it out.
const PATIENCE: Duration = Duration::from_secs(30);

struct Running {
    addr: std::net::SocketAddr,
    handle: ShutdownHandle,
    done: mpsc::Receiver<io::Result<()>>,
}

fn start(model: Model, pool_size: usize) -> Running {
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.model = model;
    config.pool_size = pool_size;
    // Far longer than PATIENCE: a run() that returns in time did not wait it out.
    config.shutdown_grace = Duration::from_secs(120);
    let server = Server::bind(config, Arc::new(Service::new())).unwrap();
    let (addr, handle) = (server.local_addr(), server.shutdown_handle());
    let (tx, done) = mpsc::channel();
    thread::spawn(move || tx.send(server.run()));
    Running { addr, handle, done }
}

impl Running {
    /// A client whose connection the server has accepted and answered.
    fn served_client(&self) -> Client {
        let mut client = Client::connect(self.addr).unwrap();
        client.set_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(client.call("ping", "hello").unwrap(), json!("hello"));
        client
    }

    fn stop(self) {
        self.handle.shutdown();
        let result = self
            .done
            .recv_timeout(PATIENCE)
            .expect("run() did not return after shutdown");
        result.expect("run() failed");
    }
}

fn live_connections(client: &mut Client) -> u64 {
    client.call("stats", &()).unwrap()["connections"]
        .as_u64()
        .unwrap()
}

fn assert_timed_out(result: Result<Response, Error>) {
    match result {
        Err(Error::Io(e)) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "expected a timeout, got {e}"
        ),
        other => panic!("expected no answer yet, got {other:?}"),
    }
}

fn assert_closed(client: &mut Client) {
    match client.recv() {
        Err(Error::Io(e)) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "expected a closed connection, got {e}"
        ),
        other => panic!("expected a closed connection, got {other:?}"),
    }
}

/// The pool's limitation, which the model comparison is about: with N
/// threads, N idle clients hold every thread; client N+1 is not answered while
/// they stay, however idle they are, and is answered as soon as one leaves.
#[test]
fn pool_serves_client_n_plus_1_as_soon_as_one_of_the_first_n_leaves() {
    const N: usize = 3;
    let server = start(Model::Pool, N);
    let mut first: Vec<Client> = (0..N).map(|_| server.served_client()).collect();
    let mut extra = Client::connect(server.addr).unwrap();
    extra.send("ping", "extra").unwrap();
    extra.flush().unwrap();
    // Not answered while the first N stay connected (a short look, not a wait
    // for an event: nothing is going to happen until one of them leaves).
    extra.set_timeout(Some(Duration::from_millis(300))).unwrap();
    assert_timed_out(extra.recv());
    // One leaves: its thread accepts the waiting client and answers it.
    drop(first.pop());
    extra.set_timeout(Some(PATIENCE)).unwrap();
    let answer = extra.recv().unwrap();
    assert_eq!(
        (answer.out.as_str(), answer.result.get()),
        ("pong", "\"extra\"")
    );
    // The ones that stayed are still served.
    for c in &mut first {
        assert_eq!(c.call("ping", &1).unwrap(), json!(1));
    }
    assert_eq!(live_connections(&mut extra), N as u64);
    server.stop();
}

/// A request that reached the server before the shutdown is answered, even
/// when its connection was still waiting in the accept backlog (the pool's
/// only thread busy with an idle client).
#[test]
fn shutdown_answers_requests_waiting_in_the_backlog() {
    for model in [Model::Pool, Model::Threaded] {
        let server = start(model, 1);
        let mut busy = server.served_client();
        let mut waiting = Client::connect(server.addr).unwrap();
        waiting.set_timeout(Some(PATIENCE)).unwrap();
        waiting.send_with_id("ping", "sent before", &7).unwrap();
        waiting.flush().unwrap();
        if model == Model::Pool {
            let mut look = Client::connect(server.addr).unwrap();
            look.set_timeout(Some(Duration::from_millis(300))).unwrap();
            look.send("ping", &()).unwrap();
            look.flush().unwrap();
            // Both wait behind the busy client (the limitation itself is in
            // the conformance suite).
            assert_timed_out(look.recv());
            assert_eq!(live_connections(&mut busy), 1);
        }

        server.stop();

        let response = waiting.recv().unwrap();
        assert_eq!(response.id.as_ref().unwrap().get(), "7", "{model}");
        assert_eq!(response.into_result().unwrap().get(), r#""sent before""#);
        assert_closed(&mut waiting);
        assert_closed(&mut busy);
    }
}

#[test]
fn shutdown_returns_with_idle_clients_connected() {
    for model in [Model::Threaded, Model::Pool] {
        const POOL: usize = 3;
        let server = start(model, POOL);
        let mut idle: Vec<Client> = (0..POOL - 1).map(|_| server.served_client()).collect();
        // One more served client, stuck halfway through a frame.
        let mut halfway = server.served_client();
        halfway.send_bytes(&[100, 0, 0, 0, b'{']);
        halfway.flush().unwrap();
        // One more client, silent: the pool has no thread for it (it waits in
        // the backlog); the threaded model may or may not have accepted it yet.
        let mut late = Client::connect(server.addr).unwrap();
        late.set_timeout(Some(PATIENCE)).unwrap();

        server.stop();

        // Every one is closed.
        for client in idle.iter_mut().chain([&mut halfway, &mut late]) {
            assert_closed(client);
        }
    }
}
