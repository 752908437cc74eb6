//! Reading secrets from files: a password, a users file, a metrics token, a
//! TLS private key.
//!
//! A secret is never a command-line value of the server (where `ps` shows
//! it) and never appears in a log line or an error message; it comes from a
//! file that only the server's user may read. Every such file is read by
//! [`reactor_rpc_tls::secret_file`] (the TLS key too), with the same rules:
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
//! * at most [`MAX_SECRET`] (or [`MAX_USERS_FILE`]) bytes are read;
//! * a password or token loses exactly one trailing newline (`\n` or
//!   `\r\n`), as Prometheus's `credentials_file` does, so `echo pw > file`
//!   works; what is left must not be empty.
//!
//! Errors are one line naming the file (and the line, for a users file),
//! never with the file's content.

use std::path::Path;

use reactor_rpc_core::service::auth::{BearerToken, Users};
pub use reactor_rpc_tls::secret_file::{
    read_protected, read_secret, strip_one_newline, SecretError, MAX_SECRET,
};

/// Largest users file read (bytes): 10 000 users of about 100 bytes each.
pub const MAX_USERS_FILE: u64 = 4 << 20;

/// Reads and parses a users file (`NAME sha256:HEX ROLE` per line; see
/// [`Users::parse`]). A bad line is reported with its number.
pub fn read_users_file(path: &Path) -> Result<Users, SecretError> {
    let bytes = read_protected(path, MAX_USERS_FILE)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        SecretError::new(path, format!("line {line}: not UTF-8"))
    })?;
    Users::parse(text).map_err(|e| SecretError::new(path, e.to_string()))
}

/// Reads the metrics port's bearer token (`--metrics-token-file`).
pub fn read_token_file(path: &Path) -> Result<BearerToken, SecretError> {
    let token = read_secret(path)?;
    if token.iter().any(|b| !b.is_ascii_graphic()) {
        // An HTTP header cannot carry it as sent; say so now, not at the
        // first scrape's 401.
        return Err(SecretError::new(
            path,
            "the token must be printable ASCII without blanks (it travels in an HTTP header)",
        ));
    }
    Ok(BearerToken::new(&token))
}

/// The users a server authenticates: those of `users_file`, plus `default`
/// when a requirepass password is given. Neither: no users
/// (authentication off). Both naming `default`: refused, naming the users
/// file's line (see `service::auth`).
pub fn load_users(
    users_file: Option<&Path>,
    requirepass: Option<&[u8]>,
) -> Result<Users, SecretError> {
    let users = match users_file {
        Some(path) => read_users_file(path)?,
        None => Users::none(),
    };
    match requirepass {
        // Only a users file can define `default` already.
        Some(password) => users.with_requirepass(password).map_err(|e| {
            SecretError::new(
                users_file.unwrap_or(Path::new("--users-file")),
                e.to_string(),
            )
        }),
        None => Ok(users),
    }
}

