/*
 * worker.h - run a tasker worker inside another program, with its handlers written in that
 * program's language (the Ruby and Python bindings are built on this).
 *
 * The C runtime does everything but the handlers: it loads and registers templates, claims
 * steps of their namespaces with a lease, renews leases, enforces timeouts and reports
 * results. Steps whose handler is one of `host_handlers` are handed to the host: its threads
 * call tk_host_worker_next() (which blocks: release the interpreter lock around it), run the
 * handler, end the step with tk_step_succeed_json() / tk_step_fail() (see handler.h), and
 * call tk_host_worker_done(), which reports the result from the calling thread, or together
 * with sibling steps' results that finished at the same time (release the lock around it
 * too). The step that result made ready is that thread's next, so a workflow of host steps
 * runs on one host thread without hand-overs. Built-in and plugin handlers keep
 * running on C threads.
 * tk_host_worker_wake() ends the waits in progress (for the interpreter's interrupts),
 * tk_host_worker_close() every wait for good (the first step of shutdown);
 * tk_host_worker_port() tells where /health listens.
 *
 *     tk_host_worker_t *w;
 *     const char *handlers[] = {"Payments::Charge", NULL};
 *     tk_host_worker_opts_t o = {.settings = (const char *[]){"worker.templates=tpl", NULL},
 *                                .host_handlers = handlers};
 *     tk_host_worker_start(&o, &w, &err);
 *     for (;;) {                                  -- in each host thread
 *         tk_step_t *step;
 *         if (tk_host_worker_next(w, 1000, &step) != TK_OK) continue / break;
 *         ... run the handler, tk_step_succeed_json(step, "{...}") ...
 *         tk_host_worker_done(w, step);
 *     }
 *     tk_host_worker_stop(w);
 *
 * Configuration is tasker's (etc/tasker.yaml): an optional file, TASKER_* variables and
 * DATABASE_URL, then `settings` ("key=value" strings) on top.
 */
#ifndef TASKER_WORKER_H
#define TASKER_WORKER_H

#include <stdbool.h>

#include "tasker/error.h"
#include "tasker/handler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tk_host_worker_s tk_host_worker_t;

typedef struct tk_host_worker_opts_s {
    const char *config_path;          /* YAML configuration, or NULL ($TASKER_CONFIG_PATH) */
    const char *const *settings;      /* "key=value" overrides, NULL-terminated; may be NULL */
    const char *const *host_handlers; /* callables the host runs, NULL-terminated */
    const char *const *namespaces;    /* extra namespaces to serve, NULL-terminated; may be NULL */
    bool serve_health;                /* /health, /metrics on worker.port: tk_host_worker_port */
} tk_host_worker_opts_t;

/* Load the configuration, register templates, start the runtime. Errors: TK_EINVAL (bad
 * setting or template, message names it), TK_ECONN (database), TK_ENOMEM. Thread-safe
 * functions below may then be called from any number of host threads. */
TK_API int tk_host_worker_start(const tk_host_worker_opts_t *opts, tk_host_worker_t **out,
                                tk_error_t *err);

/* Wait up to timeout_ms (< 0: forever) for a step whose handler the host runs.
 * TK_OK with *step set, TK_ETIMEDOUT (also when tk_host_worker_wake() ended the wait), or
 * TK_ESHUTDOWN once tk_host_worker_close() or tk_host_worker_stop() was called. The step
 * belongs to the caller until tk_host_worker_done(). Blocks: release the interpreter lock
 * around this call. Thread-safe. */
TK_API int tk_host_worker_next(tk_host_worker_t *w, int timeout_ms, tk_step_t **step);

/* End every wait in progress: each thread blocked in tk_host_worker_next() at the time of
 * the call returns TK_ETIMEDOUT at once, without taking a step (queued steps stay for the
 * next call). Calls that begin afterwards wait as usual, so a thread that is about to call
 * next() when this runs is not reached: a caller interrupting a wait (an interpreter's
 * unblocking function) sets its own flag first and checks it before each next(), or calls
 * this again until the waiter has left. For the host's interrupts (Ctrl-C, Thread#kill).
 * Thread-safe; never blocks for long; not async-signal-safe. w must be started and not yet
 * stopped; accepts NULL. */
TK_API void tk_host_worker_wake(tk_host_worker_t *w);

/* No more steps for the host: every wait in next() returns TK_ESHUTDOWN at once, and so does
 * every later call, so that the host can wait for its threads to leave next() before
 * tk_host_worker_stop() (which they must not be inside). Steps already queued for the host
 * are failed as retryable by tk_host_worker_stop(). Idempotent. Thread-safe; w must be
 * started and not yet stopped; accepts NULL. */
TK_API void tk_host_worker_close(tk_host_worker_t *w);

/* Hand back a step after ending it and report its result (a step without an outcome is
 * reported as a retryable handler_error); a result that arrives after the step's timeout was
 * reported is dropped. The step must not be used afterwards. Blocks for a database round
 * trip (longer while the database is unreachable, up to the lease), and while another
 * report of the same task is under way, whose next call then takes this result along with
 * the others waiting (the worker's README, "Siblings"): release the interpreter lock around
 * this call. Returns once the database has applied the result; its commit may still be on
 * its way to disk while the steps it made ready start (the worker's README, "Results before
 * their commit"). Thread-safe. */
TK_API void tk_host_worker_done(tk_host_worker_t *w, tk_step_t *step);

/* The worker's id (lease owner), e.g. "myhost-1234". */
TK_API const char *tk_host_worker_id(const tk_host_worker_t *w);

/* The TCP port the health endpoint (/health, /metrics) listens on: the one the system chose
 * when worker.port is 0. 0 when the worker serves no health endpoint (serve_health false).
 * Thread-safe. */
TK_API int tk_host_worker_port(const tk_host_worker_t *w);

/* Stop: no new claims; next() returns TK_ESHUTDOWN; steps already handed to the host have
 * until the handler timeout to be done(); then free (unless some are still not done: the
 * worker then stays allocated, so their late done() is safe). Call once, from a thread that
 * is not blocked in next(). Accepts NULL. */
TK_API void tk_host_worker_stop(tk_host_worker_t *w);

/* Write a structured log line (JSON, like every tasker line) for the host's own messages. */
TK_API void tk_host_log(tk_log_level_t level, const char *component, const char *message);

#ifdef __cplusplus
}
#endif
#endif
