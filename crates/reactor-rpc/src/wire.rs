//! Which protocol a connection speaks, and one `process` over all of them.
//!
//! A server listens on up to three ports: the JSON RPC port, the Redis
//! protocol port (`--resp-addr`) and the metrics port (`--metrics-addr`). The
//! server models treat every connection alike (buffers, readiness, limits,
//! timeouts, shutdown); only the request path differs, and it is chosen here,
//! once per connection, from the listener that accepted it. Like
//! `dispatch.rs` this is pure: bytes in, bytes out, no sockets.

use std::fmt;

use crate::dispatch::{self, Options};
use crate::net::CloseReason;
use crate::ops::http;
use crate::output::Output;
use crate::protocol::HEADER_LEN;
use crate::resp_dispatch;
use crate::service::Service;

/// The port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The JSON RPC protocol (length-prefixed frames).
    Rpc,
    /// The Redis protocol (RESP2, RESP3 after `HELLO 3`).
    Resp,
    /// HTTP: `GET /metrics` in the Prometheus text format.
    Metrics,
}

impl Role {
    /// The role's name in logs and in `LISTEN_FDNAMES`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Rpc => "rpc",
            Role::Resp => "resp",
            Role::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connection's protocol, with the state it keeps between reads.
pub(crate) enum Wire {
    /// JSON frames: stateless between frames.
    Json,
    /// RESP: the session (protocol version, name) and the parser's place.
    Resp(Box<resp_dispatch::Connection>),
    /// HTTP for the metrics: stateless between requests.
    Metrics,
}

/// Why [`Wire::process`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// No complete request left; the next one needs `needed` bytes in all
    /// (a hint, never more than about twice what has arrived).
    NeedMore { needed: usize },
    /// The output reached `max_output`: write it before processing more.
    OutputFull,
    /// The JSON frame at the front (`HEADER_LEN + body_len` bytes, not
    /// consumed) is heavy: run it on a worker, then process again.
    Offload { body_len: usize },
    /// The answer that ends the connection is written (`frame_too_large`, a
    /// RESP protocol error or `QUIT`, an HTTP `Connection: close`): consume
    /// no more input, and close once the output is flushed (lingering), for
    /// the reason given.
    Close(CloseReason),
}

/// What [`Wire::process`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Input bytes consumed (whole requests only).
    pub consumed: usize,
    /// Why it stopped.
    pub stop: Stop,
}

impl Wire {
    /// The protocol of a connection accepted on `role`'s listener, whose
    /// port is `local_port` (RESP's `INFO` reports it).
    pub(crate) fn new(role: Role, local_port: u16) -> Wire {
        match role {
            Role::Rpc => Wire::Json,
            Role::Resp => Wire::Resp(Box::new(resp_dispatch::Connection::new(local_port))),
            Role::Metrics => Wire::Metrics,
        }
    }

    /// The protocol of a connection from `peer` accepted on `role`'s
    /// listener at `local`: RESP sessions learn both addresses (`CLIENT LIST`).
    pub(crate) fn accepted(
        role: Role,
        local: std::net::SocketAddr,
        peer: std::net::SocketAddr,
    ) -> Wire {
        match role {
            Role::Resp => Wire::Resp(Box::new(resp_dispatch::Connection::with_addrs(peer, local))),
            _ => Wire::new(role, local.port()),
        }
    }

    /// The role of the listener this connection came from.
    pub(crate) fn role(&self) -> Role {
        match self {
            Wire::Json => Role::Rpc,
            Wire::Resp(_) => Role::Resp,
            Wire::Metrics => Role::Metrics,
        }
    }

    /// Bytes the first request needs before anything can be decoded.
    pub(crate) fn first_need(&self) -> usize {
        match self {
            Wire::Json => HEADER_LEN,
            Wire::Resp(_) | Wire::Metrics => 1,
        }
    }

