/*
 * config.c - the settings table and everything it drives: defaults, the YAML file with
 * ${VAR} expansion, environment overrides, tk_config_set, cross-key validation, printing the
 * effective configuration and describing the keys (see config.h).
 *
 * Every value, the built-in defaults included, is text parsed by parse_value() against its
 * table entry, so a default can never disagree with the bounds or the enum it is checked by.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "common/config.h"
#include "common/error_int.h"
#include "common/parse.h"

/* ---- The table ---- */

static const tk_config_choice_t mode_choices[] = {
    {"hybrid", TK_CONFIG_MODE_HYBRID, false},
    {"event_driven", TK_CONFIG_MODE_EVENT_DRIVEN, false},
    {"polling", TK_CONFIG_MODE_POLLING, false},
    {"EventDrivenOnly", TK_CONFIG_MODE_EVENT_DRIVEN, true}, /* Tasker's deployment_mode */
    {"PollingOnly", TK_CONFIG_MODE_POLLING, true},
    {NULL, 0, false}};

static const tk_config_choice_t level_choices[] = {{"error", TK_LOG_ERROR, false},
                                                   {"warn", TK_LOG_WARN, false},
                                                   {"info", TK_LOG_INFO, false},
                                                   {"debug", TK_LOG_DEBUG, false},
                                                   {"trace", TK_LOG_TRACE, false},
                                                   {"warning", TK_LOG_WARN, true},
                                                   {NULL, 0, false}};

#define R TK_CONFIG_F_RELOADABLE
#define KEY(key, type, field, def, lo, hi, choices, env, alias, flags, desc)                       \
    {                                                                                              \
        key, TK_CONFIG_##type, offsetof(tk_config_t, field), def, lo, hi, choices, env, alias,     \
            flags, desc                                                                            \
    }

