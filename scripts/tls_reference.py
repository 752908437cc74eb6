#!/usr/bin/env python3
"""TLS and authentication, side by side with Redis 7 built with TLS (issue 18's figures).

Starts redis-server with --tls-port and our `serve --resp-tls-addr` on the same certificates
(made here with openssl, in a temporary directory), then, in one run, alternating the two
servers for each figure:

  cpu      server CPU per request over TLS: redis-benchmark --tls -t get,set -c 50 at -P 1 and
           -P 16, (utime + stime) of each server from /proc/PID/stat before and after.
  hs       full handshakes per second: redis-benchmark --tls -k 0 -t ping_mbulk (a new TLS
           connection for every request, TLS 1.3 with ECDHE, no resumption), requests per
           second as redis-benchmark reports them, and each server's CPU per handshake.
  idle     RSS per idle TLS connection: N connections, each through its handshake and one PING,
           then left open; (RSS with them - RSS before) / N for each server.
  auth     what authentication costs once a connection is logged in: our server with a users
           file and redis-benchmark --user/-a, against the same server without users, GET and
           SET at -P 1 and -P 16 over plaintext RESP (CPU per request).

Usage: tls_reference.py [--bin PATH] [--runs K] [--n1 N] [--n16 N] [--hs-n N] [--idle N]
                        [--only cpu,hs,idle,auth]
Loopback only; every server and socket is closed at the end. Needs redis-server and
redis-benchmark built with TLS (Debian's are), openssl, and a release build of ours.
"""
import argparse, os, re, shutil, socket, ssl, statistics, subprocess, sys, tempfile, time

HOST = '127.0.0.1'
HZ = os.sysconf('SC_CLK_TCK')


