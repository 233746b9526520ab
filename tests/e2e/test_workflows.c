/*
 * test_workflows.c - end to end through the REST API: a tasker server and two workers (one
 * with examples/templates, one with tests/e2e/templates) on a fresh database.
 *
 * Every conformance shape completes with the right results; retries succeed; exhaustion
 * ends in error with a DLQ entry; manual step actions resume a task; cancel; 409 on a
 * duplicate; each kind of bad input gets its 4xx; wait_ms returns when the task ends; a
 * batch (POST /v1/tasks/batch) runs every task, and a bad, duplicate, empty or too large
 * batch is refused whole, naming the item at fault.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "e2e.h"
#include "harness.h"

static char *db_url;
static e2e_proc_t server, examples_worker, tests_worker;
static int port;

static int setup(void **state)
{
    (void)state;
    db_url = tk_test_db_create("e2e_workflows");
    const char *server_extra[] = {"--set", "server.max_body_bytes=4096", "--set",
                                  "server.max_batch_tasks=25", NULL};
    server = e2e_start_server(db_url, "server", server_extra);
    port = server.port;
    examples_worker =
        e2e_start_worker(db_url, e2e_source_path("examples/templates"), "examples-worker", NULL);
    tests_worker =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/templates"), "tests-worker", NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    e2e_stop(&tests_worker);
    e2e_stop(&examples_worker);
    e2e_stop(&server);
    free(db_url);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run ns/name with {"even_number": 6} to the end; checks it completed every step. */
static json_t *run_complete(const char *ns, const char *name)
{
    char context[128];
    snprintf(context, sizeof(context), "{\"even_number\": 6, \"run\": \"%s\"}", e2e_unique());
    json_t *task = e2e_create_task(port, ns, name, context, 30000, 201);
    const char *status = json_string_value(json_object_get(task, "status"));
    if (status == NULL || strcmp(status, "complete") != 0)
        fail_msg("%s/%s ended %s", ns, name, status ? status : "(no status)");
    assert_int_equal(json_integer_value(json_object_get(task, "completed_steps")),
                     json_integer_value(json_object_get(task, "total_steps")));
    assert_string_equal(json_string_value(json_object_get(task, "execution_status")),
                        "all_complete");
    return task;
}

static double value_of(const char *task_uuid, const char *step)
{
    json_t *result = e2e_step_result(port, task_uuid, step);
    json_t *v = json_object_get(result, "value");
    if (!json_is_number(v))
        fail_msg("step %s has no numeric value", step);
    double d = json_number_value(v);
    json_decref(result);
    return d;
}

static void assert_close(double actual, double expected)
{
    if (fabs(actual - expected) > fabs(expected) * 1e-12)
        fail_msg("expected %.17g, got %.17g", expected, actual);
}

