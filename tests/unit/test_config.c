/*
 * test_config.c - the configuration module: defaults, the YAML file, environment and
 * command-line layering, ${VAR} expansion, the exact error messages of every type, unknown
 * and duplicate keys, YAML syntax errors, TASKER_WEB_BIND_ADDRESS, Tasker's mode spellings,
 * cross-key validation, printing with masked passwords, the table's own rules and the
 * etc/tasker.yaml sample. Fixture files live in tests/unit/config/, found from __FILE__.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "tasker/error.h"

/* ---- helpers ---- */

/* Path of a file relative to this source file's directory. */
static void source_path(const char *rel, char *buf, size_t size)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    if (slash == NULL)
        snprintf(buf, size, "%s", rel);
    else
        snprintf(buf, size, "%.*s/%s", (int)(slash - file), file, rel);
}

static void fixture(const char *name, char *buf, size_t size)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "config/%s", name);
    source_path(rel, buf, size);
}

/* Unset every variable the module reads, so the caller's environment cannot leak in. */
static void clear_env(void)
{
    size_t n;
    const tk_config_key_t *k = tk_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        unsetenv(k[i].env);
        if (k[i].env_alias != NULL)
            unsetenv(k[i].env_alias);
    }
    unsetenv("TASKER_WEB_BIND_ADDRESS");
    unsetenv("TASKER_CONFIG_PATH");
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static int load_text(tk_config_t *c, const char *text, tk_error_t *err)
{
    return tk_config_load_yaml(c, "config.yaml", text, strlen(text), err);
}

/* Loading `text` over the defaults fails with `code` and exactly `message`. */
static void expect_yaml_error(const char *text, int code, const char *message)
{
    tk_config_t c;
    tk_error_t err;
    tk_error_clear(&err);
    assert_int_equal(tk_config_init(&c), TK_OK);
    int rc = load_text(&c, text, &err);
    if (rc != code || strcmp(err.message, message) != 0)
        print_error("yaml:\n%s\ngot rc %d: %s\nwant rc %d: %s\n", text, rc, err.message, code,
                    message);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.message, message);
    tk_config_free(&c);
}

/* tk_config_set(key, value) fails with TK_EINVAL and exactly `message`. */
static void expect_set_error(tk_config_t *c, const char *key, const char *value,
                             const char *message)
{
    tk_error_t err;
    tk_error_clear(&err);
    assert_int_equal(tk_config_set(c, key, value, &err), TK_EINVAL);
    assert_string_equal(err.message, message);
}

static void expect_get(const tk_config_t *c, const char *key, const char *want)
{
    char buf[512];
    assert_int_equal(tk_config_get(c, key, buf, sizeof(buf), NULL), TK_OK);
    assert_string_equal(buf, want);
}

static void expect_origin(const tk_config_t *c, const char *key, tk_config_source_t src,
                          const char *name, int line)
{
    const tk_config_origin_t *o = tk_config_origin(c, key);
    assert_non_null(o);
    assert_int_equal(o->source, src);
    if (name == NULL)
        assert_null(o->name);
    else
        assert_string_equal(o->name, name);
    assert_int_equal(o->line, line);
}

/* The effective configuration as printed, in a malloc'd string. */
static char *print_to_string(const tk_config_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    tk_config_print(c, f);
    fclose(f);
    return buf;
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    tk_config_t c;
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_string_equal(c.database.url, "");
    assert_int_equal(c.database.pool_size, 8);
    assert_string_equal(c.server.bind, "0.0.0.0");
    assert_int_equal(c.server.port, 8080);
    assert_int_equal(c.server.max_body_bytes, 1048576);
    assert_int_equal(c.server.request_timeout_ms, 30000);
    assert_int_equal(c.server.max_wait_ms, 60000);
    assert_int_equal(c.server.max_batch_tasks, 1000);
    assert_false(c.server.config_endpoint_enabled);
    assert_int_equal(c.orchestration.mode, TK_CONFIG_MODE_HYBRID);
    assert_int_equal(c.orchestration.poll_interval_ms, 1000);
    assert_int_equal(c.orchestration.result_batch_size, 20);
    assert_int_equal(c.orchestration.sweep_interval_ms, 5000);
    assert_int_equal(c.orchestration.stuck_task_seconds, 300);
    assert_true(c.backoff.base_seconds == 1.0);
    assert_true(c.backoff.multiplier == 2.0);
    assert_true(c.backoff.max_seconds == 60.0);
    assert_true(c.backoff.jitter == 0.15);
    assert_string_equal(c.worker.bind, "0.0.0.0");
    assert_int_equal(c.worker.port, 8081);
    assert_int_equal(c.worker.mode, TK_CONFIG_MODE_HYBRID);
    assert_int_equal(c.worker.poll_interval_ms, 1000);
    assert_int_equal(c.worker.batch_size, 10);
    assert_int_equal(c.worker.max_concurrent_handlers, 10);
    assert_int_equal(c.worker.handler_timeout_ms, 30000);
    assert_int_equal(c.worker.lease_seconds, 30);
    assert_int_equal(c.worker.heartbeat_interval_ms, 10000);
    assert_string_equal(c.worker.templates, "");
    assert_int_equal(c.worker.plugins.count, 0);
    assert_null(c.worker.plugins.items);
    assert_int_equal(c.log.level, TK_LOG_INFO);
    assert_string_equal(c.client.url, "http://localhost:8080");
    expect_origin(&c, "server.port", TK_CONFIG_SRC_DEFAULT, NULL, 0);
    assert_null(tk_config_origin(&c, "server.nope"));
    assert_int_equal(tk_config_validate(&c, NULL), TK_OK);
    tk_config_free(&c);
}

