//! What the cache stores, and how each protocol reads it back.
//!
//! One keyspace serves two front ends: the JSON protocol and RESP (the Redis
//! protocol). A value remembers how it arrived, so that each protocol reads it
//! back in the form that round-trips, and both share these conversions rather
//! than each inventing its own:
//!
//! | stored | JSON `get` | RESP read | `incr` |
//! |---|---|---|---|
//! | `Int(n)` (from `incr`, or a JSON integer) | `n` | the digits of `n` | adds |
//! | `Raw(bytes)` (RESP `SET`) | a JSON string when UTF-8, else `wrong_type` | the bytes | the bytes as a decimal integer (Redis rules) |
//! | `Json(text)` (JSON `set`) | the text, verbatim | a string's content, unescaped; any other value's text | an integral number, or a string holding a decimal integer |

use std::borrow::Cow;
use std::num::IntErrorKind;

use bytes::Bytes;

use super::CacheError;
use reactor_rpc_protocol::message::{write_int, write_json_str};

/// A stored value, owned. Cloning a large value costs a reference count (see
/// [`Cache::get`](super::Cache::get)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer: what `incr` leaves, and what a JSON `set` of an integer stores.
    Int(i64),
    /// Arbitrary bytes, as RESP sets them.
    Raw(Bytes),
    /// The exact text of one JSON value, as a JSON `set` sent it (a string keeps
    /// its quotes and escapes). The cache does not re-validate it: whoever builds
    /// a `Json` value promises the text is one valid JSON value.
    Json(Bytes),
}

/// A stored value, borrowed: what [`Cache::get_with`](super::Cache::get_with)
/// shows without copying, and what [`Cache::set_ref`](super::Cache::set_ref)
/// stores without an intermediate allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// An integer.
    Int(i64),
    /// Bytes set over RESP.
    Raw(&'a [u8]),
    /// JSON text set over the JSON protocol.
    Json(&'a [u8]),
}

impl Value {
    /// The value a JSON `set` stores for `text` (one valid JSON value): an
    /// integer literal in canonical form becomes `Int`, so `incr` needs no
    /// parsing and `get` still returns the same digits; anything else is kept verbatim.
    pub fn from_json(text: &str) -> Value {
        ValueRef::from_json(text).to_owned()
    }

    /// The value borrowed.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Int(n) => ValueRef::Int(*n),
            Value::Raw(b) => ValueRef::Raw(b),
            Value::Json(b) => ValueRef::Json(b),
        }
    }

    /// Appends the value as JSON (see [`ValueRef::write_json`]).
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), CacheError> {
        self.as_ref().write_json(out)
    }

    /// The bytes a RESP read replies with (see [`ValueRef::resp_bytes`]), sharing
    /// the stored bytes rather than copying them wherever the two are the same.
    pub fn to_resp(&self) -> Bytes {
        match self {
            Value::Int(n) => Bytes::from(n.to_string()),
            Value::Raw(b) => b.clone(),
            Value::Json(b) => match json_string_content(b) {
                Some(Cow::Borrowed(inner)) => b.slice_ref(inner),
                Some(Cow::Owned(unescaped)) => Bytes::from(unescaped),
                None => b.clone(),
            },
        }
    }

    /// The value as an integer, as `incr` reads it (see [`ValueRef::to_i64`]).
    pub fn to_i64(&self) -> Result<i64, CacheError> {
        self.as_ref().to_i64()
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl<'a> ValueRef<'a> {
    /// Borrowed form of [`Value::from_json`].
    pub fn from_json(text: &'a str) -> ValueRef<'a> {
        match canonical_int(text.as_bytes()) {
            Some(n) => ValueRef::Int(n),
            None => ValueRef::Json(text.as_bytes()),
        }
    }

    /// Copies the value into an owned [`Value`].
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Int(n) => Value::Int(n),
            ValueRef::Raw(b) => Value::Raw(Bytes::copy_from_slice(b)),
            ValueRef::Json(b) => Value::Json(Bytes::copy_from_slice(b)),
        }
    }

    /// Appends the value as one JSON value, as the JSON `get` returns it: an
    /// integer's digits, stored JSON verbatim, raw bytes as a JSON string. Raw
    /// bytes that are not UTF-8 have no JSON form: [`CacheError::WrongType`],
    /// and nothing is written.
    pub fn write_json(self, out: &mut Vec<u8>) -> Result<(), CacheError> {
        match self {
            ValueRef::Int(n) => write_int(out, n),
            ValueRef::Json(text) => out.extend_from_slice(text),
            ValueRef::Raw(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(|_| CacheError::WrongType)?;
                write_json_str(out, text);
            }
        }
        Ok(())
    }

    /// The bytes a RESP read (`GET`) replies with: an integer's digits, raw bytes
    /// verbatim, and for stored JSON the content of a string (a JSON `set` of
    /// `"abc"` reads as `abc`) or the text of any other value (`[1,2]` reads as
    /// `[1,2]`). A string whose escapes spell a lone UTF-16 surrogate cannot be
    /// unescaped to UTF-8 and reads as its JSON text.
    pub fn resp_bytes(self) -> Cow<'a, [u8]> {
        match self {
            ValueRef::Int(n) => Cow::Owned(n.to_string().into_bytes()),
            ValueRef::Raw(bytes) => Cow::Borrowed(bytes),
            ValueRef::Json(text) => json_string_content(text).unwrap_or(Cow::Borrowed(text)),
        }
    }

    /// The value as an integer, for `incr` (both protocols):
    /// * `Int`: itself;
    /// * `Raw`: a decimal integer by Redis's rules (optional `-`, no `+`, no
    ///   leading zeros, no spaces);
    /// * `Json`: a number with an integral value (`42`, also `4.2e1`), or a
    ///   string whose content is a decimal integer by the same rules as `Raw`.
    ///
    /// An integer beyond 64-bit signed range is [`CacheError::OutOfRange`];
    /// anything else is [`CacheError::NotInteger`].
    pub fn to_i64(self) -> Result<i64, CacheError> {
        match self {
            ValueRef::Int(n) => Ok(n),
            ValueRef::Raw(bytes) => decimal_i64(bytes),
            ValueRef::Json(text) => match text.first() {
                Some(b'"') => match json_string_content(text) {
                    Some(content) => decimal_i64(&content),
                    None => Err(CacheError::NotInteger),
                },
                Some(b'-' | b'0'..=b'9') => json_number_i64(text),
                _ => Err(CacheError::NotInteger),
            },
        }
    }
}

