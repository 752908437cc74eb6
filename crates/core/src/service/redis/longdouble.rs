//! `INCRBYFLOAT`'s arithmetic, bit for bit as Redis 7.0 on x86-64 does it.
//!
//! Redis parses both operands with `strtold` into a C `long double` (x87
//! 80-bit extended precision: a 64-bit mantissa with an explicit integer
//! bit), adds them in that format, and prints the sum with `%.17Lf`, then
//! strips trailing zeros and a trailing dot (`ld2string(..., LD_STR_HUMAN)`).
//! That is why `0.1 + 0.2` reads `0.3` in Redis, not `0.30000000000000004`
//! as a `f64` would print. Rust has no `long double`, so this module does the
//! same exactly with big integers: a decimal (or hex) string is rounded
//! once, to nearest with ties to even, to the 64-bit-mantissa format (with
//! its exponent range and subnormals); the sum of two such values is exact
//! as a big integer and rounded once the same way; and the printing is the
//! exact decimal expansion of the binary value rounded at 17 decimals, as
//! glibc's `printf` does. No floating-point hardware is involved, so the
//! result is the same on every platform.

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Signed, Zero};

/// The exponent of the mantissa's last bit of the smallest value (a
/// subnormal): 2^-16445.
const MIN_EXP: i64 = -16445;
/// The largest exponent of the mantissa's last bit: the largest finite value
/// is (2^64 - 1) * 2^16320.
const MAX_EXP: i64 = 16320;
/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer input is not a number.
const MAX_CHARS: usize = 5 * 1024;

/// An x87 extended value: `±mant × 2^exp`, or an infinity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LongDouble {
    /// A finite value (zero when `mant` is 0).
    Finite {
        /// The sign.
        negative: bool,
        /// The mantissa, below 2^64.
        mant: u64,
        /// The power of two of its last bit.
        exp: i64,
    },
    /// ±infinity.
    Infinite {
        /// The sign.
        negative: bool,
    },
}

/// Rounds `num / den` (both positive, `num` may be 0) to the format:
/// `None` if it overflows to infinity.
fn round_ratio(num: &BigUint, den: &BigUint) -> Option<(u64, i64)> {
    if num.is_zero() {
        return Some((0, 0));
    }
    // Aim for a quotient of 64 bits: num / den × 2^-e in [2^63, 2^64).
    let mut e = i64::try_from(num.bits()).unwrap_or(i64::MAX)
        - i64::try_from(den.bits()).unwrap_or(i64::MAX)
        - 64;
    let scaled = |e: i64| -> (BigUint, BigUint, BigUint) {
        let (n, d) = if e >= 0 {
            (num.clone(), den << (e as u64))
        } else {
            (num << (e.unsigned_abs()), den.clone())
        };
        let q = &n / &d;
        let twice_r = (n - &q * &d) * 2u32;
        (q, twice_r, d)
    };
    let (mut q, mut twice_r, mut d) = scaled(e);
    if q.bits() > 64 {
        e += 1;
        (q, twice_r, d) = scaled(e);
    } else if q.bits() < 64 {
        e -= 1;
        (q, twice_r, d) = scaled(e);
    }
    if e < MIN_EXP {
        e = MIN_EXP;
        (q, twice_r, d) = scaled(e);
    }
    // Ties to even.
    let round_up = match twice_r.cmp(&d) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => q.bit(0),
        std::cmp::Ordering::Less => false,
    };
    if round_up {
        q += 1u32;
        if q.bits() > 64 {
            q >>= 1u32;
            e += 1;
        }
    }
    if e > MAX_EXP {
        return None;
    }
    let mant = q.iter_u64_digits().next().unwrap_or(0);
    Some((mant, e))
}

impl LongDouble {
    /// Zero.
    pub const ZERO: LongDouble = LongDouble::Finite {
        negative: false,
        mant: 0,
        exp: 0,
    };

    fn finite(negative: bool, num: &BigUint, den: &BigUint) -> Option<LongDouble> {
        match round_ratio(num, den) {
            Some((mant, exp)) => Some(LongDouble::Finite {
                negative,
                mant,
                exp,
            }),
            None => Some(LongDouble::Infinite { negative }),
        }
    }