static void test_worker_id_default(void **state)
{
    (void)state;
    tk_config_t c;
    char suffix[32];
    assert_int_equal(tk_config_init(&c), TK_OK);
    snprintf(suffix, sizeof(suffix), "-%ld", (long)getpid());
    size_t n = strlen(c.worker.id), sn = strlen(suffix);
    assert_true(n > sn);
    assert_string_equal(c.worker.id + n - sn, suffix);
    char *derived = strdup(c.worker.id);
    assert_int_equal(tk_config_set(&c, "worker.id", "w1", NULL), TK_OK);
    assert_string_equal(c.worker.id, "w1");
    assert_int_equal(tk_config_set(&c, "worker.id", "", NULL), TK_OK); /* back to derived */
    assert_string_equal(c.worker.id, derived);
    free(derived);
    tk_config_free(&c);
}

/* ---- the file ---- */

static void test_file_overrides(void **state)
{
    (void)state;
    char path[1024];
    tk_config_t c;
    tk_error_t err;
    fixture("full.yaml", path, sizeof(path));
    assert_int_equal(tk_config_init(&c), TK_OK);
    int rc = tk_config_load_file(&c, path, &err);
    if (rc != TK_OK)
        print_error("%s\n", err.message);
    assert_int_equal(rc, TK_OK);
    assert_string_equal(c.database.url, "postgresql://tasker@db.internal:5432/tasker");
    assert_int_equal(c.database.pool_size, 16);
    assert_string_equal(c.server.bind, "127.0.0.1");
    assert_int_equal(c.server.port, 9080);
    assert_true(c.server.config_endpoint_enabled);
    assert_int_equal(c.orchestration.mode, TK_CONFIG_MODE_EVENT_DRIVEN);
    assert_int_equal(c.orchestration.stuck_task_seconds, 120);
    assert_true(c.backoff.base_seconds == 0.5);
    assert_true(c.backoff.jitter == 0.0);
    assert_string_equal(c.worker.id, "worker-a");
    assert_int_equal(c.worker.max_concurrent_handlers, 20);
    assert_int_equal(c.worker.lease_seconds, 60);
    assert_int_equal(c.worker.heartbeat_interval_ms, 20000);
    assert_int_equal(c.worker.plugins.count, 2);
    assert_string_equal(c.worker.plugins.items[0], "./libone.so");
    assert_string_equal(c.worker.plugins.items[1], "./libtwo.so");
    assert_string_equal(c.worker.templates, "/etc/tasker/templates");
    assert_int_equal(c.log.level, TK_LOG_DEBUG);
    assert_string_equal(c.client.url, "http://api.internal:8080"); /* dotted top-level key */
    /* untouched keys keep their defaults */
    assert_int_equal(c.worker.port, 8081);
    expect_origin(&c, "worker.port", TK_CONFIG_SRC_DEFAULT, NULL, 0);
    expect_origin(&c, "database.pool_size", TK_CONFIG_SRC_FILE, path, 4);
    expect_origin(&c, "worker.max_concurrent_handlers", TK_CONFIG_SRC_FILE, path, 17);
    expect_origin(&c, "worker.plugins", TK_CONFIG_SRC_FILE, path, 20);
    expect_origin(&c, "client.url", TK_CONFIG_SRC_FILE, path, 26);
    assert_int_equal(tk_config_validate(&c, NULL), TK_OK);
    tk_config_free(&c);
}

static void test_file_edge_cases(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    assert_int_equal(tk_config_init(&c), TK_OK);
    /* empty text, comments only, an empty section, an empty document */
    assert_int_equal(load_text(&c, "", &err), TK_OK);
    assert_int_equal(load_text(&c, "# nothing\n", &err), TK_OK);
    assert_int_equal(load_text(&c, "worker:\n", &err), TK_OK);
    assert_int_equal(load_text(&c, "---\n", &err), TK_OK);
    /* a list given as one colon-separated scalar; an empty list */
    assert_int_equal(load_text(&c, "worker:\n  plugins: a.so:b.so\n", &err), TK_OK);
    assert_int_equal(c.worker.plugins.count, 2);
    assert_int_equal(load_text(&c, "worker:\n  plugins: []\n", &err), TK_OK);
    assert_int_equal(c.worker.plugins.count, 0);
    /* anchors and aliases */
    assert_int_equal(load_text(&c, "server:\n  port: &p 7000\nworker:\n  port: *p\n", &err), TK_OK);
    assert_int_equal(c.worker.port, 7000);
    /* each file may set a key once, but a later file may set it again */
    assert_int_equal(load_text(&c, "worker:\n  port: 7001\n", &err), TK_OK);
    assert_int_equal(c.worker.port, 7001);
    tk_config_free(&c);
    tk_config_free(&c); /* a freed config may be freed again */
    tk_config_free(NULL);
}

static void test_unknown_key(void **state)
{
    (void)state;
    char path[1024], want[1200];
    tk_config_t c;
    tk_error_t err;
    fixture("unknown_key.yaml", path, sizeof(path));
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_load_file(&c, path, &err), TK_EINVAL);
    snprintf(want, sizeof(want),
             "%s: line 4: unknown key \"worker.max_concurent_handlers\" (did you mean "
             "\"worker.max_concurrent_handlers\"?)",
             path);
    assert_string_equal(err.message, want);
    tk_config_free(&c);

    expect_yaml_error("bogus: 1\n", TK_EINVAL, "config.yaml: line 1: unknown key \"bogus\"");
    expect_yaml_error("server:\n  port: 1\n  colour: blue\n", TK_EINVAL,
                      "config.yaml: line 3: unknown key \"server.colour\"");
    expect_yaml_error("server:\n  lease_seconds: 5\n", TK_EINVAL,
                      "config.yaml: line 2: unknown key \"server.lease_seconds\" (did you mean "
                      "\"worker.lease_seconds\"?)");
    expect_yaml_error("worker:\n  port:\n    number: 5\n", TK_EINVAL,
                      "config.yaml: line 2: worker.port must be a single value, got a mapping");
    expect_yaml_error("worker:\n  port: 1\n  extra:\n    deep: 1\n", TK_EINVAL,
                      "config.yaml: line 3: unknown key \"worker.extra\"");
    expect_yaml_error("worker: 5\n", TK_EINVAL,
                      "config.yaml: line 1: \"worker\" must be a mapping of settings");
    expect_yaml_error("server:\n  port: 1\nworker:\n  port: 2\nserver:\n  port: 3\n", TK_EINVAL,
                      "config.yaml: line 6: duplicate key \"server.port\" (first set on line 2)");
    expect_yaml_error("worker.port: 1\nworker:\n  port: 2\n", TK_EINVAL,
                      "config.yaml: line 3: duplicate key \"worker.port\" (first set on line 1)");
    expect_yaml_error("just a string\n", TK_EINVAL,
                      "config.yaml: line 1: expected a mapping of sections (database:, server:, "
                      "...)");
    expect_yaml_error("- server\n", TK_EINVAL,
                      "config.yaml: line 1: expected a mapping of sections (database:, server:, "
                      "...)");
    expect_yaml_error("? [a, b]\n: 1\n", TK_EINVAL,
                      "config.yaml: line 1: keys must be plain names");
    expect_yaml_error("server:\n  port: 1\n---\nserver:\n  port: 2\n", TK_EINVAL,
                      "config.yaml: line 4: only one YAML document is allowed");
}

