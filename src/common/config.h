/*
 * config.h - tasker's configuration: one declarative table of settings (config.c) drives the
 * defaults, the YAML file, the environment overrides, command-line settings, validation, the
 * printed effective configuration and the generated documentation.
 *
 * Layering, lowest to highest: built-in defaults < YAML file (`--config FILE`, else
 * TASKER_CONFIG_PATH) < environment variables < tk_config_set (explicit command-line
 * settings). Every key "section.name" is overridden by the variable TASKER_SECTION_NAME;
 * a few keys also accept a second, lower-precedence name users know from Tasker
 * (DATABASE_URL, TASKER_TEMPLATE_PATH, TASKER_URL), and TASKER_WEB_BIND_ADDRESS="host:port"
 * sets server.bind and server.port. Empty environment variables count as unset; unknown
 * TASKER_* variables are ignored, unknown keys in a file are errors. Scalars in the file may
 * contain ${VAR} and ${VAR:-default}, expanded from the environment when the file is loaded.
 * The sample etc/tasker.yaml lists every key with its default.
 *
 * A tk_config_t owns its strings (do not copy it by value and free both copies): load it
 * once at startup, then share it read-only between threads. Nothing here is thread-safe
 * while a config is being modified.
 */
#ifndef TK_COMMON_CONFIG_H
#define TK_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tasker/error.h"
#include "tasker/log.h"

/* Capacity of the per-key bookkeeping in tk_config_t; the table has fewer keys. */
#define TK_CONFIG_MAX_KEYS 64

/* How orchestration and workers learn about new work. */
typedef enum {
    TK_CONFIG_MODE_HYBRID = 0,       /* notifications, plus polling as a fallback */
    TK_CONFIG_MODE_EVENT_DRIVEN = 1, /* notifications only */
    TK_CONFIG_MODE_POLLING = 2       /* polling only */
} tk_config_mode_t;

/* A list of strings owned by the config (count may be 0, then items is NULL). */
typedef struct tk_config_list_s {
    char **items;
    size_t count;
} tk_config_list_t;

/* Where a value came from. */
typedef enum {
    TK_CONFIG_SRC_DEFAULT = 0,
    TK_CONFIG_SRC_FILE = 1,
    TK_CONFIG_SRC_ENV = 2,
    TK_CONFIG_SRC_SET = 3
} tk_config_source_t;

typedef struct tk_config_origin_s {
    tk_config_source_t source;
    const char *name; /* FILE: file name (owned by the config); ENV: variable name; else NULL */
    int line;         /* FILE: 1-based line of the value; else 0 */
} tk_config_origin_t;

/* The effective configuration. Strings are never NULL after tk_config_init and are owned by
 * the config; read the fields directly, change them only through tk_config_set. */
typedef struct tk_config_s {
    struct {
        char *url;     /* libpq URL or conninfo; "" = the private cluster of `tasker dev` */
        int pool_size; /* connections per process */
    } database;
    struct {
        char *bind; /* REST API listen address */
        int port;   /* 0 = any free port */
        int max_body_bytes;
        int request_timeout_ms;
        int max_wait_ms;     /* upper bound for wait_ms on the task endpoints */
        int max_batch_tasks; /* most tasks in one POST /v1/tasks/batch */
        bool config_endpoint_enabled;
    } server;
    struct {
        tk_config_mode_t mode;
        int poll_interval_ms;  /* result polling: fallback in hybrid mode, only source in polling */
        int result_batch_size; /* step results processed per batch */
        int sweep_interval_ms; /* period of the lease and retry sweep */
        int stuck_task_seconds; /* a task unchanged this long, nothing in flight: evaluated again */
    } orchestration;
    struct {
        double base_seconds; /* first retry delay */
        double multiplier;   /* growth per attempt */
        double max_seconds;  /* cap on one delay */
        double jitter;       /* +- fraction of the delay, 0..1 */
    } backoff;
    struct {
        char *id; /* never empty after loading: "" is replaced by "<hostname>-<pid>" */
        char *bind;
        int port;
        tk_config_mode_t mode;
        int poll_interval_ms;
        int batch_size;
        int max_concurrent_handlers;
        int handler_timeout_ms;
        int lease_seconds;
        int heartbeat_interval_ms; /* validated: < lease_seconds * 1000 */
        char *templates;           /* template file or directory; "" = none */
        tk_config_list_t plugins;  /* handler plugins (shared objects) to load */
    } worker;
    struct {
        tk_log_level_t level;
    } log;
    struct {
        char *url; /* base URL of the REST API, used by the CLI */
    } client;

    /* Private bookkeeping: the origin of each table key (same index) and the file names the
     * origins point to. */
    tk_config_origin_t origin[TK_CONFIG_MAX_KEYS];
    char **files;
    size_t nfiles;
} tk_config_t;

/* ---- The table (read-only; documentation, CLI completion, tests) ---- */

typedef enum {
    TK_CONFIG_STRING,
    TK_CONFIG_INT,
    TK_CONFIG_DOUBLE,
    TK_CONFIG_BOOL,
    TK_CONFIG_ENUM,
    TK_CONFIG_LIST /* YAML sequence of strings; colon-separated in the environment and set */
} tk_config_type_t;

