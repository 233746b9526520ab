/*
 * test_mq.c - the tasker_mq C client (src/mq/mq.h) and the LISTEN/NOTIFY listener
 * (src/mq/listener.h) against PostgreSQL: visibility timeouts and redelivery, delete/archive,
 * batches, metrics, purge, pop, SKIP LOCKED between concurrent readers, error mapping,
 * drop_queue against concurrent sends, and wake-ups (namespaces, no lost events, reconnect
 * after the backend is killed and after a server restart). Timeouts are generous for "should
 * wake" and short for "should not wake": the tests assert behaviour, not speed.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "db/pgembed.h"
#include "mq/listener.h"
#include "mq/mq.h"
#include "harness.h"

#define WAKE_MS    5000 /* a notification that should arrive */
#define NO_WAKE_MS 300  /* a notification that should not */

static char *db_url; /* fresh migrated database shared by the tests (distinct queue names) */

static int setup(void **state)
{
    (void)state;
    db_url = tk_test_db_create("it_mq");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(db_url);
    return 0;
}

static tk_conn_t *open_conn(void)
{
    tk_conn_t *c;
    tk_error_t err;
    if (tk_conn_open(db_url, "it_mq", &c, &err) != TK_OK)
        fail_msg("connect: %s", err.message);
    return c;
}

static void exec_ok(tk_conn_t *c, const char *sql)
{
    tk_error_t err;
    if (tk_conn_exec(c, sql, &err) != TK_OK)
        fail_msg("%s: %s", sql, err.message);
}

/* First column of the first row of `sql` (with $1 = text) as an integer. */
static long long count_of(tk_conn_t *c, const char *sql, const char *arg)
{
    const char *params[] = {arg};
    const char *v = tk_test_valuep(tk_conn_pg(c), sql, arg ? 1 : 0, params);
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0')
        fail_msg("not a number (%s): %s", v, sql);
    return n;
}

static void create_queue(tk_conn_t *c, const char *queue)
{
    tk_error_t err;
    if (tk_mq_create(c, queue, &err) != TK_OK)
        fail_msg("create %s: %s", queue, err.message);
}

static int64_t send_ok(tk_conn_t *c, const char *queue, const char *json, int delay_s)
{
    tk_error_t err;
    int64_t id = 0;
    if (tk_mq_send(c, queue, json, delay_s, &id, &err) != TK_OK)
        fail_msg("send to %s: %s", queue, err.message);
    assert_true(id > 0);
    return id;
}

static tk_mq_batch_t *read_ok(tk_conn_t *c, const char *queue, int vt_s, int qty)
{
    tk_mq_batch_t *b = NULL;
    tk_error_t err;
    if (tk_mq_read(c, queue, vt_s, qty, &b, &err) != TK_OK)
        fail_msg("read %s: %s", queue, err.message);
    assert_non_null(b);
    return b;
}

/* --- queue client ------------------------------------------------------------------------ */

static void test_create_is_idempotent(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    assert_int_equal(tk_mq_create(c, "q_create", &err), TK_OK);
    assert_int_equal(tk_mq_create(c, "q_create", &err), TK_OK);
    assert_int_equal(count_of(c,
                              "SELECT count(*) FROM tasker_mq.list_queues() WHERE queue_name = $1",
                              "q_create"),
                     1);
    bool existed = false;
    assert_int_equal(tk_mq_drop(c, "q_create", &existed, &err), TK_OK);
    assert_true(existed);
    assert_int_equal(tk_mq_drop(c, "q_create", &existed, &err), TK_OK);
    assert_false(existed);
    tk_conn_close(c);
}

static void test_send_then_read_hides_message(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    create_queue(c, "q_read");
    int64_t id = send_ok(c, "q_read", "{\"n\":1,\"s\":\"x\"}", 0);

    tk_mq_batch_t *b = read_ok(c, "q_read", 30, 10);
    assert_int_equal(b->count, 1);
    assert_int_equal(b->msgs[0].msg_id, id);
    assert_int_equal(b->msgs[0].read_ct, 1);
    assert_string_equal(b->msgs[0].message, "{\"n\": 1, \"s\": \"x\"}"); /* jsonb's rendering */
    assert_non_null(b->msgs[0].enqueued_at);
    assert_non_null(b->msgs[0].vt);
    assert_true(strcmp(b->msgs[0].vt, b->msgs[0].enqueued_at) > 0);
    assert_null(b->msgs[0].headers);
    tk_mq_batch_free(b);

    b = read_ok(c, "q_read", 30, 10); /* hidden for 30 s */
    assert_int_equal(b->count, 0);
    tk_mq_batch_free(b);
    tk_mq_batch_free(NULL);
    tk_conn_close(c);
}

/* vt = 1 s: the message comes back with read_ct 2 once the timeout passed; a message sent
 * with a 1 s delay becomes visible at the same time. */