static void test_syntax_error(void **state)
{
    (void)state;
    char path[1024], want[1200];
    tk_config_t c;
    tk_error_t err;
    fixture("syntax_error.yaml", path, sizeof(path));
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_load_file(&c, path, &err), TK_EPARSE);
    snprintf(want, sizeof(want),
             "%s: line 4: syntax error: did not find expected key (while parsing a block mapping)",
             path);
    assert_string_equal(err.message, want);
    tk_config_free(&c);

    expect_yaml_error("server:\n  bind: \"0.0.0.0\n", TK_EPARSE,
                      "config.yaml: line 3: syntax error: found unexpected end of stream (while "
                      "scanning a quoted scalar)");
    expect_yaml_error("server: {port: 1\n", TK_EPARSE,
                      "config.yaml: line 2: syntax error: did not find expected ',' or '}' (while "
                      "parsing a flow mapping)");
}

static void test_missing_file(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_load_file(&c, "/nonexistent/tasker.yaml", &err), TK_ENOTFOUND);
    assert_string_equal(err.message, "could not read config file \"/nonexistent/tasker.yaml\": No "
                                     "such file or directory");
    tk_config_free(&c);
}

/* ---- every type's errors ---- */

static void test_value_errors_in_file(void **state)
{
    (void)state;
    expect_yaml_error("worker:\n  max_concurrent_handlers: lots\n", TK_EINVAL,
                      "config.yaml: line 2: worker.max_concurrent_handlers must be an integer "
                      "between 1 and 1024, got \"lots\"");
    expect_yaml_error("worker:\n  max_concurrent_handlers: 0\n", TK_EINVAL,
                      "config.yaml: line 2: worker.max_concurrent_handlers must be an integer "
                      "between 1 and 1024, got \"0\"");
    expect_yaml_error("server:\n  port: 70000\n", TK_EINVAL,
                      "config.yaml: line 2: server.port must be an integer between 0 and 65535, "
                      "got \"70000\"");
    expect_yaml_error("server:\n  port: 80.5\n", TK_EINVAL,
                      "config.yaml: line 2: server.port must be an integer between 0 and 65535, "
                      "got \"80.5\"");
    expect_yaml_error("server:\n  port:\n", TK_EINVAL,
                      "config.yaml: line 2: server.port must be an integer between 0 and 65535, "
                      "got \"\"");
    expect_yaml_error("server:\n  max_body_bytes: 99999999999999999999\n", TK_EINVAL,
                      "config.yaml: line 2: server.max_body_bytes must be an integer between 1024 "
                      "and 67108864, got \"99999999999999999999\"");
    expect_yaml_error("worker:\n  mode: fast\n", TK_EINVAL,
                      "config.yaml: line 2: worker.mode: unknown value \"fast\" (use hybrid, "
                      "event_driven or polling)");
    expect_yaml_error("log:\n  level: loud\n", TK_EINVAL,
                      "config.yaml: line 2: log.level: unknown value \"loud\" (use error, warn, "
                      "info, debug or trace)");
    expect_yaml_error("server:\n  config_endpoint_enabled: maybe\n", TK_EINVAL,
                      "config.yaml: line 2: server.config_endpoint_enabled must be true or false, "
                      "got \"maybe\"");
    expect_yaml_error("backoff:\n  multiplier: two\n", TK_EINVAL,
                      "config.yaml: line 2: backoff.multiplier must be a number between 1 and 10, "
                      "got \"two\"");
    expect_yaml_error("backoff:\n  jitter: 1.5\n", TK_EINVAL,
                      "config.yaml: line 2: backoff.jitter must be a number between 0 and 1, got "
                      "\"1.5\"");
    expect_yaml_error("backoff:\n  max_seconds: nan\n", TK_EINVAL,
                      "config.yaml: line 2: backoff.max_seconds must be a number between 0 and "
                      "86400, got \"nan\"");
    expect_yaml_error("backoff:\n  max_seconds: 0x10\n", TK_EINVAL,
                      "config.yaml: line 2: backoff.max_seconds must be a number between 0 and "
                      "86400, got \"0x10\"");
    expect_yaml_error("worker:\n  plugins:\n    - a.so\n    - {x: 1}\n", TK_EINVAL,
                      "config.yaml: line 4: worker.plugins must be a list of strings");
    expect_yaml_error("worker:\n  plugins:\n    - [a.so]\n", TK_EINVAL,
                      "config.yaml: line 3: worker.plugins must be a list of strings");
    expect_yaml_error("worker:\n  plugins: {a: b}\n", TK_EINVAL,
                      "config.yaml: line 2: worker.plugins must be a list of strings, got a "
                      "mapping");
    expect_yaml_error("server:\n  port: [1, 2]\n", TK_EINVAL,
                      "config.yaml: line 2: server.port must be a single value, got a list");
    expect_yaml_error("server:\n  bind: \"a\\0b\"\n", TK_EINVAL,
                      "config.yaml: line 2: the value of server.bind contains a NUL character");
}

