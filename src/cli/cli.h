/*
 * cli.h - shared pieces of the `tasker` command line: the command table, error reporting and
 * how a command finds its database.
 *
 * Conventions for every command: `--help` prints usage to stdout and exits 0; a usage error
 * prints a one-line reason and the usage hint to stderr and exits 2; a failure prints
 * "tasker: could not ...: reason" to stderr and exits 1.
 */
#ifndef TK_CLI_H
#define TK_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "common/config.h"
#include "db/pgembed.h"
#include "tasker/error.h"

#define TK_CLI_EXIT_OK    0
#define TK_CLI_EXIT_FAIL  1
#define TK_CLI_EXIT_USAGE 2

/* Default location of the private development cluster. */
#define TK_CLI_DEFAULT_DATA_DIR ".tasker/pgdata"

typedef struct tk_cli_command_s {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} tk_cli_command_t;

/* Print "tasker: <message>" to stderr and return TK_CLI_EXIT_FAIL. */
int tk_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "tasker <command>: <message>" and a --help hint to stderr; return TK_CLI_EXIT_USAGE. */
int tk_cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Where a command's database is: a URL given with --database-url or DATABASE_URL, or else
 * the private cluster under data_dir, started on demand. */
typedef struct tk_cli_db_s {
    const char *url;        /* usable URL (owned by this struct or the environment) */
    tk_pgembed_t *embedded; /* NULL when the URL came from the user */
} tk_cli_db_t;

/* Resolve the database. With no URL given and allow_embedded, start (or attach to) the
 * cluster in data_dir (NULL: TK_CLI_DEFAULT_DATA_DIR) with durable settings.
 * Returns TK_OK or an error already printed to stderr. */
int tk_cli_db_open(const char *url_opt, const char *data_dir, bool allow_embedded, tk_cli_db_t *db);

/* Release the handle; stops the embedded server only if `stop` and this process started it. */
void tk_cli_db_close(tk_cli_db_t *db, bool stop);

/* Apply the migrations to `url`, printing what is applied. TK_OK or an error (printed). */
int tk_cli_migrate(const char *url, bool quiet);

/* Settings collected from a command's flags, applied over file and environment. */
typedef struct tk_cli_sets_s {
    char *key[64];
    char *value[64];
    int n;
} tk_cli_sets_t;

/* Add key = value (both copied). Returns false (and prints why) when the list is full or
 * the text has no '=' (for tk_cli_sets_add_pair). */
bool tk_cli_sets_add(tk_cli_sets_t *sets, const char *key, const char *value);
bool tk_cli_sets_add_pair(tk_cli_sets_t *sets, const char *key_equals_value);
void tk_cli_sets_free(tk_cli_sets_t *sets);

/* Load the configuration: defaults < `path` (or $TASKER_CONFIG_PATH) < environment <
 * `sets`; validate; apply log.level. Prints the problem and returns an error code. */
int tk_cli_config_load(tk_config_t *cfg, const char *path, const tk_cli_sets_t *sets);

/* Block SIGINT and SIGTERM (call before starting threads), then wait for one of them.
 * tk_cli_wait_stop returns the signal received. */
void tk_cli_block_stop_signals(sigset_t *set);
int tk_cli_wait_stop(const sigset_t *set);

/* Commands */
int tk_cmd_bench(int argc, char **argv);
int tk_cmd_db(int argc, char **argv);
int tk_cmd_dev(int argc, char **argv);
int tk_cmd_template(int argc, char **argv);
int tk_cmd_task(int argc, char **argv);
int tk_cmd_server(int argc, char **argv);
int tk_cmd_worker(int argc, char **argv);

#endif
