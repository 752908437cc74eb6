//! Request and response messages.
//!
//! A request is parsed by *borrowing* from the frame body: the method name is a
//! `Cow<str>` (borrowed unless it contains escapes) and `params` and `id` are
//! `&RawValue` slices of the body, so parsing allocates nothing. A response is
//! written straight into the connection's output buffer, length prefix and all.

use std::borrow::Cow;
use std::io::Write;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::error::{ErrorCode, RpcError};
use super::frame::{begin_frame, end_frame};

/// A request, borrowing from its frame body.
#[derive(Debug, Deserialize)]
pub struct Request<'a> {
    /// The method name (`"in"` on the wire, as in the seed).
    #[serde(rename = "in", borrow)]
    pub method: Cow<'a, str>,
    /// The parameters, unparsed; missing means `null`.
    #[serde(default, borrow, deserialize_with = "present")]
    pub params: Option<&'a RawValue>,
    /// An optional correlation id, echoed verbatim (even when it is `null`).
    #[serde(default, borrow, deserialize_with = "present")]
    pub id: Option<&'a RawValue>,
}

impl<'a> Request<'a> {
    /// The params, with a missing field read as JSON `null`.
    pub fn params(&self) -> &'a RawValue {
        self.params.unwrap_or(RawValue::NULL)
    }
}

/// Keeps a present field as `Some`, even when its value is JSON `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Only the `id`, for echoing it on requests that are objects but malformed.
#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// Parses a frame body. On failure returns the error to answer with, plus the
/// request's `id` when the body was an object that carried one.
pub fn parse_request(body: &[u8]) -> Result<Request<'_>, (RpcError, Option<&RawValue>)> {
    let text = std::str::from_utf8(body).map_err(|e| {
        (
            RpcError::new(ErrorCode::BadJson, format!("body is not UTF-8: {e}")),
            None,
        )
    })?;
    if exceeds_depth(body, MAX_DEPTH) {
        let message = format!("JSON nested deeper than {MAX_DEPTH} levels");
        return Err((RpcError::new(ErrorCode::BadJson, message), None));
    }
    serde_json::from_str::<Request>(text).map_err(|e| {
        if e.is_data() {
            // Well-formed JSON of the wrong shape; echo its id if it has one.
            let id = serde_json::from_str::<IdOnly>(text).ok().and_then(|r| r.id);
            let message = format!("a request is an object with a string \"in\": {e}");
            (RpcError::new(ErrorCode::BadRequest, message), id)
        } else if text.trim().is_empty() {
            (RpcError::new(ErrorCode::BadJson, "empty body"), None)
        } else {
            (
                RpcError::new(ErrorCode::BadJson, format!("invalid JSON: {e}")),
                None,
            )
        }
    })
}

/// Deepest nesting of arrays and objects accepted in a request (the request
/// object itself counts as one level). serde_json skips `RawValue`s without a
/// depth limit, so the limit is checked here, before parsing.
pub const MAX_DEPTH: usize = 128;

/// Whether brackets outside strings nest deeper than `max`. One pass, no allocation.
fn exceeds_depth(body: &[u8], max: usize) -> bool {
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

/// Writes one response frame into an output buffer.
///
/// The frame is `{"out":NAME,"result":RESULT[,"id":ID]}` behind its length
/// prefix. [`ResponseWriter::result`] hands the method the buffer to write its
/// result JSON into; if the method fails, what it wrote is discarded and an
/// error object takes its place.
pub struct ResponseWriter<'o> {
    out: &'o mut Vec<u8>,
    frame_start: usize,
}

impl<'o> ResponseWriter<'o> {
    /// Starts a response frame named `out` (the response's `"out"` field).
    pub fn begin(out: &'o mut Vec<u8>, name: &str) -> ResponseWriter<'o> {
        let frame_start = begin_frame(out);
        out.extend_from_slice(b"{\"out\":");
        write_json_str(out, name);
        out.extend_from_slice(b",\"result\":");
        ResponseWriter { out, frame_start }
    }

    /// Lets `f` write the result JSON. On error, rewrites the frame as an error response.
    pub fn result<F>(self, id: Option<&RawValue>, f: F) -> Result<(), RpcError>
    where
        F: FnOnce(&mut Vec<u8>) -> Result<(), RpcError>,
    {
        let result_start = self.out.len();
        match f(self.out) {
            Ok(()) => {
                finish(self.out, self.frame_start, id);
                Ok(())
            }
            Err(err) => {
                debug_assert!(result_start > self.frame_start);
                self.out.truncate(self.frame_start);
                write_error_frame(self.out, &err, id);
                Err(err)
            }
        }
    }
}

/// Appends a whole error response frame.
pub fn write_error_frame(out: &mut Vec<u8>, err: &RpcError, id: Option<&RawValue>) {
    let start = begin_frame(out);
    out.extend_from_slice(b"{\"out\":\"error\",\"result\":{\"code\":\"");
    out.extend_from_slice(err.code.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_json_str(out, &err.message);
    out.push(b'}');
    finish(out, start, id);
}

fn finish(out: &mut Vec<u8>, frame_start: usize, id: Option<&RawValue>) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(id.get().as_bytes());
    }
    out.push(b'}');
    end_frame(out, frame_start);
}