    /// Answers every complete request at the front of `input`, appending the
    /// responses to `out`; see [`Stop`] for where it stops.
    pub(crate) fn process(
        &mut self,
        service: &Service,
        peer: &dyn fmt::Display,
        input: &[u8],
        out: &mut Output,
        opts: Options,
    ) -> Progress {
        match self {
            Wire::Json => {
                let p = dispatch::process_output(service, peer, input, out, opts);
                let stop = match p.stop {
                    dispatch::Stop::NeedMore { needed } => Stop::NeedMore { needed },
                    dispatch::Stop::OutputFull => Stop::OutputFull,
                    dispatch::Stop::Offload { body_len } => Stop::Offload { body_len },
                    dispatch::Stop::TooLarge => Stop::Close(CloseReason::FrameTooLarge),
                };
                Progress {
                    consumed: p.consumed,
                    stop,
                }
            }
            Wire::Resp(conn) => {
                let opt = resp_dispatch::Options {
                    max_bulk: opts.max_frame as usize,
                    max_output: opts.max_output,
                };
                let p = resp_dispatch::process_output(service, conn, input, out, opt);
                let stop = match p.stop {
                    resp_dispatch::Stop::NeedMore { needed } => Stop::NeedMore { needed },
                    resp_dispatch::Stop::OutputFull => Stop::OutputFull,
                    resp_dispatch::Stop::Close { error: false } => Stop::Close(CloseReason::Bye),
                    resp_dispatch::Stop::Close { error: true } => {
                        Stop::Close(CloseReason::ProtocolError)
                    }
                };
                Progress {
                    consumed: p.consumed,
                    stop,
                }
            }
            Wire::Metrics => metrics(service, input, out, opts),
        }
    }
}

/// Answers the HTTP requests at the front of `input`, one at a time.
fn metrics(service: &Service, input: &[u8], out: &mut Output, opts: Options) -> Progress {
    let mut consumed = 0;
    loop {
        if out.total_len() >= opts.max_output {
            return Progress {
                consumed,
                stop: Stop::OutputFull,
            };
        }
        match http::serve(&input[consumed..], out, |body| service.render_metrics(body)) {
            http::Step::NeedMore => {
                return Progress {
                    consumed,
                    stop: Stop::NeedMore {
                        needed: input.len() - consumed + 1,
                    },
                }
            }
            http::Step::Responded { consumed: n, close } => {
                consumed += n;
                if close {
                    return Progress {
                        consumed,
                        stop: Stop::Close(CloseReason::Bye),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::encode;

    fn opts() -> Options {
        Options {
            max_frame: 1 << 20,
            offload: false,
            max_output: usize::MAX,
        }
    }

    #[test]
    fn each_role_speaks_its_protocol() {
        let service = Service::new();
        let mut out = Output::new();

        let mut json = Wire::new(Role::Rpc, 8080);
        let mut input = Vec::new();
        encode(&mut input, br#"{"in":"ping","params":1}"#);
        let p = json.process(&service, &"t", &input, &mut out, opts());
        assert_eq!(p.consumed, input.len());
        assert_eq!(p.stop, Stop::NeedMore { needed: HEADER_LEN });
        assert!(out.ends_with(br#"{"out":"pong","result":1}"#));

        out.clear();
        let mut resp = Wire::new(Role::Resp, 6379);
        let input = b"*1\r\n$4\r\nPING\r\nQUIT\r\n";
        let p = resp.process(&service, &"t", input, &mut out, opts());
        assert_eq!(p.stop, Stop::Close(CloseReason::Bye));
        assert_eq!(&out[..], b"+PONG\r\n+OK\r\n");

        out.clear();
        let mut http = Wire::new(Role::Metrics, 9090);
        let input = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /other HTTP/1.1\r\n\r\nGET /";
        let p = http.process(&service, &"t", input, &mut out, opts());
        assert!(matches!(p.stop, Stop::NeedMore { .. }));
        assert_eq!(p.consumed, input.len() - b"GET /".len());
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("reactor_rpc_build_info"), "{text}");
        assert!(text.contains("HTTP/1.1 404"), "{text}");
    }

    #[test]
    fn a_too_large_frame_and_malformed_http_close() {
        let service = Service::new();
        let mut out = Output::new();
        let mut json = Wire::new(Role::Rpc, 1);
        let small = Options {
            max_frame: 8,
            ..opts()
        };
        let p = json.process(&service, &"t", b"\xff\xff\xff\xff", &mut out, small);
        assert_eq!(p.stop, Stop::Close(CloseReason::FrameTooLarge));
        let mut http = Wire::new(Role::Metrics, 1);
        let p = http.process(&service, &"t", b"\x00garbage\r\n\r\n", &mut out, opts());
        assert_eq!(p.stop, Stop::Close(CloseReason::Bye));
    }
}
