//! What SIGINT, SIGTERM and SIGQUIT do to `serve --snapshot`: save first,
//! and refuse to stop while that save fails, as Redis refuses a `SHUTDOWN`
//! whose save fails.
//!
//! Exiting after a failed final save loses every write since the last good
//! one; refusing to stop keeps them in memory, served, until the operator
//! fixes the disk or decides to lose them. So the first terminate signal
//! saves *while the server still serves* (on a thread of its own, never an
//! event loop's), and only a successful save starts the graceful shutdown;
//! the writes that arrive during the drain are saved after it, when any did
//! arrive. A second terminate signal while that save runs or after it
//! failed, or SIGQUIT at any time, forces the exit: the graceful drain, no
//! save, and exit status 1 when changes are lost (0 when none are). A signal
//! during the drain closes every connection now, as without `--snapshot`.
//!
//! The server models know nothing of this: they hand every terminate signal
//! to the [`Hooks::on_terminate`](reactor_rpc::Hooks) this module installs,
//! which answers through the server's [`ShutdownHandle`].

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use log::{error, info, warn};

use reactor_rpc::ops::persist::{Persister, Snapshots};
use reactor_rpc::server::{Terminate, TerminateHook};
use reactor_rpc::{Service, ShutdownHandle};

/// Where a `serve --snapshot` is in its stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No terminate signal yet.
    Serving,
    /// The save a terminate signal started is running; serving meanwhile.
    Saving,
    /// That save failed: still serving, until another signal.
    Refused,
    /// The save succeeded and the graceful shutdown is under way; the
    /// drain's writes are saved after it.
    Stopping,
    /// A shutdown without a final save is under way.
    Forced,
}

/// The terminate signals' handling for one server with a snapshot file.
#[derive(Clone)]
pub struct FinalSave(Arc<Inner>);

struct Inner {
    service: Arc<Service>,
    /// Set once the snapshot is loaded ([`FinalSave::attach`]), after the
    /// hook went into the server's configuration.
    snapshots: OnceLock<Arc<Snapshots>>,
    phase: Mutex<Phase>,
}

impl FinalSave {
    /// For `service`, whose cache a [`Persister`] will keep ([`FinalSave::attach`]).
    pub fn new(service: Arc<Service>) -> FinalSave {
        FinalSave(Arc::new(Inner {
            service,
            snapshots: OnceLock::new(),
            phase: Mutex::new(Phase::Serving),
        }))
    }

    /// Saves to `persister`'s file from now on; until then a terminate
    /// signal does what it does without `--snapshot`.
    pub fn attach(&self, persister: &Persister) {
        let _ = self.0.snapshots.set(Arc::clone(persister.snapshots()));
    }

    /// The hook to install as `config.hooks.on_terminate`.
    pub fn hook(&self) -> TerminateHook {
        let this = self.clone();
        Arc::new(move |signal, handle| this.on_signal(signal, handle))
    }

    /// A terminate signal: called on a model's signal-handling thread or
    /// task (the reactor's event loop), so it only decides; the save runs
    /// on a thread of its own.
    fn on_signal(&self, signal: Terminate, handle: &ShutdownHandle) {
        let Some(snapshots) = self.0.snapshots.get() else {
            return handle.escalate();
        };
        let mut phase = self.phase();
        match (*phase, signal) {
            // Already stopping: the models' default, closing every
            // connection now.
            (Phase::Stopping | Phase::Forced, _) => handle.escalate(),
            (_, Terminate::Quit) => self.force(&mut phase, signal, handle),
            (Phase::Serving, _) => self.start_saving(&mut phase, signal, snapshots, handle),
            // A save (periodic, BGSAVE, `save`) has succeeded since the
            // refusal: this signal is a first one again.
            (Phase::Refused, _) if self.0.service.persistence().last_save_ok() => {
                self.start_saving(&mut phase, signal, snapshots, handle)
            }
            (Phase::Saving | Phase::Refused, _) => self.force(&mut phase, signal, handle),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.0.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The graceful shutdown, without a final save.
    fn force(&self, phase: &mut Phase, signal: Terminate, handle: &ShutdownHandle) {
        *phase = Phase::Forced;
        warn!(
            "{signal}: shutting down without the final save ({} changes since the last \
             successful save)",
            self.changes()
        );
        handle.shutdown();
    }

    /// Saves on a new thread; its outcome decides.
    fn start_saving(
        &self,
        phase: &mut Phase,
        signal: Terminate,
        snapshots: &Arc<Snapshots>,
        handle: &ShutdownHandle,
    ) {
        *phase = Phase::Saving;
        info!(
            "{signal}: saving {} before shutting down, still serving meanwhile",
            snapshots.path().display()
        );
        let (this, file, stop) = (self.clone(), Arc::clone(snapshots), handle.clone());
        let spawned = std::thread::Builder::new()
            .name("final-save".into())
            .spawn(move || this.save(signal, &file, &stop));
        if let Err(e) = spawned {
            let why = format!("cannot start the save thread: {e}");
            self.refuse(phase, signal, snapshots.path(), &why);
        }
    }

    /// The save, on its own thread: a success starts the graceful shutdown,
    /// a failure keeps the server serving.
    fn save(&self, signal: Terminate, snapshots: &Snapshots, handle: &ShutdownHandle) {
        let service = &self.0.service;
        // Logged by the save itself, whatever the outcome.
        let result = snapshots.save_waiting(service.cache(), service.persistence());
        let mut phase = self.phase();
        if *phase != Phase::Saving {
            return; // forced meanwhile
        }
        match result {
            Ok(_) => {
                *phase = Phase::Stopping;
                handle.shutdown();
            }
            Err(e) => self.refuse(&mut phase, signal, snapshots.path(), &e.to_string()),
        }
    }

    /// One line saying why the server goes on serving, and how to stop it.
    fn refuse(&self, phase: &mut Phase, signal: Terminate, path: &Path, why: &str) {
        *phase = Phase::Refused;
        error!(
            "{signal}: not shutting down, the final save of {} failed ({why}); still serving. \
             Send {signal} again or SIGQUIT to exit without saving ({} changes since the \
             last successful save would be lost)",
            path.display(),
            self.changes()
        );
    }

    fn changes(&self) -> u64 {
        self.0.service.persistence_status().changes_since_last_save
    }

    /// After the server stopped: the save of what the drain wrote (skipped
    /// when nothing did), or, after a forced shutdown, no save and the
    /// count of what is lost. The exit status: 1 when changes are lost.
    pub fn finish(self, persister: Persister) -> ExitCode {
        let phase = *self.phase();
        if phase != Phase::Forced {
            // Logged by the save itself (or that nothing changed).
            return match persister.save_at_shutdown() {
                Ok(_) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        let persister_path = persister.snapshots().path().to_path_buf();
        persister.abandon();
        match self.changes() {
            0 => {
                info!("exiting without a final save: nothing changed since the last save");
                ExitCode::SUCCESS
            }
            n => {
                error!(
                    "exiting without a final save: {n} changes since the last successful save \
                     of {} are lost",
                    persister_path.display()
                );
                ExitCode::FAILURE
            }
        }
    }
}
