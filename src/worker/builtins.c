/*
 * builtins.c - handlers every worker has, so templates work without compiling anything:
 *
 *   builtin.noop    {}
 *   builtin.echo    {"context": <task context>, "config": <step config>,
 *                    "dependencies": {<ancestor>: <result>}}
 *   builtin.square  no parents: the context's even_number squared; with parents: the product
 *                   of the parents' "value" results, squared. {"value": N}. Tasker's
 *                   mathematical workflows: linear 6 -> 36 -> 1296 -> 1679616 -> 2821109907456.
 *                   Integers beyond 64 bits continue as floating point.
 *   builtin.sleep   sleeps config.ms milliseconds, {"slept_ms": N} (past the step's
 *                   timeout the worker reports handler_timeout and drops this result)
 *   builtin.fail    fails while attempt <= config.fail_times (-1: always) with
 *                   config.retryable (default true), config.error_type and
 *                   config.retry_after_seconds; afterwards {"attempts": N}
 */
#include <stdio.h>

#include "common/clock.h"
#include "worker/registry.h"

static int noop(tk_step_t *step, void *data)
{
    (void)data;
    return tk_step_succeed(step, json_object());
}

static int echo(tk_step_t *step, void *data)
{
    (void)data;
    return tk_step_succeed(step, json_pack("{s:O, s:O, s:O}", "context", tk_step_context(step),
                                           "config", tk_step_config(step), "dependencies",
                                           tk_step_dependencies(step)));
}

/* A JSON number as a value that is exact while it fits in 64 bits. */
typedef struct number_s {
    bool is_int;
    json_int_t i;
    double d;
} number_t;

static bool read_number(const json_t *v, number_t *out)
{
    if (json_is_integer(v)) {
        *out = (number_t){true, json_integer_value(v), (double)json_integer_value(v)};
        return true;
    }
    if (json_is_real(v)) {
        *out = (number_t){false, 0, json_real_value(v)};
        return true;
    }
    return false;
}

static number_t multiply(number_t a, number_t b)
{
    json_int_t product;
    if (a.is_int && b.is_int && !__builtin_mul_overflow(a.i, b.i, &product))
        return (number_t){true, product, (double)product};
    return (number_t){false, 0, a.d * b.d};
}

static json_t *number_json(number_t n)
{
    return n.is_int ? json_integer(n.i) : json_real(n.d);
}

static int square(tk_step_t *step, void *data)
{
    (void)data;
    const json_t *parents = tk_step_parents(step);
    number_t acc;
    if (json_array_size(parents) == 0) {
        if (!read_number(json_object_get(tk_step_context(step), "even_number"), &acc))
            return tk_step_fail(step, "ValidationError",
                                "builtin.square needs a number in the task context's "
                                "\"even_number\"",
                                false);
    } else {
        acc = (number_t){true, 1, 1.0};
        size_t i;
        const json_t *name;
        json_array_foreach(parents, i, name)
        {
            number_t v;
            const json_t *result = tk_step_dependency(step, json_string_value(name));
            if (!read_number(json_object_get(result, "value"), &v)) {
                char msg[512];
                snprintf(msg, sizeof(msg),
                         "builtin.square needs a number in \"value\" of parent "
                         "\"%s\"",
                         json_string_value(name));
                return tk_step_fail(step, "ValidationError", msg, false);
            }
            acc = multiply(acc, v);
        }
    }
    return tk_step_succeed(step, json_pack("{s:o}", "value", number_json(multiply(acc, acc))));
}

static int sleep_ms(tk_step_t *step, void *data)
{
    (void)data;
    json_int_t ms = json_integer_value(json_object_get(tk_step_config(step), "ms"));
    int64_t start = tk_clock_ms();
    if (ms > 0)
        tk_sleep_ms(ms);
    return tk_step_succeed(step,
                           json_pack("{s:I}", "slept_ms", (json_int_t)(tk_clock_ms() - start)));
}

static int fail(tk_step_t *step, void *data)
{
    (void)data;
    const json_t *config = tk_step_config(step);
    json_int_t fail_times = json_integer_value(json_object_get(config, "fail_times"));
    const json_t *retryable_v = json_object_get(config, "retryable");
    bool retryable = retryable_v == NULL || json_is_true(retryable_v);
    int attempt = tk_step_attempt(step);
    if (fail_times >= 0 && attempt > fail_times)
        return tk_step_succeed(step, json_pack("{s:i}", "attempts", attempt));

    const char *error_type = json_string_value(json_object_get(config, "error_type"));
    char msg[128];
    snprintf(msg, sizeof(msg), "builtin.fail: attempt %d fails as configured", attempt);
    tk_step_fail(step, error_type ? error_type : (retryable ? "RetryableError" : "PermanentError"),
                 msg, retryable);
    const json_t *after = json_object_get(config, "retry_after_seconds");
    if (json_is_number(after))
        tk_step_set_retry_after(step, json_number_value(after));
    return 0;
}

int tk_builtins_register(tk_handler_registry_t *r)
{
    static const struct {
        const char *name;
        tk_handler_fn fn;
    } builtins[] = {
        {"builtin.noop", noop},      {"builtin.echo", echo}, {"builtin.square", square},
        {"builtin.sleep", sleep_ms}, {"builtin.fail", fail},
    };
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        int rc = tk_handler_register(r, builtins[i].name, builtins[i].fn, NULL);
        if (rc != TK_OK)
            return rc;
    }
    return TK_OK;
}
