/*
 * worker.c - the worker runtime (see worker.h and README.md beside this file).
 *
 * Data flow: the dispatcher claims at most as many steps as there are idle handler threads
 * (so nothing claimed waits for a thread while its lease runs), turns each row into a job and
 * queues it; a handler thread runs the job's handler and reports the result with
 * tasker.complete_step (and complete_step_follow_up when another report held the task); the
 * heartbeat thread renews the leases of every claimed step and fails the ones whose handler
 * overruns its timeout.
 *
 * Results of one task go to the database one call at a time: a result whose task already has
 * a report in flight from this worker waits at the task's gate and goes with the next call,
 * together with every other result waiting there (tasker.complete_steps); the first result
 * of a task waits up to SIBLING_WINDOW_US for siblings still running, so that steps finishing
 * together are reported together (README.md, "Siblings").
 *
 * A report's answer is taken before its commit is on disk (tk_conn_send_early): the steps it
 * claimed start at once, and its connection waits with them (parked_t) until the first of
 * their results goes on it, after that commit (README.md, "Results before their commit").
 * A claim woken by notifications walks only the queues they named (wait_for_work).
 *
 * A timed-out handler keeps its thread (C cannot stop it). The step is reported as failed
 * with error_type handler_timeout at once, a replacement thread keeps the pool at full size,
 * and the late thread drops its result and exits when the handler finally returns.
 *
 * Host handlers (tasker/worker.h: Ruby, Python) have their own run queue, served by the host
 * program's threads instead of the pool: tk_worker_host_next() takes a job and
 * tk_worker_host_done() reports it on the same host thread, which then takes the step its
 * result made ready (the continuation) with its next call. A step thus goes from claim to
 * report without changing threads. A timed-out host handler gets no replacement thread (the
 * host owns its threads); its late result is dropped the same way.
 *
 * Locking: one mutex guards the job queue, the in-flight list, the counters and the thread
 * accounting. Database calls are made without it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error_int.h"
#include "common/outcome.h"
#include "db/conn.h"
#include "db/pool.h"
#include "mq/listener.h"
#include "tasker/log.h"
#include "worker/registry.h"
#include "worker/step.h"
#include "worker/worker.h"

/* queued for a thread; its handler runs; its handler returned and its result is being
 * reported (the heartbeat no longer times it out); timed out or given up by a stopping worker */
typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_REPORTING, JOB_ABANDONED } job_state_t;

typedef struct job_s {
    tk_step_t *step;
    char step_uuid[40];
    int64_t timeout_ms;
    int64_t deadline_ms; /* set when the handler starts */
    job_state_t state;
    bool host;                               /* its handler runs on a host thread */
    bool at_gate;                            /* its result reached its task's report gate */
    struct parked_s *parked;                 /* the report that claimed it, commit outstanding */
    struct job_s *next;                      /* run queue */
    struct job_s *flight_prev, *flight_next; /* claimed and not yet reported */
} job_t;

/* A result waiting at its task's report gate (on its reporting thread's stack). */
typedef struct gated_result_s {
    job_t *job;
    const char *result; /* StepExecutionResult JSON */
    enum { RESULT_WAITS, RESULT_LEADS, RESULT_DONE } state;
    struct gated_result_s *next;
} gated_result_t;

/* A task with a report from this worker in flight or about to go: the results that will go
 * with its next call wait here. */
typedef struct report_gate_s {
    char task_uuid[40];
    gated_result_t *head, *tail;
    struct report_gate_s *next;
} report_gate_t;

/* How long the first result of a task waits for siblings still running in this worker. The
 * join after them can start only once the last is stored anyway, and handlers started
 * together by one continuation end within tens of microseconds of each other when they are
 * short (src/worker/README.md, "Siblings"). */
#define SIBLING_WINDOW_US 200

/* A run queue: jobs claimed and waiting for a thread, in order. */
typedef struct run_queue_s {
    job_t *head, *tail;
} run_queue_t;

struct tk_worker_s {
    tk_worker_opts_t o;
    char *database_url;
    char *worker_id;
    char *queues_array;   /* PostgreSQL array literal of the queue names */
    char *handlers_array; /* ... and of the callables this worker can run */
    char policy[96];      /* retry backoff, as a tasker.backoff_policy literal */
    char **namespaces;
    char **queues; /* worker_<namespace>_queue, in the order of namespaces */
    /* the dispatcher's own: the queues the next claim walks (see wait_for_work) */
    bool *notified;
    bool claim_all;
    tk_pool_t *pool;       /* handler threads' connections */
    tk_conn_t *claim_conn; /* opened and warmed by tk_worker_start; the dispatcher takes it */

    pthread_mutex_t lock;
    pthread_cond_t job_ready;
    pthread_cond_t thread_exit;
    run_queue_t pool_jobs; /* run queue of the handler pool */
    run_queue_t host_jobs; /* run queue of the host's threads */
    job_t *flight;         /* in-flight list */
    int queued, running;
    pthread_cond_t host_ready; /* CLOCK_MONOTONIC */
    int host_running;          /* of `running`, with a host thread */
    int host_waiting;          /* host threads waiting in tk_worker_host_next() */
    uint64_t host_wake_gen;    /* incremented by tk_worker_host_wake() */
    bool host_closed;          /* tk_worker_host_close() */
    int threads, target_threads;
    report_gate_t *gates;       /* tasks with a report under way */
    pthread_cond_t report_done; /* CLOCK_MONOTONIC: a gate changed */
    bool stopping;
    int wake_fd;
    pthread_t dispatcher, heartbeat;
    bool dispatcher_started, heartbeat_started;

    atomic_uint_fast64_t claimed, succeeded, failed, timed_out, lost, reported_together;
    atomic_bool db_ok;
};

static const tk_stmt_t claim_stmt = {
    "worker_claim",
    "SELECT * FROM tasker.claim_steps($1::text[], $2::text[], $3::int, $4, $5::int)", 5, false};
/* Store and apply a result, and claim up to $7 steps that became ready (continuation). */
static const tk_stmt_t complete_stmt = {
    "worker_complete",
    "SELECT * FROM tasker.complete_step($1::uuid, $2, $3::jsonb, $4::tasker.backoff_policy, "
    "$5::text[], $6::text[], $7::int, $8::int)",
    8, true /* a compare-and-swap on the lease: running it twice is harmless */};
/* complete_step answered task_state NULL: it stored the success while another report held the
 * task; decide now what it made ready, and claim up to $5 of those steps (sql/0031). */
static const tk_stmt_t follow_up_stmt = {
    "worker_follow_up",
    "SELECT * FROM tasker.complete_step_follow_up($1::uuid, $2, $3::text[], $4::text[], $5::int, "
    "$6::int)",
    6, true /* only reads under the task's lock, then starts steps still pending */};
/* Several results of one task: stored and applied in one transaction (sql/0034). */
static const tk_stmt_t complete_many_stmt = {
    "worker_complete_many",
    "SELECT * FROM tasker.complete_steps($1::uuid[], $2, $3::jsonb, $4::tasker.backoff_policy, "
    "$5::text[], $6::text[], $7::int, $8::int)",
    8, true /* compare-and-swaps on the leases, as complete_step */};
