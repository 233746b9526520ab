#!/bin/sh
# test_task_cli.sh - `tasker task` as a user meets it, against a real server and worker on a
# fresh database: create (with and without --wait, --count N in one batch), get, list with
# filters and pages, steps,
# step, cancel, reset-step / resolve-step / complete-step on a failed task, --json output,
# and the errors (duplicate task, unknown template, unreachable server, bad UUIDs, malformed
# JSON, usage) with their exit codes.
set -u
T="${TASKER_BIN:?run through ctest}"
src=$(cd "$(dirname "$0")/../.." && pwd)
server_url=$(cat "$TK_TEST_PG_DIR/server_url")
query="${server_url#*\?}"
db="postgresql:///cli_task?$query"
failures=0
export PGOPTIONS="-c client_min_messages=warning"
unset TASKER_CONFIG_PATH TASKER_URL TASKER_CLIENT_URL
dir=$(mktemp -d)
out="$dir/out"
err="$dir/err"
. "$(dirname "$0")/lib.sh"
server_pid=""
worker_pid=""

cleanup() {
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ -n "$worker_pid" ] && wait "$worker_pid" 2>/dev/null
    [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null
    psql "$server_url" -X -q -c "DROP DATABASE IF EXISTS cli_task WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# check_not NAME FILE PATTERN: FILE does not contain PATTERN.
check_not() {
    if grep -qF -- "$3" "$2"; then
        echo "not ok - $1: has \"$3\""; cat "$2"
        failures=$((failures + 1))
    else
        echo "ok - $1"
    fi
}

# check_json NAME PYTHON_EXPRESSION: the last command's stdout is JSON `d` for which the
# expression is true.
check_json() {
    if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" \
        "$out" 2>"$dir/py.err"; then
        echo "ok - $1"
    else
        echo "not ok - $1: $2"; cat "$out" "$dir/py.err"
        failures=$((failures + 1))
    fi
}

# The first UUID in the last command's stdout.
first_uuid() {
    grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' "$out" | head -n 1
}

# json_value PYTHON_EXPRESSION: print a value of the last command's JSON stdout `d`.
json_value() {
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$out"
}

nil=01936f3a-0000-7000-8000-000000000000

# --- Help, usage errors and an unreachable server (no server needed) -----------------------
expect "tasker --help lists task" 0 "create, inspect and cancel tasks" -- "$T" --help
expect "task --help" 0 "Usage: tasker task <subcommand>" -- "$T" task --help
expect "task -h lists complete-step" 0 "complete-step TASK_UUID STEP_UUID" -- "$T" task -h
for sub in create get list cancel steps step reset-step resolve-step complete-step; do
    expect "task $sub --help" 0 "Usage: tasker task $sub" -- "$T" task "$sub" --help
    check "task $sub --help lists --json" "$out" "--json"
done
expect "create --help names --idempotency-key" 0 "--idempotency-key KEY" -- \
    "$T" task create --help
check "create --help names --count" "$out" "--count N"
expect "task --help names --count" 0 "(--count N: N copies in one batch)" -- "$T" task --help
expect "list --help names --per-page" 0 "--per-page N" -- "$T" task list --help
expect "reset-step --help names --by" 0 "--by NAME" -- "$T" task reset-step --help
expect "complete-step --help names --result" 0 "--result JSON" -- "$T" task complete-step -h
expect "get -h (after the UUID)" 0 "Usage: tasker task get" -- "$T" task get "$nil" -h
expect "task without subcommand" 2 "missing subcommand" -- "$T" task
expect "task unknown subcommand" 2 'unknown subcommand "frob"' -- "$T" task frob
expect "task option before subcommand" 2 "Try 'tasker task --help'" -- "$T" task --json list
expect "get bad option" 2 "Try 'tasker task get --help'" -- "$T" task get --frobnicate "$nil"
expect "get option of another subcommand" 2 "invalid option" -- "$T" task get --priority 1 "$nil"
expect "get without UUID" 2 "missing TASK_UUID" -- "$T" task get
expect "get bad UUID" 2 'TASK_UUID "not-a-uuid" is not a UUID' -- "$T" task get not-a-uuid
expect "get two UUIDs" 2 "unexpected argument" -- "$T" task get "$nil" "$nil"
expect "step bad step UUID" 2 'STEP_UUID "42" is not a UUID' -- "$T" task step "$nil" 42
expect "step without step UUID" 2 "missing STEP_UUID" -- "$T" task step "$nil"
expect "reset-step bad UUID" 2 "is not a UUID" -- "$T" task reset-step x "$nil"
expect "cancel bad UUID" 2 "is not a UUID" -- "$T" task cancel 1234
expect "create without --namespace" 2 "missing --namespace" -- "$T" task create --name x
expect "create without --name" 2 "missing --name" -- "$T" task create --namespace x
expect "create malformed --context" 2 "--context is not valid JSON: line 1 column" -- \
    "$T" task create --namespace x --name y --context '{"a": }'
expect "create malformed --context file" 2 "line 2 column" -- \
    sh -c "printf '{\n  oops\n}\n' >'$dir/bad.json'; '$T' task create --namespace x --name y --context @'$dir/bad.json'"
expect "create missing --context file" 2 "unable to open" -- \
    "$T" task create --namespace x --name y --context @"$dir/none.json"
expect "create --context not an object" 2 "--context must be a JSON object" -- \
    "$T" task create --namespace x --name y --context '[1, 2]'
expect "create bad --priority" 2 "--priority must be an integer from -100 to 100" -- \
    "$T" task create --namespace x --name y --priority 101
expect "create bad --correlation-id" 2 "--correlation-id \"abc\" is not a UUID" -- \
    "$T" task create --namespace x --name y --correlation-id abc
expect "create --timeout-ms without --wait" 2 "--timeout-ms needs --wait" -- \
    "$T" task create --namespace x --name y --timeout-ms 10
expect "create bad --count" 2 "--count must be an integer from 1 to 100000" -- \
    "$T" task create --namespace x --name y --count 0
expect "get bad --timeout-ms" 2 "--timeout-ms must be an integer" -- \
    "$T" task get "$nil" --wait --timeout-ms soon
expect "list bad --status" 2 'unknown task status "done"' -- "$T" task list --status done
expect "list bad --per-page" 2 "--per-page must be an integer from 1 to 100" -- \
    "$T" task list --per-page 500
expect "list bad --page" 2 "--page must be an integer" -- "$T" task list --page 0
expect "complete-step without --result" 2 "missing --result JSON" -- \
    "$T" task complete-step "$nil" "$nil"
expect "complete-step malformed --result" 2 "--result is not valid JSON" -- \
    "$T" task complete-step "$nil" "$nil" --result '{x'
expect "complete-step --metadata not an object" 2 "--metadata must be a JSON object" -- \
    "$T" task complete-step "$nil" "$nil" --result 1 --metadata '"m"'
expect "unreachable server (--url)" 1 "could not reach the tasker server at http://127.0.0.1:1" -- \
    "$T" task get "$nil" --url http://127.0.0.1:1
check "unreachable server message starts with tasker:" "$err" "tasker: could not reach"
expect "unreachable server (TASKER_URL)" 1 "could not reach the tasker server at http://127.0.0.1:1" -- \
    env TASKER_URL=http://127.0.0.1:1 "$T" task list
expect "unreachable server (--config client.url)" 1 \
    "could not reach the tasker server at http://127.0.0.1:2" -- \
    sh -c "printf 'client:\n  url: http://127.0.0.1:2\n' >'$dir/client.yaml'; '$T' task list --config '$dir/client.yaml'"

# --- A server and a worker on a fresh database ---------------------------------------------
psql "$server_url" -X -q -c "DROP DATABASE IF EXISTS cli_task WITH (FORCE)" \
    -c "CREATE DATABASE cli_task TEMPLATE tasker_template" >/dev/null || exit 1
mkdir "$dir/templates"
cp "$src"/examples/templates/*.yaml "$src"/tests/cli/templates/*.yaml "$dir/templates/"
"$T" server --database-url "$db" --port 0 --bind 127.0.0.1 --set backoff.base_seconds=0.1 \
    >"$dir/server.out" 2>"$dir/server.log" &
server_pid=$!
"$T" worker --database-url "$db" --templates "$dir/templates" --port 0 --set worker.bind=127.0.0.1 \
    >"$dir/worker.out" 2>"$dir/worker.log" &
worker_pid=$!
i=0
while [ $i -lt 300 ] && ! { grep -q "listening on" "$dir/server.out" && grep -q "running" "$dir/worker.out"; }; do
    kill -0 "$server_pid" 2>/dev/null && kill -0 "$worker_pid" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done
if ! grep -q "listening on" "$dir/server.out" || ! grep -q "running" "$dir/worker.out"; then
    echo "not ok - server and worker start"; cat "$dir/server.out" "$dir/server.log" \
        "$dir/worker.out" "$dir/worker.log"
    echo "FAIL: task cli (no server)"
    exit 1
fi
port=$(head -n 1 "$dir/server.out" | sed 's/.*://')
url="http://127.0.0.1:$port"
echo "ok - server on $url and worker started"
export TASKER_URL="$url"

# create --wait on the linear example: complete, 4/4 steps.
expect "create --wait linear" 0 "status:     complete" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context '{"even_number": 6}' --wait
check "create --wait shows 4/4 steps" "$out" "4/4 steps done"
check "create --wait shows the template" "$out" "linear_workflow/mathematical_sequence 1.0.0"
check "create --wait shows the step table" "$out" "linear_step_4  complete  1/3"
linear=$(first_uuid)
expect "duplicate create" 1 "already exists" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context '{"even_number": 6}'
check "duplicate create names HTTP 409" "$err" "(HTTP 409)"
expect "duplicate with an idempotency key" 0 "created task" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context '{"even_number": 6}' --idempotency-key run-2
expect "unknown template" 1 "not registered" -- \
    "$T" task create --namespace nowhere --name nothing --version 2.0.0
check "unknown template names it" "$err" "nowhere/nothing/2.0.0"
expect "unknown template with --wait" 1 "HTTP 404" -- \
    "$T" task create --namespace nowhere --name nothing --wait

# create without --wait, then get --wait; the defaults of the TaskRequest.
expect "create without --wait" 0 "created task" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context '{"even_number": 8}' --priority 7 --tag cli --tag test
second=$(first_uuid)
expect "get --wait" 0 "status:     complete" -- "$T" task get "$second" --wait --timeout-ms 30000
expect "get --json" 0 "" -- "$T" task get "$second" --json
check_json "get --json is the TaskResponse" \
    "d['task_uuid'] == '$second' and d['status'] == 'complete' and d['total_steps'] == 4"
check_json "create sent the defaults" \
    "d['initiator'] == 'tasker-cli' and d['source_system'] == 'cli' and d['reason'] == 'submitted with tasker task create'"
check_json "create sent priority and tags" "d['priority'] == 7 and d['tags'] == ['cli', 'test']"
expect "get --json pretty-printed" 0 "" -- sh -c "'$T' task get '$second' --json | python3 -m json.tool"

# --context from a file and from standard input; --json of create.
printf '{"even_number": 10}\n' >"$dir/ctx.json"
expect "create --context @file --json" 0 "" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context @"$dir/ctx.json" --json --initiator me --source-system tests --reason because \
    --correlation-id 01936f3a-1111-7000-8000-000000000001
check_json "create --json: context from the file" "d['context'] == {'even_number': 10}"
check_json "create --json: initiator etc." \
    "d['initiator'] == 'me' and d['source_system'] == 'tests' and d['reason'] == 'because' and d['correlation_id'] == '01936f3a-1111-7000-8000-000000000001'"
expect "create --context - (stdin)" 0 "complete" -- \
    sh -c "echo '{\"even_number\": 12}' | '$T' task create --namespace linear_workflow --name mathematical_sequence --context - --wait"

# steps and step.
expect "steps" 0 "STEP_UUID" -- "$T" task steps "$linear"
check "steps lists linear_step_1" "$out" "linear_step_1"
expect "steps --json" 0 "" -- "$T" task steps "$linear" --json
check_json "steps --json is an array of 4" "len(d) == 4 and d[0]['name'] == 'linear_step_1'"
step1=$(json_value "d[0]['step_uuid']")
expect "step" 0 "Step $step1 (linear_step_1)" -- "$T" task step "$linear" "$step1"
check "step shows its result" "$out" 'result:        {"value":36}'
check "step shows its state" "$out" "state:         complete"
expect "step --json" 0 "" -- "$T" task step "$linear" "$step1" --json
check_json "step --json" "d['step_uuid'] == '$step1' and d['results']['result'] == {'value': 36}"
expect "step of another task" 1 "not found" -- "$T" task step "$second" "$step1"
expect "get unknown task" 1 "not found" -- "$T" task get "$nil"
check "get unknown task names HTTP 404" "$err" "(HTTP 404)"
expect "steps of unknown task" 1 "not found" -- "$T" task steps "$nil"

# cancel a running task (its first step sleeps 5 s).
expect "create slow task" 0 "created task" -- \
    "$T" task create --namespace cli_test --name slow_sequence
slow=$(first_uuid)
i=0
while [ $i -lt 100 ]; do
    "$T" task steps "$slow" >"$out" 2>"$err"
    grep -q "in_progress" "$out" && break
    sleep 0.1
    i=$((i + 1))
done
check "slow task is running" "$out" "in_progress"
expect "get --wait times out" 1 "did not finish within 300 ms" -- \
    "$T" task get "$slow" --wait --timeout-ms 300
expect "cancel" 0 "cancelled task $slow" -- "$T" task cancel "$slow"
check "cancel shows status cancelled" "$out" "status:     cancelled"
check "cancel shows the cancelled step" "$out" "nap        cancelled"
expect "cancel again" 1 "already finished" -- "$T" task cancel "$slow"
check "cancel again names HTTP 400" "$err" "(HTTP 400)"
expect "get --wait on a cancelled task" 1 "ended in state cancelled" -- "$T" task get "$slow" --wait
expect "get a cancelled task without --wait" 0 "cancelled" -- "$T" task get "$slow"
expect "cancel unknown task" 1 "not found" -- "$T" task cancel "$nil"

# list: the tasks, filters, pages, JSON.
expect "list" 0 "TASK_UUID" -- "$T" task list
check "list shows the first task" "$out" "$linear"
check "list shows the slow task" "$out" "$slow"
check "list shows the pagination" "$out" "page 1 of 1 (6 tasks)"
expect "list --status cancelled" 0 "$slow" -- "$T" task list --status cancelled
check_not "list --status cancelled hides complete tasks" "$out" "$linear"
check "list --status cancelled counts one" "$out" "(1 task)"
expect "list --status complete" 0 "$linear" -- "$T" task list --status complete
check_not "list --status complete hides the cancelled task" "$out" "$slow"
expect "list --status error (none)" 0 "no tasks" -- "$T" task list --status error
expect "list --namespace cli_test" 0 "$slow" -- "$T" task list --namespace cli_test
check_not "list --namespace hides other namespaces" "$out" "$linear"
expect "list --per-page 2" 0 "page 1 of 3 (6 tasks); next: --page 2" -- "$T" task list --per-page 2
expect "list --page 3 --per-page 2" 0 "page 3 of 3" -- "$T" task list --page 3 --per-page 2
check "the last page has the oldest task" "$out" "$linear"
expect "list --json" 0 "" -- "$T" task list --json --per-page 5
check_json "list --json" \
    "len(d['tasks']) == 5 and d['pagination']['total_count'] == 6 and d['pagination']['has_next']"

# create --count N: N copies in one batch (POST /v1/tasks/batch), each its own task; all or
# none.
expect "create --count 3 --wait" 0 "created 3 tasks (linear_workflow/mathematical_sequence 1.0.0) in one batch:" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context '{"even_number": 4}' --count 3 --wait
if [ "$(grep -c '  complete$' "$out")" -eq 3 ]; then
    echo "ok - create --count 3 --wait: three tasks complete"
else
    echo "not ok - create --count 3 --wait: three tasks complete"; cat "$out"
    failures=$((failures + 1))
fi
expect "create --count 2 --json" 0 "" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context '{"even_number": 4}' --count 2 --idempotency-key cli-batch --json
check_json "create --count --json: the batch answer" \
    "len(d['tasks']) == 2 and d['tasks'][0]['task_uuid'] != d['tasks'][1]['task_uuid'] and d['tasks'][1]['namespace'] == 'linear_workflow'"
expect "create --count again with the same key" 1 "tasks[0]: A task with this identity already exists" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence \
    --context '{"even_number": 4}' --count 3 --idempotency-key cli-batch
check "create --count duplicate names HTTP 409" "$err" "(HTTP 409)"
expect "create --count of an unknown template" 1 "tasks[0]: template nowhere/nothing/1.0.0 is not registered" -- \
    "$T" task create --namespace nowhere --name nothing --count 2
check "create --count unknown template names HTTP 404" "$err" "(HTTP 404)"
expect "create --count above server.max_batch_tasks" 1 "at most 1000 are accepted" -- \
    "$T" task create --namespace linear_workflow --name mathematical_sequence --count 1001
expect "list after the batches" 0 "page 1 of 1 (11 tasks)" -- "$T" task list --per-page 100

# A task that fails: create --wait exits 1 naming the failed step; reset-step runs it again;
# resolve-step lets it complete.
expect "create --wait, retries exhausted" 1 "failed step: always_fail" -- \
    "$T" task create --namespace retry_workflow --name retry_exhaustion_test --wait
check "the failure names the error" "$err" "builtin.fail: attempt 3 fails as configured"
check "the failure names the state" "$err" "ended in state error"
check "the summary shows the error" "$out" "always_fail  error  3/3       builtin.fail: attempt 3"
failing=$(first_uuid)
expect "list --status error" 0 "$failing" -- "$T" task list --status error
expect "steps of the failed task" 0 "builtin.fail: attempt 3 fails as configured" -- \
    "$T" task steps "$failing" --json
failed_step=$(json_value "d[0]['step_uuid']")
first_attempt=$(json_value "d[0]['last_attempted_at']")
expect "step shows the error" 0 "error:         RetryableError: builtin.fail" -- \
    "$T" task step "$failing" "$failed_step"
expect "reset-step" 0 "reset step always_fail" -- \
    "$T" task reset-step "$failing" "$failed_step" --reason "try again" --by tests
check "reset-step: attempts back to 0" "$out" "attempts:      0/3"
expect "the reset task fails again" 1 "ended in state error" -- \
    "$T" task get "$failing" --wait --timeout-ms 30000
expect "step after the rerun" 0 "" -- "$T" task step "$failing" "$failed_step" --json
check_json "the step ran again" \
    "d['attempts'] == 3 and d['current_state'] == 'error' and d['last_attempted_at'] != '$first_attempt'"
expect "reset-step of another task's step" 1 "not found" -- \
    "$T" task reset-step "$linear" "$failed_step"
expect "resolve-step" 0 "resolved step always_fail; it is now resolved_manually" -- \
    "$T" task resolve-step "$failing" "$failed_step"
expect "the resolved task completes" 0 "status:     complete" -- \
    "$T" task get "$failing" --wait --timeout-ms 30000
check "the resolved step is listed" "$out" "always_fail  resolved_manually"
expect "resolve-step on a complete task" 1 "cannot change a step" -- \
    "$T" task resolve-step "$failing" "$failed_step"

# complete-step with a result given by hand, --json of a step action.
expect "create another failing task" 1 "always_fail" -- \
    "$T" task create --namespace retry_workflow --name retry_exhaustion_test \
    --context '{"run": 2}' --wait --json
check_json "create --wait --json prints the task" "d['status'] == 'error'"
failing2=$(json_value "d['task_uuid']")
"$T" task steps "$failing2" --json >"$out" 2>"$err"
step2=$(json_value "d[0]['step_uuid']")
expect "complete-step --json" 0 "" -- \
    "$T" task complete-step "$failing2" "$step2" --result '{"fixed": true}' \
    --metadata '{"ticket": 7}' --json
check_json "complete-step stored the result" \
    "d['current_state'] == 'complete' and d['results']['result'] == {'fixed': True} and d['results']['metadata']['ticket'] == 7"
expect "the completed task completes" 0 "1/1 steps done" -- \
    "$T" task get "$failing2" --wait --timeout-ms 30000
expect "step shows the given result" 0 'result:        {"fixed":true}' -- \
    "$T" task step "$failing2" "$step2"

# The server and the worker stop cleanly (under ASan: without leaks).
kill "$worker_pid" "$server_pid"
wait "$worker_pid"
worker_rc=$?
wait "$server_pid"
server_rc=$?
worker_pid=""
server_pid=""
if [ "$server_rc" -eq 0 ] && [ "$worker_rc" -eq 0 ]; then
    echo "ok - server and worker stopped cleanly"
else
    echo "not ok - server exit $server_rc, worker exit $worker_rc"
    tail -n 30 "$dir/server.log" "$dir/worker.log"
    failures=$((failures + 1))
fi

if [ "$failures" -eq 0 ]; then
    echo "PASS: task cli"
else
    echo "FAIL: task cli ($failures failed)"
    exit 1
fi
