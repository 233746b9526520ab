/*
 * test_migrate.c - the migration runner: applies everything to an empty database, is
 * idempotent, is safe when two processes migrate at once, and refuses a database migrated by
 * a newer tasker.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/conn.h"
#include "db/migrate.h"
#include "harness.h"

static tk_conn_t *connect_to(const char *url)
{
    tk_conn_t *c;
    tk_error_t err;
    if (tk_conn_open(url, "test", &c, &err) != TK_OK)
        fail_msg("connect: %s", err.message);
    return c;
}

static void test_fresh_then_idempotent(void **state)
{
    (void)state;
    char *url = tk_test_db_create_empty("it_migrate_fresh");
    tk_conn_t *c = connect_to(url);
    tk_error_t err;
    int applied = -1, current = -1, known = -1;

    assert_int_equal(tk_migrate_status(c, &current, &known, &err), TK_OK);
    assert_int_equal(current, 0);
    assert_true(known >= 4);

    assert_int_equal(tk_migrate_run(c, &applied, NULL, NULL, &err), TK_OK);
    assert_true(applied >= 4);
    assert_int_equal(applied, tk_test_count(tk_conn_pg(c), "SELECT count(*) FROM "
                                                           "tasker.schema_migrations"));
    assert_int_equal(tk_migrate_status(c, &current, &known, &err), TK_OK);
    assert_int_equal(current, known);

    /* The schema works: a namespace can be created. */
    tk_test_exec(tk_conn_pg(c), "INSERT INTO tasker.task_namespaces (name) VALUES ('ok')");

    /* Again: nothing to do, nothing changed. */
    const char *fingerprint_sql =
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('tasker', 'tasker_mq')";
    long objects = tk_test_count(tk_conn_pg(c), fingerprint_sql);
    assert_int_equal(tk_migrate_run(c, &applied, NULL, NULL, &err), TK_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(tk_test_count(tk_conn_pg(c), fingerprint_sql), objects);
    assert_int_equal(tk_test_count(tk_conn_pg(c), "SELECT count(*) FROM tasker.task_namespaces"),
                     1);
    tk_conn_close(c);
    free(url);
}

static char *concurrent_url;

static void *migrate_thread(void *arg)
{
    int *result = arg;
    tk_conn_t *c;
    tk_error_t err;
    result[0] = tk_conn_open(concurrent_url, "racer", &c, &err);
    if (result[0] == TK_OK) {
        result[0] = tk_migrate_run(c, &result[1], NULL, NULL, &err);
        tk_conn_close(c);
    }
    return NULL;
}

static void test_two_migrators_at_once(void **state)
{
    (void)state;
    concurrent_url = tk_test_db_create_empty("it_migrate_race");
    int results[2][2] = {{-1, -1}, {-1, -1}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, migrate_thread, results[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(results[0][0], TK_OK);
    assert_int_equal(results[1][0], TK_OK);
    /* One of them did all the work, the other found nothing left. */
    assert_true(results[0][1] == 0 || results[1][1] == 0);
    tk_conn_t *c = connect_to(concurrent_url);
    int current, known;
    tk_error_t err;
    assert_int_equal(tk_migrate_status(c, &current, &known, &err), TK_OK);
    assert_int_equal(current, known);
    assert_int_equal(results[0][1] + results[1][1],
                     tk_test_count(tk_conn_pg(c), "SELECT count(*) FROM tasker.schema_migrations"));
    tk_conn_close(c);
    free(concurrent_url);
}

static void test_refuses_newer_schema(void **state)
{
    (void)state;
    char *url = tk_test_db_create("it_migrate_newer");
    tk_conn_t *c = connect_to(url);
    tk_test_exec(tk_conn_pg(c), "INSERT INTO tasker.schema_migrations (version, name, checksum) "
                                "VALUES (9999, 'from_the_future', 'x')");
    tk_error_t err;
    int applied = -1;
    assert_int_equal(tk_migrate_run(c, &applied, NULL, NULL, &err), TK_ESCHEMA);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err.message, "9999"));
    assert_non_null(strstr(err.message, "upgrade tasker"));
    tk_conn_close(c);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_then_idempotent),
        cmocka_unit_test(test_two_migrators_at_once),
        cmocka_unit_test(test_refuses_newer_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
