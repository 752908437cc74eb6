//! Worker offload: heavy requests leave the reactor's loop, yet every
//! connection's responses stay in request order, other connections keep being
//! served, the job queue stays bounded, and shutdown delivers jobs in flight.
//! Assertions are on the order of events, never on wall-clock time. Every test
//! runs for each model that offloads: the reactor and the tokio models.

use crate::support::*;
use reactor_rpc::client::Response;
use serde_json::{json, Value};

/// Runs each listed `fn name(model: Model)` as `reactor::name`, `tokio::name`
/// and `tokio_mt::name`.
macro_rules! offload_tests {
    ($($test:ident),* $(,)?) => {
        offload_tests!(@mod reactor, Reactor, $($test),*);
        offload_tests!(@mod tokio, Tokio, $($test),*);
        offload_tests!(@mod tokio_mt, TokioMt, $($test),*);
    };
    (@mod $module:ident, $model:ident, $($test:ident),*) => {
        mod $module {
            $(#[test]
            fn $test() {
                let _one_at_a_time = super::serial();
                super::$test(reactor_rpc::Model::$model)
            })*
        }
    };
}

offload_tests![
    mixed_pipeline_answers_in_request_order,
    a_slow_job_does_not_block_other_connections,
    a_client_that_leaves_while_its_job_runs_does_no_harm,
    a_full_job_queue_holds_requests_back_without_dropping_them,
    shutdown_delivers_jobs_in_flight,
    no_offload_runs_everything_inline,
    heavy_resp_commands_go_to_a_worker_with_their_connections_state,
];

/// These tests keep workers busy with heavy jobs on purpose and watch the
/// queue fill: run side by side on two cores they starve each other's
/// workers and the queue never reaches its bound in time. One at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `fib` at this n is heavy (it goes to a worker); a ping never is.
const HEAVY: u64 = 100_000;

fn offload_server(model: Model, workers: usize) -> TestServer {
    TestServer::with(model, |c| {
        c.workers = workers;
        c.offload = true;
    })
}

fn id_of(r: &Response) -> Value {
    serde_json::from_str(r.id.as_ref().expect("an id").get()).unwrap()
}

fn jobs(client: &mut Client) -> Value {
    stats(client)["jobs"].clone()
}

fn mixed_pipeline_answers_in_request_order(model: Model) {
    let server = offload_server(model, 2);
    let mut c = server.client();
    // fib first: the pings behind it finish long before it, but must wait.
    let calls: Vec<(&str, Value)> = vec![
        ("fib", json!(HEAVY)),
        ("ping", json!("a")),
        ("ping", json!("b")),
        ("fib", json!(20_000)),
        ("get", json!({"key": "nothing"})),
        ("fib", json!(10)),
        ("fib", json!(HEAVY)),
        ("ping", json!("c")),
    ];
    for (i, (method, params)) in calls.iter().enumerate() {
        c.send_with_id(method, params, &i).unwrap();
    }
    c.flush().unwrap();
    let responses: Vec<Response> = (0..calls.len()).map(|_| c.recv().unwrap()).collect();
    let ids: Vec<Value> = responses.iter().map(id_of).collect();
    assert_eq!(ids, (0..calls.len()).map(|i| json!(i)).collect::<Vec<_>>());
    let outs: Vec<&str> = responses.iter().map(|r| r.out.as_str()).collect();
    assert_eq!(
        outs,
        ["fib", "pong", "pong", "fib", "get", "fib", "fib", "pong"]
    );
    assert_eq!(responses[0].result.get(), fib_decimal(HEAVY));
    assert_eq!(responses[3].result.get(), fib_decimal(20_000));
    assert_eq!(responses[5].result.get(), "55");
    assert_eq!(responses[7].result.get(), "\"c\"");
    // Three heavy calls went through the pool; the cheap fib(10) stayed inline.
    wait_until("jobs completed", TIMEOUT, || jobs(&mut c)["completed"] == 3);
}

