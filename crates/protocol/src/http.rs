//! Just enough HTTP/1.x for a Prometheus scrape of the metrics port.
//!
//! A metrics port faces the same network as the RPC port, so its parser gets
//! the same care: it is pure (bytes in, a verdict out, no socket), incremental
//! (call [`feed`] again with the whole buffer whenever more bytes arrive; a
//! request split at any byte is read the same), and bounded: at most
//! [`MAX_HEADERS`] headers and [`MAX_REQUEST_BYTES`] per request, or the
//! connection gets an error response and is closed. Parsing is done by the
//! `httparse` crate.
//!
//! | request | response |
//! |---|---|
//! | `GET /metrics` (a query string is ignored) | 200, `Content-Type: text/plain; version=0.0.4; charset=utf-8` |
//! | `HEAD /metrics` | the same head (`Content-Length` of the page `GET` would send), no body |
//! | any other path or method | 404 (`HEAD`: without its body) |
//! | not HTTP/1.x, bad syntax, a chunked or invalid body | 400, `Connection: close` |
//! | more than [`MAX_HEADERS`] headers, more than [`MAX_REQUEST_BYTES`] | 431, `Connection: close` |
//!
//! A request body (`Content-Length`) is allowed and skipped. Keep-alive
//! follows HTTP/1.1 (on unless `Connection: close`) and HTTP/1.0 (off unless
//! `Connection: keep-alive`).

/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 32;

/// Most bytes one request may take (request line, headers and body).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// The Prometheus text exposition format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the bytes received so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a whole request yet and nothing wrong so far: read more.
    Incomplete,
    /// A whole request in the first `consumed` bytes; more may follow.
    Request {
        /// Bytes of input the request takes, headers (and any body) included.
        consumed: usize,
        /// `GET /metrics` or `HEAD /metrics`: answer with the metrics, else 404.
        path_ok: bool,
        /// A `HEAD` request: the response's head only, with the
        /// `Content-Length` of the body a `GET` would get.
        head: bool,
        /// The client wants the connection kept open after the response.
        keep_alive: bool,
        /// Where the `Authorization` header's value is in the buffer
        /// (start, end), if the request has one: the metrics token's check
        /// reads it there.
        authorization: Option<(usize, usize)>,
    },
    /// Not a request this server accepts: answer with
    /// [`write_malformed`] and close.
    Malformed(Malformed),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not HTTP/1.x syntax.
    Syntax,
    /// More than [`MAX_HEADERS`] headers.
    TooManyHeaders,
    /// More than [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// A body this server does not read: chunked, or a bad `Content-Length`.
    BadBody,
}

impl Malformed {
    /// The response status for it.
    pub fn status(self) -> Status {
        match self {
            Malformed::Syntax | Malformed::BadBody => Status::BadRequest,
            Malformed::TooManyHeaders | Malformed::TooLarge => Status::HeaderFieldsTooLarge,
        }
    }
}

/// The statuses this server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: the metrics follow.
    Ok,
    /// 400: not HTTP this server reads.
    BadRequest,
    /// 404: any path but `/metrics`.
    NotFound,
    /// 431: too many or too large headers.
    HeaderFieldsTooLarge,
    /// 503: the connection was refused (`--max-conns`, `--max-conns-per-ip`).
    ServiceUnavailable,
    /// 401: `--metrics-token-file` is set and the request lacks the token.
    Unauthorized,
    /// 403: refused by protected mode.
    Forbidden,
    /// 429: too many failed token checks from this address.
    TooManyRequests,
}

impl Status {
    /// The numeric status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::HeaderFieldsTooLarge => 431,
            Status::ServiceUnavailable => 503,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::TooManyRequests => 429,
        }
    }

    /// The reason phrase of the status line.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::TooManyRequests => "Too Many Requests",
        }
    }
}

