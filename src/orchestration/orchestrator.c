/*
 * orchestrator.c - results loop and sweeper (see orchestrator.h).
 *
 * Results loop: apply up to result_batch_size results per call of
 * tasker.process_step_results, again at once while batches come back full; then sleep until a
 * notification on "pgmq_message_ready.orchestration", the polling interval (hybrid, polling),
 * or the moment a delayed message becomes visible (a retry's backoff ends: its notification
 * carries delay_seconds, so the loop wakes exactly then instead of waiting for a poll).
 *
 * Sweeper: tasker.sweep every sweep_interval_ms on its own connection.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error_int.h"
#include "common/outcome.h"
#include "db/conn.h"
#include "mq/listener.h"
#include "orchestration/orchestrator.h"
#include "tasker/log.h"

const double tk_latency_bounds_ms[TK_LATENCY_BUCKETS] = {1,   2,   5,    10,   25,    50,
                                                         100, 250, 1000, 5000, 30000, 1e300};

#define MAX_WAKEUPS 256

struct tk_orchestrator_s {
    tk_orchestrator_opts_t o;
    char *database_url;
    char policy[96];
    pthread_t results_thread, sweep_thread;
    bool results_started, sweep_started;
    pthread_mutex_t lock; /* guards stopping + the condition, and the stats below */
    pthread_cond_t stop_cond;
    bool stopping;
    tk_orchestrator_stats_t stats;
    int64_t wakeups[MAX_WAKEUPS]; /* results thread only: when delayed messages show up */
    int nwakeups;
};

static const tk_stmt_t process_stmt = {
    "orch_process",
    "SELECT task_uuid, step_uuid, step_state, task_state, step_latency_ms, correlation_id "
    "FROM tasker.process_step_results($1::int, $2::tasker.backoff_policy)",
    2, false};
static const tk_stmt_t sweep_stmt = {
    "orch_sweep", "SELECT tasker.sweep($1::tasker.backoff_policy, $2::int, $3::int, $4::boolean)",
    4, false};

static bool stopping(tk_orchestrator_t *o)
{
    pthread_mutex_lock(&o->lock);
    bool s = o->stopping;
    pthread_mutex_unlock(&o->lock);
    return s;
}

static void record_latency(tk_orchestrator_t *o, double ms)
{
    o->stats.latency_count++;
    o->stats.latency_sum_ms += ms;
    for (int i = 0; i < TK_LATENCY_BUCKETS; i++)
        if (ms <= tk_latency_bounds_ms[i])
            o->stats.latency_buckets[i]++;
}

/* One call of process_step_results. Returns the number of results applied or an error. */
static int process_batch(tk_orchestrator_t *o, tk_conn_t *conn)
{
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", o->o.result_batch_size);
    const char *params[] = {limit, o->policy};
    PGresult *res;
    tk_error_t err;
    int rc = tk_conn_query(conn, &process_stmt, params, &res, &err);
    pthread_mutex_lock(&o->lock);
    o->stats.result_rounds++;
    bool was_ok = o->stats.database_ok;
    o->stats.database_ok = rc == TK_OK;
    pthread_mutex_unlock(&o->lock);
    if (rc != TK_OK) {
        if (was_ok)
            TK_LOG(TK_LOG_WARN, "orchestrator", "could not process step results: %s", err.message);
        return rc;
    }
    if (!was_ok)
        TK_LOG(TK_LOG_INFO, "orchestrator", "database reachable again");
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *step_state = PQgetvalue(res, i, 2);
        const char *task_state = PQgetvalue(res, i, 3);
        tk_log_ids_t ids = {PQgetvalue(res, i, 5), PQgetvalue(res, i, 0),
                            PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1)};
        pthread_mutex_lock(&o->lock);
        o->stats.results++;
        if (strcmp(step_state, "complete") == 0 && !PQgetisnull(res, i, 4))
            record_latency(o, strtod(PQgetvalue(res, i, 4), NULL));
        if (strcmp(task_state, "complete") == 0)
            o->stats.tasks_complete++;
        else if (strcmp(task_state, "error") == 0)
            o->stats.tasks_error++;
        pthread_mutex_unlock(&o->lock);
        tk_log_outcome("orchestrator", &ids, step_state, task_state);
    }
    PQclear(res);
    return n;
}

/* Remember when the message announced by `payload` becomes visible, if that is later
 * (delay_seconds > 0). Returns false when it should be looked for now. */
