/*
 * conn.h - one PostgreSQL connection with prepared statements and tasker's error model.
 *
 * A tk_conn_t wraps a PGconn. Statements are described once, statically, as tk_stmt_t and
 * prepared on a connection the first time they are used there (and again after a reconnect),
 * so hot paths cost one round trip per call. Failures are mapped to TK_E* codes with the
 * SQLSTATE kept in tk_error_t:
 *   class 08, 57P01-57P03 or a lost socket -> TK_ECONN
 *   23505 unique_violation                 -> TK_ECONFLICT
 *   TK001/TK002 (illegal transition)       -> TK_ETRANSITION
 *   P0002 no_data_found                    -> TK_ENOTFOUND
 *   22P02, 22023 bad input                 -> TK_EINVAL
 *   57014 query_canceled                   -> TK_ETIMEDOUT
 *   anything else                          -> TK_EDB
 * A connection is not thread-safe: one thread at a time (the pool hands it out).
 */
#ifndef TK_DB_CONN_H
#define TK_DB_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "tasker/error.h"

/* A statement prepared on demand. Define it `static const` next to the code that uses it. */
typedef struct tk_stmt_s {
    const char *name; /* unique per statement, e.g. "mq_send" */
    const char *sql;  /* with $1..$n placeholders */
    int nparams;
    bool idempotent; /* safe to run again after a connection failure (see tk_pool_query) */
} tk_stmt_t;

typedef struct tk_conn_s tk_conn_t;

/* Connect to `url` (a libpq URI or key=value string). The session's search_path is set to
 * tasker, tasker_mq, public and application_name to `app_name` (NULL: "tasker") in the
 * startup packet, so no extra round trip is needed. On failure returns TK_ECONN with libpq's
 * reason in err->message and *out = NULL. Free with tk_conn_close(). */
int tk_conn_open(const char *url, const char *app_name, tk_conn_t **out, tk_error_t *err);

/* Close the connection and free it. Accepts NULL. */
void tk_conn_close(tk_conn_t *c);

/* The underlying libpq connection (for LISTEN, COPY or pipeline mode). Owned by `c`. */
PGconn *tk_conn_pg(tk_conn_t *c);

/* True when the socket is believed to be usable. */
bool tk_conn_is_ok(const tk_conn_t *c);

/* Reconnect with the original parameters; forgets prepared statements. TK_OK or TK_ECONN. */
int tk_conn_reset(tk_conn_t *c, tk_error_t *err);

/* Run one or more SQL commands given as text (simple protocol, no parameters, results
 * discarded). TK_OK or a mapped error. */
int tk_conn_exec(tk_conn_t *c, const char *sql, tk_error_t *err);

/* Run the engine's hot calls once in this session and roll them back (tasker.warm_up(),
 * sql/0041), so that the session's first real task does not pay for compiling them (about
 * 60-100 ms here). Leaves no rows behind. TK_OK or a mapped error, which callers may ignore. */
int tk_conn_warm_up(tk_conn_t *c, tk_error_t *err);

/* Execute `stmt` with text parameters (NULL entries are SQL NULL). On success stores the
 * result in *out (caller frees with PQclear) and returns TK_OK; on failure *out = NULL. */
int tk_conn_query(tk_conn_t *c, const tk_stmt_t *stmt, const char *const *params, PGresult **out,
                  tk_error_t *err);

/* Same, for statements whose rows the caller does not need. */
int tk_conn_run(tk_conn_t *c, const tk_stmt_t *stmt, const char *const *params, tk_error_t *err);

/* Early rows: a statement's rows before its commit is on disk. tk_conn_send_early() sends
 * `stmt` (autocommit) in pipeline mode followed by a flush request and a Sync, without
 * waiting: the server sends the rows as soon as the statement has run, then commits at the
 * Sync (flushing the WAL) and says so. A statement new to the session is prepared in the same
 * pipeline, just before it. For each statement sent, take its rows with tk_conn_take_rows(),
 * then its commit with tk_conn_take_commit(), in the order sent; a statement may be sent
 * before the previous one's commit is taken (the server runs it right after that commit). The
 * connection leaves pipeline mode when the last commit is taken, and must not be used
 * otherwise until then; if a statement could not be sent whole, the connection is closed
 * (reconnected by tk_conn_reset or the pool). Rows taken before their commit belong to a
 * transaction that can still fail (the connection or the server dies during the flush): use
 * them only for what may be done twice. TK_OK or a mapped error. */
int tk_conn_send_early(tk_conn_t *c, const tk_stmt_t *stmt, const char *const *params,
                       tk_error_t *err);
/* The rows of the oldest statement sent early whose rows are not yet taken (caller PQclears
 * *out); on an error *out = NULL. Its commit must still be taken. */
int tk_conn_take_rows(tk_conn_t *c, PGresult **out, tk_error_t *err);
/* Wait for the commit of the oldest statement sent early whose commit is not taken (its rows,
 * if not taken, are dropped): TK_OK once it is committed, or the error that stopped it
 * (TK_ECONN when the connection broke: whether it committed is then unknown). */
int tk_conn_take_commit(tk_conn_t *c, tk_error_t *err);
/* Statements sent early whose commit has not been taken. */
int tk_conn_early_pending(const tk_conn_t *c);
/* Map a failed result (or NULL result) of `pg` to a TK_E* code and fill err. Exposed for
 * modules that use libpq directly (listeners, pipelines). */
int tk_conn_error_from_result(PGconn *pg, const PGresult *res, tk_error_t *err);

#endif
