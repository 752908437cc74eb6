//! Fuzzes the RESP request parser (`reactor_rpc::protocol::resp::Parser`) the
//! way a server drives it: bytes cut into reads arbitrarily, every whole
//! command at the front parsed and consumed after each read. The stream cut
//! and the stream whole must give the same commands with the same arguments,
//! the same protocol error and the same unparsed tail; no call may panic, and
//! no `Incomplete` hint may ask for more than about twice the bytes that have
//! arrived. The checks live in the library's `testing::resp` module, shared
//! with the proptests in `tests/resp_props.rs`.
//!
//! Input layout: byte 0 holds flags (bit 0: bulk strings limited to 64 bytes
//! instead of the default `--max-frame`, 1 MiB), byte 1 is a count `k`
//! (mod 8), the next `k` bytes are chunk sizes that cut the stream (cycled;
//! 0 counts as 1; none = one chunk), and the rest is the byte stream a
//! client sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reactor_rpc::protocol::DEFAULT_MAX_FRAME;
use reactor_rpc::testing::resp;

fuzz_target!(|data: &[u8]| {
    let [flags, k, rest @ ..] = data else {
        return;
    };
    let k = usize::from(*k % 8).min(rest.len());
    let (sizes, bytes) = rest.split_at(k);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
    let max_bulk = if flags & 1 != 0 {
        64
    } else {
        DEFAULT_MAX_FRAME as usize
    };
    resp::check(bytes, &sizes, max_bulk);
});
