/*
 * test_finish_notice.c - a task's terminal state is announced on "tasker_task_finished" only
 * when someone asked to wait for it (sql/0025): a task created with
 * create_task(..., notify_on_finish => true) (POST /v1/tasks?wait_ms), or one a waiter looked
 * at with task_response_if_done(task, always, wait => true) (GET /v1/tasks/{uuid}?wait_ms).
 * Tasks nobody waits for finish without a NOTIFY. Each task is one builtin.noop step, run
 * through the engine's own calls (claim_steps, complete_step) as a worker would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mq/listener.h"
#include "harness.h"

#define WAKE_MS    5000 /* a notification that should arrive */
#define NO_WAKE_MS 300  /* a notification that should not */
#define QUEUE      "worker_finish_ns_queue"

static char *db_url;
static PGconn *pg;
static tk_mq_listener_t *listener;

static int setup(void **state)
{
    (void)state;
    tk_error_t err;
    db_url = tk_test_db_create("it_finish_notice");
    pg = PQconnectdb(db_url);
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(pg));
    tk_test_exec(pg, "SET search_path = tasker, tasker_mq, public");
    tk_test_exec(pg, "SELECT tasker.register_template('{\"name\": \"finish\", "
                     "\"namespace_name\": \"finish_ns\", \"version\": \"1.0.0\", "
                     "\"steps\": [{\"name\": \"finish_step\", "
                     "\"handler\": {\"callable\": \"builtin.noop\"}}]}'::jsonb)");
    if (tk_mq_listener_open(db_url, &listener, &err) != TK_OK ||
        tk_mq_listener_subscribe_channel(listener, "tasker_task_finished", &err) != TK_OK)
        fail_msg("listener: %s", err.message);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tk_mq_listener_close(listener);
    PQfinish(pg);
    free(db_url);
    return 0;
}

/* Create a task; notify: the 4-argument create_task's notify_on_finish. Returns its uuid. */
static char *create(const char *notify)
{
    const char *params[] = {notify};
    const char *uuid = tk_test_valuep(
        pg,
        "SELECT tasker.create_task(jsonb_build_object('namespace', 'finish_ns', 'name', 'finish', "
        "'version', '1.0.0', 'context', jsonb_build_object('n', gen_random_uuid())), false, NULL, "
        "$1::boolean)->>'task_uuid'",
        1, params);
    return strdup(uuid);
}

/* Claim the task's one step and report it done, as a worker would. */
static void run(const char *task)
{
    const char *params[] = {task};
    char *step = strdup(tk_test_valuep(pg,
                                       "SELECT step_uuid FROM tasker.claim_steps(ARRAY['" QUEUE
                                       "'], NULL, 10, 'w1', 60) "
                                       "WHERE task_uuid = $1::uuid",
                                       1, params));
    const char *done[] = {step};
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT accepted FROM tasker.complete_step($1::uuid, 'w1', "
                                       "'{\"success\": true}', NULL, '{}', '{}', 1, 60) LIMIT 1",
                                       1, done),
                        "t");
    free(step);
    assert_string_equal(
        tk_test_valuep(pg, "SELECT state FROM tasker.tasks WHERE task_uuid = $1::uuid", 1, params),
        "complete");
}

static void expect_notice(const char *task)
{
    tk_mq_event_t ev;
    tk_error_t err;
    int rc = tk_mq_listener_wait(listener, WAKE_MS, &ev, &err);
    if (rc != TK_OK)
        fail_msg("no finish notice for %s: %s", task, err.message);
    assert_non_null(strstr(ev.payload, task));
    assert_non_null(strstr(ev.payload, "\"complete\""));
}

static void expect_silence(void)
{
    tk_mq_event_t ev;
    tk_error_t err;
    int rc = tk_mq_listener_wait(listener, NO_WAKE_MS, &ev, &err);
    if (rc != TK_ETIMEDOUT)
        fail_msg("unexpected notice (%s): %s", tk_err_name(rc), ev.payload);
}

static void test_unwaited_task_finishes_silently(void **state)
{
    (void)state;
    char *t = create("false");
    run(t);
    expect_silence();
    free(t);
}

static void test_task_created_for_a_waiter_is_announced(void **state)
{
    (void)state;
    char *t = create("true");
    run(t);
    expect_notice(t);
    free(t);
}

static void test_task_looked_at_by_a_waiter_is_announced(void **state)
{
    (void)state;
    char *t = create("false");
    const char *params[] = {t};
    /* GET ?wait_ms: the look asks for the notice and finds the task not done yet */
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT terminal FROM tasker.task_response_if_done("
                                       "$1::uuid, false, true)",
                                       1, params),
                        "f");
    run(t);
    expect_notice(t);
    /* a look at a finished task (or a second look) writes nothing and still answers */
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT terminal FROM tasker.task_response_if_done("
                                       "$1::uuid, false, true)",
                                       1, params),
                        "t");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwaited_task_finishes_silently),
        cmocka_unit_test(test_task_created_for_a_waiter_is_announced),
        cmocka_unit_test(test_task_looked_at_by_a_waiter_is_announced),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
