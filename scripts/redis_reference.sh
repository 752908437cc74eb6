#!/usr/bin/env bash
# Redis reference: server CPU per request (and, with --strace,
# syscalls per request) of redis-server under redis-benchmark, next to ours
# under `reactor-rpc bench`, same shape: 50 connections, ping, pipeline 1 and
# 16, a fixed number of requests, on the same machine in the same run.
#
# CPU per request = (utime + stime) of the server from /proc/PID/stat, before
# and after the run, divided by the requests. Only the ratio ours/redis is
# meaningful on a shared machine; runs alternate redis/ours and the median of
# the ratios is printed at the end.
#
# With --resp, the same client for both: redis-benchmark -c 50 at -P 1 and
# -P 16, GET and SET (-t get,set), MSET of 10 keys (-t mset) and MGET of 10
# keys (a custom command), against redis-server and against our `serve
# --resp-addr` (the reactor model), alternating, CPU per request of each
# server from /proc/PID/stat, median of the ratios per command and depth.
# --commands picks some of get,set,mset,mget.
#
# Usage: scripts/redis_reference.sh [--runs K] [--requests-p1 N] [--requests-p16 N]
#                                   [--strace] [--strace-requests N] [--bin PATH] [--resp]
#                                   [--commands get,set,mset,mget]
# Needs: apt-get install -y redis-server redis-tools jq   (and strace for --strace)
set -euo pipefail
shopt -s inherit_errexit # a failing command inside $(...) fails the script too

RUNS=3
N1=300000
N16=3000000
STRACE=0
STRACE_N=200000
CONNS=50
BIN=""
RESP=0
COMMANDS="get set mset mget"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --requests-p1) N1=$2; shift 2 ;;
        --requests-p16) N16=$2; shift 2 ;;
        --strace) STRACE=1; shift ;;
        --strace-requests) STRACE_N=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --resp) RESP=1; shift ;;
        --commands) COMMANDS=${2//,/ }; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

for tool in redis-server redis-benchmark redis-cli; do
    if ! command -v "$tool" >/dev/null; then
        echo "$tool not found: apt-get update && apt-get install -y redis-server redis-tools" >&2
        exit 2
    fi
done
if [ "$STRACE" = 1 ] && ! command -v strace >/dev/null; then
    echo "strace not found: apt-get install -y strace" >&2
    exit 2
fi
if [ -z "$BIN" ]; then
    cd "$(dirname "$0")/.."
    cargo build --release --quiet
    BIN=$PWD/target/release/reactor-rpc
fi

HZ=$(getconf CLK_TCK)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# utime + stime in clock ticks; the command name may hold spaces, so cut after ')'.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# A port nobody listens on.
free_port() {
    local p
    for p in $(seq 6390 6490); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "no free port in 6390-6490" >&2; exit 1
}

RPORT=$(free_port)
redis-server --save '' --appendonly no --port "$RPORT" --bind 127.0.0.1 \
    --logfile "$TMP/redis.log" &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 100); do
    [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
[ "$(redis-cli -p "$RPORT" ping)" = PONG ] || { echo "redis-server did not start" >&2; exit 1; }
echo "redis: $(redis-server --version | head -1)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

# redis CPU µs per request for pipeline $1, $2 requests.
redis_cpu() {
    local t0 t1
    t0=$(ticks "$RPID")
    redis-benchmark -h 127.0.0.1 -p "$RPORT" -t ping_mbulk -c "$CONNS" -P "$1" -n "$2" -q \
        > "$TMP/rb.out"
    t1=$(ticks "$RPID")
    awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$2" 'BEGIN { printf "%.3f", d * 1e6 / hz / n }'
}

# Our CPU µs per request: `bench --spawn reactor` measures it over the same shape.
ours_cpu() {
    "$BIN" bench --spawn reactor --conns "$CONNS" --pipeline "$1" --batch --requests "$2" \
        --warmup 0 --json "$TMP/ours.json" > "$TMP/ours.out"
    awk -v v="$(jq -r '.server.cpu_us_per_request' "$TMP/ours.json")" 'BEGIN { printf "%.3f", v }'
}

# Syscalls (all but futex) of PID per request while COMMAND... runs $2 requests.
syscalls_per_request() {
    local pid=$1 n=$2; shift 2
    strace -c -f -p "$pid" -o "$TMP/strace.out" 2>/dev/null &
    local spid=$!
    sleep 0.5 # let strace attach to every thread
    "$@" > /dev/null
    kill -INT "$spid"; wait "$spid" || true
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && $NF != "total" && $NF != "futex" { c += $4 }
        END { printf "%.3f", c / n }' "$TMP/strace.out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [ "$RESP" = 1 ]; then
    OPORT=$(free_port)
    [ "$OPORT" != "$RPORT" ] || OPORT=$((RPORT + 1))
    "$BIN" serve --model reactor --addr 127.0.0.1:0 --resp-addr "127.0.0.1:$OPORT" \
        --log-level warn &
    OPID=$!
    PIDS+=("$OPID")
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$OPORT" ping 2>/dev/null)" = PONG ] && break
        sleep 0.05
    done
    [ "$(redis-cli -p "$OPORT" ping)" = PONG ] || { echo "our server did not start" >&2; exit 1; }

    # The redis-benchmark arguments for command $1: a built-in test, or MGET
    # of 10 keys (redis-benchmark has no MGET test; MSET's keys are the same
    # literal name without -r, so MGET reads that one key ten times too).
    bench_args() {
        case "$1" in
            mget) echo "MGET key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__ key:{tag}:__rand_int__" ;;
            *) echo "-t $1" ;;
        esac
    }

    # CPU µs per request of server PID $1 on port $2 under redis-benchmark ($3) -P $4 -n $5.
    resp_cpu() {
        local t0 t1
        t0=$(ticks "$1")
        # shellcheck disable=SC2046 # the arguments are split on purpose
        redis-benchmark -h 127.0.0.1 -p "$2" -c "$CONNS" -P "$4" -n "$5" -q $(bench_args "$3") \
            > "$TMP/rb.out" 2>&1
        t1=$(ticks "$1")
        if grep -qi error "$TMP/rb.out"; then cat "$TMP/rb.out" >&2; exit 1; fi
        awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$5" 'BEGIN { printf "%.3f", d * 1e6 / hz / n }'
    }

    # MGET reads what MSET wrote: one MSET first, on each server.
    for port in "$RPORT" "$OPORT"; do
        redis-benchmark -h 127.0.0.1 -p "$port" -c 1 -n 1 -q -t mset > /dev/null 2>&1
    done
    echo "RESP: redis-benchmark {$COMMANDS} -c $CONNS -P {1,16} against redis-server and reactor-rpc --resp-addr (reactor)"
    printf '\n%-4s %-4s %-3s %14s %14s %8s\n' run cmd P "redis us/req" "ours us/req" ours/redis
    declare -A RR
    for run in $(seq "$RUNS"); do
        for cmd in $COMMANDS; do
            for P in 1 16; do
                N=$([ "$P" = 1 ] && echo "$N1" || echo "$N16")
                r=$(resp_cpu "$RPID" "$RPORT" "$cmd" "$P" "$N")
                o=$(resp_cpu "$OPID" "$OPORT" "$cmd" "$P" "$N")
                ratio=$(awk -v o="$o" -v r="$r" 'BEGIN { printf "%.3f", o / r }')
                printf '%-4s %-4s %-3s %14s %14s %8s\n' "$run" "$cmd" "$P" "$r" "$o" "$ratio"
                RR[$cmd$P]="${RR[$cmd$P]:-} $ratio"
            done
        done
    done
    echo
    for cmd in $COMMANDS; do
        for P in 1 16; do
            # shellcheck disable=SC2086 # the list is split on purpose
            echo "median ours/redis CPU per request, $cmd -P $P: $(median ${RR[$cmd$P]})  (target <= 0.8)"
        done
    done
    exit 0
