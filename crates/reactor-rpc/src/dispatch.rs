//! Frames in, responses out: the request path every server model shares.
//!
//! [`process`] decodes every complete frame at the front of an input slice,
//! hands each body to the [`Service`], and appends each response to the
//! output vector. It stops when the input runs out, when a frame is too large
//! (after writing `frame_too_large`), when a heavy request should go to a
//! worker, or when pending output passes the high-water mark. It is pure, so
//! the fuzzer and the property tests drive exactly what the servers run.

use std::fmt;

use crate::output::Output;
use crate::protocol::{decode, write_error_frame, Decoded, ErrorCode, RpcError, HEADER_LEN};
use crate::service::{Handled, Service};

/// How to process input.
///
/// Built with a struct literal (every field is public) or [`Options::new`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest accepted frame body, in bytes.
    pub max_frame: u32,
    /// Whether heavy requests stop processing so a worker can take them.
    pub offload: bool,
    /// Stop decoding once the output holds this many bytes (backpressure).
    pub max_output: usize,
}

impl Options {
    /// Frames up to `max_frame` bytes, every request answered inline (no
    /// offload), and no limit on pending output: the simplest server's options.
    pub const fn new(max_frame: u32) -> Options {
        Options {
            max_frame,
            offload: false,
            max_output: usize::MAX,
        }
    }
}

/// Why [`process`] stopped.
///
/// Deliberately exhaustive: a server loop must handle every reason, and a new
/// one would be a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// No complete frame left; `needed` total bytes make up the next one.
    NeedMore {
        /// Bytes (header included) the unconsumed input must hold before
        /// calling [`process`] again can answer anything.
        needed: usize,
    },
    /// The output reached `max_output`; drain it before processing more.
    OutputFull,
    /// The frame at the front (`HEADER_LEN + body_len` bytes, not consumed) is
    /// heavy: run it on a worker, then call [`process`] again after it.
    Offload {
        /// Bytes in the frame's body, after its `HEADER_LEN`-byte prefix.
        body_len: usize,
    },
    /// A length prefix over the limit: `frame_too_large` was written; close the
    /// connection once it is flushed.
    TooLarge,
}

/// What [`process`] did.
///
/// `#[non_exhaustive]`: a later version may report more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Input bytes consumed (whole frames only).
    pub consumed: usize,
    /// Responses appended.
    pub answered: usize,
    /// Why it stopped, and what the caller should do next.
    pub stop: Stop,
}

/// Answers every complete frame at the front of `input`; see the module docs.
/// A large cached value is copied into `out`; [`process_output`] queues it by
/// reference instead.
pub fn process(
    service: &Service,
    peer: &dyn fmt::Display,
    input: &[u8],
    out: &mut Vec<u8>,
    opt: Options,
) -> Progress {
    // A move in and out: nothing is copied unless a value was spliced.
    let mut output = Output::from_vec(std::mem::take(out));
    let p = process_output(service, peer, input, &mut output, opt);
    *out = output.into_vec();
    p
}

/// [`process`] into an [`Output`], where a large cached value is queued by
/// reference (see [`crate::output`]). `max_output` counts every byte of the
/// output, spliced ones at full size: one call serialises at most about
/// `max_output` bytes of responses, however they are held.
pub fn process_output(
    service: &Service,
    peer: &dyn fmt::Display,
    input: &[u8],
    out: &mut Output,
    opt: Options,
) -> Progress {
    let mut consumed = 0;
    let mut answered = 0;
    let mut batch = crate::service::Batch::new(service);
    let out_start = out.total_len();
    let stop = loop {
        if out.total_len() >= opt.max_output {
            break Stop::OutputFull;
        }
        match decode(&input[consumed..], opt.max_frame) {
            Decoded::Incomplete { needed } => break Stop::NeedMore { needed },
            Decoded::TooLarge { body_len } => {
                let err = RpcError::new(
                    ErrorCode::FrameTooLarge,
                    format!(
                        "frame of {body_len} bytes exceeds the limit of {} bytes",
                        opt.max_frame
                    ),
                );
                write_error_frame(out, &err, None);
                let metrics = service.metrics();
                batch.push((
                    metrics.other_method(),
                    metrics.code_id(ErrorCode::FrameTooLarge.as_str()),
                ));
                answered += 1;
                break Stop::TooLarge;
            }
            Decoded::Frame { body_len } => {
                let body = &input[consumed + HEADER_LEN..consumed + HEADER_LEN + body_len];
                let (handled, label) = service.handle_labelled(peer, body, out, opt.offload);
                if handled == Handled::Offload {
                    break Stop::Offload { body_len };
                }
                if let Some(label) = label {
                    batch.push(label);
                }
                consumed += HEADER_LEN + body_len;
                answered += 1;
            }
        }
    };
    // Counted here rather than at each read and write, so every model
    // counts the same way at one pair of adds per batch: the bytes of the
    // requests taken and of the responses queued.
    batch.bytes(consumed, out.total_len().saturating_sub(out_start));
    Progress {
        consumed,
        answered,
        stop,
    }
}
