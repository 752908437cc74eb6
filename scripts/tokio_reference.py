#!/usr/bin/env python3
"""reactor vs tokio, side by side in one run (BENCHMARKS.md, "reactor vs tokio").

1. Server CPU per request at pipeline 1 and 16: `bench --spawn MODEL --conns 50
   --pipeline P --batch --requests N --warmup 0` (the Redis reference's shape),
   the models alternating within each round, --runs rounds; the median of each
   model and the median of the per-round ratios reactor/tokio are printed.
2. Open-loop latency: the reactor's peak rate is its open-loop saturation
   throughput (the median of 3 runs offered far more than it can answer:
   what it answers per second is its peak). The closed-loop peak of step 1 is
   no open-loop peak: the open-loop generator spends more CPU per request
   (its timer wake-ups), and on 2 shared cores generator and server together
   cannot sustain half of it. Then `bench --spawn MODEL --conns 50 --rate R`
   at 50 % and 90 % of the peak, models alternating, median p50 and p99.
4. With --strace: syscalls per request of each server (`strace -c -f -p PID`
   around a fixed number of requests, futex not counted), pipeline 1 and 16.
3. RSS per idle connection: a server is started, N connections are opened
   (silent: they never send; or after one ping each, then 3 s quiet), and
   (VmRSS with them - VmRSS before) / N is printed.

Usage: scripts/tokio_reference.py [--runs 5] [--models reactor,tokio,tokio-mt]
           [--requests-p1 N] [--requests-p16 N] [--rate-runs 3] [--idle-conns 10000]
           [--skip cpu,latency,idle] [--bin target/release/reactor-rpc]
Loopback only; every run is bounded by a request count or a duration.
"""

import argparse
import json
import os
import resource
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

CONNS = 50
# The steps --skip can leave out.
STEPS = ("cpu", "latency", "idle")


def bench(binary, args, tmp):
    out = os.path.join(tmp, "run.json")
    cmd = [binary, "bench", *args, "--json", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(out) as f:
        return json.load(f)


def cpu_runs(binary, models, runs, n1, n16, tmp):
    """{(model, P): [report, ...]}, models alternating within each round."""
    results = {}
    for run in range(1, runs + 1):
        for p, n in ((1, n1), (16, n16)):
            for model in models:
                r = bench(binary, ["--spawn", model, "--conns", str(CONNS), "--pipeline", str(p),
                                   "--batch", "--requests", str(n), "--warmup", "0"], tmp)
                results.setdefault((model, p), []).append(r)
                print(f"  run {run} P={p:<2} {model:<8} {r['server']['cpu_us_per_request']:7.3f} us CPU/req"
                      f"  {r['throughput_rps']:10.0f} req/s  load {os.getloadavg()[0]:.1f}", flush=True)
    return results


def latency_runs(binary, models, rates, runs, tmp):
    results = {}
    for run in range(1, runs + 1):
        for share, rate in rates:
            for model in models:
                r = bench(binary, ["--spawn", model, "--conns", str(CONNS), "--rate", str(rate),
                                   "--duration", "5", "--warmup", "1"], tmp)
                results.setdefault((model, share), []).append(r)
                lat = r["latency_us"]
                print(f"  run {run} {share:>3}% ({rate:.0f}/s) {model:<8} p50 {lat['p50']:8.1f} us"
                      f"  p99 {lat['p99']:9.1f} us  CPU {r['server']['cpu_us_per_request']:.2f} us/req",
                      flush=True)
    return results


def frame(body):
    return struct.pack("<I", len(body)) + body


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, binary, model):
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", model, "--addr", "127.0.0.1:0", "--log-level", "warn",
             "--max-conns", "100000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Port 0: learn the port from /proc (the log is at warn, so no `listening` line).
        deadline = time.time() + 10
        self.port = None
        while self.port is None and time.time() < deadline:
            self.port = listening_port(self.proc.pid)
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{model} server did not listen")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def listening_port(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                return int(parts[1].split(":")[1], 16)
    return None


