//! One session type per protocol, behind one [`Stop`] and one [`Progress`].
//!
//! A server listens on up to three kinds of port, each named by a [`Role`]:
//! the JSON RPC port, the Redis protocol port (`--resp-addr`) and the metrics
//! port (`--metrics-addr`). The server models treat every connection alike
//! (buffers, readiness, limits, timeouts, shutdown); only what the bytes mean
//! differs, and that is the connection's [`Session`], chosen once, from the
//! listener that accepted it:
//!
//! | role | session | what it keeps between reads |
//! |---|---|---|
//! | [`Role::Rpc`] | [`JsonSession`] ([`json`]) | who it logged in as |
//! | [`Role::Resp`] | [`RespSession`] ([`resp`]) | who it logged in as, protocol version, name, transaction, parser position |
//! | [`Role::Metrics`] | [`MetricsSession`] ([`http`]) | nothing |
//!
//! Every session answers the same two types: [`Session::process`] consumes
//! the whole requests at the front of the input, appends their responses to
//! an [`Output`], and says how far it got ([`Progress`]) and why it stopped
//! ([`Stop`]). A request that ends the connection (a JSON frame over
//! `--max-frame`, malformed RESP or HTTP, `QUIT`, an HTTP
//! `Connection: close`) stops with [`Stop::Close`] and its [`CloseReason`],
//! which every model logs the same way.
//!
//! Like the rest of this crate it is pure: bytes in, bytes out, no sockets.

pub mod http;
pub mod json;
mod refusal;
pub mod resp;

use std::fmt;

use reactor_rpc_protocol::HEADER_LEN;

pub use crate::listener::{Endpoint, Role};
pub use http::{Exposition, MetricsSession};
pub use json::JsonSession;
pub use refusal::Refusal;
pub use resp::RespSession;

use crate::output::Output;
use crate::service::redis::KillHook;
use crate::service::Service;

/// Why a connection ended: one vocabulary for every model and protocol,
/// logged the same way by each (`PEER bye` for a client that left,
/// `PEER bye (REASON)` otherwise). Sessions end connections for the first
/// three reasons below; the server models for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed its side, every request answered; or asked to
    /// leave (RESP `QUIT`, HTTP `Connection: close`), and was answered.
    Bye,
    /// A request that cannot be read was answered with an error and the
    /// connection closed: malformed RESP (`-ERR Protocol error: ...`) or
    /// malformed HTTP on the metrics port (400, 431).
    ProtocolError,
    /// A JSON length prefix over `--max-frame`, answered
    /// (`frame_too_large`), then a lingering close.
    FrameTooLarge,
    /// Nothing arrived for `--idle-timeout`.
    IdleTimeout,
    /// The client did not read its responses within `--idle-timeout`.
    OutputNotRead,
    /// A request begun was not complete within `--frame-timeout`.
    FrameTimeout,
    /// Over a connection limit: refused in its protocol, then a lingering close.
    Refused,
    /// The server shut down.
    Shutdown,
    /// A read or write failed (a reset, say); the error is logged at debug.
    IoError,
    /// Another client closed it (RESP `CLIENT KILL`).
    Killed,
    /// All connections together held more input not yet answered than
    /// `--max-input-total`, and this one held the most.
    InputTotal,
    /// The TLS layer failed: a handshake that went wrong (plaintext or
    /// garbage instead of a ClientHello, no acceptable client certificate),
    /// or a record that does not decrypt. An alert is sent, then a close.
    TlsError,
}

impl CloseReason {
    /// The words in the `bye (...)` log line.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Bye => "bye",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::FrameTooLarge => "frame too large",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::OutputNotRead => "output not read",
            CloseReason::FrameTimeout => "frame timeout",
            CloseReason::Refused => "refused",
            CloseReason::Shutdown => "shutdown",
            CloseReason::IoError => "i/o error",
            CloseReason::TlsError => "tls error",
            CloseReason::Killed => "killed",
            CloseReason::InputTotal => "input total",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`Session::process`] stopped: what the server model does next.
///
/// Deliberately exhaustive: a server loop must handle every reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// No complete request left: read until the unconsumed input holds
    /// `needed` bytes, then call again. A hint that grows with what has
    /// arrived, never with what a header announced.
    NeedMore {
        /// Bytes (from the first unconsumed one) the next request needs.
        needed: usize,
    },
    /// The output reached `max_output`: write it before processing more.
    OutputFull,
    /// The request at the front (`len` bytes, not consumed) is heavy: take
    /// it with [`Session::job`], run the [`Job`] on a worker, append its
    /// response, then call again. Only when [`Options::offload`] is set.
    Offload {
        /// Bytes of the request, header included.
        len: usize,
    },
    /// The answer that ends the connection is written: consume no more
    /// input, and close once the output is flushed (lingering), for the
    /// reason given.
    Close(CloseReason),
}

