//! Error codes: the closed vocabulary a client can match on.
//!
//! The string forms are part of the wire protocol (see `PROTOCOL.md`), so they
//! live in one place and are never spelled anywhere else.

use std::fmt;

/// Defines [`ErrorCode`] from one list, so that each code is spelled once and
/// [`ErrorCode::ALL`] (what the metrics label) can never miss one.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $wire:literal, )*) => {
        /// The `code` field of an error response.
        ///
        /// Later versions may add codes, so the enum is `#[non_exhaustive]`: a
        /// `match` on it needs a wildcard arm. [`ErrorCode::parse`] maps a code
        /// this version does not know to `None`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of `PROTOCOL.md`'s table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as it appears on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }
        }
    };
}

error_codes! {
    /// The body is not UTF-8, not JSON, empty, or nested too deeply.
    BadJson => "bad_json",
    /// JSON, but not an object with a string `in`.
    BadRequest => "bad_request",
    /// No method with that name.
    UnknownMethod => "unknown_method",
    /// The method exists but its `params` are wrong.
    BadParams => "bad_params",
    /// The length prefix exceeds `--max-frame`; the connection is closed after it.
    FrameTooLarge => "frame_too_large",
    /// The server refuses work it has no room for (e.g. `--max-conns`).
    Overloaded => "overloaded",
    /// A bug on our side; never expected.
    Internal => "internal",
    /// A cache write would take memory over `--maxmemory` and nothing can be evicted.
    Oom => "oom",
    /// The value exists but this protocol cannot carry it (binary bytes read as JSON).
    WrongType => "wrong_type",
    /// The server is already doing that (reserved for `save`: a snapshot is
    /// in progress); try again later.
    Busy => "busy",
    /// Authentication is on and the connection has not authenticated: every
    /// method but `ping` and `auth` gets this.
    Unauthenticated => "unauthenticated",
    /// `auth` with a user that does not exist or a password that is not
    /// theirs (one code for both).
    WrongPassword => "wrong_password",
    /// The user's role does not allow the method (a `read` user calling
    /// `set`, a `write` user calling `save`).
    Forbidden => "forbidden",
    /// Too many failed `auth` attempts from this address (10 within 60 s):
    /// refused for 60 s without the password being checked.
    TooManyAttempts => "too_many_attempts",
    /// A snapshot could not be written: the `save` method's own failure, or,
    /// with `--stop-writes-on-save-error` (the default), a write refused
    /// because the last save failed, until a save succeeds.
    SaveFailed => "save_failed",
    /// The reply would be larger than `--max-reply` (`mget` of too many or
    /// too large values, `scan` of too large keys): nothing is returned; ask
    /// for less at a time.
    ReplyTooLarge => "reply_too_large",
}

impl ErrorCode {
    /// Parses a wire code; unknown codes (from a newer server) map to `None`.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
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
/// use reactor_rpc_protocol::{ErrorCode, RpcError};
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
        let all = ErrorCode::ALL.iter().copied();
        assert_eq!(all.len(), 16);
        for code in all {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::Oom.as_str(), "oom");
        assert_eq!(ErrorCode::WrongType.as_str(), "wrong_type");
        assert_eq!(ErrorCode::Busy.as_str(), "busy");
        assert_eq!(ErrorCode::WrongPassword.as_str(), "wrong_password");
        assert_eq!(ErrorCode::TooManyAttempts.as_str(), "too_many_attempts");
        assert_eq!(ErrorCode::SaveFailed.as_str(), "save_failed");
        assert_eq!(ErrorCode::ReplyTooLarge.as_str(), "reply_too_large");
        assert_eq!(ErrorCode::parse("from_the_future"), None);
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "each code spelled once");
    }
}