/* key, type, field, default, min, max, choices, env, env alias, flags, description */
static const tk_config_key_t keys[] = {
    KEY("database.url", STRING, database.url, "", 0, 0, NULL, "TASKER_DATABASE_URL", "DATABASE_URL",
        TK_CONFIG_F_SECRET,
        "PostgreSQL URL (postgresql://user:password@host:port/db) or conninfo; empty = the "
        "private cluster of `tasker dev`"),
    KEY("database.pool_size", INT, database.pool_size, "8", 1, 200, NULL,
        "TASKER_DATABASE_POOL_SIZE", NULL, 0, "database connections per process"),

    KEY("server.bind", STRING, server.bind, "0.0.0.0", 0, 0, NULL, "TASKER_SERVER_BIND", NULL, 0,
        "address the REST API listens on (TASKER_WEB_BIND_ADDRESS=host:port sets bind and port)"),
    KEY("server.port", INT, server.port, "8080", 0, 65535, NULL, "TASKER_SERVER_PORT", NULL, 0,
        "port of the REST API; 0 = any free port"),
    KEY("server.max_body_bytes", INT, server.max_body_bytes, "1048576", 1024, 67108864, NULL,
        "TASKER_SERVER_MAX_BODY_BYTES", NULL, R, "largest request body accepted"),
    KEY("server.request_timeout_ms", INT, server.request_timeout_ms, "30000", 100, 600000, NULL,
        "TASKER_SERVER_REQUEST_TIMEOUT_MS", NULL, 0,
        "an idle client connection is closed after this long"),
    KEY("server.max_wait_ms", INT, server.max_wait_ms, "60000", 0, 600000, NULL,
        "TASKER_SERVER_MAX_WAIT_MS", NULL, R,
        "upper bound for wait_ms on the task endpoints; 0 = never wait"),
    KEY("server.max_batch_tasks", INT, server.max_batch_tasks, "1000", 1, 100000, NULL,
        "TASKER_SERVER_MAX_BATCH_TASKS", NULL, R,
        "most tasks in one POST /v1/tasks/batch (server.max_body_bytes bounds its size too)"),
    KEY("server.config_endpoint_enabled", BOOL, server.config_endpoint_enabled, "false", 0, 0, NULL,
        "TASKER_SERVER_CONFIG_ENDPOINT_ENABLED", NULL, R,
        "serve the effective configuration (passwords masked) on the REST API"),

    KEY("orchestration.mode", ENUM, orchestration.mode, "hybrid", 0, 0, mode_choices,
        "TASKER_ORCHESTRATION_MODE", NULL, 0,
        "how orchestration learns of step results: notifications with polling as fallback "
        "(hybrid), notifications only (event_driven) or polling only (polling)"),
    KEY("orchestration.poll_interval_ms", INT, orchestration.poll_interval_ms, "1000", 10, 600000,
        NULL, "TASKER_ORCHESTRATION_POLL_INTERVAL_MS", NULL, R,
        "result polling period: the fallback in hybrid mode, the only source in polling mode"),
    KEY("orchestration.result_batch_size", INT, orchestration.result_batch_size, "20", 1, 1000,
        NULL, "TASKER_ORCHESTRATION_RESULT_BATCH_SIZE", NULL, R,
        "step results processed per batch"),
    KEY("orchestration.sweep_interval_ms", INT, orchestration.sweep_interval_ms, "5000", 100,
        3600000, NULL, "TASKER_ORCHESTRATION_SWEEP_INTERVAL_MS", NULL, R,
        "period of the sweep that finds expired step leases and elapsed retries (stuck tasks "
        "and lost messages: every tenth of stuck_task_seconds)"),
    KEY("orchestration.stuck_task_seconds", INT, orchestration.stuck_task_seconds, "300", 1, 86400,
        NULL, "TASKER_ORCHESTRATION_STUCK_TASK_SECONDS", NULL, R,
        "a non-terminal task unchanged this long, none of whose steps is queued, running "
        "or waiting for a retry, is evaluated again (checked every tenth of it, at most "
        "every minute)"),

    KEY("backoff.base_seconds", DOUBLE, backoff.base_seconds, "1.0", 0, 3600, NULL,
        "TASKER_BACKOFF_BASE_SECONDS", NULL, R, "delay before the first retry of a failed step"),
    KEY("backoff.multiplier", DOUBLE, backoff.multiplier, "2.0", 1, 10, NULL,
        "TASKER_BACKOFF_MULTIPLIER", NULL, R, "each further retry waits this many times longer"),
    KEY("backoff.max_seconds", DOUBLE, backoff.max_seconds, "60.0", 0, 86400, NULL,
        "TASKER_BACKOFF_MAX_SECONDS", NULL, R, "cap on one retry delay"),
    KEY("backoff.jitter", DOUBLE, backoff.jitter, "0.15", 0, 1, NULL, "TASKER_BACKOFF_JITTER", NULL,
        R, "random spread of each delay as a fraction (0.15 = up to 15% either way)"),

    KEY("worker.id", STRING, worker.id, "", 0, 0, NULL, "TASKER_WORKER_ID", NULL,
        TK_CONFIG_F_HOST_PID, "name of this worker in leases and logs; empty = <hostname>-<pid>"),
    KEY("worker.bind", STRING, worker.bind, "0.0.0.0", 0, 0, NULL, "TASKER_WORKER_BIND", NULL, 0,
        "address of the worker's HTTP endpoint (health)"),
    KEY("worker.port", INT, worker.port, "8081", 0, 65535, NULL, "TASKER_WORKER_PORT", NULL, 0,
        "port of the worker's HTTP endpoint; 0 = any free port"),
    KEY("worker.mode", ENUM, worker.mode, "hybrid", 0, 0, mode_choices, "TASKER_WORKER_MODE", NULL,
        0,
        "how workers learn of ready steps: notifications with polling as fallback (hybrid), "
        "notifications only (event_driven) or polling only (polling)"),
    KEY("worker.poll_interval_ms", INT, worker.poll_interval_ms, "1000", 10, 600000, NULL,
        "TASKER_WORKER_POLL_INTERVAL_MS", NULL, R,
        "step polling period: the fallback in hybrid mode, the only source in polling mode"),
    KEY("worker.batch_size", INT, worker.batch_size, "10", 1, 1000, NULL,
        "TASKER_WORKER_BATCH_SIZE", NULL, R, "steps claimed at most per read of a queue"),
    KEY("worker.max_concurrent_handlers", INT, worker.max_concurrent_handlers, "10", 1, 1024, NULL,
        "TASKER_WORKER_MAX_CONCURRENT_HANDLERS", NULL, 0,
        "step handlers one worker runs at the same time"),
    KEY("worker.handler_timeout_ms", INT, worker.handler_timeout_ms, "30000", 1, 86400000, NULL,
        "TASKER_WORKER_HANDLER_TIMEOUT_MS", NULL, R,
        "time limit for one handler run; a step that exceeds it fails and may be retried"),
    KEY("worker.lease_seconds", INT, worker.lease_seconds, "30", 2, 86400, NULL,
        "TASKER_WORKER_LEASE_SECONDS", NULL, 0,
        "a claimed step whose lease is not renewed for this long is given to another worker"),
    KEY("worker.heartbeat_interval_ms", INT, worker.heartbeat_interval_ms, "10000", 100, 3600000,
        NULL, "TASKER_WORKER_HEARTBEAT_INTERVAL_MS", NULL, 0,
        "how often a worker renews the leases of its running steps; must be below lease_seconds"),
    KEY("worker.templates", STRING, worker.templates, "", 0, 0, NULL, "TASKER_WORKER_TEMPLATES",
        "TASKER_TEMPLATE_PATH", 0,
        "task template file or directory registered at start; empty = none"),
    KEY("worker.plugins", LIST, worker.plugins, "", 0, 0, NULL, "TASKER_WORKER_PLUGINS", NULL, 0,
        "handler plugins (shared objects) to load; colon-separated in the environment"),

    KEY("log.level", ENUM, log.level, "info", 0, 0, level_choices, "TASKER_LOG_LEVEL", NULL, R,
        "least severe level written: error, warn, info, debug or trace"),

    KEY("client.url", STRING, client.url, "http://localhost:8080", 0, 0, NULL, "TASKER_CLIENT_URL",
        "TASKER_URL", 0, "REST API the tasker command line talks to"),
};

#undef KEY
#undef R

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(NKEYS <= TK_CONFIG_MAX_KEYS, "raise TK_CONFIG_MAX_KEYS");
_Static_assert(sizeof(tk_config_mode_t) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(tk_log_level_t) == sizeof(int), "enum fields are stored as int");

#define BIND_ADDRESS_ENV "TASKER_WEB_BIND_ADDRESS"
#define MAX_FILE_BYTES   (4 * 1024 * 1024)
#define MAX_EXPAND_DEPTH 8

const tk_config_key_t *tk_config_keys(size_t *count)
{
    if (count != NULL)
        *count = NKEYS;
    return keys;
}

static const tk_config_key_t *find_key(const char *key, size_t *idx)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].key, key) == 0) {
            if (idx != NULL)
                *idx = i;
            return &keys[i];
        }
    }
    return NULL;
}

/* Index of a key the code itself names (always in the table). */
static size_t idx_of(const char *key)
{
    size_t idx = 0;
    find_key(key, &idx);
    return idx;
}

const tk_config_key_t *tk_config_key_find(const char *key)
{
    return key == NULL ? NULL : find_key(key, NULL);
}

