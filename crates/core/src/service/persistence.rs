//! Persistence health, and the one way the service layer asks for a save.
//!
//! The service layer answers questions about saving (`stats`, RESP's `INFO
//! persistence` and `LASTSAVE`), runs saves on request (the JSON `save`
//! method, RESP's `SAVE` and `BGSAVE`), and refuses writes after a failed
//! save (`--stop-writes-on-save-error`). It knows nothing of files: the
//! snapshot file lives in `ops::persist`, which depends on this layer and not
//! the other way round. So the state they share is defined here:
//!
//! * [`Persistence`], held by the [`Service`](crate::Service): relaxed
//!   atomics that `ops::persist` writes after each save and that readers
//!   take without a lock, plus a mutex for the last error's text. The write
//!   check on the request path is one relaxed load of a flag
//!   ([`Persistence::writes_refused`]), set only while the last save failed
//!   and `--stop-writes-on-save-error` is on.
//! * [`Saver`], the trait `ops::persist` implements and installs at start
//!   ([`Persistence::install`]): how a request reaches the snapshot file.
//!   Without one (no `--snapshot`), a save is [`SaveFailure::NotConfigured`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use serde_json::{json, Value};

use super::cache::Cache;
use super::{Access, Context, Cost, Method};
use reactor_rpc_protocol::message::write_json;
use reactor_rpc_protocol::{ErrorCode, Json, RpcError};

/// Writes a snapshot of the cache somewhere: what `ops::persist` installs in
/// the service at start, so that requests can save without the service
/// layer knowing about files.
pub trait Saver: Send + Sync + 'static {
    /// Saves now, on the calling thread, and records the outcome in
    /// `persistence`; [`SaveFailure::Busy`] if a save is running.
    fn save(&self, cache: &Cache, persistence: &Persistence) -> Result<SaveReport, SaveFailure>;

    /// Starts a save on a background thread and returns at once;
    /// [`SaveFailure::Busy`] if a save is running or already asked for.
    fn save_in_background(&self) -> Result<(), SaveFailure>;
}

/// What a save wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveReport {
    /// Keys written.
    pub keys: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Wall time of the save, in milliseconds.
    pub ms: u64,
}

/// Why a save did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveFailure {
    /// No snapshot file is configured (no `--snapshot`).
    NotConfigured,
    /// A save is already running (or a background save is already asked for).
    Busy,
    /// The save failed; the previous snapshot is untouched. The text says why.
    Failed(String),
}

impl std::fmt::Display for SaveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveFailure::NotConfigured => f.write_str("no snapshot file is configured"),
            SaveFailure::Busy => f.write_str("a save is already running"),
            SaveFailure::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for SaveFailure {}

/// Milliseconds since the Unix epoch by the wall clock (0 before 1970).
pub(crate) fn unix_ms_now() -> u64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

/// The message of the JSON `save_failed` error that refuses a write.
pub const WRITES_REFUSED: &str = "writes are refused because the last snapshot save failed \
     (--stop-writes-on-save-error); they resume after a save succeeds";

/// `last_save_duration_ms` before any save.
const NO_DURATION: u64 = u64::MAX;

/// The persistence state of one service: health figures, the write refusal,
/// and the installed [`Saver`].
pub struct Persistence {
    /// The request path's one load: the last save failed and
    /// `stop_writes_on_error` is on.
    refuse_writes: AtomicBool,
    stop_writes_on_error: AtomicBool,
    last_ok: AtomicBool,
    in_progress: AtomicBool,
    /// Unix ms when the running save began.
    started_unix_ms: AtomicU64,
    /// Unix seconds of the last successful save (or of the start).
    last_save_unix_s: AtomicU64,
    /// Of the last save, successful or not; [`NO_DURATION`] before any.
    last_duration_ms: AtomicU64,
    /// Saves attempted since start (Redis's `rdb_saves`).
    saves: AtomicU64,
    /// The cache's write counter as of the last successful save (or load).
    dirty_at_save: AtomicU64,
    loaded_keys: AtomicU64,
    expired_on_load: AtomicU64,
    /// Why the last save failed (`None` after a success). Status changes are
    /// made under this lock, so that the flags agree with each other.
    error: Mutex<Option<String>>,
    saver: OnceLock<Arc<dyn Saver>>,
}

impl Default for Persistence {
    fn default() -> Persistence {
        Persistence::new()
    }
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("enabled", &self.enabled())
            .field("writes_refused", &self.writes_refused())
            .finish_non_exhaustive()
    }
}

