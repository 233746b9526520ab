/*
 * suite_e2e.c - `tasker bench e2e`: workflow latency end to end, the seed's first table.
 *
 * A sample is one `POST /v1/tasks?wait_ms=30000` on a kept-alive HTTP connection: the server
 * creates the task, the workers run its steps, and the server answers when the task's
 * terminal transition is announced to it (NOTIFY tasker_task_finished): the clock stops
 * when the response has arrived, with no polling anywhere. The response must say
 * "status": "complete". Warm-up tasks first (connections, prepared statements, caches).
 *
 * Rows: the workflows (linear 4 steps, diamond 4, complex DAG 7, tree 8) times the handler
 * rows of the table below. A row's templates are found by their shape (steps, edges, roots,
 * widest join and fan-out), whatever their names, in the row's template directory. The C
 * row runs the orchestration server and a C worker inside this process (see stack.h); the
 * Ruby and Python rows run the same server with the language's worker as a child process,
 * and are skipped, with the reason printed, when that worker is not there. Adding a
 * language is one line in handler_rows.
 */
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/stack.h"
#include "common/clock.h"
#include "common/error_int.h"
#include "common/uuid.h"
#include "template/template.h"

/* ---- the handler rows ----------------------------------------------------------------------- */

typedef struct handler_row_s {
    const char *handler;     /* "c", "ruby", "python": the JSON's "handler" */
    const char *templates;   /* its template directory (NULL: --templates) */
    const char *const *argv; /* its worker program, argv[0] relative to the build directory
                              * (where this tasker executable is); NULL: the C worker in this
                              * process. Other paths are relative to the source tree. */
    const char *built;       /* a glob, relative to the build directory, that matches once the
                              * binding is built */
    const char *interpreter; /* a program that must be on PATH (or an absolute path) */
} handler_row_t;

static const char *const ruby_argv[] = {"bindings/ruby/bin/tasker-ruby-worker",
                                        "--templates",
                                        "examples/ruby/templates",
                                        "--handlers",
                                        "examples/ruby/handlers",
                                        NULL};
static const char *const python_argv[] = {"bindings/python/bin/tasker-python-worker",
                                          "--templates",
                                          "examples/python/templates",
                                          "--handlers",
                                          "examples/python/handlers",
                                          NULL};

static const handler_row_t handler_rows[] = {
    {"c", NULL, NULL, NULL, NULL},
    {"ruby", "examples/ruby/templates", ruby_argv, "bindings/ruby/lib/tasker_native.so", "ruby"},
    {"python", "examples/python/templates", python_argv, "bindings/python/tasker/_native*.so",
     "/usr/bin/python3"},
};

/* ---- the workflows, recognised by shape ----------------------------------------------------- */

typedef struct shape_s {
    const char *workflow; /* JSON "workflow" */
    const char *hint;     /* preferred when several templates have the shape */
    int steps, edges, roots, max_in, max_out, depth;
} shape_t;

static const shape_t shapes[] = {
    {"linear", "linear", 4, 3, 1, 1, 1, 4},
    {"diamond", "diamond", 4, 4, 1, 2, 2, 3},
    {"complex_dag", "dag", 7, 9, 1, 3, 2, 4},
    {"tree", "tree", 8, 10, 1, 4, 2, 4},
};
#define NSHAPES ((int)(sizeof(shapes) / sizeof(shapes[0])))

typedef struct found_s {
    char ns[64], name[256], version[64];
    bool found;
    bool hinted;
} found_t;

/* Longest path (in steps) ending at step i. */
static int depth_of(const tk_template_t *t, size_t i, int guard)
{
    const tk_template_step_t *s = tk_template_step(t, i);
    int best = 0;
    for (size_t d = 0; d < s->dependency_count && guard < 64; d++) {
        for (size_t j = 0; j < tk_template_step_count(t); j++)
            if (strcmp(tk_template_step(t, j)->name, s->dependencies[d]) == 0) {
                int dj = depth_of(t, j, guard + 1);
                best = dj > best ? dj : best;
            }
    }
    return best + 1;
}

