/*
 * test_python.c - Python handlers end to end: a tasker server, a C worker and Python
 * workers (bindings/python, started as build/bindings/python/bin/tasker-python-worker) on a
 * fresh database, driven over HTTP.
 *
 *   - the Python linear, diamond, complex_dag and tree examples (examples/python) give
 *     exactly the values of the C builtin.square templates (examples/templates), step by
 *     step (complex_dag and tree end at 6^64, beyond 64 bits: a float in both);
 *   - RetryableError is retried until the step succeeds (attempts counted);
 *   - the worker started with --port 0 prints the port its health endpoint really listens on;
 *   - PermanentError ends the task after one attempt, error_type/message/error_code stored
 *     (error_code as metadata.error_code, Tasker's place for it, not in metadata.custom);
 *   - an unexpected exception is stored with its class, message and traceback (retryable);
 *   - a result json.dumps cannot encode is a SerializationError, not retried;
 *   - handler.method calls that method of the handler class;
 *   - the context carries the step's ids, input and config; context.logger lines reach the
 *     worker's stderr as tasker JSON lines with the task's correlation_id;
 *   - a template mixing C built-in steps and Python steps completes;
 *   - a Python handler sleeping past timeout_seconds fails with handler_timeout and the
 *     worker (one thread) keeps serving;
 *   - stop() ends at once the waits of threads blocked in next() without a timeout
 *     (tk_host_worker_wake), and _native.Worker.port is the health port bound for port 0
 *     (tests/e2e/python/stop_wakes.py);
 *   - and it prints the per-workflow overhead of Python handlers over C (4-step linear
 *     chain, medians), without asserting on it.
 *
 * The worker script is found next to $TASKER_BIN (build/bindings/python/bin/); in builds
 * without the binding (TK_SANITIZE) every test is skipped.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "e2e.h"
#include "harness.h"

static char worker_bin[1024];
static bool have_python;
static char *db_url;
static e2e_proc_t server, c_examples, c_fixtures, py_examples, py_fixtures;
static e2e_proc_t py_slow; /* test_timeout_then_worker_keeps_serving's own worker */
static int port;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* build/bindings/python/bin/tasker-python-worker, if it was built. */
static bool find_worker_bin(void)
{
    if (getenv("TASKER_BIN") == NULL)
        return false;
    snprintf(worker_bin, sizeof(worker_bin), "%s",
             e2e_build_path("bindings/python/bin/tasker-python-worker"));
    return access(worker_bin, X_OK) == 0;
}

static e2e_proc_t start_python(const char *label, const char *templates, const char *handlers,
                               const char *const *extra)
{
    char tpl[1024], hdl[1024];
    snprintf(tpl, sizeof(tpl), "%s", e2e_source_path(templates));
    snprintf(hdl, sizeof(hdl), "%s", e2e_source_path(handlers));
    const char *argv[32] = {worker_bin, "--database-url", db_url, "--templates", tpl,  "--handlers",
                            hdl,        "--port",         "0",    "--id",        label};
    int n = 11;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return e2e_start_program(label, argv);
}

static int setup(void **state)
{
    (void)state;
    if (!have_python)
        return 0;
    db_url = tk_test_db_create("e2e_python");
    const char *fast_retries[] = {"--set", "backoff.base_seconds=0", "--set", "backoff.jitter=0",
                                  NULL};
    server = e2e_start_server(db_url, "server", fast_retries);
    port = server.port;
    c_examples =
        e2e_start_worker(db_url, e2e_source_path("examples/templates"), "c-examples", NULL);
    /* C worker on the Python fixtures: runs the builtin steps of mixed.yaml (so does the
     * Python worker; either may take them) and leaves the Python callables alone */
    c_fixtures =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/python/templates"), "c-fixtures", NULL);
    py_examples =
        start_python("py-examples", "examples/python/templates", "examples/python/handlers", NULL);
    /* workers apply their own results: the retries' backoff is theirs to set */
    py_fixtures = start_python("py-fixtures", "tests/e2e/python/templates",
                               "tests/e2e/python/handlers", fast_retries);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (!have_python)
        return 0;
    e2e_stop(&py_fixtures);
    e2e_stop(&py_examples);
    e2e_stop(&c_fixtures);
    e2e_stop(&c_examples);
    e2e_stop(&server);
    free(db_url);
    return 0;
}