/// Writes `s` as a JSON string literal. Writing into a `Vec` cannot fail.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Writes any serialisable value as JSON. Writing into a `Vec` cannot fail for
/// the types we produce (no maps with non-string keys).
pub fn write_json<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), RpcError> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|e| RpcError::new(ErrorCode::Internal, format!("cannot serialise result: {e}")))
}

/// Writes an integer with no allocation.
pub fn write_int(out: &mut Vec<u8>, n: i64) {
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{decode, Decoded, HEADER_LEN};

    fn body(frame: &[u8]) -> &str {
        match decode(frame, u32::MAX) {
            Decoded::Frame { body_len } => {
                assert_eq!(frame.len(), HEADER_LEN + body_len, "exactly one frame");
                std::str::from_utf8(&frame[HEADER_LEN..]).unwrap()
            }
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn parses_by_borrowing() {
        let r = parse_request(br#"{"in":"ping","params":[1,{"a":2}],"x":1}"#).unwrap();
        assert!(matches!(r.method, Cow::Borrowed("ping")));
        assert_eq!(r.params().get(), r#"[1,{"a":2}]"#);
        assert!(r.id.is_none());
    }

    #[test]
    fn missing_params_is_null_and_null_id_is_kept() {
        let r = parse_request(br#"{"in":"ping","id":null}"#).unwrap();
        assert_eq!(r.params().get(), "null");
        assert_eq!(r.id.map(RawValue::get), Some("null"));
    }

    #[test]
    fn classifies_bad_input() {
        let code = |b: &[u8]| parse_request(b).unwrap_err().0.code;
        assert_eq!(code(b""), ErrorCode::BadJson);
        assert_eq!(code(b"   "), ErrorCode::BadJson);
        assert_eq!(code(b"{\"in\":"), ErrorCode::BadJson);
        assert_eq!(code(b"\xff\xfe"), ErrorCode::BadJson);
        assert_eq!(code(br#"{"in":"ping"} x"#), ErrorCode::BadJson);
        assert_eq!(code(b"[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code(b"42"), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"in":7}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"params":1}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"in":"a","in":"b"}"#), ErrorCode::BadRequest);
    }

    #[test]
    fn deep_nesting_is_bad_json_not_a_stack_overflow() {
        let deep = format!(
            "{{\"in\":\"ping\",\"params\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse_request(deep.as_bytes()).unwrap_err().0.code,
            ErrorCode::BadJson
        );
    }

    #[test]
    fn depth_limit_counts_only_brackets_outside_strings() {
        let nested = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        assert!(!exceeds_depth(nested(128).as_bytes(), 128));
        assert!(exceeds_depth(nested(129).as_bytes(), 128));
        let in_string = format!("[\"{}\\\"{}\"]", "[".repeat(500), "{".repeat(500));
        assert!(!exceeds_depth(in_string.as_bytes(), 2));
        let ok = format!("{{\"in\":\"ping\",\"params\":{}}}", nested(127));
        assert!(parse_request(ok.as_bytes()).is_ok());
    }

    #[test]
    fn bad_request_echoes_the_id() {
        let (err, id) = parse_request(br#"{"in":5,"id":"abc"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert_eq!(id.map(RawValue::get), Some("\"abc\""));
    }

    #[test]
    fn writes_result_and_error_frames() {
        let mut out = Vec::new();
        let id = RawValue::from_string("7".into()).unwrap();
        ResponseWriter::begin(&mut out, "pong")
            .result(Some(&id), |o| {
                o.extend_from_slice(b"\"hi\"");
                Ok(())
            })
            .unwrap();
        assert_eq!(body(&out), r#"{"out":"pong","result":"hi","id":7}"#);

        let mut out = Vec::new();
        let err = ResponseWriter::begin(&mut out, "fib")
            .result(None, |o| {
                o.extend_from_slice(b"garbage");
                Err(RpcError::bad_params("n \"too\" big"))
            })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::BadParams);
        assert_eq!(
            body(&out),
            r#"{"out":"error","result":{"code":"bad_params","message":"n \"too\" big"}}"#
        );
    }
}
