//! Logging for the binary: simplelog behind the `log` macros, with RFC 3339
//! UTC timestamps, to stderr or to a file that SIGHUP reopens (for logrotate).

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use log::LevelFilter;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode, WriteLogger};

/// The log file, shared by the logger and whoever reopens it.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(append(path)?)),
        })
    }

    /// Reopens the file by name, so that after logrotate renamed it the log
    /// goes on in a new file at the configured path.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = append(&self.path)?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// The log file at `path`, for appending: a symbolic link, a hard link or a
/// FIFO planted at the name is refused (`ops::logfile`).
fn append(path: &Path) -> io::Result<File> {
    reactor_rpc::ops::logfile::open_append(path)
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// Sets up the logger; returns the log file when there is one.
pub fn init(level: &str, file: Option<&Path>) -> Result<Option<LogFile>, String> {
    let level: LevelFilter = level
        .parse()
        .map_err(|_| format!("bad log level {level:?}"))?;
    let config = ConfigBuilder::new()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_time_format_rfc3339() // in UTC, simplelog's default offset
        .build();
    match file {
        Some(path) => {
            let log = LogFile::open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            WriteLogger::init(level, config, log.clone()).map_err(|e| e.to_string())?;
            Ok(Some(log))
        }
        None => {
            let color = if io::stderr().is_terminal() {
                ColorChoice::Auto
            } else {
                ColorChoice::Never
            };
            TermLogger::init(level, config, TerminalMode::Stderr, color)
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
    }
}
