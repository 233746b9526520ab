/*
 * test_sibling_reports.c - results of one task's steps that finish while another report of
 * the task is under way go to the database together (src/worker/README.md, "Siblings"):
 * three parallel sleeps (tests/e2e/templates/fan_in.yaml) end while the test holds their
 * task's row lock, as a slow report would; the first result's report waits for the lock, and
 * the others then go in one call, one transaction. The join after them runs once, and the
 * worker counts the results it sent together.
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

#define NAPS_IN_PROGRESS                                                                           \
    "SELECT count(*) FROM workflow_steps ws JOIN named_steps n USING (named_step_uuid) "           \
    "WHERE ws.task_uuid = $1::uuid AND n.name LIKE 'nap_%' AND ws.state = 'in_progress'"

static void test_siblings_finishing_together_are_stored_together(void **state)
{
    (void)state;
    char *db_url = tk_test_db_create("e2e_sibling_reports");
    e2e_proc_t server = e2e_start_server(db_url, "server", NULL);
    e2e_proc_t worker =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/templates"), "worker", NULL);
    assert_int_equal(
        e2e_worker_metric(worker.port, "tasker_worker_results_reported_together_total"), 0);

    json_t *t = e2e_create_task(server.port, "e2e_fan_in", "fan_in", "{}", 0, 201);
    char task[40];
    snprintf(task, sizeof(task), "%s", json_string_value(json_object_get(t, "task_uuid")));
    json_decref(t);
    PGconn *pg = tk_test_connect(db_url);
    const char *params[] = {task};
    for (int waited = 0; strcmp(tk_test_valuep(pg, NAPS_IN_PROGRESS, 1, params), "3") != 0;
         waited += 10) {
        if (waited > 10000)
            fail_msg("the three naps did not start within 10 s");
        e2e_sleep_ms(10);
    }

    /* hold the task while the naps (500 ms) end, as a slow report of the task would */
    PGconn *holder = tk_test_connect(db_url);
    tk_test_exec(holder, "BEGIN");
    PQclear(tk_test_query(holder, "SELECT 1 FROM tasks FOR UPDATE"));
    e2e_sleep_ms(1500);
    tk_test_exec(holder, "COMMIT");

    t = e2e_get_task(server.port, task, 30000);
    assert_string_equal(json_string_value(json_object_get(t, "status")), "complete");
    json_decref(t);
    /* the naps' three results went in fewer transactions: the first alone (its report waited
     * for the lock) and the two others together, or all three together */
    long txns = strtol(tk_test_valuep(pg,
                                      "SELECT count(DISTINCT tr.xmin::text) "
                                      "FROM workflow_step_transitions tr JOIN workflow_steps ws "
                                      "USING (workflow_step_uuid) JOIN named_steps n "
                                      "USING (named_step_uuid) WHERE ws.task_uuid = $1::uuid "
                                      "AND n.name LIKE 'nap_%' "
                                      "AND tr.to_state = 'enqueued_for_orchestration'",
                                      1, params),
                       NULL, 10);
    if (txns != 1 && txns != 2)
        fail_msg("the three results were stored in %ld transactions", txns);
    assert_true(e2e_worker_metric(worker.port, "tasker_worker_results_reported_together_total") >=
                2);
    /* the join started once, after all three */
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT count(*) FROM workflow_step_transitions tr "
                                       "JOIN workflow_steps ws USING (workflow_step_uuid) "
                                       "JOIN named_steps n USING (named_step_uuid) "
                                       "WHERE ws.task_uuid = $1::uuid AND n.name = 'join' "
                                       "AND tr.to_state = 'in_progress'",
                                       1, params),
                        "1");
    PQfinish(holder);
    PQfinish(pg);
    e2e_stop(&worker);
    e2e_stop(&server);
    free(db_url);
}

int main(void)
{
    e2e_init("sibling_reports");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siblings_finishing_together_are_stored_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
