//! The load generator: connections driven by mio, one `Poll` per generator thread.
//!
//! Each thread owns a share of the connections. It connects them all, waits
//! for the go signal, then keeps `--pipeline` requests in flight on each
//! connection (closed loop), or sends on a fixed schedule (open loop,
//! `--rate`), with latency taken from each request's *intended* send time so
//! that a slow server cannot hide its queueing (no coordinated omission, as
//! in wrk2). Every response is checked against the request it answers;
//! nothing is dropped: each request sent ends up answered correctly, answered
//! wrongly, lost with its connection, or unanswered at the end.
//!
//! A request belongs to the measured window when it was (meant to be) sent
//! at or after the end of the warmup; the counts of the warmup are kept apart.
//!
//! With a [`Setup`], each connection first does a TLS handshake and/or logs
//! in (`auth`), before the go signal: neither is timed. Over TLS the same
//! loop reads and writes through rustls's `ClientConnection` (on mio, as
//! rustls's own `tlsclient-mio` example does); a plaintext connection takes
//! the path it always took, plus one `Option` test per read and write.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use serde::Serialize;

use super::workload::{Op, Rng, Verdict, Workload};
use reactor_rpc::client::DEFAULT_MAX_RESPONSE;
use reactor_rpc::protocol::buffer::{WriteBuffer, READ_CHUNK};
use reactor_rpc::protocol::{decode, Decoded, HEADER_LEN};

/// When the measured window ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many measured requests.
    Requests(u64),
    /// After this long (requests already in flight are still awaited).
    Duration(Duration),
}

/// Everything a load run needs, besides the workload.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub conns: usize,
    pub threads: usize,
    pub pipeline: usize,
    /// Closed loop: send the next `pipeline` requests only when all in flight
    /// are answered (`redis-benchmark -P`'s shape), instead of topping up.
    pub batch: bool,
    pub until: Until,
    pub warmup: Duration,
    /// Open loop: requests per second over all connections.
    pub rate: Option<f64>,
    pub connect_timeout: Duration,
    /// Give up waiting when requests are in flight and none is answered for this long.
    pub timeout: Duration,
    /// Print a live progress line on stderr (only when it is a terminal).
    pub progress: bool,
    /// What each connection does before the timed requests.
    pub setup: Setup,
}

/// What each connection does once connected, before the go signal: a TLS
/// handshake, a login, or both (TLS first). Not timed.
#[derive(Clone, Default)]
pub struct Setup {
    /// TLS: the client configuration and the name the server's certificate
    /// must be valid for.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The `auth` request, framed (length prefix included), sent first; its
    /// answer must be `true`.
    pub auth_frame: Option<Vec<u8>>,
}

impl std::fmt::Debug for Setup {
    // The auth frame holds a password: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .field("auth", &self.auth_frame.is_some())
            .finish()
    }
}

impl Setup {
    fn is_empty(&self) -> bool {
        self.tls.is_none() && self.auth_frame.is_none()
    }
}

/// What became of the requests of one phase (warmup or measured).
/// `sent == ok + failed()` always holds.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Counts {
    pub sent: u64,
    pub ok: u64,
    pub error_responses: u64,
    pub wrong_out: u64,
    pub wrong_result: u64,
    pub out_of_order: u64,
    pub malformed: u64,
    /// In flight on a connection the server closed (or reset).
    pub lost_on_close: u64,
    /// Still unanswered when the run ended (see `LoadConfig::timeout`).
    pub unanswered: u64,
}

impl Counts {
    pub fn failed(&self) -> u64 {
        self.error_responses
            + self.wrong_out
            + self.wrong_result
            + self.out_of_order
            + self.malformed
            + self.lost_on_close
            + self.unanswered
    }

    fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.error_responses += o.error_responses;
        self.wrong_out += o.wrong_out;
        self.wrong_result += o.wrong_result;
        self.out_of_order += o.out_of_order;
        self.malformed += o.malformed;
        self.lost_on_close += o.lost_on_close;
        self.unanswered += o.unanswered;
    }
}

/// Connection-level outcomes.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ConnCounts {
    pub requested: usize,
    pub connected: usize,
    pub connect_failed: usize,
    /// Closed or reset by the server during the run.
    pub closed_by_server: usize,
    /// Connected, sent requests, and never got a single response (e.g. a
    /// `pool` server with fewer threads than connections).
    pub unserved: usize,
}