const char *tk_config_type_name(tk_config_type_t type)
{
    switch (type) {
    case TK_CONFIG_STRING:
        return "string";
    case TK_CONFIG_INT:
        return "int";
    case TK_CONFIG_DOUBLE:
        return "number";
    case TK_CONFIG_BOOL:
        return "bool";
    case TK_CONFIG_ENUM:
        return "enum";
    case TK_CONFIG_LIST:
        return "list";
    }
    return "unknown";
}

/* True if some key lies under `path` ("worker" for "worker.port"). */
static bool is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NKEYS; i++) {
        if (strncmp(keys[i].key, path, n) == 0 && keys[i].key[n] == '.')
            return true;
    }
    return false;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[128], cur[128];
    if (la >= 128 || lb >= 128)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
    }
    return prev[lb];
}

/* The key closest to a misspelled one, or NULL when none is close. */
static const char *suggest_key(const char *path)
{
    const char *best = NULL;
    size_t best_d = 4; /* suggest at distance 3 or less */
    for (size_t i = 0; i < NKEYS; i++) {
        size_t d = edit_distance(path, keys[i].key);
        if (d < best_d) {
            best_d = d;
            best = keys[i].key;
        }
    }
    return best;
}

/* ---- Small helpers: growing strings, lists ---- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sb_t;

static void sb_addn(sb_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_add(sb_t *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_addc(sb_t *b, char ch)
{
    sb_addn(b, &ch, 1);
}

static const char *sb_str(const sb_t *b)
{
    return b->p != NULL ? b->p : "";
}

/* Take the built string (a malloc'd "" when empty); NULL when out of memory. */
static char *sb_take(sb_t *b)
{
    char *s = b->oom ? NULL : (b->p != NULL ? b->p : strdup(""));
    if (b->oom)
        free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    return s;
}

static void list_free(tk_config_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int list_push(tk_config_list_t *l, const char *s, size_t n)
{
    char **items = realloc(l->items, (l->count + 1) * sizeof(*items));
    if (items == NULL)
        return TK_ENOMEM;
    l->items = items;
    char *copy = strndup(s, n);
    if (copy == NULL)
        return TK_ENOMEM;
    l->items[l->count++] = copy;
    return TK_OK;
}

/* Split "a:b::c" into a, b, c (empty items dropped). */
static int list_split(const char *text, tk_config_list_t *out)
{
    const char *p = text;
    while (*p != '\0') {
        size_t n = strcspn(p, ":");
        if (n > 0 && list_push(out, p, n) != TK_OK) {
            list_free(out);
            return TK_ENOMEM;
        }
        p += n;
        if (*p == ':')
            p++;
    }
    return TK_OK;
}

static char *host_pid(void)
{
    char host[256];
    char buf[320];
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, sizeof(buf), "%s-%ld", host, (long)getpid());
    return strdup(buf);
}

/* ---- Parsing one value ---- */

/* A parsed value not yet stored in the config, so a bad value leaves the config unchanged. */
typedef struct {
    int i;
    double d;
    bool b;
    char *s;
    tk_config_list_t list;
} parsed_t;

static void parsed_free(parsed_t *v)
{
    free(v->s);
    v->s = NULL;
    list_free(&v->list);
}

static void origin_text(const tk_config_origin_t *o, char *buf, size_t size)
{
    switch (o->source) {
    case TK_CONFIG_SRC_FILE:
        snprintf(buf, size, "file %s:%d", o->name, o->line);
        break;
    case TK_CONFIG_SRC_ENV:
        snprintf(buf, size, "env %s", o->name);
        break;
    case TK_CONFIG_SRC_SET:
        snprintf(buf, size, "set");
        break;
    default:
        snprintf(buf, size, "default");
        break;
    }
}

/* Fill err with a message about a value, prefixed by where the value came from. */
__attribute__((format(printf, 4, 5))) static int
value_error(tk_error_t *err, int code, const tk_config_origin_t *o, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    switch (o->source) {
    case TK_CONFIG_SRC_FILE:
        return tk_error_set(err, code, "%s: line %d: %s", o->name, o->line, msg);
    case TK_CONFIG_SRC_ENV:
        return tk_error_set(err, code, "environment %s: %s", o->name, msg);
    case TK_CONFIG_SRC_DEFAULT:
        return tk_error_set(err, code, "built-in default: %s", msg);
    default:
        return tk_error_set(err, code, "%s", msg);
    }
}

static int oom_error(tk_error_t *err)
{
    return tk_error_set(err, TK_ENOMEM, "could not store a setting: out of memory");
}

