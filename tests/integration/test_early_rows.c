/*
 * test_early_rows.c - a statement's rows before its commit (tk_conn_send_early, conn.h): the
 * rows arrive while the commit is still held up (by a deferred trigger waiting for an advisory
 * lock this test holds), the commit's outcome comes separately (a failing deferred trigger
 * shows there and nothing is stored), a second statement may be sent before the first one's
 * commit is taken, a statement not yet prepared on the session is prepared in the same
 * pipeline (and not taken for prepared when that fails), rows never taken go with their
 * commit, and a connection given back to the pool with a commit outstanding is settled first.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/pool.h"
#include "harness.h"

static char *db_url;

/* t's rows commit only once advisory lock 4242 is free; a row with v < 0 fails at commit. */
static const char *const schema =
    "CREATE TABLE t (v int);"
    "CREATE FUNCTION t_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    "  PERFORM pg_advisory_xact_lock(4242);"
    "  IF NEW.v < 0 THEN RAISE EXCEPTION 'negative %', NEW.v; END IF;"
    "  RETURN NULL; END $$;"
    "CREATE CONSTRAINT TRIGGER t_at_commit AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED"
    "  FOR EACH ROW EXECUTE FUNCTION t_at_commit();";

static const tk_stmt_t insert_stmt = {"t_insert", "INSERT INTO t VALUES ($1::int) RETURNING v * 10",
                                      1, false};
static const tk_stmt_t count_stmt = {"t_count", "SELECT count(*) FROM t WHERE v = $1::int", 1,
                                     true};
static const tk_stmt_t bad_stmt = {"t_bad", "SELECT * FROM no_such_table", 0, true};