static bool add_wakeup(tk_orchestrator_t *o, const char *payload)
{
    json_t *doc = json_loads(payload, 0, NULL);
    json_int_t delay = json_integer_value(json_object_get(doc, "delay_seconds"));
    json_decref(doc);
    if (delay <= 0 || o->nwakeups == MAX_WAKEUPS)
        return false;
    o->wakeups[o->nwakeups++] = tk_clock_ms() + delay * 1000 + 5;
    return true;
}

/* Milliseconds until the earliest pending wake-up (dropping those past), or `fallback`. */
static int next_wakeup_in(tk_orchestrator_t *o, int fallback)
{
    int64_t now = tk_clock_ms(), best = -1;
    int kept = 0;
    bool due = false;
    for (int i = 0; i < o->nwakeups; i++) {
        if (o->wakeups[i] <= now) {
            due = true;
            continue;
        }
        o->wakeups[kept++] = o->wakeups[i];
        if (best < 0 || o->wakeups[i] < best)
            best = o->wakeups[i];
    }
    o->nwakeups = kept;
    if (due)
        return 0;
    if (best < 0)
        return fallback;
    return best - now < fallback || fallback < 0 ? (int)(best - now) : fallback;
}

/* Apply result messages in rounds: at once after a notification (of a message visible now,
 * or a reconnection that may have lost some), when a delayed message (a retry) becomes visible,
 * and every poll_interval_ms otherwise (hybrid and polling; event_driven only every minute,
 * as a safety net). Between rounds it waits on the listener, waking every 250 ms to notice a
 * stop request without querying. */
static void *results_thread(void *arg)
{
    tk_orchestrator_t *o = arg;
    tk_conn_t *conn = NULL;
    tk_mq_listener_t *listener = NULL;
    tk_error_t err;
    int backoff_ms = 100;
    bool due = true;        /* a round is wanted now */
    int64_t next_round = 0; /* the polling period's next round (monotonic ms) */
    while (!stopping(o)) {
        if (conn == NULL &&
            tk_conn_open(o->database_url, "tasker-orchestrator", &conn, &err) != TK_OK) {
            tk_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
            continue;
        }
        if (listener == NULL && o->o.mode != TK_CONFIG_MODE_POLLING &&
            tk_mq_listener_open(o->database_url, &listener, &err) == TK_OK)
            tk_mq_listener_subscribe(listener, "orchestration", &err);

        if (due || tk_clock_ms() >= next_round) {
            int n = process_batch(o, conn);
            if (n == TK_ECONN) {
                tk_conn_close(conn);
                conn = NULL;
                tk_sleep_ms(backoff_ms);
                backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
                continue;
            }
            backoff_ms = 100;
            bool events_only = o->o.mode == TK_CONFIG_MODE_EVENT_DRIVEN && listener != NULL;
            next_round = tk_clock_ms() + (events_only ? 60000 : o->o.poll_interval_ms);
            due = n >= o->o.result_batch_size; /* a full batch: there may be more */
            if (due)
                continue;
        }

        int64_t until_round = next_round - tk_clock_ms();
        int timeout = next_wakeup_in(o, until_round > 0 ? (int)until_round : 0);
        if (timeout == 0) {
            due = true;
            continue;
        }
        if (timeout > 250)
            timeout = 250;
        if (listener == NULL) {
            tk_sleep_ms(timeout);
            continue;
        }
        /* Wait for the first event, then drain the rest without blocking. */
        tk_mq_event_t ev;
        for (int wait = timeout; tk_mq_listener_wait(listener, wait, &ev, &err) == TK_OK; wait = 0)
            if (ev.kind != TK_MQ_EVENT_MESSAGE || !add_wakeup(o, ev.payload))
                due = true; /* visible now, or reconnected: notifications may be lost */
    }
    tk_mq_listener_close(listener);
    tk_conn_close(conn);
    return NULL;
}

/* The sweeper: tasker.sweep every sweep_interval_ms. Its two parts whose cost grows with a
 * backlog (stuck tasks, lost messages) run only every tenth of stuck_task_seconds, at most
 * every minute (sql/0033): they catch what waits that long anyway. */
