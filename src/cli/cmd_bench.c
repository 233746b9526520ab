/*
 * cmd_bench.c - `tasker bench <suite>` and `tasker bench compare`: options, the database
 * (the given URL, or a private durable cluster started for the run and stopped after it), the
 * suites in order, the JSON file. The suites live in src/bench/ (bench.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "common/parse.h"

#define DEFAULT_DATA_DIR ".tasker/bench/pgdata"
#define DEFAULT_JSON     "bench/results/latest.json"

static const struct {
    const char *name;
    const char *summary;
    const char *help;
} suites[] = {
    {"floor", "SELECT 1, durable commit and raw LISTEN/NOTIFY: this machine's floor",
     "Measures on one connection a prepared SELECT 1 round trip, a durable single-row\n"
     "UPDATE + COMMIT, and a raw LISTEN/NOTIFY round trip (one connection NOTIFYs, a\n"
     "thread blocked on another connection wakes: send-to-wake). p50s. Every other suite\n"
     "also reports its figures as multiples of these (a short floor measurement runs\n"
     "first when this suite is not selected). Iterations: 5000/2000/2000 (--quick\n"
     "1000/300/300; --iterations N sets all three).\n"},
    {"sql", "the five SQL hot-path functions on a generated dataset",
     "get_next_ready_tasks (batch 1/10/50/100), get_step_readiness_status and\n"
     "get_task_execution_context (tasks whose steps have 0-4 parents),\n"
     "transition_task_state_atomic (scenarios 0-4: five legal transitions, each inside\n"
     "BEGIN ... ROLLBACK pipelined in one round trip) and get_step_transitive_dependencies\n"
     "(depth 0-7), prepared, on one connection, on a dataset of --tasks N tasks (default\n"
     "5000; a comma list runs several sizes and prints how the functions scale) generated\n"
     "with set-based SQL in database tasker_bench_sql_<N> and reused by later runs.\n"
     "2000 iterations per case (--quick 200). p50/p95 us.\n"},
    {"notify", "queue send -> consumer wake-up round trip",
     "tasker_mq.send on one connection; a consumer thread blocked in the queue listener\n"
     "(src/mq/listener.h) on another wakes up: send start to wake-up, p50/p99. 2000\n"
     "samples (--quick 300).\n"},
    {"e2e", "workflow latency over HTTP: linear, diamond, complex DAG, tree",
     "Each sample creates a task with POST /v1/tasks?wait_ms=30000 on a kept-alive\n"
     "connection and ends when the response arrives (the server answers when the task's\n"
     "completion is announced by NOTIFY; nothing polls). Server and C worker run in this\n"
     "process; Ruby and Python rows run their workers as child processes and are skipped\n"
     "when those bindings are absent. All rows are measured together, interleaved: their\n"
     "workers run at once (so their templates must use different namespaces), and round i\n"
     "runs, per workflow, one task per row, the rows in an order rotated by i; the C row's\n"
     "own figures come from a first pass with the C worker alone. 20 warm-up rounds, then\n"
     "200 samples (--quick 5 and 20), per workflow and row: mean, p50, p95, p99, min, max,\n"
     "and for Ruby and Python \"vs C\", the median over the rounds of (the row's task - the\n"
     "C task).\n"},
    {"throughput", "tasks/s and steps/s under load, per-step latency",
     "Submits --tp-tasks N tasks (default 2000 linear, --quick 200; --workflow noop for\n"
     "1-step no-op tasks) from --clients C threads (default 4, keep-alive) as fast as the\n"
     "API takes them, one per POST /v1/tasks (or --submit-batch B per POST\n"
     "/v1/tasks/batch), run by --workers K C workers (default 2, each with its own handler\n"
     "pool). tasks/s and steps/s from the first submission to the last completion, and\n"
     "the per-step p50 latency under that load (enqueued -> complete, from the steps'\n"
     "transition history).\n"},
    {"all", "every suite: floor, sql, notify, e2e, throughput",
     "Runs floor, sql, notify, e2e and throughput in that order on one database server,\n"
     "prints each table and a summary of the targets, and writes one JSON file. A suite\n"
     "that fails does not stop the others (the exit status is then 1). About 3 minutes;\n"
     "--quick about 1 minute (plus the dataset generation the first time).\n"},
};
#define NSUITES ((int)(sizeof(suites) / sizeof(suites[0])))

static void usage(FILE *out, int suite)
{
    if (suite >= 0 && suites[suite].help[0] != '\0')
        fprintf(out, "Usage: tasker bench %s [options]\n\n%s\n", suites[suite].name,
                suites[suite].help);
    else
        fprintf(out, "Usage: tasker bench <suite>[,<suite>...] [options]\n"
                     "       tasker bench compare [--per-floor] BASE.json NEW.json\n"
                     "\n"
                     "Measure tasker on this machine and print the seed's tables (Tasker's\n"
                     "lifecycle performance baseline) with our figures beside the seed's and\n"
                     "as multiples of this machine's floor. Results also go to a JSON file.\n"
                     "A comma list (e.g. sql,e2e) runs those suites, in the order below, in\n"
                     "one process on one database server, as all does.\n"
                     "\n"
                     "Suites:\n");
    if (suite < 0)
        for (int i = 0; i < NSUITES; i++)
            fprintf(out, "  %-11s %s\n", suites[i].name, suites[i].summary);
    fprintf(
        out,
        "%s"
        "Options:\n"
        "      --quick            fewer samples: every suite in a few minutes\n"
        "      --json FILE        write the results here (default %s)\n"
        "      --database-url URL use this PostgreSQL server (also DATABASE_URL); the role\n"
        "                         needs CREATEDB: suites work in databases tasker_bench*\n"
        "      --data-dir DIR     else a private durable cluster here (default %s),\n"
        "                         stopped at the end unless it was already running\n"
        "      --samples N        e2e samples per workflow and handler row\n"
        "      --warmup N         e2e warm-up tasks per workflow and handler row\n"
        "      --iterations N     floor, sql and notify iterations per case\n"
        "      --tasks N[,N...]   sql dataset sizes (default 5000)\n"
        "      --tp-tasks N       throughput: tasks to submit\n"
        "      --workers K        throughput: workers (default 2)\n"
        "      --clients C        throughput: client threads (default 4)\n"
        "      --submit-batch B   throughput: tasks per request (default 1: POST /v1/tasks;\n"
        "                         more: POST /v1/tasks/batch, at most server.max_batch_tasks)\n"
        "      --workflow NAME    throughput: linear (default) or noop\n"
        "      --templates DIR    templates of the C handler rows (default examples/templates)\n"
        "      --handlers LIST    e2e handler rows to run, e.g. c,ruby (default: all present)\n"
        "  -c, --config FILE      configuration for the server and workers\n"
        "      --set KEY=VALUE    any configuration key, e.g. worker.mode=event_driven\n"
        "      --note TEXT        stored in the JSON settings (e.g. what was measured)\n"
        "  -h, --help             show this help\n"
        "\n"
        "compare: per metric the seed's verdicts (+-10%% accept, 10-20%% watch, >20%%\n"
        "investigate, >30%% or E2E >200 ms or SQL >1.5 ms fail); exit status 1 on a fail.\n"
        "      --per-floor        compare each figure as a multiple of its own run's floor\n"
        "                         (SQL / SELECT 1, E2E / durable commit, notify / raw\n"
        "                         NOTIFY, rates x commit): runs of different machines or\n"
        "                         of a shared machine's slow and fast phases\n",
        suite < 0 ? "\n" : "", DEFAULT_JSON, DEFAULT_DATA_DIR);
}

static int find_suite(const char *name)
{
    for (int i = 0; i < NSUITES; i++)
        if (strcmp(suites[i].name, name) == 0)
            return i;
    return -1;
}

/* Marks in run[] the suites `list` names: a comma list such as "sql,e2e", or "all" alone for
 * every suite. False when a name is unknown, "all" is inside a list, or the list is empty. */
