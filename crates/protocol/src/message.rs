//! Request and response messages.
//!
//! A request is parsed by *borrowing* from the frame body in one validating
//! pass ([`super::json`]): the method name is a `Cow<str>` (borrowed unless it
//! contains escapes) and `params` and `id` are [`Json`] slices of the body, so
//! parsing allocates nothing. A response is written straight into the
//! connection's output buffer, length prefix and all.

use std::borrow::Cow;
use std::io::Write;

use super::error::{ErrorCode, RpcError};
use super::frame::{begin_frame, end_frame};
use super::json::{Invalid, Json, Scanner, Str, MAX_DEPTH};

/// A request, borrowing from its frame body.
#[derive(Debug)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The method name (`"in"` on the wire, as in the seed).
    pub method: Cow<'a, str>,
    /// The parameters, validated but unparsed; `None` when absent.
    pub params: Option<Json<'a>>,
    /// An optional correlation id, echoed verbatim (even when it is `null`).
    pub id: Option<Json<'a>>,
}

impl<'a> Request<'a> {
    /// The params, with a missing field read as JSON `null`.
    pub fn params(&self) -> Json<'a> {
        self.params.unwrap_or(Json::NULL)
    }
}

/// A parse failure: the error to answer with, and the request's `id` when
/// the body was a well-formed object that carried one.
pub type ParseError<'a> = (RpcError, Option<Json<'a>>);

fn bad_json(message: impl Into<String>) -> ParseError<'static> {
    (RpcError::new(ErrorCode::BadJson, message), None)
}

fn bad_request<'a>(message: &str, id: Option<Json<'a>>) -> ParseError<'a> {
    let message = format!("a request is an object with a string \"in\": {message}");
    (RpcError::new(ErrorCode::BadRequest, message), id)
}

fn invalid(e: Invalid) -> ParseError<'static> {
    match e {
        Invalid::Syntax(what) => bad_json(format!("invalid JSON: {what}")),
        Invalid::TooDeep => bad_json(format!("JSON nested deeper than {MAX_DEPTH} levels")),
    }
}

/// The envelope fields as the scanner finds them.
#[derive(Default)]
struct Fields {
    method: Option<Result<Str, ()>>,
    params: Option<(usize, usize)>,
    id: Option<(usize, usize)>,
    duplicate: Option<&'static str>,
}