/// What [`Session::process`] did.
///
/// `#[non_exhaustive]`: a later version may report more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Input bytes consumed (whole requests only).
    pub consumed: usize,
    /// Responses appended.
    pub answered: usize,
    /// Why it stopped, and what the caller should do next.
    pub stop: Stop,
}

/// How to process input: the limits a session enforces.
///
/// Built with a struct literal (every field is public) or [`Options::new`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest accepted JSON frame body, and RESP bulk string, in bytes
    /// (`--max-frame`).
    pub max_frame: u32,
    /// Whether heavy requests stop processing ([`Stop::Offload`]) so a
    /// worker can take them.
    pub offload: bool,
    /// Stop decoding once the output holds this many bytes (backpressure).
    pub max_output: usize,
    /// The largest reply one request may build (`--max-reply`): bytes the
    /// reply owns, plus [`crate::output::SPLICE_COST`] for each cached
    /// value it shares. A request whose reply would be larger is answered
    /// with an error instead (`reply_too_large`, RESP `-ERR reply too
    /// large ...`), so that a few bytes sent (an `mget` of one key named a
    /// million times, `KEYS *`) cannot make the server build gigabytes.
    pub max_reply: usize,
    /// Largest RESP command: its arguments' lengths plus
    /// [`ARG_OVERHEAD`](reactor_rpc_protocol::resp::ARG_OVERHEAD) each
    /// (`--max-command`). Larger gets `-ERR Protocol error: too big
    /// multibulk request` and a close, as soon as a header shows it.
    pub max_command: usize,
}

pub use crate::service::DEFAULT_MAX_REPLY;

impl Options {
    /// Requests up to `max_frame` bytes, RESP commands up to the default
    /// `--max-command` (64 MiB), replies up to [`DEFAULT_MAX_REPLY`], every
    /// request answered inline (no offload), and no limit on pending
    /// output: the simplest server's options.
    pub const fn new(max_frame: u32) -> Options {
        Options {
            max_frame,
            offload: false,
            max_output: usize::MAX,
            max_reply: DEFAULT_MAX_REPLY,
            max_command: reactor_rpc_protocol::resp::DEFAULT_MAX_COMMAND,
        }
    }
}

/// What a session needs from its server to answer a request.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The methods, the commands and the state they share.
    pub service: &'a Service,
    /// Renders the metrics page for the metrics port.
    pub exposition: &'a dyn Exposition,
    /// The limits to enforce.
    pub opts: Options,
}

/// A connection's protocol, with the state it keeps between reads.
#[derive(Debug)]
pub enum Session {
    /// JSON frames.
    Json(JsonSession),
    /// RESP: boxed, as it is the largest by far and the others are empty.
    Resp(Box<RespSession>),
    /// HTTP for the metrics.
    Metrics(MetricsSession),
}

impl Session {
    /// The session of a connection accepted on `role`'s listener, whose
    /// port is `local_port` (RESP's `INFO` reports it).
    pub fn new(role: Role, local_port: u16) -> Session {
        match role {
            Role::Rpc => Session::Json(JsonSession::default()),
            Role::Resp => Session::Resp(Box::new(RespSession::new(local_port))),
            Role::Metrics => Session::Metrics(MetricsSession::default()),
        }
    }

    /// The session of a connection from `peer`, accepted on `role`'s
    /// listener at `local`: a RESP session learns both addresses (`CLIENT
    /// LIST`, `INFO`'s port).
    pub fn accepted(
        role: Role,
        local: std::net::SocketAddr,
        peer: std::net::SocketAddr,
    ) -> Session {
        match role {
            Role::Rpc => Session::Json(JsonSession::new(Some(peer.ip()))),
            Role::Resp => Session::Resp(Box::new(RespSession::with_addrs(peer, local))),
            Role::Metrics => Session::Metrics(MetricsSession::new(Some(peer.ip()))),
        }
    }

    /// The role of the listener this connection came from.
    pub fn role(&self) -> Role {
        match self {
            Session::Json(_) => Role::Rpc,
            Session::Resp(_) => Role::Resp,
            Session::Metrics(_) => Role::Metrics,
        }
    }

    /// Bytes the first request needs before anything can be decoded.
    pub fn first_need(&self) -> usize {
        match self {
            Session::Json(_) => HEADER_LEN,
            Session::Resp(_) | Session::Metrics(_) => 1,
        }
    }

