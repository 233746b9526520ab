/*
 * step.c - the step object handed to handlers (see tasker/handler.h and step.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/json_util.h"
#include "common/parse.h"
#include "worker/step.h"

struct tk_step_s {
    char *task_uuid, *step_uuid, *correlation_id, *name, *namespace_name, *task_name, *task_version,
        *handler;
    int attempt, max_attempts;
    int64_t deadline_ms;
    json_t *context, *config, *dependencies, *parents;
    /* outcome */
    bool done;
    bool success;
    json_t *result;
    char *error_type, *error_message;
    bool retryable;
    double retry_after; /* < 0: none */
    int64_t started_us, finished_us;
    struct timespec started_wall;
    json_t *custom;     /* metadata.custom, or NULL */
    json_t *backtrace;  /* error.backtrace, or NULL */
    json_t *error_code; /* metadata.error_code (a string) of a failure, or NULL */
    char *context_json, *config_json, *dependencies_json, *parents_json; /* encoded lazily */
    void *owner;                                                         /* tk_step_set_owner */
};

static char *column(const PGresult *res, int row, const char *name)
{
    int col = PQfnumber(res, name);
    if (col < 0 || PQgetisnull(res, row, col))
        return strdup("");
    return strdup(PQgetvalue(res, row, col));
}