static int classify(const tk_template_t *t)
{
    int n = (int)tk_template_step_count(t), edges = 0, roots = 0, max_in = 0, max_out = 0,
        depth = 0;
    for (int i = 0; i < n; i++) {
        const tk_template_step_t *s = tk_template_step(t, (size_t)i);
        int in = (int)s->dependency_count, out = 0;
        edges += in;
        roots += in == 0;
        max_in = in > max_in ? in : max_in;
        for (int j = 0; j < n; j++) {
            const tk_template_step_t *o = tk_template_step(t, (size_t)j);
            for (size_t d = 0; d < o->dependency_count; d++)
                out += strcmp(o->dependencies[d], s->name) == 0;
        }
        max_out = out > max_out ? out : max_out;
        int di = depth_of(t, (size_t)i, 0);
        depth = di > depth ? di : depth;
    }
    for (int k = 0; k < NSHAPES; k++)
        if (shapes[k].steps == n && shapes[k].edges == edges && shapes[k].roots == roots &&
            shapes[k].max_in == max_in && shapes[k].max_out == max_out && shapes[k].depth == depth)
            return k;
    return -1;
}

/* Find the template of each shape in dir. */
static int find_templates(const char *dir, found_t found[NSHAPES], tk_error_t *err)
{
    memset(found, 0, sizeof(found_t) * NSHAPES);
    tk_template_set_t *set;
    int rc = tk_template_load_dir(dir, &set, err);
    if (rc != TK_OK)
        return rc;
    for (size_t i = 0; i < tk_template_set_count(set); i++) {
        const tk_template_t *t = tk_template_set_get(set, i);
        int k = classify(t);
        if (k < 0)
            continue;
        bool hinted = strstr(tk_template_name(t), shapes[k].hint) != NULL ||
                      strstr(tk_template_namespace(t), shapes[k].hint) != NULL;
        if (found[k].found && (found[k].hinted || !hinted))
            continue;
        snprintf(found[k].ns, sizeof(found[k].ns), "%s", tk_template_namespace(t));
        snprintf(found[k].name, sizeof(found[k].name), "%s", tk_template_name(t));
        snprintf(found[k].version, sizeof(found[k].version), "%s", tk_template_version(t));
        found[k].found = true;
        found[k].hinted = hinted;
    }
    tk_template_set_free(set);
    return TK_OK;
}

int tk_bench_find_workflow(const char *dir, const char *workflow, char ns[64], char name[256],
                           char version[64], tk_error_t *err)
{
    found_t found[NSHAPES];
    int rc = find_templates(dir, found, err);
    if (rc != TK_OK)
        return rc;
    for (int k = 0; k < NSHAPES; k++) {
        if (strcmp(shapes[k].workflow, workflow) != 0 || !found[k].found)
            continue;
        snprintf(ns, 64, "%s", found[k].ns);
        snprintf(name, 256, "%s", found[k].name);
        snprintf(version, 64, "%s", found[k].version);
        return TK_OK;
    }
    return tk_error_set(err, TK_ENOTFOUND, "no %s template in %s", workflow, dir);
}

/* A worker process is ready once it has registered the row's templates; false (with the
 * reason in err) when it exits or takes more than 60 s. Setup only: not measured. */
static bool wait_child_ready(tk_bench_t *b, tk_bench_stack_t *stack, const found_t *found,
                             tk_error_t *err)
{
    const found_t *f = NULL;
    for (int k = 0; k < NSHAPES && f == NULL; k++)
        if (found[k].found)
            f = &found[k];
    if (f == NULL)
        return true;
    tk_conn_t *c;
    if (tk_conn_open(b->run_url, "tasker-bench", &c, err) != TK_OK)
        return false;
    const char *params[] = {f->ns, f->name, f->version};
    int64_t deadline = tk_clock_ms() + 60000;
    bool ready = false;
    while (!ready) {
        if (!tk_bench_stack_children_alive(stack)) {
            tk_error_set(err, TK_ESYS, "the worker process exited (see its log)");
            break;
        }
        if (tk_clock_ms() > deadline) {
            tk_error_set(err, TK_ETIMEDOUT, "the worker did not register %s/%s within 60 s", f->ns,
                         f->name);
            break;
        }
        PGresult *res = PQexecParams(tk_conn_pg(c),
                                     "SELECT 1 FROM tasker.named_tasks nt JOIN "
                                     "tasker.task_namespaces ns USING (task_namespace_uuid) "
                                     "WHERE ns.name = $1 AND nt.name = $2 AND nt.version = $3",
                                     3, NULL, params, NULL, NULL, 0);
        ready = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
        PQclear(res);
        if (!ready)
            tk_sleep_ms(100);
    }
    tk_conn_close(c);
    return ready;
}

/* ---- running a row -------------------------------------------------------------------------- */

typedef struct result_s {
    const char *workflow, *handler;
    int steps, depth;
    tk_bench_stats_t s;
} result_t;

static bool on_path(const char *program)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        return false;
    char dir[PATH_MAX + 256];
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        snprintf(dir, sizeof(dir), "%.*s/%s", (int)len, p, program);
        if (access(dir, X_OK) == 0)
            return true;
        p += len + (colon != NULL);
    }
    return false;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Directory of this executable (the build directory). Static buffer. */
