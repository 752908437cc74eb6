//! The wire formats of reactor-rpc, and nothing else.
//!
//! Pure code: byte slices in, verdicts and bytes out. No sockets, no threads,
//! no clocks. The server's sessions and the client both speak through it, so a
//! request means the same thing whichever side reads it. `PROTOCOL.md` is the
//! specification.
//!
//! Every reader here is *incremental*: call it again with the whole buffer
//! whenever more bytes arrive, and it answers "a whole message of N bytes",
//! "not yet (about N bytes in all)" or "malformed", never reserving memory
//! because a header announced a length.
//!
//! # Layout
//!
//! * [`frame`]: the length-prefixed framing of the JSON protocol (a 4-byte
//!   little-endian length, then a body).
//! * [`json`]: [`Json`], a slice of text known to be one valid JSON value, which
//!   is how a method receives its params; the one-pass envelope scanner.
//! * [`message`]: the request envelope ([`parse_request`], borrowing from the
//!   body), the response writers, and [`Response`], a response read back.
//! * [`error`]: [`ErrorCode`] and [`RpcError`], the errors a response can carry.
//! * [`resp`]: the Redis protocol (RESP2 and RESP3): the incremental command
//!   parser and the reply encoder.
//! * [`http`]: just enough HTTP/1.x for the metrics port: the request reader and
//!   the response writer.
//! * [`buffer`]: [`ReadBuffer`](buffer::ReadBuffer) and
//!   [`WriteBuffer`](buffer::WriteBuffer), the per-connection byte buffers that
//!   these readers are fed from (muduo's `Buffer`: indices, no zeroing per read).
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod buffer;
pub mod error;
pub mod frame;
pub mod http;
pub mod json;
pub mod message;
pub mod resp;

pub use error::{ErrorCode, RpcError};
pub use frame::{decode, Decoded, DEFAULT_MAX_FRAME, HEADER_LEN};
pub use json::Json;
pub use message::{parse_request, ParseError, Request, Response};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
