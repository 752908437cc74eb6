#!/usr/bin/env python3
"""The MULTI attack of issue 19 (item 4): ATTACKERS connections each open a transaction and queue
about 1 MiB of arguments (16 SETs of 64 KiB), then stay connected; meanwhile a victim runs
redis-py's default `pipeline()` (a MULTI/EXEC) and a transaction of its own as large as its fair
share of the 64 MiB total allows.
Before the fix the 64 MiB total was shared by all, so 64 attackers made every other MULTI fail.

Usage: multi_attack.py RESP_PORT SERVER_PID [ATTACKERS]   (default 64)
Loopback only; the attackers' sockets are closed at the end. Prints how many attackers were
refused while queueing (each keeps what its share allows), the victim's results, and the
server's RSS before and with the transactions held.
"""
import re, socket, sys, time

import redis

HOST = '127.0.0.1'


def rss_kib(pid):
    return int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{pid}/status').read()).group(1))


def cmd(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


def read_line(s, buf):
    while b'\r\n' not in buf[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError
        buf[0] += chunk
    line, buf[0] = buf[0].split(b'\r\n', 1)
    return line


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    attackers = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    before = rss_kib(pid)
    value = b'x' * (64 * 1024)
    socks, refused = [], 0
    for i in range(attackers):
        s = socket.create_connection((HOST, port), timeout=30)
        buf = [b'']
        s.sendall(cmd('MULTI'))
        assert read_line(s, buf) == b'+OK'
        for j in range(16):
            s.sendall(cmd('SET', f'a{i}:{j}', value))
            line = read_line(s, buf)
            if line != b'+QUEUED':
                refused += 1
                break
        socks.append(s)
    held = rss_kib(pid)
    r = redis.Redis(host=HOST, port=port, socket_timeout=30)
    t0 = time.time()
    pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.set('victim', 'v')
    pipe.incr('victim:n')
    pipe.get('victim')
    result = pipe.execute()
    pipe_ms = (time.time() - t0) * 1e3
    # The victim's own transaction, as large as its share allows: T / n, n the transactions open
    # (the attackers' and its own), each SET counted at its value, key and name plus 48 bytes an
    # argument and 64 a command (PROTOCOL.md, MULTI).
    share = (64 << 20) // (attackers + 1)
    fits = max(1, share // (len(value) + 3 + 8 + 3 * 48 + 64))
    big = r.pipeline()
    for j in range(fits):
        big.set(f'v:{j}', value)
    big_ok = all(big.execute())
    print(f'{attackers} attackers holding open transactions: {attackers - refused} queued all 16 '
          f'SETs of 64 KiB (1 MiB), {refused} were refused part-way (their share reached)')
    print(f"victim: redis-py pipeline() -> {result} in {pipe_ms:.1f} ms; its own transaction of "
          f"{fits} SETs of 64 KiB (its share, {share / 1024:.0f} KiB) "
          f"{'committed' if big_ok else 'FAILED'}")
    print(f'server RSS: {before / 1024:.1f} MiB before, {held / 1024:.1f} MiB with the '
          f'transactions held')
    for s in socks:
        s.close()


if __name__ == '__main__':
    main()
