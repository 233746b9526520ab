/*
 * listener.c - LISTEN connection with an event FIFO and transparent reconnection (see
 * listener.h).
 *
 * The listener owns a raw PGconn rather than a tk_conn_t because reconnection is driven
 * asynchronously (PQconnectStartParams + PQconnectPoll) so that a wait never blocks past its
 * timeout while the server is unreachable. States:
 *   CONNECTED   LISTENing on every subscription; the socket is polled for notifications
 *   CONNECTING  an attempt is in progress (poll_status says which direction to wait for)
 *   DOWN        no connection; the next attempt starts at next_attempt_ms
 * Undelivered events live in a ring of PGnotify pointers; a NULL entry is the RECONNECTED
 * marker, queued behind whatever arrived before the connection broke.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "common/clock.h"
#include "common/error_int.h"
#include "db/conn.h"
#include "mq/listener.h"
#include "tasker/log.h"

#define COMPONENT          "mq.listener"
#define CHANNEL_PREFIX     "pgmq_message_ready."
#define CONNECT_TIMEOUT_MS 10000
#define BACKOFF_FIRST_MS   100
#define BACKOFF_MAX_MS     5000

typedef enum { ST_DOWN, ST_CONNECTING, ST_CONNECTED } conn_state_t;

struct tk_mq_listener_s {
    char *url;
    PGconn *pg;
    conn_state_t state;
    PostgresPollingStatusType poll_status; /* last PQconnectPoll result while CONNECTING */
    int64_t connect_deadline_ms;           /* abandon the current attempt after this */
    int64_t next_attempt_ms;               /* while DOWN */
    int64_t lost_at_ms;                    /* when the connection broke (for the log) */
    int backoff_ms;                        /* delay after the next failed attempt */
    bool connected_once;                   /* later connections are reconnections */
    bool reconnected_pending;              /* RECONNECTED marker that did not fit the ring */
    char last_error[256];
    char last_notice[256];

    char **subs; /* channels subscribed to */
    int nsubs;
    int cap_subs;

    PGnotify **ring; /* FIFO of undelivered events; NULL = RECONNECTED marker */
    size_t head;
    size_t len;
    size_t cap;
};

/* --- event FIFO ------------------------------------------------------------------------- */

static bool ring_reserve(tk_mq_listener_t *l)
{
    if (l->len < l->cap)
        return true;
    size_t cap = l->cap ? l->cap * 2 : 16;
    PGnotify **ring = malloc(cap * sizeof(*ring));
    if (ring == NULL)
        return false;
    for (size_t i = 0; i < l->len; i++)
        ring[i] = l->ring[(l->head + i) % l->cap];
    free(l->ring);
    l->ring = ring;
    l->head = 0;
    l->cap = cap;
    return true;
}

/* Append; the caller has reserved room. */
static void ring_push(tk_mq_listener_t *l, PGnotify *n)
{
    l->ring[(l->head + l->len) % l->cap] = n;
    l->len++;
}

/* Move every notification libpq holds into the ring. If the ring cannot grow, the rest stay
 * in libpq's own list and are collected on a later call: nothing is dropped. */
static void drain(tk_mq_listener_t *l)
{
    while (ring_reserve(l)) {
        PGnotify *n = PQnotifies(l->pg);
        if (n == NULL)
            return;
        ring_push(l, n);
    }
}

static void queue_reconnected(tk_mq_listener_t *l)
{
    if (ring_reserve(l))
        ring_push(l, NULL);
    else
        l->reconnected_pending = true;
}

/* Copy `s` into a fixed field, cutting it if needed. */
static void set_field(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

/* Fill ev from a notification's channel and JSON payload (see tasker_mq.send). A payload
 * that is not the expected JSON still yields an event: the channel alone means "look now". */
static void fill_event(tk_mq_event_t *ev, const PGnotify *n)
{
    memset(ev, 0, sizeof(*ev));
    ev->kind = TK_MQ_EVENT_MESSAGE;
    set_field(ev->channel, sizeof(ev->channel), n->relname);
    set_field(ev->payload, sizeof(ev->payload), n->extra);
    json_t *root = json_loads(n->extra ? n->extra : "", 0, NULL);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return;
    }
    set_field(ev->queue_name, sizeof(ev->queue_name),
              json_string_value(json_object_get(root, "queue_name")));
    set_field(ev->ns, sizeof(ev->ns), json_string_value(json_object_get(root, "namespace")));
    json_t *id = json_object_get(root, "msg_id");
    json_t *count = json_object_get(root, "message_count");
    json_t *ids = json_object_get(root, "msg_ids");
    if (json_is_integer(id)) {
        ev->msg_id = (int64_t)json_integer_value(id);
        ev->message_count = 1;
    }
    if (json_is_integer(count))
        ev->message_count = (int)json_integer_value(count);
    else if (json_is_array(ids))
        ev->message_count = (int)json_array_size(ids);
    json_decref(root);
}

