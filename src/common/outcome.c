/*
 * outcome.c - the log line for what applying a step result did (see outcome.h).
 */
#include <string.h>

#include "common/outcome.h"

void tk_log_outcome(const char *component, const tk_log_ids_t *ids, const char *step_state,
                    const char *task_state)
{
    if (step_state[0] != '\0')
        TK_LOG_IDS(TK_LOG_DEBUG, component, ids, "step is %s; task is %s", step_state, task_state);
    if (strcmp(task_state, "complete") == 0)
        TK_LOG_IDS(TK_LOG_INFO, component, ids, "task finished: complete");
    else if (strcmp(task_state, "error") == 0)
        TK_LOG_IDS(TK_LOG_WARN, component, ids, "task finished: error");
    else if (strcmp(step_state, "waiting_for_retry") == 0)
        TK_LOG_IDS(TK_LOG_INFO, component, ids, "step failed; retry scheduled");
    else if (strcmp(step_state, "error") == 0)
        TK_LOG_IDS(TK_LOG_WARN, component, ids, "step failed for good");
}
