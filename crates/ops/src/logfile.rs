//! The log file, opened so that a planted link cannot redirect it.
//!
//! The server appends to `--log-file` and reopens it by name on SIGHUP
//! (after logrotate renamed it). Anyone who can write to the log's
//! directory could otherwise put a symbolic link, or a hard link to another
//! file, at that name between two opens and have the server append to
//! whatever it points at, with the server's rights. So, as for the pid file
//! and the snapshot: `O_NOFOLLOW` (a link at the name is refused, never
//! written through), a regular file only (not a FIFO or a device), no other
//! hard link, and a new file created `0640`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for appending, creating it `0640`; refuses a symbolic link,
/// anything but a regular file, and a file with another hard link, each
/// with an error that says which.
pub fn open_append(path: &Path) -> io::Result<File> {
    let refused = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_string());
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        // O_NONBLOCK: opening a FIFO planted at the name must not block.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                refused("it is a symbolic link, which a log is never written through")
            }
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused("it is not a regular file"));
    }
    if meta.nlink() > 1 {
        return Err(refused(
            "it has another hard link, so it may be another file's alias",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn appends_to_a_file_and_refuses_links_and_fifos() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("server.log");
        open_append(&log)
            .expect("create")
            .write_all(b"one\n")
            .expect("write");
        open_append(&log)
            .expect("reopen")
            .write_all(b"two\n")
            .expect("write");
        assert_eq!(std::fs::read(&log).expect("read"), b"one\ntwo\n");
        assert_eq!(std::fs::metadata(&log).expect("meta").mode() & 0o777, 0o640);

        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious\n").expect("write");
        let link = dir.path().join("link.log");
        symlink(&victim, &link).expect("symlink");
        let e = open_append(&link).expect_err("a symlink");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let hard = dir.path().join("hard.log");
        std::fs::hard_link(&victim, &hard).expect("hard link");
        let e = open_append(&hard).expect_err("a hard link");
        assert!(e.to_string().contains("hard link"), "{e}");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious\n");

        let fifo = dir.path().join("fifo.log");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Refused without blocking: with no reader the open itself fails
        // (ENXIO), with one the type check does.
        open_append(&fifo).expect_err("a FIFO");
    }
}
