#!/usr/bin/env python3
"""Issue 17's other bounds at full scale, per model: what a few commands that ask for a lot cost
the server, while another connection pings it.

For each model, a server with `--resp-addr`, `--maxmemory MAXMEMORY` and `--max-command 256m` (a
1M-pair MSET is refused at its header under the default 64m):
  mset     one MSET of PAIRS pairs (about 30 MB of command), its reply time, the ping around it;
  scan     SCAN 0 COUNT 1000000000 over those keys: its reply time and how many keys one step
           returns (the step is capped), the ping around it;
  setrange SETRANGE k 536870912 x (one byte past 512 MiB): the error, its time, the RSS change;
  oom      with the cache filled near --maxmemory, an APPEND and a SETRANGE that would pass it:
           the OOM error, the RSS change (nothing allocated for the refused value).

Usage: cache_bounds.py [--bin PATH] [--pairs N] [--models reactor,...] [--maxmemory BYTES]
Loopback only; bounded; each server is stopped at the end of its model.
"""
import argparse, multiprocessing, os, re, socket, subprocess, sys, time

HOST = '127.0.0.1'


def rss_kib(pid):
    return int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{pid}/status').read()).group(1))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cmd(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=120)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''

    def line(self):
        while b'\r\n' not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError('closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def skip_scan_reply(self):
        """Reads SCAN's reply `*2 $cursor [keys]`; returns the number of keys."""
        assert self.line() == b'*2'
        self.line()
        self.line()  # the cursor
        n = int(self.line()[1:])
        lines = self.buf.count(b'\n')
        while lines < 2 * n:
            chunk = self.s.recv(1 << 22)
            lines += chunk.count(b'\n')
        self.buf = b''
        return n


def ping_loop(port, stop, out):
    c = Conn(port)
    samples = []
    while not stop.is_set():
        t0 = time.monotonic()
        c.s.sendall(b'*1\r\n$4\r\nPING\r\n')
        assert c.line() == b'+PONG'
        samples.append((t0, time.monotonic() - t0))
        time.sleep(0.002)
    out.put(samples)


def worst_during(samples, span):
    a, b = span
    during = [dt for t0, dt in samples if a <= t0 + dt and t0 <= b]
    return (max(during) * 1e3 if during else 0.0), len(during)


def run_model(binary, model, pairs, maxmemory):
    port = free_port()
    server = subprocess.Popen(
        [binary, 'serve', '--model', model, '--addr', f'{HOST}:0', '--resp-addr', f'{HOST}:{port}',
         '--log-level', 'warn', '--maxmemory', str(maxmemory),
         # A 1M-pair MSET is 2M arguments: 94 MB as --max-command counts it (32 bytes an
         # argument), refused at its `*N` header under the default 64m. Raised here so that
         # it runs, and the input total with it (it must hold one such command).
         '--max-command', '256m', '--max-input-total', '512m'], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                c = Conn(port)
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit(f'{model}: the server did not start')
                time.sleep(0.05)
        ctx = multiprocessing.get_context('fork')
        stop, q = ctx.Event(), ctx.Queue()
        pinger = ctx.Process(target=ping_loop, args=(port, stop, q))
        pinger.start()
        time.sleep(0.3)
        spans = {}

        args = ['MSET']
        for i in range(pairs):
            args += [f'key:{i:09d}', 'v']
        payload = cmd(*args)
        t0 = time.monotonic()
        c.s.sendall(payload)
        assert c.line() == b'+OK'
        spans['mset'] = (t0, time.monotonic())

        t0 = time.monotonic()
        c.s.sendall(cmd('SCAN', '0', 'COUNT', '1000000000'))
        scanned = c.skip_scan_reply()
        spans['scan'] = (t0, time.monotonic())

        before = rss_kib(server.pid)
        t0 = time.monotonic()
        c.s.sendall(cmd('SETRANGE', 'big', '536870912', 'x'))
        setrange_err = c.line().decode()
        spans['setrange'] = (t0, time.monotonic())
        setrange_rss = rss_kib(server.pid) - before

        # Fill the cache close to --maxmemory with 1 MiB values, then ask for more.
        c.s.sendall(cmd('FLUSHALL'))
        assert c.line() == b'+OK'
        mib = b'y' * (1 << 20)
        i = 0
        while True:
            c.s.sendall(cmd('SET', f'fill:{i}', mib))
            r = c.line()
            if r != b'+OK':
                break
            i += 1
            if i > maxmemory // (1 << 20) + 16:
                break
        c.s.sendall(cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'))
        assert c.line() == b'+OK'
        # Eviction left some room below the bound: take it with 64 KiB values until refused.
        pad = b'p' * (64 << 10)
        for j in range(10_000):
            c.s.sendall(cmd('SET', f'pad:{j}', pad))
            if c.line().startswith(b'-OOM'):
                break
        before = rss_kib(server.pid)
        t0 = time.monotonic()
        c.s.sendall(cmd('APPEND', 'fill:0', b'z' * (512 << 10)))  # under --max-frame (1 MiB)
        append_err = c.line().decode()
        c.s.sendall(cmd('SETRANGE', 'fresh', str(maxmemory), 'z'))
        setrange_oom = c.line().decode()
        spans['oom'] = (t0, time.monotonic())
        oom_rss = rss_kib(server.pid) - before

        stop.set()
        samples = q.get(timeout=60)
        pinger.join()
        ms = lambda k: (spans[k][1] - spans[k][0]) * 1e3
        print(f'{model:>9}: MSET of {pairs} pairs {ms("mset"):.0f} ms, ping max during '
              f'{worst_during(samples, spans["mset"])[0]:.1f} ms | SCAN COUNT 1e9: {scanned} keys '
              f'in {ms("scan"):.1f} ms, ping max {worst_during(samples, spans["scan"])[0]:.1f} ms | '
              f'SETRANGE past 512 MiB: "{setrange_err[:60]}" in {ms("setrange"):.2f} ms, RSS '
              f'{setrange_rss:+d} KiB | at maxmemory: APPEND "{append_err[:40]}", SETRANGE '
              f'"{setrange_oom[:40]}", RSS {oom_rss:+d} KiB', flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=None)
    ap.add_argument('--pairs', type=int, default=1_000_000)
    ap.add_argument('--maxmemory', type=int, default=256 << 20)
    ap.add_argument('--models', default='reactor,threaded,pool,tokio,tokio-mt')
    a = ap.parse_args()
    binary = a.bin or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'target',
                                   'release', 'reactor-rpc')
    print(f'machine: {os.cpu_count()} CPUs, load {" ".join(open("/proc/loadavg").read().split()[:3])}')
    for model in a.models.split(','):
        run_model(binary, model, a.pairs, a.maxmemory)


if __name__ == '__main__':
    main()
