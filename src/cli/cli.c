/*
 * cli.c - error reporting and database resolution shared by the `tasker` commands.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/conn.h"
#include "db/migrate.h"

int tk_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tasker: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return TK_CLI_EXIT_FAIL;
}

int tk_cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tasker %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'tasker %s --help'.\n", command);
    va_end(ap);
    return TK_CLI_EXIT_USAGE;
}

int tk_cli_db_open(const char *url_opt, const char *data_dir, bool allow_embedded, tk_cli_db_t *db)
{
    db->url = NULL;
    db->embedded = NULL;
    const char *url = url_opt;
    if (url == NULL || url[0] == '\0')
        url = getenv("DATABASE_URL");
    if (url != NULL && url[0] != '\0') {
        db->url = url;
        return TK_OK;
    }
    if (!allow_embedded) {
        tk_cli_fail("no database given: set DATABASE_URL or pass --database-url");
        return TK_EINVAL;
    }
    tk_pgembed_opts_t opts = {
        .data_dir = data_dir ? data_dir : TK_CLI_DEFAULT_DATA_DIR,
        .durable = true,
    };
    tk_error_t err;
    int rc = tk_pgembed_start(&opts, &db->embedded, &err);
    if (rc != TK_OK) {
        tk_cli_fail("could not start the private PostgreSQL in %s: %s", opts.data_dir, err.message);
        return rc;
    }
    db->url = tk_pgembed_url(db->embedded);
    return TK_OK;
}

void tk_cli_db_close(tk_cli_db_t *db, bool stop)
{
    if (db->embedded == NULL)
        return;
    if (stop && tk_pgembed_started_here(db->embedded)) {
        tk_error_t err;
        if (tk_pgembed_stop(db->embedded, &err) != TK_OK)
            tk_cli_fail("could not stop PostgreSQL: %s", err.message);
    }
    tk_pgembed_free(db->embedded);
    db->embedded = NULL;
}

static void print_progress(int version, const char *name, void *arg)
{
    (void)arg;
    printf("applying %04d_%s\n", version, name);
    fflush(stdout);
}

int tk_cli_migrate(const char *url, bool quiet)
{
    tk_error_t err;
    tk_conn_t *c;
    int rc = tk_conn_open(url, "tasker-migrate", &c, &err);
    if (rc != TK_OK) {
        tk_cli_fail("%s", err.message);
        return rc;
    }
    int applied = 0;
    rc = tk_migrate_run(c, &applied, quiet ? NULL : print_progress, NULL, &err);
    tk_conn_close(c);
    if (rc != TK_OK) {
        tk_cli_fail("%s", err.message);
        return rc;
    }
    if (!quiet)
        printf("database schema is at version %d (%d migration%s applied)\n", tk_migrate_latest(),
               applied, applied == 1 ? "" : "s");
    return TK_OK;
}

bool tk_cli_sets_add(tk_cli_sets_t *sets, const char *key, const char *value)
{
    if (sets->n == (int)(sizeof(sets->key) / sizeof(sets->key[0]))) {
        tk_cli_fail("too many settings on the command line");
        return false;
    }
    sets->key[sets->n] = strdup(key);
    sets->value[sets->n] = strdup(value);
    if (sets->key[sets->n] == NULL || sets->value[sets->n] == NULL) {
        tk_cli_fail("out of memory");
        return false;
    }
    sets->n++;
    return true;
}

bool tk_cli_sets_add_pair(tk_cli_sets_t *sets, const char *pair)
{
    const char *eq = strchr(pair, '=');
    if (eq == NULL || eq == pair) {
        tk_cli_fail("--set needs KEY=VALUE, got \"%s\"", pair);
        return false;
    }
    char key[128];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - pair), pair);
    return tk_cli_sets_add(sets, key, eq + 1);
}

void tk_cli_sets_free(tk_cli_sets_t *sets)
{
    for (int i = 0; i < sets->n; i++) {
        free(sets->key[i]);
        free(sets->value[i]);
    }
    sets->n = 0;
}

int tk_cli_config_load(tk_config_t *cfg, const char *path, const tk_cli_sets_t *sets)
{
    tk_error_t err;
    int rc = tk_config_load(cfg, path, &err);
    for (int i = 0; rc == TK_OK && sets != NULL && i < sets->n; i++)
        rc = tk_config_set(cfg, sets->key[i], sets->value[i], &err);
    if (rc == TK_OK)
        rc = tk_config_validate(cfg, &err);
    if (rc != TK_OK) {
        tk_cli_fail("%s", err.message);
        return rc;
    }
    tk_log_set_level(cfg->log.level);
    return TK_OK;
}

void tk_cli_block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    /* A shell starts background jobs with SIGINT ignored, and an ignored signal is discarded
     * before sigwait() could see it: restore the default (harmless while blocked). */
    signal(SIGINT, SIG_DFL);
}

int tk_cli_wait_stop(const sigset_t *set)
{
    int sig = 0;
    sigwait(set, &sig);
    return sig;
}