static int setup(void **state)
{
    (void)state;
    db_url = tk_test_db_create_empty("it_early_rows");
    PGconn *pg = tk_test_connect(db_url);
    tk_test_exec(pg, schema);
    PQfinish(pg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(db_url);
    return 0;
}

/* Wait up to 10 s until the statement's rows can be taken without blocking. */
static bool rows_arrive(tk_conn_t *c)
{
    PGconn *pg = tk_conn_pg(c);
    for (int waited = 0; waited < 10000; waited += 50) {
        if (!PQconsumeInput(pg))
            return false;
        if (!PQisBusy(pg))
            return true;
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        poll(&pfd, 1, 50);
    }
    return false;
}

static long count_of(PGconn *pg, const char *v)
{
    const char *params[] = {v};
    return strtol(tk_test_valuep(pg, count_stmt.sql, 1, params), NULL, 10);
}

/* The rows with value v, counted on c itself (which shows that c still works); -1 when the
 * query fails. */
static long count_on(tk_conn_t *c, const char *v)
{
    const char *params[] = {v};
    PGresult *res;
    tk_error_t err;
    if (tk_conn_query(c, &count_stmt, params, &res, &err) != TK_OK)
        return -1;
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static void test_rows_come_before_the_commit(void **state)
{
    (void)state;
    tk_conn_t *c;
    tk_error_t err;
    assert_int_equal(tk_conn_open(db_url, "test", &c, &err), TK_OK);
    PGconn *holder = tk_test_connect(db_url);
    tk_test_exec(holder, "SELECT pg_advisory_lock(4242)");

    const char *params[] = {"7"};
    assert_int_equal(tk_conn_send_early(c, &insert_stmt, params, &err), TK_OK);
    assert_int_equal(tk_conn_early_pending(c), 1);
    if (!rows_arrive(c))
        fail_msg("the rows did not come while the commit was held up");
    PGresult *res;
    assert_int_equal(tk_conn_take_rows(c, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "70");
    PQclear(res);
    assert_int_equal(count_of(holder, "7"), 0); /* not committed yet */

    tk_test_exec(holder, "SELECT pg_advisory_unlock(4242)");
    assert_int_equal(tk_conn_take_commit(c, &err), TK_OK);
    assert_int_equal(tk_conn_early_pending(c), 0);
    assert_int_equal(PQpipelineStatus(tk_conn_pg(c)), PQ_PIPELINE_OFF);
    assert_int_equal(count_of(holder, "7"), 1);
    PQfinish(holder);
    tk_conn_close(c);
}

static void test_a_failed_commit_shows_in_take_commit(void **state)
{
    (void)state;
    tk_conn_t *c;
    tk_error_t err;
    assert_int_equal(tk_conn_open(db_url, "test", &c, &err), TK_OK);
    const char *params[] = {"-3"};
    PGresult *res;
    assert_int_equal(tk_conn_send_early(c, &insert_stmt, params, &err), TK_OK);
    assert_int_equal(tk_conn_take_rows(c, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "-30");
    PQclear(res);
    assert_int_equal(tk_conn_take_commit(c, &err), TK_EDB);
    assert_non_null(strstr(err.message, "negative -3"));
    /* the connection goes on, and nothing was stored */
    assert_int_equal(count_on(c, params[0]), 0);
    tk_conn_close(c);
}

static void test_next_statement_goes_before_the_commit_is_taken(void **state)
{
    (void)state;
    tk_conn_t *c;
    tk_error_t err;
    assert_int_equal(tk_conn_open(db_url, "test", &c, &err), TK_OK);
    const char *first[] = {"11"}, *second[] = {"12"};
    PGresult *res;
    assert_int_equal(tk_conn_send_early(c, &insert_stmt, first, &err), TK_OK);
    assert_int_equal(tk_conn_take_rows(c, &res, &err), TK_OK);
    PQclear(res);
    assert_int_equal(tk_conn_send_early(c, &insert_stmt, second, &err), TK_OK);
    assert_int_equal(tk_conn_early_pending(c), 2);
    assert_int_equal(tk_conn_take_commit(c, &err), TK_OK);
    assert_int_equal(tk_conn_take_rows(c, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "120");
    PQclear(res);
    /* a statement this session has not prepared yet is prepared in the same pipeline, behind
     * the outstanding commit */
    assert_int_equal(tk_conn_send_early(c, &count_stmt, first, &err), TK_OK);
    assert_int_equal(tk_conn_early_pending(c), 2);
    assert_int_equal(tk_conn_take_commit(c, &err), TK_OK);
    assert_int_equal(tk_conn_take_rows(c, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    assert_int_equal(tk_conn_take_commit(c, &err), TK_OK);
    assert_int_equal(count_on(c, second[0]), 1);
    tk_conn_close(c);
}

static void test_a_statement_that_cannot_be_prepared(void **state)
{
    (void)state;
    tk_conn_t *c;
    tk_error_t err;
    assert_int_equal(tk_conn_open(db_url, "test", &c, &err), TK_OK);
    PGresult *res;
    /* refused when prepared, twice the same way (it is not taken for prepared), and the
     * connection goes on */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tk_conn_send_early(c, &bad_stmt, NULL, &err), TK_OK);
        assert_int_equal(tk_conn_take_rows(c, &res, &err), TK_EDB);
        assert_non_null(strstr(err.message, "no_such_table"));
        assert_int_equal(tk_conn_take_commit(c, &err), TK_OK);
    }
    const char *params[] = {"31"};
    assert_int_equal(count_on(c, params[0]), 0);
    /* rows never taken go with their commit */
    assert_int_equal(tk_conn_send_early(c, &insert_stmt, params, &err), TK_OK);
    assert_int_equal(tk_conn_take_commit(c, &err), TK_OK);
    assert_int_equal(tk_conn_early_pending(c), 0);
    assert_int_equal(count_on(c, params[0]), 1);
    tk_conn_close(c);
}

static void test_pool_settles_what_is_outstanding(void **state)
{
    (void)state;
    tk_pool_t *pool;
    tk_conn_t *c;
    tk_error_t err;
    assert_int_equal(tk_pool_open(db_url, "test", 1, &pool, &err), TK_OK);
    assert_true(tk_pool_has_spare(pool, 1));
    assert_int_equal(tk_pool_acquire(pool, 1000, &c, &err), TK_OK);
    assert_false(tk_pool_has_spare(pool, 1));
    const char *params[] = {"21"};
    PGresult *res;
    assert_int_equal(tk_conn_send_early(c, &insert_stmt, params, &err), TK_OK);
    assert_int_equal(tk_conn_take_rows(c, &res, &err), TK_OK);
    PQclear(res);
    tk_pool_release(pool, c); /* with its commit outstanding */
    assert_true(tk_pool_has_spare(pool, 1));
    assert_int_equal(tk_pool_query(pool, &count_stmt, params, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    tk_pool_close(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_come_before_the_commit),
        cmocka_unit_test(test_a_failed_commit_shows_in_take_commit),
        cmocka_unit_test(test_next_statement_goes_before_the_commit_is_taken),
        cmocka_unit_test(test_a_statement_that_cannot_be_prepared),
        cmocka_unit_test(test_pool_settles_what_is_outstanding),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
