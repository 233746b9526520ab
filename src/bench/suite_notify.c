/*
 * suite_notify.c - `tasker bench notify`: the queue's wake-up round trip through the real
 * path. One connection sends with tasker_mq.send (tk_mq_send: INSERT the message and
 * pg_notify its namespace's channel, one durable transaction); a consumer thread blocked in
 * tk_mq_listener_wait (src/mq/listener.h) on another connection wakes up. A sample is the
 * time from just before the send to the moment the consumer holds the event. The consumer
 * then pops the message (untimed, as a real consumer reads it) before the next send.
 * Compared with the seed's LISTEN/NOTIFY round trip (14.5 ms) and with the raw NOTIFY floor.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/clock.h"
#include "common/error_int.h"
#include "mq/listener.h"
#include "mq/mq.h"

#define QUEUE     "worker_bench_notify_queue"
#define NAMESPACE "bench_notify"

typedef struct consumer_s {
    const char *url;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready, stop, failed;
    char error[256];
    uint64_t handled;
    int64_t wake_us;
} consumer_t;

static void consumer_fail(consumer_t *c, const char *what, const tk_error_t *err)
{
    pthread_mutex_lock(&c->mu);
    c->failed = true;
    snprintf(c->error, sizeof(c->error), "%s: %s", what, err->message);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void *consumer_main(void *arg)
{
    consumer_t *c = arg;
    tk_error_t err;
    tk_mq_listener_t *l = NULL;
    tk_conn_t *conn = NULL;
    if (tk_mq_listener_open(c->url, &l, &err) != TK_OK ||
        tk_mq_listener_subscribe(l, NAMESPACE, &err) != TK_OK ||
        tk_conn_open(c->url, "tasker-bench-consumer", &conn, &err) != TK_OK) {
        consumer_fail(c, "could not start the consumer", &err);
        tk_mq_listener_close(l);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    c->ready = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        tk_mq_event_t ev;
        int rc = tk_mq_listener_wait(l, 100, &ev, &err);
        if (rc == TK_ETIMEDOUT)
            continue;
        if (rc != TK_OK) {
            consumer_fail(c, "listener", &err);
            break;
        }
        int64_t woke = tk_clock_us();
        tk_mq_batch_t *batch = NULL;
        if (tk_mq_pop(conn, QUEUE, 10, &batch, &err) != TK_OK) {
            consumer_fail(c, "could not pop", &err);
            break;
        }
        tk_mq_batch_free(batch);
        pthread_mutex_lock(&c->mu);
        c->wake_us = woke;
        c->handled++;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    tk_conn_close(conn);
    tk_mq_listener_close(l);
    return NULL;
}

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Wait until the consumer handled more than `before` events; the wake time, or -1. */
static int64_t consumer_wait(consumer_t *c, uint64_t before)
{
    struct timespec ts;
    deadline_in(&ts, 5000);
    int64_t t = -1;
    pthread_mutex_lock(&c->mu);
    while (c->handled == before && !c->failed)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
            break;
    if (c->handled != before)
        t = c->wake_us;
    pthread_mutex_unlock(&c->mu);
    return t;
}

