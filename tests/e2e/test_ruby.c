/*
 * test_ruby.c - Ruby handlers end to end: a tasker server, a C worker (examples/templates)
 * and Ruby workers (bindings/ruby/bin/tasker-ruby-worker, from this build tree) on a fresh
 * database.
 *   - linear, diamond, complex_dag and tree with Ruby handlers give the same values as with
 *     builtin.square (the last two end beyond 64 bits, as floats);
 *   - the worker started with --port 0 prints the port its health endpoint really listens on;
 *   - a RetryableError is retried until success; a PermanentError ends the task after one
 *     attempt with its type, message and error code (metadata.error_code, Tasker's place for
 *     it, not metadata.custom); an unexpected exception is stored with
 *     its class, message and backtrace; a result that is not JSON is a SerializationError,
 *     not retried;
 *   - a handler overrunning its timeout is reported as handler_timeout and the worker (one
 *     handler thread) keeps serving;
 *   - context.logger lines reach the worker's log as JSON with the step's correlation_id;
 *   - a template mixing builtin.* and Ruby steps completes; an unresolvable callable is
 *     reported at start;
 *   - Thread#kill, Thread#raise and Worker#close reach Ruby threads waiting for steps;
 *   - the extra time per linear (4-step) workflow of Ruby over C is printed (not asserted).
 * Skipped in the sanitizer build, which does not build the Ruby binding.
 */
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

/* The sanitizer build does not build the Ruby binding (the system Ruby has no ASan). */
#if defined(__SANITIZE_ADDRESS__)
#define TK_RUBY_SKIPPED true
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TK_RUBY_SKIPPED true
#endif
#endif
#ifndef TK_RUBY_SKIPPED
#define TK_RUBY_SKIPPED false
#endif

#define FINAL_VALUE 2821109907456LL /* 6^16: the last step of linear and diamond */

static char *db_url;
static e2e_proc_t server, c_worker, rb_examples, rb_tests, rb_timeout;
static int port;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* <build>/bindings/ruby/bin/tasker-ruby-worker, after checking its extension is built. */
static const char *ruby_worker_path(void)
{
    static char path[1024];
    char native[1024];
    snprintf(path, sizeof(path), "%s", e2e_build_path("bindings/ruby/bin/tasker-ruby-worker"));
    snprintf(native, sizeof(native), "%s", e2e_build_path("bindings/ruby/lib/tasker_native.so"));
    if (access(path, X_OK) != 0 || access(native, R_OK) != 0)
        fail_msg("%s or %s is missing: the Ruby binding was not built (ruby-dev installed?)", path,
                 native);
    return path;
}

/* Start a Ruby worker: --templates `templates` (relative to the source tree), --handlers for
 * each of `handlers` (NULL-terminated), then `extra` (NULL-terminated, may be NULL). */
static e2e_proc_t start_ruby(const char *label, const char *templates, const char *const *handlers,
                             const char *const *extra)
{
    static char paths[8][1024];
    const char *argv[40];
    int n = 0;
    argv[n++] = ruby_worker_path();
    argv[n++] = "--database-url";
    argv[n++] = db_url;
    snprintf(paths[0], sizeof(paths[0]), "%s", e2e_source_path(templates));
    argv[n++] = "--templates";
    argv[n++] = paths[0];
    for (int i = 0; handlers[i] != NULL && i < 6; i++) {
        snprintf(paths[i + 1], sizeof(paths[i + 1]), "%s", e2e_source_path(handlers[i]));
        argv[n++] = "--handlers";
        argv[n++] = paths[i + 1];
    }
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--id";
    argv[n++] = label;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return e2e_start_program(label, argv);
}