    /// Answers every complete request at the front of `input`, appending the
    /// responses to `out`; see [`Stop`] for where it stops. `input` must
    /// start where the previous call's `consumed` left off. `peer` labels
    /// the debug log lines.
    pub fn process(
        &mut self,
        env: &Env<'_>,
        peer: &dyn fmt::Display,
        input: &[u8],
        out: &mut Output,
    ) -> Progress {
        match self {
            Session::Json(json) => {
                json::process_output(env.service, json, peer, input, out, env.opts)
            }
            Session::Resp(session) => {
                resp::process_output(env.service, session, input, out, env.opts)
            }
            Session::Metrics(metrics) => {
                let guard = http::Guard {
                    token: env.service.metrics_token(),
                    auth: env.service.auth(),
                };
                http::process(env.exposition, guard, metrics, input, out, env.opts)
            }
        }
    }

    /// Gives a RESP session what closes its connection when another client
    /// sends `CLIENT KILL` for it: `make` is called only for a RESP session
    /// (the other protocols cannot be killed), and its hook at most once,
    /// from whichever thread runs the `CLIENT KILL`.
    pub fn on_kill(&mut self, make: impl FnOnce() -> KillHook) {
        if let Session::Resp(resp) = self {
            resp.set_kill_hook(make());
        }
    }

    /// The heavy request `request` (the first `len` bytes of the input after
    /// a [`Stop::Offload`]), ready for a worker. `B` is whatever holds the
    /// bytes (a `Vec<u8>`, a `bytes::Bytes`), so a model that can hand them
    /// over without copying does.
    ///
    /// A RESP command acts on its connection's state (an `EXEC` ends the
    /// transaction), so the job carries that state away with it: until
    /// [`Session::finish`] brings it back (or [`Session::restore`], for a job
    /// never run), the session must not process input. Every model already
    /// waits for the job before decoding more, to keep responses in order.
    /// `opts` are the options the request was decoded with (its reply is
    /// bounded by their `max_reply`).
    pub fn job<B: AsRef<[u8]>>(&mut self, request: B, opts: &Options) -> Job<B> {
        let state = match self {
            Session::Resp(resp) => JobState::Resp(resp.lend()),
            Session::Json(_) | Session::Metrics(_) => JobState::Json,
        };
        Job {
            request,
            state,
            max_reply: opts.max_reply,
        }
    }

    /// Takes back the state of a job that was not run (the model's queue
    /// was full); the request stays in the input, to be offered again.
    pub fn restore<B>(&mut self, job: Job<B>) {
        self.take_back(job.state);
    }

    /// Takes back the state of a finished job, and returns its response for
    /// the model to queue, in order.
    pub fn finish(&mut self, finished: Finished) -> Output {
        self.take_back(finished.state);
        finished.output
    }

    fn take_back(&mut self, state: JobState) {
        if let (Session::Resp(resp), JobState::Resp(lent)) = (self, state) {
            resp.take_back(lent);
        }
    }
}

/// What a [`Job`] carries besides its request: nothing for a JSON frame (the
/// protocol is stateless), the connection's command state for RESP.
#[derive(Debug)]
enum JobState {
    Json,
    Resp(Box<crate::service::redis::Session>),
}

/// A heavy request taken out of a session's input, to run off the event
/// loop: [`Job::run`] answers it on whatever thread the model chooses, and
/// the model hands the [`Finished`] job back to [`Session::finish`], which
/// returns the response to queue in order.
#[derive(Debug)]
pub struct Job<B> {
    /// The whole request: a JSON frame, length prefix included, or one RESP command.
    request: B,
    state: JobState,
    /// `--max-reply`, which bounds its reply as on the loop.
    max_reply: usize,
}

/// A job that has run: its response, and the state it took away.
#[derive(Debug)]
pub struct Finished {
    output: Output,
    state: JobState,
}

impl Finished {
    /// The response's length in bytes (values it shares counted in full).
    pub fn len(&self) -> usize {
        self.output.total_len()
    }

    /// Whether the response is empty (it never is: every request is answered).
    pub fn is_empty(&self) -> bool {
        self.output.is_empty()
    }
}

