//! Threaded server models (placeholder; see issue 3).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::server::{Config, ShutdownHandle};
use crate::service::Service;

pub struct Threaded {}

impl Threaded {
    pub fn bind(_config: Config, _service: Arc<Service>) -> io::Result<Threaded> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "threaded models are not built yet",
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
