/*
 * service.h - a complete worker process (`tasker worker`, and half of `tasker dev`):
 * loads and registers its templates, builds the handler registry (built-ins and plugins),
 * runs the worker runtime and serves its health endpoint.
 */
#ifndef TK_WORKER_SERVICE_H
#define TK_WORKER_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "tasker/handler.h"
#include "template/template.h"
#include "worker/worker.h"

typedef struct tk_worker_service_s tk_worker_service_t;

/* Start from `cfg` (database.*, worker.*). Templates come from cfg->worker.templates (a file
 * or a directory, registered in the database); the worker serves their namespaces plus
 * `extra_namespaces`. Handlers: the built-ins and cfg->worker.plugins. A worker port of 0
 * picks a free port; a negative port (set by the caller) serves no health endpoint.
 * Errors name the template file or plugin at fault. */
int tk_worker_service_start(const tk_config_t *cfg, const char *const *extra_namespaces, int nextra,
                            bool serve_health, tk_worker_service_t **out, tk_error_t *err);

/* The same, with `host_handlers` (NULL-terminated, may be NULL) registered as run by the host
 * program's threads (tk_worker_host_next; the language bindings). */
int tk_worker_service_start_with(const tk_config_t *cfg, const char *const *extra_namespaces,
                                 int nextra, bool serve_health, const char *const *host_handlers,
                                 tk_worker_service_t **out, tk_error_t *err);

/* The worker runtime it runs. It stays valid after tk_worker_service_stop() returned false. */
tk_worker_t *tk_worker_service_worker(const tk_worker_service_t *s);

/* The templates it loaded from cfg->worker.templates and registered (valid until stop). */
const tk_template_set_t *tk_worker_service_templates(const tk_worker_service_t *s);

/* The health endpoint's port (0 when none is served). */
uint16_t tk_worker_service_port(const tk_worker_service_t *s);

/* Stop: no new claims; running handlers get up to the handler timeout to finish. Returns
 * false when some were still running and were abandoned (their threads live on, so what
 * they use must not be freed). Accepts NULL (returns true). */
bool tk_worker_service_stop(tk_worker_service_t *s);

#endif