/// The outcome of a load run, all threads merged.
pub struct LoadResult {
    pub warmup: Counts,
    pub measured: Counts,
    pub conns: ConnCounts,
    /// Responses that answered no request at all.
    pub unsolicited: u64,
    pub get_hits: u64,
    pub get_misses: u64,
    /// Latency of the measured requests that succeeded, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// From the end of the warmup to the last measured response.
    pub elapsed: Duration,
    /// A few examples of what went wrong, for the summary.
    pub error_samples: Vec<String>,
}

/// Hooks called by [`run`] at the edges of the measured window.
pub trait Window {
    /// At the end of the warmup.
    fn start(&mut self);
    /// After the last response, before the connections are closed.
    fn end(&mut self);
}

/// Runs the load and returns what happened.
pub fn run(
    cfg: &LoadConfig,
    workload: Arc<Workload>,
    window: &mut dyn Window,
) -> io::Result<LoadResult> {
    let threads = cfg.threads.clamp(1, cfg.conns.max(1));
    let progress: Arc<Vec<Meter>> = Arc::new((0..threads).map(|_| Meter::default()).collect());
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::new();
    let mut go = Vec::new();
    for t in 0..threads {
        let conns = cfg.conns / threads + usize::from(t < cfg.conns % threads);
        let share = conns as f64 / cfg.conns.max(1) as f64;
        let quota = match cfg.until {
            Until::Requests(n) => {
                Some(n / threads as u64 + u64::from((t as u64) < n % threads as u64))
            }
            Until::Duration(_) => None,
        };
        let (go_tx, go_rx) = mpsc::channel::<Instant>();
        go.push(go_tx);
        let mut worker = Worker::new(cfg, t, conns, quota, cfg.rate.map(|r| r * share))?;
        let (workload, progress, ready_tx) = (workload.clone(), progress.clone(), ready_tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("bench-gen-{t}"))
            .spawn(move || -> io::Result<Worker> {
                worker.connect_all()?;
                // If main is gone there is nobody to report to; stop quietly.
                let _ = ready_tx.send(());
                let Ok(t0) = go_rx.recv() else {
                    return Ok(worker);
                };
                worker.run(&workload, t0, &progress[t])?;
                Ok(worker)
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    // Wait for every thread to be connected (or to have failed).
    for _ in 0..threads {
        if ready_rx.recv().is_err() {
            break;
        }
    }
    let t0 = Instant::now();
    for tx in &go {
        let _ = tx.send(t0);
    }
    let t_start = t0 + cfg.warmup;
    let tty = cfg.progress && io::stderr().is_terminal();
    let mut next_tick = t0 + Duration::from_secs(1);
    let mut last = (t0, 0u64);
    let mut started = false;
    while !handles.iter().all(|h| h.is_finished()) {
        let now = Instant::now();
        if !started && now >= t_start {
            window.start();
            started = true;
        }
        if tty && now >= next_tick {
            let done: u64 = progress
                .iter()
                .map(|m| m.done.load(Ordering::Relaxed))
                .sum();
            let failed: u64 = progress
                .iter()
                .map(|m| m.failed.load(Ordering::Relaxed))
                .sum();
            let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64();
            let phase = if now < t_start { "warmup" } else { "measuring" };
            eprint!(
                "\r  {:6.1}s {phase:9} {done:>11} done {:>10.0} req/s {failed} failed   ",
                (now - t0).as_secs_f64(),
                rate
            );
            let _ = io::stderr().flush();
            last = (now, done);
            next_tick += Duration::from_secs(1);
        }
        let mut wake = now + Duration::from_millis(50);
        if !started {
            wake = wake.min(t_start);
        }
        std::thread::sleep(wake.saturating_duration_since(now));
    }
    if tty {
        eprintln!();
    }
    if !started {
        window.start();
    }
    let mut workers = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(w)) => workers.push(w),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a generator thread panicked")),
        }
    }
    window.end();
    Ok(merge(workers, t_start))
}