/* One accepted spelling of an enum value. Matching is case-insensitive; aliases (Tasker's
 * spellings) are accepted but never printed. */
typedef struct tk_config_choice_s {
    const char *name;
    int value;
    bool alias;
} tk_config_choice_t;

#define TK_CONFIG_F_RELOADABLE 0x1u /* may change without a restart (for a future reload) */
#define TK_CONFIG_F_SECRET     0x2u /* a URL whose password is masked when printed */
#define TK_CONFIG_F_HOST_PID   0x4u /* "" means "<hostname>-<pid>" */

typedef struct tk_config_key_s {
    const char *key; /* "section.name" */
    tk_config_type_t type;
    size_t offset;                     /* of the field in tk_config_t */
    const char *def;                   /* default, as text parsed like any other value */
    double min, max;                   /* bounds of INT and DOUBLE values */
    const tk_config_choice_t *choices; /* ENUM: terminated by a NULL name */
    const char *env;                   /* TASKER_<KEY>, dots as underscores */
    const char *env_alias;             /* other variable, lower precedence than env; or NULL */
    unsigned flags;                    /* TK_CONFIG_F_* */
    const char *description;           /* one line */
} tk_config_key_t;

/* The table, in documentation order; *count receives its length. Static, thread-safe. */
const tk_config_key_t *tk_config_keys(size_t *count);

/* The entry for `key`, or NULL. Thread-safe. */
const tk_config_key_t *tk_config_key_find(const char *key);

/* Short name of a type ("string", "int", ...). */
const char *tk_config_type_name(tk_config_type_t type);

/* Print every key with its type, bounds or values, default, environment variables and
 * description to `out`: the reference behind `tasker config describe`. */
void tk_config_describe(FILE *out);

/* ---- Building a configuration ---- */

/* Fill `c` (uninitialized memory) with the built-in defaults, worker.id with
 * "<hostname>-<pid>". TK_OK or TK_ENOMEM; either way `c` must be released with
 * tk_config_free. */
int tk_config_init(tk_config_t *c);

/* Apply the YAML file at `path` over `c`. The file is a mapping of sections to mappings of
 * settings ("worker:\n  port: 8081"); dotted keys ("worker.port: 8081") work too. Errors name
 * the file and line: TK_ENOTFOUND (no such file), TK_EIO (unreadable), TK_EPARSE (YAML
 * syntax), TK_EINVAL (unknown or duplicate key, bad value). On failure `c` may hold part of
 * the file: report the error and free it. */
int tk_config_load_file(tk_config_t *c, const char *path, tk_error_t *err);

/* Like tk_config_load_file for YAML text in memory; `name` stands for the file in origins
 * and messages. */
int tk_config_load_yaml(tk_config_t *c, const char *name, const char *text, size_t len,
                        tk_error_t *err);

/* Apply the environment (getenv) over `c`: TASKER_WEB_BIND_ADDRESS first, then each key's
 * alias, then its TASKER_* name. TK_OK, or TK_EINVAL naming the variable. */
int tk_config_load_env(tk_config_t *c, tk_error_t *err);

/* Set `key` from text, as given on the command line (lists colon-separated). Highest
 * precedence. TK_OK, or TK_EINVAL for an unknown key or a bad value (`c` unchanged). Call
 * tk_config_validate afterwards. */
int tk_config_set(tk_config_t *c, const char *key, const char *value, tk_error_t *err);

/* Rules across keys (each value is already within its own bounds): heartbeat interval below
 * the lease, backoff base not above its maximum. TK_OK or TK_EINVAL. */
int tk_config_validate(const tk_config_t *c, tk_error_t *err);

/* The usual sequence: tk_config_init, tk_config_load_file(path, or TASKER_CONFIG_PATH when
 * path is NULL and that is set), tk_config_load_env, tk_config_validate. `c` is
 * uninitialized memory and must be freed with tk_config_free even on failure. Callers with
 * command-line settings call tk_config_set after this and then tk_config_validate again. */
int tk_config_load(tk_config_t *c, const char *path, tk_error_t *err);

/* Release everything `c` owns and zero it. Accepts NULL and a zeroed or freed config. */
void tk_config_free(tk_config_t *c);

/* ---- Reading it back ---- */

/* Origin of `key`'s current value, or NULL for an unknown key. Valid while `c` is. */
const tk_config_origin_t *tk_config_origin(const tk_config_t *c, const char *key);

/* Current value of `key` as text in the form tk_config_set accepts (lists colon-separated,
 * secrets not masked) into buf. TK_OK, or TK_EINVAL for an unknown key or a too small buf. */
int tk_config_get(const tk_config_t *c, const char *key, char *buf, size_t size, tk_error_t *err);

/* Write the effective configuration to `out` as YAML that tk_config_load_file accepts, each
 * value followed by its source: "# default", "# file NAME:LINE", "# env VAR" or "# set".
 * Passwords in secret URLs are printed as "***". */
void tk_config_print(const tk_config_t *c, FILE *out);

#endif