static void *sweep_thread(void *arg)
{
    tk_orchestrator_t *o = arg;
    tk_conn_t *conn = NULL;
    tk_error_t err;
    char stuck[16], limit[16] = "100";
    snprintf(stuck, sizeof(stuck), "%d", o->o.stuck_task_seconds);
    const char *params[] = {o->policy, stuck, limit, NULL};
    int64_t all_parts_every = (int64_t)o->o.stuck_task_seconds * 100;
    if (all_parts_every > 60000)
        all_parts_every = 60000;
    int64_t all_parts_next = 0; /* monotonic ms */
    pthread_mutex_lock(&o->lock);
    while (!o->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += o->o.sweep_interval_ms / 1000;
        until.tv_nsec += (long)(o->o.sweep_interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&o->stop_cond, &o->lock, &until);
        if (o->stopping)
            break;
        pthread_mutex_unlock(&o->lock);

        PGresult *res = NULL;
        int rc = TK_ECONN;
        bool all_parts = tk_clock_ms() >= all_parts_next;
        params[3] = all_parts ? "true" : "false";
        if (conn != NULL || tk_conn_open(o->database_url, "tasker-sweeper", &conn, &err) == TK_OK)
            rc = tk_conn_query(conn, &sweep_stmt, params, &res, &err);
        if (rc == TK_OK) {
            if (all_parts)
                all_parts_next = tk_clock_ms() + all_parts_every;
            json_t *counts = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
            json_int_t total = 0;
            const char *key;
            json_t *v;
            json_object_foreach(counts, key, v) total += json_integer_value(v);
            if (total > 0)
                TK_LOG(TK_LOG_INFO, "sweeper", "recovered: %s", PQgetvalue(res, 0, 0));
            json_decref(counts);
            PQclear(res);
            pthread_mutex_lock(&o->lock);
            o->stats.sweeps++;
            o->stats.full_sweeps += all_parts;
            o->stats.recovered += (uint64_t)total;
            continue;
        }
        TK_LOG(TK_LOG_WARN, "sweeper", "sweep failed: %s", err.message);
        if (rc == TK_ECONN) {
            tk_conn_close(conn);
            conn = NULL;
        }
        pthread_mutex_lock(&o->lock);
    }
    pthread_mutex_unlock(&o->lock);
    tk_conn_close(conn);
    return NULL;
}

int tk_orchestrator_start(const tk_orchestrator_opts_t *opts, tk_orchestrator_t **out,
                          tk_error_t *err)
{
    *out = NULL;
    if (opts->result_batch_size < 1 || opts->poll_interval_ms < 1 || opts->sweep_interval_ms < 0 ||
        opts->stuck_task_seconds < 1)
        return tk_error_set(err, TK_EINVAL,
                            "cannot start orchestrator: batch size, intervals and thresholds must "
                            "be positive");
    /* Fail early and clearly if the database is unreachable or not migrated. */
    tk_conn_t *probe;
    int rc = tk_conn_open(opts->database_url, "tasker-orchestrator", &probe, err);
    if (rc != TK_OK)
        return rc;
    rc = tk_conn_exec(probe, "SELECT 'tasker.process_step_results'::regproc", err);
    tk_conn_close(probe);
    if (rc != TK_OK)
        return tk_error_set(err, TK_ESCHEMA,
                            "cannot start orchestrator: the database is not migrated (run "
                            "'tasker db migrate')");

    tk_orchestrator_t *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->database_url = strdup(opts->database_url)) == NULL) {
        free(o);
        return tk_error_set(err, TK_ENOMEM, "cannot start orchestrator: out of memory");
    }
    o->o = *opts;
    o->o.database_url = o->database_url;
    o->stats.database_ok = true;
    tk_backoff_literal(&opts->backoff, o->policy, sizeof(o->policy));
    pthread_mutex_init(&o->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&o->stop_cond, &attr);
    pthread_condattr_destroy(&attr);

    o->results_started = pthread_create(&o->results_thread, NULL, results_thread, o) == 0;
    if (o->results_started && opts->sweep_interval_ms > 0)
        o->sweep_started = pthread_create(&o->sweep_thread, NULL, sweep_thread, o) == 0;
    if (!o->results_started || (opts->sweep_interval_ms > 0 && !o->sweep_started)) {
        tk_orchestrator_stop(o);
        return tk_error_set(err, TK_ESYS, "cannot start orchestrator: could not create threads");
    }
    *out = o;
    return TK_OK;
}

void tk_orchestrator_stop(tk_orchestrator_t *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    pthread_cond_broadcast(&o->stop_cond);
    pthread_mutex_unlock(&o->lock);
    if (o->results_started)
        pthread_join(o->results_thread, NULL);
    if (o->sweep_started)
        pthread_join(o->sweep_thread, NULL);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->stop_cond);
    free(o->database_url);
    free(o);
}

void tk_orchestrator_stats(tk_orchestrator_t *o, tk_orchestrator_stats_t *out)
{
    pthread_mutex_lock(&o->lock);
    *out = o->stats;
    pthread_mutex_unlock(&o->lock);
}