fn merge(workers: Vec<Worker>, t_start: Instant) -> LoadResult {
    let mut r = LoadResult {
        warmup: Counts::default(),
        measured: Counts::default(),
        conns: ConnCounts::default(),
        unsolicited: 0,
        get_hits: 0,
        get_misses: 0,
        latency_ns: new_histogram(),
        elapsed: Duration::ZERO,
        error_samples: Vec::new(),
    };
    for w in &workers {
        r.warmup.add(&w.counts[0]);
        r.measured.add(&w.counts[1]);
        r.conns.requested += w.requested;
        r.conns.connected += w.connected;
        r.conns.connect_failed += w.requested - w.connected;
        r.conns.closed_by_server += w.closed;
        r.conns.unserved += w.unserved;
        r.unsolicited += w.unsolicited;
        r.get_hits += w.get_hits;
        r.get_misses += w.get_misses;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = r.latency_ns.add(&w.hist);
        if let Some(t) = w.last_measured {
            r.elapsed = r.elapsed.max(t.saturating_duration_since(t_start));
        }
        for s in &w.samples {
            if r.error_samples.len() < MAX_SAMPLES {
                r.error_samples.push(s.clone());
            }
        }
    }
    r
}

const MAX_SAMPLES: usize = 5;

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 1 hour at 3 significant digits; these bounds are valid constants.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Live counters of one thread, read by the progress line. One cache line each.
#[derive(Default)]
#[repr(align(64))]
struct Meter {
    done: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    /// Connected; the TLS handshake or the login is under way.
    Setup,
    Open,
    Dead,
}

/// Where a connection's setup stands.
enum SetupStep {
    Pending,
    Done,
    Failed(String),
}

/// One request in flight.
struct Flight {
    op: Op,
    intended: Instant,
}

struct Conn {
    stream: TcpStream,
    /// TLS over `stream`, when the run is over TLS.
    tls: Option<Box<ClientConnection>>,
    state: State,
    /// The start of a response split across reads (usually empty).
    partial: Vec<u8>,
    wbuf: WriteBuffer,
    inflight: VecDeque<Flight>,
    /// Sequence number of the next request to send (= requests sent).
    next_seq: u64,
    /// Open loop: requests scheduled on this connection so far.
    scheduled: u64,
    answered: bool,
}

/// One generator thread and its connections.
struct Worker {
    addr: SocketAddr,
    setup: Setup,
    poll: Poll,
    /// Connections asked for; those that could not even start are not in `conns`.
    requested: usize,
    conns: Vec<Conn>,
    rng: Rng,
    /// Where every socket read lands first; only a partial frame is copied out.
    scratch: Vec<u8>,
    pipeline: usize,
    batch: bool,
    until: Until,
    warmup: Duration,
    /// Measured requests this thread sends in `Until::Requests` mode.
    quota: Option<u64>,
    /// Open loop: this thread's requests per second.
    rate: Option<f64>,
    timer: Option<OwnedFd>,
    connect_timeout: Duration,
    timeout: Duration,
    // Results.
    connected: usize,
    /// Connections open right now.
    live: usize,
    closed: usize,
    unserved: usize,
    unsolicited: u64,
    get_hits: u64,
    get_misses: u64,
    /// [warmup, measured].
    counts: [Counts; 2],
    hist: Histogram<u64>,
    last_measured: Option<Instant>,
    samples: Vec<String>,
}

const TIMER: Token = Token(usize::MAX);

