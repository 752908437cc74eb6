//! `reactor-rpc bench`: load a server and report what it costs.
//!
//! One run loads one server (given by `--addr`, or started with `--spawn`)
//! from a mio-based generator ([`load`]) with a workload ([`workload`]), and
//! reports throughput, latency percentiles from an HDR histogram, and, when
//! the server's pid is known, its CPU time per request and its memory (from
//! `/proc`, through `reactor_rpc::ops::procfs`). The generator reports its
//! own CPU per request too ([`procfs`]), so a reader can see it is not the
//! bottleneck. `--sweep` repeats that over models × connection counts and
//! draws the result ([`sweep`]).
//!
//! Every response is checked; any failed request makes the command exit
//! non-zero, and so does a connection that could not be made (the figures
//! would not describe the load asked for). Every report carries the
//! [`machine`] it was measured on.
//!
//! Never linked into the server: like Redis's `redis-benchmark`, it reuses
//! the library (the client's framing, the models' names) from the outside.
//!
//! # Layout
//!
//! * [`load`]: the generator: connections on mio, closed or open loop,
//!   latency from each request's intended send time.
//! * [`workload`]: what is sent (`ping`, `fib`, the cache) and the check of
//!   every response.
//! * [`spawn`]: `reactor-rpc serve` started on a free port and stopped after.
//! * [`sweep`]: models × connection counts, written as CSV, JSON and an SVG.
//! * [`machine`]: the host, CPUs, kernel, commit and date beside every figure.
//! * [`procfs`]: the generator's own CPU time and the open-file limit.
//! * this file: the `bench` flags ([`BenchArgs`]), one run, and its report.

pub mod load;
pub mod machine;
pub mod procfs;
pub mod spawn;
pub mod sweep;
pub mod workload;

use std::error::Error;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use load::{ConnCounts, Counts, LoadConfig, Setup, Until, Window};
use machine::Machine;
use reactor_rpc::client::{host_of, TlsConnector};
use reactor_rpc::ops::procfs::{self as proc, Pid};
use reactor_rpc::protocol::frame::{begin_frame, end_frame};
use reactor_rpc::tls::secret_file::read_secret;
use reactor_rpc::Model;
use rustls::pki_types::ServerName;
use workload::{Kind, Spec, Workload};

/// Flags of `reactor-rpc bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Load a server already running at this address.
    #[arg(long, conflicts_with = "spawn")]
    pub addr: Option<String>,
    /// Start `reactor-rpc serve --model MODEL` (reactor, threaded, pool, tokio, tokio-mt) on a
    /// free port, load it, then stop it.
    #[arg(long)]
    pub spawn: Option<Model>,
    /// Pid of the server at `--addr`, for its CPU and memory figures.
    #[arg(long, requires = "addr")]
    pub server_pid: Option<u32>,
    /// Extra flag for spawned servers, e.g. `--serve-arg=--no-offload` (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// Connections.
    #[arg(long, default_value_t = 50)]
    pub conns: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Send whole batches of `--pipeline` requests, each once the previous batch
    /// is fully answered (like `redis-benchmark -P`); default: top up after every read.
    #[arg(long)]
    pub batch: bool,
    /// Measure this many requests (after the warmup)...
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// ...or measure for this many seconds [default: 5].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Kind::Ping)]
    pub workload: Kind,
    /// The string `ping` sends (and expects back).
    #[arg(long, default_value = "hello")]
    pub ping_param: String,
    /// n for the `fib` workload.
    #[arg(long, default_value_t = 30)]
    pub fib_n: u64,
    /// Key space of the `cache` workload.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Bytes in each value `set` stores.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Share of `get` among cache requests (the rest are `set`).
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Open loop: send this many requests per second in total, on a fixed
    /// schedule; latency counts from each request's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Write every figure to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Generator threads (each with its own mio Poll; connections are spread over them).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds to wait for connections to be established.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds without any response, while requests are in flight, after which
    /// the rest count as unanswered (e.g. connections a `pool` server never serves).
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
    /// Run models × connection counts, each against a freshly spawned server.
    #[arg(long, conflicts_with_all = ["addr", "spawn"])]
    pub sweep: bool,
    /// Models of the sweep [default: every model built in].
    #[arg(long, value_delimiter = ',', default_values_t = Model::ALL, hide_default_value = true)]
    pub models: Vec<Model>,
    /// Connection counts of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    pub conns_list: Vec<usize>,
    /// Directory for the sweep's sweep.csv, sweep.json and sweep.svg.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// Method name of the ping workload (a test hook: an unknown one makes every answer an error).
    #[arg(long, default_value = "ping", hide = true)]
    pub method: String,
    /// Connect over TLS (needs --cacert), verifying the server's certificate
    /// against the host of --addr (127.0.0.1 for --spawn). The handshake is
    /// done before the warmup and not timed.
    #[arg(long)]
    pub tls: bool,
    /// CA certificate(s), PEM, that signed the server's certificate.
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,
    /// Client certificate chain, PEM, for mutual TLS (with --key).
    #[arg(long, value_name = "PATH")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key, PEM (with --cert).
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Log in as this user (default: `default`); needs --password-file.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Each connection logs in (`auth`) with the password in this file, once,
    /// before the warmup; not timed.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