#define SKIP_WITHOUT_PYTHON()                                                                      \
    do {                                                                                           \
        if (!have_python) {                                                                        \
            print_message("python binding not built (TK_SANITIZE build?): %s missing\n",           \
                          worker_bin);                                                             \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static const char *status_of(json_t *task)
{
    return json_string_value(json_object_get(task, "status"));
}

/* Create ns/name with `context` (JSON) and wait for its end; returns the task. */
static json_t *run_task(const char *ns, const char *name, const char *context)
{
    return e2e_create_task(port, ns, name, context, 30000, 201);
}

/* `expr` over the row of step `step` of task `uuid` (text; "" for NULL). */
static const char *step_sql(PGconn *pg, const char *uuid, const char *step, const char *expr)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM workflow_steps ws JOIN named_steps ns USING (named_step_uuid) "
             "WHERE ws.task_uuid = $1 AND ns.name = $2",
             expr);
    const char *p[] = {uuid, step};
    return tk_test_valuep(pg, sql, 2, p);
}

static json_int_t step_attempts(json_t *task, const char *step)
{
    json_t *s = e2e_task_step(task, step);
    if (s == NULL)
        fail_msg("no step %s", step);
    return json_integer_value(json_object_get(s, "attempts"));
}

static void test_examples_match_c(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    static const struct {
        const char *c_ns, *py_ns, *name;
        const char *steps[8];
        int nsteps;
        bool beyond_64_bits; /* the last step ends at 6^64, a float; else at 6^16 */
    } shapes[] = {
        {"linear_workflow",
         "linear_workflow_py",
         "mathematical_sequence",
         {"linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"},
         4,
         false},
        {"diamond_workflow",
         "diamond_workflow_py",
         "diamond_pattern",
         {"diamond_start", "diamond_branch_b", "diamond_branch_c", "diamond_end"},
         4,
         false},
        {"complex_dag_workflow",
         "complex_dag_workflow_py",
         "complex_dag",
         {"dag_init", "dag_process_left", "dag_process_right", "dag_validate", "dag_transform",
          "dag_analyze", "dag_finalize"},
         7,
         true},
        {"tree_workflow",
         "tree_workflow_py",
         "hierarchical_tree",
         {"tree_root", "tree_branch_left", "tree_branch_right", "tree_leaf_d", "tree_leaf_e",
          "tree_leaf_f", "tree_leaf_g", "tree_final_convergence"},
         8,
         true},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        char context[128];
        snprintf(context, sizeof(context), "{\"even_number\": 6, \"run\": \"%s\"}", e2e_unique());
        json_t *c = run_task(shapes[i].c_ns, shapes[i].name, context);
        json_t *py = run_task(shapes[i].py_ns, shapes[i].name, context);
        assert_string_equal(status_of(c), "complete");
        assert_string_equal(status_of(py), "complete");
        const char *c_uuid = json_string_value(json_object_get(c, "task_uuid"));
        const char *py_uuid = json_string_value(json_object_get(py, "task_uuid"));
        for (int s = 0; s < shapes[i].nsteps; s++) {
            json_t *cr = e2e_step_result(port, c_uuid, shapes[i].steps[s]);
            json_t *pr = e2e_step_result(port, py_uuid, shapes[i].steps[s]);
            if (cr == NULL || pr == NULL || !json_equal(cr, pr)) {
                char *ct = cr ? json_dumps(cr, 0) : NULL, *pt = pr ? json_dumps(pr, 0) : NULL;
                fail_msg("%s step %s: C %s, Python %s", shapes[i].name, shapes[i].steps[s],
                         ct ? ct : "(none)", pt ? pt : "(none)");
            }
            json_t *value = json_object_get(pr, "value");
            if (s == shapes[i].nsteps - 1 && shapes[i].beyond_64_bits) {
                assert_true(json_is_real(value));
                assert_true(json_real_value(value) > 6.3340e49 &&
                            json_real_value(value) < 6.3341e49); /* 6^64 */
            } else if (s == shapes[i].nsteps - 1) {
                assert_int_equal(json_integer_value(value), 2821109907456LL);
            }
            json_decref(cr);
            json_decref(pr);
        }
        json_decref(c);
        json_decref(py);
    }
}

