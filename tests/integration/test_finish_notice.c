/*
 * test_finish_notice.c - a task's terminal state is announced on "tasker_task_finished" only
 * when someone asked to wait for it (sql/0025): a task created with
 * create_task(..., notify_on_finish => true) (POST /v1/tasks?wait_ms), or one a waiter looked
 * at with task_response_if_done(task, always, wait => true) (GET /v1/tasks/{uuid}?wait_ms).
 * Tasks nobody waits for finish without a NOTIFY. The notice is sent at the finishing commit
 * and carries the finished task's response on a second line when it fits in a payload
 * (sql/0037). Each task is one builtin.noop step, run through the engine's own calls
 * (claim_steps, complete_step) as a worker would.
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

/* Create a task whose context holds `padding` more bytes; notify: the 4-argument
 * create_task's notify_on_finish. Returns its uuid. */
static char *create_padded(const char *notify, const char *padding)
{
    const char *params[] = {notify, padding};
    const char *uuid = tk_test_valuep(
        pg,
        "SELECT tasker.create_task(jsonb_build_object('namespace', 'finish_ns', 'name', 'finish', "
        "'version', '1.0.0', 'context', jsonb_build_object('n', gen_random_uuid(), "
        "'padding', repeat('x', $2::int))), false, NULL, $1::boolean)->>'task_uuid'",
        2, params);
    return strdup(uuid);
}

static char *create(const char *notify)
{
    return create_padded(notify, "0");
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

/* The task's finish notice: its first line names the task as complete; the second line,
 * expected when `with_task`, is the task's response as GET /v1/tasks/{uuid} gives it. */
static void expect_notice(const char *task, bool with_task)
{
    tk_mq_event_t ev;
    tk_error_t err;
    int rc = tk_mq_listener_wait(listener, WAKE_MS, &ev, &err);
    if (rc != TK_OK)
        fail_msg("no finish notice for %s: %s", task, err.message);
    char *newline = strchr(ev.payload, '\n');
    if (newline != NULL)
        *newline = '\0';
    const char *notice[] = {ev.payload, task};
    assert_string_equal(
        tk_test_valuep(pg,
                       "SELECT $1::jsonb = jsonb_build_object('task_uuid', $2::text, "
                       "'status', 'complete')",
                       2, notice),
        "t");
    if (!with_task) {
        assert_null(newline);
        return;
    }
    if (newline == NULL)
        fail_msg("the notice for %s does not carry the task: %s", task, ev.payload);
    const char *carried[] = {newline + 1, task};
    assert_string_equal(
        tk_test_valuep(pg, "SELECT $1::jsonb = tasker.task_response($2::uuid)", 2, carried), "t");
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
    expect_notice(t, true);
    free(t);
}

/* A task too large for a payload is announced without its response (the waiter reads it). */
static void test_large_task_is_announced_without_its_response(void **state)
{
    (void)state;
    char *t = create_padded("true", "7800");
    run(t);
    expect_notice(t, false);
    free(t);
}

/* A task whose response cannot be built still finishes, announced without its response. */
static void test_failed_response_does_not_fail_the_finish(void **state)
{
    (void)state;
    char *saved = strdup(tk_test_valuep(
        pg, "SELECT pg_get_functiondef('tasker.task_response(uuid)'::regprocedure)", 0, NULL));
    tk_test_exec(pg, "CREATE OR REPLACE FUNCTION tasker.task_response(p_task_uuid uuid) "
                     "RETURNS jsonb LANGUAGE plpgsql STABLE AS "
                     "$$BEGIN RAISE EXCEPTION 'task_response broken by the test'; END$$");
    char *t = create("true");
    run(t); /* the step's result and the task's completion commit all the same */
    expect_notice(t, false);
    tk_test_exec(pg, saved);
    free(saved);
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
    expect_notice(t, true);
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
        cmocka_unit_test(test_large_task_is_announced_without_its_response),
        cmocka_unit_test(test_failed_response_does_not_fail_the_finish),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