    /// Parses as Redis's `string2ld` does: `strtold` must take the whole
    /// string, which must not start with a blank; NaN, overflow and an
    /// underflow to zero are refused. `None` for anything refused.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= MAX_CHARS {
            return None;
        }
        let (negative, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = body.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(LongDouble::Infinite { negative });
        }
        let parsed = if lower.starts_with(b"0x") {
            parse_hex(negative, &body[2..])
        } else {
            parse_decimal(negative, body)
        }?;
        match parsed {
            // strtold's ERANGE on overflow: refused.
            LongDouble::Infinite { .. } => None,
            v => Some(v),
        }
    }

    fn is_zero(&self) -> bool {
        matches!(self, LongDouble::Finite { mant: 0, .. })
    }

    /// The exact sum, rounded once; `None` for NaN (∞ − ∞).
    pub fn add(&self, other: &LongDouble) -> Option<LongDouble> {
        use LongDouble::{Finite, Infinite};
        match (self, other) {
            (Infinite { negative: a }, Infinite { negative: b }) if a != b => None,
            (Infinite { negative }, _) | (_, Infinite { negative }) => Some(Infinite {
                negative: *negative,
            }),
            (
                Finite {
                    negative: na,
                    mant: ma,
                    exp: ea,
                },
                Finite {
                    negative: nb,
                    mant: mb,
                    exp: eb,
                },
            ) => {
                if self.is_zero() && other.is_zero() {
                    // -0 + -0 is -0; any other pair of zeros is +0.
                    return Some(Finite {
                        negative: *na && *nb,
                        mant: 0,
                        exp: 0,
                    });
                }
                let low = (*ea).min(*eb);
                let term = |neg: bool, m: u64, e: i64| {
                    let v = BigInt::from(m) << ((e - low) as u64);
                    if neg {
                        -v
                    } else {
                        v
                    }
                };
                let sum = term(*na, *ma, *ea) + term(*nb, *mb, *eb);
                if sum.is_zero() {
                    return Some(LongDouble::ZERO);
                }
                let negative = sum.sign() == Sign::Minus;
                let magnitude = sum.abs().magnitude().clone();
                let (num, den) = if low >= 0 {
                    (magnitude << (low as u64), BigUint::one())
                } else {
                    (magnitude, BigUint::one() << low.unsigned_abs())
                };
                LongDouble::finite(negative, &num, &den)
            }
        }
    }

    /// Whether this is an infinity.
    pub fn is_infinite(&self) -> bool {
        matches!(self, LongDouble::Infinite { .. })
    }

    /// `%.17Lf`, then trailing zeros and dot stripped, and `-0` read as `0`:
    /// Redis's `ld2string(..., LD_STR_HUMAN)`. `None` for an infinity.
    pub fn to_human(&self) -> Option<String> {
        let LongDouble::Finite {
            negative,
            mant,
            exp,
        } = self
        else {
            return None;
        };
        let scale = BigUint::from(10u32).pow(17);
        let m = BigUint::from(*mant);
        // value × 10^17, rounded to an integer, ties to even.
        let fixed = if *exp >= 0 {
            (m << (*exp as u64)) * scale
        } else {
            let num = m * scale;
            let den = BigUint::one() << exp.unsigned_abs();
            let q = &num / &den;
            let twice_r = (num - &q * &den) * 2u32;
            match twice_r.cmp(&den) {
                std::cmp::Ordering::Greater => q + 1u32,
                std::cmp::Ordering::Equal if q.bit(0) => q + 1u32,
                _ => q,
            }
        };
        let digits = fixed.to_str_radix(10);
        let digits = format!("{digits:0>18}");
        let (int, frac) = digits.split_at(digits.len() - 17);
        let mut text = String::with_capacity(digits.len() + 2);
        if *negative {
            text.push('-');
        }
        text.push_str(int);
        text.push('.');
        text.push_str(frac);
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
        if text == "-0" {
            text = "0".into();
        }
        Some(text)
    }
}

fn digit_value(b: u8, radix: u32) -> Option<u32> {
    char::from(b).to_digit(radix)
}

/// Digits with an optional point: the digits as an integer, the count after
/// the point, and the bytes left; `None` if there is no digit at all.
fn mantissa_digits(s: &[u8], radix: u32) -> Option<(BigUint, i64, &[u8])> {
    let mut value = BigUint::zero();
    let mut any = false;
    let mut after_point = 0i64;
    let mut seen_point = false;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = digit_value(b, radix) {
            value = value * radix + d;
            any = true;
            if seen_point {
                after_point += 1;
            }
        } else {
            break;
        }
        i += 1;
    }
    any.then_some((value, after_point, &s[i..]))
}

/// An exponent `[+-]digits` that takes the whole of `s`; clamped far beyond
/// any finite value, so that huge exponents cost nothing.
fn exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = (n * 10 + i64::from(d - b'0')).min(1 << 40);
    }
    Some(if neg { -n } else { n })
}

fn parse_decimal(negative: bool, s: &[u8]) -> Option<LongDouble> {
    let (digits, after_point, rest) = mantissa_digits(s, 10)?;
    let exp10 = match rest {
        [] => 0,
        [b'e' | b'E', e @ ..] => exponent(e)?,
        _ => return None,
    };
    if digits.is_zero() {
        return Some(LongDouble::Finite {
            negative,
            mant: 0,
            exp: 0,
        });
    }
    let e = exp10 - after_point;
    // Order of magnitude: digits × 10^e is about 10^(len + e).
    let len = i64::try_from(digits.to_str_radix(10).len()).unwrap_or(i64::MAX);
    if len + e > 4940 {
        return Some(LongDouble::Infinite { negative });
    }
    if len + e < -4960 {
        return None; // underflows to zero: ERANGE, refused
    }
    let ten = BigUint::from(10u32);
    let (num, den) = if e >= 0 {
        (digits * ten.pow(e as u32), BigUint::one())
    } else {
        (digits, ten.pow(e.unsigned_abs() as u32))
    };
    let v = LongDouble::finite(negative, &num, &den)?;
    if v.is_zero() {
        return None; // underflow to zero
    }
    Some(v)
}