/* The banner's port (tk_host_worker_port, the system's choice for --port 0) serves /health. */
static void test_banner_port_serves_health(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    assert_true(py_examples.port > 0);
    long status = 0;
    json_t *health = e2e_http(py_examples.port, "GET", "/health", NULL, &status);
    assert_int_equal(status, 200);
    json_decref(health);
}

static void test_retryable_error_is_retried(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    json_t *t = run_task("e2e_python", "retry_then_succeed", "{}");
    assert_string_equal(status_of(t), "complete");
    assert_int_equal(step_attempts(t, "flaky"), 3);
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    json_t *r = e2e_step_result(port, uuid, "flaky");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 3);
    assert_int_equal(json_integer_value(json_object_get(r, "retry_count")), 2);
    assert_true(json_is_true(json_object_get(r, "is_retry")));
    json_decref(r);
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(step_sql(pg, uuid, "flaky", "results->'metadata'->'custom'->>'handler'"),
                        "Flaky");
    /* the two failures went through waiting_for_retry */
    assert_string_equal(step_sql(pg, uuid, "flaky",
                                 "(SELECT count(*) FROM workflow_step_transitions t WHERE "
                                 "t.workflow_step_uuid = ws.workflow_step_uuid AND t.to_state "
                                 "= 'waiting_for_retry')"),
                        "2");
    PQfinish(pg);
    json_decref(t);
}

static void test_permanent_error_is_not_retried(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    json_t *t = run_task("e2e_python", "permanent_failure", "{}");
    assert_string_equal(status_of(t), "error");
    assert_int_equal(step_attempts(t, "decline"), 1);
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(step_sql(pg, uuid, "decline", "ws.state"), "error");
    assert_string_equal(step_sql(pg, uuid, "decline", "results->'error'->>'error_type'"),
                        "PermanentError");
    assert_string_equal(step_sql(pg, uuid, "decline", "results->'error'->>'message'"),
                        "card declined");
    assert_string_equal(step_sql(pg, uuid, "decline", "results->'error'->>'retryable'"), "false");
    assert_string_equal(step_sql(pg, uuid, "decline", "results->'metadata'->>'error_code'"),
                        "DECLINED");
    assert_string_equal(
        step_sql(pg, uuid, "decline", "results->'metadata'->'custom'->>'error_code'"), "");
    PQfinish(pg);
    json_decref(t);
}

static void test_unexpected_exception_keeps_class_message_traceback(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    json_t *t = run_task("e2e_python", "unexpected_exception", "{}");
    assert_string_equal(status_of(t), "error");
    assert_int_equal(step_attempts(t, "explode"), 2); /* retryable: both attempts ran */
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(step_sql(pg, uuid, "explode", "results->'error'->>'error_type'"),
                        "ValueError");
    assert_string_equal(step_sql(pg, uuid, "explode", "results->'error'->>'message'"),
                        "unexpected boom on attempt 2");
    assert_string_equal(step_sql(pg, uuid, "explode", "results->'error'->>'retryable'"), "true");
    /* innermost frame last: the helper that raised, in the handler module */
    const char *last = step_sql(pg, uuid, "explode", "results->'error'->'backtrace'->>-1");
    if (strstr(last, "e2e_handlers.py:") == NULL || strstr(last, ":in _compute") == NULL)
        fail_msg("unexpected last backtrace line \"%s\"", last);
    assert_true(
        strtol(step_sql(pg, uuid, "explode", "jsonb_array_length(results->'error'->'backtrace')"),
               NULL, 10) >= 2);
    PQfinish(pg);
    json_decref(t);
}