static void test_value_errors_in_set(void **state)
{
    (void)state;
    tk_config_t c;
    assert_int_equal(tk_config_init(&c), TK_OK);
    expect_set_error(&c, "worker.port", "x",
                     "worker.port must be an integer between 0 and 65535, got \"x\"");
    expect_set_error(&c, "worker.port", " 80",
                     "worker.port must be an integer between 0 and 65535, got \" 80\"");
    expect_set_error(&c, "worker.mode", "fast",
                     "worker.mode: unknown value \"fast\" (use hybrid, event_driven or polling)");
    expect_set_error(&c, "server.config_endpoint_enabled", "2",
                     "server.config_endpoint_enabled must be true or false, got \"2\"");
    expect_set_error(&c, "backoff.jitter", "-0.1",
                     "backoff.jitter must be a number between 0 and 1, got \"-0.1\"");
    expect_set_error(&c, "backoff.base_seconds", "inf",
                     "backoff.base_seconds must be a number between 0 and 3600, got \"inf\"");
    expect_set_error(&c, "worker.max_concurent_handlers", "5",
                     "unknown key \"worker.max_concurent_handlers\" (did you mean "
                     "\"worker.max_concurrent_handlers\"?)");
    expect_set_error(&c, "nothing.like.it", "5", "unknown key \"nothing.like.it\"");
    /* failed sets leave the config unchanged */
    assert_int_equal(c.worker.port, 8081);
    assert_int_equal(c.worker.mode, TK_CONFIG_MODE_HYBRID);
    expect_origin(&c, "worker.port", TK_CONFIG_SRC_DEFAULT, NULL, 0);

    /* accepted spellings */
    assert_int_equal(tk_config_set(&c, "server.config_endpoint_enabled", "YES", NULL), TK_OK);
    assert_true(c.server.config_endpoint_enabled);
    assert_int_equal(tk_config_set(&c, "server.config_endpoint_enabled", "off", NULL), TK_OK);
    assert_false(c.server.config_endpoint_enabled);
    assert_int_equal(tk_config_set(&c, "server.config_endpoint_enabled", "1", NULL), TK_OK);
    assert_true(c.server.config_endpoint_enabled);
    assert_int_equal(tk_config_set(&c, "log.level", "DEBUG", NULL), TK_OK);
    assert_int_equal(c.log.level, TK_LOG_DEBUG);
    assert_int_equal(tk_config_set(&c, "log.level", "warning", NULL), TK_OK);
    assert_int_equal(c.log.level, TK_LOG_WARN);
    assert_int_equal(tk_config_set(&c, "backoff.max_seconds", "1e3", NULL), TK_OK);
    assert_true(c.backoff.max_seconds == 1000.0);
    assert_int_equal(tk_config_set(&c, "worker.plugins", "a.so::/x/b.so:", NULL), TK_OK);
    assert_int_equal(c.worker.plugins.count, 2);
    assert_string_equal(c.worker.plugins.items[1], "/x/b.so");
    assert_int_equal(tk_config_set(&c, "worker.plugins", "", NULL), TK_OK);
    assert_int_equal(c.worker.plugins.count, 0);
    assert_int_equal(tk_config_set(&c, NULL, "x", NULL), TK_EINVAL);
    tk_config_free(&c);
}

static void test_mode_spellings(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(
        load_text(&c, "orchestration:\n  mode: EventDrivenOnly\nworker:\n  mode: PollingOnly\n",
                  &err),
        TK_OK);
    assert_int_equal(c.orchestration.mode, TK_CONFIG_MODE_EVENT_DRIVEN);
    assert_int_equal(c.worker.mode, TK_CONFIG_MODE_POLLING);
    expect_get(&c, "orchestration.mode", "event_driven"); /* printed the canonical way */
    expect_get(&c, "worker.mode", "polling");
    assert_int_equal(tk_config_set(&c, "worker.mode", "Hybrid", NULL), TK_OK);
    assert_int_equal(c.worker.mode, TK_CONFIG_MODE_HYBRID);
    assert_int_equal(tk_config_set(&c, "orchestration.mode", "polling", NULL), TK_OK);
    assert_int_equal(c.orchestration.mode, TK_CONFIG_MODE_POLLING);
    setenv("TASKER_ORCHESTRATION_MODE", "PollingOnly", 1);
    setenv("TASKER_WORKER_MODE", "EVENT_DRIVEN", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_OK);
    assert_int_equal(c.orchestration.mode, TK_CONFIG_MODE_POLLING);
    assert_int_equal(c.worker.mode, TK_CONFIG_MODE_EVENT_DRIVEN);
    clear_env();
    tk_config_free(&c);
}

/* ---- layering ---- */

