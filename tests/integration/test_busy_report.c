/*
 * test_busy_report.c - a step's success reported while another report holds its task's row
 * lock (sql/0031): complete_step stores it without waiting and answers task_state NULL;
 * complete_step_follow_up then waits for the lock and starts what the success made ready.
 * A diamond (start -> b, c -> end) run through the engine's own calls, with a second
 * connection holding the task's lock as a concurrent report would.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define QUEUE   "worker_busy_ns_queue"
#define WAIT_MS 300  /* a call that must be waiting for the lock is still busy after this */
#define DONE_MS 5000 /* a call that must not wait returns within this */
#define SUCCESS "{\"success\": true}"

static char *db_url;
static PGconn *reporter; /* the worker's connection */
static PGconn *holder;   /* another report, holding the task's lock */
static PGconn *observer; /* looks while the others wait */

typedef struct diamond_s {
    char task[40], start[40], b[40], c[40], end[40];
} diamond_t;

static int setup(void **state)
{
    (void)state;
    db_url = tk_test_db_create("it_busy_report");
    reporter = tk_test_connect(db_url);
    holder = tk_test_connect(db_url);
    observer = tk_test_connect(db_url);
    tk_test_exec(reporter, "SELECT tasker.register_template('{\"name\": \"diamond\", "
                           "\"namespace_name\": \"busy_ns\", \"version\": \"1.0.0\", \"steps\": ["
                           "{\"name\": \"start\", \"handler\": {\"callable\": \"builtin.noop\"}}, "
                           "{\"name\": \"b\", \"dependencies\": [\"start\"], "
                           "\"handler\": {\"callable\": \"builtin.noop\"}}, "
                           "{\"name\": \"c\", \"dependencies\": [\"start\"], "
                           "\"handler\": {\"callable\": \"builtin.noop\"}}, "
                           "{\"name\": \"end\", \"dependencies\": [\"b\", \"c\"], "
                           "\"handler\": {\"callable\": \"builtin.noop\"}}]}'::jsonb)");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(observer);
    PQfinish(holder);
    PQfinish(reporter);
    free(db_url);
    return 0;
}

static void step_uuid(const char *task, const char *name, char out[40])
{
    const char *params[] = {task, name};
    snprintf(out, 40, "%s",
             tk_test_valuep(reporter,
                            "SELECT ws.workflow_step_uuid FROM tasker.workflow_steps ws "
                            "JOIN tasker.named_steps n USING (named_step_uuid) "
                            "WHERE ws.task_uuid = $1::uuid AND n.name = $2",
                            2, params));
}

static const char *step_state(const char *step)
{
    const char *params[] = {step};
    return tk_test_valuep(observer,
                          "SELECT state FROM tasker.workflow_steps WHERE workflow_step_uuid = "
                          "$1::uuid",
                          1, params);
}

/* A diamond whose start step has completed: b and c are in progress for worker w1. */
static void diamond_running(diamond_t *d)
{
    snprintf(d->task, sizeof(d->task), "%s",
             tk_test_value(reporter, "SELECT tasker.create_task(jsonb_build_object("
                                     "'namespace', 'busy_ns', 'name', 'diamond', 'version', "
                                     "'1.0.0', 'context', jsonb_build_object('n', "
                                     "gen_random_uuid())), false)->>'task_uuid'"));
    step_uuid(d->task, "start", d->start);
    step_uuid(d->task, "b", d->b);
    step_uuid(d->task, "c", d->c);
    step_uuid(d->task, "end", d->end);
    const char *params[] = {d->task};
    assert_string_equal(tk_test_valuep(reporter,
                                       "SELECT count(*) FROM tasker.claim_steps(ARRAY['" QUEUE
                                       "'], NULL, 10, 'w1', 60) WHERE task_uuid = $1::uuid",
                                       1, params),
                        "1");
    const char *start[] = {d->start};
    /* the start's report takes b and c as continuation */
    assert_string_equal(tk_test_valuep(reporter,
                                       "SELECT count(step_uuid) FROM tasker.complete_step("
                                       "$1::uuid, 'w1', '{\"success\": true}', NULL, "
                                       "ARRAY['" QUEUE "'], NULL, 2, 60)",
                                       1, start),
                        "2");
    assert_string_equal(step_state(d->b), "in_progress");
    assert_string_equal(step_state(d->c), "in_progress");
}

/* Send `sql` on `conn` without waiting for its answer. */
static void send_query(PGconn *conn, const char *sql)
{
    if (!PQsendQuery(conn, sql))
        fail_msg("send: %s", PQerrorMessage(conn));
}

/* Whether the query sent on `conn` is still running after `ms` milliseconds. */
static bool still_busy_after(PGconn *conn, int ms)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    for (int waited = 0; waited < ms; waited += 10) {
        if (!PQconsumeInput(conn))
            fail_msg("consume: %s", PQerrorMessage(conn));
        if (!PQisBusy(conn))
            return false;
        poll(&pfd, 1, 10);
    }
    return true;
}

