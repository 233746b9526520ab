/*
 * suite_e2e.c - `tasker bench e2e`: workflow latency end to end, the seed's first table.
 *
 * A sample is one `POST /v1/tasks?wait_ms=30000` on a kept-alive HTTP connection: the server
 * creates the task, the workers run its steps, and the server answers when the task's
 * terminal transition is announced to it (NOTIFY tasker_task_finished): the clock stops
 * when the response has arrived, with no polling anywhere. The response must say
 * "status": "complete".
 *
 * Rows: the workflows (linear 4 steps, diamond 4, complex DAG 7, tree 8) times the handler
 * rows of the table below. A row's templates are found by their shape (steps, edges, roots,
 * widest join and fan-out), whatever their names, in the row's template directory. The
 * orchestration server and the C worker run inside this process (see stack.h); the Ruby and
 * Python workers are child processes, and their rows are skipped, with the reason printed,
 * when that worker is not there. Adding a language is one line in handler_rows.
 *
 * Interleaved, so that rows are compared under the same conditions: every row's worker runs
 * at once against the one server (their template directories must not share a namespace,
 * else the later row is refused), and once all are ready, round i (warm-ups first, then the
 * samples) runs, for each workflow, one task per row, the rows in an order rotated by i.
 * Machine load and database state thus drift alike for every row, and the overhead of a
 * row over C is paired: the median over rounds of (its task's time - the C task's time).
 * Idle workers cost the others (every NOTIFY wakes every LISTEN connection of the
 * database), so the C row's own figures, which the targets use, come from a first pass with
 * the C worker alone; the interleaved pass only pairs the other rows with C.
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

/* Find the template of each shape in the set. */
static void classify_set(const tk_template_set_t *set, found_t found[NSHAPES])
{
    memset(found, 0, sizeof(found_t) * NSHAPES);
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
}

