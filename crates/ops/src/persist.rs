//! A live cache's snapshots: load one at start, save one on demand (the
//! `save` method), periodically, and at shutdown.
//!
//! [`snapshot`] knows the file format and nothing of the
//! cache; the cache knows its keys and nothing of files. This module joins
//! the two, and is the one place where the cache's export and import type
//! ([`cache::Record`]) and the file's ([`snapshot::Record`]) are converted.
//!
//! A save copies the keys out one shard at a time (each shard's lock is held
//! only while its keys are copied) and encodes and writes them on the
//! calling thread, never an event loop's: the `save` method is
//! [`Cost::Heavy`], so the reactor runs it on a worker, and the periodic and
//! shutdown saves run on a thread of their own. One save runs at a time; a
//! `save` call meanwhile is answered with `busy`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use serde_json::json;

use super::snapshot::{self, Loaded, SaveInfo, SnapshotError, ValueKind};
use reactor_rpc_core::service::cache::{self, Cache, Value};
use reactor_rpc_core::service::{Access, Context, Cost, Method};
use reactor_rpc_protocol::message::write_json;
use reactor_rpc_protocol::{ErrorCode, Json, RpcError};

impl From<cache::Record> for snapshot::Record {
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
            expires_at: r.expires_at_unix_ms,
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

/// The snapshot file of one cache; share it (`Arc`) between the `save`
/// method and the threads that save periodically and at shutdown.
#[derive(Debug)]
pub struct Snapshots {
    path: PathBuf,
    /// Held for the whole of a save; holds the cache's write counter as of
    /// the last successful save (or load).
    saving: Mutex<Option<u64>>,
}

impl Snapshots {
    /// Snapshots at `path` (the file need not exist).
    pub fn new(path: impl Into<PathBuf>) -> Snapshots {
        Snapshots {
            path: path.into(),
            saving: Mutex::new(None),
        }
    }

    /// The snapshot file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the file into `cache`: keys keep their remaining TTL, keys that
    /// expired meanwhile are dropped. A missing file is an error with
    /// [`SnapshotError::is_not_found`]; start empty then.
    pub fn load_into(&self, cache: &Cache) -> Result<LoadInfo, SnapshotError> {
        let started = std::time::Instant::now();
        let Loaded {
            records,
            expired,
            bytes,
            ..
        } = snapshot::load_snapshot(&self.path, super::unix_ms_now())?;
        let keys = cache.import(records.into_iter().map(cache::Record::from));
        *lock(&self.saving) = Some(cache.dirty());
        Ok(LoadInfo {
            keys,
            expired,
            bytes,
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Saves now, unless a save is running ([`SaveError::Busy`]).
    pub fn save(&self, cache: &Cache) -> Result<SaveInfo, SaveError> {
        let guard = match self.saving.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Err(SaveError::Busy),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        self.save_locked(guard, cache)
    }

    /// Saves now, after any running save; for shutdown.
    pub fn save_waiting(&self, cache: &Cache) -> Result<SaveInfo, SaveError> {
        self.save_locked(lock(&self.saving), cache)
    }

    /// Saves if the cache changed since the last save or load (and no save
    /// is running); `Ok(None)` when there was nothing to do.
    pub fn save_if_changed(&self, cache: &Cache) -> Result<Option<SaveInfo>, SaveError> {
        let guard = match self.saving.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if *guard == Some(cache.dirty()) {
            return Ok(None);
        }
        self.save_locked(guard, cache).map(Some)
    }

    fn save_locked(
        &self,
        mut guard: MutexGuard<'_, Option<u64>>,
        cache: &Cache,
    ) -> Result<SaveInfo, SaveError> {
        // Read before copying: a write during the save marks it changed again.
        let dirty = cache.dirty();
        let shards = (0..cache.shard_count()).map(|i| {
            cache
                .export_shard(i)
                .into_iter()
                .map(snapshot::Record::from)
                .collect::<Vec<_>>()
        });
        let info = snapshot::write_snapshot(&self.path, shards).map_err(SaveError::Io)?;
        *guard = Some(dirty);
        Ok(info)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `save` method: writes a snapshot now and answers
/// `{"keys": N, "bytes": B, "ms": T}`, or `busy` while another save runs.
/// Heavy, so a server with workers runs it off the event loop.
#[derive(Debug, Clone)]
pub struct SaveMethod(pub std::sync::Arc<Snapshots>);

impl Method for SaveMethod {
    fn call(&self, cx: &Context<'_>, _params: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        match self.0.save(cx.cache()) {
            Ok(info) => write_json(
                out,
                &json!({"keys": info.keys, "bytes": info.bytes, "ms": info.ms}),
            ),
            Err(SaveError::Busy) => {
                Err(RpcError::new(ErrorCode::Busy, "a save is already running"))
            }
            Err(SaveError::Io(e)) => Err(RpcError::new(
                ErrorCode::Internal,
                format!("cannot write the snapshot: {e}"),
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