static bool parse_double_text(const char *s, double *out)
{
    if (*s == '\0')
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (strchr("0123456789.eE+-", *p) == NULL)
            return false; /* no hex, inf, nan or blanks */
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_bool_text(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* "hybrid, event_driven or polling" */
static void choices_text(const tk_config_choice_t *ch, char *buf, size_t size)
{
    size_t n = 0, total = 0;
    for (const tk_config_choice_t *c = ch; c->name != NULL; c++)
        total += !c->alias;
    buf[0] = '\0';
    for (const tk_config_choice_t *c = ch; c->name != NULL; c++) {
        if (c->alias)
            continue;
        size_t used = strlen(buf);
        const char *sep = n == 0 ? "" : (n + 1 == total ? " or " : ", ");
        snprintf(buf + used, size - used, "%s%s", sep, c->name);
        n++;
    }
}

static const char *choice_name(const tk_config_choice_t *ch, int value)
{
    for (const tk_config_choice_t *c = ch; c->name != NULL; c++) {
        if (!c->alias && c->value == value)
            return c->name;
    }
    return "?";
}

/* Parse `text` for key `k` into `out` (to be released with parsed_free or stored by commit).
 * `o` only names the source in messages. */
static int parse_value(const tk_config_key_t *k, const char *text, const tk_config_origin_t *o,
                       parsed_t *out, tk_error_t *err)
{
    memset(out, 0, sizeof(*out));
    switch (k->type) {
    case TK_CONFIG_STRING:
        out->s = (text[0] == '\0' && (k->flags & TK_CONFIG_F_HOST_PID)) ? host_pid() : strdup(text);
        return out->s != NULL ? TK_OK : oom_error(err);
    case TK_CONFIG_INT: {
        int64_t v;
        if (tk_parse_i64(text, (int64_t)k->min, (int64_t)k->max, &v) != TK_OK)
            return value_error(err, TK_EINVAL, o,
                               "%s must be an integer between %.0f and %.0f, got \"%.200s\"",
                               k->key, k->min, k->max, text);
        out->i = (int)v;
        return TK_OK;
    }
    case TK_CONFIG_DOUBLE:
        if (!parse_double_text(text, &out->d) || out->d < k->min || out->d > k->max)
            return value_error(err, TK_EINVAL, o,
                               "%s must be a number between %g and %g, got \"%.200s\"", k->key,
                               k->min, k->max, text);
        return TK_OK;
    case TK_CONFIG_BOOL:
        if (!parse_bool_text(text, &out->b))
            return value_error(err, TK_EINVAL, o, "%s must be true or false, got \"%.200s\"",
                               k->key, text);
        return TK_OK;
    case TK_CONFIG_ENUM: {
        for (const tk_config_choice_t *c = k->choices; c->name != NULL; c++) {
            if (strcasecmp(text, c->name) == 0) {
                out->i = c->value;
                return TK_OK;
            }
        }
        char use[200];
        choices_text(k->choices, use, sizeof(use));
        /* An environment variable already names the key. */
        if (o->source == TK_CONFIG_SRC_ENV)
            return value_error(err, TK_EINVAL, o, "unknown value \"%.200s\" (use %s)", text, use);
        return value_error(err, TK_EINVAL, o, "%s: unknown value \"%.200s\" (use %s)", k->key, text,
                           use);
    }
    case TK_CONFIG_LIST:
        return list_split(text, &out->list) == TK_OK ? TK_OK : oom_error(err);
    }
    return tk_error_set(err, TK_EINVAL, "%s: unsupported type", k->key);
}

/* Store a parsed value (taking its memory) and its origin. */
static void commit(tk_config_t *c, size_t idx, parsed_t *v, const tk_config_origin_t *o)
{
    const tk_config_key_t *k = &keys[idx];
    char *f = (char *)c + k->offset;
    switch (k->type) {
    case TK_CONFIG_STRING: {
        char **s = (char **)(void *)f;
        free(*s);
        *s = v->s;
        v->s = NULL;
        break;
    }
    case TK_CONFIG_INT:
    case TK_CONFIG_ENUM:
        memcpy(f, &v->i, sizeof(int));
        break;
    case TK_CONFIG_DOUBLE:
        memcpy(f, &v->d, sizeof(double));
        break;
    case TK_CONFIG_BOOL:
        memcpy(f, &v->b, sizeof(bool));
        break;
    case TK_CONFIG_LIST: {
        tk_config_list_t *l = (tk_config_list_t *)(void *)f;
        list_free(l);
        *l = v->list;
        v->list.items = NULL;
        v->list.count = 0;
        break;
    }
    }
    c->origin[idx] = *o;
}

static int apply_text(tk_config_t *c, size_t idx, const char *text, const tk_config_origin_t *o,
                      tk_error_t *err)
{
    parsed_t v;
    int rc = parse_value(&keys[idx], text, o, &v, err);
    if (rc != TK_OK) {
        parsed_free(&v);
        return rc;
    }
    commit(c, idx, &v, o);
    return TK_OK;
}

/* ---- Init, free, set ---- */

int tk_config_init(tk_config_t *c)
{
    memset(c, 0, sizeof(*c));
    tk_config_origin_t o = {TK_CONFIG_SRC_DEFAULT, NULL, 0};
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = apply_text(c, i, keys[i].def, &o, NULL);
        if (rc != TK_OK)
            return rc; /* out of memory (the defaults themselves are checked by a test) */
    }
    return TK_OK;
}

void tk_config_free(tk_config_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        char *f = (char *)c + keys[i].offset;
        if (keys[i].type == TK_CONFIG_STRING)
            free(*(char **)(void *)f);
        else if (keys[i].type == TK_CONFIG_LIST)
            list_free((tk_config_list_t *)(void *)f);
    }
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    memset(c, 0, sizeof(*c));
}

static int unknown_key(tk_error_t *err, const tk_config_origin_t *o, const char *key)
{
    const char *hint = suggest_key(key);
    if (hint != NULL)
        return value_error(err, TK_EINVAL, o, "unknown key \"%.200s\" (did you mean \"%s\"?)", key,
                           hint);
    return value_error(err, TK_EINVAL, o, "unknown key \"%.200s\"", key);
}

int tk_config_set(tk_config_t *c, const char *key, const char *value, tk_error_t *err)
{
    tk_config_origin_t o = {TK_CONFIG_SRC_SET, NULL, 0};
    size_t idx;
    if (key == NULL || value == NULL)
        return tk_error_set(err, TK_EINVAL, "cannot set a setting: no key or value");
    if (find_key(key, &idx) == NULL)
        return unknown_key(err, &o, key);
    return apply_text(c, idx, value, &o, err);
}

/* ---- Environment ---- */

static int apply_env(tk_config_t *c, size_t idx, const char *name, tk_error_t *err)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return TK_OK;
    tk_config_origin_t o = {TK_CONFIG_SRC_ENV, name, 0};
    return apply_text(c, idx, v, &o, err);
}