static bool parse_suite_list(const char *list, bool run[NSUITES])
{
    memset(run, 0, sizeof(bool) * NSUITES);
    if (strcmp(list, "all") == 0) {
        for (int i = 0; i < NSUITES - 1; i++)
            run[i] = true;
        return true;
    }
    char copy[256];
    if (snprintf(copy, sizeof(copy), "%s", list) >= (int)sizeof(copy))
        return false;
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        int i = find_suite(tok);
        if (i < 0 || strcmp(tok, "all") == 0)
            return false;
        run[i] = true;
        n++;
    }
    return n > 0;
}

static bool parse_count(const char *opt, const char *text, int min, int max, int *out)
{
    int64_t v;
    if (tk_parse_i64(text, min, max, &v) != TK_OK) {
        tk_cli_usage_error("bench", "%s needs a number from %d to %d, got \"%s\"", opt, min, max,
                           text);
        return false;
    }
    *out = (int)v;
    return true;
}

static bool parse_sizes(const char *text, tk_bench_opts_t *o)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", text);
    o->ntasks = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (o->ntasks == TK_BENCH_MAX_SIZES) {
            tk_cli_usage_error("bench", "--tasks takes at most %d sizes", TK_BENCH_MAX_SIZES);
            return false;
        }
        if (!parse_count("--tasks", tok, 20, 10000000, &o->tasks[o->ntasks]))
            return false;
        o->ntasks++;
    }
    if (o->ntasks == 0) {
        tk_cli_usage_error("bench", "--tasks needs a number");
        return false;
    }
    return true;
}