static void test_redelivery_after_visibility_timeout(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    create_queue(c, "q_vt");
    int64_t first = send_ok(c, "q_vt", "{\"k\":\"first\"}", 0);
    int64_t delayed = send_ok(c, "q_vt", "{\"k\":\"delayed\"}", 1);

    tk_mq_batch_t *b = read_ok(c, "q_vt", 1, 10);
    assert_int_equal(b->count, 1);
    assert_int_equal(b->msgs[0].msg_id, first);
    tk_mq_batch_free(b);
    b = read_ok(c, "q_vt", 1, 10);
    assert_int_equal(b->count, 0);
    tk_mq_batch_free(b);

    tk_sleep_ms(1200);
    b = read_ok(c, "q_vt", 30, 10);
    assert_int_equal(b->count, 2);
    assert_int_equal(b->msgs[0].msg_id, first);
    assert_int_equal(b->msgs[0].read_ct, 2);
    assert_int_equal(b->msgs[1].msg_id, delayed);
    assert_int_equal(b->msgs[1].read_ct, 1);
    tk_mq_batch_free(b);
    tk_conn_close(c);
}

static void test_set_vt_zero_makes_visible(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    create_queue(c, "q_setvt");
    int64_t id = send_ok(c, "q_setvt", "{}", 0);
    tk_mq_batch_free(read_ok(c, "q_setvt", 60, 1));

    assert_int_equal(tk_mq_set_vt(c, "q_setvt", id, 0, &err), TK_OK);
    tk_mq_batch_t *b = read_ok(c, "q_setvt", 60, 1);
    assert_int_equal(b->count, 1);
    assert_int_equal(b->msgs[0].msg_id, id);
    assert_int_equal(b->msgs[0].read_ct, 2);
    tk_mq_batch_free(b);

    /* Pushing it into the future hides it again. */
    assert_int_equal(tk_mq_set_vt(c, "q_setvt", id, 0, &err), TK_OK);
    assert_int_equal(tk_mq_set_vt(c, "q_setvt", id, 60, &err), TK_OK);
    b = read_ok(c, "q_setvt", 60, 1);
    assert_int_equal(b->count, 0);
    tk_mq_batch_free(b);

    assert_int_equal(tk_mq_set_vt(c, "q_setvt", id + 1000000, 0, &err), TK_ENOTFOUND);
    assert_non_null(strstr(err.message, "q_setvt"));
    assert_int_equal(tk_mq_set_vt(c, "q_setvt", id, -1, &err), TK_EINVAL);
    tk_conn_close(c);
}

static void test_delete_and_archive(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    create_queue(c, "q_ack");
    create_queue(c, "q_ack_other");
    int64_t a = send_ok(c, "q_ack", "{\"m\":\"a\"}", 0);
    int64_t b = send_ok(c, "q_ack", "{\"m\":\"b\"}", 0);
    tk_mq_batch_free(read_ok(c, "q_ack", 60, 2));

    bool found = false;
    assert_int_equal(tk_mq_delete(c, "q_ack_other", a, &found, &err), TK_OK);
    assert_false(found); /* the id belongs to another queue */
    assert_int_equal(tk_mq_delete(c, "q_ack", a, &found, &err), TK_OK);
    assert_true(found);
    assert_int_equal(tk_mq_delete(c, "q_ack", a, &found, &err), TK_OK);
    assert_false(found);

    assert_int_equal(tk_mq_archive(c, "q_ack", b, &found, &err), TK_OK);
    assert_true(found);
    assert_int_equal(tk_mq_archive(c, "q_ack", b, &found, &err), TK_OK);
    assert_false(found);
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, b);
    assert_int_equal(count_of(c,
                              "SELECT count(*) FROM tasker_mq.archive WHERE queue_name = 'q_ack' "
                              "AND msg_id = $1::bigint AND read_ct = 1 AND message->>'m' = 'b'",
                              id),
                     1);
    assert_int_equal(
        count_of(c, "SELECT count(*) FROM tasker_mq.messages WHERE queue_name = $1", "q_ack"), 0);
    assert_int_equal(tk_mq_delete(c, "q_ack", a, NULL, &err), TK_OK); /* found is optional */
    tk_conn_close(c);
}