/* TASKER_WEB_BIND_ADDRESS: Tasker's "host:port" ("[::1]:8080" for IPv6). */
static int apply_bind_address(tk_config_t *c, const char *v, tk_error_t *err)
{
    tk_config_origin_t o = {TK_CONFIG_SRC_ENV, BIND_ADDRESS_ENV, 0};
    char host[256];
    const char *port;
    size_t host_len;
    const char *host_start = v;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        host_start = v + 1;
        host_len = (size_t)(close - host_start);
        port = close + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (colon == NULL || memchr(v, ':', (size_t)(colon - v)) != NULL)
            goto bad;
        host_len = (size_t)(colon - v);
        port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(host) || port[0] == '\0')
        goto bad;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';

    size_t bind_idx = idx_of("server.bind"), port_idx = idx_of("server.port");
    parsed_t pv, bv;
    int rc = parse_value(&keys[port_idx], port, &o, &pv, err);
    if (rc != TK_OK) {
        parsed_free(&pv);
        return rc;
    }
    rc = parse_value(&keys[bind_idx], host, &o, &bv, err);
    if (rc != TK_OK) {
        parsed_free(&pv);
        parsed_free(&bv);
        return rc;
    }
    commit(c, port_idx, &pv, &o);
    commit(c, bind_idx, &bv, &o);
    return TK_OK;
bad:
    return value_error(err, TK_EINVAL, &o, "expected \"host:port\", got \"%.200s\"", v);
}

int tk_config_load_env(tk_config_t *c, tk_error_t *err)
{
    const char *bind = getenv(BIND_ADDRESS_ENV);
    if (bind != NULL && bind[0] != '\0') {
        int rc = apply_bind_address(c, bind, err);
        if (rc != TK_OK)
            return rc;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = TK_OK;
        if (keys[i].env_alias != NULL)
            rc = apply_env(c, i, keys[i].env_alias, err);
        if (rc == TK_OK)
            rc = apply_env(c, i, keys[i].env, err);
        if (rc != TK_OK)
            return rc;
    }
    return TK_OK;
}

/* ---- The YAML file ---- */

typedef struct {
    tk_config_t *c;
    yaml_document_t *doc;
    const char *name;                /* owned by c->files */
    int line_of[TK_CONFIG_MAX_KEYS]; /* where this file set each key, 0 = not yet */
    tk_error_t *err;
} walk_t;

static int node_line(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

/* Append s[0..n) to b with ${VAR} and ${VAR:-default} expanded (shell semantics: the default
 * applies when VAR is unset or empty; an unset VAR without default expands to ""). */
static int expand(const char *s, size_t n, sb_t *b, int depth, const tk_config_key_t *k,
                  const tk_config_origin_t *o, tk_error_t *err)
{
    size_t i = 0;
    if (depth > MAX_EXPAND_DEPTH)
        return value_error(err, TK_EINVAL, o, "variable references in %s nested too deeply",
                           k->key);
    while (i < n) {
        if (s[i] != '$' || i + 1 >= n || s[i + 1] != '{') {
            sb_addc(b, s[i++]);
            continue;
        }
        size_t start = i + 2, j = start;
        while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_'))
            j++;
        char name[128];
        size_t name_len = j - start;
        if (j >= n)
            return value_error(err, TK_EINVAL, o, "unterminated \"${\" in the value of %s", k->key);
        if (name_len == 0 || name_len >= sizeof(name) || isdigit((unsigned char)s[start]) ||
            (s[j] != '}' && (s[j] != ':' || j + 1 >= n || s[j + 1] != '-')))
            return value_error(err, TK_EINVAL, o,
                               "bad variable reference in the value of %s (use ${NAME} or "
                               "${NAME:-default})",
                               k->key);
        memcpy(name, s + start, name_len);
        name[name_len] = '\0';
        const char *env = getenv(name);
        if (s[j] == '}') {
            if (env != NULL)
                sb_add(b, env);
            i = j + 1;
            continue;
        }
        /* ${NAME:-default}: find the matching brace, allowing ${...} inside the default. */
        size_t d = j + 2, e = d;
        int open = 1;
        while (e < n) {
            if (s[e] == '$' && e + 1 < n && s[e + 1] == '{') {
                open++;
                e += 2;
                continue;
            }
            if (s[e] == '}' && --open == 0)
                break;
            e++;
        }
        if (e >= n)
            return value_error(err, TK_EINVAL, o, "unterminated \"${\" in the value of %s", k->key);
        if (env != NULL && env[0] != '\0') {
            sb_add(b, env);
        } else {
            int rc = expand(s + d, e - d, b, depth + 1, k, o, err);
            if (rc != TK_OK)
                return rc;
        }
        i = e + 1;
    }
    return TK_OK;
}

/* The expanded text of a scalar node (malloc'd) into *out. */
static int scalar_text(walk_t *w, const tk_config_key_t *k, const yaml_node_t *n,
                       const tk_config_origin_t *o, char **out)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    *out = NULL;
    if (strlen(s) != len)
        return value_error(w->err, TK_EINVAL, o, "the value of %s contains a NUL character",
                           k->key);
    sb_t b = {0};
    int rc = expand(s, len, &b, 0, k, o, w->err);
    if (rc != TK_OK) {
        free(b.p);
        return rc;
    }
    *out = sb_take(&b);
    return *out != NULL ? TK_OK : oom_error(w->err);
}