/// What each connection does before the timed requests, from the flags:
/// the TLS client config and the `auth` frame.
fn setup(args: &BenchArgs, host: &str) -> Result<Setup, Box<dyn Error>> {
    if args.cert.is_some() != args.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    let tls = if args.tls {
        let ca = args
            .cacert
            .as_deref()
            .ok_or("--tls needs --cacert PATH (the CA that signed the server's certificate)")?;
        let identity = args.cert.as_deref().zip(args.key.as_deref());
        let connector = TlsConnector::from_files(ca, identity)?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} is not a server name: {e}"))?;
        Some((connector.config().clone(), name))
    } else {
        if args.cacert.is_some() || args.cert.is_some() {
            return Err("--cacert, --cert and --key need --tls".into());
        }
        None
    };
    let auth_frame = match &args.password_file {
        Some(path) => {
            let password = String::from_utf8(read_secret(path)?)
                .map_err(|_| format!("{}: the password is not UTF-8", path.display()))?;
            let mut params = serde_json::Map::new();
            if let Some(user) = &args.user {
                params.insert("user".into(), user.clone().into());
            }
            params.insert("password".into(), password.into());
            let request = serde_json::json!({"in": "auth", "params": params});
            let mut frame = Vec::new();
            let start = begin_frame(&mut frame);
            serde_json::to_writer(&mut frame, &request)?;
            end_frame(&mut frame, start);
            Some(frame)
        }
        None if args.user.is_some() => return Err("--user needs --password-file".into()),
        None => None,
    };
    Ok(Setup { tls, auth_frame })
}

