//! The serde_json alternative to the envelope scanner, shared by the criterion
//! comparison (`dispatch.rs`, group `envelope`) and the interleaved one
//! (`envelope_interleaved.rs`); `mod.rs` so that cargo does not take it for a
//! bench target of its own.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

pub const PING: &str = r#"{"in":"ping","params":"hello","id":1000000000001}"#;
pub const GET: &str = r#"{"in":"get","params":{"key":"k42"},"id":1000000000001}"#;

/// The `set` body: a 32-byte value.
pub fn set_body() -> String {
    let value = "x".repeat(32);
    format!(r#"{{"in":"set","params":{{"key":"k42","value":"{value}"}},"id":1000000000001}}"#)
}

/// The envelope as serde_json's derive reads it: the method borrowed unless it
/// has escapes, params and id as borrowed, validated, unparsed JSON. Repeated
/// fields are refused (as `parse_request` does); unknown ones are skipped.
#[derive(Deserialize)]
pub struct Envelope<'a> {
    #[serde(rename = "in", borrow)]
    pub method: Cow<'a, str>,
    #[serde(borrow)]
    pub params: Option<&'a RawValue>,
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
}

/// Whether brackets outside strings nest deeper than `max`: the pre-scan the
/// serde_json envelope needed, since serde_json does not limit the depth of a
/// `RawValue` it skips over (the scanner enforces `MAX_DEPTH` in its one pass).
pub fn exceeds_depth(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}