static void test_env_overrides_file(void **state)
{
    (void)state;
    char path[1024];
    tk_config_t c;
    tk_error_t err;
    fixture("full.yaml", path, sizeof(path));
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_load_file(&c, path, &err), TK_OK);
    setenv("TASKER_WORKER_MAX_CONCURRENT_HANDLERS", "33", 1);
    setenv("TASKER_LOG_LEVEL", "trace", 1);
    setenv("TASKER_WORKER_PLUGINS", "x.so:y.so:z.so", 1);
    setenv("TASKER_BACKOFF_JITTER", "0.25", 1);
    setenv("TASKER_SERVER_PORT", "", 1);    /* empty: unset */
    setenv("TASKER_NOT_A_SETTING", "1", 1); /* unknown TASKER_* variables are ignored */
    setenv("DATABASE_URL", "postgresql://a/one", 1);
    setenv("TASKER_TEMPLATE_PATH", "/tasker/templates", 1);
    setenv("TASKER_URL", "http://tasker-url:1", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_OK);
    assert_int_equal(c.worker.max_concurrent_handlers, 33);
    assert_int_equal(c.log.level, TK_LOG_TRACE);
    assert_int_equal(c.worker.plugins.count, 3);
    assert_string_equal(c.worker.plugins.items[2], "z.so");
    assert_true(c.backoff.jitter == 0.25);
    assert_int_equal(c.server.port, 9080); /* still from the file */
    assert_string_equal(c.database.url, "postgresql://a/one");
    assert_string_equal(c.worker.templates, "/tasker/templates");
    assert_string_equal(c.client.url, "http://tasker-url:1");
    expect_origin(&c, "worker.max_concurrent_handlers", TK_CONFIG_SRC_ENV,
                  "TASKER_WORKER_MAX_CONCURRENT_HANDLERS", 0);
    expect_origin(&c, "database.url", TK_CONFIG_SRC_ENV, "DATABASE_URL", 0);
    expect_origin(&c, "server.port", TK_CONFIG_SRC_FILE, path, 7);

    /* the TASKER_* name wins over the alias */
    setenv("TASKER_DATABASE_URL", "postgresql://b/two", 1);
    setenv("TASKER_WORKER_TEMPLATES", "/own/templates", 1);
    setenv("TASKER_CLIENT_URL", "http://client-url:2", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_OK);
    assert_string_equal(c.database.url, "postgresql://b/two");
    assert_string_equal(c.worker.templates, "/own/templates");
    assert_string_equal(c.client.url, "http://client-url:2");
    expect_origin(&c, "database.url", TK_CONFIG_SRC_ENV, "TASKER_DATABASE_URL", 0);
    unsetenv("TASKER_NOT_A_SETTING");
    clear_env();
    tk_config_free(&c);
}

static void test_env_errors(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    assert_int_equal(tk_config_init(&c), TK_OK);
    setenv("TASKER_WORKER_MODE", "fast", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_EINVAL);
    assert_string_equal(err.message, "environment TASKER_WORKER_MODE: unknown value \"fast\" (use "
                                     "hybrid, event_driven or polling)");
    clear_env();
    setenv("TASKER_SERVER_PORT", "abc", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_EINVAL);
    assert_string_equal(err.message, "environment TASKER_SERVER_PORT: server.port must be an "
                                     "integer between 0 and 65535, got \"abc\"");
    clear_env();
    setenv("DATABASE_URL", "postgresql://x/y", 1);
    setenv("TASKER_DATABASE_POOL_SIZE", "500", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_EINVAL);
    assert_string_equal(err.message, "environment TASKER_DATABASE_POOL_SIZE: database.pool_size "
                                     "must be an integer between 1 and 200, got \"500\"");
    clear_env();
    setenv("TASKER_SERVER_CONFIG_ENDPOINT_ENABLED", "sure", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_EINVAL);
    assert_string_equal(err.message,
                        "environment TASKER_SERVER_CONFIG_ENDPOINT_ENABLED: "
                        "server.config_endpoint_enabled must be true or false, got \"sure\"");
    clear_env();
    tk_config_free(&c);
}

static void test_set_overrides_env(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    assert_int_equal(tk_config_init(&c), TK_OK);
    setenv("TASKER_WORKER_MAX_CONCURRENT_HANDLERS", "15", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_OK);
    assert_int_equal(c.worker.max_concurrent_handlers, 15);
    assert_int_equal(tk_config_set(&c, "worker.max_concurrent_handlers", "20", &err), TK_OK);
    assert_int_equal(c.worker.max_concurrent_handlers, 20);
    expect_origin(&c, "worker.max_concurrent_handlers", TK_CONFIG_SRC_SET, NULL, 0);
    expect_get(&c, "worker.max_concurrent_handlers", "20");
    clear_env();
    tk_config_free(&c);
}

static void test_web_bind_address(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    assert_int_equal(tk_config_init(&c), TK_OK);
    setenv("TASKER_WEB_BIND_ADDRESS", "127.0.0.1:9000", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_OK);
    assert_string_equal(c.server.bind, "127.0.0.1");
    assert_int_equal(c.server.port, 9000);
    expect_origin(&c, "server.bind", TK_CONFIG_SRC_ENV, "TASKER_WEB_BIND_ADDRESS", 0);
    expect_origin(&c, "server.port", TK_CONFIG_SRC_ENV, "TASKER_WEB_BIND_ADDRESS", 0);
    assert_int_equal(c.worker.port, 8081); /* the worker is not affected */

    setenv("TASKER_WEB_BIND_ADDRESS", "[::1]:9001", 1);
    setenv("TASKER_SERVER_PORT", "9100", 1); /* the specific variable wins */
    assert_int_equal(tk_config_load_env(&c, &err), TK_OK);
    assert_string_equal(c.server.bind, "::1");
    assert_int_equal(c.server.port, 9100);
    unsetenv("TASKER_SERVER_PORT");

    static const char *const bad[] = {"localhost", "::1:80", ":80", "host:", "[::1]80", "[::1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[200];
        setenv("TASKER_WEB_BIND_ADDRESS", bad[i], 1);
        assert_int_equal(tk_config_load_env(&c, &err), TK_EINVAL);
        snprintf(want, sizeof(want),
                 "environment TASKER_WEB_BIND_ADDRESS: expected \"host:port\", got \"%s\"", bad[i]);
        assert_string_equal(err.message, want);
    }
    setenv("TASKER_WEB_BIND_ADDRESS", "10.0.0.1:99999", 1);
    assert_int_equal(tk_config_load_env(&c, &err), TK_EINVAL);
    assert_string_equal(err.message, "environment TASKER_WEB_BIND_ADDRESS: server.port must be an "
                                     "integer between 0 and 65535, got \"99999\"");
    /* a rejected address changes nothing */
    assert_string_equal(c.server.bind, "::1");
    assert_int_equal(c.server.port, 9100);
    clear_env();
    tk_config_free(&c);
}

