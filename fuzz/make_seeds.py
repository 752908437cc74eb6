#!/usr/bin/env python3
"""Writes the seed inputs in fuzz/seeds/<target>/, one folder per fuzz target. Run from fuzz/.

dispatch: flags byte, count k, k chunk sizes, then length-prefixed JSON frames
          (see fuzz_targets/dispatch.rs).
resp:     flags byte, count k, k chunk sizes, then a RESP request stream
          (see fuzz_targets/resp.rs).
http:     count k, k chunk sizes, then HTTP requests to the metrics port
          (see fuzz_targets/http.rs).
"""
import os
import struct


def write(target, name, data):
    os.makedirs(f"seeds/{target}", exist_ok=True)
    with open(f"seeds/{target}/{name}", "wb") as f:
        f.write(data)


# dispatch

def frame(body):
    if isinstance(body, str):
        body = body.encode()
    return struct.pack("<I", len(body)) + body


def seed(name, flags, sizes, frames, tail=b""):
    data = bytes([flags, len(sizes)]) + bytes(sizes) + b"".join(map(frame, frames)) + tail
    write("dispatch", name, data)


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


# resp

def multibulk(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def resp(name, flags, sizes, stream):
    write("resp", name, bytes([flags, len(sizes)]) + bytes(sizes) + stream)


resp("multibulk", 0, [], multibulk("PING") + multibulk("SET", "k", "v") + multibulk("GET", "k"))
resp("multibulk-bytewise", 0, [1], multibulk("ECHO", b"\r\n\0\xff") + multibulk("DEL", "k", "j"))
resp("inline", 0, [3, 1], b"PING\r\nset a  b\n\r\n   \nGET \"a b\"\r\n"
     b"a \"x\\n\\x41\\q\\\"\" 'it\\'s' b\"c d\"\tf\r\n")
resp("inline-unbalanced", 0, [2], b"get 'a'b\n")
resp("empty-commands", 0, [5], b"*0\r\n*-1\r\n" + multibulk("x"))
resp("bulk-over-limit", 1, [4], multibulk("SET", "k") + b"*2\r\n$3\r\nSET\r\n$65\r\n" + b"x" * 20)
resp("bad-headers", 0, [6], b"*1\r\n:1\r\n")
resp("bad-count", 0, [], b"*01\r\n")
resp("json-frame", 0, [1], frame('{"in":"ping","id":1}'))
resp("json-frame-42", 0, [], frame('{"in":"ping","params":"0123456789abcdefg"}'))
# One byte past the 64 KiB line limit (INLINE_MAX): random bytes almost never make a line that long
# without a newline or a NUL, so the fuzzer starts from one (a `*` in front makes it a count line).
resp("line-too-long", 0, [255], b"a" * (64 * 1024 + 1) + b"\r\n")


# http

def http(name, sizes, stream):
    write("http", name, bytes([len(sizes)]) + bytes(sizes) + stream)


SCRAPE = (b"GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\nUser-Agent: Prometheus/2.51\r\n"
          b"Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n")
http("scrape", [], SCRAPE)
http("scrape-bytewise", [1], SCRAPE)
http("pipelined", [7, 30], SCRAPE + b"GET /nope HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\n"
     b"GET /metrics?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + SCRAPE)
http("close", [11], b"GET /metrics HTTP/1.1\r\nConnection: TE, close\r\n\r\n" + SCRAPE)
http("http10", [], b"GET /metrics HTTP/1.0\r\n\r\n" + SCRAPE)
http("body", [3], b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + SCRAPE)
http("chunked", [], b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
http("bad-length", [2], b"GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
http("many-headers", [200],
     b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(33)) + b"\r\n")
http("long-header", [255, 255], b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 8200 + b"\r\n\r\n")
http("json-frame", [], frame('{"in":"ping","id":1}'))
http("tls-hello", [], b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
