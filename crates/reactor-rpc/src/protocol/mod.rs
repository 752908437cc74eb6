//! The wire protocol, and nothing else.
//!
//! Pure code: byte slices in, byte vectors out. No sockets, no threads, no clocks.
//! Every server model and the client share it, so a request means the same thing
//! whichever model serves it. See `PROTOCOL.md` for the specification.
//!
//! * [`frame`]: the length-prefixed framing (4-byte little-endian length, then a body).
//! * [`json`]: [`Json`], a slice of text known to be one valid JSON value, which
//!   is how a method receives its params.
//! * [`parse_request`]: the request envelope, parsed by borrowing from the body
//!   in one validating pass.
//! * [`ErrorCode`] and [`RpcError`]: the errors a response can carry.

mod error;
pub mod frame;
pub mod json;
// The response writers serve the service layer only (the `server` feature).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) mod message;
pub mod resp;

pub use error::{ErrorCode, RpcError};
pub use frame::{decode, Decoded, DEFAULT_MAX_FRAME, HEADER_LEN};
pub use json::Json;
pub use message::{parse_request, ParseError, Request};
#[cfg(feature = "server")]
pub(crate) use message::{write_error_frame, ResponseWriter};
