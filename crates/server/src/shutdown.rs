//! The handle that asks a running server to stop, from any thread.
//!
//! A leaf module shared by every model: each model supplies the `wake`
//! function that gets its own attention (the reactor's `mio::Waker`, the
//! threaded models' condition variable, the tokio models' cancellation
//! tokens), told how soon the stop is wanted ([`Urgency`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use log::warn;

/// Asks a running server to stop; cheap to clone and safe from any thread.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<ShutdownInner>);

/// How soon a model is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Stop accepting, answer what has arrived, close within the grace period.
    Graceful,
    /// Close every connection now.
    Now,
}

struct ShutdownInner {
    requested: AtomicBool,
    forced: AtomicBool,
    wake: Box<dyn Fn(Urgency) + Send + Sync>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.is_requested())
            .field("forced", &self.is_forced())
            .finish()
    }
}

impl ShutdownHandle {
    /// A handle that calls `wake` to get the server's attention.
    pub(crate) fn new(wake: impl Fn(Urgency) + Send + Sync + 'static) -> ShutdownHandle {
        ShutdownHandle(Arc::new(ShutdownInner {
            requested: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            wake: Box::new(wake),
        }))
    }

    /// Starts a graceful shutdown; returns at once.
    pub fn shutdown(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        (self.0.wake)(Urgency::Graceful);
    }

    /// Closes every connection now, without waiting out the grace period
    /// (starting the shutdown if none is under way); returns at once.
    pub fn force(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        self.0.forced.store(true, Ordering::SeqCst);
        (self.0.wake)(Urgency::Now);
    }

    /// What a terminate signal does by default: the first starts a graceful
    /// shutdown, one during a shutdown closes every connection now (logged).
    pub fn escalate(&self) {
        if self.is_requested() {
            warn!("second signal: closing every connection now");
            self.force();
        } else {
            self.shutdown();
        }
    }

    /// Whether a shutdown has been asked for.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// Whether every connection is to be closed now ([`ShutdownHandle::force`]).
    pub fn is_forced(&self) -> bool {
        self.0.forced.load(Ordering::SeqCst)
    }
}