static void test_shapes_complete_with_right_results(void **state)
{
    (void)state;
    /* linear: 6 -> 36 -> 1296 -> 1679616 -> 2821109907456, exactly */
    json_t *t = run_complete("linear_workflow", "mathematical_sequence");
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    json_t *last = e2e_step_result(port, uuid, "linear_step_4");
    assert_true(json_is_integer(json_object_get(last, "value")));
    assert_int_equal(json_integer_value(json_object_get(last, "value")), 2821109907456LL);
    assert_close(value_of(uuid, "linear_step_2"), 1296);
    json_decref(last);
    assert_int_equal(json_integer_value(json_object_get(t, "total_steps")), 4);
    json_decref(t);

    /* diamond: start 36; b = c = 1296; end = (b*c)^2 */
    t = run_complete("diamond_workflow", "diamond_pattern");
    uuid = json_string_value(json_object_get(t, "task_uuid"));
    assert_close(value_of(uuid, "diamond_branch_b"), 1296);
    assert_close(value_of(uuid, "diamond_end"), 2821109907456.0);
    json_decref(t);

    /* complex DAG: init 36; left = right = 1296; validate = (left*right)^2;
     * transform = analyze = 1296^2; finalize = (validate*transform*analyze)^2 */
    t = run_complete("complex_dag_workflow", "complex_dag");
    uuid = json_string_value(json_object_get(t, "task_uuid"));
    assert_int_equal(json_integer_value(json_object_get(t, "total_steps")), 7);
    double validate = pow(1296.0 * 1296.0, 2), transform = 1296.0 * 1296.0;
    assert_close(value_of(uuid, "dag_validate"), validate);
    assert_close(value_of(uuid, "dag_transform"), transform);
    assert_close(value_of(uuid, "dag_finalize"), pow(validate * transform * transform, 2));
    json_decref(t);

    /* tree: root 36; branches 1296; leaves 1296^2; final = (leaf^4)^2 = 6^64 */
    t = run_complete("tree_workflow", "hierarchical_tree");
    uuid = json_string_value(json_object_get(t, "task_uuid"));
    assert_int_equal(json_integer_value(json_object_get(t, "total_steps")), 8);
    assert_close(value_of(uuid, "tree_leaf_g"), 1679616);
    assert_close(value_of(uuid, "tree_final_convergence"), pow(6.0, 64));
    json_decref(t);

    /* redundant edges and several roots: every step ran once and saw its ancestors */
    t = run_complete("order_fulfillment", "business_workflow");
    uuid = json_string_value(json_object_get(t, "task_uuid"));
    json_t *ship = e2e_step_result(port, uuid, "ship_order");
    json_t *deps = json_object_get(ship, "dependencies");
    assert_int_equal(json_object_size(deps), 3);
    assert_non_null(json_object_get(deps, "validate_order"));
    assert_non_null(json_object_get(deps, "process_payment"));
    json_decref(ship);
    json_decref(t);
    t = run_complete("data_pipeline", "analytics_pipeline");
    uuid = json_string_value(json_object_get(t, "task_uuid"));
    json_t *insights = e2e_step_result(port, uuid, "generate_insights");
    assert_int_equal(json_object_size(json_object_get(insights, "dependencies")), 7);
    json_decref(insights);
    json_decref(t);
}

static void test_retry_then_success(void **state)
{
    (void)state;
    json_t *t = run_complete("retry_workflow", "retry_mechanics_test");
    json_t *step = e2e_task_step(t, "fail_twice_then_succeed");
    assert_non_null(step);
    assert_int_equal(json_integer_value(json_object_get(step, "attempts")), 3);
    json_t *result = e2e_step_result(port, json_string_value(json_object_get(t, "task_uuid")),
                                     "fail_twice_then_succeed");
    assert_int_equal(json_integer_value(json_object_get(result, "attempts")), 3);
    json_decref(result);
    json_decref(t);
}

static json_t *run_exhaustion(void)
{
    char context[96];
    snprintf(context, sizeof(context), "{\"run\": \"%s\"}", e2e_unique());
    json_t *t =
        e2e_create_task(port, "retry_workflow", "retry_exhaustion_test", context, 30000, 201);
    assert_string_equal(json_string_value(json_object_get(t, "status")), "error");
    return t;
}