/* Take the oldest event, if any. */
static bool pop_event(tk_mq_listener_t *l, tk_mq_event_t *ev)
{
    if (l->len == 0) {
        if (!l->reconnected_pending)
            return false;
        l->reconnected_pending = false;
        memset(ev, 0, sizeof(*ev));
        ev->kind = TK_MQ_EVENT_RECONNECTED;
        return true;
    }
    PGnotify *n = l->ring[l->head];
    l->head = (l->head + 1) % l->cap;
    l->len--;
    if (n == NULL) {
        memset(ev, 0, sizeof(*ev));
        ev->kind = TK_MQ_EVENT_RECONNECTED;
        return true;
    }
    fill_event(ev, n);
    PQfreemem(n);
    return true;
}

/* --- connection ------------------------------------------------------------------------- */

/* libpq's messages end with a newline; keep one line. */
static void set_message(char *dst, size_t cap, const char *msg)
{
    if (msg == NULL || msg[0] == '\0')
        msg = "unknown error";
    size_t len = strcspn(msg, "\n");
    snprintf(dst, cap, "%.*s", (int)len, msg);
}

/* Server notices (including the FATAL message a terminated backend sends while idle) are
 * kept for the "connection lost" log line instead of being printed on stderr. */
static void on_notice(void *arg, const char *message)
{
    tk_mq_listener_t *l = arg;
    set_message(l->last_notice, sizeof(l->last_notice), message);
    TK_LOG(TK_LOG_DEBUG, COMPONENT, "server notice: %s", l->last_notice);
}

static void disconnect(tk_mq_listener_t *l)
{
    if (l->pg != NULL)
        PQfinish(l->pg);
    l->pg = NULL;
    l->state = ST_DOWN;
}

/* The current attempt failed: retry after the backoff, which doubles up to the maximum. */
static void attempt_failed(tk_mq_listener_t *l, const char *why)
{
    set_message(l->last_error, sizeof(l->last_error), why);
    disconnect(l);
    l->backoff_ms = l->backoff_ms == 0 ? BACKOFF_FIRST_MS : l->backoff_ms * 2;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
    l->next_attempt_ms = tk_clock_ms() + l->backoff_ms;
    if (l->connected_once)
        TK_LOG(TK_LOG_WARN, COMPONENT,
               "could not reconnect the LISTEN connection: %s; retrying in %d ms", l->last_error,
               l->backoff_ms);
}

/* A working connection broke: reconnect at once. */
static void connection_lost(tk_mq_listener_t *l)
{
    set_message(l->last_error, sizeof(l->last_error), PQerrorMessage(l->pg));
    TK_LOG(TK_LOG_WARN, COMPONENT, "lost the LISTEN connection: %s%s%s%s; reconnecting",
           l->last_error, l->last_notice[0] ? " (server said: " : "", l->last_notice,
           l->last_notice[0] ? ")" : "");
    disconnect(l);
    l->last_notice[0] = '\0';
    l->lost_at_ms = tk_clock_ms();
    l->backoff_ms = 0;
    l->next_attempt_ms = l->lost_at_ms;
}

/* Begin an asynchronous connection attempt: CONNECTING, or DOWN after a failure. */
static void start_connect(tk_mq_listener_t *l)
{
    /* Keepalive defaults come before dbname so the URL may override them; application_name
     * comes after, as for every tasker connection. */
    const char *keys[] = {"keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "dbname",
                          "application_name",
                          NULL};
    const char *vals[] = {"1", "30", "10", "3", l->url, "tasker-listener", NULL};
    l->pg = PQconnectStartParams(keys, vals, 1);
    if (l->pg == NULL) {
        attempt_failed(l, "out of memory");
        return;
    }
    if (PQstatus(l->pg) == CONNECTION_BAD) {
        attempt_failed(l, PQerrorMessage(l->pg));
        return;
    }
    PQsetNoticeProcessor(l->pg, on_notice, l);
    l->state = ST_CONNECTING;
    l->poll_status = PGRES_POLLING_WRITING; /* as libpq documents for a fresh attempt */
    l->connect_deadline_ms = tk_clock_ms() + CONNECT_TIMEOUT_MS;
}