impl Persistence {
    /// No snapshot file yet, last save "ok", writes allowed, and
    /// `--stop-writes-on-save-error` on (its default).
    pub fn new() -> Persistence {
        Persistence {
            refuse_writes: AtomicBool::new(false),
            stop_writes_on_error: AtomicBool::new(true),
            last_ok: AtomicBool::new(true),
            in_progress: AtomicBool::new(false),
            started_unix_ms: AtomicU64::new(0),
            // Like Redis: at start the data counts as saved.
            last_save_unix_s: AtomicU64::new(unix_ms_now() / 1000),
            last_duration_ms: AtomicU64::new(NO_DURATION),
            saves: AtomicU64::new(0),
            dirty_at_save: AtomicU64::new(0),
            loaded_keys: AtomicU64::new(0),
            expired_on_load: AtomicU64::new(0),
            error: Mutex::new(None),
            saver: OnceLock::new(),
        }
    }

    /// Whether writes are refused now: the last save failed and
    /// `--stop-writes-on-save-error` is on. One relaxed load: the service's
    /// entry points ask it for every request.
    #[inline]
    pub fn writes_refused(&self) -> bool {
        self.refuse_writes.load(Relaxed)
    }

    /// Whether a request of class `access` is refused now. Only
    /// [`Access::Write`] ever is: [`Access::Admin`] requests (`save`,
    /// `SAVE`, `BGSAVE`, `FLUSHALL`) still run, since they are how an
    /// operator gets out of it. (The request path asks
    /// [`Persistence::writes_refused`] first, and a request's class only
    /// when it is set.)
    #[inline]
    pub fn refuses(&self, access: Access) -> bool {
        self.writes_refused() && access == Access::Write
    }

    /// Installs the saver (the first call wins; returns whether this one
    /// did): from then on saves go to it and health is reported as enabled.
    pub fn install(&self, saver: Arc<dyn Saver>) -> bool {
        self.saver.set(saver).is_ok()
    }

    /// Whether a snapshot file is configured (a [`Saver`] is installed).
    pub fn enabled(&self) -> bool {
        self.saver.get().is_some()
    }

    /// Turns `--stop-writes-on-save-error` on or off; off lifts a refusal
    /// at once.
    pub fn set_stop_writes_on_error(&self, on: bool) {
        let _guard = self.lock();
        self.stop_writes_on_error.store(on, Relaxed);
        self.refuse_writes
            .store(on && !self.last_ok.load(Relaxed), Relaxed);
    }

    /// Saves now through the installed [`Saver`].
    pub fn save(&self, cache: &Cache) -> Result<SaveReport, SaveFailure> {
        match self.saver.get() {
            Some(saver) => saver.save(cache, self),
            None => Err(SaveFailure::NotConfigured),
        }
    }

    /// Asks the installed [`Saver`] for a save on a background thread.
    pub fn save_in_background(&self) -> Result<(), SaveFailure> {
        match self.saver.get() {
            Some(saver) => saver.save_in_background(),
            None => Err(SaveFailure::NotConfigured),
        }
    }

    /// Records the start: like Redis, the data is taken as saved then (a
    /// loaded snapshot, or an empty cache and no file). `dirty` is the
    /// cache's write counter after the load.
    pub fn record_start(&self, loaded_keys: u64, expired_on_load: u64, dirty: u64, unix_s: u64) {
        self.loaded_keys.store(loaded_keys, Relaxed);
        self.expired_on_load.store(expired_on_load, Relaxed);
        self.dirty_at_save.store(dirty, Relaxed);
        self.last_save_unix_s.store(unix_s, Relaxed);
    }

    /// Records that a save began at `unix_ms`.
    pub fn save_started(&self, unix_ms: u64) {
        self.started_unix_ms.store(unix_ms, Relaxed);
        self.saves.fetch_add(1, Relaxed);
        self.in_progress.store(true, Relaxed);
    }

    /// Records a successful save: `dirty` is the cache's write counter read
    /// before the keys were copied out, `unix_s` when it completed. Writes
    /// are allowed again.
    pub fn save_succeeded(&self, dirty: u64, duration_ms: u64, unix_s: u64) {
        let mut error = self.lock();
        *error = None;
        self.dirty_at_save.store(dirty, Relaxed);
        self.last_save_unix_s.store(unix_s, Relaxed);
        self.last_duration_ms.store(duration_ms, Relaxed);
        self.last_ok.store(true, Relaxed);
        self.refuse_writes.store(false, Relaxed);
        self.in_progress.store(false, Relaxed);
    }