/// Takes a secret out of the environment variable `name`: read, its bytes
/// overwritten with NULs where they lie, then the variable removed. No
/// thread or child process started later sees it, and `/proc/PID/environ`
/// (which reads the process's initial environment from its memory) shows
/// zeros in its place. `None` if the variable is not set.
///
/// Must be called before the process starts any other thread: the
/// environment is not synchronised.
pub fn take_env_secret(name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    let value = std::env::var_os(name)?;
    if let Ok(c_name) = std::ffi::CString::new(name) {
        // SAFETY: no other thread runs yet (this function's contract), so
        // nothing reads or changes the environment meanwhile. getenv returns
        // a pointer to the value's NUL-terminated bytes in the environment
        // block, which this process owns and may write; strlen stays within
        // them, and so does writing that many bytes from the pointer.
        unsafe {
            let value = libc::getenv(c_name.as_ptr());
            if !value.is_null() {
                let len = libc::strlen(value);
                std::ptr::write_bytes(value, 0, len);
            }
        }
    }
    std::env::remove_var(name);
    Some(value.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_rpc_core::service::auth::hash_password;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn one_trailing_newline_is_not_part_of_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        for (content, want) in [
            (&b"pw\n"[..], &b"pw"[..]),
            (b"pw\r\n", b"pw"),
            (b"pw", b"pw"),
            (b"pw\n\n", b"pw\n"),
            (b"pw \n", b"pw "),
            (b" pw\r\n\r\n", b" pw\r\n"),
        ] {
            let path = write(dir.path(), "pw", content, 0o600);
            assert_eq!(read_secret(&path).unwrap(), want, "{content:?}");
        }
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for content in [&b""[..], b"\n", b"\r\n"] {
            let path = write(dir.path(), "pw", content, 0o600);
            let err = read_secret(&path).unwrap_err().to_string();
            assert_eq!(err, format!("{}: is empty", path.display()));
        }
    }

    #[test]
    fn a_world_readable_file_is_refused_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "pw", b"hunter2\n", 0o644);
        let err = read_secret(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("readable by every user (mode 0644)"), "{err}");
        assert!(!err.contains("hunter2"));
        // Group-readable is the operator's choice (a group of services).
        let path = write(dir.path(), "pw2", b"hunter2\n", 0o640);
        assert_eq!(read_secret(&path).unwrap(), b"hunter2");
    }

    #[test]
    fn only_regular_files_are_read_and_a_fifo_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_secret(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with("not a regular file"), "{err}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; the result is checked.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_secret(&fifo).unwrap_err().to_string();
        assert!(err.ends_with("not a regular file"), "{err}");
        let err = read_secret(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
        assert_eq!(
            read_secret(&dir.path().join("x")).unwrap_err().path(),
            dir.path().join("x")
        );
    }

    #[test]
    fn a_symlink_is_followed_and_the_target_checked() {
        // Kubernetes secret volumes are symlinks; the target is what counts.
        let dir = tempfile::tempdir().unwrap();
        let target = write(dir.path(), "real", b"pw\n", 0o400);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_secret(&link).unwrap(), b"pw");
        let open = write(dir.path(), "open", b"pw\n", 0o604);
        let link2 = dir.path().join("link2");
        std::os::unix::fs::symlink(&open, &link2).unwrap();
        assert!(read_secret(&link2).is_err());
    }

    #[test]
    fn a_huge_file_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "big",
            &vec![b'a'; MAX_SECRET as usize + 1],
            0o600,
        );
        let err = read_secret(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!("is larger than {MAX_SECRET} bytes")),
            "{err}"
        );
    }

    #[test]
    fn a_users_file_error_names_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let h = hash_password(b"pw");
        let path = write(
            dir.path(),
            "users",
            format!("# ops\nalice {h} admin\nbob {h} superuser\n").as_bytes(),
            0o600,
        );
        let err = read_users_file(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: line 3: the role must be read, write or admin",
                path.display()
            )
        );
        let path = write(dir.path(), "bin", b"alice x read\n\xff\n", 0o600);
        let err = read_users_file(&path).unwrap_err().to_string();
        assert!(err.ends_with(": line 2: not UTF-8"), "{err}");
        let path = write(
            dir.path(),
            "open",
            format!("alice {h} admin\n").as_bytes(),
            0o666,
        );
        assert!(read_users_file(&path).is_err());
        let path = write(
            dir.path(),
            "ok",
            format!("alice {h} admin\n").as_bytes(),
            0o600,
        );
        assert_eq!(read_users_file(&path).unwrap().names(), ["alice"]);
    }

    #[test]
    fn users_and_requirepass_combine_unless_both_set_default() {
        let dir = tempfile::tempdir().unwrap();
        let h = hash_password(b"pw");
        let file = write(
            dir.path(),
            "u",
            format!("alice {h} read\n").as_bytes(),
            0o600,
        );
        assert!(load_users(None, None).unwrap().is_empty());
        assert_eq!(load_users(None, Some(b"rp")).unwrap().names(), ["default"]);
        assert_eq!(
            load_users(Some(&file), Some(b"rp")).unwrap().names(),
            ["alice", "default"]
        );
        let both = write(
            dir.path(),
            "d",
            format!("default {h} read\n").as_bytes(),
            0o600,
        );
        let err = load_users(Some(&both), Some(b"rp"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}: line 1 defines user default", both.display())),
            "{err}"
        );
    }

    #[test]
    fn a_token_must_fit_an_http_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "t", b"abc.DEF-123_~+/=\n", 0o600);
        assert!(read_token_file(&path).unwrap().matches(b"abc.DEF-123_~+/="));
        let path = write(dir.path(), "t2", b"two words\n", 0o600);
        let err = read_token_file(&path).unwrap_err().to_string();
        assert!(!err.contains("two words"), "{err}");
    }
}
