/*
 * host.c - a worker whose handlers run in a host language (see tasker/worker.h).
 *
 * The host callables are registered as host handlers: the worker runtime (worker.c) keeps
 * their steps on a run queue of their own, which the host's threads serve directly. A host
 * thread takes a step (tk_host_worker_next), runs the handler, and reports the result itself
 * (tk_host_worker_done): there is no C thread in between, so a step costs no hand-over
 * between threads, and the step its result made ready is the same thread's next. Leases,
 * timeouts and retries behave as for any handler. This file adds the configuration and the
 * lifetime rules of the public API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error_int.h"
#include "tasker/log.h"
#include "tasker/worker.h"
#include "worker/service.h"
#include "worker/worker.h"

struct tk_host_worker_s {
    tk_config_t cfg;
    tk_worker_service_t *svc;
    tk_worker_t *worker; /* svc's runtime; outlives svc when stop abandons handlers */
};

int tk_host_worker_start(const tk_host_worker_opts_t *o, tk_host_worker_t **out, tk_error_t *err)
{
    *out = NULL;
    tk_host_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return tk_error_set(err, TK_ENOMEM, "cannot start worker: out of memory");
    int rc = tk_config_load(&w->cfg, o->config_path, err);
    for (size_t i = 0; rc == TK_OK && o->settings && o->settings[i]; i++) {
        const char *eq = strchr(o->settings[i], '=');
        char key[128];
        if (eq == NULL || eq == o->settings[i] || (size_t)(eq - o->settings[i]) >= sizeof(key)) {
            rc = tk_error_set(err, TK_EINVAL, "cannot use setting \"%s\": expected key=value",
                              o->settings[i]);
            break;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - o->settings[i]), o->settings[i]);
        rc = tk_config_set(&w->cfg, key, eq + 1, err);
    }
    if (rc == TK_OK)
        rc = tk_config_validate(&w->cfg, err);
    if (rc == TK_OK && w->cfg.database.url[0] == '\0')
        rc = tk_error_set(err, TK_EINVAL,
                          "cannot start worker: no database (set DATABASE_URL or database.url)");
    if (rc == TK_OK) {
        tk_log_set_level(w->cfg.log.level);
        int nns = 0;
        while (o->namespaces && o->namespaces[nns])
            nns++;
        rc = tk_worker_service_start_with(&w->cfg, o->namespaces, nns, o->serve_health,
                                          o->host_handlers, &w->svc, err);
    }
    if (rc != TK_OK) {
        tk_config_free(&w->cfg);
        free(w);
        return rc;
    }
    w->worker = tk_worker_service_worker(w->svc);
    *out = w;
    return TK_OK;
}

int tk_host_worker_next(tk_host_worker_t *w, int timeout_ms, tk_step_t **step)
{
    return tk_worker_host_next(w->worker, timeout_ms, step);
}

void tk_host_worker_wake(tk_host_worker_t *w)
{
    if (w != NULL)
        tk_worker_host_wake(w->worker);
}

void tk_host_worker_close(tk_host_worker_t *w)
{
    if (w != NULL)
        tk_worker_host_close(w->worker);
}

void tk_host_worker_done(tk_host_worker_t *w, tk_step_t *step)
{
    if (step != NULL)
        tk_worker_host_done(w->worker, step);
}

const char *tk_host_worker_id(const tk_host_worker_t *w)
{
    return w->cfg.worker.id;
}

int tk_host_worker_port(const tk_host_worker_t *w)
{
    return (int)tk_worker_service_port(w->svc);
}

void tk_host_worker_stop(tk_host_worker_t *w)
{
    if (w == NULL)
        return;
    tk_worker_host_close(w->worker);
    if (!tk_worker_service_stop(w->svc))
        return; /* handlers still running will call done(): leave w and its worker allocated */
    tk_config_free(&w->cfg);
    free(w);
}

void tk_host_log(tk_log_level_t level, const char *component, const char *message)
{
    if ((int)level <= tk_log_threshold)
        tk_log_write(level, component ? component : "host", NULL, NULL, "%s", message);
}
