//! What a refused connection is told, in the protocol of the port it reached.
//!
//! A server model turns a connection away when a limit is reached; the
//! client should read why in a form it understands, not a reset: the JSON
//! `overloaded` frame, a RESP error worded as Redis words it, or an HTTP 503.

use std::fmt;

use reactor_rpc_protocol::http::{write_response, Status};
use reactor_rpc_protocol::message::{write_error_frame, write_overloaded_frame};
use reactor_rpc_protocol::resp::{Reply, Version};
use reactor_rpc_protocol::{ErrorCode, RpcError};

use crate::service::auth::PROTECTED_MODE_TEXT;

use super::Role;

/// Which limit a refused connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client ports' connection limit (`--max-conns`) is reached.
    MaxConns(usize),
    /// The metrics port's own connection limit (`--metrics-max-conns`) is reached.
    MetricsMaxConns(usize),
    /// Its address holds `--max-conns-per-ip` connections.
    PerIp(usize),
    /// Protected mode: no user and no password is configured, and the peer
    /// is not on loopback.
    ProtectedMode,
    /// Every one of the pool's threads (this many) stayed busy for as long
    /// as a new connection may wait for one.
    PoolBusy(usize),
}

impl Refusal {
    /// What the client is told, in the protocol of the listener it reached:
    /// the JSON `overloaded` frame, a RESP error worded as Redis words it
    /// (`-ERR max number of clients reached`), or an HTTP 503. Protected
    /// mode's refusal is the JSON `forbidden` error, RESP's `-DENIED` (as
    /// Redis's protected mode answers), or an HTTP 403, each with
    /// [`PROTECTED_MODE_TEXT`], which names the three ways out.
    pub fn response(self, role: Role) -> Vec<u8> {
        let mut out = Vec::new();
        match (self, role) {
            (Refusal::ProtectedMode, Role::Rpc) => write_error_frame(
                &mut out,
                &RpcError::new(ErrorCode::Forbidden, PROTECTED_MODE_TEXT),
                None,
            ),
            (Refusal::ProtectedMode, Role::Resp) => {
                let mut message = b"DENIED ".to_vec();
                message.extend_from_slice(PROTECTED_MODE_TEXT.as_bytes());
                Reply::new(&mut out, Version::Resp2).error(&message);
            }
            (Refusal::ProtectedMode, Role::Metrics) => write_response(
                &mut out,
                Status::Forbidden,
                "text/plain; charset=utf-8",
                format!("{PROTECTED_MODE_TEXT}\n").as_bytes(),
                true,
            ),
            (Refusal::PoolBusy(n), Role::Rpc) => write_overloaded_frame(
                &mut out,
                format!("all {n} pool threads are busy with other connections"),
            ),
            (Refusal::MaxConns(n) | Refusal::MetricsMaxConns(n), Role::Rpc) => {
                write_overloaded_frame(
                    &mut out,
                    format!("server is at its limit of {n} connections"),
                )
            }
            (Refusal::PerIp(n), Role::Rpc) => write_overloaded_frame(
                &mut out,
                format!("too many connections from this address (limit {n})"),
            ),
            (
                Refusal::MaxConns(_) | Refusal::MetricsMaxConns(_) | Refusal::PoolBusy(_),
                Role::Resp,
            ) => {
                // The pool's refusal reads as Redis's client limit: what
                // client libraries already treat as "cannot connect now".
                Reply::new(&mut out, Version::Resp2).error(b"ERR max number of clients reached")
            }
            (Refusal::PerIp(_), Role::Resp) => Reply::new(&mut out, Version::Resp2)
                .error(b"ERR max number of clients per address reached"),
            (
                Refusal::MaxConns(_)
                | Refusal::MetricsMaxConns(_)
                | Refusal::PerIp(_)
                | Refusal::PoolBusy(_),
                Role::Metrics,
            ) => write_response(
                &mut out,
                Status::ServiceUnavailable,
                "text/plain; charset=utf-8",
                format!("{self}\n").as_bytes(),
                true,
            ),
        }
        out
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MaxConns(n) => write!(f, "at max-conns {n}"),
            Refusal::MetricsMaxConns(n) => write!(f, "at metrics-max-conns {n}"),
            Refusal::PerIp(n) => write!(f, "its address at max-conns-per-ip {n}"),
            Refusal::ProtectedMode => {
                f.write_str("protected mode (no user or password configured)")
            }
            Refusal::PoolBusy(n) => write!(f, "all {n} pool threads busy"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_reads_its_own_refusal() {
        let json = Refusal::MaxConns(3).response(Role::Rpc);
        assert!(String::from_utf8_lossy(&json).contains(r#""code":"overloaded""#));
        assert_eq!(
            Refusal::PerIp(2).response(Role::Resp),
            b"-ERR max number of clients per address reached\r\n"
        );
        let http = Refusal::MaxConns(3).response(Role::Metrics);
        assert!(http.starts_with(b"HTTP/1.1 503 "));
        let http = Refusal::MetricsMaxConns(16).response(Role::Metrics);
        let text = String::from_utf8_lossy(&http);
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(
            text.ends_with("\r\n\r\nat metrics-max-conns 16\n"),
            "{text}"
        );
    }

    #[test]
    fn protected_mode_names_the_ways_out_in_every_protocol() {
        for role in Role::ALL {
            let text = String::from_utf8(Refusal::ProtectedMode.response(role)).expect("text");
            for way_out in ["--requirepass-file", "--users-file", "--protected-mode no"] {
                assert!(text.contains(way_out), "{role}: {text}");
            }
        }
        let resp = Refusal::ProtectedMode.response(Role::Resp);
        assert!(resp.starts_with(b"-DENIED reactor-rpc is running in protected mode"));
        let json = String::from_utf8(Refusal::ProtectedMode.response(Role::Rpc)).expect("text");
        assert!(json.contains(r#""code":"forbidden""#), "{json}");
        let http = Refusal::ProtectedMode.response(Role::Metrics);
        assert!(http.starts_with(b"HTTP/1.1 403 "));
    }

    #[test]
    fn a_busy_pool_refuses_as_a_full_server() {
        let json = Refusal::PoolBusy(8).response(Role::Rpc);
        assert!(String::from_utf8_lossy(&json).contains(r#""code":"overloaded""#));
        assert_eq!(
            Refusal::PoolBusy(8).response(Role::Resp),
            b"-ERR max number of clients reached\r\n"
        );
    }
}