static void test_unserialisable_result(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    json_t *t = run_task("e2e_python", "unserialisable_result", "{}");
    assert_string_equal(status_of(t), "error");
    assert_int_equal(step_attempts(t, "bad_result"), 1);
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(step_sql(pg, uuid, "bad_result", "results->'error'->>'error_type'"),
                        "SerializationError");
    const char *msg = step_sql(pg, uuid, "bad_result", "results->'error'->>'message'");
    if (strstr(msg, "not JSON-serialisable") == NULL)
        fail_msg("unexpected message \"%s\"", msg);
    assert_string_equal(step_sql(pg, uuid, "bad_result", "results->'error'->>'retryable'"),
                        "false");
    PQfinish(pg);
    json_decref(t);
}

static void test_method_dispatch(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    json_t *t = run_task("e2e_python", "method_dispatch", "{}");
    assert_string_equal(status_of(t), "complete");
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    json_t *first = e2e_step_result(port, uuid, "first");
    json_t *second = e2e_step_result(port, uuid, "second");
    assert_string_equal(json_string_value(json_object_get(first, "method")), "validate");
    assert_string_equal(json_string_value(json_object_get(second, "method")), "process");
    assert_true(json_is_true(json_object_get(second, "processed")));
    json_decref(first);
    json_decref(second);
    json_decref(t);
}

/* The JSON line of `log_file` whose msg is `msg` (and that mentions `needle` unless NULL),
 * or NULL. */
static json_t *find_log_line(const char *log_file, const char *msg, const char *needle)
{
    FILE *f = fopen(log_file, "r");
    if (f == NULL)
        fail_msg("cannot read %s", log_file);
    char line[8192];
    json_t *found = NULL;
    while (found == NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, msg) == NULL || (needle != NULL && strstr(line, needle) == NULL))
            continue;
        json_t *doc = json_loads(line, 0, NULL);
        if (doc == NULL)
            fail_msg("not a JSON line in %s: %s", log_file, line);
        const char *m = json_string_value(json_object_get(doc, "msg"));
        if (m != NULL && strcmp(m, msg) == 0)
            found = doc;
        else
            json_decref(doc);
    }
    fclose(f);
    return found;
}

static void test_context_and_logger(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    char context[128];
    snprintf(context, sizeof(context), "{\"name\": \"Ada\", \"run\": \"%s\"}", e2e_unique());
    json_t *t = run_task("e2e_python", "quick", context);
    assert_string_equal(status_of(t), "complete");
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    const char *correlation = json_string_value(json_object_get(t, "correlation_id"));
    json_t *r = e2e_step_result(port, uuid, "hello");
    assert_string_equal(json_string_value(json_object_get(r, "greeting")), "hi");
    assert_string_equal(json_string_value(json_object_get(r, "name")), "Ada");
    assert_string_equal(json_string_value(json_object_get(r, "task_uuid")), uuid);
    assert_string_equal(json_string_value(json_object_get(r, "correlation_id")), correlation);
    assert_string_equal(json_string_value(json_object_get(r, "step_name")), "hello");
    assert_string_equal(json_string_value(json_object_get(r, "namespace_name")), "e2e_python");
    assert_string_equal(json_string_value(json_object_get(r, "task_name")), "quick");
    assert_string_equal(json_string_value(json_object_get(r, "task_version")), "1.0.0");
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "max_retries")), 3);
    assert_true(json_is_false(json_object_get(r, "is_last_retry")));
    assert_true(json_is_true(json_object_get(r, "remaining_ms_positive")));
    const char *step_uuid = json_string_value(json_object_get(r, "step_uuid"));

    const char *log = "e2e-logs/python-py-fixtures.log";
    json_t *line = find_log_line(log, "python handler says hi to Ada", uuid);
    if (line == NULL)
        fail_msg("the handler's log line is not in %s", log);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(line, "component")), "handler");
    assert_string_equal(json_string_value(json_object_get(line, "correlation_id")), correlation);
    assert_string_equal(json_string_value(json_object_get(line, "task_uuid")), uuid);
    assert_string_equal(json_string_value(json_object_get(line, "step_uuid")), step_uuid);
    assert_string_equal(json_string_value(json_object_get(line, "step_name")), "hello");
    assert_string_equal(json_string_value(json_object_get(line, "handler")), "e2e_handlers.Hello");
    json_decref(line);
    line = find_log_line(log, "with extras", uuid);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(line, "correlation_id")), correlation);
    assert_int_equal(json_integer_value(json_object_get(line, "answer")), 42);
    json_decref(line);
    assert_null(find_log_line(log, "not written at the default level", NULL));
    json_decref(r);
    json_decref(t);
}