static int setup(void **state)
{
    (void)state;
    if (TK_RUBY_SKIPPED)
        return 0;
    db_url = tk_test_db_create("e2e_ruby");
    const char *fast_retries[] = {"--set", "backoff.base_seconds=0", NULL};
    server = e2e_start_server(db_url, "server", fast_retries);
    port = server.port;
    c_worker = e2e_start_worker(db_url, e2e_source_path("examples/templates"), "c-worker", NULL);
    const char *examples_handlers[] = {"examples/ruby/handlers", NULL};
    rb_examples = start_ruby("rb-examples", "examples/ruby/templates", examples_handlers, NULL);
    const char *tests_handlers[] = {"tests/e2e/ruby/handlers", "examples/ruby/handlers", NULL};
    unlink("e2e-logs/ruby-rb-tests.log"); /* the tests read it: only this run's lines */
    /* workers apply their own results: the retries' backoff is theirs to set */
    rb_tests = start_ruby("rb-tests", "tests/e2e/ruby/templates", tests_handlers, fast_retries);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (TK_RUBY_SKIPPED)
        return 0;
    e2e_kill(&rb_timeout); /* left running only if its test failed */
    e2e_stop(&rb_tests);
    e2e_stop(&rb_examples);
    e2e_stop(&c_worker);
    e2e_stop(&server);
    free(db_url);
    return 0;
}

static void skip_if_no_ruby(void)
{
    if (TK_RUBY_SKIPPED)
        skip();
}

static const char *status_of(json_t *task)
{
    return json_string_value(json_object_get(task, "status"));
}

/* Run ns/name/1.0.0 with {"even_number": 6} and wait for its end (expected `status`). */
static json_t *run_task(const char *ns, const char *name, const char *status)
{
    char context[128];
    snprintf(context, sizeof(context), "{\"even_number\": 6, \"run\": \"%s\"}", e2e_unique());
    json_t *task = e2e_create_task(port, ns, name, context, 30000, 201);
    if (status_of(task) == NULL || strcmp(status_of(task), status) != 0)
        fail_msg("%s/%s ended %s, expected %s", ns, name,
                 status_of(task) ? status_of(task) : "(no status)", status);
    return task;
}

static const char *uuid_of(json_t *task)
{
    return json_string_value(json_object_get(task, "task_uuid"));
}

