/*
 * server.c - wires the orchestration server together (see server.h).
 *
 * Stop order matters: the task watch is stopped first so that requests blocked in wait_ms
 * return immediately, then the HTTP server (which waits for in-flight requests), then the
 * loops, then the pool.
 */
#include <stdlib.h>

#include "common/error_int.h"
#include "orchestration/api.h"
#include "orchestration/server.h"
#include "tasker/log.h"

struct tk_server_s {
    tk_api_t api;
    tk_http_server_t *http;
};

int tk_server_start(const tk_config_t *cfg, tk_server_t **out, tk_error_t *err)
{
    *out = NULL;
    tk_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return tk_error_set(err, TK_ENOMEM, "cannot start the server: out of memory");
    tk_orchestrator_opts_t orch = {
        .database_url = cfg->database.url,
        .mode = cfg->orchestration.mode,
        .poll_interval_ms = cfg->orchestration.poll_interval_ms,
        .result_batch_size = cfg->orchestration.result_batch_size,
        .sweep_interval_ms = cfg->orchestration.sweep_interval_ms,
        .stuck_task_seconds = cfg->orchestration.stuck_task_seconds,
        .backoff = {cfg->backoff.base_seconds, cfg->backoff.multiplier, cfg->backoff.max_seconds,
                    cfg->backoff.jitter},
    };
    int rc = tk_orchestrator_start(&orch, &s->api.orchestrator, err);
    if (rc == TK_OK)
        rc = tk_pool_open(cfg->database.url, "tasker-api", cfg->database.pool_size, &s->api.pool,
                          err);
    if (rc == TK_OK) {
        tk_error_t warm_err; /* only the first task is slower without it */
        if (tk_pool_warm_up(s->api.pool, &warm_err) != TK_OK)
            TK_LOG(TK_LOG_DEBUG, "server", "warm-up skipped: %s", warm_err.message);
    }
    if (rc == TK_OK)
        rc = tk_task_watch_start(cfg->database.url, &s->api.watch, err);
    s->api.max_wait_ms = cfg->server.max_wait_ms;
    s->api.max_batch_tasks = cfg->server.max_batch_tasks;
    if (rc == TK_OK) {
        size_t nroutes;
        const tk_http_route_t *routes = tk_api_routes(&nroutes);
        tk_http_options_t http = {
            .bind_address = cfg->server.bind,
            .port = (uint16_t)cfg->server.port,
            .max_body_bytes = (size_t)cfg->server.max_body_bytes,
            .routes = routes,
            .nroutes = nroutes,
            .context = &s->api,
            .request_timeout_s = (unsigned)((cfg->server.request_timeout_ms + 999) / 1000),
            .name = "api",
        };
        rc = tk_http_server_start(&http, &s->http, err);
    }
    if (rc != TK_OK) {
        tk_server_stop(s);
        return rc;
    }
    TK_LOG(TK_LOG_INFO, "server", "orchestration server listening on %s:%u", cfg->server.bind,
           tk_http_server_port(s->http));
    *out = s;
    return TK_OK;
}

uint16_t tk_server_port(const tk_server_t *s)
{
    return tk_http_server_port(s->http);
}

void tk_server_stop(tk_server_t *s)
{
    if (s == NULL)
        return;
    if (s->api.watch != NULL)
        tk_task_watch_shutdown(s->api.watch); /* wait_ms requests answer at once */
    tk_http_server_stop(s->http);
    tk_task_watch_stop(s->api.watch);
    tk_orchestrator_stop(s->api.orchestrator);
    tk_pool_close(s->api.pool);
    free(s);
}