static void test_send_batch_keeps_order(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    create_queue(c, "q_batch");
    /* Quotes, backslashes, braces and commas must survive the array literal. */
    const char *msgs[] = {"{\"i\": 0}", "{\"i\": 1, \"s\": \"a\\\"b\\\\c,{} \\u00e9\"}",
                          "[1, 2, 3]", "\"just a string\"", "{\"i\": 4}"};
    const size_t n = sizeof(msgs) / sizeof(msgs[0]);
    int64_t ids[5] = {0};
    assert_int_equal(tk_mq_send_batch(c, "q_batch", msgs, n, 0, ids, &err), TK_OK);
    for (size_t i = 1; i < n; i++)
        assert_true(ids[i] > ids[i - 1]);

    tk_mq_batch_t *b = read_ok(c, "q_batch", 60, 10);
    assert_int_equal(b->count, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(b->msgs[i].msg_id, ids[i]);
    assert_string_equal(b->msgs[0].message, "{\"i\": 0}");
    assert_string_equal(b->msgs[1].message, "{\"i\": 1, \"s\": \"a\\\"b\\\\c,{} \xc3\xa9\"}");
    assert_string_equal(b->msgs[2].message, "[1, 2, 3]");
    assert_string_equal(b->msgs[3].message, "\"just a string\"");
    tk_mq_batch_free(b);

    /* Empty batch: nothing to do. Invalid JSON anywhere: nothing is sent. */
    assert_int_equal(tk_mq_send_batch(c, "q_batch", NULL, 0, 0, NULL, &err), TK_OK);
    const char *bad[] = {"{\"ok\": true}", "{not json"};
    assert_int_equal(tk_mq_send_batch(c, "q_batch", bad, 2, 0, NULL, &err), TK_EINVAL);
    assert_string_equal(err.sqlstate, "22P02");
    const char *with_null[] = {"{}", NULL};
    assert_int_equal(tk_mq_send_batch(c, "q_batch", with_null, 2, 0, NULL, &err), TK_EINVAL);
    assert_int_equal(
        count_of(c, "SELECT count(*) FROM tasker_mq.messages WHERE queue_name = $1", "q_batch"),
        (long long)n);
    tk_conn_close(c);
}

static void test_metrics(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    tk_mq_metrics_t m;
    create_queue(c, "q_metrics");
    assert_int_equal(tk_mq_metrics(c, "q_metrics", &m, &err), TK_OK);
    assert_string_equal(m.queue_name, "q_metrics");
    assert_int_equal(m.queue_length, 0);
    assert_int_equal(m.total_messages, 0);
    assert_int_equal(m.newest_msg_age_sec, -1);
    assert_int_equal(m.oldest_msg_age_sec, -1);
    assert_true(m.scrape_time[0] != '\0');

    send_ok(c, "q_metrics", "{}", 0);
    send_ok(c, "q_metrics", "{}", 0);
    int64_t third = send_ok(c, "q_metrics", "{}", 30); /* invisible messages count too */
    bool found;
    assert_int_equal(tk_mq_archive(c, "q_metrics", third, &found, &err), TK_OK);
    assert_true(found);
    assert_int_equal(tk_mq_metrics(c, "q_metrics", &m, &err), TK_OK);
    assert_int_equal(m.queue_length, 2);
    assert_int_equal(m.total_messages, 3);
    assert_true(m.oldest_msg_age_sec >= 0 && m.oldest_msg_age_sec < 60);
    assert_true(m.newest_msg_age_sec >= 0 && m.newest_msg_age_sec <= m.oldest_msg_age_sec);

    assert_int_equal(tk_mq_metrics(c, "q_metrics_missing", &m, &err), TK_ENOTFOUND);
    assert_non_null(strstr(err.message, "queue \"q_metrics_missing\" does not exist"));
    tk_conn_close(c);
}

static void test_purge(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    create_queue(c, "q_purge");
    create_queue(c, "q_purge_keep");
    for (int i = 0; i < 4; i++)
        send_ok(c, "q_purge", "{}", i % 2);
    send_ok(c, "q_purge_keep", "{}", 0);
    int64_t n = -1;
    assert_int_equal(tk_mq_purge(c, "q_purge", &n, &err), TK_OK);
    assert_int_equal(n, 4);
    assert_int_equal(tk_mq_purge(c, "q_purge", &n, &err), TK_OK);
    assert_int_equal(n, 0);
    tk_mq_metrics_t m;
    assert_int_equal(tk_mq_metrics(c, "q_purge", &m, &err), TK_OK);
    assert_int_equal(m.queue_length, 0);
    assert_int_equal(tk_mq_metrics(c, "q_purge_keep", &m, &err), TK_OK);
    assert_int_equal(m.queue_length, 1);
    tk_conn_close(c);
}

static void test_pop(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    create_queue(c, "q_pop");
    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = send_ok(c, "q_pop", "{\"pop\": true}", 0);
    send_ok(c, "q_pop", "{}", 60); /* not visible: never popped */

    tk_mq_batch_t *b;
    assert_int_equal(tk_mq_pop(c, "q_pop", 2, &b, &err), TK_OK);
    assert_int_equal(b->count, 2);
    assert_int_equal(b->msgs[0].msg_id, ids[0]);
    assert_int_equal(b->msgs[1].msg_id, ids[1]);
    assert_int_equal(b->msgs[0].read_ct, 0);
    assert_string_equal(b->msgs[0].message, "{\"pop\": true}");
    tk_mq_batch_free(b);
    assert_int_equal(
        count_of(c, "SELECT count(*) FROM tasker_mq.messages WHERE queue_name = $1", "q_pop"), 2);
    assert_int_equal(tk_mq_pop(c, "q_pop", 5, &b, &err), TK_OK);
    assert_int_equal(b->count, 1);
    assert_int_equal(b->msgs[0].msg_id, ids[2]);
    tk_mq_batch_free(b);
    assert_int_equal(tk_mq_pop(c, "q_pop", 5, &b, &err), TK_OK);
    assert_int_equal(b->count, 0);
    tk_mq_batch_free(b);
    assert_int_equal(tk_mq_pop(c, "q_pop", 0, &b, &err), TK_EINVAL);
    assert_null(b);
    tk_conn_close(c);
}

static bool contains(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Two readers inside open transactions: the second skips the rows the first locked instead
 * of waiting for them or returning them too. lock_timeout turns a regression (a reader that
 * blocks) into a failure instead of a hang. A rolled-back read gives its messages back. */
static void test_concurrent_readers_skip_locked(void **state)
{
    (void)state;
    tk_conn_t *a = open_conn(), *b = open_conn();
    create_queue(a, "q_skip");
    int64_t sent[10];
    for (int i = 0; i < 10; i++)
        sent[i] = send_ok(a, "q_skip", "{}", 0);
    exec_ok(a, "SET lock_timeout = '2s'");
    exec_ok(b, "SET lock_timeout = '2s'");

    exec_ok(a, "BEGIN");
    exec_ok(b, "BEGIN");
    tk_mq_batch_t *ra = read_ok(a, "q_skip", 60, 3);
    tk_mq_batch_t *rb = read_ok(b, "q_skip", 60, 10);
    tk_mq_batch_t *ra2 = read_ok(a, "q_skip", 60, 10);
    assert_int_equal(ra->count, 3);
    assert_int_equal(rb->count, 7);
    assert_int_equal(ra2->count, 0);
    int64_t got[10];
    size_t n = 0;
    for (size_t i = 0; i < ra->count; i++)
        got[n++] = ra->msgs[i].msg_id;
    for (size_t i = 0; i < rb->count; i++) {
        assert_false(contains(got, n, rb->msgs[i].msg_id));
        got[n++] = rb->msgs[i].msg_id;
    }
    for (int i = 0; i < 10; i++)
        assert_true(contains(got, n, sent[i]));
    exec_ok(a, "COMMIT");
    exec_ok(b, "COMMIT");
    tk_mq_batch_free(ra);
    tk_mq_batch_free(rb);
    tk_mq_batch_free(ra2);

    /* A reader that rolls back never took the message. */
    int64_t again = send_ok(a, "q_skip", "{}", 0);
    exec_ok(a, "BEGIN");
    ra = read_ok(a, "q_skip", 60, 10);
    assert_int_equal(ra->count, 1);
    assert_int_equal(ra->msgs[0].msg_id, again);
    rb = read_ok(b, "q_skip", 60, 10); /* autocommit, while a holds the lock */
    assert_int_equal(rb->count, 0);
    tk_mq_batch_free(rb);
    exec_ok(a, "ROLLBACK");
    rb = read_ok(b, "q_skip", 60, 10);
    assert_int_equal(rb->count, 1);
    assert_int_equal(rb->msgs[0].msg_id, again);
    assert_int_equal(rb->msgs[0].read_ct, 1);
    tk_mq_batch_free(ra);
    tk_mq_batch_free(rb);
    tk_conn_close(a);
    tk_conn_close(b);
}

/* Several threads consume one queue concurrently: every message is delivered exactly once. */
#define WORKERS      4
#define WORK_MSGS    200
#define WORKER_SLOTS (WORK_MSGS + 1)

typedef struct {
    int64_t ids[WORKER_SLOTS];
    size_t n;
    int rc;
    char error[512];
} worker_t;

static void *consume(void *arg)
{
    worker_t *w = arg;
    tk_conn_t *c;
    tk_error_t err;
    w->rc = tk_conn_open(db_url, "it_mq_worker", &c, &err);
    if (w->rc != TK_OK) {
        snprintf(w->error, sizeof(w->error), "%s", err.message);
        return NULL;
    }
    for (;;) {
        tk_mq_batch_t *b;
        w->rc = tk_mq_read(c, "q_threads", 60, 5, &b, &err);
        if (w->rc != TK_OK)
            break;
        size_t count = b->count;
        for (size_t i = 0; i < count && w->rc == TK_OK; i++) {
            bool found = false;
            w->rc = tk_mq_delete(c, "q_threads", b->msgs[i].msg_id, &found, &err);
            if (w->rc == TK_OK && !found)
                w->rc = TK_ESTALE; /* someone else had it */
            if (w->n < WORKER_SLOTS)
                w->ids[w->n++] = b->msgs[i].msg_id;
        }
        tk_mq_batch_free(b);
        if (w->rc != TK_OK || count == 0)
            break;
    }
    if (w->rc != TK_OK)
        snprintf(w->error, sizeof(w->error), "%s", err.message);
    tk_conn_close(c);
    return NULL;
}

static void test_threads_get_each_message_once(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    create_queue(c, "q_threads");
    const char *body[WORK_MSGS];
    int64_t sent[WORK_MSGS];
    for (int i = 0; i < WORK_MSGS; i++)
        body[i] = "{\"work\": 1}";
    tk_error_t err;
    assert_int_equal(tk_mq_send_batch(c, "q_threads", body, WORK_MSGS, 0, sent, &err), TK_OK);

    static worker_t workers[WORKERS];
    pthread_t threads[WORKERS];
    memset(workers, 0, sizeof(workers));
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, consume, &workers[i]), 0);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);

    size_t total = 0;
    for (int i = 0; i < WORKERS; i++) {
        if (workers[i].rc != TK_OK)
            fail_msg("worker %d: %s (%s)", i, tk_err_name(workers[i].rc), workers[i].error);
        total += workers[i].n;
    }
    assert_int_equal(total, WORK_MSGS);
    for (int m = 0; m < WORK_MSGS; m++) {
        int seen = 0;
        for (int i = 0; i < WORKERS; i++)
            for (size_t k = 0; k < workers[i].n; k++)
                seen += workers[i].ids[k] == sent[m];
        assert_int_equal(seen, 1);
    }
    assert_int_equal(
        count_of(c, "SELECT count(*) FROM tasker_mq.messages WHERE queue_name = $1", "q_threads"),
        0);
    tk_conn_close(c);
}

