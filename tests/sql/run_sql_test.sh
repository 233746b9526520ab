#!/bin/sh
# run_sql_test.sh NAME FILE - run one SQL test file against a fresh migrated database.
#
# The file checks behaviour with plpgsql ASSERT (or RAISE EXCEPTION); psql stops at the first
# error (ON_ERROR_STOP) and the test fails. The database is dropped when the test passes and
# kept for inspection when it fails.
set -eu
name="$1"
file="$2"
db="sql_$name"
server_url=$(cat "$TK_TEST_PG_DIR/server_url")
query="${server_url#*\?}"
db_url="postgresql:///$db?$query"

psql "$server_url" -X -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
    -c "CREATE DATABASE \"$db\" TEMPLATE tasker_template"
if PGOPTIONS="-c search_path=tasker,tasker_mq,public -c client_min_messages=warning" \
    psql "$db_url" -X -q -v ON_ERROR_STOP=1 -f "$file"; then
    psql "$server_url" -X -q -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    echo "PASS: $name"
else
    echo "FAIL: $name (database $db kept)"
    exit 1
fi
