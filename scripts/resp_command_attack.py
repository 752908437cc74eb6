#!/usr/bin/env python3
"""The huge-RESP-command attack of issue 19 (item 1), at its scale: each attacker sends `*1025`,
`DEL`, then 1 024 bulk strings of 1 MiB (a 1 GiB command), as fast as the server takes them, and
starts again on a new connection whenever the server closes it, for SECONDS. Meanwhile a RESP
PING on another connection every 10 ms, and the server's RSS every 20 ms.

Usage: resp_command_attack.py RESP_PORT SERVER_PID [SECONDS [ATTACKERS]]
  (defaults: 10 seconds, 1 attacker; at most 60 seconds and 64 attackers). Loopback only.
Works against redis-server too (its port and pid), for the reference figures.
Prints one line: RSS before and at its peak, the ping latencies (p50, p99, max), the bytes sent,
the replies to whole commands, and how many sends failed (the server closed the connection).
"""
import multiprocessing
import re
import socket
import sys
import time

MIB = 1 << 20


def rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1))


def attacker(port, stop, results):
    """Sends the 1 GiB command until `stop`; a closed connection is counted and reopened.
    A process of its own, like the pinger, so that neither waits for the other's GIL."""
    tally = {'sent': 0, 'whole': 0, 'closed': 0, 'errors': {}, 'replies': {}}
    head = b'*1025\r\n$3\r\nDEL\r\n'
    arg = b'$%d\r\n' % MIB + b'k' * MIB + b'\r\n'
    while not stop.is_set():
        try:
            s = socket.create_connection(('127.0.0.1', port))
            s.settimeout(1.0)
            s.sendall(head)
            tally['sent'] += len(head)
            for _ in range(1024):
                if stop.is_set():
                    break
                s.sendall(arg)
                tally['sent'] += len(arg)
            tally['whole'] += 1
            # A whole command: take its reply (if any) before the next one.
            try:
                reply = s.recv(200).split(b'\r\n')[0].decode(errors='replace') or '(closed)'
            except OSError as e:
                reply = type(e).__name__
            tally['replies'][reply] = tally['replies'].get(reply, 0) + 1
            s.close()
        except (ConnectionError, socket.timeout, OSError) as e:
            tally['closed'] += 1
            tally['errors'][type(e).__name__] = tally['errors'].get(type(e).__name__, 0) + 1
            time.sleep(0.01)
    results.put(('attacker', tally))


def pinger(port, stop, results):
    latencies = []
    s = socket.create_connection(('127.0.0.1', port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while not stop.is_set():
        t = time.perf_counter()
        s.sendall(b'*1\r\n$4\r\nPING\r\n')
        d = b''
        while not d.endswith(b'\r\n'):
            d += s.recv(100)
        latencies.append((time.perf_counter() - t) * 1000)
        time.sleep(0.01)
    results.put(('pinger', latencies))


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    seconds = min(float(sys.argv[3]) if len(sys.argv) > 3 else 10.0, 60.0)
    attackers = min(int(sys.argv[4]) if len(sys.argv) > 4 else 1, 64)
    base = rss_kib(pid)
    stop = multiprocessing.Event()
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=pinger, args=(port, stop, results))]
    procs += [multiprocessing.Process(target=attacker, args=(port, stop, results))
              for _ in range(attackers)]
    for p in procs:
        p.start()
    peak = base
    end = time.time() + seconds
    while time.time() < end:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.02)
    stop.set()
    latencies = []
    tally = {'sent': 0, 'whole': 0, 'closed': 0, 'errors': {}, 'replies': {}}
    for _ in procs:
        kind, value = results.get(timeout=30)
        if kind == 'pinger':
            latencies = value
            continue
        for k in ('sent', 'whole', 'closed'):
            tally[k] += value[k]
        for k in ('errors', 'replies'):
            for name, n in value[k].items():
                tally[k][name] = tally[k].get(name, 0) + n
    for p in procs:
        p.join(timeout=5)
    lat = sorted(latencies)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float('nan')
    print(f"{attackers} attacker(s), {seconds:.0f} s: RSS {base / 1024:.1f} MiB before, peak "
          f"{peak / 1024:.1f} MiB (+{(peak - base) / 1024:.1f} MiB); ping p50 {pct(0.5):.2f} ms "
          f"p99 {pct(0.99):.2f} ms max {lat[-1] if lat else float('nan'):.2f} ms ({len(lat)} pings); "
          f"sent {tally['sent'] / MIB:.0f} MiB, {tally['whole']} whole commands "
          f"{tally['replies']}, {tally['closed']} sends failed {tally['errors']}")


if __name__ == '__main__':
    main()
