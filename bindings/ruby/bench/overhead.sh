#!/bin/sh
# overhead.sh - measure the overhead of Ruby handlers over C handlers per linear workflow.
#
#   bindings/ruby/bench/overhead.sh [BUILD_DIR] [N]     (defaults: build 50)
#
# Starts a private PostgreSQL in a temporary directory, a tasker server, a C worker
# (examples/templates) and a Ruby worker (examples/ruby/templates) from BUILD_DIR, runs
# overhead.rb (N tasks of each kind), then stops everything and removes the directory.
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
N=${2:-50}
TASKER=$BUILD/tasker
RUBY_WORKER=$BUILD/bindings/ruby/bin/tasker-ruby-worker
[ -x "$TASKER" ] && [ -x "$RUBY_WORKER" ] || { echo "build first: cmake --build $BUILD" >&2; exit 1; }

TMP=$(mktemp -d /tmp/tasker-rb-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=""
cleanup() {
    for pid in $PIDS; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $PIDS; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
    "$TASKER" db stop --data-dir "$TMP/pg" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# start NAME CMD...: run in the background (in this shell, so PIDS keeps it), wait for its
# banner; the port it ends with is then in $TMP/NAME.port
start() {
    name=$1; shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" &
    PIDS="$! $PIDS"
    for _ in $(seq 300); do
        if [ -s "$TMP/$name.out" ]; then
            sed -n '1s/.*:\([0-9][0-9]*\).*/\1/p' "$TMP/$name.out" >"$TMP/$name.port"
            return
        fi
        sleep 0.1
    done
    echo "$name did not start; its log:" >&2; cat "$TMP/$name.log" >&2; exit 1
}

"$TASKER" db start --data-dir "$TMP/pg" >/dev/null 2>&1
URL=$("$TASKER" db url --data-dir "$TMP/pg")
"$TASKER" db migrate --database-url "$URL" -q
start server "$TASKER" server --database-url "$URL" --port 0
start c-worker "$TASKER" worker --database-url "$URL" --templates "$SRC/examples/templates" --port 0
start rb-worker "$RUBY_WORKER" --database-url "$URL" --templates "$SRC/examples/ruby/templates" \
    --handlers "$SRC/examples/ruby/handlers" --port 0
ruby "$SRC/bindings/ruby/bench/overhead.rb" "http://127.0.0.1:$(cat "$TMP/server.port")" "$N"