/// Runs a benchmark, or a sweep.
pub fn run(args: BenchArgs) -> Result<(), Box<dyn Error>> {
    if args.sweep {
        return sweep::run(&args);
    }
    let target = match (&args.addr, args.spawn) {
        (Some(addr), _) => Target::Addr(resolve(addr)?, args.server_pid),
        (None, Some(model)) => Target::Spawn(model),
        (None, None) => {
            return Err(
                "nothing to load: use --addr HOST:PORT (a running server) or \
                        --spawn MODEL (start one), or --sweep"
                    .into(),
            )
        }
    };
    let (limit, note) = procfs::raise_nofile(args.conns as u64 + procfs::SPARE_FDS);
    if let Some(note) = note {
        eprintln!("bench: {note}");
    }
    if (args.conns as u64) + procfs::SPARE_FDS > limit {
        return Err(format!(
            "{} connections do not fit in {limit} open files",
            args.conns
        )
        .into());
    }
    let machine = Machine::here();
    let mut report = run_one(&args, target)?;
    report.machine = Some(machine);
    print!("{}", report.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(why) = report.connection_failure() {
        return Err(why.into());
    }
    match report.failed {
        0 => Ok(()),
        n => Err(format!("{n} requests failed").into()),
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, Box<dyn Error>> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad --addr {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("--addr {addr} resolves to nothing").into())
}

/// Which server to load.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Already running, maybe with a known pid.
    Addr(SocketAddr, Option<u32>),
    /// Started (and stopped) by us.
    Spawn(Model),
}

/// Loads one server once and gathers every figure.
pub fn run_one(args: &BenchArgs, target: Target) -> Result<Report, Box<dyn Error>> {
    let host = match (&args.addr, target) {
        (Some(text), Target::Addr(..)) => host_of(text).to_string(),
        (_, Target::Addr(addr, _)) => addr.ip().to_string(),
        (_, Target::Spawn(_)) => "127.0.0.1".to_string(),
    };
    // Before spawning anything: a bad flag or file fails at once.
    let setup = setup(args, &host)?;
    let (spawned, addr, pid) = match target {
        Target::Addr(addr, pid) => (None, addr, pid),
        Target::Spawn(model) => {
            let s = spawn::Spawned::start(model, &args.serve_args)?;
            let (addr, pid) = (s.addr, s.pid());
            (Some(s), addr, Some(pid))
        }
    };
    let spec = Spec {
        kind: args.workload,
        ping_method: args.method.clone(),
        ping_param: args.ping_param.clone(),
        fib_n: args.fib_n,
        keys: args.keys,
        value_size: args.value_size,
        read_ratio: args.read_ratio,
    };
    let duration = args.duration.unwrap_or(5.0);
    let cfg = LoadConfig {
        addr,
        conns: args.conns.max(1),
        threads: args.threads.max(1),
        pipeline: args.pipeline.max(1),
        batch: args.batch,
        until: match args.requests {
            Some(n) => Until::Requests(n),
            None => Until::Duration(secs(duration)),
        },
        warmup: secs(args.warmup),
        rate: args.rate.filter(|r| *r > 0.0),
        connect_timeout: secs(args.connect_timeout),
        timeout: secs(args.timeout),
        progress: true,
        setup,
    };
    let mut window = Sampler {
        pid,
        start: None,
        end: None,
    };
    let result = load::run(&cfg, Arc::new(Workload::new(&spec)), &mut window)?;
    let mut notes = Vec::new();
    let server_exit = match spawned {
        Some(s) => Some(s.stop()?),
        None => None,
    };
    let (Some(start), Some(end)) = (window.start, window.end) else {
        return Err("the measured window was not sampled".into());
    };
    let m = &result.measured;
    let answered = m.sent - m.lost_on_close - m.unanswered;
    let per_req = |d: Duration| (answered > 0).then(|| d.as_secs_f64() * 1e6 / answered as f64);
    let wall = end.at - start.at;
    let server = match (pid, start.server_cpu, end.server_cpu) {
        (Some(pid), Some(c0), Some(c1)) => Some(ServerFigures {
            pid,
            cpu_s: (c1 - c0).as_secs_f64(),
            cpu_us_per_request: per_req(c1 - c0),
            cpu_cores: (c1 - c0).as_secs_f64() / wall.as_secs_f64(),
            rss_kb: end.rss_kb.map(|r| r.0),
            peak_rss_kb: end.rss_kb.map(|r| r.1),
            exit: server_exit,
        }),
        (Some(pid), ..) => {
            notes.push(format!("cannot read /proc/{pid}: no server figures"));
            None
        }
        _ => None,
    };
    let gen_cpu = end.self_cpu.saturating_sub(start.self_cpu);
    let h = &result.latency_ns;
    let us = |ns: u64| ns as f64 / 1e3;
    let latency = (!h.is_empty()).then(|| Latency {
        p50: us(h.value_at_quantile(0.50)),
        p90: us(h.value_at_quantile(0.90)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
        mean: h.mean() / 1e3,
    });
    let elapsed = result.elapsed.as_secs_f64();
    Ok(Report {
        machine: None,
        target: TargetInfo {
            addr: addr.to_string(),
            spawned_model: match target {
                Target::Spawn(m) => Some(m.name()),
                Target::Addr(..) => None,
            },
            serve_args: args.serve_args.clone(),
        },
        config: ConfigInfo {
            workload: args.workload,
            conns: cfg.conns,
            pipeline: cfg.pipeline,
            threads: cfg.threads.min(cfg.conns),
            loop_kind: if cfg.rate.is_some() { "open" } else { "closed" },
            rate: cfg.rate,
            requests: args.requests,
            duration_s: args.requests.is_none().then_some(duration),
            warmup_s: args.warmup,
            ping_param: (args.workload == Kind::Ping).then(|| args.ping_param.clone()),
            fib_n: (args.workload == Kind::Fib).then_some(args.fib_n),
            keys: (args.workload == Kind::Cache).then_some(args.keys),
            value_size: (args.workload == Kind::Cache).then_some(args.value_size),
            read_ratio: (args.workload == Kind::Cache).then_some(args.read_ratio),
        },
        connections: result.conns,
        measured: result.measured,
        warmup: result.warmup,
        unsolicited: result.unsolicited,
        failed: result.measured.failed() + result.warmup.failed() + result.unsolicited,
        elapsed_s: elapsed,
        throughput_rps: if elapsed > 0.0 {
            m.ok as f64 / elapsed
        } else {
            0.0
        },
        latency_us: latency,
        cache: (args.workload == Kind::Cache).then_some(CacheFigures {
            get_hits: result.get_hits,
            get_misses: result.get_misses,
        }),
        server,
        generator: GeneratorFigures {
            threads: cfg.threads.min(cfg.conns),
            cpu_s: gen_cpu.as_secs_f64(),
            cpu_us_per_request: per_req(gen_cpu),
            cpu_cores: gen_cpu.as_secs_f64() / wall.as_secs_f64(),
        },
        notes,
        error_samples: result.error_samples,
    })
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// What the OS says at one edge of the measured window.
struct Sample {
    at: Instant,
    server_cpu: Option<Duration>,
    self_cpu: Duration,
    rss_kb: Option<(u64, u64)>,
}

struct Sampler {
    pid: Option<u32>,
    start: Option<Sample>,
    end: Option<Sample>,
}

impl Sampler {
    fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            server_cpu: self.pid.and_then(|p| proc::cpu_time(Pid::Of(p)).ok()),
            self_cpu: procfs::self_cpu(),
            rss_kb: self
                .pid
                .and_then(|p| proc::memory(Pid::Of(p)).ok())
                .map(|m| (m.rss_kb, m.peak_kb)),
        }
    }
}

impl Window for Sampler {
    fn start(&mut self) {
        self.start = Some(self.sample());
    }
    fn end(&mut self) {
        self.end = Some(self.sample());
    }
}

/// Every figure of one run; this is what `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran: set by `bench` for `--json`; a sweep records it once for
    /// all its cells instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
    pub target: TargetInfo,
    pub config: ConfigInfo,
    pub connections: ConnCounts,
    /// Requests sent after the warmup: `sent == ok + every failure count`.
    pub measured: Counts,
    pub warmup: Counts,
    /// Responses that answered no request.
    pub unsolicited: u64,
    /// Every failed request, warmup included, plus unsolicited responses.
    pub failed: u64,
    /// From the end of the warmup to the last measured response.
    pub elapsed_s: f64,
    /// Measured requests answered correctly, per second.
    pub throughput_rps: f64,
    /// Percentiles of the measured requests answered correctly (none if none were).
    pub latency_us: Option<Latency>,
    pub cache: Option<CacheFigures>,
    /// Present when the server's pid is known.
    pub server: Option<ServerFigures>,
    pub generator: GeneratorFigures,
    pub notes: Vec<String>,
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    pub addr: String,
    pub spawned_model: Option<&'static str>,
    pub serve_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigInfo {
    pub workload: Kind,
    pub conns: usize,
    pub pipeline: usize,
    pub threads: usize,
    #[serde(rename = "loop")]
    pub loop_kind: &'static str,
    pub rate: Option<f64>,
    pub requests: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup_s: f64,
    pub ping_param: Option<String>,
    pub fib_n: Option<u64>,
    pub keys: Option<u64>,
    pub value_size: Option<usize>,
    pub read_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheFigures {
    pub get_hits: u64,
    pub get_misses: u64,
}

/// The server, over the measured window (CPU from `/proc/PID/stat`, memory from `/proc/PID/status`).
#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub pid: u32,
    pub cpu_s: f64,
    /// Server CPU (user + system) per answered measured request, in µs.
    pub cpu_us_per_request: Option<f64>,
    /// Average cores busy.
    pub cpu_cores: f64,
    /// VmRSS at the end of the window, connections still open.
    pub rss_kb: Option<u64>,
    /// VmHWM: the most the server ever held.
    pub peak_rss_kb: Option<u64>,
    /// How a spawned server ended after SIGTERM.
    pub exit: Option<String>,
}

/// The generator itself (`getrusage`, all of its threads), over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorFigures {
    pub threads: usize,
    pub cpu_s: f64,
    pub cpu_us_per_request: Option<f64>,
    pub cpu_cores: f64,
}

