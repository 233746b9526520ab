#!/bin/sh
# test_bench_cli.sh - a quick smoke test of `tasker bench` (the full suites take minutes and
# want a quiet, durable machine: they are run by `make bench`, not here): help and usage
# errors, the floor, a small sql run, a few e2e rounds and a small throughput run with
# batched submission against the test server with the JSON they write, and `bench compare`
# verdicts and exit codes.
set -u
T="${TASKER_BIN:?run through ctest}"
server_url=$(cat "$TK_TEST_PG_DIR/server_url")
query="${server_url#*\?}"
db="postgresql:///cli_bench?$query"
failures=0
export PGOPTIONS="-c client_min_messages=warning"
unset DATABASE_URL TASKER_CONFIG_PATH
dir=$(mktemp -d)
out="$dir/out"
err="$dir/err"
. "$(dirname "$0")/lib.sh"

cleanup() {
    for d in cli_bench tasker_bench tasker_bench_sql_200 tasker_bench_tp; do
        psql "$server_url" -X -q -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1
    done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

expect "bench --help" 0 "tasker bench compare [--per-floor] BASE.json NEW.json" -- "$T" bench --help
expect "bench --help lists the suites" 0 "throughput" -- "$T" bench --help
for suite in floor sql notify e2e throughput all; do
    expect "bench $suite --help" 0 "Usage: tasker bench $suite" -- "$T" bench "$suite" --help
done
expect "bench without suite" 2 "missing suite" -- "$T" bench
expect "bench unknown suite" 2 'unknown suite "speed"' -- "$T" bench speed
expect "bench unknown suite in a list" 2 'unknown suite "sql,speed"' -- "$T" bench sql,speed
expect "bench all inside a list" 2 'unknown suite "all,e2e"' -- "$T" bench all,e2e
expect "bench empty list" 2 'unknown suite ","' -- "$T" bench ,
expect "bench bad option" 2 "Try 'tasker bench --help'" -- "$T" bench floor --frobnicate
expect "bench bad --tasks" 2 "--tasks needs a number" -- "$T" bench sql --tasks many
expect "bench bad --workflow" 2 "--workflow is linear or noop" -- "$T" bench throughput --workflow x
expect "bench bad --submit-batch" 2 "--submit-batch needs a number from 1 to 100000" -- \
    "$T" bench throughput --submit-batch 0
expect "bench throughput --help names --submit-batch" 0 "--submit-batch B" -- \
    "$T" bench throughput --help
expect "bench compare needs two files" 2 "compare needs two files" -- "$T" bench compare a.json
expect "bench compare unreadable file" 1 "could not read" -- \
    "$T" bench compare "$dir/none.json" "$dir/none.json"
if grep -qF "(line" "$err"; then
    echo "not ok - compare: a missing file's error has no line number"; cat "$err"
    failures=$((failures + 1))
else
    echo "ok - compare: a missing file's error has no line number"
fi
printf '{"floor": \n  [' > "$dir/broken.json"
expect "bench compare malformed file" 1 "could not read" -- \
    "$T" bench compare "$dir/broken.json" "$dir/broken.json"
check "compare: a malformed file's error names the line" "$err" "(line 2)"
expect "bench unreachable database" 1 "could not" -- \
    "$T" bench floor --quick --database-url "postgresql://tasker@127.0.0.1:1/tasker" \
    --json "$dir/x.json"

psql "$server_url" -X -q -c "DROP DATABASE IF EXISTS cli_bench WITH (FORCE)" \
    -c "CREATE DATABASE cli_bench TEMPLATE tasker_template" >/dev/null

expect "bench floor --quick" 0 "SELECT 1 round trip" -- \
    "$T" bench floor --quick --iterations 100 --database-url "$db" --json "$dir/floor.json"
check "floor JSON has the floor" "$dir/floor.json" '"select1_p50_us"'
check "floor JSON keeps the other keys" "$dir/floor.json" '"throughput": null'
check "floor JSON describes the machine" "$dir/floor.json" '"synchronous_commit"'
# SELECT 1 by CPU placement: measured when both processes can be pinned, else a reason
if grep -qF "SELECT 1 pinned: two CPUs" "$out"; then
    check "floor JSON has SELECT 1 on two CPUs" "$dir/floor.json" '"select1_two_cpus_p50_us"'
else
    check "floor says why SELECT 1 by placement is missing" "$out" "by CPU placement not measured"
fi

expect "bench sql --quick --tasks 200" 0 "get_step_transitive_dependencies" -- \
    "$T" bench sql --quick --tasks 200 --iterations 30 --database-url "$db" --json "$dir/sql.json"
check "sql output has the transitions" "$out" "scenario=4 (evaluating_results->complete)"
check "sql output has the lock floor" "$out" "row locks alone"
check "sql JSON rows" "$dir/sql.json" '"function": "get_next_ready_tasks"'
check "sql JSON dataset size" "$dir/sql.json" '"tasks": 200'
# a comma list runs its suites in one process, in the usual order whatever the list's
expect "bench sql,floor reuses the dataset" 0 "dataset reused" -- \
    "$T" bench sql,floor --quick --tasks 200 --iterations 10 --database-url "$db" \
    --json "$dir/sql2.json"
check "sql,floor output has the floor" "$out" "SELECT 1 round trip"
tr -d ' \n' <"$dir/sql2.json" >"$dir/sql2.compact"
check "sql,floor JSON names both suites, floor first" "$dir/sql2.compact" '"suites":["floor","sql"]'
check "sql,floor JSON has the sql rows" "$dir/sql2.json" '"function": "get_next_ready_tasks"'

# e2e, a few rounds from the source tree (the rows' template paths are relative to it): the
# C row alone, then with the Ruby row when its binding is built, interleaved and paired.
src=$(cd "$(dirname "$0")/../.." && pwd)
cd "$src" || exit 1
expect "bench e2e --handlers c" 0 "E2E workflow execution" -- \
    "$T" bench e2e --handlers c --samples 3 --warmup 1 --database-url "$db" --json "$dir/e2e.json"
check "e2e JSON rows" "$dir/e2e.json" '"handler": "c"'
check "e2e JSON statistics" "$dir/e2e.json" '"max_ms"'
if grep -q "overhead_vs_c" "$dir/e2e.json" "$out"; then
    echo "not ok - e2e: an overhead over C without a second row"; failures=$((failures + 1))
else
    echo "ok - e2e: no overhead over C without a second row"
fi
if [ -e "$(dirname "$T")/bindings/ruby/lib/tasker_native.so" ] && command -v ruby >/dev/null; then
    expect "bench e2e --handlers c,ruby" 0 "the rows' workers at once" -- \
        "$T" bench e2e --handlers c,ruby --samples 3 --warmup 1 --database-url "$db" \
        --json "$dir/e2e2.json"
    check "e2e prints the overhead over C" "$out" "vs C"
    check "e2e JSON: the Ruby row's overhead over C" "$dir/e2e2.json" '"overhead_vs_c_p50_ms"'
else
    echo "ok - # skip bench e2e --handlers c,ruby: the Ruby binding is not built"
fi

# throughput with batched submission: 2 clients x 30 tasks, batches of 25 and 5
expect "bench throughput --submit-batch 25" 0 "25 tasks per POST /v1/tasks/batch" -- \
    "$T" bench throughput --quick --workflow noop --tp-tasks 60 --clients 2 --submit-batch 25 \
    --database-url "$db" --json "$dir/tp.json"
check "throughput ran every task" "$out" "Throughput: 60 noop tasks"
check "throughput JSON has submit_batch" "$dir/tp.json" '"submit_batch": 25'

cat >"$dir/base.json" <<'EOF'
{"floor": {"select1_p50_us": 20, "commit_p50_us": 300, "notify_raw_p50_us": 80},
 "e2e": [{"workflow": "linear", "handler": "c", "p50_ms": 5.0, "p95_ms": 6.0}],
 "sql": [{"function": "f", "case": "c", "tasks": 5000, "p50_us": 100}],
 "notify": {"p50_ms": 0.4, "p99_ms": 1.0},
 "throughput": {"tasks_per_s": 100, "steps_per_s": 400, "step_p50_ms": 10}}
EOF
cat >"$dir/new.json" <<'EOF'
{"floor": {"select1_p50_us": 21, "commit_p50_us": 310, "notify_raw_p50_us": 80},
 "e2e": [{"workflow": "linear", "handler": "c", "p50_ms": 7.0, "p95_ms": 6.6}],
 "sql": [{"function": "f", "case": "c", "tasks": 5000, "p50_us": 115}],
 "notify": {"p50_ms": 0.45, "p99_ms": 0.5},
 "throughput": {"tasks_per_s": 75, "steps_per_s": 300, "step_p50_ms": 10.5}}
EOF
# the same run on a machine twice as slow: every figure doubled, every rate halved
cat >"$dir/slow.json" <<'EOF'
{"floor": {"select1_p50_us": 40, "commit_p50_us": 600, "notify_raw_p50_us": 160},
 "e2e": [{"workflow": "linear", "handler": "c", "p50_ms": 10.0, "p95_ms": 12.0}],
 "sql": [{"function": "f", "case": "c", "tasks": 5000, "p50_us": 200}],
 "notify": {"p50_ms": 0.8, "p99_ms": 2.0},
 "throughput": {"tasks_per_s": 50, "steps_per_s": 200, "step_p50_ms": 20}}
EOF
expect "bench notify --quick" 0 "send -> consumer woken" -- \
    "$T" bench notify --quick --iterations 50 --database-url "$db" --json "$dir/notify.json"
check "notify JSON" "$dir/notify.json" '"p99_ms"'

expect "bench compare same run" 0 "0 FAIL" -- "$T" bench compare "$dir/base.json" "$dir/base.json"
check "compare: floor figures are information" "$out" "info"
expect "bench compare with a regression" 1 "FAIL" -- "$T" bench compare "$dir/base.json" "$dir/new.json"
check "compare: 40% slower E2E fails" "$out" "e2e linear/c p50_ms"
check "compare: 15% slower SQL is watched" "$out" "watch"
check "compare: 25% lower throughput is investigated" "$out" "investigate"
check "compare: a faster p99 is better" "$out" "better"
expect "bench compare, a slower machine" 1 "8 FAIL" -- \
    "$T" bench compare "$dir/base.json" "$dir/slow.json"
check "compare: a moved floor suggests --per-floor" "$out" "compare with --per-floor"
expect "bench compare --per-floor, a slower machine" 0 "8 accept, 0 watch, 0 investigate, 0 FAIL" -- \
    "$T" bench compare --per-floor "$dir/base.json" "$dir/slow.json"
check "compare --per-floor: SQL read against SELECT 1" "$out" "5.000        5.000"
expect "bench compare --per-floor with a regression" 1 "FAIL" -- \
    "$T" bench compare --per-floor "$dir/base.json" "$dir/new.json"
check "compare --per-floor: 35% slower E2E per commit fails" "$out" "+35.5%  FAIL"
expect "--per-floor outside compare" 2 "--per-floor is an option of compare" -- \
    "$T" bench floor --per-floor

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all passed"
