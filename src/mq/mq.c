/*
 * mq.c - tasker_mq client: one prepared statement per call (see mq.h).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error_int.h"
#include "common/parse.h"
#include "mq/mq.h"

/* read() and pop() add a row with a NULL msg_id when the queue does not exist, so a consumer
 * pointed at a wrong queue gets TK_ENOTFOUND instead of an endless series of empty batches,
 * at the cost of one primary-key probe in the same round trip. Rows are sorted by msg_id
 * because UPDATE/DELETE ... RETURNING promises no order. */
#define MQ_READ_COLUMNS                                                                            \
    "SELECT r.msg_id, r.read_ct, r.enqueued_at::text, r.vt::text, r.message::text, "               \
    "r.headers::text "
#define MQ_MISSING_QUEUE_ROW                                                                       \
    " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE NOT EXISTS "                       \
    "(SELECT FROM tasker_mq.queues q WHERE q.queue_name = $1::text) ORDER BY 1"

static const tk_stmt_t st_create = {"tk_mq_create", "SELECT tasker_mq.\"create\"($1::text)", 1,
                                    true};
static const tk_stmt_t st_drop = {"tk_mq_drop", "SELECT tasker_mq.drop_queue($1::text)", 1, true};
static const tk_stmt_t st_send = {
    "tk_mq_send", "SELECT * FROM tasker_mq.send($1::text, $2::jsonb, $3::integer)", 3, false};
static const tk_stmt_t st_send_batch = {
    "tk_mq_send_batch", "SELECT * FROM tasker_mq.send_batch($1::text, $2::jsonb[], $3::integer)", 3,
    false};
static const tk_stmt_t st_read = {
    "tk_mq_read",
    MQ_READ_COLUMNS
    "FROM tasker_mq.read($1::text, $2::integer, $3::integer) r" MQ_MISSING_QUEUE_ROW,
    3, false};
static const tk_stmt_t st_pop = {
    "tk_mq_pop", MQ_READ_COLUMNS "FROM tasker_mq.pop($1::text, $2::integer) r" MQ_MISSING_QUEUE_ROW,
    2, false};
static const tk_stmt_t st_delete = {"tk_mq_delete", "SELECT tasker_mq.delete($1::text, $2::bigint)",
                                    2, true};
static const tk_stmt_t st_archive = {"tk_mq_archive",
                                     "SELECT tasker_mq.archive($1::text, $2::bigint)", 2, true};
static const tk_stmt_t st_set_vt = {
    "tk_mq_set_vt", "SELECT msg_id FROM tasker_mq.set_vt($1::text, $2::bigint, $3::integer)", 3,
    true};
static const tk_stmt_t st_purge = {"tk_mq_purge", "SELECT tasker_mq.purge_queue($1::text)", 1,
                                   true};
static const tk_stmt_t st_metrics = {
    "tk_mq_metrics",
    "SELECT m.queue_name, m.queue_length, "
    "CASE WHEN m.newest_msg_age_sec IS NULL THEN -1 ELSE greatest(m.newest_msg_age_sec, 0) END, "
    "CASE WHEN m.oldest_msg_age_sec IS NULL THEN -1 ELSE greatest(m.oldest_msg_age_sec, 0) END, "
    "m.total_messages, m.scrape_time::text "
    "FROM tasker_mq.queues q CROSS JOIN LATERAL tasker_mq.metrics(q.queue_name) m "
    "WHERE q.queue_name = $1::text",
    1, true};

bool tk_mq_queue_name_valid(const char *queue)
{
    if (queue == NULL)
        return false;
    size_t n = 0;
    for (const char *p = queue; *p != '\0'; p++, n++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_';
        if (!ok || n >= TK_MQ_QUEUE_NAME_MAX)
            return false;
    }
    return n > 0;
}