fn a_slow_job_does_not_block_other_connections(model: Model) {
    let server = offload_server(model, 1);
    let mut slow = server.client();
    const JOBS: usize = 40;
    for i in 0..JOBS {
        slow.send_with_id("fib", &HEAVY, &i).unwrap();
    }
    slow.flush().unwrap();
    let mut other = server.client();
    // Wait until the first job is running, so the loop has taken the pipeline in.
    wait_until("a job running", TIMEOUT, || {
        jobs(&mut other)["running"] == 1
    });
    // Pings on another connection are answered while the slow pipeline is still
    // being worked through...
    for i in 0..20 {
        assert_eq!(other.call("ping", &i).unwrap(), json!(i));
    }
    let done = jobs(&mut other)["completed"].as_u64().unwrap();
    assert!(
        done < JOBS as u64,
        "all {JOBS} jobs finished before 20 pings were answered"
    );
    // ...and the slow connection still gets every answer, in order.
    for i in 0..JOBS {
        let r = slow.recv().unwrap();
        assert_eq!(id_of(&r), json!(i));
        assert_eq!(r.result.get().len(), 20_899);
    }
}

fn a_client_that_leaves_while_its_job_runs_does_no_harm(model: Model) {
    let server = offload_server(model, 1);
    let mut watcher = server.client();
    let mut leaver = server.raw();
    use std::io::Write;
    for i in 0..3 {
        leaver
            .write_all(&request_with_id("fib", json!(HEAVY), json!(i)))
            .unwrap();
    }
    wait_until("a job running", TIMEOUT, || {
        jobs(&mut watcher)["running"] == 1
    });
    reset(leaver);
    // The result for the vanished connection is dropped; the server carries on.
    wait_until("job finished", TIMEOUT, || {
        jobs(&mut watcher)["running"] == 0
    });
    wait_for_connections(&mut watcher, 1);
    assert_eq!(
        watcher.call("ping", &"still here").unwrap(),
        json!("still here")
    );
    assert_eq!(
        watcher.call_raw("fib", &HEAVY).unwrap().get(),
        fib_decimal(HEAVY)
    );
}

fn a_full_job_queue_holds_requests_back_without_dropping_them(model: Model) {
    // One worker, so the queue (16 per worker) fills with 40 heavy callers.
    let server = offload_server(model, 1);
    let mut watcher = server.client();
    const CALLERS: usize = 40;
    let mut callers: Vec<Client> = (0..CALLERS).map(|_| server.client()).collect();
    for (i, c) in callers.iter_mut().enumerate() {
        c.send_with_id("fib", &HEAVY, &i).unwrap();
        c.flush().unwrap();
    }
    let mut max_queued = 0;
    wait_until("the queue to fill", TIMEOUT, || {
        let queued = jobs(&mut watcher)["queued"].as_u64().unwrap();
        max_queued = max_queued.max(queued);
        queued == 16
    });
    // While the queue is full the loop still answers cheap requests.
    assert_eq!(watcher.call("ping", &1).unwrap(), json!(1));
    assert!(jobs(&mut watcher)["queued"].as_u64().unwrap() <= 16);
    for (i, c) in callers.iter_mut().enumerate() {
        let r = c.recv().unwrap();
        assert_eq!(id_of(&r), json!(i));
        assert_eq!(r.result.get(), fib_decimal(HEAVY));
    }
    let j = jobs(&mut watcher);
    assert_eq!(j["completed"], CALLERS);
    assert_eq!(
        (j["queued"].clone(), j["running"].clone()),
        (json!(0), json!(0))
    );
}

