#!/usr/bin/env bash
# Scale-out on one machine: three reactor-rpc instances serving the Redis
# protocol on loopback, twemproxy (nutcracker) in front of them with the pool
# of deploy/nutcracker.yml (ketama, md5, auto_eject_hosts) on free ports.
#
#   1. redis-benchmark and redis-cli through the proxy, no errors;
#   2. 3,000 keys set through the proxy land evenly: each instance's DBSIZE
#      within +-20% of a third, else failure;
#   3. one instance stopped: the proxy ejects it (its stats count the eject)
#      and new SETs/GETs succeed again after at most a few retries.
#
# Exits non-zero on any failure; every step has a time bound; the instances
# and the proxy are stopped on exit. Builds the release binary when missing.
#
# Usage: scripts/cluster.sh [--bin PATH]
# Needs: apt-get install -y nutcracker redis-tools
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for tool in nutcracker redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || {
        echo "$tool not found: apt-get install -y nutcracker redis-tools" >&2
        exit 2
    }
done
if [ -z "$BIN" ]; then
    BIN=$ROOT/target/release/reactor-rpc
    [ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked --quiet --bin reactor-rpc)
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
    exit 1
}

# Ports nobody listens on (and that this script has not handed out yet), below
# the ephemeral range so that no outgoing connection takes one meanwhile.
TAKEN=" "
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768-)
        case "$TAKEN" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            TAKEN="$TAKEN$p "
            echo "$p"
            return
        fi
    done
    fail "no free port"
}

rcli() { timeout 10 redis-cli -h 127.0.0.1 "$@"; }

