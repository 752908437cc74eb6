//! The wire protocol, and nothing else.
//!
//! Pure code: byte slices in, byte vectors out. No sockets, no threads, no clocks.
//! Every server model and the client share it, so a request means the same thing
//! whichever model serves it. See `PROTOCOL.md` for the specification.
//!
//! * [`frame`]: the length-prefixed framing (4-byte little-endian length, then a body).
//! * [`json`]: the validating scanner that reads the request envelope in one pass.
//! * [`message`]: the JSON request and response shapes, parsed by borrowing.
//! * [`error`]: the error codes a response can carry.

pub mod error;
pub mod frame;
pub mod json;
pub mod message;
pub mod resp;

pub use error::{ErrorCode, RpcError};
pub use frame::{decode, Decoded, DEFAULT_MAX_FRAME, HEADER_LEN};
pub use json::Json;
pub use message::{parse_request, write_error_frame, Request, ResponseWriter};
