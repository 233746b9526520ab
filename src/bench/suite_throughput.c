/*
 * suite_throughput.c - `tasker bench throughput`: sustained tasks/s and steps/s under load.
 *
 * In a fresh database (tasker_bench_tp): the orchestration server and --workers K C workers
 * (each its own handler pool, claim loop and connections) in this process; after a few
 * warm-up tasks, --clients C threads submit --tp-tasks N tasks (linear 4-step by default,
 * or 1-step builtin.noop tasks with --workflow noop) as fast as the API takes them, each
 * thread on its own kept-alive HTTP connection, without waiting: one task per POST
 * /v1/tasks, or with --submit-batch B, B tasks per POST /v1/tasks/batch (one transaction
 * each, as graphile-worker's addJobs adds its jobs in bench/peers). One connection looks at
 * the run's tasks every 100 ms until all are terminal; nobody waits on them one by one, so
 * they finish unannounced (sql/0025), as submitted work does in production. Throughput is N
 * (or N x steps) over the time from the first submission to the last completion (its
 * completed_at). Per-step latency under that load comes from the steps' transition history
 * afterwards: enqueued -> complete, split into queued (enqueued -> in_progress), run
 * (in_progress -> enqueued_for_orchestration: handler and result) and orchestration
 * (-> complete).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/stack.h"
#include "common/clock.h"
#include "common/error_int.h"
#include "common/parse.h"
#include "template/template.h"

#define INITIATOR "tasker-bench-throughput"
#define ITEM_MAX  768 /* bytes of one TaskRequest of the run */

static const char noop_template[] = "name: noop\n"
                                    "namespace_name: bench_noop\n"
                                    "version: 1.0.0\n"
                                    "description: one no-op step (tasker bench throughput)\n"
                                    "steps:\n"
                                    "  - name: bench_noop_step\n"
                                    "    handler: {callable: builtin.noop}\n";

typedef struct client_s {
    pthread_t thread;
    const char *base_url;
    const char *ns, *name, *version;
    int first, count; /* task numbers first .. first + count - 1 */
    int batch;        /* tasks per request: 1 = POST /v1/tasks, more = POST /v1/tasks/batch */
    int64_t start_us, end_us;
    int failed;
    char error[256];
} client_t;

/* Append TaskRequest number n of client c to body (at least ITEM_MAX bytes free). */
static size_t task_request(const client_t *c, int n, char *body)
{
    int len = snprintf(body, ITEM_MAX,
                       "{\"namespace\":\"%s\",\"name\":\"%s\",\"version\":\"%s\","
                       "\"context\":{\"even_number\":6,\"n\":%d,\"pid\":%d},\"initiator\":"
                       "\"" INITIATOR "\",\"source_system\":\"tasker-bench\",\"tags\":["
                       "\"benchmark\",\"throughput\"]}",
                       c->ns, c->name, c->version, n, (int)getpid());
    return len < 0 ? 0 : (size_t)len < ITEM_MAX ? (size_t)len : ITEM_MAX - 1;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    int batch = c->batch > 1 ? c->batch : 1;
    tk_bench_http_t *h = tk_bench_http_new(c->base_url);
    char *body = malloc((size_t)batch * (ITEM_MAX + 1) + 32);
    if (h == NULL || body == NULL) {
        c->failed = c->count;
        snprintf(c->error, sizeof(c->error), "out of memory");
        tk_bench_http_free(h);
        free(body);
        return NULL;
    }
    c->start_us = tk_clock_us();
    for (int i = 0; i < c->count;) {
        int k = c->count - i < batch ? c->count - i : batch;
        size_t len = 0;
        if (c->batch > 1) { /* {"tasks": [...]}, even for a last batch of one */
            len = (size_t)snprintf(body, 32, "{\"tasks\":[");
            for (int j = 0; j < k; j++) {
                if (j > 0)
                    body[len++] = ',';
                len += task_request(c, c->first + i + j, body + len);
            }
            memcpy(body + len, "]}", 3);
        } else {
            task_request(c, c->first + i, body);
        }
        long status = 0;
        tk_error_t err;
        int rc = tk_bench_http_post(h, c->batch > 1 ? "/v1/tasks/batch" : "/v1/tasks", body,
                                    c->batch > 1 ? 120000 : 30000, &status, &err);
        if (rc != TK_OK || status != 201) {
            if (c->failed == 0)
                snprintf(c->error, sizeof(c->error), "%s",
                         rc != TK_OK ? err.message : tk_bench_http_body(h));
            c->failed += k;
        }
        i += k;
    }
    c->end_us = tk_clock_us();
    free(body);
    tk_bench_http_free(h);
    return NULL;
}

