/*
 * worker.h - the worker runtime: claims steps from namespace queues, runs their handlers on a
 * bounded thread pool, keeps their leases alive and reports results.
 *
 * Threads: one dispatcher (claims, woken by NOTIFY and/or polling), max_concurrent handler
 * threads, one heartbeat thread (extends leases, enforces timeouts), and the host program's
 * threads for host handlers (tk_worker_host_next). src/worker/README.md
 * describes the lease protocol.
 */
#ifndef TK_WORKER_WORKER_H
#define TK_WORKER_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/backoff.h"
#include "common/config.h"
#include "tasker/handler.h"

typedef struct tk_worker_opts_s {
    const char *database_url;
    const char *worker_id;         /* lease owner; unique per worker process */
    const char *const *namespaces; /* queues worker_<ns>_queue to consume */
    int nnamespaces;
    const tk_handler_registry_t *registry; /* must outlive the worker */
    tk_config_mode_t mode;                 /* hybrid, event_driven (LISTEN only) or polling */
    int poll_interval_ms;                  /* fallback polling period */
    int batch_size;                        /* steps per claim */
    int max_concurrent;                    /* handler threads */
    int handler_timeout_ms;                /* default per-step timeout */
    int lease_seconds;                     /* lease taken at claim and renewed by heartbeats */
    int heartbeat_interval_ms;             /* must be well below lease_seconds */
    tk_backoff_t backoff;                  /* retry delays for the results this worker applies */
} tk_worker_opts_t;

typedef struct tk_worker_stats_s {
    uint64_t claimed;
    uint64_t succeeded;
    uint64_t failed;            /* handler failures (incl. timeouts) reported */
    uint64_t timed_out;         /* of which timeouts */
    uint64_t lost;              /* results refused because the lease had been lost */
    uint64_t reported_together; /* results sent in one call with others of their task */
    int in_flight;              /* steps claimed and not yet reported */
    bool database_ok;           /* the last claim reached the database */
} tk_worker_stats_t;

typedef struct tk_worker_s tk_worker_t;

/* Connect and start the threads. Fails with TK_ECONN if the database cannot be reached, or
 * TK_EINVAL for unusable options (message says which). Stop with tk_worker_stop(). */
int tk_worker_start(const tk_worker_opts_t *opts, tk_worker_t **out, tk_error_t *err);

/* Stop claiming, let running handlers finish for up to grace_ms (their results are still
 * reported), then free everything and return true. Handlers still running after that are
 * abandoned: their leases expire and the steps run again elsewhere; the worker's memory is
 * then left allocated (those threads still use it) and false is returned, so the caller
 * must also keep what the handlers use (the registry and its plugins). Accepts NULL. */
bool tk_worker_stop(tk_worker_t *w, int grace_ms);

/* Steps of host handlers (tk_handler_registry_add_host) for the host program's threads; the
 * contracts are those of tk_host_worker_next, _wake, _close and _done in tasker/worker.h.
 * tk_worker_host_done() reports the result on the calling thread (a database round trip, so
 * release the interpreter lock around it); the steps that result made ready for the host
 * are then first in line for the same thread's next call. */
int tk_worker_host_next(tk_worker_t *w, int timeout_ms, tk_step_t **step);
void tk_worker_host_wake(tk_worker_t *w);
void tk_worker_host_close(tk_worker_t *w);
void tk_worker_host_done(tk_worker_t *w, tk_step_t *step);

/* Counters since start. Thread-safe. */
void tk_worker_stats(tk_worker_t *w, tk_worker_stats_t *out);

#endif
