//! `CLIENT KILL` for the reactor: another connection's command asks for a
//! connection to close, and only the loop may close it.
//!
//! The command runs on the loop (or, inside a heavy `EXEC`, on a worker), so
//! the hook a RESP session is given only records the connection's slab key
//! and id and wakes the loop; the loop closes each recorded connection whose
//! id still matches on its next turn (a key can be reused, an id cannot).
//! The registry runs a connection's hook at most once, so the list holds at
//! most one entry per live connection.

use std::sync::{Arc, Mutex, PoisonError};

use log::debug;
use mio::Waker;

use reactor_rpc_core::service::redis::KillHook;

/// Connections another client asked to close, and the waker that tells the
/// loop so.
pub(super) struct Kills {
    asked: Mutex<Vec<(usize, u64)>>,
    waker: Arc<Waker>,
}

impl Kills {
    pub(super) fn new(waker: Arc<Waker>) -> Arc<Kills> {
        Arc::new(Kills {
            asked: Mutex::new(Vec::new()),
            waker,
        })
    }

    /// The hook for the connection at slab `key` with id `id`.
    pub(super) fn hook(self: &Arc<Self>, key: usize, id: u64) -> KillHook {
        let kills = Arc::clone(self);
        Box::new(move || {
            kills
                .asked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((key, id));
            if let Err(e) = kills.waker.wake() {
                debug!("cannot wake the event loop for CLIENT KILL: {e}");
            }
        })
    }

    /// The connections asked for since the last call.
    pub(super) fn take(&self) -> Vec<(usize, u64)> {
        std::mem::take(&mut *self.asked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