typedef struct latency_s {
    long steps;
    double p50, p95, queued, run, orchestration, task_p50, task_p95;
} latency_t;

static int step_latency(const char *url, latency_t *out, tk_error_t *err)
{
    static const char sql[] =
        "WITH s AS ("
        " SELECT ws.workflow_step_uuid,"
        "  min(tr.created_at) FILTER (WHERE tr.to_state = 'enqueued') AS enq,"
        "  max(tr.created_at) FILTER (WHERE tr.to_state = 'in_progress') AS started,"
        "  max(tr.created_at) FILTER (WHERE tr.to_state = 'enqueued_for_orchestration') AS rep,"
        "  max(tr.created_at) FILTER (WHERE tr.to_state = 'complete') AS done"
        " FROM tasker.tasks t"
        " JOIN tasker.workflow_steps ws ON ws.task_uuid = t.task_uuid"
        " JOIN tasker.workflow_step_transitions tr"
        "  ON tr.workflow_step_uuid = ws.workflow_step_uuid"
        " WHERE t.initiator = '" INITIATOR "'"
        " GROUP BY ws.workflow_step_uuid),"
        " ms AS (SELECT extract(epoch FROM done - enq) * 1000 AS total,"
        "  extract(epoch FROM started - enq) * 1000 AS queued,"
        "  extract(epoch FROM rep - started) * 1000 AS run,"
        "  extract(epoch FROM done - rep) * 1000 AS orch FROM s),"
        " tl AS (SELECT extract(epoch FROM completed_at - created_at) * 1000 AS total"
        "  FROM tasker.tasks WHERE initiator = '" INITIATOR "')"
        " SELECT count(*),"
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY total),"
        "  percentile_cont(0.95) WITHIN GROUP (ORDER BY total),"
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY queued),"
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY run),"
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY orch),"
        "  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM tl),"
        "  (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY total) FROM tl)"
        " FROM ms";
    tk_conn_t *c;
    int rc = tk_conn_open(url, "tasker-bench", &c, err);
    if (rc != TK_OK)
        return rc;
    PGresult *res = PQexec(tk_conn_pg(c), sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = tk_conn_error_from_result(tk_conn_pg(c), res, err);
    } else {
        out->steps = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        double *f[] = {&out->p50,           &out->p95,      &out->queued,  &out->run,
                       &out->orchestration, &out->task_p50, &out->task_p95};
        for (int i = 0; i < 7; i++)
            *f[i] = strtod(PQgetvalue(res, 0, i + 1), NULL);
    }
    PQclear(res);
    tk_conn_close(c);
    return rc;
}

/* Register the no-op template (namespace bench_noop). */
static int register_noop(const char *url, tk_error_t *err)
{
    tk_template_t *t;
    int rc = tk_template_load_string(noop_template, sizeof(noop_template) - 1, "bench-noop", NULL,
                                     NULL, &t, err);
    if (rc != TK_OK)
        return rc;
    tk_conn_t *c;
    rc = tk_conn_open(url, "tasker-bench", &c, err);
    if (rc == TK_OK) {
        rc = tk_template_register(c, t, err);
        tk_conn_close(c);
    }
    tk_template_free(t);
    return rc;
}

/* Wait until the run's `n` tasks are terminal, looking every POLL_MS; *failed = how many of
 * them did not complete; *end_us = when the last one finished, on this process's clock, from
 * its completed_at (so the poll interval does not add to the measured time). Fails when
 * nothing finishes for 60 s. The run's tasks are not waited for one by one: nobody asks for
 * their finish notices (sql/0025), as with tasks submitted in batches in production. */
#define POLL_MS 100
static int await_tasks(tk_bench_t *b, tk_conn_t *c, int n, int *failed, int64_t *end_us,
                       tk_error_t *err)
{
    static const tk_stmt_t finished = {
        "bench_tp_finished",
        "SELECT count(*) FILTER (WHERE state IN ('complete', 'error', 'cancelled',"
        "  'resolved_manually')),"
        " count(*) FILTER (WHERE state IN ('error', 'cancelled', 'resolved_manually')),"
        " (extract(epoch FROM clock_timestamp() - max(completed_at)) * 1e6)::bigint"
        " FROM tasker.tasks WHERE initiator = '" INITIATOR "'",
        0, true};
    int done = 0;
    int64_t last = tk_clock_ms();
    for (;;) {
        PGresult *res;
        int64_t now_us = tk_clock_us();
        int rc = tk_conn_query(c, &finished, NULL, &res, err);
        if (rc != TK_OK)
            return rc;
        int now_done = tk_parse_int_or(PQgetvalue(res, 0, 0), 0);
        *failed = tk_parse_int_or(PQgetvalue(res, 0, 1), 0);
        if (!PQgetisnull(res, 0, 2))
            *end_us = now_us - strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        PQclear(res);
        if (now_done > done) {
            done = now_done;
            last = tk_clock_ms();
            tk_bench_progress(b, "throughput: tasks finished", done, n);
        }
        if (done >= n)
            return TK_OK;
        if (tk_clock_ms() - last > 60000)
            return tk_error_set(err, TK_ETIMEDOUT,
                                "only %d of %d tasks finished (none in the last 60 s)", done, n);
        tk_sleep_ms(POLL_MS);
    }
}

