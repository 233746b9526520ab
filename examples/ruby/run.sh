#!/bin/sh
# run.sh - the Ruby example in one command: examples/ruby/run.sh (from anywhere).
#
# Builds tasker (make build), starts `tasker dev` (a private PostgreSQL in ./.tasker, the
# server on :$PORT, a C worker for examples/templates) and the Ruby worker for
# examples/ruby, runs each Ruby workflow once and prints it, then serves until Ctrl-C.
# Environment: BUILD (build), PORT (8080), DATA_DIR (.tasker/pgdata).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
PORT=${PORT:-8080}
DATA_DIR=${DATA_DIR:-.tasker/pgdata}
make build BUILD="$BUILD"

LOG=$(mktemp /tmp/tasker-ruby-example.XXXXXX)
DEV=""
RB=""
cleanup() {
    [ -n "$RB" ] && kill -TERM "$RB" 2>/dev/null && wait "$RB" 2>/dev/null || true
    [ -n "$DEV" ] && kill -TERM "$DEV" 2>/dev/null && wait "$DEV" 2>/dev/null || true
    rm -f "$LOG" "$LOG.task"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BUILD/tasker" dev --port "$PORT" --data-dir "$DATA_DIR" --templates examples/templates &
DEV=$!
i=0
until curl -sf "http://localhost:$PORT/health" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 300 ] || { echo "run.sh: tasker dev did not start" >&2; exit 1; }
    sleep 0.2
done

"$BUILD/bindings/ruby/bin/tasker-ruby-worker" --templates examples/ruby/templates \
    --handlers examples/ruby/handlers --database-url "$("$BUILD/tasker" db url --data-dir "$DATA_DIR")" --port 0 >"$LOG" &
RB=$!
i=0
until [ -s "$LOG" ]; do
    i=$((i + 1))
    [ "$i" -lt 300 ] || { echo "run.sh: the Ruby worker did not start" >&2; exit 1; }
    sleep 0.1
done
cat "$LOG"

for workflow in linear_workflow_rb:mathematical_sequence diamond_workflow_rb:diamond_pattern \
    complex_dag_workflow_rb:complex_dag tree_workflow_rb:hierarchical_tree; do
    echo
    "$BUILD/tasker" task create --url "http://localhost:$PORT" --namespace "${workflow%%:*}" \
        --name "${workflow#*:}" --context "{\"even_number\": 6, \"run\": \"$(date +%s%N)\"}" \
        --wait --json >"$LOG.task"
    # the steps' results, as the Ruby handlers computed them
    ruby -rjson -rnet/http -e '
        task = JSON.parse(File.read(ARGV[0]))
        puts "#{task["namespace"]}/#{task["name"]}: #{task["status"]}"
        steps = JSON.parse(Net::HTTP.get(URI("#{ARGV[1]}/v1/tasks/#{task["task_uuid"]}/workflow_steps")))
        steps.sort_by { |s| s["name"] }.each { |s| puts "  #{s["name"]} = #{s.dig("results", "result", "value")}" }
    ' "$LOG.task" "http://localhost:$PORT"
done
echo
echo "Serving: tasker on http://localhost:$PORT, Ruby handlers in examples/ruby/handlers. Ctrl-C stops."
wait "$RB"
