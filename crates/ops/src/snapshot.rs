//! The cache's snapshot file: a crash-safe writer, a paranoid loader.
//!
//! A daemon that restarts (deploy, crash, reboot) should come back with its
//! cache. The writer must never leave a half-written file where the last good
//! one was, whatever moment it is killed at; the loader must refuse a damaged
//! file with a clear message, never panic on one, and never let a length
//! field in it decide how much memory to take.
//!
//! **Writing** ([`write_snapshot`]) goes to `PATH.tmp` through a `BufWriter`,
//! fsyncs it, renames it over `PATH`, then fsyncs the directory so the rename
//! itself is durable. Until the rename, `PATH` is the previous snapshot,
//! untouched; after it, the new one, complete. At most one save per path may
//! run at a time (they share `PATH.tmp`).
//!
//! **Loading** ([`load_snapshot`]) reads the file in one streaming pass,
//! checking the CRC-32 trailer over everything before it. A length field is
//! only believed once the bytes it announces are known to be in the file.
//! Records whose TTL has passed are dropped. A file that does not load can
//! be renamed out of the way with [`move_aside`].
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
//! with a matching CRC, any structural fault (bytes beyond `file_len`, a
//! record running past the end, an unknown kind or flag, an Int that is not 8
//! bytes, JSON that is not UTF-8, fewer or more records than
//! `record_count`) is [`SnapshotErrorKind::Corrupt`].

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
        check_value(self.kind, &self.value)
    }

    fn encoded_len(&self) -> u64 {
        MIN_RECORD_LEN
            + self.key.len() as u64
            + self.value.len() as u64
            + if self.expires_at.is_some() { 8 } else { 0 }
    }
}

fn check_value(kind: ValueKind, value: &[u8]) -> Result<(), &'static str> {
    match kind {
        ValueKind::Int if value.len() != 8 => Err("Int value that is not 8 bytes"),
        ValueKind::Json if std::str::from_utf8(value).is_err() => {
            Err("JSON value that is not UTF-8")
        }
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

/// `PATH.tmp`: where a save writes before the rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".tmp")
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
/// (see the module docs). The shards are taken one at a time, so at most one
/// shard's records are held at once besides the caller's.
pub fn write_snapshot<I>(path: &Path, shards: I) -> io::Result<SaveInfo>
where
    I: IntoIterator<Item = Vec<Record>>,
{
    let started = Instant::now();
    let created_at_ms = super::unix_ms_now();
    let tmp = tmp_path(path);
    let result = write_tmp(&tmp, created_at_ms, shards).and_then(|(keys, bytes)| {
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
            // Best effort: a leftover is harmless (the next save truncates it).
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes and fsyncs `tmp`; returns (records, bytes).
fn write_tmp<I>(tmp: &Path, created_at_ms: u64, shards: I) -> io::Result<(u64, u64)>
where
    I: IntoIterator<Item = Vec<Record>>,
{
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
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
    /// The CRC matches but the contents make no sense (a writer bug, or a
    /// file crafted by hand).
    Corrupt {
        /// Where in the file the fault is.
        offset: u64,
        /// What is wrong there.
        what: &'static str,
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
            SnapshotErrorKind::Corrupt { offset, what } => {
                write!(f, "corrupt at byte {offset}: {what}")
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

/// A structural fault found while reading records.
struct Fault {
    offset: u64,
    what: &'static str,
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
        self.reader.read_exact(buf).map_err(|_| Fault {
            offset: self.offset,
            what: "read failed (file shrank while loading?)",
        })?;
        self.offset += n;
        self.left -= n;
        Ok(())
    }

    fn fault(&self, what: &'static str) -> Fault {
        Fault {
            offset: self.offset,
            what,
        }
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

    fn record(&mut self) -> Result<Record, Fault> {
        let key_len = self.u32("record runs past the end (key length)")?;
        let key = self.take(u64::from(key_len), "key runs past the end")?;
        let kind_at = self.offset;
        let kind =
            ValueKind::from_u8(self.u8("record runs past the end (kind)")?).ok_or(Fault {
                offset: kind_at,
                what: "unknown value kind",
            })?;
        let flags_at = self.offset;
        let flags = self.u8("record runs past the end (flags)")?;
        if flags & !FLAG_EXPIRES != 0 {
            return Err(Fault {
                offset: flags_at,
                what: "unknown record flags",
            });
        }
        let expires_at = if flags & FLAG_EXPIRES != 0 {
            Some(self.u64("record runs past the end (expiry)")?)
        } else {
            None
        };
        let value_len = self.u32("record runs past the end (value length)")?;
        let value_at = self.offset;
        let value = self.take(u64::from(value_len), "value runs past the end")?;
        check_value(kind, &value).map_err(|what| Fault {
            offset: value_at,
            what,
        })?;
        Ok(Record {
            key,
            kind,
            value,
            expires_at,
        })
    }
}

/// Loads the snapshot at `path`, dropping records expired at `now_unix_ms`.
pub fn load_snapshot(path: &Path, now_unix_ms: u64) -> Result<Loaded, SnapshotError> {
    let error = |kind| SnapshotError {
        path: path.to_path_buf(),
        kind,
    };
    let io_error = |e| error(SnapshotErrorKind::Io(e));
    let started = Instant::now();
    let file = File::open(path).map_err(io_error)?;
    let actual = file.metadata().map_err(io_error)?.len();

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
        match body.record() {
            Ok(r) => {
                read += 1;
                if r.is_expired(now_unix_ms) {
                    expired += 1;
                } else {
                    records.push(r);
                }
            }
            Err(f) => {
                fault = Some(f);
                break;
            }
        }
    }
    if fault.is_none() && body.left > 0 {
        fault = Some(body.fault("bytes after the last record"));
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
            what: "file is longer than its header says",
        }));
    }
    if let Some(Fault { offset, what }) = fault {
        return Err(error(SnapshotErrorKind::Corrupt { offset, what }));
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
/// empty without destroying the evidence; returns the new path.
pub fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let secs = super::unix_ms_now() / 1000;
    let base = with_suffix(path, &format!(".corrupt-{secs}"));
    let mut target = base.clone();
    let mut n = 0u32;
    while fs::symlink_metadata(&target).is_ok() {
        n += 1;
        target = with_suffix(&base, &format!("-{n}"));
    }
    fs::rename(path, &target)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Vec<Record>> {
        vec![
            vec![
                Record::int("counter", -42, None),
                Record::json("user:1", r#"{"name":"Ada","tags":[1,2]}"#, Some(u64::MAX)),
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
        assert!(!tmp_path(&path).exists());
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
        let corrupt = |count, body: &[u8]| -> &'static str {
            craft(&path, count, body);
            match kind(&path, 0) {
                SnapshotErrorKind::Corrupt { what, .. } => what,
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
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_failed_save_leaves_the_old_snapshot() {
        let d = dir();
        let path = d.path().join("s");
        write_snapshot(&path, sample()).expect("save");
        // The temporary file cannot be created: a directory is in the way.
        fs::create_dir(tmp_path(&path)).expect("mkdir");
        assert!(write_snapshot(&path, Vec::<Vec<Record>>::new()).is_err());
        assert_eq!(load_snapshot(&path, 0).expect("load").records.len(), 4);
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