/// `text` as an `i64` if it is exactly how that integer is written
/// (`-?(0|[1-9][0-9]*)`, not `-0`), so that storing the integer loses nothing.
fn canonical_int(text: &[u8]) -> Option<i64> {
    decimal_i64(text).ok()
}

/// A decimal integer by Redis's `string2ll` rules: an optional `-`, then `0`
/// alone or digits not starting with `0` (so no `+`, no spaces, no `-0`).
fn decimal_i64(bytes: &[u8]) -> Result<i64, CacheError> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let well_formed = match digits {
        [b'0'] => digits.len() == bytes.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !well_formed {
        return Err(CacheError::NotInteger);
    }
    // Only ASCII digits and a sign: always UTF-8, and any failure is overflow.
    let text = std::str::from_utf8(bytes).map_err(|_| CacheError::NotInteger)?;
    text.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => CacheError::OutOfRange,
        _ => CacheError::NotInteger,
    })
}

/// A JSON number as an `i64`, computed exactly from its digits (no `f64` on the
/// way, so `9007199254740993` stays itself): `4.2e1` is 42, `1e30` is an
/// integer out of range, `1.5` is not an integer.
fn json_number_i64(text: &[u8]) -> Result<i64, CacheError> {
    let (negative, unsigned) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.iter().position(|&b| b == b'e' || b == b'E') {
        Some(e) => (&unsigned[..e], exponent_value(&unsigned[e + 1..])?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&b| b == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, &[][..]),
    };
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(CacheError::NotInteger);
    }
    // The significant digits run from the first to the last non-zero one; the
    // value is significant × 10^scale.
    let digits = || int_part.iter().chain(frac_part);
    let Some(first) = digits().position(|&d| d != b'0') else {
        return Ok(0); // 0, -0.0, 0e99: all zero
    };
    let trailing_zeros = digits().rev().position(|&d| d != b'0').unwrap_or(0);
    let significant = int_part.len() + frac_part.len() - first - trailing_zeros;
    let scale = exponent
        .saturating_sub(frac_part.len() as i64)
        .saturating_add(trailing_zeros as i64);
    if scale < 0 {
        return Err(CacheError::NotInteger); // a non-zero digit below the units
    }
    // i64::MAX has 19 digits; anything with more is out of range.
    if scale.saturating_add(significant as i64) > 19 {
        return Err(CacheError::OutOfRange);
    }
    let mut magnitude: u128 = 0;
    for &d in digits().skip(first).take(significant) {
        magnitude = magnitude * 10 + u128::from(d - b'0');
    }
    magnitude *= 10u128.pow(scale as u32);
    let n = if negative {
        0i128 - magnitude as i128
    } else {
        magnitude as i128
    };
    i64::try_from(n).map_err(|_| CacheError::OutOfRange)
}

