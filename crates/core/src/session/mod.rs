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
//! | [`Role::Rpc`] | [`JsonSession`] ([`json`]) | nothing |
//! | [`Role::Resp`] | [`RespSession`] ([`resp`]) | protocol version, name, transaction, parser position |
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

pub use http::{Exposition, MetricsSession};
pub use json::JsonSession;
pub use refusal::Refusal;
pub use resp::RespSession;

use crate::output::Output;
use crate::service::Service;

/// The kind of port a connection came in on, which decides its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The JSON RPC protocol (length-prefixed frames).
    Rpc,
    /// The Redis protocol (RESP2, RESP3 after `HELLO 3`).
    Resp,
    /// HTTP: `GET /metrics` in the Prometheus text format.
    Metrics,
}

impl Role {
    /// Every role, in the order listeners are opened and logged.
    pub const ALL: [Role; 3] = [Role::Rpc, Role::Resp, Role::Metrics];

    /// The role's name in logs and in systemd's `LISTEN_FDNAMES`
    /// (`FileDescriptorName=`): `rpc`, `resp`, `metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Rpc => "rpc",
            Role::Resp => "resp",
            Role::Metrics => "metrics",
        }
    }

    /// The role named `name` (see [`Role::name`]).
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
}

impl Options {
    /// Requests up to `max_frame` bytes, every request answered inline (no
    /// offload), and no limit on pending output: the simplest server's options.
    pub const fn new(max_frame: u32) -> Options {
        Options {
            max_frame,
            offload: false,
            max_output: usize::MAX,
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
            Role::Rpc => Session::Json(JsonSession),
            Role::Resp => Session::Resp(Box::new(RespSession::new(local_port))),
            Role::Metrics => Session::Metrics(MetricsSession),
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
            Session::Json(_) => json::process_output(env.service, peer, input, out, env.opts),
            Session::Resp(session) => {
                resp::process_output(env.service, session, input, out, env.opts)
            }
            Session::Metrics(_) => http::process(env.exposition, input, out, env.opts),
        }
    }

    /// The heavy request `request` (the first `len` bytes of the input after
    /// a [`Stop::Offload`]), ready for a worker. `B` is whatever holds the
    /// bytes (a `Vec<u8>`, a `bytes::Bytes`), so a model that can hand them
    /// over without copying does.
    pub fn job<B: AsRef<[u8]>>(&self, request: B) -> Job<B> {
        Job { request }
    }
}

/// A heavy request taken out of a session's input, to run off the event
/// loop: [`Job::run`] answers it on whatever thread the model chooses, and
/// the model appends the response in order.
#[derive(Debug)]
pub struct Job<B> {
    /// The whole request: a JSON frame, length prefix included.
    request: B,
}

impl<B: AsRef<[u8]>> Job<B> {
    /// Answers the request; `peer` labels the debug log line.
    pub fn run(&self, service: &Service, peer: &dyn fmt::Display) -> Vec<u8> {
        let body = self.request.as_ref().get(HEADER_LEN..).unwrap_or_default();
        let mut response = Vec::new();
        service.handle(peer, body, &mut response, false);
        response
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
    fn roles_are_named_once() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.name()), Some(role));
        }
        assert_eq!(Role::from_name("http"), None);
    }

    #[test]
    fn a_job_answers_its_frame() {
        let service = Service::new();
        let session = Session::new(Role::Rpc, 1);
        let mut frame = Vec::new();
        encode(&mut frame, br#"{"in":"fib","params":10}"#);
        let response = session.job(frame).run(&service, &"t");
        assert!(response.ends_with(br#"{"out":"fib","result":55}"#));
    }
}
