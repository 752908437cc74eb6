//! A pid file that stops a second server from starting on the same state,
//! and that a stale file can never lock out.
//!
//! Two servers sharing one snapshot path would overwrite each other's saves,
//! and init scripts, logrotate and operators find the server by its pid
//! file. Whether a server is running is not read from the pid the file
//! names: a pid is reused, and in a container every server is pid 1, so a
//! stale file can name a live process forever. Instead the running server
//! holds an `flock` on the file for its whole life; the kernel drops the
//! lock when the process dies, however it dies. [`Pidfile::create`] refuses
//! only if another process holds that lock ([`PidfileError::AlreadyRunning`]);
//! a file nobody holds is stale, whatever it names, and is taken over.
//!
//! The file is opened with `O_NOFOLLOW` (a planted symbolic link is refused,
//! never written through), must be a regular file with no other hard link
//! (so it cannot be an alias of another file), and is truncated and written
//! only once the lock is held. It is written in place rather than through a
//! temporary file and a rename: the lock belongs to the file the server
//! opened, and a rename would put another, unlocked file at the path. A
//! reader may therefore see it empty for a moment at start. The returned
//! guard removes the file on drop, but only while the path is still the file
//! it locked and still names this process.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use log::info;

/// A pid file this process owns and holds the lock of; removed on drop.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    pid: u32,
    /// Open for the process's life: closing it releases the lock.
    file: File,
}

/// Why a pid file could not be created.
#[derive(Debug)]
pub enum PidfileError {
    /// Another process holds the file's lock: a server is running.
    AlreadyRunning {
        /// The pid file.
        path: PathBuf,
        /// The pid the file names, if it names one.
        pid: Option<u32>,
    },
    /// The path is not a file this process may write: a symbolic link, not
    /// a regular file, or a file with other hard links.
    Unsafe {
        /// The pid file.
        path: PathBuf,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The file could not be opened, locked or written.
    Io {
        /// The pid file.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
}

impl fmt::Display for PidfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidfileError::AlreadyRunning {
                path,
                pid: Some(pid),
            } => write!(
                f,
                "pid file {} is locked by process {pid}, which is running: another server is \
                 using it",
                path.display()
            ),
            PidfileError::AlreadyRunning { path, pid: None } => write!(
                f,
                "pid file {} is locked by another running process: another server is using it",
                path.display()
            ),
            PidfileError::Unsafe { path, what } => write!(
                f,
                "pid file {} {what}: refusing to write to it",
                path.display()
            ),
            PidfileError::Io { path, error } => write!(f, "pid file {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for PidfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PidfileError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The pid a pid file holds: decimal digits, surrounding whitespace allowed.
pub fn parse_pid(contents: &str) -> Option<u32> {
    let s = contents.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p > 0)
}

/// The pid in an open pid file, if it holds one (at most 32 bytes read).
fn pid_in(file: &File) -> Option<u32> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok().and_then(parse_pid)
}

/// Whether `path` is, right now, the file `file` is open on.
fn same_file(path: &Path, file: &File) -> bool {
    match (fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Pidfile {
    /// Takes the lock on `path` and writes this process's pid to it,
    /// unless another process holds the lock
    /// ([`PidfileError::AlreadyRunning`]; the binary exits 2).
    pub fn create(path: impl AsRef<Path>) -> Result<Pidfile, PidfileError> {
        let path = path.as_ref().to_path_buf();
        let pid = std::process::id();
        let io_err = |error| PidfileError::Io {
            path: path.clone(),
            error,
        };
        let unsafe_file = |what| PidfileError::Unsafe {
            path: path.clone(),
            what,
        };
        // A server that exits removes its file, then its lock goes: a file
        // opened just before the removal is locked in vain. Open again then.
        for _ in 0..16 {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(unsafe_file("is a symbolic link"))
                }
                Err(e) => return Err(io_err(e)),
            };
            let meta = file.metadata().map_err(io_err)?;
            if !meta.is_file() {
                return Err(unsafe_file("is not a regular file"));
            }
            // SAFETY: flock on a descriptor we own; the lock lives as long
            // as the descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Err(PidfileError::AlreadyRunning {
                        path,
                        pid: pid_in(&file),
                    });
                }
                return Err(io_err(e));
            }
            if !same_file(&path, &file) {
                continue;
            }
            if file.metadata().map_err(io_err)?.nlink() != 1 {
                return Err(unsafe_file("has other hard links"));
            }
            if let Some(old) = pid_in(&file).filter(|&old| old != pid) {
                info!(
                    "taking over the stale pid file {} (process {old} held no lock on it)",
                    path.display()
                );
            }
            file.set_len(0).map_err(io_err)?;
            file.write_all_at(format!("{pid}\n").as_bytes(), 0)
                .map_err(io_err)?;
            return Ok(Pidfile { path, pid, file });
        }
        Err(io_err(io::Error::other(
            "the file kept being replaced while it was being locked",
        )))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid written in it (this process).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Only our own file: someone may have replaced or rewritten it.
        if same_file(&self.path, &self.file) && pid_in(&self.file) == Some(self.pid) {
            let _ = fs::remove_file(&self.path);
        }
        // Closing `file` (dropped after this) releases the lock.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pids_strictly() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid("  42  "), Some(42));
        for bad in [
            "",
            "\n",
            "0",
            "-1",
            "+5",
            "12 34",
            "abc",
            "99999999999",
            "1234x",
        ] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_held_lock_refuses_even_in_the_same_process() {
        let d = tempfile::tempdir().expect("temp dir");
        let path = d.path().join("x.pid");
        let first = Pidfile::create(&path).expect("create");
        // flock belongs to an open file: a second open is refused.
        match Pidfile::create(&path) {
            Err(PidfileError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()))
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(!path.exists());
        drop(Pidfile::create(&path).expect("free again"));
    }
}
