/*
 * pool.h - a fixed-size, thread-safe pool of tk_conn_t with reconnection.
 *
 * Connections are opened on demand up to `size`. A connection found broken when it is handed
 * out (for instance after the server restarted) is reconnected first; if that fails the
 * caller gets TK_ECONN and may try again later. The pool never blocks forever: acquire takes
 * a timeout.
 */
#ifndef TK_DB_POOL_H
#define TK_DB_POOL_H

#include "db/conn.h"

typedef struct tk_pool_s tk_pool_t;

/* Create a pool of at most `size` connections to `url` and open the first connection, so a
 * wrong URL fails here with TK_ECONN and libpq's reason. Free with tk_pool_close(). */
int tk_pool_open(const char *url, const char *app_name, int size, tk_pool_t **out, tk_error_t *err);

/* Close every connection and free the pool. All connections must have been released.
 * Accepts NULL. */
void tk_pool_close(tk_pool_t *p);

/* Borrow a connection, waiting up to timeout_ms (< 0: forever) for one to be free.
 * TK_OK, TK_ETIMEDOUT, or TK_ECONN when (re)connecting failed. Thread-safe. */
int tk_pool_acquire(tk_pool_t *p, int timeout_ms, tk_conn_t **out, tk_error_t *err);

/* Give a connection back. A connection whose socket broke is reconnected on next use; the
 * commits of statements sent early on it (tk_conn_send_early) are waited for first. */
void tk_pool_release(tk_pool_t *p, tk_conn_t *c);

/* True when at least `n` connections could be acquired now without waiting (idle, or not
 * yet opened). A hint: other threads may take them the next moment. */
bool tk_pool_has_spare(tk_pool_t *p, int n);

/* Acquire, run `stmt`, release. If the connection turns out to be broken and the statement
 * is idempotent, reconnect and run it once more. Result as tk_conn_query(). */
int tk_pool_query(tk_pool_t *p, const tk_stmt_t *stmt, const char *const *params, PGresult **out,
                  tk_error_t *err);

/* Warm up (tk_conn_warm_up) the connection the next acquire hands out (idle connections are
 * reused last-in first-out), opening it if none is idle. TK_OK, TK_ETIMEDOUT when every
 * connection is lent, or the warm-up's error; callers may ignore them. */
int tk_pool_warm_up(tk_pool_t *p, tk_error_t *err);

/* The URL the pool connects to (owned by the pool). */
const char *tk_pool_url(const tk_pool_t *p);

#endif
