//! What the operating system says about ourselves: our own CPU time
//! (`getrusage`, all threads), and the open-file limit that caps how many
//! connections fit. A spawned server's CPU time and memory come from `/proc`
//! through the project's one reader of it, `reactor_rpc::ops::procfs`.

use std::time::Duration;

/// CPU time (user + system) of this process, all threads, in microseconds resolution.
pub fn self_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass; all-zero is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
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
    fn our_cpu_time_grows() {
        let start = self_cpu();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(self_cpu() > start);
    }
}