def ticks(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    return int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{pid}/status').read()).group(1))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, tls_ctx=None, within=10.0):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f'nothing listens on {port} after {within} s')


def make_certs(d):
    def run(*args):
        subprocess.run(args, check=True, capture_output=True)
    run('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', f'{d}/ca.key', '-out', f'{d}/ca.crt', '-days', '2', '-subj', '/CN=bench CA')
    run('openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', f'{d}/server.key', '-out', f'{d}/server.csr', '-subj', '/CN=localhost')
    with open(f'{d}/ext', 'w') as f:
        f.write('subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    run('openssl', 'x509', '-req', '-in', f'{d}/server.csr', '-CA', f'{d}/ca.crt', '-CAkey',
        f'{d}/ca.key', '-CAcreateserial', '-out', f'{d}/server.crt', '-days', '2', '-extfile', f'{d}/ext')
    os.chmod(f'{d}/server.key', 0o600)


def bench(port, args, tls_dir=None, auth=None):
    cmd = ['redis-benchmark', '-h', HOST, '-p', str(port), '-q'] + args
    if tls_dir:
        cmd += ['--tls', '--cacert', f'{tls_dir}/ca.crt']
    if auth:
        cmd += ['--user', auth[0], '-a', auth[1]]
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = out.stdout + out.stderr
    if out.returncode != 0 or 'error' in text.lower():
        sys.exit(f'redis-benchmark failed: {" ".join(cmd)}\n{text}')
    return text


def cpu_us(pid, port, args, n, **kw):
    t0 = ticks(pid)
    text = bench(port, args + ['-n', str(n)], **kw)
    t1 = ticks(pid)
    return (t1 - t0) * 1e6 / HZ / n, text


def rps(text):
    m = re.findall(r'([\d.]+) requests per second', text)
    return float(m[-1]) if m else float('nan')


def idle_rss(pid, port, tls_dir, n):
    ctx = ssl.create_default_context(cafile=f'{tls_dir}/ca.crt')
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(n):
            raw = socket.create_connection((HOST, port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname='localhost')
            s.sendall(b'*1\r\n$4\r\nPING\r\n')
            got = b''
            while not got.endswith(b'\r\n'):
                chunk = s.recv(64)
                if not chunk:
                    sys.exit('a connection closed before PONG')
                got += chunk
            socks.append(s)
        time.sleep(0.5)  # let the server settle after the last handshake
        after = rss_kib(pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=None)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--n1', type=int, default=100_000)
    ap.add_argument('--n16', type=int, default=1_000_000)
    ap.add_argument('--hs-n', type=int, default=20_000)
    ap.add_argument('--idle', type=int, default=2000)
    ap.add_argument('--only', default='cpu,hs,idle,auth')
    a = ap.parse_args()
    parts = set(a.only.split(','))
    binary = a.bin or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'target',
                                   'release', 'reactor-rpc')
    for tool in ('redis-server', 'redis-benchmark', 'openssl'):
        if not shutil.which(tool):
            sys.exit(f'{tool} not found: apt-get install -y redis-server redis-tools openssl')
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    d = tempfile.mkdtemp()
    procs = []
    try:
        make_certs(d)
        rport, oport, plain, plain_auth = free_port(), free_port(), free_port(), free_port()
        redis = subprocess.Popen(
            ['redis-server', '--port', '0', '--tls-port', str(rport), '--bind', HOST,
             '--tls-cert-file', f'{d}/server.crt', '--tls-key-file', f'{d}/server.key',
             '--tls-ca-cert-file', f'{d}/ca.crt', '--tls-auth-clients', 'no',
             '--save', '', '--appendonly', 'no', '--maxclients', '10000',
             '--logfile', f'{d}/redis.log'])
        procs.append(redis)
        ours = subprocess.Popen(
            [binary, 'serve', '--model', 'reactor', '--addr', 'none', '--resp-tls-addr',
             f'{HOST}:{oport}', '--tls-cert-file', f'{d}/server.crt', '--tls-key-file',
             f'{d}/server.key', '--log-level', 'warn', '--max-conns', '20000'],
            stderr=subprocess.DEVNULL)
        procs.append(ours)
        wait_port(rport)
        wait_port(oport)
        version = subprocess.run(['redis-server', '--version'], capture_output=True,
                                 text=True).stdout.strip()
        load = open('/proc/loadavg').read().split()[:3]
        print(f'redis: {version}')
        print(f'machine: {os.cpu_count()} CPUs, load {" ".join(load)}')
        servers = [('redis', redis.pid, rport), ('ours', ours.pid, oport)]

        if 'cpu' in parts:
            print(f'\nCPU per request over TLS: redis-benchmark --tls -c 50, {a.n1} requests at -P 1, '
                  f'{a.n16} at -P 16, {a.runs} alternating runs')
            print(f'{"run":>3} {"cmd":>4} {"P":>3} {"redis us/req":>13} {"ours us/req":>12} {"ours/redis":>10}')
            ratios = {}
            for run in range(1, a.runs + 1):
                for cmd in ('get', 'set'):
                    for p in (1, 16):
                        n = a.n1 if p == 1 else a.n16
                        args = ['-t', cmd, '-c', '50', '-P', str(p)]
                        r, _ = cpu_us(redis.pid, rport, args, n, tls_dir=d)
                        o, _ = cpu_us(ours.pid, oport, args, n, tls_dir=d)
                        ratios.setdefault((cmd, p), []).append(o / r)
                        print(f'{run:>3} {cmd:>4} {p:>3} {r:>13.3f} {o:>12.3f} {o / r:>10.3f}')
            for (cmd, p), v in sorted(ratios.items()):
                target = 0.9 if p == 1 else 0.8
                print(f'median ours/redis CPU per request over TLS, {cmd} -P {p}: '
                      f'{statistics.median(v):.3f}  (target <= {target})')

        if 'hs' in parts:
            print(f'\nFull handshakes: redis-benchmark --tls -k 0 -t ping_mbulk -c 50 -n {a.hs_n} '
                  '(a new TLS connection per request)')
            print(f'{"run":>3} {"server":>6} {"handshakes/s":>13} {"CPU us/handshake":>17}')
            per = {'redis': [], 'ours': []}
            cpu = {'redis': [], 'ours': []}
            for run in range(1, a.runs + 1):
                for name, pid, port in servers:
                    c, text = cpu_us(pid, port, ['-k', '0', '-t', 'ping_mbulk', '-c', '50'],
                                     a.hs_n, tls_dir=d)
                    per[name].append(rps(text))
                    cpu[name].append(c)
                    print(f'{run:>3} {name:>6} {rps(text):>13.0f} {c:>17.1f}')
            rm, om = statistics.median(per['redis']), statistics.median(per['ours'])
            print(f'median handshakes/s: redis {rm:.0f}, ours {om:.0f}, ours/redis {om / rm:.3f} '
                  '(target >= 1)')
            print(f'median server CPU per handshake: redis {statistics.median(cpu["redis"]):.1f} us, '
                  f'ours {statistics.median(cpu["ours"]):.1f} us')

        if 'idle' in parts:
            print(f'\nRSS per idle TLS connection: {a.idle} connections, each after its handshake '
                  'and one PING')
            for run in range(1, a.runs + 1):
                row = []
                for name, pid, port in servers:
                    row.append(f'{name} {idle_rss(pid, port, d, a.idle):.1f} KiB')
                    time.sleep(1)
                print(f'{run:>3} ' + ', '.join(row))

        if 'auth' in parts:
            users = f'{d}/users'
            pw = 'bench-password-0123456789'
            h = subprocess.run([binary, 'hash-password'], input=pw, capture_output=True,
                               text=True, check=True).stdout.strip()
            with open(users, 'w') as f:
                f.write(f'bench {h} write\n')
            os.chmod(users, 0o600)
            open_srv = subprocess.Popen(
                [binary, 'serve', '--model', 'reactor', '--addr', f'{HOST}:0', '--resp-addr',
                 f'{HOST}:{plain}', '--log-level', 'warn'], stderr=subprocess.DEVNULL)
            auth_srv = subprocess.Popen(
                [binary, 'serve', '--model', 'reactor', '--addr', f'{HOST}:0', '--resp-addr',
                 f'{HOST}:{plain_auth}', '--users-file', users, '--log-level', 'warn'],
                stderr=subprocess.DEVNULL)
            procs += [open_srv, auth_srv]
            wait_port(plain)
            wait_port(plain_auth)
            print(f'\nAuthentication once logged in: plaintext RESP, redis-benchmark -c 50, ours '
                  'without users vs ours with a users file (--user/-a)')
            print(f'{"run":>3} {"cmd":>4} {"P":>3} {"open us/req":>12} {"auth us/req":>12} {"auth/open":>10}')
            ratios = {}
            for run in range(1, a.runs + 1):
                for cmd in ('get', 'set'):
                    for p in (1, 16):
                        n = a.n1 if p == 1 else a.n16
                        args = ['-t', cmd, '-c', '50', '-P', str(p)]
                        o, _ = cpu_us(open_srv.pid, plain, args, n)
                        w, _ = cpu_us(auth_srv.pid, plain_auth, args, n, auth=('bench', pw))
                        ratios.setdefault((cmd, p), []).append(w / o)
                        print(f'{run:>3} {cmd:>4} {p:>3} {o:>12.3f} {w:>12.3f} {w / o:>10.3f}')
            for (cmd, p), v in sorted(ratios.items()):
                print(f'median auth/open CPU per request, {cmd} -P {p}: {statistics.median(v):.3f}')
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
