//! What a request needs to be allowed: the access class of every JSON method
//! and every Redis command, in one vocabulary.
//!
//! Two features ask the same question of a request, "does it change keys, or
//! the server?": authentication (a user's role allows some classes and not
//! others) and refusing writes after a failed save. Each method and command
//! states its class once, here in the service layer, so that both answer from
//! the same table and a new command cannot be forgotten by one of them.

/// The access class of a request, from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Allowed before authentication: `ping`, `auth`, RESP's `HELLO` and `QUIT`.
    Open,
    /// Reads keys or the server's state, changes nothing.
    Read,
    /// Changes keys.
    Write,
    /// Changes the server, or every key at once: saves, flushes, `CONFIG SET`,
    /// `CLIENT KILL`.
    Admin,
}

impl Access {
    /// The class's name in logs and docs (`open`, `read`, `write`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}