static void test_missing_queue_is_not_found(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    int64_t id = 0;
    assert_int_equal(tk_mq_send(c, "q_missing", "{}", 0, &id, &err), TK_ENOTFOUND);
    assert_string_equal(err.sqlstate, "23503");
    assert_non_null(strstr(err.message, "queue \"q_missing\" does not exist"));
    assert_int_equal(id, 0);
    const char *two[] = {"{}", "{}"};
    assert_int_equal(tk_mq_send_batch(c, "q_missing", two, 2, 0, NULL, &err), TK_ENOTFOUND);
    assert_non_null(strstr(err.message, "queue \"q_missing\" does not exist"));
    static tk_mq_batch_t sentinel;
    tk_mq_batch_t *b = &sentinel; /* must be reset to NULL */
    assert_int_equal(tk_mq_read(c, "q_missing", 30, 1, &b, &err), TK_ENOTFOUND);
    assert_null(b);
    assert_non_null(strstr(err.message, "queue \"q_missing\" does not exist"));
    assert_int_equal(tk_mq_pop(c, "q_missing", 1, &b, &err), TK_ENOTFOUND);
    /* The connection is still usable after the failed statements. */
    create_queue(c, "q_missing");
    assert_int_equal(tk_mq_send(c, "q_missing", "{}", 0, &id, &err), TK_OK);
    assert_true(id > 0);
    tk_conn_close(c);
}