static void test_mixed_c_and_python(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    char context[128];
    snprintf(context, sizeof(context), "{\"even_number\": 6, \"run\": \"%s\"}", e2e_unique());
    json_t *t = run_task("e2e_python_mixed", "mixed_c_python", context);
    assert_string_equal(status_of(t), "complete");
    assert_int_equal(json_integer_value(json_object_get(t, "completed_steps")), 5);
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    static const struct {
        const char *step;
        double value;
    } expect[] = {{"start", 36},
                  {"branch_py", 1296},
                  {"branch_c", 1296},
                  {"join_py", 2821109907456.0},
                  {"finish", 7958661109946400884391936.0}};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        json_t *r = e2e_step_result(port, uuid, expect[i].step);
        double v = json_number_value(json_object_get(r, "value"));
        if (fabs(v - expect[i].value) > expect[i].value * 1e-12)
            fail_msg("step %s: %.17g, expected %.17g", expect[i].step, v, expect[i].value);
        json_decref(r);
    }
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(step_sql(pg, uuid, "branch_py", "results->'metadata'->>'worker_id'"),
                        "py-fixtures");
    assert_string_equal(step_sql(pg, uuid, "join_py", "results->'metadata'->>'worker_id'"),
                        "py-fixtures");
    PQfinish(pg);
    json_decref(t);
}

static void test_timeout_then_worker_keeps_serving(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    const char *extra[] = {"--threads", "1", NULL};
    py_slow = start_python("py-slow", "tests/e2e/python/slow", "tests/e2e/python/handlers", extra);
    double t0 = now_ms();
    json_t *t = run_task("e2e_python_slow", "too_slow", "{}");
    assert_string_equal(status_of(t), "error");
    assert_int_equal(step_attempts(t, "nap"), 1);
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(step_sql(pg, uuid, "nap", "results->'error'->>'error_type'"),
                        "handler_timeout");
    PQfinish(pg);

    /* the only original thread still sleeps (4 s); a replacement serves the next task */
    json_t *next = run_task("e2e_python_slow", "after_slow", "{\"name\": \"next\"}");
    assert_string_equal(status_of(next), "complete");
    double elapsed = now_ms() - t0;
    if (elapsed > 3500)
        fail_msg("the next task ended %.0f ms after the slow one started: the worker waited for "
                 "the sleeping handler",
                 elapsed);
    json_decref(next);
    json_decref(t);
    e2e_stop(&py_slow); /* waits for the sleeping handler, exits 0 */
    json_t *line = find_log_line("e2e-logs/python-py-slow.log",
                                 "thread tasker-python-1 runs a handler past its timeout; "
                                 "starting another",
                                 NULL);
    assert_non_null(line);
    json_decref(line);
}