/* The rows of the query sent on `conn` (caller PQclears). */
static PGresult *answer(PGconn *conn)
{
    PGresult *rows = NULL, *r;
    while ((r = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
            fail_msg("query failed: %s", PQresultErrorMessage(r));
        if (rows == NULL && PQresultStatus(r) == PGRES_TUPLES_OK)
            rows = r;
        else
            PQclear(r);
    }
    assert_non_null(rows);
    return rows;
}

/* Send `sql` and take its answer, which must come without waiting for a lock. */
static PGresult *run_without_waiting(PGconn *conn, const char *sql)
{
    send_query(conn, sql);
    if (still_busy_after(conn, DONE_MS))
        fail_msg("still waiting after %d ms: %s", DONE_MS, sql);
    return answer(conn);
}

/* Lock the diamond's task row on the holder's connection, as a concurrent report does. */
static void hold_task_lock(const diamond_t *d)
{
    char sql[160];
    tk_test_exec(holder, "BEGIN");
    snprintf(sql, sizeof(sql), "SELECT 1 FROM tasker.tasks WHERE task_uuid = '%s' FOR UPDATE",
             d->task);
    PQclear(tk_test_query(holder, sql));
}

/* The worker's complete_step call (one continuation place) for `step`. */
static void complete_sql(char *sql, size_t size, const char *step, const char *result,
                         const char *worker)
{
    snprintf(sql, size,
             "SELECT accepted, step_state, task_state, step_name FROM tasker.complete_step("
             "'%s', '%s', '%s', NULL, ARRAY['" QUEUE "'], NULL, 1, 60)",
             step, worker, result);
}

/* The worker's complete_step_follow_up call (one continuation place) for `step`. */
static void follow_up_sql(char *sql, size_t size, const char *step, const char *worker)
{
    snprintf(sql, size,
             "SELECT accepted, step_state, task_state, step_name FROM "
             "tasker.complete_step_follow_up('%s', '%s', ARRAY['" QUEUE "'], NULL, 1, 60)",
             step, worker);
}

/* Report `step`'s success for w1 on the reporter's connection and wait for the answer. */
static void succeed(const char *step)
{
    char sql[512];
    complete_sql(sql, sizeof(sql), step, SUCCESS, "w1");
    PQclear(tk_test_query(reporter, sql));
}

/* Report `step`'s success for w1 while the holder keeps the task locked: it is stored at
 * once and answered as the verdict alone, with task_state NULL (nothing decided yet). */
static void store_while_busy(const char *step)
{
    char sql[512];
    complete_sql(sql, sizeof(sql), step, SUCCESS, "w1");
    PGresult *res = run_without_waiting(reporter, sql);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_string_equal(PQgetvalue(res, 0, 1), "complete");
    assert_true(PQgetisnull(res, 0, 2));
    PQclear(res);
}

/* `step`'s follow-up for `worker`: it must wait while the holder keeps the task locked; the
 * holder then commits. Returns the follow-up's rows (caller PQclears). */
static PGresult *follow_up_after_holder(const char *step, const char *worker)
{
    char sql[512];
    follow_up_sql(sql, sizeof(sql), step, worker);
    send_query(reporter, sql);
    assert_true(still_busy_after(reporter, WAIT_MS));
    tk_test_exec(holder, "COMMIT");
    return answer(reporter);
}

static void test_success_is_stored_while_the_task_is_locked(void **state)
{
    (void)state;
    diamond_t d;
    diamond_running(&d);
    hold_task_lock(&d);

    store_while_busy(d.b);
    assert_string_equal(step_state(d.b), "complete"); /* committed */

    /* the follow-up waits for the lock, then finds nothing ready: c still runs */
    PGresult *res = follow_up_after_holder(d.b, "w1");
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_string_equal(PQgetvalue(res, 0, 1), "complete");
    assert_string_equal(PQgetvalue(res, 0, 2), "steps_in_process");
    PQclear(res);
    assert_string_equal(step_state(d.end), "pending");
}

/* The race the lock used to settle: b's report holds the task and does not see c complete;
 * c's success is stored meanwhile; c's follow-up, after b's commit, starts the join once. */
static void test_join_starts_once_when_its_parents_finish_together(void **state)
{
    (void)state;
    diamond_t d;
    diamond_running(&d);

    char sql[512];
    tk_test_exec(holder, "BEGIN");
    complete_sql(sql, sizeof(sql), d.b, SUCCESS, "w1");
    PGresult *res = tk_test_query(holder, sql);
    assert_int_equal(PQntuples(res), 1); /* c runs: no continuation */
    assert_string_equal(PQgetvalue(res, 0, 2), "steps_in_process");
    PQclear(res);

    store_while_busy(d.c);
    res = follow_up_after_holder(d.c, "w2");
    assert_int_equal(PQntuples(res), 2); /* the verdict, then the join for w2 */
    assert_string_equal(PQgetvalue(res, 0, 2), "steps_in_process");
    assert_string_equal(PQgetvalue(res, 1, 3), "end");
    PQclear(res);

    const char *params[] = {d.end};
    assert_string_equal(step_state(d.end), "in_progress");
    assert_string_equal(tk_test_valuep(reporter,
                                       "SELECT lease_owner FROM tasker.workflow_steps "
                                       "WHERE workflow_step_uuid = $1::uuid",
                                       1, params),
                        "w2");
    assert_string_equal(tk_test_valuep(reporter,
                                       "SELECT string_agg(to_state, ',' ORDER BY created_at) "
                                       "FROM tasker.workflow_step_transitions "
                                       "WHERE workflow_step_uuid = $1::uuid",
                                       1, params),
                        "pending,enqueued,in_progress");
    assert_string_equal(tk_test_valuep(reporter,
                                       "SELECT count(*) FROM tasker_mq.messages "
                                       "WHERE message->>'step_uuid' = $1",
                                       1, params),
                        "0"); /* taken as continuation, not also queued */
}

static void test_failure_waits_for_the_lock(void **state)
{
    (void)state;
    diamond_t d;
    diamond_running(&d);
    hold_task_lock(&d);

    char sql[512];
    complete_sql(sql, sizeof(sql), d.b,
                 "{\"success\": false, \"error\": {\"message\": \"boom\", \"retryable\": true}}",
                 "w1");
    send_query(reporter, sql);
    assert_true(still_busy_after(reporter, WAIT_MS));
    assert_string_equal(step_state(d.b), "in_progress");
    tk_test_exec(holder, "COMMIT");
    PGresult *res = answer(reporter);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_false(PQgetisnull(res, 0, 2)); /* applied and decided in one go, as before */
    PQclear(res);
}

/* A worker that dies between the store and its follow-up leaves a ready step pending; the
 * sweeper's stuck-task check (here with 0 s) evaluates the task and queues it. */
static void test_missing_follow_up_is_made_good_by_the_sweeper(void **state)
{
    (void)state;
    diamond_t d;
    diamond_running(&d);
    succeed(d.b);
    hold_task_lock(&d);
    store_while_busy(d.c);
    tk_test_exec(holder, "COMMIT");
    assert_string_equal(step_state(d.end), "pending");

    tk_test_exec(reporter, "SELECT tasker.sweep(NULL, 0)");
    assert_string_equal(step_state(d.end), "enqueued");
}

/* Inside one transaction: a follow-up that leaves the task running commits without waiting
 * for the flush; one that finishes the task commits durably. */
static void test_follow_up_commits_durably_only_a_final_state(void **state)
{
    (void)state;
    diamond_t d;
    diamond_running(&d);
    char sql[512];
    succeed(d.b);

    /* a session value of its own (the test server runs without durable commits) */
    tk_test_exec(reporter, "SET synchronous_commit = local");
    tk_test_exec(reporter, "BEGIN");
    follow_up_sql(sql, sizeof(sql), d.b, "w1");
    PQclear(tk_test_query(reporter, sql));
    assert_string_equal(tk_test_value(reporter, "SHOW synchronous_commit"), "off");
    tk_test_exec(reporter, "COMMIT");
    assert_string_equal(tk_test_value(reporter, "SHOW synchronous_commit"), "local");

    succeed(d.c); /* starts end for w1 */
    succeed(d.end);
    const char *params[] = {d.task};
    assert_string_equal(tk_test_valuep(reporter,
                                       "SELECT state FROM tasker.tasks WHERE task_uuid = $1::uuid",
                                       1, params),
                        "complete");

    /* the task finishing inside the follow-up: end's success stored, then followed up */
    diamond_t d2;
    diamond_running(&d2);
    succeed(d2.b);
    succeed(d2.c);
    hold_task_lock(&d2);
    store_while_busy(d2.end);
    tk_test_exec(holder, "COMMIT");
    tk_test_exec(reporter, "BEGIN");
    follow_up_sql(sql, sizeof(sql), d2.end, "w1");
    PGresult *res = tk_test_query(reporter, sql);
    assert_string_equal(PQgetvalue(res, 0, 2), "complete");
    PQclear(res);
    assert_string_equal(tk_test_value(reporter, "SHOW synchronous_commit"), "on");
    tk_test_exec(reporter, "COMMIT");
    tk_test_exec(reporter, "RESET synchronous_commit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_is_stored_while_the_task_is_locked),
        cmocka_unit_test(test_join_starts_once_when_its_parents_finish_together),
        cmocka_unit_test(test_failure_waits_for_the_lock),
        cmocka_unit_test(test_missing_follow_up_is_made_good_by_the_sweeper),
        cmocka_unit_test(test_follow_up_commits_durably_only_a_final_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