/* TK_OK, or TK_EINVAL naming the operation and the rule. */
static int check_queue(const char *op, const char *queue, tk_error_t *err)
{
    if (tk_mq_queue_name_valid(queue))
        return TK_OK;
    if (queue == NULL)
        return tk_error_set(err, TK_EINVAL, "could not %s: no queue name given", op);
    return tk_error_set(err, TK_EINVAL,
                        "could not %s: invalid queue name \"%.64s\": use 1 to %d ASCII letters, "
                        "digits or underscores",
                        op, queue, TK_MQ_QUEUE_NAME_MAX);
}

static int check_seconds(const char *op, const char *what, int value, tk_error_t *err)
{
    if (value >= 0)
        return TK_OK;
    return tk_error_set(err, TK_EINVAL, "could not %s: %s must be >= 0 seconds, not %d", op, what,
                        value);
}

/* Report a failed statement: a foreign-key violation can only mean the queue is missing
 * (messages.queue_name references queues); anything else keeps the server's message, prefixed
 * with the operation. */
static int fail(tk_error_t *err, const tk_error_t *e, const char *op, const char *queue)
{
    if (strcmp(e->sqlstate, "23503") == 0) {
        tk_error_set(err, TK_ENOTFOUND, "could not %s: queue \"%s\" does not exist", op, queue);
        tk_error_set_sqlstate(err, e->sqlstate);
        return TK_ENOTFOUND;
    }
    tk_error_set(err, e->code, "could not %s (queue \"%s\"): %s", op, queue, e->message);
    tk_error_set_sqlstate(err, e->sqlstate);
    tk_error_set_detail(err, e->detail[0] != '\0' ? e->detail : NULL);
    return e->code;
}

static int missing_queue(tk_error_t *err, const char *op, const char *queue)
{
    return tk_error_set(err, TK_ENOTFOUND, "could not %s: queue \"%s\" does not exist", op, queue);
}

/* Run stmt; on failure map the error as fail() does. */
static int run(tk_conn_t *c, const tk_stmt_t *stmt, const char *const *params, PGresult **res,
               const char *op, const char *queue, tk_error_t *err)
{
    tk_error_t e;
    int rc = tk_conn_query(c, stmt, params, res, &e);
    if (rc != TK_OK)
        return fail(err, &e, op, queue);
    return TK_OK;
}

/* A result that does not have the expected shape is a server/client mismatch. */
static int bad_result(PGresult *res, const char *op, const char *queue, tk_error_t *err)
{
    PQclear(res);
    return tk_error_set(err, TK_EDB, "could not %s (queue \"%s\"): unexpected result from server",
                        op, queue);
}

static int get_i64(const PGresult *res, int row, int col, int64_t *out)
{
    if (PQgetisnull(res, row, col))
        return TK_EINVAL;
    return tk_parse_i64(PQgetvalue(res, row, col), INT64_MIN, INT64_MAX, out);
}

