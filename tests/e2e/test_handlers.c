/*
 * test_handlers.c - handlers and delivery end to end:
 *   - a C plugin (examples/plugin) loaded with --plugin runs its steps, with a retry;
 *   - a handler that overruns its timeout fails with handler_timeout, is retried, and the
 *     worker keeps working at full strength afterwards;
 *   - a step whose handler no worker has waits in its queue (and the worker says so);
 *   - the polling and event_driven delivery modes complete workflows too;
 *   - every log line about a task, in the server's and the worker's logs, carries the
 *     task's correlation_id, so one task can be followed with grep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "e2e.h"
#include "harness.h"

static const char *plugin_path(void)
{
    static char path[1024];
    /* tests run in build/tests; the plugin is built in build/examples/plugin */
    snprintf(path, sizeof(path), "../examples/plugin/libtasker_example.so");
    return path;
}

static const char *status_of(json_t *task)
{
    return json_string_value(json_object_get(task, "status"));
}

/* Lines of `log_file` that mention `needle` (and `msg`, unless NULL), checked to carry
 * `correlation_id`. Returns how many lines mention it. */
static int check_log_lines(const char *log_file, const char *needle, const char *msg,
                           const char *correlation_id)
{
    FILE *f = fopen(log_file, "r");
    if (f == NULL)
        fail_msg("cannot read %s", log_file);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, needle) == NULL || (msg != NULL && strstr(line, msg) == NULL))
            continue;
        n++;
        json_t *doc = json_loads(line, 0, NULL);
        if (doc == NULL)
            fail_msg("not a JSON line in %s: %s", log_file, line);
        const char *c = json_string_value(json_object_get(doc, "correlation_id"));
        if (c == NULL || strcmp(c, correlation_id) != 0)
            fail_msg("line without the task's correlation_id in %s: %s", log_file, line);
        json_decref(doc);
    }
    fclose(f);
    return n;
}

static void test_plugin_and_log_correlation(void **state)
{
    (void)state;
    char *db_url = tk_test_db_create("e2e_plugin");
    e2e_proc_t server = e2e_start_server(db_url, "plugin-server", NULL);
    const char *extra[] = {"--plugin", plugin_path(), "--set", "backoff.base_seconds=0", NULL};
    e2e_proc_t worker =
        e2e_start_worker(db_url, e2e_source_path("examples/plugin"), "plugin-worker", extra);

    json_t *t = e2e_create_task(server.port, "plugin_example", "greeting", "{\"name\": \"Ada\"}",
                                30000, 201);
    assert_string_equal(status_of(t), "complete");
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    json_t *greet = e2e_step_result(server.port, uuid, "greet");
    assert_string_equal(json_string_value(json_object_get(greet, "greeting")), "Hello, Ada!");
    json_t *shout = e2e_step_result(server.port, uuid, "shout");
    assert_string_equal(json_string_value(json_object_get(shout, "shout")), "HELLO, ADA!");
    assert_int_equal(json_integer_value(json_object_get(shout, "attempt")), 2); /* flaky once */
    json_decref(greet);
    json_decref(shout);

    /* a validation error is not retried */
    json_t *bad = e2e_create_task(server.port, "plugin_example", "greeting", "{}", 30000, 201);
    assert_string_equal(status_of(bad), "error");
    json_t *step = e2e_task_step(bad, "greet");
    assert_int_equal(json_integer_value(json_object_get(step, "attempts")), 1);
    json_decref(bad);

    e2e_stop(&worker);
    e2e_stop(&server);
    /* one task, followed through both processes' logs: created by the server; claimed, run,
     * retried and finished by the worker, which applies its own results */
    const char *correlation = json_string_value(json_object_get(t, "correlation_id"));
    const char *server_log = "e2e-logs/handlers-plugin-server.log";
    const char *worker_log = "e2e-logs/handlers-plugin-worker.log";
    assert_true(check_log_lines(server_log, uuid, NULL, correlation) >= 1);
    assert_true(check_log_lines(worker_log, uuid, NULL, correlation) >= 3);
    assert_int_equal(check_log_lines(worker_log, uuid, "task finished: complete", correlation), 1);
    json_decref(t);
    free(db_url);
}

