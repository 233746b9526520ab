#!/usr/bin/env bash
# workload.sh - the workload that `make profile` records. Run by scripts/profile.sh, once under
# `perf record -a` (MODE=perf) and once with every tasker process under valgrind's callgrind
# (MODE=callgrind). Not meant to be run by hand, but it can be:
#
#   TASKER=build-profile/tasker OUT=/tmp/x DATA_DIR=/tmp/profile-pg \
#       scripts/profile/workload.sh perf e2e
#
# Which workload runs, first match wins (edit run_workload below to change the choice):
#   1. PROFILE_CMD        a shell command, e.g. PROFILE_CMD='tasker_run bench e2e --quick';
#                         call tasker through `tasker_run` so callgrind can wrap it.
#   2. `tasker bench`     when the binary has it: `tasker bench WORKLOAD` with
#                         PROFILE_PERF_ARGS (default none) under perf and
#                         PROFILE_CALLGRIND_ARGS (default --quick) under callgrind,
#                         plus --data-dir DATA_DIR-bench (unless DATABASE_URL is set) and
#                         --json OUT/bench-MODE.json.
#   3. the stand-in       `tasker dev --demo --exit --port 0 --data-dir DATA_DIR`: every example
#                         workflow once. With STANDIN_TASKS=N (N > 0) the demo is followed by N
#                         more tasks (linear, diamond, complex DAG, tree in turn) created over
#                         HTTP with wait_ms, one after the other, before dev is stopped.
#
# Environment: TASKER (binary), OUT (output directory), DATA_DIR (private cluster),
# CALLGRIND_OPTS (extra valgrind options). The pid of this script is written to
# OUT/workload-MODE.pid: it is the root of the process tree that the perf report keeps.
set -euo pipefail

MODE=${1:?usage: workload.sh perf|callgrind WORKLOAD}
WORKLOAD=${2:-e2e}
: "${TASKER:?TASKER is not set}" "${OUT:?OUT is not set}"
DATA_DIR=${DATA_DIR:-/tmp/profile-pg}
STANDIN_TASKS=${STANDIN_TASKS:-0}
echo $$ >"$OUT/workload-$MODE.pid"

WRAP=()
if [ "$MODE" = callgrind ]; then
    # Every tasker process (and tasker children it execs); nothing under /usr or /bin, so
    # PostgreSQL, shells, curl, Ruby and Python run natively.
    # shellcheck disable=SC2206
    WRAP=(valgrind --tool=callgrind --quiet
          "--callgrind-out-file=$OUT/callgrind.out.%p"
          --trace-children=yes "--trace-children-skip=/usr/*,/bin/*,/sbin/*,/lib/*"
          --collect-jumps=no ${CALLGRIND_OPTS:-})
fi

tasker_run() { "${WRAP[@]}" "$TASKER" "$@"; }

note() { echo "$*" >>"$OUT/workload-$MODE.cmd"; echo "profile: workload: $*" >&2; }

# profile.sh decides (PROFILE_HAS_BENCH=0|1) so that the probe is not in the profile
has_bench() {
    case "${PROFILE_HAS_BENCH:-}" in
        1) return 0 ;;
        0) return 1 ;;
        *) "$TASKER" bench --help >/dev/null 2>&1 ;;
    esac
}

# The stand-in with STANDIN_TASKS > 0: dev in the background, N tasks over HTTP, then SIGTERM
# (not SIGINT: a background job of a script starts with SIGINT ignored, and dev's sigwait()
# never sees an ignored signal).
standin_loop() {
    local log="$OUT/standin-$MODE.out" url="" i=0 pid
    tasker_run dev --demo --port 0 --data-dir "$DATA_DIR" >"$log" 2>&1 &
    pid=$!
    # shellcheck disable=SC2064
    trap "kill -TERM $pid 2>/dev/null || true" EXIT
    # dev prints the URL at start-up and "Try it by hand" once the demo is over (10 min max)
    for _ in $(seq 1 3000); do
        grep -q 'Try it by hand' "$log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; return 1; }
        sleep 0.2
    done
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n 1)
    [ -n "$url" ] || { echo "profile: no URL from tasker dev" >&2; kill -TERM "$pid"; return 1; }
    local shapes=(linear_workflow/mathematical_sequence diamond_workflow/diamond_pattern
                  complex_dag_workflow/complex_dag tree_workflow/hierarchical_tree)
    while [ "$i" -lt "$STANDIN_TASKS" ]; do
        local s=${shapes[$((i % 4))]}
        curl -sS -o /dev/null -X POST "$url/v1/tasks?wait_ms=60000" \
             -H 'Content-Type: application/json' \
             -d "{\"namespace\":\"${s%%/*}\",\"name\":\"${s#*/}\",\"version\":\"1.0.0\",\"context\":{\"even_number\":8}}"
        i=$((i + 1))
    done
    kill -TERM "$pid"
    wait "$pid" || true
}

run_workload() {
    if [ -n "${PROFILE_CMD:-}" ]; then
        note "PROFILE_CMD: $PROFILE_CMD"
        eval "$PROFILE_CMD"
    elif has_bench; then
        local args
        if [ "$MODE" = perf ]; then args=${PROFILE_PERF_ARGS:-}; else args=${PROFILE_CALLGRIND_ARGS:---quick}; fi
        # its own cluster (not .tasker/bench, which a concurrent `make bench` may be using),
        # so that PostgreSQL is a child of the workload and in the perf profile
        local where=(--data-dir "$DATA_DIR-bench")
        [ -z "${DATABASE_URL:-}" ] || where=()
        note "$TASKER bench $WORKLOAD${args:+ $args} ${where[*]} --json $OUT/bench-$MODE.json"
        # shellcheck disable=SC2086
        tasker_run bench "$WORKLOAD" $args "${where[@]}" --json "$OUT/bench-$MODE.json"
    elif [ "$STANDIN_TASKS" -gt 0 ]; then
        note "stand-in (no 'tasker bench' yet): $TASKER dev --demo --port 0 --data-dir $DATA_DIR," \
             "then $STANDIN_TASKS tasks (linear, diamond, complex_dag, tree) over HTTP with wait_ms"
        standin_loop
    else
        note "stand-in (no 'tasker bench' yet): $TASKER dev --demo --exit --port 0 --data-dir $DATA_DIR"
        tasker_run dev --demo --exit --port 0 --data-dir "$DATA_DIR"
    fi
}

run_workload
