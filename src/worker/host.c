/*
 * host.c - a worker whose handlers run in a host language (see tasker/worker.h).
 *
 * Each host callable is registered with a bridge handler. The bridge runs on a C handler
 * thread: it puts the step on the host queue and sleeps until a host thread has taken it
 * (tk_host_worker_next), ended it and handed it back (tk_host_worker_done). The C runtime
 * then reports the result as for any handler, so leases, timeouts and retries behave the
 * same whatever the language. One mutex guards the queue and the hand-over slots.
 *
 * tk_host_worker_wake() ends the waits in progress: every next() notes the wake generation
 * when it starts waiting and returns TK_ETIMEDOUT, without taking a step, once it changed.
 * tk_host_worker_close() ends them for good (`closed`), which a wake-up cannot: a thread just
 * entering next() would miss it.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/error_int.h"
#include "tasker/log.h"
#include "tasker/worker.h"
#include "worker/service.h"
#include "worker/step.h"

/* A step on its way to the host and back; lives on the bridge thread's stack. */
typedef struct slot_s {
    tk_step_t *step;
    bool taken; /* a host thread has it */
    bool done;  /* the host handed it back */
    pthread_cond_t cond;
    struct slot_s *next; /* queue, then the list of taken slots */
} slot_t;

struct tk_host_worker_s {
    tk_config_t cfg;
    tk_worker_service_t *svc;
    const char *const *host_handlers;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    slot_t *head, *tail; /* waiting for a host thread */
    slot_t *taken;       /* with a host thread */
    uint64_t wake_gen;   /* incremented by tk_host_worker_wake() */
    bool closed;         /* tk_host_worker_close(): next() returns TK_ESHUTDOWN */
    bool stopping;
};

static void wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000,
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(cond, lock, &ts);
}

/* The handler registered for every host callable. */
static int bridge(tk_step_t *step, void *data)
{
    tk_host_worker_t *w = data;
    slot_t slot = {.step = step};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&slot.cond, &attr);
    pthread_condattr_destroy(&attr);

    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        pthread_cond_destroy(&slot.cond);
        return tk_step_fail(step, "worker_stopping", "the worker is shutting down", true);
    }
    if (w->tail != NULL)
        w->tail->next = &slot;
    else
        w->head = &slot;
    w->tail = &slot;
    pthread_cond_signal(&w->ready);
    /* Wait for the host. A step never taken is failed at shutdown; one taken is waited for
     * (the runtime's own timeout has already reported it if the host is too slow). */
    while (!slot.done && !(w->stopping && !slot.taken))
        wait_until(&slot.cond, &w->lock, tk_clock_ms() + 1000);
    if (!slot.taken) { /* still queued: remove it */
        slot_t **p = &w->head;
        while (*p != &slot)
            p = &(*p)->next;
        *p = slot.next;
        if (w->tail == &slot) {
            w->tail = NULL;
            for (slot_t *s = w->head; s != NULL; s = s->next)
                w->tail = s;
        }
    }
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&slot.cond);
    if (!slot.done)
        tk_step_fail(step, "worker_stopping", "the worker stopped before running this step", true);
    return 0;
}

static int register_bridges(tk_handler_registry_t *registry, void *arg)
{
    tk_host_worker_t *w = arg;
    for (size_t i = 0; w->host_handlers && w->host_handlers[i]; i++) {
        int rc = tk_handler_register(registry, w->host_handlers[i], bridge, w);
        if (rc != TK_OK)
            return rc;
    }
    return TK_OK;
}

