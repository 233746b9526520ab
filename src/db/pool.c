/*
 * pool.c - fixed-size connection pool guarded by one mutex and a condition variable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error_int.h"
#include "db/pool.h"

struct tk_pool_s {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *url;
    char *app_name;
    int size;   /* maximum number of connections */
    int opened; /* connections created so far (idle or lent) */
    tk_conn_t **idle;
    int nidle;
};

int tk_pool_open(const char *url, const char *app_name, int size, tk_pool_t **out, tk_error_t *err)
{
    *out = NULL;
    if (size < 1)
        return tk_error_set(err, TK_EINVAL, "cannot create pool: size must be at least 1");
    tk_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not create pool: out of memory");
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &attr);
    pthread_condattr_destroy(&attr);
    p->url = strdup(url ? url : "");
    p->app_name = strdup(app_name ? app_name : "tasker");
    p->idle = calloc((size_t)size, sizeof(*p->idle));
    p->size = size;
    if (p->url == NULL || p->app_name == NULL || p->idle == NULL) {
        tk_pool_close(p);
        return tk_error_set(err, TK_ENOMEM, "could not create pool: out of memory");
    }

    tk_conn_t *first;
    int rc = tk_conn_open(p->url, p->app_name, &first, err);
    if (rc != TK_OK) {
        tk_pool_close(p);
        return rc;
    }
    p->idle[p->nidle++] = first;
    p->opened = 1;
    *out = p;
    return TK_OK;
}

void tk_pool_close(tk_pool_t *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->nidle; i++)
        tk_conn_close(p->idle[i]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
    free(p->idle);
    free(p->url);
    free(p->app_name);
    free(p);
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int tk_pool_acquire(tk_pool_t *p, int timeout_ms, tk_conn_t **out, tk_error_t *err)
{
    struct timespec deadline;
    if (timeout_ms >= 0)
        deadline_after(&deadline, timeout_ms);
    *out = NULL;

    pthread_mutex_lock(&p->lock);
    while (p->nidle == 0 && p->opened >= p->size) {
        int w = timeout_ms >= 0 ? pthread_cond_timedwait(&p->freed, &p->lock, &deadline)
                                : pthread_cond_wait(&p->freed, &p->lock);
        if (w == ETIMEDOUT && p->nidle == 0 && p->opened >= p->size) {
            pthread_mutex_unlock(&p->lock);
            return tk_error_set(err, TK_ETIMEDOUT,
                                "could not get a database connection: all %d are busy", p->size);
        }
    }
    tk_conn_t *c = NULL;
    if (p->nidle > 0)
        c = p->idle[--p->nidle];
    else
        p->opened++; /* reserve a slot, connect outside the lock */
    pthread_mutex_unlock(&p->lock);

    int rc = TK_OK;
    if (c == NULL)
        rc = tk_conn_open(p->url, p->app_name, &c, err);
    else if (!tk_conn_is_ok(c))
        rc = tk_conn_reset(c, err);
    if (rc != TK_OK) {
        /* Keep a broken-but-allocated connection for a later reset; drop a failed open. */
        if (c != NULL) {
            tk_pool_release(p, c);
        } else {
            pthread_mutex_lock(&p->lock);
            p->opened--;
            pthread_cond_signal(&p->freed);
            pthread_mutex_unlock(&p->lock);
        }
        return rc;
    }
    *out = c;
    return TK_OK;
}

void tk_pool_release(tk_pool_t *p, tk_conn_t *c)
{
    if (c == NULL)
        return;
    /* Statements sent early (tk_conn_send_early) end first; a failure shows on next use. */
    while (tk_conn_early_pending(c) > 0) {
        tk_error_t err;
        (void)tk_conn_take_commit(c, &err);
    }
    /* A connection left inside a transaction (caller bailed out) must not be reused as is. */
    PGconn *pg = tk_conn_pg(c);
    if (pg != NULL && PQtransactionStatus(pg) != PQTRANS_IDLE &&
        PQtransactionStatus(pg) != PQTRANS_UNKNOWN) {
        PGresult *res = PQexec(pg, "ROLLBACK");
        PQclear(res);
    }
    pthread_mutex_lock(&p->lock);
    p->idle[p->nidle++] = c;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

bool tk_pool_has_spare(tk_pool_t *p, int n)
{
    pthread_mutex_lock(&p->lock);
    bool spare = p->nidle + (p->size - p->opened) >= n;
    pthread_mutex_unlock(&p->lock);
    return spare;
}

int tk_pool_warm_up(tk_pool_t *p, tk_error_t *err)
{
    tk_conn_t *c;
    int rc = tk_pool_acquire(p, 0, &c, err);
    if (rc != TK_OK)
        return rc;
    rc = tk_conn_warm_up(c, err);
    tk_pool_release(p, c);
    return rc;
}

int tk_pool_query(tk_pool_t *p, const tk_stmt_t *stmt, const char *const *params, PGresult **out,
                  tk_error_t *err)
{
    for (int attempt = 0;; attempt++) {
        tk_conn_t *c;
        int rc = tk_pool_acquire(p, 30000, &c, err);
        if (rc != TK_OK)
            return rc;
        rc = tk_conn_query(c, stmt, params, out, err);
        tk_pool_release(p, c);
        if (rc != TK_ECONN || !stmt->idempotent || attempt > 0)
            return rc;
    }
}

const char *tk_pool_url(const tk_pool_t *p)
{
    return p->url;
}
