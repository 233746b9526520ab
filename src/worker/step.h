/*
 * step.h - the tk_step_t behind the handler ABI: built from one row of tasker.claim_steps,
 * handed to a handler, turned into Tasker's StepExecutionResult JSON for complete_step.
 */
#ifndef TK_WORKER_STEP_H
#define TK_WORKER_STEP_H

#include <libpq-fe.h>

#include "tasker/handler.h"

/* Build a step from row `row` of a claim_steps result (columns by name). `deadline_ms` is the
 * monotonic time of the timeout. Returns NULL on malformed JSON columns or out of memory. */
tk_step_t *tk_step_from_claim(const PGresult *res, int row, int64_t deadline_ms);

/* Free a step (accepts NULL). */
void tk_step_free(tk_step_t *step);

/* True once the handler called tk_step_succeed or tk_step_fail. */
bool tk_step_has_outcome(const tk_step_t *step);

/* Record a failure on behalf of the worker (timeout, missing handler, handler error code)
 * unless the handler already recorded an outcome. */
void tk_step_fail_by_worker(tk_step_t *step, const char *error_type, const char *message,
                            bool retryable);

/* The runtime's record of the step (the worker's job), for a step handed out and handed back
 * by pointer. NULL until set. */
void tk_step_set_owner(tk_step_t *step, void *owner);
void *tk_step_owner(const tk_step_t *step);

/* Mark when the handler started and ended (monotonic microseconds), for execution_time_ms. */
void tk_step_mark_started(tk_step_t *step);
void tk_step_mark_finished(tk_step_t *step);

/* Whether the outcome is a success, and how long the handler ran (after mark_finished). */
bool tk_step_succeeded(const tk_step_t *step);
double tk_step_execution_ms(const tk_step_t *step);

/* The StepExecutionResult JSON text for complete_step (caller frees with free()):
 * {step_uuid, success, status, result, metadata{execution_time_ms, started_at, completed_at,
 * worker_id, attempt, retryable, error_code, custom}, error{message, error_type, retryable,
 * retry_after_seconds, backtrace}}. NULL when out of memory. */
char *tk_step_result_json(const tk_step_t *step, const char *worker_id);

/* The step's timeout in milliseconds: handler.initialization.timeout_ms, else the template's
 * timeout_seconds, else `fallback_ms`. */
int64_t tk_step_timeout_ms(const PGresult *res, int row, int64_t fallback_ms);

#endif