/// Reads the first request in `buffer` (all bytes received and not yet
/// consumed). Pure: call it again with the longer buffer when more arrive.
pub fn feed(buffer: &[u8]) -> Outcome {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Only the bytes a request may take are parsed: what lies beyond the
    // limit must not change the verdict (a bad byte there would otherwise
    // make a 400 of a 431 when the bytes arrive at once, but not when they
    // trickle in).
    let window = &buffer[..buffer.len().min(MAX_REQUEST_BYTES)];
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if window.len() >= MAX_REQUEST_BYTES {
                Outcome::Malformed(Malformed::TooLarge)
            } else {
                Outcome::Incomplete
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Outcome::Malformed(Malformed::TooManyHeaders)
        }
        Err(_) => return Outcome::Malformed(Malformed::Syntax),
    };
    let mut body_len: Option<usize> = None;
    let mut close = false;
    let mut keep_alive = false;
    let mut authorization = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("authorization") {
            // The value borrows from `buffer`: its place there.
            let start = (h.value.as_ptr() as usize).checked_sub(buffer.as_ptr() as usize);
            authorization = start
                .map(|start| (start, start + h.value.len()))
                .filter(|&(_, end)| end <= buffer.len());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_content_length(h.value) else {
                return Outcome::Malformed(Malformed::BadBody);
            };
            if body_len.is_some_and(|m| m != n) {
                return Outcome::Malformed(Malformed::BadBody);
            }
            body_len = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Outcome::Malformed(Malformed::BadBody);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let body_len = body_len.unwrap_or(0);
    let Some(consumed) = head_len
        .checked_add(body_len)
        .filter(|&n| n <= MAX_REQUEST_BYTES)
    else {
        return Outcome::Malformed(Malformed::TooLarge);
    };
    if buffer.len() < consumed {
        return Outcome::Incomplete;
    }

    let keep_alive = match req.version {
        Some(1) => !close,
        _ => keep_alive && !close,
    };
    let head = req.method == Some("HEAD");
    let path_ok = (head || req.method == Some("GET"))
        && req
            .path
            .is_some_and(|p| p.split('?').next() == Some("/metrics"));
    Outcome::Request {
        consumed,
        path_ok,
        head,
        keep_alive,
        authorization,
    }
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces inside).
fn parse_content_length(value: &[u8]) -> Option<usize> {
    let v = value.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Appends a complete response. `close` adds `Connection: close`.
pub fn write_response(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body: &[u8],
    close: bool,
) {
    write_head(out, status, content_type, body.len(), close);
    out.extend_from_slice(body);
}

/// Appends a response's status line and headers, for a body of `body_len`
/// bytes that the caller appends (or, for `HEAD`, leaves out). `close`
/// adds `Connection: close`.
pub fn write_head(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body_len: usize,
    close: bool,
) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        status.code(),
        status.reason(),
        content_type,
        body_len,
        if close { "Connection: close\r\n" } else { "" },
    );
}

/// The 200 response for `GET /metrics`.
pub fn write_metrics(out: &mut Vec<u8>, body: &[u8], close: bool) {
    write_response(out, Status::Ok, CONTENT_TYPE, body, close);
}

/// The body of the 404.
const NOT_FOUND: &[u8] = b"not found: try GET /metrics\n";

/// The 404 for any other request.
pub fn write_not_found(out: &mut Vec<u8>, close: bool) {
    write_response(
        out,
        Status::NotFound,
        "text/plain; charset=utf-8",
        NOT_FOUND,
        close,
    );
}

/// The 404's head alone, for a `HEAD` request of any other path.
pub fn write_not_found_head(out: &mut Vec<u8>, close: bool) {
    write_head(
        out,
        Status::NotFound,
        "text/plain; charset=utf-8",
        NOT_FOUND.len(),
        close,
    );
}

/// The 401 for a scrape without the metrics token, with the challenge
/// (RFC 6750) that tells a scraper to send `Authorization: Bearer TOKEN`.
pub fn write_unauthorized(out: &mut Vec<u8>, close: bool) {
    let body: &[u8] = b"unauthorized: send Authorization: Bearer TOKEN\n";
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"metrics\"\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    );
    out.extend_from_slice(body);
}

