//! A validating, allocation-free JSON scanner for the request envelope.
//!
//! The envelope (`{"in": …, "params": …, "id": …}`) is read in one pass that
//! validates the whole body as JSON (RFC 8259), enforces the nesting limit,
//! and notes where each field's value starts and ends. `params` and `id` come
//! out as [`Json`] slices of the body, checked but not parsed: `ping` copies
//! its params' bytes, and other methods parse them with serde into their own
//! types. serde_json would do the same job, but spends most of a `ping`'s
//! budget getting there; `tests/json_scan.rs` checks the scanner against
//! serde_json on arbitrary input.

use serde::Deserialize;

/// Deepest nesting of arrays and objects accepted (the request object counts as one).
pub const MAX_DEPTH: usize = 128;

/// A piece of text known to be one valid JSON value.
///
/// Methods get their params as a `Json`: checked, but not parsed, so a method
/// can copy the bytes (as `ping` does) or deserialise them into its own type.
///
/// ```
/// use reactor_rpc_protocol::Json;
///
/// let params = Json::new(r#" {"key": "k", "ttl_ms": 500} "#).unwrap();
/// assert_eq!(params.get(), r#"{"key": "k", "ttl_ms": 500}"#); // trimmed
/// let v: serde_json::Value = params.parse().unwrap();
/// assert_eq!(v["ttl_ms"], 500);
/// assert!(Json::new("{\"key\":}").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json<'a>(&'a str);

impl<'a> Json<'a> {
    /// JSON `null`.
    pub const NULL: Json<'static> = Json("null");

    /// Checks that `text` is exactly one JSON value (surrounding whitespace allowed).
    pub fn new(text: &'a str) -> Option<Json<'a>> {
        let mut s = Scanner::new(text.as_bytes());
        s.ws();
        let start = s.i;
        s.value(0).ok()?;
        let end = s.i;
        s.ws();
        s.at_end().then(|| Json(&text[start..end]))
    }

    /// Wraps text the scanner has already validated.
    pub(crate) fn trusted(text: &'a str) -> Json<'a> {
        Json(text)
    }

    /// The JSON text.
    #[inline]
    pub fn get(self) -> &'a str {
        self.0
    }

    /// Deserialises the value.
    pub fn parse<T: Deserialize<'a>>(self) -> serde_json::Result<T> {
        serde_json::from_str(self.0)
    }
}

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    Syntax(&'static str),
    TooDeep,
}

type Scan<T> = Result<T, Invalid>;

/// A string's extent: `text[start..end]` includes the quotes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Str {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

