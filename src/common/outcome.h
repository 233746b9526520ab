/*
 * outcome.h - the log line that says what applying a step result did, written alike by
 * workers (which apply their own results) and the orchestrator (result messages).
 */
#ifndef TK_COMMON_OUTCOME_H
#define TK_COMMON_OUTCOME_H

#include "tasker/log.h"

/* Log, under `component`, the task's end ("task finished: complete|error"), else a retry
 * scheduled or a step failed for good; nothing for other states. Also a debug line with both
 * states. step_state may be "" when the result changed no step. */
void tk_log_outcome(const char *component, const tk_log_ids_t *ids, const char *step_state,
                    const char *task_state);

#endif
