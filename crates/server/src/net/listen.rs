//! The listening sockets of a server: bound from the configured addresses,
//! or inherited from systemd, each with the [`Role`] of what it accepts.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use reactor_rpc_core::session::Role;
use reactor_rpc_ops::systemd::Inherited;

use crate::config::Config;

/// Listen backlog: enough for a burst of thousands of connects. The kernel caps
/// it at `net.core.somaxconn`.
pub const BACKLOG: i32 = 4096;

/// Binds a listening socket (with `SO_REUSEADDR`, as std does on Unix) and
/// raises its backlog from std's 128 to [`BACKLOG`].
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // SAFETY: listen(2) on a descriptor we own; calling it again on a listening
    // socket only changes the backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// The listening sockets of a server, each with the [`Role`] of what it
/// accepts: the JSON RPC port, and the RESP and metrics ports when
/// configured. Bound (or inherited) before a model starts, so every model
/// serves the same set, in [`Role::ALL`]'s order.
#[derive(Debug)]
pub struct Listeners(Vec<(Role, TcpListener)>);

impl Listeners {
    /// Takes the inherited sockets and binds the others from `config`. An
    /// error names the address it is about, so one line says what failed.
    pub fn open(config: &Config, mut inherited: Inherited) -> io::Result<Listeners> {
        let mut all = Vec::new();
        for role in Role::ALL {
            let socket = match (inherited.take(role), config.addr_of(role)) {
                (Some(socket), _) => socket,
                (None, Some(addr)) => bind_listener(addr)
                    .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?,
                (None, None) => continue,
            };
            all.push((role, socket));
        }
        Ok(Listeners(all))
    }

    /// Where each listener listens (the real port when asked for port 0).
    pub fn addrs(&self) -> io::Result<Vec<(Role, SocketAddr)>> {
        self.0
            .iter()
            .map(|(role, l)| Ok((*role, l.local_addr()?)))
            .collect()
    }

    /// Each listener with the role of the connections it accepts.
    pub fn into_vec(self) -> Vec<(Role, TcpListener)> {
        self.0
    }
}

/// Logs where a server listens: the `listening on ADDR (model NAME)` line
/// that tools parse, then one line per extra port.
pub(crate) fn log_listening(roles: &[(Role, SocketAddr)], model: &str) {
    for (role, addr) in roles {
        match role {
            Role::Rpc => log::info!("listening on {addr} (model {model})"),
            other => log::info!("{other} listening on {addr}"),
        }
    }
}