/* ---- ${VAR} expansion ---- */

static void test_expansion(void **state)
{
    (void)state;
    char path[1024];
    tk_config_t c;
    tk_error_t err;
    fixture("expand.yaml", path, sizeof(path));
    unsetenv("TK_CFGTEST_UNSET");
    setenv("TK_CFGTEST_PASSWORD", "s3cret", 1);
    setenv("TK_CFGTEST_HOST", "db.example", 1);
    setenv("TK_CFGTEST_PORT", "", 1); /* empty: the default applies, as in the shell */
    unsetenv("TK_CFGTEST_HTTP_PORT");
    setenv("TK_CFGTEST_PLUGIN_DIR", "/srv", 1);
    assert_int_equal(tk_config_init(&c), TK_OK);
    int rc = tk_config_load_file(&c, path, &err);
    if (rc != TK_OK)
        print_error("%s\n", err.message);
    assert_int_equal(rc, TK_OK);
    assert_string_equal(c.database.url, "postgresql://app:s3cret@db.example:5432/tasker");
    assert_int_equal(c.server.port, 9090);
    assert_string_equal(c.worker.id, "db.example-w1");
    assert_string_equal(c.worker.templates, "price$5 and $HOME stay as they are");
    assert_int_equal(c.worker.plugins.count, 1); /* the item that expanded to "" is dropped */
    assert_string_equal(c.worker.plugins.items[0], "/srv/a.so");
    tk_config_free(&c);

    setenv("TK_CFGTEST_HTTP_PORT", "9191", 1);
    unsetenv("TK_CFGTEST_HOST");
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_load_file(&c, path, &err), TK_OK);
    assert_int_equal(c.server.port, 9191);
    assert_string_equal(c.worker.id, "nohost-w1");
    tk_config_free(&c);

    setenv("TK_CFGTEST_HTTP_PORT", "many", 1);
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(load_text(&c, "server:\n  port: ${TK_CFGTEST_HTTP_PORT}\n", &err), TK_EINVAL);
    assert_string_equal(err.message, "config.yaml: line 2: server.port must be an integer between "
                                     "0 and 65535, got \"many\"");
    tk_config_free(&c);

    expect_yaml_error("database:\n  url: \"x${TK_CFGTEST_HOST\"\n", TK_EINVAL,
                      "config.yaml: line 2: unterminated \"${\" in the value of database.url");
    expect_yaml_error("database:\n  url: \"${TK_CFGTEST_HOST:-abc\"\n", TK_EINVAL,
                      "config.yaml: line 2: unterminated \"${\" in the value of database.url");
    expect_yaml_error("database:\n  url: \"${1X}\"\n", TK_EINVAL,
                      "config.yaml: line 2: bad variable reference in the value of database.url "
                      "(use ${NAME} or ${NAME:-default})");
    expect_yaml_error("database:\n  url: \"${A-B}\"\n", TK_EINVAL,
                      "config.yaml: line 2: bad variable reference in the value of database.url "
                      "(use ${NAME} or ${NAME:-default})");
    unsetenv("X");
    expect_yaml_error("database:\n  url: \"${X:-${X:-${X:-${X:-${X:-${X:-${X:-${X:-${X:-${X:-v}}"
                      "}}}}}}}}\"\n",
                      TK_EINVAL,
                      "config.yaml: line 2: variable references in database.url nested too "
                      "deeply");
    unsetenv("TK_CFGTEST_PASSWORD");
    unsetenv("TK_CFGTEST_PORT");
    unsetenv("TK_CFGTEST_HTTP_PORT");
    unsetenv("TK_CFGTEST_PLUGIN_DIR");
}

/* ---- validation ---- */

static void test_cross_key_validation(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_set(&c, "worker.heartbeat_interval_ms", "30000", NULL), TK_OK);
    assert_int_equal(tk_config_validate(&c, &err), TK_EINVAL);
    assert_string_equal(err.message, "worker.heartbeat_interval_ms (30000, set) must be less than "
                                     "worker.lease_seconds (30, default) in milliseconds");
    assert_int_equal(tk_config_set(&c, "worker.heartbeat_interval_ms", "29999", NULL), TK_OK);
    assert_int_equal(tk_config_validate(&c, &err), TK_OK);

    assert_int_equal(tk_config_set(&c, "backoff.base_seconds", "100", NULL), TK_OK);
    assert_int_equal(tk_config_validate(&c, &err), TK_EINVAL);
    assert_string_equal(err.message, "backoff.base_seconds (100, set) must not exceed "
                                     "backoff.max_seconds (60, default)");
    tk_config_free(&c);

    /* tk_config_load validates, naming where each value came from */
    char path[1024], want[1400];
    fixture("heartbeat.yaml", path, sizeof(path));
    assert_int_equal(tk_config_load(&c, path, &err), TK_EINVAL);
    snprintf(want, sizeof(want),
             "worker.heartbeat_interval_ms (10000, file %s:4) must be less than "
             "worker.lease_seconds (10, file %s:3) in milliseconds",
             path, path);
    assert_string_equal(err.message, want);
    tk_config_free(&c);

    setenv("TASKER_WORKER_LEASE_SECONDS", "11", 1); /* the environment repairs it */
    assert_int_equal(tk_config_load(&c, path, &err), TK_OK);
    tk_config_free(&c);
    clear_env();
}

/* ---- tk_config_load ---- */

