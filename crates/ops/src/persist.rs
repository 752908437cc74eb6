//! A live cache's snapshots: checked and loaded at start, saved on request
//! (the JSON `save` method, RESP's `SAVE` and `BGSAVE`), periodically, and
//! at shutdown, with every outcome recorded as the service's persistence
//! health.
//!
//! [`snapshot`] knows the file format and nothing of the cache; the cache
//! knows its keys and nothing of files; the service layer knows the health
//! figures and the [`Saver`] trait, and nothing of files either. This module
//! joins them: it is the one place where the cache's export and import type
//! ([`cache::Record`]) and the file's ([`snapshot::Record`]) are converted,
//! and it implements [`Saver`] and installs it in the [`Service`] at start
//! ([`start`]), so that every request that saves reaches the file the same
//! way.
//!
//! [`start`] is the library's persistence start-up, what the binary's
//! `serve` and an embedding program both call: it ignores `SIGXFSZ` (a save
//! that crosses `ulimit -f` then fails like a full disk instead of killing
//! the process), refuses a snapshot directory that is missing or not
//! writable, removes the temporary files of saves that a crash cut short,
//! loads the snapshot (or moves a bad one aside), and starts the background
//! thread that runs the periodic saves and `BGSAVE`.
//!
//! A save copies the keys out one shard at a time (each shard's lock is held
//! only while its keys are copied) and encodes and writes them on the
//! calling thread, never an event loop's: the `save` method is
//! [`Cost::Heavy`](reactor_rpc_core::service::Cost::Heavy), so the reactor runs it on a
//! worker, and the periodic, background and shutdown saves run on threads
//! of their own. (RESP's `SAVE` runs where the command runs, like Redis's.)
//! One save runs at a time; another asked for meanwhile is answered `busy`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::snapshot::{self, LoadLimits, Loaded, SaveInfo, SnapshotError, ValueKind};
use reactor_rpc_core::service::cache::{self, Cache, Value};
use reactor_rpc_core::service::{Persistence, SaveFailure, SaveReport, Saver, Service};

impl From<cache::Record> for snapshot::Record {
    /// A deadline beyond [`snapshot::MAX_EXPIRES_AT`] (a TTL so long that
    /// the cache saturated it) is written as that latest time, which the
    /// loader accepts, rather than failing the save.
    fn from(r: cache::Record) -> snapshot::Record {
        let (kind, value) = match r.value {
            Value::Int(n) => (ValueKind::Int, n.to_le_bytes().to_vec()),
            Value::Raw(b) => (ValueKind::Raw, b.to_vec()),
            Value::Json(b) => (ValueKind::Json, b.to_vec()),
        };
        snapshot::Record {
            key: r.key.to_vec(),
            kind,
            value,
            expires_at: r
                .expires_at_unix_ms
                .map(|t| t.min(snapshot::MAX_EXPIRES_AT)),
        }
    }
}

impl From<snapshot::Record> for cache::Record {
    /// The loader has checked the value against its kind (an Int is 8
    /// bytes); an Int that is not reads as 0 rather than panicking.
    fn from(r: snapshot::Record) -> cache::Record {
        let value = match r.kind {
            ValueKind::Int => Value::Int(r.as_int().unwrap_or(0)),
            ValueKind::Raw => Value::Raw(r.value.into()),
            ValueKind::Json => Value::Json(r.value.into()),
        };
        cache::Record {
            key: r.key.into(),
            value,
            expires_at_unix_ms: r.expires_at,
        }
    }
}

/// Why a save did not happen.
#[derive(Debug)]
pub enum SaveError {
    /// Another save is running.
    Busy,
    /// Writing failed; the previous snapshot is untouched.
    Io(std::io::Error),
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveError::Busy => f.write_str("a save is already running"),
            SaveError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SaveError {}

/// What a loaded snapshot put in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadInfo {
    /// Keys loaded.
    pub keys: usize,
    /// Keys dropped because their TTL passed while the server was down.
    pub expired: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Wall time of reading and importing, in milliseconds.
    pub ms: u64,
}

