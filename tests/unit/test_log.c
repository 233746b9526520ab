/*
 * test_log.c - log lines are one valid JSON object each, with the fields DESIGN.md requires,
 * escaped text, truncation that keeps the JSON valid, and no formatting below the threshold.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tasker/log.h"

/* Capture what the logger writes through a pipe; returns the first line parsed as JSON. */
static int pipe_fds[2];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pipe(pipe_fds), 0);
    tk_log_set_fd(pipe_fds[1]);
    tk_log_set_level(TK_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tk_log_set_fd(2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}

static json_t *read_line(void)
{
    static char buf[16384];
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_int_equal(buf[n - 1], '\n');
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1); /* exactly one line */
    json_error_t err;
    json_t *obj = json_loads(buf, 0, &err);
    if (obj == NULL)
        fail_msg("not JSON (%s): %s", err.text, buf);
    return obj;
}

static void test_fields(void **state)
{
    (void)state;
    tk_log_ids_t ids = {.correlation_id = "c-1", .task_uuid = "t-1", .step_uuid = NULL};
    TK_LOG_IDS(TK_LOG_WARN, "worker", &ids, "step %s took %d ms", "a", 12);
    json_t *o = read_line();
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(o, "component")), "worker");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "step a took 12 ms");
    assert_string_equal(json_string_value(json_object_get(o, "correlation_id")), "c-1");
    assert_string_equal(json_string_value(json_object_get(o, "task_uuid")), "t-1");
    assert_null(json_object_get(o, "step_uuid"));
    const char *ts = json_string_value(json_object_get(o, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-11-26T07:34:56.123Z */
    assert_int_equal(ts[23], 'Z');
    json_decref(o);
}

static void test_escaping_and_extra(void **state)
{
    (void)state;
    tk_log_write(TK_LOG_ERROR, "db", NULL, "{\"port\":5432}", "quote \" slash \\ tab \t nl \n %s",
                 "bad \xff byte");
    json_t *o = read_line();
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "quote \" slash \\ tab \t nl \n bad \xef\xbf\xbd byte");
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 5432);
    json_decref(o);
}

static void test_truncation_keeps_json_valid(void **state)
{
    (void)state;
    char big[6000];
    memset(big, '"', sizeof(big) - 1); /* each quote escapes to two bytes */
    big[sizeof(big) - 1] = '\0';
    TK_LOG(TK_LOG_INFO, "x", "%s", big);
    json_t *o = read_line();
    assert_true(json_is_true(json_object_get(o, "truncated")));
    assert_true(strlen(json_string_value(json_object_get(o, "msg"))) > 1000);
    json_decref(o);
}

static int evaluated;

static const char *side_effect(void)
{
    evaluated++;
    return "x";
}

static void test_threshold_skips_formatting(void **state)
{
    (void)state;
    evaluated = 0;
    TK_LOG(TK_LOG_DEBUG, "x", "%s", side_effect());
    assert_int_equal(evaluated, 0);
    tk_log_set_level(TK_LOG_DEBUG);
    TK_LOG(TK_LOG_DEBUG, "x", "%s", side_effect());
    assert_int_equal(evaluated, 1);
    json_decref(read_line());
    tk_log_level_t level;
    assert_int_equal(tk_log_level_parse("TRACE", &level), TK_OK);
    assert_int_equal(level, TK_LOG_TRACE);
    assert_int_equal(tk_log_level_parse("warning", &level), TK_OK);
    assert_int_equal(level, TK_LOG_WARN);
    assert_int_equal(tk_log_level_parse("loud", &level), TK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_escaping_and_extra),
        cmocka_unit_test(test_truncation_keeps_json_valid),
        cmocka_unit_test(test_threshold_skips_formatting),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
