//! A server started by the benchmark itself: `reactor-rpc serve` as a child
//! process on a free port, learnt from its `listening on <addr> (model ...)`
//! log line, and stopped with SIGTERM afterwards.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reactor_rpc::Model;

/// How long a server may take to say it is listening, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running child server; stopped (SIGKILL as a last resort) when dropped.
pub struct Spawned {
    child: Child,
    pub addr: SocketAddr,
    pub model: Model,
}

impl Spawned {
    /// Starts `reactor-rpc serve --model MODEL --addr 127.0.0.1:0 --log-level info EXTRA...`,
    /// the running executable being `reactor-rpc` itself.
    pub fn start(model: Model, extra: &[String]) -> io::Result<Spawned> {
        Spawned::start_exe(&std::env::current_exe()?, model, extra)
    }

    /// Like [`Spawned::start`], with the `reactor-rpc` executable at `exe`.
    pub fn start_exe(exe: &std::path::Path, model: Model, extra: &[String]) -> io::Result<Spawned> {
        let mut child = Command::new(exe)
            .args(["serve", "--model", model.name(), "--addr", "127.0.0.1:0"])
            .args(["--log-level", "info"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr pipe"))?;
        let (tx, rx) = mpsc::channel();
        // Keep reading the log for the server's whole life, or a full pipe would block it.
        std::thread::Builder::new()
            .name("bench-server-log".into())
            .spawn(move || {
                let mut found = false;
                let mut head = Vec::new();
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !found {
                        if let Some(addr) = listening_addr(&line) {
                            found = true;
                            let _ = tx.send(Ok(addr));
                            continue;
                        }
                        head.push(line);
                    } else if line.contains("ERROR") || line.contains("WARN") {
                        eprintln!("server: {line}");
                    }
                }
                if !found {
                    let _ = tx.send(Err(head.join("\n")));
                }
            })?;
        let mut spawned = Spawned {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            model,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addr)) => {
                spawned.addr = addr;
                Ok(spawned)
            }
            Ok(Err(log)) => Err(io::Error::other(format!(
                "the {model} server exited before listening; its log:\n{log}"
            ))),
            Err(_) => Err(io::Error::other(format!(
                "the {model} server did not say `listening on` within {START_TIMEOUT:?}"
            ))),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit; returns how it ended.
    pub fn stop(mut self) -> io::Result<String> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<String> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(format!("had already exited ({status})"));
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.to_string());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        Ok(format!(
            "did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed ({status})"
        ))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop_inner();
        }
    }
}

/// The address in a `... listening on 127.0.0.1:PORT (model reactor)` line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        let line = "12:00:01 [INFO] listening on 127.0.0.1:40123 (model reactor)";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(listening_addr("listening on nothing"), None);
    }
}