/* True if the query sent on pg is still running after ms (it waits for a lock). */
static bool still_running(PGconn *pg, int ms)
{
    for (int waited = 0; waited < ms; waited += 10) {
        if (!PQconsumeInput(pg))
            fail_msg("consume: %s", PQerrorMessage(pg));
        if (!PQisBusy(pg))
            return false;
        tk_sleep_ms(10);
    }
    return true;
}

/* The result of the query sent on pg (blocking); the caller clears it. */
static PGresult *sent_result(PGconn *pg)
{
    PGresult *res = PQgetResult(pg), *extra;
    while ((extra = PQgetResult(pg)) != NULL)
        PQclear(extra);
    if (res == NULL)
        fail_msg("no result: %s", PQerrorMessage(pg));
    return res;
}

/* Sends take no lock on their queue's row (sql/0020), so drop_queue locks the message table
 * instead: a send in flight when the queue is dropped finishes first and its message goes
 * with the queue; a send that starts while the drop is uncommitted waits, then fails with
 * the missing queue's error. Either way no message outlives its queue. */
static void test_drop_queue_and_concurrent_sends(void **state)
{
    (void)state;
    tk_conn_t *a = open_conn(), *b = open_conn();
    PGconn *pa = tk_conn_pg(a), *pb = tk_conn_pg(b);
    tk_error_t err;
    int64_t id = 0;
    const char *count_sql = "SELECT count(*) FROM tasker_mq.messages WHERE queue_name = $1";

    create_queue(a, "q_drop_race");
    exec_ok(a, "BEGIN");
    assert_int_equal(tk_mq_send(a, "q_drop_race", "{}", 0, &id, &err), TK_OK);
    assert_int_equal(PQsendQuery(pb, "SELECT tasker_mq.drop_queue('q_drop_race')"), 1);
    assert_true(still_running(pb, NO_WAKE_MS));
    exec_ok(a, "COMMIT");
    PGresult *res = sent_result(pb);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    assert_int_equal(count_of(a, count_sql, "q_drop_race"), 0);

    create_queue(a, "q_drop_race");
    exec_ok(b, "BEGIN");
    exec_ok(b, "SELECT tasker_mq.drop_queue('q_drop_race')");
    assert_int_equal(PQsendQuery(pa, "SELECT * FROM tasker_mq.send('q_drop_race', '{}'::jsonb, 0)"),
                     1);
    assert_true(still_running(pa, NO_WAKE_MS));
    exec_ok(b, "COMMIT");
    res = sent_result(pa);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23503");
    PQclear(res);
    assert_int_equal(count_of(a, count_sql, "q_drop_race"), 0);
    tk_conn_close(a);
    tk_conn_close(b);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    tk_error_t err;
    char long_name[64];
    memset(long_name, 'q', 48);
    long_name[48] = '\0';
    const char *bad[] = {"bad-name", "", "has space", "caf\xc3\xa9", "q;drop", long_name};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tk_mq_create(c, bad[i], &err), TK_EINVAL);
        assert_non_null(strstr(err.message, "invalid queue name"));
        assert_int_equal(tk_mq_send(c, bad[i], "{}", 0, NULL, &err), TK_EINVAL);
        tk_mq_batch_t *b;
        assert_int_equal(tk_mq_read(c, bad[i], 30, 1, &b, &err), TK_EINVAL);
        assert_null(b);
        assert_false(tk_mq_queue_name_valid(bad[i]));
    }
    assert_int_equal(tk_mq_create(c, NULL, &err), TK_EINVAL);
    assert_false(tk_mq_queue_name_valid(NULL));
    long_name[47] = '\0'; /* 47 characters: the longest valid name */
    assert_true(tk_mq_queue_name_valid(long_name));
    assert_int_equal(tk_mq_create(c, long_name, &err), TK_OK);

    create_queue(c, "q_args");
    assert_int_equal(tk_mq_send(c, "q_args", "{\"unterminated\": ", 0, NULL, &err), TK_EINVAL);
    assert_string_equal(err.sqlstate, "22P02");
    assert_int_equal(tk_mq_send(c, "q_args", NULL, 0, NULL, &err), TK_EINVAL);
    assert_int_equal(tk_mq_send(c, "q_args", "{}", -1, NULL, &err), TK_EINVAL);
    tk_mq_batch_t *b;
    assert_int_equal(tk_mq_read(c, "q_args", -1, 1, &b, &err), TK_EINVAL);
    assert_int_equal(tk_mq_read(c, "q_args", 30, 0, &b, &err), TK_EINVAL);
    tk_conn_close(c);
}