# Waits until redis-cli PING on port $1 answers PONG.
wait_pong() {
    for _ in $(seq 200); do
        [ "$(rcli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    fail "nothing answers PING on port $1"
}

# 1. Three instances.
PORTS=()
NODE_PIDS=()
for i in 0 1 2; do
    port=$(free_port)
    "$BIN" serve --addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" --log-level info \
        2> "$TMP/node$i.log" &
    PIDS+=($!)
    NODE_PIDS+=($!)
    PORTS+=("$port")
done
for port in "${PORTS[@]}"; do wait_pong "$port"; done
echo "instances: ${PORTS[*]/#/127.0.0.1:}"

# 2. nutcracker with deploy/nutcracker.yml's pool, on free ports.
PROXY=$(free_port)
STATS=$(free_port)
awk -v listen="127.0.0.1:$PROXY" -v p0="${PORTS[0]}" -v p1="${PORTS[1]}" -v p2="${PORTS[2]}" '
    /^ *listen:/ { sub(/listen:.*/, "listen: " listen) }
    /^ *- 127\.0\.0\.1:[0-9]+:1 node0/ { sub(/:[0-9]+:1 /, ":" p0 ":1 ") }
    /^ *- 127\.0\.0\.1:[0-9]+:1 node1/ { sub(/:[0-9]+:1 /, ":" p1 ":1 ") }
    /^ *- 127\.0\.0\.1:[0-9]+:1 node2/ { sub(/:[0-9]+:1 /, ":" p2 ":1 ") }
    { print }' "$ROOT/deploy/nutcracker.yml" > "$TMP/nutcracker.yml"
for p in "$PROXY" "${PORTS[@]}"; do
    grep -q "127.0.0.1:$p" "$TMP/nutcracker.yml" || fail "port $p missing from the generated config"
done
nutcracker -t -c "$TMP/nutcracker.yml" > "$TMP/check.log" 2>&1 || fail "nutcracker -t rejects the config"
nutcracker -c "$TMP/nutcracker.yml" -s "$STATS" -a 127.0.0.1 -i 200 -o "$TMP/nutcracker.log" &
PIDS+=($!)
PROXY_PID=$!
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PROXY") 2>/dev/null && break
    sleep 0.05
done
echo "nutcracker $(nutcracker --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1) on 127.0.0.1:$PROXY (stats on $STATS)"

# The proxy's stats JSON: one field of server $2 in pool reactor_rpc, or a pool field.
proxy_stat() {
    timeout 5 python3 -c '
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
pool = json.loads(data)["reactor_rpc"]
print(pool[sys.argv[2]][sys.argv[3]] if len(sys.argv) > 3 else pool[sys.argv[2]])
' "$STATS" "$@"
}

# 3. The real clients through the proxy.
[ "$(rcli -p "$PROXY" set greeting hello)" = OK ] || fail "SET through the proxy"
[ "$(rcli -p "$PROXY" get greeting)" = hello ] || fail "GET through the proxy"
[ "$(rcli -p "$PROXY" incrby counter 5)" = 5 ] || fail "INCRBY through the proxy"
# MSET and MGET are split by key across the instances and joined again.
[ "$(rcli -p "$PROXY" mset m:1 one m:2 two m:3 three m:4 four)" = OK ] || fail "MSET through the proxy"
[ "$(rcli -p "$PROXY" mget m:1 m:2 m:3 m:4 m:none | tr '\n' ' ')" = "one two three four  " ] \
    || fail "MGET through the proxy: $(rcli -p "$PROXY" mget m:1 m:2 m:3 m:4 m:none | tr '\n' ' ')"
[ "$(rcli -p "$PROXY" del m:1 m:2 m:3 m:4)" = 4 ] || fail "DEL of many keys through the proxy"
echo "redis-cli through the proxy: SET/GET/INCRBY/MSET/MGET ok"
timeout 60 redis-benchmark -h 127.0.0.1 -p "$PROXY" -t set,get,incr -n 30000 -c 20 -P 4 -r 100000 \
    -q > "$TMP/bench.out" 2> "$TMP/bench.err" || fail "redis-benchmark through the proxy: $(cat "$TMP/bench.err")"
if grep -qi 'error' "$TMP/bench.out" "$TMP/bench.err"; then
    fail "redis-benchmark reported errors: $(cat "$TMP/bench.out" "$TMP/bench.err")"
fi
echo "redis-benchmark through the proxy (-c 20 -P 4, 30,000 requests per test):"
tr '\r' '\n' < "$TMP/bench.out" | grep 'requests per second' | sed 's/^/  /'

# 4. 3,000 keys through the proxy, spread evenly.
rcli -p "$PROXY" del greeting counter > /dev/null
for port in "${PORTS[@]}"; do rcli -p "$port" flushall > /dev/null; done
seq 1 3000 | awk '{ print "SET key:" $1 " " $1 }' > "$TMP/set.txt"
timeout 60 redis-cli -h 127.0.0.1 -p "$PROXY" < "$TMP/set.txt" > "$TMP/set.out" \
    || fail "setting 3,000 keys through the proxy"
oks=$(grep -c '^OK$' "$TMP/set.out" || true)
[ "$oks" = 3000 ] || fail "$oks of 3,000 SETs answered OK"
total=0
spread=""
COUNTS=()
for i in 0 1 2; do
    n=$(rcli -p "${PORTS[$i]}" dbsize)
    COUNTS+=("$n")
    total=$((total + n))
    spread="$spread node$i=$n"
    if [ "$n" -lt 800 ] || [ "$n" -gt 1200 ]; then
        echo "spread:$spread" >&2
        fail "node$i holds $n keys, outside 1000 +-20%"
    fi
done
[ "$total" = 3000 ] || fail "the instances hold $total keys, not 3,000"
echo "3,000 keys through the proxy:$spread (each within 1000 +-20%)"

# 5. Stop node1: the proxy ejects it and serves the rest.
kill "${NODE_PIDS[1]}"
wait "${NODE_PIDS[1]}" 2>/dev/null || true
echo "stopped node1 (127.0.0.1:${PORTS[1]})"
retries=0
for k in $(seq 1 200); do
    ok=0
    # A request that lands on node1 fails until the proxy has counted
    # server_failure_limit (2) failures and ejected it; every
    # server_retry_timeout (2 s) the proxy tries node1 again, and up to two
    # more requests fail. So no key needs more than a few attempts.
    for _ in $(seq 1 5); do
        if [ "$(rcli -p "$PROXY" set "after:$k" "$k" 2>/dev/null)" = OK ] \
            && [ "$(rcli -p "$PROXY" get "after:$k" 2>/dev/null)" = "$k" ]; then
            ok=1
            break
        fi
        retries=$((retries + 1))
        sleep 0.2
    done
    [ "$ok" = 1 ] || fail "after:$k still failing after 5 attempts with node1 stopped"
done
sleep 0.5 # the proxy aggregates its stats every 200 ms (-i 200)
ejects=$(proxy_stat server_ejects)
[ "$ejects" -ge 1 ] || fail "the proxy's server_ejects is $ejects ($retries failed attempts)"
after0=$(rcli -p "${PORTS[0]}" dbsize)
after2=$(rcli -p "${PORTS[2]}" dbsize)
[ $((after0 + after2)) = $((COUNTS[0] + COUNTS[2] + 200)) ] \
    || fail "node0 + node2 hold $((after0 + after2)) keys, not their $((COUNTS[0] + COUNTS[2])) + 200"
echo "node1 ejected (server_ejects=$ejects); 200 new SET+GET pairs through the proxy ok, $retries failed attempt(s) in all, none needing more than 5; node0=$after0 node2=$after2"
# Keys that lived on node0/node2 are still there (retrying the proxy's
# periodic retry of node1, as above).
missing=0
for k in $(seq 1 50); do
    for _ in $(seq 1 5); do
        v=$(rcli -p "$PROXY" get "key:$k")
        case "$v" in ERR*) sleep 0.2 ;; *) break ;; esac
    done
    [ -z "$v" ] && missing=$((missing + 1))
    [ -z "$v" ] || [ "$v" = "$k" ] || fail "key:$k reads $v"
done
echo "of key:1..50, $missing lived on node1 (gone with it); the rest read back"
kill -0 "$PROXY_PID" 2>/dev/null || fail "nutcracker exited"
echo "cluster: ok"
