//! A server's request path without the sockets, and the invariants it must keep.
//!
//! [`serve`] feeds a byte stream, cut into chunks, through a [`ReadBuffer`] and
//! [`json::process`] exactly as a server model does (process after every
//! read, consume whole frames, run offloaded frames like a worker, drain the
//! output when it is full, stop after `frame_too_large`). [`check`] compares
//! what it wrote with an oracle that splits the whole stream with [`decode`] and
//! answers each frame on its own, and panics on any difference.
//!
//! Shared by the property tests (`tests/dispatch_props.rs`, in CI) and the
//! cargo-fuzz target (`fuzz/fuzz_targets/dispatch.rs`) through the `testing`
//! feature, so both check exactly the same property. The other two protocols
//! have theirs beside it, shared the same way:
//!
//! * [`resp`]: the RESP request parser, cut into reads or whole
//!   (`tests/resp_props.rs`, `fuzz/fuzz_targets/resp.rs`).
//! * [`http`]: the metrics port's HTTP reader and session
//!   (`tests/http_props.rs`, `fuzz/fuzz_targets/http.rs`).

pub mod http;
pub mod resp;

use reactor_rpc_protocol::buffer::{ReadBuffer, WriteBuffer};
use reactor_rpc_protocol::message::{Response, ResponseError};
use reactor_rpc_protocol::{decode, Decoded, ErrorCode, HEADER_LEN};

use crate::service::Handled;
use crate::session::{json, CloseReason, Options, Stop};
use crate::Service;

/// Cuts `stream` into chunks whose sizes cycle through `sizes` (a size of 0
/// counts as 1); no sizes means one chunk holding everything.
pub fn chunks<'a>(stream: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// What a connection got back.
pub struct Served {
    /// Every byte written to the client, in order.
    pub output: Vec<u8>,
    /// Whether processing stopped at a too-large prefix (the server closes).
    pub closed: bool,
}

/// Runs the chunks through one connection's read path, like a server.
pub fn serve(service: &Service, chunks: &[&[u8]], opt: Options) -> Served {
    let mut input = ReadBuffer::new();
    let mut pending = WriteBuffer::new();
    let mut written = Vec::new();
    let mut session = json::JsonSession::default();
    for chunk in chunks {
        input.extend_from_slice(chunk);
        loop {
            let before = pending.len();
            let p = json::process(
                service,
                &mut session,
                &"client",
                input.readable(),
                pending.vec_mut(),
                opt,
            );
            assert_eq!(
                count_frames(&pending.pending()[before..]),
                p.answered,
                "`answered` must count the response frames appended"
            );
            input.consume(p.consumed);
            match p.stop {
                Stop::NeedMore { needed } => {
                    assert!(
                        needed > input.readable().len(),
                        "NeedMore with a whole frame"
                    );
                    break;
                }
                Stop::OutputFull => {
                    // The writable edge: drain, then decode again.
                    assert!(!pending.is_empty(), "OutputFull with nothing to write");
                    pending.write_to(&mut written).unwrap();
                }
                Stop::Offload { len } => {
                    assert!(opt.offload, "Offload although offloading is off");
                    // The worker: handle the frame at the front, in order.
                    let body = &input.readable()[HEADER_LEN..len];
                    let handled = service.handle(&"worker", body, pending.vec_mut(), false);
                    assert_eq!(handled, Handled::Done, "a worker must answer");
                    input.consume(len);
                }
                Stop::Close(why) => {
                    assert_eq!(why, CloseReason::FrameTooLarge, "JSON closes only there");
                    pending.write_to(&mut written).unwrap();
                    return Served {
                        output: written,
                        closed: true,
                    };
                }
            }
        }
        pending.write_to(&mut written).unwrap();
    }
    Served {
        output: written,
        closed: false,
    }
}

/// The oracle: splits the whole stream with [`decode`] and answers every
/// complete frame on its own. Returns the responses and whether a too-large
/// prefix follows them.
pub fn oracle(service: &Service, stream: &[u8], max_frame: u32) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut rest = stream;
    loop {
        match decode(rest, max_frame) {
            Decoded::Frame { body_len } => {
                service.handle(
                    &"oracle",
                    &rest[HEADER_LEN..HEADER_LEN + body_len],
                    &mut out,
                    false,
                );
                rest = &rest[HEADER_LEN + body_len..];
            }
            Decoded::Incomplete { .. } => return (out, false),
            Decoded::TooLarge { .. } => return (out, true),
        }
    }
}

