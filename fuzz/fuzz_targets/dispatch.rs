//! Fuzzes the whole input path a server runs on every read: ReadBuffer, frame
//! decoder, request parser, services and the JSON session (`session::json::process`).
//!
//! Input layout: byte 0 holds flags (bit 0: offload heavy requests to a
//! "worker"; bit 1: `max_frame` 64 instead of 1 MiB; bit 2: `max_output` 1, so
//! every response fills the output), byte 1 is a count `k` (mod 8), the next
//! `k` bytes are chunk sizes that cut the stream (cycled; none = one chunk),
//! and the rest is the byte stream a client sent. The checks live in the
//! library's `testing` module, shared with the proptests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reactor_rpc::session::Options;
use reactor_rpc::protocol::DEFAULT_MAX_FRAME;

use reactor_rpc::testing as stream;

fuzz_target!(|data: &[u8]| {
    let [flags, k, rest @ ..] = data else {
        return;
    };
    let k = usize::from(*k % 8).min(rest.len());
    let (sizes, bytes) = rest.split_at(k);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
    let opt = Options {
        offload: flags & 1 != 0,
        max_frame: if flags & 2 != 0 {
            64
        } else {
            DEFAULT_MAX_FRAME
        },
        max_output: if flags & 4 != 0 { 1 } else { usize::MAX },
        max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
    };
    stream::check(bytes, &sizes, opt, stream::clock_free(bytes));
});