impl Worker {
    fn new(
        cfg: &LoadConfig,
        index: usize,
        conns: usize,
        quota: Option<u64>,
        rate: Option<f64>,
    ) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let timer = match rate {
            Some(_) => Some(timerfd(&poll)?),
            None => None,
        };
        let mut w = Worker {
            addr: cfg.addr,
            setup: cfg.setup.clone(),
            poll,
            requested: conns,
            conns: Vec::with_capacity(conns),
            rng: Rng::new(index as u64 + 1),
            scratch: vec![0; READ_CHUNK],
            pipeline: cfg.pipeline.max(1),
            batch: cfg.batch,
            until: cfg.until,
            warmup: cfg.warmup,
            quota,
            rate,
            timer,
            connect_timeout: cfg.connect_timeout,
            timeout: cfg.timeout,
            connected: 0,
            live: 0,
            closed: 0,
            unserved: 0,
            unsolicited: 0,
            get_hits: 0,
            get_misses: 0,
            counts: [Counts::default(); 2],
            hist: new_histogram(),
            last_measured: None,
            samples: Vec::new(),
        };
        for _ in 0..conns {
            w.open()?;
        }
        Ok(w)
    }

    /// Starts one non-blocking connect; a failure to even start counts as a failed connect.
    fn open(&mut self) -> io::Result<()> {
        let token = Token(self.conns.len());
        let mut stream = match TcpStream::connect(self.addr) {
            Ok(stream) => stream,
            Err(e) => {
                self.sample(format!("connect: {e}"));
                return Ok(());
            }
        };
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns.push(Conn {
            stream,
            tls: None,
            state: State::Connecting,
            partial: Vec::new(),
            wbuf: WriteBuffer::new(),
            inflight: VecDeque::with_capacity(self.pipeline),
            next_seq: 0,
            scheduled: 0,
            answered: false,
        });
        Ok(())
    }

    fn sample(&mut self, s: String) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(s);
        }
    }

    /// Waits until every connection is established or has failed.
    fn connect_all(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut pending = self
            .conns
            .iter()
            .filter(|c| c.state == State::Connecting)
            .count();
        let mut events = Events::with_capacity(1024);
        while pending > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            poll(&mut self.poll, &mut events, Some(deadline - now))?;
            for ev in events.iter() {
                let i = ev.token().0;
                let Some(c) = self.conns.get_mut(i) else {
                    continue;
                };
                let step = match c.state {
                    State::Connecting => {
                        let outcome = match c.stream.take_error() {
                            Ok(Some(e)) | Err(e) => Err(e),
                            Ok(None) => match c.stream.peer_addr() {
                                Ok(_) => Ok(true),
                                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                                Err(e) => Err(e),
                            },
                        };
                        match outcome {
                            Ok(false) => continue,
                            Ok(true) => {
                                // Latency matters more than packet count here, as in the servers.
                                let _ = c.stream.set_nodelay(true);
                                self.begin_setup(i)
                            }
                            Err(e) => SetupStep::Failed(format!("connect: {e}")),
                        }
                    }
                    State::Setup => self.advance_setup(i),
                    State::Open | State::Dead => continue,
                };
                match step {
                    SetupStep::Pending => continue,
                    SetupStep::Done => {
                        self.conns[i].state = State::Open;
                        self.connected += 1;
                        self.live += 1;
                    }
                    SetupStep::Failed(why) => {
                        self.kill_quietly(i);
                        self.sample(why);
                    }
                }
                pending -= 1;
            }
        }
        for i in 0..self.conns.len() {
            let what = match self.conns[i].state {
                State::Connecting => "connect",
                State::Setup => "TLS handshake or auth",
                State::Open | State::Dead => continue,
            };
            self.kill_quietly(i);
            self.sample(format!(
                "{what}: no answer within {:?}",
                self.connect_timeout
            ));
        }
        Ok(())
    }

    /// Connection `i` is connected: starts its TLS handshake and queues its
    /// login, if the run has them.
    fn begin_setup(&mut self, i: usize) -> SetupStep {
        if self.setup.is_empty() {
            return SetupStep::Done;
        }
        let c = &mut self.conns[i];
        c.state = State::Setup;
        if let Some((config, name)) = &self.setup.tls {
            match ClientConnection::new(config.clone(), name.clone()) {
                Ok(tls) => c.tls = Some(Box::new(tls)),
                Err(e) => return SetupStep::Failed(format!("TLS: {e}")),
            }
        }
        if let Some(frame) = &self.setup.auth_frame {
            match c.tls.as_deref_mut() {
                // Held by rustls until the handshake is done.
                Some(tls) => {
                    if let Err(e) = tls.writer().write_all(frame) {
                        return SetupStep::Failed(format!("TLS: {e}"));
                    }
                }
                None => c.wbuf.vec_mut().extend_from_slice(frame),
            }
        }
        self.advance_setup(i)
    }

    /// Moves connection `i`'s setup on as far as the socket allows.
    fn advance_setup(&mut self, i: usize) -> SetupStep {
        let mut scratch = std::mem::take(&mut self.scratch);
        let step = self.conns[i].advance_setup(&mut scratch, self.setup.auth_frame.is_some());
        self.scratch = scratch;
        step
    }

    fn kill_quietly(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.state == State::Open {
            self.live -= 1;
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        c.state = State::Dead;
    }

    /// The main loop, from `t0` (start of the warmup) to the end.
    fn run(&mut self, workload: &Workload, t0: Instant, meter: &Meter) -> io::Result<()> {
        let t_start = t0 + self.warmup;
        let t_end = match self.until {
            Until::Duration(d) => Some(t_start + d),
            Until::Requests(_) => None,
        };
        let mut events = Events::with_capacity(1024);
        let mut inflight: usize = 0;
        let mut last_progress = t0;
        // Open loop: the next request to schedule, over all of this thread's connections.
        let mut cursor: u64 = 0;
        let mut measured_scheduled: u64 = 0;
        let mut timer_armed = false;
        let n = self.conns.len().max(1) as u64;
        let intended = |rate: f64, k: u64| t0 + Duration::from_secs_f64(k as f64 / rate);
        let mut now = t0;
        let mut to_send: Vec<usize> = (0..self.conns.len()).collect();
        let mut batch = Vec::with_capacity(to_send.len());
        loop {
            // Who may still send?
            let sending = match t_end {
                Some(end) => now < end,
                None => self.quota.is_some_and(|q| {
                    if self.rate.is_some() {
                        measured_scheduled < q
                    } else {
                        self.counts[1].sent < q
                    }
                }),
            };
            // Open loop: schedule every request whose intended time has come and
            // lies inside the run, even when the loop wakes up late (after the
            // end): the schedule, not the wall clock, decides what is sent, and
            // the lateness shows up in the latency.
            if let Some(rate) = self.rate {
                loop {
                    let t = intended(rate, cursor);
                    if t > now {
                        break;
                    }
                    if t_end.is_some_and(|e| t >= e)
                        || (t >= t_start && self.quota.is_some_and(|q| measured_scheduled >= q))
                    {
                        break;
                    }
                    if t >= t_start {
                        measured_scheduled += 1;
                    }
                    let i = (cursor % n) as usize;
                    cursor += 1;
                    if let Some(c) = self.conns.get_mut(i) {
                        c.scheduled += 1;
                        to_send.push(i);
                    }
                }
            }
            std::mem::swap(&mut to_send, &mut batch);
            for &i in &batch {
                let sent = self.fill(i, workload, now, t0, t_start, sending);
                inflight += sent;
                if self.conns[i].state == State::Open && self.conns[i].has_output() {
                    inflight -= self.flush(i, t_start);
                }
            }
            batch.clear();
            // Finished?
            let backlog = || {
                self.conns
                    .iter()
                    .any(|c| c.state == State::Open && c.scheduled > c.next_seq)
            };
            if !sending && inflight == 0 && (self.rate.is_none() || !backlog()) {
                break;
            }
            if self.live == 0 {
                break;
            }
            if inflight > 0 && now.saturating_duration_since(last_progress) >= self.timeout {
                break;
            }
            // Sleep until something happens or a deadline passes.
            let mut wake: Option<Instant> = None;
            let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
            if let Some(end) = t_end.filter(|&e| e > now) {
                at(end);
            }
            if inflight > 0 {
                at(last_progress + self.timeout);
            }
            if let (Some(rate), true) = (self.rate, sending) {
                let next = intended(rate, cursor);
                if !timer_armed {
                    if let Some(fd) = &self.timer {
                        arm(fd, next.saturating_duration_since(now))?;
                        timer_armed = true;
                    }
                }
            }
            let timeout = wake.map(|w| w.saturating_duration_since(now));
            poll(&mut self.poll, &mut events, timeout)?;
            now = Instant::now();
            for ev in events.iter() {
                if ev.token() == TIMER {
                    if let Some(fd) = &self.timer {
                        drain_timer(fd);
                    }
                    timer_armed = false;
                    continue;
                }
                let i = ev.token().0;
                if self.conns.get(i).is_none_or(|c| c.state != State::Open) {
                    continue;
                }
                if ev.is_writable() && self.conns[i].has_output() {
                    inflight -= self.flush(i, t_start);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    let (answered, lost) = self.on_readable(i, workload, now, t_start);
                    inflight -= answered + lost;
                    if answered > 0 {
                        last_progress = now;
                    }
                    if self.conns[i].state == State::Open {
                        to_send.push(i);
                    }
                }
            }
            let c = &self.counts;
            meter.done.store(
                c[0].ok + c[1].ok + c[0].failed() + c[1].failed(),
                Ordering::Relaxed,
            );
            meter
                .failed
                .store(c[0].failed() + c[1].failed(), Ordering::Relaxed);
        }
        // Whatever is still in flight was never answered.
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.state == State::Open && !c.answered && c.next_seq > 0 {
                self.unserved += 1;
            }
            for f in std::mem::take(&mut c.inflight) {
                self.counts[usize::from(f.intended >= t_start)].unanswered += 1;
            }
        }
        let unanswered = self.counts[0].unanswered + self.counts[1].unanswered;
        if unanswered > 0 {
            self.sample(format!(
                "{unanswered} requests unanswered after {:?} without progress",
                self.timeout
            ));
        }
        Ok(())
    }

    /// Queues requests on connection `i` up to the pipeline depth (closed
    /// loop) or up to what is scheduled (open loop). Returns how many.
    fn fill(
        &mut self,
        i: usize,
        workload: &Workload,
        now: Instant,
        t0: Instant,
        t_start: Instant,
        sending: bool,
    ) -> usize {
        let n = self.conns.len() as u64;
        let (index, rate, quota) = (i as u64, self.rate, self.quota);
        let c = &mut self.conns[i];
        if c.state != State::Open {
            return 0;
        }
        if self.batch && rate.is_none() && !c.inflight.is_empty() {
            return 0; // the batch is not fully answered yet
        }
        let mut queued = 0;
        while c.inflight.len() < self.pipeline {
            let intended = match rate {
                Some(r) => {
                    if c.next_seq >= c.scheduled {
                        break;
                    }
                    let k = index + c.next_seq * n;
                    t0 + Duration::from_secs_f64(k as f64 / r)
                }
                None => {
                    if !sending
                        || (now >= t_start && quota.is_some_and(|q| self.counts[1].sent >= q))
                    {
                        break;
                    }
                    now
                }
            };
            let op = workload.write_request(&mut self.rng, c.next_seq, c.wbuf.vec_mut());
            c.next_seq += 1;
            c.inflight.push_back(Flight { op, intended });
            self.counts[usize::from(intended >= t_start)].sent += 1;
            queued += 1;
        }
        queued
    }

    /// Writes what is pending on connection `i`. Returns requests lost if it broke.
    fn flush(&mut self, i: usize, t_start: Instant) -> usize {
        let c = &mut self.conns[i];
        if let Some(tls) = c.tls.as_deref_mut() {
            return match flush_tls(tls, &mut c.stream, &mut c.wbuf) {
                Ok(()) => 0,
                Err(e) => self.lose(i, t_start, format!("write: {e}")),
            };
        }
        while !c.wbuf.is_empty() {
            match c.wbuf.write_to(&mut c.stream) {
                Ok(0) => return self.lose(i, t_start, "server stopped reading".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lose(i, t_start, format!("write: {e}")),
            }
        }
        0
    }

    /// Reads and checks responses on connection `i`. Returns (answered, lost).
    fn on_readable(
        &mut self,
        i: usize,
        workload: &Workload,
        now: Instant,
        t_start: Instant,
    ) -> (usize, usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut answered = 0;
        let mut lost = 0;
        let tls = self.conns[i].tls.is_some();
        loop {
            let n = match self.conns[i].read(&mut scratch) {
                Ok(0) => {
                    lost = self.lose(i, t_start, "connection closed by the server".into());
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    lost = self.lose(i, t_start, format!("read: {e}"));
                    break;
                }
            };
            let mut partial = std::mem::take(&mut self.conns[i].partial);
            let from_partial = !partial.is_empty();
            if from_partial {
                partial.extend_from_slice(&scratch[..n]);
            }
            let data = if from_partial {
                &partial[..]
            } else {
                &scratch[..n]
            };
            match self.check_frames(i, data, workload, now, t_start) {
                Ok((consumed, k)) => {
                    answered += k;
                    if from_partial {
                        partial.drain(..consumed);
                    } else {
                        partial.extend_from_slice(&scratch[consumed..n]);
                    }
                    self.conns[i].partial = partial;
                }
                Err((k, l)) => {
                    answered += k;
                    lost = l;
                    break;
                }
            }
            if n < scratch.len() && !tls {
                // A short read: the socket is drained; the next arrival
                // raises a new edge. (Not so for TLS: a short read of
                // plaintext says nothing of the socket.)
                break;
            }
        }
        self.scratch = scratch;
        // Reading may have queued TLS records to send (an alert, a key update).
        if lost == 0 && self.conns[i].tls.as_ref().is_some_and(|t| t.wants_write()) {
            lost = self.flush(i, t_start);
        }
        (answered, lost)
    }

    /// Checks the whole responses at the front of `data` against the requests
    /// in flight on connection `i`. Returns (bytes consumed, answered), or
    /// (answered, lost) when the stream is broken.
    fn check_frames(
        &mut self,
        i: usize,
        data: &[u8],
        workload: &Workload,
        now: Instant,
        t_start: Instant,
    ) -> Result<(usize, usize), (usize, usize)> {
        let (mut pos, mut answered) = (0, 0);
        loop {
            let body_len = match decode(&data[pos..], DEFAULT_MAX_RESPONSE) {
                Decoded::Frame { body_len } => body_len,
                Decoded::Incomplete { .. } => return Ok((pos, answered)),
                Decoded::TooLarge { body_len } => {
                    let why = format!("a length prefix of {body_len} bytes: not a response");
                    return Err((answered, self.lose(i, t_start, why)));
                }
            };
            let body = &data[pos + HEADER_LEN..pos + HEADER_LEN + body_len];
            pos += HEADER_LEN + body_len;
            let c = &mut self.conns[i];
            let Some(f) = c.inflight.pop_front() else {
                self.unsolicited += 1;
                self.sample("a response to no request".into());
                continue;
            };
            let seq = c.next_seq - c.inflight.len() as u64 - 1;
            c.answered = true;
            answered += 1;
            let measured = f.intended >= t_start;
            let counts = &mut self.counts[usize::from(measured)];
            let verdict = workload.check(f.op, seq, body);
            match verdict {
                Verdict::Ok { hit } => {
                    counts.ok += 1;
                    if f.op == Op::Get {
                        *if hit {
                            &mut self.get_hits
                        } else {
                            &mut self.get_misses
                        } += 1;
                    }
                    if measured {
                        let ns = now.saturating_duration_since(f.intended).as_nanos();
                        self.hist.saturating_record(ns as u64);
                        self.last_measured = Some(now);
                    }
                    continue;
                }
                Verdict::ErrorResponse(_) => counts.error_responses += 1,
                Verdict::WrongOut(_) => counts.wrong_out += 1,
                Verdict::WrongResult => counts.wrong_result += 1,
                Verdict::OutOfOrder => counts.out_of_order += 1,
                Verdict::Malformed => counts.malformed += 1,
            }
            let text = String::from_utf8_lossy(&body[..body.len().min(160)]);
            self.sample(format!("{verdict:?} (request {seq}): {text}"));
        }
    }

    /// Connection `i` broke: everything in flight on it is lost. Returns how many.
    fn lose(&mut self, i: usize, t_start: Instant, why: String) -> usize {
        self.kill_quietly(i);
        self.closed += 1;
        let c = &mut self.conns[i];
        let lost = c.inflight.len();
        if !c.answered && c.next_seq > 0 {
            self.unserved += 1;
        }
        for f in std::mem::take(&mut c.inflight) {
            self.counts[usize::from(f.intended >= t_start)].lost_on_close += 1;
        }
        c.scheduled = c.next_seq;
        self.sample(format!("{why} ({lost} requests lost)"));
        lost
    }
}