/* The whole StepExecutionResult (results) of step `name` of the task (a new reference). */
static json_t *step_results(const char *task_uuid, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps", task_uuid);
    long status;
    json_t *steps = e2e_http(port, "GET", path, NULL, &status);
    assert_int_equal(status, 200);
    size_t i;
    json_t *step, *found = NULL;
    json_array_foreach(steps, i, step)
    {
        const char *n = json_string_value(json_object_get(step, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            found = json_incref(json_object_get(step, "results"));
    }
    json_decref(steps);
    if (found == NULL)
        fail_msg("task %s has no results for step %s", task_uuid, name);
    return found;
}

static long attempts_of(json_t *task, const char *step)
{
    json_t *s = e2e_task_step(task, step);
    if (s == NULL)
        fail_msg("no step %s in the task", step);
    return (long)json_integer_value(json_object_get(s, "attempts"));
}

static void test_workflows_match_c(void **state)
{
    (void)state;
    skip_if_no_ruby();
    static const struct {
        const char *c_ns, *rb_ns, *name, *steps[8];
        int nsteps;
        bool beyond_64_bits; /* the last step ends at 6^64, a float; else at FINAL_VALUE */
    } shapes[] = {
        {"linear_workflow",
         "linear_workflow_rb",
         "mathematical_sequence",
         {"linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"},
         4,
         false},
        {"diamond_workflow",
         "diamond_workflow_rb",
         "diamond_pattern",
         {"diamond_start", "diamond_branch_b", "diamond_branch_c", "diamond_end"},
         4,
         false},
        {"complex_dag_workflow",
         "complex_dag_workflow_rb",
         "complex_dag",
         {"dag_init", "dag_process_left", "dag_process_right", "dag_validate", "dag_transform",
          "dag_analyze", "dag_finalize"},
         7,
         true},
        {"tree_workflow",
         "tree_workflow_rb",
         "hierarchical_tree",
         {"tree_root", "tree_branch_left", "tree_branch_right", "tree_leaf_d", "tree_leaf_e",
          "tree_leaf_f", "tree_leaf_g", "tree_final_convergence"},
         8,
         true},
    };
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        json_t *c = run_task(shapes[s].c_ns, shapes[s].name, "complete");
        json_t *rb = run_task(shapes[s].rb_ns, shapes[s].name, "complete");
        for (int i = 0; i < shapes[s].nsteps; i++) {
            json_t *cv = e2e_step_result(port, uuid_of(c), shapes[s].steps[i]);
            json_t *rv = e2e_step_result(port, uuid_of(rb), shapes[s].steps[i]);
            if (cv == NULL || rv == NULL || !json_equal(cv, rv)) {
                char *a = cv ? json_dumps(cv, 0) : NULL, *b = rv ? json_dumps(rv, 0) : NULL;
                fail_msg("%s %s: C %s, Ruby %s", shapes[s].rb_ns, shapes[s].steps[i],
                         a ? a : "null", b ? b : "null");
            }
            json_t *value = json_object_get(rv, "value");
            if (i == shapes[s].nsteps - 1 && shapes[s].beyond_64_bits) {
                assert_true(json_is_real(value));
                assert_true(json_real_value(value) > 6.3340e49 &&
                            json_real_value(value) < 6.3341e49); /* 6^64 */
            } else if (i == shapes[s].nsteps - 1) {
                assert_true(json_is_integer(value));
                assert_int_equal(json_integer_value(value), FINAL_VALUE);
            }
            json_decref(cv);
            json_decref(rv);
        }
        json_decref(c);
        json_decref(rb);
    }
}

/* The banner's port (tk_host_worker_port, the system's choice for --port 0) serves /health. */
static void test_banner_port_serves_health(void **state)
{
    (void)state;
    skip_if_no_ruby();
    assert_true(rb_examples.port > 0);
    long status = 0;
    json_t *health = e2e_http(rb_examples.port, "GET", "/health", NULL, &status);
    assert_int_equal(status, 200);
    json_decref(health);
}

static void test_retryable_error_then_success(void **state)
{
    (void)state;
    skip_if_no_ruby();
    json_t *t = run_task("e2e_ruby", "retry_then_succeed", "complete");
    assert_int_equal(attempts_of(t, "flaky"), 3);
    json_t *result = e2e_step_result(port, uuid_of(t), "flaky");
    assert_int_equal(json_integer_value(json_object_get(result, "attempts")), 3);
    assert_true(json_is_true(json_object_get(result, "was_retry")));
    json_decref(result);
    json_decref(t);
}

static void test_permanent_error_one_attempt(void **state)
{
    (void)state;
    skip_if_no_ruby();
    json_t *t = run_task("e2e_ruby", "permanent_failure", "error");
    assert_int_equal(attempts_of(t, "declined"), 1);
    json_t *r = step_results(uuid_of(t), "declined");
    json_t *error = json_object_get(r, "error");
    assert_string_equal(json_string_value(json_object_get(error, "error_type")), "PermanentError");
    assert_string_equal(json_string_value(json_object_get(error, "message")), "card declined");
    assert_true(json_is_false(json_object_get(error, "retryable")));
    json_t *metadata = json_object_get(r, "metadata");
    const char *code = json_string_value(json_object_get(metadata, "error_code"));
    if (code == NULL || strcmp(code, "CARD_DECLINED") != 0) {
        char *text = json_dumps(metadata, 0);
        fail_msg("metadata.error_code is not CARD_DECLINED: metadata %s", text);
    }
    assert_null(json_object_get(json_object_get(metadata, "custom"), "error_code"));
    json_decref(r);
    json_decref(t);
}

static void test_unexpected_exception_has_backtrace(void **state)
{
    (void)state;
    skip_if_no_ruby();
    json_t *t = run_task("e2e_ruby", "unexpected_failure", "error");
    assert_int_equal(attempts_of(t, "boom"), 2); /* retryable, max_attempts 2 */
    json_t *r = step_results(uuid_of(t), "boom");
    json_t *error = json_object_get(r, "error");
    assert_string_equal(json_string_value(json_object_get(error, "error_type")),
                        "ZeroDivisionError");
    assert_string_equal(json_string_value(json_object_get(error, "message")), "divided by 0");
    assert_true(json_is_true(json_object_get(error, "retryable")));
    json_t *bt = json_object_get(error, "backtrace");
    assert_true(json_array_size(bt) >= 2);
    /* the innermost frames: Integer#/ called from E2eRuby::BoomHandler#divide */
    bool found = false;
    for (size_t i = 0; i < json_array_size(bt) && i < 3; i++) {
        const char *line = json_string_value(json_array_get(bt, i));
        found = found || (line != NULL && strstr(line, "e2e_handlers.rb") != NULL &&
                          strstr(line, "divide") != NULL);
    }
    if (!found) {
        char *text = json_dumps(bt, 0);
        fail_msg("backtrace without the handler's frame: %s", text);
    }
    json_decref(r);
    json_decref(t);
}

static void test_not_serialisable_result(void **state)
{
    (void)state;
    skip_if_no_ruby();
    json_t *t = run_task("e2e_ruby", "not_serialisable", "error");
    assert_int_equal(attempts_of(t, "bad_result"), 1); /* not retried (max_attempts 3) */
    json_t *r = step_results(uuid_of(t), "bad_result");
    json_t *error = json_object_get(r, "error");
    assert_string_equal(json_string_value(json_object_get(error, "error_type")),
                        "SerializationError");
    const char *msg = json_string_value(json_object_get(error, "message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "at is a Time"));
    json_decref(r);
    json_decref(t);
}

/* The first line of `log_file` containing `needle` and `also` (when not NULL), parsed; NULL
 * if none. (Logs are appended to across runs: `also` picks this run's line.) */
static json_t *find_log_line(const char *log_file, const char *needle, const char *also)
{
    FILE *f = fopen(log_file, "r");
    if (f == NULL)
        fail_msg("cannot read %s", log_file);
    char line[8192];
    json_t *doc = NULL;
    while (doc == NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, needle) == NULL || (also != NULL && strstr(line, also) == NULL))
            continue;
        doc = json_loads(line, 0, NULL);
        if (doc == NULL)
            fail_msg("not a JSON line in %s: %s", log_file, line);
    }
    fclose(f);
    return doc;
}

static void test_logger_lines_carry_correlation_id(void **state)
{
    (void)state;
    skip_if_no_ruby();
    json_t *t = run_task("e2e_ruby", "chatty", "complete");
    const char *correlation = json_string_value(json_object_get(t, "correlation_id"));
    assert_non_null(correlation);
    json_t *line =
        find_log_line("e2e-logs/ruby-rb-tests.log", "hello from ruby step chat", uuid_of(t));
    if (line == NULL)
        fail_msg("the handler's log line is not in e2e-logs/ruby-rb-tests.log");
    assert_string_equal(json_string_value(json_object_get(line, "correlation_id")), correlation);
    assert_string_equal(json_string_value(json_object_get(line, "task_uuid")), uuid_of(t));
    assert_string_equal(json_string_value(json_object_get(line, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(line, "component")), "handler");
    assert_string_equal(json_string_value(json_object_get(line, "step_name")), "chat");
    json_decref(line);
    line = find_log_line("e2e-logs/ruby-rb-tests.log", "a warning from chatty", uuid_of(t));
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(line, "correlation_id")), correlation);
    json_decref(line);

    /* the next step's handler is a block registered under a non-constant name */
    json_t *echo = e2e_step_result(port, uuid_of(t), "echo");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(echo, "input"), "even_number")), 6);
    assert_string_equal(json_string_value(json_array_get(json_object_get(echo, "parents"), 0)),
                        "chat");
    json_decref(echo);
    json_decref(t);
}