/* Stops py_slow when its test failed before doing so. */
static int stop_py_slow(void **state)
{
    (void)state;
    e2e_kill(&py_slow);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double timed_linear(const char *ns)
{
    char context[128];
    snprintf(context, sizeof(context), "{\"even_number\": 6, \"run\": \"%s\"}", e2e_unique());
    double t0 = now_ms();
    json_t *t = run_task(ns, "mathematical_sequence", context);
    double ms = now_ms() - t0;
    assert_string_equal(status_of(t), "complete");
    json_decref(t);
    return ms;
}

/* Not a pass/fail test: prints the overhead of Python handlers over C for the 4-step linear
 * chain (client-side time of POST /v1/tasks?wait_ms until the task completed). C and Python
 * tasks alternate so that drift of the machine affects both alike. */
/* Run tests/e2e/python/stop_wakes.py with this build's binding: stop() wakes waiting
 * threads at once; Worker.port reports the port bound for worker.port=0. */
static void test_stop_wakes_waiting_threads(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    char pythonpath[1024], script[1024], templates[1024];
    snprintf(pythonpath, sizeof(pythonpath), "%s", e2e_build_path("bindings/python"));
    snprintf(script, sizeof(script), "%s", e2e_source_path("tests/e2e/python/stop_wakes.py"));
    snprintf(templates, sizeof(templates), "%s", e2e_source_path("examples/python/templates"));
    pid_t pid = fork();
    if (pid == 0) {
        setenv("PYTHONPATH", pythonpath, 1);
        execl("/usr/bin/python3", "python3", script, db_url, templates, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("stop_wakes.py failed (status %d)", status);
}

static void test_overhead_report(void **state)
{
    (void)state;
    SKIP_WITHOUT_PYTHON();
    enum { WARMUP = 5, SAMPLES = 50 };
    double c[SAMPLES], py[SAMPLES];
    for (int i = 0; i < WARMUP; i++) {
        timed_linear("linear_workflow");
        timed_linear("linear_workflow_py");
    }
    for (int i = 0; i < SAMPLES; i++) {
        c[i] = timed_linear("linear_workflow");
        py[i] = timed_linear("linear_workflow_py");
    }
    double mc = median(c, SAMPLES), mp = median(py, SAMPLES);
    print_message("linear 4 steps, %d tasks each, median: C %.2f ms, Python %.2f ms, "
                  "Python overhead %+.2f ms per workflow (%+.3f ms per step)\n",
                  SAMPLES, mc, mp, mp - mc, (mp - mc) / 4);
    print_message("  p10/p90: C %.2f/%.2f ms, Python %.2f/%.2f ms\n", c[SAMPLES / 10],
                  c[SAMPLES * 9 / 10], py[SAMPLES / 10], py[SAMPLES * 9 / 10]);
    /* The handler's share alone, free of orchestration noise: execution_time_ms is measured
     * by the C runtime around the handler call, which for a Python step includes the hand-over
     * to a Python thread and back. */
    PGconn *pg = tk_test_connect(db_url);
    for (int i = 0; i < 2; i++) {
        const char *ns = i == 0 ? "linear_workflow" : "linear_workflow_py";
        const char *p[] = {ns};
        const char *v = tk_test_valuep(
            pg,
            "SELECT format('%s steps, execution_time_ms median %s ms, p90 %s ms', count(*), "
            "round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 3), "
            "round(percentile_cont(0.9) WITHIN GROUP (ORDER BY x)::numeric, 3)) FROM (SELECT "
            "(ws.results->'metadata'->>'execution_time_ms')::float8 AS x FROM workflow_steps ws "
            "JOIN tasks t USING (task_uuid) JOIN named_tasks nt USING (named_task_uuid) JOIN "
            "task_namespaces tn USING (task_namespace_uuid) WHERE tn.name = $1) s",
            1, p);
        print_message("  %s: %s\n", ns, v);
    }
    PQfinish(pg);
}

int main(void)
{
    e2e_init("python");
    have_python = find_worker_bin();
    /* the logs of this test's processes are searched: start them empty */
    unlink("e2e-logs/python-py-fixtures.log");
    unlink("e2e-logs/python-py-slow.log");
    /* keep Python's bytecode caches out of the source tree (handler modules live there) */
    char cwd[1024], cache[1100];
    if (getcwd(cwd, sizeof(cwd)) != NULL) {
        snprintf(cache, sizeof(cache), "%s/python-cache", cwd);
        setenv("PYTHONPYCACHEPREFIX", cache, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_match_c),
        cmocka_unit_test(test_banner_port_serves_health),
        cmocka_unit_test(test_retryable_error_is_retried),
        cmocka_unit_test(test_permanent_error_is_not_retried),
        cmocka_unit_test(test_unexpected_exception_keeps_class_message_traceback),
        cmocka_unit_test(test_unserialisable_result),
        cmocka_unit_test(test_method_dispatch),
        cmocka_unit_test(test_context_and_logger),
        cmocka_unit_test(test_mixed_c_and_python),
        cmocka_unit_test_teardown(test_timeout_then_worker_keeps_serving, stop_py_slow),
        cmocka_unit_test(test_stop_wakes_waiting_threads),
        cmocka_unit_test(test_overhead_report),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