fn parse_hex(negative: bool, s: &[u8]) -> Option<LongDouble> {
    let (digits, after_point, rest) = mantissa_digits(s, 16)?;
    let exp2 = match rest {
        [] => 0,
        [b'p' | b'P', e @ ..] => exponent(e)?,
        _ => return None,
    };
    if digits.is_zero() {
        return Some(LongDouble::Finite {
            negative,
            mant: 0,
            exp: 0,
        });
    }
    let e = exp2 - 4 * after_point;
    let bits = i64::try_from(digits.bits()).unwrap_or(i64::MAX);
    if bits + e > MAX_EXP + 70 {
        return Some(LongDouble::Infinite { negative });
    }
    if bits + e < MIN_EXP - 10 {
        return None;
    }
    let (num, den) = if e >= 0 {
        (digits << (e as u64), BigUint::one())
    } else {
        (digits, BigUint::one() << e.unsigned_abs())
    };
    let v = LongDouble::finite(negative, &num, &den)?;
    if v.is_zero() {
        return None;
    }
    Some(v)
}

/// `INCRBYFLOAT`'s sum of the stored text and the increment, as the text
/// Redis stores and replies: `Err` with Redis's message.
pub fn incr_by_float(current: &[u8], by: &[u8]) -> Result<String, &'static [u8]> {
    const NOT_FLOAT: &[u8] = b"ERR value is not a valid float";
    let value = LongDouble::parse(current).ok_or(NOT_FLOAT)?;
    let incr = LongDouble::parse(by).ok_or(NOT_FLOAT)?;
    let sum = value
        .add(&incr)
        .filter(|v| !v.is_infinite())
        .ok_or(&b"ERR increment would produce NaN or Infinity"[..])?;
    sum.to_human()
        .ok_or(&b"ERR increment would produce NaN or Infinity"[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> String {
        match incr_by_float(a.as_bytes(), b.as_bytes()) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e).into_owned(),
        }
    }

    #[test]
    fn redis_documented_examples() {
        assert_eq!(add("10.50", "0.1"), "10.6");
        assert_eq!(add("5.0e3", "2.0e2"), "5200");
        assert_eq!(add("0.1", "0.2"), "0.3");
        assert_eq!(add("0", "3.0e3"), "3000");
        assert_eq!(add("10", "-10"), "0");
        assert_eq!(add("-1", "0.5"), "-0.5");
    }

    #[test]
    fn long_double_precision_shows() {
        // 17 decimals of an x87 value, not of a double.
        assert_eq!(add("0", "1.1"), "1.1");
        assert_eq!(add("0", "0.00000000000000001"), "0.00000000000000001");
        assert_eq!(add("0", "0.000000000000000001"), "0");
        assert_eq!(add("0", "-0.000000000000000001"), "0");
        // 1e20 + 1 needs 67 bits: rounded away, as in Redis.
        assert_eq!(add("1e20", "1"), "100000000000000000000");
        assert_eq!(add("1e18", "1"), "1000000000000000001");
        assert_eq!(add("0", "3.3333333333333333333"), "3.33333333333333333");
        assert_eq!(add("0", "0x1p-2"), "0.25");
    }

    #[test]
    fn refusals_and_errors() {
        let nf = "ERR value is not a valid float";
        assert_eq!(add("abc", "1"), nf);
        assert_eq!(add("1", " 1"), nf);
        assert_eq!(add("1", "1 "), nf);
        assert_eq!(add("1", ""), nf);
        assert_eq!(add("1", "nan"), nf);
        assert_eq!(add("1", "1e99999"), nf);
        assert_eq!(add("1", "1e-99999"), nf);
        assert_eq!(add("1", "0e-99999"), "1");
        assert_eq!(add("1", "1e"), nf);
        assert_eq!(add("1", "."), nf);
        assert_eq!(add("1", ".5"), "1.5");
        assert_eq!(add("1", "5."), "6");
        let inf = "ERR increment would produce NaN or Infinity";
        assert_eq!(add("1", "inf"), inf);
        assert_eq!(add("-inf", "inf"), inf);
        assert_eq!(add("1e4932", "1e4932"), inf);
    }

    #[test]
    fn extremes_print_exactly() {
        let big = add("0", "1e4000");
        assert!(big.starts_with("9999999999999999999") || big.starts_with("1000000000000000000"));
        assert!(!big.contains('.'));
        assert_eq!(add("0", "1e-4950"), "0");
    }
}
