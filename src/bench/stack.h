/*
 * stack.h - what the e2e and throughput suites run against: tasker's orchestration server
 * and C workers inside the bench process (as `tasker dev` runs them), workers of other
 * languages as child processes, and a keep-alive HTTP client.
 *
 * In-process on purpose: server and workers talk only through PostgreSQL (queues, NOTIFY),
 * exactly as separate processes do, so the path measured is the same; one process is what
 * `tasker dev` runs and what `make profile` samples, and nothing has to be found on PATH or
 * waited for. Ruby and Python handlers need their interpreters, so their workers are
 * children (killed with the bench: PR_SET_PDEATHSIG).
 *
 * A stack belongs to the thread that created it; tk_bench_http_t handles belong to one
 * thread each.
 */
#ifndef TK_BENCH_STACK_H
#define TK_BENCH_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "bench/bench.h"

#define TK_BENCH_MAX_WORKERS 16

typedef struct tk_bench_stack_s tk_bench_stack_t;

/* Start the orchestration server on a free loopback port against `db_url`. The settings
 * are the run's (--config, --set) with database.url, server.bind/port and, unless given,
 * log.level = warn. TK_OK or an error (printed). */
int tk_bench_stack_start(tk_bench_t *b, const char *db_url, tk_bench_stack_t **out);

/* "http://127.0.0.1:<port>" of the REST API. */
const char *tk_bench_stack_url(const tk_bench_stack_t *s);

/* Start a C worker in this process with the templates in `templates` (file or directory),
 * worker id `id`, serving `extra_ns` namespaces too. TK_OK or an error (printed). */
int tk_bench_stack_add_worker(tk_bench_stack_t *s, const char *templates, const char *id,
                              const char *const *extra_ns, int nextra);

/* Start a worker program as a child: argv[0] is looked up on PATH; its environment gets
 * DATABASE_URL, TASKER_WORKER_PORT=0, TASKER_WORKER_ID and (unless set) TASKER_LOG_LEVEL=warn,
 * plus `env` ("NAME=value", NULL-terminated, may be NULL). Output goes to `log_path`.
 * *pid (if not NULL) gets the child's process id, which names it to the calls below.
 * TK_OK or TK_ESYS (printed). */
int tk_bench_stack_add_child(tk_bench_stack_t *s, const char *const *argv, const char *const *env,
                             const char *id, const char *log_path, pid_t *pid);

/* False when the worker child `pid` has exited (or is not one of the stack's children). */
bool tk_bench_stack_child_alive(tk_bench_stack_t *s, pid_t pid);

/* Stop the worker child `pid` (SIGTERM, SIGKILL after 10 s) and wait for it; the other
 * workers keep running. Nothing happens when `pid` is not one of the stack's children. */
void tk_bench_stack_stop_child(tk_bench_stack_t *s, pid_t pid);

/* Stop every worker (in-process and children), keep the server. */
void tk_bench_stack_stop_workers(tk_bench_stack_t *s);

/* Stop everything and free. Accepts NULL. */
void tk_bench_stack_free(tk_bench_stack_t *s);

/* A keep-alive HTTP client: one libcurl easy handle reused for every request, so the
 * connection is set up once. */
typedef struct tk_bench_http_s tk_bench_http_t;

tk_bench_http_t *tk_bench_http_new(const char *base_url);
void tk_bench_http_free(tk_bench_http_t *h);

/* POST `body` (JSON) to base_url + path; waits up to timeout_ms. TK_OK with *status set
 * (any HTTP status) or TK_ECONN / TK_ETIMEDOUT with the reason in err. The response body
 * stays valid until the next request on h. */
int tk_bench_http_post(tk_bench_http_t *h, const char *path, const char *body, long timeout_ms,
                       long *status, tk_error_t *err);
const char *tk_bench_http_body(const tk_bench_http_t *h);

/* GET base_url + path, as tk_bench_http_post. */
int tk_bench_http_get(tk_bench_http_t *h, const char *path, long timeout_ms, long *status,
                      tk_error_t *err);

/* The template of `workflow` ("linear", "diamond", "complex_dag", "tree") in template
 * directory `dir`, recognised by its shape (suite_e2e.c): namespace, name and version into
 * the buffers. TK_OK, TK_ENOTFOUND (no template of that shape) or a load error. */
int tk_bench_find_workflow(const char *dir, const char *workflow, char ns[64], char name[256],
                           char version[64], tk_error_t *err);

#endif