/* mkdir -p of the parent directories of `path`. */
static void make_parents(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
    }
}

/* "host=... port=... dbname=..." of a URL, without the password. */
static void describe_url(const char *url, char *buf, size_t size)
{
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    size_t len = 0;
    buf[0] = '\0';
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "host") != 0 && strcmp(o->keyword, "port") != 0 &&
            strcmp(o->keyword, "dbname") != 0 && strcmp(o->keyword, "hostaddr") != 0)
            continue;
        int n = snprintf(buf + len, size - len, "%s%s=%s", len ? " " : "", o->keyword, o->val);
        if (n < 0 || (size_t)n >= size - len)
            break;
        len += (size_t)n;
    }
    PQconninfoFree(opts);
}

static int run_suites(tk_bench_t *b, const bool run[NSUITES], const char *json_path)
{
    const char *selected[NSUITES];
    int nselected = 0;
    for (int i = 0; i < NSUITES - 1; i++) /* the table's order is the run order; "all" last */
        if (run[i])
            selected[nselected++] = suites[i].name;
    if (tk_bench_prepare_run_db(b, selected, nselected) != TK_OK)
        return TK_CLI_EXIT_FAIL;
    int failed = 0;
    bool floor_selected = strcmp(selected[0], "floor") == 0;
    tk_bench_load_mark(b, "floor", true);
    if (tk_bench_floor(b, floor_selected) != TK_OK)
        failed++;
    tk_bench_load_mark(b, "floor", false);
    for (int i = floor_selected ? 1 : 0; i < nselected; i++) {
        int rc = TK_OK;
        tk_bench_load_mark(b, selected[i], true);
        if (strcmp(selected[i], "sql") == 0)
            rc = tk_bench_sql(b);
        else if (strcmp(selected[i], "notify") == 0)
            rc = tk_bench_notify(b);
        else if (strcmp(selected[i], "e2e") == 0)
            rc = tk_bench_e2e(b);
        else if (strcmp(selected[i], "throughput") == 0)
            rc = tk_bench_throughput(b);
        tk_bench_load_mark(b, selected[i], false);
        if (rc != TK_OK) {
            failed++;
            tk_bench_note(b, "%s: failed", selected[i]);
        }
    }
    tk_bench_print_targets(b);
    if (tk_bench_write_json(b, json_path) != TK_OK)
        failed++;
    else
        printf("\nresults written to %s\n", json_path);
    return failed == 0 ? TK_CLI_EXIT_OK : TK_CLI_EXIT_FAIL;
}