/* --- listener ---------------------------------------------------------------------------- */

static tk_mq_listener_t *listen_to(const char *ns)
{
    tk_mq_listener_t *l;
    tk_error_t err;
    if (tk_mq_listener_open(db_url, &l, &err) != TK_OK)
        fail_msg("listener: %s", err.message);
    if (ns != NULL && tk_mq_listener_subscribe(l, ns, &err) != TK_OK)
        fail_msg("subscribe %s: %s", ns, err.message);
    return l;
}

static void expect_message(tk_mq_listener_t *l, const char *queue, int64_t msg_id)
{
    tk_mq_event_t ev;
    tk_error_t err;
    int rc = tk_mq_listener_wait(l, WAKE_MS, &ev, &err);
    if (rc != TK_OK)
        fail_msg("no wake-up for %s/%" PRId64 ": %s", queue, msg_id, err.message);
    assert_int_equal(ev.kind, TK_MQ_EVENT_MESSAGE);
    assert_string_equal(ev.queue_name, queue);
    assert_int_equal(ev.msg_id, msg_id);
    assert_int_equal(ev.message_count, 1);
}

static void expect_silence(tk_mq_listener_t *l)
{
    tk_mq_event_t ev;
    tk_error_t err;
    int rc = tk_mq_listener_wait(l, NO_WAKE_MS, &ev, &err);
    if (rc != TK_ETIMEDOUT)
        fail_msg("unexpected wake-up (%s): kind %d payload %s", tk_err_name(rc), ev.kind,
                 ev.payload);
}

static void test_listener_wakes_on_send(void **state)
{
    (void)state;
    tk_mq_listener_t *l = listen_to("pay");
    assert_true(tk_mq_listener_fd(l) >= 0);
    assert_true(tk_mq_listener_backend_pid(l) > 0);
    tk_conn_t *c = open_conn();
    create_queue(c, "worker_pay_queue");
    int64_t id = send_ok(c, "worker_pay_queue", "{\"step\": 1}", 0);

    tk_mq_event_t ev;
    tk_error_t err;
    assert_int_equal(tk_mq_listener_wait(l, WAKE_MS, &ev, &err), TK_OK);
    assert_int_equal(ev.kind, TK_MQ_EVENT_MESSAGE);
    assert_string_equal(ev.channel, "pgmq_message_ready.pay");
    assert_string_equal(ev.queue_name, "worker_pay_queue");
    assert_string_equal(ev.ns, "pay");
    assert_int_equal(ev.msg_id, id);
    assert_int_equal(ev.message_count, 1);
    assert_non_null(strstr(ev.payload, "\"message_ready\""));
    expect_silence(l);

    /* The wake-up means "look now": the message is there to read. */
    tk_mq_batch_t *b = read_ok(c, "worker_pay_queue", 30, 10);
    assert_int_equal(b->count, 1);
    assert_int_equal(b->msgs[0].msg_id, id);
    tk_mq_batch_free(b);
    tk_conn_close(c);
    tk_mq_listener_close(l);
    tk_mq_listener_close(NULL);
}

static void test_listener_ignores_other_namespaces(void **state)
{
    (void)state;
    tk_mq_listener_t *l = listen_to("alpha");
    tk_conn_t *c = open_conn();
    create_queue(c, "worker_beta_queue");
    create_queue(c, "orchestration_step_results");
    create_queue(c, "worker_alpha_queue");
    send_ok(c, "worker_beta_queue", "{}", 0);
    send_ok(c, "orchestration_step_results", "{}", 0);
    expect_silence(l);

    /* Subscriptions add up; unsubscribing stops the wake-ups. */
    tk_error_t err;
    assert_int_equal(tk_mq_listener_subscribe(l, "orchestration", &err), TK_OK);
    assert_int_equal(tk_mq_listener_subscribe(l, "orchestration", &err), TK_OK); /* no-op */
    int64_t id = send_ok(c, "orchestration_step_results", "{}", 0);
    expect_message(l, "orchestration_step_results", id);
    assert_int_equal(tk_mq_listener_unsubscribe(l, "orchestration", &err), TK_OK);
    send_ok(c, "orchestration_step_results", "{}", 0);
    expect_silence(l);
    id = send_ok(c, "worker_alpha_queue", "{}", 0);
    expect_message(l, "worker_alpha_queue", id);
    tk_conn_close(c);
    tk_mq_listener_close(l);
}