static bool get_bool(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

int tk_mq_create(tk_conn_t *c, const char *queue, tk_error_t *err)
{
    int rc = check_queue("create queue", queue, err);
    if (rc != TK_OK)
        return rc;
    const char *params[] = {queue};
    PGresult *res;
    rc = run(c, &st_create, params, &res, "create queue", queue, err);
    PQclear(res);
    return rc;
}

int tk_mq_drop(tk_conn_t *c, const char *queue, bool *existed, tk_error_t *err)
{
    int rc = check_queue("drop queue", queue, err);
    if (rc != TK_OK)
        return rc;
    const char *params[] = {queue};
    PGresult *res;
    rc = run(c, &st_drop, params, &res, "drop queue", queue, err);
    if (rc != TK_OK)
        return rc;
    if (PQntuples(res) != 1)
        return bad_result(res, "drop queue", queue, err);
    if (existed != NULL)
        *existed = get_bool(res, 0, 0);
    PQclear(res);
    return TK_OK;
}

int tk_mq_send(tk_conn_t *c, const char *queue, const char *json, int delay_s, int64_t *msg_id,
               tk_error_t *err)
{
    const char *op = "send";
    int rc = check_queue(op, queue, err);
    if (rc == TK_OK)
        rc = check_seconds(op, "delay", delay_s, err);
    if (rc != TK_OK)
        return rc;
    if (json == NULL)
        return tk_error_set(err, TK_EINVAL, "could not send: no message given");
    char delay[16];
    snprintf(delay, sizeof(delay), "%d", delay_s);
    const char *params[] = {queue, json, delay};
    PGresult *res;
    rc = run(c, &st_send, params, &res, op, queue, err);
    if (rc != TK_OK)
        return rc;
    int64_t id;
    if (PQntuples(res) != 1 || get_i64(res, 0, 0, &id) != TK_OK)
        return bad_result(res, op, queue, err);
    PQclear(res);
    if (msg_id != NULL)
        *msg_id = id;
    return TK_OK;
}

/* Render json[0..n-1] as a PostgreSQL array literal: {"e1","e2"} with " and \ escaped. */
static char *array_literal(const char *const *json, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(json[i]);
        if (len > (SIZE_MAX - cap) / 2 - 3)
            return NULL;
        cap += 2 * len + 3;
    }
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    size_t k = 0;
    buf[k++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf[k++] = ',';
        buf[k++] = '"';
        for (const char *p = json[i]; *p != '\0'; p++) {
            if (*p == '"' || *p == '\\')
                buf[k++] = '\\';
            buf[k++] = *p;
        }
        buf[k++] = '"';
    }
    buf[k++] = '}';
    buf[k] = '\0';
    return buf;
}

int tk_mq_send_batch(tk_conn_t *c, const char *queue, const char *const *json, size_t n,
                     int delay_s, int64_t *ids_out, tk_error_t *err)
{
    const char *op = "send batch";
    int rc = check_queue(op, queue, err);
    if (rc == TK_OK)
        rc = check_seconds(op, "delay", delay_s, err);
    if (rc != TK_OK)
        return rc;
    if (n == 0)
        return TK_OK;
    if (json == NULL)
        return tk_error_set(err, TK_EINVAL, "could not send batch: no messages given");
    if (n > INT_MAX)
        return tk_error_set(err, TK_EINVAL, "could not send batch: too many messages (%zu)", n);
    for (size_t i = 0; i < n; i++)
        if (json[i] == NULL)
            return tk_error_set(err, TK_EINVAL, "could not send batch: message %zu is NULL", i);
    char *array = array_literal(json, n);
    if (array == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not send batch: out of memory");
    char delay[16];
    snprintf(delay, sizeof(delay), "%d", delay_s);
    const char *params[] = {queue, array, delay};
    PGresult *res;
    rc = run(c, &st_send_batch, params, &res, op, queue, err);
    free(array);
    if (rc != TK_OK)
        return rc;
    if ((size_t)PQntuples(res) != n)
        return bad_result(res, op, queue, err);
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if (get_i64(res, (int)i, 0, &id) != TK_OK)
            return bad_result(res, op, queue, err);
        if (ids_out != NULL)
            ids_out[i] = id;
    }
    PQclear(res);
    return TK_OK;
}

/* Column value or NULL, and the bytes it needs in the batch's string area. */
static const char *text_or_null(const PGresult *res, int row, int col, size_t *need)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    *need += (size_t)PQgetlength(res, row, col) + 1;
    return PQgetvalue(res, row, col);
}

static const char *copy_into(char **area, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    char *dst = *area;
    memcpy(dst, s, len);
    *area += len;
    return dst;
}

