//! The metrics port's stream properties, checked the same way by the property
//! tests (`tests/http_props.rs`) and the cargo-fuzz target
//! `fuzz/fuzz_targets/http.rs`.
//!
//! Two layers are checked, each on a stream cut into reads:
//!
//! * [`check_feed`]: the HTTP reader ([`feed`]) gives the same requests and
//!   the same refusal whether the bytes arrive in pieces or at once.
//! * [`check_session`]: the metrics session ([`http::process`]), driven as a
//!   server model drives it (process after every read, write the output when
//!   it stops with `OutputFull`, close when it says so), answers every
//!   complete request exactly once, in order (a `HEAD` without the body),
//!   with the status the whole
//!   stream's requests call for, and closes exactly when the last of them
//!   asked to or was refused.

use bytes::Bytes;
use reactor_rpc_protocol::buffer::ReadBuffer;
use reactor_rpc_protocol::http::{feed, Malformed, Outcome, Status};

use super::chunks;
use crate::output::Output;
use crate::session::{http, CloseReason, Exposition, Options, Stop};

/// The requests one connection's reads amount to.
#[derive(Debug, PartialEq, Eq)]
pub struct Requests {
    /// Every whole request, in order, as [`feed`] reported it.
    pub requests: Vec<Outcome>,
    /// The refusal that ended the stream, if one did.
    pub refused: Option<Malformed>,
    /// The bytes left unconsumed (an incomplete request), without a refusal.
    pub tail: Vec<u8>,
}

/// Reads `stream` cut by `sizes` as a server's buffer would hold it: after
/// each read, [`feed`] the unconsumed bytes and consume every whole request;
/// stop at the first refusal.
pub fn requests(stream: &[u8], sizes: &[usize]) -> Requests {
    let mut input = ReadBuffer::new();
    let mut found = Requests {
        requests: Vec::new(),
        refused: None,
        tail: Vec::new(),
    };
    for chunk in chunks(stream, sizes) {
        input.extend_from_slice(chunk);
        loop {
            let outcome = feed(input.readable());
            match outcome {
                Outcome::Incomplete => break,
                Outcome::Request { consumed, .. } => {
                    let have = input.readable().len();
                    assert!(
                        consumed > 0 && consumed <= have,
                        "a request of {consumed} bytes in {have}"
                    );
                    found.requests.push(outcome);
                    input.consume(consumed);
                }
                Outcome::Malformed(why) => {
                    found.refused = Some(why);
                    return found;
                }
            }
        }
    }
    found.tail = input.readable().to_vec();
    found
}

/// Panics unless `stream` cut by `sizes` reads as the same requests, the same
/// refusal and the same tail as `stream` whole. Returns the whole reading.
pub fn check_feed(stream: &[u8], sizes: &[usize]) -> Requests {
    let whole = requests(stream, &[]);
    let cut = requests(stream, sizes);
    assert_eq!(cut, whole, "cutting the stream changed what it reads as");
    whole
}

/// The page the session under test serves for `GET /metrics`.
pub const PAGE: &[u8] = b"# TYPE up gauge\nup 1\n";

/// An [`Exposition`] that always serves [`PAGE`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedPage;

impl Exposition for FixedPage {
    fn page(&self) -> Bytes {
        Bytes::from_static(PAGE)
    }
}

/// One response as the client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub code: u16,
    /// Whether it carried `Connection: close`.
    pub close: bool,
    /// The body, `Content-Length` bytes.
    pub body: Vec<u8>,
}

/// Splits what a metrics connection wrote into responses; panics unless it
/// is nothing but whole responses as this server writes them (a status line,
/// headers with a `Content-Length`, the body). `heads[i]` says the i-th
/// response answers a `HEAD` (its `Content-Length` is the body a `GET`
/// would get, and no body follows); past its end, responses have bodies.
pub fn responses(mut output: &[u8], heads: &[bool]) -> Vec<Response> {
    let mut found = Vec::new();
    while !output.is_empty() {
        let head_only = heads.get(found.len()).copied().unwrap_or(false);
        let head_len = output
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("output ends inside a head: {output:?}"));
        let head = std::str::from_utf8(&output[..head_len]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        let code = status
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status:?}"));
        let (mut len, mut close) = (None, false);
        for line in lines {
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad header {line:?}"));
            if name.eq_ignore_ascii_case("content-length") {
                len = Some(value.parse::<usize>().expect("a decimal length"));
            }
            close |= name.eq_ignore_ascii_case("connection") && value == "close";
        }
        let len = len.unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
        let len = if head_only { 0 } else { len };
        let body_start = head_len + 4;
        let body = output
            .get(body_start..body_start + len)
            .unwrap_or_else(|| panic!("output ends inside a body: {output:?}"));
        found.push(Response {
            code,
            close,
            body: body.to_vec(),
        });
        output = &output[body_start + len..];
    }
    found
}