static void test_retry_exhaustion_and_manual_actions(void **state)
{
    (void)state;
    json_t *t = run_exhaustion();
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    json_t *step = e2e_task_step(t, "always_fail");
    assert_string_equal(json_string_value(json_object_get(step, "current_state")), "error");
    assert_int_equal(json_integer_value(json_object_get(step, "attempts")), 3);
    char step_uuid[64];
    snprintf(step_uuid, sizeof(step_uuid), "%s",
             json_string_value(json_object_get(step, "workflow_step_uuid")));

    /* the failure is recorded with its error, and a DLQ entry is open */
    PGconn *pg = tk_test_connect(db_url);
    const char *p[] = {uuid};
    assert_string_equal(
        tk_test_valuep(pg, "SELECT dlq_reason FROM tasks_dlq WHERE task_uuid = $1", 1, p),
        "max_retries_exceeded");
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT results->'error'->>'error_type' FROM "
                                       "workflow_steps WHERE task_uuid = $1",
                                       1, p),
                        "RetryableError");

    /* reset_for_retry: the task runs again with a fresh budget and fails again */
    char path[160];
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps/%s", uuid, step_uuid);
    long status;
    json_t *r = e2e_http(port, "PATCH", path,
                         "{\"action_type\":\"reset_for_retry\",\"reason\":\"retry\","
                         "\"reset_by\":\"e2e\"}",
                         &status);
    assert_int_equal(status, 200);
    json_decref(r);
    json_t *again = e2e_get_task(port, uuid, 30000);
    assert_string_equal(json_string_value(json_object_get(again, "status")), "error");
    assert_int_equal(
        json_integer_value(json_object_get(e2e_task_step(again, "always_fail"), "attempts")), 3);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_step_transitions "
                                       "WHERE event = 'start' AND workflow_step_uuid IN (SELECT "
                                       "workflow_step_uuid FROM workflow_steps WHERE task_uuid IN "
                                       "(SELECT task_uuid FROM tasks WHERE context ? 'run' AND "
                                       "named_task_uuid IN (SELECT named_task_uuid FROM "
                                       "named_tasks WHERE name = 'retry_exhaustion_test')))"),
                     6);
    json_decref(again);

    /* resolve_manually: the task completes */
    r = e2e_http(port, "PATCH", path,
                 "{\"action_type\":\"resolve_manually\",\"reason\":\"fixed\","
                 "\"resolved_by\":\"e2e\"}",
                 &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(r, "current_state")),
                        "resolved_manually");
    json_decref(r);
    json_t *done = e2e_get_task(port, uuid, 10000);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "complete");
    json_decref(done);

    /* an action the step's state does not allow is a 400 */
    r = e2e_http(port, "PATCH", path, "{\"action_type\":\"reset_for_retry\"}", &status);
    assert_int_equal(status, 400);
    json_decref(r);
    PQfinish(pg);
    json_decref(t);
}

/* Wait until step `name` of the task is in `state` (polling the steps endpoint). */
static void wait_step_state(const char *uuid, const char *name, const char *state)
{
    for (int i = 0; i < 200; i++) {
        json_t *t = e2e_get_task(port, uuid, 0);
        const char *s = json_string_value(json_object_get(e2e_task_step(t, name), "current_state"));
        bool reached = s != NULL && strcmp(s, state) == 0;
        json_decref(t);
        if (reached)
            return;
        struct timespec ts = {0, 25 * 1000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("step %s never reached %s", name, state);
}

static void test_cancel(void **state)
{
    (void)state;
    char context[96];
    snprintf(context, sizeof(context), "{\"run\": \"%s\"}", e2e_unique());
    json_t *t = e2e_create_task(port, "e2e_sleep", "sleepy", context, 0, 201);
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    wait_step_state(uuid, "nap", "in_progress");
    char path[96];
    snprintf(path, sizeof(path), "/v1/tasks/%s", uuid);
    long status;
    json_t *c = e2e_http(port, "DELETE", path, NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(c, "status")), "cancelled");
    assert_string_equal(
        json_string_value(json_object_get(e2e_task_step(c, "nap"), "current_state")), "cancelled");
    assert_string_equal(
        json_string_value(json_object_get(e2e_task_step(c, "after_nap"), "current_state")),
        "cancelled");
    json_decref(c);
    /* the worker finishes its sleep; its result is refused and the task stays cancelled */
    struct timespec ts = {3, 500 * 1000000};
    nanosleep(&ts, NULL);
    json_t *later = e2e_get_task(port, uuid, 0);
    assert_string_equal(json_string_value(json_object_get(later, "status")), "cancelled");
    json_decref(later);
    c = e2e_http(port, "DELETE", path, NULL, &status);
    assert_int_equal(status, 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "error"), "code")),
                        "BAD_REQUEST");
    json_decref(c);
    json_decref(t);
}