impl Conn {
    /// Whether anything waits to be written: requests, or TLS records.
    #[inline]
    fn has_output(&self) -> bool {
        !self.wbuf.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Reads response bytes: from the socket, or the plaintext TLS yields.
    /// `Ok(0)` is the end of the stream; `WouldBlock` when nothing is there.
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            None => self.stream.read(buf),
            Some(tls) => read_tls(tls, &mut self.stream, buf),
        }
    }

    /// Drives the handshake and the login as far as the socket allows.
    fn advance_setup(&mut self, scratch: &mut [u8], auth: bool) -> SetupStep {
        // Write what is queued: the ClientHello, the login.
        let written = match self.tls.as_deref_mut() {
            Some(tls) => flush_tls(tls, &mut self.stream, &mut self.wbuf),
            None => loop {
                if self.wbuf.is_empty() {
                    break Ok(());
                }
                match self.wbuf.write_to(&mut self.stream) {
                    Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            },
        };
        if let Err(e) = written {
            return SetupStep::Failed(format!("setup: write: {e}"));
        }
        // Read what has come: handshake records, the login's answer.
        loop {
            match self.read(scratch) {
                Ok(0) => {
                    return SetupStep::Failed(
                        "setup: the server closed the connection (TLS refused, or not TLS?)".into(),
                    )
                }
                Ok(n) => self.partial.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return SetupStep::Failed(format!("setup: {e}")),
            }
        }
        // The handshake's last flight (and the login rustls held back).
        if let Some(tls) = self.tls.as_deref_mut() {
            if let Err(e) = flush_tls(tls, &mut self.stream, &mut self.wbuf) {
                return SetupStep::Failed(format!("setup: write: {e}"));
            }
            if tls.is_handshaking() {
                return SetupStep::Pending;
            }
        }
        if !auth {
            return SetupStep::Done;
        }
        match decode(&self.partial, DEFAULT_MAX_RESPONSE) {
            Decoded::Incomplete { .. } => SetupStep::Pending,
            Decoded::TooLarge { body_len } => {
                SetupStep::Failed(format!("auth: a length prefix of {body_len} bytes"))
            }
            Decoded::Frame { body_len } => {
                let body = &self.partial[HEADER_LEN..HEADER_LEN + body_len];
                let ok = serde_json::from_slice::<serde_json::Value>(body)
                    .is_ok_and(|v| v["out"] != "error" && v["result"] == true);
                if !ok {
                    let text = String::from_utf8_lossy(&body[..body.len().min(160)]);
                    return SetupStep::Failed(format!("auth refused: {text}"));
                }
                self.partial.drain(..HEADER_LEN + body_len);
                SetupStep::Done
            }
        }
    }
}

