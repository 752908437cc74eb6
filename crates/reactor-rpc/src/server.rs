//! One front door for every server model: bind, run, shut down.
//!
//! The binary, the tests and the benchmarks start servers only through
//! [`Server`], so a model is chosen by a value ([`Model`]), never by code.
//! This is the only module that knows every model.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Config, Inherited, Model};
use crate::net::Listeners;
use crate::service::Service;
use crate::shutdown::ShutdownHandle;
use crate::{reactor, threaded};

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
/// use reactor_rpc::{Client, Config, Server, Service};
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
    addrs: Addrs,
}

/// Where each listener of a server listens.
struct Addrs {
    rpc: SocketAddr,
    resp: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

impl Server {
    /// Binds the listening sockets (the JSON RPC port, and the RESP and
    /// metrics ports when configured); the ports are known from here on.
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
        let listeners = Listeners::open(&config, inherited)?;
        let addr = |l: &Option<std::net::TcpListener>| -> io::Result<Option<SocketAddr>> {
            l.as_ref().map(|l| l.local_addr()).transpose()
        };
        let addrs = Addrs {
            rpc: listeners.rpc.local_addr()?,
            resp: addr(&listeners.resp)?,
            metrics: addr(&listeners.metrics)?,
        };
        let inner = match config.model {
            Model::Reactor => Inner::Reactor(Box::new(reactor::Reactor::bind(
                config, service, listeners,
            )?)),
            Model::Threaded | Model::Pool => {
                Inner::Threaded(threaded::Threaded::bind(config, service, listeners)?)
            }
            #[cfg(feature = "tokio-model")]
            Model::Tokio | Model::TokioMt => Inner::Tokio(Box::new(
                crate::tokio_model::TokioServer::bind(config, service, listeners)?,
            )),
        };
        Ok(Server { inner, addrs })
    }

    /// The JSON RPC port's address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs.rpc
    }

    /// The RESP port's address, with `--resp-addr`.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.addrs.resp
    }

    /// The metrics port's address, with `--metrics-addr`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.addrs.metrics
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
