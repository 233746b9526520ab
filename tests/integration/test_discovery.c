/*
 * test_discovery.c - get_next_ready_tasks really locks what it returns (Tasker bug 1: its
 * FOR UPDATE SKIP LOCKED applied to a CTE and locked nothing).
 *
 * Two connections in open transactions get disjoint tasks; then two threads drain 200
 * pending tasks concurrently, each claiming with get_next_ready_tasks and moving every task
 * it got from pending to initializing: every move must win (the task was locked for us) and
 * every task must be claimed exactly once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/conn.h"
#include "harness.h"

#define TASKS 200

static char *db_url;

static const tk_stmt_t next_ready = {
    "t_next_ready", "SELECT task_uuid FROM tasker.get_next_ready_tasks($1)", 1, false};
static const tk_stmt_t start_task = {
    "t_start", "SELECT tasker.transition_task_state_atomic($1, 'pending', 'initializing')", 1,
    false};

static void make_tasks(PGconn *pg, int count)
{
    char sql[512];
    tk_test_exec(pg, "INSERT INTO task_namespaces (name) VALUES ('discovery') "
                     "ON CONFLICT DO NOTHING");
    tk_test_exec(pg, "INSERT INTO named_tasks (task_namespace_uuid, name) "
                     "SELECT task_namespace_uuid, 'job' FROM task_namespaces "
                     "ON CONFLICT DO NOTHING");
    snprintf(sql, sizeof(sql),
             "INSERT INTO tasks (named_task_uuid, identity_hash, correlation_id, priority) "
             "SELECT named_task_uuid, gen_random_uuid()::text, gen_random_uuid(), i %% 7 "
             "FROM named_tasks, generate_series(1, %d) i",
             count);
    tk_test_exec(pg, sql);
}

static int setup(void **state)
{
    (void)state;
    db_url = tk_test_db_create("it_discovery");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(db_url);
    return 0;
}

/* Task uuids returned by one call, as a newline-joined string. */
static char *claim(tk_conn_t *c, int limit)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {lim};
    PGresult *res;
    tk_error_t err;
    if (tk_conn_query(c, &next_ready, params, &res, &err) != TK_OK)
        fail_msg("get_next_ready_tasks: %s", err.message);
    size_t len = 0;
    char *out = calloc((size_t)PQntuples(res) * 40 + 1, 1);
    for (int i = 0; i < PQntuples(res); i++)
        len += (size_t)snprintf(out + len, 41, "%s\n", PQgetvalue(res, i, 0));
    PQclear(res);
    return out;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_open_transactions_get_disjoint_tasks(void **state)
{
    (void)state;
    tk_conn_t *a, *b;
    tk_error_t err;
    assert_int_equal(tk_conn_open(db_url, "a", &a, &err), TK_OK);
    assert_int_equal(tk_conn_open(db_url, "b", &b, &err), TK_OK);
    tk_test_exec(tk_conn_pg(a), "DELETE FROM tasks");
    make_tasks(tk_conn_pg(a), 6);

    tk_test_exec(tk_conn_pg(a), "BEGIN");
    tk_test_exec(tk_conn_pg(b), "BEGIN");
    char *got_a = claim(a, 4);
    char *got_b = claim(b, 10); /* asks for more than is left */
    assert_int_equal(lines(got_a), 4);
    assert_int_equal(lines(got_b), 2);
    for (char *line = got_b; *line; line = strchr(line, '\n') + 1) {
        char uuid[37];
        snprintf(uuid, sizeof(uuid), "%.36s", line);
        assert_null(strstr(got_a, uuid));
    }
    /* Once A's transaction ends, its tasks are available again. */
    tk_test_exec(tk_conn_pg(a), "ROLLBACK");
    char *again = claim(b, 10);
    assert_int_equal(lines(again), 6); /* B's own locks do not hide tasks from B */
    tk_test_exec(tk_conn_pg(b), "ROLLBACK");
    free(got_a);
    free(got_b);
    free(again);
    tk_conn_close(a);
    tk_conn_close(b);
}

typedef struct worker_s {
    pthread_t thread;
    int claimed;
    int lost; /* moves that failed although we held the lock */
    char (*uuids)[37];
} worker_t;

/* Both drain threads wait here with their first claim's locks held, so that each takes part
 * however the scheduler runs them (one could otherwise drain everything alone). */
static pthread_barrier_t first_claims;

static void *drain(void *arg)
{
    worker_t *w = arg;
    tk_conn_t *c;
    tk_error_t err;
    if (tk_conn_open(db_url, "drain", &c, &err) != TK_OK) {
        pthread_barrier_wait(&first_claims);
        return NULL;
    }
    for (bool first = true;; first = false) {
        tk_conn_exec(c, "BEGIN", &err);
        char *got = claim(c, 5);
        if (first)
            pthread_barrier_wait(&first_claims);
        if (*got == '\0') {
            free(got);
            tk_conn_exec(c, "COMMIT", &err);
            break;
        }
        for (char *line = got; *line; line = strchr(line, '\n') + 1) {
            char uuid[37];
            snprintf(uuid, sizeof(uuid), "%.36s", line);
            const char *params[] = {uuid};
            PGresult *res;
            if (tk_conn_query(c, &start_task, params, &res, &err) != TK_OK ||
                strcmp(PQgetvalue(res, 0, 0), "t") != 0)
                w->lost++;
            PQclear(res);
            snprintf(w->uuids[w->claimed++], 37, "%s", uuid);
        }
        free(got);
        tk_conn_exec(c, "COMMIT", &err);
    }
    tk_conn_close(c);
    return NULL;
}

static int compare_uuid(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_concurrent_drain_claims_each_task_once(void **state)
{
    (void)state;
    PGconn *pg = tk_test_connect(db_url);
    tk_test_exec(pg, "DELETE FROM tasks");
    make_tasks(pg, TASKS);

    worker_t workers[2] = {{0}};
    pthread_barrier_init(&first_claims, NULL, 2);
    for (int i = 0; i < 2; i++) {
        workers[i].uuids = calloc(TASKS, 37);
        pthread_create(&workers[i].thread, NULL, drain, &workers[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(workers[i].thread, NULL);
    pthread_barrier_destroy(&first_claims);

    assert_int_equal(workers[0].lost + workers[1].lost, 0);
    assert_int_equal(workers[0].claimed + workers[1].claimed, TASKS);
    /* Both threads took part (otherwise the test proves nothing about concurrency). */
    assert_true(workers[0].claimed > 0 && workers[1].claimed > 0);

    char(*all)[37] = calloc(TASKS, 37);
    memcpy(all, workers[0].uuids, (size_t)workers[0].claimed * 37);
    memcpy(all + workers[0].claimed, workers[1].uuids, (size_t)workers[1].claimed * 37);
    qsort(all, TASKS, 37, compare_uuid);
    for (int i = 1; i < TASKS; i++)
        assert_string_not_equal(all[i - 1], all[i]);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM tasks WHERE state = 'initializing'"),
                     TASKS);
    free(all);
    free(workers[0].uuids);
    free(workers[1].uuids);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_transactions_get_disjoint_tasks),
        cmocka_unit_test(test_concurrent_drain_claims_each_task_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