fn shutdown_delivers_jobs_in_flight(model: Model) {
    let server = offload_server(model, 1);
    let mut c = server.client();
    for i in 0..4 {
        c.send_with_id("fib", &HEAVY, &i).unwrap();
    }
    c.send_with_id("ping", &"last", &4).unwrap();
    c.flush().unwrap();
    let mut watcher = server.client();
    wait_until("a job running", TIMEOUT, || {
        jobs(&mut watcher)["running"] == 1
    });
    server.shutdown_handle().shutdown();
    for i in 0..4 {
        let r = c.recv().unwrap();
        assert_eq!((id_of(&r), r.result.get().len()), (json!(i), 20_899));
    }
    let last = c.recv().unwrap();
    assert_eq!((id_of(&last), last.result.get()), (json!(4), "\"last\""));
    assert!(c.recv().is_err(), "closed after the last response");
    drop(server); // checks run() returned Ok within the bound
}

fn no_offload_runs_everything_inline(model: Model) {
    let server = TestServer::with(model, |c| c.offload = false);
    let mut c = server.client();
    assert_eq!(c.call_raw("fib", &HEAVY).unwrap().get(), fib_decimal(HEAVY));
    let s = stats(&mut c);
    assert_eq!(s["workers"], 0);
    assert_eq!(s["jobs"]["completed"], 0);
}

/// A heavy RESP command (KEYS over many keys, an EXEC that runs one) goes to
/// a worker with its connection's state, and comes back with it: replies stay
/// in order, the transaction EXEC ended is over, the name set before is kept.
fn heavy_resp_commands_go_to_a_worker_with_their_connections_state(model: Model) {
    use crate::support::redis::Conn;
    let server = TestServer::with(model, |c| {
        c.workers = 2;
        c.offload = true;
        c.resp_addr = Some("127.0.0.1:0".parse().unwrap());
    });
    let mut r = Conn::tcp(server.resp_addr());
    // Enough keys that KEYS is heavy (KEYS_HEAVY), in MSETs that are not.
    let keys: Vec<String> = (0..5000).map(|i| format!("key:{i}")).collect();
    for chunk in keys.chunks(100) {
        let mut mset: Vec<&[u8]> = vec![b"MSET"];
        for k in chunk {
            mset.extend([k.as_bytes(), b"v".as_slice()]);
        }
        assert_eq!(r.call(&mset), b"+OK\r\n");
    }
    let mut c = server.client();
    let before = jobs(&mut c)["completed"].as_u64().unwrap();

    let pipeline: &[&[&[u8]]] = &[
        &[b"CLIENT", b"SETNAME", b"worker-bound"],
        &[b"SET", b"after", b"1"],
        &[b"KEYS", b"key:4999*"],
        &[b"MULTI"],
        &[b"KEYS", b"key:1234"],
        &[b"INCR", b"after"],
        &[b"EXEC"],
        &[b"EXEC"],
        &[b"CLIENT", b"GETNAME"],
        &[b"GET", b"after"],
    ];
    r.send(pipeline);
    let replies: Vec<Vec<u8>> = pipeline.iter().map(|_| r.reply()).collect();
    let text: Vec<String> = replies
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(text[0], "+OK\r\n");
    assert_eq!(text[1], "+OK\r\n");
    assert_eq!(text[2], "*1\r\n$8\r\nkey:4999\r\n", "KEYS on a worker");
    assert_eq!(text[3], "+OK\r\n");
    assert_eq!(text[4], "+QUEUED\r\n", "queued, not run, inside MULTI");
    assert_eq!(text[5], "+QUEUED\r\n");
    assert_eq!(
        text[6], "*2\r\n*1\r\n$8\r\nkey:1234\r\n:2\r\n",
        "EXEC runs the transaction on a worker"
    );
    assert_eq!(
        text[7], "-ERR EXEC without MULTI\r\n",
        "the transaction ended with the worker's EXEC"
    );
    assert_eq!(text[8], "$12\r\nworker-bound\r\n", "the name came back");
    assert_eq!(text[9], "$1\r\n2\r\n");
    // KEYS and the EXEC around the heavy KEYS went through the pool.
    wait_until("two RESP jobs completed", TIMEOUT, || {
        jobs(&mut c)["completed"].as_u64() == Some(before + 2)
    });
}
