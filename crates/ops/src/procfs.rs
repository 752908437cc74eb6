//! What `/proc` says about a process: the one reader of it in the project.
//!
//! The metrics port reports this process's figures (`process_*`), the
//! benchmark reads a spawned server's CPU time and memory, and the tests and
//! examples read their own memory. All of them go through here, so the
//! parsing of `/proc/PID/stat` (whose command name may hold spaces and
//! parentheses) is written once. Everything returns an error or `None`
//! rather than panicking: these are the kernel's words, and a process may be
//! gone between two reads.

use std::io;
use std::time::Duration;

/// Which process to read: this one, or another by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// `/proc/self`.
    This,
    /// `/proc/PID`.
    Of(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::This => "/proc/self".to_string(),
            Pid::Of(pid) => format!("/proc/{pid}"),
        }
    }
}

/// The fields of `/proc/PID/stat` that the figures here need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// User CPU time, in clock ticks.
    pub utime: u64,
    /// System CPU time, in clock ticks.
    pub stime: u64,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_proc_stat(stat: &str) -> Option<ProcStat> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; fields are 1-based.
    let fields: Vec<&str> = after.split_whitespace().take(22).collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        rss_pages: field(24)?,
    })
}

/// Parses the `btime` line (boot time, seconds since the epoch) of `/proc/stat`.
pub fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn bad_data(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// `/proc/PID/stat`, parsed.
pub fn stat(pid: Pid) -> io::Result<ProcStat> {
    let text = std::fs::read_to_string(format!("{}/stat", pid.dir()))?;
    parse_proc_stat(&text).ok_or_else(|| bad_data("unexpected /proc/PID/stat"))
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, usually 100).
pub fn clock_ticks() -> u64 {
    sysconf(libc::_SC_CLK_TCK).unwrap_or(100)
}

/// CPU time (user + system) a process has used so far. Its resolution is one
/// clock tick (usually 10 ms).
pub fn cpu_time(pid: Pid) -> io::Result<Duration> {
    let s = stat(pid)?;
    let ticks = s.utime.saturating_add(s.stime);
    Ok(Duration::from_micros(
        ticks.saturating_mul(1_000_000) / clock_ticks(),
    ))
}

/// Resident memory of a process from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kb: u64,
    /// `VmHWM`: the peak resident size, in KiB.
    pub peak_kb: u64,
}

/// Parses the `VmRSS` and `VmHWM` lines of `/proc/PID/status`.
pub fn parse_status_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some(Memory {
        rss_kb: field("VmRSS:")?,
        peak_kb: field("VmHWM:")?,
    })
}

/// A process's resident memory, now and at its peak.
pub fn memory(pid: Pid) -> io::Result<Memory> {
    let status = std::fs::read_to_string(format!("{}/status", pid.dir()))?;
    parse_status_memory(&status).ok_or_else(|| bad_data("no memory figures in /proc/PID/status"))
}

/// Open file descriptors of a process (entries of `/proc/PID/fd`).
pub fn open_fds(pid: Pid) -> io::Result<u64> {
    Ok(std::fs::read_dir(format!("{}/fd", pid.dir()))?
        .filter(|e| e.is_ok())
        .count() as u64)
}

/// The soft limit on open file descriptors of this process (`RLIMIT_NOFILE`).
pub fn max_fds() -> Option<u64> {
    // SAFETY: getrlimit only writes the struct we pass; all-zero is valid.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid resource and a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// The CPU model in `/proc/cpuinfo`: its first `model name` line (x86 and
/// most others), else its `Hardware` or `Processor` line (older ARM kernels).
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "Processor"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim() == *key).then(|| value.trim().to_string())
            })
        })
        .filter(|v| !v.is_empty())
}

/// The machine's CPU model, from `/proc/cpuinfo` (see [`parse_cpu_model`]).
pub fn cpu_model() -> io::Result<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo")?;
    parse_cpu_model(&text).ok_or_else(|| bad_data("no CPU model in /proc/cpuinfo"))
}

/// One line of a `/proc/sys` file, trimmed; an error if it is empty.
fn sys_line(path: &str) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let line = text.trim();
    if line.is_empty() {
        return Err(bad_data("empty /proc/sys file"));
    }
    Ok(line.to_string())
}