/// Hands `wbuf` to rustls and rustls's records to the socket, until both
/// are empty or the socket is full.
fn flush_tls(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    wbuf: &mut WriteBuffer,
) -> io::Result<()> {
    loop {
        let taken = if wbuf.is_empty() {
            0
        } else {
            wbuf.write_to(&mut tls.writer())?
        };
        let mut blocked = false;
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if blocked || wbuf.is_empty() || taken == 0 {
            return Ok(());
        }
    }
}

/// Reads plaintext from `tls`, reading records from `stream` as needed.
/// `Ok(0)`: the server closed (cleanly or not); `WouldBlock`: nothing yet.
fn read_tls(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // Closed without close_notify: the end of the stream all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        let eof = tls.read_tls(stream)? == 0;
        tls.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if eof {
            return match tls.reader().read(buf) {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                Err(e) => Err(e),
            };
        }
    }
}

fn poll(p: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    match p.poll(events, timeout) {
        Ok(()) => Ok(()),
        // A signal or a tracer attaching: just look again.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A non-blocking timerfd registered on `poll`: epoll's own timeout has
/// millisecond resolution, too coarse for an open-loop schedule.
fn timerfd(poll: &Poll) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    poll.registry()
        .register(&mut SourceFd(&fd.as_raw_fd()), TIMER, Interest::READABLE)?;
    Ok(fd)
}

/// Makes the timer fire once, `after` from now (at least 1 ns: zero disarms it).
fn arm(fd: &OwnedFd, after: Duration) -> io::Result<()> {
    let after = after.max(Duration::from_nanos(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: after.as_secs() as libc::time_t,
            tv_nsec: after.subsec_nanos() as libc::c_long,
        },
    };
    // SAFETY: valid descriptor and a valid itimerspec; the old value is not wanted.
    if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn drain_timer(fd: &OwnedFd) {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into our buffer; EAGAIN is fine.
    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
}