/* Several sends committed together arrive as several notifications at once: every one is
 * delivered, in order, and a big batch still notifies (its payload omits the id list). */
static void test_listener_loses_no_event(void **state)
{
    (void)state;
    tk_mq_listener_t *l = listen_to("many");
    tk_conn_t *c = open_conn();
    tk_error_t err;
    create_queue(c, "worker_many_queue");
    int64_t ids[5];
    exec_ok(c, "BEGIN");
    for (int i = 0; i < 5; i++)
        ids[i] = send_ok(c, "worker_many_queue", "{}", 0);
    const char *three[] = {"{}", "{}", "{}"};
    int64_t batch_ids[3];
    assert_int_equal(tk_mq_send_batch(c, "worker_many_queue", three, 3, 0, batch_ids, &err), TK_OK);
    expect_silence(l); /* nothing before the commit */
    exec_ok(c, "COMMIT");

    for (int i = 0; i < 5; i++)
        expect_message(l, "worker_many_queue", ids[i]);
    tk_mq_event_t ev;
    assert_int_equal(tk_mq_listener_wait(l, WAKE_MS, &ev, &err), TK_OK);
    assert_int_equal(ev.kind, TK_MQ_EVENT_MESSAGE);
    assert_string_equal(ev.queue_name, "worker_many_queue");
    assert_int_equal(ev.msg_id, 0);
    assert_int_equal(ev.message_count, 3);
    assert_non_null(strstr(ev.payload, "\"batch_ready\""));
    expect_silence(l);

    /* 1000 messages in one batch: the notification must still fit in 8000 bytes. */
    enum { BIG = 1000 };
    static const char *big[BIG];
    for (int i = 0; i < BIG; i++)
        big[i] = "{\"big\": true}";
    assert_int_equal(tk_mq_send_batch(c, "worker_many_queue", big, BIG, 0, NULL, &err), TK_OK);
    assert_int_equal(tk_mq_listener_wait(l, WAKE_MS, &ev, &err), TK_OK);
    assert_int_equal(ev.message_count, BIG);
    assert_null(strstr(ev.payload, "msg_ids"));
    tk_conn_close(c);
    tk_mq_listener_close(l);
}

/* pg_terminate_backend on the listener's session: the next wait reconnects, reports it once,
 * and every subscription works again. */
static void test_listener_reconnects_after_backend_killed(void **state)
{
    (void)state;
    tk_mq_listener_t *l = listen_to("rc1");
    tk_error_t err;
    assert_int_equal(tk_mq_listener_subscribe(l, "rc2", &err), TK_OK);
    tk_conn_t *c = open_conn();
    create_queue(c, "worker_rc1_queue");
    create_queue(c, "worker_rc2_queue");

    int pid = tk_mq_listener_backend_pid(l);
    assert_true(pid > 0);
    char pid_text[16];
    snprintf(pid_text, sizeof(pid_text), "%d", pid);
    assert_string_equal(tk_test_valuep(tk_conn_pg(c), "SELECT pg_terminate_backend($1::int)", 1,
                                       (const char *const[]){pid_text}),
                        "t");

    tk_mq_event_t ev;
    int rc = tk_mq_listener_wait(l, WAKE_MS, &ev, &err);
    if (rc != TK_OK)
        fail_msg("no reconnect event: %s", err.message);
    assert_int_equal(ev.kind, TK_MQ_EVENT_RECONNECTED);
    int new_pid = tk_mq_listener_backend_pid(l);
    assert_true(new_pid > 0);
    assert_int_not_equal(new_pid, pid);
    assert_true(tk_mq_listener_fd(l) >= 0);
    expect_silence(l); /* reported once */

    int64_t a = send_ok(c, "worker_rc1_queue", "{}", 0);
    expect_message(l, "worker_rc1_queue", a);
    int64_t b = send_ok(c, "worker_rc2_queue", "{}", 0);
    expect_message(l, "worker_rc2_queue", b);
    tk_conn_close(c);
    tk_mq_listener_close(l);
}

