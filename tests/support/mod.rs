//! The harness every integration suite shares: start a server on port 0 (in
//! process, or the built binary), talk to it byte by byte or through the
//! client, and wait for events with deadlines instead of sleeping.
//!
//! [`model_tests!`] runs one list of test functions once per server model,
//! so the same source proves that every model behaves the same.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Once, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use num_bigint::BigUint;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use reactor_rpc::ops::procfs::Pid;
use reactor_rpc::tls::TlsFiles;
use serde_json::{json, Value};

pub use reactor_rpc::{Client, Config, Model, Server, Service, ShutdownHandle};

pub mod redis;

/// How long any single read, write or wait in a test may block before the
/// test fails. Generous: the box is shared and CI may be slow.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Threads in the `pool` model under test: enough for the tests that hold a
/// few connections at once (the most is the `max_conns` test with five).
pub const POOL_SIZE: usize = 8;

/// How long a server may take to stop once asked (its grace period plus slack).
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(15);

/// Runs each listed test function (`fn name(model: Model)`) once per server
/// model, as `reactor::name`, `threaded::name`, `pool::name`, `tokio::name`
/// and `tokio_mt::name`: one source, every model. Tests under `not_pool` need
/// more connections served at once than the pool has threads, which the pool
/// cannot do by design; they run for every model but the pool. A test function left
/// out of the list is dead code, which clippy rejects. Attributes written
/// before `every_model` (e.g. `#[ignore]`) go on every generated test.
#[allow(unused_macros)] // not every suite runs per model
macro_rules! model_tests {
    (
        $(#[$attr:meta])*
        every_model: [$($all:ident),* $(,)?],
        not_pool: [$($np:ident),* $(,)?] $(,)?
    ) => {
        model_tests!(@mod reactor, Reactor, [$(#[$attr])*], [$($all,)* $($np,)*]);
        model_tests!(@mod threaded, Threaded, [$(#[$attr])*], [$($all,)* $($np,)*]);
        model_tests!(@mod pool, Pool, [$(#[$attr])*], [$($all,)*]);
        model_tests!(@mod tokio, Tokio, [$(#[$attr])*], [$($all,)* $($np,)*]);
        model_tests!(@mod tokio_mt, TokioMt, [$(#[$attr])*], [$($all,)* $($np,)*]);
    };
    (@mod $module:ident, $model:ident, $attrs:tt, [$($test:ident,)*]) => {
        mod $module {
            $(model_tests!(@test $attrs, $model, $test);)*
        }
    };
    (@test [$(#[$attr:meta])*], $model:ident, $test:ident) => {
        #[test]
        $(#[$attr])*
        fn $test() {
            super::$test(reactor_rpc::Model::$model)
        }
    };
}

/// Raises this process's descriptor limit to its hard limit, once: the tests
/// hold both ends of up to thousands of connections.
pub fn raise_fd_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        reactor_rpc_bench::procfs::raise_nofile(u64::MAX);
    });
}

/// The configuration tests start from: port 0 on loopback, the given model.
pub fn test_config(model: Model) -> Config {
    let mut config = Config::default();
    config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.model = model;
    config.pool_size = POOL_SIZE;
    config.signals = false;
    config
}

/// A server running on a thread of the test process; stopped (and checked to
/// have stopped cleanly) on drop.
pub struct TestServer {
    pub model: Model,
    addr: SocketAddr,
    /// The Redis-protocol port, when the configuration asked for one.
    resp: Option<SocketAddr>,
    /// Every listener's address, by endpoint.
    endpoints: Vec<(reactor_rpc::session::Endpoint, SocketAddr)>,
    handle: ShutdownHandle,
    done: Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(model: Model) -> TestServer {
        TestServer::with(model, |_| {})
    }

    /// Starts a server after `tweak` has adjusted the test configuration.
    pub fn with(model: Model, tweak: impl FnOnce(&mut Config)) -> TestServer {
        raise_fd_limit();
        let mut config = test_config(model);
        tweak(&mut config);
        let server = Server::bind(config, Arc::new(Service::new()))
            .unwrap_or_else(|e| panic!("{model}: bind failed: {e}"));
        let addr = server.local_addr();
        let resp = server.resp_addr();
        let endpoints = reactor_rpc::session::Endpoint::ALL
            .into_iter()
            .filter_map(|e| Some((e, server.endpoint_addr(e)?)))
            .collect();
        assert_ne!(addr.port(), 0, "{model}: local_addr reports the real port");
        let handle = server.shutdown_handle();
        let (tx, done) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(format!("{model}-server"))
            .spawn(move || {
                let _ = tx.send(server.run());
            })
            .expect("spawn server thread");
        TestServer {
            model,
            addr,
            resp,
            endpoints,
            handle,
            done,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The RESP listener's address (set `config.resp_addr` in the tweak).
    pub fn resp_addr(&self) -> SocketAddr {
        self.resp.expect("the server was started with a resp_addr")
    }

    /// The address of the listener for `endpoint` (configured in the tweak).
    pub fn endpoint_addr(&self, endpoint: reactor_rpc::session::Endpoint) -> SocketAddr {
        self.endpoints
            .iter()
            .find_map(|&(e, addr)| (e == endpoint).then_some(addr))
            .unwrap_or_else(|| panic!("the server was started without {endpoint}"))
    }

    /// The JSON-over-TLS port (`config.security.tls_addr`).
    pub fn tls_addr(&self) -> SocketAddr {
        self.endpoint_addr(reactor_rpc::session::Endpoint::tls(
            reactor_rpc::session::Role::Rpc,
        ))
    }

    /// The RESP-over-TLS port (`config.security.resp_tls_addr`).
    pub fn resp_tls_addr(&self) -> SocketAddr {
        self.endpoint_addr(reactor_rpc::session::Endpoint::tls(
            reactor_rpc::session::Role::Resp,
        ))
    }

    /// The metrics port, plaintext or TLS (`config.metrics_addr`).
    pub fn metrics_addr(&self) -> SocketAddr {
        use reactor_rpc::session::{Endpoint, Role};
        self.endpoints
            .iter()
            .find_map(|&(e, addr)| (e.role == Role::Metrics).then_some(addr))
            .unwrap_or_else(|| {
                panic!(
                    "the server was started without {}",
                    Endpoint::plain(Role::Metrics)
                )
            })
    }

    /// The server's shutdown handle, to start a shutdown mid-test; dropping the
    /// `TestServer` still waits for `run()` and checks it returned Ok.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// A connected client with [`TIMEOUT`] on reads and writes.
    pub fn client(&self) -> Client {
        client_for(self.addr)
    }

    /// A plain socket with [`TIMEOUT`] on reads and writes, for byte-level tests.
    pub fn raw(&self) -> TcpStream {
        raw_connect(self.addr)
    }

    /// Stops the server and returns what `run` returned, failing if it takes
    /// longer than [`SHUTDOWN_BOUND`].
    fn stop(&mut self) -> io::Result<()> {
        self.handle.shutdown();
        let result = match self.done.recv_timeout(SHUTDOWN_BOUND) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{}: run() did not return within {SHUTDOWN_BOUND:?} of shutdown()",
                    self.model
                )
            }
            Err(RecvTimeoutError::Disconnected) => panic!("{}: server thread panicked", self.model),
        };
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if thread::panicking() {
            // The test already failed; ask the server to stop but do not pile
            // a second panic (an abort) on top of the first.
            self.handle.shutdown();
            return;
        }
        let result = self.stop();
        assert!(
            result.is_ok(),
            "{}: run() returned {result:?} after shutdown",
            self.model
        );
    }
}

/// A client connected to `addr` with [`TIMEOUT`] on reads and writes.
pub fn client_for(addr: SocketAddr) -> Client {
    let client = Client::connect(addr).expect("connect");
    client.set_timeout(Some(TIMEOUT)).expect("set timeout");
    client
}

/// A plain socket to `addr` with [`TIMEOUT`] on reads and writes and no Nagle delay.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One frame: a u32 little-endian length, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("body under 4 GiB");
    let mut f = len.to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A request frame `{"in": method, "params": params}`.
pub fn request(method: &str, params: Value) -> Vec<u8> {
    frame(&serde_json::to_vec(&json!({"in": method, "params": params})).unwrap())
}

/// A request frame carrying an id.
pub fn request_with_id(method: &str, params: Value, id: Value) -> Vec<u8> {
    let body = json!({"in": method, "params": params, "id": id});
    frame(&serde_json::to_vec(&body).unwrap())
}

/// Fills `buf` completely; `Ok(false)` if the stream ended (or was reset)
/// before the first byte.
fn read_full(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if got == 0 && e.kind() == ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads one frame's body; `None` when the connection is closed at a frame
/// boundary. A timeout or a frame cut short fails the test.
pub fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    if !read_full(s, &mut header).expect("reading a frame header") {
        return None;
    }
    let mut body = vec![0u8; u32::from_le_bytes(header) as usize];
    assert!(
        read_full(s, &mut body).expect("reading a frame body"),
        "connection closed inside a frame"
    );
    Some(body)
}

/// Reads one response and parses it (not for `fib` results beyond f64).
pub fn read_response(s: &mut TcpStream) -> Value {
    let body = read_frame(s).expect("a response, but the connection closed");
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "response is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// Writes `bytes` and reads one response.
pub fn roundtrip(s: &mut TcpStream, bytes: &[u8]) -> Value {
    s.write_all(bytes).expect("write");
    read_response(s)
}

/// Asserts that `response` is a success named `out` carrying `result`.
#[track_caller]
pub fn assert_result(response: &Value, out: &str, result: &Value) {
    assert_eq!(response["out"], out, "response {response}");
    assert_eq!(&response["result"], result, "response {response}");
}

/// Asserts that `response` is an error response with `code` and a message.
#[track_caller]
pub fn assert_error(response: &Value, code: &str) {
    assert_eq!(response["out"], "error", "expected {code}, got {response}");
    assert_eq!(response["result"]["code"], code, "response {response}");
    let message = response["result"]["message"].as_str();
    assert!(
        message.is_some_and(|m| !m.is_empty()),
        "error without a message: {response}"
    );
    // A position inside a one-line frame means nothing to the caller.
    assert!(
        !message.unwrap_or_default().contains(" at line "),
        "serde's position leaked into the message: {response}"
    );
}

/// Asserts that the connection still answers a ping.
#[track_caller]
pub fn assert_usable(s: &mut TcpStream) {
    let response = roundtrip(s, &request("ping", json!("still here")));
    assert_result(&response, "pong", &json!("still here"));
}

/// Asserts that the peer closes the connection (read gives EOF or a reset)
/// within the read timeout, with no further bytes before it.
#[track_caller]
pub fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "expected a close, got {n} bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("expected a close, got {e}"),
    }
}

/// Reads and discards whatever arrives until the peer closes; fails if it
/// does not close within `within`.
pub fn drain_until_closed(s: &mut TcpStream, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "connection still open after {within:?}");
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return total,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("connection still open after {within:?}: {e}"),
        }
    }
}

/// Polls `condition` until it holds, failing after `within`. For state that no
/// event announces (a counter in `stats`, a key's expiry).
#[track_caller]
pub fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The server's `stats`, over an existing client.
pub fn stats(client: &mut Client) -> Value {
    client.call("stats", &Value::Null).expect("stats")
}

/// Waits until `stats.connections` equals `n` (the asking client included).
#[track_caller]
pub fn wait_for_connections(client: &mut Client, n: u64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let last = stats(client)["connections"].clone();
        if last == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stats.connections is {last}, expected {n} within {TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Makes `close` send a RST instead of a FIN (SO_LINGER with a zero timeout).
pub fn set_linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a descriptor we own, with a correctly sized struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_LINGER): {}",
        io::Error::last_os_error()
    );
}

/// Closes `s` with a RST.
pub fn reset(s: TcpStream) {
    set_linger_zero(&s);
    drop(s);
}

/// F(n) in decimal, by plain iterative addition: slow, obviously right, and
/// independent of the server's fast doubling. Cached, F(100 000) is costly.
pub fn fib_decimal(n: u64) -> String {
    static F100K: OnceLock<String> = OnceLock::new();
    let compute = |n: u64| {
        let (mut a, mut b) = (BigUint::from(0u8), BigUint::from(1u8));
        for _ in 0..n {
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        a.to_str_radix(10)
    };
    if n == 100_000 {
        F100K.get_or_init(|| compute(n)).clone()
    } else {
        compute(n)
    }
}

/// The resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    reactor_rpc::ops::procfs::memory(Pid::Of(pid))
        .expect("VmRSS in /proc/PID/status")
        .rss_kb
}

/// CPU time (user + system) a process has used.
pub fn cpu_time(pid: u32) -> Duration {
    reactor_rpc::ops::procfs::cpu_time(Pid::Of(pid)).expect("read /proc/PID/stat")
}

/// The built binary, run as a child process with stderr captured line by line.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    lines: Receiver<String>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_reactor-rpc")
}

impl ServerProcess {
    /// `reactor-rpc serve --addr 127.0.0.1:0 --log-level info ARGS...` (unless
    /// ARGS has an `--addr` of its own), waiting
    /// for the `listening on` line (logged at info) to learn the port.
    pub fn spawn(args: &[&str]) -> ServerProcess {
        ServerProcess::spawn_with_shell_prefix("", args)
    }

    /// As [`ServerProcess::spawn`], but through `sh -c 'PREFIX exec BINARY ARGS'`,
    /// e.g. with `prefix = "ulimit -n 64;"`. The shell execs, so the child's pid
    /// is the server's.
    pub fn spawn_with_shell_prefix(prefix: &str, args: &[&str]) -> ServerProcess {
        ServerProcess::spawn_full(prefix, args, &[])
    }

    /// As [`ServerProcess::spawn`], with `env` added to the environment.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::spawn_full("", args, env)
    }

    fn spawn_full(prefix: &str, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        raise_fd_limit();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prefix} exec \"$0\" \"$@\""))
            .arg(binary())
            .args(["serve", "--log-level", "info"])
            .args(if args.contains(&"--addr") {
                &[][..]
            } else {
                &["--addr", "127.0.0.1:0"][..]
            })
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the server binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
            log: Vec::new(),
        };
        let line = p.wait_for_line("the `listening on` line", |l| l.contains("listening on "));
        p.addr = parse_listening(&line)
            .unwrap_or_else(|| panic!("cannot read the address from {line:?}"));
        p
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line matching `pred` (looking at lines already seen
    /// first) and returns it.
    #[track_caller]
    pub fn wait_for_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.log.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no stderr line with {what} ({e:?}); log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// The address in the log line `{role} listening on ADDR` (`resp`,
    /// `metrics`), waiting for it.
    #[track_caller]
    pub fn listener_addr(&mut self, role: &str) -> SocketAddr {
        let marker = format!("{role} listening on ");
        let line = self.wait_for_line(&marker, |l| l.contains(&marker));
        line.split(&marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Collects what stderr has to say within the next second (all of it, once
    /// the process has exited).
    pub fn drain_log(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.log.push(line);
        }
    }

    pub fn client(&self) -> Client {
        client_for(self.addr)
    }

    pub fn raw(&self) -> TcpStream {
        raw_connect(self.addr)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).unwrap();
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }

    /// Waits for the process to exit, failing after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}; log:\n{}",
                self.log.join("\n")
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then asserts exit status 0 within [`SHUTDOWN_BOUND`].
    pub fn terminate(&mut self) {
        self.sigterm();
        let status = self.wait_exit(SHUTDOWN_BOUND);
        self.drain_log();
        assert!(
            status.success(),
            "exit status {status} after SIGTERM; log:\n{}",
            self.log.join("\n")
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in a `listening on ADDR (model NAME)` line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    reactor_rpc_bench::spawn::listening_addr(line)
}

/// Makes `cmd` start with `fds` as its descriptors 3, 4, … (as systemd hands
/// sockets over), at most 8. The caller sets `LISTEN_PID`, `LISTEN_FDS`.
pub fn hand_over_fds(cmd: &mut Command, fds: &[std::os::fd::RawFd]) {
    use std::os::unix::process::CommandExt;
    let mut sources = [-1; 8];
    assert!(fds.len() <= sources.len(), "at most 8 descriptors");
    sources[..fds.len()].copy_from_slice(fds);
    let n = fds.len();
    // SAFETY: between fork and exec only async-signal-safe calls (fcntl,
    // dup2) on descriptors this process owns, and no allocation. Each
    // source is first duplicated above the target range so that moving one
    // into place never overwrites another not yet moved; dup2 leaves the
    // targets without close-on-exec, so they survive the exec, while the
    // temporary copies are close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [-1; 8];
            for i in 0..n {
                high[i] = libc::fcntl(sources[i], libc::F_DUPFD_CLOEXEC, 64);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &copy) in high[..n].iter().enumerate() {
                if libc::dup2(copy, 3 + i as std::os::fd::RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The name the test harness knows the test `name` of module `module` by
/// (`module_path!()` of the test's module, without the crate's name), for a
/// test that re-executes this binary to run one test in a child process.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

/// The first page of `GET /metrics` from `addr` that has every line of
/// `lines`: a page is rendered at most once a second and shared within it,
/// so a change shows in the page that follows it (the wait is bounded by
/// [`TIMEOUT`]).
pub fn scrape_metrics_with(addr: SocketAddr, lines: &[&str]) -> String {
    let mut page = scrape_metrics(addr);
    wait_until("a metrics page with the expected lines", TIMEOUT, || {
        if lines.iter().all(|l| page.contains(l)) {
            return true;
        }
        page = scrape_metrics(addr);
        false
    });
    page
}

/// The body of `GET /metrics` from the metrics port at `addr`.
pub fn scrape_metrics(addr: SocketAddr) -> String {
    let mut s = raw_connect(addr);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    body.to_string()
}

/// The password in [`Pki`]'s `password` file.
pub const PKI_PASSWORD: &str = "correct horse battery staple";

fn write(path: &std::path::Path, text: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate, and a password file (`password`, holding [`PKI_PASSWORD`];
/// `wrong` holds another), all as files in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("pki");
        let ca_key = KeyPair::generate().expect("pki");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("pki");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        let ca = params.self_signed(&ca_key).expect("pki");
        let leaf = |sans: Vec<String>, usage| -> (Certificate, KeyPair) {
            let key = KeyPair::generate().expect("pki");
            let mut params = CertificateParams::new(sans).expect("pki");
            params.extended_key_usages = vec![usage];
            (params.signed_by(&key, &ca, &ca_key).expect("pki"), key)
        };
        let (server, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth);
        let p = |name: &str| dir.path().join(name);
        write(&p("ca.crt"), ca.pem().as_bytes(), 0o644);
        write(&p("server.crt"), server.pem().as_bytes(), 0o644);
        write(
            &p("server.key"),
            server_key.serialize_pem().as_bytes(),
            0o600,
        );
        write(&p("client.crt"), client.pem().as_bytes(), 0o644);
        write(
            &p("client.key"),
            client_key.serialize_pem().as_bytes(),
            0o600,
        );
        write(
            &p("password"),
            format!("{PKI_PASSWORD}\n").as_bytes(),
            0o600,
        );
        write(&p("wrong"), b"not it\n", 0o600);
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub fn server_files(&self, mutual: bool) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.crt"),
            key: self.path("server.key"),
            client_ca: mutual.then(|| self.path("ca.crt")),
        }
    }
}

/// A rustls client configuration trusting [`Pki`]'s CA (TLS 1.2 and 1.3),
/// with the client certificate when `mutual`.
pub fn tls_client_config(pki: &Pki, mutual: bool) -> Arc<rustls::ClientConfig> {
    let connector = match mutual {
        true => reactor_rpc::client::TlsConnector::from_files(
            &pki.path("ca.crt"),
            Some((&pki.path("client.crt"), &pki.path("client.key"))),
        ),
        false => reactor_rpc::client::TlsConnector::from_files(&pki.path("ca.crt"), None),
    };
    connector.expect("client TLS config").config().clone()
}

/// A TLS connection to `addr` as a blocking stream, for byte-level tests.
pub fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let sock = raw_connect(addr);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("client connection");
    rustls::StreamOwned::new(conn, sock)
}