static const tk_stmt_t heartbeat_stmt = {
    "worker_heartbeat", "SELECT tasker.extend_step_leases($1, $2::uuid[], $3::int)", 3, true};

/* --- small helpers ------------------------------------------------------------------------ */

/* A PostgreSQL text-array literal {"a","b"} of `n` strings; NULL when out of memory. */
static char *array_literal(const char *const *items, int n)
{
    size_t len = 3;
    for (int i = 0; i < n; i++)
        len += 2 * strlen(items[i]) + 3;
    char *out = malloc(len), *p = out;
    if (out == NULL)
        return NULL;
    *p++ = '{';
    for (int i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        *p++ = '"';
        for (const char *s = items[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                *p++ = '\\';
            *p++ = *s;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

static void wake_dispatcher(tk_worker_t *w)
{
    uint64_t one = 1;
    ssize_t rc = write(w->wake_fd, &one, sizeof(one));
    (void)rc; /* a full counter still wakes the reader */
}

static void flight_add(tk_worker_t *w, job_t *job)
{
    job->flight_prev = NULL;
    job->flight_next = w->flight;
    if (w->flight != NULL)
        w->flight->flight_prev = job;
    w->flight = job;
}

static void flight_remove(tk_worker_t *w, job_t *job)
{
    if (job->flight_prev != NULL)
        job->flight_prev->flight_next = job->flight_next;
    else if (w->flight == job)
        w->flight = job->flight_next;
    if (job->flight_next != NULL)
        job->flight_next->flight_prev = job->flight_prev;
    job->flight_prev = job->flight_next = NULL;
}

static void parked_unref(tk_worker_t *w, struct parked_s *p);

static void job_free(tk_worker_t *w, job_t *job)
{
    if (job == NULL)
        return;
    parked_unref(w, job->parked);
    tk_step_free(job->step);
    free(job);
}

/* --- reporting ----------------------------------------------------------------------------- */

/* A report whose rows were taken before its commit (README.md, "Results before their
 * commit"). Its connection waits here, the commit outstanding, while the steps it claimed run;
 * the first report of one of them takes the connection, sends on it (the server runs that
 * statement right after the commit) and takes the commit on the way. Guarded by w->lock. */
typedef struct parked_s {
    tk_conn_t *conn; /* until a thread takes it */
    bool settled;    /* its commit was taken (or lost with the connection) */
    int refs;        /* jobs it claimed, not yet freed */
} parked_t;

/* The connection a report goes on: taken from a parked report (`from`, to be told when its
 * commit is taken), left by the report's previous call, or none yet (the pool's). After a
 * call, the call's commit is outstanding on `conn`. */
typedef struct report_conn_s {
    tk_conn_t *conn;
    parked_t *from;
} report_conn_t;

/* Take the commit of the last statement sent early on `c`; a failure means that report's
 * transaction is gone (its result and the claims of its continuation). */
static void take_report_commit(tk_conn_t *c)
{
    tk_error_t err;
    if (tk_conn_take_commit(c, &err) != TK_OK)
        TK_LOG(TK_LOG_ERROR, "worker",
               "a reported result may not be stored (%s); its step will run again when its "
               "lease ends",
               err.message);
}

/* Tell the threads waiting for `*from` that its commit is taken. */
static void parked_settled(tk_worker_t *w, parked_t **from)
{
    if (*from == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    (*from)->settled = true;
    pthread_cond_broadcast(&w->report_done);
    pthread_mutex_unlock(&w->lock);
    *from = NULL;
}

/* Before a result of a step claimed by parked report `p` goes out: take p's connection into
 * `rc` (the report goes on it), or take and settle it here when `rc` has one already, or wait
 * until the thread that took it has settled it. */
static void pass_parked(tk_worker_t *w, parked_t *p, report_conn_t *rc)
{
    if (p == NULL || p == rc->from)
        return;
    pthread_mutex_lock(&w->lock);
    tk_conn_t *c = p->conn;
    p->conn = NULL;
    while (c == NULL && !p->settled)
        pthread_cond_wait(&w->report_done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (c == NULL)
        return;
    if (rc->conn == NULL) {
        rc->conn = c;
        rc->from = p;
        return;
    }
    take_report_commit(c);
    tk_pool_release(w->pool, c);
    parked_settled(w, &p);
}

/* Take the outstanding commit on `rc`'s connection, if any, and give the connection back. */
static void settle_report_conn(tk_worker_t *w, report_conn_t *rc)
{
    if (rc->conn != NULL) {
        take_report_commit(rc->conn);
        tk_pool_release(w->pool, rc->conn);
        rc->conn = NULL;
    }
    parked_settled(w, &rc->from);
}

/* A job claimed by `p` is freed; the last one settles p if nobody took its connection. */
static void parked_unref(tk_worker_t *w, parked_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    bool last = --p->refs == 0;
    tk_conn_t *c = last ? p->conn : NULL;
    pthread_mutex_unlock(&w->lock);
    if (!last)
        return;
    if (c != NULL) {
        take_report_commit(c);
        tk_pool_release(w->pool, c);
    }
    free(p);
}

/* Run `stmt` (autocommit) on rc's connection, or one from the pool, and take its rows as soon
 * as the statement has run; its commit stays outstanding on rc->conn. A commit already
 * outstanding there (a parked report's, or this report's previous call's) is taken on the
 * way, after the statement went. On failure the connection goes back to the pool. */
static int query_early(tk_worker_t *w, const tk_stmt_t *stmt, const char *const *params,
                       report_conn_t *rc, PGresult **out, tk_error_t *err)
{
    *out = NULL;
    tk_conn_t *c = rc->conn;
    rc->conn = NULL;
    int code = c != NULL ? TK_OK : tk_pool_acquire(w->pool, 30000, &c, err);
    if (code == TK_OK)
        code = tk_conn_send_early(c, stmt, params, err);
    if (c != NULL && tk_conn_early_pending(c) > (code == TK_OK ? 1 : 0))
        take_report_commit(c); /* the previous statement's, which the server has finished */
    parked_settled(w, &rc->from);
    if (code == TK_OK)
        code = tk_conn_take_rows(c, out, err);
    if (code != TK_OK) {
        if (c != NULL)
            tk_pool_release(w->pool, c);
        return code;
    }
    rc->conn = c;
    return TK_OK;
}

/* The steps a report's rows claimed (rows with a step_uuid). */
static int claimed_rows(const PGresult *res)
{
    int col = PQfnumber(res, "step_uuid"), n = 0;
    for (int row = 0; col >= 0 && row < PQntuples(res); row++)
        n += !PQgetisnull(res, row, col);
    return n;
}

/* Run `stmt` on `conn` (query_early), retrying connection failures until `give_up` (ms);
 * `then` says in the log what happens to the step if it never gets through. Returns the rows
 * (caller PQclears) or NULL. */
static PGresult *query_until(tk_worker_t *w, const tk_stmt_t *stmt, const char *const *params,
                             report_conn_t *conn, int64_t give_up, const tk_log_ids_t *ids,
                             const char *then)
{
    for (int delay = 50;; delay = delay < 2000 ? delay * 2 : 2000) {
        PGresult *res;
        tk_error_t err;
        int rc = query_early(w, stmt, params, conn, &res, &err);
        if (rc == TK_OK)
            return res;
        if (rc != TK_ECONN && rc != TK_ETIMEDOUT) {
            TK_LOG_IDS(TK_LOG_ERROR, "worker", ids, "could not report the result: %s", err.message);
            return NULL;
        }
        if (tk_clock_ms() + delay > give_up) {
            TK_LOG_IDS(TK_LOG_ERROR, "worker", ids,
                       "could not report the result before the lease ran out: %s; %s", err.message,
                       then);
            return NULL;
        }
        tk_sleep_ms(delay);
    }
}

/* The lease-lost warning for a result the database refused. */
static void count_lost(tk_worker_t *w, const tk_log_ids_t *ids)
{
    atomic_fetch_add(&w->lost, 1);
    TK_LOG_IDS(TK_LOG_WARN, "worker", ids,
               "result dropped: the step's lease was lost (it ran too long or was cancelled)");
}

/* Send a result with tasker.complete_step on `conn`, retrying connection failures until the
 * lease would have expired anyway, and claim up to `max_next` of the steps it makes ready
 * (through complete_step_follow_up when complete_step found the task busy). Counts it as lost
 * when the lease was gone. Returns the rows (the verdict, then the steps claimed as
 * continuation; caller PQclears) or NULL; the commit stays outstanding on `conn`. */
static PGresult *report(tk_worker_t *w, const char *step_uuid, const char *result_json,
                        const tk_log_ids_t *ids, int max_next, report_conn_t *conn)
{
    char next[16], lease[16];
    snprintf(next, sizeof(next), "%d", max_next);
    snprintf(lease, sizeof(lease), "%d", w->o.lease_seconds);
    const char *params[] = {step_uuid,       w->worker_id,      result_json, w->policy,
                            w->queues_array, w->handlers_array, next,        lease};
    int64_t give_up = tk_clock_ms() + (int64_t)w->o.lease_seconds * 1000;
    PGresult *res =
        query_until(w, &complete_stmt, params, conn, give_up, ids, "the step will run again");
    if (res == NULL)
        return NULL;
    if (PQntuples(res) < 1 || PQgetvalue(res, 0, 0)[0] != 't') {
        count_lost(w, ids);
        return res;
    }
    if (PQgetisnull(res, 0, 2)) {
        /* stored; if the follow-up fails, the sweeper evaluates the task later */
        PQclear(res);
        const char *follow_params[] = {step_uuid,         w->worker_id, w->queues_array,
                                       w->handlers_array, next,         lease};
        res = query_until(w, &follow_up_stmt, follow_params, conn, give_up, ids,
                          "the result is stored; the sweeper will evaluate the task");
        if (res == NULL || PQntuples(res) < 1 || PQgetvalue(res, 0, 0)[0] != 't')
            return res;
    }
    tk_log_outcome("worker", ids, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    return res;
}

/* Send the results of `n` steps of one task (the list `batch`) with tasker.complete_steps on
 * `conn`, retrying connection failures as report() does, and claim up to `max_next` steps they
 * make ready. Counts the refused ones as lost. Returns the rows (a verdict per result in
 * order, then the steps claimed as continuation; caller PQclears) or NULL. */
static PGresult *report_many(tk_worker_t *w, const gated_result_t *batch, int n, int max_next,
                             report_conn_t *conn)
{
    const char **uuids = malloc((size_t)n * sizeof(*uuids));
    size_t results_len = 3;
    int k = 0;
    for (const gated_result_t *r = batch; r != NULL && uuids != NULL; r = r->next) {
        uuids[k++] = r->job->step_uuid;
        results_len += strlen(r->result) + 1;
    }
    char *steps = uuids != NULL ? array_literal(uuids, n) : NULL, *results = malloc(results_len);
    free(uuids);
    tk_step_t *first = batch->job->step;
    tk_log_ids_t task_ids = {tk_step_correlation_id(first), tk_step_task_uuid(first), NULL};
    if (steps == NULL || results == NULL) {
        free(steps);
        free(results);
        TK_LOG_IDS(TK_LOG_ERROR, "worker", &task_ids,
                   "could not report %d results: out of memory; the steps will run again", n);
        return NULL;
    }
    char *rp = results; /* [result,result,...] */
    *rp++ = '[';
    for (const gated_result_t *r = batch; r != NULL; r = r->next) {
        if (r != batch)
            *rp++ = ',';
        size_t len = strlen(r->result);
        memcpy(rp, r->result, len);
        rp += len;
    }
    memcpy(rp, "]", 2);
    char next[16], lease[16];
    snprintf(next, sizeof(next), "%d", max_next);
    snprintf(lease, sizeof(lease), "%d", w->o.lease_seconds);
    const char *params[] = {steps,           w->worker_id,      results, w->policy,
                            w->queues_array, w->handlers_array, next,    lease};
    int64_t give_up = tk_clock_ms() + (int64_t)w->o.lease_seconds * 1000;
    PGresult *res = query_until(w, &complete_many_stmt, params, conn, give_up, &task_ids,
                                "the steps will run again");
    free(steps);
    free(results);
    if (res == NULL)
        return NULL;
    atomic_fetch_add(&w->reported_together, (uint_fast64_t)n);
    int row = 0;
    for (const gated_result_t *r = batch; r != NULL; r = r->next, row++) {
        tk_step_t *step = r->job->step;
        tk_log_ids_t ids = {tk_step_correlation_id(step), tk_step_task_uuid(step),
                            tk_step_uuid(step)};
        if (row >= PQntuples(res) || PQgetvalue(res, row, 0)[0] != 't')
            count_lost(w, &ids);
        else
            tk_log_outcome("worker", &ids, PQgetvalue(res, row, 1), PQgetvalue(res, row, 2));
    }
    return res;
}

static int take_claimed(tk_worker_t *w, const PGresult *res, const job_t *reporter,
                        parked_t *parked);
static void finish_job(tk_worker_t *w, job_t *job);

/* Another job of `job`'s task in this worker that has not reached the gate: running its
 * handler, encoding its result, or queued while a thread of its kind is idle (a
 * continuation's siblings start a few tens of microseconds apart; with no idle thread a
 * queued sibling waits for this very one) (lock held). */
static bool sibling_running(const tk_worker_t *w, const job_t *job)
{
    const char *task = tk_step_task_uuid(job->step);
    bool idle_pool_thread = w->target_threads > w->running - w->host_running;
    for (const job_t *j = w->flight; j != NULL; j = j->flight_next) {
        if (j == job || j->state == JOB_ABANDONED || j->at_gate ||
            (j->state == JOB_QUEUED && !(j->host ? w->host_waiting > 0 : idle_pool_thread)))
            continue;
        if (strcmp(tk_step_task_uuid(j->step), task) == 0)
            return true;
    }
    return false;
}

static report_gate_t *gate_find(const tk_worker_t *w, const char *task_uuid)
{
    for (report_gate_t *g = w->gates; g != NULL; g = g->next)
        if (strcmp(g->task_uuid, task_uuid) == 0)
            return g;
    return NULL;
}

static void gate_close(tk_worker_t *w, report_gate_t *gate)
{
    for (report_gate_t **p = &w->gates; *p != NULL; p = &(*p)->next) {
        if (*p == gate) {
            *p = gate->next;
            break;
        }
    }
    free(gate);
}

/* Report `job`'s result through its task's gate (see the file comment): alone, or together
 * with its siblings' results, on this thread or on the thread whose call takes it along.
 * Queues the steps the call claimed as continuation, one for this thread to run next. */
static void report_at_gate(tk_worker_t *w, job_t *job, const char *result)
{
    gated_result_t self = {job, result, RESULT_WAITS, NULL};
    tk_step_t *step = job->step;
    pthread_mutex_lock(&w->lock);
    job->at_gate = true;
    report_gate_t *gate = gate_find(w, tk_step_task_uuid(step));
    if (gate != NULL) {
        /* a report of the task is under way: go with the next one */
        if (gate->tail != NULL)
            gate->tail->next = &self;
        else
            gate->head = &self; /* the first to go with the next call */
        gate->tail = &self;
        pthread_cond_broadcast(&w->report_done); /* a gathering first result looks again */
        while (self.state == RESULT_WAITS)
            pthread_cond_wait(&w->report_done, &w->lock);
        if (self.state == RESULT_DONE) {
            pthread_mutex_unlock(&w->lock); /* reported by the call that took it along */
            return;
        }
    } else if ((gate = calloc(1, sizeof(*gate))) != NULL) {
        snprintf(gate->task_uuid, sizeof(gate->task_uuid), "%s", tk_step_task_uuid(step));
        gate->head = gate->tail = &self;
        gate->next = w->gates;
        w->gates = gate;
    }
    if (gate != NULL) {
        /* this thread's call goes next: let siblings about to finish come along */
        int64_t until = tk_clock_us() + SIBLING_WINDOW_US;
        struct timespec ts = {.tv_sec = until / 1000000, .tv_nsec = (long)(until % 1000000) * 1000};
        while (sibling_running(w, job) &&
               pthread_cond_timedwait(&w->report_done, &w->lock, &ts) != ETIMEDOUT)
            ;
    } /* else out of memory: report alone */

    /* this thread reports every result waiting at the gate, its own first */
    gated_result_t *batch = gate != NULL ? gate->head : &self;
    if (gate != NULL)
        gate->head = gate->tail = NULL;
    int n = 0;
    for (gated_result_t *r = batch; r != NULL; r = r->next)
        n++;
    /* continuation: the ready children, as many as there are free places, counting the
     * reporting jobs' own (at least one: this thread runs it next, whatever other jobs came
     * in meanwhile) */
    int max_next = w->o.max_concurrent - (w->queued + w->running) + n;
    if (max_next < 1)
        max_next = 1;
    if (max_next > w->o.batch_size)
        max_next = w->o.batch_size;
    if (w->stopping)
        max_next = 0;
    pthread_mutex_unlock(&w->lock);

    /* the claims of these steps must be committed before their results go: on the
     * connection of a parked report that claimed one, or after its commit */
    report_conn_t conn = {NULL, NULL};
    for (gated_result_t *r = batch; r != NULL; r = r->next)
        pass_parked(w, r->job->parked, &conn);
    PGresult *res;
    if (n == 1) {
        tk_log_ids_t ids = {tk_step_correlation_id(step), tk_step_task_uuid(step),
                            tk_step_uuid(step)};
        res = report(w, job->step_uuid, result, &ids, max_next, &conn);
    } else {
        res = report_many(w, batch, n, max_next, &conn);
    }
    /* the steps it claimed start now, its commit outstanding, while the pool has connections
     * to spare; otherwise they start once it is committed */
    parked_t *parked = NULL;
    if (res != NULL && conn.conn != NULL && claimed_rows(res) > 0 &&
        tk_pool_has_spare(w->pool, 2) && (parked = calloc(1, sizeof(*parked))) != NULL) {
        parked->conn = conn.conn;
        conn.conn = NULL;
    }
    settle_report_conn(w, &conn);
    if (res != NULL) {
        take_claimed(w, res, job, parked); /* queued first: this thread runs one next */
        PQclear(res);
    }

    pthread_mutex_lock(&w->lock);
    for (gated_result_t *r = batch, *next; r != NULL; r = next) {
        next = r->next; /* a waiting thread's entry is gone once it sees RESULT_DONE */
        if (r != &self)
            r->state = RESULT_DONE;
    }
    if (gate != NULL) {
        if (gate->head != NULL)
            gate->head->state = RESULT_LEADS; /* results that came meanwhile go next */
        else
            gate_close(w, gate);
    }
    pthread_cond_broadcast(&w->report_done);
    pthread_mutex_unlock(&w->lock);
}

/* Run one job's handler on this handler thread, then finish it. */
static void run_job(tk_worker_t *w, job_t *job)
{
    tk_step_t *step = job->step;
    void *data = NULL;
    tk_handler_fn fn = tk_handler_registry_lookup(w->o.registry, tk_step_handler_name(step), &data);
    tk_step_mark_started(step);
    if (fn == NULL) {
        char msg[640];
        snprintf(msg, sizeof(msg), "no handler \"%s\" is registered on worker %s",
                 tk_step_handler_name(step), w->worker_id);
        tk_step_fail_by_worker(step, "handler_not_found", msg, false);
    } else {
        int rc = fn(step, data);
        if (!tk_step_has_outcome(step)) {
            char msg[128];
            snprintf(msg, sizeof(msg), "handler returned %d without a result", rc);
            tk_step_fail_by_worker(step, "handler_error", msg, true);
        }
    }
    tk_step_mark_finished(step);
    finish_job(w, job);
}

/* Report a job whose handler has returned (unless the heartbeat thread already reported a
 * timeout for it), queue the steps its result made ready, give back its place and free it. */
static void finish_job(tk_worker_t *w, job_t *job)
{
    tk_step_t *step = job->step;
    tk_log_ids_t ids = {tk_step_correlation_id(step), tk_step_task_uuid(step), tk_step_uuid(step)};
    pthread_mutex_lock(&w->lock);
    bool abandoned = job->state == JOB_ABANDONED;
    if (!abandoned)
        job->state = JOB_REPORTING;
    pthread_mutex_unlock(&w->lock);
    if (!abandoned) {
        char *result = tk_step_result_json(step, w->worker_id);
        if (result != NULL) {
            if (tk_step_succeeded(step)) {
                atomic_fetch_add(&w->succeeded, 1);
                TK_LOG_IDS(TK_LOG_INFO, "worker", &ids, "step %s (%s) completed in %.3f ms",
                           tk_step_name(step), tk_step_handler_name(step),
                           tk_step_execution_ms(step));
            } else {
                atomic_fetch_add(&w->failed, 1);
                TK_LOG_IDS(TK_LOG_WARN, "worker", &ids, "step %s (%s) failed on attempt %d",
                           tk_step_name(step), tk_step_handler_name(step), tk_step_attempt(step));
            }
            report_at_gate(w, job, result);
            free(result);
        } else {
            TK_LOG_IDS(TK_LOG_ERROR, "worker", &ids, "could not encode the result: out of memory");
            pthread_mutex_lock(&w->lock);
            job->at_gate = true; /* a sibling's result need not wait for it */
            pthread_mutex_unlock(&w->lock);
        }
    }

    pthread_mutex_lock(&w->lock);
    /* The dispatcher needs waking only if it stopped claiming for lack of threads; otherwise
     * it is already waiting for notifications and a claim now would find nothing. */
    bool was_full = w->queued + w->running >= w->o.max_concurrent;
    if (!abandoned) {
        w->running--;
        w->host_running -= job->host;
        flight_remove(w, job);
    } else if (!job->host) {
        w->target_threads--; /* its replacement stays; this late thread exits */
    }
    pthread_mutex_unlock(&w->lock);
    if (was_full)
        wake_dispatcher(w);
    job_free(w, job);
}

/* Queue a job at the back of q, or at the front (lock held). */
static void queue_push(run_queue_t *q, job_t *job, bool front)
{
    job->next = NULL;
    if (front) {
        job->next = q->head;
        q->head = job;
        if (q->tail == NULL)
            q->tail = job;
    } else {
        if (q->tail != NULL)
            q->tail->next = job;
        else
            q->head = job;
        q->tail = job;
    }
}

/* Take the first job of q, if any, mark it running and start its clock (lock held). */
static job_t *start_next_job(tk_worker_t *w, run_queue_t *q)
{
    job_t *job = q->head;
    if (job == NULL)
        return NULL;
    q->head = job->next;
    if (q->head == NULL)
        q->tail = NULL;
    w->queued--;
    w->running++;
    w->host_running += job->host;
    job->state = JOB_RUNNING;
    job->deadline_ms = tk_clock_ms() + job->timeout_ms;
    return job;
}

static void *handler_thread(void *arg)
{
    tk_worker_t *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->pool_jobs.head == NULL && !w->stopping && w->threads <= w->target_threads)
            pthread_cond_wait(&w->job_ready, &w->lock);
        if (w->threads > w->target_threads || (w->pool_jobs.head == NULL && w->stopping))
            break;
        job_t *job = start_next_job(w, &w->pool_jobs);
        pthread_mutex_unlock(&w->lock);
        run_job(w, job);
        pthread_mutex_lock(&w->lock);
    }
    w->threads--;
    pthread_cond_broadcast(&w->thread_exit);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Start one more detached handler thread (lock held). */
static int spawn_handler_thread(tk_worker_t *w)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, handler_thread, w);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return TK_ESYS;
    w->threads++;
    return TK_OK;
}

/* --- heartbeat and timeouts --------------------------------------------------------------- */

/* Fail every running job past its deadline (lock taken here). */
static void enforce_timeouts(tk_worker_t *w)
{
    typedef struct expired_s {
        char step_uuid[40];
        int64_t timeout_ms;
        int attempt;
        char ids[3][40];
        parked_t *parked; /* the report that claimed it (held), or NULL */
    } expired_t;
    expired_t expired[16];
    int n = 0;
    int64_t now = tk_clock_ms();

    pthread_mutex_lock(&w->lock);
    for (job_t *job = w->flight, *next; job != NULL && n < 16; job = next) {
        next = job->flight_next;
        if (job->state != JOB_RUNNING || now < job->deadline_ms)
            continue;
        job->state = JOB_ABANDONED;
        w->running--;
        w->host_running -= job->host;
        flight_remove(w, job);
        expired_t *e = &expired[n++];
        snprintf(e->step_uuid, sizeof(e->step_uuid), "%s", job->step_uuid);
        e->timeout_ms = job->timeout_ms;
        e->attempt = tk_step_attempt(job->step);
        e->parked = job->parked;
        if (e->parked != NULL)
            e->parked->refs++;
        snprintf(e->ids[0], 40, "%s", tk_step_correlation_id(job->step));
        snprintf(e->ids[1], 40, "%s", tk_step_task_uuid(job->step));
        snprintf(e->ids[2], 40, "%s", tk_step_uuid(job->step));
        /* the stuck thread keeps running; keep the pool at full strength (a host thread
         * belongs to the host) */
        if (!job->host) {
            w->target_threads++;
            if (spawn_handler_thread(w) != TK_OK)
                w->target_threads--;
        }
    }
    pthread_mutex_unlock(&w->lock);

    for (int i = 0; i < n; i++) {
        expired_t *e = &expired[i];
        tk_log_ids_t ids = {e->ids[0], e->ids[1], e->ids[2]};
        TK_LOG_IDS(TK_LOG_WARN, "worker", &ids, "handler exceeded its timeout of %lld ms",
                   (long long)e->timeout_ms);
        char result[768];
        snprintf(result, sizeof(result),
                 "{\"step_uuid\":\"%s\",\"success\":false,\"status\":\"failed\",\"result\":{},"
                 "\"error\":{\"message\":\"handler exceeded its timeout of %lld ms\","
                 "\"error_type\":\"handler_timeout\",\"retryable\":true},"
                 "\"metadata\":{\"execution_time_ms\":%lld,\"worker_id\":\"%s\","
                 "\"attempt\":%d,\"retryable\":true}}",
                 e->step_uuid, (long long)e->timeout_ms, (long long)e->timeout_ms, w->worker_id,
                 e->attempt);
        atomic_fetch_add(&w->failed, 1);
        atomic_fetch_add(&w->timed_out, 1);
        report_conn_t conn = {NULL, NULL};
        pass_parked(w, e->parked, &conn);
        PQclear(report(w, e->step_uuid, result, &ids, 0, &conn));
        settle_report_conn(w, &conn);
        parked_unref(w, e->parked);
        wake_dispatcher(w);
    }
    /* A job abandoned here is freed by its own thread when the handler returns; that thread
     * then gives back the extra slot and exits (run_job). */
}

/* Renew the lease of every claimed step in one round trip. */
static void renew_leases(tk_worker_t *w, tk_conn_t **conn)
{
    size_t cap = 64, len = 0;
    char *steps = malloc(cap);
    if (steps == NULL)
        return;
    steps[len++] = '{';
    pthread_mutex_lock(&w->lock);
    for (job_t *job = w->flight; job != NULL; job = job->flight_next) {
        if (len + 40 >= cap) {
            char *bigger = realloc(steps, cap * 2);
            if (bigger == NULL)
                break;
            steps = bigger;
            cap *= 2;
        }
        len += (size_t)snprintf(steps + len, cap - len, "%s%s", len > 1 ? "," : "", job->step_uuid);
    }
    pthread_mutex_unlock(&w->lock);
    steps[len++] = '}';
    steps[len] = '\0';
    if (len > 2) {
        char lease[16];
        snprintf(lease, sizeof(lease), "%d", w->o.lease_seconds);
        const char *params[] = {w->worker_id, steps, lease};
        tk_error_t err;
        int rc = *conn ? tk_conn_run(*conn, &heartbeat_stmt, params, &err) : TK_ECONN;
        if (rc == TK_ECONN) {
            tk_conn_close(*conn);
            *conn = NULL;
            if (tk_conn_open(w->database_url, "tasker-worker-heartbeat", conn, &err) == TK_OK)
                rc = tk_conn_run(*conn, &heartbeat_stmt, params, &err);
        }
        if (rc != TK_OK)
            TK_LOG(TK_LOG_WARN, "worker", "could not renew leases: %s", err.message);
    }
    free(steps);
}

static void *heartbeat_thread(void *arg)
{
    tk_worker_t *w = arg;
    tk_conn_t *conn = NULL;
    tk_error_t err;
    if (tk_conn_open(w->database_url, "tasker-worker-heartbeat", &conn, &err) != TK_OK)
        TK_LOG(TK_LOG_WARN, "worker", "heartbeat: %s", err.message);
    int tick = w->o.heartbeat_interval_ms < 50 ? w->o.heartbeat_interval_ms : 50;
    int64_t next_beat = tk_clock_ms() + w->o.heartbeat_interval_ms;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        bool stop = w->stopping && w->flight == NULL;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        enforce_timeouts(w);
        if (tk_clock_ms() >= next_beat) {
            renew_leases(w, &conn);
            next_beat = tk_clock_ms() + w->o.heartbeat_interval_ms;
        }
        tk_sleep_ms(tick);
    }
    tk_conn_close(conn);
    return NULL;
}

/* --- dispatcher ---------------------------------------------------------------------------- */

/* Claim up to `want` steps and queue them. Returns the number claimed, or a negative code. */
static int claim(tk_worker_t *w, tk_conn_t *conn, int want)
{
    /* the queues notifications named since the last claim, else all of them */
    const char **named = w->claim_all ? NULL : malloc((size_t)w->o.nnamespaces * sizeof(*named));
    int nnamed = 0;
    for (int i = 0; named != NULL && i < w->o.nnamespaces; i++)
        if (w->notified[i])
            named[nnamed++] = w->queues[i];
    char *queues = nnamed > 0 ? array_literal(named, nnamed) : NULL;
    free(named);
    memset(w->notified, 0, (size_t)w->o.nnamespaces * sizeof(bool));
    w->claim_all = false;

    char limit[16], lease[16];
    snprintf(limit, sizeof(limit), "%d", want);
    snprintf(lease, sizeof(lease), "%d", w->o.lease_seconds);
    const char *params[] = {queues ? queues : w->queues_array, w->handlers_array, limit,
                            w->worker_id, lease};
    PGresult *res;
    tk_error_t err;
    int rc = tk_conn_query(conn, &claim_stmt, params, &res, &err);
    free(queues);
    if (rc != TK_OK) {
        w->claim_all = true;
        if (atomic_exchange(&w->db_ok, false))
            TK_LOG(TK_LOG_WARN, "worker", "could not claim steps: %s", err.message);
        return rc;
    }
    if (!atomic_exchange(&w->db_ok, true))
        TK_LOG(TK_LOG_INFO, "worker", "database reachable again");
    int n = take_claimed(w, res, NULL, NULL);
    PQclear(res);
    return n;
}

/* Turn the claimed steps in `res` (rows with a step_uuid) into queued jobs on the run queue
 * of their handler's threads (the pool's or the host's): at the back, or at the front for a
 * continuation (`reporter` is then the job whose result made them ready, NULL for a claim).
 * A waiting thread is woken for each, except for one continuation that the reporting
 * thread, looping back, can take itself. `parked` (or NULL) is the report that claimed them,
 * its commit outstanding: each job holds it until freed. Returns how many. */
static int take_claimed(tk_worker_t *w, const PGresult *res, const job_t *reporter,
                        parked_t *parked)
{
    bool front = reporter != NULL, kept_one = false;
    if (parked != NULL)
        parked->refs = 1; /* this call's own, so that a job run and freed at once leaves it */
    int col = PQfnumber(res, "step_uuid"), taken = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        if (col < 0 || PQgetisnull(res, row, col))
            continue; /* complete_step's verdict row */
        job_t *job = calloc(1, sizeof(*job));
        int64_t timeout = tk_step_timeout_ms(res, row, w->o.handler_timeout_ms);
        if (job != NULL)
            job->step = tk_step_from_claim(res, row, tk_clock_ms() + timeout);
        if (job == NULL || job->step == NULL) {
            /* The lease expires and the step runs again elsewhere. */
            TK_LOG(TK_LOG_ERROR, "worker",
                   "could not take claimed step %s: out of memory or undecodable JSON",
                   PQgetvalue(res, row, col));
            free(job);
            continue;
        }
        job->timeout_ms = timeout;
        job->host = tk_handler_registry_is_host(w->o.registry, tk_step_handler_name(job->step));
        tk_step_set_owner(job->step, job);
        snprintf(job->step_uuid, sizeof(job->step_uuid), "%s", tk_step_uuid(job->step));
        tk_log_ids_t ids = {tk_step_correlation_id(job->step), tk_step_task_uuid(job->step),
                            job->step_uuid};
        TK_LOG_IDS(TK_LOG_DEBUG, "worker", &ids, "claimed step %s (%s), attempt %d%s",
                   tk_step_name(job->step), tk_step_handler_name(job->step),
                   tk_step_attempt(job->step), front ? " (continuation)" : "");
        atomic_fetch_add(&w->claimed, 1);
        pthread_mutex_lock(&w->lock);
        job->state = JOB_QUEUED;
        job->parked = parked;
        if (parked != NULL)
            parked->refs++;
        queue_push(job->host ? &w->host_jobs : &w->pool_jobs, job, front);
        w->queued++;
        flight_add(w, job);
        if (!front || job->host != reporter->host || kept_one)
            pthread_cond_signal(job->host ? &w->host_ready : &w->job_ready);
        else
            kept_one = true;
        pthread_mutex_unlock(&w->lock);
        taken++;
    }
    parked_unref(w, parked);
    return taken;
}

/* A notification for the next claim: the queue it names, or every queue (a reconnect, when
 * notifications may have been missed, or a message this worker cannot place). */
static void note_event(tk_worker_t *w, const tk_mq_event_t *ev)
{
    if (ev->kind == TK_MQ_EVENT_MESSAGE)
        for (int i = 0; i < w->o.nnamespaces; i++)
            if (strcmp(ev->queue_name, w->queues[i]) == 0) {
                w->notified[i] = true;
                return;
            }
    w->claim_all = true;
}

/* Sleep until a notification, a finished job or the timeout. The next claim walks only the
 * queues notifications named (each empty queue walked costs the claim 10-15 us in place),
 * unless the wait ended otherwise: a timeout (polling catches what a missed notification
 * announced) or a finished job (places freed for what is waiting anywhere). */
static void wait_for_work(tk_worker_t *w, tk_mq_listener_t *listener, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = w->wake_fd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    int nfds = 1;
    tk_mq_event_t ev;
    tk_error_t err;
    if (listener != NULL) {
        /* events may already be buffered inside the listener */
        if (tk_mq_listener_wait(listener, 0, &ev, &err) == TK_OK) {
            note_event(w, &ev);
            while (tk_mq_listener_wait(listener, 0, &ev, &err) == TK_OK)
                note_event(w, &ev);
            return;
        }
        fds[1].fd = tk_mq_listener_fd(listener);
        if (fds[1].fd < 0) {
            /* disconnected: let the listener reconnect within our timeout */
            tk_mq_listener_wait(listener, timeout_ms < 1000 ? timeout_ms : 1000, &ev, &err);
            w->claim_all = true;
            return;
        }
        nfds = 2;
    }
    int rc = poll(fds, (nfds_t)nfds, timeout_ms);
    if (rc <= 0 || (fds[0].revents & POLLIN))
        w->claim_all = true;
    if (rc > 0 && (fds[0].revents & POLLIN)) {
        uint64_t count;
        ssize_t got = read(w->wake_fd, &count, sizeof(count));
        (void)got;
    }
    if (listener != NULL)
        while (tk_mq_listener_wait(listener, 0, &ev, &err) == TK_OK)
            note_event(w, &ev); /* drain: one claim serves them all */
}

static void *dispatcher_thread(void *arg)
{
    tk_worker_t *w = arg;
    tk_conn_t *conn = w->claim_conn; /* NULL if it could not be opened: opened below */
    w->claim_conn = NULL;
    tk_mq_listener_t *listener = NULL;
    tk_error_t err;
    int backoff_ms = 100;

    for (;;) {
        pthread_mutex_lock(&w->lock);
        bool stop = w->stopping;
        int capacity = w->o.max_concurrent - (w->queued + w->running);
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;

        if (conn == NULL) {
            if (tk_conn_open(w->database_url, "tasker-worker", &conn, &err) != TK_OK) {
                if (atomic_exchange(&w->db_ok, false))
                    TK_LOG(TK_LOG_WARN, "worker", "%s", err.message);
                wait_for_work(w, NULL, backoff_ms);
                backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
                continue;
            }
            if (tk_conn_warm_up(conn, &err) != TK_OK) /* after a reconnect (sql/0041) */
                TK_LOG(TK_LOG_DEBUG, "worker", "warm-up skipped: %s", err.message);
        }
        if (listener == NULL && w->o.mode != TK_CONFIG_MODE_POLLING) {
            if (tk_mq_listener_open(w->database_url, &listener, &err) == TK_OK) {
                for (int i = 0; i < w->o.nnamespaces; i++)
                    tk_mq_listener_subscribe(listener, w->namespaces[i], &err);
            }
        }

        if (capacity > 0) {
            int want = capacity < w->o.batch_size ? capacity : w->o.batch_size;
            int got = claim(w, conn, want);
            if (got == TK_ECONN) {
                tk_conn_close(conn);
                conn = NULL;
                wait_for_work(w, NULL, backoff_ms);
                backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
                continue;
            }
            backoff_ms = 100;
            if (got == want) {
                w->claim_all = true; /* there may be more waiting, in any queue */
                continue;
            }
        }
        int timeout = w->o.poll_interval_ms;
        if (w->o.mode == TK_CONFIG_MODE_EVENT_DRIVEN && listener != NULL)
            timeout = 60000; /* only a safety net: notifications drive this mode */
        wait_for_work(w, listener, capacity > 0 ? timeout : 1000);
    }
    tk_mq_listener_close(listener);
    tk_conn_close(conn);
    return NULL;
}

/* --- host threads --------------------------------------------------------------------------- */

int tk_worker_host_next(tk_worker_t *w, int timeout_ms, tk_step_t **step)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : tk_clock_ms() + timeout_ms;
    *step = NULL;
    pthread_mutex_lock(&w->lock);
    uint64_t gen = w->host_wake_gen;
    w->host_waiting++;
    while (w->host_jobs.head == NULL && !w->stopping && !w->host_closed &&
           w->host_wake_gen == gen) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&w->host_ready, &w->lock);
            continue;
        }
        if (tk_clock_ms() >= deadline)
            break;
        struct timespec ts = {.tv_sec = deadline / 1000,
                              .tv_nsec = (long)(deadline % 1000) * 1000000L};
        pthread_cond_timedwait(&w->host_ready, &w->lock, &ts);
    }
    w->host_waiting--;
    int rc = TK_ETIMEDOUT;
    if (w->stopping || w->host_closed) {
        rc = TK_ESHUTDOWN;
    } else if (w->host_jobs.head != NULL && w->host_wake_gen == gen) {
        job_t *job = start_next_job(w, &w->host_jobs);
        tk_step_mark_started(job->step);
        *step = job->step;
        rc = TK_OK;
    } else if (w->host_jobs.head != NULL) {
        pthread_cond_signal(&w->host_ready); /* woken: leave the step to another waiter */
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void tk_worker_host_wake(tk_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->host_wake_gen++;
    pthread_cond_broadcast(&w->host_ready);
    pthread_mutex_unlock(&w->lock);
}

void tk_worker_host_close(tk_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->host_closed = true;
    pthread_cond_broadcast(&w->host_ready);
    pthread_mutex_unlock(&w->lock);
}

void tk_worker_host_done(tk_worker_t *w, tk_step_t *step)
{
    if (!tk_step_has_outcome(step))
        tk_step_fail_by_worker(step, "handler_error", "the handler returned no result", true);
    tk_step_mark_finished(step);
    finish_job(w, tk_step_owner(step));
}

/* Fail, as retryable, the steps queued for host threads that will not take them any more
 * (stopping), so that they run again soon instead of when their lease expires. */
static void fail_queued_host_jobs(tk_worker_t *w)
{
    for (;;) {
        pthread_mutex_lock(&w->lock);
        job_t *job = start_next_job(w, &w->host_jobs);
        pthread_mutex_unlock(&w->lock);
        if (job == NULL)
            return;
        tk_step_fail_by_worker(job->step, "worker_stopping",
                               "the worker stopped before running this step", true);
        finish_job(w, job);
    }
}

/* --- lifecycle ----------------------------------------------------------------------------- */

static void worker_free(tk_worker_t *w)
{
    if (w == NULL)
        return;
    tk_pool_close(w->pool);
    tk_conn_close(w->claim_conn);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    for (int i = 0; i < w->o.nnamespaces; i++) {
        free(w->namespaces ? w->namespaces[i] : NULL);
        free(w->queues ? w->queues[i] : NULL);
    }
    free(w->namespaces);
    free(w->queues);
    free(w->notified);
    free(w->queues_array);
    free(w->handlers_array);
    free(w->database_url);
    free(w->worker_id);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->job_ready);
    pthread_cond_destroy(&w->host_ready);
    pthread_cond_destroy(&w->thread_exit);
    free(w);
}

