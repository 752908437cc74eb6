//! Error codes: the closed vocabulary a client can match on.
//!
//! The string forms are part of the wire protocol (see `PROTOCOL.md`), so they
//! live in one place and are never spelled anywhere else.

use std::fmt;

/// The `code` field of an error response.
///
/// Later versions may add codes, so the enum is `#[non_exhaustive]`: a `match`
/// on it needs a wildcard arm. [`ErrorCode::parse`] maps a code this version
/// does not know to `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not UTF-8, not JSON, empty, or nested too deeply.
    BadJson,
    /// JSON, but not an object with a string `in`.
    BadRequest,
    /// No method with that name.
    UnknownMethod,
    /// The method exists but its `params` are wrong.
    BadParams,
    /// The length prefix exceeds `--max-frame`; the connection is closed after it.
    FrameTooLarge,
    /// The server refuses work it has no room for (e.g. `--max-conns`).
    Overloaded,
    /// A bug on our side; never expected.
    Internal,
    /// A cache write would take memory over `--maxmemory` and nothing can be evicted.
    Oom,
    /// The value exists but this protocol cannot carry it (binary bytes read as JSON).
    WrongType,
    /// The server is already doing that (reserved for `save`: a snapshot is
    /// in progress); try again later.
    Busy,
    /// A snapshot could not be written: the `save` method's own failure, or,
    /// with `--stop-writes-on-save-error` (the default), a write refused
    /// because the last save failed, until a save succeeds.
    SaveFailed,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::BadParams => "bad_params",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::Oom => "oom",
            ErrorCode::WrongType => "wrong_type",
            ErrorCode::Busy => "busy",
            ErrorCode::SaveFailed => "save_failed",
        }
    }

    /// Parses a wire code; unknown codes (from a newer server) map to `None`.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        Some(match code {
            "bad_json" => ErrorCode::BadJson,
            "bad_request" => ErrorCode::BadRequest,
            "unknown_method" => ErrorCode::UnknownMethod,
            "bad_params" => ErrorCode::BadParams,
            "frame_too_large" => ErrorCode::FrameTooLarge,
            "overloaded" => ErrorCode::Overloaded,
            "internal" => ErrorCode::Internal,
            "oom" => ErrorCode::Oom,
            "wrong_type" => ErrorCode::WrongType,
            "busy" => ErrorCode::Busy,
            "save_failed" => ErrorCode::SaveFailed,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a method (or the dispatcher) answers with: a code and a message for a person.
///
/// Build one with [`RpcError::new`] or [`RpcError::bad_params`]; it may carry
/// more fields in a later version (`#[non_exhaustive]`).
///
/// ```
/// use reactor_rpc::protocol::{ErrorCode, RpcError};
///
/// let e = RpcError::bad_params("n must be a non-negative integer");
/// assert_eq!(e.code, ErrorCode::BadParams);
/// assert_eq!(e.to_string(), "bad_params: n must be a non-negative integer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcError {
    /// What kind of error it is; clients match on this.
    pub code: ErrorCode,
    /// What went wrong, for a person to read; never parsed.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and a message for a person.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// A [`ErrorCode::BadParams`] error: the method exists but its params are wrong.
    pub fn bad_params(message: impl Into<String>) -> RpcError {
        RpcError::new(ErrorCode::BadParams, message)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back() {
        let all = [
            ErrorCode::BadJson,
            ErrorCode::BadRequest,
            ErrorCode::UnknownMethod,
            ErrorCode::BadParams,
            ErrorCode::FrameTooLarge,
            ErrorCode::Overloaded,
            ErrorCode::Internal,
            ErrorCode::Oom,
            ErrorCode::WrongType,
            ErrorCode::Busy,
            ErrorCode::SaveFailed,
        ];
        for code in all {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::Oom.as_str(), "oom");
        assert_eq!(ErrorCode::WrongType.as_str(), "wrong_type");
        assert_eq!(ErrorCode::Busy.as_str(), "busy");
        assert_eq!(ErrorCode::SaveFailed.as_str(), "save_failed");
        assert_eq!(ErrorCode::parse("from_the_future"), None);
    }
}
