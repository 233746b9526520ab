/*
 * handler.h - the C step-handler ABI.
 *
 * A handler is a function that runs one step of a task. It receives a tk_step_t: the task's
 * context (its input), the step's configuration (handler.initialization in the template),
 * the results of the step's ancestors by step name, and its attempt number. It ends the
 * step by calling tk_step_succeed() with a JSON result or tk_step_fail() with an error, and
 * returns 0. JSON values are jansson objects (Debian's libjansson4).
 *
 *     static int charge(tk_step_t *step, void *data)
 *     {
 *         json_int_t cents = json_integer_value(json_object_get(tk_step_context(step), "cents"));
 *         if (cents <= 0)
 *             return tk_step_fail(step, "ValidationError", "cents must be positive", false);
 *         return tk_step_succeed(step, json_pack("{s:I}", "charged", cents));
 *     }
 *
 * Handlers come from the built-in set (builtin.noop, builtin.echo, builtin.square,
 * builtin.sleep, builtin.fail) and from plugins: a shared object loaded with
 * `tasker worker --plugin FILE` that exports
 *
 *     int tasker_plugin_register(tk_handler_registry_t *registry);
 *
 * which registers its handlers by callable name (the template's handler.callable) with
 * tk_handler_register() and returns 0. See examples/plugin/ for a complete plugin.
 *
 * Threading: the worker runs handlers on a pool of threads (max_concurrent_handlers); a
 * handler may be called concurrently for different steps and must be thread-safe. A step
 * object belongs to its handler call; it is freed when the handler returns, so neither the
 * step nor the JSON values it lends may be kept afterwards (json_incref/json_deep_copy what
 * you need to keep).
 *
 * Numbers: JSON integers that do not fit in 64 bits are valid (PostgreSQL keeps them
 * exactly). When the context, the config or the dependency results contain one, every
 * integer of that document is handed over as a real (jansson cannot hold the big one as an
 * integer), so read numbers with json_number_value() unless you control their size.
 *
 * Timeouts: a handler that runs longer than the worker's handler_timeout_ms (or the step's
 * timeout_seconds) is reported as failed with error_type "handler_timeout" (retryable); when
 * it finally returns, its result is ignored. C cannot stop a running thread: long handlers
 * should check tk_step_deadline_ms() and return early.
 */
#ifndef TASKER_HANDLER_H
#define TASKER_HANDLER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tasker/error.h"
#include "tasker/log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this ABI. A plugin may export `int tasker_plugin_abi_version` with the value it
 * was built against; a worker refuses plugins built for another version. */
#define TK_HANDLER_ABI_VERSION 1

typedef struct tk_step_s tk_step_t;
typedef struct tk_handler_registry_s tk_handler_registry_t;

/* A handler: returns 0 after calling tk_step_succeed() or tk_step_fail(). Returning non-zero
 * without either fails the step with error_type "handler_error" (retryable). */
typedef int (*tk_handler_fn)(tk_step_t *step, void *user_data);

/* Mark a plugin's entry point (and tasker_plugin_abi_version) for export from the .so. */
#define TK_PLUGIN_EXPORT __attribute__((visibility("default")))

/* The entry point a plugin exports under the name "tasker_plugin_register". */
typedef int (*tk_plugin_register_fn)(tk_handler_registry_t *registry);

/* Defined by plugins, not by libtasker: the registration function and (optionally) the ABI
 * version the plugin was built against. Declared here so plugins get their prototypes. */
TK_PLUGIN_EXPORT int tasker_plugin_register(tk_handler_registry_t *registry);
TK_PLUGIN_EXPORT extern const int tasker_plugin_abi_version;

/* Register `fn` under `callable` (e.g. "payments.charge"); user_data is passed to every
 * call. TK_OK, TK_EINVAL (empty name or NULL fn) or TK_ECONFLICT (name already taken). */
TK_API int tk_handler_register(tk_handler_registry_t *registry, const char *callable,
                               tk_handler_fn fn, void *user_data);

/* --- What the handler gets. Strings and JSON values are owned by the step. --- */