/// What the metrics session did with a stream.
#[derive(Debug)]
pub struct Served {
    /// Every byte written to the client, in order.
    pub output: Vec<u8>,
    /// Why it closed, if it did.
    pub closed: Option<CloseReason>,
}

/// Runs the chunks through a metrics connection the way every server model
/// does, checking each [`Progress`](crate::session::Progress) on the way.
pub fn serve(chunks: &[&[u8]]) -> Served {
    let opts = Options::new(u32::MAX);
    let auth = crate::service::auth::Auth::default();
    let guard = http::Guard {
        token: None,
        auth: &auth,
    };
    let session = http::MetricsSession::default();
    let mut input = ReadBuffer::new();
    let mut out = Output::new();
    let mut written = Vec::new();
    let drain = |out: &mut Output, written: &mut Vec<u8>| {
        for chunk in out.chunks() {
            written.extend_from_slice(chunk);
        }
        out.clear();
    };
    for chunk in chunks {
        input.extend_from_slice(chunk);
        loop {
            let before = written.len() + out.total_len();
            let p = http::process(
                &FixedPage,
                guard,
                &session,
                input.readable(),
                &mut out,
                opts,
            );
            let appended = written.len() + out.total_len() - before;
            assert!(p.consumed <= input.readable().len());
            assert_eq!(
                p.answered,
                usize::from(appended > 0),
                "`answered` must count the response appended"
            );
            input.consume(p.consumed);
            match p.stop {
                Stop::NeedMore { needed } => {
                    assert!(needed > input.readable().len(), "NeedMore with more in");
                    assert_eq!(p.answered, 0, "NeedMore after an answer");
                    break;
                }
                Stop::OutputFull => {
                    assert!(!out.is_empty(), "OutputFull with nothing to write");
                    drain(&mut out, &mut written);
                }
                Stop::Close(why) => {
                    assert_eq!(p.answered, 1, "a close without its answer");
                    drain(&mut out, &mut written);
                    return Served {
                        output: written,
                        closed: Some(why),
                    };
                }
                Stop::Offload { .. } => panic!("the metrics session never offloads"),
            }
        }
    }
    drain(&mut out, &mut written);
    Served {
        output: written,
        closed: None,
    }
}

/// Serves `stream` cut by `sizes` and panics unless every complete request of
/// the whole stream (up to the first that closes the connection) got exactly
/// one response, in order: 200 with [`PAGE`] for `GET /metrics`, 404 for any
/// other, the refusal's status for a malformed one; `Connection: close` on
/// exactly the last response when it ends the connection, and the close
/// reported for the right reason. Returns the responses.
pub fn check_session(stream: &[u8], sizes: &[usize]) -> Vec<Response> {
    let whole = requests(stream, &[]);
    let mut want = Vec::new();
    let mut heads = Vec::new();
    let mut want_close = None;
    for request in &whole.requests {
        let Outcome::Request {
            path_ok,
            keep_alive,
            head,
            ..
        } = *request
        else {
            unreachable!("requests() keeps only requests")
        };
        heads.push(head);
        want.push((
            if path_ok {
                Status::Ok
            } else {
                Status::NotFound
            }
            .code(),
            !keep_alive,
        ));
        if !keep_alive {
            want_close = Some(CloseReason::Bye);
            break;
        }
    }
    if want_close.is_none() {
        if let Some(why) = whole.refused {
            want.push((why.status().code(), true));
            want_close = Some(CloseReason::ProtocolError);
        }
    }

    let served = serve(&chunks(stream, sizes));
    let got = responses(&served.output, &heads);
    let got_heads: Vec<(u16, bool)> = got.iter().map(|r| (r.code, r.close)).collect();
    assert_eq!(got_heads, want, "one response per request, in order");
    assert_eq!(served.closed, want_close, "closed for the wrong reason");
    for (i, r) in got.iter().enumerate() {
        if r.code == Status::Ok.code() && !heads.get(i).copied().unwrap_or(false) {
            assert_eq!(r.body, PAGE, "a 200 without the page");
        }
    }
    got
}