static int check_opts(const tk_worker_opts_t *o, tk_error_t *err)
{
    if (o->registry == NULL || tk_handler_registry_count(o->registry) == 0)
        return tk_error_set(err, TK_EINVAL, "cannot start worker: no handlers registered");
    if (o->nnamespaces < 1)
        return tk_error_set(err, TK_EINVAL,
                            "cannot start worker: no namespaces to serve (load templates or name "
                            "a namespace)");
    if (o->worker_id == NULL || o->worker_id[0] == '\0')
        return tk_error_set(err, TK_EINVAL, "cannot start worker: empty worker id");
    if (o->max_concurrent < 1 || o->batch_size < 1 || o->lease_seconds < 1 ||
        o->poll_interval_ms < 1 || o->handler_timeout_ms < 1 || o->heartbeat_interval_ms < 1)
        return tk_error_set(err, TK_EINVAL,
                            "cannot start worker: sizes and intervals must be "
                            "positive");
    if ((int64_t)o->heartbeat_interval_ms >= (int64_t)o->lease_seconds * 1000)
        return tk_error_set(err, TK_EINVAL,
                            "cannot start worker: heartbeat interval (%d ms) must be shorter than "
                            "the lease (%d s)",
                            o->heartbeat_interval_ms, o->lease_seconds);
    return TK_OK;
}