int tk_host_worker_start(const tk_host_worker_opts_t *o, tk_host_worker_t **out, tk_error_t *err)
{
    *out = NULL;
    tk_host_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return tk_error_set(err, TK_ENOMEM, "cannot start worker: out of memory");
    w->host_handlers = o->host_handlers;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->ready, &attr);
    pthread_condattr_destroy(&attr);

    int rc = tk_config_load(&w->cfg, o->config_path, err);
    for (size_t i = 0; rc == TK_OK && o->settings && o->settings[i]; i++) {
        const char *eq = strchr(o->settings[i], '=');
        char key[128];
        if (eq == NULL || eq == o->settings[i] || (size_t)(eq - o->settings[i]) >= sizeof(key)) {
            rc = tk_error_set(err, TK_EINVAL, "cannot use setting \"%s\": expected key=value",
                              o->settings[i]);
            break;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - o->settings[i]), o->settings[i]);
        rc = tk_config_set(&w->cfg, key, eq + 1, err);
    }
    if (rc == TK_OK)
        rc = tk_config_validate(&w->cfg, err);
    if (rc == TK_OK && w->cfg.database.url[0] == '\0')
        rc = tk_error_set(err, TK_EINVAL,
                          "cannot start worker: no database (set DATABASE_URL or database.url)");
    if (rc == TK_OK) {
        tk_log_set_level(w->cfg.log.level);
        int nns = 0;
        while (o->namespaces && o->namespaces[nns])
            nns++;
        rc = tk_worker_service_start_with(&w->cfg, o->namespaces, nns, o->serve_health,
                                          register_bridges, w, &w->svc, err);
    }
    if (rc != TK_OK) {
        tk_config_free(&w->cfg);
        pthread_cond_destroy(&w->ready);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return rc;
    }
    *out = w;
    return TK_OK;
}

int tk_host_worker_next(tk_host_worker_t *w, int timeout_ms, tk_step_t **step)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : tk_clock_ms() + timeout_ms;
    *step = NULL;
    pthread_mutex_lock(&w->lock);
    uint64_t gen = w->wake_gen;
    while (w->head == NULL && !w->stopping && !w->closed && w->wake_gen == gen &&
           tk_clock_ms() < deadline)
        wait_until(&w->ready, &w->lock,
                   deadline - tk_clock_ms() > 1000 ? tk_clock_ms() + 1000 : deadline);
    int rc = TK_ETIMEDOUT;
    if (w->stopping || w->closed) {
        rc = TK_ESHUTDOWN;
    } else if (w->head != NULL && w->wake_gen == gen) {
        slot_t *slot = w->head;
        w->head = slot->next;
        if (w->head == NULL)
            w->tail = NULL;
        slot->taken = true;
        slot->next = w->taken;
        w->taken = slot;
        *step = slot->step;
        rc = TK_OK;
    } else if (w->head != NULL) {
        pthread_cond_signal(&w->ready); /* woken: leave the step to another waiter */
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void tk_host_worker_wake(tk_host_worker_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->wake_gen++;
    pthread_cond_broadcast(&w->ready);
    pthread_mutex_unlock(&w->lock);
}

void tk_host_worker_close(tk_host_worker_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->closed = true;
    pthread_cond_broadcast(&w->ready);
    pthread_mutex_unlock(&w->lock);
}

void tk_host_worker_done(tk_host_worker_t *w, tk_step_t *step)
{
    if (step == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    for (slot_t **p = &w->taken; *p != NULL; p = &(*p)->next) {
        if ((*p)->step == step) {
            slot_t *slot = *p;
            *p = slot->next;
            if (!tk_step_has_outcome(step))
                tk_step_fail_by_worker(step, "handler_error", "the handler returned no result",
                                       true);
            slot->done = true;
            pthread_cond_signal(&slot->cond);
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

const char *tk_host_worker_id(const tk_host_worker_t *w)
{
    return w->cfg.worker.id;
}

int tk_host_worker_port(const tk_host_worker_t *w)
{
    return (int)tk_worker_service_port(w->svc);
}

void tk_host_worker_stop(tk_host_worker_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->ready);
    for (slot_t *s = w->head; s != NULL; s = s->next)
        pthread_cond_signal(&s->cond); /* queued steps fail at once */
    pthread_mutex_unlock(&w->lock);
    if (!tk_worker_service_stop(w->svc))
        return; /* abandoned handler threads still wait on w: leave it allocated */
    tk_config_free(&w->cfg);
    pthread_cond_destroy(&w->ready);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void tk_host_log(tk_log_level_t level, const char *component, const char *message)
{
    if ((int)level <= tk_log_threshold)
        tk_log_write(level, component ? component : "host", NULL, NULL, "%s", message);
}