static const char *build_dir(void)
{
    static char dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    if (n <= 0)
        return ".";
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    return dir;
}

static bool glob_matches(const char *pattern)
{
    glob_t g;
    bool found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return found;
}

/* Why the row cannot run ("" when it can). */
static const char *unavailable(const handler_row_t *row, const char *templates)
{
    static char why[PATH_MAX + 128];
    char path[PATH_MAX + 64];
    why[0] = '\0';
    if (row->interpreter != NULL &&
        (row->interpreter[0] == '/' ? access(row->interpreter, X_OK) != 0
                                    : !on_path(row->interpreter)))
        snprintf(why, sizeof(why), "%s is not available", row->interpreter);
    else if (row->built != NULL &&
             (snprintf(path, sizeof(path), "%s/%s", build_dir(), row->built), !glob_matches(path)))
        snprintf(why, sizeof(why), "the %s binding is not built (%s not found)", row->handler,
                 path);
    else if (!exists(templates))
        snprintf(why, sizeof(why), "template directory %s not found", templates);
    return why;
}

/* Why a task did not complete: the first step error it reports ("" if none). */
static void failure_detail(tk_bench_http_t *h, const char *task_uuid, char *buf, size_t size)
{
    buf[0] = '\0';
    if (task_uuid == NULL)
        return;
    snprintf(buf, size, "%.200s", tk_bench_http_body(h));
    char path[96];
    long status = 0;
    tk_error_t err;
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps", task_uuid);
    if (tk_bench_http_get(h, path, 10000, &status, &err) != TK_OK || status != 200)
        return;
    json_t *steps = json_loads(tk_bench_http_body(h), 0, NULL);
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step)
    {
        const json_t *e = json_object_get(json_object_get(step, "results"), "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (msg != NULL) {
            snprintf(buf, size, "step %s failed: %s",
                     json_string_value(json_object_get(step, "name")), msg);
            break;
        }
    }
    json_decref(steps);
}

/* One task, timed. *ms gets the latency; the response must report the task complete. */
static int one_task(tk_bench_http_t *h, const found_t *f, const char *run_id, int n, long wait_ms,
                    double *ms, tk_error_t *err)
{
    json_t *req =
        json_pack("{s:s, s:s, s:s, s:{s:i, s:s, s:i}, s:s, s:s, s:[s,s], s:i}", "namespace", f->ns,
                  "name", f->name, "version", f->version, "context", "even_number", 6, "bench_run",
                  run_id, "n", n, "initiator", "tasker-bench", "source_system", "tasker-bench-e2e",
                  "tags", "benchmark", "e2e", "priority", 5);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (body == NULL)
        return tk_error_set(err, TK_ENOMEM, "out of memory");
    char path[64];
    snprintf(path, sizeof(path), "/v1/tasks?wait_ms=%ld", wait_ms);
    long status = 0;
    int64_t t0 = tk_clock_us();
    int rc = tk_bench_http_post(h, path, body, wait_ms + 10000, &status, err);
    int64_t t1 = tk_clock_us();
    free(body);
    if (rc != TK_OK)
        return rc;
    *ms = (double)(t1 - t0) / 1000.0;
    json_t *resp = json_loads(tk_bench_http_body(h), 0, NULL);
    const char *state = json_string_value(json_object_get(resp, "status"));
    if (status != 201 || state == NULL || strcmp(state, "complete") != 0) {
        char why[300];
        failure_detail(h, json_string_value(json_object_get(resp, "task_uuid")), why, sizeof(why));
        rc = tk_error_set(err, TK_EINVAL, "task %s/%s: HTTP %ld, status %s%s%s", f->ns, f->name,
                          status, state ? state : "?", why[0] ? ": " : "", why);
    }
    json_decref(resp);
    return rc;
}

static int run_workflow(tk_bench_t *b, tk_bench_http_t *h, const char *handler, int k,
                        const found_t *f, const char *run_id, int warm, int n, result_t *out,
                        tk_error_t *err)
{
    double *v = calloc((size_t)n, sizeof(double));
    if (v == NULL)
        return tk_error_set(err, TK_ENOMEM, "out of memory");
    char label[96];
    snprintf(label, sizeof(label), "e2e %s/%s", shapes[k].workflow, handler);
    int rc = TK_OK;
    for (int i = 0; rc == TK_OK && i < warm + n; i++) {
        double ms = 0;
        /* the first task may wait for a worker process to start */
        rc = one_task(h, f, run_id, i, i == 0 ? 60000 : 30000, &ms, err);
        if (rc == TK_OK && i >= warm)
            v[i - warm] = ms;
        tk_bench_progress(b, label, i + 1, warm + n);
    }
    if (rc == TK_OK) {
        out->workflow = shapes[k].workflow;
        out->handler = handler;
        out->steps = shapes[k].steps;
        out->depth = shapes[k].depth;
        tk_bench_stats(v, (size_t)n, &out->s);
    }
    free(v);
    return rc;
}

