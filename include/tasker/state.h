/*
 * state.h - the task and step state machines, defined once.
 *
 * Each machine is an X-macro list of states and an X-macro list of legal transitions
 * (event, from, to). The SQL schema holds the same transitions in tables
 * tasker.task_state_transitions and tasker.step_state_transitions and refuses any other
 * change of state; tests/integration/test_state_sql.c proves the two lists agree.
 * src/state/README.md explains each state and where this machine departs from Tasker's.
 *
 * Names are Tasker's: the string of each state is what the database stores and what the REST
 * API shows. Events are Tasker's events in snake_case.
 */
#ifndef TASKER_STATE_H
#define TASKER_STATE_H

#include <stdbool.h>

#include "tasker/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, "name", terminal) */
#define TK_TASK_STATE_MAP(X)                                                                       \
    X(PENDING, "pending", false)                                                                   \
    X(INITIALIZING, "initializing", false)                                                         \
    X(ENQUEUING_STEPS, "enqueuing_steps", false)                                                   \
    X(STEPS_IN_PROCESS, "steps_in_process", false)                                                 \
    X(EVALUATING_RESULTS, "evaluating_results", false)                                             \
    X(WAITING_FOR_DEPENDENCIES, "waiting_for_dependencies", false)                                 \
    X(WAITING_FOR_RETRY, "waiting_for_retry", false)                                               \
    X(BLOCKED_BY_FAILURES, "blocked_by_failures", false)                                           \
    X(COMPLETE, "complete", true)                                                                  \
    X(ERROR, "error", true)                                                                        \
    X(CANCELLED, "cancelled", true)                                                                \
    X(RESOLVED_MANUALLY, "resolved_manually", true)

/* Applies X(event, FROM) to every non-terminal task state. */
#define TK_TASK_FROM_ACTIVE(X, event, TO)                                                          \
    X(event, PENDING, TO)                                                                          \
    X(event, INITIALIZING, TO)                                                                     \
    X(event, ENQUEUING_STEPS, TO)                                                                  \
    X(event, STEPS_IN_PROCESS, TO)                                                                 \
    X(event, EVALUATING_RESULTS, TO)                                                               \
    X(event, WAITING_FOR_DEPENDENCIES, TO)                                                         \
    X(event, WAITING_FOR_RETRY, TO)                                                                \
    X(event, BLOCKED_BY_FAILURES, TO)

/* X(event, FROM, TO): every legal task transition. */
#define TK_TASK_TRANSITION_MAP(X)                                                                  \
    X(start, PENDING, INITIALIZING)                                                                \
    X(ready_steps_found, INITIALIZING, ENQUEUING_STEPS)                                            \
    X(no_steps_found, INITIALIZING, COMPLETE)                                                      \
    X(no_dependencies_ready, INITIALIZING, WAITING_FOR_DEPENDENCIES)                               \
    X(reevaluate, INITIALIZING, EVALUATING_RESULTS)                                                \
    X(steps_enqueued, ENQUEUING_STEPS, STEPS_IN_PROCESS)                                           \
    X(enqueue_failed, ENQUEUING_STEPS, ERROR)                                                      \
    X(reevaluate, ENQUEUING_STEPS, EVALUATING_RESULTS)                                             \
    X(step_completed, STEPS_IN_PROCESS, EVALUATING_RESULTS)                                        \
    X(step_failed, STEPS_IN_PROCESS, WAITING_FOR_RETRY)                                            \
    X(staleness_timeout, STEPS_IN_PROCESS, ERROR)                                                  \
    X(all_steps_successful, EVALUATING_RESULTS, COMPLETE)                                          \
    X(ready_steps_found, EVALUATING_RESULTS, ENQUEUING_STEPS)                                      \
    X(steps_in_flight, EVALUATING_RESULTS, STEPS_IN_PROCESS)                                       \
    X(no_dependencies_ready, EVALUATING_RESULTS, WAITING_FOR_DEPENDENCIES)                         \
    X(retry_pending, EVALUATING_RESULTS, WAITING_FOR_RETRY)                                        \
    X(permanent_failure, EVALUATING_RESULTS, BLOCKED_BY_FAILURES)                                  \
    X(give_up, EVALUATING_RESULTS, ERROR)                                                          \
    X(dependencies_ready, WAITING_FOR_DEPENDENCIES, EVALUATING_RESULTS)                            \
    X(staleness_timeout, WAITING_FOR_DEPENDENCIES, ERROR)                                          \
    X(retry_ready, WAITING_FOR_RETRY, ENQUEUING_STEPS)                                             \
    X(reevaluate, WAITING_FOR_RETRY, EVALUATING_RESULTS)                                           \
    X(staleness_timeout, WAITING_FOR_RETRY, ERROR)                                                 \
    X(give_up, BLOCKED_BY_FAILURES, ERROR)                                                         \
    X(reevaluate, BLOCKED_BY_FAILURES, EVALUATING_RESULTS)                                         \
    X(reset, ERROR, EVALUATING_RESULTS)                                                            \
    TK_TASK_FROM_ACTIVE(X, cancel, CANCELLED)                                                      \
    TK_TASK_FROM_ACTIVE(X, resolve_manually, RESOLVED_MANUALLY)

