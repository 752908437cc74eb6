//! The machine a figure was measured on, recorded beside the figure.
//!
//! Requests per second mean little without the machine that served them: a
//! sweep from a laptop and one from a 2-core VM are not comparable, and
//! neither are two runs of different commits. So `bench --json` and every
//! file of a sweep carry a [`Machine`]: host name, CPU count and model,
//! kernel release, the git commit of the tree the bench ran in, and the date.
//! `/proc` is read through the project's one reader of it,
//! [`reactor_rpc::ops::procfs`]; what cannot be read is `unknown`, never an
//! error, because a missing label must not lose a benchmark.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use reactor_rpc::ops::procfs;
use serde::Serialize;

/// What stands in for a fact that could not be read.
pub const UNKNOWN: &str = "unknown";

/// The machine and tree a benchmark ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// The host name.
    pub host: String,
    /// CPUs this process may run on (`available_parallelism`: affinity and
    /// cgroup quotas included), 0 if unknown.
    pub cpus: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// `git rev-parse --short HEAD` where the bench ran, with `-dirty` when
    /// tracked files differ from it; `unknown` outside a repository.
    pub commit: String,
    /// When the measurement started, UTC, ISO 8601 (`2026-11-22T09:30:00Z`).
    pub date: String,
}

impl Machine {
    /// Reads this machine, the tree in the current directory, and the time.
    pub fn here() -> Machine {
        let or_unknown = |r: std::io::Result<String>| r.unwrap_or_else(|_| UNKNOWN.to_string());
        Machine {
            host: or_unknown(procfs::hostname()),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: or_unknown(procfs::cpu_model()),
            kernel: or_unknown(procfs::kernel_release()),
            commit: git_commit().unwrap_or_else(|| UNKNOWN.to_string()),
            date: utc_date(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
        }
    }

    /// One line for a person: the subtitle of a chart, a line of a summary.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} CPUs ({}), Linux {}, commit {}, {}",
            self.host, self.cpus, self.cpu_model, self.kernel, self.commit, self.date
        )
    }

    /// The CSV columns [`Machine::csv_fields`] fills, comma-separated.
    pub const CSV_COLUMNS: &'static str = "host,cpus,cpu_model,kernel,commit,date";

    /// The fields for [`Machine::CSV_COLUMNS`], comma-separated; a comma
    /// inside a field (a CPU model may have one) becomes `;`.
    pub fn csv_fields(&self) -> String {
        let clean = |s: &str| s.replace([',', '\n', '\r'], ";");
        format!(
            "{},{},{},{},{},{}",
            clean(&self.host),
            self.cpus,
            clean(&self.cpu_model),
            clean(&self.kernel),
            clean(&self.commit),
            clean(&self.date)
        )
    }
}

/// The short commit of the tree in the current directory, `-dirty` appended
/// when a tracked file differs from it; `None` outside a repository or
/// without git.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).filter(|c| !c.is_empty())?;
    // Untracked files (bench-out/, say) do not make a build differ.
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// `secs` after the Unix epoch as a UTC date and time, ISO 8601.
pub fn utc_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month and day of the `days`th day after 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_date(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(utc_date(1_798_761_600), "2027-01-01T00:00:00Z");
        assert_eq!(utc_date(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn this_machine_is_described() {
        let m = Machine::here();
        assert!(m.cpus >= 1);
        assert_ne!(m.kernel, UNKNOWN);
        assert_ne!(m.host, UNKNOWN);
        assert!(m.date.ends_with('Z') && m.date.len() == 20, "{}", m.date);
        // This crate's tests run inside the repository.
        assert_ne!(m.commit, UNKNOWN);
        let fields = m.csv_fields();
        assert_eq!(
            fields.split(',').count(),
            Machine::CSV_COLUMNS.split(',').count(),
            "{fields}"
        );
        assert!(m.describe().contains(&m.commit));
    }
}