static json_t *json_column(const PGresult *res, int row, const char *name, json_t *fallback)
{
    int col = PQfnumber(res, name);
    if (col < 0 || PQgetisnull(res, row, col))
        return fallback;
    json_decref(fallback);
    return tk_json_parse(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

static int int_column(const PGresult *res, int row, const char *name, int fallback)
{
    int col = PQfnumber(res, name);
    if (col < 0 || PQgetisnull(res, row, col))
        return fallback;
    return tk_parse_int_or(PQgetvalue(res, row, col), fallback);
}

tk_step_t *tk_step_from_claim(const PGresult *res, int row, int64_t deadline_ms)
{
    tk_step_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->task_uuid = column(res, row, "task_uuid");
    s->step_uuid = column(res, row, "step_uuid");
    s->correlation_id = column(res, row, "correlation_id");
    s->name = column(res, row, "step_name");
    s->namespace_name = column(res, row, "namespace_name");
    s->task_name = column(res, row, "task_name");
    s->task_version = column(res, row, "task_version");
    s->handler = column(res, row, "handler");
    s->attempt = int_column(res, row, "attempts", 1);
    s->max_attempts = int_column(res, row, "max_attempts", 1);
    s->deadline_ms = deadline_ms;
    s->retry_after = -1;
    s->context = json_column(res, row, "context", json_object());
    s->config = json_column(res, row, "config", json_object());
    s->dependencies = json_column(res, row, "dependency_results", json_object());
    s->parents = json_column(res, row, "parents", json_array());
    if (!s->task_uuid || !s->step_uuid || !s->correlation_id || !s->name || !s->namespace_name ||
        !s->task_name || !s->task_version || !s->handler || !s->context || !s->config ||
        !s->dependencies || !s->parents) {
        tk_step_free(s);
        return NULL;
    }
    return s;
}

void tk_step_free(tk_step_t *s)
{
    if (s == NULL)
        return;
    free(s->task_uuid);
    free(s->step_uuid);
    free(s->correlation_id);
    free(s->name);
    free(s->namespace_name);
    free(s->task_name);
    free(s->task_version);
    free(s->handler);
    json_decref(s->context);
    json_decref(s->config);
    json_decref(s->dependencies);
    json_decref(s->parents);
    json_decref(s->result);
    json_decref(s->custom);
    json_decref(s->backtrace);
    json_decref(s->error_code);
    free(s->error_type);
    free(s->error_message);
    free(s->context_json);
    free(s->config_json);
    free(s->dependencies_json);
    free(s->parents_json);
    free(s);
}

int64_t tk_step_timeout_ms(const PGresult *res, int row, int64_t fallback_ms)
{
    int col = PQfnumber(res, "config");
    if (col >= 0 && !PQgetisnull(res, row, col)) {
        json_t *config =
            tk_json_parse(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
        json_t *ms = json_object_get(config, "timeout_ms");
        int64_t v = json_is_integer(ms) ? json_integer_value(ms) : 0;
        json_decref(config);
        if (v > 0)
            return v;
    }
    int seconds = int_column(res, row, "timeout_seconds", 0);
    return seconds > 0 ? (int64_t)seconds * 1000 : fallback_ms;
}

const char *tk_step_task_uuid(const tk_step_t *s)
{
    return s->task_uuid;
}

const char *tk_step_uuid(const tk_step_t *s)
{
    return s->step_uuid;
}

const char *tk_step_correlation_id(const tk_step_t *s)
{
    return s->correlation_id;
}

const char *tk_step_name(const tk_step_t *s)
{
    return s->name;
}

const char *tk_step_namespace(const tk_step_t *s)
{
    return s->namespace_name;
}

const char *tk_step_task_name(const tk_step_t *s)
{
    return s->task_name;
}

const char *tk_step_task_version(const tk_step_t *s)
{
    return s->task_version;
}

const char *tk_step_handler_name(const tk_step_t *s)
{
    return s->handler;
}

int tk_step_attempt(const tk_step_t *s)
{
    return s->attempt;
}

int tk_step_max_attempts(const tk_step_t *s)
{
    return s->max_attempts;
}

const json_t *tk_step_context(const tk_step_t *s)
{
    return s->context;
}

const json_t *tk_step_config(const tk_step_t *s)
{
    return s->config;
}

const json_t *tk_step_dependency(const tk_step_t *s, const char *step_name)
{
    return step_name ? json_object_get(s->dependencies, step_name) : NULL;
}

const json_t *tk_step_dependencies(const tk_step_t *s)
{
    return s->dependencies;
}

const json_t *tk_step_parents(const tk_step_t *s)
{
    return s->parents;
}

int64_t tk_step_deadline_ms(const tk_step_t *s)
{
    return s->deadline_ms;
}

/* Compact JSON of `value`, encoded once into *cache. */
static const char *cached_json(char **cache, const json_t *value)
{
    if (*cache == NULL)
        *cache = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    return *cache ? *cache : "null";
}

const char *tk_step_context_json(tk_step_t *s)
{
    return cached_json(&s->context_json, s->context);
}

const char *tk_step_config_json(tk_step_t *s)
{
    return cached_json(&s->config_json, s->config);
}

const char *tk_step_dependencies_json(tk_step_t *s)
{
    return cached_json(&s->dependencies_json, s->dependencies);
}

const char *tk_step_parents_json(tk_step_t *s)
{
    return cached_json(&s->parents_json, s->parents);
}

int tk_step_succeed_json(tk_step_t *s, const char *json)
{
    if (s->done || json == NULL)
        return TK_EINVAL;
    json_t *value = tk_json_parse(json, strlen(json));
    if (value == NULL)
        return TK_EINVAL;
    return tk_step_succeed(s, value);
}

int tk_step_set_metadata_json(tk_step_t *s, const char *json_object)
{
    json_t *value = json_object ? tk_json_parse(json_object, strlen(json_object)) : NULL;
    if (!json_is_object(value)) {
        json_decref(value);
        return TK_EINVAL;
    }
    json_decref(s->custom);
    s->custom = value;
    return TK_OK;
}

int tk_step_set_backtrace_json(tk_step_t *s, const char *json_array)
{
    json_t *value = json_array ? tk_json_parse(json_array, strlen(json_array)) : NULL;
    if (!json_is_array(value)) {
        json_decref(value);
        return TK_EINVAL;
    }
    json_decref(s->backtrace);
    s->backtrace = value;
    return TK_OK;
}

int tk_step_succeed(tk_step_t *s, json_t *result)
{
    if (s->done) {
        json_decref(result);
        return TK_EINVAL;
    }
    s->done = true;
    s->success = true;
    s->result = result ? result : json_object();
    return TK_OK;
}

int tk_step_fail(tk_step_t *s, const char *error_type, const char *message, bool retryable)
{
    if (s->done)
        return TK_EINVAL;
    s->done = true;
    s->success = false;
    s->retryable = retryable;
    s->error_type = strdup(error_type ? error_type : "handler_error");
    s->error_message = strdup(message ? message : "step failed");
    return TK_OK;
}

void tk_step_set_retry_after(tk_step_t *s, double seconds)
{
    if (s->done && !s->success && seconds >= 0)
        s->retry_after = seconds;
}

void tk_step_set_error_code(tk_step_t *s, const char *code)
{
    if (!s->done || s->success)
        return;
    json_decref(s->error_code);
    s->error_code = code != NULL && code[0] != '\0' ? json_string(code) : NULL;
}

bool tk_step_has_outcome(const tk_step_t *s)
{
    return s->done;
}

void tk_step_fail_by_worker(tk_step_t *s, const char *error_type, const char *message,
                            bool retryable)
{
    tk_step_fail(s, error_type, message, retryable);
}

void tk_step_set_owner(tk_step_t *s, void *owner)
{
    s->owner = owner;
}

void *tk_step_owner(const tk_step_t *s)
{
    return s->owner;
}

void tk_step_mark_started(tk_step_t *s)
{
    s->started_us = tk_clock_us();
    clock_gettime(CLOCK_REALTIME, &s->started_wall);
}

void tk_step_mark_finished(tk_step_t *s)
{
    s->finished_us = tk_clock_us();
}

bool tk_step_succeeded(const tk_step_t *s)
{
    return s->done && s->success;
}

double tk_step_execution_ms(const tk_step_t *s)
{
    return s->finished_us > s->started_us ? (double)(s->finished_us - s->started_us) / 1000.0 : 0.0;
}

void tk_step_log(const tk_step_t *s, tk_log_level_t level, const char *fmt, ...)
{
    if ((int)level > tk_log_threshold)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tk_log_ids_t ids = {s->correlation_id, s->task_uuid, s->step_uuid};
    char extra[600];
    snprintf(extra, sizeof(extra), "{\"step_name\":\"%.256s\",\"handler\":\"%.256s\"}", s->name,
             s->handler);
    /* step and handler names are validated identifiers (no quotes to escape) */
    tk_log_write(level, "handler", &ids, extra, "%s", msg);
}

/* RFC 3339 UTC with microseconds: bench/step_phases.sql compares these with the database's
 * transition times, and a handler's phases are well under a millisecond. */
static void format_time(const struct timespec *ts, char out[32])
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06ldZ", ts->tv_nsec / 1000);
}

char *tk_step_result_json(const tk_step_t *s, const char *worker_id)
{
    char started[32], completed[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    format_time(&s->started_wall, started);
    format_time(&now, completed);
    double ms = tk_step_execution_ms(s);
    json_t *meta =
        json_pack("{s:f, s:s, s:s, s:s, s:i, s:b}", "execution_time_ms", ms, "started_at", started,
                  "completed_at", completed, "worker_id", worker_id ? worker_id : "", "attempt",
                  s->attempt, "retryable", !s->success && s->retryable);
    if (meta != NULL && !s->success && s->error_code != NULL)
        json_object_set(meta, "error_code", s->error_code);
    if (meta != NULL && s->custom != NULL)
        json_object_set(meta, "custom", s->custom);
    json_t *result = s->success && s->result ? json_incref(s->result) : json_object();
    json_t *doc = json_pack("{s:s, s:b, s:s, s:o, s:o}", "step_uuid", s->step_uuid, "success",
                            s->success, "status", s->success ? "completed" : "failed", "result",
                            result, "metadata", meta);
    if (doc != NULL && !s->success) {
        json_t *error =
            json_pack("{s:s, s:s, s:b}", "message",
                      s->error_message ? s->error_message : "step failed", "error_type",
                      s->error_type ? s->error_type : "handler_error", "retryable", s->retryable);
        if (error != NULL && s->retry_after >= 0)
            json_object_set_new(error, "retry_after_seconds", json_real(s->retry_after));
        if (error != NULL && s->backtrace != NULL)
            json_object_set(error, "backtrace", s->backtrace);
        json_object_set_new(doc, "error", error);
    }
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}
