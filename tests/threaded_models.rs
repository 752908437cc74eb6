//! Behaviour only the threaded models have: the pool's limitation (connection
//! N+1 waits in the accept backlog until one of the first N leaves) and a
//! shutdown that wakes threads blocked in `accept` and `read`. The suite every
//! model passes lives in the conformance tests.

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
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        model,
        pool_size,
        // Far longer than PATIENCE: a run() that returns in time did not wait it out.
        shutdown_grace: Duration::from_secs(120),
        ..Config::default()
    };
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

#[test]
fn pool_answers_client_n_plus_1_only_when_one_of_the_first_n_leaves() {
    const N: usize = 2;
    let server = start(Model::Pool, N);
    let mut first: Vec<Client> = (0..N).map(|_| server.served_client()).collect();

    // The TCP handshake completes in the kernel, but no pool thread is free.
    let mut waiting = Client::connect(server.addr).unwrap();
    waiting.send("ping", "waiting").unwrap();
    waiting.flush().unwrap();
    waiting
        .set_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_timed_out(waiting.recv());
    assert_eq!(live_connections(&mut first[N - 1]), N as u64);

    drop(first.remove(0));
    waiting.set_timeout(Some(PATIENCE)).unwrap();
    let answer = waiting.recv().unwrap().into_result().unwrap();
    assert_eq!(answer.get(), r#""waiting""#);
    // The leaver was unregistered before its thread took the waiting client.
    assert_eq!(live_connections(&mut waiting), N as u64);
    assert_eq!(first[0].call("ping", &1).unwrap(), json!(1));
    server.stop();
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
        // One more client: the pool has no thread for it (it waits in the
        // backlog); the threaded model may or may not have accepted it yet.
        let mut late = Client::connect(server.addr).unwrap();
        late.set_timeout(Some(PATIENCE)).unwrap();

        server.stop();

        // Every one is closed (an unaccepted one is reset with the listener).
        for client in idle.iter_mut().chain([&mut halfway, &mut late]) {
            assert_closed(client);
        }
    }
}
