//! Reading a file that holds a secret: a password, a users file, a metrics
//! token, a TLS private key.
//!
//! A secret is never a command-line value of the server (where `ps` shows
//! it) and never appears in a log line or an error message; it comes from a
//! file that only the server's user may read. This module is the one place
//! that reads such files (the ops crate's `secrets` reads passwords, users
//! and tokens through it, and [`crate::server`] the private key), with the
//! same rules for all of them:
//!
//! * the file must be a regular file (not a FIFO, device or directory) and
//!   not world-readable (`mode & 0o004`), checked on the descriptor that is
//!   then read, so nothing can be swapped in between the check and the read;
//! * a final symlink is followed: Kubernetes secret volumes are symlinks
//!   into a timestamped directory, and systemd's `LoadCredential=` gives
//!   regular files in `$CREDENTIALS_DIRECTORY` (mode 0400, on a private
//!   ramfs), so both work. The checks apply to the file finally opened;
//! * it is opened with `O_NONBLOCK`, so that a FIFO put in its place is
//!   refused instead of blocking the start;
//! * at most a given number of bytes are read ([`MAX_SECRET`] for a
//!   password, token or key);
//! * a password or token loses exactly one trailing newline (`\n` or
//!   `\r\n`), as Prometheus's `credentials_file` does, so `echo pw > file`
//!   works; what is left must not be empty.
//!
//! Errors are one line naming the file (and the line, for a users file),
//! never with the file's content.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest password, token or key file read (bytes).
pub const MAX_SECRET: u64 = 64 << 10;

/// A secret file that cannot be used: one line naming the file.
#[derive(Debug)]
pub struct SecretError {
    path: PathBuf,
    what: String,
}

impl SecretError {
    /// An error about the file at `path`: `what` says what is wrong, in
    /// words that never quote the file.
    pub fn new(path: &Path, what: impl Into<String>) -> SecretError {
        SecretError {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for SecretError {}

/// Reads a protected file whole: a regular file, not world-readable, at
/// most `limit` bytes. The content is returned as it is.
pub fn read_protected(path: &Path, limit: u64) -> Result<Vec<u8>, SecretError> {
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| SecretError::new(path, format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| SecretError::new(path, format!("cannot stat: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(SecretError::new(path, "not a regular file"));
    }
    if meta.mode() & 0o004 != 0 {
        return Err(SecretError::new(
            path,
            format!(
                "is readable by every user (mode {:04o}); make it private first: chmod o-r",
                meta.mode() & 0o7777
            ),
        ));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| SecretError::new(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(SecretError::new(
            path,
            format!("is larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// `secret` without one trailing newline (`\n` or `\r\n`), if it has one.
pub fn strip_one_newline(secret: &[u8]) -> &[u8] {
    secret
        .strip_suffix(b"\r\n")
        .or_else(|| secret.strip_suffix(b"\n"))
        .unwrap_or(secret)
}

/// Reads a password or token file: [`read_protected`], then one trailing
/// newline removed; an empty secret is refused.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let mut bytes = read_protected(path, MAX_SECRET)?;
    let len = strip_one_newline(&bytes).len();
    bytes.truncate(len);
    if bytes.is_empty() {
        return Err(SecretError::new(path, "is empty"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_regular_file_is_read_and_others_are_refused() {
        let dir = std::env::temp_dir().join(format!("rrpc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, b"hunter2\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&path).unwrap(), b"hunter2");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret(&path).unwrap_err().to_string();
        assert!(err.contains("readable by every user"), "{err}");
        assert!(!err.contains("hunter2"), "never the secret: {err}");
        assert!(read_protected(&dir, 10)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
