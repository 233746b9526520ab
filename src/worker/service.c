/*
 * service.c - a worker process's parts wired together (see service.h).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error_int.h"
#include "db/conn.h"
#include "http/http.h"
#include "template/template.h"
#include "tasker/log.h"
#include "worker/registry.h"
#include "worker/service.h"
#include "worker/worker.h"

struct tk_worker_service_s {
    tk_handler_registry_t *registry;
    tk_template_set_t *templates;
    tk_worker_t *worker;
    tk_http_server_t *http;
    char *worker_id;
    int grace_ms;
};

/* Load cfg->worker.templates (file or directory) into *out (an empty set when unset). */
static int load_templates(const char *path, tk_template_set_t **out, tk_error_t *err)
{
    struct stat st;
    if (path == NULL || path[0] == '\0')
        return tk_template_set_new(out) == TK_OK ? TK_OK
                                                 : tk_error_set(err, TK_ENOMEM, "out of memory");
    if (stat(path, &st) != 0)
        return tk_error_set(err, TK_EINVAL, "cannot load templates: \"%s\" does not exist", path);
    if (S_ISDIR(st.st_mode))
        return tk_template_load_dir(path, out, err);
    tk_template_t *t;
    int rc = tk_template_load_file(path, &t, err);
    if (rc != TK_OK)
        return rc;
    rc = tk_template_set_new(out);
    if (rc == TK_OK)
        rc = tk_template_set_add(*out, t, err);
    else
        tk_template_free(t);
    return rc;
}

/* Register every template and warn about handlers this worker lacks. */
static int register_templates(const tk_config_t *cfg, const tk_template_set_t *set,
                              const tk_handler_registry_t *registry, tk_error_t *err)
{
    if (tk_template_set_count(set) == 0)
        return TK_OK;
    tk_conn_t *conn;
    int rc = tk_conn_open(cfg->database.url, "tasker-worker", &conn, err);
    if (rc == TK_OK)
        rc = tk_template_set_register(conn, set, err);
    tk_conn_close(conn);
    if (rc != TK_OK)
        return rc;
    for (size_t i = 0; i < tk_template_set_count(set); i++) {
        const tk_template_t *t = tk_template_set_get(set, i);
        for (size_t j = 0; j < tk_template_step_count(t); j++) {
            const tk_template_step_t *step = tk_template_step(t, j);
            if (tk_handler_registry_lookup(registry, step->callable, NULL) == NULL)
                TK_LOG(TK_LOG_WARN, "worker",
                       "template %s/%s step \"%s\" uses handler \"%s\", which this worker does "
                       "not have: another worker must run it",
                       tk_template_namespace(t), tk_template_name(t), step->name, step->callable);
        }
        TK_LOG(TK_LOG_INFO, "worker", "registered template %s/%s %s (%zu steps) from %s",
               tk_template_namespace(t), tk_template_name(t), tk_template_version(t),
               tk_template_step_count(t), tk_template_origin(t));
    }
    return TK_OK;
}

/* --- health endpoint ------------------------------------------------------------------------ */

static void health(tk_http_request_t *req)
{
    tk_worker_service_t *s = tk_http_context(req);
    tk_worker_stats_t st;
    tk_worker_stats(s->worker, &st);
    bool live = strcmp(tk_http_path(req), "/health/live") == 0;
    bool ready_route = strcmp(tk_http_path(req), "/health/ready") == 0;
    bool ready = st.database_ok;
    json_t *doc = json_pack(
        "{s:s, s:s, s:b, s:i}", "status",
        live ? "alive"
             : (ready_route ? (ready ? "ready" : "not_ready") : (ready ? "healthy" : "degraded")),
        "worker_id", s->worker_id, "database_ok", st.database_ok, "in_flight", st.in_flight);
    char *text = json_dumps(doc, JSON_COMPACT);
    tk_http_respond_json(req, ready_route && !ready ? 503 : 200, text ? text : "{}");
    free(text);
    json_decref(doc);
}

static void metrics(tk_http_request_t *req)
{
    tk_worker_service_t *s = tk_http_context(req);
    tk_worker_stats_t st;
    tk_worker_stats(s->worker, &st);
    char body[1536];
    int n = snprintf(body, sizeof(body),
                     "# HELP tasker_worker_steps_claimed_total Steps this worker claimed.\n"
                     "# TYPE tasker_worker_steps_claimed_total counter\n"
                     "tasker_worker_steps_claimed_total %llu\n"
                     "# HELP tasker_worker_steps_total Step outcomes this worker reported.\n"
                     "# TYPE tasker_worker_steps_total counter\n"
                     "tasker_worker_steps_total{outcome=\"success\"} %llu\n"
                     "tasker_worker_steps_total{outcome=\"failure\"} %llu\n"
                     "tasker_worker_steps_total{outcome=\"timeout\"} %llu\n"
                     "tasker_worker_steps_total{outcome=\"lease_lost\"} %llu\n"
                     "# HELP tasker_worker_results_reported_together_total Results sent in one "
                     "call with others of their task.\n"
                     "# TYPE tasker_worker_results_reported_together_total counter\n"
                     "tasker_worker_results_reported_together_total %llu\n"
                     "# HELP tasker_worker_steps_in_flight Steps claimed and not yet reported.\n"
                     "# TYPE tasker_worker_steps_in_flight gauge\n"
                     "tasker_worker_steps_in_flight %d\n",
                     (unsigned long long)st.claimed, (unsigned long long)st.succeeded,
                     (unsigned long long)(st.failed - st.timed_out),
                     (unsigned long long)st.timed_out, (unsigned long long)st.lost,
                     (unsigned long long)st.reported_together, st.in_flight);
    tk_http_respond(req, 200, "text/plain; version=0.0.4", body, (size_t)n);
}

