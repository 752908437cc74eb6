//! A pid file that stops a second server from starting on the same state.
//!
//! Two servers sharing one snapshot path would overwrite each other's saves,
//! and init scripts, logrotate and operators find the server by its pid
//! file. [`Pidfile::create`] (call it after the listening sockets are bound,
//! so a second instance has usually failed already) refuses when the file
//! names a live process, replaces a stale one, writes the new file atomically
//! (temporary file, then rename: nobody ever reads half a pid), and the
//! returned guard removes the file on drop, but only while it still names
//! this process (a successor may have taken it over).
//!
//! "Live" means `kill(pid, 0)` succeeds or fails with `EPERM` (the process
//! exists but belongs to someone else). A zombie, a pid of 0 or beyond
//! `i32::MAX`, unparsable contents, and this process's own pid (a container
//! restarted with the same pid 1) all count as stale.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use log::warn;

/// A pid file this process owns; removed on drop.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    pid: u32,
}

/// Why a pid file could not be created.
#[derive(Debug)]
pub enum PidfileError {
    /// The file names a process that is running.
    AlreadyRunning {
        /// The pid file.
        path: PathBuf,
        /// The live process it names.
        pid: u32,
    },
    /// The file could not be read or written.
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
            PidfileError::AlreadyRunning { path, pid } => write!(
                f,
                "pid file {} names process {pid}, which is running: another server is using it \
                 (stop that process, or remove the file if it is not a reactor-rpc)",
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
            PidfileError::AlreadyRunning { .. } => None,
        }
    }
}

/// What `kill(pid, 0)` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process exists (possibly owned by another user).
    Alive,
    /// No such process.
    Gone,
}

/// Interprets `kill(pid, 0)`'s return value and `errno`: success or
/// `EPERM` (it exists, we may not signal it) is alive, `ESRCH` is gone, and
/// anything else is taken as alive: refusing to start is the safe mistake.
pub fn liveness_from_kill(ret: libc::c_int, errno: i32) -> Liveness {
    if ret == 0 || errno != libc::ESRCH {
        Liveness::Alive
    } else {
        Liveness::Gone
    }
}

/// Whether `pid` names a running (not zombie) process.
pub fn process_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        // kill(0, …) and kill(-1, …) address groups, not a process.
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let ret = unsafe { libc::kill(raw, 0) };
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    liveness_from_kill(ret, errno) == Liveness::Alive && !is_zombie(pid)
}

/// A zombie has exited; only its parent has not collected it yet.
fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = &s[s.rfind(')')? + 1..];
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// The pid a pid file holds: decimal digits, surrounding whitespace allowed.
pub fn parse_pid(contents: &str) -> Option<u32> {
    let s = contents.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p > 0)
}

fn read_pid(path: &Path) -> io::Result<Option<u32>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(parse_pid(&s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // Not UTF-8: garbage, hence stale.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(None),
        Err(e) => Err(e),
    }
}

impl Pidfile {
    /// Writes this process's pid to `path`, unless the file names another
    /// live process ([`PidfileError::AlreadyRunning`]; the binary exits 2).
    pub fn create(path: impl AsRef<Path>) -> Result<Pidfile, PidfileError> {
        let path = path.as_ref().to_path_buf();
        let pid = std::process::id();
        let io_err = |error| PidfileError::Io {
            path: path.clone(),
            error,
        };
        let exists = path.exists();
        match read_pid(&path).map_err(io_err)? {
            Some(other) if other != pid && process_alive(other) => {
                return Err(PidfileError::AlreadyRunning { path, pid: other });
            }
            Some(other) => warn!(
                "replacing stale pid file {} (process {other} is not running)",
                path.display()
            ),
            None if exists => warn!("replacing unreadable pid file {}", path.display()),
            None => {}
        }
        write_atomically(&path, format!("{pid}\n").as_bytes()).map_err(io_err)?;
        Ok(Pidfile { path, pid })
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
        // Only our own file: a successor may already have replaced it.
        if let Ok(Some(pid)) = read_pid(&self.path) {
            if pid == self.pid {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Writes `PATH.<pid>.tmp` and renames it over `path`.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_results() {
        assert_eq!(liveness_from_kill(0, 0), Liveness::Alive);
        assert_eq!(liveness_from_kill(-1, libc::EPERM), Liveness::Alive);
        assert_eq!(liveness_from_kill(-1, libc::ESRCH), Liveness::Gone);
        assert_eq!(liveness_from_kill(-1, libc::EINVAL), Liveness::Alive);
    }

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
    fn groups_and_absurd_pids_are_never_alive() {
        assert!(!process_alive(0));
        assert!(!process_alive(u32::MAX));
        assert!(!process_alive(i32::MAX as u32 + 1));
        assert!(process_alive(std::process::id()));
    }
}
