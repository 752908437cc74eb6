//! The cache's snapshot file: a crash-safe writer, a paranoid loader.
//!
//! A daemon that restarts (deploy, crash, reboot) should come back with its
//! cache. The writer must never leave a half-written file where the last good
//! one was, whatever moment it is killed at; the loader must refuse a damaged
//! file with a clear message, never panic on one, and never let a length
//! field in it decide how much memory to take.
//!
//! **Writing** ([`write_snapshot`]) goes to a temporary file in the
//! snapshot's directory through a `BufWriter`, fsyncs it, renames it over
//! `PATH`, then fsyncs the directory so the rename itself is durable. Until
//! the rename, `PATH` is the previous snapshot, untouched; after it, the new
//! one, complete.
//!
//! **Files that cannot be turned against the host.** Anyone who can write to
//! the snapshot's directory could plant a symbolic link where the server is
//! about to write, to make it overwrite any file it may write. So the
//! temporary file has an unpredictable name (`PATH`'s file name, `.tmp-`,
//! then 16 random hex digits: [`TEMP_INFIX`]) and is created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, which fails on any existing name, link or
//! not (another name is drawn then); `PATH` is only ever replaced by a
//! rename, which replaces a link rather than following it; and a file that
//! does not load is moved aside with `renameat2(RENAME_NOREPLACE)`
//! ([`move_aside`]). A save holds an `flock` on its temporary file while it
//! writes, so that [`remove_stale_temporaries`] (run at start) removes only
//! the leftovers of a process that died mid-save, never a file another
//! process is writing. [`ignore_sigxfsz`] makes a save that crosses
//! `ulimit -f` fail with `EFBIG`, as a full disk fails, instead of killing
//! the process.
//!
//! **Loading** ([`load_snapshot`], [`load_snapshot_with`]) reads the file in
//! one streaming pass, checking the CRC-32 trailer over everything before
//! it. A length field is only believed once the bytes it announces are known
//! to be in the file. Every record is validated as the server would validate
//! a request, since the loaded values are served as they are (a JSON value is
//! spliced into responses unparsed): a JSON value must be exactly one JSON
//! value, an expiry must be a time the server can represent
//! ([`MAX_EXPIRES_AT`]), and keys and values must be within [`LoadLimits`].
//! Records whose TTL has passed are dropped. A file that does not load can be
//! renamed out of the way with [`move_aside`].
//!
//! # File format, version 1
//!
//! All integers are little-endian. The file is a 36-byte header, the
//! records, and a 4-byte trailer:
//!
//! ```text
//! offset  size  field
//!      0     8  magic: the ASCII bytes "RRPCSNAP"
//!      8     4  version: u32 = 1
//!     12     8  created_at: u64, Unix time in milliseconds when the save began
//!     20     8  record_count: u64
//!     28     8  file_len: u64, the length of the whole file in bytes, trailer included
//!     36        record_count records, back to back:
//!                 4  key_len: u32
//!           key_len  key bytes (any bytes)
//!                 1  kind: u8, 0 = Int, 1 = Raw bytes, 2 = JSON text
//!                 1  flags: u8, bit 0 = has an expiry; the other bits are 0
//!                 8  expires_at: u64, Unix time in milliseconds (present only if flags bit 0)
//!                 4  value_len: u32
//!         value_len  value bytes: Int = exactly 8 bytes, an i64;
//!                    Raw = any bytes; JSON = UTF-8 text
//! file_len-4     4  crc32: u32, CRC-32 (IEEE 802.3, as zlib and crc32fast
//!                   compute it) of bytes 0 .. file_len-4
//! ```
//!
//! A loader checks, in this order: the magic ([`SnapshotErrorKind::BadMagic`];
//! a file shorter than 8 bytes that is a prefix of the magic is
//! [`SnapshotErrorKind::Truncated`]), the version
//! ([`SnapshotErrorKind::UnknownVersion`]), that the file holds at least a
//! header and a trailer and no fewer bytes than `file_len`
//! ([`SnapshotErrorKind::Truncated`]), then reads the records and the
//! trailer: a CRC that does not match is [`SnapshotErrorKind::CrcMismatch`];
//! with a matching CRC, any fault in the contents (bytes beyond `file_len`, a
//! record running past the end, an unknown kind or flag, an Int that is not 8
//! bytes, JSON that is not exactly one JSON value, an expiry after
//! [`MAX_EXPIRES_AT`], a key or value over [`LoadLimits`], fewer or more
//! records than `record_count`) is [`SnapshotErrorKind::Corrupt`], naming
//! the record (its index, from 0, and its key) when the fault is in one.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use log::warn;

use reactor_rpc_protocol::Json;

/// The first 8 bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"RRPCSNAP";

/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

/// Bytes before the first record.
pub const HEADER_LEN: u64 = 36;

/// Bytes after the last record.
pub const TRAILER_LEN: u64 = 4;

/// The smallest record: empty key and value, no expiry.
const MIN_RECORD_LEN: u64 = 4 + 1 + 1 + 4;

const FLAG_EXPIRES: u8 = 1;

/// The latest expiry a record may carry: Unix time in milliseconds that
/// still fits an `i64`, as Redis refuses any later one (`EXPIRE` answers
/// "invalid expire time"). The writer clamps later deadlines to it.
pub const MAX_EXPIRES_AT: u64 = i64::MAX as u64;

/// Redis's `proto-max-bulk-len` default: the size of the largest string it
/// accepts.
pub const PROTO_MAX_BULK_LEN: u64 = 512 << 20;

/// The largest key and value a loaded record may have: what the server
/// could have accepted from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Longest key, in bytes.
    pub max_key_len: u64,
    /// Longest value, in bytes.
    pub max_value_len: u64,
}

impl Default for LoadLimits {
    /// [`PROTO_MAX_BULK_LEN`] for both.
    fn default() -> LoadLimits {
        LoadLimits {
            max_key_len: PROTO_MAX_BULK_LEN,
            max_value_len: PROTO_MAX_BULK_LEN,
        }
    }
}

