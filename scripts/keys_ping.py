#!/usr/bin/env python3
"""Issue 17's bounds at full scale, per model: a RESP PING on another connection while
`KEYS *` walks a keyspace of KEYS keys, and while `FLUSHALL ASYNC` drops it.

For each model: start `serve --model M --resp-addr` (release binary), fill KEYS keys with
pipelined MSETs of 1000 keys, then run `KEYS *` ROUNDS times on one connection while another
connection sends PING every 2 ms and times each reply; only pings sent while a KEYS was
outstanding count (the pinger and the walker are separate processes, so the client's own
work does not show as latency). Then one `FLUSHALL ASYNC` the same way (its own reply time, and the pings
around it, including the housekeeping's freeing in steps afterwards, for 2 s).

Usage: keys_ping.py [--bin PATH] [--keys N] [--rounds K] [--models reactor,threaded,...]
Loopback only; bounded in count and time; the server is stopped at the end of each model.
Prints one line per model: KEYS time, ping p50 / p99 / max during KEYS, FLUSHALL ASYNC reply
time, ping max during and after it.
"""
import argparse, multiprocessing, os, socket, statistics, subprocess, sys, time

HOST = '127.0.0.1'


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
        self.s = socket.create_connection((HOST, port), timeout=60)
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

    def exact(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError('closed')
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def reply(self):
        """Reads one reply; for an array, counts its elements without keeping them."""
        line = self.line()
        kind = line[:1]
        if kind == b'$':
            n = int(line[1:])
            if n >= 0:
                self.exact(n + 2)
            return line
        if kind == b'*':
            for _ in range(max(int(line[1:]), 0)):
                self.reply()
            return line
        return line


def ping_loop(port, stop, out):
    """PING every 2 ms until `stop`; sends back (start, latency) of each."""
    c = Conn(port)
    samples = []
    while not stop.is_set():
        t0 = time.monotonic()
        c.s.sendall(b'*1\r\n$4\r\nPING\r\n')
        assert c.line() == b'+PONG'
        samples.append((t0, time.monotonic() - t0))
        time.sleep(0.002)
    out.put(samples)


def walk(port, nkeys, rounds, out):
    """`KEYS *` `rounds` times, then `FLUSHALL ASYNC`; sends back their spans."""
    c = Conn(port)
    spans = []
    for _ in range(rounds):
        t0 = time.monotonic()
        c.s.sendall(cmd('KEYS', '*'))
        head = c.line()
        assert head == b'*%d' % nkeys, head[:80]
        # Each key is two lines ($len, then the name): count line ends, in C
        # (LF alone: a CRLF may be cut between two reads).
        lines = c.buf.count(b'\n')
        while lines < 2 * nkeys:
            chunk = c.s.recv(1 << 22)
            if not chunk:
                raise EOFError('closed')
            lines += chunk.count(b'\n')
        c.buf = b''
        spans.append((t0, time.monotonic()))
        time.sleep(0.2)
    t0 = time.monotonic()
    c.s.sendall(cmd('FLUSHALL', 'ASYNC'))
    assert c.line() == b'+OK'
    flush = (t0, time.monotonic())
    c.s.sendall(cmd('DBSIZE'))
    assert c.line() == b':0'
    out.put((spans, flush))


def run_model(binary, model, nkeys, rounds):
    port = free_port()
    server = subprocess.Popen(
        [binary, 'serve', '--model', model, '--addr', f'{HOST}:0', '--resp-addr', f'{HOST}:{port}',
         '--log-level', 'warn', '--maxmemory', '0'], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                loader = Conn(port)
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit(f'{model}: the server did not start')
                time.sleep(0.05)
        batch = 1000
        for start in range(0, nkeys, batch * 50):
            payload = []
            for b in range(start, min(start + batch * 50, nkeys), batch):
                args = ['MSET']
                for i in range(b, min(b + batch, nkeys)):
                    args += [f'key:{i:09d}', 'v']
                payload.append(cmd(*args))
            loader.s.sendall(b''.join(payload))
            for _ in payload:
                assert loader.reply() == b'+OK'
        loader.s.sendall(cmd('DBSIZE'))
        assert loader.reply() == b':%d' % nkeys, 'keys loaded'

        # The pinger and the walker are processes of their own: in threads,
        # the client's own work (the GIL) would show as server latency.
        ctx = multiprocessing.get_context('fork')
        pings = ctx.Queue()
        stop = ctx.Event()
        pinger = ctx.Process(target=ping_loop, args=(port, stop, pings))
        pinger.start()
        time.sleep(0.5)
        walks = ctx.Queue()
        walker = ctx.Process(target=walk, args=(port, nkeys, rounds, walks))
        walker.start()
        keys_spans, flush_span = walks.get(timeout=600)
        walker.join()
        time.sleep(2)  # the housekeeping frees the detached keys in steps meanwhile
        stop.set()
        samples = pings.get(timeout=60)
        pinger.join()
        during = sorted(dt for t0, dt in samples
                        if any(a <= t0 + dt and t0 <= b for a, b in keys_spans))
        flush_end = flush_span[1] + 2.0
        after_flush = [dt for t0, dt in samples if flush_span[0] <= t0 <= flush_end]
        keys_times = [b - a for a, b in keys_spans]
        p99 = during[min(len(during) - 1, int(len(during) * 0.99))]
        print(f'{model:>9}: KEYS * over {nkeys} keys {statistics.median(keys_times) * 1e3:7.0f} ms '
              f'(median of {rounds}); ping during KEYS: n={len(during)} p50 '
              f'{statistics.median(during) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max '
              f'{during[-1] * 1e3:.2f} ms; FLUSHALL ASYNC replied in '
              f'{(flush_span[1] - flush_span[0]) * 1e3:.2f} ms, ping max over the next 2 s '
              f'{max(after_flush) * 1e3:.2f} ms (n={len(after_flush)})', flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=None)
    ap.add_argument('--keys', type=int, default=1_000_000)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--models', default='reactor,threaded,pool,tokio,tokio-mt')
    a = ap.parse_args()
    binary = a.bin or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'target',
                                   'release', 'reactor-rpc')
    print(f'machine: {os.cpu_count()} CPUs, load {" ".join(open("/proc/loadavg").read().split()[:3])}')
    for model in a.models.split(','):
        run_model(binary, model, a.keys, a.rounds)


if __name__ == '__main__':
    main()
