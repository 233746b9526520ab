/*
 * mq.h - C client for the tasker_mq queue layer (sql/0004_queues.sql) over one tk_conn_t.
 *
 * Every call is one prepared statement, so one round trip (plus a one-off PREPARE the first
 * time a statement is used on a connection). Calls run in whatever transaction the connection
 * is in: BEGIN; tk_mq_read(); ...; COMMIT keeps the read messages locked until the commit,
 * and concurrent readers skip them (FOR UPDATE SKIP LOCKED).
 *
 * Queue names are 1-47 ASCII letters, digits or underscores; other names fail with TK_EINVAL
 * before any SQL runs. Message bodies are JSON text, passed and returned as the server
 * renders jsonb. Timestamps are returned as PostgreSQL's text form of timestamptz (ISO
 * DateStyle, the session's time zone). Durations (delay, visibility timeout) are whole
 * seconds, counted on the database clock.
 *
 * Errors: TK_EINVAL (bad name, negative duration, invalid JSON: SQLSTATE 22P02),
 * TK_ENOTFOUND (the queue, or the message for tk_mq_set_vt, does not exist), TK_ECONN (the
 * connection broke: the caller may tk_conn_reset() and retry), TK_EDB (anything else), always
 * with the SQLSTATE in err when the server gave one.
 *
 * Thread-safety: the functions keep no state of their own; a tk_conn_t is used by one thread
 * at a time (see conn.h). Batches are plain memory owned by the caller.
 */
#ifndef TK_MQ_MQ_H
#define TK_MQ_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/conn.h"

/* Longest queue name, as in tasker_mq.queues' CHECK constraint. */
#define TK_MQ_QUEUE_NAME_MAX 47

/* One message as read()/pop() return it. The strings point into the batch that holds it. */
typedef struct tk_mq_message_s {
    int64_t msg_id;
    int read_ct;             /* reads so far, this one included (pop does not count) */
    const char *enqueued_at; /* timestamptz as text */
    const char *vt;          /* visible again from this time (timestamptz as text) */
    const char *message;     /* JSON text; NULL if the message is SQL NULL */
    const char *headers;     /* JSON text; NULL when the message has no headers */
} tk_mq_message_t;

/* The messages of one read()/pop(), in msg_id order, in a single allocation. */
typedef struct tk_mq_batch_s {
    size_t count;
    tk_mq_message_t msgs[];
} tk_mq_batch_t;

/* Depth and ages of a queue (tasker_mq.metrics). */
typedef struct tk_mq_metrics_s {
    char queue_name[TK_MQ_QUEUE_NAME_MAX + 1];
    int64_t queue_length;   /* messages in the queue, visible or not */
    int64_t total_messages; /* queue_length plus archived messages */
    int newest_msg_age_sec; /* -1 when the queue is empty */
    int oldest_msg_age_sec; /* -1 when the queue is empty */
    char scrape_time[40];   /* database time of the measurement (timestamptz as text) */
} tk_mq_metrics_t;

/* True when `queue` is a valid queue name ([A-Za-z0-9_]{1,47}). Accepts NULL (false). */
bool tk_mq_queue_name_valid(const char *queue);

/* Create `queue`; a no-op if it exists. TK_OK, TK_EINVAL or a database error. */
int tk_mq_create(tk_conn_t *c, const char *queue, tk_error_t *err);

/* Drop `queue` with its messages and its archive. *existed (may be NULL) tells whether it
 * existed; dropping a missing queue is not an error. It waits for sends in flight, and every
 * queue's writers wait for it until the caller's transaction ends (sql/0020). */
int tk_mq_drop(tk_conn_t *c, const char *queue, bool *existed, tk_error_t *err);

/* Send one message (JSON text, required) that becomes visible after delay_s >= 0 seconds.
 * Its id goes to *msg_id (may be NULL). Listeners of the queue's namespace are notified at
 * commit. TK_ENOTFOUND with message `queue "<name>" does not exist` (SQLSTATE 23503) if the
 * queue is missing; TK_EINVAL if the text is not JSON. */
int tk_mq_send(tk_conn_t *c, const char *queue, const char *json, int delay_s, int64_t *msg_id,
               tk_error_t *err);

/* Send n messages at once (one notification for the batch). json[0..n-1] are JSON texts
 * (none NULL); their ids go, in the same order, to ids_out[0..n-1] (may be NULL). n == 0 is a
 * no-op that does not check that the queue exists. All or nothing: on error no message is
 * sent. Errors as tk_mq_send(). */
int tk_mq_send_batch(tk_conn_t *c, const char *queue, const char *const *json, size_t n,
                     int delay_s, int64_t *ids_out, tk_error_t *err);

/* Take up to qty >= 1 visible messages, oldest first, and hide them for vt_s >= 0 seconds
 * (read_ct + 1). Messages locked by concurrent readers' open transactions are skipped. On
 * TK_OK *out is a batch (count may be 0) that the caller frees with tk_mq_batch_free(); on
 * failure *out = NULL. TK_ENOTFOUND if the queue does not exist. */
int tk_mq_read(tk_conn_t *c, const char *queue, int vt_s, int qty, tk_mq_batch_t **out,
               tk_error_t *err);

/* Take and delete up to qty >= 1 visible messages at once (no redelivery). As tk_mq_read(). */
int tk_mq_pop(tk_conn_t *c, const char *queue, int qty, tk_mq_batch_t **out, tk_error_t *err);

/* Free a batch and every string in it. Accepts NULL. */
void tk_mq_batch_free(tk_mq_batch_t *b);

/* Delete message msg_id of `queue` (acknowledge it). *found (may be NULL) is false if there
 * was no such message in that queue (already deleted, another queue, missing queue). */
int tk_mq_delete(tk_conn_t *c, const char *queue, int64_t msg_id, bool *found, tk_error_t *err);

/* Move message msg_id of `queue` to tasker_mq.archive (acknowledge and keep it). *found as
 * tk_mq_delete(). */
int tk_mq_archive(tk_conn_t *c, const char *queue, int64_t msg_id, bool *found, tk_error_t *err);

/* Make message msg_id visible again vt_s >= 0 seconds from now (0: at once); read_ct is
 * unchanged. TK_ENOTFOUND if `queue` holds no such message. */
int tk_mq_set_vt(tk_conn_t *c, const char *queue, int64_t msg_id, int vt_s, tk_error_t *err);

/* Delete every message of `queue` (the archive is kept). *count (may be NULL) gets how many
 * were deleted; purging a missing queue deletes nothing. */
int tk_mq_purge(tk_conn_t *c, const char *queue, int64_t *count, tk_error_t *err);

/* Fill *out with the queue's metrics. TK_ENOTFOUND if the queue does not exist. */
int tk_mq_metrics(tk_conn_t *c, const char *queue, tk_mq_metrics_t *out, tk_error_t *err);

#endif