impl LoadLimits {
    /// The limits of a server with `--max-frame max_frame`: no key or value
    /// it accepts (a JSON frame, or a RESP bulk string, is at most
    /// `max_frame` bytes) is longer; never below [`PROTO_MAX_BULK_LEN`], so
    /// that lowering `--max-frame` does not make a snapshot unloadable.
    pub fn for_max_frame(max_frame: u32) -> LoadLimits {
        let n = u64::from(max_frame).max(PROTO_MAX_BULK_LEN);
        LoadLimits {
            max_key_len: n,
            max_value_len: n,
        }
    }
}

/// How a value is stored in the cache, so that it comes back the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A 64-bit signed integer (what `incr` works on); 8 bytes, little-endian.
    Int = 0,
    /// Uninterpreted bytes.
    Raw = 1,
    /// JSON text, UTF-8, stored as sent.
    Json = 2,
}

impl ValueKind {
    /// The kind a record's kind byte stands for, if any.
    pub fn from_u8(b: u8) -> Option<ValueKind> {
        match b {
            0 => Some(ValueKind::Int),
            1 => Some(ValueKind::Raw),
            2 => Some(ValueKind::Json),
            _ => None,
        }
    }
}

/// One cache entry as the snapshot stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// How the value is stored.
    pub kind: ValueKind,
    /// For [`ValueKind::Int`], the 8 bytes of an `i64`, little-endian.
    pub value: Vec<u8>,
    /// Unix time in milliseconds after which the key is gone.
    pub expires_at: Option<u64>,
}

impl Record {
    /// An integer entry.
    pub fn int(key: impl Into<Vec<u8>>, value: i64, expires_at: Option<u64>) -> Record {
        Record {
            key: key.into(),
            kind: ValueKind::Int,
            value: value.to_le_bytes().to_vec(),
            expires_at,
        }
    }

    /// A JSON entry.
    pub fn json(
        key: impl Into<Vec<u8>>,
        text: impl Into<String>,
        expires_at: Option<u64>,
    ) -> Record {
        Record {
            key: key.into(),
            kind: ValueKind::Json,
            value: text.into().into_bytes(),
            expires_at,
        }
    }

    /// A raw-bytes entry.
    pub fn raw(
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        expires_at: Option<u64>,
    ) -> Record {
        Record {
            key: key.into(),
            kind: ValueKind::Raw,
            value: value.into(),
            expires_at,
        }
    }

    /// The integer of an Int record.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            ValueKind::Int => Some(i64::from_le_bytes(self.value.as_slice().try_into().ok()?)),
            _ => None,
        }
    }

    /// Whether the record's TTL has passed at `now_unix_ms`.
    pub fn is_expired(&self, now_unix_ms: u64) -> bool {
        self.expires_at.is_some_and(|t| t <= now_unix_ms)
    }

    /// Why the writer would refuse it, if it would.
    fn check(&self) -> Result<(), &'static str> {
        if u32::try_from(self.key.len()).is_err() {
            return Err("key longer than 4 GiB");
        }
        if u32::try_from(self.value.len()).is_err() {
            return Err("value longer than 4 GiB");
        }
        if self.expires_at.is_some_and(|t| t > MAX_EXPIRES_AT) {
            return Err("expiry beyond i64::MAX milliseconds");
        }
        check_value(self.kind, &self.value)
    }

    fn encoded_len(&self) -> u64 {
        MIN_RECORD_LEN
            + self.key.len() as u64
            + self.value.len() as u64
            + if self.expires_at.is_some() { 8 } else { 0 }
    }
}

/// Whether `value` is what its kind says: an Int is 8 bytes, a JSON value
/// is exactly one JSON value (what the server accepted in a request: the
/// same scanner, the same nesting limit), since it is spliced into responses
/// as it is.
fn check_value(kind: ValueKind, value: &[u8]) -> Result<(), &'static str> {
    match kind {
        ValueKind::Int if value.len() != 8 => Err("Int value that is not 8 bytes"),
        ValueKind::Json => match std::str::from_utf8(value) {
            Err(_) => Err("JSON value that is not UTF-8"),
            Ok(text) if Json::new(text).is_none() => {
                Err("JSON value that is not exactly one JSON value")
            }
            Ok(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

/// What a save wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveInfo {
    /// Records written.
    pub keys: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Wall time of the save, fsyncs and rename included.
    pub ms: u64,
    /// The header's `created_at`.
    pub created_at_ms: u64,
}

/// What follows `PATH`'s file name in a temporary file's name, before 16
/// random hex digits: `cache.snap.tmp-0123456789abcdef`.
pub const TEMP_INFIX: &str = ".tmp-";

/// The snapshot's directory (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `PATH`'s file name and [`TEMP_INFIX`]: the prefix of every temporary
/// file of this snapshot.
fn temp_prefix(path: &Path) -> io::Result<OsString> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("snapshot path {} has no file name", path.display()),
        ));
    };
    let mut prefix = name.to_os_string();
    prefix.push(TEMP_INFIX);
    Ok(prefix)
}