/// The kernel release, as `uname -r` prints it (`/proc/sys/kernel/osrelease`).
pub fn kernel_release() -> io::Result<String> {
    sys_line("/proc/sys/kernel/osrelease")
}

/// The host name, as `hostname` prints it (`/proc/sys/kernel/hostname`).
pub fn hostname() -> io::Result<String> {
    sys_line("/proc/sys/kernel/hostname")
}

/// This process's figures for the `process_*` metrics (Linux); each is
/// `None` when it cannot be read, so a scrape leaves it out rather than
/// reporting 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident set size (`process_resident_memory_bytes`).
    pub resident_memory_bytes: Option<u64>,
    /// User plus system CPU time (`process_cpu_seconds_total`).
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors (`process_open_fds`).
    pub open_fds: Option<u64>,
    /// The open file descriptor limit (`process_max_fds`).
    pub max_fds: Option<u64>,
    /// Start time as Unix seconds (`process_start_time_seconds`).
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures; never fails, leaves out what it cannot read.
    pub fn read() -> ProcessStats {
        let stat = stat(Pid::This).ok();
        let ticks = sysconf(libc::_SC_CLK_TCK).map(|t| t as f64);
        let page = sysconf(libc::_SC_PAGESIZE);
        let btime = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_btime(&s));
        ProcessStats {
            resident_memory_bytes: stat.zip(page).map(|(s, p)| s.rss_pages.saturating_mul(p)),
            cpu_seconds: stat
                .zip(ticks)
                .map(|(s, t)| s.utime.saturating_add(s.stime) as f64 / t),
            open_fds: open_fds(Pid::This).ok(),
            max_fds: max_fds(),
            start_time_seconds: stat
                .zip(ticks)
                .zip(btime)
                .map(|((s, t), b)| b as f64 + s.starttime as f64 / t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_hostile_command_name() {
        let line =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 1 0 99 1000 250 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_proc_stat(line).expect("parses");
        assert_eq!(
            (s.utime, s.stime, s.starttime, s.rss_pages),
            (7, 3, 99, 250)
        );
        assert_eq!(parse_proc_stat("no parenthesis"), None);
        assert_eq!(parse_proc_stat("1 (x) S 1 2"), None);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1 2\n"), None);
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(
            parse_status_memory(status),
            Some(Memory {
                rss_kb: 1024,
                peak_kb: 2048
            })
        );
        assert_eq!(parse_status_memory("Name:\tx\n"), None);
    }

    #[test]
    fn parses_the_cpu_model() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n\
                   model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu\n\n\
                   processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            parse_cpu_model(x86).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        let arm = "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\nHardware\t: BCM2835\n";
        assert_eq!(parse_cpu_model(arm).as_deref(), Some("BCM2835"));
        assert_eq!(parse_cpu_model("processor\t: 0\nmodel name\t:\n"), None);
        assert_eq!(parse_cpu_model(""), None);
    }

    #[test]
    fn reads_the_machine() {
        // Every Linux has these two; /proc/cpuinfo's wording varies by
        // architecture, so only its reading is checked.
        let release = kernel_release().expect("the kernel release");
        assert!(
            release.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{release}"
        );
        assert!(!hostname().expect("the host name").contains('\n'));
        assert!(std::fs::read_to_string("/proc/cpuinfo").is_ok());
    }

    #[test]
    fn reads_this_process_and_another() {
        let ours = ProcessStats::read();
        assert!(ours.resident_memory_bytes.is_some_and(|b| b > 0));
        assert!(ours.open_fds.is_some_and(|n| n >= 3));
        assert!(ours.start_time_seconds.is_some_and(|t| t > 1e9));
        let before = cpu_time(Pid::This).expect("our CPU time");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_time(Pid::Of(std::process::id())).expect("by pid") >= before);
        let m = memory(Pid::This).expect("our memory");
        assert!(m.rss_kb > 0 && m.peak_kb >= m.rss_kb);
        assert!(cpu_time(Pid::Of(u32::MAX)).is_err());
        assert!(memory(Pid::Of(u32::MAX)).is_err());
    }
}
