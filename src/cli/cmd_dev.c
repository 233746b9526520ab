/*
 * cmd_dev.c - `tasker dev`: the whole stack in one process for development.
 *
 * A private PostgreSQL under --data-dir (or DATABASE_URL), migrated; the orchestration
 * server on --port; a worker with the built-in handlers, --plugin files and the templates of
 * --templates. With --demo each of those templates runs once and a table shows the outcome;
 * --exit stops after start-up (and the demo), with a non-zero status if a demo workflow did
 * not end as expected.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/demo.h"
#include "orchestration/server.h"
#include "worker/service.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: tasker dev [options]\n"
            "\n"
            "Run tasker on this machine in one process: a private PostgreSQL in --data-dir\n"
            "(or DATABASE_URL), migrated; the orchestration server on --port; and a worker\n"
            "with the built-in handlers, your --plugin files and the templates in\n"
            "--templates. Prints the URL and keeps running until Ctrl-C, then stops the\n"
            "database cleanly.\n"
            "\n"
            "Options:\n"
            "  -p, --port PORT        REST API port (default 8080; 0 picks a free one)\n"
            "      --data-dir DIR     private PostgreSQL directory (default: %s)\n"
            "  -t, --templates PATH   template file or directory (default: ./templates, else\n"
            "                         ./examples/templates, when they exist)\n"
            "      --plugin FILE      handler plugin (.so) to load; repeatable\n"
            "      --database-url URL use this database instead of the private one\n"
            "  -c, --config FILE      YAML configuration (see etc/tasker.yaml)\n"
            "      --set KEY=VALUE    any configuration key\n"
            "      --demo             run each template of --templates once and print a table of\n"
            "                         results\n"
            "      --exit             stop after start-up (and the demo); with --demo the exit\n"
            "                         status is 1 if a workflow did not end as expected\n"
            "  -h, --help             show this help\n",
            TK_CLI_DEFAULT_DATA_DIR);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Run server and worker on the database; returns the exit status. */
static int run(tk_config_t *cfg, bool demo, bool exit_after)
{
    tk_error_t err;
    sigset_t stop;
    tk_cli_block_stop_signals(&stop);
    tk_server_t *server = NULL;
    tk_worker_service_t *worker = NULL;
    if (tk_server_start(cfg, &server, &err) != TK_OK) {
        tk_cli_fail("could not start the server: %s", err.message);
        return TK_CLI_EXIT_FAIL;
    }
    if (cfg->worker.templates[0] == '\0') {
        printf("tasker dev: no templates given (--templates DIR): the worker is not started\n");
    } else if (tk_worker_service_start(cfg, NULL, 0, false, &worker, &err) != TK_OK) {
        tk_cli_fail("could not start the worker: %s", err.message);
        tk_server_stop(server);
        return TK_CLI_EXIT_FAIL;
    }
    char base_url[128];
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", tk_server_port(server));
    printf("\ntasker dev is running\n"
           "  REST API      %s   (try: curl %s/v1/templates)\n"
           "  DATABASE_URL  %s\n"
           "  templates     %s\n",
           base_url, base_url, cfg->database.url,
           cfg->worker.templates[0] ? cfg->worker.templates : "(none: pass --templates DIR)");
    fflush(stdout);

    int status = TK_CLI_EXIT_OK;
    if (demo) {
        int failures =
            tk_demo_run(base_url, worker ? tk_worker_service_templates(worker) : NULL, stdout);
        status = failures == 0 ? TK_CLI_EXIT_OK : TK_CLI_EXIT_FAIL;
    }
    if (!exit_after) {
        printf("\nPress Ctrl-C to stop.\n");
        fflush(stdout);
        tk_cli_wait_stop(&stop);
        printf("\ntasker dev: stopping\n");
        status = TK_CLI_EXIT_OK;
    }
    fflush(stdout);
    tk_worker_service_stop(worker);
    tk_server_stop(server);
    return status;
}

int tk_cmd_dev(int argc, char **argv)
{
    static const struct option options[] = {
        {"port", required_argument, NULL, 'p'},
        {"data-dir", required_argument, NULL, 'd'},
        {"templates", required_argument, NULL, 't'},
        {"plugin", required_argument, NULL, 'P'},
        {"database-url", required_argument, NULL, 'u'},
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"demo", no_argument, NULL, 'D'},
        {"exit", no_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *data_dir = NULL, *config_path = NULL;
    bool demo = false, exit_after = false, ok = true, templates_given = false;
    char plugins[4096] = "";
    size_t plugins_len = 0;
    tk_cli_sets_t sets = {0};
    int opt;
    while (ok && (opt = getopt_long(argc, argv, "p:t:c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            ok = tk_cli_sets_add(&sets, "server.port", optarg);
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 't':
            ok = tk_cli_sets_add(&sets, "worker.templates", optarg);
            templates_given = true;
            break;
        case 'P':
            plugins_len += (size_t)snprintf(plugins + plugins_len, sizeof(plugins) - plugins_len,
                                            "%s%s", plugins_len ? ":" : "", optarg);
            ok = plugins_len < sizeof(plugins);
            break;
        case 'u':
            url = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 's':
            ok = tk_cli_sets_add_pair(&sets, optarg);
            break;
        case 'D':
            demo = true;
            break;
        case 'x':
            exit_after = true;
            break;
        case 'h':
            usage(stdout);
            tk_cli_sets_free(&sets);
            return TK_CLI_EXIT_OK;
        default:
            tk_cli_sets_free(&sets);
            return tk_cli_usage_error("dev", "invalid option");
        }
    }
    if (ok && optind < argc) {
        tk_cli_sets_free(&sets);
        return tk_cli_usage_error("dev", "unexpected argument \"%s\"", argv[optind]);
    }
    if (ok && plugins_len > 0)
        ok = tk_cli_sets_add(&sets, "worker.plugins", plugins);
    if (ok && !templates_given && getenv("TASKER_TEMPLATE_PATH") == NULL) {
        if (is_dir("templates"))
            ok = tk_cli_sets_add(&sets, "worker.templates", "templates");
        else if (is_dir("examples/templates"))
            ok = tk_cli_sets_add(&sets, "worker.templates", "examples/templates");
    }

    tk_config_t cfg = {0};
    int status = TK_CLI_EXIT_FAIL;
    if (ok && tk_cli_config_load(&cfg, config_path, &sets) == TK_OK) {
        tk_cli_db_t db;
        const char *db_url = url ? url : (cfg.database.url[0] ? cfg.database.url : NULL);
        tk_error_t err;
        if (tk_cli_db_open(db_url, data_dir, true, &db) == TK_OK) {
            if (tk_cli_migrate(db.url, true) == TK_OK &&
                tk_config_set(&cfg, "database.url", db.url, &err) == TK_OK)
                status = run(&cfg, demo, exit_after);
            tk_cli_db_close(&db, true);
        }
    }
    tk_cli_sets_free(&sets);
    tk_config_free(&cfg);
    return status;
}
