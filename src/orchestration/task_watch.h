/*
 * task_watch.h - lets HTTP requests wait for a task to finish (wait_ms) without polling.
 *
 * One thread LISTENs on channel "tasker_task_finished", on which the database announces at
 * commit a task that reached a terminal state when the task's notify_on_finish is set
 * (sql/0037: the notice, and on a second line the task's response when it fits), and wakes
 * the requests waiting for that task, handing them the response. A request registers before it sets
 * that flag and reads the task's state (one call), so a notification can never slip between the
 * read and the wait. After a reconnect every waiter is woken (it re-reads the state): notifications
 * sent while disconnected are lost.
 */
#ifndef TK_ORCHESTRATION_TASK_WATCH_H
#define TK_ORCHESTRATION_TASK_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "tasker/error.h"

typedef struct tk_task_watch_s tk_task_watch_t;
typedef struct tk_task_waiter_s tk_task_waiter_t;

/* Connect and start the listening thread. TK_ECONN if the database cannot be reached. */
int tk_task_watch_start(const char *database_url, tk_task_watch_t **out, tk_error_t *err);

/* Begin shutting down: every current and future wait returns at once and
 * tk_task_watch_stopping() becomes true. The watch stays usable (register/wait/unregister)
 * until tk_task_watch_stop(). */
void tk_task_watch_shutdown(tk_task_watch_t *tw);

/* True after tk_task_watch_shutdown(). Thread-safe. */
bool tk_task_watch_stopping(tk_task_watch_t *tw);

/* Shut down, join the thread, free. No waiter may remain registered. Accepts NULL. */
void tk_task_watch_stop(tk_task_watch_t *tw);

/* Register interest in `task_uuid` (canonical lower-case text). NULL when out of memory.
 * Thread-safe. */
tk_task_waiter_t *tk_task_watch_register(tk_task_watch_t *tw, const char *task_uuid);

/* Block until the task's finish is announced, the watch stops or reconnects, or the
 * monotonic deadline (tk_clock_ms) passes. True when woken by an event (re-read the task),
 * false on timeout. Thread-safe; one thread per waiter. */
bool tk_task_watch_wait(tk_task_watch_t *tw, tk_task_waiter_t *w, int64_t deadline_ms);

/* The finished task's response (the JSON text GET /v1/tasks/{uuid} returns) that the notice
 * which woke `w` carried, or NULL (none yet, or too large to carry: read the task). The
 * caller owns it (free). Thread-safe. */
char *tk_task_watch_take_response(tk_task_watch_t *tw, tk_task_waiter_t *w);

/* Forget and free a waiter. Accepts NULL. */
void tk_task_watch_unregister(tk_task_watch_t *tw, tk_task_waiter_t *w);

#endif