/* Turn the rows of st_read/st_pop into one allocation. res is consumed. */
static int make_batch(PGresult *res, const char *op, const char *queue, tk_mq_batch_t **out,
                      tk_error_t *err)
{
    int rows = PQntuples(res);
    if (PQnfields(res) != 6)
        return bad_result(res, op, queue, err);
    /* The sentinel row (NULL msg_id, sorted last) means the queue does not exist. */
    if (rows > 0 && PQgetisnull(res, rows - 1, 0)) {
        PQclear(res);
        return missing_queue(err, op, queue);
    }
    size_t strings = 0;
    for (int r = 0; r < rows; r++)
        for (int col = 2; col < 6; col++)
            text_or_null(res, r, col, &strings);
    tk_mq_batch_t *b = malloc(sizeof(*b) + (size_t)rows * sizeof(b->msgs[0]) + strings);
    if (b == NULL) {
        PQclear(res);
        return tk_error_set(err, TK_ENOMEM, "could not %s: out of memory", op);
    }
    char *area = (char *)&b->msgs[rows];
    b->count = (size_t)rows;
    for (int r = 0; r < rows; r++) {
        tk_mq_message_t *m = &b->msgs[r];
        int64_t read_ct;
        if (get_i64(res, r, 0, &m->msg_id) != TK_OK || get_i64(res, r, 1, &read_ct) != TK_OK ||
            read_ct < 0 || read_ct > INT_MAX || PQgetisnull(res, r, 2) || PQgetisnull(res, r, 3)) {
            free(b);
            return bad_result(res, op, queue, err);
        }
        size_t unused = 0;
        m->read_ct = (int)read_ct;
        m->enqueued_at = copy_into(&area, text_or_null(res, r, 2, &unused));
        m->vt = copy_into(&area, text_or_null(res, r, 3, &unused));
        m->message = copy_into(&area, text_or_null(res, r, 4, &unused));
        m->headers = copy_into(&area, text_or_null(res, r, 5, &unused));
    }
    PQclear(res);
    *out = b;
    return TK_OK;
}

int tk_mq_read(tk_conn_t *c, const char *queue, int vt_s, int qty, tk_mq_batch_t **out,
               tk_error_t *err)
{
    const char *op = "read";
    *out = NULL;
    int rc = check_queue(op, queue, err);
    if (rc == TK_OK)
        rc = check_seconds(op, "visibility timeout", vt_s, err);
    if (rc != TK_OK)
        return rc;
    if (qty < 1)
        return tk_error_set(err, TK_EINVAL, "could not read: qty must be >= 1, not %d", qty);
    char vt[16], n[16];
    snprintf(vt, sizeof(vt), "%d", vt_s);
    snprintf(n, sizeof(n), "%d", qty);
    const char *params[] = {queue, vt, n};
    PGresult *res;
    rc = run(c, &st_read, params, &res, op, queue, err);
    if (rc != TK_OK)
        return rc;
    return make_batch(res, op, queue, out, err);
}

int tk_mq_pop(tk_conn_t *c, const char *queue, int qty, tk_mq_batch_t **out, tk_error_t *err)
{
    const char *op = "pop";
    *out = NULL;
    int rc = check_queue(op, queue, err);
    if (rc != TK_OK)
        return rc;
    if (qty < 1)
        return tk_error_set(err, TK_EINVAL, "could not pop: qty must be >= 1, not %d", qty);
    char n[16];
    snprintf(n, sizeof(n), "%d", qty);
    const char *params[] = {queue, n};
    PGresult *res;
    rc = run(c, &st_pop, params, &res, op, queue, err);
    if (rc != TK_OK)
        return rc;
    return make_batch(res, op, queue, out, err);
}

void tk_mq_batch_free(tk_mq_batch_t *b)
{
    free(b);
}