/* Apply the value node of key `idx`; `line` (the key's) is the origin of the value. */
static int apply_node(walk_t *w, size_t idx, const yaml_node_t *vn, int line)
{
    const tk_config_key_t *k = &keys[idx];
    tk_config_origin_t o = {TK_CONFIG_SRC_FILE, w->name, line};
    parsed_t v;
    int rc;
    memset(&v, 0, sizeof(v));
    if (vn->type == YAML_SCALAR_NODE) {
        char *text;
        rc = scalar_text(w, k, vn, &o, &text);
        if (rc != TK_OK)
            return rc;
        rc = parse_value(k, text, &o, &v, w->err);
        free(text);
    } else if (vn->type == YAML_SEQUENCE_NODE) {
        if (k->type != TK_CONFIG_LIST)
            return value_error(w->err, TK_EINVAL, &o, "%s must be a single value, got a list",
                               k->key);
        rc = TK_OK;
        for (yaml_node_item_t *it = vn->data.sequence.items.start;
             rc == TK_OK && it < vn->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(w->doc, *it);
            char *text = NULL;
            tk_config_origin_t io = o;
            if (item != NULL)
                io.line = node_line(item);
            if (item == NULL || item->type != YAML_SCALAR_NODE) {
                rc = value_error(w->err, TK_EINVAL, &io, "%s must be a list of strings", k->key);
                break;
            }
            rc = scalar_text(w, k, item, &io, &text);
            if (rc == TK_OK && text[0] != '\0' && list_push(&v.list, text, strlen(text)) != TK_OK)
                rc = oom_error(w->err);
            free(text);
        }
    } else {
        rc = value_error(w->err, TK_EINVAL, &o, "%s must be %s, got a mapping", k->key,
                         k->type == TK_CONFIG_LIST ? "a list of strings" : "a single value");
    }
    if (rc != TK_OK) {
        parsed_free(&v);
        return rc;
    }
    commit(w->c, idx, &v, &o);
    return TK_OK;
}

static int walk_mapping(walk_t *w, const yaml_node_t *map, const char *prefix)
{
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(w->doc, pr->value);
        if (kn == NULL || vn == NULL)
            continue;
        tk_config_origin_t ko = {TK_CONFIG_SRC_FILE, w->name, node_line(kn)};
        if (kn->type != YAML_SCALAR_NODE)
            return value_error(w->err, TK_EINVAL, &ko, "keys must be plain names");
        const char *name = (const char *)kn->data.scalar.value;
        char path[128];
        int n = prefix != NULL ? snprintf(path, sizeof(path), "%s.%s", prefix, name)
                               : snprintf(path, sizeof(path), "%s", name);
        if (n < 0 || (size_t)n >= sizeof(path))
            return unknown_key(w->err, &ko, path);
        size_t idx;
        if (find_key(path, &idx) != NULL) {
            if (w->line_of[idx] != 0)
                return value_error(w->err, TK_EINVAL, &ko,
                                   "duplicate key \"%s\" (first set on line %d)", path,
                                   w->line_of[idx]);
            w->line_of[idx] = ko.line;
            int rc = apply_node(w, idx, vn, ko.line);
            if (rc != TK_OK)
                return rc;
            continue;
        }
        if (!is_section(path))
            return unknown_key(w->err, &ko, path);
        if (vn->type == YAML_MAPPING_NODE) {
            int rc = walk_mapping(w, vn, path);
            if (rc != TK_OK)
                return rc;
        } else if (vn->type != YAML_SCALAR_NODE || vn->data.scalar.length != 0) {
            tk_config_origin_t vo = {TK_CONFIG_SRC_FILE, w->name, node_line(vn)};
            return value_error(w->err, TK_EINVAL, &vo, "\"%s\" must be a mapping of settings",
                               path);
        } /* else an empty section ("worker:" and nothing under it) */
    }
    return TK_OK;
}

static int syntax_error(const char *name, const yaml_parser_t *p, tk_error_t *err)
{
    if (p->error == YAML_MEMORY_ERROR)
        return tk_error_set(err, TK_ENOMEM, "could not parse %s: out of memory", name);
    int line = (int)p->problem_mark.line + 1;
    const char *problem = p->problem != NULL ? p->problem : "invalid YAML";
    if (p->context != NULL)
        return tk_error_set(err, TK_EPARSE, "%s: line %d: syntax error: %s (%s)", name, line,
                            problem, p->context);
    return tk_error_set(err, TK_EPARSE, "%s: line %d: syntax error: %s", name, line, problem);
}

/* Keep a copy of a file name for the origins that will point to it. */
static const char *keep_name(tk_config_t *c, const char *name)
{
    char **files = realloc(c->files, (c->nfiles + 1) * sizeof(*files));
    if (files == NULL)
        return NULL;
    c->files = files;
    char *copy = strdup(name);
    if (copy == NULL)
        return NULL;
    c->files[c->nfiles++] = copy;
    return copy;
}

