//! The listening sockets of a server: bound from the configured addresses,
//! or inherited from systemd, each with the [`Endpoint`] it is: the
//! protocol of what it accepts, and whether TLS wraps it.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use reactor_rpc_core::session::{Endpoint, Role};
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

/// The listening sockets of a server, each with its [`Endpoint`]: the JSON
/// RPC port, and the TLS, RESP and metrics ports when configured. Bound (or
/// inherited) before a model starts, so every model serves the same set, in
/// [`Endpoint::ALL`]'s order.
#[derive(Debug)]
pub struct Listeners(Vec<(Endpoint, TcpListener)>);

impl Listeners {
    /// Takes the inherited sockets and binds the others from `config`. An
    /// error names the address it is about, so one line says what failed.
    pub fn open(config: &Config, mut inherited: Inherited) -> io::Result<Listeners> {
        let mut all = Vec::new();
        for endpoint in Endpoint::ALL {
            let socket = match (inherited.take(endpoint), config.addr_of(endpoint)) {
                (Some(socket), _) => socket,
                (None, Some(addr)) => bind_listener(addr)
                    .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?,
                (None, None) => continue,
            };
            all.push((endpoint, socket));
        }
        if all.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listener: --addr none needs another port (--tls-addr, --resp-addr, ...)",
            ));
        }
        Ok(Listeners(all))
    }

    /// Where each listener listens (the real port when asked for port 0).
    pub fn addrs(&self) -> io::Result<Vec<(Endpoint, SocketAddr)>> {
        self.0
            .iter()
            .map(|(endpoint, l)| Ok((*endpoint, l.local_addr()?)))
            .collect()
    }

    /// Each listener with its endpoint.
    pub fn into_vec(self) -> Vec<(Endpoint, TcpListener)> {
        self.0
    }
}

/// Logs where a server listens: the `listening on ADDR (model NAME)` line
/// that tools parse, for the JSON port (the plaintext one, or the TLS one
/// with `--addr none`), then one `NAME listening on ADDR` line per other port.
pub(crate) fn log_listening(endpoints: &[(Endpoint, SocketAddr)], model: &str) {
    let main = endpoints
        .iter()
        .position(|(e, _)| e.role == Role::Rpc && !e.tls)
        .or_else(|| endpoints.iter().position(|(e, _)| e.role == Role::Rpc));
    for (i, (endpoint, addr)) in endpoints.iter().enumerate() {
        match (Some(i) == main, endpoint.tls) {
            (true, false) => log::info!("listening on {addr} (model {model})"),
            (true, true) => log::info!("listening on {addr} (model {model}, tls)"),
            (false, _) => log::info!("{endpoint} listening on {addr}"),
        }
    }
}