/// The parts of a response that do not depend on the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response's `out` (`"error"` for an error response).
    pub out: String,
    /// The error code of an error response; `None` for a result.
    pub code: Option<ErrorCode>,
    /// The echoed id, verbatim.
    pub id: Option<String>,
}

/// Splits output into response frames; panics unless it is nothing but whole
/// frames, each a valid JSON response with a string `out` and, for errors, a
/// known code.
pub fn replies(output: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    let mut rest = output;
    while !rest.is_empty() {
        let Decoded::Frame { body_len } = decode(rest, u32::MAX) else {
            panic!("output ends with a partial frame: {rest:?}");
        };
        let body = &rest[HEADER_LEN..HEADER_LEN + body_len];
        let response: Response = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!("response is not valid JSON with a string out ({e}): {body:?}")
        });
        let out = response.out.clone();
        let id = response.id.as_ref().map(|id| id.get().to_owned());
        let code = match response.into_result() {
            Ok(_) => None,
            Err(ResponseError::Rpc(e)) => Some(e.code),
            Err(ResponseError::Malformed(e)) => panic!("malformed error response ({e}): {body:?}"),
        };
        replies.push(Reply { out, code, id });
        rest = &rest[HEADER_LEN + body_len..];
    }
    replies
}

fn count_frames(output: &[u8]) -> usize {
    replies(output).len()
}

/// What [`check`] saw, for further assertions by the caller.
pub struct Checked {
    /// What the connection wrote, as [`Served::output`].
    pub served: Vec<u8>,
    /// What the oracle wrote for the same stream.
    pub expected: Vec<u8>,
    /// `served`, split into responses.
    pub replies: Vec<Reply>,
    /// Whether the connection stopped at a too-large prefix.
    pub closed: bool,
}

/// Serves `stream` cut by `sizes` and checks the stream property: no panic;
/// every complete frame before a too-large prefix gets exactly one response,
/// in order (same id, same `out`, same error code as the oracle's); after a
/// too-large prefix exactly one `frame_too_large` is the last thing written.
///
/// `out` and codes are compared only when `clock_free` says that no response
/// can depend on time (TTL expiry can turn an `incr` into `bad_params`).
pub fn check(stream: &[u8], sizes: &[usize], opt: Options, clock_free: bool) -> Checked {
    let served = serve(&Service::new(), &chunks(stream, sizes), opt);
    let (expected, too_large) = oracle(&Service::new(), stream, opt.max_frame);
    let got = replies(&served.output);
    let want = replies(&expected);

    assert_eq!(
        served.closed, too_large,
        "closed iff a too-large prefix arrived"
    );
    assert_eq!(
        got.len(),
        want.len() + usize::from(too_large),
        "one response per complete frame (+ frame_too_large)"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.id, w.id, "response {i} answers another request");
        if clock_free {
            assert_eq!(g, w, "response {i} differs from the oracle's");
        }
    }
    let too_large_replies = got
        .iter()
        .filter(|r| r.code == Some(ErrorCode::FrameTooLarge))
        .count();
    assert_eq!(too_large_replies, usize::from(too_large));
    if too_large {
        let last = got.last().unwrap();
        assert_eq!(
            (last.out.as_str(), last.code),
            ("error", Some(ErrorCode::FrameTooLarge))
        );
        assert_eq!(last.id, None);
    }
    assert!(
        got.iter().all(|r| r.code != Some(ErrorCode::Internal)),
        "an internal error is a bug"
    );
    Checked {
        served: served.output,
        expected,
        replies: got,
        closed: served.closed,
    }
}

/// Whether no response to `stream` can depend on the clock: nothing can set
/// a TTL without the bytes `ttl` or a `\u` escape spelling them.
pub fn clock_free(stream: &[u8]) -> bool {
    !stream.windows(3).any(|w| w == b"ttl") && !stream.windows(2).any(|w| w == b"\\u")
}
