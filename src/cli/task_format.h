/*
 * task_format.h - human-readable rendering of Tasker's REST payloads (TaskResponse, the task
 * list, StepResponse) for `tasker task`. Pure functions of the JSON: no I/O besides `out`.
 */
#ifndef TK_CLI_TASK_FORMAT_H
#define TK_CLI_TASK_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* True for the task states a task does not leave by itself: complete, error, cancelled,
 * resolved_manually. NULL is not terminal. */
bool tk_task_status_terminal(const char *status);

/* True if `status` names a task state (for checking `--status` before asking the server). */
bool tk_task_status_known(const char *status);

/* The comma-separated list of task states, for messages. Static. */
const char *tk_task_status_names(void);

/* A timestamp of the API ("2025-01-02T03:04:05.123456+00:00") as "2025-01-02 03:04:05 UTC"
 * (other offsets are kept: "... +02:00"); "-" for NULL or a non-string. */
void tk_task_format_time(const json_t *ts, char out[40]);

/* The error message of a failed step (results.error.message of a StepResponse), or NULL when
 * the step is not failed or has no message. */
const char *tk_task_step_error(const json_t *step);

/* A task (TaskResponse): a summary, then a table of its steps with their errors. `steps` is
 * the task's StepResponse array (GET .../workflow_steps) or NULL to use the task's own
 * "steps" (readiness rows, which carry no errors). */
void tk_task_print(FILE *out, const json_t *task, const json_t *steps);

/* The answer of GET /v1/tasks: a table of tasks and the pagination line. */
void tk_task_print_list(FILE *out, const json_t *list);

/* A StepResponse array as a table with the step UUIDs. */
void tk_task_print_steps(FILE *out, const json_t *steps);

/* One StepResponse in detail. */
void tk_task_print_step(FILE *out, const json_t *step);

#endif
