//! Writes a JSON response frame into an [`Output`]: the one writer of the
//! `{"out":…,"result":…}` envelope around a method's result.
//!
//! It lives beside the service rather than in the protocol crate because a
//! result may splice a large cached value in by reference, which only an
//! [`Output`] can hold; the frame's length prefix then covers the spliced
//! bytes.

use reactor_rpc_protocol::frame::{begin_frame, HEADER_LEN};
use reactor_rpc_protocol::message::{write_error_frame, write_json_str};
use reactor_rpc_protocol::{Json, RpcError};

use crate::output::{Mark, Output};

/// Writes one response frame into an output buffer.
///
/// The frame is `{"out":NAME,"result":RESULT[,"id":ID]}` behind its length
/// prefix. [`ResponseWriter::result`] hands the method the buffer to write its
/// result JSON into; if the method fails, what it wrote is discarded and an
/// error object takes its place.
pub(crate) struct ResponseWriter<'o> {
    out: &'o mut Output,
    frame: Mark,
}

impl<'o> ResponseWriter<'o> {
    /// Starts a response frame named `out` (the response's `"out"` field).
    pub fn begin(out: &'o mut Output, name: &str) -> ResponseWriter<'o> {
        let frame = out.mark();
        begin_frame(out);
        out.extend_from_slice(b"{\"out\":");
        write_json_str(out, name);
        out.extend_from_slice(b",\"result\":");
        ResponseWriter { out, frame }
    }

    /// Lets `f` write the result JSON (it may splice shared values in). On
    /// error, rewrites the frame as an error response.
    pub fn result<F>(self, id: Option<Json<'_>>, f: F) -> Result<(), RpcError>
    where
        F: FnOnce(&mut Output) -> Result<(), RpcError>,
    {
        match f(self.out) {
            Ok(()) => {
                if let Some(id) = id {
                    self.out.extend_from_slice(b",\"id\":");
                    self.out.extend_from_slice(id.get().as_bytes());
                }
                self.out.push(b'}');
                // The length covers the spliced bytes too.
                let body_len = self.out.total_len() - self.frame.total() - HEADER_LEN;
                let len = u32::try_from(body_len).unwrap_or(u32::MAX);
                let at = self.frame.owned();
                self.out[at..at + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
                Ok(())
            }
            Err(err) => {
                self.out.rollback(self.frame);
                write_error_frame(self.out, &err, id);
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SHARE_MIN;
    use reactor_rpc_protocol::frame::{decode, Decoded};
    use reactor_rpc_protocol::ErrorCode;

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
    fn writes_result_and_error_frames() {
        let mut out = Output::new();
        ResponseWriter::begin(&mut out, "pong")
            .result(Json::new("7"), |o| {
                o.extend_from_slice(b"\"hi\"");
                Ok(())
            })
            .unwrap();
        assert_eq!(body(&out), r#"{"out":"pong","result":"hi","id":7}"#);

        // A spliced result: the length prefix covers it.
        let value = bytes::Bytes::from(format!("\"{}\"", "v".repeat(SHARE_MIN)));
        let mut out = Output::new();
        ResponseWriter::begin(&mut out, "get")
            .result(Json::new("1"), |o| {
                o.share(&value);
                Ok(())
            })
            .unwrap();
        assert_eq!(out.splices(), 1);
        let flat = out.into_vec();
        let expect = format!(
            r#"{{"out":"get","result":{},"id":1}}"#,
            std::str::from_utf8(&value).unwrap()
        );
        assert_eq!(body(&flat), expect);

        let mut out = Output::new();
        let err = ResponseWriter::begin(&mut out, "fib")
            .result(None, |o| {
                o.extend_from_slice(b"garbage");
                o.share(&value);
                Err(RpcError::bad_params("n \"too\" big"))
            })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::BadParams);
        assert_eq!(out.splices(), 0);
        assert_eq!(
            body(&out),
            r#"{"out":"error","result":{"code":"bad_params","message":"n \"too\" big"}}"#
        );
    }
}
