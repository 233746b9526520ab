/*
 * test_early_continuation.c - a step's continuations start while the step's result is being
 * committed (src/worker/README.md, "Results before their commit"): with the commit of the
 * first step's result held up (a deferred trigger waits for an advisory lock this test
 * holds), the worker runs both of its children's handlers all the same; once the commit goes
 * through, their results follow (one of them on the parked connection, after the commit) and
 * the task completes, each step run once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "e2e.h"
#include "harness.h"

/* The commit of overlap_first's result (its inputs are {"first": true}) waits for advisory
 * lock 4343. */
static const char *const hold_up =
    "CREATE FUNCTION test_hold_up() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    "  PERFORM pg_advisory_xact_lock(4343); RETURN NULL; END $$;"
    "CREATE CONSTRAINT TRIGGER test_hold_up AFTER UPDATE OF state ON tasker.workflow_steps"
    "  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
    "  WHEN (NEW.state = 'complete' AND NEW.handler_callable = 'builtin.noop'"
    "        AND NEW.inputs = '{\"first\": true}')"
    "  EXECUTE FUNCTION test_hold_up();";

/* Handlers of the worker that returned a success. */
static long handlers_done(const e2e_proc_t *worker)
{
    return e2e_worker_metric(worker->port, "tasker_worker_steps_total{outcome=\"success\"}");
}

static void test_continuation_runs_while_its_parent_commits(void **state)
{
    (void)state;
    char *db_url = tk_test_db_create("e2e_early_continuation");
    PGconn *pg = tk_test_connect(db_url);
    tk_test_exec(pg, hold_up);
    PGconn *holder = tk_test_connect(db_url);
    tk_test_exec(holder, "SELECT pg_advisory_lock(4343)");
    e2e_proc_t server = e2e_start_server(db_url, "server", NULL);
    e2e_proc_t worker =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/templates"), "worker", NULL);

    json_t *t = e2e_create_task(server.port, "e2e_overlap", "overlap", "{}", 0, 201);
    char task[40];
    snprintf(task, sizeof(task), "%s", json_string_value(json_object_get(t, "task_uuid")));
    json_decref(t);

    for (int waited = 0; handlers_done(&worker) < 3; waited += 20) {
        if (waited > 10000)
            fail_msg("the children's handlers did not run while the first result was committing");
        e2e_sleep_ms(20);
    }
    const char *params[] = {task};
    /* the first result is still not committed */
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT count(*) FROM workflow_steps "
                                       "WHERE task_uuid = $1::uuid AND state = 'complete'",
                                       1, params),
                        "0");
    tk_test_exec(holder, "SELECT pg_advisory_unlock(4343)");

    t = e2e_get_task(server.port, task, 30000);
    assert_string_equal(json_string_value(json_object_get(t, "status")), "complete");
    json_decref(t);
    /* each step ran once */
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT count(*) FROM workflow_steps "
                                       "WHERE task_uuid = $1::uuid AND attempts = 1 "
                                       "AND state = 'complete'",
                                       1, params),
                        "4");
    assert_int_equal(handlers_done(&worker), 4);
    PQfinish(holder);
    PQfinish(pg);
    e2e_stop(&worker);
    e2e_stop(&server);
    free(db_url);
}

int main(void)
{
    e2e_init("early_continuation");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_continuation_runs_while_its_parent_commits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
