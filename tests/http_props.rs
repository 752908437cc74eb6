//! Property tests for the metrics port, the same checks the cargo-fuzz target
//! `fuzz/fuzz_targets/http.rs` makes (both call `reactor_rpc::testing::http`):
//! however a stream of HTTP requests is cut into reads, the HTTP reader sees
//! the same requests, the same refusal and the same unread tail as when the
//! stream arrives whole; and the metrics session, driven as every server model
//! drives it, answers each complete request exactly once, in order, closing
//! exactly after the request that asks it to or is refused.
//!
//! Regression inputs found by the fuzzer go at the bottom as plain tests.

use proptest::prelude::*;
use reactor_rpc::protocol::http::{Malformed, Outcome, MAX_HEADERS, MAX_REQUEST_BYTES};

use reactor_rpc::testing::http;

/// One request, well formed or not, as bytes.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "HEAD", "POST", "get", "G ET", ""]);
    let path = prop::sample::select(vec![
        "/metrics",
        "/metrics?x=1",
        "/",
        "/metricsx",
        "*",
        "/m etrics",
    ]);
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2", "SPDY/3", ""]);
    let header = prop_oneof![
        Just("Host: localhost:9100".to_string()),
        Just("Connection: close".to_string()),
        Just("Connection: keep-alive".to_string()),
        Just("Connection: TE, Close".to_string()),
        Just("Transfer-Encoding: chunked".to_string()),
        Just("Content-Length: 1 2".to_string()),
        Just("Bad Header".to_string()),
        (0usize..3).prop_map(|n| format!("Content-Length: {n}")),
        (0usize..40).prop_map(|i| format!("X-{i}: y")),
        (1usize..9000).prop_map(|n| format!("X-Long: {}", "a".repeat(n))),
    ];
    (
        method,
        path,
        version,
        prop::collection::vec(header, 0..6),
        prop::collection::vec(any::<u8>(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(method, path, version, headers, body, crlf)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut r = format!("{method} {path} {version}{eol}");
            for h in headers {
                r.push_str(&h);
                r.push_str(eol);
            }
            r.push_str(eol);
            let mut r = r.into_bytes();
            r.extend_from_slice(&body);
            r
        })
}

/// A stream of requests, sometimes with garbage spliced in.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(request(), 0..6).prop_map(|r| r.concat()),
        1 => (
            prop::collection::vec(request(), 0..4),
            prop::collection::vec(any::<u8>(), 0..40),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(requests, garbage, at)| {
                let mut s = requests.concat();
                let at = at.index(s.len() + 1);
                s.splice(at..at, garbage);
                s
            }),
    ]
}

/// Chunk sizes, cycled to cut the stream: mostly small reads, some large ones.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..8usize, 1..300usize, 1..9000usize], 0..10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_reader_sees_the_same_requests_however_cut(bytes in stream(), sizes in cuts()) {
        http::check_feed(&bytes, &sizes);
    }

    #[test]
    fn the_session_answers_each_request_once(bytes in stream(), sizes in cuts()) {
        http::check_session(&bytes, &sizes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        sizes in cuts(),
    ) {
        http::check_feed(&bytes, &sizes);
        http::check_session(&bytes, &sizes);
    }
}

const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\n\r\n";

#[test]
fn pipelined_scrapes_each_get_the_page() {
    let mut stream = SCRAPE.repeat(3);
    stream.extend_from_slice(b"GET /nope HTTP/1.1\r\n\r\n");
    stream.extend_from_slice(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    stream.extend_from_slice(SCRAPE); // after the close: never read
    for sizes in [&[][..], &[1], &[7, 300]] {
        let got = http::check_session(&stream, sizes);
        let codes: Vec<u16> = got.iter().map(|r| r.code).collect();
        assert_eq!(codes, [200, 200, 200, 404, 200], "cut by {sizes:?}");
        assert!(got.last().is_some_and(|r| r.close));
        assert_eq!(got[0].body, http::PAGE);
    }
}

#[test]
fn a_refusal_is_the_last_answer() {
    let mut stream = SCRAPE.to_vec();
    stream.extend_from_slice(b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n");
    stream.extend_from_slice(SCRAPE);
    let got = http::check_session(&stream, &[5]);
    let heads: Vec<(u16, bool)> = got.iter().map(|r| (r.code, r.close)).collect();
    assert_eq!(heads, [(200, false), (400, true)]);
}

/// A head still incomplete at [`MAX_REQUEST_BYTES`] is too large, however
/// the bytes after that limit look: a syntax error beyond it must not turn a
/// 431 into a 400 when the stream arrives at once.
#[test]
fn bad_syntax_beyond_the_size_limit_is_still_too_large() {
    let mut stream = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
    stream.resize(MAX_REQUEST_BYTES + 10, b'a');
    stream.extend_from_slice(b"\0\r\n\r\n");
    let whole = http::check_feed(&stream, &[100]);
    assert_eq!(whole.refused, Some(Malformed::TooLarge));
    assert!(whole.requests.is_empty());
}

#[test]
fn too_many_headers_are_refused_however_cut() {
    let mut stream = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        stream.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    stream.extend_from_slice(b"\r\n");
    for sizes in [&[][..], &[1], &[3, 17]] {
        let whole = http::check_feed(&stream, sizes);
        assert_eq!(whole.refused, Some(Malformed::TooManyHeaders));
        let got = http::check_session(&stream, sizes);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].code, 431);
    }
    assert!(matches!(
        http::requests(SCRAPE, &[]).requests[..],
        [Outcome::Request { path_ok: true, .. }]
    ));
}