/// Whether `name` is a temporary file name of the snapshot whose prefix is
/// `prefix`: the prefix, then exactly 16 lower-case hex digits.
fn is_temp_name(prefix: &OsStr, name: &OsStr) -> bool {
    name.as_bytes()
        .strip_prefix(prefix.as_bytes())
        .is_some_and(|rest| {
            rest.len() == 16 && rest.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// 64 bits from the kernel's random source (`getrandom`), as 16 hex
/// digits; should the call fail, from the clock, the pid and a hash seeded
/// by the standard library's random keys, which are still not guessable
/// from outside.
fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let n = if got == bytes.len() as isize {
        u64::from_le_bytes(bytes)
    } else {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(super::unix_ms_now());
        h.write_u32(std::process::id());
        h.write_u128(Instant::now().elapsed().as_nanos());
        h.finish()
    };
    format!("{n:016x}")
}

/// Creates a new file at exactly `path`, mode 0600, failing if any file or
/// link is there (`O_EXCL|O_NOFOLLOW`), and takes an `flock` on it for as
/// long as it is open.
fn create_exclusive(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(path)?;
    // Best effort: a file system without locks still saves; only the
    // start-up cleaner looks at the lock.
    // SAFETY: flock on a descriptor this function owns.
    let _ = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    Ok(file)
}

/// Creates a temporary file for a save of `path`, in its directory, under a
/// name no one can predict; a name already taken (even by a planted link)
/// is never opened: another is drawn.
fn create_temp(path: &Path) -> io::Result<(File, PathBuf)> {
    let prefix = temp_prefix(path)?;
    let dir = parent_dir(path);
    let mut last = None;
    for _ in 0..16 {
        let mut name = prefix.clone();
        name.push(random_hex());
        let tmp = dir.join(name);
        match create_exclusive(&tmp) {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary file name")))
}

/// The temporary files of `path`'s saves now in its directory (left by a
/// save under way, or by a process that died during one).
pub fn temporaries(path: &Path) -> io::Result<Vec<PathBuf>> {
    let prefix = temp_prefix(path)?;
    let dir = parent_dir(path);
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if is_temp_name(&prefix, &entry.file_name()) {
            found.push(dir.join(entry.file_name()));
        }
    }
    found.sort();
    Ok(found)
}

/// Removes the temporary files that earlier runs left beside `path` (a
/// process killed mid-save leaves one): those no process holds the lock of,
/// so never the file of a save under way elsewhere. A link with a temporary
/// name is removed itself, never followed. `PATH.tmp`, the fixed name of
/// versions before 0.2, is removed too. Returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for tmp in temporaries(path)? {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&tmp);
        let stale = match &file {
            // SAFETY: flock on a descriptor we own; released when it closes.
            Ok(f) => unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 },
            // A link (ELOOP), or something else that is not ours to open.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                warn!("cannot check the temporary file {}: {e}", tmp.display());
                false
            }
        };
        if stale {
            match fs::remove_file(&tmp) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    let legacy = with_suffix(path, ".tmp");
    if fs::symlink_metadata(&legacy).is_ok_and(|m| !m.is_dir()) {
        fs::remove_file(&legacy)?;
        removed += 1;
    }
    Ok(removed)
}

/// Checks that saves to `path` can work: its directory exists and a file
/// can be created in it (created and removed at once, as a save's temporary
/// file would be). This asks the file system, not the permission bits, so
/// it is right for root and on a read-only mount too.
pub fn check_directory(path: &Path) -> io::Result<()> {
    let dir = parent_dir(path);
    let meta = fs::metadata(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("directory {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let (file, tmp) = create_temp(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("directory {} is not writable: {e}", dir.display()),
        )
    })?;
    drop(file);
    fs::remove_file(&tmp)
}

/// Ignores `SIGXFSZ`, process-wide, unless the program installed a handler
/// of its own: a write that crosses `ulimit -f` then fails with `EFBIG`, so
/// a save fails as it would on a full disk, instead of the default action
/// killing the process and everything unsaved with it. Idempotent.
pub fn ignore_sigxfsz() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with a null new action only reads the current
        // disposition into `old`, a zeroed sigaction we own; signal() then
        // sets SIG_IGN, which is async-signal-safe to install at any time.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGXFSZ, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
            {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
        }
    });
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

fn header_bytes(created_at_ms: u64, count: u64, file_len: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&created_at_ms.to_le_bytes());
    h[20..28].copy_from_slice(&count.to_le_bytes());
    h[28..36].copy_from_slice(&file_len.to_le_bytes());
    h
}

