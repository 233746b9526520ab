/*
 * task_watch.c - wake HTTP long polls when their task finishes (see task_watch.h).
 *
 * Waiters are kept in a doubly linked list under one mutex; each has its own condition
 * variable. A handful of concurrent waiters is the common case, so a list scan per
 * notification is cheap.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error_int.h"
#include "mq/listener.h"
#include "orchestration/task_watch.h"
#include "tasker/log.h"

#define CHANNEL "tasker_task_finished"

struct tk_task_waiter_s {
    char task_uuid[40];
    bool woken;
    char *response; /* the finished task, as its notice carried it (sql/0037), or NULL */
    pthread_cond_t cond;
    tk_task_waiter_t *prev, *next;
};

struct tk_task_watch_s {
    char *url;
    pthread_t thread;
    pthread_mutex_t lock;
    bool stopping;
    tk_task_waiter_t *waiters;
};

/* Wake the waiters of `task_uuid`, or all of them when it is NULL (lock held). `response`:
 * the task's response the notice carried, handed to each of them (or NULL). */
static void wake(tk_task_watch_t *tw, const char *task_uuid, const char *response)
{
    for (tk_task_waiter_t *w = tw->waiters; w != NULL; w = w->next) {
        if (task_uuid == NULL || strcmp(w->task_uuid, task_uuid) == 0) {
            if (response != NULL && w->response == NULL)
                w->response = strdup(response); /* out of memory: the waiter reads the task */
            w->woken = true;
            pthread_cond_signal(&w->cond);
        }
    }
}

static void *watch_thread(void *arg)
{
    tk_task_watch_t *tw = arg;
    tk_mq_listener_t *listener = NULL;
    tk_error_t err;
    for (;;) {
        pthread_mutex_lock(&tw->lock);
        bool stop = tw->stopping;
        pthread_mutex_unlock(&tw->lock);
        if (stop)
            break;
        if (listener == NULL) {
            if (tk_mq_listener_open(tw->url, &listener, &err) != TK_OK ||
                tk_mq_listener_subscribe_channel(listener, CHANNEL, &err) != TK_OK) {
                tk_mq_listener_close(listener);
                listener = NULL;
                tk_sleep_ms(500);
                continue;
            }
            /* anything announced before this point was missed: let waiters re-check */
            pthread_mutex_lock(&tw->lock);
            wake(tw, NULL, NULL);
            pthread_mutex_unlock(&tw->lock);
        }
        tk_mq_event_t ev;
        int rc = tk_mq_listener_wait(listener, 200, &ev, &err);
        if (rc != TK_OK)
            continue;
        pthread_mutex_lock(&tw->lock);
        if (ev.kind == TK_MQ_EVENT_RECONNECTED) {
            wake(tw, NULL, NULL);
        } else {
            /* the notice's first line, then (optionally) the task's response */
            const char *newline = strchr(ev.payload, '\n');
            size_t notice_len =
                newline != NULL ? (size_t)(newline - ev.payload) : strlen(ev.payload);
            json_t *doc = json_loadb(ev.payload, notice_len, 0, NULL);
            const char *uuid = json_string_value(json_object_get(doc, "task_uuid"));
            if (uuid != NULL)
                wake(tw, uuid, newline != NULL && newline[1] != '\0' ? newline + 1 : NULL);
            json_decref(doc);
        }
        pthread_mutex_unlock(&tw->lock);
    }
    tk_mq_listener_close(listener);
    return NULL;
}

int tk_task_watch_start(const char *database_url, tk_task_watch_t **out, tk_error_t *err)
{
    *out = NULL;
    tk_mq_listener_t *probe;
    int rc = tk_mq_listener_open(database_url, &probe, err);
    if (rc != TK_OK)
        return rc;
    tk_mq_listener_close(probe);
    tk_task_watch_t *tw = calloc(1, sizeof(*tw));
    if (tw == NULL || (tw->url = strdup(database_url)) == NULL) {
        free(tw);
        return tk_error_set(err, TK_ENOMEM, "cannot watch tasks: out of memory");
    }
    pthread_mutex_init(&tw->lock, NULL);
    if (pthread_create(&tw->thread, NULL, watch_thread, tw) != 0) {
        pthread_mutex_destroy(&tw->lock);
        free(tw->url);
        free(tw);
        return tk_error_set(err, TK_ESYS, "cannot watch tasks: could not create a thread");
    }
    *out = tw;
    return TK_OK;
}

void tk_task_watch_shutdown(tk_task_watch_t *tw)
{
    pthread_mutex_lock(&tw->lock);
    tw->stopping = true;
    wake(tw, NULL, NULL);
    pthread_mutex_unlock(&tw->lock);
}

bool tk_task_watch_stopping(tk_task_watch_t *tw)
{
    pthread_mutex_lock(&tw->lock);
    bool s = tw->stopping;
    pthread_mutex_unlock(&tw->lock);
    return s;
}

void tk_task_watch_stop(tk_task_watch_t *tw)
{
    if (tw == NULL)
        return;
    tk_task_watch_shutdown(tw);
    pthread_join(tw->thread, NULL);
    pthread_mutex_destroy(&tw->lock);
    free(tw->url);
    free(tw);
}

tk_task_waiter_t *tk_task_watch_register(tk_task_watch_t *tw, const char *task_uuid)
{
    tk_task_waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    snprintf(w->task_uuid, sizeof(w->task_uuid), "%s", task_uuid);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_lock(&tw->lock);
    w->next = tw->waiters;
    if (tw->waiters != NULL)
        tw->waiters->prev = w;
    tw->waiters = w;
    pthread_mutex_unlock(&tw->lock);
    return w;
}

bool tk_task_watch_wait(tk_task_watch_t *tw, tk_task_waiter_t *w, int64_t deadline_ms)
{
    struct timespec until = {.tv_sec = deadline_ms / 1000,
                             .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&tw->lock);
    while (!w->woken && !tw->stopping && tk_clock_ms() < deadline_ms)
        pthread_cond_timedwait(&w->cond, &tw->lock, &until);
    bool woken = w->woken || tw->stopping;
    w->woken = false;
    pthread_mutex_unlock(&tw->lock);
    return woken;
}

char *tk_task_watch_take_response(tk_task_watch_t *tw, tk_task_waiter_t *w)
{
    pthread_mutex_lock(&tw->lock);
    char *response = w->response;
    w->response = NULL;
    pthread_mutex_unlock(&tw->lock);
    return response;
}

void tk_task_watch_unregister(tk_task_watch_t *tw, tk_task_waiter_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&tw->lock);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        tw->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&tw->lock);
    pthread_cond_destroy(&w->cond);
    free(w->response);
    free(w);
}
