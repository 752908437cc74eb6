//! The reactor (placeholder).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::server::{Config, ShutdownHandle};
use crate::service::Service;

pub struct Reactor {}

impl Reactor {
    pub fn bind(_config: Config, _service: Arc<Service>) -> io::Result<Reactor> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the reactor is not built yet",
        ))
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(io::ErrorKind::Unsupported.into())
    }
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(|| {})
    }
    pub fn run(self) -> io::Result<()> {
        Ok(())
    }
}