/* X(NAME, "name", terminal, satisfies_dependents) */
#define TK_STEP_STATE_MAP(X)                                                                       \
    X(PENDING, "pending", false, false)                                                            \
    X(ENQUEUED, "enqueued", false, false)                                                          \
    X(IN_PROGRESS, "in_progress", false, false)                                                    \
    X(ENQUEUED_FOR_ORCHESTRATION, "enqueued_for_orchestration", false, false)                      \
    X(ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, "enqueued_as_error_for_orchestration", false, false)    \
    X(WAITING_FOR_RETRY, "waiting_for_retry", false, false)                                        \
    X(COMPLETE, "complete", true, true)                                                            \
    X(ERROR, "error", false, false)                                                                \
    X(CANCELLED, "cancelled", true, false)                                                         \
    X(RESOLVED_MANUALLY, "resolved_manually", true, true)

/* Applies X(event, FROM, TO) to every step state that is not terminal (error included). */
#define TK_STEP_FROM_ACTIVE(X, event, TO)                                                          \
    X(event, PENDING, TO)                                                                          \
    X(event, ENQUEUED, TO)                                                                         \
    X(event, IN_PROGRESS, TO)                                                                      \
    X(event, ENQUEUED_FOR_ORCHESTRATION, TO)                                                       \
    X(event, ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, TO)                                              \
    X(event, WAITING_FOR_RETRY, TO)                                                                \
    X(event, ERROR, TO)

/* X(event, FROM, TO): every legal step transition. */
#define TK_STEP_TRANSITION_MAP(X)                                                                  \
    X(enqueue, PENDING, ENQUEUED)                                                                  \
    X(start, ENQUEUED, IN_PROGRESS)                                                                \
    X(enqueue_for_orchestration, IN_PROGRESS, ENQUEUED_FOR_ORCHESTRATION)                          \
    X(enqueue_as_error_for_orchestration, IN_PROGRESS, ENQUEUED_AS_ERROR_FOR_ORCHESTRATION)        \
    X(lease_expired, IN_PROGRESS, ENQUEUED)                                                        \
    X(fail, IN_PROGRESS, ERROR)                                                                    \
    X(complete, ENQUEUED_FOR_ORCHESTRATION, COMPLETE)                                              \
    X(fail, ENQUEUED_FOR_ORCHESTRATION, ERROR)                                                     \
    X(wait_for_retry, ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, WAITING_FOR_RETRY)                      \
    X(fail, ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, ERROR)                                            \
    X(retry, WAITING_FOR_RETRY, PENDING)                                                           \
    X(reset_for_retry, ERROR, PENDING)                                                             \
    TK_STEP_FROM_ACTIVE(X, cancel, CANCELLED)                                                      \
    TK_STEP_FROM_ACTIVE(X, resolve_manually, RESOLVED_MANUALLY)                                    \
    TK_STEP_FROM_ACTIVE(X, complete_manually, COMPLETE)

typedef enum {
#define TK_TASK_STATE_ENUM(NAME, str, terminal) TK_TASK_##NAME,
    TK_TASK_STATE_MAP(TK_TASK_STATE_ENUM)
#undef TK_TASK_STATE_ENUM
        TK_TASK_STATE_COUNT
} tk_task_state_t;

typedef enum {
#define TK_STEP_STATE_ENUM(NAME, str, terminal, satisfies) TK_STEP_##NAME,
    TK_STEP_STATE_MAP(TK_STEP_STATE_ENUM)
#undef TK_STEP_STATE_ENUM
        TK_STEP_STATE_COUNT
} tk_step_state_t;

/* One row of a transition table. Strings are static. */
typedef struct tk_transition_s {
    const char *event;
    int from; /* tk_task_state_t or tk_step_state_t */
    int to;
} tk_transition_t;

/* Name of a state as stored in the database, or NULL when out of range. Thread-safe. */
TK_API const char *tk_task_state_name(tk_task_state_t state);
TK_API const char *tk_step_state_name(tk_step_state_t state);

/* Parse a state name into *out. Returns TK_OK or TK_EINVAL for an unknown name.
 * Tasker's legacy task state "in_progress" is accepted as steps_in_process. */
TK_API int tk_task_state_parse(const char *name, tk_task_state_t *out);
TK_API int tk_step_state_parse(const char *name, tk_step_state_t *out);

/* True when no automatic transition leaves `state` (complete, error, cancelled,
 * resolved_manually for tasks; complete, cancelled, resolved_manually for steps). */
TK_API bool tk_task_state_is_terminal(tk_task_state_t state);
TK_API bool tk_step_state_is_terminal(tk_step_state_t state);

/* True when a step in `state` lets its children run (complete, resolved_manually). */
TK_API bool tk_step_state_satisfies_dependents(tk_step_state_t state);

/* The event of the first legal transition from -> to, or NULL when the transition is
 * forbidden. Thread-safe. */
TK_API const char *tk_task_transition_event(tk_task_state_t from, tk_task_state_t to);
TK_API const char *tk_step_transition_event(tk_step_state_t from, tk_step_state_t to);

/* The whole transition table, for tests and tooling: sets *count and returns the rows. */
TK_API const tk_transition_t *tk_task_transitions(int *count);
TK_API const tk_transition_t *tk_step_transitions(int *count);

#ifdef __cplusplus
}
#endif
#endif