fi

printf '\n%-4s %-3s %14s %14s %8s\n' run P "redis us/req" "ours us/req" ours/redis
RATIOS1=()
RATIOS16=()
for run in $(seq "$RUNS"); do
    for P in 1 16; do
        N=$([ "$P" = 1 ] && echo "$N1" || echo "$N16")
        r=$(redis_cpu "$P" "$N")
        o=$(ours_cpu "$P" "$N")
        ratio=$(awk -v o="$o" -v r="$r" 'BEGIN { printf "%.3f", o / r }')
        printf '%-4s %-3s %14s %14s %8s\n' "$run" "$P" "$r" "$o" "$ratio"
        if [ "$P" = 1 ]; then RATIOS1+=("$ratio"); else RATIOS16+=("$ratio"); fi
    done
done
echo
echo "median ours/redis CPU per request: pipeline 1: $(median "${RATIOS1[@]}"), pipeline 16: $(median "${RATIOS16[@]}")  (target <= 0.8)"

if [ "$STRACE" = 1 ]; then
    "$BIN" serve --model reactor --addr 127.0.0.1:0 --log-level info --log-file "$TMP/ours.log" &
    OPID=$!
    PIDS+=("$OPID")
    for _ in $(seq 100); do
        grep -q "listening on" "$TMP/ours.log" 2>/dev/null && break
        sleep 0.05
    done
    OADDR=$(grep -o 'listening on [^ ]*' "$TMP/ours.log" | head -1 | cut -d' ' -f3)
    [ -n "$OADDR" ] || { echo "our server did not start" >&2; exit 1; }
    echo
    echo "syscalls per request (strace -c -f -p PID around $STRACE_N requests, futex not counted)"
    printf '%-3s %12s %12s\n' P redis ours
    for P in 1 16; do
        r=$(syscalls_per_request "$RPID" "$STRACE_N" redis-benchmark -h 127.0.0.1 -p "$RPORT" \
            -t ping_mbulk -c "$CONNS" -P "$P" -n "$STRACE_N" -q)
        o=$(syscalls_per_request "$OPID" "$STRACE_N" "$BIN" bench --addr "$OADDR" \
            --server-pid "$OPID" --conns "$CONNS" --pipeline "$P" --batch --requests "$STRACE_N" \
            --warmup 0)
        printf '%-3s %12s %12s\n' "$P" "$r" "$o"
    done
fi
