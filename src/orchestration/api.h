/*
 * api.h - the orchestration REST API (Tasker's routes and payloads) served by `tasker server`.
 *
 *   POST   /v1/tasks                         create (201); ?wait_ms=N waits for the end
 *   POST   /v1/tasks/batch                   create {"tasks": [...]} in one transaction, all
 *                                            or nothing (201 {"tasks": [...]}); no wait_ms
 *   GET    /v1/tasks                         list: page, per_page, namespace, status,
 *                                            initiator, source_system
 *   GET    /v1/tasks/{task_uuid}             one task; ?wait_ms=N waits for the end
 *   DELETE /v1/tasks/{task_uuid}             cancel
 *   GET    /v1/tasks/{task_uuid}/workflow_steps[/{step_uuid}]
 *   PATCH  /v1/tasks/{task_uuid}/workflow_steps/{step_uuid}   reset_for_retry,
 *                                            resolve_manually, complete_manually
 *   GET    /v1/templates[/{namespace}/{name}/{version}]
 *   GET    /health, /health/live, /health/ready, /metrics
 *
 * Responses are built by SQL (tasker.task_response etc.) and passed through as text. Errors
 * use Tasker's envelope and codes: 400 BAD_REQUEST / JSON_ERROR / INVALID_UUID, 404
 * NOT_FOUND, 409 CONFLICT, 413 PAYLOAD_TOO_LARGE, 500 DATABASE_ERROR, 503
 * SERVICE_UNAVAILABLE. An error about one item of a batch names it: the message starts
 * "tasks[i]: " and the envelope has "index": i.
 */
#ifndef TK_ORCHESTRATION_API_H
#define TK_ORCHESTRATION_API_H

#include "db/pool.h"
#include "http/http.h"
#include "orchestration/orchestrator.h"
#include "orchestration/task_watch.h"

typedef struct tk_api_s {
    tk_pool_t *pool;
    tk_task_watch_t *watch;
    tk_orchestrator_t *orchestrator; /* for /metrics and /health/ready; may be NULL */
    int max_wait_ms;                 /* upper bound of wait_ms */
    int max_batch_tasks;             /* most tasks in one POST /v1/tasks/batch */
} tk_api_t;

/* The route table; pass `api` as the server's context. */
const tk_http_route_t *tk_api_routes(size_t *count);

#endif
