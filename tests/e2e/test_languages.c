/*
 * test_languages.c - one workflow served by a C, a Ruby and a Python worker at once
 * (tests/e2e/languages/mixed.yaml): each language's step runs in its own worker, results flow
 * between them, and the task completes.
 *
 * Skipped in the sanitizer build, which builds neither binding (the system interpreters are
 * not built with AddressSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "e2e.h"
#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define TK_BINDINGS_SKIPPED true
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TK_BINDINGS_SKIPPED true
#endif
#endif
#ifndef TK_BINDINGS_SKIPPED
#define TK_BINDINGS_SKIPPED false
#endif

/* <build>/bindings/<language>/bin/<program>, which must exist. */
static const char *binding_worker(const char *language, const char *program, char *buf, size_t size)
{
    char relative[256];
    snprintf(relative, sizeof(relative), "bindings/%s/bin/%s", language, program);
    snprintf(buf, size, "%s", e2e_build_path(relative));
    if (access(buf, X_OK) != 0)
        fail_msg("%s is missing: the %s binding was not built", buf, language);
    return buf;
}

static e2e_proc_t start_binding_worker(const char *program, const char *label, const char *db_url,
                                       const char *handlers)
{
    char templates[1024], handlers_dir[1024];
    snprintf(templates, sizeof(templates), "%s", e2e_source_path("tests/e2e/languages"));
    snprintf(handlers_dir, sizeof(handlers_dir), "%s", e2e_source_path(handlers));
    const char *argv[] = {program,   "--database-url", db_url,       "--templates",
                          templates, "--handlers",     handlers_dir, "--port",
                          "0",       "--id",           label,        NULL};
    return e2e_start_program(label, argv);
}

static const char *step_worker(PGconn *pg, const char *task_uuid, const char *step)
{
    const char *params[] = {task_uuid, step};
    return tk_test_valuep(pg,
                          "SELECT ws.results->'metadata'->>'worker_id' FROM workflow_steps ws "
                          "JOIN named_steps ns USING (named_step_uuid) "
                          "WHERE ws.task_uuid = $1::uuid AND ns.name = $2",
                          2, params);
}

static void test_c_ruby_and_python_workers_share_a_workflow(void **state)
{
    (void)state;
    if (TK_BINDINGS_SKIPPED)
        skip();
    char ruby[1024], python[1024];
    binding_worker("ruby", "tasker-ruby-worker", ruby, sizeof(ruby));
    binding_worker("python", "tasker-python-worker", python, sizeof(python));

    char *db_url = tk_test_db_create("e2e_languages");
    e2e_proc_t server = e2e_start_server(db_url, "server", NULL);
    const char *plugin[] = {"--plugin", "../examples/plugin/libtasker_example.so", NULL};
    e2e_proc_t c_worker =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/languages"), "c-worker", plugin);
    e2e_proc_t rb_worker =
        start_binding_worker(ruby, "ruby-worker", db_url, "examples/ruby/handlers");
    e2e_proc_t py_worker =
        start_binding_worker(python, "python-worker", db_url, "examples/python/handlers");

    json_t *t = e2e_create_task(server.port, "e2e_languages", "three_languages",
                                "{\"even_number\": 6, \"name\": \"Ada\"}", 30000, 201);
    assert_string_equal(json_string_value(json_object_get(t, "status")), "complete");
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));

    static const struct {
        const char *step;
        long long value;
    } values[] = {{"ruby_square", 36}, {"python_square", 1296}, {"c_square", 1679616}};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        json_t *r = e2e_step_result(server.port, uuid, values[i].step);
        if (json_integer_value(json_object_get(r, "value")) != values[i].value)
            fail_msg("step %s: expected value %lld", values[i].step, values[i].value);
        json_decref(r);
    }
    json_t *greet = e2e_step_result(server.port, uuid, "greet");
    assert_string_equal(json_string_value(json_object_get(greet, "greeting")), "Hello, Ada!");
    json_decref(greet);

    /* each language's step ran in the one worker that has its handler */
    PGconn *pg = tk_test_connect(db_url);
    assert_string_equal(step_worker(pg, uuid, "greet"), "c-worker");
    assert_string_equal(step_worker(pg, uuid, "ruby_square"), "ruby-worker");
    assert_string_equal(step_worker(pg, uuid, "python_square"), "python-worker");
    PQfinish(pg);

    json_decref(t);
    e2e_stop(&py_worker);
    e2e_stop(&rb_worker);
    e2e_stop(&c_worker);
    e2e_stop(&server);
    free(db_url);
}

int main(void)
{
    e2e_init("languages");
    /* keep Python's bytecode caches out of the source tree (the handler modules live there) */
    char cwd[1024], cache[1100];
    if (getcwd(cwd, sizeof(cwd)) != NULL) {
        snprintf(cache, sizeof(cache), "%s/python-cache", cwd);
        setenv("PYTHONPYCACHEPREFIX", cache, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c_ruby_and_python_workers_share_a_workflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
