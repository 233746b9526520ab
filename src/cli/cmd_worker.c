/*
 * cmd_worker.c - `tasker worker`: a worker process until SIGINT/SIGTERM.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "worker/service.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: tasker worker [options]\n"
        "\n"
        "Run a worker: register the templates found in --templates, then claim the steps\n"
        "of their namespaces (queues worker_<namespace>_queue) and run their handlers -\n"
        "the built-in ones (builtin.noop, builtin.echo, builtin.square, builtin.sleep,\n"
        "builtin.fail) and those of --plugin files. Each result is applied (children\n"
        "queued, task moved, retry scheduled) as it is stored. Health and metrics are\n"
        "served on --port. Ctrl-C or SIGTERM stops claiming and lets running handlers\n"
        "finish.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE         YAML configuration (default: $TASKER_CONFIG_PATH)\n"
        "      --database-url URL    PostgreSQL to use (default: $DATABASE_URL)\n"
        "  -t, --templates PATH      template file or directory (default:\n"
        "                            $TASKER_TEMPLATE_PATH)\n"
        "      --plugin FILE         handler plugin (.so) to load; repeatable\n"
        "  -n, --namespace NAME      also serve this namespace; repeatable\n"
        "  -p, --port PORT           health/metrics port (default 8081; 0 picks a free one)\n"
        "      --id ID               worker id (default: <hostname>-<pid>)\n"
        "      --max-concurrent N    handlers running at once (default 10)\n"
        "      --set KEY=VALUE       any configuration key, e.g. --set worker.lease_seconds=60\n"
        "  -h, --help                show this help\n");
}

int tk_cmd_worker(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"database-url", required_argument, NULL, 'u'},
        {"templates", required_argument, NULL, 't'},
        {"plugin", required_argument, NULL, 'P'},
        {"namespace", required_argument, NULL, 'n'},
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"id", required_argument, NULL, 'i'},
        {"max-concurrent", required_argument, NULL, 'C'},
        {"set", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    const char *namespaces[64];
    int nnamespaces = 0;
    char plugins[4096] = "";
    size_t plugins_len = 0;
    bool ok = true;
    tk_cli_sets_t sets = {0};
    int opt;
    while (ok && (opt = getopt_long(argc, argv, "c:t:n:p:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'u':
            ok = tk_cli_sets_add(&sets, "database.url", optarg);
            break;
        case 't':
            ok = tk_cli_sets_add(&sets, "worker.templates", optarg);
            break;
        case 'P':
            /* worker.plugins is a colon-separated list when set as text */
            plugins_len += (size_t)snprintf(plugins + plugins_len, sizeof(plugins) - plugins_len,
                                            "%s%s", plugins_len ? ":" : "", optarg);
            ok = plugins_len < sizeof(plugins);
            break;
        case 'n':
            ok = nnamespaces < 64;
            if (ok)
                namespaces[nnamespaces++] = optarg;
            break;
        case 'p':
            ok = tk_cli_sets_add(&sets, "worker.port", optarg);
            break;
        case 'b':
            ok = tk_cli_sets_add(&sets, "worker.bind", optarg);
            break;
        case 'i':
            ok = tk_cli_sets_add(&sets, "worker.id", optarg);
            break;
        case 'C':
            ok = tk_cli_sets_add(&sets, "worker.max_concurrent_handlers", optarg);
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
            return tk_cli_usage_error("worker", "invalid option");
        }
    }
    if (ok && plugins_len > 0)
        ok = tk_cli_sets_add(&sets, "worker.plugins", plugins);
    if (ok && optind < argc) {
        tk_cli_sets_free(&sets);
        return tk_cli_usage_error("worker", "unexpected argument \"%s\"", argv[optind]);
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
        tk_cli_fail("no database given: set DATABASE_URL or pass --database-url");
    } else {
        sigset_t stop;
        tk_cli_block_stop_signals(&stop);
        tk_worker_service_t *svc;
        tk_error_t err;
        if (tk_worker_service_start(&cfg, namespaces, nnamespaces, true, &svc, &err) != TK_OK) {
            tk_cli_fail("could not start the worker: %s", err.message);
        } else {
            printf("tasker worker %s running; health on http://%s:%u/health\n", cfg.worker.id,
                   cfg.worker.bind, tk_worker_service_port(svc));
            fflush(stdout);
            tk_cli_wait_stop(&stop);
            tk_worker_service_stop(svc);
            exit_code = TK_CLI_EXIT_OK;
        }
    }
    tk_config_free(&cfg);
    return exit_code;
}
