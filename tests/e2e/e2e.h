/*
 * e2e.h - helpers for end-to-end tests: real `tasker server` and `tasker worker` processes
 * against real PostgreSQL, driven over HTTP.
 *
 * Processes are the built tasker binary ($TASKER_BIN). Their stderr (JSON log lines) goes to
 * build/tests/e2e-logs/<test>-<label>.log, kept for diagnosis. Every helper fails the cmocka
 * test on error.
 */
#ifndef TK_TEST_E2E_H
#define TK_TEST_E2E_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct e2e_proc_s {
    pid_t pid;
    int port; /* the port printed in the start-up banner */
    char label[64];
} e2e_proc_t;

/* Name used for log files of this test binary (call once in main). */
void e2e_init(const char *test_name);

/* Path of a file in the source tree (static buffer). */
const char *e2e_source_path(const char *relative);

/* Path of a file in the build tree, the directory of $TASKER_BIN (static buffer). */
const char *e2e_build_path(const char *relative);

/* Start `tasker server --database-url URL --port 0 [extra...]` (extra is NULL-terminated) and
 * wait for its banner. */
e2e_proc_t e2e_start_server(const char *db_url, const char *label, const char *const *extra);

/* Start `tasker worker --database-url URL --templates DIR --port 0 --id LABEL [extra...]`. */
e2e_proc_t e2e_start_worker(const char *db_url, const char *templates, const char *label,
                            const char *const *extra);

/* Start any program (argv[0] is its path; argv NULL-terminated) whose first stdout line is
 * a banner ending in ":<port>" or ":<port>/...", e.g. a Ruby or Python worker. */
e2e_proc_t e2e_start_program(const char *label, const char *const *argv);

/* SIGTERM and wait (SIGKILL after 15 s); the exit status must be 0 unless killed. */
void e2e_stop(e2e_proc_t *p);

/* SIGKILL and reap. */
void e2e_kill(e2e_proc_t *p);

/* HTTP request to http://127.0.0.1:<port><path>; returns the parsed JSON body (NULL if not
 * JSON) and sets *status. */
json_t *e2e_http(int port, const char *method, const char *path, const char *body, long *status);

/* The same request; returns the body as text (caller frees; NULL when empty). */
char *e2e_http_text(int port, const char *method, const char *path, const char *body, long *status);

/* POST /v1/tasks (?wait_ms=wait_ms when > 0) for ns/name/1.0.0 with `context` (JSON text);
 * fails the test unless the status is `expect_status`. Returns the response JSON. */
json_t *e2e_create_task(int port, const char *ns, const char *name, const char *context,
                        int wait_ms, long expect_status);

/* GET /v1/tasks/<uuid>?wait_ms=<wait_ms>; fails the test unless 200. */
json_t *e2e_get_task(int port, const char *task_uuid, int wait_ms);

/* The step named `name` in a task response's "steps" array, or NULL. */
json_t *e2e_task_step(json_t *task, const char *name);

/* results.result of step `name` from GET /v1/tasks/<uuid>/workflow_steps. */
json_t *e2e_step_result(int port, const char *task_uuid, const char *name);

/* A unique string (for contexts that must not collide on task identity). */
const char *e2e_unique(void);

/* Sleep `ms` milliseconds. */
void e2e_sleep_ms(long ms);

/* The value of `series` (e.g. "tasker_worker_steps_total{outcome=\"success\"}") in the
 * /metrics of the worker on `port`; fails the test when it is missing. */
long e2e_worker_metric(int port, const char *series);

#endif
