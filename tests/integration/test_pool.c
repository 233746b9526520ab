/*
 * test_pool.c - connections, the pool and their errors, on a private cluster of this test's
 * own (so restarting it does not disturb other tests): SQLSTATEs map to TK_E* codes, a bad URL
 * fails with libpq's reason, the pool times out when exhausted, after the server restarts
 * the pool reconnects (an idempotent statement is retried transparently), and a warm-up
 * reaches the connection the next acquire hands out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/pgembed.h"
#include "db/pool.h"
#include "harness.h"

static char data_dir[1024];
static tk_pgembed_t *pg;

static const tk_stmt_t select_one = {"t_select_one", "SELECT 1 + $1::int", 1, true};
static const tk_stmt_t insert_once = {"t_insert", "INSERT INTO t VALUES ($1)", 1, false};
static const tk_stmt_t bad_syntax = {"t_bad", "SELEC 1", 0, true};

static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("TK_TEST_PG_DIR");
    assert_non_null(dir);
    snprintf(data_dir, sizeof(data_dir), "%s-pool/data", dir);
    tk_pgembed_opts_t opts = {.data_dir = data_dir, .durable = false};
    tk_error_t err;
    tk_pgembed_remove(data_dir, &err);
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        fail_msg("start: %s", err.message);
    assert_true(tk_pgembed_started_here(pg));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tk_error_t err;
    assert_int_equal(tk_pgembed_stop(pg, &err), TK_OK);
    tk_pgembed_free(pg);
    assert_int_equal(tk_pgembed_remove(data_dir, &err), TK_OK);
    return 0;
}

static void test_errors_carry_sqlstate(void **state)
{
    (void)state;
    tk_pool_t *pool;
    tk_error_t err;
    assert_int_equal(tk_pool_open(tk_pgembed_url(pg), "test", 2, &pool, &err), TK_OK);
    tk_conn_t *c;
    assert_int_equal(tk_pool_acquire(pool, 1000, &c, &err), TK_OK);
    assert_int_equal(tk_conn_exec(c, "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)", &err),
                     TK_OK);
    const char *one[] = {"1"};
    assert_int_equal(tk_conn_run(c, &insert_once, one, &err), TK_OK);
    assert_int_equal(tk_conn_run(c, &insert_once, one, &err), TK_ECONFLICT);
    assert_string_equal(err.sqlstate, "23505");
    assert_non_null(strstr(err.message, "duplicate key"));
    assert_int_equal(tk_conn_run(c, &bad_syntax, NULL, &err), TK_EDB);
    assert_string_equal(err.sqlstate, "42601");
    const char *not_int[] = {"seven"};
    PGresult *res;
    assert_int_equal(tk_conn_query(c, &select_one, not_int, &res, &err), TK_EINVAL);
    assert_null(res);
    assert_string_equal(err.sqlstate, "22P02");
    tk_pool_release(pool, c);
    tk_pool_close(pool);
}

/* tk_pool_warm_up runs tasker.warm_up() (here a stand-in recording its session) on the
 * connection the next acquire hands out, opening one when the idle ones are lent; with every
 * connection lent it warms nothing and says so, and a failing warm-up is reported. */
