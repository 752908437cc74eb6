#!/usr/bin/env python3
"""The cache memory targets at full scale, against a running server (BENCHMARKS.md, "Memory").

  memory_targets.py fill PORT PID [OFFERED_MIB]
      `set` unique keys with 100 KiB values, pipelined 64 deep, OFFERED_MIB in total (default 1024),
      pinging on a second connection after every batch; prints peak RSS, the slowest ping and the
      server's eviction counters. Run the server with `--maxmemory 256m`.
  memory_targets.py ttl PORT PID [KEYS]
      `set` KEYS keys (default 200 000) with `ttl_ms: 1`, never read them, and time until `stats`
      reports 0 keys; prints RSS before, at the peak and after.
"""
import json, re, socket, struct, sys, time


def rss_kib(pid):
    return int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{pid}/status').read()).group(1))


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack('<I', len(body)) + body


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.buf = b''

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack('<I', self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return json.loads(body)
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise ConnectionError('server closed the connection')
            self.buf += chunk

    def call(self, method, params):
        self.s.sendall(frame({'in': method, 'params': params}))
        return self.recv()


def main():
    mode, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    writer, pinger = Conn(port), Conn(port)
    base = rss_kib(pid)
    peak = base
    if mode == 'fill':
        offered_mib = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
        value = 'v' * (100 * 1024)
        n = offered_mib * 1024 // 100
        worst = 0.0
        errors = {}
        depth = 64
        for start in range(0, n, depth):
            batch = range(start, min(start + depth, n))
            writer.s.sendall(b''.join(frame({'in': 'set', 'params': {'key': f'fill:{i}', 'value': value}}) for i in batch))
            for _ in batch:
                r = writer.recv()
                if 'error' in r:
                    errors[r['error']['code']] = errors.get(r['error']['code'], 0) + 1
            t = time.monotonic()
            pinger.call('ping', 'p')
            worst = max(worst, (time.monotonic() - t) * 1000)
            peak = max(peak, rss_kib(pid))
        stats = pinger.call('stats', None)['result']
        print(f'fill: offered {offered_mib} MiB in {n} sets of 100 KiB; RSS {base / 1024:.1f} -> peak '
              f'{peak / 1024:.1f} MiB; keys {stats["keys"]}, used_memory {stats["used_memory"] / 2**20:.1f} MiB, '
              f'evicted {stats["evicted_keys"]}; errors {errors or "none"}; worst ping {worst:.1f} ms')
    elif mode == 'ttl':
        keys = int(sys.argv[4]) if len(sys.argv) > 4 else 200_000
        depth = 1000
        for start in range(0, keys, depth):
            batch = range(start, min(start + depth, keys))
            writer.s.sendall(b''.join(frame({'in': 'set', 'params': {'key': f'ttl:{i}', 'value': i, 'ttl_ms': 1}}) for i in batch))
            for _ in batch:
                writer.recv()
        last_set = time.monotonic()
        peak = max(peak, rss_kib(pid))
        while True:
            stats = pinger.call('stats', None)['result']
            peak = max(peak, rss_kib(pid))
            if stats['keys'] == 0:
                break
            if time.monotonic() - last_set > 60:
                print(f'ttl: {stats["keys"]} keys still there after 60 s')
                sys.exit(1)
            time.sleep(0.01)
        gone = time.monotonic() - last_set
        print(f'ttl: {keys} keys with ttl_ms 1 gone {gone:.2f} s after the last set (expired_keys '
              f'{stats["expired_keys"]}); RSS {base / 1024:.1f} -> peak {peak / 1024:.1f} -> after '
              f'{rss_kib(pid) / 1024:.1f} MiB')
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