int tk_bench_notify(tk_bench_t *b)
{
    int n = tk_bench_count(b, b->opts.iterations, 2000, 300);
    int warm = 50;
    if (!b->tty)
        tk_bench_note(b, "notify: %d queue sends", n);
    tk_error_t err;
    tk_conn_t *sender;
    int rc = tk_conn_open(b->run_url, "tasker-bench-sender", &sender, &err);
    if (rc == TK_OK)
        rc = tk_mq_create(sender, QUEUE, &err);
    if (rc != TK_OK) {
        tk_conn_close(sender);
        tk_cli_fail("notify: %s", err.message);
        return rc;
    }
    consumer_t c;
    memset(&c, 0, sizeof(c));
    c.url = b->run_url;
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    double *wake = calloc((size_t)n, sizeof(double));
    double *sent = calloc((size_t)n, sizeof(double));
    if (wake == NULL || sent == NULL)
        rc = tk_error_set(&err, TK_ENOMEM, "out of memory");
    else if (pthread_create(&c.thread, NULL, consumer_main, &c) != 0)
        rc = tk_error_set(&err, TK_ESYS, "could not start the consumer thread");
    bool started = rc == TK_OK;
    if (started) {
        pthread_mutex_lock(&c.mu);
        while (!c.ready && !c.failed)
            pthread_cond_wait(&c.cv, &c.mu);
        if (c.failed)
            rc = tk_error_set(&err, TK_ECONN, "%s", c.error);
        pthread_mutex_unlock(&c.mu);
    }
    for (int i = 0; rc == TK_OK && i < warm + n; i++) {
        pthread_mutex_lock(&c.mu);
        uint64_t before = c.handled;
        pthread_mutex_unlock(&c.mu);
        char body[64];
        snprintf(body, sizeof(body), "{\"bench\": %d}", i);
        int64_t t0 = tk_clock_us();
        rc = tk_mq_send(sender, QUEUE, body, 0, NULL, &err);
        int64_t t1 = tk_clock_us();
        int64_t woke = rc == TK_OK ? consumer_wait(&c, before) : -1;
        if (rc == TK_OK && woke < 0) {
            pthread_mutex_lock(&c.mu);
            rc = tk_error_set(&err, TK_ETIMEDOUT, "%s",
                              c.failed ? c.error : "the consumer was not woken within 5 s");
            pthread_mutex_unlock(&c.mu);
        }
        if (rc == TK_OK && i >= warm) {
            wake[i - warm] = (double)(woke - t0);
            sent[i - warm] = (double)(t1 - t0);
        }
        tk_bench_progress(b, "notify", i + 1, warm + n);
    }
    tk_bench_progress_done(b);
    if (started) {
        pthread_mutex_lock(&c.mu);
        c.stop = true;
        pthread_mutex_unlock(&c.mu);
        pthread_join(c.thread, NULL);
    }
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    /* the e2e suite works in this database next: leave it no dead queue rows to skip */
    PQclear(PQexec(tk_conn_pg(sender), "VACUUM tasker_mq.messages"));
    tk_conn_close(sender);
    if (rc != TK_OK) {
        free(wake);
        free(sent);
        tk_cli_fail("notify: %s", err.message);
        return rc;
    }

    tk_bench_stats_t w, s;
    tk_bench_stats(wake, (size_t)n, &w);
    tk_bench_stats(sent, (size_t)n, &s);
    free(wake);
    free(sent);
    json_object_set_new(b->doc, "notify",
                        json_pack("{s:f, s:f}", "p50_ms", w.p50 / 1000, "p99_ms", w.p99 / 1000));
    char mult[32], mult_send[32];
    tk_bench_multiple(mult, sizeof(mult), w.p50, b->floor.notify_us);
    tk_bench_multiple(mult_send, sizeof(mult_send), s.p50, b->floor.commit_us);
    printf("\nEvent propagation: queue send -> consumer wake-up (tasker_mq.send + LISTEN, "
           "%d samples)\n",
           n);
    printf("  %-34s %9s %9s %9s %9s %9s %12s %12s\n", "Metric", "p50 ms", "p95 ms", "p99 ms",
           "mean ms", "max ms", "seed ms", "x floor");
    printf("  %-34s %9.3f %9.3f %9.3f %9.3f %9.3f %12.3f %12s\n", "send -> consumer woken",
           w.p50 / 1000, w.p95 / 1000, w.p99 / 1000, w.mean / 1000, w.max / 1000,
           TK_BENCH_SEED_NOTIFY_MS, mult);
    printf("  %-34s %9.3f %9.3f %9.3f %9.3f %9.3f %12s %12s\n", "send call (commit) returns",
           s.p50 / 1000, s.p95 / 1000, s.p99 / 1000, s.mean / 1000, s.max / 1000, "-", mult_send);
    printf("  (x floor: wake-up vs the raw NOTIFY floor; send call vs the commit floor)\n");
    fflush(stdout);
    char value[48], limit[48];
    snprintf(value, sizeof(value), "%.3f ms", w.p50 / 1000);
    snprintf(limit, sizeof(limit), "<= %.1f ms", TK_BENCH_TARGET_NOTIFY_MS);
    tk_bench_target(b, w.p50 / 1000 <= TK_BENCH_TARGET_NOTIFY_MS, value, limit,
                    "notify round trip p50");
    return TK_OK;
}
