/*
 * pgembed.h - a private PostgreSQL cluster in a directory, for `tasker dev` and the tests.
 *
 * tk_pgembed_start() creates the cluster with initdb if the directory holds none, starts the
 * server on a free loopback port (TCP 127.0.0.1 and a Unix socket in /tmp) with settings tuned
 * for a local database, waits until it accepts connections and makes sure the database
 * "tasker" exists (superuser "tasker", trust authentication: loopback only). If a server is
 * already running on that directory it is reused. tk_pgembed_stop() shuts it down (fast mode)
 * and waits for it to exit.
 *
 * When started as root, initdb and the server run as the "postgres" OS user (initdb refuses
 * root). If that user cannot reach the requested directory (e.g. it lies under /root), the
 * cluster is placed in /var/tmp/tasker-pg/ and the requested path becomes a symlink to it.
 *
 * Not thread-safe; call from the main thread, before other threads exist.
 */
#ifndef TK_DB_PGEMBED_H
#define TK_DB_PGEMBED_H

#include <stdbool.h>

#include "tasker/error.h"

typedef struct tk_pgembed_opts_s {
    const char *data_dir;  /* required: the cluster directory (created if missing) */
    int port;              /* 0: pick a free port */
    bool durable;          /* fsync/synchronous_commit/full_page_writes on (off: tests) */
    bool stop_with_parent; /* server gets SIGINT when the calling thread exits */
    const char *log_path;  /* server log; NULL: "<data_dir>.log" */
    bool attach_only;      /* only attach to a running server: TK_ENOTFOUND if none */
} tk_pgembed_opts_t;

typedef struct tk_pgembed_s tk_pgembed_t;

/* Create if needed, start (or attach to) the server, wait until ready, ensure the "tasker"
 * database exists. On failure returns TK_ESYS/TK_ECONN/TK_ETIMEDOUT with the reason (and the
 * last lines of the server log) in err. Free with tk_pgembed_free(). */
int tk_pgembed_start(const tk_pgembed_opts_t *opts, tk_pgembed_t **out, tk_error_t *err);

/* Connection URL of the "tasker" database, e.g. "postgresql:///tasker?host=/tmp&port=5433&
 * user=tasker". Owned by pg. */
const char *tk_pgembed_url(const tk_pgembed_t *pg);

/* Same, for another database on the same server (caller frees with free()). */
char *tk_pgembed_url_for(const tk_pgembed_t *pg, const char *dbname);

int tk_pgembed_port(const tk_pgembed_t *pg);

/* True when tk_pgembed_start() launched the server, false when it attached to a running one. */
bool tk_pgembed_started_here(const tk_pgembed_t *pg);

/* Path of the server log. Owned by pg. */
const char *tk_pgembed_log_path(const tk_pgembed_t *pg);

/* Fast shutdown; waits up to 60 s for the server to exit (then sends SIGQUIT).
 * TK_OK, or TK_ETIMEDOUT if it would not stop. */
int tk_pgembed_stop(tk_pgembed_t *pg, tk_error_t *err);

/* Forget the handle without stopping the server. Accepts NULL. */
void tk_pgembed_free(tk_pgembed_t *pg);

/* Remove a stopped cluster's directory (and its /var/tmp placement, if any). */
int tk_pgembed_remove(const char *data_dir, tk_error_t *err);

#endif