static void print_results(tk_bench_t *b, const result_t *r, int nr)
{
    printf("\nE2E workflow execution (POST /v1/tasks?wait_ms, completion pushed by NOTIFY; "
           "server in this process,\n  C worker in-process, Ruby and Python workers as child "
           "processes)\n");
    printf("  %-12s %-7s %5s %7s %8s %8s %8s %8s %8s %8s %8s %10s %-15s %8s %s\n", "Workflow",
           "Handler", "Steps", "Samples", "Mean", "p50", "p95", "p99", "Min", "Max", "p50/stg",
           "Seed mean", "(seed source)", "x commit", "Target");
    for (int i = 0; i < nr; i++) {
        const char *source = "";
        double seed = tk_bench_seed_e2e(r[i].workflow, r[i].handler, &source);
        char seed_text[24], mult[16], target[32];
        if (seed > 0)
            snprintf(seed_text, sizeof(seed_text), "%.2f", seed);
        else
            snprintf(seed_text, sizeof(seed_text), "-");
        tk_bench_multiple(mult, sizeof(mult), r[i].s.p50 * 1000, b->floor.commit_us);
        double limit = strcmp(r[i].handler, "c") == 0 ? tk_bench_target_e2e_ms(r[i].workflow) : -1;
        if (limit > 0)
            snprintf(target, sizeof(target), "<=%.0f %s", limit,
                     r[i].s.p50 <= limit ? "met" : "MISSED");
        else
            snprintf(target, sizeof(target), "-");
        printf("  %-12s %-7s %5d %7zu %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %10s %-15s %8s "
               "%s\n",
               r[i].workflow, r[i].handler, r[i].steps, r[i].s.n, r[i].s.mean, r[i].s.p50,
               r[i].s.p95, r[i].s.p99, r[i].s.min, r[i].s.max, r[i].s.p50 / r[i].depth, seed_text,
               source, mult, target);
    }
    printf("  (ms; p50/stg = p50 per sequential stage of the DAG; x commit = p50 / the durable "
           "commit floor)\n");
    fflush(stdout);
}

static void store_results(tk_bench_t *b, const result_t *r, int nr)
{
    json_t *list = json_object_get(b->doc, "e2e");
    for (int i = 0; i < nr; i++) {
        json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f}",
                                              "workflow", r[i].workflow, "handler", r[i].handler,
                                              "steps", r[i].steps, "samples", (int)r[i].s.n,
                                              "mean_ms", r[i].s.mean, "p50_ms", r[i].s.p50,
                                              "p95_ms", r[i].s.p95, "p99_ms", r[i].s.p99, "min_ms",
                                              r[i].s.min, "max_ms", r[i].s.max));
        double limit = strcmp(r[i].handler, "c") == 0 ? tk_bench_target_e2e_ms(r[i].workflow) : -1;
        if (limit > 0) {
            char value[48], lim[48];
            snprintf(value, sizeof(value), "%.2f ms", r[i].s.p50);
            snprintf(lim, sizeof(lim), "<= %.0f ms", limit);
            tk_bench_target(b, r[i].s.p50 <= limit, value, lim, "E2E %s p50 (C handlers)",
                            r[i].workflow);
        }
    }
}

