#!/usr/bin/env python3
"""Round trip of a client that writes each request in two sends without
TCP_NODELAY, as the seed's client does (the 4-byte length, then the body).

Nagle's algorithm holds the second send until the first is ACKed; a server
whose kernel delays that ACK (about 40 ms on Linux) makes every request wait
for it. Measured against:

  * ours, JSON protocol: length, then body (`ping`);
  * ours, Redis protocol (--resp-addr): `*1\\r\\n$4\\r\\n`, then `PING\\r\\n`;
  * redis-server: the same two writes.

Starts reactor-rpc (`serve --resp-addr`) and redis-server on free loopback
ports, prints the median, p90 and max round trip of each, and exits.

Usage: scripts/two_write.py [--bin PATH] [--requests N] [--model reactor]
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # Nagle on
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def rtts(port, first, second, expect, n):
    """n round trips of first+second written in two sends; seconds each."""
    s = connect(port)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(first)
        s.sendall(second)
        got = recv_exact(s, len(expect))
        out.append(time.perf_counter() - t)
        assert got == expect, got
    s.close()
    return out


def summary(name, samples):
    ms = sorted(x * 1000 for x in samples)
    p90 = ms[int(len(ms) * 0.9)]
    print(f"{name:<38} median {statistics.median(ms):8.3f} ms   p90 {p90:8.3f} ms   max {ms[-1]:8.3f} ms")
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/reactor-rpc"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--model", default="reactor")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        subprocess.run(["cargo", "build", "--release", "--bin", "reactor-rpc"], cwd=ROOT, check=True)
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found: apt-get install -y redis-server")

    tmp = tempfile.mkdtemp()
    procs = []
    try:
        log = os.path.join(tmp, "ours.log")
        resp_port = free_port()
        procs.append(subprocess.Popen(
            [args.bin, "serve", "--model", args.model, "--addr", "127.0.0.1:0",
             "--resp-addr", f"127.0.0.1:{resp_port}", "--log-level", "info", "--log-file", log]))
        redis_port = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
             "--port", str(redis_port), "--logfile", os.path.join(tmp, "redis.log")]))
        json_port = None
        deadline = time.time() + 10
        while time.time() < deadline and json_port is None:
            time.sleep(0.05)
            if os.path.exists(log):
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(log).read())
                json_port = m and int(m.group(1))
        for port in (resp_port, redis_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        sys.exit(f"nothing listens on {port}")
                    time.sleep(0.05)

        body = json.dumps({"in": "ping", "params": "seed"}).encode()
        # The exact reply bytes depend on the server's JSON spelling: read one frame.
        s = connect(json_port)
        s.sendall(struct.pack("<I", len(body)) + body)
        n = struct.unpack("<I", recv_exact(s, 4))[0]
        reply = struct.pack("<I", n) + recv_exact(s, n)
        s.close()

        n = args.requests
        print(f"{n} requests each, Nagle on, request written in two sends; load {os.getloadavg()[0]:.2f}")
        summary(f"reactor-rpc ({args.model}), JSON", rtts(json_port, struct.pack("<I", len(body)), body, reply, n))
        summary(f"reactor-rpc ({args.model}), RESP", rtts(resp_port, b"*1\r\n$4\r\n", b"PING\r\n", b"+PONG\r\n", n))
        summary("redis-server, RESP", rtts(redis_port, b"*1\r\n$4\r\n", b"PING\r\n", b"+PONG\r\n", n))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