static void test_listener_bad_input(void **state)
{
    (void)state;
    tk_mq_listener_t *l;
    tk_error_t err;
    assert_int_equal(
        tk_mq_listener_open("postgresql:///nope?host=/nonexistent-tasker-dir", &l, &err), TK_ECONN);
    assert_null(l);
    assert_true(err.message[0] != '\0');
    assert_int_equal(tk_mq_listener_open("", &l, &err), TK_EINVAL);

    l = listen_to(NULL);
    const char *bad[] = {"bad-ns", "", "x\"; DROP TABLE t; --",
                         "a123456789012345678901234567890123456789012345"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tk_mq_listener_subscribe(l, bad[i], &err), TK_EINVAL);
        assert_non_null(strstr(err.message, "invalid namespace"));
    }
    assert_int_equal(tk_mq_listener_subscribe(l, NULL, &err), TK_EINVAL);
    assert_int_equal(tk_mq_listener_subscribe(l, "Mixed_Case_9", &err), TK_OK);
    assert_int_equal(tk_mq_listener_unsubscribe(l, "never_subscribed", &err), TK_OK);

    /* Case is kept: a queue of namespace "Mixed_Case_9" wakes it. */
    tk_conn_t *c = open_conn();
    create_queue(c, "worker_Mixed_Case_9_queue");
    int64_t id = send_ok(c, "worker_Mixed_Case_9_queue", "{}", 0);
    expect_message(l, "worker_Mixed_Case_9_queue", id);

    /* A timeout of 0 polls without blocking. */
    tk_mq_event_t ev;
    assert_int_equal(tk_mq_listener_wait(l, 0, &ev, &err), TK_ETIMEDOUT);
    tk_conn_close(c);
    tk_mq_listener_close(l);
}

/* A server restart on a private cluster: while it is down the wait says TK_ECONN (and does
 * not spin), once it is back the listener reconnects by itself and reports it. Raw NOTIFY is
 * enough here, so the cluster needs no migration. */
static void test_listener_survives_server_restart(void **state)
{
    (void)state;
    char data_dir[1024];
    snprintf(data_dir, sizeof(data_dir), "%s-mq/data", getenv("TK_TEST_PG_DIR"));
    tk_pgembed_opts_t opts = {.data_dir = data_dir, .durable = false};
    tk_pgembed_t *pg;
    tk_error_t err;
    tk_pgembed_remove(data_dir, &err);
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        fail_msg("start: %s", err.message);
    char *url = strdup(tk_pgembed_url(pg));
    assert_non_null(url);

    tk_mq_listener_t *l;
    assert_int_equal(tk_mq_listener_open(url, &l, &err), TK_OK);
    assert_int_equal(tk_mq_listener_subscribe(l, "restart", &err), TK_OK);

    opts.port = tk_pgembed_port(pg);
    assert_int_equal(tk_pgembed_stop(pg, &err), TK_OK);
    tk_pgembed_free(pg);

    tk_mq_event_t ev;
    int64_t t0 = tk_clock_ms();
    assert_int_equal(tk_mq_listener_wait(l, 500, &ev, &err), TK_ECONN);
    assert_true(tk_clock_ms() - t0 >= 450); /* it waited out the timeout */
    assert_int_equal(tk_mq_listener_fd(l), -1);
    assert_int_equal(tk_mq_listener_backend_pid(l), 0);
    /* Subscribing while down is remembered for the reconnect. */
    assert_int_equal(tk_mq_listener_subscribe(l, "later", &err), TK_OK);

    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        fail_msg("restart: %s", err.message);
    int rc = tk_mq_listener_wait(l, 10000, &ev, &err);
    if (rc != TK_OK)
        fail_msg("no reconnect after restart: %s", err.message);
    assert_int_equal(ev.kind, TK_MQ_EVENT_RECONNECTED);

    PGconn *sender = tk_test_connect(url);
    tk_test_exec(sender, "SELECT pg_notify('pgmq_message_ready.restart', "
                         "'{\"queue_name\": \"worker_restart_queue\", \"msg_id\": 42}')");
    tk_test_exec(sender, "SELECT pg_notify('pgmq_message_ready.later', 'not json')");
    expect_message(l, "worker_restart_queue", 42);
    assert_int_equal(tk_mq_listener_wait(l, WAKE_MS, &ev, &err), TK_OK);
    assert_string_equal(ev.channel, "pgmq_message_ready.later");
    assert_string_equal(ev.payload, "not json");
    assert_string_equal(ev.queue_name, "");
    assert_int_equal(ev.msg_id, 0);
    PQfinish(sender);

    tk_mq_listener_close(l);
    free(url);
    assert_int_equal(tk_pgembed_stop(pg, &err), TK_OK);
    tk_pgembed_free(pg);
    assert_int_equal(tk_pgembed_remove(data_dir, &err), TK_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_is_idempotent),
        cmocka_unit_test(test_send_then_read_hides_message),
        cmocka_unit_test(test_redelivery_after_visibility_timeout),
        cmocka_unit_test(test_set_vt_zero_makes_visible),
        cmocka_unit_test(test_delete_and_archive),
        cmocka_unit_test(test_send_batch_keeps_order),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_pop),
        cmocka_unit_test(test_concurrent_readers_skip_locked),
        cmocka_unit_test(test_threads_get_each_message_once),
        cmocka_unit_test(test_missing_queue_is_not_found),
        cmocka_unit_test(test_drop_queue_and_concurrent_sends),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_listener_wakes_on_send),
        cmocka_unit_test(test_listener_ignores_other_namespaces),
        cmocka_unit_test(test_listener_loses_no_event),
        cmocka_unit_test(test_listener_reconnects_after_backend_killed),
        cmocka_unit_test(test_listener_bad_input),
        cmocka_unit_test(test_listener_survives_server_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