/// The snapshot file of one cache; share it (`Arc`) between the threads
/// that save.
#[derive(Debug)]
pub struct Snapshots {
    path: PathBuf,
    limits: LoadLimits,
    /// Held for the whole of a save; holds the cache's write counter as of
    /// the last successful save (or load).
    saving: Mutex<Option<u64>>,
}

impl Snapshots {
    /// Snapshots at `path` (the file need not exist), loaded with the
    /// default [`LoadLimits`]. Ignores `SIGXFSZ` from here on
    /// ([`snapshot::ignore_sigxfsz`]), before any save can run.
    pub fn new(path: impl Into<PathBuf>) -> Snapshots {
        snapshot::ignore_sigxfsz();
        Snapshots {
            path: path.into(),
            limits: LoadLimits::default(),
            saving: Mutex::new(None),
        }
    }

    /// The same, loading with `limits` (see [`LoadLimits::for_max_frame`]).
    pub fn with_limits(mut self, limits: LoadLimits) -> Snapshots {
        self.limits = limits;
        self
    }

    /// The snapshot file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the file into `cache`: keys keep their remaining TTL, keys that
    /// expired meanwhile are dropped. A missing file is an error with
    /// [`SnapshotError::is_not_found`]; start empty then.
    pub fn load_into(&self, cache: &Cache) -> Result<LoadInfo, SnapshotError> {
        let started = Instant::now();
        let Loaded {
            records,
            expired,
            bytes,
            ..
        } = snapshot::load_snapshot_with(&self.path, super::unix_ms_now(), &self.limits)?;
        let keys = cache.import(records.into_iter().map(cache::Record::from));
        *lock(&self.saving) = Some(cache.dirty());
        Ok(LoadInfo {
            keys,
            expired,
            bytes,
            ms: millis(started.elapsed()),
        })
    }

