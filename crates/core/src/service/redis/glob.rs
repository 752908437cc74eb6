//! Redis's glob patterns (`KEYS`, `SCAN ... MATCH`, `CONFIG GET`), matched
//! exactly as Redis 7.0's `stringmatchlen` (`util.c`) matches them.
//!
//! Patterns come from the network, so the matcher must never recurse without
//! bound nor take exponential time. Redis's own function recurses once per
//! `*` but, since the fix for CVE-2022-36021, gives up on every outer `*` as
//! soon as an inner `*` has tried every position of the string
//! (`skipLongerMatches`): only the innermost `*` is ever retried. That is the
//! classic single-backtrack-point wildcard algorithm, which this module runs
//! as a loop: O(pattern × string) time, O(1) space, no recursion.
//!
//! Edge cases kept on purpose, because clients see them:
//! * bytes are compared as C's signed `char` in ranges (`[a-\xff]` is an
//!   empty range in Redis: 0xff is -1);
//! * reading past the end of the pattern sees a NUL byte, as the C code
//!   reads the string's terminator;
//! * a `*` matches only a non-empty tail when it is not the last byte, and
//!   `*` against the empty string fails here (Redis's callers special-case a
//!   pattern that is exactly `*`: see [`is_match_all`]);
//! * an unclosed `[` takes the rest of the pattern as its set; `\` escapes
//!   the next byte, inside a set or out;
//! * case folding (`nocase`, used by `CONFIG GET`) folds ASCII only.

/// Whether `pattern` is exactly `*`, which Redis's callers treat as "every
/// key" without matching (so it also matches the empty key).
pub fn is_match_all(pattern: &[u8]) -> bool {
    pattern == b"*"
}

/// C's `tolower` in the C locale on a `char` widened to `int`.
fn lower(c: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// A byte as C's (signed) `char` widened to `int`.
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

/// Redis's `stringmatchlen(pattern, string, nocase)`.
pub fn matches(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    // The pattern byte at `i`, or the C string's NUL terminator past the end.
    let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
    let eq = |a: u8, b: u8| {
        if nocase {
            lower(signed(a)) == lower(signed(b))
        } else {
            a == b
        }
    };
    let (mut p, mut s) = (0usize, 0usize);
    // The innermost `*`: where the pattern resumes after it, and the string
    // position the current attempt started from.
    let mut star: Option<(usize, usize)> = None;
    loop {
        // One attempt from (p, s): the body of Redis's `while (patternLen &&
        // stringLen)` loop. `None` continues, `Some(r)` ends the attempt.
        let ended = 'attempt: loop {
            if p >= pattern.len() || s >= string.len() {
                break 'attempt p >= pattern.len() && s >= string.len();
            }
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && at(p + 1) == b'*' {
                        p += 1;
                    }
                    if pattern.len() - p == 1 {
                        return true;
                    }
                    p += 1;
                    star = Some((p, s));
                    // The rest of the pattern is tried from `s` on.
                    continue 'attempt;
                }
                b'?' => s += 1,
                b'[' => {
                    p += 1;
                    let not = at(p) == b'^';
                    if not {
                        p += 1;
                    }
                    let c = string[s];
                    let mut hit = false;
                    loop {
                        let left = pattern.len().saturating_sub(p);
                        if at(p) == b'\\' && left >= 2 {
                            p += 1;
                            if at(p) == c {
                                hit = true;
                            }
                        } else if at(p) == b']' {
                            break;
                        } else if left == 0 {
                            p -= 1;
                            break;
                        } else if left >= 3 && at(p + 1) == b'-' {
                            let (mut start, mut end) = (signed(at(p)), signed(at(p + 2)));
                            let mut c = signed(c);
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            if nocase {
                                start = lower(start);
                                end = lower(end);
                                c = lower(c);
                            }
                            p += 2;
                            if c >= start && c <= end {
                                hit = true;
                            }
                        } else if eq(at(p), c) {
                            hit = true;
                        }
                        p += 1;
                    }
                    if not {
                        hit = !hit;
                    }
                    if !hit {
                        break 'attempt false;
                    }
                    s += 1;
                }
                b => {
                    let b = if b == b'\\' && pattern.len() - p >= 2 {
                        p += 1;
                        at(p)
                    } else {
                        b
                    };
                    if !eq(b, string[s]) {
                        break 'attempt false;
                    }
                    s += 1;
                }
            }
            p += 1;
            if s == string.len() {
                while at(p) == b'*' {
                    p += 1;
                }
                break 'attempt p >= pattern.len();
            }
        };
        if ended {
            return true;
        }
        // Back to the innermost `*`, one byte further; when it has tried the
        // whole string, no longer match of an outer `*` can help.
        match star {
            Some((after, from)) if from + 1 < string.len() => {
                star = Some((after, from + 1));
                p = after;
                s = from + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        matches(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn the_basics() {
        assert!(m("h?llo", "hello"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "a reversed range is swapped");
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("a*", "a"));
        assert!(m("a*", "abc"));
        assert!(m("*a", "ba"));
        assert!(!m("*a", "ab"));
        assert!(m("**a**", "xa"));
        assert!(m("*b*", "b"));
    }

    #[test]
    fn redis_edge_cases() {
        // `*` against the empty string fails: callers special-case `*`.
        assert!(!m("*", ""));
        assert!(!m("**", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        // An unclosed set takes the rest of the pattern.
        assert!(m("[abc", "b"));
        assert!(m("[a", "a"));
        assert!(!m("[a", "b"));
        assert!(m("[", "x") == matches(b"[", b"x", false));
        // A trailing backslash is a literal backslash.
        assert!(m("a\\", "a\\"));
        // Escapes inside a set.
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-a]", "-"));
        // A range with a high byte is compared as signed char.
        assert!(!matches(b"[a-\xff]", b"b", false));
        assert!(matches(b"[a-\xff]", b"0", false));
        assert!(!matches(b"[\xff-a]", b"b", false));
        assert!(matches(b"[\x80-\xff]", b"\x90", false));
        // Case folding is ASCII only, and only with nocase.
        assert!(matches(b"MAXMEMORY*", b"maxmemory-policy", true));
        assert!(!matches(b"MAXMEMORY*", b"maxmemory-policy", false));
        assert!(matches(b"[A-Z]", b"q", true));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let pattern = format!("{}b", "*a".repeat(100));
        let string = "a".repeat(100_000);
        let started = std::time::Instant::now();
        assert!(!matches(pattern.as_bytes(), string.as_bytes(), false));
        let string = format!("{}b", "a".repeat(50_000));
        assert!(matches(pattern.as_bytes(), string.as_bytes(), false));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