/// The exponent of a JSON number, clamped far beyond anything that matters
/// (an exponent of a billion already means "out of range" or "not an integer").
fn exponent_value(text: &[u8]) -> Result<i64, CacheError> {
    const CLAMP: i64 = 1_000_000_000;
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(CacheError::NotInteger);
    }
    let magnitude = digits
        .iter()
        .fold(0i64, |acc, &d| (acc * 10 + i64::from(d - b'0')).min(CLAMP));
    Ok(if negative { -magnitude } else { magnitude })
}

/// The content of a JSON string literal, unescaped: borrowed when it has no
/// escapes. `None` when `text` is not a string, or its escapes spell a lone
/// UTF-16 surrogate (which UTF-8 cannot hold).
fn json_string_content(text: &[u8]) -> Option<Cow<'_, [u8]>> {
    let inner = text.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !inner.contains(&b'\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_slice::<String>(text)
        .ok()
        .map(|s| Cow::Owned(s.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> ValueRef<'_> {
        ValueRef::Json(text.as_bytes())
    }

    fn json_out(v: ValueRef<'_>) -> Result<String, CacheError> {
        let mut out = Vec::new();
        v.write_json(&mut out)?;
        Ok(String::from_utf8(out).expect("JSON output is UTF-8"))
    }

    #[test]
    fn json_set_stores_canonical_integers_as_int_and_the_rest_verbatim() {
        assert_eq!(ValueRef::from_json("41"), ValueRef::Int(41));
        assert_eq!(ValueRef::from_json("-7"), ValueRef::Int(-7));
        assert_eq!(ValueRef::from_json("0"), ValueRef::Int(0));
        let max = i64::MAX.to_string();
        assert_eq!(ValueRef::from_json(&max), ValueRef::Int(i64::MAX));
        let min = i64::MIN.to_string();
        assert_eq!(ValueRef::from_json(&min), ValueRef::Int(i64::MIN));
        // Not how the integer would be written back: kept as text.
        for text in ["-0", "1.0", "1e3", "9223372036854775808", "\"5\"", "[1]"] {
            assert_eq!(ValueRef::from_json(text), json(text), "{text}");
        }
    }

    #[test]
    fn json_get_output() {
        assert_eq!(json_out(ValueRef::Int(-12)).unwrap(), "-12");
        for text in [r#""a\"b\u00e9""#, "[1, 2]", "1e400", "{\"k\":null}"] {
            assert_eq!(json_out(json(text)).unwrap(), text, "verbatim");
        }
        assert_eq!(
            json_out(ValueRef::Raw(b"say \"hi\"\n\x01")).unwrap(),
            r#""say \"hi\"\n\u0001""#
        );
        assert_eq!(json_out(ValueRef::Raw("é".as_bytes())).unwrap(), "\"é\"");
        let mut out = b"keep".to_vec();
        assert_eq!(
            ValueRef::Raw(b"\xff\xfe").write_json(&mut out),
            Err(CacheError::WrongType)
        );
        assert_eq!(out, b"keep", "nothing written on error");
    }

    #[test]
    fn resp_reads() {
        assert_eq!(&*ValueRef::Int(-5).resp_bytes(), b"-5");
        assert_eq!(&*ValueRef::Raw(b"\x00\xff").resp_bytes(), b"\x00\xff");
        assert_eq!(&*json(r#""abc""#).resp_bytes(), b"abc");
        assert_eq!(&*json(r#""""#).resp_bytes(), b"");
        assert_eq!(
            &*json(r#""a\"b\\c\u00e9\n""#).resp_bytes(),
            "a\"b\\cé\n".as_bytes()
        );
        assert_eq!(&*json("[1,2]").resp_bytes(), b"[1,2]");
        assert_eq!(&*json("null").resp_bytes(), b"null");
        assert_eq!(&*json("2.5").resp_bytes(), b"2.5");
        // A lone surrogate has no UTF-8 form: the JSON text is what there is.
        assert_eq!(&*json(r#""\ud800""#).resp_bytes(), br#""\ud800""#);
    }

    #[test]
    fn owned_resp_reads_share_the_stored_bytes() {
        let stored = Bytes::from_static(br#""plain string""#);
        let read = Value::Json(stored.clone()).to_resp();
        assert_eq!(&read[..], b"plain string");
        assert_eq!(read.as_ptr(), stored[1..].as_ptr(), "a slice, not a copy");
        let raw = Bytes::from(vec![7u8; 100]);
        assert_eq!(Value::Raw(raw.clone()).to_resp().as_ptr(), raw.as_ptr());
        assert_eq!(&Value::Int(42).to_resp()[..], b"42");
        assert_eq!(
            &Value::Json(Bytes::from_static(b"[1]")).to_resp()[..],
            b"[1]"
        );
        assert_eq!(
            &Value::Json(Bytes::from_static(br#""\t""#)).to_resp()[..],
            b"\t"
        );
    }

    #[test]
    fn raw_integers_follow_redis_rules() {
        let raw = |b: &'static [u8]| ValueRef::Raw(b).to_i64();
        assert_eq!(raw(b"0"), Ok(0));
        assert_eq!(raw(b"-42"), Ok(-42));
        assert_eq!(raw(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(raw(b"-9223372036854775808"), Ok(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"1.0",
            b"1e3",
            b"abc",
            b"\xff",
        ] {
            assert_eq!(
                ValueRef::Raw(bad).to_i64(),
                Err(CacheError::NotInteger),
                "{bad:?}"
            );
        }
        assert_eq!(raw(b"9223372036854775808"), Err(CacheError::OutOfRange));
        assert_eq!(raw(b"99999999999999999999"), Err(CacheError::OutOfRange));
        assert_eq!(raw(b"-9223372036854775809"), Err(CacheError::OutOfRange));
    }

    #[test]
    fn json_integers_are_integral_numbers_or_decimal_strings() {
        let cases: &[(&str, Result<i64, CacheError>)] = &[
            ("42", Ok(42)),
            ("-42", Ok(-42)),
            ("4.2e1", Ok(42)),
            ("1E3", Ok(1000)),
            ("1e+3", Ok(1000)),
            ("1000e-3", Ok(1)),
            ("1.0", Ok(1)),
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("0.000e-99999999999999", Ok(0)),
            ("0e99999999999999999999", Ok(0)),
            ("9007199254740993", Ok(9007199254740993)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("-92233720368547758.08e2", Ok(i64::MIN)),
            ("\"17\"", Ok(17)),
            ("\"-3\"", Ok(-3)),
            ("\"\\u0031\"", Ok(1)),
            ("9223372036854775808", Err(CacheError::OutOfRange)),
            ("99999999999999999999", Err(CacheError::OutOfRange)),
            ("1e30", Err(CacheError::OutOfRange)),
            ("1e999999999999999999999", Err(CacheError::OutOfRange)),
            ("-1e19", Err(CacheError::OutOfRange)),
            ("\"99999999999999999999\"", Err(CacheError::OutOfRange)),
            ("1.5", Err(CacheError::NotInteger)),
            ("1e-1", Err(CacheError::NotInteger)),
            ("1e-99999999999999999999", Err(CacheError::NotInteger)),
            ("\"abc\"", Err(CacheError::NotInteger)),
            ("\"1e3\"", Err(CacheError::NotInteger)),
            ("\" 1\"", Err(CacheError::NotInteger)),
            ("\"\"", Err(CacheError::NotInteger)),
            ("true", Err(CacheError::NotInteger)),
            ("null", Err(CacheError::NotInteger)),
            ("[1]", Err(CacheError::NotInteger)),
            ("{\"n\":1}", Err(CacheError::NotInteger)),
            // Not valid JSON at all (the cache does not re-validate): no panic.
            ("", Err(CacheError::NotInteger)),
            ("-", Err(CacheError::NotInteger)),
            ("1e", Err(CacheError::NotInteger)),
            ("1.", Ok(1)),
            ("\"", Err(CacheError::NotInteger)),
        ];
        for (text, want) in cases {
            assert_eq!(json(text).to_i64(), *want, "{text}");
        }
    }

    #[test]
    fn error_messages_name_no_parser_positions() {
        for e in [
            json("1.5").to_i64().unwrap_err(),
            json("1e30").to_i64().unwrap_err(),
            CacheError::Overflow,
        ] {
            let message = e.to_string();
            assert!(!message.contains("line"), "{message}");
            assert!(!message.contains("column"), "{message}");
        }
    }
}
