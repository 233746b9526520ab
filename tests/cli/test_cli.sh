#!/bin/sh
# test_cli.sh - the tasker executable as a user meets it: help for every command, clear
# errors and exit codes for bad input, and `tasker db` against real databases on the test
# server (a fresh one, an unreachable one, one migrated by a "newer" tasker).
set -u
T="${TASKER_BIN:?run through ctest}"
server_url=$(cat "$TK_TEST_PG_DIR/server_url")
query="${server_url#*\?}"
failures=0
export PGOPTIONS="-c client_min_messages=warning"
out=$(mktemp)
err=$(mktemp)
. "$(dirname "$0")/lib.sh"
trap 'rm -f "$out" "$err"' EXIT

expect "tasker --help" 0 "Usage: tasker" -- "$T" --help
expect "tasker without command" 2 "Usage: tasker" -- "$T"
expect "unknown command" 2 'unknown command "frobnicate"' -- "$T" frobnicate
expect "bad log level" 2 'unknown log level' -- "$T" --log-level loud version
expect "version" 0 "tasker 0." -- "$T" version
for cmd in db dev version; do
    expect "tasker $cmd --help" 0 "" -- "$T" "$cmd" --help
done
expect "db --help lists migrate" 0 "migrate" -- "$T" db --help
expect "db without subcommand" 2 "missing subcommand" -- "$T" db
expect "db unknown subcommand" 2 'unknown subcommand "explode"' -- "$T" db explode
expect "db bad option" 2 "Try 'tasker db --help'" -- "$T" db migrate --frobnicate

# An unreachable or malformed database is a clear error, exit 1.
expect "migrate, nothing listening" 1 "could not connect to the database" -- \
    env DATABASE_URL="postgresql://tasker@127.0.0.1:1/tasker" "$T" db migrate
expect "migrate, malformed URL" 1 "could not connect to the database" -- \
    env DATABASE_URL="postgresql://[bad" "$T" db migrate
expect "status, unknown database" 1 'database "no_such_db" does not exist' -- \
    "$T" db status --database-url "postgresql:///no_such_db?$query"

# A fresh database: migrate applies everything, a second run nothing.
psql "$server_url" -X -q -c "DROP DATABASE IF EXISTS cli_fresh WITH (FORCE)" \
    -c "CREATE DATABASE cli_fresh TEMPLATE template0" >/dev/null
fresh="postgresql:///cli_fresh?$query"
expect "status before migrate" 0 "database schema version: 0" -- "$T" db status --database-url "$fresh"
expect "migrate fresh" 0 "applying 0001_schema" -- env DATABASE_URL="$fresh" "$T" db migrate
expect "migrate again" 0 "(0 migrations applied)" -- env DATABASE_URL="$fresh" "$T" db migrate
expect "migrate quiet" 0 "" -- "$T" db migrate -q --database-url "$fresh"
[ -z "$(cat "$out" "$err")" ] && echo "ok - quiet prints nothing" ||
    { echo "not ok - quiet printed output"; failures=$((failures + 1)); }

# A database migrated by a newer tasker is refused.
psql "$fresh" -X -q -c "INSERT INTO tasker.schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
expect "migrate newer schema" 1 "newer than" -- "$T" db migrate --database-url "$fresh"
expect "status newer schema" 0 "upgrade tasker" -- "$T" db status --database-url "$fresh"
psql "$server_url" -X -q -c "DROP DATABASE IF EXISTS cli_fresh WITH (FORCE)" >/dev/null

# The private cluster: start, url, stop, and errors when none is running.
dir=$(mktemp -d)
chmod 755 "$dir" # reachable by the postgres user when run as root
expect "db url without cluster" 1 "there is no cluster" -- "$T" db url --data-dir "$dir/pg"
expect "db start" 0 "DATABASE_URL=postgresql://" -- "$T" db start --data-dir "$dir/pg"
url=$(grep DATABASE_URL= "$out" | cut -d= -f2-)
expect "db url" 0 "$url" -- "$T" db url --data-dir "$dir/pg"
expect "db status on private cluster" 0 "database schema version" -- "$T" db status --data-dir "$dir/pg"
expect "db stop" 0 "PostgreSQL stopped" -- "$T" db stop --data-dir "$dir/pg"
expect "db stop again" 1 "no PostgreSQL server is running" -- "$T" db stop --data-dir "$dir/pg"
expect "dev --exit" 0 "tasker dev is running" -- "$T" dev --exit --port 0 --data-dir "$dir/pg"
expect "db url after dev exits" 1 "no PostgreSQL server is running" -- "$T" db url --data-dir "$dir/pg"

# The demo runs every example and exits 0 when all end as expected (make run uses it).
src=$(cd "$(dirname "$0")/../.." && pwd)
expect "dev --demo --exit" 0 "All workflows ended as expected" -- \
    "$T" dev --demo --exit --port 0 --data-dir "$dir/pg" --templates "$src/examples/templates"
grep -q "linear_workflow/mathematical_sequence *complete *4/4" "$out" &&
    echo "ok - demo table lists the linear workflow" ||
    { echo "not ok - demo table"; cat "$out"; failures=$((failures + 1)); }
# Templates registered in the database by an earlier run, which this worker does not serve,
# are not run (no worker would take their steps) but named.
mkdir "$dir/one"
cp "$src/examples/templates/linear.yaml" "$dir/one/"
expect "demo of fewer templates" 0 "Not run: 7 template(s) registered" -- \
    "$T" dev --demo --exit --port 0 --data-dir "$dir/pg" --templates "$dir/one"
if grep -q "linear_workflow/mathematical_sequence *complete" "$out" &&
    ! grep -q "diamond_workflow/diamond_pattern *[a-z]" "$out"; then
    echo "ok - demo runs only the worker's templates"
else
    echo "not ok - demo runs only the worker's templates"; cat "$out"; failures=$((failures + 1))
fi

# Ctrl-C stops tasker dev cleanly, database included.
"$T" dev --port 0 --data-dir "$dir/pg" >"$out" 2>"$err" &
dev_pid=$!
for i in $(seq 1 100); do grep -q "Press Ctrl-C" "$out" && break; sleep 0.1; done
kill -INT "$dev_pid"
wait "$dev_pid"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "stopping" "$out"; then echo "ok - dev stops on SIGINT"; else
    echo "not ok - dev stops on SIGINT (exit $rc)"; cat "$out" "$err"; failures=$((failures + 1)); fi
expect "database stopped with dev" 1 "no PostgreSQL server is running" -- "$T" db url --data-dir "$dir/pg"
rm -rf "$dir" 2>/dev/null || true

if [ "$failures" -eq 0 ]; then
    echo "PASS: cli"
else
    echo "FAIL: cli ($failures failed)"
    exit 1
fi