def call(sock, method, params=None):
    body = json.dumps({"in": method, "params": params}).encode()
    sock.sendall(frame(body))
    head = recv_exact(sock, 4)
    return json.loads(recv_exact(sock, struct.unpack("<I", head)[0]))


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("closed")
        buf += chunk
    return buf


def idle_rss(binary, model, n, ping):
    """KiB of server RSS per idle connection, and the RSS figures."""
    server = Server(binary, model)
    try:
        watcher = socket.create_connection(("127.0.0.1", server.port))
        call(watcher, "ping", "warm")
        time.sleep(0.5)
        before = rss_kib(server.proc.pid)
        conns = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns.append(s)
        if ping:
            for i, s in enumerate(conns):
                s.sendall(frame(json.dumps({"in": "ping", "params": i}).encode()))
            for s in conns:
                head = recv_exact(s, 4)
                recv_exact(s, struct.unpack("<I", head)[0])
        deadline = time.time() + 60
        while call(watcher, "stats")["result"]["connections"] < n + 1:
            if time.time() > deadline:
                raise RuntimeError("connections not accepted in time")
            time.sleep(0.1)
        # Let housekeeping run (the reactor trims buffers of connections quiet for 2 s).
        time.sleep(3.5)
        during = rss_kib(server.proc.pid)
        for s in conns:
            s.close()
        watcher.close()
        return (during - before) / n, before, during
    finally:
        server.stop()


