//! One front door for every server model: bind, run, shut down.
//!
//! The binary, the tests and the benchmarks start servers only through
//! [`Server`], so a model is chosen by a value ([`Model`]), never by code.
//! This is the only module that knows every model.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use reactor_rpc_core::session::{Endpoint, Exposition, Role};
use reactor_rpc_core::Service;
use reactor_rpc_ops::exposition::Scrapes;
use reactor_rpc_ops::systemd::Inherited;

use crate::config::{Config, Model};
use crate::env::Core;
use crate::net::Listeners;
use crate::shutdown::ShutdownHandle;
use crate::{reactor, threaded};

/// Checks that every TLS endpoint has certificates, and makes SIGHUP (the
/// hangup hook every model calls) reload them too, after what the binary
/// asked for (reopening its log): new handshakes use the new files, open
/// connections keep theirs, bad files leave the old ones in use.
fn tls_reload_on_hangup(config: &mut Config, service: &Arc<Service>) -> io::Result<()> {
    let wants_tls = Endpoint::ALL
        .into_iter()
        .any(|e| e.tls && config.addr_of(e).is_some());
    let Some(source) = config.security.tls.clone() else {
        if wants_tls {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a TLS port needs a certificate and a key (--tls-cert-file, --tls-key-file)",
            ));
        }
        return Ok(());
    };
    let before = config.hooks.on_hangup.take();
    let service = Arc::clone(service);
    config.hooks.on_hangup = Some(Arc::new(move || {
        if let Some(hook) = &before {
            hook();
        }
        match source.reload() {
            Ok(()) => log::info!(
                "reloaded the TLS certificate {}",
                source.files().cert.display()
            ),
            Err(e) => {
                service.stats().tls_reload_failed();
                log::error!("cannot reload the TLS certificate, keeping the old one: {e}");
            }
        }
    }));
    Ok(())
}

enum Inner {
    Reactor(Box<reactor::Reactor>),
    Threaded(threaded::Threaded),
    #[cfg(feature = "tokio-model")]
    Tokio(Box<crate::tokio_model::TokioServer>),
}

/// A bound server, ready to [`Server::run`].
///
/// ```
/// use std::sync::Arc;
/// use reactor_rpc_client::Client;
/// use reactor_rpc_core::Service;
/// use reactor_rpc_server::{Config, Server};
///
/// let mut config = Config::default();
/// config.addr = "127.0.0.1:0".parse().unwrap(); // any free port
/// let server = Server::bind(config, Arc::new(Service::new())).unwrap();
/// let addr = server.local_addr();
/// let stop = server.shutdown_handle();
/// let running = std::thread::spawn(move || server.run());
///
/// let mut client = Client::connect(addr).unwrap();
/// assert_eq!(client.call("ping", "hi").unwrap(), "hi");
///
/// stop.shutdown();
/// running.join().unwrap().unwrap();
/// ```
pub struct Server {
    inner: Inner,
    /// Where each listener listens.
    addrs: Vec<(Endpoint, SocketAddr)>,
}

impl Server {
    /// Binds the listening sockets (the JSON RPC port unless `--addr none`,
    /// and the RESP, metrics and TLS ports when configured); the ports are
    /// known from here on.
    pub fn bind(config: Config, service: Arc<Service>) -> io::Result<Server> {
        Server::bind_with(config, service, Inherited::default())
    }

    /// Like [`Server::bind`], serving the `inherited` listening sockets
    /// (systemd socket activation, say) instead of binding those roles.
    pub fn bind_with(
        config: Config,
        service: Arc<Service>,
        inherited: Inherited,
    ) -> io::Result<Server> {
        service.stats().set_server_info(config.server_info());
        let security = &config.security;
        if !service.install_auth(security.auth.clone(), security.metrics_token.clone()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "this service already serves other users or another metrics token",
            ));
        }
        let mut config = config;
        tls_reload_on_hangup(&mut config, &service)?;
        let listeners = Listeners::open(&config, inherited)?;
        let addrs = listeners.addrs()?;
        crate::net::log_listening(&addrs, config.model.name());
        crate::net::ProtectedMode(config.security.protected_mode)
            .warn_open_listeners(&service, &addrs);
        let exposition: Arc<dyn Exposition> = Arc::new(Scrapes::new(service.clone()));
        let core = Core {
            service,
            exposition,
        };
        let inner = match config.model {
            Model::Reactor => {
                Inner::Reactor(Box::new(reactor::Reactor::bind(config, core, listeners)?))
            }
            Model::Threaded | Model::Pool => {
                Inner::Threaded(threaded::Threaded::bind(config, core, listeners)?)
            }
            #[cfg(feature = "tokio-model")]
            Model::Tokio | Model::TokioMt => Inner::Tokio(Box::new(
                crate::tokio_model::TokioServer::bind(config, core, listeners)?,
            )),
        };
        Ok(Server { inner, addrs })
    }

    /// The address of `endpoint`'s listener (the real port when asked for
    /// port 0), if the server has one.
    pub fn endpoint_addr(&self, endpoint: Endpoint) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find_map(|&(e, addr)| (e == endpoint).then_some(addr))
    }

    /// The address of a listener of `role`: the plaintext one if there is
    /// one, else the TLS one.
    pub fn addr(&self, role: Role) -> Option<SocketAddr> {
        self.endpoint_addr(Endpoint::plain(role))
            .or_else(|| self.endpoint_addr(Endpoint::tls(role)))
    }

    /// The JSON RPC port's address (the real port when asked for port 0):
    /// the plaintext one, or with `--addr none` the TLS one.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr(Role::Rpc)
            .or_else(|| self.addrs.first().map(|&(_, addr)| addr))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The JSON-over-TLS port's address, with `--tls-addr`.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.endpoint_addr(Endpoint::tls(Role::Rpc))
    }

    /// The RESP-over-TLS port's address, with `--resp-tls-addr`.
    pub fn resp_tls_addr(&self) -> Option<SocketAddr> {
        self.endpoint_addr(Endpoint::tls(Role::Resp))
    }

    /// The RESP port's address, with `--resp-addr`.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.addr(Role::Resp)
    }

    /// The metrics port's address, with `--metrics-addr`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.addr(Role::Metrics)
    }

    /// A handle to stop the server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        match &self.inner {
            Inner::Reactor(r) => r.shutdown_handle(),
            Inner::Threaded(t) => t.shutdown_handle(),
            #[cfg(feature = "tokio-model")]
            Inner::Tokio(t) => t.shutdown_handle(),
        }
    }

    /// Serves until shut down; returns once every connection is closed.
    pub fn run(self) -> io::Result<()> {
        match self.inner {
            Inner::Reactor(r) => r.run(),
            Inner::Threaded(t) => t.run(),
            #[cfg(feature = "tokio-model")]
            Inner::Tokio(t) => t.run(),
        }
    }
}
