/*
 * example_handlers.c - an example handler plugin: how to write step handlers in C.
 *
 * Build (done by `make build`): build/examples/plugin/libtasker_example.so. Use it:
 *
 *     tasker worker --templates examples/plugin --plugin build/examples/plugin/libtasker_example.so
 *
 * and run examples/plugin/greeting.yaml, whose steps use the two handlers below:
 *   example.greet      {"greeting": "Hello, <context.name>!"}; fails (not retryable) when the
 *                      context has no name: a validation error will not fix itself.
 *   example.shout      upper-cases the greeting of its parent "greet"; fails (retryable) on
 *                      its first attempt when config.flaky is true, to show retries.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tasker/handler.h"

/* The worker checks this against its own TK_HANDLER_ABI_VERSION. */
TK_PLUGIN_EXPORT const int tasker_plugin_abi_version = TK_HANDLER_ABI_VERSION;

static int greet(tk_step_t *step, void *data)
{
    (void)data;
    const char *name = json_string_value(json_object_get(tk_step_context(step), "name"));
    if (name == NULL || name[0] == '\0')
        return tk_step_fail(step, "ValidationError", "the task context needs a \"name\"", false);
    char greeting[256];
    snprintf(greeting, sizeof(greeting), "Hello, %s!", name);
    tk_step_log(step, TK_LOG_INFO, "greeting %s", name);
    return tk_step_succeed(step, json_pack("{s:s}", "greeting", greeting));
}

static int shout(tk_step_t *step, void *data)
{
    (void)data;
    if (json_is_true(json_object_get(tk_step_config(step), "flaky")) &&
        tk_step_attempt(step) == 1) {
        tk_step_fail(step, "RetryableError", "flaky on purpose: try again", true);
        tk_step_set_retry_after(step, 0);
        return 0;
    }
    const char *greeting =
        json_string_value(json_object_get(tk_step_dependency(step, "greet"), "greeting"));
    if (greeting == NULL)
        return tk_step_fail(step, "PermanentError", "parent \"greet\" has no greeting", false);
    char loud[256];
    size_t i = 0;
    for (; greeting[i] != '\0' && i < sizeof(loud) - 1; i++)
        loud[i] = (char)toupper((unsigned char)greeting[i]);
    loud[i] = '\0';
    return tk_step_succeed(
        step, json_pack("{s:s, s:i}", "shout", loud, "attempt", tk_step_attempt(step)));
}

TK_PLUGIN_EXPORT int tasker_plugin_register(tk_handler_registry_t *registry)
{
    int rc = tk_handler_register(registry, "example.greet", greet, NULL);
    if (rc == 0)
        rc = tk_handler_register(registry, "example.shout", shout, NULL);
    return rc;
}
