#!/usr/bin/env python3
"""The pool under idle connections (issue 19, item 8) for BENCHMARKS.md: starts BINARY as
`serve --model pool --pool-size N` with RESP and metrics ports, holds every pool thread with an idle
client that was served once (N on the JSON port, N on the RESP port, one keep-alive scraper on the
metrics port), then times a new client of each port from connect to its first answer, RUNS times.
Usage: pool_idle.py BINARY [N] [RUNS] [IDLE_TIMEOUT_S]; prints what each new client got and when."""
import json, re, socket, struct, subprocess, sys, threading, time

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
idle = sys.argv[4] if len(sys.argv) > 4 else '300'

server = subprocess.Popen(
    [binary, 'serve', '--model', 'pool', '--pool-size', str(n), '--idle-timeout', idle,
     '--addr', '127.0.0.1:0', '--resp-addr', '127.0.0.1:0', '--metrics-addr', '127.0.0.1:0'],
    stderr=subprocess.PIPE, text=True)
ports = {}
while len(ports) < 3:
    line = server.stderr.readline()
    m = re.search(r'(?:(resp|metrics) )?listening on 127\.0\.0\.1:(\d+)', line)
    if m:
        ports[m.group(1) or 'rpc'] = int(m.group(2))
# The log goes on: read it, so that the server never blocks on a full pipe.
threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()


def frame(obj):
    b = json.dumps(obj).encode()
    return struct.pack('<I', len(b)) + b


def read_exact(s, k):
    d = b''
    while len(d) < k:
        c = s.recv(k - len(d))
        if not c:
            raise EOFError('closed')
        d += c
    return d


def read_until(s, end):
    d = b''
    while not d.endswith(end):
        c = s.recv(1)
        if not c:
            raise EOFError('closed')
        d += c
    return d


def json_answer(s):
    body = read_exact(s, struct.unpack('<I', read_exact(s, 4))[0])
    r = json.loads(body)
    return r['result']['code'] if r.get('out') == 'error' else 'served'


def resp_answer(s):
    return read_until(s, b'\r\n').decode().strip()


def http_answer(s):
    head = read_until(s, b'\r\n\r\n').decode()
    length = int(re.search(r'(?i)content-length: *(\d+)', head).group(1))
    read_exact(s, length)
    return head.split('\r\n')[0]


PING = b'*1\r\n$4\r\nPING\r\n'
GET = b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'
kinds = {
    'rpc': (frame({'in': 'ping', 'params': 'p'}), json_answer),
    'resp': (PING, resp_answer),
    'metrics': (GET, http_answer),
}


def client(kind):
    s = socket.create_connection(('127.0.0.1', ports[kind]))
    s.settimeout(float(idle) + 30)
    request, answer = kinds[kind]
    s.sendall(request)
    return s, answer(s)


held = [client('rpc')[0] for _ in range(n)] + [client('resp')[0] for _ in range(n)]
held.append(client('metrics')[0])
print(f'{binary}: pool of {n}, every thread held by an idle client; idle timeout {idle} s')
for run in range(runs):
    figures = []
    for kind in ('rpc', 'resp', 'metrics'):
        t = time.monotonic()
        try:
            s, what = client(kind)
            s.close()
        except (OSError, EOFError) as e:
            what = f'no answer ({e})'
        figures.append(f'{kind} {(time.monotonic() - t) * 1000:.0f} ms ({what})')
    print(f'run {run + 1}: ' + ', '.join(figures))
server.terminate()
server.wait()