static void test_wait_ms_returns_at_the_end(void **state)
{
    (void)state;
    char context[96];
    snprintf(context, sizeof(context), "{\"run\": \"%s\"}", e2e_unique());
    json_t *t = e2e_create_task(port, "e2e_sleep", "sleepy", context, 0, 201);
    assert_string_equal(json_string_value(json_object_get(t, "status")), "steps_in_process");
    double start = now_s();
    json_t *done = e2e_get_task(port, json_string_value(json_object_get(t, "task_uuid")), 20000);
    double waited = now_s() - start;
    assert_string_equal(json_string_value(json_object_get(done, "status")), "complete");
    /* it waited for the 3 s step, and did not sit out the whole 20 s */
    assert_true(waited > 1.0 && waited < 15.0);
    json_decref(done);
    json_decref(t);
}

static const char *error_code(json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
}

static void expect_error(const char *method, const char *path, const char *body, long want_status,
                         const char *want_code)
{
    long status;
    json_t *doc = e2e_http(port, method, path, body, &status);
    if (status != want_status || doc == NULL || error_code(doc) == NULL ||
        strcmp(error_code(doc), want_code) != 0)
        fail_msg("%s %s: got %ld %s, expected %ld %s", method, path, status,
                 doc && error_code(doc) ? error_code(doc) : "(no envelope)", want_status,
                 want_code);
    assert_non_null(json_string_value(json_object_get(json_object_get(doc, "error"), "message")));
    json_decref(doc);
}

static void test_bad_input(void **state)
{
    (void)state;
    char context[96];
    snprintf(context, sizeof(context), "{\"even_number\": 2, \"run\": \"%s\"}", e2e_unique());
    json_t *t =
        e2e_create_task(port, "linear_workflow", "mathematical_sequence", context, 10000, 201);
    json_decref(t);
    t = e2e_create_task(port, "linear_workflow", "mathematical_sequence", context, 0, 409);
    assert_string_equal(error_code(t), "CONFLICT");
    json_decref(t);

    /* numbers beyond 64 bits are valid JSON: kept as sent */
    snprintf(context, sizeof(context), "{\"even_number\": 2, \"big\": 1e60, \"run\": \"%s\"}",
             e2e_unique());
    t = e2e_create_task(port, "linear_workflow", "mathematical_sequence", context, 10000, 201);
    assert_string_equal(json_string_value(json_object_get(t, "status")), "complete");
    assert_true(json_number_value(json_object_get(json_object_get(t, "context"), "big")) > 9e59);
    json_decref(t);

    expect_error("POST", "/v1/tasks", "{\"name\": ", 400, "JSON_ERROR");
    expect_error("POST", "/v1/tasks", "[1, 2]", 400, "BAD_REQUEST");
    expect_error("POST", "/v1/tasks", "{\"namespace\":\"x\",\"version\":\"1\"}", 400,
                 "BAD_REQUEST");
    expect_error("POST", "/v1/tasks",
                 "{\"namespace\":\"linear_workflow\",\"name\":\"mathematical_sequence\","
                 "\"version\":\"1.0.0\",\"priority\":500}",
                 400, "BAD_REQUEST");
    expect_error("POST", "/v1/tasks",
                 "{\"namespace\":\"linear_workflow\",\"name\":\"mathematical_sequence\","
                 "\"version\":\"1.0.0\",\"context\":[]}",
                 400, "BAD_REQUEST");
    expect_error("POST", "/v1/tasks",
                 "{\"namespace\":\"nope\",\"name\":\"nope\",\"version\":\"1\"}", 404, "NOT_FOUND");
    char big[6000];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    expect_error("POST", "/v1/tasks", big, 413, "PAYLOAD_TOO_LARGE");
    expect_error("GET", "/v1/nothing/here", NULL, 404, "NOT_FOUND");
    expect_error("GET", "/v1/tasks/not-a-uuid", NULL, 400, "INVALID_UUID");
    expect_error("GET", "/v1/tasks/01a216e6-b156-7256-97d6-c416093c9d5e", NULL, 404, "NOT_FOUND");
    expect_error("GET", "/v1/tasks?per_page=1000", NULL, 400, "BAD_REQUEST");
    expect_error("GET", "/v1/tasks?status=finished", NULL, 400, "BAD_REQUEST");
    expect_error("GET", "/v1/tasks/01a216e6-b156-7256-97d6-c416093c9d5e?wait_ms=soon", NULL, 400,
                 "BAD_REQUEST");
    expect_error("PUT", "/v1/tasks", "{}", 405, "METHOD_NOT_ALLOWED");
    expect_error("GET", "/v1/templates/nope/nope/1", NULL, 404, "NOT_FOUND");

    /* and the server still serves */
    long status;
    json_t *h = e2e_http(port, "GET", "/health", NULL, &status);
    assert_int_equal(status, 200);
    json_decref(h);
}

