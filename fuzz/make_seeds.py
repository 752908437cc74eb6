#!/usr/bin/env python3
"""Writes the seed inputs in fuzz/seeds/ (see fuzz_targets/dispatch.rs for the layout:
flags byte, count k, k chunk sizes, then the byte stream). Run from fuzz/."""
import struct


def frame(body):
    if isinstance(body, str):
        body = body.encode()
    return struct.pack("<I", len(body)) + body


def seed(name, flags, sizes, frames, tail=b""):
    data = bytes([flags, len(sizes)]) + bytes(sizes) + b"".join(map(frame, frames)) + tail
    with open(f"seeds/{name}", "wb") as f:
        f.write(data)


seed("ping", 0, [], ['{"in":"ping","params":{"a":[1,"x"]},"id":1}'])
seed("cache-bytewise", 0, [1], [
    '{"in":"set","params":{"key":"k","value":5},"id":1}',
    '{"in":"incr","params":{"key":"k","by":2},"id":2}',
    '{"in":"get","params":{"key":"k"},"id":3}'])
seed("fib-offload", 1, [3, 7], [
    '{"in":"fib","params":10,"id":"a"}',
    '{"in":"fib","params":5000,"id":"b"}',
    '{"in":"ping","id":"c"}'])
seed("too-large", 2, [5], ['{"in":"ping","id":1}'], struct.pack("<I", 65) + b"x")
seed("bad-bodies", 4, [2, 9], [
    '', '{"in":', b'\xff\xfe', '[1,2]', '{"in":"nope","id":[2]}',
    '{"in":"ping"} x', '{"in":"incr","params":{"key":"s"}}'])
seed("ttl-stats", 0, [16], [
    '{"in":"set","params":{"key":"t","value":"v","ttl_ms":50}}',
    '{"in":"ttl","params":{"key":"t"}}',
    '{"in":"expire","params":{"key":"t","ttl_ms":9}}',
    '{"in":"exists","params":{"key":"t"}}',
    '{"in":"del","params":{"key":"t"}}',
    '{"in":"stats"}'])
