/*
 * cmd_db.c - `tasker db`: schema migrations and the private development PostgreSQL.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "db/conn.h"
#include "db/migrate.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: tasker db <subcommand> [options]\n"
            "\n"
            "Subcommands:\n"
            "  migrate   apply the schema migrations (safe to repeat; refuses a database\n"
            "            migrated by a newer tasker)\n"
            "  status    show the schema version of the database and of this tasker\n"
            "  start     start the private PostgreSQL and print its URL\n"
            "  stop      stop the private PostgreSQL\n"
            "  url       print the URL of the running private PostgreSQL\n"
            "\n"
            "Options:\n"
            "  --database-url URL  database for migrate/status (default: $DATABASE_URL;\n"
            "                      without either, the private cluster in --data-dir,\n"
            "                      started for the command and stopped after it)\n"
            "  --data-dir DIR      directory of the private cluster (default: %s)\n"
            "  -q, --quiet         print only errors\n"
            "  -h, --help          show this help\n",
            TK_CLI_DEFAULT_DATA_DIR);
}

typedef struct db_args_s {
    const char *url;
    const char *data_dir;
    bool quiet;
} db_args_t;

static int db_migrate(const db_args_t *a)
{
    tk_cli_db_t db;
    if (tk_cli_db_open(a->url, a->data_dir, true, &db) != TK_OK)
        return TK_CLI_EXIT_FAIL;
    int rc = tk_cli_migrate(db.url, a->quiet);
    tk_cli_db_close(&db, true);
    return rc == TK_OK ? TK_CLI_EXIT_OK : TK_CLI_EXIT_FAIL;
}

static int db_status(const db_args_t *a)
{
    tk_cli_db_t db;
    if (tk_cli_db_open(a->url, a->data_dir, true, &db) != TK_OK)
        return TK_CLI_EXIT_FAIL;
    tk_error_t err;
    tk_conn_t *c;
    int current = 0, known = 0;
    int rc = tk_conn_open(db.url, "tasker-db", &c, &err);
    if (rc == TK_OK)
        rc = tk_migrate_status(c, &current, &known, &err);
    tk_conn_close(c);
    tk_cli_db_close(&db, true);
    if (rc != TK_OK)
        return tk_cli_fail("%s", err.message);
    printf("database schema version: %d\n", current);
    printf("this tasker's version:   %d\n", known);
    if (current < known)
        printf("run 'tasker db migrate' to apply %d migration%s\n", known - current,
               known - current == 1 ? "" : "s");
    else if (current > known)
        printf("the database was migrated by a newer tasker: upgrade tasker\n");
    return TK_CLI_EXIT_OK;
}

static int db_start(const db_args_t *a)
{
    tk_pgembed_opts_t opts = {
        .data_dir = a->data_dir ? a->data_dir : TK_CLI_DEFAULT_DATA_DIR,
        .durable = true,
    };
    tk_pgembed_t *pg;
    tk_error_t err;
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        return tk_cli_fail("could not start PostgreSQL in %s: %s", opts.data_dir, err.message);
    int rc = tk_cli_migrate(tk_pgembed_url(pg), true);
    if (rc == TK_OK) {
        if (!a->quiet)
            printf("PostgreSQL is running (log: %s)\nDATABASE_URL=", tk_pgembed_log_path(pg));
        printf("%s\n", tk_pgembed_url(pg));
    }
    tk_pgembed_free(pg);
    return rc == TK_OK ? TK_CLI_EXIT_OK : TK_CLI_EXIT_FAIL;
}

/* Attach to the running private cluster; print an error when there is none. */
static tk_pgembed_t *attach(const db_args_t *a)
{
    tk_pgembed_opts_t opts = {
        .data_dir = a->data_dir ? a->data_dir : TK_CLI_DEFAULT_DATA_DIR,
        .attach_only = true,
    };
    tk_pgembed_t *pg;
    tk_error_t err;
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK) {
        tk_cli_fail("%s", err.message);
        return NULL;
    }
    return pg;
}

static int db_stop(const db_args_t *a)
{
    tk_pgembed_t *pg = attach(a);
    if (pg == NULL)
        return TK_CLI_EXIT_FAIL;
    tk_error_t err;
    int rc = tk_pgembed_stop(pg, &err);
    tk_pgembed_free(pg);
    if (rc != TK_OK)
        return tk_cli_fail("could not stop PostgreSQL: %s", err.message);
    if (!a->quiet)
        printf("PostgreSQL stopped\n");
    return TK_CLI_EXIT_OK;
}

static int db_url(const db_args_t *a)
{
    tk_pgembed_t *pg = attach(a);
    if (pg == NULL)
        return TK_CLI_EXIT_FAIL;
    printf("%s\n", tk_pgembed_url(pg));
    tk_pgembed_free(pg);
    return TK_CLI_EXIT_OK;
}

int tk_cmd_db(int argc, char **argv)
{
    static const struct option options[] = {
        {"database-url", required_argument, NULL, 'u'},
        {"data-dir", required_argument, NULL, 'd'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    db_args_t a = {0};
    int opt;
    while ((opt = getopt_long(argc, argv, "qh", options, NULL)) != -1) {
        switch (opt) {
        case 'u':
            a.url = optarg;
            break;
        case 'd':
            a.data_dir = optarg;
            break;
        case 'q':
            a.quiet = true;
            break;
        case 'h':
            usage(stdout);
            return TK_CLI_EXIT_OK;
        default:
            return tk_cli_usage_error("db", "invalid option");
        }
    }
    if (optind >= argc)
        return tk_cli_usage_error("db", "missing subcommand (migrate, status, start, stop, url)");
    if (optind + 1 < argc)
        return tk_cli_usage_error("db", "unexpected argument \"%s\"", argv[optind + 1]);
    const char *sub = argv[optind];
    if (strcmp(sub, "migrate") == 0)
        return db_migrate(&a);
    if (strcmp(sub, "status") == 0)
        return db_status(&a);
    if (strcmp(sub, "start") == 0)
        return db_start(&a);
    if (strcmp(sub, "stop") == 0)
        return db_stop(&a);
    if (strcmp(sub, "url") == 0)
        return db_url(&a);
    return tk_cli_usage_error("db", "unknown subcommand \"%s\"", sub);
}