int tk_cmd_bench(int argc, char **argv)
{
    static const struct option options[] = {
        {"quick", no_argument, NULL, 'q'},
        {"json", required_argument, NULL, 'j'},
        {"database-url", required_argument, NULL, 'u'},
        {"data-dir", required_argument, NULL, 'd'},
        {"samples", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'W'},
        {"iterations", required_argument, NULL, 'i'},
        {"tasks", required_argument, NULL, 'T'},
        {"tp-tasks", required_argument, NULL, 'N'},
        {"workers", required_argument, NULL, 'k'},
        {"clients", required_argument, NULL, 'C'},
        {"submit-batch", required_argument, NULL, 'B'},
        {"workflow", required_argument, NULL, 'w'},
        {"templates", required_argument, NULL, 't'},
        {"handlers", required_argument, NULL, 'H'},
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"note", required_argument, NULL, 'o'},
        {"per-floor", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    tk_bench_opts_t o;
    memset(&o, 0, sizeof(o));
    o.warmup = -1;
    const char *json_path = DEFAULT_JSON, *url = NULL, *data_dir = DEFAULT_DATA_DIR;
    tk_cli_sets_t sets = {0};
    bool ok = true, help = false, by_floor = false;
    int opt;
    while (ok && (opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'q':
            o.quick = true;
            break;
        case 'j':
            json_path = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'n':
            ok = parse_count("--samples", optarg, 1, 1000000, &o.samples);
            break;
        case 'W':
            ok = parse_count("--warmup", optarg, 0, 100000, &o.warmup);
            break;
        case 'i':
            ok = parse_count("--iterations", optarg, 1, 10000000, &o.iterations);
            break;
        case 'T':
            ok = parse_sizes(optarg, &o);
            break;
        case 'N':
            ok = parse_count("--tp-tasks", optarg, 1, 10000000, &o.tp_tasks);
            break;
        case 'k':
            ok = parse_count("--workers", optarg, 1, 16, &o.workers);
            break;
        case 'C':
            ok = parse_count("--clients", optarg, 1, 64, &o.clients);
            break;
        case 'B':
            ok = parse_count("--submit-batch", optarg, 1, 100000, &o.submit_batch);
            break;
        case 'w':
            o.tp_workflow = optarg;
            if (strcmp(optarg, "linear") != 0 && strcmp(optarg, "noop") != 0) {
                tk_cli_usage_error("bench", "--workflow is linear or noop, not \"%s\"", optarg);
                ok = false;
            }
            break;
        case 't':
            o.templates = optarg;
            break;
        case 'H':
            o.handlers = optarg;
            break;
        case 'c':
            o.config_path = optarg;
            break;
        case 's':
            ok = tk_cli_sets_add_pair(&sets, optarg);
            break;
        case 'o':
            o.note = optarg;
            break;
        case 'F':
            by_floor = true;
            break;
        case 'h':
            help = true;
            break;
        default:
            ok = false;
            tk_cli_usage_error("bench", "invalid option");
            break;
        }
    }
    int status = TK_CLI_EXIT_USAGE;
    const char *suite = optind < argc ? argv[optind] : NULL;
    int si = suite ? find_suite(suite) : -1;
    bool run[NSUITES];
    if (!ok) {
        /* already reported */
    } else if (help) {
        usage(stdout, si);
        status = TK_CLI_EXIT_OK;
    } else if (suite == NULL) {
        tk_cli_usage_error("bench", "missing suite (floor, sql, notify, e2e, throughput, all "
                                    "or compare)");
    } else if (strcmp(suite, "compare") == 0) {
        if (argc - optind != 3)
            tk_cli_usage_error("bench", "compare needs two files: BASE.json NEW.json");
        else
            status = tk_bench_compare(argv[optind + 1], argv[optind + 2], by_floor, stdout) == 0
                         ? TK_CLI_EXIT_OK
                         : TK_CLI_EXIT_FAIL;
    } else if (by_floor) {
        tk_cli_usage_error("bench", "--per-floor is an option of compare");
    } else if (!parse_suite_list(suite, run)) {
        tk_cli_usage_error("bench", "unknown suite \"%s\" (a suite, a comma list of them, or all)",
                           suite);
    } else if (optind + 1 < argc) {
        tk_cli_usage_error("bench", "unexpected argument \"%s\"", argv[optind + 1]);
    } else {
        o.sets = &sets;
        char log_dir[4096], label[512];
        snprintf(log_dir, sizeof(log_dir), "%s", json_path);
        char *slash = strrchr(log_dir, '/');
        if (slash != NULL)
            *slash = '\0';
        else
            snprintf(log_dir, sizeof(log_dir), ".");
        make_parents(json_path);
        o.log_dir = log_dir;
        if (url == NULL || url[0] == '\0')
            url = getenv("DATABASE_URL");
        if (url == NULL || url[0] == '\0')
            make_parents(data_dir);
        else
            label[0] = '\0';
        status = TK_CLI_EXIT_FAIL;
        tk_pgembed_t *pg = NULL;
        if (url == NULL || url[0] == '\0') {
            /* durable (the targets are for durable commits); stopped with this process */
            tk_pgembed_opts_t po = {
                .data_dir = data_dir, .durable = true, .stop_with_parent = true};
            tk_error_t err;
            if (tk_pgembed_start(&po, &pg, &err) != TK_OK) {
                tk_cli_fail("could not start the private PostgreSQL in %s: %s", data_dir,
                            err.message);
                url = NULL;
            } else {
                url = tk_pgembed_url(pg);
                o.pg_data_dir = data_dir;
                snprintf(label, sizeof(label), "private cluster %s (%s)", data_dir,
                         tk_pgembed_started_here(pg) ? "started for the run" : "already running");
            }
        } else {
            describe_url(url, label, sizeof(label));
        }
        if (url != NULL) {
            o.database_label = label;
            tk_bench_t b;
            if (tk_bench_init(&b, &o, url) == TK_OK)
                status = run_suites(&b, run, json_path);
            else
                tk_cli_fail("out of memory");
            tk_bench_free(&b);
        }
        if (pg != NULL && tk_pgembed_started_here(pg)) {
            tk_error_t err;
            if (tk_pgembed_stop(pg, &err) != TK_OK)
                tk_cli_fail("could not stop PostgreSQL: %s", err.message);
        }
        tk_pgembed_free(pg);
    }
    tk_cli_sets_free(&sets);
    return status;
}