static void test_timeout_then_worker_still_serves(void **state)
{
    (void)state;
    char *db_url = tk_test_db_create("e2e_timeout");
    e2e_proc_t server = e2e_start_server(db_url, "timeout-server", NULL);
    const char *extra[] = {"--max-concurrent", "1", NULL};
    e2e_proc_t worker =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/templates"), "timeout-worker", extra);
    e2e_proc_t examples =
        e2e_start_worker(db_url, e2e_source_path("examples/templates"), "timeout-examples", NULL);

    json_t *t = e2e_create_task(server.port, "e2e_timeout", "too_slow", "{}", 30000, 201);
    assert_string_equal(status_of(t), "error");
    json_t *step = e2e_task_step(t, "overrun");
    assert_int_equal(json_integer_value(json_object_get(step, "attempts")), 2);
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(tk_test_value(pg, "SELECT results->'error'->>'error_type' FROM "
                                          "workflow_steps"),
                        "handler_timeout");
    PQfinish(pg);

    /* both of the worker's handler threads were stuck in sleeps; with max-concurrent 1 it
     * still takes new work at once thanks to its replacement thread */
    json_t *next =
        e2e_create_task(server.port, "e2e_sleep", "sleepy", "{\"after\": \"timeout\"}", 30000, 201);
    assert_string_equal(status_of(next), "complete");
    /* "at once": the 3 s nap ran while the second overrun was still asleep (it wakes 2 s
     * after the task failed), not after that stuck thread came back (done >= 5 s) */
    pg = tk_test_connect(db_url);
    long done_ms = strtol(
        tk_test_value(pg, "SELECT (extract(epoch FROM nap.created_at - failed.created_at) * "
                          "1000)::bigint FROM workflow_step_transitions nap "
                          "JOIN workflow_steps ws USING (workflow_step_uuid) "
                          "JOIN named_steps ns USING (named_step_uuid), task_transitions failed "
                          "WHERE ns.name = 'nap' AND nap.to_state = 'complete' "
                          "AND failed.to_state = 'error'"),
        NULL, 10);
    PQfinish(pg);
    assert_true(done_ms >= 3000);
    assert_true(done_ms < 4500);
    json_decref(next);
    json_decref(t);
    e2e_stop(&examples);
    e2e_stop(&worker);
    e2e_stop(&server);
    free(db_url);
}

static void test_step_without_a_handler_waits(void **state)
{
    (void)state;
    char *db_url = tk_test_db_create("e2e_unhandled");
    e2e_proc_t server = e2e_start_server(db_url, "unhandled-server", NULL);
    e2e_proc_t worker =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/templates"), "unhandled-worker", NULL);
    json_t *t = e2e_create_task(server.port, "e2e_unhandled", "unhandled", "{}", 1500, 201);
    assert_string_equal(status_of(t), "steps_in_process");
    assert_string_equal(
        json_string_value(json_object_get(e2e_task_step(t, "orphan"), "current_state")),
        "enqueued");
    json_decref(t);
    e2e_stop(&worker);
    e2e_stop(&server);
    FILE *f = fopen("e2e-logs/handlers-unhandled-worker.log", "r");
    assert_non_null(f);
    char line[8192];
    bool warned = false;
    while (!warned && fgets(line, sizeof(line), f) != NULL)
        warned = strstr(line, "nobody.has_this") != NULL &&
                 strstr(line, "which this worker does not have") != NULL;
    fclose(f);
    assert_true(warned);
    free(db_url);
}

static void run_in_mode(const char *mode)
{
    char name[64], label[64];
    snprintf(name, sizeof(name), "e2e_mode_%s", mode);
    char *db_url = tk_test_db_create(name);
    char orch_mode[64], worker_mode[64];
    snprintf(orch_mode, sizeof(orch_mode), "orchestration.mode=%s", mode);
    snprintf(worker_mode, sizeof(worker_mode), "worker.mode=%s", mode);
    const char *server_extra[] = {"--set", orch_mode, "--set", "orchestration.poll_interval_ms=100",
                                  NULL};
    const char *worker_extra[] = {"--set", worker_mode, "--set", "worker.poll_interval_ms=100",
                                  NULL};
    snprintf(label, sizeof(label), "%s-server", mode);
    e2e_proc_t server = e2e_start_server(db_url, label, server_extra);
    snprintf(label, sizeof(label), "%s-worker", mode);
    e2e_proc_t worker =
        e2e_start_worker(db_url, e2e_source_path("examples/templates"), label, worker_extra);
    snprintf(label, sizeof(label), "%s-fixtures", mode);
    e2e_proc_t fixtures =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/templates"), label, worker_extra);
    for (int i = 0; i < 3; i++) {
        char context[64];
        snprintf(context, sizeof(context), "{\"even_number\": 6, \"i\": %d}", i);
        json_t *t = e2e_create_task(server.port, "diamond_workflow", "diamond_pattern", context,
                                    30000, 201);
        assert_string_equal(status_of(t), "complete");
        json_decref(t);
    }
    /* two children ready at once run side by side: the second one is announced even though
     * the worker took the first as its continuation */
    json_t *t = e2e_create_task(server.port, "e2e_siblings", "siblings", "{}", 30000, 201);
    assert_string_equal(status_of(t), "complete");
    json_decref(t);
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(
        tk_test_value(pg, "SELECT max(tr.created_at) FILTER (WHERE tr.to_state = 'in_progress') < "
                          "min(tr.created_at) FILTER (WHERE tr.to_state = 'complete') "
                          "FROM workflow_step_transitions tr JOIN workflow_steps ws "
                          "USING (workflow_step_uuid) JOIN named_steps ns USING (named_step_uuid) "
                          "WHERE ns.name IN ('nap_a', 'nap_b')"),
        "t");
    PQfinish(pg);
    e2e_stop(&fixtures);
    e2e_stop(&worker);
    e2e_stop(&server);
    free(db_url);
}

static void test_polling_mode(void **state)
{
    (void)state;
    run_in_mode("polling");
}

static void test_event_driven_mode(void **state)
{
    (void)state;
    run_in_mode("event_driven");
}

int main(void)
{
    e2e_init("handlers");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_and_log_correlation),
        cmocka_unit_test(test_timeout_then_worker_still_serves),
        cmocka_unit_test(test_step_without_a_handler_waits),
        cmocka_unit_test(test_polling_mode),
        cmocka_unit_test(test_event_driven_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
