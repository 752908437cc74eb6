#!/usr/bin/env python3
"""The metrics-port attack of BENCHMARKS.md (issue 19, item 2): CONNS connections to the metrics
port that pipeline `GET /metrics` and never read a reply, while a client pings the RPC port.

Usage: metrics_attacks.py RPC_PORT METRICS_PORT SERVER_PID [CONNS] [SECONDS]
(defaults: 100 connections, 10 s). Loopback only (127.0.0.1), and bounded: each scraper sends at
most 256 KiB of requests (about 6 500 scrapes), non-blocking, so the script never waits on a
server that stopped reading it; every socket is closed at the end. Start the server with
`--metrics-max-conns` at least CONNS so that every scraper is served (beyond the limit a
scraper gets a 503 and a close, which is no attack). Prints how many scrapers were served, the
RPC ping's median, p99 and worst (a new connection per ping, every 20 ms, as
memory_attacks.py does), the server's CPU use over the attack, its RSS growth, and the growth of
the host's TCP memory (/proc/net/sockstat: every socket of the host, the scrapers' own included)."""
import os, re, socket, struct, sys, time, json, resource

h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
HOST = '127.0.0.1'
REQUEST = b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'
BUDGET = 256 * 1024  # bytes of requests one scraper may send


def rss_kib(pid):
    return int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{pid}/status').read()).group(1))


def tcp_mem_kib():
    line = next(l for l in open('/proc/net/sockstat') if l.startswith('TCP:'))
    return int(line.split('mem')[1].split()[0]) * os.sysconf('SC_PAGE_SIZE') // 1024


def cpu_s(pid):
    # utime + stime, in clock ticks, fields 14 and 15 after the command name.
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def frame(obj):
    b = json.dumps(obj).encode()
    return struct.pack('<I', len(b)) + b


def ping_ms(port):
    t = time.perf_counter()
    s = socket.create_connection((HOST, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(frame({"in": "ping", "params": "p"}))
    got = b''
    while len(got) < 4:
        got += s.recv(4 - len(got)) or b'!' * 4
    n = struct.unpack('<I', got[:4])[0]
    body = b''
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            break
        body += chunk
    s.close()
    if b'pong' not in body:
        raise SystemExit(f'the ping was not answered: {body!r}')
    return (time.perf_counter() - t) * 1000


def push(scrapers, sent, payload):
    """Sends each scraper as much of its budget as its socket takes now, never blocking."""
    for i, s in enumerate(scrapers):
        if s is None or sent[i] >= BUDGET:
            continue
        try:
            sent[i] += s.send(payload[: BUDGET - sent[i]])
        except BlockingIOError:
            pass
        except OSError:
            scrapers[i] = None  # refused or reset: it no longer counts


def main():
    rpc, metrics, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
    payload = REQUEST * (64 * 1024 // len(REQUEST) + 1)
    base_rss, base_cpu, base_tcp = rss_kib(pid), cpu_s(pid), tcp_mem_kib()
    scrapers, sent = [], []
    for _ in range(conns):
        s = socket.create_connection((HOST, metrics), timeout=10)
        s.setblocking(False)
        scrapers.append(s)
        sent.append(0)
    push(scrapers, sent, payload)
    # Served scrapers get a 200 (which they never read); refused ones a 503 and a close.
    time.sleep(0.2)
    served = 0
    for s in scrapers:
        try:
            head = s.recv(12, socket.MSG_PEEK)
            served += head.startswith(b'HTTP/1.1 200')
        except BlockingIOError:
            pass
        except OSError:
            pass
    pings, peak, peak_tcp = [], base_rss, base_tcp
    start = time.perf_counter()
    t0_cpu = cpu_s(pid)
    while time.perf_counter() - start < seconds:
        push(scrapers, sent, payload)
        pings.append(ping_ms(rpc))
        peak = max(peak, rss_kib(pid))
        peak_tcp = max(peak_tcp, tcp_mem_kib())
        time.sleep(0.02)
    wall = time.perf_counter() - start
    cpu = cpu_s(pid) - t0_cpu
    for s in scrapers:
        if s is not None:
            s.close()
    pings.sort()
    p = lambda q: pings[min(len(pings) - 1, int(q * len(pings)))]
    print(f'{conns} pipelining scrapers ({served} served, {sum(sent) // 1024} KiB of requests sent), '
          f'{len(pings)} pings over {wall:.1f} s: median {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, '
          f'worst {pings[-1]:.2f} ms; server CPU {100 * cpu / wall:.0f} % of a core; '
          f'RSS {base_rss / 1024:.1f} -> peak {peak / 1024:.1f} MiB; '
          f'host TCP memory +{(peak_tcp - base_tcp) / 1024:.1f} MiB')


main()
