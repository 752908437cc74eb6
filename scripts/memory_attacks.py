#!/usr/bin/env python3
"""Memory attacks of BENCHMARKS.md at full scale: `crowd` (4 000 connections announcing 1 MiB
frames), `gets` (500 non-reading connections x 8 gets of a 1 MiB value) or `resp-gets` (the same
with RESP GET; PORT is then the --resp-addr port, and the pings are RESP PINGs). Usage:
memory_attacks.py crowd|gets|resp-gets PORT SERVER_PID; prints RSS growth and the slowest ping."""
import socket, struct, json, time, sys, resource, subprocess, re
h=resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
def rss(pid): return int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{pid}/status').read()).group(1))
def frame(obj): b=json.dumps(obj).encode(); return struct.pack('<I', len(b))+b
def recv_frame(s):
    h=b''
    while len(h)<4: h+=s.recv(4-len(h))
    n=struct.unpack('<I',h)[0]; d=b''
    while len(d)<n: d+=s.recv(n-len(d))
    return json.loads(d)
def ping(port):
    s=socket.create_connection(('127.0.0.1',port)); t=time.time(); s.sendall(frame({"in":"ping","params":"p"})); recv_frame(s); s.close(); return (time.time()-t)*1000
def cmd(*a): return b'*%d\r\n' % len(a) + b''.join(b'$%d\r\n%s\r\n' % (len(x), x) for x in a)
def resp_ping(port):
    s=socket.create_connection(('127.0.0.1',port)); t=time.time(); s.sendall(cmd(b'PING')); d=b''
    while not d.endswith(b'\r\n'): d+=s.recv(100)
    s.close(); return (time.time()-t)*1000
mode=sys.argv[1]; port=int(sys.argv[2]); pid=int(sys.argv[3])
if mode=='resp-gets': ping=resp_ping
base=rss(pid); conns=[]; worst=0
if mode=='crowd':
    for i in range(4000):
        s=socket.create_connection(('127.0.0.1',port)); s.sendall(struct.pack('<I',1<<20)+b'{'); conns.append(s)
        if i%500==0: worst=max(worst,ping(port))
elif mode=='resp-gets':
    c=socket.create_connection(('127.0.0.1',port)); c.sendall(cmd(b'SET', b'big', b'v'*((1<<20)-100))); c.recv(10)
    base=rss(pid)
    req=cmd(b'GET', b'big')*8
    for i in range(500):
        s=socket.create_connection(('127.0.0.1',port)); s.sendall(req); conns.append(s)
        if i%50==0: worst=max(worst,ping(port))
else:
    c=socket.create_connection(('127.0.0.1',port)); c.sendall(frame({"in":"set","params":{"key":"big","value":"v"*((1<<20)-100)}})); recv_frame(c)
    base=rss(pid)
    req=b''.join(frame({"in":"get","params":{"key":"big"},"id":i}) for i in range(8))
    for i in range(500):
        s=socket.create_connection(('127.0.0.1',port)); s.sendall(req); conns.append(s)
        if i%50==0: worst=max(worst,ping(port))
peak=base
for _ in range(10):
    peak=max(peak,rss(pid)); worst=max(worst,ping(port)); time.sleep(0.2)
print(f"{mode}: base {base/1024:.1f} MiB peak {peak/1024:.1f} MiB (+{(peak-base)/1024:.1f} MiB); worst ping {worst:.1f} ms")
