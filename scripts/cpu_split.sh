#!/usr/bin/env bash
# User and system CPU per request of a running Redis-protocol server under
# redis-benchmark: reads utime and stime from /proc/PID/stat before and after.
# Shows where a server's time goes at pipeline 1 (BENCHMARKS.md, "RESP: the
# same client for both").
#
# Usage: scripts/cpu_split.sh PID PORT get|set|mset|mget PIPELINE REQUESTS
# (mset: redis-benchmark's, 10 keys; mget: 10 random keys of key:0..99999, which an mset run
# fills first)
# Prints: user_us_per_req system_us_per_req total user_share
set -euo pipefail
if [ $# -ne 5 ]; then sed -n '2,8p' "$0"; exit 2; fi
pid=$1 port=$2 cmd=$3 pipeline=$4 n=$5
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
if [ "$cmd" = mget ]; then
    redis-benchmark -p "$port" -t mset -n 100000 -r 100000 -q >/dev/null  # before the figures
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    k=key:__rand_int__
    redis-benchmark -p "$port" -n "$n" -c 50 -P "$pipeline" -r 100000 -q MGET $k $k $k $k $k $k $k $k $k $k >/dev/null
else
    redis-benchmark -p "$port" -t "$cmd" -n "$n" -c 50 -P "$pipeline" -q >/dev/null
fi
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
tck=$(getconf CLK_TCK)
python3 -c "
u = ($u1 - $u0) / $tck / $n * 1e6
s = ($s1 - $s0) / $tck / $n * 1e6
print(f'user {u:.2f} us/req  system {s:.2f} us/req  total {u + s:.2f}  user share {100 * u / (u + s):.0f} %')"
