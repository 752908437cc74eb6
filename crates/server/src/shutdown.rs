//! The handle that asks a running server to stop, from any thread.
//!
//! A leaf module shared by every model: each model supplies the `wake`
//! function that gets its own attention (the reactor's `mio::Waker`, the
//! threaded models' condition variable).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Asks a running server to stop; cheap to clone and safe from any thread.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<ShutdownInner>);

struct ShutdownInner {
    requested: AtomicBool,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.is_requested())
            .finish()
    }
}

impl ShutdownHandle {
    /// A handle that calls `wake` to get the server's attention.
    pub(crate) fn new(wake: impl Fn() + Send + Sync + 'static) -> ShutdownHandle {
        ShutdownHandle(Arc::new(ShutdownInner {
            requested: AtomicBool::new(false),
            wake: Box::new(wake),
        }))
    }

    /// Starts a graceful shutdown; returns at once.
    pub fn shutdown(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        (self.0.wake)();
    }

    /// Whether a shutdown has been asked for.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }
}