/// The error response for a refused request; always `Connection: close`.
pub fn write_malformed(out: &mut Vec<u8>, why: Malformed) {
    let body: &[u8] = match why {
        Malformed::Syntax => b"bad request\n",
        Malformed::TooManyHeaders => b"too many headers\n",
        Malformed::TooLarge => b"request too large\n",
        Malformed::BadBody => b"unsupported request body\n",
    };
    write_response(out, why.status(), "text/plain; charset=utf-8", body, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\nUser-Agent: Prometheus/2.51\r\nAccept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n";

    /// Feeds `req` one byte at a time: every proper prefix is incomplete, the
    /// whole request gives the outcome that feeding it at once gives.
    fn byte_by_byte(req: &[u8]) -> Outcome {
        for end in 0..req.len() {
            assert_eq!(
                feed(&req[..end]),
                Outcome::Incomplete,
                "prefix of {end} bytes: {:?}",
                String::from_utf8_lossy(&req[..end])
            );
        }
        feed(req)
    }

    #[test]
    fn a_scrape_fed_byte_by_byte() {
        assert_eq!(
            byte_by_byte(SCRAPE),
            Outcome::Request {
                consumed: SCRAPE.len(),
                path_ok: true,
                head: false,
                keep_alive: true,
                authorization: None,
            }
        );
    }

    #[test]
    fn the_authorization_header_is_found_in_place() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n";
        let Outcome::Request {
            authorization: Some((start, end)),
            ..
        } = feed(req)
        else {
            panic!("no authorization found");
        };
        assert_eq!(&req[start..end], b"Bearer s3cret");
    }

    #[test]
    fn head_is_get_without_the_body() {
        let req = b"HEAD /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            byte_by_byte(req),
            Outcome::Request {
                consumed: req.len(),
                path_ok: true,
                head: true,
                keep_alive: true,
                authorization: None,
            }
        );
        assert!(matches!(
            feed(b"HEAD /other HTTP/1.1\r\n\r\n"),
            Outcome::Request {
                path_ok: false,
                head: true,
                ..
            }
        ));
        let (mut get, mut head) = (Vec::new(), Vec::new());
        write_not_found(&mut get, false);
        write_not_found_head(&mut head, false);
        assert!(get.starts_with(&head) && get.len() == head.len() + NOT_FOUND.len());
    }

    #[test]
    fn other_paths_and_methods_are_not_ok() {
        for req in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET /metricsx HTTP/1.1\r\n\r\n",
            b"GET /metrics/ HTTP/1.1\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"HEAD / HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
        ] {
            match byte_by_byte(req) {
                Outcome::Request {
                    path_ok, consumed, ..
                } => {
                    assert!(!path_ok, "{:?}", String::from_utf8_lossy(req));
                    assert_eq!(consumed, req.len());
                }
                other => panic!("{other:?} for {:?}", String::from_utf8_lossy(req)),
            }
        }
        assert!(matches!(
            feed(b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n"),
            Outcome::Request { path_ok: true, .. }
        ));
    }

    #[test]
    fn keep_alive_follows_the_http_version() {
        let ka = |req: &[u8]| match feed(req) {
            Outcome::Request { keep_alive, .. } => keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(ka(b"GET /metrics HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(
            b"GET /metrics HTTP/1.1\r\nConnection: TE, Close\r\n\r\n"
        ));
        assert!(!ka(b"GET /metrics HTTP/1.0\r\n\r\n"));
        assert!(ka(
            b"GET /metrics HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
        ));
    }

    #[test]
    fn pipelined_requests_are_read_one_at_a_time() {
        let mut buf = SCRAPE.to_vec();
        buf.extend_from_slice(b"GET /nope HTTP/1.1\r\n\r\nGET /met");
        let Outcome::Request {
            consumed,
            path_ok: true,
            head: false,
            keep_alive: true,
            ..
        } = feed(&buf)
        else {
            panic!("the scrape is read first")
        };
        assert_eq!(consumed, SCRAPE.len());
        let rest = &buf[consumed..];
        let Outcome::Request {
            consumed,
            path_ok: false,
            ..
        } = feed(rest)
        else {
            panic!("then the other path")
        };
        assert_eq!(feed(&rest[consumed..]), Outcome::Incomplete);
        let mut out = Vec::new();
        write_metrics(&mut out, b"x 1\n", false);
        write_not_found(&mut out, false);
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n\r\nx 1\nHTTP/1.1 404 Not Found\r\n"
        ), "{text}");
    }

    #[test]
    fn a_body_is_waited_for_and_skipped() {
        let req = b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            byte_by_byte(req),
            Outcome::Request {
                consumed: req.len(),
                path_ok: true,
                head: false,
                keep_alive: true,
                authorization: None,
            }
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        for req in [
            &b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert_eq!(
                feed(req),
                Outcome::Malformed(Malformed::BadBody),
                "{:?}",
                String::from_utf8_lossy(req)
            );
        }
        assert_eq!(
            feed(b"GET /metrics HTTP/1.1\r\nContent-Length: 9000\r\n\r\n"),
            Outcome::Malformed(Malformed::TooLarge)
        );
    }

    #[test]
    fn garbage_is_malformed_at_the_first_bad_byte() {
        for req in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // a TLS ClientHello
            b"GET /metrics SPDY/3\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n",
            b"{\"in\":\"ping\"}",
            b"\x22\x00\x00\x00{\"in\":\"ping\"}",
        ] {
            // Some prefix is already malformed, and stays so.
            let first = (1..=req.len())
                .find(|&n| matches!(feed(&req[..n]), Outcome::Malformed(_)))
                .unwrap_or_else(|| panic!("accepted {:?}", String::from_utf8_lossy(req)));
            for n in first..=req.len() {
                assert_eq!(feed(&req[..n]), Outcome::Malformed(Malformed::Syntax));
            }
        }
    }

    #[test]
    fn too_many_headers() {
        let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        let mut ok = req.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(matches!(feed(&ok), Outcome::Request { path_ok: true, .. }));
        req.extend_from_slice(b"X-One-More: y\r\n\r\n");
        assert_eq!(feed(&req), Outcome::Malformed(Malformed::TooManyHeaders));
        let mut out = Vec::new();
        write_malformed(&mut out, Malformed::TooManyHeaders);
        assert!(out.starts_with(b"HTTP/1.1 431 "));
        assert!(out.windows(19).any(|w| w == b"Connection: close\r\n"));
    }

    #[test]
    fn an_endless_request_is_cut_at_the_size_limit() {
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
        let mut verdict = Outcome::Incomplete;
        while verdict == Outcome::Incomplete {
            req.push(b'a');
            verdict = feed(&req);
            assert!(req.len() <= MAX_REQUEST_BYTES);
        }
        assert_eq!(verdict, Outcome::Malformed(Malformed::TooLarge));
        assert_eq!(req.len(), MAX_REQUEST_BYTES);
    }

    #[test]
    fn responses_are_well_formed() {
        let mut out = Vec::new();
        write_not_found(&mut out, false);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(&out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("{other:?}"),
        };
        assert_eq!(resp.code, Some(404));
        let len: usize = resp
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .expect("content length");
        assert_eq!(n + len, out.len());

        let mut out = Vec::new();
        write_malformed(&mut out, Malformed::Syntax);
        assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(out.windows(19).any(|w| w == b"Connection: close\r\n"));
    }
}