    /// Whether a save is running now.
    pub fn is_saving(&self) -> bool {
        matches!(self.saving.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// Saves now, unless a save is running ([`SaveError::Busy`]); the
    /// outcome is logged and recorded in `persistence`.
    pub fn save(&self, cache: &Cache, persistence: &Persistence) -> Result<SaveInfo, SaveError> {
        let guard = match self.saving.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Err(SaveError::Busy),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        self.save_locked(guard, cache, persistence)
    }

    /// Saves now, after any running save; for shutdown.
    pub fn save_waiting(
        &self,
        cache: &Cache,
        persistence: &Persistence,
    ) -> Result<SaveInfo, SaveError> {
        self.save_locked(lock(&self.saving), cache, persistence)
    }

    /// Saves if the cache changed since the last successful save or load, or
    /// if the last save failed (and no save is running); `Ok(None)` when
    /// there was nothing to do.
    pub fn save_if_changed(
        &self,
        cache: &Cache,
        persistence: &Persistence,
    ) -> Result<Option<SaveInfo>, SaveError> {
        let guard = match self.saving.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        self.save_changed(guard, cache, persistence)
    }

    /// As [`Snapshots::save_if_changed`], after any running save (whose
    /// outcome it then takes into account); for shutdown.
    pub fn save_waiting_if_changed(
        &self,
        cache: &Cache,
        persistence: &Persistence,
    ) -> Result<Option<SaveInfo>, SaveError> {
        self.save_changed(lock(&self.saving), cache, persistence)
    }

    fn save_changed(
        &self,
        guard: MutexGuard<'_, Option<u64>>,
        cache: &Cache,
        persistence: &Persistence,
    ) -> Result<Option<SaveInfo>, SaveError> {
        if *guard == Some(cache.dirty()) && persistence.last_save_ok() {
            return Ok(None);
        }
        self.save_locked(guard, cache, persistence).map(Some)
    }

    fn save_locked(
        &self,
        mut guard: MutexGuard<'_, Option<u64>>,
        cache: &Cache,
        persistence: &Persistence,
    ) -> Result<SaveInfo, SaveError> {
        let started = Instant::now();
        persistence.save_started(super::unix_ms_now());
        // Read before copying: a write during the save marks it changed again.
        let dirty = cache.dirty();
        let shards = (0..cache.shard_count()).map(|i| {
            cache
                .export_shard(i)
                .into_iter()
                .map(snapshot::Record::from)
                .collect::<Vec<_>>()
        });
        match snapshot::write_snapshot(&self.path, shards) {
            Ok(info) => {
                *guard = Some(dirty);
                persistence.save_succeeded(dirty, info.ms, super::unix_ms_now() / 1000);
                info!(
                    "saved {} keys ({} bytes) to {} in {} ms",
                    info.keys,
                    info.bytes,
                    self.path.display(),
                    info.ms
                );
                Ok(info)
            }
            Err(e) => {
                persistence.save_failed(&e.to_string(), millis(started.elapsed()));
                if persistence.writes_refused() {
                    error!(
                        "cannot save the snapshot {}: {e}; writes are refused until a save \
                         succeeds (--stop-writes-on-save-error)",
                        self.path.display()
                    );
                } else {
                    error!("cannot save the snapshot {}: {e}", self.path.display());
                }
                Err(SaveError::Io(e))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How to keep a service's cache in a snapshot file ([`start`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PersistConfig {
    /// The snapshot file (`--snapshot`).
    pub path: PathBuf,
    /// Time between periodic saves, each only if the cache changed or the
    /// last save failed (`--save-interval`); `None`: no periodic saves.
    pub save_interval: Option<Duration>,
    /// Move a snapshot that does not load aside and start empty, instead of
    /// refusing to start (`--snapshot-discard-corrupt`).
    pub discard_corrupt: bool,
    /// Refuse writes while the last save failed
    /// (`--stop-writes-on-save-error`, on by default).
    pub stop_writes_on_error: bool,
    /// What a loaded record may hold.
    pub limits: LoadLimits,
}

impl PersistConfig {
    /// Snapshots at `path`: a save every 300 s if anything changed, a bad
    /// snapshot refuses the start, writes are refused after a failed save.
    pub fn new(path: impl Into<PathBuf>) -> PersistConfig {
        PersistConfig {
            path: path.into(),
            save_interval: Some(Duration::from_secs(300)),
            discard_corrupt: false,
            stop_writes_on_error: true,
            limits: LoadLimits::default(),
        }
    }
}

/// After a failed save, the next periodic one comes this soon (or at the
/// interval, if that is shorter), as Redis retries a failed `BGSAVE` after
/// 5 s: writes are refused meanwhile.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Why [`start`] refused to start.
#[derive(Debug)]
pub enum StartError {
    /// The snapshot's directory is missing, not a directory, or takes no
    /// new file: saves could never succeed.
    Directory {
        /// The snapshot file.
        path: PathBuf,
        /// What the file system said.
        error: std::io::Error,
    },
    /// The snapshot does not load.
    Snapshot(SnapshotError),
    /// The snapshot does not load, and could not be moved aside.
    MoveAside {
        /// Why it does not load.
        error: SnapshotError,
        /// Why it could not be moved.
        cause: std::io::Error,
    },
    /// A snapshot saver is already installed in this service.
    AlreadyStarted,
    /// The background saving thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Directory { path, error } => {
                write!(f, "snapshot {}: {error}", path.display())
            }
            StartError::Snapshot(e) => write!(f, "{e}"),
            StartError::MoveAside { error, cause } => {
                write!(f, "{error}; cannot move it aside: {cause}")
            }
            StartError::AlreadyStarted => {
                f.write_str("this service already keeps its cache in a snapshot")
            }
            StartError::Thread(e) => write!(f, "cannot start the snapshot thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The background saver's state, shared with the [`Saver`] the service holds.
#[derive(Debug, Default)]
struct Background {
    state: Mutex<BackgroundState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct BackgroundState {
    /// `BGSAVE` asked for a save that has not started yet.
    requested: bool,
    /// The thread is saving.
    running: bool,
    /// The thread has stopped (or is stopping): no more background saves.
    stopped: bool,
}

/// The [`Saver`] installed in the service: saves go to the snapshot file,
/// background saves to the [`Persister`]'s thread.
struct SnapshotSaver {
    snapshots: Arc<Snapshots>,
    background: Arc<Background>,
}

impl Saver for SnapshotSaver {
    fn save(&self, cache: &Cache, persistence: &Persistence) -> Result<SaveReport, SaveFailure> {
        match self.snapshots.save(cache, persistence) {
            Ok(info) => Ok(SaveReport {
                keys: info.keys,
                bytes: info.bytes,
                ms: info.ms,
            }),
            Err(SaveError::Busy) => Err(SaveFailure::Busy),
            Err(SaveError::Io(e)) => Err(SaveFailure::Failed(e.to_string())),
        }
    }

    fn save_in_background(&self) -> Result<(), SaveFailure> {
        let mut state = lock(&self.background.state);
        if state.stopped {
            return Err(SaveFailure::Failed(
                "background saves have stopped (the server is shutting down)".into(),
            ));
        }
        if state.requested || state.running || self.snapshots.is_saving() {
            return Err(SaveFailure::Busy);
        }
        state.requested = true;
        self.background.wake.notify_all();
        Ok(())
    }
}

/// A service's snapshots, started by [`start`]: the background thread
/// (periodic saves, `BGSAVE`) runs until this is dropped or
/// [`Persister::save_at_shutdown`] is called.
pub struct Persister {
    snapshots: Arc<Snapshots>,
    service: Arc<Service>,
    background: Arc<Background>,
    thread: Option<JoinHandle<()>>,
}

/// Starts keeping `service`'s cache in the snapshot `config` names: the
/// library's persistence start-up (see the module docs). Call it before the
/// server serves, so that the snapshot is loaded first. Every refusal is one
/// line naming the file ([`StartError`]); the binary exits 2 with it.
pub fn start(service: &Arc<Service>, config: PersistConfig) -> Result<Persister, StartError> {
    let snapshots = Arc::new(Snapshots::new(config.path.clone()).with_limits(config.limits));
    let path = snapshots.path();
    snapshot::check_directory(path).map_err(|error| StartError::Directory {
        path: path.to_path_buf(),
        error,
    })?;
    match snapshot::remove_stale_temporaries(path) {
        Ok(0) => {}
        Ok(n) => info!(
            "removed {n} temporary file(s) that an interrupted save left beside {}",
            path.display()
        ),
        Err(e) => warn!(
            "cannot remove the temporary files beside {}: {e}",
            path.display()
        ),
    }
    let cache = service.cache();
    let (keys, expired) = match snapshots.load_into(cache) {
        Ok(info) => {
            info!(
                "loaded {} keys ({} expired while down, {} bytes) from {} in {} ms",
                info.keys,
                info.expired,
                info.bytes,
                path.display(),
                info.ms
            );
            (info.keys as u64, info.expired)
        }
        Err(e) if e.is_not_found() => {
            info!("no snapshot at {} yet: starting empty", path.display());
            (0, 0)
        }
        Err(error) if config.discard_corrupt => match snapshot::move_aside(path) {
            Ok(to) => {
                warn!("{error}; moved it to {} and starting empty", to.display());
                (0, 0)
            }
            Err(cause) => return Err(StartError::MoveAside { error, cause }),
        },
        Err(e) => return Err(StartError::Snapshot(e)),
    };
    let persistence = service.persistence();
    persistence.set_stop_writes_on_error(config.stop_writes_on_error);
    persistence.record_start(keys, expired, cache.dirty(), super::unix_ms_now() / 1000);

    let background = Arc::new(Background::default());
    let saver = SnapshotSaver {
        snapshots: snapshots.clone(),
        background: background.clone(),
    };
    if !persistence.install(Arc::new(saver)) {
        return Err(StartError::AlreadyStarted);
    }
    let thread = {
        let (snapshots, service, background) =
            (snapshots.clone(), service.clone(), background.clone());
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || run_background(&snapshots, &service, &background, config.save_interval))
    };
    match thread {
        Ok(thread) => Ok(Persister {
            snapshots,
            service: service.clone(),
            background,
            thread: Some(thread),
        }),
        Err(e) => {
            lock(&background.state).stopped = true;
            Err(StartError::Thread(e))
        }
    }
}

/// The background thread: a periodic save when one is due, a save when
/// `BGSAVE` asks, until stopped.
fn run_background(
    snapshots: &Snapshots,
    service: &Service,
    background: &Background,
    interval: Option<Duration>,
) {
    let (cache, persistence) = (service.cache(), service.persistence());
    let next_after = |ok: bool| {
        interval.map(|every| {
            let wait = if ok {
                every
            } else {
                every.min(RETRY_AFTER_FAILURE)
            };
            Instant::now() + wait
        })
    };
    let mut due = next_after(true);
    loop {
        let mut state = lock(&background.state);
        let requested = loop {
            if state.stopped {
                return;
            }
            if state.requested {
                break true;
            }
            match due {
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    None => break false,
                    Some(left) if left.is_zero() => break false,
                    Some(left) => {
                        state = background
                            .wake
                            .wait_timeout(state, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                },
                None => {
                    state = background
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        };
        state.requested = false;
        state.running = true;
        drop(state);
        // Outcomes are logged and recorded by the save itself.
        let result = if requested {
            snapshots.save(cache, persistence).map(Some)
        } else {
            snapshots.save_if_changed(cache, persistence)
        };
        if let Err(SaveError::Busy) = result {
            info!("background save skipped: a save is already running");
        }
        lock(&background.state).running = false;
        due = next_after(persistence.last_save_ok());
    }
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister")
            .field("snapshots", &self.snapshots)
            .field("background", &self.background)
            .finish_non_exhaustive()
    }
}

impl Persister {
    /// The snapshot file.
    pub fn snapshots(&self) -> &Arc<Snapshots> {
        &self.snapshots
    }

    /// Stops the background thread (waiting for a save it is running), then
    /// saves, after any other running save, unless the cache is unchanged
    /// since the last successful save or load (`Ok(None)`, logged): for a
    /// graceful shutdown.
    pub fn save_at_shutdown(mut self) -> Result<Option<SaveInfo>, SaveError> {
        self.stop();
        let (cache, persistence) = (self.service.cache(), self.service.persistence());
        let saved = self.snapshots.save_waiting_if_changed(cache, persistence)?;
        if saved.is_none() {
            info!(
                "{} is up to date: nothing changed since the last save",
                self.snapshots.path.display()
            );
        }
        Ok(saved)
    }

    /// Stops the background thread without waiting for a save it may be
    /// running, and saves nothing: for a forced exit, which must not wait
    /// for a save (the process exits next, and a save cut short leaves the
    /// previous snapshot whole).
    pub fn abandon(mut self) {
        lock(&self.background.state).stopped = true;
        self.background.wake.notify_all();
        // Dropping the handle detaches the thread.
        self.thread.take();
    }

    fn stop(&mut self) {
        lock(&self.background.state).stopped = true;
        self.background.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                error!("the snapshot thread panicked");
            }
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_rpc_core::service::cache::SetOptions;

    fn service() -> Arc<Service> {
        Arc::new(Service::new())
    }

    #[test]
    fn start_loads_saves_and_reports_health() {
        let d = tempfile::tempdir().expect("temp dir");
        let path = d.path().join("cache.snap");
        let first = service();
        let mut config = PersistConfig::new(&path);
        config.save_interval = None;
        let persister = start(&first, config.clone()).expect("start");
        assert!(first.persistence().enabled());
        first
            .cache()
            .set(b"k", Value::Int(7), SetOptions::default())
            .expect("set");
        assert_eq!(first.persistence_status().changes_since_last_save, 1);
        let report = first.persistence().save(first.cache()).expect("save");
        assert_eq!(report.keys, 1);
        let status = first.persistence_status();
        assert_eq!(status.changes_since_last_save, 0);
        assert_eq!(status.last_save_status(), "ok");
        assert_eq!(status.saves, 1);
        assert!(status.last_save_duration_ms.is_some());
        // A second service may not install a second saver in the first.
        assert!(matches!(
            start(&first, config.clone()),
            Err(StartError::AlreadyStarted)
        ));
        drop(persister);
        assert!(matches!(
            first.persistence().save_in_background(),
            Err(SaveFailure::Failed(_))
        ));

        let second = service();
        let _p = start(&second, config).expect("start");
        assert_eq!(second.cache().get(b"k"), Some(Value::Int(7)));
        assert_eq!(second.persistence_status().loaded_keys, 1);
    }

    #[test]
    fn bgsave_runs_on_the_thread_and_is_busy_meanwhile() {
        let d = tempfile::tempdir().expect("temp dir");
        let path = d.path().join("cache.snap");
        let service = service();
        let mut config = PersistConfig::new(&path);
        config.save_interval = None;
        let persister = start(&service, config).expect("start");
        for i in 0..50_000u32 {
            let key = format!("key{i}");
            service
                .cache()
                .set(key.as_bytes(), Value::Int(i.into()), SetOptions::default())
                .expect("set");
        }
        let p = service.persistence();
        {
            // While a save runs, BGSAVE is busy.
            let _saving = lock(&persister.snapshots.saving);
            assert_eq!(p.save_in_background(), Err(SaveFailure::Busy));
        }
        p.save_in_background().expect("started");
        // Asked for and not yet done (or under way): busy.
        assert_eq!(p.save_in_background(), Err(SaveFailure::Busy));
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.status(0, 0).saves == 0 || p.save_in_progress() {
            assert!(Instant::now() < deadline, "no background save");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(service.persistence_status().last_save_status(), "ok");
        let info = persister.save_at_shutdown().expect("final save");
        // The background save took every key: nothing left to save.
        assert_eq!(info, None);
    }

    #[test]
    fn the_shutdown_save_saves_what_changed_since_the_last_save() {
        let d = tempfile::tempdir().expect("temp dir");
        let service = service();
        let mut config = PersistConfig::new(d.path().join("cache.snap"));
        config.save_interval = None;
        let persister = start(&service, config).expect("start");
        let set = |key: &[u8]| {
            service
                .cache()
                .set(key, Value::Int(1), SetOptions::default())
                .expect("set");
        };
        set(b"a");
        service.persistence().save(service.cache()).expect("save");
        // A write after that save (during a shutdown's drain, say).
        set(b"b");
        let info = persister.save_at_shutdown().expect("final save");
        assert_eq!(info.map(|i| i.keys), Some(2));
        assert_eq!(service.persistence_status().changes_since_last_save, 0);
    }

    #[test]
    fn a_missing_directory_refuses_the_start() {
        let d = tempfile::tempdir().expect("temp dir");
        let path = d.path().join("no/such/dir/cache.snap");
        let e = start(&service(), PersistConfig::new(&path)).expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("no/such/dir") && !text.contains('\n'),
            "{text}"
        );
        assert!(matches!(e, StartError::Directory { .. }));
    }

    #[test]
    fn saturated_deadlines_are_saved_as_the_latest_time() {
        let r = cache::Record {
            key: bytes::Bytes::from_static(b"k"),
            value: Value::Int(1),
            expires_at_unix_ms: Some(u64::MAX),
        };
        assert_eq!(
            snapshot::Record::from(r).expires_at,
            Some(snapshot::MAX_EXPIRES_AT)
        );
    }
}
