//! The pid file against real processes: a live one refuses, a dead one is
//! replaced, and a process of another user (kill → EPERM) counts as live.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

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

    /// Ends it and collects it, so its pid names nothing (not even a zombie).
    fn end(mut self) -> u32 {
        let pid = self.0.id();
        drop(self.0.stdin.take());
        self.0.wait().expect("wait");
        pid
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn creates_atomically_and_removes_on_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reactor-rpc.pid");
    let pidfile = Pidfile::create(&path).expect("create");
    assert_eq!(pidfile.pid(), std::process::id());
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        format!("{}\n", std::process::id())
    );
    // No temporary file left beside it.
    assert_eq!(files_in(dir.path()), ["reactor-rpc.pid"]);
    drop(pidfile);
    assert!(!path.exists());
}

#[test]
fn a_live_process_is_refused_and_its_file_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.pid");
    let other = Sleeper::start();
    let contents = format!("{}\n", other.0.id());
    fs::write(&path, &contents).expect("write");
    match Pidfile::create(&path) {
        Err(PidfileError::AlreadyRunning { pid, .. }) => assert_eq!(pid, other.0.id()),
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read_to_string(&path).expect("read"), contents);
    let message = Pidfile::create(&path).expect_err("refused").to_string();
    assert!(
        message.contains("x.pid") && message.contains("running"),
        "{message}"
    );

    // Once it is gone, the same file is stale and replaced.
    let dead = other.end();
    let pidfile = Pidfile::create(&path).expect("stale file replaced");
    assert_ne!(pidfile.pid(), dead);
    assert_eq!(
        fs::read_to_string(&path).expect("read").trim(),
        std::process::id().to_string()
    );
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
        own.as_bytes(),
    ] {
        fs::write(&path, contents).expect("write");
        let pidfile = Pidfile::create(&path).expect("replaced");
        assert_eq!(fs::read_to_string(&path).expect("read"), own);
        drop(pidfile);
    }
}

#[test]
fn drop_leaves_a_file_that_a_successor_took_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.pid");
    let pidfile = Pidfile::create(&path).expect("create");
    fs::write(&path, "1\n").expect("successor");
    drop(pidfile);
    assert_eq!(fs::read_to_string(&path).expect("read"), "1\n");
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

/// Set in the child of `another_users_process_counts_as_live`: the pid file path.
const EPERM_CHILD_VAR: &str = "REACTOR_RPC_OPS_PIDFILE_EPERM_CHILD";

/// The child: as an unprivileged user, must be refused by a file naming a
/// root-owned process (kill → EPERM). Prints the verdict.
#[test]
fn pidfile_eperm_child() {
    let Some(path) = std::env::var_os(EPERM_CHILD_VAR) else {
        return;
    };
    match Pidfile::create(Path::new(&path)) {
        Err(PidfileError::AlreadyRunning { pid, .. }) => println!("verdict: refused {pid}"),
        other => println!("verdict: {other:?}"),
    }
}

#[test]
fn another_users_process_counts_as_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = dir.path().join("x.pid");
    // SAFETY: geteuid only reads this process's credentials.
    let root = unsafe { libc::geteuid() } == 0;
    let mut child = Command::new(std::env::current_exe().expect("test binary"));
    child
        .args([
            "--exact",
            crate::support::test_name(module_path!(), "pidfile_eperm_child").as_str(),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EPERM_CHILD_VAR, &path)
        .stdout(Stdio::piped());
    // The child checks a process it may not signal: one of root's, while
    // running as `nobody` (as root it could signal anything).
    let root_owned = root.then(Sleeper::start);
    let named = match &root_owned {
        Some(sleeper) => {
            child.uid(65534).gid(65534);
            sleeper.0.id()
        }
        None => 1, // init: root's, and we are not root
    };
    fs::write(&path, format!("{named}\n")).expect("write");
    let out = child.output().expect("run child");
    assert!(out.status.success(), "{out:?}");
    let verdict = BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("verdict: ").map(|(_, v)| v.to_string()))
        .expect("a verdict");
    assert_eq!(verdict, format!("refused {named}"));
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        format!("{named}\n")
    );
}