/// A validator over bytes that are already valid UTF-8; it does not recurse.
pub(crate) struct Scanner<'a> {
    b: &'a [u8],
    pub i: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(b: &'a [u8]) -> Scanner<'a> {
        Scanner { b, i: 0 }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.i == self.b.len()
    }

    #[inline]
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// Consumes `byte` or fails with `what`.
    #[inline]
    pub fn expect(&mut self, byte: u8, what: &'static str) -> Scan<()> {
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(Invalid::Syntax(what))
        }
    }

    /// One value; `depth` is the nesting of the container it sits in.
    ///
    /// Iterative: open containers are kept in a fixed array (at most
    /// [`MAX_DEPTH`] of them), so hostile nesting costs neither stack nor heap.
    pub fn value(&mut self, depth: usize) -> Scan<()> {
        let mut open = [0u8; MAX_DEPTH];
        let mut top = 0;
        'value: loop {
            // At the start of a value.
            match self.peek() {
                Some(c @ (b'[' | b'{')) => {
                    if depth + top + 1 > MAX_DEPTH {
                        return Err(Invalid::TooDeep);
                    }
                    self.i += 1;
                    self.ws();
                    let close = if c == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.i += 1; // empty: a complete value
                    } else {
                        open[top] = c;
                        top += 1;
                        if c == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return Err(Invalid::Syntax("expected a JSON value")),
                None => return Err(Invalid::Syntax("unexpected end of JSON")),
            }
            // After a complete value: close containers until one wants more.
            loop {
                if top == 0 {
                    return Ok(());
                }
                self.ws();
                match (open[top - 1], self.peek()) {
                    (container, Some(b',')) => {
                        self.i += 1;
                        self.ws();
                        if container == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (b'[', Some(b']')) | (b'{', Some(b'}')) => {
                        self.i += 1;
                        top -= 1;
                    }
                    (b'[', _) => return Err(Invalid::Syntax("expected , or ] in array")),
                    _ => return Err(Invalid::Syntax("expected , or } in object")),
                }
            }
        }
    }

    /// An object key and its colon, leaving the scanner at the value.
    fn key(&mut self) -> Scan<Str> {
        if self.peek() != Some(b'"') {
            return Err(Invalid::Syntax("expected a string key"));
        }
        let key = self.string()?;
        self.ws();
        self.expect(b':', "expected : after key")?;
        self.ws();
        Ok(key)
    }

    /// A string, the scanner being at its opening quote.
    #[inline]
    pub fn string(&mut self) -> Scan<Str> {
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        loop {
            let rest = &self.b[self.i..];
            let Some(n) = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            else {
                return Err(Invalid::Syntax("unterminated string"));
            };
            self.i += n;
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok(Str {
                        start,
                        end: self.i,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(Invalid::Syntax("control character in string")),
            }
        }
    }

    fn escape(&mut self) -> Scan<()> {
        self.i += 1; // the backslash
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(self.i + 1)?;
                self.i += 5;
                match unit {
                    // A surrogate is only Unicode as a high-low pair: a lone one
                    // would be stored and echoed as invalid UTF-16/UTF-8.
                    0xD800..=0xDBFF => {
                        if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                            return Err(Invalid::Syntax("lone surrogate in \\u escape"));
                        }
                        if !(0xDC00..=0xDFFF).contains(&self.hex4(self.i + 2)?) {
                            return Err(Invalid::Syntax("lone surrogate in \\u escape"));
                        }
                        self.i += 6;
                        Ok(())
                    }
                    0xDC00..=0xDFFF => Err(Invalid::Syntax("lone surrogate in \\u escape")),
                    _ => Ok(()),
                }
            }
            _ => Err(Invalid::Syntax("bad escape")),
        }
    }

    /// The value of the four hex digits at `at`.
    fn hex4(&self, at: usize) -> Scan<u16> {
        let hex = self.b.get(at..at + 4).unwrap_or_default();
        if hex.len() != 4 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(Invalid::Syntax("bad \\u escape"));
        }
        let text = std::str::from_utf8(hex).map_err(|_| Invalid::Syntax("bad \\u escape"))?;
        u16::from_str_radix(text, 16).map_err(|_| Invalid::Syntax("bad \\u escape"))
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Scan<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Invalid::Syntax("bad number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Invalid::Syntax("bad number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Invalid::Syntax("bad number"));
            }
        }
        Ok(())
    }

    fn literal(&mut self, lit: &'static [u8]) -> Scan<()> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(Invalid::Syntax("bad literal"))
        }
    }

    /// An object, calling `member` for each key with the scanner at its value.
    /// `member` must consume exactly one value.
    pub fn members(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, Str, usize) -> Scan<()>,
    ) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(Invalid::TooDeep);
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.key()?;
            member(self, key, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Invalid::Syntax("expected , or } in object")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in [
            "0",
            "-0",
            "1.5e-3",
            "-12E+7",
            "\"a\\u00e9\\n\"",
            "[]",
            "{}",
            " [1, {\"a\": [null, true, false]}] ",
            "\"é\"",
            "\"\\ud83d\\ude00\"",
        ] {
            assert!(Json::new(ok).is_some(), "{ok}");
        }
        for lone in [
            "\"\\ud800\"",
            "\"\\udbff\\n\"",
            "\"\\ud800\\u0041\"",
            "\"\\udc00\"",
            "[\"\\ud83d\"]",
        ] {
            assert!(Json::new(lone).is_none(), "{lone}");
        }
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "[1 2]",
            "nul",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\u{1}\"",
            "1 2",
            "NaN",
            "[",
            "\"abc",
        ] {
            assert!(Json::new(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let nested = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        assert!(Json::new(&nested(MAX_DEPTH)).is_some());
        assert!(Json::new(&nested(MAX_DEPTH + 1)).is_none());
        assert!(Json::new(&nested(100_000)).is_none());
    }
}