static void test_load_sequence(void **state)
{
    (void)state;
    char path[1024];
    tk_config_t c;
    tk_error_t err;
    fixture("full.yaml", path, sizeof(path));

    assert_int_equal(tk_config_load(&c, NULL, &err), TK_OK); /* no file: defaults + env */
    assert_int_equal(c.server.port, 8080);
    tk_config_free(&c);

    setenv("TASKER_CONFIG_PATH", path, 1);
    setenv("TASKER_WORKER_PORT", "8181", 1);
    assert_int_equal(tk_config_load(&c, NULL, &err), TK_OK);
    assert_int_equal(c.server.port, 9080); /* from the file */
    assert_int_equal(c.worker.port, 8181); /* from the environment */
    tk_config_free(&c);

    /* an explicit path wins over TASKER_CONFIG_PATH */
    setenv("TASKER_CONFIG_PATH", "/nonexistent/tasker.yaml", 1);
    assert_int_equal(tk_config_load(&c, path, &err), TK_OK);
    assert_int_equal(c.server.port, 9080);
    tk_config_free(&c);

    assert_int_equal(tk_config_load(&c, NULL, &err), TK_ENOTFOUND);
    tk_config_free(&c);

    /* errors after part of a file was applied must still free cleanly */
    unsetenv("TASKER_CONFIG_PATH");
    fixture("unknown_key.yaml", path, sizeof(path));
    assert_int_equal(tk_config_load(&c, path, &err), TK_EINVAL);
    tk_config_free(&c);
    clear_env();
}

/* ---- reading back ---- */

static void test_print_masks_passwords(void **state)
{
    (void)state;
    tk_config_t c;
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_set(&c, "database.url", "postgresql://user:secret@host/db", NULL),
                     TK_OK);
    setenv("TASKER_WORKER_PORT", "8282", 1);
    assert_int_equal(tk_config_load_env(&c, NULL), TK_OK);
    char *out = print_to_string(&c);
    assert_non_null(strstr(out, "database:\n  url: \"postgresql://user:***@host/db\""));
    assert_null(strstr(out, "secret"));
    assert_non_null(strstr(out, "# set\n"));
    assert_non_null(strstr(out, "  port: 8282"));
    assert_non_null(strstr(out, "# env TASKER_WORKER_PORT\n"));
    assert_non_null(strstr(out, "  pool_size: 8 "));
    assert_non_null(strstr(out, "# default\n"));
    assert_non_null(strstr(out, "  base_seconds: 1.0 "));
    assert_non_null(strstr(out, "  jitter: 0.15 "));
    assert_non_null(strstr(out, "  max_seconds: 60.0 "));
    assert_non_null(strstr(out, "  plugins: [] "));
    assert_non_null(strstr(out, "  mode: hybrid "));
    assert_non_null(strstr(out, "  config_endpoint_enabled: false "));
    free(out);
    clear_env();

    /* tk_config_get is for programs: not masked */
    expect_get(&c, "database.url", "postgresql://user:secret@host/db");

    static const char *const urls[][2] = {
        {"postgresql://u:p%40ss@h:5432/db?sslmode=require", "postgresql://u:***@h:5432/db"},
        {"postgresql://u@h/db?user=u&password=topsecret&sslmode=require",
         "postgresql://u@h/db?user=u&password=***&sslmode=require"},
        {"host=h port=5432 password=topsecret user=u", "host=h port=5432 password=*** user=u"},
        {"host=h password = 'top secret' user=u", "host=h password = *** user=u"},
        {"postgresql://h/db", "postgresql://h/db"},
        {"postgresql://u@h/db", "postgresql://u@h/db"},
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        assert_int_equal(tk_config_set(&c, "database.url", urls[i][0], NULL), TK_OK);
        out = print_to_string(&c);
        if (strstr(out, urls[i][1]) == NULL || strstr(out, "secret") != NULL ||
            strstr(out, "p%40ss") != NULL)
            print_error("url %s printed as:\n%s\n", urls[i][0], out);
        assert_non_null(strstr(out, urls[i][1]));
        assert_null(strstr(out, "secret"));
        assert_null(strstr(out, "p%40ss"));
        free(out);
    }
    tk_config_free(&c);
}

/* What tk_config_print writes loads back to the same values. */
static void test_print_round_trip(void **state)
{
    (void)state;
    char path[1024];
    tk_config_t c, back;
    tk_error_t err;
    fixture("full.yaml", path, sizeof(path));
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_load_file(&c, path, &err), TK_OK);
    assert_int_equal(tk_config_set(&c, "server.bind", "we\"ird\\ one\n", NULL), TK_OK);
    assert_int_equal(tk_config_set(&c, "backoff.base_seconds", "0.1", NULL), TK_OK);
    char *out = print_to_string(&c);
    assert_int_equal(tk_config_init(&back), TK_OK);
    int rc = tk_config_load_yaml(&back, "printed", out, strlen(out), &err);
    if (rc != TK_OK)
        print_error("%s\n%s\n", err.message, out);
    assert_int_equal(rc, TK_OK);
    size_t n;
    const tk_config_key_t *k = tk_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char a[512], b[512];
        assert_int_equal(tk_config_get(&c, k[i].key, a, sizeof(a), NULL), TK_OK);
        assert_int_equal(tk_config_get(&back, k[i].key, b, sizeof(b), NULL), TK_OK);
        assert_string_equal(a, b);
        assert_int_equal(tk_config_origin(&back, k[i].key)->source, TK_CONFIG_SRC_FILE);
    }
    assert_true(back.backoff.base_seconds == 0.1);
    free(out);
    tk_config_free(&back);
    tk_config_free(&c);
}

static void test_get(void **state)
{
    (void)state;
    tk_config_t c;
    tk_error_t err;
    char small[4];
    assert_int_equal(tk_config_init(&c), TK_OK);
    assert_int_equal(tk_config_set(&c, "worker.plugins", "a.so:b.so", NULL), TK_OK);
    expect_get(&c, "worker.plugins", "a.so:b.so");
    expect_get(&c, "backoff.multiplier", "2.0");
    expect_get(&c, "backoff.max_seconds", "60.0");
    assert_int_equal(tk_config_set(&c, "backoff.max_seconds", "86400", NULL), TK_OK);
    expect_get(&c, "backoff.max_seconds", "86400.0");
    assert_int_equal(tk_config_set(&c, "backoff.max_seconds", "0.000123", NULL), TK_OK);
    expect_get(&c, "backoff.max_seconds", "0.000123");
    assert_int_equal(tk_config_set(&c, "backoff.max_seconds", "1234.5678", NULL), TK_OK);
    expect_get(&c, "backoff.max_seconds", "1234.5678");
    expect_get(&c, "log.level", "info");
    expect_get(&c, "server.config_endpoint_enabled", "false");
    assert_int_equal(tk_config_get(&c, "client.url", small, sizeof(small), &err), TK_EINVAL);
    assert_string_equal(err.message, "cannot read client.url: its value needs 22 bytes");
    assert_int_equal(tk_config_get(&c, "client.uri", small, sizeof(small), &err), TK_EINVAL);
    assert_string_equal(err.message, "unknown key \"client.uri\" (did you mean \"client.url\"?)");
    tk_config_free(&c);
}