int tk_config_load_yaml(tk_config_t *c, const char *name, const char *text, size_t len,
                        tk_error_t *err)
{
    if (name == NULL)
        name = "config";
    const char *kept = keep_name(c, name);
    if (kept == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not load %s: out of memory", name);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return tk_error_set(err, TK_ENOMEM, "could not load %s: out of memory", kept);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = syntax_error(kept, &parser, err);
        yaml_parser_delete(&parser);
        return rc;
    }
    int rc = TK_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL) {
        walk_t w = {.c = c, .doc = &doc, .name = kept, .err = err};
        if (root->type == YAML_MAPPING_NODE) {
            rc = walk_mapping(&w, root, NULL);
        } else if (root->type != YAML_SCALAR_NODE || root->data.scalar.length != 0) {
            tk_config_origin_t o = {TK_CONFIG_SRC_FILE, kept, node_line(root)};
            rc = value_error(err, TK_EINVAL, &o,
                             "expected a mapping of sections (database:, server:, ...)");
        }
        if (rc == TK_OK) {
            yaml_document_t next;
            if (!yaml_parser_load(&parser, &next)) {
                rc = syntax_error(kept, &parser, err);
            } else {
                yaml_node_t *more = yaml_document_get_root_node(&next);
                if (more != NULL) {
                    tk_config_origin_t o = {TK_CONFIG_SRC_FILE, kept, node_line(more)};
                    rc = value_error(err, TK_EINVAL, &o, "only one YAML document is allowed");
                }
                yaml_document_delete(&next);
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int tk_config_load_file(tk_config_t *c, const char *path, tk_error_t *err)
{
    if (path == NULL)
        return tk_error_set(err, TK_EINVAL, "cannot read a config file: no path");
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tk_error_set(err, errno == ENOENT ? TK_ENOTFOUND : TK_EIO,
                            "could not read config file \"%s\": %s", path, strerror(errno));
    sb_t b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= MAX_FILE_BYTES)
        sb_addn(&b, chunk, n);
    int rc = TK_OK;
    if (ferror(f))
        rc = tk_error_set(err, TK_EIO, "could not read config file \"%s\": %s", path,
                          strerror(errno));
    else if (b.oom)
        rc = tk_error_set(err, TK_ENOMEM, "could not read config file \"%s\": out of memory", path);
    else if (b.len > MAX_FILE_BYTES)
        rc = tk_error_set(err, TK_EINVAL, "could not read config file \"%s\": larger than %d bytes",
                          path, MAX_FILE_BYTES);
    fclose(f);
    if (rc == TK_OK)
        rc = tk_config_load_yaml(c, path, sb_str(&b), b.len, err);
    free(b.p);
    return rc;
}

/* ---- Validation and the usual sequence ---- */

int tk_config_validate(const tk_config_t *c, tk_error_t *err)
{
    char a[300], b[300];
    size_t hb = idx_of("worker.heartbeat_interval_ms"), lease = idx_of("worker.lease_seconds");
    size_t base = idx_of("backoff.base_seconds"), max = idx_of("backoff.max_seconds");
    if ((long long)c->worker.heartbeat_interval_ms >= (long long)c->worker.lease_seconds * 1000) {
        origin_text(&c->origin[hb], a, sizeof(a));
        origin_text(&c->origin[lease], b, sizeof(b));
        return tk_error_set(err, TK_EINVAL,
                            "worker.heartbeat_interval_ms (%d, %s) must be less than "
                            "worker.lease_seconds (%d, %s) in milliseconds",
                            c->worker.heartbeat_interval_ms, a, c->worker.lease_seconds, b);
    }
    if (c->backoff.base_seconds > c->backoff.max_seconds) {
        origin_text(&c->origin[base], a, sizeof(a));
        origin_text(&c->origin[max], b, sizeof(b));
        return tk_error_set(err, TK_EINVAL,
                            "backoff.base_seconds (%g, %s) must not exceed backoff.max_seconds "
                            "(%g, %s)",
                            c->backoff.base_seconds, a, c->backoff.max_seconds, b);
    }
    return TK_OK;
}

int tk_config_load(tk_config_t *c, const char *path, tk_error_t *err)
{
    int rc = tk_config_init(c);
    if (rc != TK_OK)
        return tk_error_set(err, rc, "could not load the configuration: out of memory");
    if (path == NULL) {
        const char *env = getenv("TASKER_CONFIG_PATH");
        if (env != NULL && env[0] != '\0')
            path = env;
    }
    if (path != NULL) {
        rc = tk_config_load_file(c, path, err);
        if (rc != TK_OK)
            return rc;
    }
    rc = tk_config_load_env(c, err);
    if (rc != TK_OK)
        return rc;
    return tk_config_validate(c, err);
}

/* ---- Reading back: origin, get, print, describe ---- */

const tk_config_origin_t *tk_config_origin(const tk_config_t *c, const char *key)
{
    size_t idx;
    if (key == NULL || find_key(key, &idx) == NULL)
        return NULL;
    return &c->origin[idx];
}

/* Shortest text that reads back as the same double, always with a '.' or exponent. */
static void format_double(double d, char *buf, size_t size)
{
    int digits = fabs(d) >= 1.0 ? (int)floor(log10(fabs(d))) + 1 : 1; /* avoid "6e+01" */
    for (int prec = digits < 17 ? digits : 17; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".e") == NULL) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, ".0");
    }
}

static void add_quoted(sb_t *b, const char *s)
{
    sb_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            sb_addc(b, '\\');
            sb_addc(b, (char)*p);
        } else if (*p == '\n') {
            sb_add(b, "\\n");
        } else if (*p == '\t') {
            sb_add(b, "\\t");
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
            sb_add(b, esc);
        } else {
            sb_addc(b, (char)*p);
        }
    }
    sb_addc(b, '"');
}

/* Skip a conninfo or query-string value starting at p; return its end. */
static const char *skip_secret_value(const char *p)
{
    if (*p == '\'') {
        p++;
        while (*p != '\0' && *p != '\'') {
            if (*p == '\\' && p[1] != '\0')
                p++;
            p++;
        }
        return *p == '\'' ? p + 1 : p;
    }
    while (*p != '\0' && *p != '&' && *p != '#' && !isspace((unsigned char)*p))
        p++;
    return p;
}

/* Append `s` with the password of a URL (user:PASSWORD@) and any password=VALUE (query string
 * or conninfo) replaced by "***". */
static void add_masked(sb_t *b, const char *s)
{
    const char *p = s;
    const char *scheme = strstr(s, "://");
    if (scheme != NULL) {
        const char *auth = scheme + 3;
        size_t auth_len = strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *q = auth; q < auth + auth_len; q++) {
            if (*q == '@')
                at = q;
        }
        const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) {
            sb_addn(b, s, (size_t)(colon + 1 - s));
            sb_add(b, "***");
            p = at;
        }
    }
    while (*p != '\0') {
        bool boundary = p == s || p[-1] == '?' || p[-1] == '&' || isspace((unsigned char)p[-1]);
        if (boundary && strncasecmp(p, "password", 8) == 0) {
            const char *q = p + 8;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ')
                    q++;
                sb_addn(b, p, (size_t)(q - p));
                sb_add(b, "***");
                p = skip_secret_value(q);
                continue;
            }
        }
        sb_addc(b, *p++);
    }
}

