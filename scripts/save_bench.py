#!/usr/bin/env python3
"""Snapshot save under load: fills a server started with --snapshot with N keys over one
pipelined connection, then calls `save` while another connection pings in a closed loop, and
prints the save figures and the ping latency during the save (BENCHMARKS.md, "Snapshots of 1M
keys"). Usage: save_bench.py HOST PORT N [SERVER_PID]: with SERVER_PID, SIGTERM (which saves while
the server serves) instead of `save`: the pings go on until the drain closes their connection."""
import json, os, signal, socket, struct, sys, threading, time
addr = (sys.argv[1], int(sys.argv[2])); n = int(sys.argv[3])
def req(method, params):
    b = json.dumps({"in": method, "params": params}).encode()
    return struct.pack('<I', len(b)) + b
def read_frame(f):
    h = f.read(4); (l,) = struct.unpack('<I', h); return json.loads(f.read(l))
s = socket.create_connection(addr); f = s.makefile('rb')
def send_all():
    buf = bytearray()
    for i in range(n):
        buf += req("set", {"key": "key:%d" % i, "value": "value of key number %d" % i})
        if len(buf) > 1 << 20: s.sendall(buf); buf = bytearray()
    s.sendall(buf)
t = threading.Thread(target=send_all); t.start()
for i in range(n): read_frame(f)
t.join()
p = socket.create_connection(addr); p.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); pf = p.makefile('rb')
lat = []; done = threading.Event()
def pinger():
    while not done.is_set():
        t0 = time.perf_counter()
        try:
            p.sendall(req("ping", 1)); read_frame(pf)
        except (OSError, struct.error):
            return  # closed by the shutdown
        lat.append(time.perf_counter() - t0)
th = threading.Thread(target=pinger); th.start()
time.sleep(0.2)
before = len(lat)
if len(sys.argv) > 4:
    # Pings until the shutdown closes the connection: the save ran before it.
    th.join(0); t0 = time.perf_counter(); os.kill(int(sys.argv[4]), signal.SIGTERM)
    try:
        th.join()
    except Exception:
        pass
    r = "SIGTERM: connection closed %.0f ms after it" % ((time.perf_counter() - t0) * 1e3)
else:
    s.sendall(req("save", None)); r = read_frame(f)
during = lat[before:len(lat)]
done.set(); th.join()
during.sort()
print("save", r, "pings during save", len(during), "max ms %.2f p99 ms %.2f" % (during[-1]*1e3, during[int(len(during)*0.99)]*1e3))