def median(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--models", default="reactor,tokio,tokio-mt")
    ap.add_argument("--requests-p1", type=int, default=200_000)
    ap.add_argument("--requests-p16", type=int, default=2_000_000)
    ap.add_argument("--rate-runs", type=int, default=3)
    ap.add_argument("--idle-conns", type=int, default=10_000)
    ap.add_argument("--idle-runs", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated steps to leave out: " + ",".join(STEPS))
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--strace-requests", type=int, default=200_000)
    ap.add_argument("--bin", default=None)
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = a.bin or os.path.join(root, "target", "release", "reactor-rpc")
    models = a.models.split(",")
    skip = set(filter(None, a.skip.split(",")))
    unknown = sorted(skip - set(STEPS))
    if unknown:
        # A misspelt step would otherwise run the step it meant to skip.
        print(f"tokio_reference.py: --skip: unknown step {', '.join(unknown)}; "
              f"the steps are {', '.join(STEPS)}", file=sys.stderr)
        sys.exit(2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()}, open files {hard}")
    tmp = tempfile.mkdtemp()

    peak = None
    if "cpu" not in skip:
        print(f"\n== server CPU per request, {CONNS} conns, ping, --batch, {a.runs} alternating rounds")
        res = cpu_runs(binary, models, a.runs, a.requests_p1, a.requests_p16, tmp)
        print("\n| model | P | µs CPU/req (each run) | median | req/s (median) | reactor / model (median of per-round ratios) |")
        print("|---|---|---|---|---|---|")
        for p in (1, 16):
            for m in models:
                cpu = [r["server"]["cpu_us_per_request"] for r in res[(m, p)]]
                rps = [r["throughput_rps"] for r in res[(m, p)]]
                base = [r["server"]["cpu_us_per_request"] for r in res[("reactor", p)]] if "reactor" in models else None
                ratio = median([b / c for b, c in zip(base, cpu)]) if base else float("nan")
                print(f"| {m} | {p} | {', '.join(f'{c:.2f}' for c in cpu)} | **{median(cpu):.2f}** | "
                      f"{median(rps):,.0f} | {ratio:.3f} |")
        if "reactor" in models:
            peak = median([r["throughput_rps"] for r in res[("reactor", 1)]])
            print(f"\nreactor peak (closed loop, P=1, median): {peak:,.0f} req/s")

    if "latency" not in skip:
        offered = 2 * peak if peak else 300_000
        runs = [bench(binary, ["--spawn", "reactor", "--conns", str(CONNS), "--rate", str(offered),
                               "--duration", "3", "--warmup", "0.5"], tmp)["throughput_rps"]
                for _ in range(3)]
        peak = median(runs)
        print(f"\nreactor open-loop peak: offered {offered:,.0f}/s, answered "
              f"{', '.join(f'{x:,.0f}' for x in runs)} req/s; median {peak:,.0f} req/s")
        rates = [(50, 0.5 * peak), (90, 0.9 * peak)]
        print(f"\n== open loop, {CONNS} conns, 5 s after 1 s warm-up, {a.rate_runs} alternating rounds")
        res = latency_runs(binary, models, rates, a.rate_runs, tmp)
        print("\n| model | rate | p50 µs (median) | p99 µs (median) | p99 µs (each run) | µs CPU/req (median) |")
        print("|---|---|---|---|---|---|")
        for share, rate in rates:
            for m in models:
                rs = res[(m, share)]
                p50 = median([r["latency_us"]["p50"] for r in rs])
                p99s = [r["latency_us"]["p99"] for r in rs]
                cpu = median([r["server"]["cpu_us_per_request"] for r in rs])
                print(f"| {m} | {share} % ({rate:,.0f}/s) | {p50:,.0f} | **{median(p99s):,.0f}** | "
                      f"{', '.join(f'{x:,.0f}' for x in p99s)} | {cpu:.2f} |")

    if "idle" not in skip:
        n = a.idle_conns
        print(f"\n== server RSS per idle connection, {n} connections, {a.idle_runs} alternating rounds")
        res = {}
        for run in range(1, a.idle_runs + 1):
            for ping in (False, True):
                for m in models:
                    per, before, during = idle_rss(binary, m, n, ping)
                    res.setdefault((m, ping), []).append(per)
                    print(f"  run {run} {'one ping' if ping else 'silent':<8} {m:<8} {per:6.2f} KiB/conn"
                          f"  (RSS {before / 1024:.1f} -> {during / 1024:.1f} MiB)", flush=True)
        print("\n| model | silent: KiB per connection | after one ping, 3 s quiet: KiB per connection |")
        print("|---|---|---|")
        for m in models:
            print(f"| {m} | {median(res[(m, False)]):.2f} | {median(res[(m, True)]):.2f} |")

    if a.strace:
        n = a.strace_requests
        print(f"\n== syscalls per request (strace -c -f -p, {n} requests, {CONNS} conns, --batch, futex not counted)")
        print("| model | P | syscalls per request | per call, for the run |")
        print("|---|---|---|---|")
        for p in (1, 16):
            for m in models:
                per, by = syscalls(binary, m, p, n, tmp)
                detail = ", ".join(f"{k} {v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:6])
                print(f"| {m} | {p} | {per:.3f} | {detail} |", flush=True)


def syscalls(binary, model, p, n, tmp):
    """Syscalls per request of a `model` server (all threads, futex not counted)."""
    server = Server(binary, model)
    out = os.path.join(tmp, "strace.out")
    try:
        st = subprocess.Popen(["strace", "-c", "-f", "-p", str(server.proc.pid), "-o", out],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # let strace attach to every thread
        subprocess.run([binary, "bench", "--addr", f"127.0.0.1:{server.port}", "--conns", str(CONNS),
                        "--pipeline", str(p), "--batch", "--requests", str(n), "--warmup", "0"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        st.send_signal(2)
        st.wait(30)
    finally:
        server.stop()
    calls, by = 0, {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0].replace(".", "").isdigit() and parts[-1] not in ("total", "futex"):
                by[parts[-1]] = int(parts[3])
                calls += int(parts[3])
    return calls / n, by


if __name__ == "__main__":
    sys.exit(main())
