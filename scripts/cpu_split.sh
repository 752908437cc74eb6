#!/usr/bin/env bash
# User and system CPU per request of a running Redis-protocol server under
# redis-benchmark: reads utime and stime from /proc/PID/stat before and after.
# Shows where a server's time goes at pipeline 1 (BENCHMARKS.md, "RESP: the
# same client for both").
#
# Usage: scripts/cpu_split.sh PID PORT get|set PIPELINE REQUESTS
# Prints: user_us_per_req system_us_per_req total user_share
set -euo pipefail
if [ $# -ne 5 ]; then sed -n '2,8p' "$0"; exit 2; fi
pid=$1 port=$2 cmd=$3 pipeline=$4 n=$5
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
redis-benchmark -p "$port" -t "$cmd" -n "$n" -c 50 -P "$pipeline" -q >/dev/null
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
tck=$(getconf CLK_TCK)
python3 -c "
u = ($u1 - $u0) / $tck / $n * 1e6
s = ($s1 - $s0) / $tck / $n * 1e6
print(f'user {u:.2f} us/req  system {s:.2f} us/req  total {u + s:.2f}  user share {100 * u / (u + s):.0f} %')"