int tk_worker_start(const tk_worker_opts_t *opts, tk_worker_t **out, tk_error_t *err)
{
    *out = NULL;
    int rc = check_opts(opts, err);
    if (rc != TK_OK)
        return rc;
    tk_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return tk_error_set(err, TK_ENOMEM, "cannot start worker: out of memory");
    w->o = *opts;
    w->wake_fd = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->job_ready, NULL);
    pthread_cond_init(&w->thread_exit, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->host_ready, &attr);
    pthread_cond_init(&w->report_done, &attr);
    pthread_condattr_destroy(&attr);
    w->database_url = strdup(opts->database_url ? opts->database_url : "");
    w->worker_id = strdup(opts->worker_id);
    w->namespaces = calloc((size_t)opts->nnamespaces, sizeof(char *));
    w->queues = calloc((size_t)opts->nnamespaces, sizeof(char *));
    w->notified = calloc((size_t)opts->nnamespaces + 1, sizeof(bool));
    w->claim_all = true;
    int nhandlers = tk_handler_registry_count(opts->registry);
    const char **handlers = calloc((size_t)nhandlers, sizeof(char *));
    bool ok =
        w->database_url && w->worker_id && w->namespaces && w->queues && w->notified && handlers;
    for (int i = 0; ok && i < opts->nnamespaces; i++) {
        w->namespaces[i] = strdup(opts->namespaces[i]);
        ok = w->namespaces[i] != NULL &&
             asprintf(&w->queues[i], "worker_%s_queue", opts->namespaces[i]) >= 0;
    }
    for (int i = 0; ok && i < nhandlers; i++)
        handlers[i] = tk_handler_registry_name(opts->registry, i);
    if (ok) {
        w->queues_array = array_literal((const char *const *)w->queues, opts->nnamespaces);
        w->handlers_array = array_literal(handlers, nhandlers);
        ok = w->queues_array && w->handlers_array;
    }
    free(handlers);
    if (!ok) {
        worker_free(w);
        return tk_error_set(err, TK_ENOMEM, "cannot start worker: out of memory");
    }
    tk_backoff_literal(&opts->backoff, w->policy, sizeof(w->policy));
    w->o.database_url = w->database_url;
    w->o.worker_id = w->worker_id;
    w->o.namespaces = (const char *const *)w->namespaces;

    rc = tk_pool_open(w->database_url, "tasker-worker", opts->max_concurrent + 1, &w->pool, err);
    if (rc != TK_OK) {
        worker_free(w);
        return rc;
    }
    /* Warm the connection the dispatcher claims on and the pool's first (results are reported
     * there) before the first steps come (sql/0041): a warm-up running beside the first task
     * delays it instead. Warming four pool connections instead of one took `make run`'s first
     * workflow (seven steps, some in parallel) from 35 to 28 ms in one run each, for three
     * more warm-ups of about 65 ms at every start: not done. */
    tk_error_t warm_err;
    if (tk_conn_open(w->database_url, "tasker-worker", &w->claim_conn, &warm_err) != TK_OK ||
        tk_conn_warm_up(w->claim_conn, &warm_err) != TK_OK ||
        tk_pool_warm_up(w->pool, &warm_err) != TK_OK)
        TK_LOG(TK_LOG_DEBUG, "worker", "warm-up skipped: %s", warm_err.message);
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->wake_fd < 0) {
        rc = tk_error_set(err, TK_ESYS, "cannot start worker: eventfd: %s", strerror(errno));
        worker_free(w);
        return rc;
    }
    atomic_store(&w->db_ok, true);

    pthread_mutex_lock(&w->lock);
    w->target_threads = opts->max_concurrent;
    for (int i = 0; i < opts->max_concurrent && rc == TK_OK; i++)
        rc = spawn_handler_thread(w);
    pthread_mutex_unlock(&w->lock);
    if (rc == TK_OK && pthread_create(&w->heartbeat, NULL, heartbeat_thread, w) == 0)
        w->heartbeat_started = true;
    if (rc == TK_OK && w->heartbeat_started &&
        pthread_create(&w->dispatcher, NULL, dispatcher_thread, w) == 0)
        w->dispatcher_started = true;
    if (!w->dispatcher_started) {
        tk_worker_stop(w, 0);
        return tk_error_set(err, TK_ESYS, "cannot start worker: could not create threads");
    }
    TK_LOG(TK_LOG_INFO, "worker",
           "worker %s serving %d namespace%s with %d handler%s, %d at a time", w->worker_id,
           opts->nnamespaces, opts->nnamespaces == 1 ? "" : "s", nhandlers,
           nhandlers == 1 ? "" : "s", opts->max_concurrent);
    *out = w;
    return TK_OK;
}