static void test_warm_up_reaches_the_next_connection(void **state)
{
    (void)state;
    tk_pool_t *pool;
    tk_error_t err;
    assert_int_equal(tk_pool_open(tk_pgembed_url(pg), "test", 2, &pool, &err), TK_OK);
    tk_conn_t *held;
    assert_int_equal(tk_pool_acquire(pool, 1000, &held, &err), TK_OK);
    assert_int_equal(
        tk_conn_exec(held,
                     "CREATE SCHEMA IF NOT EXISTS tasker; CREATE TABLE warmed (pid int); "
                     "CREATE FUNCTION tasker.warm_up() RETURNS integer LANGUAGE sql AS "
                     "'INSERT INTO warmed VALUES (pg_backend_pid()) RETURNING 1'",
                     &err),
        TK_OK);
    const tk_stmt_t warmed = {
        "t_warmed", "SELECT count(*) FILTER (WHERE pid <> pg_backend_pid()) FROM warmed", 0, false};
    PGresult *res;

    /* the only idle connection is lent: a second one is opened and warmed */
    assert_int_equal(tk_pool_warm_up(pool, &err), TK_OK);
    assert_int_equal(tk_conn_query(held, &warmed, NULL, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);

    /* both lent: nothing warmed */
    tk_conn_t *other;
    assert_int_equal(tk_pool_acquire(pool, 1000, &other, &err), TK_OK);
    assert_int_equal(tk_pool_warm_up(pool, &err), TK_ETIMEDOUT);
    tk_pool_release(pool, other);

    /* a failing warm-up says so */
    assert_int_equal(tk_conn_exec(held, "DROP FUNCTION tasker.warm_up()", &err), TK_OK);
    assert_int_not_equal(tk_pool_warm_up(pool, &err), TK_OK);
    assert_int_equal(tk_conn_exec(held, "DROP TABLE warmed; DROP SCHEMA tasker", &err), TK_OK);
    tk_pool_release(pool, held);
    tk_pool_close(pool);
}

static void test_bad_url(void **state)
{
    (void)state;
    tk_pool_t *pool = (tk_pool_t *)1;
    tk_error_t err;
    assert_int_equal(
        tk_pool_open("postgresql://nobody@127.0.0.1:1/nothing", "test", 2, &pool, &err), TK_ECONN);
    assert_null(pool);
    assert_non_null(strstr(err.message, "could not connect to the database"));
    assert_int_equal(tk_pool_open("this is not a url", "test", 2, &pool, &err), TK_ECONN);
    assert_int_equal(tk_pool_open("", "test", 2, &pool, &err), TK_EINVAL);
}

static void test_exhausted_pool_times_out(void **state)
{
    (void)state;
    tk_pool_t *pool;
    tk_error_t err;
    assert_int_equal(tk_pool_open(tk_pgembed_url(pg), "test", 1, &pool, &err), TK_OK);
    tk_conn_t *a, *b = NULL;
    assert_int_equal(tk_pool_acquire(pool, 1000, &a, &err), TK_OK);
    assert_int_equal(tk_pool_acquire(pool, 100, &b, &err), TK_ETIMEDOUT);
    assert_null(b);
    tk_pool_release(pool, a);
    assert_int_equal(tk_pool_acquire(pool, 100, &b, &err), TK_OK);
    assert_ptr_equal(a, b);
    tk_pool_release(pool, b);
    tk_pool_close(pool);
}

static void test_reconnects_after_restart(void **state)
{
    (void)state;
    tk_pool_t *pool;
    tk_error_t err;
    PGresult *res;
    const char *one[] = {"1"};
    assert_int_equal(tk_pool_open(tk_pgembed_url(pg), "test", 2, &pool, &err), TK_OK);
    assert_int_equal(tk_pool_query(pool, &select_one, one, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "2");
    PQclear(res);

    /* Restart the server on the same port; the pooled connection is now dead. */
    int port = tk_pgembed_port(pg);
    assert_int_equal(tk_pgembed_stop(pg, &err), TK_OK);
    tk_pgembed_free(pg);
    tk_pgembed_opts_t opts = {.data_dir = data_dir, .durable = false, .port = port};
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        fail_msg("restart: %s", err.message);

    /* Idempotent statement: retried on a fresh connection, the caller sees success. */
    assert_int_equal(tk_pool_query(pool, &select_one, one, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "2");
    PQclear(res);

    /* Restart again: a non-idempotent statement reports the broken connection once, and the
     * next call works on a reconnected session. */
    assert_int_equal(tk_pgembed_stop(pg, &err), TK_OK);
    tk_pgembed_free(pg);
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        fail_msg("restart: %s", err.message);
    const char *two[] = {"2"};
    assert_int_equal(tk_pool_query(pool, &insert_once, two, &res, &err), TK_ECONN);
    assert_int_equal(tk_pool_query(pool, &insert_once, two, &res, &err), TK_OK);
    PQclear(res);
    tk_conn_t *c;
    assert_int_equal(tk_pool_acquire(pool, 1000, &c, &err), TK_OK);
    assert_int_equal(tk_test_count(tk_conn_pg(c), "SELECT count(*) FROM t WHERE id = 2"), 1);
    tk_pool_release(pool, c);
    tk_pool_close(pool);
}

/* A second start on the same directory attaches to the running server. */
static void test_attach_to_running(void **state)
{
    (void)state;
    tk_pgembed_opts_t opts = {.data_dir = data_dir, .durable = false};
    tk_pgembed_t *again;
    tk_error_t err;
    assert_int_equal(tk_pgembed_start(&opts, &again, &err), TK_OK);
    assert_false(tk_pgembed_started_here(again));
    assert_int_equal(tk_pgembed_port(again), tk_pgembed_port(pg));
    assert_string_equal(tk_pgembed_url(again), tk_pgembed_url(pg));
    tk_pgembed_free(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_carry_sqlstate),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_exhausted_pool_times_out),
        cmocka_unit_test(test_attach_to_running),
        cmocka_unit_test(test_reconnects_after_restart),
        cmocka_unit_test(test_warm_up_reaches_the_next_connection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
