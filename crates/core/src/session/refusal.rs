//! What a refused connection is told, in the protocol of the port it reached.
//!
//! A server model turns a connection away when a limit is reached; the
//! client should read why in a form it understands, not a reset: the JSON
//! `overloaded` frame, a RESP error worded as Redis words it, or an HTTP 503.

use std::fmt;

use reactor_rpc_protocol::http::{write_response, Status};
use reactor_rpc_protocol::message::write_overloaded_frame;
use reactor_rpc_protocol::resp::{Reply, Version};

use super::Role;

/// Which limit a refused connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener's connection limit (`--max-conns`) is reached.
    MaxConns(usize),
    /// Its address holds `--max-conns-per-ip` connections.
    PerIp(usize),
    /// Every one of the pool's threads (this many) stayed busy for as long
    /// as a new connection may wait for one.
    PoolBusy(usize),
}

impl Refusal {
    /// What the client is told, in the protocol of the listener it reached:
    /// the JSON `overloaded` frame, a RESP error worded as Redis words it
    /// (`-ERR max number of clients reached`), or an HTTP 503.
    pub fn response(self, role: Role) -> Vec<u8> {
        let mut out = Vec::new();
        match role {
            Role::Rpc => {
                let message = match self {
                    Refusal::MaxConns(n) => format!("server is at its limit of {n} connections"),
                    Refusal::PerIp(n) => {
                        format!("too many connections from this address (limit {n})")
                    }
                    Refusal::PoolBusy(n) => {
                        format!("all {n} pool threads are busy with other connections")
                    }
                };
                write_overloaded_frame(&mut out, message);
            }
            Role::Resp => {
                // The pool's refusal reads as Redis's client limit: what
                // client libraries already treat as "cannot connect now".
                let message: &[u8] = match self {
                    Refusal::MaxConns(_) | Refusal::PoolBusy(_) => {
                        b"ERR max number of clients reached"
                    }
                    Refusal::PerIp(_) => b"ERR max number of clients per address reached",
                };
                Reply::new(&mut out, Version::Resp2).error(message);
            }
            Role::Metrics => write_response(
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
            Refusal::PerIp(n) => write!(f, "its address at max-conns-per-ip {n}"),
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
        let json = Refusal::PoolBusy(8).response(Role::Rpc);
        assert!(String::from_utf8_lossy(&json).contains(r#""code":"overloaded""#));
        assert_eq!(
            Refusal::PoolBusy(8).response(Role::Resp),
            b"-ERR max number of clients reached\r\n"
        );
    }
}
