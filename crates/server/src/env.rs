//! What every model hands its connections' sessions: the core crate's
//! objects ([`Core`]: the service and the metrics exposition) and, with the
//! limits, the [`Env`](reactor_rpc_core::session::Env) a session answers in.
//!
//! A leaf: the models take a `Core` from `server.rs`, which builds it and
//! picks the model, so neither needs the other's module for it.

use std::sync::Arc;

use reactor_rpc_core::session::Exposition;
use reactor_rpc_core::Service;

/// The core crate's objects a model hands every connection: the service
/// (methods, commands, cache, counters) and the exposition its metrics port
/// serves.
#[derive(Clone)]
pub(crate) struct Core {
    pub service: Arc<Service>,
    pub exposition: Arc<dyn Exposition>,
}

impl Core {
    /// What a session needs to answer a request, with these limits.
    pub fn env(
        &self,
        opts: reactor_rpc_core::session::Options,
    ) -> reactor_rpc_core::session::Env<'_> {
        reactor_rpc_core::session::Env {
            service: &self.service,
            exposition: &*self.exposition,
            opts,
        }
    }
}