    /// Records a failed save and why; writes are refused from now on if
    /// `--stop-writes-on-save-error` is on.
    pub fn save_failed(&self, why: &str, duration_ms: u64) {
        let mut error = self.lock();
        // One line, whatever the OS said.
        *error = Some(why.replace(['\r', '\n'], " "));
        self.last_duration_ms.store(duration_ms, Relaxed);
        self.last_ok.store(false, Relaxed);
        self.refuse_writes
            .store(self.stop_writes_on_error.load(Relaxed), Relaxed);
        self.in_progress.store(false, Relaxed);
    }

    /// A save ended without writing anything (it found another running).
    pub fn save_abandoned(&self) {
        self.in_progress.store(false, Relaxed);
    }

    /// Whether the last save succeeded (or none failed yet).
    pub fn last_save_ok(&self) -> bool {
        self.last_ok.load(Relaxed)
    }

    /// Whether a save is running now.
    pub fn save_in_progress(&self) -> bool {
        self.in_progress.load(Relaxed)
    }

    /// Unix seconds of the last successful save (or of the start): what
    /// `LASTSAVE` answers.
    pub fn last_save_time(&self) -> u64 {
        self.last_save_unix_s.load(Relaxed)
    }

    /// Every figure at once; `dirty` is the cache's write counter now.
    pub fn status(&self, dirty: u64, now_unix_ms: u64) -> PersistenceStatus {
        let error = self.lock().clone();
        let in_progress = self.in_progress.load(Relaxed);
        let duration = self.last_duration_ms.load(Relaxed);
        PersistenceStatus {
            enabled: self.enabled(),
            stop_writes_on_error: self.stop_writes_on_error.load(Relaxed),
            writes_refused: self.writes_refused(),
            last_save_ok: self.last_ok.load(Relaxed),
            last_save_time: self.last_save_unix_s.load(Relaxed),
            last_save_duration_ms: (duration != NO_DURATION).then_some(duration),
            changes_since_last_save: dirty.saturating_sub(self.dirty_at_save.load(Relaxed)),
            last_save_error: error,
            save_in_progress: in_progress,
            current_save_ms: in_progress
                .then(|| now_unix_ms.saturating_sub(self.started_unix_ms.load(Relaxed))),
            saves: self.saves.load(Relaxed),
            loaded_keys: self.loaded_keys.load(Relaxed),
            expired_on_load: self.expired_on_load.load(Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        self.error.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The persistence figures at one moment, as `stats`, `INFO persistence` and
/// the metrics report them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PersistenceStatus {
    /// A snapshot file is configured (`--snapshot`).
    pub enabled: bool,
    /// `--stop-writes-on-save-error`.
    pub stop_writes_on_error: bool,
    /// Writes are refused now (the last save failed, and the flag is on).
    pub writes_refused: bool,
    /// The last save succeeded (`last_save_status` `ok`), or none failed yet.
    pub last_save_ok: bool,
    /// Unix seconds of the last successful save, or of the start.
    pub last_save_time: u64,
    /// How long the last save took, successful or not; `None` before any.
    pub last_save_duration_ms: Option<u64>,
    /// Cache writes since the last successful save (or the start).
    pub changes_since_last_save: u64,
    /// Why the last save failed; `None` when it succeeded.
    pub last_save_error: Option<String>,
    /// A save is running now.
    pub save_in_progress: bool,
    /// How long the running save has been running.
    pub current_save_ms: Option<u64>,
    /// Saves attempted since start.
    pub saves: u64,
    /// Keys the snapshot loaded at start put in the cache.
    pub loaded_keys: u64,
    /// Keys of that snapshot dropped because they had expired.
    pub expired_on_load: u64,
}

impl PersistenceStatus {
    /// `ok` or `err`, as Redis's `rdb_last_bgsave_status`.
    pub fn last_save_status(&self) -> &'static str {
        if self.last_save_ok {
            "ok"
        } else {
            "err"
        }
    }

    /// The `persistence` object of the JSON `stats`.
    pub fn to_json(&self) -> Value {
        json!({
            "enabled": self.enabled,
            "stop_writes_on_save_error": self.stop_writes_on_error,
            "writes_refused": self.writes_refused,
            "last_save_status": self.last_save_status(),
            "last_save_time": self.last_save_time,
            "last_save_duration_ms": self.last_save_duration_ms,
            "changes_since_last_save": self.changes_since_last_save,
            "last_save_error": self.last_save_error,
            "save_in_progress": self.save_in_progress,
            "saves": self.saves,
        })
    }
}

/// The `save` method: writes a snapshot now and answers
/// `{"keys": N, "bytes": B, "ms": T}`; `busy` while another save runs,
/// `save_failed` when the file cannot be written. Without a snapshot file it
/// answers `unknown_method`, as before it was built in. Heavy, so a server
/// with workers runs it off the event loop.
pub(crate) struct SaveMethod;

impl Method for SaveMethod {
    fn call(&self, cx: &Context<'_>, _params: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        match cx.persistence.save(cx.cache) {
            Ok(r) => write_json(out, &json!({"keys": r.keys, "bytes": r.bytes, "ms": r.ms})),
            Err(SaveFailure::NotConfigured) => Err(RpcError::new(
                ErrorCode::UnknownMethod,
                "no method named \"save\": this server keeps no snapshot (start it with --snapshot PATH)",
            )),
            Err(SaveFailure::Busy) => Err(RpcError::new(ErrorCode::Busy, "a save is already running")),
            Err(SaveFailure::Failed(why)) => Err(RpcError::new(
                ErrorCode::SaveFailed,
                format!("cannot write the snapshot: {why}"),
            )),
        }
    }

    fn cost(&self, _params: Json<'_>) -> Cost {
        Cost::Heavy
    }

    fn access(&self) -> Access {
        Access::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fails;

    impl Saver for Fails {
        fn save(&self, _: &Cache, p: &Persistence) -> Result<SaveReport, SaveFailure> {
            p.save_started(1_000);
            p.save_failed("disk full\r\nreally", 7);
            Err(SaveFailure::Failed("disk full".into()))
        }
        fn save_in_background(&self) -> Result<(), SaveFailure> {
            Err(SaveFailure::Busy)
        }
    }

    #[test]
    fn a_failed_save_refuses_writes_until_one_succeeds() {
        let p = Persistence::new();
        let cache = Cache::default();
        assert_eq!(p.save(&cache), Err(SaveFailure::NotConfigured));
        assert!(!p.enabled() && !p.writes_refused());
        assert!(p.install(Arc::new(Fails)));
        assert!(!p.install(Arc::new(Fails)), "the first saver stays");
        p.record_start(3, 1, 10, 1_700_000_000);
        assert!(p.save(&cache).is_err());
        assert!(p.writes_refused());
        assert!(p.refuses(Access::Write));
        assert!(!p.refuses(Access::Admin) && !p.refuses(Access::Read));
        let s = p.status(15, 2_000);
        assert_eq!(s.last_save_status(), "err");
        assert_eq!(s.last_save_error.as_deref(), Some("disk full  really"));
        assert_eq!(s.last_save_duration_ms, Some(7));
        assert_eq!(s.changes_since_last_save, 5);
        assert_eq!(s.last_save_time, 1_700_000_000);
        assert_eq!((s.saves, s.loaded_keys, s.expired_on_load), (1, 3, 1));

        // Turning the flag off lifts the refusal; on again restores it.
        p.set_stop_writes_on_error(false);
        assert!(!p.writes_refused());
        p.set_stop_writes_on_error(true);
        assert!(p.writes_refused());

        p.save_started(3_000);
        assert!(p.status(15, 3_500).save_in_progress);
        assert_eq!(p.status(15, 3_500).current_save_ms, Some(500));
        p.save_succeeded(15, 4, 1_700_000_100);
        let s = p.status(16, 4_000);
        assert!(!p.writes_refused());
        assert_eq!(s.last_save_status(), "ok");
        assert_eq!(s.last_save_error, None);
        assert_eq!(s.changes_since_last_save, 1);
        assert_eq!(p.last_save_time(), 1_700_000_100);
        assert_eq!(s.to_json()["last_save_status"], "ok");
        assert_eq!(s.to_json()["last_save_error"], Value::Null);
    }

    #[test]
    fn without_stop_writes_a_failure_refuses_nothing() {
        let p = Persistence::new();
        p.set_stop_writes_on_error(false);
        p.save_failed("no", 1);
        assert!(!p.writes_refused());
        assert_eq!(p.status(0, 0).last_save_status(), "err");
    }
}