static void test_mixed_c_and_ruby_steps(void **state)
{
    (void)state;
    skip_if_no_ruby();
    json_t *t = run_task("e2e_ruby_mixed", "mixed_sequence", "complete");
    json_t *r = e2e_step_result(port, uuid_of(t), "ruby_step_2");
    assert_int_equal(json_integer_value(json_object_get(r, "value")), 1296);
    json_decref(r);
    r = e2e_step_result(port, uuid_of(t), "ruby_step_4");
    assert_int_equal(json_integer_value(json_object_get(r, "value")), FINAL_VALUE);
    json_decref(r);
    json_decref(t);
}

static void test_unresolved_callable_is_reported(void **state)
{
    (void)state;
    skip_if_no_ruby();
    json_t *line = find_log_line("e2e-logs/ruby-rb-tests.log", "E2eRuby::DoesNotExist", NULL);
    if (line == NULL)
        fail_msg("no warning about E2eRuby::DoesNotExist in e2e-logs/ruby-rb-tests.log");
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    assert_non_null(strstr(json_string_value(json_object_get(line, "msg")), "e2e_ruby/unresolved"));
    json_decref(line);
}

static void test_timeout_then_worker_keeps_serving(void **state)
{
    (void)state;
    skip_if_no_ruby();
    /* one Ruby handler thread, two C handler threads */
    const char *handlers[] = {"tests/e2e/ruby/handlers", NULL};
    const char *extra[] = {"--threads", "1", "--set", "worker.max_concurrent_handlers=2", NULL};
    unlink("e2e-logs/ruby-rb-timeout.log");
    rb_timeout = start_ruby("rb-timeout", "tests/e2e/ruby/timeout", handlers, extra);

    json_t *t = e2e_create_task(port, "e2e_ruby_timeout", "too_slow", "{}", 30000, 201);
    assert_string_equal(status_of(t), "error");
    assert_int_equal(attempts_of(t, "overrun"), 1);
    json_t *r = step_results(uuid_of(t), "overrun");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "error"), "error_type")),
        "handler_timeout");
    json_decref(r);
    json_decref(t);

    /* The Ruby thread still sleeps (about 3 s more): the worker replaced it and serves on.
     * The time is printed, not asserted: it also depends on libtasker keeping its own
     * replacement C thread rather than the late one (src/worker/worker.c). */
    double start = now_ms();
    json_t *q = e2e_create_task(port, "e2e_ruby_timeout", "quick", "{}", 30000, 201);
    assert_string_equal(status_of(q), "complete");
    printf("a step after the timeout completed in %.0f ms\n", now_ms() - start);
    json_decref(q);
    e2e_stop(&rb_timeout); /* waits for the late handler, then exits 0 */
    json_t *line =
        find_log_line("e2e-logs/ruby-rb-timeout.log", "replacement handler thread", NULL);
    if (line == NULL)
        fail_msg("the overrunning Ruby handler's thread was not replaced");
    json_decref(line);
}