/* Shared body of delete and archive: (queue, msg_id) -> boolean. */
static int ack(tk_conn_t *c, const tk_stmt_t *stmt, const char *op, const char *queue,
               int64_t msg_id, bool *found, tk_error_t *err)
{
    int rc = check_queue(op, queue, err);
    if (rc != TK_OK)
        return rc;
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, msg_id);
    const char *params[] = {queue, id};
    PGresult *res;
    rc = run(c, stmt, params, &res, op, queue, err);
    if (rc != TK_OK)
        return rc;
    if (PQntuples(res) != 1)
        return bad_result(res, op, queue, err);
    if (found != NULL)
        *found = get_bool(res, 0, 0);
    PQclear(res);
    return TK_OK;
}

int tk_mq_delete(tk_conn_t *c, const char *queue, int64_t msg_id, bool *found, tk_error_t *err)
{
    return ack(c, &st_delete, "delete message", queue, msg_id, found, err);
}

int tk_mq_archive(tk_conn_t *c, const char *queue, int64_t msg_id, bool *found, tk_error_t *err)
{
    return ack(c, &st_archive, "archive message", queue, msg_id, found, err);
}

int tk_mq_set_vt(tk_conn_t *c, const char *queue, int64_t msg_id, int vt_s, tk_error_t *err)
{
    const char *op = "set visibility timeout";
    int rc = check_queue(op, queue, err);
    if (rc == TK_OK)
        rc = check_seconds(op, "visibility timeout", vt_s, err);
    if (rc != TK_OK)
        return rc;
    char id[24], vt[16];
    snprintf(id, sizeof(id), "%" PRId64, msg_id);
    snprintf(vt, sizeof(vt), "%d", vt_s);
    const char *params[] = {queue, id, vt};
    PGresult *res;
    rc = run(c, &st_set_vt, params, &res, op, queue, err);
    if (rc != TK_OK)
        return rc;
    int rows = PQntuples(res);
    PQclear(res);
    if (rows == 0)
        return tk_error_set(err, TK_ENOTFOUND,
                            "could not %s: no message %" PRId64 " in queue \"%s\"", op, msg_id,
                            queue);
    return TK_OK;
}

int tk_mq_purge(tk_conn_t *c, const char *queue, int64_t *count, tk_error_t *err)
{
    const char *op = "purge queue";
    int rc = check_queue(op, queue, err);
    if (rc != TK_OK)
        return rc;
    const char *params[] = {queue};
    PGresult *res;
    rc = run(c, &st_purge, params, &res, op, queue, err);
    if (rc != TK_OK)
        return rc;
    int64_t n;
    if (PQntuples(res) != 1 || get_i64(res, 0, 0, &n) != TK_OK)
        return bad_result(res, op, queue, err);
    PQclear(res);
    if (count != NULL)
        *count = n;
    return TK_OK;
}

int tk_mq_metrics(tk_conn_t *c, const char *queue, tk_mq_metrics_t *out, tk_error_t *err)
{
    const char *op = "get metrics";
    int rc = check_queue(op, queue, err);
    if (rc != TK_OK)
        return rc;
    const char *params[] = {queue};
    PGresult *res;
    rc = run(c, &st_metrics, params, &res, op, queue, err);
    if (rc != TK_OK)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return missing_queue(err, op, queue);
    }
    int64_t len, total, newest, oldest;
    if (PQntuples(res) != 1 || get_i64(res, 0, 1, &len) != TK_OK ||
        get_i64(res, 0, 2, &newest) != TK_OK || get_i64(res, 0, 3, &oldest) != TK_OK ||
        get_i64(res, 0, 4, &total) != TK_OK || newest > INT_MAX || oldest > INT_MAX)
        return bad_result(res, op, queue, err);
    memset(out, 0, sizeof(*out));
    snprintf(out->queue_name, sizeof(out->queue_name), "%s", PQgetvalue(res, 0, 0));
    out->queue_length = len;
    out->total_messages = total;
    out->newest_msg_age_sec = (int)newest;
    out->oldest_msg_age_sec = (int)oldest;
    snprintf(out->scrape_time, sizeof(out->scrape_time), "%s", PQgetvalue(res, 0, 5));
    PQclear(res);
    return TK_OK;
}