/* ---- the table and the sample file ---- */

static void test_table_rules(void **state)
{
    (void)state;
    size_t n;
    const tk_config_key_t *k = tk_config_keys(&n);
    assert_true(n > 0 && n <= TK_CONFIG_MAX_KEYS);
    for (size_t i = 0; i < n; i++) {
        char env[128] = "TASKER_";
        size_t len = strlen(env);
        for (const char *p = k[i].key; *p != '\0' && len + 1 < sizeof(env); p++)
            env[len++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[len] = '\0';
        assert_string_equal(k[i].env, env);
        assert_non_null(strchr(k[i].key, '.'));
        assert_true(strlen(k[i].description) > 10);
        assert_ptr_equal(tk_config_key_find(k[i].key), &k[i]);
        assert_true((k[i].type == TK_CONFIG_ENUM) == (k[i].choices != NULL));
        size_t sect = (size_t)(strchr(k[i].key, '.') - k[i].key);
        bool new_section = i == 0 || strncmp(k[i].key, k[i - 1].key, sect + 1) != 0;
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(k[i].key, k[j].key);
            /* sections are contiguous, as tk_config_print relies on */
            if (new_section)
                assert_false(strncmp(k[i].key, k[j].key, sect + 1) == 0);
        }
    }
    assert_null(tk_config_key_find("worker"));
    assert_null(tk_config_key_find(NULL));
    assert_string_equal(tk_config_type_name(TK_CONFIG_LIST), "list");
}

static void test_describe(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    tk_config_describe(f);
    fclose(f);
    size_t n;
    const tk_config_key_t *k = tk_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char line[160];
        snprintf(line, sizeof(line), "\n%s\n", k[i].key);
        assert_non_null(strstr(buf, line));
        assert_non_null(strstr(buf, k[i].env));
        assert_non_null(strstr(buf, k[i].description));
    }
    assert_non_null(strstr(buf, "\nworker.max_concurrent_handlers\n    int 1..1024, default 10\n"
                                "    env TASKER_WORKER_MAX_CONCURRENT_HANDLERS\n"));
    assert_non_null(strstr(buf, "TASKER_WEB_BIND_ADDRESS"));
    assert_non_null(strstr(buf, "DATABASE_URL"));
    free(buf);
}

/* etc/tasker.yaml loads, sets every key, and every value in it is the default. */
static void test_sample_file(void **state)
{
    (void)state;
    char path[1024];
    tk_config_t sample, defaults;
    tk_error_t err;
    source_path("../../etc/tasker.yaml", path, sizeof(path));
    assert_int_equal(tk_config_init(&sample), TK_OK);
    assert_int_equal(tk_config_init(&defaults), TK_OK);
    int rc = tk_config_load_file(&sample, path, &err);
    if (rc != TK_OK)
        print_error("%s\n", err.message);
    assert_int_equal(rc, TK_OK);
    assert_int_equal(tk_config_validate(&sample, &err), TK_OK);
    size_t n;
    const tk_config_key_t *k = tk_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char a[512], b[512];
        const tk_config_origin_t *o = tk_config_origin(&sample, k[i].key);
        if (o->source != TK_CONFIG_SRC_FILE)
            print_error("etc/tasker.yaml does not set %s\n", k[i].key);
        assert_int_equal(o->source, TK_CONFIG_SRC_FILE);
        assert_int_equal(tk_config_get(&sample, k[i].key, a, sizeof(a), NULL), TK_OK);
        assert_int_equal(tk_config_get(&defaults, k[i].key, b, sizeof(b), NULL), TK_OK);
        if (strcmp(a, b) != 0)
            print_error("etc/tasker.yaml: %s is %s, the default is %s\n", k[i].key, a, b);
        assert_string_equal(a, b);
    }
    tk_config_free(&sample);
    tk_config_free(&defaults);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_worker_id_default, setup),
        cmocka_unit_test_setup(test_file_overrides, setup),
        cmocka_unit_test_setup(test_file_edge_cases, setup),
        cmocka_unit_test_setup(test_unknown_key, setup),
        cmocka_unit_test_setup(test_syntax_error, setup),
        cmocka_unit_test_setup(test_missing_file, setup),
        cmocka_unit_test_setup(test_value_errors_in_file, setup),
        cmocka_unit_test_setup(test_value_errors_in_set, setup),
        cmocka_unit_test_setup(test_mode_spellings, setup),
        cmocka_unit_test_setup(test_env_overrides_file, setup),
        cmocka_unit_test_setup(test_env_errors, setup),
        cmocka_unit_test_setup(test_set_overrides_env, setup),
        cmocka_unit_test_setup(test_web_bind_address, setup),
        cmocka_unit_test_setup(test_expansion, setup),
        cmocka_unit_test_setup(test_cross_key_validation, setup),
        cmocka_unit_test_setup(test_load_sequence, setup),
        cmocka_unit_test_setup(test_print_masks_passwords, setup),
        cmocka_unit_test_setup(test_print_round_trip, setup),
        cmocka_unit_test_setup(test_get, setup),
        cmocka_unit_test_setup(test_table_rules, setup),
        cmocka_unit_test_setup(test_describe, setup),
        cmocka_unit_test_setup(test_sample_file, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