/* A TaskRequest of the linear workflow for a batch: context {"even_number": n, "i": i,
 * "run": run}, initiator `initiator`. */
static json_t *linear_request(int n, int i, const char *run, const char *initiator)
{
    json_t *r = json_pack("{s:s, s:s, s:s, s:{s:i, s:i, s:s}, s:s}", "namespace", "linear_workflow",
                          "name", "mathematical_sequence", "version", "1.0.0", "context",
                          "even_number", n, "i", i, "run", run, "initiator", initiator);
    assert_non_null(r);
    return r;
}

/* A short unique run id and initiator for a batch test (this database is the test's own;
 * the bodies must stay under the server's 4096 bytes). */
static void batch_names(char run[32], char initiator[48])
{
    static int seq;
    snprintf(run, 32, "b%d-%d", (int)getpid(), ++seq);
    snprintf(initiator, 48, "e2e-batch-%s", run);
}

/* POST /v1/tasks/batch with {"tasks": tasks} (stolen); returns the answer, *status set. */
static json_t *post_batch(json_t *tasks, long *status)
{
    json_t *body = json_pack("{s:o}", "tasks", tasks);
    char *text = json_dumps(body, JSON_COMPACT);
    assert_non_null(text);
    if (strlen(text) >= 4096)
        fail_msg("batch body of %zu bytes exceeds the test server's max_body_bytes", strlen(text));
    json_t *answer = e2e_http(port, "POST", "/v1/tasks/batch", text, status);
    free(text);
    json_decref(body);
    return answer;
}

/* The number of tasks whose initiator is `initiator` (GET /v1/tasks?initiator=...). */
static json_int_t tasks_of(const char *initiator)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/tasks?initiator=%s&per_page=1", initiator);
    long status;
    json_t *doc = e2e_http(port, "GET", path, NULL, &status);
    assert_int_equal(status, 200);
    json_int_t n =
        json_integer_value(json_object_get(json_object_get(doc, "pagination"), "total_count"));
    json_decref(doc);
    return n;
}

/* An error answer about batch item `index`: status, code, message "tasks[index]: ...". */
static void expect_item_error(json_t *doc, long status, long want_status, const char *want_code,
                              int index)
{
    const json_t *e = json_object_get(doc, "error");
    const char *message = json_string_value(json_object_get(e, "message"));
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "tasks[%d]: ", index);
    if (status != want_status || error_code(doc) == NULL ||
        strcmp(error_code(doc), want_code) != 0 || message == NULL ||
        strncmp(message, prefix, strlen(prefix)) != 0 ||
        json_integer_value(json_object_get(e, "index")) != index)
        fail_msg("got %ld %s \"%s\", expected %ld %s about item %d", status,
                 error_code(doc) ? error_code(doc) : "(no envelope)", message ? message : "",
                 want_status, want_code, index);
}