impl<B: AsRef<[u8]>> Job<B> {
    /// Answers the request; `peer` labels the debug log line.
    pub fn run(self, service: &Service, peer: &dyn fmt::Display) -> Finished {
        let mut output = Output::new();
        let state = match self.state {
            JobState::Json => {
                let body = self.request.as_ref().get(HEADER_LEN..).unwrap_or_default();
                service.handle_job(peer, body, &mut output, self.max_reply);
                JobState::Json
            }
            JobState::Resp(session) => JobState::Resp(resp::run_job(
                service,
                session,
                self.request.as_ref(),
                &mut output,
                self.max_reply,
            )),
        };
        Finished { output, state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_rpc_protocol::frame::encode;

    struct Page;

    impl Exposition for Page {
        fn page(&self) -> bytes::Bytes {
            bytes::Bytes::from_static(b"reactor_rpc_build_info 1\n")
        }
    }

    fn env(service: &Service, max_frame: u32) -> Env<'_> {
        Env {
            service,
            exposition: &Page,
            opts: Options::new(max_frame),
        }
    }

    #[test]
    fn each_role_speaks_its_protocol() {
        let service = Service::new();
        let env = env(&service, 1 << 20);
        let mut out = Output::new();

        let mut json = Session::new(Role::Rpc, 8080);
        let mut input = Vec::new();
        encode(&mut input, br#"{"in":"ping","params":1}"#);
        let p = json.process(&env, &"t", &input, &mut out);
        assert_eq!(p.consumed, input.len());
        assert_eq!(p.stop, Stop::NeedMore { needed: HEADER_LEN });
        assert!(out.ends_with(br#"{"out":"pong","result":1}"#));

        out.clear();
        let mut resp = Session::new(Role::Resp, 6379);
        let input = b"*1\r\n$4\r\nPING\r\nQUIT\r\n";
        let p = resp.process(&env, &"t", input, &mut out);
        assert_eq!(p.stop, Stop::Close(CloseReason::Bye));
        assert_eq!(&out[..], b"+PONG\r\n+OK\r\n");

        let mut out = Output::new();
        let mut http = Session::new(Role::Metrics, 9090);
        let input = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /other HTTP/1.1\r\n\r\nGET /";
        let p = http.process(&env, &"t", input, &mut out);
        // One reply at a time: the scraper is read no further until it takes it.
        assert_eq!(p.stop, Stop::OutputFull);
        let text = String::from_utf8_lossy(&out.into_vec()).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("reactor_rpc_build_info"), "{text}");
        let mut out = Output::new();
        let p2 = http.process(&env, &"t", &input[p.consumed..], &mut out);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 404"));
        let p3 = http.process(
            &env,
            &"t",
            &input[p.consumed + p2.consumed..],
            &mut Output::new(),
        );
        assert!(matches!(p3.stop, Stop::NeedMore { .. }));
        assert_eq!(
            p.consumed + p2.consumed + p3.consumed,
            input.len() - b"GET /".len()
        );
    }

    #[test]
    fn head_gets_the_head_of_get_without_the_body() {
        let service = Service::new();
        let env = env(&service, 1 << 20);
        let mut http = Session::new(Role::Metrics, 9090);
        let answer = |http: &mut Session, req: &[u8]| {
            let mut out = Output::new();
            let p = http.process(&env, &"t", req, &mut out);
            assert_eq!((p.consumed, p.stop), (req.len(), Stop::OutputFull));
            String::from_utf8(out.into_vec()).expect("ascii")
        };
        let get = answer(&mut http, b"GET /metrics HTTP/1.1\r\n\r\n");
        let head = answer(&mut http, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        let page = "reactor_rpc_build_info 1\n";
        assert_eq!(get, format!("{head}{page}"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", page.len())));
        assert!(head.ends_with("\r\n\r\n"));
        let other = answer(&mut http, b"HEAD /nope HTTP/1.1\r\n\r\n");
        assert!(other.starts_with("HTTP/1.1 404 ") && other.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_malformed_request_closes_with_a_protocol_error_in_every_protocol() {
        let service = Service::new();
        let mut out = Output::new();
        let mut json = Session::new(Role::Rpc, 1);
        let p = json.process(&env(&service, 8), &"t", b"\xff\xff\xff\xff", &mut out);
        assert_eq!(p.stop, Stop::Close(CloseReason::FrameTooLarge));
        let mut resp = Session::new(Role::Resp, 1);
        let p = resp.process(&env(&service, 8), &"t", b"*1\r\n$x\r\n", &mut out);
        assert_eq!(p.stop, Stop::Close(CloseReason::ProtocolError));
        let mut http = Session::new(Role::Metrics, 1);
        let mut out = Output::new();
        let p = http.process(&env(&service, 8), &"t", b"\x00garbage\r\n\r\n", &mut out);
        assert_eq!(p.stop, Stop::Close(CloseReason::ProtocolError));
    }

    #[test]
    fn roles_and_endpoints_are_named_once() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.name()), Some(role));
            assert_eq!(Endpoint::plain(role).name(), role.name());
        }
        assert_eq!(Role::from_name("http"), None);
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
        }
        assert_eq!(
            Endpoint::from_name("rpc-tls"),
            Some(Endpoint::tls(Role::Rpc))
        );
    }

    #[test]
    fn a_job_answers_its_frame() {
        let service = Service::new();
        let session = Session::new(Role::Rpc, 1);
        let mut frame = Vec::new();
        encode(&mut frame, br#"{"in":"fib","params":10}"#);
        let mut session = session;
        let finished = session
            .job(frame, &Options::new(1 << 20))
            .run(&service, &"t");
        let response = session.finish(finished).into_vec();
        assert!(response.ends_with(br#"{"out":"fib","result":55}"#));
    }
}