/* Find the template of each shape in dir. */
static int find_templates(const char *dir, found_t found[NSHAPES], tk_error_t *err)
{
    tk_template_set_t *set;
    int rc = tk_template_load_dir(dir, &set, err);
    if (rc != TK_OK)
        return rc;
    classify_set(set, found);
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

/* ---- whether a row can run ------------------------------------------------------------------ */

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

/* ---- one task ------------------------------------------------------------------------------- */

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

/* ---- the run: rows selected, started together, sampled interleaved -------------------------- */

#define NROWS ((int)(sizeof(handler_rows) / sizeof(handler_rows[0])))

/* A handler row taking part in the run. */
typedef struct row_s {
    const handler_row_t *def;
    const char *templates;  /* its template directory */
    tk_template_set_t *set; /* loaded from there: its workflows and namespaces */
    found_t found[NSHAPES]; /* its template of each workflow */
    json_t *json;           /* its entry in settings.e2e.rows (owned by that array) */
    pid_t pid;              /* its worker child process (0: the worker is in this process) */
    bool started;           /* its worker was started (it may have been dropped since) */
    bool active;            /* its worker is ready and none of its tasks has failed */
    double *ms[NSHAPES];    /* ms[k][i]: sample i of workflow k (NULL: k not run) */
} row_t;

typedef struct e2e_s {
    tk_bench_t *b;
    int warm, n;                  /* warm-up rounds and samples, per row and workflow */
    char run_id[TK_UUID_STR_LEN]; /* in every task's context: tasks of a pass are unique */
    tk_bench_stack_t *stack;
    tk_bench_http_t *h;
    row_t rows[NROWS];
    int nrows;
    json_t *rows_json; /* settings.e2e.rows: every wanted row, run or skipped */
    int failures;
} e2e_t;

/* A row that will not run: a note, or an error counted as a failure, and its entry in
 * settings.e2e.rows. */
static void skip_row(e2e_t *e, const char *handler, const char *why, bool error)
{
    if (error) {
        tk_bench_progress_done(e->b);
        tk_cli_fail("e2e: %s handlers skipped: %s", handler, why);
        e->failures++;
    } else {
        tk_bench_note(e->b, "e2e: %s handlers skipped: %s", handler, why);
    }
    json_array_append_new(e->rows_json,
                          json_pack("{s:s, s:s}", "handler", handler, "skipped", why));
}

/* A namespace that the workers of rows a and b would both serve (their templates'
 * namespaces), or NULL. Owned by a's set. */
static const char *shared_namespace(const row_t *a, const row_t *b)
{
    size_t na = 0, nb = 0;
    const char *const *as = tk_template_set_namespaces(a->set, &na);
    const char *const *bs = tk_template_set_namespaces(b->set, &nb);
    for (size_t i = 0; as != NULL && bs != NULL && i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (strcmp(as[i], bs[j]) == 0)
                return as[i];
    return NULL;
}

/* Load the row's templates and find its workflows. False, with the reason in why, when they
 * cannot be loaded or share a namespace with a row already selected: the workers run at
 * once, and a namespace's steps go to whichever of its workers claims them first. */
static bool prepare_row(const e2e_t *e, row_t *row, char *why, size_t size)
{
    tk_error_t err;
    if (tk_template_load_dir(row->templates, &row->set, &err) != TK_OK) {
        snprintf(why, size, "%s", err.message);
        return false;
    }
    classify_set(row->set, row->found);
    for (int r = 0; r < e->nrows; r++) {
        const char *ns = shared_namespace(row, &e->rows[r]);
        if (ns != NULL) {
            snprintf(why, size,
                     "namespace %s is in its templates (%s) and in the %s row's (%s); the rows' "
                     "workers run at once, so their namespaces must differ",
                     ns, row->templates, e->rows[r].def->handler, e->rows[r].templates);
            return false;
        }
    }
    return true;
}

/* The row's entry in settings.e2e.rows: its templates, worker and workflows. */
static json_t *row_json(const row_t *row)
{
    json_t *workflows = json_array();
    for (int k = 0; k < NSHAPES; k++)
        if (row->found[k].found)
            json_array_append_new(workflows,
                                  json_pack("{s:s, s:s, s:s, s:s}", "workflow", shapes[k].workflow,
                                            "namespace", row->found[k].ns, "name",
                                            row->found[k].name, "version", row->found[k].version));
    return json_pack("{s:s, s:s, s:s, s:o}", "handler", row->def->handler, "templates",
                     row->templates, "worker", row->def->argv ? "child process" : "in-process",
                     "workflows", workflows);
}

/* Select the wanted rows that can run (a missing C row is a failure: it must run). */
static void select_rows(e2e_t *e, const char *c_templates)
{
    for (int r = 0; r < NROWS; r++) {
        const handler_row_t *def = &handler_rows[r];
        if (!wanted(e->b, def->handler))
            continue;
        row_t *row = &e->rows[e->nrows];
        *row = (row_t){.def = def, .templates = def->templates ? def->templates : c_templates};
        const char *missing = unavailable(def, row->templates);
        char why[2 * PATH_MAX + 256];
        if (missing[0] != '\0') {
            skip_row(e, def->handler, missing, false);
            e->failures += def->argv == NULL;
        } else if (!prepare_row(e, row, why, sizeof(why))) {
            skip_row(e, def->handler, why, true);
            tk_template_set_free(row->set);
        } else {
            row->json = row_json(row);
            json_array_append_new(e->rows_json, row->json);
            e->nrows++;
        }
    }
}

/* Start the row's worker: in this process (C) or as a child process. Errors are printed. */
static int start_worker(e2e_t *e, row_t *row)
{
    char id[64];
    snprintf(id, sizeof(id), "bench-%s-%d", row->def->handler, (int)getpid());
    if (row->def->argv == NULL)
        return tk_bench_stack_add_worker(e->stack, row->templates, id, NULL, 0);
    char log_path[PATH_MAX];
    snprintf(log_path, sizeof(log_path), "%s/e2e-%s-worker.log",
             e->b->opts.log_dir ? e->b->opts.log_dir : ".", row->def->handler);
    const char *argv[16];
    char program[PATH_MAX + 64];
    snprintf(program, sizeof(program), "%s/%s", build_dir(), row->def->argv[0]);
    argv[0] = program;
    int na = 1;
    for (; row->def->argv[na] != NULL && na < 15; na++)
        argv[na] = row->def->argv[na];
    argv[na] = NULL;
    int rc = tk_bench_stack_add_child(e->stack, argv, NULL, id, log_path, &row->pid);
    if (rc == TK_OK && !e->b->tty)
        tk_bench_note(e->b, "e2e: %s worker started (log %s)", row->def->handler, log_path);
    return rc;
}

/* A worker child is ready once it has registered the row's templates; false (with the
 * reason in err) when it exits or takes more than 60 s. Setup only: not measured. */
static bool wait_child_ready(e2e_t *e, const row_t *row, tk_error_t *err)
{
    const found_t *f = NULL;
    for (int k = 0; k < NSHAPES && f == NULL; k++)
        if (row->found[k].found)
            f = &row->found[k];
    if (f == NULL)
        return true;
    tk_conn_t *c;
    if (tk_conn_open(e->b->run_url, "tasker-bench", &c, err) != TK_OK)
        return false;
    const char *params[] = {f->ns, f->name, f->version};
    int64_t deadline = tk_clock_ms() + 60000;
    bool ready = false;
    while (!ready) {
        if (!tk_bench_stack_child_alive(e->stack, row->pid)) {
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

/* Take the row out of the run (its worker stopped if a child) and record why. */
static void drop_row(e2e_t *e, row_t *row, const char *why)
{
    row->active = false;
    e->failures++;
    json_object_set_new(row->json, "failed", json_string(why));
    if (row->pid > 0)
        tk_bench_stack_stop_child(e->stack, row->pid);
}

/* Start the worker of `only`, or (NULL) of every selected row not started yet, all at once,
 * and wait until each is ready. A row whose worker does not start or get ready is dropped (a
 * failure, printed). */
static void start_rows(e2e_t *e, const row_t *only)
{
    for (int r = 0; r < e->nrows; r++) {
        row_t *row = &e->rows[r];
        if (row->started || (only != NULL && row != only))
            continue;
        row->started = row->active = true;
        if (start_worker(e, row) != TK_OK)
            drop_row(e, row, "its worker did not start");
    }
    for (int r = 0; r < e->nrows; r++) {
        row_t *row = &e->rows[r];
        tk_error_t err;
        if ((only != NULL && row != only) || !row->active || row->pid == 0 ||
            wait_child_ready(e, row, &err))
            continue;
        tk_bench_progress_done(e->b);
        tk_cli_fail("e2e: %s worker: %s", row->def->handler, err.message);
        drop_row(e, row, err.message);
    }
}

/* The sample arrays of the rows' workflows (a shape a row has no template for is noted and
 * left out). TK_OK or TK_ENOMEM (printed). */
static int alloc_samples(e2e_t *e)
{
    for (int r = 0; r < e->nrows; r++) {
        row_t *row = &e->rows[r];
        for (int k = 0; k < NSHAPES && row->active; k++) {
            if (row->ms[k] != NULL) /* allocated for an earlier pass */
                continue;
            if (!row->found[k].found) {
                tk_bench_note(e->b, "e2e: %s %s skipped: no template of that shape in %s",
                              shapes[k].workflow, row->def->handler, row->templates);
                continue;
            }
            row->ms[k] = calloc((size_t)(e->n > 0 ? e->n : 1), sizeof(double));
            if (row->ms[k] == NULL) {
                tk_cli_fail("e2e: out of memory");
                return TK_ENOMEM;
            }
        }
    }
    return TK_OK;
}

/* Round i (a warm-up while i < warm, else sample i - warm) of workflow k: one task per active
 * row, the rows in an order rotated by i so that none always goes first. A row whose task
 * fails is dropped (printed). */
static void run_round(e2e_t *e, int i, int k)
{
    for (int j = 0; j < e->nrows; j++) {
        row_t *row = &e->rows[(i + j) % e->nrows];
        if (!row->active || row->ms[k] == NULL)
            continue;
        double ms = 0;
        tk_error_t err;
        /* generous for the first task: a worker's first claim may still be starting up */
        if (one_task(e->h, &row->found[k], e->run_id, i, i == 0 ? 60000 : 30000, &ms, &err) ==
            TK_OK) {
            if (i >= e->warm)
                row->ms[k][i - e->warm] = ms;
            continue;
        }
        tk_bench_progress_done(e->b);
        tk_cli_fail("e2e %s/%s: %s", shapes[k].workflow, row->def->handler, err.message);
        drop_row(e, row, err.message);
    }
}

static bool any_active(const e2e_t *e)
{
    for (int r = 0; r < e->nrows; r++)
        if (e->rows[r].active)
            return true;
    return false;
}

/* Every round: the warm-ups, then the samples; progress shows the rows and the round. Each
 * call is a pass of its own, with a new run id. */
static void run_rounds(e2e_t *e)
{
    tk_uuid_t u;
    tk_uuid_v7(&u);
    tk_uuid_format(&u, e->run_id);
    char label[96] = "e2e";
    for (int r = 0; r < e->nrows; r++)
        if (e->rows[r].active)
            snprintf(label + strlen(label), sizeof(label) - strlen(label), "%s%s",
                     strcmp(label, "e2e") == 0 ? " " : "+", e->rows[r].def->handler);
    if (!e->b->tty && any_active(e))
        tk_bench_note(e->b, "%s: %d warm-up + %d samples per workflow and handler, interleaved",
                      label, e->warm, e->n);
    int rounds = e->warm + e->n;
    for (int i = 0; i < rounds && any_active(e); i++) {
        for (int k = 0; k < NSHAPES; k++)
            run_round(e, i, k);
        tk_bench_progress(e->b, label, i + 1, rounds);
    }
    tk_bench_progress_done(e->b);
}

/* ---- results -------------------------------------------------------------------------------- */

typedef struct result_s {
    const char *workflow, *handler;
    int steps, depth;
    tk_bench_stats_t s;
    bool paired;     /* a non-C row whose workflow the C row ran too: overhead is set */
    double overhead; /* ms: the median over samples i of (this row's i - the C row's i) */
} result_t;

/* Statistics of v[0..n-1], left unsorted (the pairs need the sample order). */
static int stats_of(const double *v, int n, tk_bench_stats_t *out)
{
    double *copy = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (copy == NULL)
        return TK_ENOMEM;
    memcpy(copy, v, (size_t)n * sizeof(double));
    tk_bench_stats(copy, (size_t)n, out);
    free(copy);
    return TK_OK;
}

/* The median over i of v[i] - c[i]. */
static int paired_median(const double *v, const double *c, int n, double *out)
{
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (d == NULL)
        return TK_ENOMEM;
    for (int i = 0; i < n; i++)
        d[i] = v[i] - c[i];
    tk_bench_stats_t s;
    tk_bench_stats(d, (size_t)n, &s);
    free(d);
    *out = s.p50;
    return TK_OK;
}

/* The selected C row (whether or not it ran to the end), or NULL. */
static row_t *c_row(e2e_t *e)
{
    for (int r = 0; r < e->nrows; r++)
        if (strcmp(e->rows[r].def->handler, "c") == 0)
            return &e->rows[r];
    return NULL;
}

/* The results of the rows that ran to the end, row by row, workflows in shape order, the C
 * row's left out when `with_c` is false (the other rows are still paired with its samples).
 * Returns how many, or -1 when out of memory (printed). */
static int collect_results(e2e_t *e, bool with_c, result_t *out)
{
    const row_t *c = c_row(e);
    if (c != NULL && !c->active)
        c = NULL;
    int nr = 0;
    for (int r = 0; r < e->nrows; r++) {
        const row_t *row = &e->rows[r];
        for (int k = 0; k < NSHAPES && row->active && (with_c || row != c); k++) {
            if (row->ms[k] == NULL)
                continue;
            result_t *res = &out[nr++];
            *res = (result_t){.workflow = shapes[k].workflow,
                              .handler = row->def->handler,
                              .steps = shapes[k].steps,
                              .depth = shapes[k].depth};
            res->paired = c != NULL && c != row && c->ms[k] != NULL;
            if (stats_of(row->ms[k], e->n, &res->s) != TK_OK ||
                (res->paired &&
                 paired_median(row->ms[k], c->ms[k], e->n, &res->overhead) != TK_OK)) {
                tk_cli_fail("e2e: out of memory");
                return -1;
            }
        }
    }
    return nr;
}

static bool any_paired(const result_t *r, int nr)
{
    for (int i = 0; i < nr; i++)
        if (r[i].paired)
            return true;
    return false;
}

/* The "vs C" cell: the paired overhead, "-" for a row without one, "" when no row has one. */
static void overhead_cell(char *buf, size_t size, const result_t *r, bool column)
{
    if (!column)
        buf[0] = '\0';
    else if (r->paired)
        snprintf(buf, size, " %+7.2f", r->overhead);
    else
        snprintf(buf, size, " %7s", "-");
}

/* More than one handler row ran: their workers ran at once and their tasks interleaved. */
static bool several_rows(const result_t *r, int nr)
{
    for (int i = 1; i < nr; i++)
        if (strcmp(r[i].handler, r[0].handler) != 0)
            return true;
    return false;
}

static void print_results(tk_bench_t *b, const result_t *r, int nr)
{
    bool column = any_paired(r, nr);
    printf("\nE2E workflow execution (POST /v1/tasks?wait_ms, completion pushed by NOTIFY; "
           "server in this process,\n  C worker in-process, Ruby and Python workers as child "
           "processes%s)\n",
           several_rows(r, nr) ? "; the rows' workers at once, their tasks interleaved" : "");
    printf("  %-12s %-7s %5s %7s %8s %8s %8s %8s %8s %8s%s %8s %10s %-15s %8s %s\n", "Workflow",
           "Handler", "Steps", "Samples", "Mean", "p50", "p95", "p99", "Min", "Max",
           column ? "    vs C" : "", "p50/stg", "Seed mean", "(seed source)", "x commit", "Target");
    for (int i = 0; i < nr; i++) {
        const char *source = "";
        double seed = tk_bench_seed_e2e(r[i].workflow, r[i].handler, &source);
        char seed_text[24], mult[16], target[32], vs_c[24];
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
        overhead_cell(vs_c, sizeof(vs_c), &r[i], column);
        printf("  %-12s %-7s %5d %7zu %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f%s %8.2f %10s %-15s %8s "
               "%s\n",
               r[i].workflow, r[i].handler, r[i].steps, r[i].s.n, r[i].s.mean, r[i].s.p50,
               r[i].s.p95, r[i].s.p99, r[i].s.min, r[i].s.max, vs_c, r[i].s.p50 / r[i].depth,
               seed_text, source, mult, target);
    }
    printf("  (ms; p50/stg = p50 per sequential stage of the DAG; x commit = p50 / the durable "
           "commit floor)\n");
    if (column)
        printf("  (vs C = the paired overhead over C: the median over samples i of (this row's "
               "task i - the C row's task i)\n   of the same workflow, run in the same round)\n");
    if (several_rows(r, nr))
        printf("  (the C rows were measured first, with no other worker running; the other rows "
               "then ran\n   interleaved with C, beside each other's idle workers)\n");
    fflush(stdout);
}

static void store_results(tk_bench_t *b, const result_t *r, int nr)
{
    json_t *list = json_object_get(b->doc, "e2e");
    for (int i = 0; i < nr; i++) {
        json_t *entry =
            json_pack("{s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "workflow",
                      r[i].workflow, "handler", r[i].handler, "steps", r[i].steps, "samples",
                      (int)r[i].s.n, "mean_ms", r[i].s.mean, "p50_ms", r[i].s.p50, "p95_ms",
                      r[i].s.p95, "p99_ms", r[i].s.p99, "min_ms", r[i].s.min, "max_ms", r[i].s.max);
        if (r[i].paired)
            json_object_set_new(entry, "overhead_vs_c_p50_ms", json_real(r[i].overhead));
        json_array_append_new(list, entry);
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

static void store_settings(e2e_t *e)
{
    json_t *settings = json_object_get(e->b->doc, "settings");
    if (!json_is_object(settings)) {
        json_decref(e->rows_json);
        return;
    }
    json_object_set_new(
        settings, "e2e",
        json_pack("{s:i, s:i, s:i, s:s, s:s, s:o}", "samples", e->n, "warmup", e->warm, "wait_ms",
                  30000, "process_model",
                  "orchestration server and C worker in the bench process (like tasker dev); "
                  "Ruby and Python workers as child processes; every row's worker runs at once",
                  "schedule",
                  "the C row alone first (its figures); then interleaved: round i runs, for "
                  "each workflow, one task per row, the rows in an order rotated by i; warm-up "
                  "rounds first",
                  "rows", e->rows_json));
}

static void free_rows(e2e_t *e)
{
    for (int r = 0; r < e->nrows; r++) {
        tk_template_set_free(e->rows[r].set);
        for (int k = 0; k < NSHAPES; k++)
            free(e->rows[r].ms[k]);
    }
}

/* Measure, then report the rows that ran to the end. With other rows beside it, the C row is
 * first measured alone (its figures and the targets are those of a C worker with no other
 * worker beside it: idle workers' LISTEN connections slow every commit that notifies), then
 * again interleaved with the others, only to pair them with it. */
static void measure(e2e_t *e)
{
    result_t results[NSHAPES * NROWS];
    int nr = 0;
    row_t *c = c_row(e);
    bool c_alone = c != NULL && e->nrows > 1;
    if (c_alone) {
        start_rows(e, c);
        if (alloc_samples(e) != TK_OK) {
            e->failures++;
            return;
        }
        run_rounds(e);
        nr = collect_results(e, true, results);
    }
    start_rows(e, NULL);
    if (nr >= 0 && alloc_samples(e) != TK_OK) {
        e->failures++;
        return;
    }
    if (nr >= 0) {
        run_rounds(e);
        int more = collect_results(e, !c_alone, results + nr);
        nr = more < 0 ? -1 : nr + more;
    }
    tk_bench_http_free(e->h);
    e->h = NULL;
    tk_bench_stack_free(e->stack);
    e->stack = NULL;
    if (nr < 0)
        e->failures++;
    if (nr > 0) {
        print_results(e->b, results, nr);
        store_results(e->b, results, nr);
    }
}

int tk_bench_e2e(tk_bench_t *b)
{
    e2e_t e = {.b = b,
               .n = tk_bench_count(b, b->opts.samples, 200, 20),
               .warm = b->opts.warmup >= 0 ? b->opts.warmup : (b->opts.quick ? 5 : 20)};
    int rc = tk_bench_stack_start(b, b->run_url, &e.stack);
    if (rc != TK_OK)
        return rc;
    e.h = tk_bench_http_new(tk_bench_stack_url(e.stack));
    if (e.h == NULL) {
        tk_bench_stack_free(e.stack);
        tk_cli_fail("e2e: out of memory");
        return TK_ENOMEM;
    }
    e.rows_json = json_array();
    select_rows(&e, b->opts.templates ? b->opts.templates : "examples/templates");
    measure(&e);
    tk_bench_http_free(e.h);
    tk_bench_stack_free(e.stack);
    free_rows(&e);
    store_settings(&e);
    return e.failures == 0 ? TK_OK : TK_EDB;
}