int tk_bench_throughput(tk_bench_t *b)
{
    int n = tk_bench_count(b, b->opts.tp_tasks, 2000, 200);
    int k = b->opts.workers > 0 ? b->opts.workers : 2;
    int nclients = b->opts.clients > 0 ? b->opts.clients : 4;
    int batch = b->opts.submit_batch > 0 ? b->opts.submit_batch : 1;
    int warm = b->opts.quick ? 5 : 20;
    const char *workflow = b->opts.tp_workflow ? b->opts.tp_workflow : "linear";
    bool noop = strcmp(workflow, "noop") == 0;
    int steps = noop ? 1 : 4;
    const char *templates = b->opts.templates ? b->opts.templates : "examples/templates";
    if (nclients > 64)
        nclients = 64;
    tk_error_t err;
    char *url = NULL;
    char ns[64], name[256], version[64];
    int rc = tk_bench_db_create(b, "tasker_bench_tp", true, &url, &err);
    if (rc == TK_OK && noop) {
        rc = register_noop(url, &err);
        snprintf(ns, sizeof(ns), "bench_noop");
        snprintf(name, sizeof(name), "noop");
        snprintf(version, sizeof(version), "1.0.0");
    } else if (rc == TK_OK) {
        rc = tk_bench_find_workflow(templates, "linear", ns, name, version, &err);
    }
    if (rc != TK_OK) {
        free(url);
        tk_cli_fail("throughput: %s", err.message);
        return rc;
    }
    if (!b->tty)
        tk_bench_note(b, "throughput: %d %s tasks, %d workers, %d client threads, %d per POST", n,
                      workflow, k, nclients, batch);

    tk_bench_stack_t *stack = NULL;
    tk_conn_t *poll = NULL;
    client_t clients[64];
    int started = 0;
    int64_t end_us = 0;
    int failed_tasks = 0;
    rc = tk_bench_stack_start(b, url, &stack);
    for (int i = 0; rc == TK_OK && i < k; i++) {
        char id[64];
        snprintf(id, sizeof(id), "bench-tp-%d-%d", i + 1, (int)getpid());
        const char *extra[] = {"bench_noop"};
        rc = tk_bench_stack_add_worker(stack, noop ? "" : templates, id, noop ? extra : NULL,
                                       noop ? 1 : 0);
    }
    if (rc == TK_OK) {
        /* warm-up: every worker connected and listening, statements prepared */
        tk_bench_http_t *h = tk_bench_http_new(tk_bench_stack_url(stack));
        for (int i = 0; rc == TK_OK && h != NULL && i < warm; i++) {
            char body[512];
            snprintf(body, sizeof(body),
                     "{\"namespace\":\"%s\",\"name\":\"%s\",\"version\":\"%s\","
                     "\"context\":{\"even_number\":6,\"warmup\":%d,\"pid\":%d}}",
                     ns, name, version, i, (int)getpid());
            long status = 0;
            rc = tk_bench_http_post(h, "/v1/tasks?wait_ms=30000", body, 40000, &status, &err);
            json_t *resp = rc == TK_OK ? json_loads(tk_bench_http_body(h), 0, NULL) : NULL;
            const char *state = json_string_value(json_object_get(resp, "status"));
            if (rc == TK_OK && (status != 201 || state == NULL || strcmp(state, "complete") != 0))
                rc = tk_error_set(&err, TK_EINVAL, "warm-up task failed: HTTP %ld %.200s", status,
                                  tk_bench_http_body(h));
            json_decref(resp);
        }
        if (h == NULL)
            rc = tk_error_set(&err, TK_ENOMEM, "out of memory");
        tk_bench_http_free(h);
        if (rc == TK_OK)
            rc = tk_conn_open(url, "tasker-bench-throughput", &poll, &err);
        if (rc != TK_OK)
            tk_cli_fail("throughput: %s", err.message);
    }
    int64_t t0 = tk_clock_us();
    if (rc == TK_OK) {
        memset(clients, 0, sizeof(clients));
        int per = n / nclients, extra_tasks = n % nclients, next = 0;
        for (int i = 0; i < nclients; i++) {
            client_t *c = &clients[i];
            c->base_url = tk_bench_stack_url(stack);
            c->ns = ns;
            c->name = name;
            c->version = version;
            c->batch = batch;
            c->first = next;
            c->count = per + (i < extra_tasks);
            next += c->count;
            if (pthread_create(&c->thread, NULL, client_main, c) != 0)
                break;
            started++;
        }
        if (started < nclients) {
            rc = TK_ESYS;
            tk_cli_fail("throughput: could not start the client threads");
        }
    }
    int submitted = 0, submit_failed = 0;
    int64_t submit_end = t0;
    if (rc == TK_OK) {
        for (int i = 0; i < started; i++)
            submitted += clients[i].count;
        rc = await_tasks(b, poll, n, &failed_tasks, &end_us, &err);
        tk_bench_progress_done(b);
        if (rc != TK_OK)
            tk_cli_fail("throughput: %s", err.message);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(clients[i].thread, NULL);
        submit_failed += clients[i].failed;
        if (clients[i].failed > 0)
            tk_bench_note(b, "throughput: client %d: %d submissions failed: %s", i,
                          clients[i].failed, clients[i].error);
        if (clients[i].start_us > 0 && clients[i].start_us < t0)
            t0 = clients[i].start_us;
        if (clients[i].end_us > submit_end)
            submit_end = clients[i].end_us;
    }
    tk_conn_close(poll);
    tk_bench_stack_free(stack);
    if (rc == TK_OK && (submit_failed > 0 || failed_tasks > 0)) {
        tk_cli_fail("throughput: %d submissions failed, %d tasks did not complete", submit_failed,
                    failed_tasks);
        rc = TK_EDB;
    }
    latency_t lat;
    memset(&lat, 0, sizeof(lat));
    if (rc == TK_OK && (rc = step_latency(url, &lat, &err)) != TK_OK)
        tk_cli_fail("throughput: %s", err.message);
    free(url);
    if (rc != TK_OK)
        return rc;

    double elapsed = (double)(end_us - t0) / 1e6;
    double submit_s = (double)(submit_end - t0) / 1e6;
    double tps = submitted / elapsed, sps = (double)submitted * steps / elapsed;
    char mult[16];
    tk_bench_multiple(mult, sizeof(mult), lat.p50 * 1000, b->floor.commit_us);
    char how[64] = "one task per POST /v1/tasks";
    if (batch > 1)
        snprintf(how, sizeof(how), "%d tasks per POST /v1/tasks/batch", batch);
    printf("\nThroughput: %d %s tasks (%d steps each), %d C workers in this process, %d client "
           "threads with keep-alive, %s\n",
           submitted, workflow, steps, k, nclients, how);
    printf("  submitted in %.2f s (%.0f tasks/s accepted by the API); all finished after %.2f s\n",
           submit_s, submitted / submit_s, elapsed);
    printf("  %10s %10s %10s %10s %10s %10s %10s %10s %10s\n", "tasks/s", "steps/s", "step p50",
           "step p95", "queued p50", "run p50", "orch p50", "task p50", "task p95");
    printf("  %10.1f %10.1f %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f\n", tps, sps, lat.p50,
           lat.p95, lat.queued, lat.run, lat.orchestration, lat.task_p50, lat.task_p95);
    printf("  (ms; step = enqueued -> complete under load, %s the commit floor; "
           "steps/s x commit floor = %.2f)\n",
           mult, b->floor.commit_us > 0 ? sps * b->floor.commit_us / 1e6 : 0.0);
    fflush(stdout);
    json_object_set_new(b->doc, "throughput",
                        json_pack("{s:i, s:i, s:i, s:f, s:f, s:f}", "tasks", submitted, "workers",
                                  k, "submit_batch", batch, "tasks_per_s", tps, "steps_per_s", sps,
                                  "step_p50_ms", lat.p50));
    json_t *settings = json_object_get(b->doc, "settings");
    if (json_is_object(settings))
        json_object_set_new(settings, "throughput",
                            json_pack("{s:s, s:i, s:i, s:i, s:f}", "workflow", workflow, "clients",
                                      nclients, "warmup", warm, "steps_per_task", steps,
                                      "submit_seconds", submit_s));
    return TK_OK;
}