static void append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n < cap) {
        memcpy(buf + *len, s, n + 1);
        *len += n;
    }
}

/* The connection is up: LISTEN again on every subscription, in one round trip. */
static void finish_connect(tk_mq_listener_t *l)
{
    if (l->nsubs > 0) {
        /* LISTEN "<channel>"; per subscription. The channel alphabet is [A-Za-z0-9_.], so
         * double quotes are all the quoting the identifier needs. */
        size_t cap = 1, len = 0;
        for (int i = 0; i < l->nsubs; i++)
            cap += strlen(l->subs[i]) + 12;
        char *sql = malloc(cap);
        if (sql == NULL) {
            attempt_failed(l, "out of memory");
            return;
        }
        sql[0] = '\0';
        for (int i = 0; i < l->nsubs; i++) {
            append(sql, cap, &len, "LISTEN \"");
            append(sql, cap, &len, l->subs[i]);
            append(sql, cap, &len, "\";");
        }
        PGresult *res = PQexec(l->pg, sql);
        free(sql);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            attempt_failed(l, PQerrorMessage(l->pg));
            return;
        }
    }
    l->state = ST_CONNECTED;
    l->backoff_ms = 0;
    l->last_error[0] = '\0';
    if (l->connected_once) {
        TK_LOG(TK_LOG_INFO, COMPONENT,
               "LISTEN connection re-established after %" PRId64 " ms, %d subscription(s) "
               "restored; notifications sent meanwhile were missed",
               tk_clock_ms() - l->lost_at_ms, l->nsubs);
        queue_reconnected(l);
    }
    l->connected_once = true;
}

/* poll() one descriptor: 1 ready, 0 timed out or interrupted (the caller re-checks its
 * clock), -1 error (errno set). timeout_ms < 0 waits forever. */
static int wait_fd(int fd, short events, int64_t timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int t = timeout_ms < 0 ? -1 : timeout_ms > 60000 ? 60000 : (int)timeout_ms;
    int r = poll(&p, 1, t);
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    return r > 0 ? 1 : 0;
}

/* Advance the attempt until it ends (state becomes CONNECTED or DOWN: TK_OK) or `deadline`
 * (ms on tk_clock_ms, < 0: none) passes (TK_ETIMEDOUT, still CONNECTING). */
static int drive_connect(tk_mq_listener_t *l, int64_t deadline, tk_error_t *err)
{
    for (;;) {
        if (l->poll_status == PGRES_POLLING_OK) {
            finish_connect(l);
            return TK_OK;
        }
        if (l->poll_status == PGRES_POLLING_FAILED) {
            attempt_failed(l, PQerrorMessage(l->pg));
            return TK_OK;
        }
        int64_t now = tk_clock_ms();
        if (now >= l->connect_deadline_ms) {
            attempt_failed(l, "timed out while connecting");
            return TK_OK;
        }
        int64_t until = l->connect_deadline_ms;
        if (deadline >= 0 && deadline < until)
            until = deadline;
        int fd = PQsocket(l->pg);
        if (fd < 0) {
            attempt_failed(l, "no socket");
            return TK_OK;
        }
        short events = l->poll_status == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        int r = wait_fd(fd, events, until - now);
        if (r < 0)
            return tk_error_set(err, TK_ESYS, "could not wait for the database: %s",
                                strerror(errno));
        if (r == 0) {
            if (deadline >= 0 && tk_clock_ms() >= deadline)
                return TK_ETIMEDOUT;
            continue;
        }
        l->poll_status = PQconnectPoll(l->pg);
    }
}

/* --- public API ------------------------------------------------------------------------- */