static bool wanted(const tk_bench_t *b, const char *handler)
{
    const char *list = b->opts.handlers;
    if (list == NULL || list[0] == '\0')
        return true;
    size_t n = strlen(handler);
    for (const char *p = list; (p = strstr(p, handler)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

int tk_bench_e2e(tk_bench_t *b)
{
    int n = tk_bench_count(b, b->opts.samples, 200, 20);
    int warm = b->opts.warmup >= 0 ? b->opts.warmup : (b->opts.quick ? 5 : 20);
    const char *c_templates = b->opts.templates ? b->opts.templates : "examples/templates";
    tk_uuid_t u;
    char run_id[TK_UUID_STR_LEN];
    tk_uuid_v7(&u);
    tk_uuid_format(&u, run_id);

    tk_bench_stack_t *stack;
    int rc = tk_bench_stack_start(b, b->run_url, &stack);
    if (rc != TK_OK)
        return rc;
    tk_bench_http_t *h = tk_bench_http_new(tk_bench_stack_url(stack));
    if (h == NULL) {
        tk_bench_stack_free(stack);
        tk_cli_fail("e2e: out of memory");
        return TK_ENOMEM;
    }
    result_t results[NSHAPES * 4];
    int nresults = 0;
    json_t *rows_json = json_array();
    tk_error_t err;
    int failures = 0;
    for (size_t r = 0; r < sizeof(handler_rows) / sizeof(handler_rows[0]); r++) {
        const handler_row_t *row = &handler_rows[r];
        if (!wanted(b, row->handler))
            continue;
        const char *templates = row->templates ? row->templates : c_templates;
        const char *why = unavailable(row, templates);
        if (why[0] != '\0') {
            tk_bench_note(b, "e2e: %s handlers skipped: %s", row->handler, why);
            json_array_append_new(rows_json,
                                  json_pack("{s:s, s:s}", "handler", row->handler, "skipped", why));
            if (row->argv == NULL)
                failures++; /* the C row must run */
            continue;
        }
        found_t found[NSHAPES];
        if (find_templates(templates, found, &err) != TK_OK) {
            tk_cli_fail("e2e: %s handlers: %s", row->handler, err.message);
            failures++;
            continue;
        }
        char id[64];
        snprintf(id, sizeof(id), "bench-%s-%d", row->handler, (int)getpid());
        if (row->argv == NULL) {
            rc = tk_bench_stack_add_worker(stack, templates, id, NULL, 0);
        } else {
            char log_path[PATH_MAX];
            snprintf(log_path, sizeof(log_path), "%s/e2e-%s-worker.log",
                     b->opts.log_dir ? b->opts.log_dir : ".", row->handler);
            const char *argv[16];
            char program[PATH_MAX + 64];
            snprintf(program, sizeof(program), "%s/%s", build_dir(), row->argv[0]);
            argv[0] = program;
            int na = 1;
            for (; row->argv[na] != NULL && na < 15; na++)
                argv[na] = row->argv[na];
            argv[na] = NULL;
            rc = tk_bench_stack_add_child(stack, argv, NULL, id, log_path);
            if (rc == TK_OK && !b->tty)
                tk_bench_note(b, "e2e: %s worker started (log %s)", row->handler, log_path);
        }
        if (rc == TK_OK && row->argv != NULL && !wait_child_ready(b, stack, found, &err)) {
            tk_cli_fail("e2e: %s worker: %s", row->handler, err.message);
            rc = err.code;
        }
        if (rc != TK_OK) {
            tk_bench_stack_stop_workers(stack);
            failures++;
            continue;
        }
        if (!b->tty)
            tk_bench_note(b, "e2e: %s handlers, %d warm-up + %d samples per workflow", row->handler,
                          warm, n);
        json_t *ran = json_array();
        for (int k = 0; k < NSHAPES; k++) {
            if (!found[k].found) {
                tk_bench_note(b, "e2e: %s %s skipped: no template of that shape in %s",
                              shapes[k].workflow, row->handler, templates);
                continue;
            }
            rc = run_workflow(b, h, row->handler, k, &found[k], run_id, warm, n, &results[nresults],
                              &err);
            tk_bench_progress_done(b);
            if (rc != TK_OK) {
                tk_cli_fail("e2e %s/%s: %s", shapes[k].workflow, row->handler, err.message);
                failures++;
                break;
            }
            json_array_append_new(
                ran, json_pack("{s:s, s:s, s:s, s:s}", "workflow", shapes[k].workflow, "namespace",
                               found[k].ns, "name", found[k].name, "version", found[k].version));
            nresults++;
        }
        json_array_append_new(rows_json, json_pack("{s:s, s:s, s:s, s:o}", "handler", row->handler,
                                                   "templates", templates, "worker",
                                                   row->argv ? "child process" : "in-process",
                                                   "workflows", ran));
        tk_bench_stack_stop_workers(stack);
    }
    tk_bench_http_free(h);
    tk_bench_stack_free(stack);
    if (nresults > 0) {
        print_results(b, results, nresults);
        store_results(b, results, nresults);
    }
    json_t *settings = json_object_get(b->doc, "settings");
    if (json_is_object(settings))
        json_object_set_new(
            settings, "e2e",
            json_pack("{s:i, s:i, s:i, s:s, s:o}", "samples", n, "warmup", warm, "wait_ms", 30000,
                      "process_model",
                      "orchestration server and C worker in the bench process (like tasker dev); "
                      "Ruby and Python workers as child processes",
                      "rows", rows_json));
    else
        json_decref(rows_json);
    return failures == 0 ? TK_OK : TK_EDB;
}
