/*
 * registry.h - handlers by callable name: the built-in set and .so plugins.
 *
 * Built once at worker start-up, then only read: lookups are thread-safe once registration
 * is over (the worker registers everything before starting its threads).
 */
#ifndef TK_WORKER_REGISTRY_H
#define TK_WORKER_REGISTRY_H

#include <stdbool.h>

#include "tasker/handler.h"

/* An empty registry. NULL when out of memory. Free with tk_handler_registry_free(). */
tk_handler_registry_t *tk_handler_registry_new(void);

/* Free the registry and close the plugins it loaded. Accepts NULL. */
void tk_handler_registry_free(tk_handler_registry_t *r);

/* Register builtin.noop, builtin.echo, builtin.square, builtin.sleep and builtin.fail. */
int tk_builtins_register(tk_handler_registry_t *r);

/* dlopen `path` and call its tasker_plugin_register(). Fails with TK_EINVAL and a message
 * naming the file if it cannot be loaded, has no entry point, was built for another ABI
 * version, or its registration fails. */
int tk_handler_registry_load_plugin(tk_handler_registry_t *r, const char *path, tk_error_t *err);

/* Register `callable` as run by the host program's threads (tasker/worker.h): the worker
 * queues its steps for tk_worker_host_next() instead of a C handler thread. Errors as for
 * tk_handler_register(). */
int tk_handler_registry_add_host(tk_handler_registry_t *r, const char *callable);

/* True when `callable` was registered with tk_handler_registry_add_host(). */
bool tk_handler_registry_is_host(const tk_handler_registry_t *r, const char *callable);

/* The handler registered under `callable`, or NULL; *user_data receives its data. */
tk_handler_fn tk_handler_registry_lookup(const tk_handler_registry_t *r, const char *callable,
                                         void **user_data);

/* Number of handlers and the i-th callable name (in registration order). */
int tk_handler_registry_count(const tk_handler_registry_t *r);
const char *tk_handler_registry_name(const tk_handler_registry_t *r, int i);

#endif
