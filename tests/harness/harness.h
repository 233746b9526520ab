/*
 * harness.h - helpers for tests that need PostgreSQL.
 *
 * The ctest fixture pg_start runs tk_testpg, which leaves a server URL in
 * $TK_TEST_PG_DIR/server_url and a migrated database "tasker_template". Each test makes its own
 * database from that template, so tests are isolated and may run in parallel.
 * Every helper aborts the test (cmocka fail_msg) on error: a test must never pass because its
 * set-up silently failed.
 */
#ifndef TK_TEST_HARNESS_H
#define TK_TEST_HARNESS_H

#include <libpq-fe.h>
#include <stdbool.h>

/* Create (or recreate) database `name`, migrated (from tasker_template) or empty (from
 * template0), and return its URL (free with free()). */
char *tk_test_db_create(const char *name);
char *tk_test_db_create_empty(const char *name);

/* URL of database `name` on the test server (free with free()). */
char *tk_test_db_url(const char *name);

/* Connect with libpq (search_path tasker, tasker_mq, public). */
PGconn *tk_test_connect(const char *url);

/* Run SQL that must succeed; returns its result (caller PQclear()s) or NULL for exec. */
PGresult *tk_test_query(PGconn *conn, const char *sql);
void tk_test_exec(PGconn *conn, const char *sql);

/* Run parameterised SQL that must succeed. */
PGresult *tk_test_queryp(PGconn *conn, const char *sql, int n, const char *const *params);

/* First column of the first row, copied into a static per-thread buffer ("" for NULL).
 * Fails the test if there is no row. */
const char *tk_test_value(PGconn *conn, const char *sql);
const char *tk_test_valuep(PGconn *conn, const char *sql, int n, const char *const *params);

/* The first column of the first row as an integer (e.g. a count). */
long tk_test_count(PGconn *conn, const char *sql);

/* Run SQL that must fail; returns its SQLSTATE (static per-thread buffer). */
const char *tk_test_sqlstate_of(PGconn *conn, const char *sql);

#endif