/// Writes a snapshot of every record the shards yield to `path`, crash-safely
/// and through a temporary file no one can predict or redirect (see the
/// module docs). The shards are taken one at a time, so at most one shard's
/// records are held at once besides the caller's.
pub fn write_snapshot<I>(path: &Path, shards: I) -> io::Result<SaveInfo>
where
    I: IntoIterator<Item = Vec<Record>>,
{
    let started = Instant::now();
    let created_at_ms = super::unix_ms_now();
    let (file, tmp) = create_temp(path)?;
    let result = write_tmp(file, created_at_ms, shards).and_then(|(keys, bytes)| {
        fs::rename(&tmp, path)?;
        sync_dir(path)?;
        Ok((keys, bytes))
    });
    match result {
        Ok((keys, bytes)) => Ok(SaveInfo {
            keys,
            bytes,
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            created_at_ms,
        }),
        Err(e) => {
            // Best effort: a leftover is removed at the next start.
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes and fsyncs `tmp`; returns (records, bytes).
fn write_tmp<I>(file: File, created_at_ms: u64, shards: I) -> io::Result<(u64, u64)>
where
    I: IntoIterator<Item = Vec<Record>>,
{
    let mut out = BufWriter::with_capacity(1 << 20, file);
    // The count and length are not known yet: a placeholder header now, the
    // real one written over it at the end. The CRC of the header is combined
    // with the records' CRC then (crc32fast can join two CRCs).
    out.write_all(&header_bytes(created_at_ms, 0, 0))?;
    let mut body_crc = crc32fast::Hasher::new();
    let mut count: u64 = 0;
    let mut body_len: u64 = 0;
    let mut scratch = Vec::with_capacity(64);
    for shard in shards {
        for r in &shard {
            r.check().map_err(|what| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "cannot save key {:?}: {what}",
                        String::from_utf8_lossy(&r.key)
                    ),
                )
            })?;
            scratch.clear();
            scratch.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
            scratch.extend_from_slice(&r.key);
            scratch.push(r.kind as u8);
            match r.expires_at {
                Some(t) => {
                    scratch.push(FLAG_EXPIRES);
                    scratch.extend_from_slice(&t.to_le_bytes());
                }
                None => scratch.push(0),
            }
            scratch.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
            if r.value.len() <= 256 {
                scratch.extend_from_slice(&r.value);
                body_crc.update(&scratch);
                out.write_all(&scratch)?;
            } else {
                body_crc.update(&scratch);
                out.write_all(&scratch)?;
                body_crc.update(&r.value);
                out.write_all(&r.value)?;
            }
            count += 1;
            body_len += r.encoded_len();
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    let file_len = HEADER_LEN + body_len + TRAILER_LEN;
    let header = header_bytes(created_at_ms, count, file_len);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.combine(&body_crc);
    file.write_all_at(&header, 0)?;
    file.write_all_at(&crc.finalize().to_le_bytes(), HEADER_LEN + body_len)?;
    file.sync_all()?;
    Ok((count, file_len))
}

/// Fsyncs the directory holding `path`, making a rename in it durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

/// What [`load_snapshot`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The live records, in file order.
    pub records: Vec<Record>,
    /// When the snapshot was taken (Unix ms).
    pub created_at_ms: u64,
    /// Records dropped because their TTL had passed.
    pub expired: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Wall time of the load.
    pub ms: u64,
}

/// Why a snapshot did not load.
#[derive(Debug)]
pub enum SnapshotErrorKind {
    /// The file could not be read (including: it does not exist).
    Io(io::Error),
    /// Not a snapshot file.
    BadMagic,
    /// A snapshot from another version of the format.
    UnknownVersion(u32),
    /// Shorter than the header says (or than a header and trailer).
    Truncated {
        /// Bytes the header (or the format) requires.
        expected: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// The bytes are not those the writer wrote.
    CrcMismatch {
        /// The CRC in the trailer.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// The CRC matches but the contents make no sense, or are more than the
    /// server would accept (a writer bug, or a file crafted by hand).
    Corrupt {
        /// Where in the file the fault is.
        offset: u64,
        /// The index (from 0) of the record the fault is in, if it is in one.
        record: Option<u64>,
        /// That record's key, if it was read (lossy UTF-8, cut to 64 characters).
        key: Option<String>,
        /// What is wrong there.
        what: Cow<'static, str>,
    },
}

/// A snapshot that did not load, and which file it was.
#[derive(Debug)]
pub struct SnapshotError {
    /// The snapshot file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: SnapshotErrorKind,
}

impl SnapshotError {
    /// There is no snapshot to load (a first start): not a fault.
    pub fn is_not_found(&self) -> bool {
        matches!(&self.kind, SnapshotErrorKind::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snapshot {}: ", self.path.display())?;
        match &self.kind {
            SnapshotErrorKind::Io(e) => write!(f, "{e}"),
            SnapshotErrorKind::BadMagic => f.write_str("not a snapshot file (bad magic)"),
            SnapshotErrorKind::UnknownVersion(v) => {
                write!(f, "unknown format version {v} (this build reads {VERSION})")
            }
            SnapshotErrorKind::Truncated { expected, actual } => {
                write!(f, "truncated: {actual} bytes of {expected}")
            }
            SnapshotErrorKind::CrcMismatch { stored, computed } => write!(
                f,
                "CRC mismatch (stored {stored:08x}, computed {computed:08x}): the file is damaged"
            ),
            SnapshotErrorKind::Corrupt {
                offset,
                record,
                key,
                what,
            } => {
                f.write_str("corrupt")?;
                if let Some(i) = record {
                    write!(f, " record {i}")?;
                }
                if let Some(key) = key {
                    write!(f, " (key {key:?})")?;
                }
                write!(f, " at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            SnapshotErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A reader that feeds everything read through it to a CRC.
struct Crc<R> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A fault found while reading records.
struct Fault {
    offset: u64,
    what: Cow<'static, str>,
    /// The key of the record it is in, once read.
    key: Option<String>,
}

impl Fault {
    fn at(offset: u64, what: impl Into<Cow<'static, str>>) -> Fault {
        Fault {
            offset,
            what: what.into(),
            key: None,
        }
    }
}

/// A key as an error message shows it: lossy UTF-8, at most 64 characters.
fn key_for_message(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Reads records from the body, never trusting a length beyond the bytes left.
struct Body<R> {
    reader: R,
    /// Offset in the file of the next byte.
    offset: u64,
    /// Body bytes not yet read (the trailer excluded).
    left: u64,
}

impl<R: Read> Body<R> {
    fn take(&mut self, n: u64, what: &'static str) -> Result<Vec<u8>, Fault> {
        if n > self.left {
            return Err(self.fault(what));
        }
        // Safe to allocate: the bytes are in the file.
        let mut buf = vec![0u8; n as usize];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), Fault> {
        let n = buf.len() as u64;
        if n > self.left {
            return Err(self.fault(what));
        }
        self.reader
            .read_exact(buf)
            .map_err(|_| Fault::at(self.offset, "read failed (file shrank while loading?)"))?;
        self.offset += n;
        self.left -= n;
        Ok(())
    }

    fn fault(&self, what: &'static str) -> Fault {
        Fault::at(self.offset, what)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Fault> {
        let mut b = [0u8; 1];
        self.fill(&mut b, what)?;
        Ok(b[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Fault> {
        let mut b = [0u8; 4];
        self.fill(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.fill(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The next record, checked against `limits` (before its bytes are
    /// read) and validated as the server validates what a client sends.
    fn record(&mut self, limits: &LoadLimits) -> Result<Record, Fault> {
        let key_at = self.offset;
        let key_len = self.u32("record runs past the end (key length)")?;
        if u64::from(key_len) > limits.max_key_len {
            return Err(Fault::at(
                key_at,
                format!(
                    "key of {key_len} bytes, over the limit of {} (--max-frame, at least 512 MiB)",
                    limits.max_key_len
                ),
            ));
        }
        let key = self.take(u64::from(key_len), "key runs past the end")?;
        let with_key = |mut f: Fault| {
            f.key = Some(key_for_message(&key));
            f
        };
        self.rest(limits)
            .map_err(with_key)
            .map(|(kind, expires_at, value)| Record {
                key,
                kind,
                value,
                expires_at,
            })
    }

    /// A record after its key: (kind, expiry, value).
    fn rest(&mut self, limits: &LoadLimits) -> Result<(ValueKind, Option<u64>, Vec<u8>), Fault> {
        let kind_at = self.offset;
        let kind = ValueKind::from_u8(self.u8("record runs past the end (kind)")?)
            .ok_or_else(|| Fault::at(kind_at, "unknown value kind"))?;
        let flags_at = self.offset;
        let flags = self.u8("record runs past the end (flags)")?;
        if flags & !FLAG_EXPIRES != 0 {
            return Err(Fault::at(flags_at, "unknown record flags"));
        }
        let expires_at = if flags & FLAG_EXPIRES != 0 {
            let at = self.offset;
            let t = self.u64("record runs past the end (expiry)")?;
            if t > MAX_EXPIRES_AT {
                return Err(Fault::at(
                    at,
                    format!(
                        "expiry {t} is beyond the latest the server can keep ({MAX_EXPIRES_AT} ms)"
                    ),
                ));
            }
            Some(t)
        } else {
            None
        };
        let len_at = self.offset;
        let value_len = self.u32("record runs past the end (value length)")?;
        if u64::from(value_len) > limits.max_value_len {
            return Err(Fault::at(
                len_at,
                format!(
                    "value of {value_len} bytes, over the limit of {} (--max-frame, at least 512 MiB)",
                    limits.max_value_len
                ),
            ));
        }
        let value_at = self.offset;
        let value = self.take(u64::from(value_len), "value runs past the end")?;
        check_value(kind, &value).map_err(|what| Fault::at(value_at, what))?;
        Ok((kind, expires_at, value))
    }
}

/// Loads the snapshot at `path`, dropping records expired at `now_unix_ms`,
/// with the default [`LoadLimits`].
pub fn load_snapshot(path: &Path, now_unix_ms: u64) -> Result<Loaded, SnapshotError> {
    load_snapshot_with(path, now_unix_ms, &LoadLimits::default())
}

/// Loads the snapshot at `path`, dropping records expired at `now_unix_ms`
/// and refusing any record over `limits`.
pub fn load_snapshot_with(
    path: &Path,
    now_unix_ms: u64,
    limits: &LoadLimits,
) -> Result<Loaded, SnapshotError> {
    let error = |kind| SnapshotError {
        path: path.to_path_buf(),
        kind,
    };
    let io_error = |e| error(SnapshotErrorKind::Io(e));
    let started = Instant::now();
    // Non-blocking, so that a FIFO put in its place cannot hang the start.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let actual = meta.len();

    // The header: magic, version, then the lengths.
    let mut header = [0u8; HEADER_LEN as usize];
    let got = read_up_to(&file, &mut header).map_err(io_error)?;
    let truncated = |expected| {
        error(SnapshotErrorKind::Truncated {
            expected,
            actual: got as u64,
        })
    };
    let magic_len = got.min(MAGIC.len());
    if header[..magic_len] != MAGIC[..magic_len] {
        return Err(error(SnapshotErrorKind::BadMagic));
    }
    if got < 12 {
        return Err(truncated(HEADER_LEN + TRAILER_LEN));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(error(SnapshotErrorKind::UnknownVersion(version)));
    }
    if (got as u64) < HEADER_LEN || actual < HEADER_LEN + TRAILER_LEN {
        return Err(truncated(HEADER_LEN + TRAILER_LEN));
    }
    let field = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let created_at_ms = field(12);
    let count = field(20);
    let file_len = field(28);
    if file_len > actual {
        return Err(error(SnapshotErrorKind::Truncated {
            expected: file_len,
            actual,
        }));
    }

    // The records, hashed as they stream past.
    let body_len = actual - HEADER_LEN - TRAILER_LEN;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    let mut body = Body {
        reader: BufReader::with_capacity(
            256 << 10,
            Crc {
                inner: (&file).take(body_len),
                hasher,
            },
        ),
        offset: HEADER_LEN,
        left: body_len,
    };
    // Never reserve more records than the bytes left could hold.
    let mut records = Vec::with_capacity(count.min(body_len / MIN_RECORD_LEN) as usize);
    let mut expired = 0u64;
    let mut fault = None;
    let mut read = 0u64;
    while read < count {
        match body.record(limits) {
            Ok(r) => {
                read += 1;
                if r.is_expired(now_unix_ms) {
                    expired += 1;
                } else {
                    records.push(r);
                }
            }
            Err(f) => {
                fault = Some((Some(read), f));
                break;
            }
        }
    }
    if fault.is_none() && body.left > 0 {
        fault = Some((None, body.fault("bytes after the last record")));
    }
    // Hash whatever a fault left unread, so a damaged file reports its CRC.
    let offset = body.offset;
    let mut reader = body.reader;
    io::copy(&mut reader, &mut io::sink()).map_err(io_error)?;
    let computed = reader.into_inner().hasher.finalize();
    let mut trailer = [0u8; TRAILER_LEN as usize];
    if read_up_to(&file, &mut trailer).map_err(io_error)? < trailer.len() {
        return Err(error(SnapshotErrorKind::Truncated {
            expected: actual,
            actual: offset,
        }));
    }
    let stored = u32::from_le_bytes(trailer);
    if stored != computed {
        return Err(error(SnapshotErrorKind::CrcMismatch { stored, computed }));
    }
    if file_len != actual {
        return Err(error(SnapshotErrorKind::Corrupt {
            offset: 28,
            record: None,
            key: None,
            what: "file is longer than its header says".into(),
        }));
    }
    if let Some((record, Fault { offset, what, key })) = fault {
        return Err(error(SnapshotErrorKind::Corrupt {
            offset,
            record,
            key,
            what,
        }));
    }
    Ok(Loaded {
        records,
        created_at_ms,
        expired,
        bytes: actual,
        ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Renames a snapshot that does not load to `PATH.corrupt-<unix seconds>`
/// (with `-1`, `-2`… added if that name is taken), so the server can start
/// empty without destroying the evidence; returns the new path. The name is
/// predictable, so the rename never replaces what is there, a planted link
/// included (`renameat2` with `RENAME_NOREPLACE`; where the file system
/// lacks it, a check before a plain rename, which at worst replaces a link
/// rather than following it).
pub fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let secs = super::unix_ms_now() / 1000;
    let base = with_suffix(path, &format!(".corrupt-{secs}"));
    for n in 0..1000u32 {
        let target = if n == 0 {
            base.clone()
        } else {
            with_suffix(&base, &format!("-{n}"))
        };
        match rename_noreplace(path, &target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("every name {}[-N] is taken", base.display()),
    ))
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
    };
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: two NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            fs::rename(from, to)
        }
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Vec<Record>> {
        vec![
            vec![
                Record::int("counter", -42, None),
                Record::json(
                    "user:1",
                    r#"{"name":"Ada","tags":[1,2]}"#,
                    Some(MAX_EXPIRES_AT),
                ),
            ],
            vec![],
            vec![
                Record::raw(vec![0u8, 255, 10], vec![1u8; 300], Some(2_000)),
                Record::json("", "null", None),
            ],
        ]
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    fn kind(path: &Path, now: u64) -> SnapshotErrorKind {
        load_snapshot(path, now).expect_err("should not load").kind
    }

    #[test]
    fn round_trip() {
        let d = dir();
        let path = d.path().join("cache.snap");
        let info = write_snapshot(&path, sample()).expect("save");
        assert_eq!(info.keys, 4);
        assert_eq!(info.bytes, fs::metadata(&path).expect("stat").len());
        assert!(temporaries(&path).expect("list").is_empty());
        let loaded = load_snapshot(&path, 1_000).expect("load");
        let all: Vec<Record> = sample().into_iter().flatten().collect();
        assert_eq!(loaded.records, all);
        assert_eq!(loaded.expired, 0);
        assert_eq!(loaded.bytes, info.bytes);
        assert_eq!(loaded.created_at_ms, info.created_at_ms);
        assert_eq!(loaded.records[0].as_int(), Some(-42));
        // At 2000 ms the raw record's TTL has passed.
        let later = load_snapshot(&path, 2_000).expect("load");
        assert_eq!(later.records.len(), 3);
        assert_eq!(later.expired, 1);
    }

    #[test]
    fn the_layout_is_as_documented() {
        let d = dir();
        let path = d.path().join("s");
        write_snapshot(&path, vec![vec![Record::raw("k", "v", Some(7))]]).expect("save");
        let bytes = fs::read(&path).expect("read");
        assert_eq!(&bytes[0..8], b"RRPCSNAP");
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        assert_eq!(&bytes[20..28], &1u64.to_le_bytes());
        assert_eq!(&bytes[28..36], &(bytes.len() as u64).to_le_bytes());
        let record: &[u8] = &[
            1, 0, 0, 0, b'k', 1, 1, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'v',
        ];
        assert_eq!(&bytes[36..bytes.len() - 4], record);
        let crc = crc32fast::hash(&bytes[..bytes.len() - 4]);
        assert_eq!(&bytes[bytes.len() - 4..], &crc.to_le_bytes());
    }

    #[test]
    fn empty_snapshot() {
        let d = dir();
        let path = d.path().join("s");
        let info = write_snapshot(&path, Vec::<Vec<Record>>::new()).expect("save");
        assert_eq!((info.keys, info.bytes), (0, HEADER_LEN + TRAILER_LEN));
        assert!(load_snapshot(&path, 0).expect("load").records.is_empty());
    }

    #[test]
    fn every_truncation_is_reported_as_such() {
        let d = dir();
        let path = d.path().join("s");
        write_snapshot(&path, sample()).expect("save");
        let whole = fs::read(&path).expect("read");
        let cut = d.path().join("cut");
        for n in 0..whole.len() {
            fs::write(&cut, &whole[..n]).expect("write");
            match kind(&cut, 0) {
                SnapshotErrorKind::Truncated { actual, .. } => assert!(actual <= n as u64),
                other => panic!("{n} bytes: {other:?}"),
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let d = dir();
        let path = d.path().join("s");
        write_snapshot(&path, sample()).expect("save");
        let whole = fs::read(&path).expect("read");
        let bad = d.path().join("bad");
        for i in 0..whole.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = whole.clone();
                b[i] ^= bit;
                fs::write(&bad, &b).expect("write");
                let k = kind(&bad, 0);
                let ok = match i {
                    0..8 => matches!(k, SnapshotErrorKind::BadMagic),
                    8..12 => matches!(k, SnapshotErrorKind::UnknownVersion(_)),
                    // A longer file_len reads as truncation, a shorter one
                    // fails the CRC.
                    28..36 => matches!(
                        k,
                        SnapshotErrorKind::Truncated { .. } | SnapshotErrorKind::CrcMismatch { .. }
                    ),
                    _ => matches!(k, SnapshotErrorKind::CrcMismatch { .. }),
                };
                assert!(ok, "byte {i} ^ {bit:#x}: {k:?}");
            }
        }
    }

    #[test]
    fn unknown_version() {
        let d = dir();
        let path = d.path().join("s");
        write_snapshot(&path, sample()).expect("save");
        let mut b = fs::read(&path).expect("read");
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        fs::write(&path, &b).expect("write");
        let e = load_snapshot(&path, 0).expect_err("v2");
        assert!(matches!(e.kind, SnapshotErrorKind::UnknownVersion(2)));
        let text = e.to_string();
        assert!(
            text.contains("unknown format version 2") && text.contains("/s:"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn not_a_snapshot() {
        let d = dir();
        let path = d.path().join("s");
        fs::write(&path, b"{\"this is\": \"json\"}").expect("write");
        assert!(matches!(kind(&path, 0), SnapshotErrorKind::BadMagic));
        let e = load_snapshot(&d.path().join("missing"), 0).expect_err("missing");
        assert!(e.is_not_found(), "{e}");
    }

    /// A file with a valid CRC over the given body (records only).
    fn craft(path: &Path, count: u64, body: &[u8]) {
        let len = HEADER_LEN + body.len() as u64 + TRAILER_LEN;
        let mut b = header_bytes(1, count, len).to_vec();
        b.extend_from_slice(body);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        fs::write(path, b).expect("write");
    }

    #[test]
    fn lying_lengths_with_a_valid_crc_are_corrupt_and_allocate_nothing_big() {
        let d = dir();
        let path = d.path().join("s");
        // No limits: these faults are about lengths the file cannot back.
        let unlimited = LoadLimits {
            max_key_len: u64::MAX,
            max_value_len: u64::MAX,
        };
        let corrupt = |count, body: &[u8]| -> String {
            craft(&path, count, body);
            match load_snapshot_with(&path, 0, &unlimited)
                .expect_err("should not load")
                .kind
            {
                SnapshotErrorKind::Corrupt { what, .. } => what.into_owned(),
                other => panic!("{other:?}"),
            }
        };
        // 4 billion records announced, none present: no reservation for them.
        assert_eq!(
            corrupt(u64::MAX, b""),
            "record runs past the end (key length)"
        );
        // A 4 GiB key announced in a 4-byte body.
        assert_eq!(corrupt(1, &u32::MAX.to_le_bytes()), "key runs past the end");
        let mut r = vec![1, 0, 0, 0, b'k', 0, 0];
        r.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(corrupt(1, &r), "value runs past the end");
        assert_eq!(
            corrupt(1, &[0, 0, 0, 0, 9, 0, 0, 0, 0, 0]),
            "unknown value kind"
        );
        assert_eq!(
            corrupt(1, &[0, 0, 0, 0, 1, 2, 0, 0, 0, 0]),
            "unknown record flags"
        );
        assert_eq!(
            corrupt(1, &[0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7]),
            "Int value that is not 8 bytes"
        );
        assert_eq!(
            corrupt(1, &[0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0xff]),
            "JSON value that is not UTF-8"
        );
        assert_eq!(
            corrupt(0, &[0, 0, 0, 0, 1, 0, 0, 0, 0, 0]),
            "bytes after the last record"
        );
    }

    #[test]
    fn the_writer_refuses_records_the_loader_would() {
        let d = dir();
        let path = d.path().join("s");
        write_snapshot(&path, sample()).expect("save");
        let bad = Record {
            key: b"n".to_vec(),
            kind: ValueKind::Int,
            value: vec![1, 2, 3],
            expires_at: None,
        };
        let e = write_snapshot(&path, vec![vec![bad]]).expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // The previous snapshot is intact and no temporary file is left.
        assert_eq!(load_snapshot(&path, 0).expect("load").records.len(), 4);
        assert!(temporaries(&path).expect("list").is_empty());
        let late = Record::raw("k", "v", Some(MAX_EXPIRES_AT + 1));
        let e = write_snapshot(&path, vec![vec![late]]).expect_err("refused");
        assert!(e.to_string().contains("expiry"), "{e}");
        let forged = Record::json("k", r#"1,"out":"forged""#, None);
        let e = write_snapshot(&path, vec![vec![forged]]).expect_err("refused");
        assert!(e.to_string().contains("exactly one JSON value"), "{e}");
        assert_eq!(load_snapshot(&path, 0).expect("load").records.len(), 4);
    }

    #[test]
    fn a_failed_rename_leaves_no_temporary_file() {
        let d = dir();
        let path = d.path().join("s");
        // A non-empty directory where the snapshot goes: the rename fails.
        fs::create_dir(&path).expect("mkdir");
        fs::write(path.join("x"), b"x").expect("write");
        assert!(write_snapshot(&path, sample()).is_err());
        assert!(temporaries(&path).expect("list").is_empty());
        assert_eq!(fs::read(path.join("x")).expect("kept"), b"x");
    }

    #[test]
    fn temporary_names_are_unpredictable_and_recognisable() {
        let d = dir();
        let path = d.path().join("cache.snap");
        let prefix = temp_prefix(&path).expect("prefix");
        assert_eq!(prefix, "cache.snap.tmp-");
        let names: Vec<PathBuf> = (0..8)
            .map(|_| {
                let (file, tmp) = create_temp(&path).expect("temp");
                drop(file);
                tmp
            })
            .collect();
        for tmp in &names {
            let name = tmp.file_name().expect("name");
            assert!(is_temp_name(&prefix, name), "{}", tmp.display());
            let mode = fs::metadata(tmp).expect("stat").permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o600
            );
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8);
        assert_eq!(temporaries(&path).expect("list"), {
            let mut sorted = names.clone();
            sorted.sort();
            sorted
        });
        for bad in [
            "cache.snap.tmp-",
            "cache.snap.tmp-0123",
            "cache.snap.tmp-0123456789ABCDEF",
            "cache.snap.tmp-0123456789abcdef0",
            "other.tmp-0123456789abcdef",
        ] {
            assert!(!is_temp_name(&prefix, OsStr::new(bad)), "{bad}");
        }
        assert!(is_temp_name(
            &prefix,
            OsStr::new("cache.snap.tmp-0123456789abcdef")
        ));
    }

    #[test]
    fn no_planted_link_is_ever_written_through() {
        let d = dir();
        let victim = d.path().join("victim");
        fs::write(&victim, b"precious").expect("write");
        let path = d.path().join("cache.snap");

        // A link at a name a save might draw: exclusive creation refuses it.
        let guessed = d.path().join("cache.snap.tmp-0123456789abcdef");
        std::os::unix::fs::symlink(&victim, &guessed).expect("symlink");
        let e = create_exclusive(&guessed).expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);

        // A link at PATH: the save replaces the link, not its target.
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        write_snapshot(&path, sample()).expect("save");
        assert!(fs::symlink_metadata(&path).expect("stat").is_file());
        assert_eq!(load_snapshot(&path, 0).expect("load").records.len(), 4);

        // A dangling link at PATH: its target is not created.
        let nowhere = d.path().join("nowhere");
        let path2 = d.path().join("other.snap");
        std::os::unix::fs::symlink(&nowhere, &path2).expect("symlink");
        write_snapshot(&path2, sample()).expect("save");
        assert!(!nowhere.exists());

        // Links at the move-aside names: skipped, not replaced.
        let secs = super::super::unix_ms_now() / 1000;
        for s in secs..secs + 3 {
            let name = with_suffix(&path, &format!(".corrupt-{s}"));
            std::os::unix::fs::symlink(&victim, name).expect("symlink");
        }
        let to = move_aside(&path).expect("moved");
        assert!(
            fs::symlink_metadata(&to).expect("stat").is_file(),
            "{}",
            to.display()
        );
        assert!(to.to_string_lossy().ends_with("-1"), "{}", to.display());

        // The start-up cleaner removes a link with a temporary name, never its target.
        assert_eq!(remove_stale_temporaries(&path).expect("clean"), 1);
        assert!(fs::symlink_metadata(&guessed).is_err());
        assert_eq!(fs::read(&victim).expect("victim"), b"precious");
    }

    #[test]
    fn stale_temporaries_go_but_one_being_written_stays() {
        let d = dir();
        let path = d.path().join("cache.snap");
        // Two leftovers of a process that died mid-save (no lock held), one
        // save under way (its file open and locked), the old fixed name, and
        // another snapshot's temporary file.
        let (dead1, t1) = create_temp(&path).expect("temp");
        let (dead2, t2) = create_temp(&path).expect("temp");
        drop((dead1, dead2));
        let (_live, live) = create_temp(&path).expect("temp");
        fs::write(with_suffix(&path, ".tmp"), b"old").expect("write");
        let (_other, other) = create_temp(&d.path().join("other.snap")).expect("temp");
        drop(_other);
        assert_eq!(remove_stale_temporaries(&path).expect("clean"), 3);
        assert!(!t1.exists() && !t2.exists());
        assert!(live.exists(), "a save under way lost its file");
        assert!(other.exists(), "another snapshot's file was touched");
        assert!(!with_suffix(&path, ".tmp").exists());
    }

    #[test]
    fn the_directory_must_exist_and_take_files() {
        let d = dir();
        assert!(check_directory(&d.path().join("cache.snap")).is_ok());
        assert_eq!(
            fs::read_dir(d.path()).expect("dir").count(),
            0,
            "the probe stayed"
        );
        let e = check_directory(&d.path().join("missing/cache.snap")).expect_err("missing");
        assert!(e.to_string().contains("missing"), "{e}");
        fs::write(d.path().join("file"), b"").expect("write");
        let e = check_directory(&d.path().join("file/cache.snap")).expect_err("a file");
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn records_the_server_would_not_accept_are_refused_with_their_index() {
        let d = dir();
        let path = d.path().join("s");
        let good = {
            let mut b = vec![1, 0, 0, 0, b'a', 0, 0];
            b.extend_from_slice(&8u32.to_le_bytes());
            b.extend_from_slice(&7i64.to_le_bytes());
            b
        };
        let fault = |body: &[u8], limits: &LoadLimits| {
            let mut all = good.clone();
            all.extend_from_slice(body);
            craft(&path, 2, &all);
            let e = load_snapshot_with(&path, 0, limits).expect_err("refused");
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
            match e.kind {
                SnapshotErrorKind::Corrupt {
                    record, key, what, ..
                } => (record, key, what.into_owned(), text),
                other => panic!("{other:?}"),
            }
        };
        let record = |key: &[u8], kind: u8, expiry: Option<u64>, value: &[u8]| {
            let mut b = (key.len() as u32).to_le_bytes().to_vec();
            b.extend_from_slice(key);
            b.push(kind);
            match expiry {
                Some(t) => {
                    b.push(1);
                    b.extend_from_slice(&t.to_le_bytes());
                }
                None => b.push(0),
            }
            b.extend_from_slice(&(value.len() as u32).to_le_bytes());
            b.extend_from_slice(value);
            b
        };
        let limits = LoadLimits::default();
        // A JSON record that would splice a forged field into responses.
        let (i, key, what, text) = fault(&record(b"f", 2, None, br#"1,"out":"forged""#), &limits);
        assert_eq!((i, key.as_deref()), (Some(1), Some("f")));
        assert_eq!(what, "JSON value that is not exactly one JSON value");
        assert!(
            text.contains("/s: corrupt record 1 (key \"f\") at byte"),
            "{text}"
        );
        for bad in [&b""[..], b"{", b"1 2", b"[1]]", b"nul"] {
            let (_, _, what, _) = fault(&record(b"f", 2, None, bad), &limits);
            assert_eq!(what, "JSON value that is not exactly one JSON value");
        }
        let deep = "[".repeat(129) + &"]".repeat(129);
        let (_, _, what, _) = fault(&record(b"f", 2, None, deep.as_bytes()), &limits);
        assert_eq!(what, "JSON value that is not exactly one JSON value");
        // Expiries the server cannot represent.
        let (i, _, what, _) = fault(&record(b"t", 1, Some(u64::MAX), b"v"), &limits);
        assert_eq!(i, Some(1));
        assert!(
            what.starts_with("expiry 18446744073709551615 is beyond"),
            "{what}"
        );
        let (_, _, what, _) = fault(&record(b"t", 1, Some(MAX_EXPIRES_AT + 1), b"v"), &limits);
        assert!(what.starts_with("expiry"), "{what}");
        // Keys and values over the limits, refused before they are read.
        let small = LoadLimits {
            max_key_len: 4,
            max_value_len: 16,
        };
        let (i, key, what, _) = fault(&record(b"12345", 1, None, b"v"), &small);
        assert_eq!((i, key), (Some(1), None));
        assert!(
            what.starts_with("key of 5 bytes, over the limit of 4"),
            "{what}"
        );
        let (_, key, what, _) = fault(&record(b"k", 1, None, &[7; 17]), &small);
        assert_eq!(key.as_deref(), Some("k"));
        assert!(
            what.starts_with("value of 17 bytes, over the limit of 16"),
            "{what}"
        );
        // Within the limits, and the largest expiry, all is well.
        let mut all = good.clone();
        all.extend_from_slice(&record(b"k", 2, Some(MAX_EXPIRES_AT), b" {\"a\": [1, 2]} "));
        craft(&path, 2, &all);
        let loaded = load_snapshot_with(&path, 0, &small).expect("loads");
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(LoadLimits::for_max_frame(1 << 20), LoadLimits::default());
        assert_eq!(
            LoadLimits::for_max_frame(u32::MAX).max_value_len,
            u64::from(u32::MAX)
        );
    }

    #[test]
    fn a_long_key_is_cut_in_messages() {
        let long = vec![b'x'; 100];
        assert_eq!(key_for_message(&long), format!("{}...", "x".repeat(64)));
        assert_eq!(key_for_message(b"\xff\n"), "\u{fffd}\n");
    }

    #[test]
    fn a_fifo_in_place_of_the_snapshot_is_refused_without_hanging() {
        let d = dir();
        let path = d.path().join("s");
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = load_snapshot(&path, 0).expect_err("refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn move_aside_keeps_every_bad_file() {
        let d = dir();
        let path = d.path().join("cache.snap");
        let mut moved = Vec::new();
        for i in 0..3 {
            fs::write(&path, format!("junk {i}")).expect("write");
            let to = move_aside(&path).expect("move");
            assert!(!path.exists());
            let name = to
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            assert!(name.starts_with("cache.snap.corrupt-"), "{name}");
            assert_eq!(fs::read_to_string(&to).expect("read"), format!("junk {i}"));
            moved.push(to);
        }
        moved.sort();
        moved.dedup();
        assert_eq!(moved.len(), 3);
    }
}