impl Report {
    /// Why the figures do not describe the load asked for, if some
    /// connections could not be made: one line, for the exit status.
    /// (Connections made but never served, as by a `pool` with fewer threads
    /// than connections, are counted as `unserved` instead.)
    pub fn connection_failure(&self) -> Option<String> {
        let k = &self.connections;
        if k.connect_failed == 0 && k.connected > 0 {
            return None;
        }
        Some(if k.connected == 0 {
            format!(
                "no connection to {} succeeded ({} tried): nothing was measured",
                self.target.addr, k.requested
            )
        } else {
            format!(
                "{} of {} connections to {} failed to connect: the figures do not describe \
                 the load asked for",
                k.connect_failed, k.requested, self.target.addr
            )
        })
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let c = &self.config;
        let shape = match c.rate {
            Some(r) => format!("open loop at {r:.0} req/s"),
            None => "closed loop".into(),
        };
        let extent = match (c.requests, c.duration_s) {
            (Some(n), _) => format!("{n} requests"),
            (None, Some(d)) => format!("{d} s"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "bench: {:?} workload, {} connections x pipeline {}, {shape}, {} generator thread(s), {extent} after {} s warmup",
            c.workload, c.conns, c.pipeline, c.threads, c.warmup_s
        );
        let who = match (self.target.spawned_model, &self.server) {
            (Some(m), Some(sv)) => format!(" (spawned {m} server, pid {})", sv.pid),
            (None, Some(sv)) => format!(" (pid {})", sv.pid),
            _ => String::new(),
        };
        let _ = writeln!(s, "  target      {}{who}", self.target.addr);
        if let Some(m) = &self.machine {
            let _ = writeln!(s, "  machine     {}", m.describe());
        }
        let k = &self.connections;
        let _ = writeln!(
            s,
            "  conns       {} connected of {}, {} failed to connect, {} closed by the server, {} never served",
            k.connected, k.requested, k.connect_failed, k.closed_by_server, k.unserved
        );
        let m = &self.measured;
        let _ = writeln!(
            s,
            "  requests    {} sent, {} ok, {} failed   (warmup: {} sent, {} failed)",
            m.sent,
            m.ok,
            m.failed(),
            self.warmup.sent,
            self.warmup.failed()
        );
        if self.failed > 0 {
            let w = &self.warmup;
            let _ = writeln!(
                s,
                "  failures    error responses {}, wrong out {}, wrong result {}, out of order {}, malformed {}, lost on close {}, unanswered {}, unsolicited {}",
                m.error_responses + w.error_responses,
                m.wrong_out + w.wrong_out,
                m.wrong_result + w.wrong_result,
                m.out_of_order + w.out_of_order,
                m.malformed + w.malformed,
                m.lost_on_close + w.lost_on_close,
                m.unanswered + w.unanswered,
                self.unsolicited
            );
        }
        // Why requests failed, or why connections could not be made (a
        // refused TLS handshake or login fails no request).
        if self.failed > 0 || k.connect_failed > 0 {
            for e in &self.error_samples {
                let _ = writeln!(s, "    e.g. {e}");
            }
        }
        let _ = writeln!(
            s,
            "  throughput  {:.0} req/s over {:.2} s",
            self.throughput_rps, self.elapsed_s
        );
        if let Some(l) = &self.latency_us {
            let _ = writeln!(
                s,
                "  latency us  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1})",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            );
        }
        if let Some(c) = &self.cache {
            let _ = writeln!(
                s,
                "  cache       get hits {}, misses {}",
                c.get_hits, c.get_misses
            );
        }
        let per = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
        if let Some(sv) = &self.server {
            let mib =
                |kb: Option<u64>| kb.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0));
            let _ = writeln!(
                s,
                "  server      {} us CPU/request ({:.2} cores busy), RSS {} MiB, peak RSS {} MiB",
                per(sv.cpu_us_per_request),
                sv.cpu_cores,
                mib(sv.rss_kb),
                mib(sv.peak_rss_kb)
            );
        }
        let g = &self.generator;
        let _ = writeln!(
            s,
            "  generator   {} us CPU/request ({:.2} cores busy, {} thread(s))",
            per(g.cpu_us_per_request),
            g.cpu_cores,
            g.threads
        );
        for n in &self.notes {
            let _ = writeln!(s, "  note        {n}");
        }
        s
    }
}
