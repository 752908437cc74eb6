//! What the operating system says about the server and about ourselves: CPU
//! time from `/proc/PID/stat` and `getrusage`, memory from `/proc/PID/status`,
//! and the open-file limit that caps how many connections fit.

use std::io;
use std::time::Duration;

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
/// Its resolution is one clock tick (`sysconf(_SC_CLK_TCK)`, usually 10 ms).
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| bad_data("no ')' in /proc/PID/stat"))?;
    // After the name: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad_data("short /proc/PID/stat"))
    };
    let ticks = field(14)? + field(15)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// CPU time (user + system) of this process, all threads, in microseconds resolution.
pub fn self_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass; all-zero is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident memory of a process: (current `VmRSS`, peak `VmHWM`), in KiB.
pub fn process_rss_kb(pid: u32) -> io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> io::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad_data("no memory figures in /proc/PID/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn bad_data(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Descriptors we keep beyond one per connection (stdio, poll, pipes, files).
pub const SPARE_FDS: u64 = 64;

/// Tries to let this process (and the servers it spawns, which inherit the
/// limit) open `needed` files: raises the soft limit to the hard limit (a
/// spawned server may hold more than one descriptor per connection, so we take
/// all there is), or above it where that is allowed. Returns the soft limit
/// now in force and a sentence for the user when it changed or fell short.
pub fn raise_nofile(needed: u64) -> (u64, Option<String>) {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (0, Some("cannot read the open-file limit".into()));
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if soft >= needed {
        return (soft, None);
    }
    // Above the hard limit needs privileges: try that first, then the hard limit.
    for target in [needed.max(hard), hard] {
        let new = libc::rlimit {
            rlim_cur: target,
            rlim_max: target.max(hard),
        };
        if target > soft && unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            let note = if target >= needed {
                format!("raised the open-file limit from {soft} to {target} (setrlimit)")
            } else {
                format!(
                    "raised the open-file limit from {soft} to the hard limit {target}; \
                     {needed} are needed and raising the hard limit is not allowed here"
                )
            };
            return (target, Some(note));
        }
    }
    (
        soft,
        Some(format!(
            "the open-file limit is {soft} (hard {hard}), {needed} are needed, and raising it is not allowed"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_figures() {
        let pid = std::process::id();
        let start = process_cpu(pid).unwrap();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu(pid).unwrap() >= start);
        assert!(self_cpu() > Duration::ZERO);
        let (rss, peak) = process_rss_kb(pid).unwrap();
        assert!(rss > 0 && peak >= rss);
        assert!(process_cpu(u32::MAX).is_err());
    }
}
