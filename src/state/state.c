/*
 * state.c - lookup functions over the task and step state machines of tasker/state.h.
 *
 * The tables are built from the X-macro lists at compile time; nothing here allocates or keeps
 * mutable state, so every function is thread-safe.
 */
#include <string.h>

#include "tasker/state.h"

static const char *const task_names[] = {
#define X(NAME, str, terminal) str,
    TK_TASK_STATE_MAP(X)
#undef X
};

static const bool task_terminal[] = {
#define X(NAME, str, terminal) terminal,
    TK_TASK_STATE_MAP(X)
#undef X
};

static const char *const step_names[] = {
#define X(NAME, str, terminal, satisfies) str,
    TK_STEP_STATE_MAP(X)
#undef X
};

static const bool step_terminal[] = {
#define X(NAME, str, terminal, satisfies) terminal,
    TK_STEP_STATE_MAP(X)
#undef X
};

static const bool step_satisfies[] = {
#define X(NAME, str, terminal, satisfies) satisfies,
    TK_STEP_STATE_MAP(X)
#undef X
};

static const tk_transition_t task_transitions[] = {
#define X(event, FROM, TO) {#event, TK_TASK_##FROM, TK_TASK_##TO},
    TK_TASK_TRANSITION_MAP(X)
#undef X
};

static const tk_transition_t step_transitions[] = {
#define X(event, FROM, TO) {#event, TK_STEP_##FROM, TK_STEP_##TO},
    TK_STEP_TRANSITION_MAP(X)
#undef X
};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Index of `name` in `names`, or -1. */
static int find_name(const char *const *names, int count, const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* Event of the first row from -> to in `rows`, or NULL. */
static const char *find_event(const tk_transition_t *rows, int count, int from, int to)
{
    for (int i = 0; i < count; i++)
        if (rows[i].from == from && rows[i].to == to)
            return rows[i].event;
    return NULL;
}

const char *tk_task_state_name(tk_task_state_t state)
{
    return (unsigned)state < TK_TASK_STATE_COUNT ? task_names[state] : NULL;
}

const char *tk_step_state_name(tk_step_state_t state)
{
    return (unsigned)state < TK_STEP_STATE_COUNT ? step_names[state] : NULL;
}

int tk_task_state_parse(const char *name, tk_task_state_t *out)
{
    int i = find_name(task_names, TK_TASK_STATE_COUNT, name);
    if (i < 0 && name != NULL && strcmp(name, "in_progress") == 0)
        i = TK_TASK_STEPS_IN_PROCESS;
    if (i < 0)
        return TK_EINVAL;
    *out = (tk_task_state_t)i;
    return TK_OK;
}

int tk_step_state_parse(const char *name, tk_step_state_t *out)
{
    int i = find_name(step_names, TK_STEP_STATE_COUNT, name);
    if (i < 0)
        return TK_EINVAL;
    *out = (tk_step_state_t)i;
    return TK_OK;
}

bool tk_task_state_is_terminal(tk_task_state_t state)
{
    return (unsigned)state < TK_TASK_STATE_COUNT && task_terminal[state];
}

bool tk_step_state_is_terminal(tk_step_state_t state)
{
    return (unsigned)state < TK_STEP_STATE_COUNT && step_terminal[state];
}

bool tk_step_state_satisfies_dependents(tk_step_state_t state)
{
    return (unsigned)state < TK_STEP_STATE_COUNT && step_satisfies[state];
}

const char *tk_task_transition_event(tk_task_state_t from, tk_task_state_t to)
{
    return find_event(task_transitions, COUNT_OF(task_transitions), (int)from, (int)to);
}

const char *tk_step_transition_event(tk_step_state_t from, tk_step_state_t to)
{
    return find_event(step_transitions, COUNT_OF(step_transitions), (int)from, (int)to);
}

const tk_transition_t *tk_task_transitions(int *count)
{
    *count = COUNT_OF(task_transitions);
    return task_transitions;
}

const tk_transition_t *tk_step_transitions(int *count)
{
    *count = COUNT_OF(step_transitions);
    return step_transitions;
}
