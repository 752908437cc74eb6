#!/usr/bin/env python3
"""The seed's RPC client, ported to Python 3 with the standard library only.

It speaks the wire protocol of PROTOCOL.md: a 4-byte length prefix packed with
struct.pack("I", n) (native order: little-endian on x86-64 and ARM), then that
many bytes of UTF-8 JSON, both ways.

    python3 examples/seed_client.py                    # ten pings to localhost:8080
    python3 examples/seed_client.py 127.0.0.1:9000     # ... to another address
    python3 examples/seed_client.py --method fib --params 100
    python3 examples/seed_client.py --method set --params '{"key": "a", "value": [1, 2]}'

Without --method it does what the seed's client did: send
{"in": "ping", "params": "ireader N"} for N = 0..9 and print each response as
"OUT RESULT" (the seed also slept a second between calls; --interval does that).
With --method it makes one call and prints the result as JSON; an error
response is printed as "error: CODE: MESSAGE" on stderr, with exit status 1.
"""

import argparse
import json
import socket
import struct
import sys
import time

# fib answers with exact integers of up to 20 899 digits. Python 3.11+ refuses
# to parse an int of more than 4300 digits unless told otherwise; the seed ran
# on Python 2, which had no such limit.
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)


def recv_exact(sock, n):
    """Reads exactly n bytes (recv may return fewer)."""
    chunks = []
    while n > 0:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def rpc(sock, in_, params):
    """Sends one request and returns the response's (out, result)."""
    request = json.dumps({"in": in_, "params": params}).encode("utf-8")
    sock.sendall(struct.pack("I", len(request)) + request)
    (length,) = struct.unpack("I", recv_exact(sock, 4))
    response = json.loads(recv_exact(sock, length).decode("utf-8"))
    return response["out"], response["result"]


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return (host or "localhost", int(port))


def main():
    parser = argparse.ArgumentParser(description="The seed's RPC client, in Python 3.")
    parser.add_argument("addr", nargs="?", default="localhost:8080", help="HOST:PORT (default localhost:8080)")
    parser.add_argument("--method", help="call this method once instead of the ten pings")
    parser.add_argument("--params", default="null", help="params of --method, as JSON (default null)")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between the pings (the seed used 1)")
    args = parser.parse_args()

    sock = socket.create_connection(parse_addr(args.addr))
    try:
        if args.method is None:
            for i in range(10):
                out, result = rpc(sock, "ping", "ireader %d" % i)
                print(out, result, flush=True)
                if args.interval:
                    time.sleep(args.interval)
            return 0
        out, result = rpc(sock, args.method, json.loads(args.params))
        if out == "error":
            print("error: %s: %s" % (result["code"], result["message"]), file=sys.stderr)
            return 1
        print(json.dumps(result, ensure_ascii=False))
        return 0
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