/* Append the value of key k: as YAML (quoted strings, flow lists, secrets masked) or as the
 * plain text tk_config_set accepts. */
static void add_value(sb_t *b, const tk_config_t *c, const tk_config_key_t *k, bool yaml)
{
    const char *f = (const char *)c + k->offset;
    char num[64];
    switch (k->type) {
    case TK_CONFIG_STRING: {
        const char *s = *(char *const *)(const void *)f;
        if (s == NULL)
            s = "";
        if (!yaml) {
            sb_add(b, s);
        } else if (k->flags & TK_CONFIG_F_SECRET) {
            sb_t m = {0};
            add_masked(&m, s);
            if (m.oom)
                b->oom = true;
            add_quoted(b, sb_str(&m));
            free(m.p);
        } else {
            add_quoted(b, s);
        }
        break;
    }
    case TK_CONFIG_INT: {
        int v;
        memcpy(&v, f, sizeof(v));
        snprintf(num, sizeof(num), "%d", v);
        sb_add(b, num);
        break;
    }
    case TK_CONFIG_DOUBLE: {
        double d;
        memcpy(&d, f, sizeof(d));
        format_double(d, num, sizeof(num));
        sb_add(b, num);
        break;
    }
    case TK_CONFIG_BOOL: {
        bool v;
        memcpy(&v, f, sizeof(v));
        sb_add(b, v ? "true" : "false");
        break;
    }
    case TK_CONFIG_ENUM: {
        int v;
        memcpy(&v, f, sizeof(v));
        sb_add(b, choice_name(k->choices, v));
        break;
    }
    case TK_CONFIG_LIST: {
        const tk_config_list_t *l = (const tk_config_list_t *)(const void *)f;
        if (yaml)
            sb_addc(b, '[');
        for (size_t i = 0; i < l->count; i++) {
            if (i > 0)
                sb_add(b, yaml ? ", " : ":");
            if (yaml)
                add_quoted(b, l->items[i]);
            else
                sb_add(b, l->items[i]);
        }
        if (yaml)
            sb_addc(b, ']');
        break;
    }
    }
}

int tk_config_get(const tk_config_t *c, const char *key, char *buf, size_t size, tk_error_t *err)
{
    tk_config_origin_t o = {TK_CONFIG_SRC_SET, NULL, 0};
    const tk_config_key_t *k = key != NULL ? find_key(key, NULL) : NULL;
    if (k == NULL)
        return unknown_key(err, &o, key != NULL ? key : "");
    sb_t b = {0};
    add_value(&b, c, k, false);
    int rc = TK_OK;
    if (b.oom)
        rc = tk_error_set(err, TK_ENOMEM, "could not read %s: out of memory", key);
    else if (buf == NULL || b.len >= size)
        rc = tk_error_set(err, TK_EINVAL, "cannot read %s: its value needs %zu bytes", key,
                          b.len + 1);
    else
        memcpy(buf, sb_str(&b), b.len + 1);
    free(b.p);
    return rc;
}

void tk_config_print(const tk_config_t *c, FILE *out)
{
    fputs("# tasker effective configuration; the comment after each value is its source\n", out);
    const char *section = NULL;
    size_t section_len = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const tk_config_key_t *k = &keys[i];
        const char *dot = strchr(k->key, '.');
        size_t len = (size_t)(dot - k->key);
        if (section == NULL || len != section_len || strncmp(section, k->key, len) != 0) {
            fprintf(out, "%.*s:\n", (int)len, k->key);
            section = k->key;
            section_len = len;
        }
        sb_t b = {0};
        sb_add(&b, "  ");
        sb_add(&b, dot + 1);
        sb_add(&b, ": ");
        add_value(&b, c, k, true);
        char src[300];
        origin_text(&c->origin[i], src, sizeof(src));
        fprintf(out, "%-44s  # %s\n", b.oom ? "  (out of memory)" : sb_str(&b), src);
        free(b.p);
    }
}

void tk_config_describe(FILE *out)
{
    fputs("# tasker configuration keys. Precedence, lowest first: default, the YAML file\n"
          "# (--config FILE or TASKER_CONFIG_PATH), environment variables, --set key=value.\n"
          "# File values may use ${VAR} and ${VAR:-default}.\n",
          out);
    for (size_t i = 0; i < NKEYS; i++) {
        const tk_config_key_t *k = &keys[i];
        char range[200] = "";
        if (k->type == TK_CONFIG_INT)
            snprintf(range, sizeof(range), " %.0f..%.0f", k->min, k->max);
        else if (k->type == TK_CONFIG_DOUBLE)
            snprintf(range, sizeof(range), " %g..%g", k->min, k->max);
        else if (k->type == TK_CONFIG_ENUM) {
            char use[180];
            choices_text(k->choices, use, sizeof(use));
            snprintf(range, sizeof(range), " (%s)", use);
        }
        fprintf(out, "\n%s\n    %s%s, default ", k->key, tk_config_type_name(k->type), range);
        if (k->type == TK_CONFIG_STRING)
            fprintf(out, "\"%s\"", k->def);
        else if (k->type == TK_CONFIG_LIST)
            fprintf(out, "[]");
        else
            fputs(k->def, out);
        fprintf(out, "%s\n    env %s", (k->flags & TK_CONFIG_F_RELOADABLE) ? ", reloadable" : "",
                k->env);
        if (k->env_alias != NULL)
            fprintf(out, ", or %s", k->env_alias);
        if (strcmp(k->key, "server.bind") == 0 || strcmp(k->key, "server.port") == 0)
            fprintf(out, ", or %s=host:port", BIND_ADDRESS_ENV);
        fprintf(out, "\n    %s\n", k->description);
    }
}