static void test_batch_runs_every_task(void **state)
{
    (void)state;
    char run[32], initiator[48];
    batch_names(run, initiator);
    json_t *tasks = json_array();
    for (int i = 0; i < 20; i++)
        json_array_append_new(tasks, linear_request(2 * (i % 5 + 1), i, run, initiator));
    long status;
    json_t *answer = post_batch(tasks, &status);
    assert_int_equal(status, 201);
    json_t *created = json_object_get(answer, "tasks");
    assert_int_equal(json_array_size(created), 20);
    assert_int_equal(tasks_of(initiator), 20);
    for (int i = 0; i < 20; i++) {
        json_t *item = json_array_get(created, (size_t)i);
        const char *uuid = json_string_value(json_object_get(item, "task_uuid"));
        assert_non_null(uuid);
        assert_non_null(json_string_value(json_object_get(item, "correlation_id")));
        assert_string_equal(json_string_value(json_object_get(item, "namespace")),
                            "linear_workflow");
        assert_string_equal(json_string_value(json_object_get(item, "name")),
                            "mathematical_sequence");
        assert_string_equal(json_string_value(json_object_get(item, "version")), "1.0.0");
        assert_non_null(json_string_value(json_object_get(item, "status")));
        /* answers in input order: the task of answer i has the context of request i */
        json_t *t = e2e_get_task(port, uuid, 30000);
        assert_string_equal(json_string_value(json_object_get(t, "status")), "complete");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "context"), "i")),
                         i);
        assert_int_equal(json_integer_value(json_object_get(t, "completed_steps")), 4);
        json_decref(t);
        /* n -> n^2 -> n^4 -> n^8 -> n^16 (10^16 at most: exact) */
        assert_close(value_of(uuid, "linear_step_4"), pow(2.0 * (i % 5 + 1), 16));
    }
    json_decref(answer);
}