bool tk_worker_stop(tk_worker_t *w, int grace_ms)
{
    if (w == NULL)
        return true;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->job_ready);
    pthread_cond_broadcast(&w->host_ready);
    pthread_mutex_unlock(&w->lock);
    wake_dispatcher(w);
    if (w->dispatcher_started)
        pthread_join(w->dispatcher, NULL);

    /* Let queued and running handlers finish and report; no host thread takes a step now. */
    int64_t deadline = tk_clock_ms() + (grace_ms > 0 ? grace_ms : 0);
    int left;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        left = w->threads + w->host_running;
        pthread_mutex_unlock(&w->lock);
        fail_queued_host_jobs(w); /* after counting: also what the last reports queued */
        if (left == 0 || tk_clock_ms() >= deadline)
            break;
        tk_sleep_ms(10);
    }
    if (w->heartbeat_started) {
        pthread_mutex_lock(&w->lock);
        /* the heartbeat thread exits once nothing is in flight; abandon the rest */
        for (job_t *job = w->flight; job != NULL; job = job->flight_next)
            job->state = JOB_ABANDONED;
        w->flight = NULL;
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->heartbeat, NULL);
    }
    if (left > 0) {
        /* Handler threads still run user code that references the worker: leave it allocated
         * (the process is exiting); their steps' leases expire and run elsewhere. */
        TK_LOG(TK_LOG_WARN, "worker",
               "%d handler%s still running after %d ms; their steps will run again elsewhere", left,
               left == 1 ? "" : "s", grace_ms);
        return false;
    }
    TK_LOG(TK_LOG_INFO, "worker", "worker %s stopped", w->worker_id);
    worker_free(w);
    return true;
}

void tk_worker_stats(tk_worker_t *w, tk_worker_stats_t *out)
{
    out->claimed = atomic_load(&w->claimed);
    out->succeeded = atomic_load(&w->succeeded);
    out->failed = atomic_load(&w->failed);
    out->timed_out = atomic_load(&w->timed_out);
    out->lost = atomic_load(&w->lost);
    out->reported_together = atomic_load(&w->reported_together);
    out->database_ok = atomic_load(&w->db_ok);
    pthread_mutex_lock(&w->lock);
    out->in_flight = w->queued + w->running;
    pthread_mutex_unlock(&w->lock);
}