int tk_mq_listener_open(const char *url, tk_mq_listener_t **out, tk_error_t *err)
{
    *out = NULL;
    if (url == NULL || url[0] == '\0')
        return tk_error_set(err, TK_EINVAL, "cannot listen: no database URL given");
    tk_mq_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->url = strdup(url)) == NULL) {
        free(l);
        return tk_error_set(err, TK_ENOMEM, "could not open listener: out of memory");
    }
    start_connect(l);
    if (l->state == ST_CONNECTING) {
        int rc = drive_connect(l, -1, err); /* bounded by CONNECT_TIMEOUT_MS */
        if (rc != TK_OK) {
            tk_mq_listener_close(l);
            return rc;
        }
    }
    if (l->state != ST_CONNECTED) {
        tk_error_set(err, TK_ECONN, "could not connect to the database: %s", l->last_error);
        tk_mq_listener_close(l);
        return TK_ECONN;
    }
    *out = l;
    return TK_OK;
}

void tk_mq_listener_close(tk_mq_listener_t *l)
{
    if (l == NULL)
        return;
    disconnect(l);
    for (size_t i = 0; i < l->len; i++)
        PQfreemem(l->ring[(l->head + i) % l->cap]);
    free(l->ring);
    for (int i = 0; i < l->nsubs; i++)
        free(l->subs[i]);
    free(l->subs);
    free(l->url);
    free(l);
}

static int check_ns(const char *op, const char *ns, tk_error_t *err)
{
    size_t n = 0;
    bool ok = ns != NULL;
    for (const char *p = ns; ok && *p != '\0'; p++, n++) {
        char ch = *p;
        ok = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_') &&
             n < TK_MQ_NAMESPACE_MAX;
    }
    if (ok && n > 0)
        return TK_OK;
    return tk_error_set(err, TK_EINVAL,
                        "could not %s: invalid namespace \"%.64s\": use 1 to %d ASCII letters, "
                        "digits or underscores",
                        op, ns ? ns : "", TK_MQ_NAMESPACE_MAX);
}

/* A channel name: 1 to 63 ASCII letters, digits, underscores or dots. */
static int check_channel(const char *op, const char *channel, tk_error_t *err)
{
    size_t n = 0;
    bool ok = channel != NULL;
    for (const char *p = channel; ok && *p != '\0'; p++, n++) {
        char ch = *p;
        ok = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.') &&
             n < 63;
    }
    if (ok && n > 0)
        return TK_OK;
    return tk_error_set(err, TK_EINVAL,
                        "could not %s: invalid channel \"%.64s\": use 1 to 63 ASCII letters, "
                        "digits, underscores or dots",
                        op, channel ? channel : "");
}

static int find_sub(const tk_mq_listener_t *l, const char *channel)
{
    for (int i = 0; i < l->nsubs; i++)
        if (strcmp(l->subs[i], channel) == 0)
            return i;
    return -1;
}

/* Run LISTEN or UNLISTEN for `channel` if connected. A broken connection is not an error
 * here: the subscription list is what the reconnect restores. */
static int listen_cmd(tk_mq_listener_t *l, const char *cmd, const char *channel, tk_error_t *err)
{
    if (l->state != ST_CONNECTED)
        return TK_OK;
    char sql[128];
    snprintf(sql, sizeof(sql), "%s \"%s\"", cmd, channel);
    PGresult *res = PQexec(l->pg, sql);
    int rc = TK_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        if (PQstatus(l->pg) != CONNECTION_OK) {
            connection_lost(l);
        } else {
            tk_error_t e;
            rc = tk_conn_error_from_result(l->pg, res, &e);
            tk_error_set(err, rc, "could not %s %s: %s", cmd, channel, e.message);
            tk_error_set_sqlstate(err, e.sqlstate);
        }
    }
    PQclear(res);
    return rc;
}

