/*
 * cmd_server.c - `tasker server`: the orchestration server until SIGINT/SIGTERM.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "orchestration/server.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: tasker server [options]\n"
            "\n"
            "Run the orchestration server: the REST API, retries when their backoff ends,\n"
            "and the sweeper that recovers from crashed workers and stuck tasks (workers\n"
            "apply step results themselves). Any number of servers may share one database.\n"
            "Stops cleanly on Ctrl-C or SIGTERM.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      YAML configuration (default: $TASKER_CONFIG_PATH; see\n"
            "                         etc/tasker.yaml for every key)\n"
            "      --database-url URL PostgreSQL to use (default: $DATABASE_URL)\n"
            "  -p, --port PORT        REST API port (default 8080; 0 picks a free one)\n"
            "      --bind ADDRESS     listen address (default 0.0.0.0)\n"
            "      --mode MODE        hybrid (default), event_driven or polling\n"
            "      --migrate          apply database migrations before starting\n"
            "      --set KEY=VALUE    any configuration key, e.g. --set backoff.max_seconds=30\n"
            "  -h, --help             show this help\n");
}

int tk_cmd_server(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"database-url", required_argument, NULL, 'u'},
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"mode", required_argument, NULL, 'm'},
        {"migrate", no_argument, NULL, 'M'},
        {"set", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    bool migrate = false, ok = true;
    tk_cli_sets_t sets = {0};
    int opt;
    while (ok && (opt = getopt_long(argc, argv, "c:p:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'u':
            ok = tk_cli_sets_add(&sets, "database.url", optarg);
            break;
        case 'p':
            ok = tk_cli_sets_add(&sets, "server.port", optarg);
            break;
        case 'b':
            ok = tk_cli_sets_add(&sets, "server.bind", optarg);
            break;
        case 'm':
            ok = tk_cli_sets_add(&sets, "orchestration.mode", optarg);
            break;
        case 'M':
            migrate = true;
            break;
        case 's':
            ok = tk_cli_sets_add_pair(&sets, optarg);
            break;
        case 'h':
            usage(stdout);
            tk_cli_sets_free(&sets);
            return TK_CLI_EXIT_OK;
        default:
            tk_cli_sets_free(&sets);
            return tk_cli_usage_error("server", "invalid option");
        }
    }
    if (ok && optind < argc) {
        tk_cli_sets_free(&sets);
        return tk_cli_usage_error("server", "unexpected argument \"%s\"", argv[optind]);
    }
    tk_config_t cfg = {0};
    if (!ok || tk_cli_config_load(&cfg, config_path, &sets) != TK_OK) {
        tk_cli_sets_free(&sets);
        tk_config_free(&cfg);
        return TK_CLI_EXIT_FAIL;
    }
    tk_cli_sets_free(&sets);
    int exit_code = TK_CLI_EXIT_FAIL;
    if (cfg.database.url[0] == '\0') {
        tk_cli_fail("no database given: set DATABASE_URL or pass --database-url (or use 'tasker "
                    "dev', which runs its own)");
    } else if (!migrate || tk_cli_migrate(cfg.database.url, true) == TK_OK) {
        sigset_t stop;
        tk_cli_block_stop_signals(&stop);
        tk_server_t *server;
        tk_error_t err;
        if (tk_server_start(&cfg, &server, &err) != TK_OK) {
            tk_cli_fail("could not start the server: %s", err.message);
        } else {
            printf("tasker server listening on http://%s:%u\n", cfg.server.bind,
                   tk_server_port(server));
            fflush(stdout);
            tk_cli_wait_stop(&stop);
            tk_server_stop(server);
            exit_code = TK_CLI_EXIT_OK;
        }
    }
    tk_config_free(&cfg);
    return exit_code;
}
