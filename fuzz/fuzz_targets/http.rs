//! Fuzzes the metrics port: its HTTP reader
//! (`reactor_rpc::protocol::http::feed`) and its session
//! (`reactor_rpc::session::http::process`), on bytes cut into reads
//! arbitrarily. The reader must see the same requests, the same refusal and
//! the same unread tail whether the bytes come cut or whole; the session,
//! driven as a server model drives it, must answer every complete request
//! exactly once, in order (200 with the page, 404, or the refusal's 400/431),
//! and close exactly after the request that asks it to or is refused. No call
//! may panic. The checks live in the library's `testing::http` module, shared
//! with the proptests in `tests/http_props.rs`.
//!
//! Input layout: byte 0 is a count `k` (mod 8), the next `k` bytes are chunk
//! sizes that cut the stream (cycled; 0 counts as 1; none = one chunk), and
//! the rest is the byte stream a client sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reactor_rpc::testing::http;

fuzz_target!(|data: &[u8]| {
    let [k, rest @ ..] = data else {
        return;
    };
    let k = usize::from(*k % 8).min(rest.len());
    let (sizes, bytes) = rest.split_at(k);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
    http::check_feed(bytes, &sizes);
    http::check_session(bytes, &sizes);
});
