//! The JSON protocol's session: length-prefixed frames in, responses out.
//!
//! [`process`] decodes every complete frame at the front of an input slice,
//! hands each body to the [`Service`], and appends each response to the
//! output. It stops when the input runs out, when a frame is too large
//! (after writing `frame_too_large`: [`Stop::Close`]), when a heavy request
//! should go to a worker ([`Stop::Offload`]), or when pending output passes
//! the high-water mark ([`Stop::OutputFull`]). It is pure, so the fuzzer and
//! the property tests drive exactly what the servers run.
//!
//! Between frames a [`JsonSession`] keeps only who the connection logged in
//! as (the `auth` method), which decides the methods it may call.

use std::fmt;

use reactor_rpc_protocol::message::write_error_frame;
use reactor_rpc_protocol::{decode, Decoded, ErrorCode, RpcError, HEADER_LEN};

use super::{CloseReason, Options, Progress, Stop};
use crate::output::Output;
use crate::service::auth::Login;
use crate::service::{Handled, Service};

/// A JSON connection's session: who it logged in as.
#[derive(Debug, Clone, Default)]
pub struct JsonSession {
    login: Login,
}

impl JsonSession {
    /// A new connection from `peer` (`None`: no address, as for a Unix
    /// socket or a test), not logged in.
    pub fn new(peer: Option<std::net::IpAddr>) -> JsonSession {
        JsonSession {
            login: Login::new(peer),
        }
    }

    /// Who the connection logged in as.
    pub fn login(&self) -> &Login {
        &self.login
    }
}

/// Answers every complete frame at the front of `input`; see the module docs.
/// A large cached value is copied into `out`; [`process_output`] queues it by
/// reference instead.
pub fn process(
    service: &Service,
    session: &mut JsonSession,
    peer: &dyn fmt::Display,
    input: &[u8],
    out: &mut Vec<u8>,
    opt: Options,
) -> Progress {
    // A move in and out: nothing is copied unless a value was spliced.
    let mut output = Output::from_vec(std::mem::take(out));
    let p = process_output(service, session, peer, input, &mut output, opt);
    *out = output.into_vec();
    p
}

/// [`process`] into an [`Output`], where a large cached value is queued by
/// reference (see [`crate::output`]). `max_output` counts every byte of the
/// output, spliced ones at full size: one call serialises at most about
/// `max_output` bytes of responses, however they are held.
pub fn process_output(
    service: &Service,
    session: &mut JsonSession,
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
                    metrics.code_id(ErrorCode::FrameTooLarge),
                ));
                answered += 1;
                break Stop::Close(CloseReason::FrameTooLarge);
            }
            Decoded::Frame { body_len } => {
                let body = &input[consumed + HEADER_LEN..consumed + HEADER_LEN + body_len];
                let (handled, label) = service.handle_labelled(
                    Some(&mut session.login),
                    peer,
                    body,
                    out,
                    opt.offload,
                    opt.max_reply,
                );
                if handled == Handled::Offload {
                    break Stop::Offload {
                        len: HEADER_LEN + body_len,
                    };
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