TK_API const char *tk_step_task_uuid(const tk_step_t *step);
TK_API const char *tk_step_uuid(const tk_step_t *step);
TK_API const char *tk_step_correlation_id(const tk_step_t *step);
TK_API const char *tk_step_name(const tk_step_t *step);
TK_API const char *tk_step_namespace(const tk_step_t *step);
TK_API const char *tk_step_task_name(const tk_step_t *step);
TK_API const char *tk_step_task_version(const tk_step_t *step);
TK_API const char *tk_step_handler_name(const tk_step_t *step);

/* This attempt (1 for the first run) and the step's maximum (retry.max_attempts). */
TK_API int tk_step_attempt(const tk_step_t *step);
TK_API int tk_step_max_attempts(const tk_step_t *step);

/* The task's context (an object). */
TK_API const json_t *tk_step_context(const tk_step_t *step);

/* The step's handler.initialization (an object, {} when the template gives none). */
TK_API const json_t *tk_step_config(const tk_step_t *step);

/* The result of ancestor `step_name` (what its handler passed to tk_step_succeed), or NULL
 * when it is not an ancestor or has no result. */
TK_API const json_t *tk_step_dependency(const tk_step_t *step, const char *step_name);

/* All ancestors' results: an object {step name: result}. */
TK_API const json_t *tk_step_dependencies(const tk_step_t *step);

/* The names of the step's direct parents: an array of strings. */
TK_API const json_t *tk_step_parents(const tk_step_t *step);

/* Monotonic milliseconds (CLOCK_MONOTONIC) after which the worker reports a timeout. */
TK_API int64_t tk_step_deadline_ms(const tk_step_t *step);

/* --- How the handler ends the step (exactly once; later calls return TK_EINVAL). --- */

/* Succeed with `result`, which the step takes over (its reference is stolen, as with
 * json_object_set_new). NULL means {}. Returns 0. */
TK_API int tk_step_succeed(tk_step_t *step, json_t *result);

/* Fail. error_type names the class ("RetryableError", "PermanentError", "ValidationError",
 * ...; NULL: "handler_error"); retryable says whether another attempt may succeed (the
 * template's retry.retryable and max_attempts still apply). Returns 0. */
TK_API int tk_step_fail(tk_step_t *step, const char *error_type, const char *message,
                        bool retryable);

/* After tk_step_fail(): ask to wait at least `seconds` before the next attempt (a
 * Retry-After); capped by the server's backoff.max_seconds. */
TK_API void tk_step_set_retry_after(tk_step_t *step, double seconds);

/* After tk_step_fail(): a machine-readable code for the failure (e.g. "CARD_DECLINED"),
 * stored as Tasker's metadata.error_code of the step's result, next to error.error_type.
 * `code` (UTF-8) is copied; NULL or "" removes it; a later call replaces it. Ignored when
 * the step has not failed (or the text is not UTF-8, or memory is short). */
TK_API void tk_step_set_error_code(tk_step_t *step, const char *code);

/* --- The same as JSON text, for language bindings (Ruby, Python) that parse with their own
 * JSON library. Strings are owned by the step (encoded on first use). --- */

TK_API const char *tk_step_context_json(tk_step_t *step);
TK_API const char *tk_step_config_json(tk_step_t *step);
TK_API const char *tk_step_dependencies_json(tk_step_t *step);
TK_API const char *tk_step_parents_json(tk_step_t *step);

/* Succeed with a result given as JSON text (any JSON value). TK_EINVAL when the text is not
 * JSON (the step is then left without an outcome) or an outcome was already set. */
TK_API int tk_step_succeed_json(tk_step_t *step, const char *json);

/* Attach to the outcome: `custom` metadata (a JSON object as text, stored in
 * metadata.custom) and, after a failure, a backtrace (a JSON array of strings, stored in
 * error.backtrace). TK_EINVAL when the text is not the right kind of JSON. */
TK_API int tk_step_set_metadata_json(tk_step_t *step, const char *json_object);
TK_API int tk_step_set_backtrace_json(tk_step_t *step, const char *json_array);

/* Log a line about this step: it carries the step's correlation_id, task_uuid and
 * step_uuid, and component "handler". */
TK_API void tk_step_log(const tk_step_t *step, tk_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
