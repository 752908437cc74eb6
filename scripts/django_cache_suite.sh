#!/usr/bin/env bash
# A real cache backend's own test suite against our RESP port: Django's cache tests
# (`tests/cache` of Django's source, 599 tests), with the default cache set to
# django.core.cache.backends.redis.RedisCache, a thin layer over redis-py. The suite runs
# against redis-server first, then against `serve --resp-addr` in each model given, and the
# outcomes must be the same: every test passes, and the same ones are skipped.
#
# Usage: scripts/django_cache_suite.sh [--bin PATH] [--models reactor,tokio,...] [--no-redis]
# Needs: python3 with pip (Django's source and its two dependencies come from PyPI), redis-py,
# redis-server. Django's source is kept in target/django between runs. Loopback only; every
# server is stopped at the end.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

DJANGO=5.1.4
BIN=target/release/reactor-rpc
MODELS=reactor
REDIS=1
while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --models) MODELS=${2//,/ }; shift 2 ;;
        --no-redis) REDIS=0; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "no server binary at $BIN: cargo build --release" >&2; exit 2; }

WORK=target/django
source_dir() { local d; for d in "$WORK"/[Dd]jango-"$DJANGO"; do if [ -d "$d/tests/cache" ]; then echo "$d"; fi; done; }
SRC=$(source_dir | sed -n 1p)
if [ -z "$SRC" ]; then
    mkdir -p "$WORK"
    python3 -m pip download -q --no-deps --no-binary :all: "django==$DJANGO" -d "$WORK"
    tar -xzf "$(ls "$WORK"/[Dd]jango-"$DJANGO".tar.gz | sed -n 1p)" -C "$WORK"
    SRC=$(source_dir | sed -n 1p)
    [ -n "$SRC" ] || { echo "no tests/cache in Django's source under $WORK" >&2; exit 1; }
fi
for module in asgiref sqlparse; do
    python3 -c "import $module" 2>/dev/null \
        || python3 -m pip install -q "$module" || python3 -m pip install -q --break-system-packages "$module"
done
cat > "$SRC/tests/reactor_rpc_cache_settings.py" <<'EOF'
import os
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3"},
    "other": {"ENGINE": "django.db.backends.sqlite3"},
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_URL"],
    },
}
EOF

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # port pid: until the port answers PING, the server exits, or 10 s pass
    local i
    for i in $(seq 200); do
        python3 - "$1" <<'EOF' 2>/dev/null && return 0
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(7) == b"+PONG\r\n" else 1)
EOF
        kill -0 "$2" 2>/dev/null || { echo "the server exited before answering" >&2; return 1; }
        sleep 0.05
    done
    echo "no answer on port $1 after 10 s" >&2
    return 1
}
SERVER=""
trap '[ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true' EXIT

# Runs the suite against the RESP server on port $2, named $1; prints its summary line.
suite() {
    local out rc=0
    out=$(cd "$SRC/tests" && REDIS_URL="redis://127.0.0.1:$2" PYTHONPATH=.. \
        timeout 900 python3 runtests.py cache --settings=reactor_rpc_cache_settings --parallel 1 \
        --noinput 2>&1) || rc=$?
    local ran summary
    ran=$(printf '%s\n' "$out" | grep -oE '^Ran [0-9]+ tests' || true)
    summary=$(printf '%s\n' "$out" | grep -E '^(OK|FAILED)' | tail -1 || true)
    printf '%-22s %s: %s\n' "$1" "${ran:-no tests ran}" "${summary:-no summary}"
    if [ "$rc" != 0 ]; then
        printf '%s\n' "$out" | grep -E '^(ERROR|FAIL):|Error:|Error\b' | head -20 >&2
        return 1
    fi
    RESULT="$ran $summary"
}

status=0
expected=""
if [ "$REDIS" = 1 ]; then
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --loglevel warning >/dev/null & SERVER=$!
    wait_for "$port" "$SERVER"
    suite "redis-server $(redis-server --version | grep -o 'v=[0-9.]*')" "$port" || status=1
    expected=${RESULT:-}
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
fi
for model in $MODELS; do
    port=$(free_port)
    "$BIN" serve --model "$model" --addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" \
        --log-level warn & SERVER=$!
    wait_for "$port" "$SERVER"
    RESULT=""
    suite "reactor-rpc $model" "$port" || status=1
    if [ -n "$expected" ] && [ -n "$RESULT" ] && [ "$RESULT" != "$expected" ]; then
        echo "reactor-rpc $model: not the outcome Redis had ($expected)" >&2
        status=1
    fi
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
done
exit $status
