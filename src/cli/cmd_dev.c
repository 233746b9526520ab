/*
 * cmd_dev.c - `tasker dev`: the whole stack on one machine for development.
 *
 * Today it provides the database half: a private PostgreSQL (or DATABASE_URL), migrated, kept
 * running until Ctrl-C. The orchestration server and worker join it as they are built.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>

#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: tasker dev [options]\n"
            "\n"
            "Start a private PostgreSQL in --data-dir (or use DATABASE_URL), apply the\n"
            "migrations, print the database URL and keep running until Ctrl-C, then stop\n"
            "the database cleanly.\n"
            "\n"
            "Options:\n"
            "  --database-url URL  use this database instead of the private one\n"
            "  --data-dir DIR      directory of the private cluster (default: %s)\n"
            "  --exit              stop right after start-up (for checks and scripts)\n"
            "  -h, --help          show this help\n",
            TK_CLI_DEFAULT_DATA_DIR);
}

int tk_cmd_dev(int argc, char **argv)
{
    static const struct option options[] = {
        {"database-url", required_argument, NULL, 'u'},
        {"data-dir", required_argument, NULL, 'd'},
        {"exit", no_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *data_dir = NULL;
    bool exit_after_start = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'x':
            exit_after_start = true;
            break;
        case 'h':
            usage(stdout);
            return TK_CLI_EXIT_OK;
        default:
            return tk_cli_usage_error("dev", "invalid option");
        }
    }
    if (optind < argc)
        return tk_cli_usage_error("dev", "unexpected argument \"%s\"", argv[optind]);

    /* Block the stop signals before anything starts, then wait for one of them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    tk_cli_db_t db;
    if (tk_cli_db_open(url, data_dir, true, &db) != TK_OK)
        return TK_CLI_EXIT_FAIL;
    int rc = tk_cli_migrate(db.url, true);
    if (rc == TK_OK) {
        printf("tasker dev: database ready\n  DATABASE_URL=%s\n", db.url);
        if (!exit_after_start) {
            printf("Press Ctrl-C to stop.\n");
            fflush(stdout);
            int sig;
            sigwait(&stop, &sig);
            printf("\ntasker dev: stopping\n");
        }
    }
    tk_cli_db_close(&db, true);
    return rc == TK_OK ? TK_CLI_EXIT_OK : TK_CLI_EXIT_FAIL;
}