int tk_mq_listener_subscribe_channel(tk_mq_listener_t *l, const char *channel, tk_error_t *err)
{
    int rc = check_channel("subscribe", channel, err);
    if (rc != TK_OK)
        return rc;
    if (find_sub(l, channel) >= 0)
        return TK_OK;
    if (l->nsubs == l->cap_subs) {
        int cap = l->cap_subs ? l->cap_subs * 2 : 4;
        char **subs = realloc(l->subs, (size_t)cap * sizeof(*subs));
        if (subs == NULL)
            return tk_error_set(err, TK_ENOMEM, "could not subscribe: out of memory");
        l->subs = subs;
        l->cap_subs = cap;
    }
    char *copy = strdup(channel);
    if (copy == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not subscribe: out of memory");
    rc = listen_cmd(l, "LISTEN", channel, err);
    if (rc != TK_OK) {
        free(copy);
        return rc;
    }
    l->subs[l->nsubs++] = copy;
    return TK_OK;
}

int tk_mq_listener_unsubscribe_channel(tk_mq_listener_t *l, const char *channel, tk_error_t *err)
{
    int rc = check_channel("unsubscribe", channel, err);
    if (rc != TK_OK)
        return rc;
    int i = find_sub(l, channel);
    if (i < 0)
        return TK_OK;
    rc = listen_cmd(l, "UNLISTEN", channel, err);
    if (rc != TK_OK)
        return rc;
    free(l->subs[i]);
    l->subs[i] = l->subs[--l->nsubs];
    return TK_OK;
}

int tk_mq_listener_subscribe(tk_mq_listener_t *l, const char *ns, tk_error_t *err)
{
    char channel[sizeof(CHANNEL_PREFIX) + TK_MQ_NAMESPACE_MAX];
    int rc = check_ns("subscribe", ns, err);
    if (rc != TK_OK)
        return rc;
    snprintf(channel, sizeof(channel), CHANNEL_PREFIX "%s", ns);
    return tk_mq_listener_subscribe_channel(l, channel, err);
}

int tk_mq_listener_unsubscribe(tk_mq_listener_t *l, const char *ns, tk_error_t *err)
{
    char channel[sizeof(CHANNEL_PREFIX) + TK_MQ_NAMESPACE_MAX];
    int rc = check_ns("unsubscribe", ns, err);
    if (rc != TK_OK)
        return rc;
    snprintf(channel, sizeof(channel), CHANNEL_PREFIX "%s", ns);
    return tk_mq_listener_unsubscribe_channel(l, channel, err);
}

int tk_mq_listener_wait(tk_mq_listener_t *l, int timeout_ms, tk_mq_event_t *ev, tk_error_t *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : tk_clock_ms() + timeout_ms;
    for (;;) {
        if (l->state == ST_CONNECTED)
            drain(l);
        if (pop_event(l, ev))
            return TK_OK;
        int64_t now = tk_clock_ms();
        int64_t remaining = deadline < 0 ? -1 : deadline > now ? deadline - now : 0;

        if (l->state == ST_CONNECTED) {
            int r = wait_fd(PQsocket(l->pg), POLLIN, remaining);
            if (r < 0)
                return tk_error_set(err, TK_ESYS, "could not wait for notifications: %s",
                                    strerror(errno));
            if (r == 0) {
                if (deadline >= 0 && tk_clock_ms() >= deadline)
                    return tk_error_set(err, TK_ETIMEDOUT, "no notification within %d ms",
                                        timeout_ms);
                continue;
            }
            if (!PQconsumeInput(l->pg) || PQstatus(l->pg) != CONNECTION_OK)
                connection_lost(l);
            continue;
        }

        if (l->state == ST_CONNECTING) {
            int rc = drive_connect(l, deadline, err);
            if (rc == TK_ETIMEDOUT)
                return tk_error_set(err, TK_ECONN,
                                    "could not reconnect the LISTEN connection within %d ms: "
                                    "still connecting",
                                    timeout_ms);
            if (rc != TK_OK)
                return rc;
            continue;
        }

        /* DOWN: start the next attempt when its time comes, within the caller's timeout. */
        if (now >= l->next_attempt_ms) {
            start_connect(l);
            continue;
        }
        if (remaining == 0)
            return tk_error_set(err, TK_ECONN, "could not reconnect the LISTEN connection: %s",
                                l->last_error);
        int64_t nap = l->next_attempt_ms - now;
        if (remaining >= 0 && remaining < nap)
            nap = remaining;
        wait_fd(-1, 0, nap); /* poll() ignores negative descriptors: a plain sleep */
    }
}

int tk_mq_listener_fd(const tk_mq_listener_t *l)
{
    return l->state == ST_CONNECTED ? PQsocket(l->pg) : -1;
}

int tk_mq_listener_backend_pid(const tk_mq_listener_t *l)
{
    return l->state == ST_CONNECTED ? PQbackendPID(l->pg) : 0;
}
