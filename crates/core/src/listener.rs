//! The listeners a server has, named once: [`Role`] (which protocol a port
//! speaks) and [`Endpoint`] (a role, plain or over TLS).
//!
//! A leaf of the crate: the sessions pick their protocol by role, the
//! counters keep their figures by role, and the server crate's config,
//! systemd activation, refusals and logs name listeners with these; none of
//! them needs anything else from the others to do so.

use std::fmt;

/// The kind of port a connection came in on, which decides its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The JSON RPC protocol (length-prefixed frames).
    Rpc,
    /// The Redis protocol (RESP2, RESP3 after `HELLO 3`).
    Resp,
    /// HTTP: `GET /metrics` in the Prometheus text format.
    Metrics,
}

impl Role {
    /// Every role, in the order listeners are opened and logged.
    pub const ALL: [Role; 3] = [Role::Rpc, Role::Resp, Role::Metrics];

    /// The role's name in logs and in systemd's `LISTEN_FDNAMES`
    /// (`FileDescriptorName=`): `rpc`, `resp`, `metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Rpc => "rpc",
            Role::Resp => "resp",
            Role::Metrics => "metrics",
        }
    }

    /// The role named `name` (see [`Role::name`]).
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A listener: the protocol it speaks ([`Role`]) and whether TLS wraps it.
/// The JSON and RESP protocols each have a plaintext port and a TLS port
/// (`--addr`, `--tls-addr`; `--resp-addr`, `--resp-tls-addr`); the metrics
/// port is one or the other (`--metrics-tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The protocol of the connections it accepts.
    pub role: Role,
    /// Whether they speak TLS first.
    pub tls: bool,
}

impl Endpoint {
    /// Every endpoint, in the order listeners are opened and logged.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::plain(Role::Rpc),
        Endpoint::tls(Role::Rpc),
        Endpoint::plain(Role::Resp),
        Endpoint::tls(Role::Resp),
        Endpoint::plain(Role::Metrics),
        Endpoint::tls(Role::Metrics),
    ];

    /// `role` without TLS.
    pub const fn plain(role: Role) -> Endpoint {
        Endpoint { role, tls: false }
    }

    /// `role` over TLS.
    pub const fn tls(role: Role) -> Endpoint {
        Endpoint { role, tls: true }
    }

    /// Its name in logs and in systemd's `FileDescriptorName=`: the role's
    /// (`rpc`, `resp`, `metrics`), with `-tls` for a TLS port.
    pub fn name(self) -> &'static str {
        match (self.role, self.tls) {
            (Role::Rpc, false) => "rpc",
            (Role::Rpc, true) => "rpc-tls",
            (Role::Resp, false) => "resp",
            (Role::Resp, true) => "resp-tls",
            (Role::Metrics, false) => "metrics",
            (Role::Metrics, true) => "metrics-tls",
        }
    }

    /// The endpoint named `name` (see [`Endpoint::name`]).
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