static void test_batch_refused_whole(void **state)
{
    (void)state;
    char run[32], initiator[48];
    batch_names(run, initiator);
    long status;

    /* an invalid item: 400 naming it, before anything is created */
    json_t *tasks = json_array();
    for (int i = 0; i < 5; i++)
        json_array_append_new(tasks, linear_request(2, i, run, initiator));
    json_object_set_new(json_array_get(tasks, 3), "priority", json_integer(500));
    json_t *doc = post_batch(tasks, &status);
    expect_item_error(doc, status, 400, "BAD_REQUEST", 3);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
               "\"priority\" must be an integer from -100 to 100"));
    json_decref(doc);

    /* an unknown template in the middle: 404 naming it; the items before it are rolled back */
    tasks = json_array();
    for (int i = 0; i < 5; i++)
        json_array_append_new(tasks, linear_request(2, i, run, initiator));
    json_object_set_new(json_array_get(tasks, 2), "name", json_string("no_such_template"));
    doc = post_batch(tasks, &status);
    expect_item_error(doc, status, 404, "NOT_FOUND", 2);
    json_decref(doc);
    assert_int_equal(tasks_of(initiator), 0);

    /* the same identity twice in one batch: 409 naming the second; nothing created */
    tasks = json_array();
    for (int i = 0; i < 4; i++)
        json_array_append_new(tasks, linear_request(2, i, run, initiator));
    json_array_append_new(tasks, linear_request(2, 1, run, initiator));
    doc = post_batch(tasks, &status);
    expect_item_error(doc, status, 409, "CONFLICT", 4);
    json_decref(doc);
    assert_int_equal(tasks_of(initiator), 0);

    /* and the identity of a task that exists already */
    tasks = json_array();
    json_array_append_new(tasks, linear_request(2, 7, run, initiator));
    doc = post_batch(tasks, &status);
    assert_int_equal(status, 201);
    json_decref(doc);
    tasks = json_array();
    json_array_append_new(tasks, linear_request(2, 8, run, initiator));
    json_array_append_new(tasks, linear_request(2, 7, run, initiator));
    doc = post_batch(tasks, &status);
    expect_item_error(doc, status, 409, "CONFLICT", 1);
    json_decref(doc);
    assert_int_equal(tasks_of(initiator), 1);

    /* the batch itself: empty, too many (the server allows 25), not {"tasks": [...]},
     * wait_ms, too large, malformed */
    expect_error("POST", "/v1/tasks/batch", "{\"tasks\": []}", 400, "BAD_REQUEST");
    char many[512] = "{\"tasks\": [{}";
    for (int i = 1; i < 26; i++)
        strncat(many, ", {}", sizeof(many) - strlen(many) - 1);
    strncat(many, "]}", sizeof(many) - strlen(many) - 1);
    doc = e2e_http(port, "POST", "/v1/tasks/batch", many, &status);
    assert_int_equal(status, 400);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
               "at most 25"));
    json_decref(doc);
    expect_error("POST", "/v1/tasks/batch", "[{}]", 400, "BAD_REQUEST");
    expect_error("POST", "/v1/tasks/batch", "{\"tasks\": {}}", 400, "BAD_REQUEST");
    expect_error("POST", "/v1/tasks/batch?wait_ms=1000",
                 "{\"tasks\": [{\"namespace\":\"linear_workflow\",\"name\":"
                 "\"mathematical_sequence\",\"version\":\"1.0.0\"}]}",
                 400, "BAD_REQUEST");
    expect_error("POST", "/v1/tasks/batch", "{\"tasks\": [", 400, "JSON_ERROR");
    char big[6000];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    expect_error("POST", "/v1/tasks/batch", big, 413, "PAYLOAD_TOO_LARGE");
    /* the route does not hide the task routes: GET /v1/tasks/batch is a task uuid */
    expect_error("GET", "/v1/tasks/batch", NULL, 400, "INVALID_UUID");
    expect_error("PUT", "/v1/tasks/batch", "{}", 405, "METHOD_NOT_ALLOWED");
    assert_int_equal(tasks_of(initiator), 1);
}

static void test_listing_health_metrics(void **state)
{
    (void)state;
    long status;
    json_t *doc =
        e2e_http(port, "GET", "/v1/tasks?namespace=linear_workflow&per_page=2", NULL, &status);
    assert_int_equal(status, 200);
    assert_true(json_array_size(json_object_get(doc, "tasks")) >= 1);
    /* json_number_value: this page may hold the task whose context has 1e60 (see
     * tk_json_parse: its integers then decode as reals) */
    assert_true(
        json_number_value(json_object_get(json_object_get(doc, "pagination"), "per_page")) == 2);
    json_decref(doc);
    doc = e2e_http(port, "GET", "/v1/templates", NULL, &status);
    assert_int_equal(status, 200);
    assert_true(json_integer_value(json_object_get(doc, "total_count")) >= 11);
    json_decref(doc);
    doc = e2e_http(port, "GET", "/v1/templates/linear_workflow/mathematical_sequence/1.0.0", NULL,
                   &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(json_object_get(doc, "steps")), 4);
    json_decref(doc);
    doc = e2e_http(port, "GET", "/health/ready", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ready");
    json_decref(doc);
}

int main(void)
{
    e2e_init("workflows");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_complete_with_right_results),
        cmocka_unit_test(test_retry_then_success),
        cmocka_unit_test(test_retry_exhaustion_and_manual_actions),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_wait_ms_returns_at_the_end),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_batch_runs_every_task),
        cmocka_unit_test(test_batch_refused_whole),
        cmocka_unit_test(test_listing_health_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