static const tk_http_route_t routes[] = {
    {"GET", "/health", health},
    {"GET", "/health/live", health},
    {"GET", "/health/ready", health},
    {"GET", "/metrics", metrics},
};

/* --- lifecycle ------------------------------------------------------------------------------ */

int tk_worker_service_start(const tk_config_t *cfg, const char *const *extra_namespaces, int nextra,
                            bool serve_health, tk_worker_service_t **out, tk_error_t *err)
{
    return tk_worker_service_start_with(cfg, extra_namespaces, nextra, serve_health, NULL, out,
                                        err);
}

int tk_worker_service_start_with(const tk_config_t *cfg, const char *const *extra_namespaces,
                                 int nextra, bool serve_health, const char *const *host_handlers,
                                 tk_worker_service_t **out, tk_error_t *err)
{
    *out = NULL;
    tk_worker_service_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->worker_id = strdup(cfg->worker.id)) == NULL ||
        (s->registry = tk_handler_registry_new()) == NULL) {
        tk_worker_service_stop(s);
        return tk_error_set(err, TK_ENOMEM, "cannot start worker: out of memory");
    }
    s->grace_ms = cfg->worker.handler_timeout_ms;
    int rc = tk_builtins_register(s->registry);
    for (size_t i = 0; rc == TK_OK && i < cfg->worker.plugins.count; i++)
        rc = tk_handler_registry_load_plugin(s->registry, cfg->worker.plugins.items[i], err);
    for (size_t i = 0; rc == TK_OK && host_handlers && host_handlers[i]; i++) {
        rc = tk_handler_registry_add_host(s->registry, host_handlers[i]);
        if (rc != TK_OK)
            tk_error_set(err, rc, "cannot start worker: cannot register host handler \"%s\": %s",
                         host_handlers[i], tk_strerror(rc));
    }
    if (rc == TK_OK)
        rc = load_templates(cfg->worker.templates, &s->templates, err);
    if (rc == TK_OK)
        rc = register_templates(cfg, s->templates, s->registry, err);

    /* namespaces: the templates' and the extra ones, without duplicates */
    size_t ntemplate_ns = 0;
    const char *const *template_ns =
        rc == TK_OK ? tk_template_set_namespaces(s->templates, &ntemplate_ns) : NULL;
    const char **namespaces = calloc(ntemplate_ns + (size_t)nextra + 1, sizeof(char *));
    int nns = 0;
    for (size_t i = 0; namespaces && i < ntemplate_ns; i++)
        namespaces[nns++] = template_ns[i];
    for (int i = 0; namespaces && i < nextra; i++) {
        bool seen = false;
        for (int j = 0; j < nns; j++)
            seen = seen || strcmp(namespaces[j], extra_namespaces[i]) == 0;
        if (!seen)
            namespaces[nns++] = extra_namespaces[i];
    }
    if (rc == TK_OK && namespaces == NULL)
        rc = tk_error_set(err, TK_ENOMEM, "cannot start worker: out of memory");
    if (rc == TK_OK) {
        tk_worker_opts_t opts = {
            .database_url = cfg->database.url,
            .worker_id = cfg->worker.id,
            .namespaces = namespaces,
            .nnamespaces = nns,
            .registry = s->registry,
            .mode = cfg->worker.mode,
            .poll_interval_ms = cfg->worker.poll_interval_ms,
            .batch_size = cfg->worker.batch_size,
            .max_concurrent = cfg->worker.max_concurrent_handlers,
            .handler_timeout_ms = cfg->worker.handler_timeout_ms,
            .lease_seconds = cfg->worker.lease_seconds,
            .heartbeat_interval_ms = cfg->worker.heartbeat_interval_ms,
            .backoff = {cfg->backoff.base_seconds, cfg->backoff.multiplier,
                        cfg->backoff.max_seconds, cfg->backoff.jitter},
        };
        rc = tk_worker_start(&opts, &s->worker, err);
    }
    free(namespaces);
    if (rc == TK_OK && serve_health) {
        tk_http_options_t http = {
            .bind_address = cfg->worker.bind,
            .port = (uint16_t)cfg->worker.port,
            .routes = routes,
            .nroutes = sizeof(routes) / sizeof(routes[0]),
            .context = s,
            .name = "worker.http",
        };
        rc = tk_http_server_start(&http, &s->http, err);
    }
    if (rc != TK_OK) {
        tk_worker_service_stop(s);
        return rc;
    }
    *out = s;
    return TK_OK;
}

tk_worker_t *tk_worker_service_worker(const tk_worker_service_t *s)
{
    return s->worker;
}

const tk_template_set_t *tk_worker_service_templates(const tk_worker_service_t *s)
{
    return s->templates;
}

uint16_t tk_worker_service_port(const tk_worker_service_t *s)
{
    return s->http ? tk_http_server_port(s->http) : 0;
}

bool tk_worker_service_stop(tk_worker_service_t *s)
{
    if (s == NULL)
        return true;
    tk_http_server_stop(s->http);
    bool stopped = tk_worker_stop(s->worker, s->grace_ms);
    tk_template_set_free(s->templates);
    if (stopped) /* else abandoned handlers may still run plugin code: keep it loaded */
        tk_handler_registry_free(s->registry);
    free(s->worker_id);
    free(s);
    return stopped;
}
