/*
 * listener.h - a dedicated LISTEN connection that wakes queue consumers.
 *
 * tasker_mq.send() and send_batch() notify channel "pgmq_message_ready.<namespace>" at commit
 * (the namespace is derived from the queue name: worker_<ns>_queue -> <ns>, orchestration*
 * -> orchestration, see tasker_mq.queue_namespace). A listener subscribes to namespaces and
 * blocks in tk_mq_listener_wait() until a notification arrives or a timeout passes. A
 * notification only says "look now": the consumer still reads the queue (tk_mq_read), which
 * is what hides and hands out messages.
 *
 * Notifications are drained from libpq as soon as they arrive and kept in an internal FIFO,
 * so several sends committed together produce as many events, none lost.
 *
 * Reconnection: when the connection breaks (server restart, backend terminated, network),
 * the next wait reconnects (asynchronously, within the caller's timeout, retrying with
 * backoff from 100 ms up to 5 s while the server is unreachable) and LISTENs again on every
 * subscription. Once that succeeds it delivers exactly one TK_MQ_EVENT_RECONNECTED event:
 * notifications sent while the connection was down are lost, so the consumer should poll its
 * queues. The TCP connection uses keepalives so that a silently dead peer is noticed too.
 *
 * Thread-safety: none. A listener belongs to one thread; use one listener per thread or
 * event loop.
 */
#ifndef TK_MQ_LISTENER_H
#define TK_MQ_LISTENER_H

#include <stdint.h>

#include "tasker/error.h"

/* Longest namespace: the channel name ("pgmq_message_ready." + namespace) must fit in
 * PostgreSQL's 63-byte identifiers. */
#define TK_MQ_NAMESPACE_MAX 44

typedef enum {
    TK_MQ_EVENT_MESSAGE = 0,    /* a send/send_batch committed on a subscribed channel */
    TK_MQ_EVENT_RECONNECTED = 1 /* the connection was re-established: poll, events were missed */
} tk_mq_event_kind_t;

/* One wake-up. Plain data (no pointers): safe to copy and keep. */
typedef struct tk_mq_event_s {
    tk_mq_event_kind_t kind;
    char channel[64];    /* e.g. "pgmq_message_ready.payments"; "" for RECONNECTED */
    char queue_name[48]; /* queue named by the payload; "" if absent or unparsable */
    char ns[48];         /* namespace named by the payload; "" if absent */
    int64_t msg_id;      /* the single message announced, 0 for a batch or no id */
    int message_count;   /* messages announced: 1 for a send, n for a batch, 0 if unknown */
    char payload[8000];  /* the raw payload (NOTIFY payloads are < 8000 bytes); "" if none */
} tk_mq_event_t;

typedef struct tk_mq_listener_s tk_mq_listener_t;

/* Connect to `url` (libpq URI or key=value string) with application_name "tasker-listener".
 * Fails with TK_ECONN and libpq's reason if the server cannot be reached (within 10 s).
 * Free with tk_mq_listener_close(). */
int tk_mq_listener_open(const char *url, tk_mq_listener_t **out, tk_error_t *err);

/* Close the connection and free the listener and any undelivered events. Accepts NULL. */
void tk_mq_listener_close(tk_mq_listener_t *l);

/* LISTEN to channel "pgmq_message_ready.<ns>" and remember the subscription for reconnects.
 * `ns` is 1 to TK_MQ_NAMESPACE_MAX ASCII letters, digits or underscores (else TK_EINVAL).
 * Subscribing twice is a no-op. If the connection is down the subscription is kept and takes
 * effect at the reconnect (which the next wait reports), and TK_OK is returned. */
int tk_mq_listener_subscribe(tk_mq_listener_t *l, const char *ns, tk_error_t *err);

/* UNLISTEN a namespace and forget it; events already queued for it are still delivered.
 * Not subscribed: no-op. */
int tk_mq_listener_unsubscribe(tk_mq_listener_t *l, const char *ns, tk_error_t *err);

/* The same for any channel (1 to 63 ASCII letters, digits, underscores or dots), e.g.
 * "tasker_task_finished". Events on it carry the raw payload; queue fields stay empty unless
 * the payload has them. */
int tk_mq_listener_subscribe_channel(tk_mq_listener_t *l, const char *channel, tk_error_t *err);
int tk_mq_listener_unsubscribe_channel(tk_mq_listener_t *l, const char *channel, tk_error_t *err);

/* Wait up to timeout_ms (0: do not block, < 0: forever) for the next event, in arrival order.
 *   TK_OK        *ev filled (a notification, or a RECONNECTED event)
 *   TK_ETIMEDOUT nothing arrived in time
 *   TK_ECONN     the connection is down and could not be re-established in time; err says
 *                why. The listener keeps trying on the next call; meanwhile poll the queues.
 *   TK_ESYS      poll() failed
 * Signals do not cut the wait short. Reconnecting respects the timeout except for host name
 * resolution and the one LISTEN round trip on the fresh connection. */
int tk_mq_listener_wait(tk_mq_listener_t *l, int timeout_ms, tk_mq_event_t *ev, tk_error_t *err);

/* The socket to watch for readability when the caller runs its own poll/epoll loop, or -1
 * while disconnected. It changes after a reconnect, so fetch it again after every wait. When
 * it is readable, or before sleeping on it, call tk_mq_listener_wait(l, 0, ...) until it
 * returns TK_ETIMEDOUT: events may already be queued inside the listener. */
int tk_mq_listener_fd(const tk_mq_listener_t *l);

/* Process id of the listener's server backend (0 while disconnected), for diagnostics and
 * pg_stat_activity. */
int tk_mq_listener_backend_pid(const tk_mq_listener_t *l);

#endif