/* Run tests/e2e/ruby/interrupts.rb against the database: Thread#kill, Thread#raise and
 * Worker#close reach threads waiting for steps without the GVL. */
static void test_ruby_threads_interrupt_waits(void **state)
{
    (void)state;
    skip_if_no_ruby();
    char native[1100], lib[1024], script[1024], templates[1024];
    snprintf(native, sizeof(native), "%s", ruby_worker_path());
    char *bin = strstr(native, "/bin/tasker-ruby-worker");
    snprintf(bin, sizeof(native) - (size_t)(bin - native), "/lib/tasker_native.so");
    snprintf(lib, sizeof(lib), "%s", e2e_source_path("bindings/ruby/lib"));
    snprintf(script, sizeof(script), "%s", e2e_source_path("tests/e2e/ruby/interrupts.rb"));
    snprintf(templates, sizeof(templates), "%s", e2e_source_path("examples/ruby/templates"));
    pid_t pid = fork();
    if (pid == 0) {
        setenv("TASKER_RUBY_NATIVE", native, 1);
        execlp("ruby", "ruby", "-I", lib, script, db_url, templates, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("interrupts.rb failed (status %d)", status);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Run one linear task of `ns` to completion: its wall time (POST to the answer, with wait_ms)
 * and its handler time (the steps' metadata.execution_time_ms, which for Ruby includes the
 * hand-over to the Ruby thread and back). */
static void time_linear(const char *ns, double *wall_ms, double *handler_ms)
{
    char context[128];
    snprintf(context, sizeof(context), "{\"even_number\": 6, \"run\": \"%s\"}", e2e_unique());
    double start = now_ms();
    json_t *t = e2e_create_task(port, ns, "mathematical_sequence", context, 30000, 201);
    *wall_ms = now_ms() - start;
    assert_string_equal(status_of(t), "complete");
    static const char *steps[] = {"linear_step_1", "linear_step_2", "linear_step_3",
                                  "linear_step_4"};
    *handler_ms = 0;
    for (int i = 0; i < 4; i++) {
        json_t *r = step_results(uuid_of(t), steps[i]);
        *handler_ms +=
            json_number_value(json_object_get(json_object_get(r, "metadata"), "execution_time_ms"));
        json_decref(r);
    }
    json_decref(t);
}

/* Informational: printed, never asserted (bindings/ruby/bench/overhead.sh measures more). */
static void test_overhead_report(void **state)
{
    (void)state;
    skip_if_no_ruby();
    enum { N = 30 };
    double c_wall[N], c_handler[N], rb_wall[N], rb_handler[N];
    for (int i = 0; i < 3; i++) { /* warm up both paths */
        time_linear("linear_workflow", &c_wall[0], &c_handler[0]);
        time_linear("linear_workflow_rb", &rb_wall[0], &rb_handler[0]);
    }
    for (int i = 0; i < N; i++) { /* alternate, so both see the same machine */
        time_linear("linear_workflow", &c_wall[i], &c_handler[i]);
        time_linear("linear_workflow_rb", &rb_wall[i], &rb_handler[i]);
    }
    double cw = median_of(c_wall, N), rw = median_of(rb_wall, N);
    double ch = median_of(c_handler, N), rh = median_of(rb_handler, N);
    printf("linear (4 steps), %d tasks each, alternating, one at a time (wait_ms), medians:\n"
           "  end to end     C %.2f ms, Ruby %.2f ms, Ruby - C %+.2f ms\n"
           "  handler time   C %.3f ms, Ruby %.3f ms, Ruby - C %+.3f ms\n",
           N, cw, rw, rw - cw, ch, rh, rh - ch);
}

int main(void)
{
    e2e_init("ruby");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workflows_match_c),
        cmocka_unit_test(test_banner_port_serves_health),
        cmocka_unit_test(test_retryable_error_then_success),
        cmocka_unit_test(test_permanent_error_one_attempt),
        cmocka_unit_test(test_unexpected_exception_has_backtrace),
        cmocka_unit_test(test_not_serialisable_result),
        cmocka_unit_test(test_logger_lines_carry_correlation_id),
        cmocka_unit_test(test_mixed_c_and_ruby_steps),
        cmocka_unit_test(test_unresolved_callable_is_reported),
        cmocka_unit_test(test_timeout_then_worker_keeps_serving),
        cmocka_unit_test(test_ruby_threads_interrupt_waits),
        cmocka_unit_test(test_overhead_report),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
