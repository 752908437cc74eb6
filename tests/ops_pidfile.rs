//! The pid file against real processes: a lock held by another process
//! refuses the start; a file nobody holds the lock of is stale whatever
//! pid it names (a live process, pid 1, a process killed with -9); planted
//! links and aliases are refused, never written through.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use reactor_rpc::ops::pidfile::{Pidfile, PidfileError};

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// A child that lives until its stdin closes.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(
            Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn cat"),
        )
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn creates_in_place_and_removes_on_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reactor-rpc.pid");
    let pidfile = Pidfile::create(&path).expect("create");
    assert_eq!(pidfile.pid(), std::process::id());
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        format!("{}\n", std::process::id())
    );
    // No temporary file beside it: the file is written where it is locked.
    assert_eq!(files_in(dir.path()), ["reactor-rpc.pid"]);
    drop(pidfile);
    assert!(!path.exists());
}

#[test]
fn a_live_process_named_in_an_unlocked_file_does_not_block() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.pid");
    // A live process (pid reuse), and pid 1 (a container's server).
    let other = Sleeper::start();
    for named in [other.0.id(), 1] {
        fs::write(&path, format!("{named}\n")).expect("write");
        let pidfile = Pidfile::create(&path).expect("an unlocked file is stale");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{}\n", std::process::id())
        );
        drop(pidfile);
    }
}

#[test]
fn garbage_and_our_own_pid_are_stale() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.pid");
    let own = format!("{}\n", std::process::id());
    for contents in [
        &b""[..],
        b"not a pid\n",
        b"0\n",
        b"-1\n",
        b"\xff\xfe",
        b"123456789012345678901234567890123456789012345678901234567890\n",
        own.as_bytes(),
    ] {
        fs::write(&path, contents).expect("write");
        let pidfile = Pidfile::create(&path).expect("replaced");
        assert_eq!(fs::read_to_string(&path).expect("read"), own);
        drop(pidfile);
    }
}

/// Set in the child of `a_lock_held_by_another_process_refuses`: the pid file path.
const HOLDER_VAR: &str = "REACTOR_RPC_OPS_PIDFILE_HOLDER";

/// The child: takes the pid file, says so, and holds it until stdin closes
/// (or it is killed).
#[test]
fn pidfile_holder_child() {
    let Some(path) = std::env::var_os(HOLDER_VAR) else {
        return;
    };
    let pidfile = Pidfile::create(Path::new(&path)).expect("the child takes the pid file");
    println!("holder: locked {}", pidfile.pid());
    std::io::stdout().flush().expect("flush");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// A child holding the lock; killed and collected on drop.
struct Holder {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a child holding the lock on `path`; returns it once it holds it.
fn holder(path: &Path) -> Holder {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            crate::support::test_name(module_path!(), "pidfile_holder_child").as_str(),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_VAR, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut holder = Holder { child, stdout: out };
    let mut line = String::new();
    loop {
        line.clear();
        let n = holder.stdout.read_line(&mut line).expect("read");
        assert!(n > 0, "the holder exited");
        if line.contains("holder: locked") {
            return holder;
        }
    }
}

#[test]
fn a_lock_held_by_another_process_refuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.pid");
    let mut holder = holder(&path);
    let child = &mut holder.child;
    let contents = format!("{}\n", child.id());
    assert_eq!(fs::read_to_string(&path).expect("read"), contents);
    match Pidfile::create(&path) {
        Err(PidfileError::AlreadyRunning { pid, .. }) => assert_eq!(pid, Some(child.id())),
        other => panic!("{other:?}"),
    }
    let message = Pidfile::create(&path).expect_err("refused").to_string();
    assert!(
        message.contains("x.pid") && message.contains(&child.id().to_string()),
        "{message}"
    );
    // The refused attempts left the file alone.
    assert_eq!(fs::read_to_string(&path).expect("read"), contents);

    // Killed with -9: the file stays, naming a dead process, but its lock
    // went with the process, so it is stale and taken over.
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert_eq!(fs::read_to_string(&path).expect("read"), contents);
    let pidfile = Pidfile::create(&path).expect("stale file taken over");
    assert_eq!(
        fs::read_to_string(&path).expect("read").trim(),
        std::process::id().to_string()
    );
    drop(pidfile);
}

#[test]
fn a_clean_exit_removes_the_file_and_frees_the_lock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.pid");
    let mut holder = holder(&path);
    let child = &mut holder.child;
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    assert!(!path.exists(), "the holder's file outlived its clean exit");
    drop(Pidfile::create(&path).expect("free"));
}

#[test]
fn drop_leaves_a_file_that_a_successor_took_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.pid");
    // Rewritten in place by someone else.
    let pidfile = Pidfile::create(&path).expect("create");
    fs::write(&path, "1\n").expect("successor");
    drop(pidfile);
    assert_eq!(fs::read_to_string(&path).expect("read"), "1\n");
    // Replaced by another file (same contents: ours, but not the one locked).
    fs::remove_file(&path).expect("rm");
    let pidfile = Pidfile::create(&path).expect("create");
    let other = dir.path().join("other");
    fs::write(&other, format!("{}\n", std::process::id())).expect("write");
    fs::rename(&other, &path).expect("replace");
    drop(pidfile);
    assert!(path.exists(), "removed a file it had not locked");
}

#[test]
fn an_unreadable_path_is_an_io_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A directory where the file should be.
    match Pidfile::create(dir.path()) {
        Err(PidfileError::Io { .. }) => {}
        other => panic!("{other:?}"),
    }
    match Pidfile::create(dir.path().join("missing-dir/x.pid")) {
        Err(PidfileError::Io { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn planted_links_and_aliases_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious\n").expect("write");

    // A symbolic link at the pid file's name, to a file or to nowhere.
    let link = dir.path().join("link.pid");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let e = Pidfile::create(&link).expect_err("refused");
    assert!(
        matches!(e, PidfileError::Unsafe { what, .. } if what.contains("symbolic link")),
        "{e:?}"
    );
    let nowhere = dir.path().join("nowhere");
    let dangling = dir.path().join("dangling.pid");
    std::os::unix::fs::symlink(&nowhere, &dangling).expect("symlink");
    assert!(Pidfile::create(&dangling).is_err());
    assert!(!nowhere.exists(), "a dangling link's target was created");

    // A hard link: the pid file would be another name of the victim.
    let alias = dir.path().join("alias.pid");
    fs::hard_link(&victim, &alias).expect("link");
    let e = Pidfile::create(&alias).expect_err("refused");
    assert!(e.to_string().contains("hard links"), "{e}");

    // A FIFO: refused at once, not waited on.
    let fifo = dir.path().join("fifo.pid");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = Pidfile::create(&fifo).expect_err("refused");
    assert!(e.to_string().contains("not a regular file"), "{e}");

    assert_eq!(fs::read(&victim).expect("victim"), b"precious\n");
    assert!(fs::symlink_metadata(&link).expect("link").is_symlink());
}