/// Parses a frame body: `bad_json` unless it is UTF-8 JSON (nested at most
/// [`MAX_DEPTH`] deep), then `bad_request` unless it is an object with a
/// string `in` and no repeated `in`, `params` or `id`.
///
/// ```
/// use reactor_rpc_protocol::{parse_request, ErrorCode};
///
/// let r = parse_request(br#"{"in":"get","params":{"key":"k"},"id":7}"#).unwrap();
/// assert_eq!(r.method, "get");
/// assert_eq!(r.params().get(), r#"{"key":"k"}"#);
/// assert_eq!(r.id.map(|id| id.get()), Some("7"));
///
/// let (err, id) = parse_request(br#"{"params":1,"id":"a"}"#).unwrap_err();
/// assert_eq!(err.code, ErrorCode::BadRequest);
/// assert_eq!(id.map(|id| id.get()), Some("\"a\""));
/// ```
pub fn parse_request(body: &[u8]) -> Result<Request<'_>, ParseError<'_>> {
    let text =
        std::str::from_utf8(body).map_err(|e| bad_json(format!("body is not UTF-8: {e}")))?;
    let mut s = Scanner::new(text.as_bytes());
    s.ws();
    if s.peek() != Some(b'{') {
        if s.at_end() {
            return Err(bad_json("empty body"));
        }
        s.value(0).map_err(invalid)?;
        s.ws();
        return Err(if s.at_end() {
            bad_request("got another JSON value", None)
        } else {
            bad_json("invalid JSON: trailing characters")
        });
    }
    let mut f = Fields::default();
    s.members(1, |s, key, depth| {
        let slot = match key_name(text, key) {
            Some(KeyName::In) => {
                if f.method.is_some() {
                    f.duplicate = Some("in");
                }
                if s.peek() == Some(b'"') {
                    f.method = Some(Ok(s.string()?));
                } else {
                    s.value(depth)?;
                    f.method = Some(Err(()));
                }
                return Ok(());
            }
            Some(KeyName::Params) => &mut f.params,
            Some(KeyName::Id) => &mut f.id,
            None => return s.value(depth),
        };
        let start = s.i;
        s.value(depth)?;
        if slot.replace((start, s.i)).is_some() {
            f.duplicate = Some(if key_name(text, key) == Some(KeyName::Id) {
                "id"
            } else {
                "params"
            });
        }
        Ok(())
    })
    .map_err(invalid)?;
    s.ws();
    if !s.at_end() {
        return Err(bad_json("invalid JSON: trailing characters"));
    }
    let slice = |(a, b): (usize, usize)| Json::trusted(&text[a..b]);
    let id = f.id.map(slice);
    if let Some(field) = f.duplicate {
        return Err(bad_request(&format!("field \"{field}\" appears twice"), id));
    }
    let method = match f.method {
        None => return Err(bad_request("missing field \"in\"", id)),
        Some(Err(())) => return Err(bad_request("\"in\" is not a string", id)),
        Some(Ok(m)) if !m.escaped => Cow::Borrowed(&text[m.start + 1..m.end - 1]),
        Some(Ok(m)) => match serde_json::from_str::<String>(&text[m.start..m.end]) {
            Ok(name) => Cow::Owned(name),
            Err(_) => return Err(bad_request("\"in\" is not valid Unicode", id)),
        },
    };
    Ok(Request {
        method,
        params: f.params.map(slice),
        id,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyName {
    In,
    Params,
    Id,
}

/// Which envelope field a key names (keys with escapes are unescaped first).
fn key_name(text: &str, key: Str) -> Option<KeyName> {
    let name: Cow<str> = if key.escaped {
        Cow::Owned(serde_json::from_str::<String>(&text[key.start..key.end]).ok()?)
    } else {
        Cow::Borrowed(&text[key.start + 1..key.end - 1])
    };
    match &*name {
        "in" => Some(KeyName::In),
        "params" => Some(KeyName::Params),
        "id" => Some(KeyName::Id),
        _ => None,
    }
}

/// One response as it came off the wire: what a client reads back.
///
/// `#[non_exhaustive]`: a later protocol version may add fields.
#[derive(Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct Response {
    /// The response's name: the method's name (`pong` for `ping`), or
    /// `"error"` for an error response.
    pub out: String,
    /// The result JSON, or the error object (`code` and `message`) when `out`
    /// is `"error"`; [`Response::into_result`] tells them apart.
    pub result: Box<serde_json::value::RawValue>,
    /// The request's `id`, echoed verbatim; `None` when the request had none.
    #[serde(default)]
    pub id: Option<Box<serde_json::value::RawValue>>,
}

/// What an error response carries, or why it is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// A well-formed error response.
    Rpc(RpcError),
    /// `out` is `"error"` but the result is not `{"code": KNOWN, "message": TEXT}`.
    Malformed(String),
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::Rpc(e) => write!(f, "{e}"),
            ResponseError::Malformed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ResponseError {}

#[derive(serde::Deserialize)]
struct WireError {
    code: String,
    message: String,
}

impl Response {
    /// The result, or the error it carries when `out` is `"error"`.
    pub fn into_result(self) -> Result<Box<serde_json::value::RawValue>, ResponseError> {
        if self.out != "error" {
            return Ok(self.result);
        }
        let e: WireError = serde_json::from_str(self.result.get())
            .map_err(|e| ResponseError::Malformed(format!("malformed error response: {e}")))?;
        let code = ErrorCode::parse(&e.code)
            .ok_or_else(|| ResponseError::Malformed(format!("unknown error code {:?}", e.code)))?;
        Err(ResponseError::Rpc(RpcError::new(code, e.message)))
    }
}

/// Appends the `overloaded` error frame a refused connection is sent.
pub fn write_overloaded_frame(out: &mut Vec<u8>, message: String) {
    write_error_frame(out, &RpcError::new(ErrorCode::Overloaded, message), None);
}

/// Appends a whole error response frame.
pub fn write_error_frame(out: &mut Vec<u8>, err: &RpcError, id: Option<Json<'_>>) {
    let start = begin_frame(out);
    out.extend_from_slice(b"{\"out\":\"error\",\"result\":{\"code\":\"");
    out.extend_from_slice(err.code.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_json_str(out, &err.message);
    out.push(b'}');
    finish(out, start, id);
}

fn finish(out: &mut Vec<u8>, frame_start: usize, id: Option<Json<'_>>) {
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

    #[test]
    fn parses_by_borrowing() {
        let r = parse_request(br#" {"in":"ping","params":[1,{"a":2}],"x":{"in":1}} "#).unwrap();
        assert!(matches!(r.method, Cow::Borrowed("ping")));
        assert_eq!(r.params().get(), r#"[1,{"a":2}]"#);
        assert!(r.id.is_none());
    }

    #[test]
    fn escaped_names_are_unescaped() {
        let r = parse_request(br#"{"\u0069n":"p\u0069ng","\u0069d":3}"#).unwrap();
        assert_eq!(r.method, "ping");
        assert_eq!(r.id.map(Json::get), Some("3"));
    }

    #[test]
    fn missing_params_is_null_and_null_id_is_kept() {
        let r = parse_request(br#"{"in":"ping","id":null}"#).unwrap();
        assert_eq!(r.params().get(), "null");
        assert_eq!(r.id.map(Json::get), Some("null"));
    }

    #[test]
    fn classifies_bad_input() {
        let code = |b: &[u8]| parse_request(b).unwrap_err().0.code;
        assert_eq!(code(b""), ErrorCode::BadJson);
        assert_eq!(code(b"   "), ErrorCode::BadJson);
        assert_eq!(code(b"{\"in\":"), ErrorCode::BadJson);
        assert_eq!(code(b"\xff\xfe"), ErrorCode::BadJson);
        assert_eq!(code(br#"{"in":"ping"} x"#), ErrorCode::BadJson);
        assert_eq!(code(br#"{"in":"ping"}{}"#), ErrorCode::BadJson);
        assert_eq!(code(br#"{"in":7, nope}"#), ErrorCode::BadJson);
        assert_eq!(code(b"[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code(b"42"), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"in":7}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"params":1}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"in":"a","in":"b"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"in":"a","params":1,"params":2}"#),
            ErrorCode::BadRequest
        );
        // A lone surrogate anywhere, the method name included, is not JSON text we keep.
        assert_eq!(code(br#"{"in":"\ud800"}"#), ErrorCode::BadJson);
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
        let ok = format!(
            "{{\"in\":\"ping\",\"params\":{}{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse_request(ok.as_bytes()).is_ok());
    }

    #[test]
    fn bad_request_echoes_the_id() {
        let (err, id) = parse_request(br#"{"in":5,"id":"abc"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert_eq!(id.map(Json::get), Some("\"abc\""));
    }
}
